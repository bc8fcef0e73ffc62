"""The motion database: clips resampled to 60 Hz, mirrored, with a simulation
bone, per-frame kinematics, contacts, tags and matching features.

Data-oriented, as in Holden's Motion-Matching demo: the database is a handful of
big arrays (frames concatenated, clip ranges as start/stop indices). Build it
with `build_database(clips, DatabaseConfig(...))`, save it with `save`, load it
with `load` (memory-mapped: under a second whatever its size).

Frame layout: joint 0 is the *simulation bone* (the ground projection of the
hips, with a smoothed facing direction about +Y); every other joint keeps the
source skeleton's local rotation and position. Forward is +Z, left is +X.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from . import quat
from .fileio import atomic_write
from .kinematics import detect_contacts
from .skeleton import Clip, Skeleton

FORMAT = "anim-database"
FORMAT_VERSION = 2       # 2: CRC-32 of the header and of every array
FPS = 60.0

# Feature groups, in the order they sit in the feature vector: name -> width.
FEATURE_GROUPS = (
    ("foot_positions", 6),       # left, right foot position (character space)
    ("foot_velocities", 6),      # left, right foot velocity (character space)
    ("hip_velocity", 3),         # hip velocity (character space)
    ("trajectory_positions", 6), # future root positions (x, z) at +20, +40, +60 frames
    ("trajectory_directions", 6),# future facing directions (x, z) at the same frames
)


@dataclass(frozen=True)
class DatabaseConfig:
    """How a database is built. Defaults follow Holden's Motion-Matching demo.

    fps:               output frame rate (the runtime ticks at 60 Hz).
    mirror:            add a left/right mirrored copy of every clip.
    mirror_map:        explicit {joint: mirrored joint} pairs; by default joints
                       named *_L / *_R (or Left*/Right*) are paired.
    feet:              the two foot joints (left, right) of the features and of
                       foot locking; toes:  the toe joints used for contacts.
    hips:              the joint the simulation bone projects onto the ground.
    facing_pairs:      (left, right) joint pairs whose across-body direction
                       gives the character's facing (forward = across x up).
    facing_smooth:     Savitzky-Golay window (frames at `fps`) smoothing the
                       facing direction; position_smooth: same for position.
    trajectory_frames: future frames of the trajectory features.
    weights:           per feature group weight (after normalization).
    contact_height, contact_speed: thresholds of foot contact detection (m, m/s).

    The joint names default to the Bandai Namco rig's. For any other skeleton
    they come from its joint roles (anim.roles) with a contact height measured
    from its planted toes: anim.importing.database_config, which
    `anim build-db --data DIR` uses after bringing the clips to metres, Y up
    (anim.conform: the simulation bone turns about +Y).
    """

    fps: float = FPS
    mirror: bool = True
    mirror_map: tuple = ()
    feet: tuple = ("Foot_L", "Foot_R")
    toes: tuple = ("Toes_L", "Toes_R")
    hips: str = "Hips"
    facing_pairs: tuple = (("UpperLeg_L", "UpperLeg_R"), ("Shoulder_L", "Shoulder_R"))
    facing_smooth: int = 61
    position_smooth: int = 31
    trajectory_frames: tuple = (20, 40, 60)
    weights: tuple = (("foot_positions", 0.75), ("foot_velocities", 1.0), ("hip_velocity", 1.0),
                      ("trajectory_positions", 1.0), ("trajectory_directions", 1.5))
    contact_height: float = 0.08
    contact_speed: float = 0.35

    def weight(self, group: str) -> float:
        return dict(self.weights)[group]


@dataclass
class Database:
    """All arrays are indexed by frame (N frames, J joints, F features)."""

    skeleton: Skeleton
    config: DatabaseConfig
    rotations: np.ndarray          # [N, J, 4] local rotations; joint 0 = simulation bone (world)
    positions: np.ndarray          # [N, J, 3] local positions; joint 0 = simulation bone (world)
    velocities: np.ndarray         # [N, J, 3] local-space linear velocities (joint 0: world)
    angular_velocities: np.ndarray # [N, J, 3] local-space angular velocities (joint 0: world)
    contacts: np.ndarray           # [N, 2] bool, left/right foot
    features: np.ndarray           # [N, F] normalized, weighted matching features
    features_offset: np.ndarray    # [F] mean subtracted before scaling
    features_scale: np.ndarray     # [F] std / weight the features were divided by
    valid: np.ndarray              # [N] bool: frame may be matched (full future trajectory)
    range_starts: np.ndarray       # [C] first frame of each clip
    range_stops: np.ndarray        # [C] one past the last frame of each clip
    clip_names: list = field(default_factory=list)   # [C]
    clip_tags: list = field(default_factory=list)    # [C] dict of tags (incl. 'mirrored')
    mirror_joints: np.ndarray = None                 # [J] index of each joint's mirror
    source_fps: list = field(default_factory=list)   # [C]
    meta: dict = field(default_factory=dict)         # how a --data folder was read (anim.importing)

    # ------------------------------------------------------------------ access
    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    @property
    def num_clips(self) -> int:
        return len(self.range_starts)

    @property
    def frame_clip(self) -> np.ndarray:
        """[N] index of the clip each frame belongs to."""
        out = np.empty(self.num_frames, np.int32)
        for c, (a, b) in enumerate(zip(self.range_starts, self.range_stops)):
            out[a:b] = c
        return out

    def clip_of(self, frame: int) -> int:
        return int(np.searchsorted(self.range_stops, frame, side="right"))

    def tag_values(self, key: str) -> list[str]:
        return sorted({str(t.get(key)) for t in self.clip_tags if key in t})

    def tag_mask(self, **filters) -> np.ndarray:
        """[N] bool of frames whose clip tags match every filter; a filter value
        is a string or a list of accepted strings (e.g. style='normal',
        content=['walk', 'run'], mirrored=False)."""
        mask = np.zeros(self.num_frames, bool)
        for c, tags in enumerate(self.clip_tags):
            if _tags_match(tags, filters):
                mask[self.range_starts[c]:self.range_stops[c]] = True
        return mask

    def roles(self):
        """The skeleton's joint roles (anim.roles): as recorded when a --data folder
        was built, else found from the names."""
        from .roles import Roles, find_roles
        if self.meta.get("roles"):
            return Roles.from_json(self.meta["roles"])
        return find_roles(self.skeleton)

    def body_joints(self) -> np.ndarray:
        """Indices of the joints that are not helpers (twist, finger, face bones...):
        the ones metrics and physics look at. All joints when none are recorded."""
        helpers = set(self.meta.get("roles", {}).get("helpers", ()))
        return np.array([j for j, n in enumerate(self.skeleton.names) if n not in helpers], np.int64)

    def root_velocity_character(self) -> np.ndarray:
        """[N, 3] root (simulation bone) velocity in character space."""
        return quat.inv_rot(self.rotations[:, 0], self.velocities[:, 0])

    def global_positions(self, frames=slice(None)) -> np.ndarray:
        """World positions of all joints of the given frames, by FK."""
        _, gpos = quat.fk(self.rotations[frames], self.positions[frames], self.skeleton.parents)
        return gpos

    def normalize_features(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.features_offset) / self.features_scale

    def feature_slice(self, group: str) -> slice:
        start = 0
        for name, width in FEATURE_GROUPS:
            if name == group:
                return slice(start, start + width)
            start += width
        raise KeyError(f"unknown feature group {group!r}")

    def describe(self) -> str:
        minutes = self.num_frames / self.config.fps / 60
        return (f"{self.num_frames:,} frames ({minutes:.1f} min at {self.config.fps:g} Hz), "
                f"{self.num_clips} clips, {self.skeleton.num_joints} joints, "
                f"{self.features.shape[1]} features, {int(self.valid.sum()):,} matchable")


def _tags_match(tags: dict, filters: dict) -> bool:
    for key, want in filters.items():
        if want is None:
            continue
        have = tags.get(key)
        if isinstance(want, (list, tuple, set, frozenset)):
            if have not in want and str(have) not in {str(w) for w in want}:
                return False
        elif have != want and str(have) != str(want):
            return False
    return True


# ====================================================================== build
def resample(rotations: np.ndarray, positions: np.ndarray, src_fps: float, dst_fps: float):
    """Resample a clip in time: slerp for rotations, linear for positions."""
    t = rotations.shape[0]
    if t == 1 or abs(src_fps - dst_fps) < 1e-6:
        return rotations.copy(), positions.copy()
    duration = (t - 1) / src_fps
    n = int(np.floor(duration * dst_fps + 1e-6)) + 1
    s = np.arange(n) * (src_fps / dst_fps)
    i0 = np.minimum(np.floor(s).astype(np.int64), t - 1)
    i1 = np.minimum(i0 + 1, t - 1)
    a = (s - i0).astype(np.float32)
    rot = quat.slerp(rotations[i0], rotations[i1], a[:, None])
    pos = positions[i0] * (1 - a)[:, None, None] + positions[i1] * a[:, None, None]
    return rot.astype(np.float32), pos.astype(np.float32)


def mirror_pairs(names, mirror_map=()) -> np.ndarray:
    """[J] index of each joint's mirror: explicit pairs first, then the *_L/*_R,
    *_l/*_r, Left*/Right* naming conventions; unpaired joints map to themselves."""
    names = list(names)
    explicit = {}
    for a, b in mirror_map:
        explicit[a], explicit[b] = b, a
    out = np.arange(len(names))
    swaps = (("_L", "_R"), ("_l", "_r"), ("Left", "Right"), ("left", "right"), (".L", ".R"))
    for i, n in enumerate(names):
        other = explicit.get(n)
        if other is None:
            for a, b in swaps:
                if n.endswith(a) or n.startswith(a) and a[0] != "_":
                    cand = n[: -len(a)] + b if n.endswith(a) else b + n[len(a):]
                elif n.endswith(b) or n.startswith(b) and b[0] != "_":
                    cand = n[: -len(b)] + a if n.endswith(b) else a + n[len(b):]
                else:
                    continue
                if cand in names:
                    other = cand
                    break
        if other is not None:
            if other not in names:
                raise KeyError(f"mirror map names joint {other!r}, not in the skeleton")
            out[i] = names.index(other)
    return out


# Candidate reflections for a joint's local frame, written as the rotation
# P = -N (N a reflection with det -1): N R N' == P R P'.
_REFLECTIONS = (
    (np.diag([-1.0, 1, 1]), np.array([0, 1, 0, 0], np.float32)),
    (np.diag([1.0, -1, 1]), np.array([0, 0, 1, 0], np.float32)),
    (np.diag([1.0, 1, -1]), np.array([0, 0, 0, 1], np.float32)),
    (np.diag([-1.0, -1, -1]), np.array([1, 0, 0, 0], np.float32)),
)


def mirror_frames(skeleton: Skeleton, mirror: np.ndarray, samples: list[tuple[np.ndarray, np.ndarray]]):
    """Choose, for every joint, the reflection of its local frame under which
    left/right-swapped motion lands in the partner joint's conventions.

    The world mirror is x -> -x (left <-> right). A joint's mirrored local
    rotation is  N_parent R_partner N_joint  and its local position
    N_parent p_partner, with N one of four axis reflections. N is fixed first by
    the skeleton's offsets (children of the mirrored joint must land on the
    partner's children) and, where offsets cannot tell (chains, leaves), by the
    motion: the mirrored joint's mean rotation must agree with the original's.
    Returns the index (into _REFLECTIONS) per joint; the root is always x -> -x.
    """
    parents = skeleton.parents
    offsets = skeleton.offsets.astype(np.float64)
    rots = np.concatenate([r for r, _ in samples]).astype(np.float64)
    scale = max(float(np.linalg.norm(offsets, axis=-1).max()), 1e-6)
    choice = np.zeros(len(parents), np.int64)
    for j in range(len(parents)):
        if parents[j] < 0:
            choice[j] = 0
            continue
        pj = choice[parents[j]]
        kids = skeleton.children(j)
        errs = []
        for k, (n, _) in enumerate(_REFLECTIONS):
            e = sum(np.linalg.norm(n @ offsets[mirror[c]] - offsets[c]) for c in kids) / scale
            errs.append(e)
        errs = np.array(errs)
        ok = np.flatnonzero(errs <= errs.min() + 1e-3)
        best, best_score = ok[0], -np.inf
        mean_orig = _mean_quat(rots[:, j])
        for k in ok:
            mirrored = quat.mul(quat.mul(_REFLECTIONS[pj][1].astype(np.float64), rots[:, mirror[j]]),
                                _REFLECTIONS[k][1].astype(np.float64))
            score = abs(float(np.dot(_mean_quat(mirrored), mean_orig)))
            if score > best_score:
                best, best_score = k, score
        choice[j] = best
    return choice


def _mean_quat(q: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of unit quaternions (largest eigenvector of sum q q^T)."""
    m = np.einsum("ni,nj->ij", q, q)
    w, v = np.linalg.eigh(m)
    return v[:, -1]


def apply_mirror(rotations, positions, parents, mirror, choice):
    """Mirror a clip's local rotations [T,J,4] and positions [T,J,3]."""
    p = np.stack([_REFLECTIONS[k][1] for k in choice])            # [J, 4]
    n = np.stack([np.diag(_REFLECTIONS[k][0]) for k in choice])   # [J, 3] (diagonals)
    p_par = np.where((parents >= 0)[:, None], p[np.maximum(parents, 0)], _REFLECTIONS[0][1])
    n_par = np.where((parents >= 0)[:, None], n[np.maximum(parents, 0)], np.diag(_REFLECTIONS[0][0]))
    rot = quat.mul(quat.mul(p_par, rotations[:, mirror]), p)
    pos = positions[:, mirror] * n_par.astype(np.float32)
    return quat.abs(quat.normalize(rot)).astype(np.float32), pos.astype(np.float32)


def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    from scipy.signal import savgol_filter
    t = x.shape[0]
    w = min(window, t if t % 2 == 1 else t - 1)
    if w < 5:
        return x
    return savgol_filter(x, w, 3, axis=0, mode="interp")


def add_simulation_bone(skeleton: Skeleton, rotations, positions, cfg: DatabaseConfig):
    """Put the simulation bone at joint 0: the hips projected on the ground with
    a smoothed facing direction (rotation about +Y). If the skeleton's root is
    already a ground-level bone with the hips as its only child (as in the
    Bandai Namco data), it is replaced; otherwise a new root is inserted."""
    names = list(skeleton.names)
    hips = skeleton.index(cfg.hips)
    grot, gpos = quat.fk(rotations, positions, skeleton.parents)
    across = np.zeros(gpos.shape[:1] + (3,), np.float64)
    for left, right in cfg.facing_pairs:
        if left in names and right in names:
            across += gpos[:, names.index(left)] - gpos[:, names.index(right)]
    if not np.any(across):
        raise ValueError(f"none of the facing joints {cfg.facing_pairs} are in the skeleton")
    up = np.array([0.0, 1.0, 0.0])
    fwd = np.cross(across, up)
    fwd[:, 1] = 0.0
    fwd = _smooth(fwd, cfg.facing_smooth)
    fwd /= np.maximum(np.linalg.norm(fwd, axis=-1, keepdims=True), 1e-8)
    root_pos = gpos[:, hips].astype(np.float64).copy()
    root_pos[:, 1] = 0.0
    root_pos = _smooth(root_pos, cfg.position_smooth)
    root_pos[:, 1] = 0.0
    root_rot = quat.from_angle_axis(np.arctan2(fwd[:, 0], fwd[:, 2]), up).astype(np.float32)

    root_is_ground = (skeleton.parents[hips] == 0 and len(skeleton.children(0)) == 1
                      and float(np.abs(gpos[:, 0, 1]).max()) < 0.02)
    if root_is_ground:
        skel = skeleton
        rot, pos = rotations.copy(), positions.copy()
    else:
        skel = Skeleton(("Simulation",) + skeleton.names,
                        np.concatenate([[-1], np.where(skeleton.parents < 0, 0, skeleton.parents + 1)]),
                        np.concatenate([np.zeros((1, 3), np.float32), skeleton.offsets]))
        rot = np.concatenate([quat.identity((rotations.shape[0], 1)).astype(np.float32), rotations], 1)
        pos = np.concatenate([np.zeros_like(positions[:, :1]), positions], 1)
        hips += 1
    rot[:, 0] = root_rot
    pos[:, 0] = root_pos
    # hips local = inverse(simulation bone) * hips global
    rot[:, hips] = quat.mul(quat.inv(root_rot), grot[:, skeleton.index(cfg.hips)])
    pos[:, hips] = quat.inv_rot(root_rot, gpos[:, skeleton.index(cfg.hips)] - root_pos)
    skel = Skeleton(skel.names, skel.parents,
                    np.concatenate([np.zeros((1, 3), np.float32), skel.offsets[1:]]),
                    skel.channels if root_is_ground else (), skel.end_sites if root_is_ground else {})
    return skel, quat.abs(quat.normalize(rot)).astype(np.float32), pos.astype(np.float32)


def _velocities(rot, pos, fps):
    """Backward finite differences (first frame copies the second), local space."""
    vel = np.empty_like(pos)
    avel = np.empty_like(pos)
    if rot.shape[0] == 1:
        vel[:] = 0
        avel[:] = 0
        return vel, avel
    vel[1:] = (pos[1:] - pos[:-1]) * fps
    vel[0] = vel[1]
    avel[1:] = quat.angular_velocity(rot[:-1], rot[1:], 1.0 / fps)
    avel[0] = avel[1]
    return vel, avel


def build_database(clips: list[Clip], config: DatabaseConfig = DatabaseConfig(), progress: bool = True) -> Database:
    """Build a database from clips (already in metres, any frame rate)."""
    if not clips:
        raise ValueError("build_database: no clips selected (check the tag filter)")
    skel0 = clips[0].skeleton
    for c in clips:
        if c.skeleton.signature() != skel0.signature():
            raise ValueError(f"build_database: {c.source} has a different skeleton than {clips[0].source}")
    for name in (config.hips, *config.feet, *config.toes):
        if name not in skel0.names:
            raise KeyError(f"joint {name!r} not in the skeleton of {clips[0].source} (its hips, feet and toes "
                           f"come from DatabaseConfig; for a skeleton other than Bandai Namco's use "
                           f"anim.importing.database_config, or `anim build-db --data DIR`)")

    from tqdm import tqdm

    prepared = []
    skel = None
    for clip in tqdm(clips, desc="resample + simulation bone", disable=not progress, unit="clip"):
        rot, pos = resample(clip.rotations, clip.positions, clip.fps, config.fps)
        if not np.isfinite(rot).all() or not np.isfinite(pos).all():
            raise ValueError(f"build_database: {clip.source} holds NaN or infinite values")
        skel, rot, pos = add_simulation_bone(skel0, rot, pos, config)
        prepared.append((clip, rot, pos, False))

    mirror = mirror_pairs(skel.names, config.mirror_map)
    if config.mirror:
        if (mirror == np.arange(len(mirror))).all():
            raise ValueError("build_database: mirroring asked but no left/right joint pairs found; "
                             "pass a mirror map")
        sample = [(r[:: max(1, len(r) // 200)], p) for _, r, p, _ in prepared]
        choice = mirror_frames(skel, mirror, sample)
        for clip, rot, pos, _ in list(prepared):
            mrot, mpos = apply_mirror(rot, pos, skel.parents, mirror, choice)
            prepared.append((clip, mrot, mpos, True))

    n = sum(r.shape[0] for _, r, _, _ in prepared)
    j = skel.num_joints
    rotations = np.empty((n, j, 4), np.float32)
    positions = np.empty((n, j, 3), np.float32)
    velocities = np.empty((n, j, 3), np.float32)
    angular = np.empty((n, j, 3), np.float32)
    contacts = np.zeros((n, 2), bool)
    starts, stops, names, tags, fpss = [], [], [], [], []
    toes = [skel.index(t) for t in config.toes]
    i = 0
    for clip, rot, pos, mirrored in tqdm(prepared, desc="kinematics + contacts", disable=not progress,
                                         unit="clip"):
        t = rot.shape[0]
        rotations[i:i + t], positions[i:i + t] = rot, pos
        velocities[i:i + t], angular[i:i + t] = _velocities(rot, pos, config.fps)
        _, gpos = quat.fk(rot, pos, skel.parents)
        contacts[i:i + t] = detect_contacts(gpos[:, toes], config.fps, height_threshold=config.contact_height,
                                            speed_threshold=config.contact_speed)
        starts.append(i)
        stops.append(i + t)
        names.append(clip.name + ("_mirror" if mirrored else ""))
        tags.append({**clip.tags, "mirrored": mirrored})
        fpss.append(clip.fps)
        i += t

    db = Database(skeleton=skel, config=config, rotations=rotations, positions=positions,
                  velocities=velocities, angular_velocities=angular, contacts=contacts,
                  features=np.empty((n, 0), np.float32), features_offset=np.empty(0, np.float32),
                  features_scale=np.empty(0, np.float32), valid=np.zeros(n, bool),
                  range_starts=np.array(starts, np.int64), range_stops=np.array(stops, np.int64),
                  clip_names=names, clip_tags=tags, mirror_joints=mirror, source_fps=fpss)
    compute_features(db)
    return db


# =================================================================== features
def raw_features(db: Database) -> np.ndarray:
    """[N, 27] un-normalized matching features of every frame (see FEATURE_GROUPS)."""
    cfg = db.config
    parents = db.skeleton.parents
    feet = [db.skeleton.index(f) for f in cfg.feet]
    hips = db.skeleton.index(cfg.hips)
    n = db.num_frames
    out = np.empty((n, sum(w for _, w in FEATURE_GROUPS)), np.float32)
    chunk = 200_000
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        grot, gpos = quat.fk(db.rotations[a:b], db.positions[a:b], parents)
        # world velocities of joints from local velocities: chain through FK.
        gvel = _global_velocities(db.rotations[a:b], db.positions[a:b], db.velocities[a:b],
                                  db.angular_velocities[a:b], grot, gpos, parents)
        root_rot, root_pos = grot[:, 0], gpos[:, 0]
        c = 0
        for f in feet:
            out[a:b, c:c + 3] = quat.inv_rot(root_rot, gpos[:, f] - root_pos)
            c += 3
        for f in feet:
            out[a:b, c:c + 3] = quat.inv_rot(root_rot, gvel[:, f])
            c += 3
        out[a:b, c:c + 3] = quat.inv_rot(root_rot, gvel[:, hips])
    # trajectory: future root positions and directions, clamped at clip ends
    frames = np.arange(n)
    stop = np.repeat(db.range_stops, db.range_stops - db.range_starts)
    root_pos = db.positions[:, 0]
    root_rot = db.rotations[:, 0]
    fwd = np.array([0.0, 0.0, 1.0], np.float32)
    c = 15
    for k in cfg.trajectory_frames:
        fut = np.minimum(frames + k, stop - 1)
        p = quat.inv_rot(root_rot, root_pos[fut] - root_pos)
        out[:, c:c + 2] = p[:, [0, 2]]
        c += 2
    for k in cfg.trajectory_frames:
        fut = np.minimum(frames + k, stop - 1)
        d = quat.inv_rot(root_rot, quat.rot(root_rot[fut], fwd))
        out[:, c:c + 2] = d[:, [0, 2]]
        c += 2
    return out


def _global_velocities(lrot, lpos, lvel, lavel, grot, gpos, parents):
    """World linear velocities of all joints from local velocities."""
    gvel = np.empty_like(gpos)
    gavel = np.empty_like(gpos)
    gvel[:, 0] = lvel[:, 0]
    gavel[:, 0] = lavel[:, 0]
    for j in range(1, len(parents)):
        p = parents[j]
        gvel[:, j] = (gvel[:, p] + quat.rot(grot[:, p], lvel[:, j])
                      + np.cross(gavel[:, p], quat.rot(grot[:, p], lpos[:, j])))
        gavel[:, j] = quat.rot(grot[:, p], lavel[:, j]) + gavel[:, p]
    return gvel


def compute_features(db: Database) -> None:
    """(Re)compute normalized, weighted features and the matchable mask in place
    (call again after changing db.config weights)."""
    raw = raw_features(db)
    offset = raw.mean(axis=0)
    scale = np.empty_like(offset)
    start = 0
    for name, width in FEATURE_GROUPS:
        sl = slice(start, start + width)
        std = float(raw[:, sl].std(axis=0).mean())
        scale[sl] = max(std, 1e-6) / db.config.weight(name)
        start += width
    db.features_offset = offset.astype(np.float32)
    db.features_scale = scale.astype(np.float32)
    db.features = ((raw - offset) / scale).astype(np.float32)
    horizon = max(db.config.trajectory_frames)
    stop = np.repeat(db.range_stops, db.range_stops - db.range_starts)
    db.valid = (np.arange(db.num_frames) + horizon) < stop


# ============================================================== save and load
_MAGIC = b"ANIMDB\x00\x02"
_MAGIC_V1 = b"ANIMDB\x00\x01"
_PREAMBLE = len(_MAGIC) + 8 + 8           # magic, header length, header CRC-32
_ARRAYS = ("rotations", "positions", "velocities", "angular_velocities", "contacts", "features",
           "features_offset", "features_scale", "valid", "range_starts", "range_stops", "mirror_joints")
# what each array holds: dtype kinds allowed and its shape in terms of N (frames),
# J (joints), F (features), C (clips)
_LAYOUT = {"rotations": ("f", ("N", "J", 4)), "positions": ("f", ("N", "J", 3)),
           "velocities": ("f", ("N", "J", 3)), "angular_velocities": ("f", ("N", "J", 3)),
           "contacts": ("b", ("N", 2)), "features": ("f", ("N", "F")), "features_offset": ("f", ("F",)),
           "features_scale": ("f", ("F",)), "valid": ("b", ("N",)), "range_starts": ("iu", ("C",)),
           "range_stops": ("iu", ("C",)), "mirror_joints": ("iu", ("J",))}
_CRC_CHUNK = 1 << 26


def _crc(a: np.ndarray) -> int:
    """CRC-32 of an array's bytes, read in chunks (a memory map is paged in once)."""
    flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    crc = 0
    for i in range(0, flat.size, _CRC_CHUNK):
        crc = zlib.crc32(flat[i:i + _CRC_CHUNK], crc)
    return crc


def save(db: Database, path: str) -> None:
    """One versioned file: magic, header length and CRC-32, JSON header (with a
    CRC-32 of every array), 64-byte aligned raw arrays. Written to a temporary
    file and renamed, so an interrupted save never leaves a half file behind."""
    arrays = {k: np.ascontiguousarray(getattr(db, k)) for k in _ARRAYS}
    header = {
        "format": FORMAT, "version": FORMAT_VERSION,
        "skeleton": {"names": list(db.skeleton.names), "parents": db.skeleton.parents.tolist(),
                     "offsets": db.skeleton.offsets.tolist(), "signature": db.skeleton.signature()},
        "config": _config_to_json(db.config),
        "clip_names": db.clip_names, "clip_tags": db.clip_tags, "source_fps": db.source_fps,
        "feature_groups": FEATURE_GROUPS, "arrays": {},
    }
    if db.meta:
        header["meta"] = db.meta
    offset = 0
    for k, a in arrays.items():
        offset = (offset + 63) // 64 * 64
        header["arrays"][k] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset, "crc32": _crc(a)}
        offset += a.nbytes
    blob = json.dumps(header).encode()
    data_start = (_PREAMBLE + len(blob) + 63) // 64 * 64
    with atomic_write(path) as f:
        f.write(_MAGIC)
        f.write(len(blob).to_bytes(8, "little"))
        f.write(zlib.crc32(blob).to_bytes(8, "little"))
        f.write(blob)
        for k, a in arrays.items():
            f.seek(data_start + header["arrays"][k]["offset"])
            f.write(a.tobytes())


def is_current(path: str) -> bool:
    """Whether `path` starts like a database of this format version (a cheap
    check of the magic bytes; `load` checks the rest)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


class DatabaseError(ValueError):
    """A database file that cannot be used: '<file>: <problem>'."""


def load(path: str, skeleton: Skeleton | None = None, mmap: bool = True, verify: bool = True) -> Database:
    """Load a database saved by `save`. Arrays are memory-mapped (read-only) by
    default. With `skeleton`, a database built for another hierarchy is an error.

    Every size, offset and shape in the header is checked against the file and
    against each other, and (verify=True) every array against its CRC-32 (the
    whole file is read once: ~0.2 s for 700 MB): a damaged file is a
    DatabaseError naming it, never garbage."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such database file (build one with `anim build-db`)")
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory (expected a database file)", path)

    def bad(problem):
        return DatabaseError(f"{path}: {problem}; rebuild it with `anim build-db`")

    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(len(_MAGIC))
        if magic == _MAGIC_V1:
            raise bad(f"database format v1 (without checksums), this code reads {FORMAT} v{FORMAT_VERSION}")
        if magic != _MAGIC:
            raise DatabaseError(f"{path}: not an anim database file (bad magic bytes)")
        size = int.from_bytes(f.read(8), "little")
        crc = int.from_bytes(f.read(8), "little")
        if not 0 < size <= file_size - _PREAMBLE:
            raise bad(f"corrupted header (header length {size} does not fit a file of {file_size} bytes)")
        blob = f.read(size)
    if zlib.crc32(blob) != crc:
        raise bad("corrupted header (checksum mismatch)")
    try:
        header = json.loads(blob)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad(f"corrupted header ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
        h = header if isinstance(header, dict) else {}
        raise bad(f"database format {h.get('format')} v{h.get('version')}, this code reads {FORMAT} "
                  f"v{FORMAT_VERSION}")
    data_start = (_PREAMBLE + size + 63) // 64 * 64
    try:
        specs = _check_header(header, data_start, file_size)
        sk = header["skeleton"]
        skel = Skeleton(tuple(str(n) for n in sk["names"]), np.array(sk["parents"], np.int64),
                        np.array(sk["offsets"], np.float32))
        config = _config_from_json(header["config"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise bad(f"corrupted header ({type(e).__name__}: {e})") from None
    arrays = {}
    for k, (dtype, shape, start, want_crc) in specs.items():
        n = int(np.prod(shape))
        if mmap and n > 0:
            arrays[k] = np.memmap(path, dtype=dtype, mode="r", offset=start, shape=shape)
        else:
            with open(path, "rb") as f:
                f.seek(start)
                arrays[k] = np.fromfile(f, dtype=dtype, count=n).reshape(shape)
        if verify and _crc(arrays[k]) != want_crc:
            raise bad(f"damaged data (checksum mismatch in array {k!r})")
    try:
        _check_contents(header, skel, config, arrays)
    except ValueError as e:
        raise bad(str(e)) from None
    if skeleton is not None and skeleton.signature() != skel.signature():
        raise DatabaseError(f"{path}: built for skeleton {skel.names} which differs from the expected one "
                            f"{skeleton.names}")
    return Database(skeleton=skel, config=config, clip_names=list(header["clip_names"]),
                    clip_tags=list(header["clip_tags"]), source_fps=list(header["source_fps"]),
                    meta=header.get("meta", {}) if isinstance(header.get("meta", {}), dict) else {}, **arrays)


def _check_header(header: dict, data_start: int, file_size: int) -> dict:
    """{array: (dtype, shape, file offset, crc)} after checking every spec:
    known dtype kind, sizes that fit the file, shapes that agree."""
    specs = header["arrays"]
    if set(specs) != set(_ARRAYS):
        raise ValueError(f"arrays {sorted(specs)} instead of {sorted(_ARRAYS)}")
    dims = {"J": len(header["skeleton"]["names"])}
    out = {}
    for k in _ARRAYS:
        spec = specs[k]
        kinds, layout = _LAYOUT[k]
        dtype = np.dtype(str(spec["dtype"]))
        if dtype.kind not in kinds or dtype.hasobject or dtype.itemsize > 8:
            raise ValueError(f"array {k!r} has dtype {dtype}")
        shape = spec["shape"]
        if not isinstance(shape, list) or len(shape) != len(layout) or \
                not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in shape):
            raise ValueError(f"array {k!r} has shape {shape!r}")
        for d, want in zip(shape, layout):
            if isinstance(want, int):
                if d != want:
                    raise ValueError(f"array {k!r} has shape {shape}")
            elif dims.setdefault(want, d) != d:
                raise ValueError(f"array {k!r} has shape {shape}, which disagrees with the others "
                                 f"({want} = {dims[want]})")
        off = spec["offset"]
        if not isinstance(off, int) or isinstance(off, bool) or off < 0:
            raise ValueError(f"array {k!r} has offset {off!r}")
        start = data_start + off
        nbytes = dtype.itemsize * int(np.prod(shape, dtype=object))
        if start + nbytes > file_size:
            raise ValueError(f"truncated (array {k!r} runs past the end of the file)")
        crc = spec["crc32"]
        if not isinstance(crc, int):
            raise ValueError(f"array {k!r} has no checksum")
        out[k] = (dtype, tuple(shape), start, crc)
    return out


def _check_contents(header: dict, skel: Skeleton, config: DatabaseConfig, arrays: dict) -> None:
    """What the arrays and the header must agree on for the engine to index safely."""
    n, j = arrays["rotations"].shape[:2]
    c = arrays["range_starts"].shape[0]
    if j != skel.num_joints:
        raise ValueError(f"arrays hold {j} joints, the skeleton {skel.num_joints}")
    for key in ("clip_names", "clip_tags", "source_fps"):
        if not isinstance(header[key], list) or len(header[key]) != c:
            raise ValueError(f"corrupted header ({key} does not list the {c} clips)")
    if not all(isinstance(t, dict) for t in header["clip_tags"]):
        raise ValueError("corrupted header (clip_tags)")
    starts, stops = np.asarray(arrays["range_starts"]), np.asarray(arrays["range_stops"])
    if c == 0 or starts[0] != 0 or stops[-1] != n or (starts[1:] != stops[:-1]).any() or (stops <= starts).any():
        raise ValueError("corrupted clip ranges (they must tile the frames in order)")
    mirror = np.asarray(arrays["mirror_joints"])
    if ((mirror < 0) | (mirror >= j)).any():
        raise ValueError("corrupted mirror table (joint index out of range)")
    scale = np.asarray(arrays["features_scale"])
    if not np.isfinite(arrays["features_offset"]).all() or np.isnan(scale).any() or (scale <= 0).any():
        raise ValueError("corrupted feature normalization (NaN or infinite offset, NaN or non-positive scale)")
    if not (isinstance(config.fps, (int, float)) and math.isfinite(config.fps) and 1 <= config.fps <= 1000):
        raise ValueError(f"corrupted config (fps {config.fps!r})")
    tf = config.trajectory_frames
    if not tf or not all(isinstance(k, int) and 0 < k < 100_000 for k in tf):
        raise ValueError(f"corrupted config (trajectory_frames {tf!r})")
    for name in (config.hips, *config.feet, *config.toes):
        if name not in skel.names:
            raise ValueError(f"corrupted config (joint {name!r} not in the skeleton)")
    if not all(isinstance(x, (int, float)) and math.isfinite(x) and x > 0 for x in header["source_fps"]):
        raise ValueError("corrupted header (source_fps)")


def _config_to_json(cfg: DatabaseConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def _config_from_json(d: dict) -> DatabaseConfig:
    def tup(x):
        return tuple(tup(v) for v in x) if isinstance(x, list) else x
    return DatabaseConfig(**{k: tup(v) for k, v in d.items() if k in DatabaseConfig.__dataclass_fields__})
