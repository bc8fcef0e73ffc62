"""The physics stage: the MuJoCo humanoid tracks any kinematic stage live.

DReCon's split (Bergamin et al. 2019): a kinematic controller (motion
matching, learned motion matching, the VR predictor) makes the target from
the stick; a tracking policy follows it in physics. `PhysicsStage` wraps a
kinematic stage and keeps the engine's controller interface, so the runtime
loop runs it like any other stage:

    stage = PhysicsStage(MotionMatchingController(db), policy=SHIPPED_POLICY)
    Loop(stage, source).run(60)          # or the live window

Look-ahead: a lagged reference. The policy observes the reference
`future_frames` ahead (1 and 4 frames for the shipped policy), which a live
kinematic stage cannot know: it has not been asked yet. The stage therefore
runs the kinematic stage `lag` ticks (the largest future frame: 4, 67 ms)
ahead of the body and tracks the frame `lag` ticks old, so every frame the
policy looks at is one the kinematic stage has already made, exactly as
in training. The price is 67 ms of added response, which the issue's
responsiveness budget (0.15 s) holds. Predicting the frames instead (from
the matched clip's next frames) would save the lag but would show the policy
frames that a transition then replaces.

Staying together: the kinematic character lives in its own world, mapped
onto the body's by a ground offset. Each tick, when the tracked reference's
hips are more than `max_root_distance` from the body's, the offset moves the
reference back to that distance (the buffered frames too), so drift never
accumulates and the stick always steers the body you see. The offset is a
translation only: the stick's world directions mean the same in both.

A kinematic stage that waits for its input (PoseInfo status 'waiting': the
VR avatar before its first head pose) is started again, with the body,
from each tick's input until it has what it waits for, so the body starts
under the headset rather than at the avatar's rest pose. A stage that does
not go on from the pose it is reset to (the VR avatar stands where the
headset is, wherever the body lay) gives the body its next frame to start
from: a fall is then recovered under the headset.

Falls: a body whose hips stay below `fall_ratio` of the reference's for
`fall_reset_seconds` is recovered without a restart: the kinematic stage is
reset standing where the body lies, facing where its hips face, the body
is set to that pose, and for `recover_seconds` the shown pose blends from
the fallen one to it. Pushes: the 'push' action (F / pad B) shoves the hips
along the stick, or to the left with the stick at rest; `push(direction)`
from any direction.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from anim import quat
from anim.control import ControlInput
from anim.skeleton import Pose, PoseInfo

from . import convert
from .runtime import PhysicsRuntimeConfig, SimulatedBody


@dataclass(frozen=True)
class TrackerConfig:
    """max_root_distance (m): the reference's hips are kept within this of the
    body's on the ground; recover_seconds: the shown pose's blend after a
    fall's recovery; the rest as `PhysicsRuntimeConfig` (pushes, the time a
    body lies before it is recovered)."""

    max_root_distance: float = 0.15
    recover_seconds: float = 0.5
    push_impulse: float = 30.0
    push_seconds: float = 0.1
    fall_reset_seconds: float = 1.5

    def runtime(self) -> PhysicsRuntimeConfig:
        return PhysicsRuntimeConfig(push_impulse=self.push_impulse, push_seconds=self.push_seconds,
                                    fall_reset_seconds=self.fall_reset_seconds, loop=False)


def _copy_frame(frame: dict) -> dict:
    """A reference frame (PhysicsStage._frame) whose arrays are its own."""
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in frame.items()}
    out["feats"] = {k: v.copy() for k, v in frame["feats"].items()}
    return out


def _waiting(pose: Pose) -> bool:
    """A kinematic stage's pose made before it had its input (PoseInfo status 'waiting')."""
    return pose.info is not None and pose.info.status == "waiting"


class PhysicsStage(SimulatedBody):
    """The humanoid tracking `kinematic` (any controller of the same skeleton)
    with the policy `policy` (a file from `anim train policy`; None: PD
    tracking of the reference alone, the baseline)."""

    name = "physics"

    def __init__(self, kinematic, policy: str | None = None, humanoid=None, env_config=None,
                 config: TrackerConfig = TrackerConfig(), db=None):
        super().__init__(kinematic.skeleton, policy, humanoid, env_config, config.runtime(), db=db)
        self.kinematic = kinematic
        self.tracker = config
        self.lag = int(max(self.cfg.future_frames))
        self._ref_data = __import__("mujoco").MjData(self.model)
        self.frames: collections.deque = collections.deque(maxlen=self.lag + 1)
        self.offset = np.zeros(3)            # kinematic world -> body world (ground translation, kinematic axes)
        self.root_distance_cm = 0.0
        self._blend = None
        self._last_control = ControlInput()
        self.waiting = False
        self.speeds = getattr(kinematic, "speeds", None)
        self.reset()

    # ------------------------------------------------------------ reference frames
    @property
    def styles(self):
        return getattr(self.kinematic, "styles", ())

    @property
    def style(self):
        return getattr(self.kinematic, "style", None)

    def _frame(self, pose: Pose) -> dict:
        """A kinematic pose placed in the body's world as a reference frame:
        the pose (kinematic axes), its qpos and the body positions / rotations
        the observation reads (MuJoCo axes)."""
        import mujoco
        rot = np.asarray(pose.rotations, np.float32)
        pos = np.array(pose.positions, np.float32)
        pos[0] += self.offset.astype(np.float32)
        qpos = convert.pose_to_qpos_fast(self.h, rot, pos)
        d = self._ref_data
        d.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, d)
        return {"rot": rot, "pos": pos, "qpos": qpos, "contacts": pose.contacts, "info": pose.info,
                "feats": {"pos": d.xpos[1:].copy(), "quat": d.xquat[1:].copy()}}

    @staticmethod
    def _ground_gap(a: dict, b: dict) -> float:
        """Ground distance (m) between two reference frames' hips."""
        d = convert.vec_from_mj(b["feats"]["pos"][0] - a["feats"]["pos"][0])
        return float(np.hypot(d[0], d[2]))

    def _shift(self, delta_kin: np.ndarray) -> None:
        """Move the reference (offset and buffered frames) by a ground translation."""
        self.offset += delta_kin
        d_mj = convert.vec_to_mj(delta_kin)
        for fr in self.frames:
            fr["pos"][0] += delta_kin.astype(np.float32)
            fr["qpos"][0:3] += d_mj
            fr["feats"]["pos"] += d_mj

    def _fill(self, control: ControlInput, pose: Pose | None = None) -> None:
        """Reset the kinematic stage (at `pose`) and run it `lag` ticks ahead."""
        self.frames.clear()
        # the same input, less its edge-triggered actions (a VR stage keeps its tracked devices)
        idle = dataclasses.replace(control, actions=frozenset())
        first = self.kinematic.reset(pose)
        if _waiting(first):
            # a stage with no input yet (the VR avatar before its first head
            # pose) makes its first frame from this input: its rest pose
            # would start the body metres from where the reference goes
            first = self.kinematic.step(idle, 1.0 / 60.0)
        self.waiting = _waiting(first)
        self.frames.append(self._frame(first))
        for _ in range(self.lag):
            self.frames.append(self._frame(self.kinematic.step(idle, 1.0 / 60.0)))
        if self.lag and self._ground_gap(self.frames[0], self.frames[1]) > self.tracker.max_root_distance:
            # the stage does not go on from the pose it was reset to (the VR
            # avatar stands where the headset is): the body starts at its next
            # frame, not at a pose a jump away (a body set moving at that
            # jump's speed blew the simulation up)
            self.frames[0] = _copy_frame(self.frames[1])

    def _set_body(self) -> None:
        """The body at the tracked frame, moving as the reference moves."""
        import mujoco
        d = self.data
        mujoco.mj_resetData(self.model, d)
        q0, q1 = self.frames[0]["qpos"], self.frames[1]["qpos"]
        d.qpos[:] = q0
        d.qvel[:] = convert.qvel_from_qpos(self.h, q0, q1, 1.0 / 60.0)
        d.ctrl[:] = np.clip(q0[7:], self.lo, self.hi)
        mujoco.mj_forward(self.model, d)
        self._last_feats = None

    # ------------------------------------------------------------ interface
    def reset(self, pose: Pose | None = None, control: ControlInput | None = None) -> Pose:
        """Start again (at `pose`); the look-ahead is made from `control`
        (default the last tick's input: a VR stage's first devices)."""
        if control is not None:
            self._last_control = control
        self.offset = np.zeros(3)
        self._fill(self._last_control, pose)
        self._set_body()
        self._clear()
        self.root_distance_cm = 0.0
        self._blend = None
        self.reset_stats()
        self.stats.update({"recoveries": 0, "root_distance_cm_sum": 0.0, "shift_m": 0.0})
        return self._pose()

    def step(self, control: ControlInput | None = None, dt: float = 1.0 / 60.0) -> Pose:
        """One 60 Hz tick: the kinematic stage makes the frame `lag` ticks
        ahead, the body tracks the frame it is at, the reference is pulled
        back to the body, a fall is recovered."""
        t0 = time.perf_counter()
        control, dt = self.guard(control, dt)
        self._last_control = control
        if self.waiting:
            # the kinematic stage has had no input yet: start it (and the
            # body) again from this tick's, until it has what it waits for
            self.offset = np.zeros(3)
            self._fill(control)
            self._set_body()
            self._clear()
        if "push" in control.actions:
            self.push(control.move)
        frames = self.frames                 # the tracked frame f and the lag frames ahead of it
        future = [frames[k]["feats"] for k in self.cfg.future_frames]
        sim, _ = self._track(frames[1]["qpos"], future, frames[1]["feats"])
        # the reference's hips held within max_root_distance of the body's (ground plane)
        gap = convert.vec_from_mj(sim["pos"][0] - frames[1]["feats"]["pos"][0]) * np.array([1.0, 0.0, 1.0])
        dist = float(np.hypot(gap[0], gap[2]))
        self.root_distance_cm = 100.0 * dist
        self.stats["root_distance_cm_sum"] += self.root_distance_cm
        if dist > self.tracker.max_root_distance:
            self._shift(gap * (1.0 - self.tracker.max_root_distance / dist))
            if not self.fallen:          # how far the body trails (or leads) its reference, upright
                self.stats["shift_m"] += dist - self.tracker.max_root_distance
        self.frames.append(self._frame(self.kinematic.step(control, dt)))   # frame f + 1 + lag; f drops out
        if self.fallen_for >= self.config.fall_reset_seconds or not np.isfinite(self.data.qpos).all():
            self._recover(control)
        if self._blend is not None:
            self._blend[2] += 1.0 / 60.0
        self.ms = 1e3 * (time.perf_counter() - t0)
        return self._pose()

    def _recover(self, control: ControlInput) -> None:
        """Stand the character up where it lies: the kinematic stage reset at
        the body's ground place and heading, the body set to it; the shown
        pose blends over from the fallen one."""
        fallen = convert.qpos_to_pose_fast(self.h, self.data.qpos) if np.isfinite(self.data.qpos).all() else None
        heading, place = self._ground_place()
        j = self.skeleton.num_joints
        rot = np.broadcast_to(quat.identity(()), (j, 4)).astype(np.float32).copy()
        pos = self.skeleton.offsets.astype(np.float32).copy()
        rot[0], pos[0] = heading, place
        self.offset = np.zeros(3)
        self._fill(control, Pose(rot, pos))
        self._set_body()
        self._clear()
        self.stats["recoveries"] += 1
        self._blend = [fallen[0], fallen[1], 0.0] if fallen is not None else None

    def mean_root_distance_cm(self) -> float:
        return self.stats["root_distance_cm_sum"] / max(self.stats["ticks"], 1)

    def _pose(self) -> Pose:
        rot, pos = convert.qpos_to_pose_fast(self.h, self.data.qpos)
        status = "fallen" if self.fallen else None
        if self._blend is not None:
            w = min(self._blend[2] / self.tracker.recover_seconds, 1.0)
            if w >= 1.0:
                self._blend = None
            else:
                rot = quat.slerp(self._blend[0], rot, w).astype(np.float32)
                pos = ((1 - w) * self._blend[1] + w * pos).astype(np.float32)
                status = "recovering"
        ref = self.frames[0]
        kin = ref["info"] or PoseInfo()
        ghost = Pose(ref["rot"].copy(), ref["pos"].copy(), ref["contacts"])
        hud = [f"physics: joint error {self.pose_error_cm:4.1f} cm (root-relative), root {self.root_distance_cm:4.1f}"
               f" cm from the target, falls {self.stats['falls']}" + (f" ({status})" if status else "")]
        info = PoseInfo(controller=f"physics over {getattr(self.kinematic, 'name', 'kinematic')}", clip=kin.clip,
                        frame=kin.frame, style=kin.style, ms=self.ms, note=kin.note, status=status, ghost=ghost,
                        debug_lines=kin.debug_lines, debug_points=kin.debug_points, hud=hud,
                        tracking_error_cm=self.error_cm, pose_error_cm=self.pose_error_cm,
                        root_distance_cm=self.root_distance_cm, fallen=self.fallen, falls=self.stats["falls"])
        return Pose(rot, pos, self._foot_contacts(), info)
