"""Spring-dampers: trajectory prediction and inertialization.

Formulas from Daniel Holden, "Spring-It-On: The Game Developer's Spring-Roll-Call"
(theorangeduck.com, 2021) and his Motion-Matching demo (spring.h). All exact
(closed form in dt), so they are stable at any time step. Vectorized over
leading dimensions.

half-life: the time for the distance to the goal to halve.
"""

from __future__ import annotations

import numpy as np

from . import quat

LN2 = 0.69314718056


def halflife_to_damping(halflife, eps=1e-5):
    return (4.0 * LN2) / (np.asarray(halflife) + eps)


def fast_negexp(x):
    """exp(-x), as in the demo (a cheap polynomial approximation is not needed in numpy)."""
    return np.exp(-x)


# --------------------------------------------------------------- decay springs
def decay_spring_damper(x, v, halflife, dt):
    """A critically damped spring decaying to zero: returns (x', v')."""
    y = halflife_to_damping(halflife) / 2.0
    j1 = v + x * y
    eydt = fast_negexp(y * dt)
    return eydt * (x + j1 * dt), eydt * (v - j1 * y * dt)


def decay_spring_damper_quat(q, v, halflife, dt):
    """Rotation offset decay: q a rotation offset, v an angular velocity offset."""
    y = halflife_to_damping(halflife) / 2.0
    j0 = quat.to_scaled_angle_axis(q)
    j1 = v + j0 * y
    eydt = fast_negexp(y * dt)
    return quat.from_scaled_angle_axis(eydt * (j0 + j1 * dt)), eydt * (v - j1 * y * dt)


# ------------------------------------------------ character trajectory springs
def spring_character_update(x, v, a, v_goal, halflife, dt):
    """Position x, velocity v, acceleration a of a character whose velocity is
    pulled to v_goal by a critically damped spring. Returns (x', v', a')."""
    y = halflife_to_damping(halflife) / 2.0
    j0 = v - v_goal
    j1 = a + j0 * y
    eydt = fast_negexp(y * dt)
    x2 = eydt * (((-j1) / (y * y)) + ((-j0 - j1 * dt) / y)) + (j1 / (y * y)) + j0 / y + v_goal * dt + x
    v2 = eydt * (j0 + j1 * dt) + v_goal
    a2 = eydt * (a - j1 * y * dt)
    return x2, v2, a2


def spring_character_predict(x, v, a, v_goal, halflife, dt, count):
    """The future positions/velocities/accelerations at dt, 2 dt, ..., count dt
    (each [count, ...]) with the goal held fixed."""
    t = dt * np.arange(1, count + 1).reshape((count,) + (1,) * np.ndim(x))
    return spring_character_update(x, v, a, v_goal, halflife, t)


def simulation_rotation_update(rot, ang_vel, goal, halflife, dt):
    """Facing rotation pulled towards the goal rotation by a critically damped
    spring: returns (rot', ang_vel')."""
    y = halflife_to_damping(halflife) / 2.0
    j0 = quat.to_scaled_angle_axis(quat.abs(quat.mul(rot, quat.inv(goal))))
    j1 = ang_vel + j0 * y
    eydt = fast_negexp(y * dt)
    rot2 = quat.mul(quat.from_scaled_angle_axis(eydt * (j0 + j1 * dt)), goal)
    return rot2, eydt * (ang_vel - j1 * y * dt)


def simulation_rotation_predict(rot, ang_vel, goal, halflife, dt, count):
    t = dt * np.arange(1, count + 1).reshape((count,) + (1,) * (np.ndim(ang_vel) - 1) + (1,))
    return simulation_rotation_update(rot, ang_vel, goal, halflife, t)


# ------------------------------------------------------------ inertialization
def inertialize_transition(off_x, off_v, src_x, src_v, dst_x, dst_v):
    """New offsets when switching from the source to the destination animation,
    so that (dst + offset) continues the currently shown pose and velocity."""
    return off_x + src_x - dst_x, off_v + src_v - dst_v


def inertialize_transition_quat(off_q, off_v, src_q, src_v, dst_q, dst_v):
    off_q2 = quat.abs(quat.mul(quat.mul(off_q, src_q), quat.inv(dst_q)))
    return off_q2, off_v + src_v - dst_v


def inertialize_update(off_x, off_v, in_x, in_v, halflife, dt):
    """Decay the offsets and apply them: returns (out_x, out_v, off_x', off_v')."""
    off_x, off_v = decay_spring_damper(off_x, off_v, halflife, dt)
    return in_x + off_x, in_v + off_v, off_x, off_v


def inertialize_update_quat(off_q, off_v, in_q, in_v, halflife, dt):
    off_q, off_v = decay_spring_damper_quat(off_q, off_v, halflife, dt)
    return quat.mul(off_q, in_q), off_v + in_v, off_q, off_v
