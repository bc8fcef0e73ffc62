"""What flows into a controller each tick, and the interface every controller keeps.

The live loop, the headless runner, the evaluation scripts and the exporters all
talk to controllers through `Controller`, so a new controller plugs in
everywhere at once. Input devices (viewer/) fill a `ControlInput`; controllers
never read devices themselves.

`InputGuard` (and `clamp_dt`) is the input boundary: whatever a device, a
script, a network message or a direct API call hands over, a controller steps
with finite values of the right types and a dt in [DT_MIN, DT_MAX]. The
runtime loop calls it at the source; each controller also runs its own guard
in `step`, so a direct call cannot poison its state either.
"""

from __future__ import annotations

import collections
import math
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


# ---------------------------------------------------------------- the input boundary
#: dt bounds (seconds) every controller steps with: (DT_MIN, DT_MAX]. A tick
#: shorter than DT_MIN divides velocities by almost nothing (a 0 s tick is a
#: ZeroDivisionError); a frame hitch longer than DT_MAX is played as DT_MAX
#: (the character slows for that tick instead of springs and physics
#: integrating one huge, unstable step).
DT_MIN = 1e-4
DT_MAX = 0.1
#: the nominal tick (the runtime's 60 Hz): what a non-finite dt becomes
DT_NOMINAL = 1.0 / 60.0
#: a tracked device further than this from the origin (metres) is a glitch, not a pose
MAX_DEVICE_DISTANCE = 1000.0


def clamp_dt(dt, default: float = DT_NOMINAL) -> float:
    """dt bounded to [DT_MIN, DT_MAX]: NaN, infinite or not a number -> `default`
    (the nominal tick: nothing says how much time passed); 0 or negative (a
    paused or backward clock) -> DT_MIN (next to no time passes, nothing
    divides by zero); longer than DT_MAX -> DT_MAX."""
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        return float(default)
    if not math.isfinite(dt):
        return float(default)
    return min(max(dt, DT_MIN), DT_MAX)


def usable_pose(pose) -> bool:
    """Whether `pose` (a Pose, for a controller's reset) has finite root
    rotation and position; a controller handed one that is not starts from
    its default instead of taking a NaN into its state."""
    try:
        r = np.asarray(pose.rotations[0], np.float64)
        p = np.asarray(pose.positions[0], np.float64)
    except (AttributeError, TypeError, ValueError, IndexError):
        return False
    return r.shape == (4,) and p.shape == (3,) and bool(np.isfinite(r).all() and np.isfinite(p).all()) \
        and float(np.dot(r, r)) > 1e-12


def _vector(x, n: int):
    """x as a finite float64 [n] array, or None (wrong type, shape or a non-finite value)."""
    try:
        a = np.asarray(x, np.float64)
    except (TypeError, ValueError):
        return None
    if a.shape != (n,) or not np.isfinite(a).all():
        return None
    return a


def sanitize_device(dev, max_distance: float = MAX_DEVICE_DISTANCE):
    """A tracked device (position [3], rotation (w, x, y, z) [4]) as float32
    arrays with a unit rotation, or None when it is unusable: not a pair, a
    wrong shape, a non-finite value, a zero rotation, or a position further
    than `max_distance` m."""
    if dev is None:
        return None
    try:
        pos, rot = dev
    except (TypeError, ValueError):
        return None
    p, r = _vector(pos, 3), _vector(rot, 4)
    if p is None or r is None or float(np.abs(p).max()) > max_distance:
        return None
    n = float(np.sqrt(np.dot(r, r)))
    if not 1e-6 < n < 1e6:
        return None
    return p.astype(np.float32), (r / n).astype(np.float32)


class InputGuard:
    """Validates what reaches a controller, once per tick: `guard(ci, dt)` ->
    (sanitized ControlInput, bounded dt). Nothing it returns holds a NaN, an
    infinity or a wrong type, so no controller's state can be poisoned by one
    bad tick, and the next good input plays on as if the bad one never came.

    Per field, what replaces a bad value:
      move        [2] finite, else ZERO (the character stands: a broken stick
                  must not keep it walking); a length over 1 is scaled to 1
                  (a huge finite value is a full deflection).
      facing      [2] finite, else the LAST GOOD facing (strafing goes on in
                  the same direction), or None (face where moving) before any;
                  a length over 1 is scaled to 1 (only its direction counts).
      run         a bool (anything else: False).
      style       a str or None (anything else: None, keep the current style).
      head, left_hand, right_hand: `sanitize_device`, else None: the device
                  counts as untracked this tick (the VR controller then keeps
                  a hand's last pose, and holds the body for a lost head).
      actions     a set of str (anything else: no actions).
      dt          `clamp_dt`.
    `rejected` counts the replaced values per field (a Counter), `last_problem`
    names the latest; the guard never raises on its input."""

    def __init__(self, max_distance: float = MAX_DEVICE_DISTANCE):
        self.max_distance = max_distance
        self.rejected: collections.Counter = collections.Counter()
        self.last_problem: str | None = None
        self._facing: np.ndarray | None = None

    def _reject(self, name: str, value) -> None:
        self.rejected[name] += 1
        try:
            shown = repr(value)[:80]
        except Exception:       # a repr that raises is one more bad input
            shown = f"<{type(value).__name__}>"
        self.last_problem = f"{name}: {shown}"

    def control(self, ci) -> ControlInput:
        """A sanitized copy of `ci` (a ControlInput; anything else is an empty input)."""
        if not isinstance(ci, ControlInput):
            if ci is not None:
                self._reject("control", ci)
            ci = ControlInput()
        move = _vector(ci.move, 2)
        if move is None:
            self._reject("move", ci.move)
            move = np.zeros(2)
        n = float(np.hypot(move[0], move[1]))
        if n > 1.0:
            move = move / n
        facing = None
        if ci.facing is not None:
            facing = _vector(ci.facing, 2)
            if facing is None:
                self._reject("facing", ci.facing)
                facing = self._facing
            else:
                n = float(np.hypot(facing[0], facing[1]))
                facing = facing / n if n > 1.0 else facing    # a direction: no float32 overflow
                self._facing = facing
        run = ci.run
        if isinstance(run, (int, np.integer, np.bool_)) and not isinstance(run, bool) and run in (0, 1):
            run = bool(run)
        if not isinstance(run, bool):
            self._reject("run", ci.run)
            run = False
        style = ci.style
        if style is not None and not isinstance(style, str):
            self._reject("style", style)
            style = None
        devs = {}
        for key in ("head", "left_hand", "right_hand"):
            d = getattr(ci, key)
            devs[key] = sanitize_device(d, self.max_distance)
            if d is not None and devs[key] is None:
                self._reject(key, d)
        actions = ci.actions
        try:
            actions = frozenset(actions) if all(isinstance(a, str) for a in actions) else None
        except TypeError:
            actions = None
        if actions is None:
            self._reject("actions", ci.actions)
            actions = frozenset()
        return ControlInput(move=move.astype(np.float32), facing=None if facing is None else facing.astype(np.float32),
                            run=run, style=style, actions=actions, **devs)

    def dt(self, dt) -> float:
        out = clamp_dt(dt)
        if not (isinstance(dt, (int, float, np.floating, np.integer)) and out == dt):
            self._reject("dt", dt)
        return out

    def __call__(self, ci, dt) -> tuple[ControlInput, float]:
        return self.control(ci), self.dt(dt)
