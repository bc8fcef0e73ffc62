"""Issue 21's benchmark: the native runtime core's tick against the Python
controller's, in one run, on the shipped stick scripts (normal-style
locomotion database), and how many characters one core ticks in 1 ms.

Python: `anim.runner.run` times each `controller.step` (the numba kernels
and the kd-tree of controllers.motion_matching). Native: the C++ tool
`anim_native_bench` (export/native/tools/bench.cpp) times `anim_step` through
the C API with no Python in the loop, one character over the same ticks,
then a batch of characters ticked one after another on one thread (each at
its own place in the inputs), whose per-tick time gives the characters that
fit in 1 ms (from the mean batch tick, and from its 99th percentile).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess

import numpy as np

from bench.__main__ import table

CHARACTERS = 64


def write_inputs(names, path: str) -> int:
    """The ticks of the named scripts, concatenated, as the tool's input file (int32 count, AnimInput structs)."""
    from anim import scripts
    from export import native_api as na

    blobs = []
    for name in names:
        s = scripts.load(name)
        for i in range(int(round(s.duration * 60))):
            ci = s(i / 60.0)
            x = na.AnimInput()
            m = np.asarray(ci.move, np.float32)
            x.move_x, x.move_z = float(m[0]), float(m[1])
            if ci.facing is not None:
                f = np.asarray(ci.facing, np.float32)
                x.facing_x, x.facing_z, x.has_facing = float(f[0]), float(f[1]), 1
            x.run, x.style = int(bool(ci.run)), -1
            blobs.append(bytes(x))
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(blobs)) + b"".join(blobs))
    return len(blobs)


def native_times(tool, runtime_file: str, inputs: str, characters: int, kind: str = "mm") -> dict:
    out = subprocess.run([str(tool), runtime_file, inputs, str(characters)] + (["lmm"] if kind == "lmm" else []),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run(quick: bool = False) -> str:
    from anim import database, runner, scripts
    from anim.cli import ensure_db
    from controllers.motion_matching import MotionMatchingController
    from export import native_api as na
    from export.runtime_db import write_runtime_db

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
    n = write_inputs(names, inputs)

    ticks = []
    for name in names:
        ctrl = MotionMatchingController(db)
        ticks.append(runner.run(ctrl, scripts.load(name)).tick_ms)
    py = np.concatenate(ticks) * 1e3          # microseconds
    nat = native_times(tool, rt, inputs, 8 if quick else CHARACTERS)
    one, batch = nat["one"], nat["batch"]
    rows = [
        {"tick": "Python (numba kernels, kd-tree)", "ticks": len(py), "p50 (us)": float(np.percentile(py, 50)),
         "p99 (us)": float(np.percentile(py, 99)), "mean (us)": float(py.mean()),
         "characters in 1 ms (mean)": 1e3 / float(py.mean())},
        {"tick": "native C++ core (C API)", "ticks": nat["ticks"], "p50 (us)": one["p50_us"],
         "p99 (us)": one["p99_us"], "mean (us)": one["mean_us"],
         "characters in 1 ms (mean)": 1e3 / one["mean_us"]},
    ]
    ratio = {k: rows[0][k] / rows[1][k] for k in ("p50 (us)", "p99 (us)", "mean (us)")}
    batch_rows = [{"characters": batch["characters"], "batch tick p50 (us)": batch["p50_us"],
                   "batch tick p99 (us)": batch["p99_us"], "per character, mean (us)": batch["per_character_mean_us"],
                   "characters in 1 ms (mean)": batch["characters_per_ms_mean"],
                   "characters in 1 ms (p99 tick)": batch["characters_per_ms_p99"]}]
    return "\n".join([
        "Command: `python -m bench native`" + (" --quick (NOT for the record)" if quick else "") + ". "
        f"Database `{path}` exported with `anim export runtime-db --out {rt}`; scripts: {', '.join(names)} "
        f"({n} ticks at 60 Hz). The native core is built by CMake (Release, g++ -O3 as CMake's Release "
        "sets it, no -march: portable x86-64 code) and gives the same frames as Python "
        "(tests/test_native.py).",
        "",
        "One character, per tick:",
        "",
        table(rows),
        f"Python / native: p50 {ratio['p50 (us)']:.1f}x, p99 {ratio['p99 (us)']:.1f}x, mean {ratio['mean (us)']:.1f}x.",
        "",
        f"A batch of characters on one thread (native): the time of one tick of all of them.",
        "",
        table(batch_rows),
    ])
