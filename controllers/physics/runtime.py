"""The trained tracking policy in C MuJoCo on the CPU at 60 Hz.

`PhysicsController` keeps the engine's controller interface (`reset(pose)`,
`step(control_input, dt) -> Pose`): it plays a database clip as the
reference, and each 60 Hz tick evaluates the policy MLP in numpy on the same
observation the MJX environment computes (`env.observation` with numpy),
sets the PD targets (reference + action_scale * action) and runs the physics
substeps. The returned pose is the simulated character; `Pose.info['ghost']`
is the reference pose (the viewer draws it as a ghost), `info['tracking_error_cm']`
the mean global joint position error between the two and
`info['pose_error_cm']` the same with each pose taken relative to its own
root position (the pose alone, without the root's drift from the clip's path).

Without a policy file the controller runs the reference's PD targets alone
(no residual): the baseline a trained policy must beat (it falls within a
second or two).

ControlInput.actions containing 'push' shoves the character: a horizontal
impulse of `push_impulse` N s on the hips, spread over `push_seconds`, along
the stick direction (world) or, with the stick at rest, to the character's
left.

Each step's input passes an `anim.control.InputGuard` (`SimulatedBody.guard`):
a non-finite stick is no stick (a push then goes to the character's left),
and `reset(pose)` with a non-finite root starts at the origin.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from anim import quat
from anim.control import ControlInput, InputGuard, usable_pose
from anim.skeleton import Pose, PoseInfo

from . import convert, env as envmod
from .env import EnvConfig
from .humanoid import Humanoid, HumanoidConfig


class MjxMatchedStep:
    """`mj_step` with the integration MJX does, so that a policy trained in MJX
    meets the same physics in C MuJoCo.

    With `implicitfast`, both engines integrate velocity implicitly in the
    actuators' velocity gain (the PD servos' kd). MJX always does; C MuJoCo
    leaves out an actuator whose force is at its force limit. A saturated
    servo then moves ~17 rad/s apart between the two in one 4 ms step (measured on the forearm
    of the humanoid), and a policy trained on MJX meets states it never saw
    (tracking held-out clips: 12 of 18 without a fall in C MuJoCo, 17 in MJX).

    The C model is switched to the Euler integrator, which integrates joint
    damping implicitly: each dof gets damping kv (the sum of its servos' kd)
    and the damping force that adds is cancelled with `qfrc_applied`, so the
    step solves (M + h kv) qacc = f as MJX's implicitfast does. Same cost
    as mj_step. Models with another integrator step unchanged."""

    def __init__(self, model):
        import mujoco
        self.active = model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        self.kv = np.zeros(model.nv)
        if not self.active:
            return
        for i in range(model.nu):
            if model.actuator_trntype[i] != mujoco.mjtTrn.mjTRN_JOINT:
                raise ValueError(f"actuator {model.actuator(i).name}: only joint transmissions are supported")
            if model.actuator_biastype[i] == mujoco.mjtBias.mjBIAS_AFFINE:
                dof = model.jnt_dofadr[model.actuator_trnid[i, 0]]
                self.kv[dof] -= model.actuator_biasprm[i, 2] * model.actuator_gear[i, 0] ** 2
        model.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
        model.dof_damping[:] += self.kv

    def __call__(self, model, data) -> None:
        import mujoco
        if self.active:
            data.qfrc_applied[:] = self.kv * data.qvel
        mujoco.mj_step(model, data)


@dataclass(frozen=True)
class PhysicsRuntimeConfig:
    """push_impulse (N s) over push_seconds (30 N s moves the 70 kg body by
    about 0.4 m/s: the shipped policy stayed up after 47 of 48 such pushes on
    held-out walks, and after 22 of 48 at 60 N s); fall_reset_seconds: after a fall,
    start the clip again (anchored where the character lies) this much later;
    loop: at the clip's end, start it again from the character's place (else
    hold the last reference frame)."""

    push_impulse: float = 30.0
    push_seconds: float = 0.1
    fall_reset_seconds: float = 2.0
    loop: bool = True


class SimulatedBody:
    """The humanoid in C MuJoCo with its tracking policy: what every physics
    stage shares. Each 60 Hz tick (`_track`) evaluates the policy MLP in numpy
    on the observation the MJX environment computes (`env.observation`: the
    simulated body and the reference `future_frames` ahead), sets the PD
    targets (next reference frame + action_scale * action), applies a push
    if one is under way and runs the physics substeps; then scores the body
    against the reference (global and root-relative joint error) and detects a
    fall. Subclasses own the reference: `PhysicsController` a database clip,
    `controllers.physics.tracker.PhysicsStage` a kinematic stage's output."""

    name = "physics"

    def __init__(self, skeleton, policy: str | None = None, humanoid: Humanoid | None = None,
                 env_config: EnvConfig | None = None, config: PhysicsRuntimeConfig = PhysicsRuntimeConfig(),
                 db=None):
        import mujoco

        from . import humanoid as hum
        from . import ppo
        self.skeleton = skeleton
        self.config = config
        self.policy = None
        self.meta = {}
        if policy is not None:
            self.policy, h, env_config, self.meta = ppo.load_policy(policy, skeleton)
        elif humanoid is not None:
            h = humanoid
        elif db is not None:
            h = hum.from_database(db, HumanoidConfig())
        else:
            raise ValueError("SimulatedBody: give a policy file, a humanoid or a database to measure one from")
        self.h = h
        self.cfg = env_config or EnvConfig()
        self.model = mujoco.MjModel.from_xml_string(h.xml)
        self.data = mujoco.MjData(self.model)
        self.substeps = max(1, int(round(1.0 / envmod.FPS / self.model.opt.timestep)))
        self.mj_step = MjxMatchedStep(self.model)
        m = self.model
        self.parent = np.asarray(m.body_parentid[1:] - 1, np.int32)
        self.ee = np.array([h.body_of(j) - 1 for j in h.end_effectors], np.int32)
        self.mass = m.body_mass[1:].copy()
        self.lo, self.hi = m.actuator_ctrlrange[:, 0].copy(), m.actuator_ctrlrange[:, 1].copy()
        self.hips_body = h.body_of(h.root)
        self._hips_forward = np.asarray(h.hips_forward, np.float64)
        self._obs_size = 1 + (m.nbody - 1) * (15 + 9 * len(self.cfg.future_frames))
        feet = envmod.foot_joints(h)
        if db is not None and hasattr(db, "roles"):      # left/right from the joint roles, not the names
            roles = db.roles()
        else:
            from anim.roles import find_roles
            roles = find_roles(skeleton)
        legs = [skeleton.index(n) for n in roles.pair("upper_leg")]
        self._foot_side = {h.body_of(j): i for j in feet for i, leg in enumerate(legs)
                           if j == leg or _below(skeleton.parents, j, leg)}
        self._clear()
        self._last_feats = None
        self.guard = InputGuard()
        self.reset_stats()

    def _clear(self) -> None:
        """No push under way, no fall, no error: a body just placed."""
        self.push_left = 0.0
        self.push_force = np.zeros(3)
        self.error_cm = 0.0
        self.pose_error_cm = 0.0
        self.fallen_for = 0.0
        self.ms = 0.0

    def _features(self):
        """`env.body_features` of the current state (what training computes),
        its velocities by the compiled kernel."""
        from . import kernels
        d = self.data
        nb = self.mass.shape[0]
        vel, com, comvel = np.empty((nb, 3)), np.empty(3), np.empty(3)
        cvel = d.cvel[1:]
        kernels.body_velocities(d.xpos[1:], d.xipos[1:], cvel, self.mass, vel, com, comvel)
        return {"pos": d.xpos[1:], "quat": d.xquat[1:], "vel": vel, "avel": cvel[:, :3], "com": com, "comvel": comvel}

    def _observe(self, future: list, sim=None) -> np.ndarray:
        """`env.observation` (what training saw), by the compiled kernel."""
        from . import kernels
        sim = self._features() if sim is None else sim
        out = np.empty(self._obs_size, np.float32)
        kernels.observation(sim["pos"], sim["quat"], sim["vel"], sim["avel"],
                            np.stack([f["pos"] for f in future]), np.stack([f["quat"] for f in future]),
                            self._hips_forward, out)
        return out

    def push(self, move=None) -> None:
        """Shove the hips: `push_impulse` N s over `push_seconds`, along `move`
        (a world ground direction x, z) or, when it is at rest, to the body's left."""
        move = self.guard.control(ControlInput(move=np.zeros(2) if move is None else move)).move.astype(np.float64)
        if np.hypot(move[0], move[1]) > 1e-3:
            direction = np.array([move[0], 0.0, move[1]])
        else:   # the character's left
            g = convert.frame_from_mj(self.data.xquat[self.hips_body])
            direction = quat.rot(convert.hips_heading(self.h, g), np.array([1.0, 0.0, 0.0]))
        direction /= np.linalg.norm(direction)
        self.push_force = convert.vec_to_mj(direction) * self.config.push_impulse / self.config.push_seconds
        self.push_left = self.config.push_seconds
        self.stats["pushes"] += 1

    def _track(self, target_qpos, future: list, ref_now: dict):
        """One tick: policy on the observation of `future` (reference feature
        dicts), PD targets `target_qpos` + action, substeps (with any push),
        then the errors against `ref_now` (the reference at the new time).
        Returns the simulated features and whether the body is down."""
        m, d = self.model, self.data
        if self.policy is not None:
            action = self.policy(self._observe(future, self._last_feats))
        else:
            action = np.zeros(self.h.nu, np.float32)
        d.ctrl[:] = np.clip(target_qpos[7:] + self.cfg.action_scale * action, self.lo, self.hi)
        for _ in range(self.substeps):
            if self.push_left > 0:
                d.xfrc_applied[self.hips_body, :3] = self.push_force
                self.push_left -= m.opt.timestep
            else:
                d.xfrc_applied[self.hips_body, :3] = 0.0
            self.mj_step(m, d)
        sim = self._last_feats = self._features()
        diff = sim["pos"] - ref_now["pos"]
        self.error_cm = 100.0 * float(np.mean(np.linalg.norm(diff, axis=-1)))
        self.pose_error_cm = 100.0 * float(np.mean(np.linalg.norm(diff - diff[:1], axis=-1)))
        self.stats["ticks"] += 1
        self.stats["tracking_error_cm_sum"] += self.error_cm
        self.stats["pose_error_cm_sum"] += self.pose_error_cm
        finite = bool(np.isfinite(d.qpos).all())
        down = sim["pos"][0, 2] < self.cfg.fall_ratio * ref_now["pos"][0, 2] or not finite
        if down:
            if self.fallen_for == 0.0:
                self.stats["falls"] += 1
            self.fallen_for += 1.0 / envmod.FPS
        else:
            self.fallen_for = 0.0
        return sim, down

    def _ground_place(self):
        """(heading quaternion, ground position) of the body's hips, kinematic
        axes (identity at the origin if the state is not finite)."""
        d = self.data
        if not np.isfinite(d.qpos).all():
            return quat.identity(()), np.zeros(3)
        g = convert.frame_from_mj(d.xquat[self.hips_body])
        p = convert.vec_from_mj(d.xpos[self.hips_body]) * np.array([1.0, 0.0, 1.0])
        return convert.hips_heading(self.h, g), p

    @property
    def fallen(self) -> bool:
        return self.fallen_for > 0.0

    def reset_stats(self) -> None:
        self.stats = {"ticks": 0, "falls": 0, "tracking_error_cm_sum": 0.0, "pose_error_cm_sum": 0.0, "pushes": 0}

    def mean_tracking_error_cm(self) -> float:
        """Mean global joint position error since the stats were reset (cm)."""
        return self.stats["tracking_error_cm_sum"] / max(self.stats["ticks"], 1)

    def mean_pose_error_cm(self) -> float:
        """The same with both poses relative to their root position (cm)."""
        return self.stats["pose_error_cm_sum"] / max(self.stats["ticks"], 1)

    def _foot_contacts(self) -> np.ndarray:
        """Left/right foot touching the ground (any contact of the foot or toe boxes)."""
        d, m = self.data, self.model
        out = np.zeros(2, bool)
        for i in range(d.ncon):
            for g in (d.contact[i].geom1, d.contact[i].geom2):
                side = self._foot_side.get(int(m.geom_bodyid[g]))
                if side is not None:
                    out[side] = True
        return out


class PhysicsController(SimulatedBody):
    """The humanoid tracking a database clip (`anim run --controller physics
    --clip NAME`, the physics benchmark's held-out clips): the clip is placed
    where the character stands, played from its start, and started again from
    the body's place at its end (`loop`) or after a fall."""

    def __init__(self, db, clip=None, policy: str | None = None, humanoid: Humanoid | None = None,
                 env_config: EnvConfig | None = None, config: PhysicsRuntimeConfig = PhysicsRuntimeConfig()):
        super().__init__(db.skeleton, policy, humanoid, env_config, config, db=db)
        self.db = db
        self.set_clip(clip)
        self.reset()

    def play_to_end(self) -> float | None:
        """Play the clip from here to its last frame with no input; returns
        the time (s) of the first fall, or None when the body stayed up."""
        fall = None
        for i in range(self.clip_rot.shape[0] - 1):
            self.step(ControlInput(), 1 / 60)
            if self.stats["falls"] and fall is None:
                fall = (i + 1) / 60
        return fall

    # ------------------------------------------------------------ reference
    def set_clip(self, clip) -> None:
        """Choose the reference clip by name or index (None: the first clip
        matching the policy's tags)."""
        db = self.db
        if clip is None:
            from .env import select_clips
            try:
                c = select_clips(db, dataclasses.replace(self.cfg, split="all"))[0]
            except ValueError:
                c = 0
        elif isinstance(clip, (int, np.integer)):
            c = int(clip)
        else:
            if clip not in db.clip_names:
                close = [n for n in db.clip_names if clip in n][:5]
                raise KeyError(f"clip {clip!r} not in the database" + (f" (did you mean {', '.join(close)}?)"
                                                                        if close else ""))
            c = db.clip_names.index(clip)
        self.clip = c
        a, b = int(db.range_starts[c]), int(db.range_stops[c])
        self.clip_rot = np.asarray(db.rotations[a:b], np.float32).copy()
        self.clip_pos = np.asarray(db.positions[a:b], np.float32).copy()
        # the reference at the clip's own place; _anchor moves copies of it
        self.clip_qpos = convert.pose_to_qpos(self.h, self.clip_rot, self.clip_pos)
        self.clip_qvel = convert.clip_qvel(self.h, self.clip_qpos, 1.0 / envmod.FPS)
        self.clip_feats = envmod.compute_features(self.h, self.clip_qpos, self.clip_qvel, self.model)

    def _anchor(self, root_rot, root_pos) -> None:
        """Place the clip so that its first simulation-bone frame sits at the
        given ground pose (kinematic axes), and rebuild the reference."""
        rot, pos = self.clip_rot.copy(), self.clip_pos.copy()
        r0, p0 = rot[0, 0].astype(np.float64), pos[0, 0].astype(np.float64)
        turn = quat.mul(np.asarray(root_rot, np.float64), quat.inv(r0))
        rot[:, 0] = quat.mul(turn, rot[:, 0].astype(np.float64))
        pos[:, 0] = quat.rot(turn, pos[:, 0].astype(np.float64) - p0) + np.asarray(root_pos, np.float64)
        self.ref_rot, self.ref_pos = rot.astype(np.float32), pos.astype(np.float32)
        # the same rigid ground motion applied to the MuJoCo-side reference (no recompute)
        t, o, g = convert.ground_motion_to_mj(turn, p0, root_pos)
        qr, qm = envmod.qrot, envmod.qmul

        def point(x):
            return qr(np, t, x - o) + g

        qpos, qvel = self.clip_qpos.copy(), self.clip_qvel.copy()
        qpos[:, 0:3] = point(qpos[:, 0:3])
        qpos[:, 3:7] = quat.abs(qm(np, t, qpos[:, 3:7]))
        qvel[:, 0:3] = qr(np, t, qvel[:, 0:3])          # angular velocity is body-local: unchanged
        f = self.clip_feats
        self.ref_feats = {"pos": point(f["pos"]), "quat": qm(np, t, f["quat"]), "vel": qr(np, t, f["vel"]),
                          "avel": qr(np, t, f["avel"]), "com": point(f["com"]), "comvel": qr(np, t, f["comvel"])}
        self.ref_qpos, self.ref_qvel = qpos, qvel
        self.frame = 0

    def _ref(self, f):
        return {k: v[f] for k, v in self.ref_feats.items()}

    # ------------------------------------------------------------ interface
    def reset(self, pose: Pose | None = None) -> Pose:
        import mujoco
        if pose is None or not usable_pose(pose):     # none, or not finite: at the origin
            root_rot, root_pos = quat.identity(()), np.zeros(3)
        else:
            root_rot = quat.normalize(np.asarray(pose.rotations[0], np.float64))
            root_pos = np.asarray(pose.positions[0], np.float64) * np.array([1.0, 0.0, 1.0])
        self._anchor(root_rot, root_pos)
        self._set_state(0)
        self._clear()
        mujoco.mj_forward(self.model, self.data)
        return self._pose()

    def _set_state(self, f) -> None:
        import mujoco
        d = self.data
        mujoco.mj_resetData(self.model, d)
        d.qpos[:] = self.ref_qpos[f]
        d.qvel[:] = self.ref_qvel[f]
        d.ctrl[:] = np.clip(self.ref_qpos[f, 7:], self.lo, self.hi)
        self.frame = f
        mujoco.mj_forward(self.model, d)
        self._last_feats = None

    def observe(self, sim=None) -> np.ndarray:
        """The policy's observation, as the MJX environment computes it."""
        stop = self.ref_qpos.shape[0]
        return self._observe([self._ref(min(self.frame + k, stop - 1)) for k in self.cfg.future_frames], sim)

    def step(self, control: ControlInput | None = None, dt: float = 1.0 / 60.0) -> Pose:
        """One 60 Hz tick (the runtime loop ticks at a fixed rate; `dt` is
        not read)."""
        t0 = time.perf_counter()
        control, dt = self.guard(control, dt)
        if "push" in control.actions:
            self.push(control.move)
        self.tick()
        self.ms = 1e3 * (time.perf_counter() - t0)
        return self._pose()

    def tick(self) -> None:
        """One 60 Hz tick: policy, PD targets, physics substeps."""
        stop = self.ref_qpos.shape[0]
        if self.frame + 1 >= stop:
            if self.config.loop:
                self._anchor(*self._ground_place())
            else:
                self.frame = stop - 2
        f1 = self.frame + 1
        stop = self.ref_qpos.shape[0]
        future = [self._ref(min(self.frame + k, stop - 1)) for k in self.cfg.future_frames]
        _, down = self._track(self.ref_qpos[f1], future, self._ref(f1))
        self.frame = f1
        if down and (self.fallen_for >= self.config.fall_reset_seconds or not np.isfinite(self.data.qpos).all()):
            self._anchor(*self._ground_place())
            self._set_state(0)
            self.fallen_for = 0.0

    def _pose(self) -> Pose:
        rot, pos = convert.qpos_to_pose_fast(self.h, self.data.qpos)
        f = min(self.frame, self.ref_rot.shape[0] - 1)
        ghost = Pose(self.ref_rot[f].copy(), self.ref_pos[f].copy())
        info = PoseInfo(controller=self.name, clip=self.db.clip_names[self.clip], frame=int(f), ghost=ghost,
                        ms=self.ms, tracking_error_cm=self.error_cm, pose_error_cm=self.pose_error_cm,
                        fallen=self.fallen, falls=self.stats["falls"],
                        status=None if self.policy is not None else "PD tracking, no policy")
        return Pose(rot, pos, self._foot_contacts(), info)


def _below(parents, j, ancestor) -> bool:
    p = int(parents[j])
    while p >= 0:
        if p == ancestor:
            return True
        p = int(parents[p])
    return False
