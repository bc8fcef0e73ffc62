"""anim.quat against scipy.spatial.transform.Rotation and against itself."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.transform import Rotation as R, Slerp

from anim import quat

SETTINGS = settings(max_examples=25, deadline=None)

TAIT_BRYAN = ["xyz", "xzy", "yxz", "yzx", "zxy", "zyx"]
PROPER = ["xyx", "xzx", "yxy", "yzy", "zxz", "zyz"]

# components that build axis-aligned quarter and half turns, the identity, and
# rotations a hair away from them (gimbal lock, trace -1, log near identity)
SPECIAL = [0.0, 1.0, -1.0, 0.5, -0.5, np.sqrt(0.5), -np.sqrt(0.5), 1e-9, -1e-9, 1e-4]


# ---------------------------------------------------------------- helpers

def to_scipy(q):
    return R.from_quat(np.asarray(q, dtype=np.float64)[..., [1, 2, 3, 0]])


def from_scipy(r):
    return r.as_quat()[..., [3, 0, 1, 2]]


def assert_same_rotation(q1, q2, atol=1e-6):
    """q1 == q2 or q1 == -q2, elementwise over the batch."""
    q1, q2 = np.asarray(q1, np.float64), np.asarray(q2, np.float64)
    err = np.minimum(np.abs(q1 - q2).max(axis=-1), np.abs(q1 + q2).max(axis=-1))
    assert err.max() <= atol, f"max error {err.max()}"


def random_quats(rng, n):
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


@st.composite
def quat_batches(draw, n=32):
    """n random unit quaternions plus a few special ones (axis-aligned turns, near identity)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    special = np.array(draw(st.lists(st.lists(st.sampled_from(SPECIAL), min_size=4, max_size=4),
                                     min_size=1, max_size=6)))
    special = special[np.linalg.norm(special, axis=-1) > 1e-6]
    special = special / np.linalg.norm(special, axis=-1, keepdims=True)
    return np.concatenate([random_quats(rng, n), special.reshape(-1, 4)])


seeds = st.integers(0, 2 ** 32 - 1)


# ---------------------------------------------------------------- products and rotation of vectors

@SETTINGS
@given(quat_batches(), seeds)
def test_mul_matches_scipy(q, seed):
    p = random_quats(np.random.default_rng(seed), len(q))
    assert_same_rotation(quat.mul(q, p), from_scipy(to_scipy(q) * to_scipy(p)), 1e-12)


@SETTINGS
@given(quat_batches(), seeds)
def test_rot_and_inv_rot_match_scipy(q, seed):
    v = np.random.default_rng(seed).normal(size=(len(q), 3)) * 3
    np.testing.assert_allclose(quat.rot(q, v), to_scipy(q).apply(v), atol=1e-12)
    np.testing.assert_allclose(quat.inv_rot(q, v), to_scipy(q).inv().apply(v), atol=1e-12)
    np.testing.assert_allclose(quat.inv_rot(q, quat.rot(q, v)), v, atol=1e-12)
    # rot composes like mul: rot(a * b, v) == rot(a, rot(b, v))
    b = np.roll(q, 1, axis=0)
    np.testing.assert_allclose(quat.rot(quat.mul(q, b), v), quat.rot(q, quat.rot(b, v)), atol=1e-12)


@SETTINGS
@given(quat_batches())
def test_inv_abs_dot_normalize(q):
    np.testing.assert_allclose(quat.mul(q, quat.inv(q)), quat.identity(len(q), np.float64), atol=1e-12)
    a = quat.abs(-q)
    assert (a[:, 0] >= 0).all()
    assert_same_rotation(a, q, 0)
    np.testing.assert_allclose(quat.dot(q, q), 1, atol=1e-12)
    np.testing.assert_allclose(quat.normalize(q * 3.5), q, atol=1e-12)


def test_identity_and_normalize_zero():
    i = quat.identity((2, 3))
    assert i.shape == (2, 3, 4) and i.dtype == np.float32
    assert (i == [1, 0, 0, 0]).all()
    assert quat.identity().shape == (4,)
    assert np.isfinite(quat.normalize(np.zeros(4))).all()


def test_broadcasting_over_leading_dims():
    rng = np.random.default_rng(0)
    q = random_quats(rng, 15).reshape(3, 5, 4)
    p = random_quats(rng, 5)
    v = rng.normal(size=(3, 1, 3))
    assert quat.mul(q, p).shape == (3, 5, 4)
    np.testing.assert_allclose(quat.mul(q, p)[2, 4], quat.mul(q[2, 4], p[4]), atol=1e-15)
    assert quat.rot(q, v).shape == (3, 5, 3)
    np.testing.assert_allclose(quat.rot(q, v)[1, 3], quat.rot(q[1, 3], v[1, 0]), atol=1e-15)
    assert quat.slerp(q, p, np.full((3, 1), 0.3)).shape == (3, 5, 4)
    assert quat.to_matrix(q).shape == (3, 5, 3, 3)
    assert quat.from_euler(rng.normal(size=(3, 5, 3)), "zxy").shape == (3, 5, 4)
    assert quat.to_euler(q, "zxy").shape == (3, 5, 3)


# every function keeps float32 and float64
_Q = random_quats(np.random.default_rng(1), 6)
_V = np.random.default_rng(2).normal(size=(6, 3))
_CASES = {
    "normalize": lambda d: quat.normalize(_Q.astype(d)),
    "mul": lambda d: quat.mul(_Q.astype(d), _Q[::-1].astype(d)),
    "inv": lambda d: quat.inv(_Q.astype(d)),
    "rot": lambda d: quat.rot(_Q.astype(d), _V.astype(d)),
    "inv_rot": lambda d: quat.inv_rot(_Q.astype(d), _V.astype(d)),
    "abs": lambda d: quat.abs(_Q.astype(d)),
    "dot": lambda d: quat.dot(_Q.astype(d), _Q.astype(d)),
    "slerp": lambda d: quat.slerp(_Q.astype(d), _Q[::-1].astype(d), np.float32(0.3)),
    "slerp_py_t": lambda d: quat.slerp(_Q.astype(d), _Q[::-1].astype(d), 0.3),
    "nlerp": lambda d: quat.nlerp(_Q.astype(d), _Q[::-1].astype(d), 0.3),
    "from_angle_axis": lambda d: quat.from_angle_axis(_V[:, 0].astype(d), _V.astype(d)),
    "to_angle_axis": lambda d: quat.to_angle_axis(_Q.astype(d))[0],
    "to_angle_axis_axis": lambda d: quat.to_angle_axis(_Q.astype(d))[1],
    "exp": lambda d: quat.exp(_V.astype(d)),
    "log": lambda d: quat.log(_Q.astype(d)),
    "from_scaled_angle_axis": lambda d: quat.from_scaled_angle_axis(_V.astype(d)),
    "to_scaled_angle_axis": lambda d: quat.to_scaled_angle_axis(_Q.astype(d)),
    "from_euler": lambda d: quat.from_euler(_V.astype(d), "zxy"),
    "to_euler": lambda d: quat.to_euler(_Q.astype(d), "zxy"),
    "to_matrix": lambda d: quat.to_matrix(_Q.astype(d)),
    "from_matrix": lambda d: quat.from_matrix(quat.to_matrix(_Q.astype(d))),
    "to_6d": lambda d: quat.to_6d(_Q.astype(d)),
    "from_6d": lambda d: quat.from_6d(quat.to_6d(_Q.astype(d))),
    "between": lambda d: quat.between(_V.astype(d), _V[::-1].astype(d)),
    "angular_velocity": lambda d: quat.angular_velocity(_Q.astype(d), _Q[::-1].astype(d), 1 / 60),
    "fk": lambda d: quat.fk(_Q.astype(d), _V.astype(d), np.arange(-1, 5))[1],
    "ik": lambda d: quat.ik(_Q.astype(d), _V.astype(d), np.arange(-1, 5))[0],
}


@pytest.mark.parametrize("name", sorted(_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(name, dtype):
    out = _CASES[name](dtype)
    assert out.dtype == dtype, f"{name}: {dtype.__name__} in, {out.dtype} out"
    assert np.isfinite(out).all()


# ---------------------------------------------------------------- interpolation

@SETTINGS
@given(quat_batches(), seeds)
def test_slerp_endpoints_midpoint_and_speed(q, seed):
    rng = np.random.default_rng(seed)
    p = random_quats(rng, len(q))
    assert_same_rotation(quat.slerp(q, p, 0.0), q, 1e-12)
    assert_same_rotation(quat.slerp(q, p, 1.0), p, 1e-12)
    for a, b in zip(q, p):  # against scipy's Slerp (shortest path, constant angular rate)
        mid = from_scipy(Slerp([0, 1], to_scipy(np.stack([a, b])))([0.5]))[0]
        assert_same_rotation(quat.slerp(a, b, 0.5), mid, 1e-9)
    # constant angular rate along the shortest path, unit norm, sign of b irrelevant
    t = rng.uniform(0, 1, len(q))
    s = quat.slerp(q, p, t)
    np.testing.assert_allclose(np.linalg.norm(s, axis=-1), 1, atol=1e-12)
    full = np.linalg.norm(quat.to_scaled_angle_axis(quat.mul(p, quat.inv(q))), axis=-1)
    part = np.linalg.norm(quat.to_scaled_angle_axis(quat.mul(s, quat.inv(q))), axis=-1)
    np.testing.assert_allclose(part, t * full, atol=1e-9)
    np.testing.assert_allclose(quat.slerp(q, -p, t), s, atol=1e-12)


@SETTINGS
@given(quat_batches(), st.floats(-1, 2))
def test_slerp_of_identical_or_near_quats_is_stable(q, t):
    np.testing.assert_allclose(quat.slerp(q, q, t), q, atol=1e-12)
    np.testing.assert_allclose(quat.slerp(q, -q, t), q, atol=1e-12)
    tiny = quat.mul(quat.from_scaled_angle_axis(np.array([1e-9, -2e-9, 5e-10])), q)
    s = quat.slerp(q, tiny, t)
    assert np.isfinite(s).all()
    np.testing.assert_allclose(np.linalg.norm(s, axis=-1), 1, atol=1e-12)
    np.testing.assert_allclose(s, q, atol=1e-8)
    s32 = quat.slerp(q.astype(np.float32), tiny.astype(np.float32), np.float32(t))
    np.testing.assert_allclose(np.linalg.norm(s32, axis=-1), 1, atol=1e-6)


@SETTINGS
@given(quat_batches(), seeds)
def test_nlerp(q, seed):
    p = random_quats(np.random.default_rng(seed), len(q))
    assert_same_rotation(quat.nlerp(q, p, 0.0), q, 1e-12)
    assert_same_rotation(quat.nlerp(q, p, 1.0), p, 1e-12)
    # the midpoint of nlerp is the midpoint of slerp (symmetry), on the short path
    np.testing.assert_allclose(quat.nlerp(q, p, 0.5), quat.slerp(q, p, 0.5), atol=1e-12)
    np.testing.assert_allclose(quat.nlerp(q, -p, 0.5), quat.nlerp(q, p, 0.5), atol=1e-12)


# ---------------------------------------------------------------- angle-axis, exp, log

@SETTINGS
@given(quat_batches())
def test_angle_axis_roundtrip_and_scipy(q):
    angle, axis = quat.to_angle_axis(q)
    assert ((angle >= 0) & (angle <= 2 * np.pi)).all()
    np.testing.assert_allclose(np.linalg.norm(axis, axis=-1), 1, atol=1e-12)
    np.testing.assert_allclose(quat.from_angle_axis(angle, axis), q, atol=1e-12)
    assert_same_rotation(quat.from_angle_axis(angle, axis * 7), from_scipy(R.from_rotvec(axis * angle[:, None])), 1e-12)


@SETTINGS
@given(seeds, st.sampled_from([1e-12, 1e-6, 1e-2, 1.0, 3.0]))
def test_exp_log_roundtrip(seed, scale):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(64, 3))
    v *= np.minimum(scale, 3.1) / np.linalg.norm(v, axis=-1, keepdims=True) * rng.uniform(0, 1, (64, 1))
    np.testing.assert_allclose(quat.log(quat.exp(v)), v, rtol=1e-9, atol=1e-15)
    e = quat.exp(v)
    np.testing.assert_allclose(np.linalg.norm(e, axis=-1), 1, atol=1e-12)
    q = random_quats(rng, 64)
    np.testing.assert_allclose(quat.exp(quat.log(q)), q, atol=1e-12)
    # exp(v) is a rotation by 2|v| about v
    assert_same_rotation(e, from_scipy(R.from_rotvec(2 * v)), 1e-12)
    # float32 near identity: no loss of the direction, no nan
    v32 = (v * 1e-3).astype(np.float32)
    np.testing.assert_allclose(quat.log(quat.exp(v32)), v32, rtol=1e-5, atol=1e-12)


def test_log_of_identity_and_minus_identity():
    assert (quat.log(np.array([1.0, 0, 0, 0])) == 0).all()
    assert (quat.log(np.array([-1.0, 0, 0, 0])) == 0).all()
    assert (quat.exp(np.zeros(3)) == [1, 0, 0, 0]).all()


@SETTINGS
@given(quat_batches())
def test_scaled_angle_axis_matches_scipy_rotvec(q):
    v = quat.to_scaled_angle_axis(q)
    assert (np.linalg.norm(v, axis=-1) <= np.pi + 1e-12).all()
    assert_same_rotation(quat.from_scaled_angle_axis(v), q, 1e-12)
    assert_same_rotation(quat.from_scaled_angle_axis(v), from_scipy(R.from_rotvec(v)), 1e-12)
    sv = to_scipy(q).as_rotvec()
    ok = np.linalg.norm(sv, axis=-1) < np.pi - 1e-6  # at pi, v and -v are the same rotation
    np.testing.assert_allclose(v[ok], sv[ok], atol=1e-9)


@SETTINGS
@given(quat_batches(), st.floats(1e-3, 1.0), seeds)
def test_angular_velocity(q, dt, seed):
    w = np.random.default_rng(seed).normal(size=(len(q), 3))
    w *= np.random.default_rng(seed).uniform(0, 3.0, (len(q), 1)) / np.linalg.norm(w, axis=-1, keepdims=True) / dt
    q1 = quat.mul(quat.from_scaled_angle_axis(w * dt), q)  # world-frame rotation applied after q
    np.testing.assert_allclose(quat.angular_velocity(q, q1, dt), w, rtol=1e-9, atol=1e-9 / dt)
    np.testing.assert_allclose(quat.angular_velocity(q, -q1, dt), w, rtol=1e-9, atol=1e-9 / dt)


# ---------------------------------------------------------------- between

@SETTINGS
@given(seeds, st.sampled_from([np.float32, np.float64]))
def test_between(seed, dtype):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(64, 3)) * rng.uniform(0.1, 10, (64, 1))
    b = rng.normal(size=(64, 3))
    b[:8] = -a[:8] * 2                   # exactly opposite
    b[8:16] = a[8:16] * 3                # parallel
    b[16:24] = -a[16:24] + 1e-7 * rng.normal(size=(8, 3))  # nearly opposite
    axes = np.eye(3)[rng.integers(0, 3, 8)]
    a[24:32], b[24:32] = axes, -axes     # opposite basis vectors
    a, b = a.astype(dtype), b.astype(dtype)
    q = quat.between(a, b)
    assert q.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-9
    an = a / np.linalg.norm(a, axis=-1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=-1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1, atol=tol)
    np.testing.assert_allclose(quat.rot(q, an), bn, atol=tol * 30)
    # shortest: the rotation angle is the angle between the vectors
    angle = np.linalg.norm(quat.to_scaled_angle_axis(q.astype(np.float64)), axis=-1)
    expect = np.arccos(np.clip(np.sum(an.astype(np.float64) * bn, axis=-1), -1, 1))
    np.testing.assert_allclose(angle[32:], expect[32:], atol=tol)
    np.testing.assert_allclose(angle[:8], np.pi, atol=tol)
    np.testing.assert_allclose(angle[8:16], 0, atol=tol)


# ---------------------------------------------------------------- Euler angles

@pytest.mark.parametrize("order", TAIT_BRYAN + PROPER)
@settings(max_examples=10, deadline=None)
@given(seeds)
def test_from_euler_matches_scipy(order, seed):
    e = np.random.default_rng(seed).uniform(-4, 4, (64, 3))
    q = quat.from_euler(e, order)
    assert_same_rotation(q, from_scipy(R.from_euler(order.upper(), e)), 1e-12)
    assert_same_rotation(quat.from_euler(e, order.upper()), q, 0)
    # the product of elementary rotations, first axis outermost
    qs = [quat.from_angle_axis(e[:, i], np.eye(3)[{"x": 0, "y": 1, "z": 2}[c]]) for i, c in enumerate(order)]
    assert_same_rotation(quat.mul(qs[0], quat.mul(qs[1], qs[2])), q, 1e-12)


@pytest.mark.parametrize("order", TAIT_BRYAN + PROPER)
@settings(max_examples=10, deadline=None)
@given(quat_batches())
def test_to_euler_matches_scipy_and_roundtrips(order, q):
    e = quat.to_euler(q, order)
    assert ((e >= -np.pi) & (e <= np.pi)).all()
    # round trip through the rotation (angles are not unique at gimbal lock)
    np.testing.assert_allclose(quat.to_matrix(quat.from_euler(e, order)), quat.to_matrix(q), atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        se = to_scipy(q).as_euler(order.upper())
    # away from gimbal lock the angles are unique (mod 2 pi): compare with scipy
    mid = e[:, 1] + (np.pi / 2 if order in TAIT_BRYAN else 0)
    regular = (np.abs(mid) > 1e-4) & (np.abs(mid - np.pi) > 1e-4)
    diff = (e - se + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(diff[regular], 0, atol=1e-8)


@pytest.mark.parametrize("order", TAIT_BRYAN + PROPER)
@settings(max_examples=10, deadline=None)
@given(seeds, st.sampled_from([np.float32, np.float64]))
def test_to_euler_at_gimbal_lock(order, seed, dtype):
    rng = np.random.default_rng(seed)
    e = rng.uniform(-np.pi, np.pi, (32, 3))
    lock = [-np.pi / 2, np.pi / 2] if order in TAIT_BRYAN else [0.0, np.pi]
    e[:, 1] = np.array(lock)[rng.integers(0, 2, 32)] + rng.choice([0, 1e-9, -1e-7, 1e-5], 32)
    q = quat.from_euler(e, order).astype(dtype)
    back = quat.to_euler(q, order)
    assert back.dtype == dtype and np.isfinite(back).all()
    tol = 1e-9 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(quat.to_matrix(quat.from_euler(back.astype(np.float64), order)),
                               quat.to_matrix(q.astype(np.float64)), atol=tol)


def test_euler_order_is_validated():
    for bad in ["xy", "xxy", "abc", "xyzx", "yzz"]:
        with pytest.raises(ValueError):
            quat.from_euler(np.zeros(3), bad)
        with pytest.raises(ValueError):
            quat.to_euler(np.array([1.0, 0, 0, 0]), bad)


def test_from_euler_bvh_zxy_example():
    # BVH "Zrotation Xrotation Yrotation": R = Rz(a) Rx(b) Ry(c)
    a, b, c = 0.3, -0.7, 1.1
    rz = R.from_rotvec([0, 0, a]).as_matrix()
    rx = R.from_rotvec([b, 0, 0]).as_matrix()
    ry = R.from_rotvec([0, c, 0]).as_matrix()
    np.testing.assert_allclose(quat.to_matrix(quat.from_euler(np.array([a, b, c]), "zxy")), rz @ rx @ ry, atol=1e-12)


# ---------------------------------------------------------------- matrices and 6D

@SETTINGS
@given(quat_batches())
def test_matrix_matches_scipy_and_roundtrips(q):
    m = quat.to_matrix(q)
    np.testing.assert_allclose(m, to_scipy(q).as_matrix(), atol=1e-12)
    back = quat.from_matrix(m)
    assert (back[:, 0] >= 0).all()
    assert_same_rotation(back, q, 1e-12)
    # float32 stays accurate, including half turns (trace -1, where w ~ 0)
    back32 = quat.from_matrix(m.astype(np.float32))
    assert_same_rotation(back32, q, 2e-6)


def test_from_matrix_half_turns():
    for axis in np.concatenate([np.eye(3), [[1, 1, 0], [0, 1, -1], [1, 1, 1]]]):
        axis = axis / np.linalg.norm(axis)
        m = R.from_rotvec(np.pi * axis).as_matrix()
        assert_same_rotation(quat.from_matrix(m), np.r_[0, axis], 1e-12)


@SETTINGS
@given(quat_batches(), seeds)
def test_6d(q, seed):
    x = quat.to_6d(q)
    m = quat.to_matrix(q)
    np.testing.assert_allclose(x[:, :3], m[:, :, 0], atol=0)
    np.testing.assert_allclose(x[:, 3:], m[:, :, 1], atol=0)
    assert_same_rotation(quat.from_6d(x), q, 1e-12)
    # Gram-Schmidt on a perturbed, scaled 6D vector: col0 follows x[:3], col1 lies in span(x[:3], x[3:])
    rng = np.random.default_rng(seed)
    y = x * rng.uniform(0.5, 2, (len(x), 1)) + rng.normal(scale=0.05, size=x.shape)
    my = quat.to_matrix(quat.from_6d(y))
    np.testing.assert_allclose(my[:, :, 0], y[:, :3] / np.linalg.norm(y[:, :3], axis=-1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(np.einsum("ni,ni->n", np.cross(y[:, :3], y[:, 3:]), my[:, :, 1]), 0, atol=1e-12)
    assert (np.einsum("ni,ni->n", y[:, 3:], my[:, :, 1]) > 0).all()


# ---------------------------------------------------------------- forward and inverse kinematics

def random_tree(rng, j):
    parents = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, j)])
    if j > 3:
        parents[j // 2] = -1  # a second root
    return parents


def fk_reference(lrot, lpos, parents):
    """Plain per-joint FK with scipy rotations."""
    grot, gpos = [], []
    for j, p in enumerate(parents):
        r = to_scipy(lrot[..., j, :])
        if p < 0:
            grot.append(r)
            gpos.append(lpos[..., j, :])
        else:
            grot.append(grot[p] * r)
            gpos.append(grot[p].apply(lpos[..., j, :]) + gpos[p])
    return np.stack([from_scipy(g) for g in grot], axis=-2), np.stack(gpos, axis=-2)


@SETTINGS
@given(seeds, st.integers(1, 12))
def test_fk_matches_reference_and_ik_inverts(seed, j):
    rng = np.random.default_rng(seed)
    parents = random_tree(rng, j)
    lrot = random_quats(rng, 5 * j).reshape(5, j, 4)
    lpos = rng.normal(size=(5, j, 3))
    grot, gpos = quat.fk(lrot, lpos, parents)
    rg, rp = fk_reference(lrot, lpos, parents)
    assert_same_rotation(grot, rg, 1e-12)
    np.testing.assert_allclose(gpos, rp, atol=1e-12)
    lr, lp = quat.ik(grot, gpos, parents)
    np.testing.assert_allclose(lr, lrot, atol=1e-12)
    np.testing.assert_allclose(lp, lpos, atol=1e-12)
    g2 = quat.fk(*quat.ik(grot, gpos, parents), parents)
    np.testing.assert_allclose(g2[0], grot, atol=1e-12)
    np.testing.assert_allclose(g2[1], gpos, atol=1e-12)


def test_fk_broadcasts_offsets_and_batches():
    rng = np.random.default_rng(3)
    parents = np.array([-1, 0, 1, 1, 3])
    lrot = random_quats(rng, 2 * 3 * 5).reshape(2, 3, 5, 4).astype(np.float32)
    offsets = rng.normal(size=(5, 3)).astype(np.float32)
    grot, gpos = quat.fk(lrot, offsets, parents)
    assert grot.shape == (2, 3, 5, 4) and gpos.shape == (2, 3, 5, 3) and gpos.dtype == np.float32
    g1 = quat.fk(lrot[1, 2], offsets, parents)
    np.testing.assert_allclose(gpos[1, 2], g1[1], atol=1e-6)
    # a chain along +x with a quarter turn about y at the root: x -> -z
    q = quat.identity(5, np.float64)
    q[0] = quat.from_angle_axis(np.pi / 2, np.array([0, 1.0, 0]))
    pos = np.array([[1.0, 2, 3], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    _, gp = quat.fk(q, pos, parents)
    np.testing.assert_allclose(gp, [[1, 2, 3], [1, 2, 2], [1, 2, 1], [1, 3, 2], [2, 3, 2]], atol=1e-12)
    with pytest.raises(ValueError):
        quat.fk(lrot, offsets, parents[:4])
