"""The motion-matching controller (Clavet 2016; Holden, Kanoun, Perepichka, Popa 2020).

Each 60 Hz tick: the input sets a desired velocity and facing; springs move the
simulated character and predict its trajectory; every `search_interval` (or at
once when the input changes sharply, or at a clip end) the motion source is
searched for the state whose features best match the current pose plus that
trajectory; a better state (by a margin) starts an inertialized transition;
the character's root is pulled toward the simulation within bounds; feet in
contact are pinned with two-bone IK.

`KinematicController` is that loop over a *motion source* (a backend):
`DatabaseSource` plays database frames found by a kd-tree (motion matching);
`controllers.learned` plugs in its networks (learned motion matching) with the
same loop, so both behave alike but for what they store.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from anim import quat_nb as q
from anim import search
from anim.control import ControlInput, InputGuard, usable_pose
from anim.database import Database
from anim.skeleton import Pose, PoseInfo, Skeleton

from .runtime import (AccelerationLimiter, FootLocks, Inertializer, RuntimeConfig, Simulation, adjusted_root,
                      desired_rotation, desired_velocity, trajectory_features, upper_body_levers)


def measured_speeds(db: Database) -> dict:
    """Walk, run, side-step and backward speeds (m/s) measured from the database:
    the median horizontal root speed of the clips with those contents, where the
    database has them (fallbacks scale the walk speed)."""
    v = db.root_velocity_character()
    speed = np.hypot(v[:, 0], v[:, 2])

    def median(**tags):
        m = db.tag_mask(**tags) & (speed > 0.3)
        return float(np.median(speed[m])) if m.sum() > 30 else None

    walk = median(content="walk") or float(np.median(speed[speed > 0.3]))
    run = median(content="run") or 2.5 * walk
    side = median(content=["walk-left", "walk-right"]) or 0.8 * walk
    back = median(content="walk-back") or 0.8 * walk
    return {"walk": walk, "run": run, "side": side, "back": back}


def measured_accel_limit(db: Database) -> float:
    """The database's 99.9th percentile of joint acceleration (m/s^2; pooled
    over its clips, no difference across a clip boundary): the default of
    RuntimeConfig.accel_limit, and what anim.runner compares a run with."""
    from anim.runner import database_reference
    return float(database_reference(db)["accel_p999_m_s2"])


def measured_coverage(db: Database, min_speed: float = 0.5) -> dict:
    """Seconds of motion the database holds per direction of travel in
    character space: 'forward', 'side' and 'back' (root faster than min_speed
    m/s, its velocity within 45 degrees of that direction). What the character
    can play without sliding: the Bandai Namco normal-style locomotion has
    ~3 s of side steps in 25 min, so strafing sideways slides there."""
    v = db.root_velocity_character()
    speed = np.hypot(v[:, 0], v[:, 2])
    moving = speed > min_speed
    c = np.cos(np.pi / 4) * speed
    fps = float(db.config.fps)
    return {"forward": float(np.sum(moving & (v[:, 2] >= c))) / fps,
            "side": float(np.sum(moving & (np.abs(v[:, 0]) >= c))) / fps,
            "back": float(np.sum(moving & (-v[:, 2] >= c))) / fps}


#: below this many seconds of a direction in the database, the HUD says strafing that way slides
COVERAGE_NOTE_S = 10.0


def coverage_note(coverage: dict | None, move, facing) -> str | None:
    """A line for the HUD when the input asks for a direction of travel (move,
    with facing held) that the database barely covers, else None."""
    if not coverage or facing is None:
        return None
    m = np.asarray(move, np.float64)
    f = np.asarray(facing, np.float64)
    if np.hypot(*m) < 0.3 or np.hypot(*f) < 1e-6:
        return None
    cos = float(np.dot(m, f) / (np.hypot(*m) * np.hypot(*f)))
    way = "back" if cos < -0.7 else "side" if cos < 0.7 else None
    if way is None or coverage.get(way, np.inf) >= COVERAGE_NOTE_S:
        return None
    what = "side steps" if way == "side" else "backward walking"
    return f"database has {coverage[way]:.0f} s of {what}: forward steps moved, feet re-planted"


class MotionSource(Protocol):
    """What the kinematic loop needs from a motion source.

    The source has a current state (a database frame, or a learned feature and
    latent vector). Poses are local rotations/positions [J,4]/[J,3] with
    velocities, angular velocities and contacts; joint 0 (the root) lives in the
    source's own animation space (the loop places it in the world)."""

    styles: list
    feature_offset: np.ndarray
    feature_scale: np.ndarray

    def set_style(self, style: str | None) -> None: ...
    def reset(self, standing: bool = True) -> None: ...
    def features(self) -> np.ndarray: ...            # normalized features of the current state
    def at_end(self) -> bool: ...                    # no next state to play (clip end)
    def search(self, query: np.ndarray, must_move: bool, margin: float) -> tuple[bool, float]: ...
    def advance(self, dt: float) -> None: ...        # play on by one tick
    def pose(self) -> tuple: ...                     # (rot, pos, vel, avel, contacts)
    def info(self) -> dict: ...


class DatabaseSource:
    """Motion matching's source: the database frames, searched with a kd-tree
    (or any `anim.search` index), restricted to a style by a tag mask."""

    def __init__(self, db: Database, index: str = "kdtree", style_key: str = "style"):
        self.db = db
        self.index = search.make_index(index, np.asarray(db.features), np.asarray(db.valid))
        self.style_key = style_key
        self.styles = db.tag_values(style_key)
        self._mask_ids: dict = {}
        self._style_frames: dict = {}
        # pose data copied into memory once here: a memory-mapped database would
        # page-fault from disk in the middle of a tick
        self.rot = np.array(db.rotations)
        self.pos = np.array(db.positions)
        self.vel = np.array(db.velocities)
        self.avel = np.array(db.angular_velocities)
        self.contacts = np.array(db.contacts)
        self.X = np.array(db.features)
        self.valid = np.array(db.valid)
        self.stops = np.repeat(np.asarray(db.range_stops), np.asarray(db.range_stops - db.range_starts))
        self.feature_offset = np.asarray(db.features_offset)
        self.feature_scale = np.asarray(db.features_scale)
        v = db.root_velocity_character()
        self._speed = np.hypot(v[:, 0], v[:, 2])
        self.frame = 0
        self.stats = {"transitions": 0, "transition_cost": 0.0}
        for style in self.styles:     # register every style's mask now: no stall on a live switch
            self.set_style(style)
        self.set_style(None)

    def nbytes(self) -> int:
        """Bytes motion matching holds at run time: pose data, features and index."""
        n = sum(a.nbytes for a in (self.rot, self.pos, self.vel, self.avel, self.contacts, self.X, self.valid))
        return n + getattr(self.index, "nbytes", 0)

    def set_style(self, style):
        if style is not None and style not in self.styles:
            raise ValueError(f"style {style!r} not in the database (has: {', '.join(self.styles)})")
        if style is not None and style not in self._mask_ids:
            mask = self.db.tag_mask(**{self.style_key: style})
            self._mask_ids[style] = self.index.mask_id(mask)
            self._style_frames[style] = mask
        self.style = style
        self._mask = None if style is None else self._mask_ids[style]
        self._ok = self.valid if style is None else self.valid & self._style_frames[style]

    def reset(self, standing: bool = True, frame: int | None = None):
        if frame is None:   # the slowest matchable frame of the style
            frame = int(np.argmin(np.where(self._ok, self._speed, np.inf)))
        self.frame = int(frame)

    def features(self):
        return self.X[self.frame]

    def at_end(self):
        return self.frame + 1 >= self.stops[self.frame]

    def search(self, query, must_move, margin):
        cur = self.frame
        cur_ok = bool(self._ok[cur])
        cur_cost = float(np.sum((query - self.X[cur]) ** 2)) if cur_ok else np.inf
        best, cost = self.index.query(query, mask=self._mask, init=cur if cur_ok else -1)
        if best < 0 or best == cur:
            return False, cur_cost
        if must_move or not cur_ok or cost < cur_cost - margin:
            self.frame = int(best)
            return True, float(cost)
        return False, cur_cost

    def advance(self, dt):
        if self.frame + 1 < self.stops[self.frame]:
            self.frame += 1

    def pose(self):
        f = self.frame
        return self.rot[f], self.pos[f], self.vel[f], self.avel[f], self.contacts[f]

    def info(self):
        clip = self.db.clip_of(self.frame)
        return {"clip": self.db.clip_names[clip], "frame": int(self.frame - self.db.range_starts[clip])}


class KinematicController:
    """The runtime loop shared by motion matching and learned motion matching."""

    name = "kinematic"

    def __init__(self, source: MotionSource, skeleton: Skeleton, feet, toes, trajectory_frames, traj_slice: slice,
                 speeds: dict, config: RuntimeConfig = RuntimeConfig(), fps: float = 60.0,
                 style: str | None = None, accel_limit: float | None = None, body_joints=None):
        """accel_limit: the data's joint-acceleration p99.9 (m/s^2), the
        default of config.accel_limit (None: no limit unless configured).
        body_joints: the joints the limit holds (default all; helper joints
        such as fingers are left out, as the data's p99.9 leaves them out)."""
        self.body_joints = body_joints
        self.source = source
        self.skeleton = skeleton
        self.config = config
        self.fps = float(fps)
        self.feet = list(feet)
        self.toes = list(toes)
        self.contact_joints = self.toes
        self.traj_frames = list(trajectory_frames)
        self.traj_slice = traj_slice
        self.speeds = {k: getattr(config, f"{k}_speed") or speeds[k] for k in ("walk", "run", "side", "back")}
        self.coverage: dict | None = None   # measured_coverage of the data, where known
        self.note: str | None = None        # coverage_note of the last input
        self.styles = list(source.styles)
        self.accel_limit = float(config.accel_limit if config.accel_limit is not None else (accel_limit or 0.0))
        self.debug = False          # toggled by the 'debug' action: fills Pose.info debug drawing
        self._searched = 0
        self.guard = InputGuard()   # every step's input and dt pass it: no NaN, no 0 s tick gets in
        self._good: Pose | None = None
        self.set_style(style)
        self.reset()
        self.step(ControlInput(), 1.0 / self.fps)   # compile / load the numba kernels now, not mid-run
        self.reset()

    def set_style(self, style: str | None) -> None:
        self.source.set_style(style)
        self.style = style

    def reset(self, pose: Pose | None = None) -> Pose:
        """Start standing (the slowest state of the style) with the root at the
        origin facing +Z, or at `pose`'s root (when finite)."""
        if pose is not None and not usable_pose(pose):
            pose = None
        self.source.reset()
        rot, pos, vel, avel, contacts = self.source.pose()
        root_pos = np.zeros(3)
        root_rot = np.array([1.0, 0.0, 0.0, 0.0])
        if pose is not None:
            root_pos = np.asarray(pose.positions[0], np.float64).copy()
            root_pos[1] = 0.0
            root_rot = np.asarray(pose.rotations[0], np.float64)
            root_rot = root_rot / np.linalg.norm(root_rot)
        self.inert = Inertializer(self.skeleton.num_joints, self.config.inertialize_halflife,
                                  upper_body_levers(self.skeleton, self.feet), self.config.inertialize_accel)
        self.inert.reset(rot, pos, vel, avel, root_pos, root_rot)
        self.sim = Simulation(position=root_pos, rotation=root_rot)
        self.desired_rot = root_rot.astype(np.float64)
        self.desired_vel = np.zeros(3)
        self.search_timer = 0.0
        self.locks = FootLocks(self.skeleton.parents, self.feet, self.toes, self.config.foot_halflife,
                               self.config.unlock_radius)
        self.locks.reset(self.inert.out_rot, self.inert.out_pos, contacts)
        self.limiter = AccelerationLimiter(self.skeleton.parents, self.accel_limit, body=self.body_joints)
        self.limiter.reset(self.inert.out_rot, self.inert.out_pos)
        self.stats = {"searches": 0, "transitions": 0, "transition_cost": 0.0, "forced": 0, "recovered": 0}
        self.last_query = None
        self.last_trajectory = None
        self.ms = 0.0
        self._good = self._pose(self.inert.out_rot, self.inert.out_pos, contacts)
        return self._good

    def query(self, fut_pos, fut_rot) -> np.ndarray:
        """Normalized query: the current state's pose features, and the predicted
        trajectory in the space of the displayed root."""
        qv = np.array(self.source.features(), np.float32)
        sl = self.traj_slice
        raw = trajectory_features(self.inert.out_pos[0], self.inert.out_rot[0], fut_pos, fut_rot)
        qv[sl] = (raw - self.source.feature_offset[sl]) / self.source.feature_scale[sl]
        return qv

    def step(self, control: ControlInput, dt: float = 1.0 / 60.0) -> Pose:
        """Advance by dt seconds. The input passes `self.guard` first (a
        non-finite stick is no stick, a bad facing the last good one, dt
        bounded to anim.control's [DT_MIN, DT_MAX]); should the pose still come
        out non-finite, the controller restarts at its last good pose
        (stats['recovered'] counts it) rather than carry the NaN on."""
        control, dt = self.guard(control, dt)
        pose = self._step(control, dt)
        if np.isfinite(pose.rotations).all() and np.isfinite(pose.positions).all():
            self._good = pose
            return pose
        good = self._good
        recovered = self.stats["recovered"] + 1
        self.reset(good)
        self.stats["recovered"] = recovered
        return self._good

    def _step(self, control: ControlInput, dt: float) -> Pose:
        t0 = time.perf_counter()
        cfg = self.config
        if "debug" in control.actions:
            self.debug = not self.debug
        if control.style is not None and control.style != self.style:
            self.set_style(control.style)
            self.search_timer = 0.0
        # 1. desired velocity and facing from the input
        fwd = self.speeds["run"] if control.run else self.speeds["walk"]
        side, back = self.speeds["side"], self.speeds["back"]
        if control.run:
            side, back = max(side, 0.5 * fwd), max(back, 0.5 * fwd)
        move = np.asarray(control.move, np.float64)
        n = float(np.hypot(move[0], move[1]))
        if n > 1.0:
            move = move / n
        v_goal = desired_velocity(move, self.sim.rotation, (fwd, side, back))
        r_goal = desired_rotation(self.desired_rot, move, control.facing)
        dv = float(np.linalg.norm(v_goal - self.desired_vel)) / dt
        dr = q.length(q.to_scaled_angle_axis(q.mul(r_goal, q.inv(self.desired_rot)))) / dt
        force = dv > cfg.force_search_velocity or dr > cfg.force_search_rotation
        self.desired_vel, self.desired_rot = v_goal, r_goal
        self.note = coverage_note(self.coverage, move, control.facing)

        # 2. trajectory prediction and search
        fut_pos, fut_rot = self.sim.predict(v_goal, r_goal, cfg, self.traj_frames, self.fps)
        self.last_trajectory = (fut_pos, fut_rot)
        end = self.source.at_end()
        self.search_timer -= dt
        if force or end or self.search_timer <= 0.0:
            qv = self.query(fut_pos, fut_rot)
            self.last_query = qv
            self.stats["searches"] += 1
            self.stats["forced"] += int(force)
            moved, cost = self.source.search(qv, end, cfg.transition_margin)
            self._searched = 2 if moved else 1
            if moved:
                self.stats["transitions"] += 1
                self.stats["transition_cost"] += cost
                self.inert.transition(*self.source.pose()[:4])
            self.search_timer = cfg.search_interval

        # 3. play on, inertialized
        self.source.advance(dt)
        rot, pos, vel, avel, contacts = self.source.pose()
        self.inert.update(rot, pos, vel, avel, dt)

        # 4. simulation, and the character root pulled toward it
        self.sim.update(v_goal, r_goal, cfg, dt)
        new_pos, new_rot = adjusted_root(self.inert.out_pos[0], self.inert.out_rot[0], self.inert.out_vel[0],
                                         self.sim, cfg, dt)
        self.inert.adjust_root(new_pos, new_rot)

        # 5. foot locking
        out_rot, out_pos = self.inert.out_rot, self.inert.out_pos
        clip_contacts = contacts
        if cfg.foot_lock:
            out_rot, out_pos = self.locks.apply(out_rot, out_pos, contacts, dt, source=(rot, pos))
            contacts = self.locks.planted(contacts)

        # 6. no joint accelerates harder than the data's p99.9
        out_rot, out_pos = self.limiter.apply(out_rot, out_pos, dt)
        self.stats["limited"] = self.limiter.limited
        self.stats["drift_bound"] = self.limiter.drift_bound
        self.stats["max_drift_m"] = self.limiter.max_drift
        self.ms = 1e3 * (time.perf_counter() - t0)
        pose = self._pose(out_rot, out_pos, contacts)
        pose.info.clip_contacts = np.asarray(clip_contacts, bool)
        return pose

    def _pose(self, rot, pos, contacts) -> Pose:
        info = PoseInfo(controller=self.name, style=self.style or "all", ms=self.ms, note=self.note or None,
                        **self.source.info())
        if self.debug:
            lines, points = self.debug_drawing()
            info.debug_lines, info.debug_points = lines, points
        self._searched = 0
        return Pose(np.array(rot, np.float32), np.array(pos, np.float32), np.array(contacts, bool), info)

    def debug_drawing(self) -> tuple[list, list]:
        """Lines and points for the viewer's debug mode: the desired (simulated)
        trajectory in red, the matched state's trajectory in green, the feature
        foot positions in blue (yellow while locked), and a white marker on
        the ground at each search (larger when it took a transition)."""
        root_p, root_r = self.inert.out_pos[0], self.inert.out_rot[0]
        lift = np.array([0.0, 0.02, 0.0])
        lines, points = [], []
        if self.last_trajectory is not None:
            fut = np.concatenate([self.sim.position[None], self.last_trajectory[0]]) + lift
            lines.append((fut.astype(np.float32), (0.95, 0.25, 0.2)))
        f = np.asarray(self.source.features(), np.float64) * self.source.feature_scale + self.source.feature_offset
        sl = self.traj_slice
        k = len(self.traj_frames)
        local = np.zeros((k, 3))
        local[:, [0, 2]] = f[sl][: 2 * k].reshape(k, 2)
        matched = np.array([q.rot(root_r, v) for v in local]) + root_p
        lines.append((np.concatenate([root_p[None], matched]).astype(np.float32) + lift.astype(np.float32),
                      (0.2, 0.85, 0.3)))
        for i, foot_local in enumerate((f[0:3], f[3:6])):
            p = q.rot(root_r, foot_local) + root_p
            color = (0.95, 0.85, 0.2) if self.locks.locked[i] else (0.2, 0.45, 0.95)
            points.append((p.astype(np.float32), color, 0.03))
        if self._searched:
            points.append(((root_p + lift).astype(np.float32), (1.0, 1.0, 1.0), 0.04 * self._searched))
        return lines, points


class MotionMatchingController(KinematicController):
    """Motion matching over a `Database`, searched with one of `anim.search`'s
    indexes. `style` restricts matching to frames of that style tag (None: all);
    it can change live through ControlInput.style."""

    name = "motion matching"

    def __init__(self, db: Database, config: RuntimeConfig = RuntimeConfig(), index: str = "kdtree",
                 style: str | None = None, style_key: str = "style"):
        self.db = db
        source = DatabaseSource(db, index, style_key)
        self.index = source.index
        traj = slice(db.feature_slice("trajectory_positions").start, db.feature_slice("trajectory_directions").stop)
        super().__init__(source, db.skeleton, [db.skeleton.index(f) for f in db.config.feet],
                         [db.skeleton.index(t) for t in db.config.toes], db.config.trajectory_frames, traj, measured_speeds(db), config, db.config.fps, style,
                         measured_accel_limit(db) if config.accel_limit is None else None,
                         body_joints=db.body_joints())
        self.coverage = measured_coverage(db)

    @property
    def frame(self) -> int:
        return self.source.frame
