"""Run the benchmarks and write BENCHMARKS.md.

    python -m bench                 every benchmark
    python -m bench search          only the named ones
    python -m bench --list

Each benchmark rewrites its own section of BENCHMARKS.md (other sections are
kept), headed with the machine and the date. Compare ratios within one run:
these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "BENCHMARKS.md")

BENCHMARKS = {
    "search": ("bench.search_db", "Motion database and nearest-neighbour search (issue 2)"),
    "motion_matching": ("bench.motion_matching", "Interactive motion matching and the viewer (issue 3)"),
    "learned": ("bench.learned", "Learned motion matching against motion matching (issue 4)"),
    "vr": ("bench.vr", "Sparse-VR full-body prediction (issue 5)"),
    "physics": ("controllers.physics.bench", "Physics tracking (issue 6)"),
    "live_physics": ("bench.live_physics", "The physics character driven live: motion matching tracked in MuJoCo "
                                           "(issue 17)"),
    "other_skeletons": ("bench.other_skeletons", "Any BVH skeleton through the engine: the CMU takes on a 101-joint "
                                                 "rig (issue 22)"),
    "amp": ("bench.amp", "The style reward (AMP) against tracking alone, same budget (issue 19)"),
    "native": ("bench.native", "The native runtime core against Python (issue 21)"),
    "vr_physics": ("bench.vr_physics", "The VR avatar under the physics stage (issue 23)"),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(out) + "\n"


def write_section(key: str, title: str, body: str) -> None:
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    section = f"{start}\n## {title}\n\nMachine: {machine()}. Date: {stamp}.\n\n{body.strip()}\n{end}"
    text = open(OUT).read() if os.path.exists(OUT) else (
        "# Benchmarks\n\nWritten by `python -m bench` (`make bench`). Each section says the machine and "
        "date it was measured on; compare ratios within a section.\n")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    from anim.fileio import write_text
    write_text(OUT, text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}")
    p.add_argument("--list", action="store_true", help="list the benchmarks")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run (not for the record)")
    args = p.parse_args(argv)
    if args.list:
        for k, (_, title) in BENCHMARKS.items():
            print(f"{k:10} {title}")
        return 0
    names = args.names or list(BENCHMARKS)
    for n in names:
        if n not in BENCHMARKS:
            p.error(f"unknown benchmark {n!r}; known: {', '.join(BENCHMARKS)}")
    import importlib

    for n in names:
        module, title = BENCHMARKS[n]
        t0 = time.perf_counter()
        print(f"== {n}: {title}", flush=True)
        body = importlib.import_module(module).run(quick=args.quick)
        write_section(n, title, body)
        print(f"== {n} done in {time.perf_counter() - t0:.0f} s -> {OUT}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
