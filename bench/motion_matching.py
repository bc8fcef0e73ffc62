"""Issue 3's benchmark: the motion-matching controller on the shipped stick
scripts (normal-style locomotion database), per-tick cost, and the viewer's
software-OpenGL frame rate.
"""

from __future__ import annotations

import numpy as np

from bench.__main__ import table


def _name(m: dict) -> str:
    """The script's name of a metrics report."""
    return m["script"].split("/")[-1].split(".")[0]


def run(quick: bool = False) -> str:
    from anim import metrics, runner, scripts
    from anim_app.cli import ensure_db
    from anim import database
    from controllers.motion_matching import MotionMatchingController, RuntimeConfig

    path = ensure_db(None, "locomotion-normal")
    db = database.load(path)
    results, ticks, limit_rows = [], [], []
    names = [p.stem for p in scripts.shipped() if not scripts.load(p).styles]
    for name in names:
        ctrl = MotionMatchingController(db)
        rec = runner.run(ctrl, scripts.load(name), 5.0 if quick else None)
        m = runner.evaluate(rec, db, ctrl.speeds, series=False)
        results.append(m)
        ticks.append(rec.tick_ms)
        # the same script without the acceleration limit: what it holds back, and by how much it moves the pose
        free = MotionMatchingController(db, RuntimeConfig(accel_limit=0.0))
        frec = runner.run(free, scripts.load(name), 5.0 if quick else None)
        g, fg = rec.global_positions().astype(np.float64), frec.global_positions()
        moved = np.linalg.norm(g - fg, axis=-1).max(axis=1)
        fs = metrics.smoothness(fg, rec.fps, m["smoothness"]["reference_m_s2"])
        limit_rows.append({"script": name, "frames": len(g), "frames held": ctrl.stats.get("limited", 0),
                           "largest shift (cm)": round(100 * float(moved.max()), 2),
                           "max accel / p99.9, limited": round(m["smoothness"]["ratio"], 3),
                           "without the limit": round(fs["ratio"], 2),
                           "skating (cm/s), limited": round(m["foot_skating"]["mean_cm_s"], 2),
                           "without": round(runner.evaluate(frec, db, free.speeds, series=False)
                                            ["foot_skating"]["mean_cm_s"], 2)})
        print(f"  {name}: done", flush=True)
    ticks = np.concatenate(ticks)
    tick_row = {"ticks": len(ticks), "p50 (ms)": float(np.percentile(ticks, 50)),
                "p99 (ms)": float(np.percentile(ticks, 99)), "p99.9 (ms)": float(np.percentile(ticks, 99.9)),
                "max (ms)": float(ticks.max())}

    # styles: the all-styles locomotion database
    style_rows = []
    if not quick:
        lpath = ensure_db(None, "locomotion")
        ldb = database.load(lpath)
        ctrl = MotionMatchingController(ldb)
        rec = runner.run(ctrl, scripts.load("styles"))
        m = runner.evaluate(rec, ldb, ctrl.speeds, series=False)
        for c in m["style_changes"]:
            style_rows.append({"change": f"{c.get('from')} -> {c.get('to')}", "at (s)": c.get("time_s"),
                               "on screen after (s)": c.get("latency_s")})
        results.append(m)

    render = []
    try:
        from viewer.app import benchmark_render

        for w, h in ((1280, 720), (640, 360)):
            b = benchmark_render(w, h, frames=30 if quick else 120)
            render.append({"size": f"{w}x{h}", **{k: v for k, v in b.items() if isinstance(v, (int, float))}})
    except Exception as e:  # no OpenGL here: say so in the table rather than fail the whole run
        render.append({"size": "-", "error": f"{type(e).__name__}: {e}"})

    ref = runner.database_reference(db)
    worst = [m["responsiveness"]["worst_key_response_s"] for m in results if m["responsiveness"]["key_events"]]
    targets = [
        {"target": "90% of walk-to-run / 180-degree change within 0.5 s",
         "measured": ", ".join(f"{_name(m)} "
                               f"{m['responsiveness']['worst_key_response_s']:.2f}"
                               for m in results if m["responsiveness"]["key_events"]),
         "met": all(w <= 0.5 for w in worst)},
        {"target": "foot skating in contact <= 2 cm/s mean",
         "measured": ", ".join(f"{_name(m)} {m['foot_skating']['mean_cm_s']:.1f}"
                               for m in results),
         "met": all(m["foot_skating"]["mean_cm_s"] <= 2 for m in results)},
        {"target": "no joint acceleration above the database's p99.9",
         "measured": ", ".join(f"{_name(m)} {m['smoothness']['ratio']:.3f}x"
                               for m in results),
         "met": all(m["smoothness"]["ratio"] <= 1 for m in results)},
        {"target": "(also) largest joint acceleration <= the database's own largest, and "
                   "<= 1% of joint-frames above its p99.9",
         "measured": f"largest {max(m['smoothness']['max_m_s2'] for m in results):.0f} m/s^2 "
                     f"(database {ref['accel_max_m_s2']:.0f}); above: "
                     + ", ".join(f"{_name(m)} "
                                 f"{100 * m['smoothness']['above_fraction']:.2f}%" for m in results),
         "met": all(m["smoothness"]["max_m_s2"] <= m["database"]["accel_max_m_s2"]
                    and m["smoothness"]["above_fraction"] <= 0.01 for m in results)},
        {"target": "(added) planted feet on the ground: no toe shown in contact more than 1 cm above the "
                   "database's contact height",
         "measured": ", ".join(f"{_name(m)} "
                               f"{100 * m['ground']['planted_toe_height_max_m']:.1f} cm" for m in results)
                     + f" (contact height {100 * db.config.contact_height:.0f} cm)",
         "met": all(m["ground"]["planted_toe_height_max_m"] <= m["ground"]["contact_height_m"] + 0.01
                    for m in results)},
        {"target": "per tick <= 1 ms p99", "measured": f"{tick_row['p99 (ms)']:.2f} ms",
         "met": tick_row["p99 (ms)"] <= 1},
    ]
    clip_rows = [{"clips of": t, "clips": c["clips"], "with a joint above the p99.9": f"{100 * c['above_p999']:.0f}%",
                  "median largest / p99.9": round(c["median_max_ratio"], 2)}
                 for t, c in ref["clips_by_content"].items()]
    body = [
        "Command: `python -m bench motion_matching`" + (" --quick (NOT for the record)" if quick else "") + ". "
        f"Database: `{path}` ({db.describe()}); the styles row uses the all-styles locomotion database.",
        "",
        "### Controller on the shipped scripts",
        "",
        runner.summary_table(results),
        "",
        "Response: time to 90% of the asked velocity after a walk-to-run or >= 150-degree change. Skating: "
        "mean horizontal toe speed while the pose says the foot is in contact. A planted foot that its leg can "
        "no longer reach (or that the clip's foot left 0.6 m behind) is not dragged: it is lifted and stepped "
        "to the clip's foot and planted again, and the pose reports it as not in contact meanwhile; 'steps' is "
        "the share of the clip's contact frames spent so, and 'skating incl. steps' the same mean over the "
        "clip's contacts, steps counted. Planted toe max: the highest toe the pose shows in contact (the "
        "database labels contacts only under its contact height, 8 cm). Accelerations: the largest "
        "joint acceleration over the database's 99.9th percentile (the JSON reports also give the share of "
        "joint-frames above it), held under it by the tick's last stage (RuntimeConfig.accel_limit).",
        "",
        "### The database's own clips against its p99.9 joint acceleration "
        f"({ref['accel_p999_m_s2']:.1f} m/s^2; largest {ref['accel_max_m_s2']:.0f})",
        "",
        "What playing each clip exactly as captured gives: a script that runs plays clips that all go above "
        "the p99.9, so 'no joint acceleration above it' cannot hold for a controller that plays the data "
        "faithfully.",
        "",
        table(clip_rows),
        "### The acceleration limit (RuntimeConfig.accel_limit = the database's p99.9)",
        "",
        "Each script played again without it (accel_limit=0): frames held back, the largest distance "
        "between a joint shown with and without it, and the largest acceleration and the skating of both.",
        "",
        table(limit_rows),
        "### Per-tick cost (all scripts, search included, from Python)",
        "",
        table([tick_row]),
    ]
    if style_rows:
        body += ["### Style changes (all-styles locomotion database)", "", table(style_rows)]
    body += ["### Viewer, offscreen software OpenGL (Mesa llvmpipe, this machine)", "", table(render),
             "### Targets", "", table(targets)]
    return "\n".join(body)
