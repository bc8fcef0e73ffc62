"""Issue 21's benchmark: the native runtime core's tick against the Python
controller's, in one run, on the shipped stick scripts (normal-style
locomotion database; learned motion matching from the shipped weights), and
how many characters one core ticks in 1 ms.

Python: `anim.runner.run` times each `controller.step` (the numba kernels
and the kd-tree of controllers.motion_matching). Native: the C++ tool
`anim_native_bench` (export/native/tools/bench.cpp) times `anim_step` through
the C API with no Python in the loop, one character over the same ticks,
then a batch of characters ticked one after another on one thread (each at
its own place in the inputs), whose per-tick time gives the characters that
fit in 1 ms (from the mean batch tick, and from its 99th percentile).

The machines these run on are shared: another process preempting the tick
adds milliseconds to a few ticks at random. The ticks are deterministic (the
same inputs from a reset play the same frames), so every sequence is played
REPEATS times and each tick keeps its fastest time, for Python and native
alike; what remains in the p99 is the tick's own cost (the searches).
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np

from bench.__main__ import table

CHARACTERS = 64
REPEATS = 3         # each tick keeps its fastest of this many plays (Python and native alike)


def native_times(tool, runtime_file: str, inputs: str, characters: int, kind: str = "mm",
                 repeats: int = REPEATS) -> dict:
    out = subprocess.run([str(tool), runtime_file, inputs, str(characters), kind, str(repeats)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run(quick: bool = False) -> str:
    from anim import database, runner, scripts
    from anim_app.cli import ensure_db
    from controllers.learned import DEFAULT_WEIGHTS, LearnedController
    from controllers.learned.controller import SHIPPED_WEIGHTS_NAME
    from controllers.motion_matching import MotionMatchingController
    from export import native_api as na
    from export.runtime_db import write_runtime_db, write_runtime_lmm

    lib_path = na.build()
    tool = lib_path.parent / "anim_native_bench"
    path = ensure_db(None, "locomotion-normal")
    db = database.load(path)
    out_dir = os.path.join("out", "export")
    rt = os.path.join(out_dir, "locomotion-normal.animrt")
    write_runtime_db(db, rt)
    names = [p.stem for p in scripts.shipped() if not scripts.load(p).styles]
    if quick:
        names = names[:2]
    inputs = os.path.join(out_dir, "bench-inputs.bin")
    n = na.write_inputs([x for name in names for x in na.script_inputs(scripts.load(name))], inputs)

    lmm = os.path.join(out_dir, "lmm-locomotion-normal.animlmm")
    write_runtime_lmm(DEFAULT_WEIGHTS, lmm)
    rows, batch_rows, ratios = [], [], []
    for kind, label, make, runtime in (
            ("mm", "motion matching", lambda: MotionMatchingController(db), rt),
            ("lmm", "learned motion matching", lambda: LearnedController.load(DEFAULT_WEIGHTS), lmm)):
        ticks = []
        for name in names:
            runs = [runner.run(make(), scripts.load(name)).tick_ms for _ in range(1 if quick else REPEATS)]
            ticks.append(np.min(runs, axis=0))
        py = np.concatenate(ticks) * 1e3          # microseconds
        nat = native_times(tool, runtime, inputs, 8 if quick else CHARACTERS, kind, 1 if quick else REPEATS)
        one, batch = nat["one"], nat["batch"]
        pair = [
            {"controller": label, "tick": "Python", "ticks": len(py), "p50 (us)": float(np.percentile(py, 50)),
             "p99 (us)": float(np.percentile(py, 99)), "mean (us)": float(py.mean()),
             "characters in 1 ms (mean)": 1e3 / float(py.mean())},
            {"controller": label, "tick": "native C++ (C API)", "ticks": nat["ticks"], "p50 (us)": one["p50_us"],
             "p99 (us)": one["p99_us"], "mean (us)": one["mean_us"],
             "characters in 1 ms (mean)": 1e3 / one["mean_us"]},
        ]
        rows += pair
        ratios.append(f"{label}: Python / native p50 {pair[0]['p50 (us)'] / pair[1]['p50 (us)']:.1f}x, "
                      f"p99 {pair[0]['p99 (us)'] / pair[1]['p99 (us)']:.1f}x, "
                      f"mean {pair[0]['mean (us)'] / pair[1]['mean (us)']:.1f}x.")
        batch_rows.append({"controller": label, "characters": batch["characters"],
                           "batch tick p50 (us)": batch["p50_us"], "batch tick p99 (us)": batch["p99_us"],
                           "per character, mean (us)": batch["per_character_mean_us"],
                           "characters in 1 ms (mean)": batch["characters_per_ms_mean"],
                           "characters in 1 ms (p99 tick)": batch["characters_per_ms_p99"]})
        print(f"  {label}: done", flush=True)
    return "\n".join([
        "Command: `python -m bench native`" + (" --quick (NOT for the record)" if quick else "") + ". "
        f"Database `{path}` exported with `anim export runtime-db --out {rt}`, weights `{SHIPPED_WEIGHTS_NAME}` with "
        f"`anim export runtime-lmm --out {lmm}`; scripts: {', '.join(names)} "
        f"({n} ticks at 60 Hz). The native core is built by CMake (Release, g++ -O3 as CMake's Release "
        "sets it, no -march: portable x86-64 code) and plays what Python plays (tests/test_native.py). "
        "Python ticks are timed per script with a fresh controller (anim.runner); the native tool ticks "
        "the scripts' inputs one after another. "
        f"Each tick: its fastest of {1 if quick else REPEATS} plays (see bench/native.py).",
        "",
        "One character, per tick:",
        "",
        table(rows),
        " ".join(ratios),
        "",
        "A batch of characters on one thread (native): the time of one tick of all of them.",
        "",
        table(batch_rows),
    ])
