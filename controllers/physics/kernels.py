"""Compiled kernels of the physics runtime's per-tick conversions (numba).

`pose_to_qpos` and `qpos_to_pose` are `convert`'s for one pose, written as
loops: every tick the live loop converts the new reference frame to MuJoCo
and the simulated body back to a pose, and numpy's per-call overhead on
22-joint arrays made each of them a quarter to a third of the tick. The
formulas are those of `convert` and `anim.quat.to_euler` (Bernardes and
Viollet 2022, as scipy).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _qmul(a, b, out):
    aw, ax, ay, az = a[0], a[1], a[2], a[3]
    bw, bx, by, bz = b[0], b[1], b[2], b[3]
    out[0] = aw * bw - ax * bx - ay * by - az * bz
    out[1] = aw * bx + ax * bw + ay * bz - az * by
    out[2] = aw * by - ax * bz + ay * bw + az * bx
    out[3] = aw * bz + ax * by - ay * bx + az * bw


@njit(cache=True)
def _qrot(q, v, out):
    w, x, y, z = q[0], q[1], q[2], q[3]
    tx = 2.0 * (y * v[2] - z * v[1])
    ty = 2.0 * (z * v[0] - x * v[2])
    tz = 2.0 * (x * v[1] - y * v[0])
    out[0] = v[0] + w * tx + (y * tz - z * ty)
    out[1] = v[1] + w * ty + (z * tx - x * tz)
    out[2] = v[2] + w * tz + (x * ty - y * tx)


@njit(cache=True)
def _wrap(a):
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@njit(cache=True)
def pose_to_qpos(rot, pos, chain, hinge, rest_inv, ijk, proper, sign, out):
    """rot [J, 4], pos [J, 3] (float64) -> out [nq]: hips position and frame
    (MuJoCo axes), then each hinge body's intrinsic Euler angles of
    rest^-1 * local."""
    g = np.array([1.0, 0.0, 0.0, 0.0])
    p = np.zeros(3)
    t = np.zeros(3)
    tmp = np.zeros(4)
    for c in range(chain.shape[0]):
        j = chain[c]
        _qrot(g, pos[j], t)
        p[0] += t[0]
        p[1] += t[1]
        p[2] += t[2]
        _qmul(g, rot[j], tmp)
        g[:] = tmp
    out[0], out[1], out[2] = p[2], p[0], p[1]                   # vec_to_mj: (z, x, y)
    qc = np.array([0.5, 0.5, 0.5, 0.5])                          # frame_to_mj: Q_C * g
    _qmul(qc, g, tmp)
    n = math.sqrt(tmp[0] * tmp[0] + tmp[1] * tmp[1] + tmp[2] * tmp[2] + tmp[3] * tmp[3])
    s = 1.0 / n if tmp[0] >= 0 else -1.0 / n                     # normalized, w >= 0
    for k in range(4):
        out[3 + k] = tmp[k] * s
    eps = 4.0 * 2.220446049250313e-16
    r = np.zeros(4)
    for b in range(hinge.shape[0]):
        _qmul(rest_inv[b], rot[hinge[b]], r)
        i, jj, k = ijk[b, 0], ijk[b, 1], ijk[b, 2]
        sg = sign[b]
        w, qi, qj, qk = r[0], r[1 + i], r[1 + jj], r[1 + k] * sg
        if proper[b]:
            a_, b_, c_, d_ = w, qi, qj, qk
        else:
            a_, b_, c_, d_ = w - qj, qi + qk, qj + w, qk - qi
        half_sum = math.atan2(b_, a_)
        half_diff = math.atan2(d_, c_)
        middle = 2.0 * math.atan2(math.hypot(c_, d_), math.hypot(a_, b_))
        lock0 = abs(middle) <= eps
        lock_pi = abs(middle - math.pi) <= eps
        if not (lock0 or lock_pi):
            last = half_sum - half_diff
            first = half_sum + half_diff
        else:
            last = 0.0
            first = 2.0 * half_sum if lock0 else 2.0 * half_diff
        if not proper[b]:
            first = first * sg
            middle = middle - math.pi / 2.0
        out[7 + 3 * b] = _wrap(first)
        out[8 + 3 * b] = _wrap(middle)
        out[9 + 3 * b] = _wrap(last)


@njit(cache=True)
def _q6d(q, out, o):
    w, x, y, z = q[0], q[1], q[2], q[3]
    out[o] = 1 - 2 * (y * y + z * z)
    out[o + 1] = 2 * (x * y + w * z)
    out[o + 2] = 2 * (x * z - w * y)
    out[o + 3] = 2 * (x * y - w * z)
    out[o + 4] = 1 - 2 * (x * x + z * z)
    out[o + 5] = 2 * (y * z + w * x)


@njit(cache=True)
def observation(pos, quat, vel, avel, fut_pos, fut_quat, hips_forward, out):
    """`env.observation` of one state (numpy side, float64 in, `out` float32):
    the hips height; body positions, 6D rotations, linear and angular
    velocities in the character's heading frame; then each future reference
    frame's body positions and 6D rotations relative to the body."""
    nb = pos.shape[0]
    t = np.zeros(3)
    fwd = np.zeros(3)
    _qrot(quat[0], hips_forward, fwd)
    yaw = math.atan2(fwd[1], fwd[0])
    ih = np.array([math.cos(yaw / 2), 0.0, 0.0, -math.sin(yaw / 2)])
    q = np.zeros(4)
    d = np.zeros(3)
    out[0] = pos[0, 2]
    o = 1
    for b in range(nb):
        d[0], d[1], d[2] = pos[b, 0] - pos[0, 0], pos[b, 1] - pos[0, 1], pos[b, 2] - pos[0, 2]
        _qrot(ih, d, t)
        out[o], out[o + 1], out[o + 2] = t[0], t[1], t[2]
        o += 3
    for b in range(nb):
        _qmul(ih, quat[b], q)
        _q6d(q, out, o)
        o += 6
    for b in range(nb):
        _qrot(ih, vel[b], t)
        out[o], out[o + 1], out[o + 2] = t[0], t[1], t[2]
        o += 3
    for b in range(nb):
        _qrot(ih, avel[b], t)
        out[o], out[o + 1], out[o + 2] = t[0], t[1], t[2]
        o += 3
    for f in range(fut_pos.shape[0]):
        for b in range(nb):
            d[0] = fut_pos[f, b, 0] - pos[0, 0]
            d[1] = fut_pos[f, b, 1] - pos[0, 1]
            d[2] = fut_pos[f, b, 2] - pos[0, 2]
            _qrot(ih, d, t)
            out[o], out[o + 1], out[o + 2] = t[0], t[1], t[2]
            o += 3
        for b in range(nb):
            _qmul(ih, fut_quat[f, b], q)
            _q6d(q, out, o)
            o += 6


@njit(cache=True)
def qpos_to_pose(qpos, rest_all, offsets, hinge, rest, axes, chain, hips_forward, rot, pos):
    """`convert.qpos_to_pose` of one state with the simulation bone placed
    from the hips (root=None): qpos [nq] -> rot [J, 4], pos [J, 3] (float32,
    written in place). Joints without a body keep their rest pose."""
    nj = rest_all.shape[0]
    r = np.zeros((nj, 4))
    p = np.zeros((nj, 3))
    r[:] = rest_all
    p[:] = offsets
    e = np.zeros(4)
    acc = np.zeros(4)
    tmp = np.zeros(4)
    for b in range(hinge.shape[0]):                     # hinges applied in order, after the rest rotation
        acc[0], acc[1], acc[2], acc[3] = 1.0, 0.0, 0.0, 0.0
        for k in range(3):
            half = 0.5 * qpos[7 + 3 * b + k]
            s = math.sin(half)
            e[0], e[1], e[2], e[3] = math.cos(half), s * axes[b, k, 0], s * axes[b, k, 1], s * axes[b, k, 2]
            _qmul(acc, e, tmp)
            acc[:] = tmp
        _qmul(rest[b], acc, tmp)
        r[hinge[b]] = tmp
    qci = np.array([0.5, -0.5, -0.5, -0.5])                 # frame_from_mj: Q_C^-1 * q
    g_h = np.zeros(4)
    _qmul(qci, qpos[3:7], g_h)
    n = max(math.sqrt(g_h[0] ** 2 + g_h[1] ** 2 + g_h[2] ** 2 + g_h[3] ** 2), 1e-8)
    for k in range(4):
        g_h[k] /= n
    p_h = np.array([qpos[1], qpos[2], qpos[0]])               # vec_from_mj: (y, z, x)
    fwd = np.zeros(3)
    _qrot(g_h, hips_forward, fwd)                             # hips_heading: yaw about +Y
    half = 0.5 * math.atan2(fwd[0], fwd[2])
    sim_rot = np.array([math.cos(half), 0.0, math.sin(half), 0.0])
    g = sim_rot.copy()
    pp = np.array([p_h[0], 0.0, p_h[2]])
    sim_pos = pp.copy()
    t = np.zeros(3)
    for c in range(1, chain.shape[0] - 1):                    # joints between the simulation bone and the hips
        j = chain[c]
        _qrot(g, p[j], t)
        pp += t
        _qmul(g, r[j], tmp)
        g[:] = tmp
    root = chain[chain.shape[0] - 1]
    r[chain[0]] = sim_rot
    p[chain[0]] = sim_pos
    gi = np.array([g[0], -g[1], -g[2], -g[3]])
    _qmul(gi, g_h, tmp)
    r[root] = tmp
    _qrot(gi, p_h - pp, t)
    p[root] = t
    for j in range(nj):
        for k in range(4):
            rot[j, k] = r[j, k]
        for k in range(3):
            pos[j, k] = p[j, k]


@njit(cache=True)
def body_velocities(xpos, xipos, cvel, mass, vel, com, comvel):
    """`env.body_features`' derived quantities of one state, written in place:
    the linear velocity at each body origin vel [nb, 3], the centre of mass
    com [3] and its velocity comvel [3] (cvel is MuJoCo's [ang, lin] about
    the subtree COM, as there)."""
    nb = xpos.shape[0]
    total = 0.0
    com[:] = 0.0
    for b in range(nb):
        total += mass[b]
        for k in range(3):
            com[k] += mass[b] * xipos[b, k]
    for k in range(3):
        com[k] /= total
    comvel[:] = 0.0
    for b in range(nb):
        ax, ay, az = cvel[b, 0], cvel[b, 1], cvel[b, 2]
        rx, ry, rz = xpos[b, 0] - com[0], xpos[b, 1] - com[1], xpos[b, 2] - com[2]
        vel[b, 0] = cvel[b, 3] + ay * rz - az * ry
        vel[b, 1] = cvel[b, 4] + az * rx - ax * rz
        vel[b, 2] = cvel[b, 5] + ax * ry - ay * rx
        rx, ry, rz = xipos[b, 0] - com[0], xipos[b, 1] - com[1], xipos[b, 2] - com[2]
        comvel[0] += mass[b] * (cvel[b, 3] + ay * rz - az * ry)
        comvel[1] += mass[b] * (cvel[b, 4] + az * rx - ax * rz)
        comvel[2] += mass[b] * (cvel[b, 5] + ax * ry - ay * rx)
    for k in range(3):
        comvel[k] /= total
