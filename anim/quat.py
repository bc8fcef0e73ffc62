"""Quaternions: plain functions over arrays, in the manner of Holden's `quat.h`.

Conventions (DESIGN.md): quaternions are (w, x, y, z), shape [..., 4]; vectors
are [..., 3]; matrices [..., 3, 3] act on column vectors (v' = M @ v). Every
function broadcasts over leading dimensions and keeps the floating dtype it is
given (float32 in, float32 out; float64 works too). Rotation of a vector by q
is q * (0, v) * q^-1; `mul(a, b)` applies b first, then a.

Unless stated otherwise inputs are expected to be unit quaternions.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "normalize", "mul", "inv", "rot", "inv_rot", "abs", "dot", "slerp", "nlerp",
    "from_angle_axis", "to_angle_axis", "exp", "log", "from_scaled_angle_axis",
    "to_scaled_angle_axis", "from_euler", "to_euler", "from_matrix", "to_matrix",
    "to_6d", "from_6d", "between", "angular_velocity", "identity", "fk", "ik",
]


# ---------------------------------------------------------------- helpers

def _f(x):
    """x as a floating array (ints become float64, float32 stays float32)."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def _weak(x, dtype):
    """Python numbers and lists take `dtype` (as numpy treats Python scalars),
    arrays keep theirs."""
    if isinstance(x, (int, float, list, tuple)):
        return np.asarray(x, dtype=dtype)
    return _f(x)


def _cross(a, b):
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=-1)


def _length(v):
    return np.sqrt(np.sum(v * v, axis=-1))


def _sinc(x):
    """sin(x) / x, smooth through 0 (unnormalized, unlike np.sinc)."""
    small = np.abs(x) < 1e-4
    xs = np.where(small, 1, x)
    return np.where(small, 1 - x * x / 6, np.sin(xs) / xs)


def _perpendicular(v):
    """A unit vector perpendicular to v: v crossed with the basis axis least aligned with it."""
    e = np.eye(3, dtype=v.dtype)[np.argmin(np.abs(v), axis=-1)]
    p = _cross(v, e)
    return p / np.maximum(_length(p)[..., None], 1e-30)


# ---------------------------------------------------------------- basics

def identity(shape=(), dtype=np.float32):
    """Identity quaternions of the given leading shape: [*shape, 4]."""
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    q = np.zeros(shape + (4,), dtype=dtype)
    q[..., 0] = 1
    return q


def normalize(q, eps=1e-8):
    """q scaled to unit length (vectors of any last size; length clamped below by eps)."""
    q = _f(q)
    return q / np.maximum(np.sqrt(np.sum(q * q, axis=-1, keepdims=True)), eps)


def dot(a, b):
    """4D dot product, shape [...]."""
    return np.sum(_f(a) * _f(b), axis=-1)


def mul(a, b):
    """Hamilton product a * b (rotation b first, then a)."""
    a, b = _f(a), _f(b)
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def inv(q):
    """Conjugate (the inverse of a unit quaternion)."""
    q = _f(q)
    return np.concatenate([q[..., :1], -q[..., 1:]], axis=-1)


def abs(q):  # noqa: A001 - the name mirrors Holden's quat_abs
    """The same rotation with w >= 0 (q or -q)."""
    q = _f(q)
    return np.where(q[..., :1] < 0, -q, q)


def rot(q, v):
    """Rotate vectors v [..., 3] by q: v + w t + u x t with t = 2 u x v."""
    q, v = _f(q), _f(v)
    u = q[..., 1:]
    t = 2 * _cross(u, v)
    return v + q[..., :1] * t + _cross(u, t)


def inv_rot(q, v):
    """Rotate vectors v by the inverse of q."""
    return rot(inv(q), v)


# ---------------------------------------------------------------- interpolation

def slerp(a, b, t):
    """Spherical interpolation along the shortest path; t broadcasts against the
    leading dims (shape [...], no trailing 1). Exact and smooth at a == b."""
    a, b = _f(a), _f(b)
    t = _weak(t, np.result_type(a, b))
    b = np.where(np.sum(a * b, axis=-1, keepdims=True) < 0, -b, b)
    theta = 2 * np.arctan2(_length(a - b), _length(a + b))[..., None]  # angle between a and b in 4D
    t = t[..., None]
    s = _sinc(theta)
    wa = (1 - t) * _sinc((1 - t) * theta) / s  # = sin((1-t) theta) / sin(theta)
    wb = t * _sinc(t * theta) / s
    return wa * a + wb * b


def nlerp(a, b, t):
    """Normalized linear interpolation along the shortest path (t as in slerp)."""
    a, b = _f(a), _f(b)
    t = _weak(t, np.result_type(a, b))
    b = np.where(np.sum(a * b, axis=-1, keepdims=True) < 0, -b, b)
    t = t[..., None]
    return normalize((1 - t) * a + t * b)


# ---------------------------------------------------------------- angle-axis, exp, log

def from_angle_axis(angle, axis):
    """Rotation by angle [...] (radians) about axis [..., 3] (normalized here)."""
    axis = normalize(axis)
    angle = _weak(angle, axis.dtype)
    lead = np.broadcast_shapes(angle.shape, axis.shape[:-1])
    h = np.broadcast_to(angle, lead)[..., None] / 2
    return np.concatenate([np.cos(h), np.sin(h) * axis], axis=-1)


def to_angle_axis(q):
    """(angle [...] in [0, 2 pi], unit axis [..., 3]); axis is +x for the identity.
    from_angle_axis(*to_angle_axis(q)) == q exactly (not only up to sign)."""
    q = _f(q)
    v = q[..., 1:]
    s = _length(v)
    angle = 2 * np.arctan2(s, q[..., 0])
    axis = np.where(s[..., None] > 0, v / np.where(s > 0, s, 1)[..., None],
                    np.array([1, 0, 0], dtype=q.dtype))
    return angle, axis


def exp(v):
    """exp of the pure quaternion (0, v): (cos|v|, sin|v| v/|v|), a rotation by 2|v| about v."""
    v = _f(v)
    h = _length(v)[..., None]
    return np.concatenate([np.cos(h), _sinc(h) * v], axis=-1)


def log(q):
    """Inverse of exp for unit q: the vector part of log(q), [..., 3]. log(-1) returns 0."""
    q = _f(q)
    v = q[..., 1:]
    s = _length(v)
    theta = np.arctan2(s, q[..., 0])
    k = np.where(s > 0, theta / np.where(s > 0, s, 1), 1)  # atan2 keeps relative accuracy as s -> 0
    return k[..., None] * v


def from_scaled_angle_axis(v):
    """Rotation vector (axis times angle, [..., 3]) to quaternion."""
    return exp(_f(v) / 2)


def to_scaled_angle_axis(q):
    """Quaternion to rotation vector (axis times angle in [0, pi])."""
    return 2 * log(abs(q))


def angular_velocity(q0, q1, dt):
    """World-frame angular velocity (rad/s, [..., 3]) taking q0 to q1 in dt seconds."""
    return to_scaled_angle_axis(mul(q1, inv(q0))) / dt


def between(a, b):
    """Shortest rotation taking direction a [..., 3] to direction b (any lengths).
    Opposite directions give a half turn about an axis perpendicular to a.
    Computed in float64 inside, returned in the inputs' float dtype."""
    a, b = _f(a), _f(b)
    dtype = np.result_type(a, b)
    a = normalize(a.astype(np.float64), 1e-30)
    b = normalize(b.astype(np.float64), 1e-30)
    a, b = np.broadcast_arrays(a, b)
    h = a + b
    w = np.sum(h * h, axis=-1, keepdims=True) / 2   # 1 + cos(angle), accurate near a half turn
    q = np.concatenate([w, _cross(a, b)], axis=-1)  # (2 cos^2(angle/2), 2 cos(angle/2) sin(angle/2) n)
    half_turn = np.concatenate([np.zeros_like(w), _perpendicular(a)], axis=-1)
    q = np.where(w < 5e-17, half_turn, q)           # within ~1e-8 rad of opposite: any perpendicular axis
    return normalize(q, 1e-30).astype(dtype)


# ---------------------------------------------------------------- Euler angles

_AXES = {"x": 0, "y": 1, "z": 2}


def _euler_axes(order):
    o = str(order).lower()
    if len(o) != 3 or any(c not in _AXES for c in o) or o[0] == o[1] or o[1] == o[2]:
        raise ValueError(f"Euler order must be 3 letters from x, y, z with no axis twice in a row, got {order!r}")
    return [_AXES[c] for c in o]


def from_euler(angles, order):
    """Intrinsic Euler angles [..., 3] (radians; angles[..., i] about axis order[i])
    to q = q_order[0] * q_order[1] * q_order[2]. Same as scipy
    Rotation.from_euler(order.upper(), angles). Any of the 12 orders."""
    angles = _f(angles)
    h = angles / 2
    c, s = np.cos(h), np.sin(h)
    q = None
    for i, ax in enumerate(_euler_axes(order)):
        e = np.zeros(angles.shape[:-1] + (4,), dtype=angles.dtype)
        e[..., 0] = c[..., i]
        e[..., 1 + ax] = s[..., i]
        q = e if q is None else mul(q, e)
    return q


def to_euler(q, order):
    """Inverse of from_euler, matching scipy as_euler(order.upper()): angles in
    [-pi, pi), the middle one in [-pi/2, pi/2] (Tait-Bryan) or [0, pi] (proper
    Euler). At gimbal lock (within float precision) the last angle is set to 0.
    Method of Bernardes and Viollet (2022), as in scipy."""
    q = _f(q)
    i, j, k = _euler_axes(order)[::-1]  # the equivalent extrinsic sequence
    proper = i == k
    if proper:
        k = 3 - i - j
    sign = (i - j) * (j - k) * (k - i) // 2  # +1 for a cyclic (even) permutation
    w, qi, qj, qk = q[..., 0], q[..., 1 + i], q[..., 1 + j], q[..., 1 + k] * sign
    if proper:
        a, b, c, d = w, qi, qj, qk
    else:
        a, b, c, d = w - qj, qi + qk, qj + w, qk - qi
    half_sum = np.arctan2(b, a)
    half_diff = np.arctan2(d, c)
    middle = 2 * np.arctan2(np.hypot(c, d), np.hypot(a, b))
    # gimbal lock: only first +- last is defined; set last = 0 (as scipy does)
    # when the middle angle is within float precision of the lock, so that the
    # round trip stays exact (scipy's fixed 1e-7 would drop up to 1e-7 rad)
    eps = 4 * np.finfo(q.dtype).eps
    lock0 = np.abs(middle) <= eps
    lock_pi = np.abs(middle - np.pi) <= eps
    regular = ~(lock0 | lock_pi)
    last = np.where(regular, half_sum - half_diff, 0)
    first = np.where(regular, half_sum + half_diff, np.where(lock0, 2 * half_sum, 2 * half_diff))
    if not proper:
        first = first * sign
        middle = middle - np.pi / 2
    angles = np.stack([first, middle, last], axis=-1)
    return (angles + np.pi) % (2 * np.pi) - np.pi


# ---------------------------------------------------------------- matrices and 6D

def to_matrix(q):
    """Rotation matrices [..., 3, 3] (acting on column vectors)."""
    q = _f(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    xx, yy, zz = 2 * x * x, 2 * y * y, 2 * z * z
    xy, xz, yz = 2 * x * y, 2 * x * z, 2 * y * z
    wx, wy, wz = 2 * w * x, 2 * w * y, 2 * w * z
    m = np.stack([1 - yy - zz, xy - wz, xz + wy,
                  xy + wz, 1 - xx - zz, yz - wx,
                  xz - wy, yz + wx, 1 - xx - yy], axis=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


def from_matrix(m):
    """Rotation matrices [..., 3, 3] to unit quaternions with w >= 0 (Shepperd's
    method: build from whichever of w, x, y, z is largest, so no cancellation)."""
    m = _f(m)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    tr = m00 + m11 + m22
    # each candidate is 4 q_k * q for k = w, x, y, z
    cands = np.stack([
        np.stack([1 + tr, m21 - m12, m02 - m20, m10 - m01], axis=-1),
        np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], axis=-1),
        np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], axis=-1),
        np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], axis=-1)], axis=-2)
    best = np.argmax(np.stack([tr, m00, m11, m22], axis=-1), axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    return abs(normalize(q, 1e-30))


def to_6d(q):
    """The first two columns of the rotation matrix, [..., 6] = (col0, col1)."""
    m = to_matrix(q)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def from_6d(x):
    """6D representation (Zhou et al. 2019) to quaternion by Gram-Schmidt; x need
    not be orthonormal."""
    x = _f(x)
    c0 = normalize(x[..., :3], 1e-30)
    c1 = x[..., 3:]
    c1 = normalize(c1 - np.sum(c0 * c1, axis=-1, keepdims=True) * c0, 1e-30)
    c2 = _cross(c0, c1)
    return from_matrix(np.stack([c0, c1, c2], axis=-1))


# ---------------------------------------------------------------- forward and inverse kinematics

def fk(lrot, lpos, parents):
    """Forward kinematics. lrot [..., J, 4], lpos [..., J, 3] (leading dims
    broadcast, e.g. lpos [J, 3] for fixed offsets), parents int [J] with -1 for a
    root and parents before children. Returns (grot [..., J, 4], gpos [..., J, 3])."""
    lrot, lpos = _f(lrot), _f(lpos)
    dtype = np.result_type(lrot, lpos)
    batch = np.broadcast_shapes(lrot.shape[:-2], lpos.shape[:-2])
    j = lrot.shape[-2]
    lrot = np.ascontiguousarray(np.broadcast_to(lrot, batch + (j, 4)).reshape(-1, j, 4), dtype=dtype)
    lpos = np.ascontiguousarray(np.broadcast_to(lpos, batch + (j, 3)).reshape(-1, j, 3), dtype=dtype)
    parents = np.ascontiguousarray(parents, dtype=np.int64)
    if parents.shape != (j,):
        raise ValueError(f"fk: parents {parents.shape} does not fit {j} joints")
    grot, gpos = _fk_kernel()(lrot, lpos, parents)
    return grot.reshape(batch + (j, 4)), gpos.reshape(batch + (j, 3))


def ik(grot, gpos, parents):
    """Inverse of fk: global rotations and positions to local ones (vectorized, no loop)."""
    grot, gpos = _f(grot), _f(gpos)
    parents = np.asarray(parents)
    root = parents < 0
    p = np.where(root, 0, parents)
    prot, ppos = grot[..., p, :], gpos[..., p, :]
    lrot = np.where(root[:, None], grot, mul(inv(prot), grot))
    lpos = np.where(root[:, None], gpos, inv_rot(prot, gpos - ppos))
    return lrot, lpos


def _fk_loop(lrot, lpos, parents):
    """The joint loop of fk, compiled by numba: [N, J, 4], [N, J, 3] -> same shapes."""
    n, nj = lrot.shape[0], lrot.shape[1]
    grot = np.empty_like(lrot)
    gpos = np.empty_like(lpos)
    for b in range(n):
        for j in range(nj):
            p = parents[j]
            if p < 0:
                grot[b, j] = lrot[b, j]
                gpos[b, j] = lpos[b, j]
                continue
            aw, ax, ay, az = grot[b, p, 0], grot[b, p, 1], grot[b, p, 2], grot[b, p, 3]
            bw, bx, by, bz = lrot[b, j, 0], lrot[b, j, 1], lrot[b, j, 2], lrot[b, j, 3]
            grot[b, j, 0] = aw * bw - ax * bx - ay * by - az * bz
            grot[b, j, 1] = aw * bx + ax * bw + ay * bz - az * by
            grot[b, j, 2] = aw * by - ax * bz + ay * bw + az * bx
            grot[b, j, 3] = aw * bz + ax * by - ay * bx + az * bw
            vx, vy, vz = lpos[b, j, 0], lpos[b, j, 1], lpos[b, j, 2]
            tx = 2 * (ay * vz - az * vy)
            ty = 2 * (az * vx - ax * vz)
            tz = 2 * (ax * vy - ay * vx)
            gpos[b, j, 0] = gpos[b, p, 0] + vx + aw * tx + (ay * tz - az * ty)
            gpos[b, j, 1] = gpos[b, p, 1] + vy + aw * ty + (az * tx - ax * tz)
            gpos[b, j, 2] = gpos[b, p, 2] + vz + aw * tz + (ax * ty - ay * tx)
    return grot, gpos


_fk_compiled = None


def _fk_kernel():
    """numba is imported on first use so that `import anim.quat` stays light."""
    global _fk_compiled
    if _fk_compiled is None:
        from numba import njit
        _fk_compiled = njit(cache=True, nogil=True)(_fk_loop)
    return _fk_compiled
