"""Single-element quaternion and vector helpers compiled by numba, for the
per-tick runtime where numpy's per-call overhead (a few microseconds per tiny
array operation) would dominate. Same conventions and formulas as `anim.quat`
(w, x, y, z; `mul(a, b)` applies b first), on 1-D float64 arrays.

These are building blocks for other numba kernels; `anim.quat` stays the
vectorized, documented reference, and tests check these against it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True)


@njit(**_NB)
def mul(a, b):
    return np.array([
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0]])


@njit(**_NB)
def inv(q):
    return np.array([q[0], -q[1], -q[2], -q[3]])


@njit(**_NB)
def normalize(q):
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    if n < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return q / n


@njit(**_NB)
def qabs(q):
    return -q if q[0] < 0.0 else q


@njit(**_NB)
def cross(a, b):
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


@njit(**_NB)
def dot3(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


@njit(**_NB)
def length(v):
    return math.sqrt(dot3(v, v))


@njit(**_NB)
def unit(v):
    n = length(v)
    return v / n if n > 1e-12 else v * 0.0


@njit(**_NB)
def rot(q, v):
    u = q[1:]
    t = 2.0 * cross(u, v)
    return v + q[0] * t + cross(u, t)


@njit(**_NB)
def inv_rot(q, v):
    return rot(inv(q), v)


@njit(**_NB)
def exp(v):
    half = length(v)
    if half < 1e-8:
        return normalize(np.array([1.0, v[0], v[1], v[2]]))
    s = math.sin(half) / half
    return np.array([math.cos(half), v[0] * s, v[1] * s, v[2] * s])


@njit(**_NB)
def log(q):
    n = math.sqrt(q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    if n < 1e-8 and q[0] > 0.0:
        return np.array([q[1], q[2], q[3]]) / q[0]
    if n == 0.0:
        return np.zeros(3)
    half = math.atan2(n, q[0])
    return np.array([q[1], q[2], q[3]]) * (half / n)


@njit(**_NB)
def to_scaled_angle_axis(q):
    return 2.0 * log(qabs(q))


@njit(**_NB)
def from_scaled_angle_axis(v):
    return exp(v * 0.5)


@njit(**_NB)
def from_angle_axis(angle, axis):
    a = unit(axis)
    s = math.sin(0.5 * angle)
    return np.array([math.cos(0.5 * angle), a[0] * s, a[1] * s, a[2] * s])


@njit(**_NB)
def halflife_to_damping(halflife):
    return (4.0 * 0.69314718056) / (halflife + 1e-5)
