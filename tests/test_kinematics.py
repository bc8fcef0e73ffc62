"""anim.kinematics: velocities, foot contacts and two-bone IK."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from anim import kinematics as kin, quat

SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def random_quats(rng, n):
    return unit(rng.normal(size=(n, 4)))


def test_fk_ik_are_quat_functions():
    assert kin.fk is quat.fk and kin.ik is quat.ik


# ---------------------------------------------------------------- velocities

@SETTINGS
@given(seeds, st.sampled_from([24.0, 30.0, 60.0, 120.0]), st.sampled_from([np.float32, np.float64]))
def test_linear_velocity_constant_and_quadratic(seed, fps, dtype):
    rng = np.random.default_rng(seed)
    t = np.arange(40)[:, None, None] / fps
    p0, v, acc = rng.normal(size=(3, 1, 5, 3))
    lin = (p0 + v * t).astype(dtype)
    vel = kin.linear_velocity(lin, fps)
    assert vel.shape == lin.shape and vel.dtype == dtype
    tol = 1e-9 if dtype == np.float64 else 2e-3 * fps / 30
    np.testing.assert_allclose(vel, np.broadcast_to(v, vel.shape), atol=tol)
    # quadratic: central differences are exact inside, one-sided ones are the half-step value
    quad = p0 + v * t + 0.5 * acc * t ** 2
    vq = kin.linear_velocity(quad, fps)
    np.testing.assert_allclose(vq[1:-1], (v + acc * t)[1:-1], atol=1e-8)
    np.testing.assert_allclose(vq[0], v[0] + acc[0] * 0.5 / fps, atol=1e-8)
    np.testing.assert_allclose(vq[-1], v[0] + acc[0] * (t[-1] - 0.5 / fps), atol=1e-8)


def test_velocities_of_short_clips():
    assert (kin.linear_velocity(np.ones((1, 2, 3)), 60) == 0).all()
    assert kin.angular_velocity(quat.identity((1, 2)), 60).shape == (1, 2, 3)
    v = kin.linear_velocity(np.array([[0.0, 0, 0], [1, 0, 0]]), 30)
    np.testing.assert_allclose(v, [[30, 0, 0], [30, 0, 0]])


@SETTINGS
@given(seeds, st.sampled_from([30.0, 60.0]), st.sampled_from([np.float32, np.float64]))
def test_angular_velocity_constant_rate(seed, fps, dtype):
    rng = np.random.default_rng(seed)
    omega = unit(rng.normal(size=(4, 3))) * rng.uniform(0, 0.9 * np.pi * fps / 2, (4, 1))  # < pi per 2 frames
    q0 = random_quats(rng, 4)
    t = np.arange(25)[:, None, None] / fps
    rot = quat.mul(quat.from_scaled_angle_axis(omega * t), q0).astype(dtype)  # world-frame spin
    w = kin.angular_velocity(rot, fps)
    assert w.shape == (25, 4, 3) and w.dtype == dtype
    rtol = 1e-9 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(w, np.broadcast_to(omega, w.shape), rtol=rtol, atol=rtol * fps)


# ---------------------------------------------------------------- contacts

def walk_feet(fps=60.0):
    """Two feet, 60 frames, hand-built.

    foot 0: planted at y=0.03 (frames 0-19) with a 2 cm slip between frames 10
            and 11, swings forward (20-39), planted again (40-59).
    foot 1: planted (0-14), swings at 0.3 m height, with a teleport down to the
            floor where it stands still for frames 28-31, swings on, lands at
            frame 57 (so it is still from frame 58: a 2-frame contact at the end).
    """
    T = 60
    p = np.zeros((T, 2, 3))
    p[:, :, 1] = 0.03
    # foot 0
    p[11:, 0, 0] += 0.02
    s = np.arange(20, 40)
    p[20:40, 0, 0] += 0.04 * (s - 19)
    p[20:40, 0, 1] += 0.15 * np.sin(np.pi * (s - 19) / 21)
    p[40:, 0, 0] = p[39, 0, 0] + 0.04
    # foot 1
    p[:, 1, 2] = 0.2
    for t in range(15, 57):
        p[t, 1, 0] = p[t - 1, 1, 0] + 0.03
        p[t, 1, 1] = 0.3
    p[28:32, 1, 0] = p[28, 1, 0]
    p[28:32, 1, 1] = 0.04
    p[32:57, 1, 0] = p[28, 1, 0] + 0.03 * np.arange(1, 26)
    p[57:, 1] = [p[56, 1, 0] + 0.03, 0.03, 0.2]
    return p, fps


def test_contacts_on_hand_built_walk_with_debounce():
    p, fps = walk_feet()
    raw = kin.detect_contacts(p, fps, min_frames=1)
    c = kin.detect_contacts(p, fps)
    assert c.shape == (60, 2) and c.dtype == bool
    # foot 0: the slip makes a 2-frame gap in the raw signal, filled by the debounce
    assert raw[:10, 0].all() and not raw[10:12, 0].any() and raw[12:19, 0].all()
    assert c[:19, 0].all()
    assert not c[20:40, 0].any() and c[41:, 0].all()
    # foot 1: a 2-frame blip during the swing is dropped; the 2-frame landing
    # touching the last frame is kept (its true length is unknown)
    assert raw[29:31, 1].all() and not raw[28, 1] and not raw[31, 1]
    assert c[:14, 1].all() and not c[14:58, 1].any() and c[58:, 1].all()
    c2 = kin.detect_contacts(p[:59], fps)  # now a 1-frame run at the end: kept
    assert c2[58, 1] and not c2[14:58, 1].any()
    # min_frames=2 keeps the 2-frame blip and the 2-frame gap
    c3 = kin.detect_contacts(p, fps, min_frames=2)
    assert c3[29:31, 1].all() and not c3[10:12, 0].any()


def test_contacts_ground_reference():
    p, fps = walk_feet()
    c = kin.detect_contacts(p, fps)
    shifted = p + [0, 1.5, 0]
    assert not kin.detect_contacts(shifted, fps).any()  # the feet are 1.5 m above y = 0
    np.testing.assert_array_equal(kin.detect_contacts(shifted, fps, ground=1.5), c)
    np.testing.assert_array_equal(kin.detect_contacts(shifted, fps, ground=None), c)  # per-foot lowest height
    np.testing.assert_array_equal(kin.detect_contacts(p.astype(np.float32), fps), c)


def test_contact_thresholds():
    fps, T = 60.0, 30
    t = np.arange(T) / fps
    feet = np.zeros((T, 4, 3))
    feet[:, 0, 1] = 0.09                      # still, just under the height threshold
    feet[:, 1, 1] = 0.11                      # still, just over it
    feet[:, 2, 0] = 0.10 * t                  # sliding at 0.10 m/s on the floor
    feet[:, 3, 0] = 0.20 * t                  # sliding at 0.20 m/s
    c = kin.detect_contacts(feet, fps)
    np.testing.assert_array_equal(c.all(axis=0), [True, False, True, False])
    np.testing.assert_array_equal(c.any(axis=0), [True, False, True, False])
    c = kin.detect_contacts(feet, fps, height_threshold=0.2, speed_threshold=0.25)
    assert c.all()
    assert kin.detect_contacts(np.zeros((0, 2, 3)), fps).shape == (0, 2)


# ---------------------------------------------------------------- two-bone IK

def random_chains(rng, n, reach=(0.05, 0.98)):
    a = rng.normal(size=(n, 3))
    l1, l2 = rng.uniform(0.2, 0.6, (2, n, 1))
    d1 = unit(rng.normal(size=(n, 3)))
    d2 = unit(rng.normal(size=(n, 3)))
    d2 = unit(np.where(np.abs(np.sum(d1 * d2, -1, keepdims=True)) > 0.95, np.cross(d1, d2) + d1, d2))
    b = a + l1 * d1
    c = b + l2 * d2
    lo, hi = np.abs(l1 - l2) + 0.02, (l1 + l2)
    r = lo + (hi - lo) * rng.uniform(*reach, (n, 1))
    target = a + r * unit(rng.normal(size=(n, 3)))
    qa, qb = random_quats(rng, n), random_quats(rng, n)
    return a, b, c, target, qa, qb, l1[:, 0], l2[:, 0]


def apply_ik(a, b, c, qa, qb, qa2, qb2):
    """New joint positions when the bones follow the new global rotations."""
    b2 = a + quat.rot(qa2, quat.inv_rot(qa, b - a))
    c2 = b2 + quat.rot(qb2, quat.inv_rot(qb, c - b))
    return b2, c2


@SETTINGS
@given(seeds, st.sampled_from([np.float32, np.float64]), st.booleans())
def test_two_bone_ik_reaches_target_and_keeps_lengths(seed, dtype, use_pole):
    rng = np.random.default_rng(seed)
    a, b, c, t, qa, qb, l1, l2 = [x.astype(dtype) for x in random_chains(rng, 64)]
    pole = unit(rng.normal(size=(64, 3))).astype(dtype) if use_pole else None
    qa2, qb2 = kin.two_bone_ik(a, b, c, t, qa, qb, pole)
    assert qa2.dtype == dtype and qb2.dtype == dtype and qa2.shape == (64, 4)
    np.testing.assert_allclose(np.linalg.norm(qa2, axis=-1), 1, atol=1e-6)
    f = lambda x: np.asarray(x, np.float64)  # noqa: E731
    b2, c2 = apply_ik(f(a), f(b), f(c), f(qa), f(qb), f(qa2), f(qb2))
    assert np.linalg.norm(c2 - t, axis=-1).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(b2 - a, axis=-1), l1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(c2 - b2, axis=-1), l2, atol=1e-5)
    # the middle joint is a hinge: its local rotation turns about the old plane normal
    local_delta = quat.mul(quat.mul(quat.inv(f(qa2)), f(qb2)), quat.inv(quat.mul(quat.inv(f(qa)), f(qb))))
    axis_world = quat.rot(f(qa), quat.log(quat.abs(local_delta)))
    normal = np.cross(f(c) - f(a), f(b) - f(a))
    assert np.abs(np.sum(unit(axis_world) * unit(normal), -1))[np.linalg.norm(axis_world, axis=-1) > 1e-4].min() > 0.999
    if use_pole:
        # the middle joint ends on the pole side, in the plane of the target line and the pole
        d = unit(f(t) - f(a))
        pole_perp = f(pole) - np.sum(f(pole) * d, -1, keepdims=True) * d
        assert (np.sum((b2 - f(a)) * pole_perp, -1) > 0).all()
        np.testing.assert_allclose(np.sum((b2 - f(a)) * np.cross(d, f(pole)), -1), 0, atol=1e-5)


@SETTINGS
@given(seeds)
def test_two_bone_ik_pure_bend_keeps_plane_and_direction(seed):
    """A target on the current a->c line only bends the chain: the plane and the
    a->c direction stay, so the swing is the smallest one."""
    rng = np.random.default_rng(seed)
    a, b, c, _, qa, qb, l1, l2 = random_chains(rng, 32)
    r = np.abs(l1 - l2) + 0.02 + (l1 + l2 - np.abs(l1 - l2) - 0.04) * rng.uniform(0, 1, 32)
    t = a + r[:, None] * unit(c - a)
    qa2, qb2 = kin.two_bone_ik(a, b, c, t, qa, qb)
    b2, c2 = apply_ik(a, b, c, qa, qb, qa2, qb2)
    np.testing.assert_allclose(c2, t, atol=1e-9)
    n0 = unit(np.cross(c - a, b - a))
    n1 = unit(np.cross(c2 - a, b2 - a))
    np.testing.assert_allclose(n1, n0, atol=1e-8)


@SETTINGS
@given(seeds, st.floats(1.001, 3.0))
def test_two_bone_ik_unreachable_target_gives_slightly_bent_chain(seed, stretch):
    rng = np.random.default_rng(seed)
    a, b, c, _, qa, qb, l1, l2 = random_chains(rng, 32)
    d = unit(rng.normal(size=(32, 3)))
    t = a + stretch * (l1 + l2)[:, None] * d
    qa2, qb2 = kin.two_bone_ik(a, b, c, t, qa, qb)
    b2, c2 = apply_ik(a, b, c, qa, qb, qa2, qb2)
    np.testing.assert_allclose(c2, a + 0.999 * (l1 + l2)[:, None] * d, atol=1e-9)
    knee = np.arccos(np.sum(unit(a - b2) * unit(c2 - b2), -1))
    assert (knee < np.pi - 0.02).all() and (knee > np.pi - 0.2).all()


def test_two_bone_ik_straight_chain_bends_towards_pole():
    a = np.array([0.0, 1.0, 0.0])
    b = np.array([0.0, 0.55, 0.0])
    c = np.array([0.0, 0.1, 0.0])
    qa = qb = quat.identity((), np.float64)
    t = np.array([0.0, 0.3, 0.1])
    for pole in ([0, 0, 1.0], [1.0, 0, 0], [0, 0, -1.0]):
        qa2, qb2 = kin.two_bone_ik(a, b, c, t, qa, qb, pole=np.array(pole))
        b2, c2 = apply_ik(a, b, c, qa, qb, qa2, qb2)
        np.testing.assert_allclose(c2, t, atol=1e-9)
        d = unit(t - a)
        knee_dir = (b2 - a) - np.dot(b2 - a, d) * d
        pole_perp = np.array(pole) - np.dot(pole, d) * d
        np.testing.assert_allclose(unit(knee_dir), unit(pole_perp), atol=1e-9)


def leg_skeleton():
    # 0 root, 1 hip, 2 knee, 3 ankle, 4 toe, 5 spine (a sibling branch)
    parents = np.array([-1, 0, 1, 2, 3, 0])
    offsets = np.array([[0, 1.0, 0], [0.1, -0.05, 0], [0, -0.45, 0.03],
                        [0, -0.45, -0.03], [0, -0.05, 0.12], [0, 0.2, 0]], dtype=np.float32)
    return parents, offsets


@SETTINGS
@given(seeds)
def test_two_bone_ik_pose_moves_the_ankle_only(seed):
    rng = np.random.default_rng(seed)
    parents, offsets = leg_skeleton()
    T = 16
    lrot = quat.from_scaled_angle_axis(rng.normal(scale=0.2, size=(T, 6, 3))).astype(np.float32)
    lpos = np.broadcast_to(offsets, (T, 6, 3)).copy()
    lpos[:, 0] += rng.normal(scale=0.1, size=(T, 3)).astype(np.float32)
    grot, gpos = quat.fk(lrot, lpos, parents)
    target = gpos[:, 3] + rng.uniform(-0.15, 0.15, (T, 3))
    reach = target - gpos[:, 1]  # keep it within 0.95 of the leg length from the hip
    dist = np.linalg.norm(reach, axis=-1, keepdims=True)
    target = (gpos[:, 1] + reach * np.minimum(1, 0.95 * 0.9 / dist)).astype(np.float32)
    before = lrot.copy()
    out = kin.two_bone_ik_pose(lrot, lpos, parents, 3, target, pole=np.array([0, 0, 1.0]))
    assert out.shape == lrot.shape and out.dtype == np.float32
    np.testing.assert_array_equal(lrot, before)  # input untouched
    _, gpos2 = quat.fk(out, lpos, parents)
    assert np.linalg.norm(gpos2[:, 3] - target, axis=-1).max() < 1e-4
    np.testing.assert_array_equal(out[:, [0, 3, 4, 5]], lrot[:, [0, 3, 4, 5]])
    np.testing.assert_allclose(gpos2[:, [0, 1, 5]], gpos[:, [0, 1, 5]], atol=1e-6)
    # one pose at a time gives the same answer as the batch
    one = kin.two_bone_ik_pose(lrot[3], lpos[3], parents, 3, target[3], pole=np.array([0, 0, 1.0]))
    np.testing.assert_allclose(one, out[3], atol=1e-6)


def test_two_bone_ik_pose_needs_a_grandparent():
    parents, offsets = leg_skeleton()
    with pytest.raises(ValueError):
        kin.two_bone_ik_pose(quat.identity(6), offsets, parents, 1, np.zeros(3))
