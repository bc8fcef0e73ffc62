"""The MJX motion-tracking environment (DeepMimic, Peng et al. 2018, on MJX).

MuJoCo Playground style: `reset(rng) -> State`, `step(state, action) -> State`
over a frozen `State` pytree; pure and jit-able; `jax.vmap` runs thousands.

* Reference: database clips chosen by tags (a held-out split of whole clips is
  kept for evaluation), converted once to qpos / qvel and to body positions,
  rotations and velocities with C MuJoCo (`Reference`).
* Reset: reference state initialization (RSI) at a random frame.
* Step: 60 Hz; the action is a residual on the next reference frame's hinge
  angles (PD targets = ref + action_scale * action), `substeps` physics steps.
* Observation (character heading frame: yaw of the hips, origin at the hips):
  hips height, body positions, 6D rotations, linear and angular velocities,
  then for each of `future_frames` the reference body positions and 6D
  rotations relative to the simulated character.
* Reward: DeepMimic's five terms with its weights and kernel scales (the
  values of its humanoid code): pose 0.5 exp(-2 sum joint angle err^2),
  velocity 0.05 exp(-0.1 sum hinge rate err^2), end effectors 0.15
  exp(-40 sum pos err^2) (hands, feet, head relative to the hips), root 0.2
  exp(-5 (pos^2 + 0.1 ang^2 + 0.01 vel^2 + 0.001 angvel^2)), centre of mass
  0.1 exp(-10 comvel err^2). In [0, 1]; 1 when the state equals the reference.
  With the re-anchoring on (`EnvConfig.max_root_distance`) and `w_lag` > 0,
  the sum is multiplied by 1 - w_lag (1 - exp(-k_lag v^2)), v the speed
  (m/s) at which the reference is pulled back to the body that step: the
  re-anchoring holds the root error at its bound, so without this a body
  that walks slower than its reference loses little of the root term, and a
  careful, lagging gait pays. A factor, not a negative term, keeps the
  reward in [0, 1]: it never makes ending the episode pay. With `w_slip` >
  0, the same kind of factor 1 - w_slip (1 - exp(-k_slip e)) charges foot
  slip: e sums, over the foot and toe bodies whose reference moves slower
  than `slip_speed` on the ground (planted), the squared horizontal
  velocity error of the body against the reference's. The five terms leave
  a foot free to slide where the reference stands on it (the joint angles
  and the hands and feet relative to the hips can match while the whole
  body glides), and policies trained on them do: feet in contact slip at
  tens of cm/s.
* Termination: fall (hips below `fall_ratio` of the reference hips height),
  deviation (mean body position error above `max_deviation`), or a non-finite
  state. Truncation (time limit or clip end) is flagged apart, so the learner
  bootstraps from the last observation (`info['final_obs']`).

The feature, observation and reward functions take the array module (`xp` =
numpy or jax.numpy) so that the CPU runtime computes exactly what training saw.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import convert
from .humanoid import Humanoid

FPS = 60.0


@dataclass(frozen=True)
class EnvConfig:
    """tags: clip filter as ((key, value-or-tuple), ...); default: walk and run of the normal style.
    split: 'train' (clips not held out), 'holdout' or 'all'; holdout_every: one
    source clip in this many (by a hash of its name; its mirror goes with it)
    is held out. action_scale: rad per unit action. future_frames: reference
    frames ahead shown to the policy. episode_seconds: time limit.
    fall_ratio, max_deviation: termination (see module doc). min_frames_left:
    RSI never starts closer than this to a clip end. max_root_distance (m):
    0 plays the reference where it was captured; > 0 moves it on the ground
    each step so that its hips stay within this of the body's, as the live
    loop's physics stage does (`tracker.PhysicsStage`): a policy for the live
    loop is then not asked to hold a path the loop never holds it to (both
    engines: `info['offset']` carries the shift in MJX). w_lag, k_lag: the
    charge on that pull-back (module doc; 0: none): at 0.5 and 20, a body
    trailing by 0.1 m/s keeps 0.91 of its reward, by 0.3 m/s 0.71.
    w_slip, k_slip, slip_speed (m/s): the charge on planted feet sliding
    (module doc; 0: none): at 0.3 and 10, one planted foot sliding at 0.3
    m/s keeps 0.91 of the reward."""

    tags: tuple = (("content", ("run", "walk")), ("style", "normal"))
    split: str = "train"
    holdout_every: int = 8
    action_scale: float = 0.5
    future_frames: tuple = (1, 4)
    episode_seconds: float = 10.0
    fall_ratio: float = 0.6
    max_deviation: float = 0.5
    min_frames_left: int = 10
    max_root_distance: float = 0.0
    w_pose: float = 0.5
    w_vel: float = 0.05
    w_ee: float = 0.15
    w_root: float = 0.2
    w_com: float = 0.1
    k_pose: float = 2.0
    k_vel: float = 0.1
    k_ee: float = 40.0
    k_root: float = 5.0
    k_com: float = 10.0
    w_lag: float = 0.0
    k_lag: float = 20.0
    w_slip: float = 0.0
    k_slip: float = 10.0
    slip_speed: float = 0.3

    def tag_filter(self) -> dict:
        return {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in self.tags}


def tags_from_dict(tags: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in tags.items()))


# ====================================================================== math (np or jnp)
def qmul(xp, a, b):
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return xp.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def cross(xp, a, b):
    """a x b over the last axis (faster than numpy's cross on small arrays)."""
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return xp.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=-1)


def qinv(xp, q):
    return q * xp.asarray([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def qrot(xp, q, v):
    u = q[..., 1:]
    t = 2 * cross(xp, u, v)
    return v + q[..., :1] * t + cross(xp, u, t)


def qangle(xp, q):
    """Rotation angle of q in [0, pi]."""
    return 2 * xp.arctan2(xp.sqrt(xp.sum(q[..., 1:] ** 2, axis=-1) + 1e-12), xp.abs(q[..., 0]))


def q6d(xp, q):
    """First two columns of the rotation matrix: [..., 6]."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return xp.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y),
                     2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)], axis=-1)


# ====================================================================== features
def body_features(xp, xpos, xquat, cvel, xipos, mass):
    """Per-body state from MuJoCo data arrays of bodies 1..nb (the world
    dropped): positions, rotations, linear velocities at the body origins,
    angular velocities (world, MuJoCo axes), centre of mass and its velocity.
    cvel is MuJoCo's com-based velocity [ang, lin] at the whole-body COM."""
    com = xp.sum(mass[:, None] * xipos, axis=-2) / xp.sum(mass)
    ang, lin = cvel[..., :3], cvel[..., 3:]
    vel = lin + cross(xp, ang, xpos - com[..., None, :])
    comvel = xp.sum(mass[:, None] * (lin + cross(xp, ang, xipos - com[..., None, :])), axis=-2) / xp.sum(mass)
    return {"pos": xpos, "quat": xquat, "vel": vel, "avel": ang, "com": com, "comvel": comvel}


def heading_inverse(xp, root_quat, hips_forward):
    """Inverse of the character's heading (yaw about +Z of MuJoCo) from the hips."""
    fwd = qrot(xp, root_quat, hips_forward)
    yaw = xp.arctan2(fwd[..., 1], fwd[..., 0])
    zero = xp.zeros_like(yaw)
    return xp.stack([xp.cos(yaw / 2), zero, zero, -xp.sin(yaw / 2)], axis=-1)


def observation(xp, feats, future, hips_forward):
    """feats: body_features of the simulation; future: list of reference
    feature dicts (one per future frame)."""
    pos, quat = feats["pos"], feats["quat"]
    root = pos[..., 0, :]
    ih = heading_inverse(xp, quat[..., 0, :], hips_forward)
    ihb = ih[..., None, :]
    parts = [root[..., 2:3],
             qrot(xp, ihb, pos - root[..., None, :]).reshape(pos.shape[:-2] + (-1,)),
             q6d(xp, qmul(xp, ihb, quat)).reshape(pos.shape[:-2] + (-1,)),
             qrot(xp, ihb, feats["vel"]).reshape(pos.shape[:-2] + (-1,)),
             qrot(xp, ihb, feats["avel"]).reshape(pos.shape[:-2] + (-1,))]
    for ref in future:
        parts.append(qrot(xp, ihb, ref["pos"] - root[..., None, :]).reshape(pos.shape[:-2] + (-1,)))
        parts.append(q6d(xp, qmul(xp, ihb, ref["quat"])).reshape(pos.shape[:-2] + (-1,)))
    return xp.concatenate(parts, axis=-1)


def local_quats(xp, quat, parent):
    """Body rotations relative to their parent body ([..., nb, 4]; root: world)."""
    par = quat[..., np.maximum(parent, 0), :]
    loc = qmul(xp, qinv(xp, par), quat)
    return xp.where((parent < 0)[:, None], quat, loc)


def foot_joints(h: Humanoid) -> list:
    """The kinematic joints of the humanoid's feet and toes (those with a body)."""
    return [j for j in h.joints if h.segments[j] in ("foot", "toes")]


def foot_bodies(h: Humanoid) -> np.ndarray:
    """Body indices (0-based over bodies 1..nb, as body_features) of the feet and toes."""
    return np.array([h.body_of(j) - 1 for j in foot_joints(h)], np.int32)


def reward_terms(xp, cfg: EnvConfig, sim, ref, sim_qvel, ref_qvel, parent, ee, pulled=None, feet=None):
    """DeepMimic's terms (see module doc): returns (reward, dict of terms and errors).
    pulled: how far (m) the re-anchoring moved the reference this step, [...]
    (None: not re-anchored), charged by w_lag; feet: `foot_bodies`, whose
    slip w_slip charges (None: not charged)."""
    ls, lr = local_quats(xp, sim["quat"], parent), local_quats(xp, ref["quat"], parent)
    ang = qangle(xp, qmul(xp, qinv(xp, lr[..., 1:, :]), ls[..., 1:, :]))
    e_pose = xp.sum(ang ** 2, axis=-1)
    e_vel = xp.sum((sim_qvel[..., 6:] - ref_qvel[..., 6:]) ** 2, axis=-1)
    rs, rr = sim["pos"][..., :1, :], ref["pos"][..., :1, :]
    e_ee = xp.sum(xp.sum(((sim["pos"][..., ee, :] - rs) - (ref["pos"][..., ee, :] - rr)) ** 2, axis=-1), axis=-1)
    root_ang = qangle(xp, qmul(xp, qinv(xp, ref["quat"][..., 0, :]), sim["quat"][..., 0, :]))
    e_root = (xp.sum((sim["pos"][..., 0, :] - ref["pos"][..., 0, :]) ** 2, axis=-1) + 0.1 * root_ang ** 2
              + 0.01 * xp.sum((sim_qvel[..., 0:3] - ref_qvel[..., 0:3]) ** 2, axis=-1)
              + 0.001 * xp.sum((sim_qvel[..., 3:6] - ref_qvel[..., 3:6]) ** 2, axis=-1))
    e_com = xp.sum((sim["comvel"] - ref["comvel"]) ** 2, axis=-1)
    r = {"pose": xp.exp(-cfg.k_pose * e_pose), "vel": xp.exp(-cfg.k_vel * e_vel), "ee": xp.exp(-cfg.k_ee * e_ee),
         "root": xp.exp(-cfg.k_root * e_root), "com": xp.exp(-cfg.k_com * e_com)}
    reward = (cfg.w_pose * r["pose"] + cfg.w_vel * r["vel"] + cfg.w_ee * r["ee"] + cfg.w_root * r["root"]
              + cfg.w_com * r["com"])
    if pulled is not None:
        r["lag"] = xp.exp(-cfg.k_lag * (pulled * FPS) ** 2)
        reward = reward * (1.0 - cfg.w_lag * (1.0 - r["lag"]))
    if feet is not None and cfg.w_slip > 0:
        rv, sv = ref["vel"][..., feet, :2], sim["vel"][..., feet, :2]
        planted = xp.sum(rv * rv, axis=-1) < cfg.slip_speed ** 2
        r["slip"] = xp.exp(-cfg.k_slip * xp.sum(xp.where(planted, xp.sum((sv - rv) ** 2, axis=-1), 0.0), axis=-1))
        reward = reward * (1.0 - cfg.w_slip * (1.0 - r["slip"]))
    err = xp.mean(xp.sqrt(xp.sum((sim["pos"] - ref["pos"]) ** 2, axis=-1)), axis=-1)
    return reward, {**{f"r_{k}": v for k, v in r.items()}, "tracking_error": err}


# a state moving faster than this (m/s or rad/s, any dof) has blown up: it ends the episode as a
# non-finite one does (its huge but finite observations would overflow the normalizer's squares)
MAX_QVEL = 1e3


def state_ok(xp, qpos, qvel):
    """Finite and not blown up, per state ([..., nq], [..., nv])."""
    return (xp.all(xp.isfinite(qpos), axis=-1) & xp.all(xp.isfinite(qvel), axis=-1)
            & xp.all(xp.abs(qvel) < MAX_QVEL, axis=-1))


def termination(cfg: EnvConfig, sim, ref, tracking_error, finite):
    """(fallen, terminated): a fall is the hips below fall_ratio times the
    reference's hips height; an episode also ends when the mean body position
    error passes max_deviation or the state is not finite."""
    fallen = sim["pos"][..., 0, 2] < cfg.fall_ratio * ref["pos"][..., 0, 2]
    return fallen, fallen | (tracking_error > cfg.max_deviation) | (finite == 0)


# ====================================================================== reference
@dataclass(frozen=True)
class Reference:
    """Reference motion arrays, one row per frame (F frames of the chosen clips,
    concatenated). Body arrays are over MJCF bodies 1..nb in MuJoCo axes."""

    qpos: np.ndarray          # [F, nq]
    qvel: np.ndarray          # [F, nv]
    feats: dict               # body_features arrays, [F, ...]
    stop: np.ndarray          # [F] one past the last frame of the frame's clip
    start: np.ndarray         # [F] first frame of the frame's clip
    db_frames: np.ndarray     # [F] database frame index
    clip_names: tuple         # per clip
    clip_ranges: np.ndarray   # [C, 2] start, stop in this reference

    @property
    def num_frames(self) -> int:
        return self.qpos.shape[0]

    def rsi_frames(self, min_left: int) -> np.ndarray:
        f = np.arange(self.num_frames)
        ok = (self.stop - f) > max(1, min_left)
        return f[ok] if ok.any() else f[(self.stop - f) > 1]


def select_clips(db, cfg: EnvConfig) -> list:
    """Clip indices of the database for the config's tags and split."""
    mask_tags = cfg.tag_filter()
    out = []
    for c, tags in enumerate(db.clip_tags):
        from anim.database import _tags_match
        if not _tags_match(tags, mask_tags):
            continue
        base = db.clip_names[c].removesuffix("_mirror")
        held = cfg.holdout_every > 0 and zlib.crc32(base.encode()) % cfg.holdout_every == 0
        if cfg.split == "all" or (cfg.split == "holdout") == held:
            out.append(c)
    if not out:
        raise ValueError(f"no clip of the database matches tags {mask_tags} (split {cfg.split})")
    return out


def compute_features(h: Humanoid, qpos: np.ndarray, qvel: np.ndarray, model=None) -> dict:
    """body_features of states [F, nq] / [F, nv] with C MuJoCo."""
    import mujoco
    m = model if model is not None else h.model()
    d = mujoco.MjData(m)
    f = qpos.shape[0]
    nb = m.nbody - 1
    xpos = np.empty((f, nb, 3))
    xquat = np.empty((f, nb, 4))
    cvel = np.empty((f, nb, 6))
    xipos = np.empty((f, nb, 3))
    for i in range(f):
        d.qpos[:] = qpos[i]
        d.qvel[:] = qvel[i]
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_comVel(m, d)
        xpos[i], xquat[i], cvel[i], xipos[i] = d.xpos[1:], d.xquat[1:], d.cvel[1:], d.xipos[1:]
    return body_features(np, xpos, xquat, cvel, xipos, m.body_mass[1:].copy())


def build_reference(db, h: Humanoid, clips: list, model=None) -> Reference:
    qpos, qvel, stop, start, frames, ranges, names = [], [], [], [], [], [], []
    n = 0
    for c in clips:
        a, b = int(db.range_starts[c]), int(db.range_stops[c])
        q = convert.pose_to_qpos(h, np.asarray(db.rotations[a:b]), np.asarray(db.positions[a:b]))
        qpos.append(q)
        qvel.append(convert.clip_qvel(h, q, 1.0 / FPS))
        stop.append(np.full(b - a, n + b - a))
        start.append(np.full(b - a, n))
        frames.append(np.arange(a, b))
        ranges.append((n, n + b - a))
        names.append(db.clip_names[c])
        n += b - a
    qpos, qvel = np.concatenate(qpos), np.concatenate(qvel)
    feats = compute_features(h, qpos, qvel, model)
    return Reference(qpos=qpos.astype(np.float32), qvel=qvel.astype(np.float32),
                     feats={k: np.asarray(v, np.float32) for k, v in feats.items()},
                     stop=np.concatenate(stop).astype(np.int32), start=np.concatenate(start).astype(np.int32),
                     db_frames=np.concatenate(frames), clip_names=tuple(names),
                     clip_ranges=np.array(ranges, np.int64))


# ====================================================================== the environment
@dataclass(frozen=True)
class State:
    data: object            # mjx.Data
    obs: object             # [obs_size]
    reward: object          # []
    done: object            # [] 1.0 when the episode ended (termination or truncation)
    metrics: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def replace(self, **kw) -> "State":
        return dataclasses.replace(self, **kw)


def _register():
    import jax
    jax.tree_util.register_dataclass(State, data_fields=["data", "obs", "reward", "done", "metrics", "info"],
                                     meta_fields=[])


class TrackingEnv:
    """reset(rng) -> State, step(state, action) -> State (pure; jit and vmap them).

    info: rng, frame (reference row), steps, truncation (1.0 when the episode
    hit the time limit or the clip end, not a fall), final_obs (the observation
    before an auto-reset; equals obs otherwise), episode return and length."""

    def __init__(self, h: Humanoid, ref: Reference, cfg: EnvConfig = EnvConfig(), amp: bool = False):
        import jax.numpy as jnp
        import mujoco
        mjx = import_mjx()
        _register_once()
        self.h, self.cfg, self.ref_np = h, cfg, ref
        self.mj_model = h.model()
        self.mx = mjx.put_model(self.mj_model, impl="jax")
        self.substeps = max(1, int(round(1.0 / FPS / self.mj_model.opt.timestep)))
        m = self.mj_model
        self.parent = np.asarray(m.body_parentid[1:] - 1, np.int32)
        self.ee = np.array([h.body_of(j) - 1 for j in h.end_effectors], np.int32)
        self.feet = foot_bodies(h)
        self.mass = jnp.asarray(m.body_mass[1:], jnp.float32)
        self.lo = jnp.asarray(m.actuator_ctrlrange[:, 0], jnp.float32)
        self.hi = jnp.asarray(m.actuator_ctrlrange[:, 1], jnp.float32)
        self.hips_forward = jnp.asarray(h.hips_forward, jnp.float32)
        self.max_steps = int(round(cfg.episode_seconds * FPS))
        self.ref = {"qpos": jnp.asarray(ref.qpos), "qvel": jnp.asarray(ref.qvel),
                    "stop": jnp.asarray(ref.stop), "rsi": jnp.asarray(ref.rsi_frames(cfg.min_frames_left)),
                    **{f"f_{k}": jnp.asarray(v) for k, v in ref.feats.items()}}
        d0 = mujoco.MjData(m)
        self._data0 = mjx.put_data(m, d0, impl="jax")
        self.action_size = h.nu
        self.obs_size = int(1 + ref.feats["pos"].shape[1] * (15 + 9 * len(cfg.future_frames)))
        self.amp = amp

    # ------------------------------------------------------------ helpers
    def _amp_frame(self, feats, qvel):
        import jax.numpy as jnp

        from . import amp
        return amp.frame_features(jnp, feats, qvel, self.parent, self.ee, self.hips_forward)
    def ref_feats(self, f, offset=None):
        """The reference's body features at frame f, moved on the ground by
        `offset` ([3], MuJoCo axes: the re-anchoring's) when given."""
        out = {k[2:]: v[f] for k, v in self.ref.items() if k.startswith("f_")}
        if offset is not None:
            out["pos"] = out["pos"] + offset
            out["com"] = out["com"] + offset
        return out

    def future(self, f, offset=None):
        import jax.numpy as jnp
        stop = self.ref["stop"][f]
        return [self.ref_feats(jnp.minimum(f + k, stop - 1), offset) for k in self.cfg.future_frames]

    def _obs(self, feats, f, offset=None):
        import jax.numpy as jnp
        return observation(jnp, feats, self.future(f, offset), self.hips_forward)

    def _reanchor(self, sim, f, offset):
        """(offset, pulled): the offset that brings the reference's hips at
        frame f back within max_root_distance of the body's on the ground,
        and how far (m) that moved them (cpu_env's rule)."""
        import jax.numpy as jnp
        gap = sim["pos"][0, :2] - (self.ref["f_pos"][f, 0, :2] + offset[:2])
        dist = jnp.sqrt(jnp.sum(gap * gap))
        bound = self.cfg.max_root_distance
        share = jnp.where(jnp.isfinite(dist) & (dist > bound), 1.0 - bound / jnp.maximum(dist, 1e-9), 0.0)
        return offset.at[:2].add(share * jnp.nan_to_num(gap)), jnp.where(share > 0, dist - bound, 0.0)

    # ------------------------------------------------------------ API
    def reset(self, rng):
        import jax
        import jax.numpy as jnp
        rng, k = jax.random.split(rng)
        rsi = self.ref["rsi"]
        f = rsi[jax.random.randint(k, (), 0, rsi.shape[0])]
        return self.reset_to(f, rng)

    def reset_to(self, f, rng):
        """The state of reference frame f (the simulation state is set exactly;
        the observation comes from the reference features of that frame)."""
        import jax.numpy as jnp
        qpos, qvel = self.ref["qpos"][f], self.ref["qvel"][f]
        data = self._data0.replace(qpos=qpos, qvel=qvel, ctrl=qpos[7:])
        obs = self._obs(self.ref_feats(f), f)
        zero = jnp.zeros((), jnp.float32)
        names = ("r_pose", "r_vel", "r_ee", "r_root", "r_com", "tracking_error", "fallen")
        names += (("r_lag",) if self.cfg.max_root_distance > 0 else ()) + (("r_slip",) if self.cfg.w_slip > 0 else ())
        metrics = {k: zero for k in names}
        info = {"rng": rng, "frame": jnp.asarray(f, jnp.int32), "steps": jnp.zeros((), jnp.int32),
                "truncation": zero, "final_obs": obs, "episode_return": zero, "episode_length": zero,
                "ended_return": zero, "ended_length": zero}
        if self.cfg.max_root_distance > 0:      # the reference's ground shift (re-anchoring)
            info["offset"] = jnp.zeros(3, jnp.float32)
        if self.amp:        # the step's transition features for AMP (amp_obs) and the state's (amp_feat)
            info["amp_feat"] = self._amp_frame(self.ref_feats(f), qvel)
            info["amp_obs"] = jnp.zeros(2 * info["amp_feat"].shape[-1], jnp.float32)
        return State(data=data, obs=obs, reward=zero, done=zero, metrics=metrics, info=info)

    def step(self, state, action):
        import jax
        import jax.numpy as jnp
        from mujoco import mjx
        cfg = self.cfg
        f1 = state.info["frame"] + 1
        qref = self.ref["qpos"][f1]
        ctrl = jnp.clip(qref[7:] + cfg.action_scale * action, self.lo, self.hi)
        data = state.data.replace(ctrl=ctrl)
        data = jax.lax.fori_loop(0, self.substeps, lambda _, d: mjx.step(self.mx, d), data)
        sim = body_features(jnp, data.xpos[1:], data.xquat[1:], data.cvel[1:], data.xipos[1:], self.mass)
        offset = pulled = None
        if cfg.max_root_distance > 0:
            offset, pulled = self._reanchor(sim, f1, state.info["offset"])
        ref = self.ref_feats(f1, offset)
        reward, terms = reward_terms(jnp, cfg, sim, ref, data.qvel, self.ref["qvel"][f1], self.parent, self.ee,
                                     pulled, self.feet)
        finite = state_ok(jnp, data.qpos, data.qvel)
        fallen, terminated = termination(cfg, sim, ref, terms["tracking_error"], finite)
        steps = state.info["steps"] + 1
        truncated = ((steps >= self.max_steps) | (f1 + 1 >= self.ref["stop"][f1])) & ~terminated
        obs = jnp.where(finite, jnp.nan_to_num(self._obs(sim, f1, offset), nan=0.0, posinf=0.0, neginf=0.0), 0.0)
        reward = jnp.where(finite, reward, 0.0)
        done = (terminated | truncated).astype(jnp.float32)
        metrics = {**{k: jnp.where(finite, v, 0.0) for k, v in terms.items()}, "fallen": fallen.astype(jnp.float32)}
        info = {**state.info, "frame": f1, "steps": steps, "truncation": truncated.astype(jnp.float32),
                "final_obs": obs, "episode_return": state.info["episode_return"] + reward,
                "episode_length": state.info["episode_length"] + 1.0}
        if offset is not None:
            info["offset"] = offset
        if self.amp:
            cur = jnp.nan_to_num(self._amp_frame(sim, data.qvel), nan=0.0, posinf=0.0, neginf=0.0)
            info["amp_obs"] = jnp.concatenate([state.info["amp_feat"], cur], axis=-1).astype(jnp.float32)
            info["amp_feat"] = cur
        return State(data=data, obs=obs, reward=reward, done=done, metrics=metrics, info=info)

    def step_autoreset(self, state, action):
        """step, then states that ended start again at a random frame (RSI);
        reward, done, truncation, metrics and final_obs keep the ended step's."""
        import jax
        import jax.numpy as jnp
        nxt = self.step(state, action)
        rng, k = jax.random.split(nxt.info["rng"])
        fresh = self.reset(k)
        done = nxt.done > 0

        def pick(a, b):
            return jnp.where(jnp.reshape(done, done.shape + (1,) * (a.ndim - done.ndim)), a, b)

        data = jax.tree.map(pick, fresh.data, nxt.data)
        obs = pick(fresh.obs, nxt.obs)
        info = {**nxt.info, "rng": rng,
                "frame": jnp.where(done, fresh.info["frame"], nxt.info["frame"]),
                "steps": jnp.where(done, 0, nxt.info["steps"]),
                "episode_return": jnp.where(done, 0.0, nxt.info["episode_return"]),
                "episode_length": jnp.where(done, 0.0, nxt.info["episode_length"]),
                "ended_return": nxt.info["episode_return"], "ended_length": nxt.info["episode_length"]}
        if self.amp:
            info["amp_feat"] = pick(fresh.info["amp_feat"], nxt.info["amp_feat"])
        if "offset" in info:
            info["offset"] = pick(fresh.info["offset"], nxt.info["offset"])
        return nxt.replace(data=data, obs=obs, info=info)


_REGISTERED = False


def import_mjx():
    """mujoco.mjx, without the note it prints when the optional warp backend is
    missing (the JAX backend is the one used here)."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        from mujoco import mjx
    return mjx


def _register_once():
    global _REGISTERED
    if not _REGISTERED:
        _register()
        _REGISTERED = True


def make_env(db, h: Humanoid, cfg: EnvConfig = EnvConfig()) -> TrackingEnv:
    return TrackingEnv(h, build_reference(db, h, select_clips(db, cfg)), cfg)
