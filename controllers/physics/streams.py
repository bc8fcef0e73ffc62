"""Reference streams for a policy that tracks the live loop.

Clips played from their start are not what the live loop feeds the physics
policy: motion matching makes transitions, inertialized blends, stops and
sharp turns on demand, through every style of its database. A *stream* is
what the motion-matching controller plays under a random stick program
(`anim.scripts.random_script`): walks, runs, stops, 90-180 degree reversals,
circles, strafes and style changes. Streams are saved as a clip pack
(`controllers.physics.clips`), one clip per seed, tagged
``content=stream``, so `anim train policy --db PACK --tag content=stream`
trains on them unchanged (reference state initialization at random frames of
the streams, the tracking reward, the same termination).

    python -m controllers.physics.streams --db out/databases/locomotion.animdb \\
        --seeds 0-39 --seconds 120 --out out/physics/streams-train.npz

Training seeds and the held-out sessions of the benchmark use disjoint seeds
(`HELDOUT_SEEDS`).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .clips import ClipPack, save

HELDOUT_SEEDS = tuple(range(1000, 1020))   # the benchmark's 20 held-out random-stick sessions


def parse_seeds(text: str) -> list[int]:
    """'0-39' or '1,2,5' or '0-9,20' -> a list of seeds."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    if not out:
        raise ValueError(f"--seeds {text!r}: no seed")
    return out


def record_stream(db, seed: int, seconds: float, controller=None, stop_seconds=(1.0, 4.0)):
    """The motion-matching controller's poses [T, J, 4], [T, J, 3] under the
    random stick program of `seed` (its stops `stop_seconds` long)."""
    from anim import runner, scripts
    from controllers.motion_matching import MotionMatchingController

    ctrl = controller or MotionMatchingController(db)
    script = scripts.random_script(seed, seconds, styles=db.tag_values("style"), stop_seconds=stop_seconds)
    rec = runner.run(ctrl, script, seconds)
    return rec.rotations, rec.positions


def make_pack(db, seeds, seconds: float = 120.0, source: str = "", progress: bool = True,
              stop_seconds=(1.0, 4.0)) -> ClipPack:
    from tqdm import tqdm

    from controllers.motion_matching import MotionMatchingController

    ctrl = MotionMatchingController(db)
    rot, pos, starts, stops, names, tags = [], [], [], [], [], []
    n = 0
    for seed in tqdm(list(seeds), desc="streams", unit="stream", disable=not progress):
        r, p = record_stream(db, seed, seconds, ctrl, stop_seconds)
        rot.append(r.astype(np.float32))
        pos.append(p.astype(np.float32))
        starts.append(n)
        n += r.shape[0]
        stops.append(n)
        names.append(f"stream-{seed:04d}")
        tags.append({"content": "stream", "seed": str(seed)})
    return ClipPack(skeleton=db.skeleton, config=db.config, rotations=np.concatenate(rot),
                    positions=np.concatenate(pos), range_starts=np.array(starts, np.int64),
                    range_stops=np.array(stops, np.int64), clip_names=names, clip_tags=tags,
                    source=f"{source} (motion matching under random stick programs)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m controllers.physics.streams",
                                description="Record motion-matching streams under random stick programs as a "
                                            "clip pack (training data for the live-loop tracking policy).")
    p.add_argument("--db", default="out/databases/locomotion.animdb",
                   help="motion database the streams are matched from (default: the demo's)")
    p.add_argument("--seeds", default="0-39", help="seeds of the stick programs, e.g. 0-39 (default)")
    p.add_argument("--seconds", type=float, default=120.0, help="length of each stream (default 120)")
    p.add_argument("--stop-seconds", default="1-4", metavar="A-B",
                   help="how long the programs' stops last (default 1-4, the held-out sessions'); longer "
                        "stops, e.g. 2-10, give the policy a standing character to balance")
    p.add_argument("--out", default="out/physics/streams-train.npz", help="clip pack to write")
    args = p.parse_args(argv)
    try:
        lo, hi = (float(x) for x in args.stop_seconds.split("-"))
    except ValueError:
        p.error(f"--stop-seconds {args.stop_seconds!r}: give A-B in seconds, e.g. 2-10")
    if not 0.1 <= lo <= hi <= 60.0:
        p.error(f"--stop-seconds {args.stop_seconds}: give 0.1 <= A <= B <= 60")
    from anim import database

    seeds = parse_seeds(args.seeds)
    if not 1.0 <= args.seconds <= 3600.0:
        p.error(f"--seconds {args.seconds}: give 1 to 3600 s per stream")
    overlap = sorted(set(seeds) & set(HELDOUT_SEEDS))
    if overlap:
        print(f"note: seeds {overlap} are the benchmark's held-out sessions", file=sys.stderr)
    db = database.load(args.db)
    pack = make_pack(db, seeds, args.seconds, source=args.db, stop_seconds=(lo, hi))
    save(pack, args.out)
    print(f"wrote {args.out}: {len(seeds)} streams, {pack.num_frames} frames ({pack.num_frames / 60 / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
