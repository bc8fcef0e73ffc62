"""The one place where the Y-up kinematic side meets Z-up MuJoCo.

Kinematic side (DESIGN.md): metres, Y up, +Z forward, +X left.
MuJoCo side: Z up, +X forward, +Y left (the usual MuJoCo humanoid layout).

The change of axes is the proper rotation that takes kinematic (x, y, z) to
MuJoCo (z, x, y): a 120 degree turn about (1, 1, 1), the quaternion
``Q_C = (0.5, 0.5, 0.5, 0.5)``. Three kinds of quantity cross it:

* vectors (positions, velocities, world angular velocities): ``v_mj = Q_C v``;
* body *frames* (a joint's global orientation): ``q_mj = Q_C * q``. A body
  keeps its local axes, so every local quantity (joint offsets, local
  rotations, geoms, inertias, hinge axes, body-frame angular velocities) is the
  same number on both sides. Only the free root body and world quantities move;
* world-space rotation *operators* (e.g. a heading turn about up):
  ``r_mj = Q_C r Q_C^-1``.

Whole poses: a database pose (local rotations [J,4] and positions [J,3], joint 0
the simulation bone, the hips under it) becomes ``qpos`` = hips position (3),
hips frame (4), then three hinge angles per non-root body, the intrinsic Euler
angles (in the joint's own axis order) of ``rest^-1 * local``. Velocities
``qvel`` = hips linear velocity (world, 3), hips angular velocity (body frame,
3), hinge angle rates -- as MuJoCo's free and hinge joints define them.

Nothing else in the project converts axes: `humanoid.py` places its root body
with `frame_to_mj`/`vec_to_mj`, `env.py` and `runtime.py` go through
`pose_to_qpos`/`qpos_to_pose`.
"""

from __future__ import annotations

import numpy as np

from anim import quat

Q_C = np.array([0.5, 0.5, 0.5, 0.5])          # kinematic -> MuJoCo axes
UP_KIN = np.array([0.0, 1.0, 0.0])
FWD_KIN = np.array([0.0, 0.0, 1.0])
UP_MJ = np.array([0.0, 0.0, 1.0])
FWD_MJ = np.array([1.0, 0.0, 0.0])


# ------------------------------------------------------------------ vectors and rotations
def vec_to_mj(v):
    """Positions / velocities [..., 3]: kinematic (x, y, z) -> MuJoCo (z, x, y)."""
    v = np.asarray(v)
    return v[..., [2, 0, 1]]


def vec_from_mj(v):
    """MuJoCo (x, y, z) -> kinematic (y, z, x)."""
    v = np.asarray(v)
    return v[..., [1, 2, 0]]


def frame_to_mj(q):
    """A body's global orientation (its local axes kept): Q_C * q."""
    q = np.asarray(q, np.float64)
    return quat.mul(np.broadcast_to(Q_C, q.shape), q)


def frame_from_mj(q):
    q = np.asarray(q, np.float64)
    return quat.mul(np.broadcast_to(quat.inv(Q_C), q.shape), q)


def rot_to_mj(q):
    """A world-space rotation operator (e.g. a heading turn): Q_C q Q_C^-1."""
    q = np.asarray(q, np.float64)
    c = np.broadcast_to(Q_C, q.shape)
    return quat.mul(quat.mul(c, q), quat.inv(c))


def rot_from_mj(q):
    q = np.asarray(q, np.float64)
    c = np.broadcast_to(Q_C, q.shape)
    return quat.mul(quat.mul(quat.inv(c), q), c)


# ------------------------------------------------------------------ whole poses
def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def _root_chain(parents, root):
    chain = []
    j = int(root)
    while j >= 0:
        chain.append(j)
        j = int(parents[j])
    return chain[::-1]


def pose_to_qpos(h, rotations, positions):
    """Database pose(s) -> qpos [..., nq] of the humanoid `h` (a humanoid.Humanoid).
    rotations [..., J, 4], positions [..., J, 3] local, as in the database."""
    rot = np.asarray(rotations, np.float64)
    pos = np.asarray(positions, np.float64)
    lead = rot.shape[:-2]
    parents = h.skeleton.parents
    g = quat.identity(lead, np.float64)
    p = np.zeros(lead + (3,))
    for j in _root_chain(parents, h.root):          # global frame of the hips
        p = p + quat.rot(g, pos[..., j, :])
        g = quat.mul(g, rot[..., j, :])
    out = np.empty(lead + (h.nq,))
    out[..., 0:3] = vec_to_mj(p)
    out[..., 3:7] = quat.abs(quat.normalize(frame_to_mj(g)))
    hinge = np.array(h.joints[1:])
    r = quat.mul(quat.inv(h.rest_rotations[hinge].astype(np.float64)), rot[..., hinge, :])
    angles = np.empty(lead + (len(hinge), 3))
    for order, idx in _order_groups(h):
        angles[..., idx, :] = quat.to_euler(r[..., idx, :], order)
    out[..., 7:] = angles.reshape(lead + (-1,))
    return out


_LAYOUTS: dict = {}


def _hinge_layout(h):
    """(hinge body joints [B], rest rotations [B, 4] float64, hinge axes [B, 3, 3]), cached."""
    key = id(h)
    if key not in _LAYOUTS or _LAYOUTS[key][0] is not h:
        hinge = np.array(h.joints[1:])
        axes = np.eye(3)[[[{"x": 0, "y": 1, "z": 2}[c] for c in h.euler_orders[j]] for j in hinge]]
        _LAYOUTS[key] = (h, (hinge, h.rest_rotations[hinge].astype(np.float64), axes))
    return _LAYOUTS[key][1]


def _order_groups(h):
    """[(euler order, indices into the hinge bodies)] (one numpy call per order)."""
    orders = [h.euler_orders[j] for j in h.joints[1:]]
    return [(o, np.array([i for i, x in enumerate(orders) if x == o])) for o in sorted(set(orders))]


def hips_heading(h, hips_global_kin):
    """Simulation-bone rotation (about +Y) facing where the hips face."""
    fwd = quat.rot(hips_global_kin, h.hips_forward)
    return quat.from_angle_axis(np.arctan2(fwd[..., 0], fwd[..., 2]), UP_KIN)


def qpos_to_pose(h, qpos, root=None):
    """qpos [..., nq] -> (rotations [..., J, 4], positions [..., J, 3]) in the
    database layout. The simulation bone (joint 0) is the hips projected on the
    ground facing where the hips face, unless `root` = (rotation [...,4],
    position [...,3]) gives it. Joints that have no body keep their rest pose."""
    qpos = np.asarray(qpos, np.float64)
    lead = qpos.shape[:-1]
    j_count = h.skeleton.num_joints
    rot = np.broadcast_to(h.rest_rotations.astype(np.float64), lead + (j_count, 4)).copy()
    pos = np.broadcast_to(h.skeleton.offsets.astype(np.float64), lead + (j_count, 3)).copy()
    hinge, rest, axes = _hinge_layout(h)
    half = 0.5 * qpos[..., 7:].reshape(lead + (len(hinge), 3))
    e = np.concatenate([np.cos(half)[..., None], np.sin(half)[..., None] * axes], axis=-1)  # [..., B, 3, 4]
    r = quat.mul(quat.mul(e[..., 0, :], e[..., 1, :]), e[..., 2, :])   # hinges applied in order
    rot[..., hinge, :] = quat.mul(rest, r)
    g_h = quat.normalize(frame_from_mj(qpos[..., 3:7]))
    p_h = vec_from_mj(qpos[..., 0:3])
    if root is None:
        sim_rot = hips_heading(h, g_h)
        sim_pos = p_h * np.array([1.0, 0.0, 1.0])
    else:
        sim_rot = np.asarray(root[0], np.float64)
        sim_pos = np.asarray(root[1], np.float64)
    chain = _root_chain(h.skeleton.parents, h.root)
    # joints between the simulation bone and the hips (none in a database) keep rest
    g = sim_rot
    p = sim_pos
    for j in chain[1:-1]:
        p = p + quat.rot(g, pos[..., j, :])
        g = quat.mul(g, rot[..., j, :])
    rot[..., chain[0], :] = sim_rot
    pos[..., chain[0], :] = sim_pos
    rot[..., h.root, :] = quat.mul(quat.inv(g), g_h)
    pos[..., h.root, :] = quat.inv_rot(g, p_h - p)
    return rot.astype(np.float32), pos.astype(np.float32)


def qvel_from_qpos(h, qpos0, qpos1, dt):
    """Velocity taking qpos0 to qpos1 in dt (as mj_differentiatePos): hips linear
    velocity in the world, hips angular velocity in its body frame, hinge rates."""
    q0 = np.asarray(qpos0, np.float64)
    q1 = np.asarray(qpos1, np.float64)
    out = np.empty(q0.shape[:-1] + (h.nv,))
    out[..., 0:3] = (q1[..., 0:3] - q0[..., 0:3]) / dt
    out[..., 3:6] = quat.to_scaled_angle_axis(quat.mul(quat.inv(q0[..., 3:7]), q1[..., 3:7])) / dt
    out[..., 6:] = _wrap(q1[..., 7:] - q0[..., 7:]) / dt
    return out


def clip_qvel(h, qpos, dt):
    """qvel [T, nv] of a qpos sequence [T, nq] by central differences (one-sided
    at the ends), so that a reference state's velocity is that of the motion."""
    t = qpos.shape[0]
    if t == 1:
        return np.zeros((1, h.nv))
    fwd = qvel_from_qpos(h, qpos[:-1], qpos[1:], dt)         # [T-1]
    out = np.empty((t, h.nv))
    out[0] = fwd[0]
    out[-1] = fwd[-1]
    if t > 2:
        out[1:-1] = 0.5 * (fwd[:-1] + fwd[1:])
    return out


def ground_transform(rotation_y, position_xz):
    """A rigid ground motion (heading turn about up, then shift) as a kinematic
    (rotation [4], position [3]) pair: used to place a reference clip."""
    q = quat.from_angle_axis(float(rotation_y), UP_KIN)
    p = np.array([position_xz[0], 0.0, position_xz[1]])
    return q, p


def ground_motion_to_mj(turn, origin, target):
    """A kinematic ground motion x -> turn (x - origin) + target (turn about +Y)
    in MuJoCo axes: (turn_mj [4], origin_mj [3], target_mj [3]), to move
    MuJoCo-side reference arrays without converting them back and forth."""
    return rot_to_mj(turn), vec_to_mj(np.asarray(origin, np.float64)), vec_to_mj(np.asarray(target, np.float64))



# ------------------------------------------------------------------ the runtime's fast path
def _euler_layout(h):
    """Per hinge body: the equivalent extrinsic axes (i, j, k), proper flag and
    sign of `quat.to_euler` for its Euler order (cached on the humanoid)."""
    key = ("euler", id(h))
    if key in _LAYOUTS and _LAYOUTS[key][0] is h:
        return _LAYOUTS[key][1]
    hinge = np.array(h.joints[1:], np.int64)
    ijk = np.zeros((len(hinge), 3), np.int64)
    proper = np.zeros(len(hinge), np.bool_)
    sign = np.zeros(len(hinge), np.float64)
    for b, j in enumerate(hinge):
        i, jj, k = quat._euler_axes(h.euler_orders[j])[::-1]
        pr = i == k
        if pr:
            k = 3 - i - jj
        ijk[b] = i, jj, k
        proper[b] = pr
        sign[b] = (i - jj) * (jj - k) * (k - i) // 2
    rest_inv = quat.inv(h.rest_rotations[hinge].astype(np.float64))
    chain = np.array(_root_chain(h.skeleton.parents, h.root), np.int64)
    out = (hinge, rest_inv, ijk, proper, sign, chain)
    _LAYOUTS[key] = (h, out)
    return out


def pose_to_qpos_fast(h, rotations, positions, out=None):
    """`pose_to_qpos` of one pose ([J, 4], [J, 3]) in one compiled kernel (the
    live loop converts a new reference frame every tick; the numpy version
    spends ~0.3 ms in small-array overhead). Equal to `pose_to_qpos` within
    float64 rounding (a test checks it)."""
    from . import kernels
    hinge, rest_inv, ijk, proper, sign, chain = _euler_layout(h)
    out = np.empty(h.nq) if out is None else out
    kernels.pose_to_qpos(np.asarray(rotations, np.float64), np.asarray(positions, np.float64), chain, hinge,
                         rest_inv, ijk, proper, sign, out)
    return out


def qpos_to_pose_fast(h, qpos):
    """`qpos_to_pose` of one state (root=None) in one compiled kernel: the
    physics stage shows the simulated body every tick, and the numpy version
    spends ~0.3 ms in small-array overhead on it. Equal to `qpos_to_pose`
    within float32 rounding (a test checks it)."""
    from . import kernels
    key = ("to_pose", id(h))
    if key not in _LAYOUTS or _LAYOUTS[key][0] is not h:
        hinge, rest, axes = _hinge_layout(h)
        chain = np.array(_root_chain(h.skeleton.parents, h.root), np.int64)
        _LAYOUTS[key] = (h, (h.rest_rotations.astype(np.float64), h.skeleton.offsets.astype(np.float64),
                             hinge.astype(np.int64), rest, axes, chain, np.asarray(h.hips_forward, np.float64)))
    args = _LAYOUTS[key][1]
    j = h.skeleton.num_joints
    rot, pos = np.empty((j, 4), np.float32), np.empty((j, 3), np.float32)
    kernels.qpos_to_pose(np.asarray(qpos, np.float64), *args, rot, pos)
    return rot, pos
