"""Clip packs: the reference clips of a training run in one small file.

A tracking policy needs only the poses of its reference clips, not the whole
motion-matching database (features, velocities, contacts, 0.1-1 GB). A pack
holds the chosen clips' local rotations and positions, their names and tags,
the skeleton and the database's configuration, compressed (about 0.4 KB per
frame: walk and run of the normal style, mirrored, 44k frames, is ~17 MB).
It is what a remote GPU machine needs to train:

    python -m controllers.physics.clips --db out/databases/locomotion-normal.animdb \\
        --tag content=walk,run --tag style=normal --out out/physics/walk-run.clips.npz \\
        --humanoid out/physics/humanoid.json
    anim train policy --db out/physics/walk-run.clips.npz --humanoid out/physics/humanoid.json ...  # GPU machine

`load_motion(path)` opens a database (.animdb) or a pack (.npz) alike: a pack
has the fields of `anim.database.Database` that the physics code reads
(skeleton, config, rotations, positions, range_starts, range_stops,
clip_names, clip_tags). Every clip of the tags is kept (held-out ones too), so
the split by clip name (`env.select_clips`) is the same on the pack and on
the database it came from.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from anim.skeleton import Skeleton

PACK_FORMAT = "anim-clip-pack"
PACK_VERSION = 1


@dataclass
class ClipPack:
    skeleton: Skeleton
    config: object                 # anim.database.DatabaseConfig
    rotations: np.ndarray          # [N, J, 4]
    positions: np.ndarray          # [N, J, 3]
    range_starts: np.ndarray       # [C]
    range_stops: np.ndarray        # [C]
    clip_names: list = field(default_factory=list)
    clip_tags: list = field(default_factory=list)
    source: str = ""               # the database it was cut from

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    @property
    def num_clips(self) -> int:
        return len(self.range_starts)


def pack(db, tags: dict, source: str = "") -> ClipPack:
    """The clips of `db` whose tags match (all splits)."""
    from anim.database import _tags_match
    clips = [c for c, t in enumerate(db.clip_tags) if _tags_match(t, tags)]
    if not clips:
        raise ValueError(f"{source or 'database'}: no clip matches tags {tags}")
    rot, pos, starts, stops = [], [], [], []
    n = 0
    for c in clips:
        a, b = int(db.range_starts[c]), int(db.range_stops[c])
        rot.append(np.asarray(db.rotations[a:b], np.float32))
        pos.append(np.asarray(db.positions[a:b], np.float32))
        starts.append(n)
        n += b - a
        stops.append(n)
    return ClipPack(skeleton=db.skeleton, config=db.config, rotations=np.concatenate(rot),
                    positions=np.concatenate(pos), range_starts=np.array(starts, np.int64),
                    range_stops=np.array(stops, np.int64), clip_names=[db.clip_names[c] for c in clips],
                    clip_tags=[dict(db.clip_tags[c]) for c in clips], source=source)


def save(p: ClipPack, path: str) -> None:
    from anim.database import _config_to_json
    from .ppo import _atomic_write
    meta = {"format": PACK_FORMAT, "version": PACK_VERSION, "source": p.source,
            "skeleton": {"names": list(p.skeleton.names), "parents": p.skeleton.parents.tolist(),
                         "offsets": np.asarray(p.skeleton.offsets).tolist()},
            "config": _config_to_json(p.config), "clip_names": list(p.clip_names), "clip_tags": p.clip_tags}
    _atomic_write(path, lambda f: np.savez_compressed(
        f, __meta__=np.array(json.dumps(meta)), rotations=p.rotations, positions=p.positions,
        range_starts=p.range_starts, range_stops=p.range_stops))


def load(path: str) -> ClipPack:
    from anim.database import _config_from_json
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such clip pack (write one with `python -m controllers.physics.clips`)")
    import zipfile
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a clip pack, or truncated ({e})") from None
    with z:
        if "__meta__" not in z:
            raise ValueError(f"{path}: not a clip pack (no __meta__ entry)")
        meta = json.loads(str(z["__meta__"]))
        if meta.get("format") != PACK_FORMAT or meta.get("version") != PACK_VERSION:
            raise ValueError(f"{path}: format {meta.get('format')} v{meta.get('version')}, this code reads "
                             f"{PACK_FORMAT} v{PACK_VERSION}")
        try:
            arrays = {k: z[k] for k in ("rotations", "positions", "range_starts", "range_stops")}
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path}: truncated or damaged clip pack ({e})") from None
    sk = meta["skeleton"]
    skel = Skeleton(tuple(sk["names"]), np.array(sk["parents"]), np.array(sk["offsets"], np.float32))
    n, j = arrays["rotations"].shape[:2]
    if (arrays["positions"].shape != (n, j, 3) or j != skel.num_joints
            or len(arrays["range_starts"]) != len(meta["clip_names"])
            or (len(arrays["range_stops"]) and int(arrays["range_stops"][-1]) != n)):
        raise ValueError(f"{path}: inconsistent clip pack (arrays do not match the skeleton or clip list)")
    if not (np.isfinite(arrays["rotations"]).all() and np.isfinite(arrays["positions"]).all()):
        raise ValueError(f"{path}: clip pack holds non-finite poses")
    return ClipPack(skeleton=skel, config=_config_from_json(meta["config"]), clip_names=list(meta["clip_names"]),
                    clip_tags=list(meta["clip_tags"]), source=meta.get("source", ""), **arrays)


def load_motion(path: str):
    """A database (.animdb) or a clip pack (.npz), whichever `path` is."""
    if path.endswith(".npz"):
        return load(path)
    from anim import database
    return database.load(path)


def main(argv=None) -> int:
    import argparse

    from .train import parse_tags
    p = argparse.ArgumentParser(prog="python -m controllers.physics.clips", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default=os.path.join("out", "databases", "locomotion-normal.animdb"),
                   help="database to cut the clips from")
    p.add_argument("--tag", action="append", metavar="KEY=V[,V]",
                   help="clips by tag (repeatable; default content=walk,run style=normal)")
    p.add_argument("--out", required=True, help="pack file to write (.npz)")
    p.add_argument("--humanoid", metavar="FILE",
                   help="also write the humanoid measured from the whole database (for `--humanoid` of "
                        "`anim train policy`)")
    a = p.parse_args(argv)
    if not a.out.endswith(".npz"):
        p.error("--out must end in .npz")
    from anim import database
    tags = parse_tags(a.tag) if a.tag else {"content": ["walk", "run"], "style": "normal"}
    db = database.load(a.db)
    cp = pack(db, tags, source=os.path.basename(a.db))
    save(cp, a.out)
    if a.humanoid:
        from . import humanoid as hum
        hum.save(hum.from_database(db), a.humanoid)
        print(f"wrote {a.humanoid}")
    print(f"wrote {a.out}: {cp.num_clips} clips, {cp.num_frames:,} frames, "
          f"{os.path.getsize(a.out) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
