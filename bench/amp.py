"""Issue 19's A/B: the live loop's tracking policy trained on with and without
the AMP style reward, the same number of steps from the same checkpoint.

    python -m bench amp                                   # the record: writes BENCHMARKS.md
    python -m bench.amp --base A.npz --amp B.npz --sessions 4 --seconds 30   # quicker look

For each policy:
* held-out mocap clips (walk and run of the normal style, the physics split's
  held-out eighth), each from its start and its middle for up to 10 s: share
  without a fall, global and root-relative joint error;
* held-out random-stick sessions of the live loop (seeds
  `controllers.physics.streams.HELDOUT_SEEDS`, every style): falls per
  minute, joint errors, foot skating, the largest joint accelerations
  (99.9th percentile and maximum) and the naturalness distance below;
* pushes of 30 N s from 8 directions, walking and running.

Naturalness: over the frames with the body up (not fallen, and not within
1 s after a fall: the recovery's reset and blend; falls are counted apart),
the Fréchet distance between Gaussians fitted to per-frame motion statistics (`anim.metrics.motion_statistics`: joint speeds and
accelerations, foot heights and contact speeds, hips speed and turn rate) of
the simulated sessions and of held-out mocap (the locomotion database's
held-out eighth, every style), features scaled by the training mocap's
deviations. Its floor is the distance of held-out mocap to training mocap:
what two samples of real motion differ by.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

BASE = os.path.join("out", "physics", "ab2-base", "policy.npz")
AMP = os.path.join("out", "physics", "ab2-amp", "policy.npz")
CLIP_TAGS = (("content", ("run", "walk")), ("style", "normal"))


def mocap_statistics(db, split: str, max_frames: int = 150_000, seed: int = 0) -> np.ndarray:
    """motion_statistics rows of the database's clips in the physics split
    ('train' or 'holdout', by clip name as `env.select_clips`), clip by clip."""
    from anim import metrics, quat
    from controllers.physics.env import EnvConfig, select_clips
    toes = [db.skeleton.index(f) for f in db.config.toes]
    rows, n = [], 0
    clips = select_clips(db, EnvConfig(tags=(), split=split))
    np.random.default_rng(seed).shuffle(clips)
    for c in clips:
        a, b = int(db.range_starts[c]), int(db.range_stops[c])
        rot, pos = np.asarray(db.rotations[a:b]), np.asarray(db.positions[a:b])
        _, g = quat.fk(rot, pos, db.skeleton.parents)
        rows.append(metrics.motion_statistics(g, rot[:, 0], np.asarray(db.contacts[a:b]), toes, db.config.fps))
        n += b - a
        if n >= max_frames:
            break
    return np.concatenate(rows)


def sessions(db, policy, seeds, seconds: float) -> dict:
    """Held-out random-stick sessions through the live loop: figures and the
    motion statistics of the simulated character."""
    from anim import metrics
    from bench.live_physics import session

    toes = [db.skeleton.index(f) for f in db.config.toes]
    out, stats, acc, upright = [], [], [], []
    for seed in seeds:
        _, rec, m = session(db, policy, seed, seconds)
        ph = m["physics"]
        g = rec.global_positions()
        up = metrics.upright_segments(rec.tracking["fallen"], int(round(RECOVERY_S * rec.fps)))
        for a, b in up:
            stats.append(metrics.motion_statistics(g[a:b], rec.rotations[a:b, 0], rec.contacts[a:b], toes, rec.fps))
            acc.append(metrics.joint_accelerations(g[a:b], rec.fps).ravel())
        upright.append(sum(b - a for a, b in up) / len(g))
        out.append({"seed": seed, "falls": ph["falls"], "pose_error_cm": ph["pose_error_cm"],
                    "global_error_cm": ph["tracking_error_cm"], "skating_cm_s": m["foot_skating"]["mean_cm_s"]})
        print(f"    session {seed}: {ph['falls']} falls, pose {ph['pose_error_cm']:.1f} cm", flush=True)
    acc = np.concatenate(acc)
    n = len(out)
    return {"rows": out, "stats": np.concatenate(stats),
            "falls_per_minute": sum(r["falls"] for r in out) / max(n * seconds / 60, 1e-9),
            "without_fall": sum(r["falls"] == 0 for r in out) / max(n, 1),
            "pose_error_cm": float(np.mean([r["pose_error_cm"] for r in out])),
            "global_error_cm": float(np.mean([r["global_error_cm"] for r in out])),
            "skating_cm_s": float(np.mean([r["skating_cm_s"] for r in out])),
            "acc_p999_m_s2": float(np.percentile(acc, 99.9)), "acc_max_m_s2": float(acc.max()),
            "upright_share": float(np.mean(upright))}


RECOVERY_S = 1.0


def evaluate(policy: str, db, db_normal, seeds, seconds: float, quick: bool = False) -> dict:
    from bench.live_physics import _limits, pushes
    from controllers.physics.bench import quality
    with _limits():
        print(f"  {policy}: held-out clips", flush=True)
        q = quality(db_normal, policy, seconds=10.0, max_clips=4 if quick else None, split="holdout", starts=2,
                    clip_tags=CLIP_TAGS)
        print(f"  {policy}: sessions", flush=True)
        ses = sessions(db, policy, seeds, seconds)
        print(f"  {policy}: pushes", flush=True)
        pu = pushes(db, policy)
    return {"clips": q, "sessions": ses, "pushes": pu}


def _evaluate_files(policy: str, db_path: str, seeds, seconds: float, quick: bool) -> dict:
    """evaluate() in a worker process (it opens the databases itself)."""
    from anim import database
    from anim_app.cli import ensure_db
    return evaluate(policy, database.load(db_path), database.load(ensure_db(None, "locomotion-normal")), seeds,
                    seconds, quick)


def run(quick: bool = False, base: str = BASE, amp_policy: str = AMP, n_sessions: int | None = None,
        seconds: float | None = None) -> str:
    from anim import database, metrics
    from anim_app.cli import ensure_db
    from bench.__main__ import table
    from controllers.physics import ppo
    from controllers.physics.streams import HELDOUT_SEEDS

    for p in (base, amp_policy):
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p}: no such policy (train the pair with the commands in "
                                    "controllers/physics/weights/README.md, 'Style reward A/B')")
    path = ensure_db(None, "locomotion")
    db = database.load(path)
    ensure_db(None, "locomotion-normal")
    n_sessions = n_sessions or (2 if quick else 10)
    seconds = seconds or (20.0 if quick else 60.0)
    seeds = HELDOUT_SEEDS[:n_sessions]
    print("mocap statistics", flush=True)
    train_stats = mocap_statistics(db, "train")
    held_stats = mocap_statistics(db, "holdout")
    scale = train_stats.std(0)
    floor = metrics.frechet_distance(held_stats, train_stats, scale)
    res, rows = {}, []
    pairs = (("tracking only", base), ("tracking + style (AMP)", amp_policy))
    # the two policies in two processes: one thread each, as the live loop runs
    import concurrent.futures
    import multiprocessing
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        jobs = {label: ex.submit(_evaluate_files, pol, path, seeds, seconds, quick) for label, pol in pairs}
        res = {label: j.result() for label, j in jobs.items()}
    for label, pol in pairs:
        r = res[label]
        meta = ppo.load_policy(pol, db.skeleton)[3]
        nat = metrics.frechet_distance(r["sessions"]["stats"], held_stats, scale)
        q, s, pu = r["clips"], r["sessions"], r["pushes"]
        amp_meta = meta.get("amp")
        rows.append({"policy": label, "env steps (M)": meta["env_steps"] / 1e6,
                     "style": f"{amp_meta['objective']}, {amp_meta['style_weight']:g}" if amp_meta else "-",
                     "clips no fall %": 100 * q["no_fall_fraction"], "clips global cm": q["mean_joint_error_cm"],
                     "clips root-rel cm": q["mean_pose_error_cm"],
                     "sessions falls/min": s["falls_per_minute"], "sessions global cm": s["global_error_cm"],
                     "sessions root-rel cm": s["pose_error_cm"], "push walk %": 100 * pu["walk"],
                     "push run %": 100 * pu["run"], "naturalness": nat, "above floor": nat - floor,
                     "skating cm/s": s["skating_cm_s"], "acc p99.9 m/s2": s["acc_p999_m_s2"],
                     "acc max m/s2": s["acc_max_m_s2"]})
    b, a = rows
    ratio = a["above floor"] / b["above floor"] if b["above floor"] > 0 else float("nan")
    lines = [
        "Command: `python -m bench amp`" + (" --quick (NOT for the record)" if quick else "")
        + f". Policies `{base}` (tracking reward only) and `{amp_policy}` (tracking + AMP style reward), both "
          "trained on from the same checkpoint for the same number of env steps (commands: "
          "`controllers/physics/weights/README.md`). One thread each.",
        "",
        f"Held-out clips: walk and run of the normal style (held-out split, {res[pairs[0][0]]['clips']['episodes']}"
        f" episodes, from each clip's start and middle, up to 10 s). Sessions: {n_sessions} held-out random-stick "
        f"sessions of {seconds:g} s through the live loop (seeds {seeds[0]}-{seeds[-1]}, every style). Pushes: 30 N s "
        f"from 8 directions.",
        "",
        table(rows),
        f"Naturalness: Fréchet distance of the sessions' motion statistics (frames with the body up: "
        f"{100 * res[pairs[0][0]]['sessions']['upright_share']:.0f}% and "
        f"{100 * res[pairs[1][0]]['sessions']['upright_share']:.0f}% of them; the largest accelerations too) to "
        f"held-out mocap "
        f"({len(held_stats):,} frames, every style); floor (held-out mocap to training mocap, "
        f"{len(train_stats):,} frames): **{floor:.2f}**. Above the floor: tracking only {b['above floor']:.2f}, "
        f"with the style reward {a['above floor']:.2f} (ratio {ratio:.2f}; the target is 0.5 or less, with no more "
        f"falls and at most 1 cm more tracking error).",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.amp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=BASE, help=f"policy trained without the style reward (default {BASE})")
    p.add_argument("--amp", default=AMP, help=f"policy trained with it (default {AMP})")
    p.add_argument("--sessions", type=int, default=10, help="held-out sessions (default 10)")
    p.add_argument("--seconds", type=float, default=60.0, help="session length (default 60)")
    p.add_argument("--quick", action="store_true", help="4 clips, 2 sessions of 20 s")
    a = p.parse_args(argv)
    print(run(quick=a.quick, base=a.base, amp_policy=a.amp, n_sessions=None if a.quick else a.sessions,
              seconds=None if a.quick else a.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
