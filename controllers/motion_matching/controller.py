"""The motion-matching controller (Holden, Kanoun, Perepichka, Popa 2020; Clavet 2016).

Each 60 Hz tick: the input sets a desired velocity and facing; springs move the
simulated character and predict its trajectory; every `search_interval` (or at
once when the input changes sharply, or at a clip end) the database is searched
for the frame whose features best match the current pose plus that trajectory;
a better frame (by a margin) starts an inertialized transition; the character's
root is pulled toward the simulation within bounds; feet in contact are pinned
with two-bone IK.
"""

from __future__ import annotations

import time

import numpy as np

from anim import quat_nb as q
from anim import search
from anim.control import ControlInput
from anim.database import Database
from anim.skeleton import Pose

from .runtime import (FootLocks, Inertializer, RuntimeConfig, Simulation, adjusted_root, desired_rotation,
                      desired_velocity, trajectory_features)


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


class MotionMatchingController:
    """Motion matching over a `Database`, searched with one of `anim.search`'s
    indexes. `style` restricts matching to frames of that style tag (None: all);
    it can change live through ControlInput.style."""

    def __init__(self, db: Database, config: RuntimeConfig = RuntimeConfig(), index: str = "kdtree",
                 style: str | None = None, style_key: str = "style"):
        self.db = db
        self.skeleton = db.skeleton
        self.config = config
        self.fps = float(db.config.fps)
        self.index = search.make_index(index, np.asarray(db.features), np.asarray(db.valid))
        self.style_key = style_key
        self.styles = db.tag_values(style_key)
        self._mask_ids: dict = {}
        self.style = None
        measured = measured_speeds(db)
        self.speeds = {k: getattr(config, f"{k}_speed") or measured[k] for k in ("walk", "run", "side", "back")}
        self.feet = [db.skeleton.index(f) for f in db.config.feet]
        self.traj_frames = list(db.config.trajectory_frames)
        self.traj_slice = slice(db.feature_slice("trajectory_positions").start,
                                db.feature_slice("trajectory_directions").stop)
        # pose data as plain arrays (a memory-mapped database is read in once here)
        self.rot = np.asarray(db.rotations)
        self.pos = np.asarray(db.positions)
        self.vel = np.asarray(db.velocities)
        self.avel = np.asarray(db.angular_velocities)
        self.contacts = np.asarray(db.contacts)
        self.features = np.asarray(db.features)
        self.valid = np.asarray(db.valid)
        self.stops = np.repeat(np.asarray(db.range_stops), np.asarray(db.range_stops - db.range_starts))
        self.set_style(style)
        self.reset()
        self.step(ControlInput(), 1.0 / self.fps)   # compile / load the numba kernels now, not mid-run
        self.reset()

    # --------------------------------------------------------------- styles
    def set_style(self, style: str | None) -> None:
        if style is not None and style not in self.styles:
            raise ValueError(f"style {style!r} not in the database (has: {', '.join(self.styles)})")
        if style is not None and style not in self._mask_ids:
            self._mask_ids[style] = self.index.mask_id(self.db.tag_mask(**{self.style_key: style}))
        self.style = style
        self._mask = None if style is None else self._mask_ids[style]
        self._style_ok = None if style is None else self.db.tag_mask(**{self.style_key: style})

    # ---------------------------------------------------------------- reset
    def _start_frame(self) -> int:
        """A standing-still valid frame of the current style to start from."""
        v = self.db.root_velocity_character()
        speed = np.hypot(v[:, 0], v[:, 2])
        ok = self.valid if self._style_ok is None else self.valid & self._style_ok
        return int(np.argmin(np.where(ok, speed, np.inf)))

    def reset(self, pose: Pose | None = None, frame: int | None = None) -> Pose:
        """Start at a database frame (default: the slowest valid frame of the
        style) with the root at the origin facing +Z, or at `pose`'s root."""
        self.frame = self._start_frame() if frame is None else int(frame)
        f = self.frame
        root_pos = np.zeros(3)
        root_rot = np.array([1.0, 0.0, 0.0, 0.0])
        if pose is not None:
            root_pos = np.asarray(pose.positions[0], np.float64).copy()
            root_pos[1] = 0.0
            root_rot = np.asarray(pose.rotations[0], np.float64)
        self.inert = Inertializer(self.skeleton.num_joints, self.config.inertialize_halflife)
        self.inert.reset(self.rot[f], self.pos[f], self.vel[f], self.avel[f], root_pos, root_rot)
        self.sim = Simulation(position=root_pos.copy(), rotation=root_rot.copy())
        self.desired_rot = root_rot.astype(np.float64)
        self.desired_vel = np.zeros(3)
        self.search_timer = 0.0
        self.locks = FootLocks(self.skeleton.parents, self.feet, self.config.foot_halflife,
                               self.config.unlock_radius)
        self.locks.reset(self.inert.out_rot, self.inert.out_pos, self.contacts[f])
        self.stats = {"searches": 0, "transitions": 0, "transition_cost": 0.0, "forced": 0}
        self.last_query = None
        self.last_trajectory = None
        self.ms = 0.0
        return self._pose(self.inert.out_rot, self.inert.out_pos)

    # ----------------------------------------------------------------- step
    def query(self, fut_pos, fut_rot) -> np.ndarray:
        """Normalized query: the current frame's pose features, the predicted
        trajectory in the space of the displayed root."""
        q = self.features[self.frame].copy()
        raw = trajectory_features(self.inert.out_pos[0], self.inert.out_rot[0], fut_pos, fut_rot)
        q[self.traj_slice] = (raw - self.db.features_offset[self.traj_slice]) / self.db.features_scale[self.traj_slice]
        return q

    def step(self, control: ControlInput, dt: float = 1.0 / 60.0) -> Pose:
        t0 = time.perf_counter()
        cfg = self.config
        if control.style is not None and control.style != self.style:
            self.set_style(control.style)
            self.search_timer = 0.0
        # 1. desired velocity and facing from the input
        speeds = (self.speeds["run"] if control.run else self.speeds["walk"], self.speeds["side"],
                  self.speeds["back"])
        if control.run:
            speeds = (speeds[0], max(speeds[1], 0.5 * speeds[0]), max(speeds[2], 0.5 * speeds[0]))
        move = np.asarray(control.move, np.float64)
        n = float(np.hypot(move[0], move[1]))
        if n > 1.0:
            move = move / n
        v_goal = desired_velocity(move, self.sim.rotation, speeds)
        r_goal = desired_rotation(self.desired_rot, move, control.facing)
        dv = float(np.linalg.norm(v_goal - self.desired_vel)) / dt
        dr = q.length(q.to_scaled_angle_axis(q.mul(r_goal, q.inv(self.desired_rot)))) / dt
        force = dv > cfg.force_search_velocity or dr > cfg.force_search_rotation
        self.desired_vel, self.desired_rot = v_goal, r_goal

        # 2. trajectory prediction and search
        fut_pos, fut_rot = self.sim.predict(v_goal, r_goal, cfg, self.traj_frames, self.fps)
        self.last_trajectory = (fut_pos, fut_rot)
        end_of_clip = self.frame + 1 >= self.stops[self.frame]
        self.search_timer -= dt
        if force or end_of_clip or self.search_timer <= 0.0:
            self._search(self.query(fut_pos, fut_rot), end_of_clip or force)
            self.stats["forced"] += int(force)
            self.search_timer = cfg.search_interval

        # 3. play on: next frame of the clip, inertialized
        if self.frame + 1 < self.stops[self.frame]:
            self.frame += 1
        f = self.frame
        self.inert.update(self.rot[f], self.pos[f], self.vel[f], self.avel[f], dt)

        # 4. simulation, and the character root pulled toward it
        self.sim.update(v_goal, r_goal, cfg, dt)
        speed = float(np.linalg.norm(self.inert.out_vel[0]))
        new_pos, new_rot = adjusted_root(self.inert.out_pos[0], self.inert.out_rot[0], speed, self.sim, cfg, dt)
        self.inert.adjust_root(new_pos, new_rot)

        # 5. foot locking
        rot = self.inert.out_rot
        if cfg.foot_lock:
            rot = self.locks.apply(rot, self.inert.out_pos, self.contacts[f], dt)
        self.ms = 1e3 * (time.perf_counter() - t0)
        return self._pose(rot, self.inert.out_pos)

    def _search(self, q: np.ndarray, must_move: bool) -> None:
        self.stats["searches"] += 1
        self.last_query = q
        cur = self.frame
        cur_ok = bool(self.valid[cur]) and (self._style_ok is None or bool(self._style_ok[cur]))
        cur_cost = float(np.sum((q - self.features[cur]) ** 2)) if cur_ok else np.inf
        best, cost = self.index.query(q, mask=self._mask, init=cur if cur_ok else -1)
        if best < 0:
            return
        if best == cur:
            return
        if must_move or not cur_ok or cost < cur_cost - self.config.transition_margin:
            self.stats["transitions"] += 1
            self.stats["transition_cost"] += float(cost)
            self.frame = int(best)
            f = self.frame
            self.inert.transition(self.rot[f], self.pos[f], self.vel[f], self.avel[f])

    def _pose(self, rot, pos) -> Pose:
        f = self.frame
        clip = self.db.clip_of(f)
        info = {"clip": self.db.clip_names[clip], "frame": int(f - self.db.range_starts[clip]),
                "style": self.style or "all", "ms": self.ms, "controller": "motion matching"}
        return Pose(np.array(rot, np.float32), np.array(pos, np.float32), self.contacts[f].copy(), info)
