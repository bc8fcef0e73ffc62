"""Command-line wiring of the physics tracker, for `anim/cli.py` to hook in.

* `add_physics_parsers(train_subparsers)` adds `policy` to the subparsers of
  `anim train` (so `anim train policy --tag content=walk ...` trains with PPO;
  the flags are those of `python -m controllers.physics.train`).
* `add_run_arguments(run_parser)` adds `--clip` and `--policy` to `anim run`.
* `run_clip(db, clip, policy=None, seconds=None, out_dir=None)` is what
  `anim run --controller physics --clip NAME` does: play the clip as the
  reference through `PhysicsController`, write the simulated motion as BVH and
  a JSON report (tracking error, falls, per-tick time).
* `make_controller(db, clip=None, policy=None)` for `anim.runner.make_controller`.
"""

from __future__ import annotations

import json
import os

DEFAULT_POLICY = os.path.join("out", "physics", "walk", "policy.npz")


def add_physics_parsers(subparsers) -> None:
    from . import train
    p = subparsers.add_parser(
        "policy", help="train a physics tracking policy (PPO on the MJX humanoid)",
        description="Train a motion-tracking policy with PPO in MJX on database clips chosen by tags; "
                    "writes humanoid.json, checkpoint.npz, policy.npz, log.jsonl (and curves.png "
                    "with --plot) under --out.")
    train.add_arguments(p)
    p.set_defaults(func=train.run_args)


def add_run_arguments(run_parser) -> None:
    run_parser.add_argument("--clip", help="physics controller: the database clip to track (name)")
    run_parser.add_argument("--policy", help=f"physics controller: policy file (default {DEFAULT_POLICY} "
                                             f"if it exists, else PD tracking without a policy)")


def make_controller(db, clip=None, policy: str | None = None):
    from .runtime import PhysicsController
    if policy is None and os.path.exists(DEFAULT_POLICY):
        policy = DEFAULT_POLICY
    return PhysicsController(db, clip, policy)


def run_clip(db, clip: str | None, policy: str | None = None, seconds: float | None = None,
             out_dir: str | None = None, echo=print) -> dict:
    """Track one clip headless; returns the report (also written as JSON)."""
    import numpy as np

    from anim import runner
    from anim.control import ControlInput

    ctrl = make_controller(db, clip, policy)
    name = db.clip_names[ctrl.clip]
    frames = ctrl.clip_rot.shape[0]
    seconds = seconds or (frames - 1) / 60.0
    rec = runner.run(ctrl, lambda t: ControlInput(), seconds)
    out_dir = out_dir or os.path.join("out", "runs", "physics")
    os.makedirs(out_dir, exist_ok=True)
    bvh = os.path.join(out_dir, f"{name}.bvh")
    runner.write_bvh(rec, bvh)
    report = {"controller": "physics", "clip": name, "policy": policy or (DEFAULT_POLICY if ctrl.policy else None),
              "seconds": seconds, "ticks": ctrl.stats["ticks"], "falls": ctrl.stats["falls"],
              "mean_tracking_error_cm": ctrl.mean_tracking_error_cm(),
              "tick_ms_p50": float(np.percentile(rec.tick_ms, 50)),
              "tick_ms_p99": float(np.percentile(rec.tick_ms, 99))}
    path = os.path.join(out_dir, f"{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(path + ".tmp", path)
    echo(f"physics tracking of {name} ({'policy ' + str(report['policy']) if ctrl.policy else 'PD only, no policy'}):"
         f" {report['falls']} falls, mean joint error {report['mean_tracking_error_cm']:.1f} cm, "
         f"tick p50 {report['tick_ms_p50']:.2f} ms p99 {report['tick_ms_p99']:.2f} ms")
    echo(f"  wrote {bvh} and {path}")
    return report
