"""The runtime pieces every kinematic controller shares (motion matching and
learned motion matching): desired trajectory from input, trajectory prediction,
pose inertialization with the root carried in world space, root adjustment
toward the simulation, and foot locking with two-bone IK.

After Holden's Motion-Matching demo (controller.cpp): plain functions over small
arrays and one mutable state object per piece.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anim import quat

from . import kernels as k

UP = np.array([0.0, 1.0, 0.0], np.float32)
FWD = np.array([0.0, 0.0, 1.0], np.float32)
FWD64 = FWD.astype(np.float64)


@dataclass(frozen=True)
class RuntimeConfig:
    """Documented defaults (seconds, metres, m/s).

    velocity_halflife, rotation_halflife: springs of the simulated trajectory
        (0.1 s. The spring alone takes 0.51 s to bring a 180-degree reversal
        within 10% at 0.15 s, 0.34 s at 0.1 s; measured on the character, the
        worst walk-to-run or reversal went from 0.60 to 0.48 s. Holden's demo
        uses 0.27, which needs ~0.9 s).
    inertialize_halflife: decay of transition offsets.
    inertialize_accel: m/s^2; the upper body's offsets (spine, neck, head,
        arms: runtime.upper_body_levers) decay on a longer halflife where
        inertialize_halflife would start swinging a hand or the head harder
        than this (the search matches legs and trajectory, not arms: a
        transition could leave an arm 1 rad off, and its 0.1 s decay threw
        the hand at 115-150 m/s^2). The root and legs keep
        inertialize_halflife. 30 (normal-style database): the
        largest hand/forearm/head acceleration on turns 115 -> 98 m/s^2,
        strafe 120 -> 96, and the styles script's largest joint acceleration
        1.43 -> 1.17x the p99.9, with every foot and root metric unchanged.
        0: off.
    accel_limit: m/s^2; no joint of the shown pose accelerates harder
        (AccelerationLimiter, the tick's last stage). None: the data's 99.9th
        percentile (the database's; learned weights record their training
        database's). 0: off. The data itself goes past its p99.9 in 0.1% of
        its joint-frames (every run clip does, at a heel strike or a toe-off);
        played faithfully, the shipped scripts reach 0.91-1.32x it. The limit
        smooths those frames by millimetres.
    search_interval: seconds between searches (Holden: 0.1 s, every 6 frames).
    force_search_velocity, force_search_rotation: a change of desired velocity
        (m/s per s) or facing (rad/s) above these forces an immediate search.
    transition_margin: a search result must beat the continuation's cost by
        this much (feature units) to be taken.
    walk/run/side/back speeds: None = measured from the database.
    adjust_halflife: how fast the character's root is pulled to the simulation;
    adjust_max_ratio: the pull per second is at most this times the character's
        speed (no sliding while standing still);
    adjust_velocity: share of the velocity difference (simulation minus the
        character's root) added to that pull, within the same bound: the
        position pull alone does nothing while the character stands on the
        simulation but plays a slower clip (a reversal whose best match walks
        at 0.9 m/s for 1.15 asked). On the normal-style database, 1.0 (with
        clamp_distance 0.15 -> 0.1) took the strafe reversal from 0.62 to
        0.43 s and run's walk-to-run from 0.38 to 0.23 s; 0 is Holden's.
    clamp_distance, clamp_angle: bound between character and simulation
        (0.1 m; Holden's demo 0.15). The distance bound is soft from
        kernels.CLAMP_SOFT of it (half): the pull back grows smoothly with the
        excess, where Holden's hard clamp stopped the root's drift in one
        frame (the turns script's root hitches of 45-75 m/s^2; its root
        acceleration p99 went from 25 to 20 m/s^2, strafe's largest hips
        acceleration from 54 to 35).
    foot_lock: pin feet in contact with two-bone IK; unlock_radius: release a
        pinned foot when the animation foot drifts this far (0.6 m, Holden's
        demo 0.2: a release while the foot is still in contact is where the
        skating came from; on the normal-style database 0.3 -> 0.6 m took the
        turns script from 27.5 to 7.2 cm/s and run from 3.2 to 0.3, with the
        same responsiveness); foot_halflife: blend out of the lock. A
        locked foot that its leg can no longer reach is not dragged: it steps
        (kernels.foot_lock: lifted on an arc, planted again where the clip's
        foot is) and the pose reports it out of contact meanwhile (on
        the normal-style database turns went from 8.3 to 1.7 cm/s of skating,
        strafe from 70.5 to 3.1, with 3-20% of the clip's contact frames
        spent stepping, 46% in strafe, whose data has 3.4 s of side steps).
    """

    velocity_halflife: float = 0.1
    rotation_halflife: float = 0.1
    inertialize_halflife: float = 0.1
    search_interval: float = 0.1
    force_search_velocity: float = 30.0
    force_search_rotation: float = 30.0
    transition_margin: float = 0.01
    walk_speed: float | None = None
    run_speed: float | None = None
    side_speed: float | None = None
    back_speed: float | None = None
    adjust_halflife: float = 0.1
    adjust_max_ratio: float = 0.5
    adjust_velocity: float = 1.0
    adjust_rotation_halflife: float = 0.2
    adjust_rotation_max_ratio: float = 2.0
    clamp_distance: float = 0.1
    clamp_angle: float = 0.5 * np.pi
    foot_lock: bool = True
    unlock_radius: float = 0.6
    foot_halflife: float = 0.05
    inertialize_accel: float = 30.0
    accel_limit: float | None = None


# --------------------------------------------------------------- trajectory
def desired_velocity(move: np.ndarray, sim_rot: np.ndarray, speeds: tuple[float, float, float]) -> np.ndarray:
    """World desired velocity [3] from a world stick direction [2] (x, z): the
    stick is scaled per direction in character space (forward, side, back)."""
    fwd, side, back = speeds
    world = np.array([move[0], 0.0, move[1]])
    local = k.q.inv_rot(sim_rot, world)
    local = local * np.array([side, 0.0, fwd if local[2] > 0 else back])
    return k.q.rot(sim_rot, local)


def desired_rotation(current: np.ndarray, move: np.ndarray, facing) -> np.ndarray:
    """Facing goal: the strafe direction if given, else the movement direction,
    else keep the current goal."""
    d = facing if facing is not None else move
    if float(np.hypot(d[0], d[1])) < 1e-2:
        return current
    return k.q.from_angle_axis(float(np.arctan2(d[0], d[1])), UP.astype(np.float64))


class Simulation:
    """The simulated character: a point on the ground with a facing, moved by
    critically damped springs toward the desired velocity and facing."""

    def __init__(self, position=None, rotation=None):
        self.position = np.zeros(3) if position is None else np.asarray(position, np.float64).copy()
        self.velocity = np.zeros(3)
        self.acceleration = np.zeros(3)
        self.rotation = np.array([1.0, 0, 0, 0]) if rotation is None else np.asarray(rotation, np.float64).copy()
        self.angular_velocity = np.zeros(3)

    def update(self, v_goal, r_goal, cfg: RuntimeConfig, dt: float) -> None:
        v_goal, r_goal = np.asarray(v_goal, np.float64), np.asarray(r_goal, np.float64)
        self.position, self.velocity, self.acceleration = k.spring_position(
            self.position, self.velocity, self.acceleration, v_goal, cfg.velocity_halflife, dt)
        self.rotation, self.angular_velocity = k.spring_rotation(
            self.rotation, self.angular_velocity, r_goal, cfg.rotation_halflife, dt)

    def predict(self, v_goal, r_goal, cfg: RuntimeConfig, frames, fps: float):
        """Future positions [K,3] and rotations [K,4] at the given frame offsets."""
        times = np.asarray(frames, np.float64) / fps
        return k.sim_predict(self.position, self.velocity, self.acceleration, self.rotation,
                             self.angular_velocity, np.asarray(v_goal, np.float64),
                             np.asarray(r_goal, np.float64), cfg.velocity_halflife, cfg.rotation_halflife, times)


def trajectory_features(root_pos, root_rot, fut_pos, fut_rot) -> np.ndarray:
    """Raw trajectory features [4K]: future positions (x, z) then directions
    (x, z) in the space of the character root."""
    return k.trajectory_features(np.asarray(root_pos, np.float64), np.asarray(root_rot, np.float64),
                                 np.asarray(fut_pos, np.float64), np.asarray(fut_rot, np.float64))


# ----------------------------------------------------------- inertialization
def upper_body_levers(skeleton, feet) -> np.ndarray:
    """[J] per joint above the legs (spine, neck, head, arms), the longest bone
    path to any of its descendants (m): how far a rotation of that joint
    swings a hand or the head. 0 for the root, the hips and the legs (every
    joint on a path to a foot, and below it)."""
    parents = np.asarray(skeleton.parents)
    bone = np.linalg.norm(np.asarray(skeleton.offsets, np.float64), axis=-1)
    lever = np.zeros(len(parents))
    for j in range(len(parents) - 1, 0, -1):        # children after parents
        p = parents[j]
        if p >= 0:
            lever[p] = max(lever[p], lever[j] + bone[j])
    leg = np.zeros(len(parents), bool)
    for f in feet:                                  # a foot and every joint above it
        j = int(f)
        while j >= 0:
            leg[j] = True
            j = int(parents[j])
    below = np.zeros(len(parents), bool)
    below[np.asarray(feet, np.int64)] = True
    for j in range(len(parents)):                   # and below it (toes), parents before children
        if parents[j] >= 0 and below[parents[j]]:
            below[j] = True
    lever[leg | below] = 0.0
    return lever


class Inertializer:
    """Holds the displayed pose as (animation pose placed in the world) +
    decaying offsets. Joint 0 is the root, carried in world space through the
    transition frame: world = dst * inverse(src) * animation, where src is the
    root of the animation frame transitioned to and dst where the character
    stood at that moment. levers, accel: per joint, how far its rotation
    swings the body (m; 0: keep `halflife`); at a transition a joint's
    offsets get a halflife long enough that their decay starts no harder
    than accel (m/s^2) at that distance (kernels.offset_halflives)."""

    def __init__(self, num_joints: int, halflife: float = 0.1, levers=None, accel: float = 0.0):
        j = num_joints
        self.halflife = halflife
        self.levers = np.zeros(j) if levers is None else np.asarray(levers, np.float64)
        self.accel = float(accel)
        self.halflives = np.full(j, float(halflife))
        self.off_pos = np.zeros((j, 3))
        self.off_vel = np.zeros((j, 3))
        self.off_rot = np.tile([1.0, 0, 0, 0], (j, 1))
        self.off_avel = np.zeros((j, 3))
        self.src_pos, self.dst_pos = np.zeros(3), np.zeros(3)
        self.src_rot, self.dst_rot = np.array([1.0, 0, 0, 0]), np.array([1.0, 0, 0, 0])
        self.out_rot = np.tile([1.0, 0, 0, 0], (j, 1))
        self.out_pos = np.zeros((j, 3))
        self.out_vel = np.zeros((j, 3))
        self.out_avel = np.zeros((j, 3))

    def _state(self):
        return (self.src_pos, self.src_rot, self.dst_pos, self.dst_rot, self.off_pos, self.off_vel,
                self.off_rot, self.off_avel, self.out_pos, self.out_vel, self.out_rot, self.out_avel)

    def reset(self, rot, pos, vel, avel, root_pos=None, root_rot=None) -> None:
        """Show the animation pose as is, its root placed at root_pos/root_rot."""
        self.__init__(rot.shape[0], self.halflife, self.levers, self.accel)
        self.src_pos, self.src_rot = pos[0].astype(np.float64), rot[0].astype(np.float64)
        self.dst_pos = self.src_pos.copy() if root_pos is None else np.asarray(root_pos, np.float64).copy()
        self.dst_rot = self.src_rot.copy() if root_rot is None else np.asarray(root_rot, np.float64).copy()
        self.update(rot, pos, vel, avel, 0.0)

    def transition(self, rot, pos, vel, avel) -> None:
        """Switch to a new animation pose (the first frame of the destination):
        its root is placed where the character is now."""
        self.dst_pos, self.dst_rot = self.out_pos[0].copy(), self.out_rot[0].copy()
        self.src_pos, self.src_rot = pos[0].astype(np.float64), rot[0].astype(np.float64)
        k.inert_transition(rot, pos, vel, avel, *self._state())
        k.offset_halflives(self.off_pos, self.off_vel, self.off_rot, self.off_avel, self.levers, self.halflife,
                           self.accel, self.halflives)

    def update(self, rot, pos, vel, avel, dt: float) -> None:
        """Advance the offsets by dt and compose the displayed pose."""
        k.inert_update(rot, pos, vel, avel, *self._state(), self.halflives, dt)

    def adjust_root(self, new_pos, new_rot) -> None:
        """Move the displayed root, re-basing the transition frame so that the
        animation continues from there (Holden's inertialize_root_adjust)."""
        k.root_adjust(np.asarray(new_pos, np.float64), np.asarray(new_rot, np.float64), self.src_pos,
                      self.src_rot, self.dst_pos, self.dst_rot, self.off_pos, self.out_pos, self.out_rot)


def adjusted_root(char_pos, char_rot, char_vel, sim: Simulation, cfg: RuntimeConfig, dt: float):
    """Pull the character root (world velocity char_vel) toward the
    simulation (its position, and adjust_velocity of the velocity
    difference): at most adjust_max_ratio times the character's own speed (so
    a standing character does not slide), then clamp the distance and angle
    between the two."""
    return k.adjusted_root(char_pos, char_rot, np.asarray(char_vel, np.float64), sim.position, sim.rotation,
                           sim.velocity, cfg.adjust_halflife, cfg.adjust_max_ratio, cfg.adjust_velocity,
                           cfg.adjust_rotation_halflife, cfg.adjust_rotation_max_ratio, cfg.clamp_distance,
                           cfg.clamp_angle, dt)


# ----------------------------------------------------------------- foot lock
class FootLocks:
    """Pins each foot where its toe touched down while the animation says it is
    in contact, and releases it smoothly when the contact ends or the
    animation's toe drifts beyond unlock_radius (Holden's contact_update); the
    leg is bent onto it with two-bone IK and the ankle turned so the toe lands.
    A locked foot the leg can no longer reach steps (lifted and re-planted);
    before that, the pelvis comes down (at most kernels.PELVIS_DROP, on a
    spring; pelvis_drop=False: never) as far as stretched legs need. floor
    (m): no toe joint is shown below this height (a toe under it is lifted
    with the same IK; default: no floor). toe_pivot (rad): a locked foot its
    leg cannot reach first lifts its heel, turning about the planted toe by
    at most this angle, before it steps (kernels.pivot_ankle; 0: never)."""

    def __init__(self, parents, feet, toes, halflife: float = 0.1, unlock_radius: float = 0.2,
                 pelvis_drop: bool = True, floor: float = -np.inf, toe_pivot: float = 0.0):
        self.parents = np.asarray(parents, np.int64)
        self.feet = np.asarray(feet, np.int64)
        self.toes = np.asarray(toes, np.int64)
        self.halflife, self.unlock_radius = halflife, unlock_radius
        self.floor = float(floor)
        self.toe_pivot = float(toe_pivot)
        self.state = np.zeros((len(feet), 3), np.int64)     # in contact, locked, stepping
        self.age = np.zeros(len(feet))                       # s since each foot was pinned (settle)
        # point, target, position, velocity, off_pos, off_vel, step, shown position, shown velocity
        self.vec = np.zeros((len(feet), 9, 3))
        # the joint above both legs' hips (it comes down when stretched legs need it), drop, its velocity
        pelvis = {int(self.parents[self.parents[self.parents[f]]]) for f in self.feet}
        self.pelvis = np.array([pelvis.pop() if pelvis_drop and len(pelvis) == 1 else -1, 0.0, 0.0])

    def reset(self, rot, pos, contacts) -> None:
        """Start at the pose: feet in contact are locked where they stand."""
        _, gpos = quat.fk(rot, pos, self.parents)
        self.state[:] = 0
        self.age[:] = 0.0
        self.vec[:] = 0
        self.pelvis[1:] = 0
        for i, t in enumerate(self.toes):
            c = int(bool(contacts[i]))
            self.state[i] = (c, c, 0)
            self.vec[i, :3] = gpos[t]
            self.vec[i, 7] = gpos[t]

    @property
    def locked(self) -> np.ndarray:
        return self.state[:, 1] == 1

    def settle(self, toes, share: float, time_constant: float, dt: float, fps: float = 60.0) -> None:
        """Move each locked foot's pin horizontally toward `toes` [F, 3] (the
        animation's toes now) by `share` of the way per `fps` frame, less as
        the lock ages (x exp(-age / time_constant)); a foot not locked starts
        its age again. (The VR avatar's feet: controllers/vr/feet.py.)"""
        for i in range(len(self.toes)):
            if self.state[i, 1] != 1:
                self.age[i] = 0.0
                continue
            s = share * np.exp(-self.age[i] / max(time_constant, 1e-6))
            s = 1.0 - (1.0 - s) ** (dt * fps)          # per frame at `fps`, whatever the tick
            point = self.vec[i, 0]
            point[0] += s * (toes[i, 0] - point[0])
            point[2] += s * (toes[i, 2] - point[2])
            self.age[i] += dt

    @property
    def stepping(self) -> np.ndarray:
        """Feet let go while the animation still says contact (out of the leg's
        reach or beyond unlock_radius): lifted on their way to the animation's
        foot, and not in contact until planted again."""
        return self.state[:, 2] == 1

    def planted(self, contacts) -> np.ndarray:
        """The contacts the character shows: the animation's, less stepping feet."""
        return np.asarray(contacts, bool) & ~self.stepping

    @property
    def pelvis_drop(self) -> float:
        """How far (m) the pelvis is brought down now for the legs to reach their locked feet."""
        return float(self.pelvis[1])

    def apply(self, rot, pos, contacts, dt: float, source=None):
        """Locked feet for this tick's pose: returns (local rotations, local
        positions). source: (rotations, positions) of the clip's pose before
        inertialization, its root on the ground (a landing foot is pinned at
        its toe's height; default: the pose itself)."""
        fwd = k.q.rot(np.asarray(rot[0], np.float64), FWD64)     # numba: a tick's few microseconds
        src_rot, src_pos = (rot, pos) if source is None else source
        return k.apply_foot_locks(rot, pos, self.parents, self.feet, self.toes, np.asarray(contacts, np.bool_),
                                  self.state, self.vec, self.pelvis, fwd, self.unlock_radius, self.halflife, dt,
                                  np.asarray(src_rot, np.float64), np.asarray(src_pos, np.float64), self.floor,
                                  self.toe_pivot)


class AccelerationLimiter:
    """The last stage of a tick: no joint of the shown pose accelerates harder
    than `limit` (m/s^2, the second difference of its global position over
    the last three frames, as `anim.metrics.joint_accelerations` measures it).
    A pose that would is blended toward the pose that keeps the last two
    frames' local angular and linear velocities, by the largest share that
    stays within the limit (kernels.limit_acceleration); the difference is
    caught up over the next frames, at most `limit` at a time. 0 or None:
    off. The motion-matching controller takes the database's 99.9th
    percentile: the data's own sharpest 0.1% (a heel strike in a run) are
    smoothed to it, a few millimetres over a frame or two. It aims MARGIN
    under the limit: the pose is shown (and recorded) in float32, whose
    rounding (the metrics' FK of float32 poses too) moves a second difference
    by ~0.1 m/s^2 tens of metres from the origin.

    The drift is bounded: the limit may trail a candidate that jumps (and
    catches up), but never carries a joint further than `max_drift` (default
    MAX_DRIFT, m) from where the candidate puts it, or than it was on the last
    frame; past that the limit gives way (kernels.bound_drift). Without the
    bound, where the matched clips change faster than the limit allows (a
    small database, or the CMU takes on the CC rig: walks beside punches and
    swordplay) the pose keeps extrapolating away from the animation frame
    after frame: on that rig the
    circles script sent a toe 2.0 m up and the head down to 0.62 m, 0.40 m and
    1.21 m with the bound (BENCHMARKS.md, other_skeletons)."""

    MARGIN = 5e-3
    MAX_DRIFT = 0.15

    def __init__(self, parents, limit: float | None, iters: int = 12, max_drift: float | None = None,
                 body=None):
        """body: indices of the joints whose acceleration counts (default all;
        the motion-matching controller leaves out the skeleton's helper joints)."""
        self.parents = np.asarray(parents, np.int64)
        self.body = np.zeros(len(self.parents), np.bool_)
        self.body[np.arange(len(self.parents)) if body is None else np.asarray(body, np.int64)] = True
        self.limit = float(limit or 0.0)
        self.iters = int(iters)
        self.max_drift = float(self.MAX_DRIFT if max_drift is None else max_drift)
        self.drift = 0.0                    # the last frame's largest joint distance from the candidate
        self.cand_g = np.zeros((len(self.parents), 3))
        self.drift_bound = 0                # frames where max_drift overrode the limit
        n = len(self.parents)
        self.rot = np.zeros((2, n, 4))      # the last two shown poses (local)
        self.pos = np.zeros((2, n, 3))
        self.gpos = np.zeros((2, n, 3))     # and their global positions
        self.frames = 0
        self.limited = 0                    # frames where the candidate was changed
        self.share = 1.0                    # the last frame's share of the candidate

    def reset(self, rot, pos) -> None:
        """Start at rest at this pose."""
        _, g = quat.fk(np.asarray(rot, np.float64), np.asarray(pos, np.float64), self.parents)
        self.rot[:] = np.asarray(rot, np.float64)
        self.pos[:] = np.asarray(pos, np.float64)
        self.gpos[:] = g
        self.frames = self.limited = self.drift_bound = 0
        self.drift = 0.0
        self.cand_g = g.copy()              # the last candidate's global positions
        self.share = 1.0

    def apply(self, rot, pos, dt: float):
        """The pose to show (rot [J, 4], pos [J, 3]) for the candidate pose."""
        rot = np.asarray(rot, np.float64)
        pos = np.asarray(pos, np.float64)
        out_rot, out_pos, g = np.empty_like(rot), np.empty_like(pos), np.empty_like(pos)
        if self.limit > 0.0:
            limit = self.limit * (1.0 - self.MARGIN) * dt * dt
            s = k.limit_acceleration_of(rot, pos, self.parents, self.rot[0], self.pos[0], self.rot[1], self.pos[1],
                                        self.gpos[0], self.gpos[1], limit, self.iters, out_rot, out_pos, g,
                                        self.body)
            cand_g = None
            if s < 1.0 and self.max_drift > 0.0:
                _, cand_g = quat.fk(rot, pos, self.parents)
                jump = float(np.linalg.norm(cand_g - self.cand_g, axis=-1).max())
                s2, self.drift = k.bound_drift(rot, pos, self.parents, self.rot[0], self.pos[0], self.rot[1],
                                               self.pos[1], max(self.drift, jump), s, self.max_drift, self.iters,
                                               out_rot, out_pos, g)
                self.drift_bound += int(s2 > s)
                s = s2
            elif s >= 1.0:
                self.drift = 0.0
            self.cand_g = g.copy() if cand_g is None else cand_g
        else:
            s = 1.0
            out_rot[:], out_pos[:] = rot, pos
            _, g = quat.fk(rot, pos, self.parents)
        self.frames += 1
        self.limited += int(s < 1.0)
        self.share = float(s)
        self.rot[1], self.pos[1], self.gpos[1] = self.rot[0], self.pos[0], self.gpos[0]
        self.rot[0], self.pos[0], self.gpos[0] = out_rot, out_pos, g
        return out_rot, out_pos
