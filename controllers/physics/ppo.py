"""PPO in JAX over the MJX tracking environment (Brax's split: `networks`,
`losses`, and this loop; CleanRL's readability: every hyperparameter in the
dataclass below, metrics every iteration).

One iteration = a rollout of `unroll_length` steps in `num_envs` environments
(auto-reset, RSI), GAE with bootstrapping from the pre-reset observation on
truncation, `update_epochs` passes of `num_minibatches` clipped-PPO minibatch
steps (Adam, global-norm gradient clipping), then the observation normalizer
takes the rollout's statistics. The whole iteration is one jitted pure
function of an explicit `TrainState` pytree.

The optimizer and its schedule are optax's (`optimizer`). With an AMP
configuration (`amp.AMPConfig`) the TrainState also holds a style
discriminator: each update mixes its style reward into the rollout's reward
before GAE, then trains it on the rollout's transitions (`amp.make_update`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from . import losses, networks

POLICY_FORMAT = "anim-physics-policy"
POLICY_VERSION = 1
CHECKPOINT_VERSION = 2          # 2: optax optimizer state (a version 1 file resumes with Adam afresh)


@dataclass(frozen=True)
class PPOConfig:
    """num_envs: parallel environments; unroll_length: steps per env per
    iteration; num_minibatches, update_epochs: SGD passes over each rollout.
    gamma 0.95 and lambda 0.95 as DeepMimic; clip_eps 0.2; vf_coef: value loss
    weight; ent_coef: entropy bonus; max_grad_norm: global-norm clipping;
    learning_rate: Adam step size (b1 0.9, b2 0.999, eps 1e-8); lr_schedule:
    'constant', 'linear' (to a tenth of it over schedule_steps env steps) or
    'adaptive': the step follows the policy's change, as rsl_rl's PPO does
    (Rudin et al. 2022, legged_gym): after each iteration it is divided by
    1.5 where the update's approximate KL divergence passed 2 x desired_kl,
    multiplied by 1.5 where it stayed under desired_kl / 2, within
    [lr_min, lr_max]. A fixed step that suits a fresh policy is too large
    for a trained one with a narrow action distribution (the same change of
    the mean is a larger KL, and most samples end up clipped)."""

    num_envs: int = 256
    unroll_length: int = 16
    num_minibatches: int = 4
    update_epochs: int = 4
    learning_rate: float = 3e-4
    gamma: float = 0.95
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 1e-3
    max_grad_norm: float = 1.0
    normalize_advantages: bool = True
    lr_schedule: str = "constant"
    schedule_steps: float = 0.0
    desired_kl: float = 0.01
    lr_min: float = 1e-6
    lr_max: float = 1e-2
    network: networks.NetworkConfig = field(default_factory=networks.NetworkConfig)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.unroll_length


# ------------------------------------------------------------------ optimizer
def optimizer(cfg: PPOConfig):
    """optax: global-norm gradient clipping, then Adam (b1 0.9, b2 0.999, eps
    1e-8) at the configured learning rate, constant or decaying linearly to a
    tenth of it over `schedule_steps` environment steps. 'adaptive': Adam at
    a step of 1, the update then scaled by the TrainState's `lr` (the same
    optimizer state as the constant schedule's, so either resumes the
    other's checkpoint)."""
    import optax
    if cfg.lr_schedule not in ("constant", "linear", "adaptive"):
        raise ValueError(f"lr_schedule {cfg.lr_schedule!r}: expected constant, linear or adaptive")
    lr = 1.0 if cfg.lr_schedule == "adaptive" else cfg.learning_rate
    if cfg.lr_schedule == "linear" and cfg.schedule_steps > 0:
        updates = cfg.schedule_steps / cfg.batch_size * cfg.update_epochs * cfg.num_minibatches
        lr = optax.linear_schedule(cfg.learning_rate, 0.1 * cfg.learning_rate, max(1, int(updates)))
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8))


# ------------------------------------------------------------------ state
def init_state(env, cfg: PPOConfig, seed: int, sizes: tuple | None = None, amp=None) -> dict:
    """The TrainState pytree: params, opt, norm, env_state, rng, env_steps,
    iteration, lr (the step the adaptive schedule moves) and, with amp =
    (AMPConfig, MotionData), amp: the discriminator's state.
    With env None (rollouts collected elsewhere): sizes = (obs, action) and no env_state."""
    import jax
    import jax.numpy as jnp
    rng = jax.random.PRNGKey(seed)
    rng, k_net, k_env, k_amp = jax.random.split(rng, 4)
    obs_size, action_size = sizes or (env.obs_size, env.action_size)
    params = networks.init(k_net, obs_size, action_size, cfg.network)
    ts = {"params": params, "opt": optimizer(cfg).init(params), "norm": networks.init_normalizer(obs_size),
          "rng": rng, "env_steps": jnp.zeros((), jnp.float32), "iteration": jnp.zeros((), jnp.int32),
          "lr": jnp.asarray(cfg.learning_rate, jnp.float32)}
    if amp is not None:
        from . import amp as ampmod
        ts["amp"] = ampmod.init(k_amp, amp[1], amp[0])
    if env is not None:
        ts["env_state"] = jax.jit(jax.vmap(env.reset))(jax.random.split(k_env, cfg.num_envs))
    return ts


def make_iteration(env, cfg: PPOConfig, amp_cfg=None):
    """A jitted function (TrainState, motion) -> (TrainState, metrics); motion:
    the mocap side of AMP, (frames, transition starts) as device arrays, or None."""
    import jax
    import jax.numpy as jnp

    step_fn = jax.vmap(env.step_autoreset)
    clip = cfg.network.obs_clip

    def rollout(params, norm, env_state, rng):
        def one(carry, _):
            s, rng = carry
            rng, k = jax.random.split(rng)
            obs_n = networks.normalize(norm, s.obs, clip)
            mean = networks.policy_mean(params, obs_n)
            action = mean + jnp.exp(params["log_std"]) * jax.random.normal(k, mean.shape)
            logp = networks.log_prob(mean, params["log_std"], action)
            nxt = step_fn(s, action)
            trunc = nxt.info["truncation"]
            tr = {"obs": s.obs, "action": action, "logp": logp, "reward": nxt.reward, "done": nxt.done,
                  "termination": nxt.done * (1.0 - trunc), "final_obs": nxt.info["final_obs"],
                  "ended_return": nxt.info["ended_return"] * nxt.done,
                  "ended_length": nxt.info["ended_length"] * nxt.done,
                  **{f"m_{k}": v for k, v in nxt.metrics.items()}}
            if amp_cfg is not None:
                tr["amp_obs"] = nxt.info["amp_obs"]
            return (nxt, rng), tr

        (env_state, rng), traj = jax.lax.scan(one, (env_state, rng), None, length=cfg.unroll_length)
        return env_state, rng, traj

    def iteration(ts, motion=None):
        env_state, rng, traj = rollout(ts["params"], ts["norm"], ts["env_state"], ts["rng"])
        ts, metrics = update({**ts, "rng": rng}, traj, motion)
        return {**ts, "env_state": env_state}, metrics

    update = _make_update(cfg, _make_sgd(cfg), amp_cfg)
    return jax.jit(iteration, donate_argnums=0)


def make_update(cfg: PPOConfig, amp_cfg=None):
    """A jitted (TrainState, trajectory, motion) -> (TrainState, metrics): the
    learning half of an iteration, for rollouts collected elsewhere (the C
    MuJoCo trainer). trajectory: [T, N] arrays obs, action, logp, reward, done,
    termination, final_obs, ended_return, ended_length, m_* metrics (and
    amp_obs with AMP); motion: as make_iteration's."""
    import jax
    return jax.jit(_make_update(cfg, _make_sgd(cfg), amp_cfg))


def _make_sgd(cfg: PPOConfig):
    import jax
    import jax.numpy as jnp
    import optax
    clip = cfg.network.obs_clip
    tx = optimizer(cfg)
    adaptive = cfg.lr_schedule == "adaptive"

    def sgd(params, opt, norm, data, rng, lr):
        n = cfg.batch_size
        mb = n // cfg.num_minibatches
        grad_fn = jax.value_and_grad(losses.ppo_loss, has_aux=True)

        def epoch(carry, _):
            params, opt, rng = carry
            rng, k = jax.random.split(rng)
            perm = jax.random.permutation(k, n)
            shuffled = jax.tree.map(lambda x: x[perm].reshape((cfg.num_minibatches, mb) + x.shape[1:]), data)

            def minibatch(carry, batch):
                params, opt = carry
                (_, m), g = grad_fn(params, norm, batch, cfg.clip_eps, cfg.vf_coef, cfg.ent_coef,
                                    cfg.normalize_advantages, clip)
                gnorm = optax.tree.norm(g)
                upd, opt = tx.update(g, opt, params)
                if adaptive:
                    upd = jax.tree.map(lambda u: u * lr, upd)
                params = optax.apply_updates(params, upd)
                return (params, opt), {**m, "grad_norm": gnorm}

            (params, opt), ms = jax.lax.scan(minibatch, (params, opt), shuffled)
            return (params, opt, rng), ms

        (params, opt, rng), ms = jax.lax.scan(epoch, (params, opt, rng), None, length=cfg.update_epochs)
        return params, opt, rng, jax.tree.map(jnp.mean, ms)
    return sgd


def _make_update(cfg: PPOConfig, sgd, amp_cfg=None):
    import jax
    import jax.numpy as jnp
    clip = cfg.network.obs_clip
    if amp_cfg is not None:
        from . import amp as ampmod
        disc_update = ampmod.make_update(amp_cfg)

    def update(ts, traj, motion=None):
        params, norm, rng = ts["params"], ts["norm"], ts["rng"]
        extra = {}
        if amp_cfg is not None:
            ds = ts["amp"]
            style = ampmod.style_reward(ds["params"], ds["norm"], traj["amp_obs"], amp_cfg.objective)
            extra = {"task_reward": jnp.mean(traj["reward"]), "style_reward": jnp.mean(style)}
            traj = {**traj, "reward": amp_cfg.task_weight * traj["reward"] + amp_cfg.style_weight * style}
        v = networks.value(params, networks.normalize(norm, traj["obs"], clip))
        v_next = networks.value(params, networks.normalize(norm, traj["final_obs"], clip))
        adv, target = losses.gae(traj["reward"], v, v_next, traj["termination"], traj["done"],
                                 cfg.gamma, cfg.gae_lambda)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        data = {"obs": flat(traj["obs"]), "action": flat(traj["action"]), "logp": flat(traj["logp"]),
                "advantage": flat(adv), "target": flat(target)}
        lr = ts["lr"]
        params, opt, rng, m = sgd(params, ts["opt"], norm, data, rng, lr)
        if cfg.lr_schedule == "adaptive":
            kl = m["approx_kl"]
            lr = jnp.where(kl > 2.0 * cfg.desired_kl, lr / 1.5, jnp.where(kl < 0.5 * cfg.desired_kl, lr * 1.5, lr))
            lr = jnp.clip(lr, cfg.lr_min, cfg.lr_max)
        norm = networks.update_normalizer(norm, traj["obs"])
        if amp_cfg is not None:
            rng, k = jax.random.split(rng)
            ds, dm = disc_update(ts["amp"], motion[0], motion[1], flat(traj["amp_obs"]), k)
            extra.update(dm)
            ts = {**ts, "amp": ds}
        ended = jnp.sum(traj["done"])
        metrics = {**m, "reward": jnp.mean(traj["reward"]),
                   "episodes": ended,
                   "episode_return": jnp.sum(traj["ended_return"]) / jnp.maximum(ended, 1.0),
                   "episode_length": jnp.sum(traj["ended_length"]) / jnp.maximum(ended, 1.0),
                   "fall_rate": jnp.sum(traj["termination"]) / jnp.maximum(ended, 1.0),
                   "action_std": jnp.mean(jnp.exp(params["log_std"])), "learning_rate": ts["lr"],
                   **{k[2:]: jnp.mean(v) for k, v in traj.items() if k.startswith("m_")}, **extra}
        ts = {**ts, "params": params, "opt": opt, "norm": norm, "rng": rng, "lr": lr,
              "env_steps": ts["env_steps"] + cfg.batch_size, "iteration": ts["iteration"] + 1}
        return ts, metrics
    return update


# ------------------------------------------------------------------ saving
def _atomic_write(path: str, write) -> None:
    """write(file) into `path` through anim.fileio.atomic_write."""
    from anim.fileio import atomic_write
    with atomic_write(path) as f:
        write(f)


def _flatten(tree, prefix=""):
    import jax
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {prefix + jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def save_checkpoint(path: str, ts: dict, meta: dict, light: bool = False) -> None:
    """params, optimizer, normalizer, rng and counters (not the env states: a
    resumed run starts fresh episodes) with the run's configuration. light:
    without the optimizer's moments (a third of the size; a run resumed from it
    starts Adam afresh)."""
    import jax
    keep = {k: ts[k] for k in ("params", "opt", "norm", "rng", "env_steps", "iteration", "lr")
            if not (light and k == "opt")}
    if "amp" in ts:
        from .amp import checkpoint_part
        keep["amp"] = checkpoint_part(ts["amp"])
    arrays = _flatten(keep)
    meta = {**meta, "checkpoint_version": CHECKPOINT_VERSION,
            "treedef": str(jax.tree.structure(keep))}
    _atomic_write(path, lambda f: np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays))


def load_checkpoint(path: str, ts_template: dict) -> tuple[dict, dict]:
    """Fill a freshly initialized TrainState with a checkpoint's arrays. Read
    without pickles; a damaged file, one for another network or holding NaN
    is an ArtefactError naming it. A version 1 file (hand-written Adam) or a
    light one resumes with the optimizer afresh; one without a discriminator
    resumed with AMP starts the discriminator afresh (meta['amp_fresh']).
    One without a learning rate (written before the adaptive schedule) keeps
    the template's, the configured one."""
    import jax
    import jax.numpy as jnp

    from anim.fileio import ArtefactError, read_npz
    z = read_npz(path, "training checkpoint")
    try:
        meta = json.loads(str(z["__meta__"]))
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
    except (KeyError, ValueError) as e:
        raise ArtefactError(f"{path}: damaged checkpoint (meta: {type(e).__name__}: {e})") from None
    version = meta.get("checkpoint_version")
    if version not in (1, CHECKPOINT_VERSION):
        raise ArtefactError(f"{path}: checkpoint version {version}, expected {CHECKPOINT_VERSION}")
    names = ("params", "opt", "norm", "rng", "env_steps", "iteration") + (("lr",) if "['lr']" in z else ())
    if version == 1 or not any(k.startswith("['opt']") for k in z):
        names = tuple(n for n in names if n != "opt")      # light or version 1: the optimizer starts afresh
    keep = {k: ts_template[k] for k in names}
    if "amp" in ts_template:
        if any(k.startswith("['amp']") for k in z):
            from .amp import checkpoint_part
            keep["amp"] = checkpoint_part(ts_template["amp"])
        else:
            meta["amp_fresh"] = True
    paths, treedef = jax.tree_util.tree_flatten_with_path(keep)
    leaves = []
    for p, v in paths:
        key = jax.tree_util.keystr(p)
        if key not in z or z[key].shape != np.shape(v):
            raise ArtefactError(f"{path}: checkpoint does not fit this model/network ({key})")
        if z[key].dtype.kind == "f" and not np.isfinite(z[key]).all():
            raise ArtefactError(f"{path}: damaged checkpoint ({key} holds NaN or infinite values)")
        leaves.append(jnp.asarray(z[key], dtype=v.dtype))
    restored = jax.tree_util.tree_unflatten(treedef, leaves)
    if "amp" in restored:
        restored["amp"] = {**ts_template["amp"], **restored["amp"]}
    return {**ts_template, **restored}, meta


def save_policy(path: str, ts: dict, humanoid, env_cfg, ppo_cfg: PPOConfig, seed: int, extra: dict | None = None):
    """The deployable policy: MLP weights, normalizer, the humanoid (MJCF and
    pose map), the env and network configuration and the seed, one .npz."""
    params, norm = ts["params"], ts["norm"]
    arrays = {}
    for i, (w, b) in enumerate(params["policy"]):
        arrays[f"policy_w{i}"] = np.asarray(w)
        arrays[f"policy_b{i}"] = np.asarray(b)
    arrays["log_std"] = np.asarray(params["log_std"])
    arrays["obs_mean"] = np.asarray(norm["mean"])
    arrays["obs_var"] = np.asarray(norm["var"])
    meta = {"format": POLICY_FORMAT, "version": POLICY_VERSION, "humanoid": humanoid.to_dict(),
            "skeleton_signature": humanoid.skeleton.signature(), "env": asdict(env_cfg),
            "ppo": asdict(ppo_cfg), "seed": int(seed), "env_steps": float(ts["env_steps"]),
            "layers": len(params["policy"]), **(extra or {})}
    _atomic_write(path, lambda f: np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays))


def load_policy(path: str, skeleton=None):
    """-> (NumpyPolicy, Humanoid, EnvConfig, meta). A policy built for another
    skeleton, or in another format version, is an error. The archive's CRC-32
    of every member is checked as it is read, the layers must chain from the
    observation size to the humanoid's actuators and hold finite values: a
    truncated, bit-flipped or foreign file is an ArtefactError naming it."""
    from anim.fileio import ArtefactError, read_npz

    from .env import EnvConfig
    from .humanoid import Humanoid
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such policy file (train one with `anim train policy`)")
    z = read_npz(path, "physics policy file")

    def damaged(problem):
        return ArtefactError(f"{path}: damaged policy file ({problem})")

    try:
        meta = json.loads(str(z["__meta__"]))
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
    except (KeyError, ValueError) as e:
        raise damaged(f"meta: {type(e).__name__}: {e}") from None
    if meta.get("format") != POLICY_FORMAT or meta.get("version") != POLICY_VERSION:
        raise ArtefactError(f"{path}: policy format {meta.get('format')} v{meta.get('version')}, this code "
                            f"reads {POLICY_FORMAT} v{POLICY_VERSION}: retrain it")
    try:
        h = Humanoid.from_dict(meta["humanoid"], skeleton)
        n = int(meta["layers"])
        layers = [(z[f"policy_w{i}"], z[f"policy_b{i}"]) for i in range(n)]
        obs_mean, obs_var = z["obs_mean"], z["obs_var"]
        env_d = dict(meta["env"])
        env_d["tags"] = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in env_d["tags"])
        env_d["future_frames"] = tuple(env_d["future_frames"])
        env_cfg = EnvConfig(**env_d)
        clip = float(meta["ppo"]["network"]["obs_clip"])
        nu = h.nu
    except ArtefactError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, ValueError) and "skeleton" in str(e):
            raise                  # built for another skeleton: its own clear error
        raise damaged(f"{type(e).__name__}: {e}") from None
    n_in = obs_mean.shape[0] if obs_mean.ndim == 1 else -1
    if n < 1 or obs_var.shape != obs_mean.shape or n_in < 1:
        raise damaged(f"observation normalizer of shapes {obs_mean.shape} and {obs_var.shape}")
    for i, (w, b) in enumerate(layers):
        if w.ndim != 2 or w.shape[0] != n_in or b.shape != (w.shape[1],):
            raise damaged(f"layer {i} has shapes {w.shape} and {b.shape}, expected ({n_in}, k) and (k,)")
        n_in = w.shape[1]
    if n_in != nu:
        raise damaged(f"the policy outputs {n_in} actions, the humanoid has {nu} actuators")
    for k, a in [("obs_mean", obs_mean), ("obs_var", obs_var)] + \
            [(f"policy layer {i}", a) for i, (w, b) in enumerate(layers) for a in (w, b)]:
        if a.dtype.kind != "f" or not np.isfinite(a).all():
            raise damaged(f"{k} holds NaN or infinite values")
    if (obs_var < 0).any() or not np.isfinite(clip) or clip <= 0:
        raise damaged("negative observation variance or bad obs_clip")
    pol = networks.NumpyPolicy(layers, obs_mean, obs_var, clip)
    return pol, h, env_cfg, meta