"""Issue 22's benchmark: a skeleton that is not Bandai Namco's through the engine.

The CMU takes on the Character Creator rig (../shared/mocap/other-skeletons/
cmu-iclone: 12 files, 101 joints, two roots, root channels relative to the
OFFSET) built with a plain `anim build-db --data DIR`, against the Bandai Namco
normal-style locomotion database and a nine-clip database of it, on the shipped
stick scripts: the same metrics as `anim run --input all`, with the acceleration
limiter's drift bound and without it (AccelerationLimiter.MAX_DRIFT 0: the
limiter as it was). Then the physics humanoid of each rig tracking its walks:
PD alone, and on the CC rig the policy shipped for it.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from bench.__main__ import table

SCRIPTS = ("walk", "run", "turns", "circles", "stop_start", "strafe")
NINE = ["--dataset", "bandai-namco-2", "--tag", "style=normal", "--tag", "content=walk,run,walk-turn-left",
        "--tag", "take=001,002,003"]


def _build(args, out, cache) -> float:
    from anim_app.cli import main
    old = os.environ.get("ANIM_CACHE_DIR")
    os.environ["ANIM_CACHE_DIR"] = cache
    try:
        t = time.perf_counter()
        if main(["build-db", *args, "--out", out, "--quiet"]) != 0:
            raise RuntimeError(f"build-db {args} failed")
        return time.perf_counter() - t
    finally:
        if old is None:
            os.environ.pop("ANIM_CACHE_DIR", None)
        else:
            os.environ["ANIM_CACHE_DIR"] = old


def _scripts(db, label, max_drift, seconds=None) -> list[dict]:
    from anim import runner, scripts
    from controllers.motion_matching import MotionMatchingController
    from controllers.motion_matching.runtime import AccelerationLimiter

    keep = AccelerationLimiter.MAX_DRIFT
    AccelerationLimiter.MAX_DRIFT = max_drift
    rows = []
    try:
        for name in SCRIPTS:
            ctrl = MotionMatchingController(db)
            rec = runner.run(ctrl, scripts.load(name), seconds)
            m = runner.evaluate(rec, db, ctrl.speeds, series=False)
            rows.append({"database": label, "drift bound (m)": max_drift, "script": name,
                         "worst response (s)": m["responsiveness"]["worst_key_response_s"] or float("nan"),
                         "heading err (deg)": m["heading_error_deg"]["mean"],
                         "skating (cm/s)": m["foot_skating"]["mean_cm_s"],
                         "max accel / p99.9": m["smoothness"]["ratio"],
                         "toes up to (m)": m["ground"]["toe_max_m"], "head down to (m)": m["ground"]["head_min_m"],
                         "frames held": ctrl.stats.get("limited", 0), "let past": ctrl.stats.get("drift_bound", 0),
                         "tick p50 (ms)": float(np.percentile(rec.tick_ms, 50))})
    finally:
        AccelerationLimiter.MAX_DRIFT = keep
    return rows


def _pd(db, label, clips, policy=None) -> dict:
    from controllers.physics.runtime import PhysicsController

    first, errs, fell = [], [], []
    h = None
    for c in clips:
        ctrl = PhysicsController(db, c, policy)
        h = ctrl.h
        fall = ctrl.play_to_end()
        first.append(fall if fall is not None else (ctrl.clip_rot.shape[0] - 1) / 60)
        if fall is not None:
            fell.append(c)
        errs.append(ctrl.mean_pose_error_cm())
    return {"rig": label, "tracking": os.path.basename(policy) if policy else "PD alone",
            "bodies": len(h.joints), "actuators": h.nu, "walks": len(clips),
            "walks without a fall": len(clips) - len(fell),
            "s before the first fall (mean)": float(np.mean(first)), "pose error (cm)": float(np.mean(errs))}


def run(quick: bool = False) -> str:
    import mocap_data
    from anim import database

    cmu = mocap_data.mocap_root() / "other-skeletons" / "cmu-iclone"
    if not cmu.is_dir():
        return f"The CMU takes on the CC rig are not at {cmu}: nothing measured.\n"
    tmp = tempfile.mkdtemp(prefix="bench-skel-")
    paths = {k: os.path.join(tmp, f"{k}.animdb") for k in ("cmu", "bandai", "nine")}
    builds = [{"database": "CMU on the CC rig (12 takes, 101 joints)",
               "command": f"anim build-db --data {os.path.relpath(cmu)}",
               "cold cache (s)": _build(["--data", str(cmu)], paths["cmu"], os.path.join(tmp, "c1")),
               "warm cache (s)": _build(["--data", str(cmu)], paths["cmu"], os.path.join(tmp, "c1"))},
              {"database": "Bandai Namco normal-style locomotion (22 joints)", "command": "anim build-db",
               "cold cache (s)": _build([], paths["bandai"], os.path.join(tmp, "c2")),
               "warm cache (s)": _build([], paths["bandai"], os.path.join(tmp, "c2"))}]
    _build(NINE, paths["nine"], os.path.join(tmp, "c2"))
    dbs = {k: database.load(p) for k, p in paths.items()}
    for row, k in zip(builds, ("cmu", "bandai")):
        row["frames"] = dbs[k].num_frames
        row["clips (with mirrors)"] = dbs[k].num_clips
    seconds = 5.0 if quick else None
    rows = []
    for k, label in (("bandai", "Bandai normal (full)"), ("nine", "Bandai nine clips"), ("cmu", "CMU / CC rig")):
        for md in (0.15, 0.0):
            rows += _scripts(dbs[k], label, md, seconds)
            print(f"  {label}, drift bound {md}: done", flush=True)
    walks = [n for n in dbs["bandai"].clip_names if "_walk_normal_" in n and "mirror" not in n][:3]
    from controllers.physics.cli import CMU_POLICY
    cmu_walks = ["002_01", "002_02", "002_03"]
    cmu_walks += [c + "_mirror" for c in cmu_walks]
    pd = [_pd(dbs["bandai"], "Bandai Namco", walks),
          _pd(dbs["cmu"], "CMU / CC rig (helpers merged)", cmu_walks)]
    if os.path.exists(CMU_POLICY):
        pd.append(_pd(dbs["cmu"], "CMU / CC rig (helpers merged)", cmu_walks, CMU_POLICY))
    imp = dbs["cmu"].meta["import"]["summary"]
    text = [
        "Commands: `anim build-db --data ../shared/mocap/other-skeletons/cmu-iclone` (no flags: units, up axis, "
        "root channels, two roots and joint roles detected), `anim build-db` (Bandai Namco normal-style "
        "locomotion), and for nine clips `anim build-db " + " ".join(NINE) + "`; then the scripts as "
        "`anim run --db FILE --input all`. Cold cache: the BVH files parsed too.", "",
        f"What the CMU build decided: units {imp['units']}, up {imp['up']}, root channels {imp['root_offset']}, "
        f"re-rooted at the hips from {', '.join(imp['rerooted']) or '-'}, floor moved for "
        f"{', '.join(imp['floor_shifted']) or '-'}; contact height "
        f"{dbs['cmu'].config.contact_height:.3f} m over planted toes at "
        f"{dbs['cmu'].meta['planted_toe_height_m']:.3f} m (Bandai Namco: 0.08 m).", "",
        table(builds), "",
        "The shipped scripts on each database. 'drift bound 0' is the acceleration limiter as it was (nothing "
        "bounds how far the shown pose drifts from the animation); 'let past': frames where the bound let a joint "
        "past the limit to stay within it of the animation.", "",
        table(rows), "",
        "The physics humanoid of each rig tracking its walks (CMU: subject 2's takes 1-3, a run among them, "
        "and their mirrors), each from its first frame until its end or a fall: PD tracking alone, and on the "
        "CC rig the policy trained for it (`controllers/physics/weights/cmu-walk.npz`, its README has the "
        "command).", "",
        table(pd)]
    return "\n".join(text) + "\n"
