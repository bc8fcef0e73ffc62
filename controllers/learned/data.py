"""What the learned-motion-matching networks read and write, as flat arrays.

Numpy only (no torch): the training script and the evaluation read their
targets from here, the runtime decodes the decompressor's output with the same
layout.

Pose vector (the decompressor's output, Holden et al. 2020, sec. 4), per frame:

    pos   [M, 3]    local positions of the M joints whose offset moves (the hips)
    rot   [J-1, 6]  local rotations of joints 1.. as two matrix columns (quat.to_6d)
    vel   [M, 3]    local linear velocities of the moving joints
    avel  [J-1, 3]  local angular velocities of joints 1..
    rvel  [3]       root (simulation bone) velocity in character space
    rang  [3]       root angular velocity in character space
    cont  [C]       foot contacts (0/1)

Joints whose local position never changes keep their rest offset (stored in the
weights file as `rest_positions`); their local velocity is zero. The
compressor additionally sees the pose in character space (after FK, relative to
the root): positions, rotations, velocities and angular velocities of joints 1...
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anim import quat
from anim.database import Database


@dataclass(frozen=True)
class PoseLayout:
    """Where each part of the pose vector sits."""

    num_joints: int
    moving: tuple            # joint indices (>= 1) whose local position varies
    num_contacts: int = 2

    @property
    def groups(self) -> tuple:
        m, j1, c = len(self.moving), self.num_joints - 1, self.num_contacts
        return (("pos", 3 * m), ("rot", 6 * j1), ("vel", 3 * m), ("avel", 3 * j1),
                ("rvel", 3), ("rang", 3), ("cont", c))

    @property
    def size(self) -> int:
        return sum(w for _, w in self.groups)

    def slice(self, name: str) -> slice:
        start = 0
        for n, w in self.groups:
            if n == name:
                return slice(start, start + w)
            start += w
        raise KeyError(name)

    def split(self, y):
        """{group: y[..., group]} (works on numpy arrays and torch tensors)."""
        return {n: y[..., self.slice(n)] for n, _ in self.groups}


def moving_joints(db: Database, tol: float = 1e-4) -> tuple:
    """Joints >= 1 whose local position moves by more than tol (metres)."""
    pos = np.asarray(db.positions)
    step = max(1, len(pos) // 50_000)
    sample = pos[::step, 1:]
    spread = (sample.max(axis=0) - sample.min(axis=0)).max(axis=-1)
    return tuple(int(j) + 1 for j in np.flatnonzero(spread > tol))


def layout_of(db: Database) -> PoseLayout:
    return PoseLayout(db.skeleton.num_joints, moving_joints(db), int(db.contacts.shape[1]))


def rest_positions(db: Database) -> np.ndarray:
    """[J, 3] local positions the pose keeps for joints that do not move (the
    database's first frame; joint 0 is overwritten by the root at run time)."""
    out = np.asarray(db.positions[0], np.float32).copy()
    out[0] = 0.0
    return out


def pose_vectors(db: Database, layout: PoseLayout, frames=slice(None)) -> np.ndarray:
    """[N, layout.size] float32 pose vectors of database frames."""
    rot = np.asarray(db.rotations[frames])
    pos = np.asarray(db.positions[frames])
    vel = np.asarray(db.velocities[frames])
    avel = np.asarray(db.angular_velocities[frames])
    cont = np.asarray(db.contacts[frames]).astype(np.float32)
    n = rot.shape[0]
    m = list(layout.moving)
    rvel = quat.inv_rot(rot[:, 0], vel[:, 0])
    rang = quat.inv_rot(rot[:, 0], avel[:, 0])
    parts = [pos[:, m].reshape(n, -1), quat.to_6d(rot[:, 1:]).reshape(n, -1), vel[:, m].reshape(n, -1),
             avel[:, 1:].reshape(n, -1), rvel, rang, cont]
    return np.concatenate(parts, axis=1).astype(np.float32)


def group_normalization(y: np.ndarray, groups, eps: float = 1e-4):
    """Per-dimension mean and one std per group (as in Holden's training
    scripts: a group's dimensions share a scale, so relative sizes survive)."""
    mean = y.mean(axis=0)
    std = np.empty_like(mean)
    start = 0
    for _, w in groups:
        sl = slice(start, start + w)
        std[sl] = max(float(y[:, sl].std()), eps)
        start += w
    return mean.astype(np.float32), std.astype(np.float32)


def stepper_windows(db: Database, window: int) -> np.ndarray:
    """Start frames i such that frames i .. i+window-1 lie in one clip."""
    starts = []
    for a, b in zip(np.asarray(db.range_starts), np.asarray(db.range_stops)):
        if b - a >= window:
            starts.append(np.arange(a, b - window + 1))
    return np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)


def standing_frame(db: Database) -> int:
    """The slowest matchable frame (where motion matching starts too)."""
    v = db.root_velocity_character()
    speed = np.hypot(v[:, 0], v[:, 2])
    return int(np.argmin(np.where(np.asarray(db.valid), speed, np.inf)))
