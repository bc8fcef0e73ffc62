"""Adversarial motion priors (Peng et al. 2021, "AMP"): a discriminator that
tells mocap transitions from the policy's, whose score is a style reward.

Where the tracking policy cannot follow its reference exactly (after a push,
on a transition it never saw, drifting off the path) the tracking reward only
says "closer"; the style reward says "move like the mocap".

Discriminator input: the features of two consecutive 60 Hz states (s_t,
s_t+1), the AMP paper's choice. The features already hold velocities, so a
pair also sees accelerations; longer windows (ASE, CALM: 10 frames) cost
more per sample and let a small discriminator overfit faster on a corpus
this size. One state's features (`frame_features`, in the heading frame of
the hips, as the tracking observation):

* hips height (1); hips rotation as 6D (6); hips linear and angular velocity (6)
* every other body's rotation relative to its parent, 6D ((nb - 1) x 6)
* hinge rates, qvel[6:] (nv - 6)
* end effectors (hands, feet, head) relative to the hips (5 x 3)

computed by one function over the array module (`xp` = numpy or jax.numpy):
the C MuJoCo trainer and the mocap use numpy, the MJX trainer JAX; a test
holds the two to float32 precision.

Objectives (`AMPConfig.objective`):

* ``lsgan`` (the AMP paper): D regresses mocap to +1 and the policy to -1,
  loss E[(D(real) - 1)^2] + E[(D(fake) + 1)^2] + (w_gp / 2) E[|grad D(real)|^2],
  w_gp = 10; style reward max(0, 1 - (D - 1)^2 / 4), in [0, 1].
* ``bce`` (MimicKit, PHC): D is a logit, loss 0.5 (BCE(real, 1) + BCE(fake, 0))
  + w_gp E[|grad D(real)|^2], w_gp = 5; style reward -log(max(1 - sigmoid(D),
  1e-4)), in [0, 9.21].

Both add a small penalty on the last layer's weights (logit regularization,
0.01 x their squared sum, as MimicKit and IsaacGym's AMP do): the discriminator
otherwise saturates and its reward stops carrying a gradient. The gradient
penalty is taken with respect to the normalized input, on mocap samples only.

Normalization: the input is standardized with the mean and deviation of the
mocap transitions, fixed at the start of training (stored in checkpoints).
A running normalizer over policy samples would move the reward's meaning as
the policy changes; the mocap statistics are the distribution the
discriminator is asked to recognize.

Replay: each update draws half its policy samples from the newest rollout
and half from a buffer of earlier rollouts (circular, `replay_size`), so the
discriminator does not forget motion the policy has moved away from. The
buffer is not saved in checkpoints (a resumed run refills it).

Reward mix: r = task_weight r_track + style_weight r_style, 0.5 / 0.5 by
default, the weights of the AMP paper's tasks; the tracking reward is in
[0, 1] as the lsgan style reward is.

The discriminator trains with optax's Adam; everything here is a pure
function of explicit pytrees, jitted by the caller (ppo.make_update).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import env as envmod

OBJECTIVES = ("lsgan", "bce")
DEFAULT_GP = {"lsgan": 10.0, "bce": 5.0}
BCE_REWARD_FLOOR = 1e-4


@dataclass(frozen=True)
class AMPConfig:
    """objective: 'lsgan' or 'bce' (module doc); gp_weight: gradient penalty
    weight (0 or less: the objective's default, 10 / 5); task_weight,
    style_weight: reward mix; hidden: discriminator widths (the paper's
    1024, 512 is for a GPU; 256, 256 trains at the pace of the CPU runs);
    learning_rate: its Adam step; batch_size: mocap samples (and policy
    samples) per update; updates: discriminator steps per PPO iteration;
    replay_size: policy transitions kept; logit_reg: last-layer penalty."""

    objective: str = "lsgan"
    gp_weight: float = 0.0
    task_weight: float = 0.5
    style_weight: float = 0.5
    hidden: tuple = (256, 256)
    learning_rate: float = 1e-4
    batch_size: int = 512
    updates: int = 8
    replay_size: int = 65536
    logit_reg: float = 0.01

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"AMP objective {self.objective!r}: one of {', '.join(OBJECTIVES)}")

    @property
    def gp(self) -> float:
        return self.gp_weight if self.gp_weight > 0 else DEFAULT_GP[self.objective]


# ====================================================================== features
def frame_features(xp, feats, qvel, parent, ee, hips_forward):
    """One state's features ([..., frame_size]) from `env.body_features`
    arrays and qvel (see the module doc)."""
    pos, quat = feats["pos"], feats["quat"]
    lead = pos.shape[:-2]
    root = pos[..., 0, :]
    ih = envmod.heading_inverse(xp, quat[..., 0, :], hips_forward)
    ihb = ih[..., None, :]
    local = envmod.local_quats(xp, quat, parent)[..., 1:, :]
    parts = [root[..., 2:3],
             envmod.q6d(xp, envmod.qmul(xp, ih, quat[..., 0, :])),
             envmod.qrot(xp, ih, feats["vel"][..., 0, :]),
             envmod.qrot(xp, ih, feats["avel"][..., 0, :]),
             envmod.q6d(xp, local).reshape(lead + (-1,)),
             qvel[..., 6:],
             envmod.qrot(xp, ihb, pos[..., ee, :] - root[..., None, :]).reshape(lead + (-1,))]
    return xp.concatenate(parts, axis=-1)


def frame_size(num_bodies: int, nv: int, num_ee: int) -> int:
    return 13 + 6 * (num_bodies - 1) + (nv - 6) + 3 * num_ee


@dataclass(frozen=True)
class MotionData:
    """The mocap side: per-frame features [F, frame_size] and the frames whose
    next frame is in the same clip (a transition starts there)."""

    frames: np.ndarray
    starts: np.ndarray
    clip_names: tuple

    @property
    def num_transitions(self) -> int:
        return int(self.starts.size)

    def transitions(self, idx=None) -> np.ndarray:
        i = self.starts if idx is None else self.starts[idx]
        return np.concatenate([self.frames[i], self.frames[i + 1]], axis=-1)


def motion_data(ref, h, model=None) -> MotionData:
    """MotionData of an `env.Reference` (its clips, with their mirrors)."""
    m = model if model is not None else h.model()
    parent = np.asarray(m.body_parentid[1:] - 1, np.int32)
    ee = np.array([h.body_of(j) - 1 for j in h.end_effectors], np.int32)
    feats = {k: np.asarray(v, np.float64) for k, v in ref.feats.items()}
    f = frame_features(np, feats, np.asarray(ref.qvel, np.float64), parent, ee,
                       np.asarray(h.hips_forward, np.float64)).astype(np.float32)
    idx = np.arange(ref.num_frames)
    starts = idx[idx + 1 < ref.stop]
    if not np.isfinite(f).all():
        raise ValueError("AMP motion data: non-finite features (a damaged reference clip)")
    return MotionData(frames=f, starts=starts.astype(np.int64), clip_names=tuple(ref.clip_names))


# ====================================================================== discriminator
def init(rng, motion: MotionData, cfg: AMPConfig) -> dict:
    """The discriminator's state: params, optax state, the fixed normalizer
    (mocap transitions' mean and deviation) and an empty replay buffer."""
    import jax.numpy as jnp

    from . import networks
    x = motion.transitions()
    size = x.shape[1]
    params = networks.init_mlp(rng, (size, *cfg.hidden, 1), 1.0)
    norm = {"mean": jnp.asarray(x.mean(0), jnp.float32), "std": jnp.asarray(x.std(0) + 1e-2, jnp.float32)}
    return {"params": params, "opt": optimizer(cfg).init(params), "norm": norm,
            "replay": jnp.zeros((cfg.replay_size, size), jnp.float32),
            "replay_count": jnp.zeros((), jnp.int32), "replay_next": jnp.zeros((), jnp.int32)}


def optimizer(cfg: AMPConfig):
    import optax
    return optax.adam(cfg.learning_rate)


def logits(params, norm, x):
    """D of raw transitions [..., size] -> [...]."""
    import jax.numpy as jnp

    from . import networks
    xn = (x - norm["mean"]) / norm["std"]
    return networks.mlp(jnp, params, xn)[..., 0]


def _d_normalized(params, xn):
    import jax.numpy as jnp

    from . import networks
    return networks.mlp(jnp, params, xn)[..., 0]


def style_reward(params, norm, x, objective: str):
    """The style reward of transitions [..., size] (module doc)."""
    import jax
    import jax.numpy as jnp
    d = logits(params, norm, x)
    if objective == "lsgan":
        return jnp.maximum(0.0, 1.0 - 0.25 * (d - 1.0) ** 2)
    return -jnp.log(jnp.maximum(1.0 - jax.nn.sigmoid(d), BCE_REWARD_FLOOR))


def gradient_penalty(params, xn):
    """E |d D / d x|^2 at normalized inputs xn [B, size]."""
    import jax
    import jax.numpy as jnp
    g = jax.vmap(jax.grad(lambda x: _d_normalized(params, x)))(xn)
    return jnp.mean(jnp.sum(g * g, axis=-1))


def loss(params, norm, real, fake, cfg: AMPConfig):
    """(loss, metrics) of one batch of raw mocap and policy transitions."""
    import jax
    import jax.numpy as jnp
    rn = (real - norm["mean"]) / norm["std"]
    fn = (fake - norm["mean"]) / norm["std"]
    dr, df = _d_normalized(params, rn), _d_normalized(params, fn)
    gp = gradient_penalty(params, rn)
    if cfg.objective == "lsgan":
        adv = jnp.mean((dr - 1.0) ** 2) + jnp.mean((df + 1.0) ** 2)
        total = adv + 0.5 * cfg.gp * gp
    else:
        adv = 0.5 * (jnp.mean(jax.nn.softplus(-dr)) + jnp.mean(jax.nn.softplus(df)))
        total = adv + cfg.gp * gp
    w_last = params[-1][0]
    total = total + cfg.logit_reg * jnp.sum(w_last * w_last)
    acc = 0.5 * (jnp.mean((dr > 0).astype(jnp.float32)) + jnp.mean((df < 0).astype(jnp.float32)))
    return total, {"disc_loss": adv, "disc_gp": gp, "disc_accuracy": acc, "disc_real": jnp.mean(dr),
                   "disc_fake": jnp.mean(df)}


def make_update(cfg: AMPConfig):
    """(disc state, mocap frames, mocap transition starts, policy transitions
    [B, size], rng) -> (disc state, metrics): `cfg.updates` Adam steps, each
    on `batch_size` mocap samples against half fresh and half replayed policy
    samples, then the fresh samples enter the replay buffer. Pure; jit it."""
    import jax
    import jax.numpy as jnp
    import optax
    opt = optimizer(cfg)
    grad_fn = jax.value_and_grad(loss, has_aux=True)
    bs = cfg.batch_size
    cap = cfg.replay_size

    def update(ds, frames, starts, fake, rng):
        n_fake = fake.shape[0]

        def step(carry, k):
            params, opt_state = carry
            k1, k2, k3, k4 = jax.random.split(k, 4)
            i = starts[jax.random.randint(k1, (bs,), 0, starts.shape[0])]
            real = jnp.concatenate([frames[i], frames[i + 1]], axis=-1)
            fresh = fake[jax.random.randint(k2, (bs - bs // 2,), 0, n_fake)]
            count = jnp.maximum(ds["replay_count"], 1)
            old = ds["replay"][jax.random.randint(k3, (bs // 2,), 0, count)]
            extra = fake[jax.random.randint(k4, (bs // 2,), 0, n_fake)]
            old = jnp.where(ds["replay_count"] > 0, old, extra)          # empty buffer: all fresh
            (_, m), g = grad_fn(params, ds["norm"], real, jnp.concatenate([fresh, old]), cfg)
            upd, opt_state = opt.update(g, opt_state, params)
            return (optax.apply_updates(params, upd), opt_state), m

        rng, k_ins = jax.random.split(rng)
        (params, opt_state), ms = jax.lax.scan(step, (ds["params"], ds["opt"]), jax.random.split(rng, cfg.updates))
        n_in = min(n_fake, cap // 4)                 # a rollout refreshes at most a quarter of the buffer
        pick = fake[jax.random.choice(k_ins, n_fake, (n_in,), replace=False)] if n_in < n_fake else fake
        slots = (ds["replay_next"] + jnp.arange(n_in)) % cap
        ds = {**ds, "params": params, "opt": opt_state, "replay": ds["replay"].at[slots].set(pick),
              "replay_next": (ds["replay_next"] + n_in) % cap,
              "replay_count": jnp.minimum(ds["replay_count"] + n_in, cap)}
        return ds, jax.tree.map(jnp.mean, ms)

    return update


def checkpoint_part(ds: dict) -> dict:
    """What a checkpoint keeps of the discriminator (not the replay buffer)."""
    return {k: ds[k] for k in ("params", "opt", "norm")}


class NumpyDiscriminator:
    """The discriminator and its style reward in numpy, for scoring motion
    outside JAX: the layers and normalizer of a checkpoint."""

    def __init__(self, layers, mean, std, objective: str):
        from . import networks
        self._mlp = networks.mlp
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.objective = objective

    def logits(self, x):
        return self._mlp(np, self.layers, (np.asarray(x, np.float32) - self.mean) / self.std)[..., 0]

    def reward(self, x):
        d = self.logits(x)
        if self.objective == "lsgan":
            return np.maximum(0.0, 1.0 - 0.25 * (d - 1.0) ** 2)
        return -np.log(np.maximum(1.0 - 1.0 / (1.0 + np.exp(-d)), BCE_REWARD_FLOOR))
