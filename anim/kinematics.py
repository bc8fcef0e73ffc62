"""Kinematics: forward/inverse kinematics, velocities, foot contacts, two-bone IK.

Conventions (DESIGN.md): metres, seconds, radians; Y up; quaternions
(w, x, y, z) [..., 4]. Time is axis 0 for the per-clip functions
(linear_velocity, angular_velocity, detect_contacts).
"""

from __future__ import annotations

import numpy as np

from . import quat
from .quat import fk, ik  # noqa: F401  (re-exported: anim.kinematics.fk is anim.quat.fk)

__all__ = ["fk", "ik", "linear_velocity", "angular_velocity", "detect_contacts",
           "two_bone_ik", "two_bone_ik_pose"]


# ---------------------------------------------------------------- velocities

def linear_velocity(pos, fps):
    """Velocity (units/s) of positions pos [T, ..., 3] sampled at fps: central
    differences inside, one-sided differences at the first and last frame.
    Same shape and dtype as pos (zeros when T < 2)."""
    pos = quat._f(pos)
    v = np.zeros_like(pos)
    if len(pos) < 2:
        return v
    v[1:-1] = (pos[2:] - pos[:-2]) * (fps / 2)
    v[0] = (pos[1] - pos[0]) * fps
    v[-1] = (pos[-1] - pos[-2]) * fps
    return v


def angular_velocity(rot, fps):
    """World-frame angular velocity (rad/s, [T, ..., 3]) of rotations rot
    [T, ..., 4] sampled at fps, by quat.angular_velocity over the same stencil
    as linear_velocity (exact for a constant angular rate below pi per 2 frames)."""
    rot = quat._f(rot)
    w = np.zeros(rot.shape[:-1] + (3,), dtype=rot.dtype)
    if len(rot) < 2:
        return w
    w[1:-1] = quat.angular_velocity(rot[:-2], rot[2:], 2 / fps)
    w[0] = quat.angular_velocity(rot[0], rot[1], 1 / fps)
    w[-1] = quat.angular_velocity(rot[-2], rot[-1], 1 / fps)
    return w


# ---------------------------------------------------------------- foot contacts

def _runs(x):
    """Run-length encoding of a 1D bool array: (starts, lengths, values)."""
    change = np.flatnonzero(x[1:] != x[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(x)]]))
    return starts, lengths, x[starts]


def _drop_short_runs(x, value, min_frames):
    """Flip interior runs of `value` shorter than min_frames (runs touching the
    first or last frame are kept: their true length is unknown)."""
    starts, lengths, values = _runs(x)
    interior = (starts > 0) & (starts + lengths < len(x))
    flip = (values == value) & (lengths < min_frames) & interior
    return np.repeat(np.where(flip, ~values, values), lengths)


def detect_contacts(foot_pos, fps, height_threshold=0.10, speed_threshold=0.15,
                    min_frames=3, ground=0.0):
    """Foot contacts from world positions of foot joints.

    foot_pos: [T, F, 3] world positions in metres (Y up), e.g. the toe joints.
    A frame is in contact when BOTH
      - height = foot_pos[..., 1] - ground < height_threshold, where `ground` is
        the floor height (default 0.0: the floor is the plane y = 0); pass
        ground=None to measure each foot from its own lowest height in the clip
        (use that when the floor is not at y = 0 or for joints that sit well
        above the floor, such as ankles);
      - speed = |3D velocity| (linear_velocity: central differences) < speed_threshold.
    Then, per foot, interior off-runs shorter than min_frames are filled
    (flicker inside a stance) and then interior on-runs shorter than min_frames
    are dropped (blips during a swing). Runs touching the first or last frame
    are kept as they are.

    Defaults are for human mocap at 30-120 fps on toe (ball-of-foot) joints,
    whose centres sit about 2-5 cm above the floor when planted: 0.10 m height
    (also admits a flat-footed ankle joint, about 8 cm) and 0.15 m/s speed
    (Holden's Motion-Matching database threshold; marker jitter stays well
    below it, a swinging foot moves at 1-5 m/s).

    Returns bool [T, F].
    """
    foot_pos = quat._f(foot_pos)
    if len(foot_pos) == 0:
        return np.zeros(foot_pos.shape[:-1], dtype=bool)
    heights = foot_pos[..., 1]
    ref = heights.min(axis=0, keepdims=True) if ground is None else ground
    speed = np.sqrt(np.sum(linear_velocity(foot_pos, fps) ** 2, axis=-1))
    contact = ((heights - ref) < height_threshold) & (speed < speed_threshold)
    if min_frames > 1 and len(contact) > 0:
        for f in range(contact.shape[1]):
            c = _drop_short_runs(contact[:, f], False, min_frames)
            contact[:, f] = _drop_short_runs(c, True, min_frames)
    return contact


# ---------------------------------------------------------------- two-bone IK

def _unit(v, eps=1e-30):
    n = np.sqrt(np.sum(v * v, axis=-1, keepdims=True))
    return v / np.maximum(n, eps), n[..., 0]


def _angle(u, v):
    """Unsigned angle between vectors, accurate near 0 and pi."""
    return np.arctan2(np.sqrt(np.sum(quat._cross(u, v) ** 2, axis=-1)), np.sum(u * v, axis=-1))


def two_bone_ik(a, b, c, target, a_grot, b_grot, pole=None, max_extension=0.999):
    """Two-bone IK (after Holden, "Simple Two Joint IK") on global quantities.

    a, b, c: [..., 3] global positions of the root (hip), middle (knee) and end
    (ankle) joints; target [..., 3] where c should go; a_grot, b_grot [..., 4]
    the global rotations of a and b. Returns new global rotations
    (a_grot', b_grot') in the dtype of a_grot.

    1. Bend: rotate a and b about the normal n of the chain's plane so that
       |c - a| = |target - a| (law of cosines). The distance is clamped to
       [|ab - bc|, max_extension * (ab + bc)], so an unreachable target gives a
       slightly bent chain pointing at it (0.999 leaves a ~5 degree bend on
       equal bones).
    2. Swing: without pole, the shortest rotation at a taking the end onto the
       target direction (the bending plane turns with the chain). With pole
       ([..., 3], a world direction, e.g. the character's forward for a knee),
       the rotation that also turns the bending plane so that the middle joint
       points towards pole (b ends up on the pole side of the a-target line).

    The middle joint only turns about the plane normal (a hinge). If the chain
    is straight (no plane), n comes from pole (or an arbitrary perpendicular
    when pole is None: pass a pole for chains that may be straight).
    Computed in float64 inside; target within reach is met to float precision.
    """
    dtype = np.result_type(quat._f(a_grot), quat._f(b_grot))
    f = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
    a, b, c, t, qa, qb = f(a), f(b), f(c), f(target), f(a_grot), f(b_grot)

    ab, bc, ac, at = b - a, c - b, c - a, t - a
    _, lab = _unit(ab)
    _, lbc = _unit(bc)
    d, lat = _unit(at)
    lat = np.clip(lat, np.abs(lab - lbc), max_extension * (lab + lbc))

    # plane normal, oriented so that b lies on the side n x (c - a)
    n, nlen = _unit(quat._cross(ac, ab))
    straight = nlen <= 1e-6 * np.maximum(_unit(ac)[1] * lab, 1e-30)
    if pole is not None:
        pole = f(pole)
        npole, nplen = _unit(quat._cross(ac, pole))
        fallback = np.where((nplen > 1e-12)[..., None], npole, quat._perpendicular(ac))
    else:
        fallback = quat._perpendicular(ac)
    n = np.where(straight[..., None], fallback, n)

    # 1. bend in the plane
    ac_ab_0 = _angle(ac, ab)
    ba_bc_0 = _angle(-ab, bc)
    ac_ab_1 = np.arccos(np.clip((lab ** 2 + lat ** 2 - lbc ** 2) / np.maximum(2 * lab * lat, 1e-30), -1, 1))
    ba_bc_1 = np.arccos(np.clip((lab ** 2 + lbc ** 2 - lat ** 2) / np.maximum(2 * lab * lbc, 1e-30), -1, 1))
    r0 = quat.from_angle_axis(ac_ab_1 - ac_ab_0, n)
    r1 = quat.from_angle_axis(ba_bc_1 - ba_bc_0, n)

    # 2. swing the bent chain onto the target direction
    d0, _ = _unit(quat.rot(r0, ab + quat.rot(r1, bc)))
    d = np.where((_unit(at)[1] > 1e-12)[..., None], d, d0)  # target at a: no swing
    r2 = quat.between(d0, d)
    if pole is not None:
        n_new, nnlen = _unit(quat._cross(d, pole))
        n_old, _ = _unit(n - np.sum(n * d0, axis=-1, keepdims=True) * d0)
        old = np.stack([d0, n_old, quat._cross(d0, n_old)], axis=-1)
        new = np.stack([d, n_new, quat._cross(d, n_new)], axis=-1)
        r2_pole = quat.from_matrix(new @ np.swapaxes(old, -1, -2))
        r2 = np.where((nnlen > 1e-9)[..., None], r2_pole, r2)

    r20 = quat.mul(r2, r0)
    a_new = quat.normalize(quat.mul(r20, qa))
    b_new = quat.normalize(quat.mul(r20, quat.mul(r1, qb)))
    return a_new.astype(dtype), b_new.astype(dtype)


def two_bone_ik_pose(lrot, lpos, parents, end_joint, target, pole=None, max_extension=0.999):
    """Two-bone IK on a pose [J, ...] or a batch [..., J, ...] of local rotations
    lrot and positions lpos: moves joint end_joint to target [..., 3] (world) by
    turning its grandparent and parent (see two_bone_ik). Returns a new array
    of local rotations (inputs untouched)."""
    lrot, lpos = quat._f(lrot), quat._f(lpos)
    parents = np.asarray(parents)
    mid = int(parents[end_joint])
    root = int(parents[mid]) if mid >= 0 else -1
    if root < 0:
        raise ValueError(f"two_bone_ik_pose: joint {end_joint} needs a parent and a grandparent")
    n = end_joint + 1  # parents come before children: FK up to the end joint is enough
    grot, gpos = fk(lrot[..., :n, :], lpos[..., :n, :], parents[:n])
    a_new, b_new = two_bone_ik(gpos[..., root, :], gpos[..., mid, :], gpos[..., end_joint, :],
                               target, grot[..., root, :], grot[..., mid, :], pole, max_extension)
    batch = a_new.shape[:-1]
    out = np.array(np.broadcast_to(lrot, batch + lrot.shape[-2:]))
    up = int(parents[root])
    out[..., root, :] = a_new if up < 0 else quat.mul(quat.inv(grot[..., up, :]), a_new)
    out[..., mid, :] = quat.mul(quat.inv(a_new), b_new)
    return out
