"""The physics tracker's GPU session: train the policy with PPO on MJX, then
measure MJX environment throughput on the GPU, in one run with a deadline.

It is what was run on the device machine (a leased H100/H200 without network)
to make the shipped policy and the GPU rows of BENCHMARKS.md:

    python -m controllers.physics.clips --out .devrun/walk-run.clips.npz --humanoid .devrun/humanoid.json
    python -m bench.physics_gpu --db .devrun/walk-run.clips.npz --humanoid .devrun/humanoid.json \\
        --out $OUT --budget 545 --train-seconds 400 --sizes 4096,32768,1024 -- \\
        --tag content=walk,run --tag style=normal --num-envs 8192 --unroll 16 --minibatches 8 \\
        --epochs 4 --steps 3e8 --checkpoint-every 10 --seed 0                     # there (an H200)

(The shipped policy: that, then the same again with `--budget 270
--train-seconds 265 --sizes ""` and `--resume` after `--`, the first call's
checkpoint.npz and log.jsonl copied into $OUT/walk/.)

Writes under --out: walk/ (the training run folder: humanoid.json,
checkpoint.npz, policy.npz, log.jsonl, config.json) and gpu_bench.json
(device, versions, the training summary, env steps/s per batch size). The
training stops at --train-seconds (compile included) or --steps, whichever
comes first; throughput sizes that would run past --budget are skipped.
Extra arguments after `--` go to `anim train policy` (`--resume` among them
goes on from a checkpoint.npz already in OUT/walk/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    t0 = time.perf_counter()
    p = argparse.ArgumentParser(prog="python -m bench.physics_gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", required=True, help="database or clip pack with the reference clips")
    p.add_argument("--out", required=True, help="folder for the run and gpu_bench.json")
    p.add_argument("--humanoid", help="humanoid.json to train (default: measured from --db)")
    p.add_argument("--budget", type=float, default=560.0, help="seconds for the whole session")
    p.add_argument("--train-seconds", type=float, default=400.0, help="seconds for training, compile included")
    p.add_argument("--sizes", default="4096,16384,65536", help="env counts for the throughput rows")
    p.add_argument("--device", default="gpu", choices=["gpu", "cpu", "auto"])
    a, rest = p.parse_known_args(argv)
    rest = [x for x in rest if x != "--"]

    from controllers.physics import train as tr
    run_dir = os.path.join(a.out, "walk")
    os.makedirs(run_dir, exist_ok=True)
    resume = ["--humanoid", a.humanoid] if a.humanoid else []
    tp = argparse.ArgumentParser()
    tr.add_arguments(tp)
    targs = tp.parse_args(["--db", a.db, "--out", run_dir, "--device", a.device,
                           "--time-limit", str(a.train_seconds), *resume, *rest])
    cfg = tr.config_from_args(targs)

    import jax
    import mujoco
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "jax": jax.__version__,
              "mujoco": mujoco.__version__, "backend": jax.default_backend(),
              "device": str(jax.devices()[0].device_kind) if jax.devices() else "?",
              "train_command": "anim train policy " + " ".join(
                  ["--db", a.db, "--out", run_dir, "--device", a.device, *resume, *rest])}
    print(json.dumps(report), flush=True)
    path = os.path.join(a.out, "gpu_bench.json")

    def dump():
        from anim.fileio import write_text
        write_text(path, json.dumps(report, indent=1))

    last = tr.train(cfg, resume=targs.resume)
    rows = []
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        for line in f:
            rows.append(json.loads(line))
    report["training"] = {"iterations": len(rows), "env_steps": rows[-1]["env_steps"] if rows else 0,
                          "wall_s": rows[-1]["wall_s"] if rows else 0,
                          "compile_s": rows[0].get("compile_s") if rows else None,
                          "steps_per_s_median": sorted(r["steps_per_s"] for r in rows[1:])[len(rows[1:]) // 2]
                          if len(rows) > 1 else None,
                          "num_envs": cfg.ppo.num_envs, "batch": cfg.ppo.batch_size, "last": last}
    dump()

    from controllers.physics import bench, clips, humanoid as hum
    db = clips.load_motion(a.db)
    h = hum.load(os.path.join(run_dir, "humanoid.json"), db.skeleton)
    report["throughput"] = []
    for n in [int(x) for x in a.sizes.split(",") if x]:
        left = a.budget - (time.perf_counter() - t0)
        if left < 75:
            report["throughput"].append({"envs": n, "note": f"skipped: {left:.0f} s of the budget left"})
            continue
        report["throughput"] += bench.mjx_throughput(db, h, cfg.env, (n,), iters=20)
        print(json.dumps(report["throughput"][-1]), flush=True)
        dump()
    report["session_s"] = time.perf_counter() - t0
    dump()
    print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
