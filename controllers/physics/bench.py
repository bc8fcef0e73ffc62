"""Benchmarks of the physics tracker: `run(quick=False) -> markdown`.

* MJX environment throughput on this machine (env steps/s of the vmapped,
  jitted step with auto-reset, 60 Hz steps of `substeps` physics steps each),
  for several batch sizes; the compile time of each size is reported apart.
* C MuJoCo on the same model: a single-thread loop of steps (mj_step, as MJX integrates) with the
  reference's PD targets (physics steps/s and 60 Hz env steps/s).
* Per-tick latency (p50 / p99) of `PhysicsController.step`: policy MLP in
  numpy + substeps in C MuJoCo + pose conversion (a trained policy if one
  exists, else an untrained network of the same shape: same cost).
* Quality of a trained policy on held-out clips: fraction of episodes (each
  held-out clip from its start, up to 10 s) without a fall, and the mean
  global joint position error (cm).

    python -m controllers.physics.bench [--quick] [--policy FILE]
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

DEFAULT_DB = os.path.join("out", "databases", "locomotion-normal.animdb")
DEFAULT_POLICY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "walk-run.npz")


def _humanoid(db, policy):
    from . import humanoid as hum
    from . import ppo
    if policy and os.path.exists(policy):
        _, h, env_cfg, _ = ppo.load_policy(policy, db.skeleton)
        return h, env_cfg
    from .env import EnvConfig
    return hum.from_database(db), EnvConfig()


def mjx_throughput(db, h, env_cfg, sizes=(256, 1024, 4096), iters: int = 5, budget_s: float = 900.0) -> list:
    """[{envs, compile_s, env_steps_per_s, physics_steps_per_s}] (stops when the
    time budget is spent; compile times are separate from the rate)."""
    import jax
    import jax.numpy as jnp

    from . import env as envmod
    env = envmod.make_env(db, h, env_cfg)
    step = jax.jit(jax.vmap(env.step_autoreset))
    reset = jax.jit(jax.vmap(env.reset))
    rows = []
    t_start = time.perf_counter()
    for n in sizes:
        if time.perf_counter() - t_start > budget_s and rows:
            rows.append({"envs": n, "compile_s": None, "env_steps_per_s": None, "physics_steps_per_s": None,
                         "note": "skipped: time budget"})
            continue
        s = reset(jax.random.split(jax.random.PRNGKey(0), n))
        a = jnp.zeros((n, env.action_size), jnp.float32)
        t0 = time.perf_counter()
        s = step(s, a)
        jax.block_until_ready(s.obs)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(iters):
            s = step(s, a)
        jax.block_until_ready(s.obs)
        rate = n * iters / (time.perf_counter() - t0)
        rows.append({"envs": n, "compile_s": compile_s, "env_steps_per_s": rate,
                     "physics_steps_per_s": rate * env.substeps})
    return rows


def c_throughput(h, ref_qpos: np.ndarray, seconds: float = 3.0) -> dict:
    """Single-thread C MuJoCo: mj_step with the reference's PD targets."""
    import mujoco
    from .runtime import MjxMatchedStep
    m = h.model()
    d = mujoco.MjData(m)
    mj_step = MjxMatchedStep(m)
    substeps = max(1, int(round(1 / 60 / m.opt.timestep)))
    n = 0
    f = 0
    d.qpos[:] = ref_qpos[0]
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        f = (f + 1) % len(ref_qpos)
        if f == 0:
            d.qpos[:] = ref_qpos[0]
            d.qvel[:] = 0
        d.ctrl[:] = ref_qpos[f, 7:]
        for _ in range(substeps):
            mj_step(m, d)
        n += 1
    dt = time.perf_counter() - t0
    return {"env_steps_per_s": n / dt, "physics_steps_per_s": n * substeps / dt, "substeps": substeps}


def batch_throughput(db, h, env_cfg, num_envs: int = 512, seconds: float = 5.0) -> dict:
    """`cpu_env.BatchTrackingEnv` (C MuJoCo on the CPU's threads, what
    `anim train policy --engine mujoco` steps): env steps/s with zero actions."""
    from .cpu_env import BatchTrackingEnv
    from .env import build_reference, select_clips
    env = BatchTrackingEnv(h, build_reference(db, h, select_clips(db, env_cfg)), env_cfg, num_envs)
    a = np.zeros((num_envs, env.action_size), np.float32)
    env.step(a)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env.step(a)
        n += num_envs
    rate = n / (time.perf_counter() - t0)
    return {"envs": num_envs, "threads": env.batch.nthread, "env_steps_per_s": rate,
            "physics_steps_per_s": rate * env.substeps}


def _untrained_policy(obs_size: int, action_size: int, hidden=(256, 256), seed: int = 0):
    from .networks import NumpyPolicy
    rng = np.random.default_rng(seed)
    sizes = (obs_size, *hidden, action_size)
    layers = [(rng.normal(size=(a, b)).astype(np.float32) * np.sqrt(1 / a), np.zeros(b, np.float32))
              for a, b in zip(sizes[:-1], sizes[1:])]
    return NumpyPolicy(layers, np.zeros(obs_size), np.ones(obs_size))


def latency(db, policy: str | None, ticks: int = 600, clip=None) -> dict:
    """p50 / p99 ms of PhysicsController.step (policy + physics + pose)."""
    from .runtime import PhysicsController
    have = bool(policy and os.path.exists(policy))
    ctrl = PhysicsController(db, clip, policy if have else None)
    if not have:
        obs = ctrl.observe()
        ctrl.policy = _untrained_policy(obs.shape[0], ctrl.h.nu)
        ctrl.policy.__call__  # noqa: B018
    from anim.loop import Loop
    ms = []
    loop = Loop(ctrl, sinks=[lambda tick: ms.append(tick.ms)])
    for _ in range(10 + ticks):
        loop.tick()
    del ms[:10]
    physics = []
    import mujoco
    for _ in range(200):
        t0 = time.perf_counter()
        for _ in range(ctrl.substeps):
            ctrl.mj_step(ctrl.model, ctrl.data)
        physics.append(1e3 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    obs = ctrl.observe()
    for _ in range(200):
        ctrl.policy(obs)
    mlp_ms = 1e3 * (time.perf_counter() - t0) / 200
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "physics_p50_ms": float(np.percentile(physics, 50)), "mlp_ms": mlp_ms,
            "trained_policy": have}


def quality(db, policy: str | None, seconds: float = 10.0, max_clips: int | None = None,
            humanoid=None, env_cfg=None, split: str = "holdout", starts: int = 1, clip_tags: tuple = ()) -> dict:
    """Held-out clips of the policy's tags (split "train": its training
    clips), each from its start for up to `seconds` (clips shorter than that
    end with the clip): fraction without a fall, mean global joint error (cm),
    mean episode seconds. `starts` > 1 also starts each clip at that many
    evenly spaced frames (one episode each), for a less noisy score on few
    clips. With policy None: the PD-only baseline (reference targets, no
    residual) on `humanoid`. clip_tags: other clips than the policy's (as
    EnvConfig.tags), e.g. mocap clips for a policy trained on streams."""
    from . import ppo
    from .env import EnvConfig, select_clips
    from .runtime import PhysicsController, PhysicsRuntimeConfig
    if policy is not None:
        _, humanoid, env_cfg, _ = ppo.load_policy(policy, db.skeleton)
    env_cfg = env_cfg or EnvConfig()
    if clip_tags:
        env_cfg = dataclasses.replace(env_cfg, tags=clip_tags)
    clips = select_clips(db, dataclasses.replace(env_cfg, split=split))
    if max_clips:
        clips = clips[:max_clips]
    ok, errs, pose_errs, lengths = 0, [], [], []
    ctrl = None
    from anim.loop import Loop
    for c in clips:
        if ctrl is None:
            ctrl = PhysicsController(db, c, policy, humanoid=humanoid, env_config=env_cfg,
                                     config=PhysicsRuntimeConfig(loop=False, fall_reset_seconds=1e9))
        else:
            ctrl.set_clip(c)
        last = ctrl.clip_rot.shape[0] - 2
        for k in range(starts):
            start = k * last // starts
            ctrl.reset()
            if start:
                import mujoco
                ctrl._set_state(start)
                mujoco.mj_forward(ctrl.model, ctrl.data)
            ctrl.reset_stats()
            loop = Loop(ctrl)                  # from the state set above: no loop reset
            for _ in range(min(int(seconds * 60), last - start)):
                loop.tick()
                if ctrl.fallen:
                    break
            ok += int(ctrl.stats["falls"] == 0)
            errs.append(ctrl.mean_tracking_error_cm())
            pose_errs.append(ctrl.mean_pose_error_cm())
            lengths.append(ctrl.stats["ticks"] / 60)
    n_ep = len(errs)
    return {"episodes": n_ep, "no_fall_fraction": ok / max(n_ep, 1),
            "mean_joint_error_cm": float(np.mean(errs)) if errs else float("nan"),
            "mean_pose_error_cm": float(np.mean(pose_errs)) if pose_errs else float("nan"),
            "mean_episode_s": float(np.mean(lengths)) if lengths else 0.0}


def _gpu_path(policy):
    return os.path.splitext(policy or "")[0] + ".gpu.json"


def _gpu_record(policy) -> dict | None:
    """The device run's record beside a shipped policy (FILE.gpu.json), if any."""
    import json
    path = _gpu_path(policy)
    if policy and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def _load_avg() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def run(quick: bool = False, db_path: str = DEFAULT_DB, policy: str | None = DEFAULT_POLICY) -> str:
    """Every benchmark above as a Markdown section."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from anim import database
    import jax
    db = database.load(db_path)
    h, env_cfg = _humanoid(db, policy)
    lines = [f"Machine load average before (1/5/15 min): {_load_avg()} on {os.cpu_count()} cores; "
             f"JAX {jax.__version__} on {jax.default_backend()}.", ""]
    from .env import build_reference, select_clips
    ref = build_reference(db, h, select_clips(db, env_cfg)[:4])
    c = c_throughput(h, ref.qpos, seconds=2.0 if quick else 5.0)
    lines += ["| engine | envs | compile (s) | env steps/s (60 Hz) | physics steps/s |", "|---|---|---|---|---|",
              f"| C MuJoCo, 1 thread | 1 | - | {c['env_steps_per_s']:,.0f} | {c['physics_steps_per_s']:,.0f} |"]
    sizes = (256,) if quick else (256, 1024, 4096)
    b = batch_throughput(db, h, env_cfg, 256 if quick else 512, seconds=2.0 if quick else 5.0)
    lines.append(f"| C MuJoCo batch (`--engine mujoco`), {b['threads']} threads | {b['envs']} | - | "
                 f"{b['env_steps_per_s']:,.0f} | {b['physics_steps_per_s']:,.0f} |")
    mjx_rows = mjx_throughput(db, h, env_cfg, sizes, iters=3 if quick else 5)
    for r in mjx_rows:
        if r["env_steps_per_s"] is None:
            lines.append(f"| MJX (JAX CPU) | {r['envs']} | - | {r.get('note')} | |")
        else:
            lines.append(f"| MJX (JAX CPU) | {r['envs']} | {r['compile_s']:.0f} | {r['env_steps_per_s']:,.0f} | "
                         f"{r['physics_steps_per_s']:,.0f} |")
    gpu = _gpu_record(policy)
    if gpu:
        for r in gpu.get("throughput", []):
            if r.get("env_steps_per_s"):
                lines.append(f"| MJX (JAX GPU, {gpu['device']}) | {r['envs']:,} | {r['compile_s']:.0f} | "
                             f"{r['env_steps_per_s']:,.0f} | {r['physics_steps_per_s']:,.0f} |")
        lines += ["", f"GPU rows: measured on the device machine on {gpu['date']} (JAX {gpu['jax']}, MuJoCo "
                      f"{gpu['mujoco']}) by `python -m bench.physics_gpu`, the run that trained the shipped "
                      f"policy (its GPU stage), and read here from `{os.path.relpath(_gpu_path(policy))}` (this machine has no "
                      f"GPU). Training there: {gpu['num_envs']:,} environments, PPO included, "
                      f"{gpu['train_steps_per_s_median']:,.0f} env steps/s (median iteration)."]
    lat = latency(db, policy, ticks=200 if quick else 1200)
    lines += ["", f"Per-tick latency of `PhysicsController.step` at 60 Hz "
                  f"({'a policy file from anim train policy' if lat['trained_policy'] else 'untrained network of the same shape'}): "
                  f"p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms (physics {c['substeps']} substeps "
                  f"p50 {lat['physics_p50_ms']:.2f} ms, policy MLP {lat['mlp_ms']:.3f} ms)."]
    runs = [("PD tracking without a policy (baseline)", None)]
    if policy and os.path.exists(policy):
        runs.append((f"policy {os.path.relpath(policy)}", policy))
    else:
        lines += ["", "No trained policy found: only the PD baseline's quality is measured."]
    qs = {}
    for label, pol in runs:
        q = qs[pol] = quality(db, pol, max_clips=4 if quick else None, humanoid=h, env_cfg=env_cfg)
        lines += ["", f"Quality, {label}, on {q['episodes']} held-out clips (each from its start, up to 10 s; "
                      f"mean {q['mean_episode_s']:.1f} s before a fall or the clip's end): "
                      f"{100 * q['no_fall_fraction']:.0f} % without a fall, mean global joint error "
                      f"{q['mean_joint_error_cm']:.1f} cm (relative to the root: {q['mean_pose_error_cm']:.1f} cm)."]
        if not quick:
            # 18 clips move the score by 5.6 points a clip; ten starts per clip
            # (shorter episodes, to each clip's end) tell two policies apart
            # where one start cannot.
            m = quality(db, pol, humanoid=h, env_cfg=env_cfg, starts=10)
            lines[-1] += (f" From 10 evenly spaced frames of each ({m['episodes']} episodes, mean "
                          f"{m['mean_episode_s']:.1f} s): {100 * m['no_fall_fraction']:.1f} % without a fall, "
                          f"{m['mean_joint_error_cm']:.1f} cm (relative to the root: "
                          f"{m['mean_pose_error_cm']:.1f} cm).")
    mjx_cpu = max((r["env_steps_per_s"] or 0 for r in mjx_rows), default=0)
    gpu_best = max((r.get("env_steps_per_s") or 0 for r in gpu.get("throughput", [])), default=0) if gpu else 0
    qp = qs.get(policy) if policy and os.path.exists(policy) else None

    def mark(ok):
        return "met" if ok else "NOT met"
    lines += ["", "Targets (issue 6): "
              f"MJX on this CPU >= 10,000 env steps/s: {mjx_cpu:,.0f}, {mark(mjx_cpu >= 1e4)}; "
              f"on a GPU >= 1,000,000: {gpu_best:,.0f} on {gpu['device'] if gpu else 'no GPU measured'}, "
              f"{mark(gpu_best >= 1e6)}; policy + physics p99 <= 2 ms per tick: {lat['p99_ms']:.2f} ms, "
              f"{mark(lat['p99_ms'] <= 2.0)}"
              + (f"; held-out episodes without a fall >= 90 %: {100 * qp['no_fall_fraction']:.0f} %, "
                 f"{mark(qp['no_fall_fraction'] >= 0.9)}; mean joint error <= 8 cm: "
                 f"{qp['mean_joint_error_cm']:.1f} cm, {mark(qp['mean_joint_error_cm'] <= 8)} (global; relative to "
                 f"the root {qp['mean_pose_error_cm']:.1f} cm)." if qp else ".")]
    lines += ["", f"Machine load average after: {_load_avg()}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m controllers.physics.bench")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--policy", default=DEFAULT_POLICY)
    a = p.parse_args(argv)
    print(run(a.quick, a.db, a.policy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
