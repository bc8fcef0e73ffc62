"""`anim export runtime-db`: a motion database and the motion-matching runtime's
settings as one little-endian binary file, read by the native core
(`export/native/`, see `export/native/FORMAT.md` for the byte layout).

The file holds exactly what one tick of `controllers.motion_matching` reads:
the skeleton, the normalized features with their offset and scale (and the
feature groups with their weights, for tools), the matchable frames, the clip
ranges and tags, the style of each clip, the per-frame pose data (local
rotations, positions, velocities, angular velocities, contacts), the speeds
and acceleration limit the Python controller measures from the database, and
every field of the `RuntimeConfig` it runs with. A header carries a magic,
the format version and a CRC-32 of the payload, so a truncated or altered
file is refused with a clear error instead of playing a wrong pose.

Layout: a 32-byte header, then named chunks (name, dtype, shape, data padded
to 8 bytes). Named chunks rather than a fixed struct so that a reader checks
each array's type and shape by name and a later version can add chunks
without moving the others. `read_runtime_db` reads a file back (tests, tools).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import fields

import numpy as np

from anim.fileio import atomic_write

MAGIC = b"ANIMRTDB"
VERSION = 1
MAGIC_LMM = b"ANIMRTLM"            # learned motion matching: the same container (export/native/FORMAT.md)
VERSION_LMM = 1
RUNTIME_NETS = ("decompressor", "stepper", "projector")
HEADER = struct.Struct("<8sIIQII")          # magic, version, header bytes, payload bytes, crc32, reserved
CHUNK = struct.Struct("<32sII4Q")           # name, dtype, ndim, shape[4]
DTYPES = {1: np.dtype("<u1"), 2: np.dtype("<i4"), 3: np.dtype("<f4"), 4: np.dtype("<f8"), 5: np.dtype("<u1")}
TEXT = 5                                     # dtype code of UTF-8 text (shape: [bytes])
#: the order of RuntimeConfig fields in the 'config.values' chunk is given by 'config.names'
SPEEDS = ("walk", "run", "side", "back")


class RuntimeDbError(ValueError):
    """A runtime database file that cannot be read: '<file>: <problem>'."""


def _chunk(name: str, arr, text: bool = False) -> bytes:
    if text:
        data = np.frombuffer(str(arr).encode("utf-8"), np.uint8)
        code = TEXT
    else:
        arr = np.ascontiguousarray(arr)
        code = {np.dtype(np.uint8): 1, np.dtype(np.bool_): 1, np.dtype(np.int32): 2, np.dtype(np.float32): 3,
                np.dtype(np.float64): 4}.get(arr.dtype)
        if code is None:
            raise TypeError(f"runtime-db: chunk {name!r} has dtype {arr.dtype}")
        data = arr.astype(DTYPES[code], copy=False)
    shape = list(data.shape) if not text else [data.size]
    if len(shape) > 4 or len(name.encode()) >= 32:
        raise ValueError(f"runtime-db: chunk {name!r}: at most 4 dims and a 31-byte name")
    raw = data.tobytes()
    pad = (-len(raw)) % 8
    return CHUNK.pack(name.encode(), code, len(shape), *(shape + [0] * (4 - len(shape)))) + raw + b"\0" * pad


def runtime_arrays(db, config=None, style_key: str = "style") -> dict:
    """The chunks of a runtime database for `db` run with `config` (a
    controllers.motion_matching.RuntimeConfig; default its defaults): name ->
    (array or text, is_text). Speeds and the acceleration limit are resolved as
    the Python controller resolves them (measured from the database where the
    config leaves them None)."""
    from controllers.motion_matching import RuntimeConfig, measured_accel_limit, measured_speeds
    from anim.database import FEATURE_GROUPS

    config = config or RuntimeConfig()
    sk = db.skeleton
    measured = measured_speeds(db)
    speeds = [float(getattr(config, f"{k}_speed") or measured[k]) for k in SPEEDS]
    accel = float(config.accel_limit if config.accel_limit is not None else measured_accel_limit(db))
    cfg_names, cfg_values = _config_lists(config)
    traj = slice(db.feature_slice("trajectory_positions").start, db.feature_slice("trajectory_directions").stop)
    styles = db.tag_values(style_key)
    clip_style = np.array([styles.index(str(t[style_key])) if style_key in t else -1 for t in db.clip_tags],
                          np.int32)
    rv = db.root_velocity_character()
    root_speed = np.hypot(rv[:, 0], rv[:, 2]).astype(np.float32)
    weights = dict(db.config.weights)
    groups = "\n".join(f"{n} {w} {weights.get(n, 1.0)!r}" for n, w in FEATURE_GROUPS)
    out = {
        "skeleton.names": ("\n".join(sk.names), True),
        "skeleton.parents": (np.asarray(sk.parents, np.int32), False),
        "skeleton.offsets": (np.asarray(sk.offsets, np.float32), False),
        "skeleton.body": (_mask(sk.num_joints, db.body_joints()), False),
        "feet": (np.array([sk.index(f) for f in db.config.feet], np.int32), False),
        "toes": (np.array([sk.index(t) for t in db.config.toes], np.int32), False),
        "fps": (np.array([float(db.config.fps)]), False),
        "trajectory.frames": (np.asarray(db.config.trajectory_frames, np.int32), False),
        "trajectory.slice": (np.array([traj.start, traj.stop], np.int32), False),
        "features.groups": (groups, True),
        "features.offset": (np.asarray(db.features_offset, np.float32), False),
        "features.scale": (np.asarray(db.features_scale, np.float32), False),
        "features": (np.asarray(db.features, np.float32), False),
        "valid": (np.asarray(db.valid, np.uint8), False),
        "clips.ranges": (np.stack([db.range_starts, db.range_stops], 1).astype(np.int32), False),
        "clips.names": ("\n".join(db.clip_names), True),
        "clips.tags": ("\n".join(json.dumps(t, sort_keys=True, default=str) for t in db.clip_tags), True),
        "styles": ("\n".join(styles), True),
        "clips.style": (clip_style, False),
        "speeds": (np.array(speeds, np.float64), False),
        "accel_limit": (np.array([accel], np.float64), False),
        "config.names": ("\n".join(cfg_names), True),
        "config.values": (np.array(cfg_values, np.float64), False),
        "root_speed": (root_speed, False),
        "rotations": (np.asarray(db.rotations, np.float32), False),
        "positions": (np.asarray(db.positions, np.float32), False),
        "velocities": (np.asarray(db.velocities, np.float32), False),
        "angular_velocities": (np.asarray(db.angular_velocities, np.float32), False),
        "contacts": (np.asarray(db.contacts, np.uint8), False),
    }
    return out


def _mask(n: int, joints) -> np.ndarray:
    """u8 [n]: 1 for the listed joints (the body joints whose acceleration the limiter holds)."""
    m = np.zeros(n, np.uint8)
    m[np.asarray(list(joints), np.int64)] = 1
    return m


def _config_lists(config) -> tuple[list, list]:
    """RuntimeConfig fields but the speeds and the acceleration limit (resolved apart) as names and floats."""
    names, values = [], []
    for f in fields(config):
        if f.name in ("walk_speed", "run_speed", "side_speed", "back_speed", "accel_limit"):
            continue
        names.append(f.name)
        values.append(float(getattr(config, f.name)))
    return names, values


def _write(path, magic: bytes, version: int, chunks: dict) -> tuple[int, int]:
    payload = b"".join(_chunk(name, value, text) for name, (value, text) in chunks.items())
    crc = zlib.crc32(payload) & 0xFFFFFFFF
    with atomic_write(path) as f:
        f.write(HEADER.pack(magic, version, HEADER.size, len(payload), crc, 0))
        f.write(payload)
    return HEADER.size + len(payload), crc


def lmm_arrays(weights_path: str, config=None) -> dict:
    """The chunks of a learned-motion-matching runtime file from a weights file
    (controllers/learned/weights): the skeleton and settings the loop needs
    (as in a runtime database) and the three run-time networks (layer matrices
    widened from the file's float16 to float32, exactly as the Python runtime
    evaluates them)."""
    from controllers.learned import weights as W
    from controllers.learned.controller import trajectory_slice
    from controllers.motion_matching import RuntimeConfig

    config = config or RuntimeConfig()
    w = W.load(str(weights_path))
    meta, a = w.meta, w.arrays
    sk = meta["skeleton"]
    names = list(sk["names"])
    speeds = [float(getattr(config, f"{k}_speed") or meta["speeds"][k]) for k in SPEEDS]
    accel = config.accel_limit if config.accel_limit is not None else (meta.get("accel_limit") or 0.0)
    traj = trajectory_slice(meta["feature_groups"])
    cfg_names, cfg_values = _config_lists(config)
    out = {
        "skeleton.names": ("\n".join(names), True),
        "skeleton.parents": (np.asarray(sk["parents"], np.int32), False),
        "skeleton.offsets": (np.asarray(sk["offsets"], np.float32), False),
        "skeleton.body": (_mask(len(names), [j for j, n in enumerate(names)
                                             if n not in set(meta.get("helpers", ()))]), False),
        "feet": (np.array([names.index(f) for f in meta["feet"]], np.int32), False),
        "toes": (np.array([names.index(t) for t in meta["toes"]], np.int32), False),
        "fps": (np.array([float(meta["fps"])]), False),
        "trajectory.frames": (np.asarray(meta["trajectory_frames"], np.int32), False),
        "trajectory.slice": (np.array([traj.start, traj.stop], np.int32), False),
        "features.groups": ("\n".join(f"{n} {wd} 1.0" for n, wd in meta["feature_groups"]), True),
        "features.offset": (a["features_offset"].astype(np.float32), False),
        "features.scale": (a["features_scale"].astype(np.float32), False),
        "styles": ("\n".join(meta.get("styles", [])), True),
        "speeds": (np.array(speeds, np.float64), False),
        "accel_limit": (np.array([float(accel)], np.float64), False),
        "config.names": ("\n".join(cfg_names), True),
        "config.values": (np.array(cfg_values, np.float64), False),
        "lmm.moving": (np.asarray(meta["layout"]["moving"], np.int32), False),
        "lmm.num_contacts": (np.array([int(meta["layout"]["num_contacts"])], np.int32), False),
        "lmm.rest_positions": (a["rest_positions"].astype(np.float32), False),
        "lmm.init_state": (np.concatenate([a["init_features"], a["init_latent"]]).astype(np.float32), False),
        "lmm.state_min": (a["state_min"].astype(np.float32), False),
        "lmm.state_max": (a["state_max"].astype(np.float32), False),
    }
    for net in RUNTIME_NETS:
        layers = W.net_from_arrays(a, net)
        out[f"{net}.layers"] = (np.array([len(layers["layers"])], np.int32), False)
        for i, (Wm, b) in enumerate(layers["layers"]):
            out[f"{net}.W{i}"] = (np.ascontiguousarray(Wm, np.float32), False)
            out[f"{net}.b{i}"] = (np.ascontiguousarray(b, np.float32), False)
        for k in ("mean_in", "std_in", "mean_out", "std_out"):
            out[f"{net}.{k}"] = (np.ascontiguousarray(layers[k], np.float32), False)
    return out


def write_runtime_lmm(weights_path: str, path: str, config=None) -> dict:
    """Write the learned-motion-matching runtime file for the native core."""
    size, crc = _write(path, MAGIC_LMM, VERSION_LMM, lmm_arrays(weights_path, config))
    return {"path": str(path), "bytes": size, "crc32": f"{crc:08x}"}


def write_runtime_db(db, path: str, config=None, style_key: str = "style") -> dict:
    """Write `db` (and the runtime `config`) to `path` atomically; returns a
    small summary (frames, joints, features, bytes, crc32)."""
    size, crc = _write(path, MAGIC, VERSION, runtime_arrays(db, config, style_key))
    return {"path": str(path), "frames": int(db.num_frames), "joints": int(db.skeleton.num_joints),
            "features": int(np.asarray(db.features).shape[1]), "clips": int(db.num_clips),
            "bytes": size, "crc32": f"{crc:08x}"}


def read_runtime_db(path: str, magic: bytes = MAGIC, version: int = VERSION) -> dict:
    """Read a runtime database (or, with MAGIC_LMM / VERSION_LMM, a learned
    runtime file) back: name -> numpy array (text chunks as str). Errors
    (RuntimeDbError) name the file and the problem, as the native loader's do."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise RuntimeDbError(f"{path}: cannot read ({e.strerror})") from None
    if len(blob) < HEADER.size:
        raise RuntimeDbError(f"{path}: too short for a runtime database header ({len(blob)} bytes)")
    got_magic, got_version, hsize, size, crc, _ = HEADER.unpack_from(blob)
    if got_magic != magic:
        raise RuntimeDbError(f"{path}: not a {magic.decode()} file (bad magic {got_magic!r})")
    if got_version != version:
        raise RuntimeDbError(f"{path}: format version {got_version}, this reader reads {version}")
    if hsize != HEADER.size or len(blob) != hsize + size:
        raise RuntimeDbError(f"{path}: truncated or padded: header says {hsize + size} bytes, file has {len(blob)}")
    payload = memoryview(blob)[hsize:]
    if zlib.crc32(payload) & 0xFFFFFFFF != crc:
        raise RuntimeDbError(f"{path}: checksum mismatch (the file is corrupt)")
    out, o = {}, 0
    while o < len(payload):
        if o + CHUNK.size > len(payload):
            raise RuntimeDbError(f"{path}: chunk header cut at byte {hsize + o}")
        name, code, ndim, *shape = CHUNK.unpack_from(payload, o)
        name = name.rstrip(b"\0").decode()
        o += CHUNK.size
        if code not in DTYPES or ndim > 4:
            raise RuntimeDbError(f"{path}: chunk {name!r} has an unknown dtype {code} or {ndim} dims")
        shape = tuple(shape[:ndim])
        n = int(np.prod(shape)) * DTYPES[code].itemsize
        if o + n > len(payload):
            raise RuntimeDbError(f"{path}: chunk {name!r} runs past the end of the file")
        data = np.frombuffer(payload[o:o + n], DTYPES[code]).reshape(shape)
        out[name] = bytes(data).decode("utf-8") if code == TEXT else data.copy()
        o += n + (-n % 8)
    return out


# ------------------------------------------------------------------ command line
def add_runtime_db_parser(subparsers) -> None:
    """Register `runtime-db` and `runtime-lmm` under an `anim export` group's subparsers."""
    p = subparsers.add_parser(
        "runtime-db", help="a motion database as the native core's binary file (export/native/FORMAT.md)",
        description="Write a motion database and the motion-matching runtime settings as one little-endian "
                    "binary file (magic, version, CRC-32) for the native core in export/native/.")
    p.add_argument("--db", metavar="FILE", help="database file (default: the normal-style locomotion database, "
                                                "built on first use)")
    p.add_argument("--out", metavar="FILE", default="out/export/locomotion-normal.animrt",
                   help="output file (default out/export/locomotion-normal.animrt)")
    p.add_argument("--accel-limit", type=float, metavar="M_S2",
                   help="joint acceleration limit in m/s^2 (default: the database's 99.9th percentile; 0: off)")
    p.set_defaults(func=cmd_runtime_db)
    q = subparsers.add_parser(
        "runtime-lmm", help="learned motion matching weights as the native core's binary file",
        description="Write the learned-motion-matching runtime (the decompressor, stepper and projector, the "
                    "skeleton and the runtime settings) as one little-endian binary file for export/native/.")
    q.add_argument("--weights", metavar="FILE", help="weights file (default: the shipped one)")
    q.add_argument("--out", metavar="FILE", default="out/export/lmm-locomotion-normal.animlmm",
                   help="output file (default out/export/lmm-locomotion-normal.animlmm)")
    q.set_defaults(func=cmd_runtime_lmm)


def cmd_runtime_lmm(args) -> int:
    from controllers.learned import DEFAULT_WEIGHTS

    s = write_runtime_lmm(args.weights or DEFAULT_WEIGHTS, args.out)
    print(f"{s['path']}: {s['bytes'] / 1e6:.1f} MB, crc32 {s['crc32']}")
    return 0


def cmd_runtime_db(args) -> int:
    import math

    from anim import database
    from anim_app.cli import ensure_db
    from controllers.motion_matching import RuntimeConfig

    config = RuntimeConfig()
    if args.accel_limit is not None:
        if not math.isfinite(args.accel_limit) or args.accel_limit < 0:
            raise ValueError(f"--accel-limit {args.accel_limit}: must be a finite number >= 0")
        config = RuntimeConfig(accel_limit=args.accel_limit)
    path = ensure_db(args.db, "locomotion-normal")
    db = database.load(path)
    s = write_runtime_db(db, args.out, config)
    print(f"{s['path']}: {s['frames']:,} frames, {s['joints']} joints, {s['features']} features, "
          f"{s['clips']} clips, {s['bytes'] / 1e6:.1f} MB, crc32 {s['crc32']}")
    return 0
