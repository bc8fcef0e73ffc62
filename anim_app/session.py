"""The session runner: what `anim run` does once the database is loaded.

It builds the stage by name from the registry, runs each stick script through
the one loop (`anim.runner.run`: `anim.loop.Loop` with a recorder), measures
the motion (`anim.runner.evaluate`) and writes BVH, JSON and a summary.
"""

from __future__ import annotations

import os

from anim import runner
from anim.fileio import write_text

from . import registry


def run_command(db, db_path: str, controller: str = "mm", inputs=("walk",), seconds: float | None = None,
                out_dir: str | None = None, style: str | None = None, index: str = "kdtree",
                echo=print, weights: str | None = None, accel_limit: float | None = None,
                **stage_options) -> list[dict]:
    """What `anim run` does once the database is loaded: for each input script
    (names of shipped scripts, paths, or 'all'), run a fresh controller, write
    SCRIPT.bvh and SCRIPT.json under out_dir and print the report; with several
    scripts also a Markdown summary (summary.md). Scripts asking for styles
    the database lacks are an error, or skipped with a note under 'all'.
    accel_limit: RuntimeConfig.accel_limit (None: the database's p99.9, or
    the LMM weights'; 0: off). The controller is built by name from the
    registry (`stage_options`: e.g. kinematic=, policy=, clip= for physics)."""
    from anim import scripts as stick

    names = list(inputs)
    every = "all" in names
    if every:
        names = [str(p) for p in stick.shipped()] + [n for n in names if n != "all"]
    loaded = []
    styles = db.tag_values("style")
    for n in names:
        s = stick.load(n)
        try:
            s.check_styles(styles, db_path)
        except stick.ScriptError as e:
            if not every:
                raise
            echo(f"skipped {s.name}: {e.problem.split(';')[0]}; run it with --db "
                 f"out/databases/locomotion.animdb (built by `anim build-db --preset locomotion`)")
            continue
        loaded.append(s)
    out_dir = out_dir or os.path.join("out", "runs", controller)
    results = []
    for s in loaded:
        ctrl = registry.build_stage(controller, db, style=style, index=index, weights=weights,
                                    accel_limit=accel_limit, **stage_options)
        speeds = getattr(ctrl, "speeds", None)
        if speeds is None:
            raise ValueError(f"controller {controller!r} has no .speeds (walk/run/side/back m/s) to "
                             f"turn the stick into a desired velocity")
        rec = runner.run(ctrl, s, seconds)
        m = runner.evaluate(rec, db, speeds)
        m["database_file"] = db_path
        bvh_path = os.path.join(out_dir, f"{s.name}.bvh")
        json_path = os.path.join(out_dir, f"{s.name}.json")
        runner.write_bvh(rec, bvh_path)
        runner.write_json(m, json_path)
        echo(runner.report_text(m))
        echo(f"  wrote {bvh_path} and {json_path}\n")
        results.append(m)
    if len(results) > 1:
        table = runner.summary_table(results)
        path = os.path.join(out_dir, "summary.md")
        write_text(path, f"database: {db_path}\n\n{table}\n")
        echo(table)
        echo(f"wrote {path}")
    return results
