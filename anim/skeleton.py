"""The motion data model: a Skeleton, a Clip of frames, and one Pose.

Conventions (see DESIGN.md): metres, seconds, radians; Y up, forward +Z;
quaternions (w, x, y, z) float32 of shape [..., 4]; local rotations per joint
plus local positions (joint offsets, or per-frame translations where a joint
translates).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A joint hierarchy.

    names:    joint names, parents before children.
    parents:  int32 [J], index of each joint's parent, -1 for the root.
    offsets:  float32 [J, 3], rest offset of each joint from its parent (metres
              once scaled; a BVH reader returns the file's units times `scale`).
    channels: per joint, the BVH channel names in file order (for writing back
              in the same layout); empty tuple when unknown.
    end_sites: {joint index: offset [3]} of BVH End Sites.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...] = ()
    end_sites: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "parents", np.asarray(self.parents, dtype=np.int32))
        object.__setattr__(self, "offsets", np.asarray(self.offsets, dtype=np.float32))
        j = len(self.names)
        if self.parents.shape != (j,) or self.offsets.shape != (j, 3):
            raise ValueError(
                f"Skeleton: {j} names but parents {self.parents.shape} and offsets {self.offsets.shape}")
        for i, p in enumerate(self.parents):
            if p >= i:
                raise ValueError(f"Skeleton: joint {self.names[i]!r} comes before its parent")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"joint {name!r} not in skeleton ({', '.join(self.names)})") from None

    def children(self, j: int) -> list[int]:
        return [i for i, p in enumerate(self.parents) if p == j]

    def signature(self) -> str:
        """A short text that identifies the hierarchy (names and parents), stored
        with every saved artefact so that a mismatched skeleton is caught on load."""
        return ";".join(f"{n}<{p}" for n, p in zip(self.names, self.parents.tolist()))

    def scaled(self, scale: float) -> "Skeleton":
        return Skeleton(self.names, self.parents, self.offsets * scale, self.channels,
                        {k: np.asarray(v) * scale for k, v in self.end_sites.items()})


@dataclass
class Clip:
    """A sequence of frames on one skeleton.

    rotations: float32 [T, J, 4] local joint rotations (w, x, y, z).
    positions: float32 [T, J, 3] local joint positions (the offset, or the
               per-frame translation for joints with position channels).
    fps:       frames per second.
    source:    the file it came from ('' if built in memory).
    tags:      e.g. {'content': 'walk', 'style': 'normal', 'dataset': 'bandai-namco-2'}.
    """

    skeleton: Skeleton
    rotations: np.ndarray
    positions: np.ndarray
    fps: float
    source: str = ""
    tags: dict = field(default_factory=dict)

    def __post_init__(self):
        self.rotations = np.asarray(self.rotations, dtype=np.float32)
        self.positions = np.asarray(self.positions, dtype=np.float32)
        t, j = self.rotations.shape[:2]
        if self.rotations.shape != (t, self.skeleton.num_joints, 4) or self.positions.shape != (t, j, 3):
            raise ValueError(f"Clip {self.source!r}: rotations {self.rotations.shape} and positions "
                             f"{self.positions.shape} do not fit a {self.skeleton.num_joints}-joint skeleton")

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @property
    def name(self) -> str:
        import os
        return os.path.splitext(os.path.basename(self.source))[0] if self.source else "<memory>"


@dataclass
class PoseInfo:
    """What a stage reports beside its pose each tick: a typed record that the
    viewer (HUD, ghost, debug drawing), the recorder and the metrics read.

    controller: the stage's name; clip, frame: what it plays (a database clip
    and its frame, or 'learned' and a tick count); style: the active style tag;
    ms: the stage's own time this tick; note: one line for the HUD (e.g. a
    database that lacks side steps); status: a state word ('waiting', 'head
    lost', 'fallen', 'recovering'); clip_contacts: the played clip's foot
    contacts before foot locking (bool [2]); ghost: a second pose to draw
    translucent (the kinematic target under physics); debug_lines [(points
    [K, 3], colour)] and debug_points [(position [3], colour, radius)] drawn in
    debug mode; hud: further HUD lines. The physics stage fills the tracking
    figures (cm; None elsewhere): mean global joint error against the
    kinematic reference, the same relative to each pose's root, the root's
    ground distance to the reference, and its falls so far.
    """

    controller: str = ""
    clip: str | None = None
    frame: int | None = None
    style: str | None = None
    ms: float = 0.0
    note: str | None = None
    status: str | None = None
    clip_contacts: np.ndarray | None = None
    ghost: "Pose | None" = None
    debug_lines: list = field(default_factory=list)
    debug_points: list = field(default_factory=list)
    hud: list = field(default_factory=list)
    tracking_error_cm: float | None = None
    pose_error_cm: float | None = None
    root_distance_cm: float | None = None
    fallen: bool = False
    falls: int = 0


@dataclass
class Pose:
    """One frame: what a controller emits each tick.

    rotations: float32 [J, 4] local rotations; positions: float32 [J, 3] local
    positions (joint 0's is the root position in world space).
    Optional extras a controller may fill: contacts (bool [2], left/right foot),
    info (a `PoseInfo`: clip, frame, style, ghost, timings, HUD lines, ...).
    """

    rotations: np.ndarray
    positions: np.ndarray
    contacts: np.ndarray | None = None
    info: PoseInfo = field(default_factory=PoseInfo)

    @property
    def root_position(self) -> np.ndarray:
        return self.positions[0]
