"""PPO's losses (Schulman et al. 2017) as pure functions (Brax PPO's `losses`):
generalized advantage estimation and the clipped surrogate objective with a
value loss and an entropy bonus."""

from __future__ import annotations

from . import networks


def gae(rewards, values, next_values, terminations, dones, gamma: float, lam: float):
    """Generalized advantage estimation (Schulman et al. 2016) over [T, N].

    next_values[t] is V of the observation that followed step t *before* any
    auto-reset, so a truncated episode (time limit, clip end) bootstraps from
    its last state; terminations (falls) cut the bootstrap; dones (either)
    stop the advantage from flowing across episodes."""
    import jax
    import jax.numpy as jnp
    deltas = rewards + gamma * next_values * (1.0 - terminations) - values

    def body(adv, x):
        delta, done = x
        adv = delta + gamma * lam * (1.0 - done) * adv
        return adv, adv

    _, adv = jax.lax.scan(body, jnp.zeros_like(values[0]), (deltas, dones), reverse=True)
    return adv, adv + values


def ppo_loss(params, norm, batch, clip_eps: float, vf_coef: float, ent_coef: float,
             normalize_advantages: bool = True, obs_clip: float = 10.0):
    """batch: obs, action, logp (behaviour), advantage, target (returns).
    Returns (loss, metrics)."""
    import jax.numpy as jnp
    obs = networks.normalize(norm, batch["obs"], obs_clip)
    mean = networks.policy_mean(params, obs)
    logp = networks.log_prob(mean, params["log_std"], batch["action"])
    # the log ratio is bounded before exp: a sample whose probability moved by e^20 or more
    # gives no gradient rather than an overflow (inf ratio -> inf loss -> NaN parameters)
    ratio = jnp.exp(jnp.clip(logp - batch["logp"], -20.0, 20.0))
    adv = batch["advantage"]
    if normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv))
    v = networks.value(params, obs)
    v_loss = 0.5 * jnp.mean((v - batch["target"]) ** 2)
    ent = networks.entropy(params["log_std"])
    loss = pg + vf_coef * v_loss - ent_coef * ent
    approx_kl = jnp.mean((ratio - 1) - jnp.log(ratio))
    clip_frac = jnp.mean((jnp.abs(ratio - 1) > clip_eps).astype(jnp.float32))
    return loss, {"loss": loss, "policy_loss": pg, "value_loss": v_loss, "entropy": ent,
                  "approx_kl": approx_kl, "clip_fraction": clip_frac}
