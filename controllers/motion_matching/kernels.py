"""numba kernels of the per-tick runtime (see runtime.py for what each does and
why). Plain numpy on arrays of 3 or 4 numbers costs microseconds per call;
these keep one tick of a kinematic controller well under a millisecond.
State arrays are float64 and updated in place."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from anim import quat_nb as q

_NB = dict(cache=True, nogil=True)


@njit(**_NB)
def root_to_world(rot0, pos0, vel0, avel0, src_pos, src_rot, dst_pos, dst_rot):
    """Place an animation root (animation space) in the world through the
    transition frame: world = dst * inverse(src) * animation."""
    r = q.mul(dst_rot, q.inv(src_rot))
    wp = q.rot(r, pos0.astype(np.float64) - src_pos) + dst_pos
    return (q.normalize(q.mul(r, rot0.astype(np.float64))), wp,
            q.rot(r, vel0.astype(np.float64)), q.rot(r, avel0.astype(np.float64)))


@njit(**_NB)
def joint_input(j, wr, wp, wv, ww, rot, pos, vel, avel):
    """Joint j of an animation pose as float64; the root (j = 0) already placed in the world."""
    if j == 0:
        return wr, wp, wv, ww
    return (rot[j].astype(np.float64), pos[j].astype(np.float64), vel[j].astype(np.float64),
            avel[j].astype(np.float64))


@njit(**_NB)
def inert_transition(rot, pos, vel, avel, src_pos, src_rot, dst_pos, dst_rot,
                     off_pos, off_vel, off_rot, off_avel, out_pos, out_vel, out_rot, out_avel):
    """Offsets so that the destination pose + offsets equals the pose shown now."""
    wr, wp, wv, ww = root_to_world(rot[0], pos[0], vel[0], avel[0], src_pos, src_rot, dst_pos, dst_rot)
    for j in range(rot.shape[0]):
        dq, dx, dv, dw = joint_input(j, wr, wp, wv, ww, rot, pos, vel, avel)
        # the shown pose (out = source + offset) minus the destination: the new
        # offset makes destination + offset == what is shown now
        off_pos[j] = out_pos[j] - dx
        off_vel[j] = out_vel[j] - dv
        off_rot[j] = q.qabs(q.mul(out_rot[j], q.inv(dq)))
        off_avel[j] = out_avel[j] - dw


@njit(**_NB)
def offset_halflives(off_pos, off_vel, off_rot, off_avel, levers, halflife, accel, out):
    """Per joint, the halflife of its offsets' decay: `halflife`, or longer
    where the decay would start accelerating the joint's farthest descendant
    harder than `accel` (m/s^2): levers[j] (m; 0: the joint keeps
    `halflife`) times the offset's angular acceleration at the start of its
    decay, y^2 theta + 2 y w (y = 2 ln2 / h)."""
    out[:] = halflife
    if accel <= 0.0:
        return
    for j in range(off_rot.shape[0]):
        if levers[j] > 0.0:
            out[j] = max(halflife, bounded_halflife(levers[j] * q.length(q.to_scaled_angle_axis(off_rot[j])),
                                                    levers[j] * q.length(off_avel[j]), accel))


@njit(**_NB)
def bounded_halflife(x, v, accel):
    """The halflife (s) at which a critically damped decay of an offset x
    moving at v (magnitudes) starts accelerating at `accel`: its acceleration
    at the start is y^2 x + 2 y v (y = 2 ln2 / h) at most. 0 for no offset."""
    if x <= 1e-12 and v <= 1e-12:
        return 0.0
    if x <= 1e-12:
        y = accel / (2.0 * v)
    else:
        y = (-v + math.sqrt(v * v + x * accel)) / x
    return 1.3862943611198906 / y


@njit(**_NB)
def inert_update(rot, pos, vel, avel, src_pos, src_rot, dst_pos, dst_rot,
                 off_pos, off_vel, off_rot, off_avel, out_pos, out_vel, out_rot, out_avel, halflives, dt):
    """Decay the offsets (critically damped, exact in dt; joint j at
    halflives[j]) and compose the output."""
    wr, wp, wv, ww = root_to_world(rot[0], pos[0], vel[0], avel[0], src_pos, src_rot, dst_pos, dst_rot)
    for j in range(rot.shape[0]):
        y = q.halflife_to_damping(halflives[j]) / 2.0
        eydt = math.exp(-y * dt)
        iq, ix, iv, iw = joint_input(j, wr, wp, wv, ww, rot, pos, vel, avel)
        j1 = off_vel[j] + off_pos[j] * y
        off_pos[j] = eydt * (off_pos[j] + j1 * dt)
        off_vel[j] = eydt * (off_vel[j] - j1 * y * dt)
        r0 = q.to_scaled_angle_axis(off_rot[j])
        r1 = off_avel[j] + r0 * y
        off_rot[j] = q.from_scaled_angle_axis(eydt * (r0 + r1 * dt))
        off_avel[j] = eydt * (off_avel[j] - r1 * y * dt)
        out_pos[j] = ix + off_pos[j]
        out_vel[j] = iv + off_vel[j]
        out_rot[j] = q.normalize(q.mul(off_rot[j], iq))
        out_avel[j] = iw + off_avel[j]


@njit(**_NB)
def root_adjust(new_pos, new_rot, src_pos, src_rot, dst_pos, dst_rot, off_pos, out_pos, out_rot):
    """Move the displayed root to new_pos/new_rot and re-base the transition
    frame so the animation continues from there (Holden's inertialize_root_adjust).
    Updates src_pos, dst_pos, dst_rot, off_pos[0], out_pos[0], out_rot[0] in place.
    The position offset is folded into the transition frame (dst = the shown
    root), so the root's velocity offset still carries the old motion on and
    decays; re-basing on the shown root less its offset, as an earlier version did,
    dropped that offset every tick: the root's velocity jumped at every
    transition (-1.1 to +0.3 m/s in one frame on the strafe reversal)."""
    diff = new_pos - out_pos[0]
    out_pos[0] = out_pos[0] + diff
    dst_pos[:] = dst_pos + diff
    src_pos[:] = src_pos + q.rot(src_rot, q.inv_rot(dst_rot, out_pos[0] - off_pos[0] - dst_pos))
    dst_pos[:] = out_pos[0]
    off_pos[0] = 0.0
    rdiff = q.normalize(q.mul(new_rot, q.inv(out_rot[0])))
    out_rot[0] = q.mul(rdiff, out_rot[0])
    dst_rot[:] = q.normalize(q.mul(rdiff, dst_rot))


@njit(**_NB)
def spring_position(x, v, a, v_goal, halflife, t):
    """Holden's spring_character_update: exact after time t."""
    y = q.halflife_to_damping(halflife) / 2.0
    j0 = v - v_goal
    j1 = a + j0 * y
    eydt = math.exp(-y * t)
    x2 = eydt * (((-j1) / (y * y)) + ((-j0 - j1 * t) / y)) + (j1 / (y * y)) + j0 / y + v_goal * t + x
    v2 = eydt * (j0 + j1 * t) + v_goal
    a2 = eydt * (a - j1 * y * t)
    return x2, v2, a2


@njit(**_NB)
def spring_rotation(r, w, r_goal, halflife, t):
    y = q.halflife_to_damping(halflife) / 2.0
    j0 = q.to_scaled_angle_axis(q.qabs(q.mul(r, q.inv(r_goal))))
    j1 = w + j0 * y
    eydt = math.exp(-y * t)
    r2 = q.normalize(q.mul(q.from_scaled_angle_axis(eydt * (j0 + j1 * t)), r_goal))
    return r2, eydt * (w - j1 * y * t)


@njit(**_NB)
def sim_predict(x, v, a, r, w, v_goal, r_goal, vhl, rhl, times):
    k = times.shape[0]
    out_p = np.empty((k, 3))
    out_r = np.empty((k, 4))
    for i in range(k):
        out_p[i] = spring_position(x, v, a, v_goal, vhl, times[i])[0]
        out_r[i] = spring_rotation(r, w, r_goal, rhl, times[i])[0]
    return out_p, out_r


@njit(**_NB)
def trajectory_features(root_pos, root_rot, fut_pos, fut_rot):
    """[4K]: future (x, z) positions then (x, z) facing directions, in the root's space."""
    k = fut_pos.shape[0]
    out = np.empty(4 * k)
    fwd = np.array([0.0, 0.0, 1.0])
    for i in range(k):
        p = q.inv_rot(root_rot, fut_pos[i] - root_pos)
        d = q.inv_rot(root_rot, q.rot(fut_rot[i], fwd))
        out[2 * i] = p[0]
        out[2 * i + 1] = p[2]
        out[2 * k + 2 * i] = d[0]
        out[2 * k + 2 * i + 1] = d[2]
    return out


@njit(**_NB)
def adjusted_root(char_pos, char_rot, char_vel, sim_pos, sim_rot, sim_vel, halflife, max_ratio, vel_share,
                  rot_halflife, rot_max_ratio, clamp_distance, clamp_angle, dt):
    """Pull the character root toward the simulation's position (and
    vel_share of the velocity difference), by at most max_ratio times its own
    speed (no sliding while standing), then clamp distance and angle."""
    frac = 1.0 - math.exp(-(0.69314718056 * dt) / (halflife + 1e-8))
    step = (sim_pos - char_pos) * frac + (sim_vel - char_vel) * (vel_share * dt)
    char_speed = q.length(char_vel)
    limit = max_ratio * char_speed * dt
    n = q.length(step)
    if n > limit:
        step = step * (limit / max(n, 1e-8))
    pos = char_pos + step
    aa = q.to_scaled_angle_axis(q.mul(sim_rot, q.inv(char_rot)))
    aa = aa * (1.0 - math.exp(-(0.69314718056 * dt) / (rot_halflife + 1e-8)))
    ang_limit = rot_max_ratio * char_speed * dt
    a = q.length(aa)
    if a > ang_limit:
        aa = aa * (ang_limit / max(a, 1e-8))
    r = q.mul(q.from_scaled_angle_axis(aa), char_rot)
    d = pos - sim_pos
    dn = q.length(d)
    soft = CLAMP_SOFT * clamp_distance
    if dn > soft:
        # a soft limit: the pull back grows smoothly with the excess (the hard
        # clamp changed the root's velocity in one frame: 45-75 m/s^2 hitches)
        pos = sim_pos + d * (soft_limit(dn, soft, clamp_distance) / dn)
    aa = q.to_scaled_angle_axis(q.mul(r, q.inv(sim_rot)))
    a = q.length(aa)
    if a > clamp_angle:
        r = q.mul(q.from_scaled_angle_axis(aa * (clamp_angle / a)), sim_rot)
    return pos, q.normalize(r)


@njit(**_NB)
def soft_limit(x, soft, top):
    """x unchanged up to `soft`, then approaching `top` exponentially (slope 1
    at `soft`, never past `top`): a limit that does not stop a motion dead."""
    if x <= soft:
        return x
    if top - soft <= 1e-9:
        return top
    return soft + (top - soft) * (1.0 - math.exp(-(x - soft) / (top - soft)))


@njit(**_NB)
def fk_chain(lrot, lpos, parents, end):
    """Global rotations and positions of joints 0..end (parents before children)."""
    grot = np.empty((end + 1, 4))
    gpos = np.empty((end + 1, 3))
    for j in range(end + 1):
        p = parents[j]
        if p < 0:
            grot[j] = lrot[j]
            gpos[j] = lpos[j]
        else:
            grot[j] = q.mul(grot[p], lrot[j].astype(np.float64))
            gpos[j] = gpos[p] + q.rot(grot[p], lpos[j].astype(np.float64))
    return grot, gpos


CLAMP_SOFT = 0.5   # share of clamp_distance where adjusted_root's soft limit starts
SOFT_IK = 0.97      # share of the reach where two_bone_ik's soft limit starts
REACH_SLACK = 0.015  # m: a locked foot is let go when its leg would have to reach this much farther
                     # than both the animation's own leg and SOFT_IK of the reach (else it is dragged;
                     # with the release's pull bounded by RELEASE_ACCEL: 0.03 left 80% of
                     # strafe's skating in feet dragged at the soft IK limit; 0.01 stepped 5% of the
                     # circles' contact frames; 0.08 left turns at 2.7 cm/s)
REPLANT = 0.015     # m: a foot let go while still in contact is planted again within this of the animation's
STEP_LIFT = (0.3, 0.05)   # a foot let go while in contact is lifted on an arc (sin of the share of the
                          # way covered) as high as 0.3 x the way, at most 5 cm: it steps, not slides
STEP_HALFLIFE = 2.0       # x halflife: the stepping foot's catch-up (bounds its acceleration)
BEND_PLANE_SIN = 0.1  # two_bone_ik: below this sine between thigh and hip-to-ankle (a knee bent under
                      # ~12 degrees) the bend plane turns toward the character's forward
PIVOT_SOFT = 0.02   # m: a heel-off (pivot_ankle) starts this far short of where the IK still reaches
                    # exactly (SOFT_IK of the leg, or the animation's own leg if longer)
PELVIS_DROP = 0.05  # m: the pelvis comes down at most this much so that stretched legs reach their
                    # locked feet (people lower the hips in a long stride) instead of dragging them
RELEASE_ACCEL = 60.0  # m/s^2: a released foot's spring is slowed (a longer halflife) so that its
                      # pull toward the animation's foot starts no harder than this (a foot released
                      # 35 cm from it on the 0.05 s lock halflife pulled at 260 m/s^2: a knee spike)
LAND_HEIGHT = 0.03  # m: a foot whose clip says contact lands only once the shown toe is within this
                    # of the clip's own toe height (a transition's offsets held feet 11-18 cm up)
LAND_SPEED = 1.5   # m/s: a foot locked slower than this stops at once (foot_lock): 1.5 m/s in one
                    # frame is 90 m/s^2, under the database's p99.9 joint acceleration (109)


@njit(**_NB)
def two_bone_ik(lrot, lpos, parents, end, target, fwd, max_extension):
    """Rotate the grandparent (hip) and parent (knee) of `end` so that it
    reaches `target` (clamped to max_extension of the chain's length), bending
    in the chain's plane; a straight chain bends toward `fwd`. In place on
    lrot. A nearly straight chain bends in a plane between its own and `fwd`'s,
    where the triangle's angles are not exact: a second pass, from the now
    bent chain, lands it."""
    if _two_bone_ik_once(lrot, lpos, parents, end, target, fwd, max_extension) < 1.0:
        _two_bone_ik_once(lrot, lpos, parents, end, target, fwd, max_extension)


@njit(**_NB)
def _two_bone_ik_once(lrot, lpos, parents, end, target, fwd, max_extension):
    """One pass of two_bone_ik; returns the weight of the chain's own bend plane (1: exact)."""
    b_i = parents[end]
    a_i = parents[b_i]
    grot, gpos = fk_chain(lrot, lpos, parents, end)
    a, b, c = gpos[a_i], gpos[b_i], gpos[end]
    lab = q.length(b - a)
    lcb = q.length(c - b)
    t = target.astype(np.float64)
    lat = q.length(t - a)
    lat = max(lat, abs(lab - lcb) + 1e-4)
    # soft limit (Nicholas' "soft IK"): past SOFT_IK of the reach the chain
    # approaches max_extension exponentially instead of stopping dead, so the
    # knee's speed stays bounded as the target goes out of reach
    # the limit starts no nearer than the chain's own extension: a chain the
    # animation stretched past SOFT_IK is not pulled in when the target barely
    # moves (the IK applied or not then changed the knee by centimetres: knee
    # spikes of 300 m/s^2 on a straight swing leg)
    top = max_extension * (lab + lcb)
    lat = soft_limit(lat, max(SOFT_IK * top, min(q.length(c - a), top)), top)
    ac = q.unit(c - a)
    ab = q.unit(b - a)
    ac_ab_0 = math.acos(min(max(q.dot3(ac, ab), -1.0), 1.0))
    ba_bc_0 = math.acos(min(max(q.dot3(q.unit(a - b), q.unit(c - b)), -1.0), 1.0))
    ac_at_0 = math.acos(min(max(q.dot3(ac, q.unit(t - a)), -1.0), 1.0))
    ac_ab_1 = math.acos(min(max((lcb * lcb - lab * lab - lat * lat) / (-2.0 * lab * lat), -1.0), 1.0))
    ba_bc_1 = math.acos(min(max((lat * lat - lab * lab - lcb * lcb) / (-2.0 * lab * lcb), -1.0), 1.0))
    # the bend plane: the leg's own, but toward `fwd` as the leg straightens (a
    # straight or over-straight leg's plane is noise: it flipped the knee)
    axis0 = q.cross(c - a, b - a)
    axis_f = q.cross(c - a, fwd)
    if q.length(axis_f) < 1e-9:
        axis_f = axis0
    sin_ab = q.length(axis0) / max(q.length(c - a) * lab, 1e-9)
    w = 0.0
    if q.length(axis0) < 1e-9 or q.dot3(axis0, axis_f) < 0.0:
        axis0 = q.unit(axis_f)
    else:
        w = min(sin_ab / BEND_PLANE_SIN, 1.0)
        axis0 = q.unit(w * q.unit(axis0) + (1.0 - w) * q.unit(axis_f))
    axis1 = q.cross(c - a, t - a)
    if q.length(axis1) < 1e-9:
        axis1 = axis0
    axis1 = q.unit(axis1)
    r0 = q.from_angle_axis(ac_ab_1 - ac_ab_0, q.inv_rot(grot[a_i], axis0))
    r1 = q.from_angle_axis(ba_bc_1 - ba_bc_0, q.inv_rot(grot[b_i], axis0))
    r2 = q.from_angle_axis(ac_at_0, q.inv_rot(grot[a_i], axis1))
    lrot[a_i] = q.normalize(q.mul(lrot[a_i].astype(np.float64), q.mul(r2, r0)))
    lrot[b_i] = q.normalize(q.mul(lrot[b_i].astype(np.float64), r1))
    return w


@njit(**_NB)
def decay_spring(x, v, halflife, dt):
    """Holden's decay_spring_damper_exact: x and its velocity v decay to 0,
    critically damped, exact in dt (scalars or arrays)."""
    y = q.halflife_to_damping(halflife) / 2.0
    j1 = v + x * y
    eydt = math.exp(-y * dt)
    return eydt * (x + j1 * dt), eydt * (v - j1 * y * dt)


@njit(**_NB)
def release_halflife(distance):
    """The halflife (s) at which a critically damped spring let go `distance`
    (m) from its goal starts pulling at RELEASE_ACCEL: y^2 x = a, y = 2 ln2 / h."""
    return bounded_halflife(distance, 0.0, RELEASE_ACCEL)


@njit(**_NB)
def foot_lock(state, point, target, position, velocity, off_pos, off_vel, step, input_pos, input_contact,
              unlock_radius, halflife, dt, out_of_reach, shown_pos, shown_vel, ground):
    """Holden's contact_update, with re-planting. state: int64[3] (in contact,
    locked, stepping); the vectors are updated in place; returns the foot
    position to reach.

    A locked foot is let go when the animation's contact ends, when the
    animation's toe drifts beyond unlock_radius, or when the leg cannot reach
    it (out_of_reach, from apply_foot_locks). In the two last cases the
    animation still says contact: the foot then *steps* (state[2]): it is
    lifted while it catches up with the animation's foot (STEP_LIFT) and
    planted again where it arrives (REPLANT), so that it is never dragged
    along the ground. A step runs until the foot has caught up (if the
    animation lands the foot meanwhile, it is planted on arrival), so that its
    lift and its spring never change mid-way. The controller reports a
    stepping foot as not in contact. step[0]: the horizontal way the step
    started with; step[1]: the halflife of the foot's spring since it last
    landed or was let go (the lock's; twice that for a step; longer for a
    foot let go far from the animation's, or landing high above its clip's
    toe: its pull starts at most at RELEASE_ACCEL). shown_pos,
    shown_vel: where the foot was last shown and how fast it moved (the IK
    may not have reached the lock: a foot at the end of its leg's reach is
    dragged); a released foot starts from there. ground: the height of the
    clip's own toe (the pose before inertialization): a foot lands at that
    height, not at the shown toe's, which a transition's offsets can hold up
    in the air (feet were pinned 11-18 cm above the ground for up to 1.6 s)."""
    input_vel = (input_pos - target) / (dt + 1e-8)
    target[:] = input_pos
    locked = state[1] == 1
    release = locked and input_contact and (out_of_reach or q.length(point - input_pos) > unlock_radius)
    zero = np.zeros(3)
    caught_up = math.hypot(off_pos[0], off_pos[2]) < REPLANT and abs(off_pos[1]) < REPLANT
    if state[2] == 1 and caught_up and not input_contact:
        state[2] = 0                       # the step ended as the animation lifted the foot anyway
    low = input_pos[1] - ground <= LAND_HEIGHT
    replant = state[2] == 1 and input_contact and caught_up and low
    landing = state[0] == 0 and input_contact and state[2] == 0
    if landing and not low:
        # the clip's foot is down but a transition's offsets still hold the
        # animation's foot up: it is not planted in the air; it follows the
        # animation down (reported not in contact) and lands on arrival
        state[2] = 1
        step[0] = 0.0
    elif landing or replant:
        # the foot lands: pinned where it is shown, at the clip's toe height
        # (at most LAND_HEIGHT below: the lock's spring brings it down).
        # Unlike Holden's contact_update, a landing foot slower than LAND_SPEED
        # stops at once: no velocity offset carries it on (contacts admit feet
        # still moving at up to the database's contact_speed, and a carried
        # velocity slid them on for ~6 frames: most of the skating left in
        # locked feet). A faster one (a transition landed it mid-swing) eases
        # to rest as in Holden's, which keeps its acceleration bounded.
        state[1] = 1
        state[2] = 0
        point[:] = position
        point[1] = min(input_pos[1], ground)
        off_pos[:] = position - point
        if math.hypot(velocity[0], velocity[2]) > LAND_SPEED:
            off_vel[:] = velocity          # a transition landed it mid-swing: ease it to rest
        else:
            off_vel[:] = zero
        step[1] = max(halflife, release_halflife(abs(off_pos[1])))
    elif (locked and state[0] == 1 and not input_contact) or release:
        state[1] = 0
        state[2] = 1 if release else 0
        # the offset is taken against the animation's foot of the previous
        # frame: the spring's step below then carries it through this frame's
        # motion (taken against this frame's, the shown foot jumped by a frame
        # of the animation's foot speed the other way: 350 m/s^2 spikes)
        prev_input = input_pos - input_vel * dt
        if release:
            off_pos[:] = shown_pos - prev_input
            off_vel[:] = shown_vel - input_vel
        else:
            off_pos[:] = off_pos + point - prev_input
            off_vel[:] = off_vel - input_vel
        step[0] = math.hypot(off_pos[0], off_pos[2])
        base = halflife * (STEP_HALFLIFE if release else 1.0)
        step[1] = max(base, release_halflife(q.length(off_pos)))
    if state[1] == 1:
        goal, goal_v = point.copy(), zero
    else:
        goal, goal_v = input_pos.copy(), input_vel
    p, v = decay_spring(off_pos, off_vel, step[1] if step[1] > 0.0 else halflife, dt)
    off_pos[:] = p
    off_vel[:] = v
    position[:] = goal + off_pos
    velocity[:] = goal_v + off_vel
    state[0] = 1 if input_contact else 0
    out = position.copy()
    if state[2] == 1 and step[0] > REPLANT:
        # the arc ends where the foot is planted (within REPLANT), so it lands at height 0
        done = min(max(1.0 - (math.hypot(off_pos[0], off_pos[2]) - REPLANT) / (step[0] - REPLANT), 0.0), 1.0)
        out[1] += min(STEP_LIFT[0] * step[0], STEP_LIFT[1]) * math.sin(math.pi * done)
    return out


@njit(**_NB)
def between(a, b):
    """Shortest rotation taking direction a to direction b."""
    a = q.unit(a)
    b = q.unit(b)
    c = q.cross(a, b)
    w = 1.0 + q.dot3(a, b)
    if w < 1e-8:
        return np.array([1.0, 0.0, 0.0, 0.0])   # opposite: leave it (never happens in a lock step)
    return q.normalize(np.array([w, c[0], c[1], c[2]]))


@njit(**_NB)
def leg_to_lock(gpos, parents, f, t, v):
    """For a locked foot (joint f, toe t, lock vectors v): the vector from its
    hip to where the ankle must be for the toe to sit on the lock, the leg's
    length, and how far the animation's own leg reaches."""
    kn = parents[f]
    hip = parents[kn]
    top = q.length(gpos[kn] - gpos[hip]) + q.length(gpos[f] - gpos[kn])
    return v[0] + v[4] + gpos[f] - gpos[t] - gpos[hip], top, q.length(gpos[f] - gpos[hip])


@njit(**_NB)
def pivot_ankle(toe, ankle_off, hip, reach, max_angle, soft=-1.0):
    """Heel-off: where the ankle goes when the foot turns about its planted
    toe so that the leg reaches it. toe: the toe's goal; ankle_off: ankle
    minus toe as the animation has the foot; hip: the leg's top joint;
    reach: the farthest the ankle may be from the hip. The distance is
    soft-limited (soft_limit) from `soft` (default PIVOT_SOFT short of
    reach): the heel starts to rise smoothly, as a turn that starts dead
    puts a kink in the knee's path. The foot turns in
    the plane of its own direction and the hip's, toward the hip, at most
    by max_angle (rad). Returns (ankle goal, reached): reached False when
    the turn it needs is beyond max_angle (the ankle goal is then the one
    at max_angle)."""
    lf = q.length(ankle_off)
    w = hip - toe
    dist = q.length(w)
    d0 = q.length(toe + ankle_off - hip)
    soft = reach - PIVOT_SOFT if soft < 0.0 else min(soft, reach)
    if lf < 1e-6 or dist < 1e-6 or d0 <= soft:
        return toe + ankle_off, True
    want = soft_limit(d0, soft, reach)
    u = ankle_off / lf
    w = w / dist
    phi0 = math.acos(min(max(q.dot3(u, w), -1.0), 1.0))      # foot direction to hip direction
    # the angle between the foot's direction and the hip's at which the
    # hip is `want` from the ankle (law of cosines); 0 when even that is short
    c = (lf * lf + dist * dist - want * want) / (2.0 * lf * dist)
    phi = math.acos(min(max(c, -1.0), 1.0))
    turn = max(phi0 - phi, 0.0)
    reached = c <= 1.0 and turn <= max_angle
    turn = min(turn, max_angle)
    if phi0 < 1e-6 or turn <= 0.0:
        return toe + ankle_off, reached
    perp = w - u * math.cos(phi0)          # u turned toward w by `turn`, in their plane
    perp = perp / max(q.length(perp), 1e-12)
    d = u * math.cos(turn) + perp * math.sin(turn)
    return toe + d * lf, reached


@njit(**_NB)
def pelvis_drop_need(d, top):
    """How far (m, 0..PELVIS_DROP) the pelvis must come down so that an ankle
    goal d (from leg_to_lock) is within SOFT_IK of the leg's length `top`."""
    reach = SOFT_IK * top
    h2 = d[0] * d[0] + d[2] * d[2]
    if d[1] >= 0.0 or d[1] * d[1] + h2 <= reach * reach:
        return 0.0
    if h2 >= reach * reach:
        return PELVIS_DROP
    return min(max(-d[1] - math.sqrt(reach * reach - h2), 0.0), PELVIS_DROP)


@njit(**_NB)
def apply_foot_locks(lrot, lpos, parents, feet, toes, contacts, locks_state, locks_vec, pelvis, fwd,
                     unlock_radius, halflife, dt, src_rot, src_pos, floor=-np.inf, toe_pivot=0.0):
    """All feet: update each lock from the animation's toe position and contact
    (contacts are defined on the toes), move the ankle by the toe's correction
    with two-bone IK of the leg, then turn the ankle so the toe lands on its
    target. locks_vec: [F, 9, 3] (point, target, position, velocity, off_pos,
    off_vel, step, shown position, shown velocity). A locked foot whose leg
    would have to stretch REACH_SLACK beyond what the animation's leg and the
    soft IK limit give is let go (it steps, see foot_lock). pelvis: float64[3]
    (joint, drop, drop velocity): before that, the pelvis comes down (at most
    PELVIS_DROP, on a spring of `halflife`) as far as stretched legs need to
    reach their locked feet; joint < 0: never. src_rot, src_pos: the clip's
    pose before inertialization (a landing foot is pinned at its toe's
    height). floor: the lowest height of a toe joint (m): a toe goal below it,
    locked or not, is lifted to it (the leg bends with the same IK), so no
    foot is shown under the floor; -inf: no floor. toe_pivot (rad): a
    locked foot out of its leg's reach first turns about its planted toe,
    heel up, by at most this angle (pivot_ankle), and is let go only when
    that does not reach either; 0: no pivot. Returns new local rotations
    and positions."""
    out = lrot.astype(np.float64).copy()
    pos = lpos.astype(np.float64).copy()
    nf = feet.shape[0]
    anim_toe = np.empty((nf, 3))
    goal_drop = 0.0
    grot = np.empty((0, 4))
    ground = np.full(nf, np.inf)
    for i in range(nf):
        if contacts[i] and locks_state[i, 1] == 0:     # only a foot not yet locked can land
            _, sgpos = fk_chain(src_rot, src_pos, parents, toes[i])
            ground[i] = sgpos[toes[i], 1]
        grot, gpos = fk_chain(out, pos, parents, toes[i])
        anim_toe[i] = gpos[toes[i]]
        if locks_state[i, 1] == 1:
            d, top, _ = leg_to_lock(gpos, parents, feet[i], toes[i], locks_vec[i])
            goal_drop = max(goal_drop, pelvis_drop_need(d, top))
    pj = int(pelvis[0])
    if pj >= 0:
        x, v = decay_spring(pelvis[1] - goal_drop, pelvis[2], halflife, dt)
        pelvis[1], pelvis[2] = x + goal_drop, v
        if goal_drop == 0.0 and pelvis[1] < 1e-5 and abs(pelvis[2]) < 1e-3:
            pelvis[1] = 0.0                # back up: no IK for a drop nobody sees
            pelvis[2] = 0.0
        down = np.array([0.0, -pelvis[1], 0.0])
        pp = parents[pj]
        if pp >= 0:                        # the first loop's chains hold the pelvis' parent
            down = q.inv_rot(grot[pp], down)
        pos[pj] += down
    for i in range(nf):
        f, t = feet[i], toes[i]
        grot, gpos = fk_chain(out, pos, parents, t)
        v = locks_vec[i]
        far = False
        hip = parents[parents[f]]
        own = reach = 0.0
        if locks_state[i, 1] == 1 or toe_pivot > 0.0:     # (a foot landing now may pivot too)
            d, top, own = leg_to_lock(gpos, parents, f, t, v)
            # the farthest the IK takes the ankle exactly: its soft limit starts there
            reach = max(own, SOFT_IK * top)
            if locks_state[i, 1] == 1:
                far = q.length(d) > reach + REACH_SLACK
                if far and toe_pivot > 0.0:
                    far = not pivot_ankle(v[0] + v[4], gpos[f] - gpos[t], gpos[hip], reach, toe_pivot,
                                          max(reach - PIVOT_SOFT, own))[1]
        goal = foot_lock(locks_state[i], v[0], v[1], v[2], v[3], v[4], v[5], v[6], anim_toe[i], contacts[i],
                         unlock_radius, halflife, dt, far, v[7], v[8], ground[i])
        if goal[1] < floor:
            goal[1] = floor
        if q.length(goal - gpos[t]) > 1e-4:
            ankle = gpos[f] + (goal - gpos[t])
            if toe_pivot > 0.0 and locks_state[i, 1] == 1:
                # a leg the animation itself stretches is not bent short of it
                ankle = pivot_ankle(goal, gpos[f] - gpos[t], gpos[hip], reach, toe_pivot,
                                    max(reach - PIVOT_SOFT, own))[0]
            two_bone_ik(out, pos, parents, f, ankle, fwd, 0.999)
            grot, gpos = fk_chain(out, pos, parents, t)
            r = between(gpos[t] - gpos[f], goal - gpos[f])
            p = parents[f]
            out[f] = q.normalize(q.mul(q.inv(grot[p]), q.mul(r, grot[f])))
            grot, gpos = fk_chain(out, pos, parents, t)
        v[8] = (gpos[t] - v[7]) / (dt + 1e-8)
        v[7] = gpos[t]
    return out, pos


@njit(**_NB)
def _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, s, out_rot, out_pos, gpos):
    """out = ext blended toward cand by s (nlerp of rotations on the nearer
    hemisphere, lerp of positions); gpos: its global joint positions."""
    n = len(parents)
    grot = np.empty((n, 4))
    for j in range(n):
        a, b = ext_rot[j], cand_rot[j]
        d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]
        if s >= 1.0:                                 # the candidate itself, bit for bit
            out_rot[j] = b
            out_pos[j] = cand_pos[j]
        else:
            sg = 1.0 if d >= 0.0 else -1.0
            out_rot[j] = q.normalize((1.0 - s) * a + s * sg * b)
            out_pos[j] = (1.0 - s) * ext_pos[j] + s * cand_pos[j]
        p = parents[j]
        if p < 0:
            grot[j] = out_rot[j]
            gpos[j] = out_pos[j]
        else:
            grot[j] = q.mul(grot[p], out_rot[j])
            gpos[j] = gpos[p] + q.rot(grot[p], out_pos[j])


@njit(**_NB)
def _largest_second_difference(gpos, g1, g2, body):
    m = 0.0
    for j in range(len(gpos)):
        if not body[j]:
            continue
        x = gpos[j, 0] - 2.0 * g1[j, 0] + g2[j, 0]
        y = gpos[j, 1] - 2.0 * g1[j, 1] + g2[j, 1]
        z = gpos[j, 2] - 2.0 * g1[j, 2] + g2[j, 2]
        m = max(m, x * x + y * y + z * z)
    return math.sqrt(m)


@njit(cache=True)
def _extrapolate(rot1, pos1, rot2, pos2):
    """The pose that keeps the last two frames' local angular and linear
    velocities: rot1 (rot2^-1 rot1) and 2 pos1 - pos2, per joint."""
    n = rot1.shape[0]
    ext_rot = np.empty((n, 4))
    ext_pos = np.empty((n, 3))
    for j in range(n):
        ext_rot[j] = q.normalize(q.mul(rot1[j], q.mul(q.inv(rot2[j]), rot1[j])))
        ext_pos[j] = 2.0 * pos1[j] - pos2[j]
    return ext_rot, ext_pos


@njit(**_NB)
def limit_acceleration(cand_rot, cand_pos, parents, rot1, pos1, rot2, pos2, g1, g2, limit, iters,
                       out_rot, out_pos, gpos):
    """limit_acceleration_of over every joint."""
    return limit_acceleration_of(cand_rot, cand_pos, parents, rot1, pos1, rot2, pos2, g1, g2, limit, iters,
                                 out_rot, out_pos, gpos, np.ones(len(parents), np.bool_))


@njit(**_NB)
def limit_acceleration_of(cand_rot, cand_pos, parents, rot1, pos1, rot2, pos2, g1, g2, limit, iters,
                          out_rot, out_pos, gpos, body):
    """Bound every joint's acceleration, as the second difference of its global
    position over the last three frames, by `limit` (m per frame^2, i.e.
    m/s^2 * dt^2). The candidate pose (local rotations [J, 4], positions
    [J, 3]) is blended with the pose that keeps the last two frames' local
    angular and linear velocities (rot1/pos1 the previous frame, rot2/pos2
    the one before; g1, g2 their global positions) by the largest share s in
    [0, 1] (bisection, `iters` halvings) whose global positions keep within
    the limit. Writes the pose to out_rot/out_pos and its global positions to
    gpos; returns s (1: the candidate was within the limit, untouched).
    body [J] bool: the joints whose acceleration counts (helper joints such
    as fingers and twist bones are left out, as by the metrics)."""
    n = len(parents)
    ext_rot, ext_pos = _extrapolate(rot1, pos1, rot2, pos2)
    _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, 1.0, out_rot, out_pos, gpos)
    if _largest_second_difference(gpos, g1, g2, body) <= limit:
        return 1.0
    _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, 0.0, out_rot, out_pos, gpos)
    if _largest_second_difference(gpos, g1, g2, body) > limit:
        # even the kept velocities go past the limit (a fast turn's centripetal pull): the share with
        # the least acceleration (golden-section search), so that the pose still slows down
        a, b = 0.0, 1.0
        r = 0.5 * (math.sqrt(5.0) - 1.0)
        for _ in range(2 * iters):
            c, d = b - r * (b - a), a + r * (b - a)
            _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, c, out_rot, out_pos, gpos)
            fc = _largest_second_difference(gpos, g1, g2, body)
            _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, d, out_rot, out_pos, gpos)
            if fc <= _largest_second_difference(gpos, g1, g2, body):
                b = d
            else:
                a = c
        s = 0.5 * (a + b)
        _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, s, out_rot, out_pos, gpos)
        return s
    lo, hi = 0.0, 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, mid, out_rot, out_pos, gpos)
        if _largest_second_difference(gpos, g1, g2, body) <= limit:
            lo = mid
        else:
            hi = mid
    _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, lo, out_rot, out_pos, gpos)
    return lo


@njit(**_NB)
def bound_drift(cand_rot, cand_pos, parents, rot1, pos1, rot2, pos2, prev_drift, s, max_drift, iters,
                out_rot, out_pos, gpos):
    """Raise the share s of the candidate pose (from limit_acceleration, same
    arguments) until no joint of the shown pose is further from where the
    candidate puts it than max(max_drift, prev_drift): the caller passes as
    prev_drift the larger of last frame's drift and how far the candidate
    itself jumped since last frame, so the limit may trail an animation that
    jumps (and catch up), never carry the pose away from it (a small
    database's extrapolated turn sends a toe metres up). Bisection over
    [s, 1]; writes the pose and its global positions like limit_acceleration;
    returns (the share, the drift of the pose written)."""
    n = len(parents)
    ext_rot, ext_pos = _extrapolate(rot1, pos1, rot2, pos2)
    crot = np.empty((n, 4))
    cpos = np.empty((n, 3))
    cg = np.empty((n, 3))
    _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, 1.0, crot, cpos, cg)
    max_drift = max(max_drift, prev_drift)
    _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, s, out_rot, out_pos, gpos)
    d = _largest_distance(gpos, cg)
    if d <= max_drift:
        return s, d
    lo, hi = s, 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, mid, out_rot, out_pos, gpos)
        if _largest_distance(gpos, cg) <= max_drift:
            hi = mid
        else:
            lo = mid
    _blend_fk(ext_rot, ext_pos, cand_rot, cand_pos, parents, hi, out_rot, out_pos, gpos)
    return hi, _largest_distance(gpos, cg)


@njit(**_NB)
def _largest_distance(a, b):
    m = 0.0
    for j in range(len(a)):
        d = (a[j, 0] - b[j, 0]) ** 2 + (a[j, 1] - b[j, 1]) ** 2 + (a[j, 2] - b[j, 2]) ** 2
        if d > m:
            m = d
    return math.sqrt(m)
