"""The tracking environment on C MuJoCo: many simulations stepped on CPU
threads (`mujoco.batch`), for training without a GPU.

Same reference, observation, reward, termination, RSI and auto-reset as the
MJX `TrackingEnv` (the numpy side of the same functions: `env.observation`,
`env.reward_terms`, `env.termination`), stepped the way MJX integrates
(`runtime.MjxMatchedStep`), so that a policy trained here runs in MJX and in
the CPU runtime alike. On this repository's 2-core CPU it runs about 20x the
env steps per second of MJX on the same CPU (`python -m bench physics`).

With `EnvConfig.max_root_distance` > 0 each simulation's reference is moved
on the ground (an offset added to its body positions and centre of mass) so
that its hips stay within that distance of the body's: the live loop's
re-anchoring, so that drift from the captured path neither ends an episode
nor costs reward beyond what the runtime will ever see.

`step(action) -> dict` of numpy arrays over the N simulations: obs (after any
auto-reset), reward, done, termination (done by a fall/deviation, not by the
time limit), final_obs (before the reset), ended_return, ended_length (of
episodes that ended this step, else 0) and m_* metrics, the keys of the MJX
rollout's trajectory; with amp=True also amp_obs, the step's transition
features for the style discriminator (`amp.frame_features` of the state
before and after it).
"""

from __future__ import annotations

import numpy as np

from . import env as envmod
from .env import EnvConfig, Reference


class BatchTrackingEnv:
    def __init__(self, h, ref: Reference, cfg: EnvConfig, num_envs: int, nthread: int = 0, seed: int = 0,
                 amp: bool = False):
        import os

        import mujoco
        from mujoco.batch import Batch

        from .runtime import MjxMatchedStep
        self.h, self.ref, self.cfg, self.n = h, ref, cfg, num_envs
        m = self.model = h.model()
        self.matched = MjxMatchedStep(m)          # switches the model to MJX's integration
        self.substeps = max(1, int(round(1.0 / envmod.FPS / m.opt.timestep)))
        self.batch = Batch(m, nsim=num_envs, nthread=nthread or (os.cpu_count() or 1))
        b = self.batch
        self.qpos, self.qvel, self.ctrl = b.bind("qpos"), b.bind("qvel"), b.bind("ctrl")
        self.qfrc_applied, self.warm = b.bind("qfrc_applied"), b.bind("qacc_warmstart")
        self.xpos, self.xquat, self.cvel, self.xipos = b.bind("xpos"), b.bind("xquat"), b.bind("cvel"), b.bind("xipos")
        self.parent = np.asarray(m.body_parentid[1:] - 1, np.int32)
        self.ee = np.array([h.body_of(j) - 1 for j in h.end_effectors], np.int32)
        self.feet = envmod.foot_bodies(h)
        self.mass = m.body_mass[1:].copy()
        self.lo, self.hi = m.actuator_ctrlrange[:, 0].copy(), m.actuator_ctrlrange[:, 1].copy()
        self.hips_forward = np.asarray(h.hips_forward, np.float64)
        self.max_steps = int(round(cfg.episode_seconds * envmod.FPS))
        self.rsi = ref.rsi_frames(cfg.min_frames_left)
        self.feats = {k: np.asarray(v, np.float64) for k, v in ref.feats.items()}
        self.rng = np.random.default_rng(seed)
        self.obs_size = int(1 + ref.feats["pos"].shape[1] * (15 + 9 * len(cfg.future_frames)))
        self.action_size = h.nu
        self.frame = np.zeros(num_envs, np.int64)
        self.steps = np.zeros(num_envs, np.int64)
        self.ret = np.zeros(num_envs)
        self.length = np.zeros(num_envs)
        self.obs = np.zeros((num_envs, self.obs_size), np.float32)
        self.offset = np.zeros((num_envs, 3))          # ground shift of each reference (MuJoCo axes)
        self.amp = amp
        if amp:
            from . import amp as ampmod
            self._amp_frame = lambda feats, qvel: ampmod.frame_features(np, feats, qvel, self.parent, self.ee,
                                                                        self.hips_forward)
            self.amp_prev = np.zeros((num_envs, ampmod.frame_size(len(self.mass), m.nv, len(self.ee))))
        self.reset(np.arange(num_envs))

    def _ref(self, f):
        out = {k: v[f] for k, v in self.feats.items()}
        if self.cfg.max_root_distance > 0:
            out["pos"] = out["pos"] + self.offset[:, None, :]
            out["com"] = out["com"] + self.offset
        return out

    def _future(self, f):
        stop = self.ref.stop[f]
        return [self._ref(np.minimum(f + k, stop - 1)) for k in self.cfg.future_frames]

    def _reanchor(self, sim, f) -> np.ndarray:
        """Move the references whose hips are past max_root_distance from the
        body's back to that distance (ground plane); returns how far (m) each
        was moved."""
        gap = sim["pos"][:, 0, :2] - (self.feats["pos"][f, 0, :2] + self.offset[:, :2])
        dist = np.linalg.norm(gap, axis=-1)
        bound = self.cfg.max_root_distance
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(np.isfinite(dist) & (dist > bound), 1.0 - bound / dist, 0.0)
        self.offset[:, :2] += share[:, None] * np.nan_to_num(gap)
        return np.where(share > 0, dist - bound, 0.0)

    def reset(self, ids) -> None:
        """RSI: the given simulations start at random reference frames, the
        state set exactly (as MJX's `reset_to`)."""
        ids = np.asarray(ids)
        if ids.size == 0:
            return
        f = self.rsi[self.rng.integers(0, len(self.rsi), ids.size)]
        self.qpos[ids] = self.ref.qpos[f]
        self.qvel[ids] = self.ref.qvel[f]
        self.ctrl[ids] = self.ref.qpos[f, 7:]
        self.warm[ids] = 0.0
        self.frame[ids], self.steps[ids], self.ret[ids], self.length[ids] = f, 0, 0.0, 0.0
        self.offset[ids] = 0.0
        fut = [{k: v[ids] for k, v in r.items()} for r in self._future(self.frame)]
        self.obs[ids] = envmod.observation(np, {k: v[f] for k, v in self.feats.items()}, fut, self.hips_forward)
        if self.amp:
            self.amp_prev[ids] = self._amp_frame({k: v[f] for k, v in self.feats.items()},
                                                 np.asarray(self.ref.qvel[f], np.float64))

    def step(self, action: np.ndarray) -> dict:
        cfg = self.cfg
        f1 = self.frame + 1
        self.ctrl[:] = np.clip(self.ref.qpos[f1, 7:] + cfg.action_scale * action, self.lo, self.hi)
        kv = self.matched.kv
        for _ in range(self.substeps):
            if self.matched.active:
                self.qfrc_applied[:] = kv * self.qvel
            self.batch.step()
        sim = envmod.body_features(np, self.xpos[:, 1:], self.xquat[:, 1:], self.cvel[:, 1:], self.xipos[:, 1:],
                                   self.mass)
        pulled = self._reanchor(sim, f1) if cfg.max_root_distance > 0 else None
        ref = self._ref(f1)
        qvel = np.asarray(self.qvel)
        reward, terms = envmod.reward_terms(np, cfg, sim, ref, qvel, self.ref.qvel[f1], self.parent, self.ee,
                                            pulled, self.feet)
        with np.errstate(invalid="ignore"):
            finite = envmod.state_ok(np, np.asarray(self.qpos), qvel)
        fallen, terminated = envmod.termination(cfg, sim, ref, terms["tracking_error"], finite)
        self.steps += 1
        truncated = ((self.steps >= self.max_steps) | (f1 + 1 >= self.ref.stop[f1])) & ~terminated
        with np.errstate(invalid="ignore", over="ignore"):
            # float32 first, as MJX computes it: a state blowing up gives inf there, then 0 (not a
            # finite 1e300 that overflows later in the observation normalizer)
            obs = np.nan_to_num(envmod.observation(np, sim, self._future(f1), self.hips_forward).astype(np.float32),
                                nan=0.0, posinf=0.0, neginf=0.0)
        obs[~finite] = 0.0
        reward = np.where(finite, reward, 0.0)
        done = terminated | truncated
        self.frame = f1
        self.ret += reward
        self.length += 1.0
        out = {"reward": reward.astype(np.float32), "done": done.astype(np.float32),
               "termination": terminated.astype(np.float32), "final_obs": obs,
               "ended_return": np.where(done, self.ret, 0.0).astype(np.float32),
               "ended_length": np.where(done, self.length, 0.0).astype(np.float32),
               **{f"m_{k}": np.where(finite, v, 0.0).astype(np.float32) for k, v in terms.items()},
               "m_fallen": fallen.astype(np.float32)}
        if self.amp:
            with np.errstate(invalid="ignore", over="ignore"):
                cur = np.nan_to_num(self._amp_frame(sim, qvel), nan=0.0, posinf=0.0, neginf=0.0)
            out["amp_obs"] = np.concatenate([self.amp_prev, cur], axis=-1).astype(np.float32)
            self.amp_prev = cur
        self.obs = obs.copy()
        self.reset(np.flatnonzero(done))
        return out
