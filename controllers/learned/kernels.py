"""numba kernel of the learned runtime: decode the decompressor's output into a
pose and move the source's root (Holden's `decompressor_evaluate`, lmm.h)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from anim import quat_nb as q

_NB = dict(cache=True, nogil=True)


@njit(**_NB)
def quat_from_columns(c0, c1):
    """Rotation (w, x, y, z) whose matrix has first columns c0, c1 after
    Gram-Schmidt (as anim.quat.from_6d)."""
    n0 = math.sqrt(c0[0] * c0[0] + c0[1] * c0[1] + c0[2] * c0[2]) + 1e-30
    a = c0 / n0
    d = a[0] * c1[0] + a[1] * c1[1] + a[2] * c1[2]
    b = c1 - d * a
    b = b / (math.sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2]) + 1e-30)
    c = q.cross(a, b)
    m00, m10, m20 = a[0], a[1], a[2]
    m01, m11, m21 = b[0], b[1], b[2]
    m02, m12, m22 = c[0], c[1], c[2]
    tr = m00 + m11 + m22
    if tr >= m00 and tr >= m11 and tr >= m22:
        out = np.array([1.0 + tr, m21 - m12, m02 - m20, m10 - m01])
    elif m00 >= m11 and m00 >= m22:
        out = np.array([m21 - m12, 1.0 + m00 - m11 - m22, m01 + m10, m02 + m20])
    elif m11 >= m22:
        out = np.array([m02 - m20, m01 + m10, 1.0 - m00 + m11 - m22, m12 + m21])
    else:
        out = np.array([m10 - m01, m02 + m20, m12 + m21, 1.0 - m00 - m11 + m22])
    out = q.normalize(out)
    return -out if out[0] < 0.0 else out


@njit(**_NB)
def decode_pose(y, rest, moving, num_contacts, root_pos, root_rot, dt, rot, pos, vel, avel, contacts,
                hysteresis=0.0):
    """Fill rot/pos/vel/avel [J, *] and contacts [C] from the pose vector y (see
    controllers.learned.data) and return the new root (position, rotation):
    the character-space root velocities are put in the world by the current
    root rotation and integrated over dt (dt = 0: the root stays). The root is
    kept on the ground and upright (velocity without y, turning about y only).
    A contact switches on above 0.5 + hysteresis and off below 0.5 - hysteresis
    (contacts holds the previous state), so an output hovering at 0.5 does not
    make the foot lock flicker."""
    nj = rot.shape[0]
    m = moving.shape[0]
    o = 0
    for j in range(nj):
        pos[j] = rest[j]
        vel[j] = 0.0
    for i in range(m):
        for k in range(3):
            pos[moving[i], k] = y[o + 3 * i + k]
    o += 3 * m
    for j in range(1, nj):
        b = o + 6 * (j - 1)
        r = quat_from_columns(y[b:b + 3].astype(np.float64), y[b + 3:b + 6].astype(np.float64))
        for k in range(4):
            rot[j, k] = r[k]
    o += 6 * (nj - 1)
    for i in range(m):
        for k in range(3):
            vel[moving[i], k] = y[o + 3 * i + k]
    o += 3 * m
    for j in range(1, nj):
        for k in range(3):
            avel[j, k] = y[o + 3 * (j - 1) + k]
    o += 3 * (nj - 1)
    rv = np.array([y[o], 0.0, y[o + 2]])
    ra = np.array([0.0, y[o + 4], 0.0])
    o += 6
    for c in range(num_contacts):
        if contacts[c]:
            contacts[c] = y[o + c] > 0.5 - hysteresis
        else:
            contacts[c] = y[o + c] > 0.5 + hysteresis
    wv = q.rot(root_rot, rv)
    wv[1] = 0.0
    wa = q.rot(root_rot, ra)
    wa[0] = 0.0
    wa[2] = 0.0
    new_pos = root_pos + dt * wv
    new_pos[1] = 0.0
    new_rot = q.normalize(q.mul(q.from_scaled_angle_axis(wa * dt), root_rot))
    for k in range(3):
        pos[0, k] = new_pos[k]
        vel[0, k] = wv[k]
        avel[0, k] = wa[k]
    for k in range(4):
        rot[0, k] = new_rot[k]
    return new_pos, new_rot
