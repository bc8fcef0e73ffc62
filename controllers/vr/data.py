"""Training and evaluation data of the sparse-VR predictor: per-frame device
poses and full poses from the mocap corpus, a fixed split by clip, and the
window features of AGRoL (Du et al., "Avatars Grow Legs", CVPR 2023).

Devices. A head-mounted display and two hand controllers are simulated by the
'Head', 'Hand_L' and 'Hand_R' joints of the corpus skeleton (their world
rotation and position, as AGRoL does on AMASS). A live device pose reaches the
joint convention through a fixed per-device rotation offset, measured from the
data (`calibration`): q_joint = q_device * offset, where a device pose is in
the engine's device convention (forward +Z, up +Y, left +X; identity = held
level, pointing along world +Z).

Canonical (heading) frame. Every window is expressed in the heading frame of
the head at the window's LAST (current) frame: origin = the head's ground
projection (x, 0, z); rotation = the yaw about +Y of the head's forward
direction (the head-local forward axis `head_forward`, measured from the data,
rotated to the world and projected on the ground). Heights stay absolute (the
floor is y = 0). So where the user stands and where they face do not change
the model input, nor its output.

Sparse signal, per frame and device (18), head then left then right hand (54):
    rotation in the canonical frame, 6D (first two matrix columns)      6
    angular velocity: the frame-to-frame rotation R[t-1]^T R[t], 6D      6
        (AGRoL's "rotational velocity"; frame invariant by itself)
    position in the canonical frame                                     3
    linear velocity (p[t] - p[t-1]) * 60 in the canonical frame         3
Velocities are backward differences (causal: the online predictor only has the
past); the frame before a clip's first is the first itself (zero velocity), as
the live history buffer starts.

Target, per frame (126): the hips' rotation in the canonical frame (6D), then
the local rotations (6D) of the 20 joints below the hips. The hips' position
is not predicted: as in AGRoL it is placed so that forward kinematics of the
predicted rotations puts the head joint exactly at the tracked head
(`poses_from_features`).

Windows. A window ending at frame e holds frames e-W+1..e (W = `window`,
default 40 = 0.67 s) plus frame e-W for the first velocity; frames before the
clip start repeat its first frame. Every frame of a clip ends a window.

Split (`controllers/vr/split.json`, `ensure_split`): by original clip, never
by frame: within each (dataset, content) group, clips sorted by id are
shuffled with a seeded generator and cut 80/10/10 into train/val/test.
Mirrored copies (DatabaseConfig(mirror=True)) join the training part only: a
val/test clip's mirror is dropped, so it can never leak into training.

Memory/time: the whole corpus (both Bandai Namco datasets, all contents and
styles: 1324 clips, 106 min, 213 min with mirrors) is used; `VRDataConfig.tags`
and `max_clips` limit it (tests). Built data is cached in out/vr/cache/
(one .npz per selection, written atomically; 286 MB for the corpus).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from anim import quat
from anim.fileio import atomic_write

FORMAT = "anim-vr-data"
FORMAT_VERSION = 1
SPLIT_FORMAT = "anim-vr-split"
FPS = 60.0
DEVICES = ("Head", "Hand_L", "Hand_R")
DEVICE_KEYS = ("head", "left_hand", "right_hand")       # ControlInput fields, same order
SPARSE_PER_DEVICE = 18
SPARSE_DIM = SPARSE_PER_DEVICE * len(DEVICES)           # 54
HERE = Path(__file__).resolve().parent
SPLIT_PATH = HERE / "split.json"
DEFAULT_CACHE = Path("out") / "vr" / "cache"

# Joint groups of the metrics (AGRoL's SMPL indices mapped onto this skeleton).
LOWER_BODY = ("Hips", "UpperLeg_L", "UpperLeg_R", "LowerLeg_L", "LowerLeg_R", "Foot_L", "Foot_R",
              "Toes_L", "Toes_R")
HANDS = ("Hand_L", "Hand_R")
FEET = ("Toes_L", "Toes_R")      # the joints foot contacts are detected on (DatabaseConfig.toes)
# (the names above are the Bandai Namco rig's; any skeleton's come from its joint roles: `joint_groups`)


def joint_groups(skeleton, roles=None) -> dict:
    """The joints the VR pipeline reads, by role (anim.roles), for any skeleton:
    devices (head, left hand, right hand), hips, lower_body (hips, upper and
    lower legs, feet, toes), hands, feet (the contact joints: toes). On the
    Bandai Namco rig these are DEVICES, LOWER_BODY, HANDS and FEET. roles: the
    skeleton's Roles (e.g. a database's `db.roles()`, which a joint map made);
    remembered for the skeleton, found from its names when never given."""
    key = skeleton.signature()
    hit = _GROUPS.get(key)
    if hit is None or roles is not None:
        from anim.roles import RoleError, find_roles
        try:
            r = roles if roles is not None else find_roles(skeleton)
        except RoleError:
            if not set(DEVICES + LOWER_BODY).issubset(skeleton.names):
                raise
            hit = {"devices": DEVICES, "hips": LOWER_BODY[0], "lower_body": LOWER_BODY, "hands": HANDS,
                   "feet": FEET}            # a Bandai-named skeleton without arms (a test's): its names
            _GROUPS[key] = hit
            return hit
        lower = (r["hips"],) + tuple(n for role in ("upper_leg", "lower_leg", "foot", "toe") for n in r.pair(role))
        hit = {"devices": (r["head"], r["left_hand"], r["right_hand"]), "hips": r["hips"], "lower_body": lower,
               "hands": r.pair("hand"), "feet": r.pair("toe")}
        _GROUPS[key] = hit
    return hit


_GROUPS: dict = {}


def calibration_offsets(calibration: dict) -> np.ndarray:
    """[3, 4] device -> joint offsets of a calibration (keyed by the device joints'
    names, in device order: head, left hand, right hand)."""
    if all(d in calibration for d in DEVICES):
        return np.stack([np.asarray(calibration[d], np.float32) for d in DEVICES])
    return np.stack([np.asarray(v, np.float32) for v in list(calibration.values())[:3]])


@dataclass(frozen=True)
class VRDataConfig:
    """Which clips, how windows are cut.

    window:      frames per window (60 Hz).
    datasets:    dataset names (() = every dataset found by mocap_data.datasets()).
    tags:        file-name tag filter as (key, value-or-tuple) pairs (() = all clips).
    max_clips:   keep at most this many original clips (0 = all): every k-th in
                 sorted order, a documented subsample for quick runs.
    split_path:  the split file (written by `ensure_split` when missing).
    split_seed, split_fractions: how a missing split file is made.
    cache_dir:   where built data is cached ('' = no cache).
    """

    window: int = 40
    datasets: tuple = ()
    tags: tuple = ()
    max_clips: int = 0
    split_path: str = str(SPLIT_PATH)
    split_seed: int = 0
    split_fractions: tuple = (0.8, 0.1, 0.1)
    cache_dir: str = str(DEFAULT_CACHE)


# =================================================================== split
def clip_id(tags: dict, name: str) -> str:
    """'dataset/file-stem' of an original (unmirrored) clip."""
    stem = name[:-len("_mirror")] if name.endswith("_mirror") else name
    return f"{tags.get('dataset', '?')}/{stem}"


def make_split(ids_and_tags: list, seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> dict:
    """{'train': [...], 'val': [...], 'test': [...]} over clip ids, stratified by
    (dataset, content): each group sorted, shuffled by a generator seeded with
    `seed` and the group's name, cut by `fractions` (val and test get at least
    one clip of a group of 3 or more)."""
    groups: dict = {}
    for cid, tags in ids_and_tags:
        groups.setdefault((tags.get("dataset", "?"), tags.get("content", "?")), []).append(cid)
    out = {"train": [], "val": [], "test": []}
    for key in sorted(groups):
        ids = sorted(set(groups[key]))
        h = int.from_bytes(hashlib.sha1(f"{seed}|{key[0]}|{key[1]}".encode()).digest()[:8], "little")
        rng = np.random.default_rng(h)
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n = len(ids)
        n_test = int(round(fractions[2] * n))
        n_val = int(round(fractions[1] * n))
        if n >= 3:
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        out["test"] += ids[:n_test]
        out["val"] += ids[n_test:n_test + n_val]
        out["train"] += ids[n_test + n_val:]
    return {k: sorted(v) for k, v in out.items()}


def write_split(split: dict, path, seed: int, fractions) -> None:
    doc = {"format": SPLIT_FORMAT, "version": 1, "seed": seed, "fractions": list(fractions),
           "rule": "by original clip; stratified by (dataset, content); mirrored copies of train clips "
                   "augment train only",
           "counts": {k: len(v) for k, v in split.items()}, **split}
    with atomic_write(path, "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")


def read_split(path) -> dict:
    path = Path(path)
    doc = json.loads(path.read_text())
    if doc.get("format") != SPLIT_FORMAT or doc.get("version") != 1:
        raise ValueError(f"{path}: not an {SPLIT_FORMAT} v1 file")
    return {k: list(doc[k]) for k in ("train", "val", "test")}


def ensure_split(path=SPLIT_PATH, seed: int = 0, fractions=(0.8, 0.1, 0.1), progress: bool = False) -> dict:
    """The split file's contents; made from the whole corpus (both datasets, all
    files, names only: nothing is parsed) and written when missing."""
    path = Path(path)
    if path.exists():
        return read_split(path)
    import mocap_data
    sets = mocap_data.datasets()
    if not sets:
        raise FileNotFoundError(f"no mocap datasets under {mocap_data.mocap_root()}: cannot make {path}")
    items = [(f"{t['dataset']}/{p.stem}", t) for _, p, t in mocap_data.select_files(sets)]
    split = make_split(items, seed, fractions)
    write_split(split, path, seed, fractions)
    return split


# =================================================================== data
@dataclass
class VRData:
    """Per-frame arrays over the selected clips (N frames; world space, Y up).

    dev_q [N,3,4], dev_p [N,3,3]: world rotation / position of Head, Hand_L, Hand_R.
    hips_q [N,4], hips_p [N,3]:   world rotation / position of the hips.
    local_q [N,20,4]:             local rotations of the joints below the hips.
    contacts [N,2]:               ground-truth foot contacts (toes), from the database.
    starts/stops [C]:             clip frame ranges; clip_ids, clip_split, clip_mirrored [C].
    """

    skeleton: object
    config: VRDataConfig
    dev_q: np.ndarray
    dev_p: np.ndarray
    hips_q: np.ndarray
    hips_p: np.ndarray
    local_q: np.ndarray
    contacts: np.ndarray
    starts: np.ndarray
    stops: np.ndarray
    clip_ids: list = field(default_factory=list)
    clip_names: list = field(default_factory=list)
    clip_split: list = field(default_factory=list)
    clip_mirrored: list = field(default_factory=list)
    clip_tags: list = field(default_factory=list)
    calibration: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.hips_q)

    def clips(self, split: str, mirrored: bool | None = None) -> list[int]:
        return [c for c, s in enumerate(self.clip_split)
                if s == split and (mirrored is None or self.clip_mirrored[c] == mirrored)]

    def frames(self, split: str) -> np.ndarray:
        """Indices of all frames of a split's clips."""
        cs = self.clips(split)
        if not cs:
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(self.starts[c], self.stops[c]) for c in cs])

    def clip_start_of(self) -> np.ndarray:
        """[N] first frame of each frame's clip."""
        return np.repeat(self.starts, self.stops - self.starts)

    def window_indices(self, ends: np.ndarray, window: int | None = None) -> np.ndarray:
        """[B, W+1] frame indices of the windows ending at `ends` (frame e-W first,
        clamped to the clip's first frame)."""
        w = window or self.config.window
        ends = np.asarray(ends, np.int64)
        start = self._clip_start[ends]
        idx = ends[:, None] + np.arange(-w, 1)[None, :]
        return np.maximum(idx, start[:, None])

    def window_samples(self, ends: np.ndarray, window: int | None, speed: np.ndarray):
        """Where the W+1 frames of windows ending at `ends` fall when each is
        played `speed` [B] times as fast: (frame below [B, W+1], frame above,
        share of the one above), `speed` frames apart back from the end
        (which stays a whole frame), clamped to the clip's first frame."""
        w = window or self.config.window
        ends = np.asarray(ends, np.int64)
        start = self._clip_start[ends]
        t = ends[:, None] + np.arange(-w, 1)[None, :] * np.asarray(speed, np.float64).reshape(-1, 1)
        t = np.maximum(t, start[:, None])
        i0 = np.floor(t).astype(np.int64)
        return i0, np.minimum(i0 + 1, ends[:, None]), t - i0

    def __post_init__(self):
        self._clip_start = self.clip_start_of()

    def device_window(self, idx: np.ndarray):
        """Device rotations (quaternions) and positions of frame indices [..., W+1]."""
        return self.dev_q[idx], self.dev_p[idx]

    def joint_names_below_hips(self) -> tuple:
        return self.skeleton.names[2:]


def _cache_key(clips, cfg: VRDataConfig, db_cfg) -> str:
    h = hashlib.sha1()
    h.update(f"{FORMAT}:{FORMAT_VERSION}|{cfg.split_path}|{json.dumps(asdict(db_cfg), sort_keys=True)}".encode())
    for c in clips:
        h.update(f"|{c.source}:{c.num_frames}:{c.fps}".encode())
    h.update(Path(cfg.split_path).read_bytes() if Path(cfg.split_path).exists() else b"")
    return h.hexdigest()[:16]


def _select_clips(cfg: VRDataConfig, progress: bool):
    import mocap_data
    sets = mocap_data.datasets()
    if cfg.datasets:
        sets = [d for d in sets if d.name in cfg.datasets]
    if not sets:
        raise FileNotFoundError(f"no mocap datasets found under {mocap_data.mocap_root()}")
    tags = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.tags} or None
    clips = mocap_data.load_clips(sets, tags=tags, progress=progress)
    clips.sort(key=lambda c: (c.tags.get("dataset", ""), c.name))
    if cfg.max_clips and len(clips) > cfg.max_clips:
        step = len(clips) / cfg.max_clips
        clips = [clips[int(i * step)] for i in range(cfg.max_clips)]
    return clips


def from_any_database(db, seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> VRData:
    """VRData of any mirrored database (e.g. `anim build-db --data DIR` on another
    rig): its original clips split by `make_split`, the devices at the head and
    hand roles of its skeleton (`joint_groups`)."""
    ids = [(clip_id(t, n), t) for n, t in zip(db.clip_names, db.clip_tags) if not t.get("mirrored")]
    if not ids:
        raise ValueError("vr data: the database has no clips")
    split = make_split(ids, seed, fractions)
    which = {cid: s for s, cids in split.items() for cid in cids}
    joint_groups(db.skeleton, db.roles())
    return from_database(db, which)


def build(cfg: VRDataConfig = VRDataConfig(), progress: bool = True) -> VRData:
    """Load the clips, build a mirrored 60 Hz database (anim.database), keep
    train clips with their mirrors and val/test clips without, and extract the
    per-frame arrays. Cached under cfg.cache_dir."""
    from anim import database

    split = ensure_split(cfg.split_path, cfg.split_seed, cfg.split_fractions)
    which = {cid: s for s, ids in split.items() for cid in ids}
    clips = _select_clips(cfg, progress)
    db_cfg = database.DatabaseConfig(mirror=True)
    cache = None
    if cfg.cache_dir:
        cache = Path(cfg.cache_dir) / f"vrdata-{_cache_key(clips, cfg, db_cfg)}.npz"
        if cache.exists():
            try:
                return _load_cache(cache, cfg)
            except Exception:
                pass
    unknown = [c for c in clips if clip_id(c.tags, c.name) not in which]
    if unknown:
        import warnings
        warnings.warn(f"{len(unknown)} clips are not in {cfg.split_path} and are left out "
                      f"(e.g. {clip_id(unknown[0].tags, unknown[0].name)})")
        clips = [c for c in clips if clip_id(c.tags, c.name) in which]
    if not clips:
        raise ValueError("vr data: no clips selected")
    db = database.build_database(clips, db_cfg, progress=progress)
    data = from_database(db, which)
    data.config = cfg
    if cache is not None:
        _save_cache(cache, data)
    return data


def from_database(db, which: dict, frames_per_chunk: int = 100_000) -> VRData:
    """Extract VRData from a mirrored database; `which` maps clip id -> split."""
    skel = db.skeleton
    keep = []
    for c, (name, tags) in enumerate(zip(db.clip_names, db.clip_tags)):
        s = which.get(clip_id(tags, name))
        if s is None or (tags.get("mirrored") and s != "train"):
            continue
        keep.append((c, s))
    lengths = np.array([db.range_stops[c] - db.range_starts[c] for c, _ in keep], np.int64)
    n = int(lengths.sum())
    j = skel.num_joints
    devices = joint_groups(skel)["devices"]
    dev = [skel.index(d) for d in devices]
    hips = skel.index(db.config.hips)
    if hips != 1 or list(skel.parents[2:]).count(0):
        raise ValueError("vr data: expects joint 0 = simulation bone and joint 1 = hips (the only child)")
    out = dict(dev_q=np.empty((n, 3, 4), np.float32), dev_p=np.empty((n, 3, 3), np.float32),
               hips_q=np.empty((n, 4), np.float32), hips_p=np.empty((n, 3), np.float32),
               local_q=np.empty((n, j - 2, 4), np.float32), contacts=np.empty((n, 2), bool))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    sim_rel = {d: [] for d in devices}
    i = 0
    for (c, _), t in zip(keep, lengths):
        a = int(db.range_starts[c])
        for s in range(0, t, frames_per_chunk):
            e = min(t, s + frames_per_chunk)
            rot = np.asarray(db.rotations[a + s:a + e])
            pos = np.asarray(db.positions[a + s:a + e])
            grot, gpos = quat.fk(rot, pos, skel.parents)
            sl = slice(i + s, i + e)
            out["dev_q"][sl] = grot[:, dev]
            out["dev_p"][sl] = gpos[:, dev]
            out["hips_q"][sl] = grot[:, hips]
            out["hips_p"][sl] = gpos[:, hips]
            out["local_q"][sl] = rot[:, 2:]
            out["contacts"][sl] = np.asarray(db.contacts[a + s:a + e])
            for k, d in enumerate(dev):   # device orientation relative to the character's facing
                sim_rel[devices[k]].append(quat.mul(quat.inv(grot[::10, 0]), grot[::10, d]))
        i += t
    calibration = {}
    for d in devices:
        m = _mean_quat(np.concatenate(sim_rel[d]).astype(np.float64))
        calibration[d] = (m * np.sign(m[0] if m[0] != 0 else 1)).astype(np.float32).tolist()
    return VRData(skeleton=skel, config=VRDataConfig(), starts=starts, stops=starts + lengths,
                  clip_ids=[clip_id(db.clip_tags[c], db.clip_names[c]) for c, _ in keep],
                  clip_names=[db.clip_names[c] for c, _ in keep], clip_split=[s for _, s in keep],
                  clip_mirrored=[bool(db.clip_tags[c].get("mirrored")) for c, _ in keep],
                  clip_tags=[dict(db.clip_tags[c]) for c, _ in keep], calibration=calibration, **out)


def _mean_quat(q: np.ndarray) -> np.ndarray:
    m = np.einsum("ni,nj->ij", q, q)
    return np.linalg.eigh(m)[1][:, -1]


_ARRAYS = ("dev_q", "dev_p", "hips_q", "hips_p", "local_q", "contacts", "starts", "stops")


def _save_cache(path: Path, data: VRData):
    from anim.skeleton import Skeleton  # noqa: F401
    meta = {"format": FORMAT, "version": FORMAT_VERSION,
            "skeleton": {"names": list(data.skeleton.names), "parents": data.skeleton.parents.tolist(),
                         "offsets": data.skeleton.offsets.tolist()},
            "clip_ids": data.clip_ids, "clip_names": data.clip_names, "clip_split": data.clip_split,
            "clip_mirrored": data.clip_mirrored, "clip_tags": data.clip_tags, "calibration": data.calibration}
    with atomic_write(path) as f:
        np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                 **{k: getattr(data, k) for k in _ARRAYS})


def _load_cache(path: Path, cfg: VRDataConfig) -> VRData:
    from anim.skeleton import Skeleton
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes())
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise ValueError("outdated cache")
        arrays = {k: z[k] for k in _ARRAYS}
    sk = meta["skeleton"]
    skel = Skeleton(tuple(sk["names"]), np.array(sk["parents"]), np.array(sk["offsets"], np.float32))
    return VRData(skeleton=skel, config=cfg, clip_ids=meta["clip_ids"], clip_names=meta["clip_names"],
                  clip_split=meta["clip_split"], clip_mirrored=meta["clip_mirrored"],
                  clip_tags=meta["clip_tags"], calibration=meta["calibration"], **arrays)


# =================================================================== pack
PACK_FORMAT = "anim-vr-pack"
PACK_VERSION = 1
_Q_SCALE = 16384          # rotation components quantized to 1/16384 (< 0.004 degrees)
_P_SCALE = 10000          # hips positions to 0.1 mm (metres in the corpus' units / 1e4)


def pack(data: VRData, path, splits=("train", "val"), progress: bool = True, tolerance: float = 1e-3) -> dict:
    """Write the clips of `splits` as one portable file (to train on a machine
    without the mocap corpus, e.g. a remote GPU: `train --data PATH`).

    Stored: the hips' world rotation and position and the local rotations
    below the hips, quantized (1/16384 per quaternion component, 0.1 mm),
    differenced along each clip's frames and LZMA-compressed; foot contacts;
    the skeleton, clip table and calibration. Device poses are not stored:
    `unpack` recomputes them by forward kinematics (checked here on every
    frame to reproduce the stored ones within `tolerance`, else ValueError; a rig
    that is not quite left/right symmetric, such as Character Creator's, has
    mirrored bone offsets a millimetre or two off its own, which FK from the
    stored offsets does not see: pack such data with tolerance 5e-3).
    Returns {"path", "frames", "clips", "bytes", "max_device_error"}."""
    import lzma
    keep = [c for c, s in enumerate(data.clip_split) if s in splits]
    if not keep:
        raise ValueError(f"vr pack: no clips in splits {splits}")
    sel = np.concatenate([np.arange(data.starts[c], data.stops[c]) for c in keep])
    lengths = np.array([data.stops[c] - data.starts[c] for c in keep], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    q = np.concatenate([data.hips_q[sel][:, None], data.local_q[sel]], 1).astype(np.float64)
    # continuous signs along each clip (q and -q are one rotation): small deltas
    s = np.ones(q.shape[:2])
    s[1:] = np.where((q[1:] * q[:-1]).sum(-1) < 0, -1.0, 1.0)
    s[starts] = 1
    c = np.cumprod(s, axis=0)
    q *= (c * np.repeat(c[starts], lengths, axis=0))[..., None]
    qi = np.round(q * _Q_SCALE).astype(np.int16)
    pi = np.round(data.hips_p[sel].astype(np.float64) * _P_SCALE).astype(np.int32)
    # check that forward kinematics reproduces the devices from what is stored
    unq = _dequantize_rotations(qi)
    dq, dp = _devices_by_fk(data.skeleton, unq[:, 0], pi.astype(np.float32) / _P_SCALE, unq[:, 1:])
    err = max(float(np.abs(np.abs((dq * data.dev_q[sel]).sum(-1)) - 1).max()),
              float(np.abs(dp - data.dev_p[sel]).max()))
    if err > tolerance:
        raise ValueError(f"vr pack: forward kinematics does not reproduce the device poses (error {err:.2g})")

    def delta(a):
        d = a.astype(np.int64).copy()
        d[1:] -= a[:-1]
        d[starts] = a[starts]                            # each clip starts absolute
        return d

    qd, pd = delta(qi), delta(pi)
    if np.abs(qd).max() > 32767:
        raise ValueError("vr pack: a rotation jumps too far between two frames to pack")
    blob = lzma.compress(qd.astype(np.int16).tobytes() + pd.astype(np.int32).tobytes(), preset=6)
    meta = {"format": PACK_FORMAT, "version": PACK_VERSION, "frames": int(len(sel)),
            "joints": int(qi.shape[1]), "q_scale": _Q_SCALE, "p_scale": _P_SCALE, "splits": list(splits),
            "skeleton": {"names": list(data.skeleton.names), "parents": data.skeleton.parents.tolist(),
                         "offsets": data.skeleton.offsets.tolist()},
            "clip_ids": [data.clip_ids[c] for c in keep], "clip_names": [data.clip_names[c] for c in keep],
            "clip_split": [data.clip_split[c] for c in keep],
            "clip_mirrored": [data.clip_mirrored[c] for c in keep],
            "clip_tags": [data.clip_tags[c] for c in keep], "calibration": data.calibration}
    with atomic_write(Path(path)) as f:
        np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                 blob=np.frombuffer(blob, np.uint8), contacts=np.packbits(data.contacts[sel]),
                 lengths=lengths)
    return {"path": str(path), "frames": int(len(sel)), "clips": len(keep), "bytes": Path(path).stat().st_size,
            "max_device_error": err}


def _dequantize_rotations(qi: np.ndarray, scale: float = _Q_SCALE) -> np.ndarray:
    q = qi.astype(np.float32) / scale
    return (q / np.linalg.norm(q, axis=-1, keepdims=True)).astype(np.float32)


def _devices_by_fk(skel, hips_q, hips_p, local_q, chunk: int = 100_000):
    from anim import quat
    n, j = len(hips_q), skel.num_joints
    dev = [skel.index(d) for d in joint_groups(skel)["devices"]]
    dq, dp = np.empty((n, 3, 4), np.float32), np.empty((n, 3, 3), np.float32)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        rot = np.zeros((b - a, j, 4), np.float32)
        rot[:, 0, 0] = 1
        rot[:, 1], rot[:, 2:] = hips_q[a:b], local_q[a:b]
        pos = np.broadcast_to(skel.offsets.astype(np.float32), (b - a, j, 3)).copy()
        pos[:, 0] = 0
        pos[:, 1] = hips_p[a:b]
        g, p = quat.fk(rot, pos, skel.parents)
        dq[a:b], dp[a:b] = g[:, dev], p[:, dev]
    return dq, dp


def unpack(path, cfg: VRDataConfig | None = None) -> VRData:
    """Read a file written by `pack` (clear errors for a missing, truncated or
    foreign file)."""
    import lzma
    import zipfile
    from anim.skeleton import Skeleton
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such vr data pack (write one with `python -m controllers.vr.data "
                                f"--pack {path}`)")
    try:
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes())
            if meta.get("format") != PACK_FORMAT or meta.get("version") != PACK_VERSION:
                raise ValueError(f"not an {PACK_FORMAT} v{PACK_VERSION} file")
            raw = lzma.decompress(z["blob"].tobytes())
            contacts_bits, lengths = z["contacts"], z["lengths"]
    except (ValueError, KeyError, OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: unreadable vr data pack ({e})") from None
    n, j = meta["frames"], meta["joints"]
    if len(raw) != n * j * 4 * 2 + n * 3 * 4 or int(lengths.sum()) != n:
        raise ValueError(f"{path}: vr data pack is truncated or inconsistent ({len(raw)} bytes for {n} frames)")
    qd = np.frombuffer(raw[:n * j * 8], np.int16).reshape(n, j, 4)
    pd = np.frombuffer(raw[n * j * 8:], np.int32).reshape(n, 3)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)

    def undelta(d):
        c = np.cumsum(d.astype(np.int64), axis=0)
        base = np.concatenate([np.zeros((1,) + c.shape[1:], np.int64), c[:-1]])[starts]
        return c - np.repeat(base, lengths, axis=0)

    q = _dequantize_rotations(undelta(qd), meta["q_scale"])
    hips_p = (undelta(pd) / meta["p_scale"]).astype(np.float32)
    sk = meta["skeleton"]
    skel = Skeleton(tuple(sk["names"]), np.array(sk["parents"]), np.array(sk["offsets"], np.float32))
    dev_q, dev_p = _devices_by_fk(skel, q[:, 0], hips_p, q[:, 1:])
    contacts = np.unpackbits(contacts_bits)[:n * 2].reshape(n, 2).astype(bool)
    return VRData(skeleton=skel, config=cfg or VRDataConfig(), dev_q=dev_q, dev_p=dev_p, hips_q=q[:, 0],
                  hips_p=hips_p, local_q=np.ascontiguousarray(q[:, 1:]), contacts=contacts, starts=starts,
                  stops=starts + lengths, clip_ids=meta["clip_ids"], clip_names=meta["clip_names"],
                  clip_split=meta["clip_split"], clip_mirrored=meta["clip_mirrored"], clip_tags=meta["clip_tags"],
                  calibration=meta["calibration"])


# =================================================================== features
def head_forward_axis(calibration: dict) -> np.ndarray:
    """The head-local axis that points forward when the head is in its mean pose."""
    off = calibration_offsets(calibration)[0].astype(np.float64)
    return quat.inv_rot(off, np.array([0.0, 0.0, 1.0])).astype(np.float32)


def yaw_matrix(theta: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation by theta about +Y."""
    c, s = np.cos(theta), np.sin(theta)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def canonical_frame(head_q: np.ndarray, head_p: np.ndarray, head_forward: np.ndarray):
    """Heading frame of the head: (yaw angle [...], origin [..., 3]) from the
    head's world rotation [..., 4] and position [..., 3]."""
    f = quat.rot(head_q, np.broadcast_to(head_forward, head_q.shape[:-1] + (3,)))
    theta = np.arctan2(f[..., 0], f[..., 2])
    origin = np.stack([head_p[..., 0], np.zeros_like(head_p[..., 0]), head_p[..., 2]], -1)
    return theta.astype(np.float32), origin.astype(np.float32)


def _six(m: np.ndarray) -> np.ndarray:
    """6D (first two columns) of rotation matrices [..., 3, 3] -> [..., 6]."""
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def sparse_features(dev_q: np.ndarray, dev_p: np.ndarray, head_forward: np.ndarray, fps: float = FPS):
    """The model input of windows.

    dev_q [..., W+1, 3, 4], dev_p [..., W+1, 3, 3]: device world rotations and
    positions, oldest first (the first frame only serves the velocities).
    Returns (features [..., W, 54], theta [...], origin [..., 3]): the sparse
    signal in the heading frame of the head at the last frame, and that frame
    (world = Ry(theta) * canonical + origin)."""
    theta, origin = canonical_frame(dev_q[..., -1, 0, :], dev_p[..., -1, 0, :], head_forward)
    ct = np.swapaxes(yaw_matrix(theta), -1, -2)[..., None, None, :, :]   # C^T [..., 1, 1, 3, 3]
    r = quat.to_matrix(dev_q)                                           # [..., W+1, 3, 3, 3]
    rc = ct @ r
    dq = np.swapaxes(r[..., :-1, :, :, :], -1, -2) @ r[..., 1:, :, :, :]
    p = (ct @ (dev_p - origin[..., None, None, :])[..., None])[..., 0]
    v = (p[..., 1:, :, :] - p[..., :-1, :, :]) * fps
    feat = np.concatenate([_six(rc[..., 1:, :, :, :]), _six(dq), p[..., 1:, :, :], v], axis=-1)
    return feat.reshape(feat.shape[:-2] + (SPARSE_DIM,)).astype(np.float32), theta, origin


def target_features(hips_q: np.ndarray, local_q: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """[..., W, 126]: hips rotation in the canonical frame of `theta` [...] and
    the local rotations below the hips, 6D. hips_q [..., W, 4], local_q [..., W, 20, 4]."""
    ct = np.swapaxes(yaw_matrix(theta), -1, -2)[..., None, :, :]
    h = _six(ct @ quat.to_matrix(hips_q))
    loc = _six(quat.to_matrix(local_q))
    return np.concatenate([h[..., None, :], loc], axis=-2).reshape(h.shape[:-1] + (-1,)).astype(np.float32)


def windows(data: VRData, ends: np.ndarray, head_forward: np.ndarray, window: int | None = None,
            with_target: bool = True, speed: np.ndarray | None = None):
    """(sparse [B, W, 54], target [B, W, 126] or None, theta [B], origin [B, 3]) of
    the windows ending at frames `ends`. speed [B] (time-warp augmentation):
    each window's motion played `speed` times as fast, its frames sampled
    `speed` data frames apart back from the end (VRData.window_samples),
    rotations nlerped (as good as slerp between neighbouring frames) and
    positions lerped, so its velocities scale by `speed`; None: the data's
    own frames."""
    w = window or data.config.window
    if speed is None:
        idx = data.window_indices(ends, w)
        dev_q, dev_p = data.dev_q[idx], data.dev_p[idx]
        hips_q, local_q = (data.hips_q[idx[:, 1:]], data.local_q[idx[:, 1:]]) if with_target else (None, None)
    else:
        i0, i1, a = data.window_samples(ends, w, speed)
        a = a.astype(np.float32)
        dev_q = quat.nlerp(data.dev_q[i0], data.dev_q[i1], a[..., None])
        dev_p = data.dev_p[i0] + (data.dev_p[i1] - data.dev_p[i0]) * a[..., None, None]
        if with_target:
            s = np.s_[:, 1:]
            hips_q = quat.nlerp(data.hips_q[i0[s]], data.hips_q[i1[s]], a[s])
            local_q = quat.nlerp(data.local_q[i0[s]], data.local_q[i1[s]], a[s][..., None])
    x, theta, origin = sparse_features(dev_q, dev_p, head_forward)
    y = target_features(hips_q, local_q, theta) if with_target else None
    return x, y, theta, origin


def poses_from_features(y: np.ndarray, theta: np.ndarray, head_p: np.ndarray, skeleton):
    """Full poses from predicted target features (one frame each).

    y [..., 126]; theta [...] the canonical yaw; head_p [..., 3] the tracked
    head's world position. Returns (rotations [..., J, 4], positions [..., J, 3])
    in the database layout: joint 0 = simulation bone (the hips' ground
    projection, facing the head's heading), joint 1 = hips, placed so that the
    head joint lands on the tracked head (AGRoL's root from the head)."""
    y = np.asarray(y, np.float32)
    lead = y.shape[:-1]
    q = six_to_quat(y.reshape(-1, 6)).reshape(lead + (-1, 4))     # [..., 21, 4]
    yaw = quat.from_angle_axis(theta, np.array([0.0, 1.0, 0.0], np.float32)).astype(np.float32)
    hips_world = quat.mul(yaw, q[..., 0, :])
    j = skeleton.num_joints
    rot = np.empty(lead + (j, 4), np.float32)
    pos = np.broadcast_to(skeleton.offsets, lead + (j, 3)).copy()
    rot[..., 0, :] = quat.identity(lead)
    pos[..., 0, :] = 0
    rot[..., 1, :] = hips_world
    pos[..., 1, :] = 0
    rot[..., 2:, :] = q[..., 1:, :]
    head = skeleton.index(joint_groups(skeleton)["devices"][0])
    _, gpos = quat.fk(rot, pos, skeleton.parents)
    hips_pos = np.asarray(head_p, np.float32) - gpos[..., head, :]
    sim_pos = hips_pos * np.array([1, 0, 1], np.float32)
    rot[..., 0, :] = yaw
    pos[..., 0, :] = sim_pos
    rot[..., 1, :] = q[..., 0, :]                                   # = inv(yaw) * hips_world
    pos[..., 1, :] = quat.inv_rot(yaw, hips_pos - sim_pos)
    return rot, pos


def _six_to_quat_loop(x):
    """6D -> unit quaternion (w >= 0): Gram-Schmidt, then Shepperd's method,
    as anim.quat.from_6d / from_matrix, one row at a time (numba)."""
    out = np.empty((x.shape[0], 4), np.float32)
    for i in range(x.shape[0]):
        a0, a1, a2 = np.float64(x[i, 0]), np.float64(x[i, 1]), np.float64(x[i, 2])
        b0, b1, b2 = np.float64(x[i, 3]), np.float64(x[i, 4]), np.float64(x[i, 5])
        na = max(np.sqrt(a0 * a0 + a1 * a1 + a2 * a2), 1e-30)
        a0, a1, a2 = a0 / na, a1 / na, a2 / na
        d = a0 * b0 + a1 * b1 + a2 * b2
        b0, b1, b2 = b0 - d * a0, b1 - d * a1, b2 - d * a2
        nb = max(np.sqrt(b0 * b0 + b1 * b1 + b2 * b2), 1e-30)
        b0, b1, b2 = b0 / nb, b1 / nb, b2 / nb
        c0, c1, c2 = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0
        # matrix columns a, b, c: m[r][k]
        m00, m01, m02 = a0, b0, c0
        m10, m11, m12 = a1, b1, c1
        m20, m21, m22 = a2, b2, c2
        tr = m00 + m11 + m22
        if tr >= m00 and tr >= m11 and tr >= m22:
            w, qx, qy, qz = 1 + tr, m21 - m12, m02 - m20, m10 - m01
        elif m00 >= m11 and m00 >= m22:
            w, qx, qy, qz = m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20
        elif m11 >= m22:
            w, qx, qy, qz = m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21
        else:
            w, qx, qy, qz = m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22
        n = max(np.sqrt(w * w + qx * qx + qy * qy + qz * qz), 1e-30)
        if w < 0:
            n = -n
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = w / n, qx / n, qy / n, qz / n
    return out


_six_compiled = None


def six_to_quat(x: np.ndarray) -> np.ndarray:
    """[N, 6] -> [N, 4] float32, as quat.from_6d (compiled with numba on first use)."""
    global _six_compiled
    if _six_compiled is None:
        from numba import njit
        _six_compiled = njit(cache=True)(_six_to_quat_loop)
    return _six_compiled(np.ascontiguousarray(x, np.float32))


def ground_truth_pose(data: VRData, frames: np.ndarray, head_forward: np.ndarray):
    """The ground-truth poses of frames in the same layout as poses_from_features
    (simulation bone under the hips facing the head's heading)."""
    theta, _ = canonical_frame(data.dev_q[frames, 0], data.dev_p[frames, 0], head_forward)
    yaw = quat.from_angle_axis(theta, np.array([0.0, 1.0, 0.0], np.float32)).astype(np.float32)
    hp = data.hips_p[frames]
    sim_pos = hp * np.array([1, 0, 1], np.float32)
    j = data.skeleton.num_joints
    rot = np.empty((len(frames), j, 4), np.float32)
    pos = np.broadcast_to(data.skeleton.offsets, (len(frames), j, 3)).copy()
    rot[:, 0], pos[:, 0] = yaw, sim_pos
    rot[:, 1] = quat.mul(quat.inv(yaw), data.hips_q[frames])
    pos[:, 1] = quat.inv_rot(yaw, hp - sim_pos)
    rot[:, 2:] = data.local_q[frames]
    return rot, pos


# =================================================================== devices
def joints_to_devices(dev_q: np.ndarray, calibration: dict) -> np.ndarray:
    """Joint world rotations [..., 3, 4] -> device rotations (q_joint * inv(offset))."""
    off = calibration_offsets(calibration)
    return quat.mul(dev_q, quat.inv(off)).astype(np.float32)


def devices_to_joints(dev_q: np.ndarray, calibration: dict) -> np.ndarray:
    """Device rotations [..., 3, 4] -> joint world rotations (q_device * offset)."""
    off = calibration_offsets(calibration)
    return quat.normalize(quat.mul(dev_q, off)).astype(np.float32)


def main(argv=None) -> int:
    import argparse
    import time
    p = argparse.ArgumentParser(prog="python -m controllers.vr.data",
                                description="Build the sparse-VR data from the mocap corpus (cached under "
                                            "out/vr/cache) and optionally pack it into one portable file, "
                                            "to train where the corpus is not (`train --data PACK`).")
    p.add_argument("--pack", metavar="PATH", help="write the train and val clips to this file")
    p.add_argument("--splits", default="train,val", help="splits to pack (comma separated; default train,val)")
    p.add_argument("--max-clips", type=int, default=0, help="use at most this many clips (0: all)")
    p.add_argument("--db", metavar="FILE", help="any mirrored database (`anim build-db --data DIR`: any "
                                                "skeleton; head and hands from its joint roles) instead of the "
                                                "corpus, split 80/10/10 by clip")
    args = p.parse_args(argv)
    t = time.perf_counter()
    if args.db:
        from anim import database
        data = from_any_database(database.load(args.db))
    else:
        data = build(VRDataConfig(max_clips=args.max_clips))
    print(f"vr data: {data.num_frames} frames, {len(data.starts)} clips ({time.perf_counter() - t:.1f} s)")
    if args.pack:
        t = time.perf_counter()
        r = pack(data, args.pack, tuple(s for s in args.splits.split(",") if s),
                 tolerance=5e-3 if args.db else 1e-3)
        print(f"packed {r['frames']} frames of {r['clips']} clips into {r['path']}: {r['bytes'] / 1e6:.1f} MB "
              f"(device error {r['max_device_error']:.1e}, {time.perf_counter() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
