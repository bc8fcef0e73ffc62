"""Small skeletons of other rigs' naming conventions, with a walk, written as BVH
(a helper module for test_roles.py and the tests that need a non-Bandai rig).

One body (hips, spine, chest, neck, head, arms, legs, toes; optional extras such as
CMU's LHipJoint or finger bones) is named after a convention, posed by a simple
procedural walk (1.2 m/s along +Z, legs swinging, the standing foot's toe on the
floor) and written in the units and up axis asked for.
"""

from __future__ import annotations

import numpy as np

from anim import quat
from anim.bvh import write_bvh
from anim.skeleton import Clip, Skeleton

# canonical joint -> (parent, offset in metres, Y up, forward +Z, left +X)
_BODY = [
    ("hips", None, (0.0, 0.94, 0.0)),
    ("spine", "hips", (0.0, 0.10, 0.0)),
    ("chest", "spine", (0.0, 0.25, 0.0)),
    ("neck", "chest", (0.0, 0.20, 0.0)),
    ("head", "neck", (0.0, 0.12, 0.0)),
    ("l_shoulder", "chest", (0.05, 0.15, 0.0)),
    ("l_upperarm", "l_shoulder", (0.13, 0.0, 0.0)),
    ("l_forearm", "l_upperarm", (0.28, 0.0, 0.0)),
    ("l_hand", "l_forearm", (0.25, 0.0, 0.0)),
    ("r_shoulder", "chest", (-0.05, 0.15, 0.0)),
    ("r_upperarm", "r_shoulder", (-0.13, 0.0, 0.0)),
    ("r_forearm", "r_upperarm", (-0.28, 0.0, 0.0)),
    ("r_hand", "r_forearm", (-0.25, 0.0, 0.0)),
    ("l_upleg", "hips", (0.10, -0.05, 0.0)),
    ("l_leg", "l_upleg", (0.0, -0.42, 0.0)),
    ("l_foot", "l_leg", (0.0, -0.42, 0.0)),
    ("l_toe", "l_foot", (0.0, -0.05, 0.13)),
    ("r_upleg", "hips", (-0.10, -0.05, 0.0)),
    ("r_leg", "r_upleg", (0.0, -0.42, 0.0)),
    ("r_foot", "r_leg", (0.0, -0.42, 0.0)),
    ("r_toe", "r_foot", (0.0, -0.05, 0.13)),
]

_CMU = {"hips": "Hips", "spine": "Spine", "chest": "Spine1", "neck": "Neck", "head": "Head"}
for _s, _S in (("l", "Left"), ("r", "Right")):
    _CMU.update({f"{_s}_shoulder": f"{_S}Shoulder", f"{_s}_upperarm": f"{_S}Arm", f"{_s}_forearm": f"{_S}ForeArm",
                 f"{_s}_hand": f"{_S}Hand", f"{_s}_upleg": f"{_S}UpLeg", f"{_s}_leg": f"{_S}Leg",
                 f"{_s}_foot": f"{_S}Foot", f"{_s}_toe": f"{_S}ToeBase"})

NAMINGS = {
    # CMU's 31-joint skeleton: LHipJoint between the hips and LeftUpLeg, fingers on the hands
    "cmu": (lambda n: _CMU[n]),
    "mixamo": (lambda n: "mixamorig:" + _CMU[n]),
    "bandai": (lambda n: {"hips": "Hips", "spine": "Spine", "chest": "Chest", "neck": "Neck", "head": "Head"}.get(
        n) or {"shoulder": "Shoulder", "upperarm": "UpperArm", "forearm": "LowerArm", "hand": "Hand",
               "upleg": "UpperLeg", "leg": "LowerLeg", "foot": "Foot", "toe": "Toes"}[n[2:]] + "_" + n[0].upper()),
    "blender": (lambda n: n if "_" not in n else {"upleg": "thigh", "leg": "shin", "foot": "foot", "toe": "toe",
                                                   "shoulder": "shoulder", "upperarm": "upper_arm",
                                                   "forearm": "forearm", "hand": "hand"}[n[2:]] + "." + n[0].upper()),
}


def make_skeleton(naming: str = "cmu", extras: bool = True) -> tuple[Skeleton, list[str]]:
    """(Skeleton in metres, Y up; canonical name of each joint or '' for extras).
    extras: CMU-style LHipJoint/RHipJoint above the thighs and finger bones."""
    name = NAMINGS[naming]
    names, parents, offsets, canon = [], [], [], []

    def add(n, parent, off, c=""):
        names.append(n)
        parents.append(-1 if parent is None else names.index(parent))
        offsets.append(off)
        canon.append(c)

    for c, p, off in _BODY:
        parent = None if p is None else name(p)
        if extras and c in ("l_upleg", "r_upleg"):
            side = "L" if c[0] == "l" else "R"
            add(f"{side}HipJoint" if naming == "cmu" else f"{name(c)}Root", name("hips"), (0.0, 0.0, 0.0))
            parent = names[-1]
        add(name(c), parent, off, c)
        if extras and c in ("l_hand", "r_hand"):
            sgn = 1.0 if c[0] == "l" else -1.0
            add(f"{name(c)}Index1", name(c), (sgn * 0.08, 0.0, 0.02))
            add(f"{name(c)}Thumb1", name(c), (sgn * 0.03, 0.0, 0.04))
    return Skeleton(names, parents, np.array(offsets, np.float32)), canon


def walk_clip(skel: Skeleton, canon: list[str], frames: int = 240, fps: float = 60.0, speed: float = 1.2,
              tpose_first: bool = False) -> Clip:
    """A procedural walk along +Z (metres, Y up)."""
    t = np.arange(frames) / fps
    j = skel.num_joints
    rot = np.tile(np.array([1.0, 0, 0, 0], np.float32), (frames, j, 1))
    pos = np.tile(skel.offsets, (frames, 1, 1)).astype(np.float32)
    phase = 2 * np.pi * 0.9 * t
    x = np.array([1.0, 0, 0])
    for side, sgn in (("l", 1.0), ("r", -1.0)):
        swing = 0.35 * np.sin(phase) * sgn
        knee = 0.35 * np.clip(np.sin(phase + sgn * np.pi / 2), 0, None)
        rot[:, canon.index(f"{side}_upleg")] = quat.from_angle_axis(-swing, x)
        rot[:, canon.index(f"{side}_leg")] = quat.from_angle_axis(knee, x)
        rot[:, canon.index(f"{side}_upperarm")] = quat.from_angle_axis(
            np.full_like(t, -1.2 * sgn), np.array([0, 0, 1.0]))
    pos[:, 0] = np.stack([np.zeros_like(t), 0.94 - 0.02 * np.abs(np.sin(phase)), speed * t], -1)
    if tpose_first:
        rot[0] = np.array([1.0, 0, 0, 0], np.float32)
        rot[0, canon.index("l_upperarm")] = quat.from_angle_axis(0.0, x)
        rot[0, canon.index("r_upperarm")] = quat.from_angle_axis(0.0, x)
        rot[0, canon.index("head")] = quat.from_angle_axis(0.8, x)      # a pose far from frame 1
    return Clip(skel, quat.normalize(rot).astype(np.float32), pos, fps)


def write_walks(folder, naming="cmu", n=2, units=1.0, up="y", extras=True, tpose_first=False,
                root_relative=False, frames=240) -> list:
    """Write n walks (the second turned 30 degrees, and so on) as BVH into
    folder in `units` (metres per file unit) with the given up axis. Returns the paths."""
    import os
    os.makedirs(folder, exist_ok=True)
    skel, canon = make_skeleton(naming, extras)
    paths = []
    for i in range(n):
        clip = walk_clip(skel, canon, frames=frames, tpose_first=tpose_first)
        yaw = quat.from_angle_axis(np.float32(np.radians(30 * i)), np.array([0, 1.0, 0]))
        clip.rotations[:, 0] = quat.mul(yaw, clip.rotations[:, 0])
        clip.positions[:, 0] = quat.rot(yaw, clip.positions[:, 0])
        rest = skel
        if up == "z":                   # the world turned so that up is +Z: rotate the root
            q = quat.from_angle_axis(np.float32(np.pi / 2), np.array([1.0, 0, 0]))   # +Y -> +Z
            clip.rotations[:, 0] = quat.mul(q, clip.rotations[:, 0])
            clip.positions[:, 0] = quat.rot(q, clip.positions[:, 0])
        if root_relative:              # root channels written relative to the root's OFFSET
            off = rest.offsets[0] if up == "y" else quat.rot(q, rest.offsets[0])
            rest = Skeleton(rest.names, rest.parents, np.concatenate([off[None], rest.offsets[1:]]))
            clip.positions[:, 0] -= off
        clip.skeleton = rest
        p = os.path.join(folder, f"{naming}_walk_{i + 1:02d}.bvh")
        write_bvh(p, rest, clip, scale=units)
        paths.append(p)
    return paths
