"""`python -m viewer`: the live viewer on the procedural demo walker.

    python -m viewer                       a window; gamepad or keyboard (F1 for help)
    python -m viewer --headless out/cap    no display: PNG frames + contact sheet, prints fps
    python -m viewer --bench               offscreen renderer frames per second
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def demo_script(t: float):
    """A scripted input for headless runs: walk forward, turn left, run, strafe, stop."""
    from viewer.input import DeviceInput

    ci = DeviceInput()
    if t < 1.5:
        ci.move = np.float32([0.0, 1.0])
    elif t < 3.0:
        a = (t - 1.5) / 1.5 * math.pi / 2
        ci.move = np.float32([-math.sin(a), math.cos(a)])
    elif t < 4.5:
        ci.move, ci.run = np.float32([-1.0, 0.0]), True
    elif t < 5.5:
        ci.move, ci.strafe = np.float32([0.0, 0.6]), True
    ci.look = np.float32([0.3, 0.0]) if 2.0 < t < 4.0 else np.zeros(2, np.float32)
    ci.style_cycle = abs(t - 3.0) < 1e-6
    return ci


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m viewer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--headless", metavar="OUT_DIR", help="render offscreen into OUT_DIR instead of a window")
    p.add_argument("--seconds", type=float, default=6.0, help="headless run length (default 6)")
    p.add_argument("--frames", type=int, default=6, help="headless frames to save (default 6)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--debug", action="store_true", help="headless: debug drawing on")
    p.add_argument("--bench", action="store_true", help="measure the offscreen renderer's fps and exit")
    p.add_argument("--samples", type=int, default=0, help="--bench: MSAA samples (default 0)")
    args = p.parse_args(argv)

    if args.bench:
        from viewer.app import benchmark_render

        b = benchmark_render(args.width, args.height, samples=args.samples)
        print(f"{b['renderer']}, {b['width']}x{b['height']}, MSAA {b['samples']}: draw {b['draw_fps']:.1f} fps "
              f"({b['draw_ms']:.1f} ms), draw + read_pixels {b['draw_read_fps']:.1f} fps ({b['draw_read_ms']:.1f} ms)")
        return 0

    from viewer.app import run_headless, run_live
    from viewer.demo_pose import DemoWalker

    walker = DemoWalker()
    if args.headless:
        stats = run_headless(walker, walker.parents, demo_script, args.seconds, args.headless, args.frames,
                             width=args.width, height=args.height, show_debug=args.debug)
        print(f"{stats['frames']} frames at {stats['width']}x{stats['height']}: {stats['fps']:.1f} fps "
              f"(draw + read back alone {stats['render_fps']:.1f} fps), controller "
              f"{stats['controller_ms_mean']:.2f} ms/tick")
        print("contact sheet:", stats["contact_sheet"])
        return 0
    stats = run_live(walker, walker.parents, width=args.width, height=args.height)
    print(f"{stats['frames']} frames, {stats['fps']:.1f} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
