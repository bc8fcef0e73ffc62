"""The sparse-VR controller: tracked head and hands in, full-body pose out.

    from controllers.vr.controller import VRController
    ctrl = VRController.load("controllers/vr/weights/diffusion.npz")   # or mlp.npz
    pose = ctrl.reset()
    pose = ctrl.step(control_input, 1 / 60)       # control_input.head/left_hand/right_hand

Input: `ControlInput.head`, `.left_hand`, `.right_hand`, each (position [3],
rotation (w, x, y, z) [4]) in world axes (metres, Y up) and in the engine's
DEVICE convention: a device held level and pointing along world +Z has the
identity rotation (device forward +Z, up +Y, left +X). viewer/vr_input.py
converts WebXR / OpenXR poses to it once. The controller turns device
rotations into the skeleton's Head / Hand_L / Hand_R joint rotations with the
per-device offsets stored in the model (q_joint = q_device * offset, measured
from the data); positions are used as the joints' positions.

Each tick appends the devices to a history of W+1 frames (the first tick fills
it with copies: the user is taken to have stood still before), computes the
window's sparse signal in the head's heading frame, predicts the current
frame and hangs the body from the tracked head. The diffusion predictor keeps
the frames it has shown and inpaints them as the window's past (reset()
clears them). A missing hand keeps its last
pose (or, before any, a rest position relative to the head); a missing head
holds the last pose. Each step's input passes an `anim.control.InputGuard`
first: a device with a NaN, an infinity, a zero rotation or a position over
1 km away counts as missing for that tick (so a bad hand keeps its last good
pose, a bad head holds the body), and should the predictor still return a
non-finite pose the history is cleared and the last pose held
(stats['recovered']). The model assumes 60 Hz ticks (velocities are per-tick
differences x 60), whatever `dt` says.

Feet (feet.py, on by default; foot_lock=False: off): the contacts are
read from the predicted legs (the learned network of contacts.py where it
fits the skeleton, else the toe height rule) and planted feet are locked with the
motion-matching controller's foot locking and two-bone IK, no toe below the
floor, in the model's space (before the pose is scaled to the user);
Pose.contacts are the planted feet.

Fitting the user (controllers/vr/calibrate.py): `calibration` (a
calibrate.Calibration; default: joint poses of the model's own size) moves
each reported device position to its joint (the device API's offsets from
calibrate.DEVICE_OFFSETS, grown by the user's scale) and into the model's
space, and scales the output pose to the user; `calibrator` (a
calibrate.AutoCalibrator, or None) makes one from the first still, upright
second and sets it (`set_calibration`: the history restarts).

Pose.info (a PoseInfo): controller, ms (time of this step), debug_lines (the
three devices' forward axes), ghost when `ghost` is set (e.g. by a trace
replay that knows the ground truth), and status 'waiting' before the first
head pose, 'head lost' while the head is missing, 'recovered' on a held pose
after a non-finite prediction.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from anim import quat
from anim.control import ControlInput, InputGuard
from anim.skeleton import Pose, PoseInfo

from . import data as vd
from .blas import single_thread
from .calibrate import Calibration


class VRController:
    """Controller protocol (reset/step) around a sparse-VR predictor (diffusion,
    mlp or the motion-matching baseline)."""

    def __init__(self, predictor, foot_lock: bool = True, feet=None):
        """foot_lock: plant the feet (feet.FootLocker; feet: its FeetConfig, default FeetConfig())."""
        from .feet import FeetConfig, FootLocker
        self.predictor = predictor
        self.skeleton = predictor.skeleton
        self.window = int(predictor.window)
        self.head_forward = np.asarray(predictor.head_forward, np.float32)
        off = vd.calibration_offsets(predictor.calibration)
        self._offset = off
        self._q = np.zeros((self.window + 1, 3, 4), np.float32)
        self._p = np.zeros((self.window + 1, 3, 3), np.float32)
        self._n = 0
        self._last_pose: Pose | None = None
        self._rest_hands = np.array([[0.2, -0.55, 0.15], [-0.2, -0.55, 0.15]], np.float32)  # head frame
        self.ghost: Pose | None = None
        self.stats = {"ticks": 0, "recovered": 0}
        self.guard = InputGuard()
        self.feet = FootLocker(self.skeleton, feet or FeetConfig()) if foot_lock else None
        self.calibration = Calibration()          # the user's fit (calibrate.py); identity: joint poses
        self.calibrator = None                    # a calibrate.AutoCalibrator, run on the first ticks
        # warm up (numba compiles or loads its kernel) now, not on the first live tick
        y = predictor.predict(np.zeros((1, self.window, vd.SPARSE_DIM), np.float32), np.zeros(1, np.float32))
        r0, p0 = vd.poses_from_features(y[0], np.float32(0), np.zeros(3, np.float32), self.skeleton)
        if self.feet is not None:
            self.feet.apply(r0, p0)
            self.feet.reset()
        if hasattr(predictor, "reset"):
            predictor.reset()

    @classmethod
    def load(cls, path: str, skeleton=None, **kwargs) -> "VRController":
        from .infer import load_predictor
        return cls(load_predictor(path, skeleton, **kwargs))

    def set_calibration(self, calibration: Calibration) -> None:
        """Fit the avatar to a user (calibrate.Calibration); the history restarts."""
        self.calibration = calibration
        self._n = 0
        if hasattr(self.predictor, "reset"):
            self.predictor.reset()
        if self.feet is not None:
            self.feet.reset()

    # ---------------------------------------------------------------- protocol
    def reset(self, pose: Pose | None = None) -> Pose:
        """Clear the history. Returns `pose` (when wholly finite), or a standing pose at the origin."""
        self._n = 0
        if hasattr(self.predictor, "reset"):
            self.predictor.reset()
        if self.feet is not None:
            self.feet.reset()
        if pose is not None and not (np.isfinite(pose.rotations).all() and np.isfinite(pose.positions).all()):
            pose = None
        if pose is None:
            pose = self._standing_pose()
        self._last_pose = pose
        return pose

    def step(self, control_input: ControlInput, dt: float) -> Pose:
        control_input = self.guard.control(control_input)
        with single_thread():
            return self._step(control_input)

    def _step(self, control_input: ControlInput) -> Pose:
        t0 = time.perf_counter()
        if control_input.head is None:
            pose = self._last_pose if self._last_pose is not None else self.reset()
            return Pose(pose.rotations, pose.positions, pose.contacts,
                        dataclasses.replace(pose.info, status="waiting" if self._n == 0 else "head lost"))
        if self.calibrator is not None and (cal := self.calibrator.observe(control_input)) is not None:
            self.calibrator = None
            self.set_calibration(cal)
        q, p = self._joints(control_input)
        if self._n == 0:
            self._q[:] = q
            self._p[:] = p
        else:
            self._q[:-1] = self._q[1:]
            self._p[:-1] = self._p[1:]
            self._q[-1] = q
            self._p[-1] = p
        self._n += 1
        x, theta, _ = vd.sparse_features(self._q[None], self._p[None], self.head_forward)
        y = self.predictor.predict(x, theta)
        rot, pos = vd.poses_from_features(y[0], theta[0], self._p[-1, 0], self.skeleton)
        contacts = None
        if self.feet is not None and np.isfinite(rot).all() and np.isfinite(pos).all():
            rot, pos, contacts = self.feet.apply(rot, pos)
        pos = self.calibration.pose_to_user(pos)
        if not (np.isfinite(rot).all() and np.isfinite(pos).all()):
            self.stats["recovered"] += 1
            last = self._last_pose
            self.reset(last)
            return Pose(last.rotations, last.positions, last.contacts,
                        dataclasses.replace(last.info, status="recovered"))
        ms = (time.perf_counter() - t0) * 1000
        info = PoseInfo(controller=f"vr-{getattr(self.predictor, 'kind', '?')}", ms=ms,
                        debug_lines=self._device_lines(), ghost=self.ghost)
        pose = Pose(rot, pos, contacts, info)
        self._last_pose = pose
        self.stats["ticks"] += 1
        return pose

    # ---------------------------------------------------------------- helpers
    def _joints(self, ci: ControlInput):
        """Device poses -> joint world rotations [3, 4] and positions [3, 3]."""
        q = np.empty((3, 4), np.float32)
        p = np.zeros((3, 3), np.float32)
        dq = np.tile(np.float32([1, 0, 0, 0]), (3, 1))
        for i, key in enumerate(vd.DEVICE_KEYS):
            dev = getattr(ci, key)
            if dev is not None:
                p[i] = dev[0]
                dq[i] = quat.normalize(np.asarray(dev[1], np.float32))
                q[i] = quat.mul(dq[i], self._offset[i])
        cal = self.calibration     # reported points -> joints -> the model's space
        pm = cal.to_model(cal.joint_points(p, dq), q)
        for i, key in enumerate(vd.DEVICE_KEYS):
            if getattr(ci, key) is not None:
                p[i] = pm[i]
                continue
            if self._n > 0:          # keep the last known pose of this device
                q[i], p[i] = self._q[-1, i], self._p[-1, i]
                continue
            hq = ci.head[1]          # no history: a rest pose relative to the head's heading
            fwd = quat.rot(np.asarray(hq, np.float32), np.array([0, 0, 1], np.float32))
            yaw = np.arctan2(fwd[0], fwd[2])
            ry = quat.from_angle_axis(yaw, np.array([0, 1, 0], np.float32)).astype(np.float32)
            p[i] = p[0] + quat.rot(ry, self._rest_hands[i - 1])
            q[i] = quat.mul(ry, self._offset[i])
        return q, p

    def _device_lines(self):
        fwd = quat.rot(self._q[-1], np.broadcast_to(self.head_forward, (3, 3)))
        fwd[1:] = quat.rot(quat.mul(self._q[-1, 1:], quat.inv(self._offset[1:])), np.array([0, 0, 1], np.float32))
        colours = [(0.95, 0.85, 0.2), (0.2, 0.8, 0.3), (0.9, 0.3, 0.3)]
        s = np.float32(self.calibration.scale)          # the devices' joints at the user's size
        return [(s * np.stack([self._p[-1, i], self._p[-1, i] + 0.2 * fwd[i]]).astype(np.float32), colours[i])
                for i in range(3)]

    def _standing_pose(self) -> Pose:
        meta = getattr(self.predictor, "meta", {}) or {}
        rest = meta.get("rest_pose")
        if rest is not None:
            return Pose(np.asarray(rest["rotations"], np.float32), np.asarray(rest["positions"], np.float32),
                        None, PoseInfo(controller="vr", status="waiting"))
        j = self.skeleton.num_joints
        rot = quat.identity(j)
        pos = self.skeleton.offsets.copy()
        pos[0] = 0
        return Pose(rot, pos, None, PoseInfo(controller="vr", status="waiting"))
