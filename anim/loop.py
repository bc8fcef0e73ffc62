"""The one runtime loop: source -> stage -> sinks, at a fixed tick rate.

Every caller runs its ticks through `Loop`: the live window and the headless
capture (viewer/app.py), the headless runner (`anim.runner.run`, `anim run`),
the demo, the benchmarks and the evaluations. A tick is

    control = source(t)            # a stick script, a device, a VR trace (or given to tick())
    control = guard(control)       # input validated once, at the boundary
    pose    = stage.step(control, dt)
    for sink in sinks: sink(tick)  # recorder, metrics, viewer state

The stage is any `anim.control.Controller`: a kinematic stage (motion
matching, learned motion matching, the VR predictor) or the physics stage
(`controllers.physics.tracker.PhysicsStage`), which wraps a kinematic stage
and tracks it in MuJoCo. The loop knows neither: it only keeps time, feeds
input, times the step and hands each tick to the sinks.

The rate is fixed (60 Hz): a live window with a variable frame rate calls
`tick()` as many times per frame as 60 Hz time has passed; a headless run
calls `run()`. Sinks see a `Tick`; a sink may also define `reset(pose,
control)` (called by `Loop.reset`) and `close(loop)` (called by `Loop.run`
at its end).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .control import ControlInput, InputGuard
from .skeleton import Pose

FPS = 60.0


@dataclass
class Tick:
    """One tick as the sinks see it: `index` counts steps since the reset (1
    for the first), `time` is the time at its end (index * dt); `control` is
    the input the step used, `ms` the wall time of the stage's step and
    `cpu_ms` this thread's processor time in it (with `Loop(cpu_time=True)`;
    else 0)."""

    index: int
    time: float
    dt: float
    control: ControlInput
    pose: Pose
    ms: float
    stage: object
    cpu_ms: float = 0.0


class Loop:
    """source -> [guard] -> stage -> sinks at `fps` ticks per second.

    source: `source(t) -> ControlInput` (a stick script, a trace, a device
    adapter), or None when the caller hands each tick its input
    (`tick(control)`, as the live window does). guard: `guard(control, dt) ->
    (control, dt)` applied to every input before the stage sees it; by
    default an `anim.control.InputGuard` (non-finite or mistyped fields
    replaced, dt bounded: no stage sees a NaN or a bad dt). `guard=False`
    passes inputs as they are. cpu_time: also measure each step's thread
    processor time (`Tick.cpu_ms`); off by default, as reading the thread
    clock can cost more than a tick on some machines (a system call: 2 ms
    here)."""

    def __init__(self, stage, source: Callable | None = None, sinks=(), fps: float = FPS,
                 guard: Callable | None | bool = None, cpu_time: bool = False):
        if not fps > 0:
            raise ValueError(f"Loop: fps must be > 0, got {fps}")
        self.stage = stage
        self.source = source
        self.sinks = list(sinks)
        self.fps = float(fps)
        self.dt = 1.0 / self.fps
        self.guard = InputGuard() if guard is None else (guard or None)
        self.cpu_time = bool(cpu_time)
        self.index = 0
        self.time = 0.0
        self.pose: Pose | None = None

    def control_at(self, t: float) -> ControlInput:
        return self.source(t) if self.source is not None else ControlInput()

    def reset(self, pose: Pose | None = None) -> Pose:
        """Reset the stage (at `pose`, or its default) and the clock; sinks
        that keep state are told."""
        self.pose = self.stage.reset(pose)
        self.index, self.time = 0, 0.0
        first = self.control_at(0.0)
        for s in self.sinks:
            r = getattr(s, "reset", None)
            if r is not None:
                r(self.pose, first)
        return self.pose

    def tick(self, control: ControlInput | None = None) -> Pose:
        """One fixed-rate tick: the source's input at the current time (or
        `control`), validated, stepped, handed to the sinks."""
        ci = control if control is not None else self.control_at(self.time)
        dt = self.dt
        if self.guard is not None:
            ci, dt = self.guard(ci, dt)
        c0 = time.thread_time() if self.cpu_time else 0.0
        t0 = time.perf_counter()
        pose = self.stage.step(ci, dt)
        ms = 1e3 * (time.perf_counter() - t0)
        cpu_ms = 1e3 * (time.thread_time() - c0) if self.cpu_time else 0.0
        self.index += 1
        self.time = self.index * self.dt
        self.pose = pose
        if self.sinks:
            tk = Tick(self.index, self.time, dt, ci, pose, ms, self.stage, cpu_ms)
            for s in self.sinks:
                s(tk)
        return pose

    def run(self, seconds: float | None = None, ticks: int | None = None, reset: bool = True,
            reset_pose: Pose | None = None) -> "Loop":
        """Reset (unless `reset` is False), then tick `ticks` times (or
        round(seconds * fps)); sinks with `close(loop)` are closed at the end."""
        if ticks is None:
            if seconds is None:
                seconds = getattr(self.source, "duration", None)
                if seconds is None:
                    raise ValueError("Loop.run: give seconds or ticks (the source has no duration)")
            from .scripts import check_seconds
            ticks = int(round(check_seconds(seconds, "Loop.run: seconds") * self.fps))
        if ticks < 1:
            raise ValueError(f"Loop.run: {ticks} ticks: the run is shorter than one tick")
        if reset:
            self.reset(reset_pose)
        for _ in range(ticks):
            self.tick()
        for s in self.sinks:
            c = getattr(s, "close", None)
            if c is not None:
                c(self)
        return self
