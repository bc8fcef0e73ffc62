"""The runtime pieces every kinematic controller shares (motion matching and
learned motion matching): desired trajectory from input, trajectory prediction,
pose inertialization with the root carried in world space, root adjustment
toward the simulation, and foot locking with two-bone IK.

After Holden's Motion-Matching demo (controller.cpp): plain functions over small
arrays and one mutable state object per piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anim import quat, spring
from anim.kinematics import two_bone_ik_pose

UP = np.array([0.0, 1.0, 0.0], np.float32)
FWD = np.array([0.0, 0.0, 1.0], np.float32)


@dataclass(frozen=True)
class RuntimeConfig:
    """Documented defaults (seconds, metres, m/s).

    velocity_halflife, rotation_halflife: springs of the simulated trajectory.
    inertialize_halflife: decay of transition offsets.
    search_interval: seconds between searches (Holden: 0.1 s, every 6 frames).
    force_search_velocity, force_search_rotation: a change of desired velocity
        (m/s per s) or facing (rad/s) above these forces an immediate search.
    transition_margin: a search result must beat the continuation's cost by
        this much (feature units) to be taken.
    walk/run/side/back speeds: None = measured from the database.
    adjust_halflife: how fast the character's root is pulled to the simulation;
    adjust_max_ratio: the pull per second is at most this times the character's
        speed (no sliding while standing still);
    clamp_distance, clamp_angle: hard bound between character and simulation.
    foot_lock: pin feet in contact with two-bone IK; unlock_radius: release a
        pinned foot when the animation foot drifts this far; foot_halflife:
        blend in and out of the lock.
    """

    velocity_halflife: float = 0.27
    rotation_halflife: float = 0.27
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
    adjust_rotation_halflife: float = 0.2
    adjust_rotation_max_ratio: float = 2.0
    clamp_distance: float = 0.15
    clamp_angle: float = 0.5 * np.pi
    foot_lock: bool = True
    unlock_radius: float = 0.2
    foot_halflife: float = 0.1


# --------------------------------------------------------------- trajectory
def desired_velocity(move: np.ndarray, sim_rot: np.ndarray, speeds: tuple[float, float, float]) -> np.ndarray:
    """World desired velocity [3] from a world stick direction [2] (x, z): the
    stick is scaled per direction in character space (forward, side, back)."""
    fwd, side, back = speeds
    world = np.array([move[0], 0.0, move[1]], np.float32)
    local = quat.inv_rot(sim_rot, world)
    local = local * np.array([side, 0.0, fwd if local[2] > 0 else back], np.float32)
    return quat.rot(sim_rot, local).astype(np.float32)


def desired_rotation(current: np.ndarray, move: np.ndarray, facing) -> np.ndarray:
    """Facing goal: the strafe direction if given, else the movement direction,
    else keep the current goal."""
    d = facing if facing is not None else move
    if float(np.hypot(d[0], d[1])) < 1e-2:
        return current
    return quat.from_angle_axis(np.arctan2(d[0], d[1]), UP).astype(np.float32)


@dataclass
class Simulation:
    """The simulated character: a point on the ground with a facing, moved by
    critically damped springs toward the desired velocity and facing."""

    position: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    acceleration: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    rotation: np.ndarray = field(default_factory=lambda: quat.identity())
    angular_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))

    def update(self, v_goal, r_goal, cfg: RuntimeConfig, dt: float) -> None:
        self.position, self.velocity, self.acceleration = spring.spring_character_update(
            self.position, self.velocity, self.acceleration, v_goal, cfg.velocity_halflife, dt)
        self.rotation, self.angular_velocity = spring.simulation_rotation_update(
            self.rotation, self.angular_velocity, r_goal, cfg.rotation_halflife, dt)
        self.rotation = quat.normalize(self.rotation)

    def predict(self, v_goal, r_goal, cfg: RuntimeConfig, frames, fps: float):
        """Future positions [K,3] and rotations [K,4] at the given frame offsets."""
        t = np.asarray(frames, np.float32)[:, None] / fps
        pos, _, _ = spring.spring_character_update(self.position, self.velocity, self.acceleration,
                                                   v_goal, cfg.velocity_halflife, t)
        rot, _ = spring.simulation_rotation_update(self.rotation, self.angular_velocity, r_goal,
                                                   cfg.rotation_halflife, t)
        return pos, rot


def trajectory_features(root_pos, root_rot, fut_pos, fut_rot) -> np.ndarray:
    """Raw trajectory features [4K]: future positions (x, z) then directions
    (x, z) in the space of the character root."""
    p = quat.inv_rot(root_rot, fut_pos - root_pos)[:, [0, 2]]
    d = quat.inv_rot(root_rot, quat.rot(fut_rot, FWD))[:, [0, 2]]
    return np.concatenate([p.ravel(), d.ravel()]).astype(np.float32)


# ----------------------------------------------------------- inertialization
@dataclass
class Inertializer:
    """Holds the displayed pose as (animation pose placed in the world) +
    decaying offsets. Joint 0 is the root, carried in world space through the
    transition frame (src: animation space, dst: world)."""

    num_joints: int
    halflife: float = 0.1

    def __post_init__(self):
        j = self.num_joints
        self.off_pos = np.zeros((j, 3), np.float32)
        self.off_vel = np.zeros((j, 3), np.float32)
        self.off_rot = quat.identity((j,))
        self.off_avel = np.zeros((j, 3), np.float32)
        self.src_pos = np.zeros(3, np.float32)
        self.src_rot = quat.identity()
        self.dst_pos = np.zeros(3, np.float32)
        self.dst_rot = quat.identity()
        self.out_rot = quat.identity((j,))
        self.out_pos = np.zeros((j, 3), np.float32)
        self.out_vel = np.zeros((j, 3), np.float32)
        self.out_avel = np.zeros((j, 3), np.float32)

    def reset(self, rot, pos, vel, avel, root_pos=None, root_rot=None) -> None:
        """Show the animation pose as is, its root placed at root_pos/root_rot."""
        self.off_pos[:] = 0
        self.off_vel[:] = 0
        self.off_rot[:] = quat.identity()
        self.off_avel[:] = 0
        self.src_pos, self.src_rot = pos[0].copy(), rot[0].copy()
        self.dst_pos = pos[0].copy() if root_pos is None else np.asarray(root_pos, np.float32)
        self.dst_rot = rot[0].copy() if root_rot is None else np.asarray(root_rot, np.float32)
        self.update(rot, pos, vel, avel, 0.0)

    def _to_world(self, rot, pos, vel, avel):
        r = quat.mul(self.dst_rot, quat.inv(self.src_rot))
        wp = quat.rot(r, pos[0] - self.src_pos) + self.dst_pos
        return quat.normalize(quat.mul(r, rot[0])), wp, quat.rot(r, vel[0]), quat.rot(r, avel[0])

    def transition(self, rot, pos, vel, avel) -> None:
        """Switch to a new animation pose (the first frame of the destination)."""
        # the destination's root is placed where the character is now
        self.dst_pos, self.dst_rot = self.out_pos[0].copy(), self.out_rot[0].copy()
        self.src_pos, self.src_rot = pos[0].copy(), rot[0].copy()
        wrot, wpos, wvel, wavel = self._to_world(rot, pos, vel, avel)
        src_q = np.concatenate([self.out_rot[:1], self.out_rot[1:]])
        dst_q = np.concatenate([wrot[None], rot[1:]])
        dst_x = np.concatenate([wpos[None], pos[1:]])
        dst_v = np.concatenate([wvel[None], vel[1:]])
        dst_w = np.concatenate([wavel[None], avel[1:]])
        self.off_pos, self.off_vel = spring.inertialize_transition(
            self.off_pos, self.off_vel, self.out_pos, self.out_vel, dst_x, dst_v)
        self.off_rot, self.off_avel = spring.inertialize_transition_quat(
            self.off_rot, self.off_avel, src_q, self.out_avel, dst_q, dst_w)

    def update(self, rot, pos, vel, avel, dt: float) -> None:
        """Advance the offsets by dt and compose the displayed pose."""
        wrot, wpos, wvel, wavel = self._to_world(rot, pos, vel, avel)
        in_q = np.concatenate([wrot[None], rot[1:]])
        in_x = np.concatenate([wpos[None], pos[1:]])
        in_v = np.concatenate([wvel[None], vel[1:]])
        in_w = np.concatenate([wavel[None], avel[1:]])
        self.out_pos, self.out_vel, self.off_pos, self.off_vel = spring.inertialize_update(
            self.off_pos, self.off_vel, in_x, in_v, self.halflife, dt)
        self.out_rot, self.out_avel, self.off_rot, self.off_avel = spring.inertialize_update_quat(
            self.off_rot, self.off_avel, in_q, in_w, self.halflife, dt)
        self.out_rot = quat.normalize(self.out_rot).astype(np.float32)

    def adjust_root(self, new_pos, new_rot) -> None:
        """Move the displayed root to new_pos/new_rot, re-basing the transition
        frame so that the animation continues from there (Holden's
        inertialize_root_adjust)."""
        diff = new_pos - self.out_pos[0]
        self.out_pos[0] = self.out_pos[0] + diff
        self.dst_pos = self.dst_pos + diff
        self.src_pos = self.src_pos + quat.rot(self.src_rot, quat.inv_rot(
            self.dst_rot, self.out_pos[0] - self.off_pos[0] - self.dst_pos))
        self.dst_pos = self.out_pos[0] - self.off_pos[0]
        self.off_pos[0] = 0
        rdiff = quat.normalize(quat.mul(new_rot, quat.inv(self.out_rot[0])))
        self.out_rot[0] = quat.mul(rdiff, self.out_rot[0])
        self.dst_rot = quat.normalize(quat.mul(rdiff, self.dst_rot))


def _damp_fraction(halflife, dt):
    return 1.0 - np.exp(-(0.69314718056 * dt) / (halflife + 1e-8))


def adjusted_root(char_pos, char_rot, char_speed, sim: Simulation, cfg: RuntimeConfig, dt: float):
    """Pull the character root toward the simulation: at most adjust_max_ratio
    times the character's own speed (so a standing character does not slide),
    then clamp the distance and angle between the two."""
    offset = sim.position - char_pos
    step = offset * _damp_fraction(cfg.adjust_halflife, dt)
    limit = cfg.adjust_max_ratio * char_speed * dt
    n = float(np.linalg.norm(step))
    if n > limit:
        step = step * (limit / max(n, 1e-8))
    pos = char_pos + step
    # rotation: same idea with the angular difference
    rdiff = quat.abs(quat.mul(sim.rotation, quat.inv(char_rot)))
    aa = quat.to_scaled_angle_axis(rdiff) * _damp_fraction(cfg.adjust_rotation_halflife, dt)
    ang_limit = cfg.adjust_rotation_max_ratio * char_speed * dt
    a = float(np.linalg.norm(aa))
    if a > ang_limit:
        aa = aa * (ang_limit / max(a, 1e-8))
    rot = quat.mul(quat.from_scaled_angle_axis(aa), char_rot)
    # clamping
    d = pos - sim.position
    dn = float(np.linalg.norm(d))
    if dn > cfg.clamp_distance:
        pos = sim.position + d * (cfg.clamp_distance / dn)
    rd = quat.abs(quat.mul(rot, quat.inv(sim.rotation)))
    aa = quat.to_scaled_angle_axis(rd)
    a = float(np.linalg.norm(aa))
    if a > cfg.clamp_angle:
        rot = quat.mul(quat.from_scaled_angle_axis(aa * (cfg.clamp_angle / a)), sim.rotation)
    return pos.astype(np.float32), quat.normalize(rot).astype(np.float32)


# ----------------------------------------------------------------- foot lock
@dataclass
class FootLock:
    """Pins a foot (its ankle joint) where it touched down while the animation
    says it is in contact, releases it smoothly (Holden's contact_update)."""

    halflife: float = 0.1
    unlock_radius: float = 0.2

    def __post_init__(self):
        self.state = False
        self.locked = False
        self.point = np.zeros(3, np.float32)
        self.target = np.zeros(3, np.float32)
        self.position = np.zeros(3, np.float32)
        self.velocity = np.zeros(3, np.float32)
        self.off_pos = np.zeros(3, np.float32)
        self.off_vel = np.zeros(3, np.float32)

    def reset(self, position, contact: bool) -> None:
        self.__post_init__()
        self.state = contact
        self.position = self.target = self.point = np.asarray(position, np.float32).copy()

    def update(self, input_pos, input_contact: bool, dt: float) -> np.ndarray:
        input_vel = (input_pos - self.target) / (dt + 1e-8)
        self.target = input_pos.copy()
        unlock = self.locked and float(np.linalg.norm(self.point - input_pos)) > self.unlock_radius
        if not self.state and input_contact:
            self.locked = True
            self.point = self.position.copy()
            self.point[1] = input_pos[1]
            self.off_pos, self.off_vel = spring.inertialize_transition(
                self.off_pos, self.off_vel, input_pos, input_vel, self.point, np.zeros(3, np.float32))
        elif (self.locked and self.state and not input_contact) or unlock:
            self.locked = False
            self.off_pos, self.off_vel = spring.inertialize_transition(
                self.off_pos, self.off_vel, self.point, np.zeros(3, np.float32), input_pos, input_vel)
        if self.locked:
            goal, goal_v = self.point, np.zeros(3, np.float32)
        else:
            goal, goal_v = input_pos, input_vel
        self.position, self.velocity, self.off_pos, self.off_vel = spring.inertialize_update(
            self.off_pos, self.off_vel, goal, goal_v, self.halflife, dt)
        self.state = input_contact
        return self.position


def apply_foot_locks(rot, pos, parents, feet, locks: list[FootLock], contacts, dt: float):
    """Move each foot (ankle) joint to its lock's position with two-bone IK.
    rot/pos: local pose with the root in world. Returns new local rotations."""
    _, gpos = quat.fk(rot, pos, parents)
    out = rot
    for lock, foot, contact in zip(locks, feet, contacts):
        target = lock.update(gpos[foot], bool(contact), dt)
        if float(np.linalg.norm(target - gpos[foot])) > 1e-4:
            out = two_bone_ik_pose(out, pos, parents, foot, target)
    return out
