"""A kinematic stage that plays one database clip as it was captured.

`ClipPlayer` keeps the controller interface: reset(pose) places the clip's
first frame at the pose's ground position and heading (the origin facing +Z
without one) and step() plays on one frame per tick; at the clip's end it
starts again from where the last frame left the character. Under the physics
stage it is what `anim run --controller physics --clip NAME` tracks.
"""

from __future__ import annotations

import numpy as np

from anim import quat
from anim.control import ControlInput, usable_pose
from anim.skeleton import Pose, PoseInfo


class ClipPlayer:
    name = "clip"

    def __init__(self, db, clip=None):
        self.db = db
        self.skeleton = db.skeleton
        if clip is None:
            c = 0
        elif isinstance(clip, (int, np.integer)):
            c = int(clip)
        else:
            if clip not in db.clip_names:
                close = [n for n in db.clip_names if str(clip) in n][:5]
                raise KeyError(f"clip {clip!r} not in the database" + (f" (did you mean {', '.join(close)}?)"
                                                                        if close else ""))
            c = db.clip_names.index(clip)
        if not 0 <= c < len(db.clip_names):
            raise KeyError(f"clip index {c} out of range (the database has {len(db.clip_names)} clips)")
        self.clip = c
        a, b = int(db.range_starts[c]), int(db.range_stops[c])
        if b - a < 2:
            raise ValueError(f"clip {db.clip_names[c]!r} has {b - a} frame(s): nothing to play")
        self.rot = np.asarray(db.rotations[a:b], np.float32)
        self.pos = np.asarray(db.positions[a:b], np.float32)
        self.stats = {"loops": 0}
        self.speeds = None
        self.reset()

    @property
    def num_frames(self) -> int:
        return self.rot.shape[0]

    def _place(self, root_rot, root_pos) -> None:
        """The rigid ground motion taking frame 0's root to (root_rot, root_pos)."""
        r0 = self.rot[0, 0].astype(np.float64)
        self.turn = quat.mul(np.asarray(root_rot, np.float64), quat.inv(r0))
        self.origin = self.pos[0, 0].astype(np.float64)
        self.target = np.asarray(root_pos, np.float64) * np.array([1.0, 0.0, 1.0])

    def reset(self, pose: Pose | None = None) -> Pose:
        if pose is None or not usable_pose(pose):      # none, or not finite: at the origin
            self._place(quat.identity((), np.float64), np.zeros(3))
        else:
            self._place(pose.rotations[0], pose.positions[0])
        self.frame = 0
        return self._pose()

    def step(self, control: ControlInput | None = None, dt: float = 1.0 / 60.0) -> Pose:
        if self.frame + 1 >= self.num_frames:
            last = self._pose()
            self._place(last.rotations[0], last.positions[0])
            self.frame = 0
            self.stats["loops"] += 1
        else:
            self.frame += 1
        return self._pose()

    def _pose(self) -> Pose:
        f = self.frame
        rot, pos = self.rot[f].copy(), self.pos[f].copy()
        rot[0] = quat.mul(self.turn, rot[0].astype(np.float64))
        pos[0] = quat.rot(self.turn, pos[0].astype(np.float64) - self.origin) + self.target
        return Pose(rot, pos, None, PoseInfo(controller=self.name, clip=self.db.clip_names[self.clip], frame=f))
