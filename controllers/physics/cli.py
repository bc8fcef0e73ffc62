"""Command-line wiring of the physics tracker, for the command line (`anim_app/cli.py`) to hook in.

* `add_physics_parsers(train_subparsers)` adds `policy` to the subparsers of
  `anim train` (so `anim train policy --tag content=walk ...` trains with PPO;
  the flags are those of `python -m controllers.physics.train`).
* `add_run_arguments(run_parser)` adds `--clip` and `--policy` to `anim run`.
* `run_clip(db, clip, policy=None, seconds=None, out_dir=None)` is what
  `anim run --controller physics --clip NAME` does: play the clip as the
  reference through `PhysicsController`, write the simulated motion as BVH and
  a JSON report (tracking error, falls, per-tick time).
* `make_controller(db, clip=None, policy=None)`: the clip-replay controller with the default policy.
* `demo(db, ...)` is `anim demo --physics`: the simulated body in the viewer
  with the reference as a ghost, F / pad B pushes it; headless, a scripted
  session with two pushes written as PNG frames and a JSON report.

The default policy is the shipped one (`controllers/physics/weights/`).
"""

from __future__ import annotations

import os

SHIPPED_POLICY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "walk-run.npz")
DEFAULT_POLICY = SHIPPED_POLICY
# the policy trained on motion-matching streams with the live loop's re-anchoring (weights/README.md):
# the default of the physics stage over a kinematic stage; clips are tracked with the one above
LIVE_POLICY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "live.npz")
# the CMU takes on the Character Creator rig (../shared/mocap/other-skeletons): tracks their walks (weights/README.md)
CMU_POLICY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "cmu-walk.npz")


def policy_for(skeleton, candidates) -> str | None:
    """The first of the policy files `candidates` that exists and was built
    for `skeleton` (its humanoid's joints are the skeleton's), else None."""
    from anim.fileio import ArtefactError

    from .ppo import load_policy
    for path in candidates:
        if not os.path.exists(path):
            continue
        try:
            load_policy(path, skeleton)
        except ValueError as e:         # another skeleton's policy
            if isinstance(e, ArtefactError) or "skeleton" not in str(e):
                raise
            continue
        return path
    return None


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
    run_parser.add_argument("--policy", help="physics controller: policy file (default the shipped "
                                             "controllers/physics/weights/walk-run.npz if it exists, else PD "
                                             "tracking without a policy)")


def make_controller(db, clip=None, policy: str | None = None):
    from .runtime import PhysicsController
    if policy is None and os.path.exists(DEFAULT_POLICY):
        try:
            return PhysicsController(db, clip, DEFAULT_POLICY)
        except ValueError as e:          # the shipped policy is for the Bandai Namco skeleton
            if "skeleton" not in str(e):
                raise
            print(f"the shipped policy does not fit this database's skeleton ({len(db.skeleton.names)} joints): "
                  f"PD tracking only (train one with `anim train policy`)")
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
              "mean_tracking_error_cm": ctrl.mean_tracking_error_cm(), "mean_pose_error_cm": ctrl.mean_pose_error_cm(),
              "tick_ms_p50": float(np.percentile(rec.tick_ms, 50)),
              "tick_ms_p99": float(np.percentile(rec.tick_ms, 99))}
    path = os.path.join(out_dir, f"{name}.json")
    runner.write_json(report, path)
    echo(f"physics tracking of {name} ({'policy ' + str(report['policy']) if ctrl.policy else 'PD only, no policy'}):"
         f" {report['falls']} falls, mean joint error {report['mean_tracking_error_cm']:.1f} cm"
         f" ({report['mean_pose_error_cm']:.1f} relative to the root), "
         f"tick p50 {report['tick_ms_p50']:.2f} ms p99 {report['tick_ms_p99']:.2f} ms")
    echo(f"  wrote {bvh} and {path}")
    return report


def default_demo_clip(db, env_cfg) -> int:
    """The longest held-out clip of the policy's clips (never seen in training)."""
    import dataclasses

    from .env import select_clips
    try:
        clips = select_clips(db, dataclasses.replace(env_cfg, split="holdout"))
    except ValueError:
        clips = select_clips(db, dataclasses.replace(env_cfg, split="all"))
    return max(clips, key=lambda c: int(db.range_stops[c] - db.range_starts[c]))


def demo(db, clip=None, policy: str | None = None, headless: bool = True, out_dir: str | None = None,
         seconds: float | None = None, width: int = 1280, height: int = 720, echo=print) -> dict:
    """The physics character in the viewer (live) or a headless session with
    pushes at 1/3 and 2/3 of it (PNG frames, contact sheet, JSON report)."""
    from anim import runner
    from anim.control import ControlInput

    from .runtime import PhysicsController
    policy = policy or (DEFAULT_POLICY if os.path.exists(DEFAULT_POLICY) else None)
    ctrl = PhysicsController(db, 0, policy)
    ctrl.set_clip(default_demo_clip(db, ctrl.cfg) if clip is None else clip)
    ctrl.reset()
    name = db.clip_names[ctrl.clip]
    what = f"policy {policy}" if ctrl.policy is not None else "PD tracking without a policy"
    if not headless:
        from viewer.app import run_live
        echo(f"physics demo: {name} on the MuJoCo humanoid ({what}); the ghost is the reference.\n"
             "  F / pad B push, WASD / left stick sets the push direction, R reset, Esc quit")
        return run_live(ctrl, db.skeleton.parents, width=width, height=height, title="anim demo: physics")
    from viewer.app import run_headless
    out_dir = out_dir or os.path.join("out", "demo", "physics")
    seconds = seconds or min(10.0, (ctrl.clip_rot.shape[0] - 2) / 60.0)
    pushes = {int(round(seconds / 3 * 60)), int(round(2 * seconds / 3 * 60))}

    def script(t):
        return ControlInput(actions=frozenset({"push"}) if int(round(t * 60)) in pushes else frozenset())
    times = [round(x, 2) for x in (0.5, seconds / 3 + 0.25, seconds / 2, 2 * seconds / 3 + 0.25, seconds - 0.1)]
    stats = run_headless(ctrl, db.skeleton.parents, script, seconds, out_dir, frames_to_save=times, width=width,
                         height=height, render_every=4)
    report = {"clip": name, "policy": policy, "seconds": seconds, "pushes": ctrl.stats["pushes"],
              "falls": ctrl.stats["falls"], "mean_tracking_error_cm": ctrl.mean_tracking_error_cm(),
              "mean_pose_error_cm": ctrl.mean_pose_error_cm(), "controller_ms_mean": stats["controller_ms_mean"],
              "fps": stats["fps"], "contact_sheet": stats["contact_sheet"]}
    path = os.path.join(out_dir, "physics.json")
    runner.write_json(report, path)
    echo(f"physics demo headless: {name} ({what}), {seconds:.1f} s, {report['pushes']} pushes, "
         f"{report['falls']} falls, mean joint error {report['mean_tracking_error_cm']:.1f} cm "
         f"({report['mean_pose_error_cm']:.1f} relative to the root), "
         f"{stats['controller_ms_mean']:.2f} ms/tick; frames and {path} in {out_dir}")
    return report
