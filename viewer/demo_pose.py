"""A stand-in controller for developing and testing the viewer: a hand-built
24-joint skeleton walking in place with procedural sine swings, its root
steered by the stick. A test fixture, not animation: the real controllers live
in `controllers/`.

It speaks the controller interface: `reset(pose)`, `step(control_input, dt) -> Pose`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from anim import quat
from anim.skeleton import Pose, PoseInfo, Skeleton

_JOINTS = [  # name, parent, offset (metres; Y up, the character faces +Z, its left is +X)
    ("Hips", None, (0.0, 0.95, 0.0)),
    ("Spine", "Hips", (0.0, 0.10, 0.0)),
    ("Spine1", "Spine", (0.0, 0.12, 0.0)),
    ("Spine2", "Spine1", (0.0, 0.12, 0.0)),
    ("Neck", "Spine2", (0.0, 0.14, 0.0)),
    ("Head", "Neck", (0.0, 0.09, 0.02)),
    ("HeadTop", "Head", (0.0, 0.08, 0.0)),
    ("Nose", "Head", (0.0, 0.05, 0.125)),
    ("LeftShoulder", "Spine2", (0.06, 0.09, 0.0)),
    ("LeftArm", "LeftShoulder", (0.12, 0.0, 0.0)),
    ("LeftForeArm", "LeftArm", (0.0, -0.28, 0.0)),
    ("LeftHand", "LeftForeArm", (0.0, -0.25, 0.0)),
    ("RightShoulder", "Spine2", (-0.06, 0.09, 0.0)),
    ("RightArm", "RightShoulder", (-0.12, 0.0, 0.0)),
    ("RightForeArm", "RightArm", (0.0, -0.28, 0.0)),
    ("RightHand", "RightForeArm", (0.0, -0.25, 0.0)),
    ("LeftUpLeg", "Hips", (0.09, -0.05, 0.0)),
    ("LeftLeg", "LeftUpLeg", (0.0, -0.42, 0.0)),
    ("LeftFoot", "LeftLeg", (0.0, -0.41, 0.0)),
    ("LeftToe", "LeftFoot", (0.0, -0.05, 0.13)),
    ("RightUpLeg", "Hips", (-0.09, -0.05, 0.0)),
    ("RightLeg", "RightUpLeg", (0.0, -0.42, 0.0)),
    ("RightFoot", "RightLeg", (0.0, -0.41, 0.0)),
    ("RightToe", "RightFoot", (0.0, -0.05, 0.13)),
]

STYLES = {  # name: (swing scale, cadence scale, forward lean radians)
    "normal": (1.0, 1.0, 0.03),
    "energetic": (1.35, 1.25, -0.02),
    "tired": (0.6, 0.75, 0.25),
}


def demo_skeleton() -> Skeleton:
    names = [n for n, _, _ in _JOINTS]
    parents = [-1 if p is None else names.index(p) for _, p, _ in _JOINTS]
    return Skeleton(names, parents, np.array([o for _, _, o in _JOINTS], np.float32))


def demo_radii(skeleton: Skeleton) -> np.ndarray:
    """Capsule radii for the demo skeleton: the default ones, with a round head and a nose (to see where it faces)."""
    from viewer.scene import default_bone_radii

    r = default_bone_radii(skeleton.parents)
    r[skeleton.index("HeadTop")] = 0.09
    r[skeleton.index("Neck")] = 0.045
    r[skeleton.index("Nose")] = 0.025
    return r


class DemoWalker:
    """Walks in place (sine swings of hips, knees, arms); the stick moves and turns the root."""

    walk_speed = 1.4   # m/s at full stick
    run_speed = 3.2
    turn_halflife = 0.15

    def __init__(self, skeleton: Skeleton | None = None):
        self.skeleton = skeleton or demo_skeleton()
        s = self.skeleton
        self.parents = s.parents
        self.contact_joints = (s.index("LeftFoot"), s.index("RightFoot"))
        self.radii = demo_radii(s)
        self._idx = {n: i for i, n in enumerate(s.names)}
        self.reset()

    def reset(self, pose: Pose | None = None):
        self.time = 0.0
        self.phase = 0.0
        self.frame = 0
        self.style_index = 0
        self.yaw = 0.0
        self.root = np.array([0.0, 0.0, 0.0], np.float32)
        if pose is not None:
            self.root = np.array([pose.positions[0][0], 0.0, pose.positions[0][2]], np.float32)

    @property
    def styles(self) -> list:
        return list(STYLES)

    @property
    def style(self) -> str:
        return list(STYLES)[self.style_index]

    def step(self, control, dt: float) -> Pose:
        t0 = time.perf_counter()
        if control.style is not None and control.style in STYLES:
            self.style_index = list(STYLES).index(control.style)
        swing, cadence, lean = STYLES[self.style]
        move = np.array([control.move[0], 0.0, control.move[1]], np.float32)
        top_speed = self.run_speed if getattr(control, "run", False) else self.walk_speed
        speed = top_speed * float(np.linalg.norm(move))
        self.root = self.root + move * top_speed * dt
        if control.facing is not None:
            want = math.atan2(control.facing[0], control.facing[1])
        elif speed > 1e-3:
            want = math.atan2(move[0], move[2])
        else:
            want = self.yaw
        diff = (want - self.yaw + math.pi) % (2 * math.pi) - math.pi
        self.yaw += diff * (1.0 - math.exp(-math.log(2.0) * dt / self.turn_halflife))

        run = min(speed / self.run_speed, 1.0)
        self.phase += 2 * math.pi * (0.9 + 0.6 * run) * cadence * dt
        self.time += dt
        self.frame += 1
        p = self.phase
        A = (0.35 + 0.25 * run) * swing  # hip swing amplitude

        n = self.skeleton.num_joints
        rot = np.zeros((n, 4), np.float32)
        rot[:, 0] = 1.0
        pos = self.skeleton.offsets.copy()
        x, y, z = np.eye(3, dtype=np.float32)

        def set_rot(name, angle, axis):
            rot[self._idx[name]] = quat.mul(rot[self._idx[name]], quat.from_angle_axis(np.float32(angle), axis))

        hip_l, hip_r = -A * math.sin(p), A * math.sin(p)
        knee_l = (0.25 + 0.9 * run) * swing * max(0.0, math.cos(p)) + 0.05
        knee_r = (0.25 + 0.9 * run) * swing * max(0.0, -math.cos(p)) + 0.05
        set_rot("Hips", self.yaw, y)
        set_rot("Spine", lean + 0.05 * run, x)
        set_rot("Spine1", 0.08 * math.sin(p) * swing, y)
        set_rot("LeftUpLeg", hip_l - 0.5 * knee_l, x)
        set_rot("RightUpLeg", hip_r - 0.5 * knee_r, x)
        set_rot("LeftLeg", knee_l, x)
        set_rot("RightLeg", knee_r, x)
        set_rot("LeftFoot", -0.5 * hip_l, x)
        set_rot("RightFoot", -0.5 * hip_r, x)
        set_rot("LeftArm", 0.5 * A * math.sin(p) * 1.2, x)
        set_rot("LeftArm", 0.12, z)
        set_rot("RightArm", -0.5 * A * math.sin(p) * 1.2, x)
        set_rot("RightArm", -0.12, z)
        set_rot("LeftForeArm", -0.3 - 0.6 * run, x)
        set_rot("RightForeArm", -0.3 - 0.6 * run, x)

        # drop the hips so that the lower foot stays on the ground
        pos[0] = (self.root[0], 0.0, self.root[2])
        pos[0, 1] = self.skeleton.offsets[0, 1]
        _, gpos = quat.fk(rot, pos, self.parents)
        feet = gpos[list(self.contact_joints), 1]
        pos[0, 1] -= feet.min() - 0.07
        contacts = (feet - feet.min()) < 0.02
        info = PoseInfo(controller="demo walker", clip="demo-walk", frame=self.frame, style=self.style,
                        ms=(time.perf_counter() - t0) * 1e3)
        return Pose(rot, pos, contacts=contacts, info=info)
