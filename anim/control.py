"""What flows into a controller each tick, and the interface every controller keeps.

The live loop, the headless runner, the evaluation scripts and the exporters all
talk to controllers through `Controller`, so a new controller plugs in
everywhere at once. Input devices (viewer/) fill a `ControlInput`; controllers
never read devices themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .skeleton import Pose


@dataclass
class ControlInput:
    """One tick of input, device independent.

    move:    [2] desired movement on the ground in WORLD axes (x, z), length in
             [0, 1] (stick deflection; the device layer turns a stick relative
             to the camera into world axes).
    facing:  [2] desired facing direction (world x, z) while strafing; None lets
             the character face where it moves.
    run:     run instead of walk.
    style:   a style tag to switch to (e.g. 'normal', 'active'); None keeps the current.
    head, left_hand, right_hand: tracked 6-DoF poses for VR controllers, each a
             (position [3], rotation (w, x, y, z) [4]) pair in world axes, or None.
    actions: edge-triggered actions for a controller that knows them (e.g. 'push').
    """

    move: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    facing: np.ndarray | None = None
    run: bool = False
    style: str | None = None
    head: tuple | None = None
    left_hand: tuple | None = None
    right_hand: tuple | None = None
    actions: frozenset = frozenset()

    @property
    def strafe(self) -> bool:
        return self.facing is not None


@runtime_checkable
class Controller(Protocol):
    """reset(pose) puts the controller at a pose (or its default when None);
    step(control_input, dt) advances it by dt seconds and returns the pose."""

    skeleton: object

    def reset(self, pose: Pose | None = None) -> Pose: ...

    def step(self, control_input: ControlInput, dt: float) -> Pose: ...
