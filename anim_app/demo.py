"""The gamepad demo (`anim demo`, `make demo`).

With a display: a live window, a motion-matching character driven by a
gamepad (hot-plugged) or the keyboard; Tab cycles styles, Q strafes, G shows
the debug drawing, F1 the help. Without one (CI, a server): the same
controller runs a scripted session headless, writes PNG frames, a contact
sheet, the motion as BVH and the metrics under `out/demo/`, and prints them.
"""

from __future__ import annotations

import os
import sys

import numpy as np

DEMO_SCRIPT = "demo"       # anim/scripts/demo.stick


def has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def bone_mask(skeleton) -> np.ndarray:
    """Hide the link from the ground-level simulation bone to the hips."""
    mask = np.ones(skeleton.num_joints, bool)
    for j, p in enumerate(skeleton.parents):
        if p == 0:
            mask[j] = False
    return mask


def start_style(styles: list) -> str | None:
    return "normal" if "normal" in styles else (styles[0] if styles else None)


def learned_controller(db, echo=print):
    """The learned-motion-matching controller from the shipped weights, to
    switch to live (None, with a note, when they are absent or for another skeleton)."""
    from controllers.learned import DEFAULT_WEIGHTS, LearnedController, WeightsError

    try:
        return LearnedController.load(DEFAULT_WEIGHTS, skeleton=db.skeleton)
    except WeightsError as e:
        echo(f"learned motion matching not available: {e}")
        return None


def run_demo(db, db_path: str, headless: bool | None = None, out_dir: str = os.path.join("out", "demo"),
             script: str = DEMO_SCRIPT, seconds: float | None = None, width: int = 1280, height: int = 720,
             echo=print) -> dict:
    from anim import runner
    from controllers.motion_matching import MotionMatchingController

    style = start_style(db.tag_values("style"))
    controller = MotionMatchingController(db, style=style)
    parents = db.skeleton.parents
    headless = (not has_display()) if headless is None else headless
    if not headless:
        from viewer.app import run_live

        controllers = {"motion matching": controller}
        learned = learned_controller(db, echo)
        if learned is not None:
            controllers["learned motion matching"] = learned
        echo(f"live demo on {db_path}: {db.describe()}\n"
             "  WASD / left stick move, Shift / RT run, Q / LT strafe, Tab / Y style, G debug, F1 help, "
             "M / X switch motion matching <-> learned, Esc quit")
        return run_live(controllers, parents, width=width, height=height, contact_joints=controller.toes,
                        bone_mask=bone_mask(db.skeleton), title="anim demo: motion matching")

    from viewer.app import run_headless

    s = session_script(script, db, db_path)
    seconds = seconds or s.duration
    os.makedirs(out_dir, exist_ok=True)
    echo(f"no display: scripted session '{s.name}' ({seconds:.0f} s) headless on {db_path}")
    # 1. the metrics, from a run without rendering
    rec = runner.run(controller, s, seconds)
    metrics = runner.evaluate(rec, db, controller.speeds, series=False)
    runner.write_bvh(rec, os.path.join(out_dir, f"{s.name}.bvh"))
    runner.write_json(metrics, os.path.join(out_dir, f"{s.name}.json"))
    echo(runner.report_text(metrics))
    # 2. the pictures: the same session rendered offscreen, debug drawing on
    controller.debug = True
    times = list(np.linspace(1.0, seconds - 0.5, 8).round(2))
    stats = run_headless(controller, parents, s, seconds, out_dir, frames_to_save=times, width=width,
                         height=height, render_every=4, contact_joints=controller.toes,
                         bone_mask=bone_mask(db.skeleton), show_debug=True, prefix="demo")
    controller.debug = False
    echo(f"rendered {stats['frames']} frames at {stats['width']}x{stats['height']} "
         f"({stats['render_fps']:.0f} fps offscreen, software OpenGL here); wrote {len(stats['saved'])} PNGs "
         f"and {stats['contact_sheet']}")
    return {"metrics": metrics, "render": stats}


def session_script(script: str, db, db_path: str):
    """The headless session's stick script for this database: a --data
    folder without style tags plays it with its style keys skipped; a
    database that lacks a style the script asks for is an error naming both."""
    import dataclasses

    from anim import scripts
    s = scripts.load(script)
    if not db.tag_values("style"):
        s = dataclasses.replace(s, keys=[dataclasses.replace(k, style=None) for k in s.keys])
    s.check_styles(db.tag_values("style"), db_path)
    return s


PHYSICS_SCRIPT = "demo"    # the same stick session, played by the physics character
PUSH_TIMES = (6.0, 12.5, 19.0)   # headless session: pushes (s), from the left, the front and the right


def physics_source(script, pushes=PUSH_TIMES, fps: float = 60.0):
    """The script's input with a 'push' action at each of `pushes` (seconds),
    each from another direction (the character's left, then along the stick
    turned 90 degrees, then the right), for the headless physics session."""
    from anim.control import ControlInput

    ticks = {int(round(t * fps)): k for k, t in enumerate(pushes)}

    def source(t):
        ci = script(t)
        k = ticks.get(int(round(t * fps)))
        if k is None:
            return ci
        angle = (0.0, 0.5 * np.pi, -0.5 * np.pi)[k % 3]
        c, s_ = np.cos(angle), np.sin(angle)
        m = ci.move
        move = np.array([c * m[0] + s_ * m[1], -s_ * m[0] + c * m[1]], np.float32) if np.any(m) else m
        return ControlInput(move=move, facing=ci.facing, run=ci.run, style=ci.style,
                            actions=frozenset({"push"}))
    source.duration = getattr(script, "duration", None)
    source.path = getattr(script, "path", "")
    return source


def run_physics_demo(db, db_path: str, headless: bool | None = None,
                     out_dir: str = os.path.join("out", "demo", "physics"), script: str = PHYSICS_SCRIPT,
                     seconds: float | None = None, width: int = 1280, height: int = 720, policy: str | None = None,
                     kinematic: str = "mm", echo=print) -> dict:
    """The physics character driven live: the MuJoCo humanoid tracks motion
    matching (or `kinematic`), which the gamepad or keyboard drives; the
    kinematic target is the ghost (K hides it), F / pad B pushes. Headless:
    the demo's stick session with three pushes, its metrics (falls, tracking
    error, responsiveness, skating, tick time), PNG frames and a contact sheet."""
    from anim import runner

    from . import registry

    style = start_style(db.tag_values("style"))
    stage = registry.build_stage("physics", db, kinematic=kinematic, policy=policy, style=style)
    parents = db.skeleton.parents
    headless = (not has_display()) if headless is None else headless
    what = f"policy {stage.meta.get('path', policy) if policy else 'shipped'}" if stage.policy is not None \
        else "PD tracking without a policy"
    if not headless:
        from viewer.app import run_live

        echo(f"live physics demo on {db_path}: the MuJoCo humanoid tracks {kinematic} ({what}).\n"
             "  WASD / left stick move, Shift / RT run, Q / LT strafe, Tab / Y style, F / B push, K ghost, "
             "G debug, F1 help, R reset, Esc quit")
        return run_live(stage, parents, width=width, height=height, bone_mask=bone_mask(db.skeleton),
                        title="anim demo: physics")
    from viewer.app import run_headless

    s = session_script(script, db, db_path)
    seconds = seconds or s.duration
    src = physics_source(s)
    os.makedirs(out_dir, exist_ok=True)
    at = [f"{t:g}" for t in PUSH_TIMES if t < seconds]
    echo(f"physics session '{s.name}' ({seconds:.0f} s, " + (f"pushes at {', '.join(at)} s" if at else "no push")
         + f") headless on {db_path}")
    rec = runner.run(stage, src, seconds)
    metrics = runner.evaluate(rec, db, stage.speeds, series=False)
    runner.write_bvh(rec, os.path.join(out_dir, f"{s.name}-physics.bvh"))
    runner.write_json(metrics, os.path.join(out_dir, f"{s.name}-physics.json"))
    echo(runner.report_text(metrics))
    times = [t for t in (1.0, PUSH_TIMES[0] + 0.3, 9.0, PUSH_TIMES[1] + 0.3, 16.0, PUSH_TIMES[2] + 0.3,
                         seconds - 0.5) if t < seconds]
    stats = run_headless(stage, parents, src, seconds, out_dir, frames_to_save=times, width=width,
                         height=height, render_every=4, bone_mask=bone_mask(db.skeleton), prefix="physics")
    echo(f"rendered {stats['frames']} frames; wrote {len(stats['saved'])} PNGs and {stats['contact_sheet']}")
    return {"metrics": metrics, "render": stats}
