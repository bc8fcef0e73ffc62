"""Train a motion-tracking policy with PPO on the MJX environment.

    python -m controllers.physics.train --tag content=walk,run --num-envs 256 --steps 2e6 --out out/physics/walk-run
    python -m controllers.physics.train --out out/physics/walk-run --resume          # go on from the checkpoint
    python -m controllers.physics.train --out out/physics/walk-run --plot-only       # curves.png from log.jsonl

With --amp the policy also learns from a style reward (`amp`, Adversarial
Motion Priors): a discriminator trained on mocap transitions (--amp-db and
--amp-tag choose them; default the reference clips' database and tags, the
training split) against the policy's; the progress line shows its accuracy,
its style reward and gradient penalty:

    python -m controllers.physics.train --engine mujoco --amp --amp-objective lsgan --out out/physics/amp

--db takes a database (.animdb) or a clip pack (.npz, `python -m
controllers.physics.clips`: only the reference clips, a few MB, for training
on another machine). --time-limit ends a run after that many seconds of
training, with a checkpoint, as Ctrl-C does.

Writes under --out: humanoid.json (the model, fixed at the first run and
reused on resume), checkpoint.npz (every --checkpoint-every iterations and at
the end / on Ctrl-C, written atomically), policy.npz (the deployable policy:
`anim run --controller physics --policy .../policy.npz`), log.jsonl (one JSON
object per iteration), curves.png with --plot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

from anim.fileio import atomic_write, truncate_jsonl, write_text

from .amp import AMPConfig
from .env import EnvConfig, tags_from_dict
from .humanoid import HumanoidConfig
from .ppo import PPOConfig


@dataclass(frozen=True)
class TrainConfig:
    """db: database file; out: run folder; steps: environment steps budget;
    seed: recorded in every artefact; device: 'cpu', 'gpu' or 'auto';
    humanoid_file: a humanoid.json to train (default: measured from db);
    engine: 'mjx' (the MJX environment, on the GPU or the CPU) or 'mujoco'
    (C MuJoCo simulations on CPU threads, `cpu_env`: the fast way without a GPU);
    checkpoint_every: iterations between checkpoints; time_limit: seconds
    (setup and compilation included) after which the run stops with a
    checkpoint (0: none); amp: the style discriminator's configuration (None:
    the tracking reward alone); amp_db, amp_tags: its mocap (default: db and
    env.tags), always the training split."""

    db: str = os.path.join("out", "databases", "locomotion-normal.animdb")
    out: str = os.path.join("out", "physics", "walk-run")
    steps: float = 2e6
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 20
    engine: str = "mjx"
    time_limit: float = 0.0
    humanoid_file: str = ""
    env: EnvConfig = field(default_factory=EnvConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    humanoid: HumanoidConfig = field(default_factory=HumanoidConfig)
    amp: AMPConfig | None = None
    amp_db: str = ""
    amp_tags: tuple = ()


def _select_device(device: str) -> None:
    if device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    elif device == "gpu":
        os.environ["JAX_PLATFORMS"] = "cuda"
    import jax
    if device == "gpu" and jax.default_backend() == "cpu":
        raise SystemExit("train: --device gpu asked but JAX sees no GPU")
    if jax.default_backend() == "gpu":
        # float32 matrix products in full precision (not TF32) on the GPU, so the
        # MJX physics the policy learns on is the physics C MuJoCo plays back
        jax.config.update("jax_default_matmul_precision", "highest")


def _log_line(m: dict) -> str:
    line = (f"it {m['iteration']:>5} | {m['env_steps']:>11,.0f} steps | {m['steps_per_s']:>7,.0f} steps/s | "
            f"reward {m['reward']:.3f} | ep len {m['episode_length']:6.1f} | "
            f"err {100 * m['tracking_error']:5.1f} cm | falls {m['fall_rate']:.2f} | "
            f"loss {m['loss']:+.3f} | std {m['action_std']:.3f} | kl {m.get('approx_kl', float('nan')):.3f} "
            f"lr {m.get('learning_rate', float('nan')):.1e}")
    if "disc_accuracy" in m:
        line += (f" | disc acc {m['disc_accuracy']:.2f} style {m['style_reward']:.3f} "
                 f"gp {m['disc_gp']:.3f}")
    return line


def amp_motion(cfg: TrainConfig, db, h):
    """The discriminator's mocap (`amp.MotionData`): the training split of
    cfg.amp_tags (default the reference's tags) in cfg.amp_db (default cfg.db)."""
    import dataclasses

    from . import amp, clips
    from . import env as envmod
    mdb = clips.load_motion(cfg.amp_db) if cfg.amp_db else db
    if cfg.amp_db and mdb.skeleton.signature() != db.skeleton.signature():
        raise ValueError(f"{cfg.amp_db}: its skeleton differs from {cfg.db}'s: the discriminator's mocap must be "
                         "of the skeleton the humanoid was built for")
    sel = dataclasses.replace(cfg.env, tags=cfg.amp_tags or cfg.env.tags, split="train")
    return amp.motion_data(envmod.build_reference(mdb, h, envmod.select_clips(mdb, sel)), h)


def train(cfg: TrainConfig, resume: bool = False, echo=print, max_iterations: int | None = None) -> dict:
    """The training loop; returns the last iteration's metrics."""
    _select_device(cfg.device)
    import jax
    import numpy as np

    from . import clips
    from . import env as envmod
    from . import humanoid as hum
    from . import ppo

    os.makedirs(cfg.out, exist_ok=True)
    paths = {k: os.path.join(cfg.out, v) for k, v in (("humanoid", "humanoid.json"), ("ckpt", "checkpoint.npz"),
                                                       ("policy", "policy.npz"), ("log", "log.jsonl"),
                                                       ("config", "config.json"))}
    t_start = time.perf_counter()
    db = clips.load_motion(cfg.db)
    if resume and os.path.exists(paths["humanoid"]):
        h = hum.load(paths["humanoid"], db.skeleton)
    elif cfg.humanoid_file:
        if cfg.humanoid_file.endswith(".npz"):      # a policy file: train on its humanoid
            from .ppo import load_policy
            h = load_policy(cfg.humanoid_file, db.skeleton)[1]
        else:
            h = hum.load(cfg.humanoid_file, db.skeleton)
        hum.save(h, paths["humanoid"])
    else:
        h = hum.from_database(db, cfg.humanoid)
        hum.save(h, paths["humanoid"])
    ref = envmod.build_reference(db, h, envmod.select_clips(db, cfg.env))
    use_amp = cfg.amp is not None
    if cfg.engine == "mujoco":
        from .cpu_env import BatchTrackingEnv
        env = BatchTrackingEnv(h, ref, cfg.env, cfg.ppo.num_envs, seed=cfg.seed, amp=use_amp)
        where = f"C MuJoCo on {env.batch.nthread} threads, PPO update in JAX on {jax.default_backend()}"
    else:
        env = envmod.TrackingEnv(h, ref, cfg.env, amp=use_amp)
        where = f"MJX, JAX on {jax.default_backend()}"
    echo(f"humanoid: {h.num_bodies} bodies, {h.nu} actuators, {env.substeps} substeps of "
         f"{1e3 * h.model().opt.timestep:.2f} ms; reference: {len(ref.clip_names)} clips, "
         f"{ref.num_frames} frames; obs {env.obs_size}, action {env.action_size}; {where}")
    motion = motion_dev = None
    if use_amp:
        import jax.numpy as jnp
        motion = amp_motion(cfg, db, h)
        motion_dev = (jnp.asarray(motion.frames), jnp.asarray(motion.starts))
        echo(f"AMP ({cfg.amp.objective}, gradient penalty {cfg.amp.gp:g}, reward {cfg.amp.task_weight:g} task + "
             f"{cfg.amp.style_weight:g} style): {len(motion.clip_names)} mocap clips, "
             f"{motion.num_transitions:,} transitions of {motion.frames.shape[1]} x 2 features")
    amp_arg = (cfg.amp, motion) if use_amp else None
    if cfg.engine == "mujoco":
        ts = ppo.init_state(None, cfg.ppo, cfg.seed, sizes=(env.obs_size, env.action_size), amp=amp_arg)
    else:
        ts = ppo.init_state(env, cfg.ppo, cfg.seed, amp=amp_arg)
    meta = {"seed": cfg.seed, "config": json.loads(json.dumps(asdict(cfg), default=str))}
    if resume and os.path.exists(paths["ckpt"]):
        ts, old = ppo.load_checkpoint(paths["ckpt"], ts)
        if old.get("seed") != cfg.seed:
            echo(f"note: checkpoint seed {old.get('seed')} differs from --seed {cfg.seed}; keeping the checkpoint's")
            meta["seed"] = old.get("seed")
        echo(f"resumed from {paths['ckpt']} at iteration {int(ts['iteration'])}, {float(ts['env_steps']):,.0f} steps")
        if old.get("amp_fresh"):
            echo("the checkpoint has no discriminator: AMP starts with a fresh one")
        if old.get("checkpoint_version") == 1:
            echo("a version 1 checkpoint (before optax): the optimizer starts afresh")
        done = int(ts["iteration"])          # the log ends where the checkpoint does
        truncate_jsonl(paths["log"], lambda r: r.get("iteration", 0) <= done)
        if float(ts["env_steps"]) >= cfg.steps:
            echo(f"the checkpoint has already taken the step budget (--steps {cfg.steps:,.0f} counts the steps "
                 f"before the resume too): nothing to train; raise --steps")
            return {}
    elif not resume and os.path.exists(paths["log"]):
        os.replace(paths["log"], paths["log"] + ".old")
    write_text(paths["config"], json.dumps(meta, indent=1))

    # Ctrl-C, or SIGTERM / SIGINT to a background run, ends it with a checkpoint
    import signal

    def _stop(signum, frame):
        raise KeyboardInterrupt
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    if cfg.engine != "mujoco":
        step = ppo.make_iteration(env, cfg.ppo, cfg.amp)
        iteration = lambda ts: step(ts, motion_dev)  # noqa: E731
    else:
        iteration = _cpu_iteration(env, cfg.ppo, cfg.seed + int(ts["iteration"]), cfg.amp, motion_dev)
    t0 = time.perf_counter()
    ts, m = iteration(ts)
    jax.block_until_ready(ts["params"])
    compile_s = time.perf_counter() - t0
    echo(f"compiled and ran the first iteration in {compile_s:.1f} s (setup {t0 - t_start:.1f} s)")
    last = None
    diverged = False
    policy_extra = {"amp": asdict(cfg.amp)} if use_amp else None
    try:
        from tqdm import tqdm
        bar = tqdm(total=int(cfg.steps), initial=int(float(ts["env_steps"])), unit="step", unit_scale=True,
                   dynamic_ncols=True, disable=not sys.stderr.isatty())
        n_it = 0
        t_prev = time.perf_counter()
        # the first iteration (run above, with the compile) is logged even when it reaches the budget
        while (n_it == 0 or float(ts["env_steps"]) < cfg.steps) and (max_iterations is None or n_it < max_iterations):
            if n_it > 0 and cfg.time_limit > 0 and time.perf_counter() - t_start > cfg.time_limit:
                echo(f"time limit: the run has taken {time.perf_counter() - t_start:.0f} s "
                     f"(--time-limit {cfg.time_limit:g})")
                break
            if n_it > 0:
                ts, m = iteration(ts)
            m = {k: float(v) for k, v in jax.device_get(m).items()}
            now = time.perf_counter()
            dt = now - t_prev if n_it > 0 else compile_s
            t_prev = now
            m.update(iteration=int(ts["iteration"]), env_steps=float(ts["env_steps"]),
                     steps_per_s=cfg.ppo.batch_size / max(dt, 1e-9), wall_s=now - t_start,
                     compile_s=compile_s if n_it == 0 else None)
            if not all(np.isfinite(m[k]) for k in ("loss", "grad_norm", "reward", "action_std") if k in m):
                bad = sorted(k for k, v in m.items() if isinstance(v, float) and not np.isfinite(v))
                echo(f"non-finite metrics at iteration {m['iteration']} ({', '.join(bad)}): stopping; the last "
                     f"checkpoint ({paths['ckpt']}) is kept")
                diverged = True
                break
            with open(paths["log"], "a") as f:
                f.write(json.dumps(m) + "\n")
            bar.update(cfg.ppo.batch_size)
            post = {"reward": f"{m['reward']:.3f}", "len": f"{m['episode_length']:.0f}",
                    "err": f"{100 * m['tracking_error']:.1f}cm"}
            if "disc_accuracy" in m:
                post.update(disc=f"{m['disc_accuracy']:.2f}", style=f"{m['style_reward']:.3f}",
                            gp=f"{m['disc_gp']:.3f}")
            bar.set_postfix(**post)
            if bar.disable:
                echo(_log_line(m))
            n_it += 1
            last = m
            if m["iteration"] % cfg.checkpoint_every == 0:
                ppo.save_checkpoint(paths["ckpt"], ts, meta)
                ppo.save_policy(paths["policy"], ts, h, cfg.env, cfg.ppo, meta["seed"], extra=policy_extra)
        bar.close()
    except KeyboardInterrupt:
        echo("interrupted: saving the checkpoint")
    finally:
        for sig, handler in previous.items():          # the caller's handlers again (a test runner's, a CLI's)
            signal.signal(sig, handler)
    if diverged:
        return last or {}
    ppo.save_checkpoint(paths["ckpt"], ts, meta)
    ppo.save_policy(paths["policy"], ts, h, cfg.env, cfg.ppo, meta["seed"], extra=policy_extra)
    echo(f"wrote {paths['ckpt']}, {paths['policy']} and {paths['log']}")
    return last or {}


def _cpu_iteration(env, pcfg, seed: int, amp_cfg=None, motion=None):
    """TrainState -> (TrainState, metrics) with the rollout on C MuJoCo
    (`cpu_env.BatchTrackingEnv`, the policy sampled in numpy) and the jitted
    PPO update of the MJX path on the trajectory."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from . import networks, ppo
    update = ppo.make_update(pcfg, amp_cfg)
    rng = np.random.default_rng(seed)
    clip = pcfg.network.obs_clip

    def iteration(ts):
        params, norm = jax.device_get((ts["params"], ts["norm"]))
        layers = [(np.asarray(w), np.asarray(b)) for w, b in params["policy"]]
        log_std = np.asarray(params["log_std"])
        mean, inv = np.asarray(norm["mean"]), 1.0 / np.sqrt(np.asarray(norm["var"]) + 1e-8)
        steps = []
        for _ in range(pcfg.unroll_length):
            obs = env.obs.copy()
            mu = networks.mlp(np, layers, np.clip((obs - mean) * inv, -clip, clip))
            a = (mu + np.exp(log_std) * rng.standard_normal(mu.shape)).astype(np.float32)
            z = (a - mu) / np.exp(log_std)
            logp = np.sum(-0.5 * z * z - log_std - 0.5 * np.log(2 * np.pi), axis=-1).astype(np.float32)
            out = env.step(a)
            steps.append({"obs": obs, "action": a, "logp": logp, **out})
        traj = {k: jnp.asarray(np.stack([s[k] for s in steps])) for k in steps[0]}
        return update(ts, traj, motion)
    return iteration


# ------------------------------------------------------------------ plot
def plot(log_path: str, png_path: str, width: int = 1200, height: int = 800) -> str:
    """Training curves (reward, episode length, tracking error, steps/s against
    environment steps) drawn with pygame into a PNG (no matplotlib needed)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame
    rows = []
    with open(log_path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    if not rows:
        raise ValueError(f"{log_path}: no iterations logged yet")
    pygame.font.init()
    font = pygame.font.Font(None, 22)
    surf = pygame.Surface((width, height))
    surf.fill((255, 255, 255))
    panels = [("reward", "mean reward per step", 1.0), ("episode_length", "episode length (steps)", 1.0),
              ("tracking_error", "tracking error (cm)", 100.0), ("steps_per_s", "env steps / s", 1.0)]
    x = [r["env_steps"] for r in rows]
    pw, ph = width // 2, height // 2
    for i, (key, title, scale) in enumerate(panels):
        ox, oy = (i % 2) * pw, (i // 2) * ph
        # the first iteration of a run (or of a resumed run) includes the compile: no rate
        ys = [None if key == "steps_per_s" and r.get("compile_s") is not None else r.get(key) for r in rows]
        pts = [(a, b * scale) for a, b in zip(x, ys) if b is not None]
        left, top, w, h = ox + 70, oy + 35, pw - 100, ph - 80
        pygame.draw.rect(surf, (0, 0, 0), (left, top, w, h), 1)
        surf.blit(font.render(title, True, (0, 0, 0)), (left, oy + 10))
        if not pts:
            continue
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
        if x1 == x0:
            x1 = x0 + 1
        if y1 == y0:
            y1 = y0 + 1e-6 + abs(y0) * 0.1
        for t in range(5):   # y ticks
            yv = y0 + (y1 - y0) * t / 4
            yy = top + h - h * t / 4
            pygame.draw.line(surf, (225, 225, 225), (left, yy), (left + w, yy))
            surf.blit(font.render(f"{yv:.3g}", True, (60, 60, 60)), (ox + 5, yy - 8))
        surf.blit(font.render(f"{x0:,.0f}", True, (60, 60, 60)), (left, top + h + 5))
        lab = font.render(f"{x1:,.0f} env steps", True, (60, 60, 60))
        surf.blit(lab, (left + w - lab.get_width(), top + h + 5))
        scr = [(left + w * (a - x0) / (x1 - x0), top + h - h * (b - y0) / (y1 - y0)) for a, b in pts]
        if len(scr) > 1:
            pygame.draw.lines(surf, (30, 90, 200), False, scr, 2)
        else:
            pygame.draw.circle(surf, (30, 90, 200), (int(scr[0][0]), int(scr[0][1])), 3)
    with atomic_write(png_path) as f:
        pygame.image.save(surf, f, "curves.png")       # the name hint picks PNG
    return png_path


# ------------------------------------------------------------------ command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--db", default=d.db, help=f"database file or clip pack (.npz) (default {d.db})")
    p.add_argument("--tag", action="append", metavar="KEY=V[,V]",
                   help="reference clips by tag (repeatable; default content=walk,run style=normal)")
    p.add_argument("--num-envs", type=int, default=d.ppo.num_envs, help=f"parallel envs (default {d.ppo.num_envs})")
    p.add_argument("--unroll", type=int, default=d.ppo.unroll_length, help="steps per env per iteration")
    p.add_argument("--steps", type=float, default=d.steps, help=f"environment step budget (default {d.steps:.0e})")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (recorded with the policy)")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default=d.device, help="JAX device")
    p.add_argument("--engine", choices=["mjx", "mujoco"], default=d.engine,
                   help="physics of the rollouts: mjx (MJX, GPU-parallel; default) or mujoco (C MuJoCo "
                        "on CPU threads, ~20x MJX's speed on a CPU; the PPO update stays in JAX)")
    p.add_argument("--minibatches", type=int, default=d.ppo.num_minibatches, help="minibatches per epoch")
    p.add_argument("--epochs", type=int, default=d.ppo.update_epochs, help="SGD passes over each rollout")
    p.add_argument("--time-limit", type=float, default=0.0, metavar="S",
                   help="stop once the run has taken S seconds, compile included, with a checkpoint "
                        "(default: no limit)")
    p.add_argument("--max-root-distance", type=float, default=0.0, metavar="M",
                   help="keep each reference's hips within M metres of the body's, moving the reference on the "
                        "ground as the live loop does (0: off; the live loop uses 0.15)")
    p.add_argument("--lag-weight", type=float, default=0.0, metavar="W",
                   help="with --max-root-distance: charge the re-anchoring's pull-back, the reward times "
                        "1 - W (1 - exp(-K v^2)) for a reference pulled back at v m/s (0: off; the live "
                        "policy's next run uses 0.5), so that trailing the reference costs reward")
    p.add_argument("--lag-scale", type=float, default=EnvConfig.k_lag, metavar="K",
                   help=f"K of --lag-weight (default {EnvConfig.k_lag:g}: 0.1 m/s of lag costs 18%% of W)")
    p.add_argument("--slip-weight", type=float, default=0.0, metavar="W",
                   help="charge planted feet sliding: the reward times 1 - W (1 - exp(-K e)), e the squared "
                        "horizontal velocity error of the feet and toes the reference plants (slower than "
                        f"{EnvConfig.slip_speed:g} m/s) (0: off)")
    p.add_argument("--slip-scale", type=float, default=EnvConfig.k_slip, metavar="K",
                   help=f"K of --slip-weight (default {EnvConfig.k_slip:g}: one foot sliding at 0.3 m/s "
                        "costs 59%% of W)")
    p.add_argument("--lr", type=float, default=d.ppo.learning_rate,
                   help="Adam learning rate (adaptive: the first one; a resumed run goes on from its checkpoint's)")
    p.add_argument("--lr-schedule", choices=["constant", "linear", "adaptive"], default=d.ppo.lr_schedule,
                   help="constant; linear decay to a tenth of --lr at --steps (optax); or adaptive: divided "
                        "by 1.5 after an update whose approximate KL passed 2 x --desired-kl, multiplied by "
                        "1.5 after one under half of it (rsl_rl's PPO; suits training on from a policy)")
    p.add_argument("--desired-kl", type=float, default=d.ppo.desired_kl,
                   help=f"the adaptive schedule's target KL per update (default {d.ppo.desired_kl:g})")
    g = p.add_argument_group("style reward (AMP)")
    g.add_argument("--amp", action="store_true",
                   help="add the style reward of a motion discriminator (Adversarial Motion Priors)")
    g.add_argument("--amp-objective", choices=["lsgan", "bce"], default="lsgan",
                   help="lsgan (the AMP paper; gradient penalty 10) or bce (MimicKit, PHC; gradient penalty 5)")
    g.add_argument("--amp-gp", type=float, default=0.0, metavar="W",
                   help="gradient penalty weight (default: the objective's, 10 or 5)")
    g.add_argument("--amp-db", default="", metavar="FILE",
                   help="database or clip pack of the discriminator's mocap (default --db)")
    g.add_argument("--amp-tag", action="append", metavar="KEY=V[,V]",
                   help="the discriminator's mocap by tag (repeatable; default the reference's --tag)")
    g.add_argument("--style-weight", type=float, default=0.5, metavar="W",
                   help="reward = (1 - W) tracking + W style (default 0.5, the AMP paper's mix)")
    g.add_argument("--amp-lr", type=float, default=AMPConfig.learning_rate, metavar="LR",
                   help=f"the discriminator's Adam step (default {AMPConfig.learning_rate:g}); with "
                        "--amp-updates, how fast it learns against the policy")
    g.add_argument("--amp-updates", type=int, default=AMPConfig.updates, metavar="N",
                   help=f"discriminator steps per PPO iteration (default {AMPConfig.updates})")
    p.add_argument("--hidden", default="256,256", help="policy/value hidden widths (default 256,256)")
    p.add_argument("--out", default=d.out, help=f"run folder (default {d.out})")
    p.add_argument("--resume", action="store_true", help="go on from OUT/checkpoint.npz")
    p.add_argument("--humanoid", default="", metavar="FILE",
                   help="humanoid.json, or a policy .npz whose humanoid to train (default: measured from "
                        "--db; a clip pack's own clips give narrower joint ranges than the whole database)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="iterations between checkpoints")
    p.add_argument("--self-collision", choices=["none", "legs", "all"], default=d.humanoid.self_collision)
    p.add_argument("--ground-contacts", choices=["all", "feet"], default=d.humanoid.ground_contacts)
    p.add_argument("--substeps", type=int, default=int(round(1 / 60 / d.humanoid.timestep)),
                   help="physics steps per 60 Hz frame")
    p.add_argument("--plot", action="store_true", help="write OUT/curves.png after training")
    p.add_argument("--plot-only", action="store_true", help="only draw OUT/curves.png from OUT/log.jsonl")


def parse_tags(items) -> dict:
    """--tag KEY=V[,V] values to a tag filter (the same parsing as `anim build-db --tag`)."""
    from anim.presets import parse_tags as _parse

    return _parse(items, prog="train")


def config_from_args(a) -> TrainConfig:
    from .networks import NetworkConfig
    tags = parse_tags(a.tag) if a.tag else {"content": ["run", "walk"], "style": "normal"}
    hidden = tuple(int(x) for x in str(a.hidden).split(",") if x)
    net = NetworkConfig(policy_hidden=hidden, value_hidden=hidden)
    amp_cfg = None
    if a.amp:
        if not 0.0 <= a.style_weight <= 1.0:
            raise SystemExit(f"train: --style-weight {a.style_weight} is outside [0, 1]")
        if a.amp_lr <= 0 or a.amp_updates < 1:
            raise SystemExit(f"train: --amp-lr {a.amp_lr} must be > 0 and --amp-updates {a.amp_updates} >= 1")
        amp_cfg = AMPConfig(objective=a.amp_objective, gp_weight=a.amp_gp, task_weight=1.0 - a.style_weight,
                            style_weight=a.style_weight, learning_rate=a.amp_lr, updates=a.amp_updates)
    if a.lag_weight and (not 0.0 < a.lag_weight <= 1.0 or a.max_root_distance <= 0 or a.lag_scale <= 0):
        raise SystemExit(f"train: --lag-weight {a.lag_weight} needs a value in (0, 1], --max-root-distance > 0 "
                         f"and --lag-scale > 0 (got {a.max_root_distance} and {a.lag_scale})")
    if a.slip_weight and (not 0.0 < a.slip_weight <= 1.0 or a.slip_scale <= 0):
        raise SystemExit(f"train: --slip-weight {a.slip_weight} must be in (0, 1] and --slip-scale "
                         f"{a.slip_scale} > 0")
    amp_tags = tags_from_dict(parse_tags(a.amp_tag)) if a.amp_tag else ()
    return TrainConfig(db=a.db, out=a.out, steps=a.steps, seed=a.seed, device=a.device,
                       checkpoint_every=a.checkpoint_every, time_limit=a.time_limit, humanoid_file=a.humanoid,
                       engine=a.engine, amp=amp_cfg, amp_db=a.amp_db, amp_tags=amp_tags,
                       env=EnvConfig(tags=tags_from_dict(tags), max_root_distance=a.max_root_distance,
                                     w_lag=a.lag_weight, k_lag=a.lag_scale, w_slip=a.slip_weight,
                                     k_slip=a.slip_scale),
                       ppo=PPOConfig(num_envs=a.num_envs, unroll_length=a.unroll, learning_rate=a.lr, network=net,
                                     lr_schedule=a.lr_schedule, schedule_steps=a.steps, desired_kl=a.desired_kl,
                                     num_minibatches=a.minibatches, update_epochs=a.epochs),
                       humanoid=HumanoidConfig(self_collision=a.self_collision, ground_contacts=a.ground_contacts,
                                               timestep=1.0 / (60.0 * a.substeps)))


def run_args(a) -> int:
    cfg = config_from_args(a)
    log = os.path.join(cfg.out, "log.jsonl")
    png = os.path.join(cfg.out, "curves.png")
    if a.plot_only:
        print(f"wrote {plot(log, png)}")
        return 0
    train(cfg, resume=a.resume)
    if a.plot:
        print(f"wrote {plot(log, png)}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m controllers.physics.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
