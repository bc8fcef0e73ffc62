"""Issue 4's benchmark: learned motion matching against motion matching (memory,
per-tick latency, decompressor error, stepper drift, projector agreement,
responsiveness and foot skating on the shipped scripts), one run."""

from __future__ import annotations


def run(quick: bool = False) -> str:
    from anim_app.cli import ensure_db
    from controllers.learned import DEFAULT_WEIGHTS
    from controllers.learned.controller import SHIPPED_WEIGHTS_NAME
    from controllers.learned.evaluate import evaluate, table

    path = ensure_db(None, "locomotion-normal")
    full = ensure_db(None, "locomotion") if not quick else None
    r = evaluate(path, DEFAULT_WEIGHTS, full_db_path=full, decompressor_frames=2000 if quick else 20_000,
                 drift_starts=20 if quick else 200, projector_queries=200 if quick else 2000, progress=True)
    return "\n".join([
        "Command: `python -m bench learned`" + (" --quick (NOT for the record)" if quick else "") + ". "
        f"Weights: `{SHIPPED_WEIGHTS_NAME}` (reproduce with `anim train lmm --db {path} "
        f"--weights {SHIPPED_WEIGHTS_NAME}`); database `{path}`; full locomotion database `{full}`.",
        "",
        table(r),
    ])
