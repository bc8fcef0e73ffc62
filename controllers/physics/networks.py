"""Policy and value networks (Brax PPO's `networks`): plain MLPs as lists of
(W, b), a Gaussian policy with a state-independent log std, and a running
observation normalizer. Pure functions over explicit parameter pytrees; a
numpy twin of the policy for the CPU runtime."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NetworkConfig:
    """policy_hidden, value_hidden: hidden layer widths. init_log_std: initial
    log standard deviation of the actions (exp(-1) = 0.37 of action_scale).
    last_layer_scale: the policy's output layer starts this small, so the
    first policy is the reference's PD targets. obs_clip: normalized
    observations are clipped to +-this."""

    policy_hidden: tuple = (256, 256)
    value_hidden: tuple = (256, 256)
    init_log_std: float = -1.0
    last_layer_scale: float = 0.01
    obs_clip: float = 10.0


def _silu(xp, x):
    """x sigmoid(x), through tanh: x / (1 + exp(-x)) overflows below x = -88,
    and its gradient there is inf * 0 = NaN (every parameter NaN after one
    such pre-activation in a minibatch: the C MuJoCo runs' stops)."""
    return x * 0.5 * (1 + xp.tanh(0.5 * x))


def init_mlp(rng, sizes, last_scale=1.0):
    import jax
    import jax.numpy as jnp
    layers = []
    keys = jax.random.split(rng, len(sizes) - 1)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        scale = np.sqrt(2.0 / a) if i < len(sizes) - 2 else last_scale / np.sqrt(a)
        layers.append((jax.random.normal(keys[i], (a, b), jnp.float32) * scale, jnp.zeros((b,), jnp.float32)))
    return layers


def mlp(xp, layers, x):
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = _silu(xp, x)
    return x


def init(rng, obs_size: int, action_size: int, cfg: NetworkConfig = NetworkConfig()) -> dict:
    import jax
    import jax.numpy as jnp
    kp, kv = jax.random.split(rng)
    return {"policy": init_mlp(kp, (obs_size, *cfg.policy_hidden, action_size), cfg.last_layer_scale),
            "log_std": jnp.full((action_size,), cfg.init_log_std, jnp.float32),
            "value": init_mlp(kv, (obs_size, *cfg.value_hidden, 1), 1.0)}


def policy_mean(params, obs_n):
    import jax.numpy as jnp
    return mlp(jnp, params["policy"], obs_n)


def value(params, obs_n):
    import jax.numpy as jnp
    return mlp(jnp, params["value"], obs_n)[..., 0]


def log_prob(mean, log_std, action):
    import jax.numpy as jnp
    z = (action - mean) / jnp.exp(log_std)
    return jnp.sum(-0.5 * z * z - log_std - 0.5 * np.log(2 * np.pi), axis=-1)


def entropy(log_std):
    import jax.numpy as jnp
    return jnp.sum(log_std + 0.5 * np.log(2 * np.pi * np.e))


# ------------------------------------------------------------------ normalizer
def init_normalizer(size: int) -> dict:
    import jax.numpy as jnp
    return {"mean": jnp.zeros((size,), jnp.float32), "var": jnp.ones((size,), jnp.float32),
            "count": jnp.full((), 1e-4, jnp.float32)}


def update_normalizer(norm: dict, batch) -> dict:
    """Chan et al.'s parallel mean/variance update with a batch [B, size]."""
    import jax.numpy as jnp
    x = jnp.clip(batch.reshape(-1, batch.shape[-1]), -1e6, 1e6)    # no overflow of the squares below
    n = x.shape[0]
    bm, bv = jnp.mean(x, axis=0), jnp.var(x, axis=0)
    tot = norm["count"] + n
    delta = bm - norm["mean"]
    mean = norm["mean"] + delta * n / tot
    m2 = norm["var"] * norm["count"] + bv * n + delta ** 2 * norm["count"] * n / tot
    return {"mean": mean, "var": m2 / tot, "count": tot}


def normalize(norm: dict, obs, clip: float = 10.0):
    import jax.numpy as jnp
    return jnp.clip((obs - norm["mean"]) / jnp.sqrt(norm["var"] + 1e-8), -clip, clip)


# ------------------------------------------------------------------ numpy twin
class NumpyPolicy:
    """The deterministic policy (the Gaussian's mean) in float32 numpy."""

    def __init__(self, layers, mean, var, clip=10.0):
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]
        self.mean = np.asarray(mean, np.float32)
        self.inv_std = (1.0 / np.sqrt(np.asarray(var, np.float32) + 1e-8)).astype(np.float32)
        self.clip = float(clip)

    def __call__(self, obs):
        x = np.clip((np.asarray(obs, np.float32) - self.mean) * self.inv_std, -self.clip, self.clip)
        return mlp(np, self.layers, x)
