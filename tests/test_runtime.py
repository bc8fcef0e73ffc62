"""The per-tick runtime of kinematic controllers: numba quaternion helpers,
springs, inertialization, root adjustment, foot locking and the
acceleration limit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anim import quat
from anim import quat_nb as qn
from anim import spring
from controllers.motion_matching import kernels as k
from controllers.motion_matching.runtime import (AccelerationLimiter, FootLocks, Inertializer, RuntimeConfig,
                                                 Simulation, adjusted_root)

finite = st.floats(-3.0, 3.0, allow_nan=False)
vec3 = st.tuples(finite, finite, finite).map(lambda t: np.array(t))
unit_q = st.tuples(finite, finite, finite, finite).filter(lambda t: sum(x * x for x in t) > 1e-2).map(
    lambda t: np.array(t) / np.linalg.norm(t))


@settings(max_examples=60, deadline=None)
@given(unit_q, unit_q, vec3)
def test_numba_quaternions_agree_with_the_reference(a, b, v):
    assert np.allclose(qn.mul(a, b), quat.mul(a, b), atol=1e-12)
    assert np.allclose(qn.rot(a, v), quat.rot(a, v), atol=1e-9)
    assert np.allclose(qn.inv_rot(a, v), quat.inv_rot(a, v), atol=1e-9)
    assert np.allclose(qn.to_scaled_angle_axis(a), quat.to_scaled_angle_axis(a), atol=1e-7)
    assert np.allclose(qn.from_scaled_angle_axis(v), quat.from_scaled_angle_axis(v), atol=1e-9)
    assert np.allclose(qn.log(a), quat.log(a), atol=1e-7)
    assert np.allclose(qn.exp(v), quat.exp(v), atol=1e-9)


def test_spring_prediction_is_exact_in_time():
    """Predicting k dt ahead equals k updates of dt (the springs are closed form)."""
    cfg = RuntimeConfig()
    sim = Simulation()
    sim.velocity[:] = [0.3, 0, 0.1]
    v_goal = np.array([0.0, 0.0, 2.0])
    r_goal = quat.from_angle_axis(np.pi * 0.75, np.array([0.0, 1, 0])).astype(np.float64)
    pos, rot = sim.predict(v_goal, r_goal, cfg, [20, 40], 60.0)
    for _ in range(40):
        sim.update(v_goal, r_goal, cfg, 1 / 60)
    assert np.allclose(sim.position, pos[1], atol=1e-9)
    assert abs(abs(np.dot(sim.rotation, rot[1])) - 1) < 1e-9
    for _ in range(600):
        sim.update(v_goal, r_goal, cfg, 1 / 60)
    assert np.allclose(sim.velocity, v_goal, atol=1e-4)                   # converges to the goal
    assert abs(abs(np.dot(sim.rotation, r_goal)) - 1) < 1e-6
    # and the numpy reference in anim.spring agrees
    x, v, a = spring.spring_character_update(np.zeros(3), np.zeros(3), np.zeros(3), v_goal, 0.27, 0.5)
    assert np.allclose(k.spring_position(np.zeros(3), np.zeros(3), np.zeros(3), v_goal, 0.27, 0.5)[0], x)


def _pose(rng, j=5):
    rot = quat.normalize(rng.normal(size=(j, 4))).astype(np.float32)
    pos = rng.normal(size=(j, 3)).astype(np.float32)
    vel = rng.normal(size=(j, 3)).astype(np.float32)
    avel = rng.normal(size=(j, 3)).astype(np.float32)
    return rot, pos, vel, avel


def test_inertialized_transition_does_not_pop_and_then_decays():
    rng = np.random.default_rng(0)
    a, b = _pose(rng), _pose(rng)
    ine = Inertializer(5, halflife=0.1)
    ine.reset(*a, root_pos=np.array([1.0, 0, 2]), root_rot=np.array([1.0, 0, 0, 0]))
    ine.update(*a, 1 / 60)
    shown_rot, shown_pos, shown_vel = ine.out_rot.copy(), ine.out_pos.copy(), ine.out_vel.copy()
    ine.transition(*b)
    ine.update(*b, 0.0)                      # the same instant: nothing may jump
    assert np.allclose(np.abs(np.sum(ine.out_rot * shown_rot, -1)), 1, atol=1e-6)
    assert np.allclose(ine.out_pos, shown_pos, atol=1e-6)
    assert np.allclose(ine.out_vel, shown_vel, atol=1e-6)
    # one tick later the pose has moved by about velocity * dt, not to b
    ine.update(*b, 1 / 60)
    assert np.abs(ine.out_pos[1:] - shown_pos[1:]).max() < 0.2
    for _ in range(300):                      # 5 s: offsets are gone, b's local pose shows
        ine.update(*b, 1 / 60)
    assert np.allclose(ine.out_pos[1:], b[1][1:], atol=1e-4)
    assert np.allclose(np.abs(np.sum(ine.out_rot[1:] * b[0][1:], -1)), 1, atol=1e-5)
    # the root keeps where the character was: b's root placed at the transition point
    assert np.linalg.norm(ine.out_pos[0] - shown_pos[0]) < 0.5


def test_an_arm_offset_decays_no_harder_than_its_bound():
    """A transition leaves an arm joint (lever 0.5 m to the hand) 1 rad away
    from the new clip, and a hip joint (lever 0: the legs keep the base
    halflife) the same: the arm's offset starts decaying at most at
    accel / lever rad/s^2 (on the 0.1 s halflife: 192 rad/s^2, a hand spike of
    96 m/s^2), the hip's on the 0.1 s halflife; both reach the clip."""
    j, dt, accel = 3, 1 / 60, 30.0
    ident = np.tile(np.array([1.0, 0, 0, 0], np.float32), (j, 1))
    zeros = np.zeros((j, 3), np.float32)
    bent = ident.copy()
    bent[1] = bent[2] = quat.from_angle_axis(1.0, np.array([1.0, 0, 0]))
    ine = Inertializer(j, halflife=0.1, levers=[0.0, 0.0, 0.5], accel=accel)
    ine.reset(bent, zeros, zeros, zeros)
    ine.transition(ident, zeros, zeros, zeros)
    assert ine.halflives[0] == ine.halflives[1] == 0.1 and ine.halflives[2] > 0.1
    angles = []
    for _ in range(120):
        ine.update(ident, zeros, zeros, zeros, dt)
        angles.append([2 * np.arccos(min(abs(float(ine.out_rot[i, 0])), 1.0)) for i in (1, 2)])
    angles = np.array(angles)
    acc = np.abs(np.diff(np.concatenate([[[1.0, 1.0]], angles]), 2, axis=0)) / dt ** 2
    assert acc[:, 1].max() * 0.5 <= 1.1 * accel                 # the arm: bounded (m/s^2 at the hand)
    assert acc[:, 0].max() > 100.0                              # the hip (lever 0): the base halflife's pull
    assert angles[5, 0] < angles[5, 1]                          # which is faster
    assert angles[-1].max() < 1e-3                              # both reach the clip


def test_root_adjustment_is_bounded_and_does_not_slide_a_standing_character():
    cfg = RuntimeConfig()
    sim = Simulation(position=np.array([1.0, 0, 0]))
    ident = np.array([1.0, 0, 0, 0])
    # standing still: no pull at all
    pos, rot = adjusted_root(np.zeros(3), ident, np.zeros(3), sim, cfg, 1 / 60)
    assert np.allclose(pos, [1.0 - cfg.clamp_distance, 0, 0])   # only the clamp applies
    sim2 = Simulation(position=np.array([0.05, 0, 0]))
    pos, _ = adjusted_root(np.zeros(3), ident, np.zeros(3), sim2, cfg, 1 / 60)
    assert np.allclose(pos, 0)
    # moving at 1 m/s: pulled by at most adjust_max_ratio * speed * dt
    pos, _ = adjusted_root(np.zeros(3), ident, np.array([0.0, 0, 1.0]), sim2, cfg, 1 / 60)
    assert 0 < pos[0] <= cfg.adjust_max_ratio * 1.0 / 60 + 1e-9


def test_the_clamp_to_the_simulation_slows_the_root_gently():
    """A clip walking at 1 m/s away from a simulation that stands still (no
    pull: adjust_max_ratio 0): the root stays within clamp_distance of the
    simulation and comes to rest there without a one-frame stop (the hard
    clamp took 1 m/s to 0 in a frame, 60 m/s^2: the 45-75 m/s^2 root hitches
    of the turns script)."""
    import dataclasses
    cfg = dataclasses.replace(RuntimeConfig(), adjust_max_ratio=0.0)
    sim = Simulation(position=np.zeros(3))
    ident = np.array([1.0, 0, 0, 0])
    dt, pos, path = 1 / 60, np.zeros(3), []
    for _ in range(60):
        pos, _ = adjusted_root(pos + np.array([0.0, 0, 1.0]) * dt, ident, np.array([0.0, 0, 1.0]), sim, cfg, dt)
        path.append(pos[2])
    path = np.array(path)
    assert path.max() <= cfg.clamp_distance + 1e-9
    assert path[-1] > 0.7 * cfg.clamp_distance              # held near the limit ...
    assert path[-1] - path[-2] < 1e-3                         # ... at rest, where the pull matches the drift
    acc = np.abs(np.diff(path, 2)) / dt ** 2
    assert acc.max() < 25.0, acc.max()
    assert np.all(np.diff(path) >= -1e-12)                    # never pulled back past where it was


def _leg():
    # root, hip, knee, ankle, toe: a leg hanging down with a knee bend
    parents = np.array([-1, 0, 1, 2, 3])
    rot = np.tile(np.array([1.0, 0, 0, 0], np.float32), (5, 1))
    pos = np.array([[0, 0, 0], [0.1, 0.9, 0], [0, -0.42, 0.1], [0, -0.42, -0.1], [0, -0.04, 0.12]], np.float32)
    return parents, rot, pos


def test_two_bone_ik_kernel_reaches_and_keeps_bone_lengths():
    parents, rot, pos = _leg()
    out = rot.astype(np.float64).copy()
    target = np.array([0.2, 0.2, 0.25])
    k.two_bone_ik(out, pos, parents, 3, target, np.array([0.0, 0, 1]), 0.999)
    _, g = quat.fk(out, pos, parents)
    assert np.allclose(g[3], target, atol=1e-5)
    _, g0 = quat.fk(rot, pos, parents)
    for a, b in ((1, 2), (2, 3)):
        assert np.linalg.norm(g[a] - g[b]) == pytest.approx(np.linalg.norm(g0[a] - g0[b]), abs=1e-6)
    # an unreachable target: the leg points at it, slightly bent, no NaN
    out = rot.astype(np.float64).copy()
    k.two_bone_ik(out, pos, parents, 3, np.array([0.1, -5.0, 0.0]), np.array([0.0, 0, 1]), 0.999)
    assert np.isfinite(out).all()


def test_two_bone_ik_soft_limit_keeps_the_knee_smooth_out_of_reach():
    """A target pulled from 90% to 105% of the leg's reach in 0.05% steps: the
    knee straightens without the jump a hard clamp makes near full extension
    (0.018 rad in one step, measured with the soft limit off; 0.004 with it),
    and never past max_extension."""
    parents, rot, pos = _leg()
    reach = 2 * np.linalg.norm(pos[2])
    hip = np.array([0.1, 0.9, 0.0])
    angles, ext = [], []
    for s in np.linspace(0.9, 1.05, 301):
        out = rot.astype(np.float64).copy()
        k.two_bone_ik(out, pos, parents, 3, hip + np.array([0, -s * reach, 0.02]), np.array([0.0, 0, 1]), 0.999)
        _, g = quat.fk(out, pos, parents)
        u, v = g[1] - g[2], g[3] - g[2]
        angles.append(np.arccos(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))
        ext.append(np.linalg.norm(g[3] - g[1]) / reach)
    assert np.abs(np.diff(angles)).max() < 0.008
    assert max(ext) <= 0.999 + 1e-6 and ext[-1] > 0.99


def test_two_bone_ik_bends_a_straight_leg_forward_without_flipping():
    """An animation's leg that passes through straight (the knee a hair in
    front of, then behind, the hip-ankle line) shortened by the IK: the knee
    bends toward the character's forward both times, to nearly the same place
    (its own bend plane is noise there: it flipped the knee by 20 cm)."""
    parents, rot, pos = _leg()
    knees = []
    for z in (0.004, -0.004):                   # the knee 4 mm in front of, then behind, the line
        p = pos.copy()
        p[2], p[3] = [0, -0.42, z], [0, -0.42, -z]
        out = rot.astype(np.float64).copy()
        _, g = quat.fk(out, p, parents)
        target = g[3] + np.array([0.0, 0.05, 0.0])     # 5 cm shorter: the knee must bend
        k.two_bone_ik(out, p.astype(np.float64), parents, 3, target, np.array([0.0, 0, 1]), 0.999)
        _, g2 = quat.fk(out, p, parents)
        assert np.linalg.norm(g2[3] - target) < 1e-4
        knees.append(g2[2])
    assert knees[0][2] > 0.1 and knees[1][2] > 0.1            # forward (+z), by 40 degrees of bend
    assert np.linalg.norm(knees[0] - knees[1]) < 0.02


def test_the_pelvis_comes_down_for_a_stretched_leg():
    """The body rises and moves away from a locked foot: the pelvis comes
    down (at most PELVIS_DROP, smoothly) so that the leg keeps reaching the
    foot, which stays planted longer than with the pelvis held; once the foot
    is free, the pelvis goes back up."""
    parents, rot, pos = _leg()
    pos[2], pos[3] = [0, -0.42, 0.06], [0, -0.42, -0.06]     # a nearly straight leg
    held = {}
    for drop in (True, False):
        locks = FootLocks(parents, [3], [4], halflife=0.05, unlock_radius=0.6, pelvis_drop=drop)
        locks.reset(rot, pos, [True])
        drops, n_planted = [], 0
        for i in range(40):
            p = pos.copy()
            p[0, 0] = 0.008 * i                  # 48 cm/s away from the foot
            out, lp = locks.apply(rot, p, [True], 1 / 60)
            drops.append(locks.pelvis_drop)
            if locks.stepping.any():
                break
            n_planted += 1
        held[drop] = n_planted
        drops = np.array(drops)
        if drop:
            assert 0.01 < drops.max() <= k.PELVIS_DROP + 1e-9
            assert np.abs(np.diff(drops)).max() < 0.01         # under 60 cm/s: no pop
            assert np.isclose(lp[0, 1], p[0, 1] - drops[-1])   # the drop is the pelvis' (root here)
        else:
            assert drops.max() == 0
    assert held[True] > held[False] + 5
    locks = FootLocks(parents, [3], [4], halflife=0.05, unlock_radius=0.6)
    locks.reset(rot, pos, [True])
    for i in range(20):
        p = pos.copy()
        p[0, 0] = 0.004 * i
        locks.apply(rot, p, [True], 1 / 60)
    assert locks.pelvis_drop > 0.005
    for i in range(60):
        locks.apply(rot, p, [False], 1 / 60)
    assert locks.pelvis_drop < 1e-3


def test_pivot_ankle_turns_the_foot_about_its_toe():
    """The heel-off geometry: the foot keeps its length and turns toward the
    hip by the least angle that brings the ankle to the soft-limited
    distance; none when the leg reaches already; capped at max_angle (then
    'not reached'); a hip moving a millimetre moves the ankle about as much
    (no jump where the turn starts)."""
    toe = np.array([0.0, 0.04, 0.0])
    off = np.array([0.0, 0.06, -0.12])          # ankle behind and above the toe
    lf = np.linalg.norm(off)
    near = toe + off + np.array([0.0, 0.7, 0.1])
    a, ok = k.pivot_ankle(toe, off, near, 0.75, 1.0)
    assert ok and np.allclose(a, toe + off)
    hip = toe + off + np.array([0.0, 0.7, 0.35])            # 0.783 from the unturned ankle
    d0 = np.linalg.norm(toe + off - hip)
    reach = d0 - 0.03
    a, ok = k.pivot_ankle(toe, off, hip, reach, 1.0)
    assert ok
    assert np.linalg.norm(a - toe) == pytest.approx(lf)
    assert np.linalg.norm(a - hip) == pytest.approx(k.soft_limit(d0, reach - k.PIVOT_SOFT, reach))
    assert a[1] > (toe + off)[1]                              # the heel comes up
    n = np.cross(off, hip - toe)
    assert abs(np.dot(a - toe, n)) < 1e-9                     # in the plane of the foot and the hip
    capped, ok = k.pivot_ankle(toe, off, hip, reach - 0.2, 0.2)
    assert not ok
    cos = np.dot(capped - toe, off) / lf ** 2
    assert np.degrees(np.arccos(min(cos, 1.0))) == pytest.approx(np.degrees(0.2), abs=1e-6)
    path = []
    for dz in np.linspace(0.2, 0.45, 251):                     # the hip walks away 1 mm at a time
        h = toe + off + np.array([0.0, 0.7, dz])
        path.append(k.pivot_ankle(toe, off, h, 0.74, 1.5)[0])
    step = np.linalg.norm(np.diff(path, axis=0), axis=-1)
    assert step.max() < 2e-3 and step[-1] > 0                   # no jump, and it did turn


def test_a_heel_off_keeps_a_foot_planted_longer():
    """The hips run on from a locked foot (pelvis held, as the VR avatar's
    hang from the headset): with the toe pivot the foot stays planted,
    heel up, well after the plain lock has let it go to step; the planted
    toe does not move."""
    parents, rot, pos = _leg()
    pos[2], pos[3] = [0, -0.42, 0.06], [0, -0.42, -0.06]     # a nearly straight leg
    held, heel = {}, {}
    for pivot in (0.0, 0.8):
        locks = FootLocks(parents, [3], [4], halflife=0.05, unlock_radius=0.6, pelvis_drop=False,
                          toe_pivot=pivot)
        locks.reset(rot, pos, [True])
        _, g0 = quat.fk(rot, pos, parents)
        n_planted, toes, ankles = 0, [], []
        for i in range(60):
            p = pos.copy()
            p[0, 0] = 0.008 * i                  # 48 cm/s away from the foot
            out, lp = locks.apply(rot, p, [True], 1 / 60)
            if locks.stepping.any():
                break
            n_planted += 1
            _, g = quat.fk(out, lp, parents)
            toes.append(g[4])
            ankles.append(g[3])
        held[pivot] = n_planted
        heel[pivot] = np.array(ankles)[:, 1].max() - g0[3, 1]
        if pivot:
            assert np.abs(np.array(toes)[:, [0, 2]] - g0[4, [0, 2]]).max() < 2e-3     # the toe stays put
    assert held[0.8] >= held[0.0] + 5, held
    assert heel[0.8] > heel[0.0] + 0.01, heel


def test_two_bone_ik_leaves_a_stretched_leg_alone_when_its_target_barely_moves():
    """A leg the animation stretched past the soft limit's start, its target
    where its foot already is (or 1 mm off): the IK keeps the knee where it
    was, so applying it or not makes no jump (the soft limit pulled such a
    leg in by centimetres: 300 m/s^2 knee spikes on straight swing legs)."""
    parents, rot, pos = _leg()
    pos[2], pos[3] = [0, -0.42, 0.02], [0, -0.42, -0.02]    # 0.998 of its length
    _, g0 = quat.fk(rot, pos, parents)
    for shift in (0.0, 0.001):
        out = rot.astype(np.float64).copy()
        k.two_bone_ik(out, pos.astype(np.float64), parents, 3, g0[3] + np.array([0.0, shift, 0.0]),
                      np.array([0.0, 0, 1]), 0.999)
        _, g = quat.fk(out, pos, parents)
        assert np.linalg.norm(g[2] - g0[2]) < 0.001 + 15 * shift     # a straight knee moves ~9 mm per mm
        assert np.linalg.norm(g[3] - g0[3]) < 0.0015


def test_foot_lock_pins_a_planted_foot_and_releases_it():
    parents, rot, pos = _leg()
    locks = FootLocks(parents, [3], [4], halflife=0.05, unlock_radius=0.2)
    locks.reset(rot, pos, [False])
    _, g0 = quat.fk(rot, pos, parents)
    planted = None
    for i in range(30):
        p = pos.copy()
        p[0, 0] = 0.002 * i                    # the animation's body (and foot) slides 12 cm/s
        out, lp = locks.apply(rot, p, [i >= 1], 1 / 60)
        _, g = quat.fk(out, lp, parents)
        if i == 10:                            # the lock blends in over a few half-lives
            planted = g[4].copy()
        if i > 10:
            assert np.linalg.norm(g[4] - planted) < 1e-3   # then the pinned foot does not slide
    _, ga = quat.fk(rot, p, parents)
    assert np.linalg.norm(ga[4] - planted) > 0.03           # while the animation's foot did
    assert locks.locked.all()
    # contact ends: the foot returns to the animation's foot within a few half-lives
    for i in range(60):
        p = pos.copy()
        p[0, 0] = 0.06
        out, lp = locks.apply(rot, p, [False], 1 / 60)
    _, g = quat.fk(out, lp, parents)
    _, ga = quat.fk(rot, p, parents)
    assert not locks.locked.any()
    assert np.linalg.norm(g[4] - ga[4]) < 1e-3


def test_a_landing_foot_stops_where_it_lands():
    """Contacts admit a foot still moving a little: once it lands, the shown
    foot stays where it was shown at the landing frame (no velocity carried
    on), without a jump."""
    parents, rot, pos = _leg()
    pos[2], pos[3] = [0, -0.38, 0.18], [0, -0.38, -0.18]    # a bent knee: within reach (no soft IK limit)
    locks = FootLocks(parents, [3], [4], halflife=0.05, unlock_radius=0.6)
    locks.reset(rot, pos, [False])
    shown = []
    for i in range(40):
        p = pos.copy()
        p[0, 0] = 0.005 * i                    # the animation's foot moves 30 cm/s throughout
        out, lp = locks.apply(rot, p, [i >= 20], 1 / 60)
        _, g = quat.fk(out, lp, parents)
        shown.append(g[4].copy())
    shown = np.array(shown)
    step = np.linalg.norm(np.diff(shown[:, [0, 2]], axis=0), axis=-1)
    assert np.all(step[:19] > 0.004)                       # free: it follows the animation
    assert np.all(step[19:] < 1e-6)                        # landed at frame 20: still from then on
    assert np.linalg.norm(shown[20] - shown[19]) < 0.006   # no jump at landing (one frame's motion)


def test_a_foot_released_while_the_animation_moves_fast_does_not_jump():
    """The body (and the animation's foot) moves at 2 m/s; the locked foot is
    let go when the contact ends: the shown foot starts from rest and follows
    without a jump (the offset was taken against this frame's animation foot,
    which threw the foot a frame's motion the other way: ~250 m/s^2)."""
    parents, rot, pos = _leg()
    pos[2], pos[3] = [0, -0.38, 0.18], [0, -0.38, -0.18]    # a bent knee: within reach
    locks = FootLocks(parents, [3], [4], halflife=0.05, unlock_radius=0.6, pelvis_drop=False)
    locks.reset(rot, pos, [True])
    shown = []
    for i in range(30):
        p = pos.copy()
        p[0, 2] = -2.0 * i / 60                 # 2 m/s backward, away along the foot's axis
        out, lp = locks.apply(rot, p, [i < 6], 1 / 60)
        _, g = quat.fk(out, lp, parents)
        shown.append(g[4].copy())
    acc = np.linalg.norm(np.diff(np.array(shown), 2, axis=0), axis=-1) * 3600
    assert np.linalg.norm(shown[5] - shown[0]) < 1e-3          # locked: still
    assert acc.max() < 120.0                                  # a spring's pull, no jump


def test_foot_lock_engages_at_reset_when_in_contact():
    parents, rot, pos = _leg()
    locks = FootLocks(parents, [3], [4], halflife=0.05, unlock_radius=0.2)
    locks.reset(rot, pos, [True])
    assert locks.locked.all()
    _, g0 = quat.fk(rot, pos, parents)
    p = pos.copy()
    for i in range(20):
        p[0, 0] = 0.003 * i
        out, lp = locks.apply(rot, p, [True], 1 / 60)
    _, g = quat.fk(out, lp, parents)
    assert np.linalg.norm(g[4] - g0[4]) < 2e-3


def test_back_to_back_transitions_keep_the_shown_pose():
    """A second transition while the first one's offsets are still decaying
    must not count the old offset twice."""
    rng = np.random.default_rng(1)
    a, b, c = _pose(rng), _pose(rng), _pose(rng)
    ine = Inertializer(5, halflife=0.2)
    ine.reset(*a)
    ine.transition(*b)
    ine.update(*b, 1 / 60)
    ine.update(*b, 1 / 60)
    shown_rot, shown_pos = ine.out_rot.copy(), ine.out_pos.copy()
    ine.transition(*c)
    ine.update(*c, 0.0)
    assert np.allclose(ine.out_pos, shown_pos, atol=1e-6)
    assert np.allclose(np.abs(np.sum(ine.out_rot * shown_rot, -1)), 1, atol=1e-6)


def test_a_planted_foot_out_of_reach_steps_instead_of_sliding():
    """The body moves away from a planted foot at 1 m/s while the animation
    says contact throughout: the foot is held until its leg cannot reach it,
    then lifted and stepped to the animation's foot and planted again; it is
    reported as not in contact while it steps, and barely moves while
    reported in contact (before this, the leg dragged it along the ground)."""
    parents, rot, pos = _leg()
    pos[2], pos[3] = [0, -0.38, 0.18], [0, -0.38, -0.18]    # a bent knee
    locks = FootLocks(parents, [3], [4], halflife=0.05, unlock_radius=0.6)
    locks.reset(rot, pos, [True])
    shown, planted, stepping, locked = [], [], [], []
    for i in range(90):
        p = pos.copy()
        p[0, 0] = i / 60                       # the body (and the animation's foot) at 1 m/s
        out, lp = locks.apply(rot, p, [True], 1 / 60)
        _, g = quat.fk(out, lp, parents)
        shown.append(g[4].copy())
        planted.append(bool(locks.planted([True])[0]))
        stepping.append(bool(locks.stepping[0]))
        locked.append(bool(locks.locked[0]))
    shown, planted, stepping = np.array(shown), np.array(planted), np.array(stepping)
    _, g0 = quat.fk(rot, pos, parents)
    speed = np.linalg.norm(np.diff(shown[:, [0, 2]], axis=0), axis=-1) * 60
    both = planted[1:] & planted[:-1]
    assert stepping.any() and planted.any()
    assert speed[both].mean() < 0.03                       # planted: under 3 cm/s on average
    assert (shown[stepping, 1] - g0[4, 1]).max() > 0.01    # stepping: the foot leaves the ground
    first = int(np.argmax(stepping))
    assert np.array(locked)[first:][~stepping[first:]].any()   # and is planted again
    assert np.linalg.norm(np.diff(shown, axis=0), axis=-1).max() < 0.08   # no jump: under 4.8 m/s, a swing's pace
    assert (planted == ~stepping).all()
    lands = np.flatnonzero(stepping[:-1] & ~stepping[1:]) + 1
    assert len(lands) and np.all(np.abs(shown[lands, 1] - shown[lands - 1, 1]) < 0.004)   # lands, not drops


def test_the_root_velocity_carries_through_a_transition():
    """Clip a moves the root forward at 1.2 m/s, clip b backward at 1 m/s; the
    controller re-bases the root every tick (adjust_root, here with no pull).
    Across the transition the shown root's velocity eases from one to the
    other (Holden's inertialize_root_adjust) instead of jumping: the old
    re-basing dropped the root's offset each tick and the velocity flipped in
    one frame."""
    j = 3
    rot = np.tile(np.array([1.0, 0, 0, 0], np.float32), (j, 1))

    def frame(z, vz):
        pos = np.zeros((j, 3), np.float32)
        pos[0, 2] = z
        pos[1:, 1] = 0.5
        vel = np.zeros((j, 3), np.float32)
        vel[0, 2] = vz
        return rot, pos, vel, np.zeros((j, 3), np.float32)

    dt = 1 / 60
    ine = Inertializer(j, halflife=0.1)
    ine.reset(*frame(0.0, 1.2))
    shown = []
    for i in range(1, 40):
        if i < 20:
            f = frame(1.2 * i * dt, 1.2)
        else:
            if i == 20:                           # as the controller: transition to b's frame, then play on
                ine.transition(*frame(5.0, -1.0))
            f = frame(5.0 - 1.0 * (i - 19) * dt, -1.0)
        ine.update(*f, dt)
        ine.adjust_root(ine.out_pos[0].copy(), ine.out_rot[0].copy())
        shown.append(ine.out_pos[0, 2])
    v = np.diff(shown) / dt
    assert np.allclose(v[:18], 1.2, atol=1e-4)
    assert v[18] > 0.5                            # the first frame after it still moves forward
    assert np.abs(np.diff(v)).max() < 0.5 * 2.2   # no frame takes half the 2.2 m/s change
    assert abs(v[-1] + 1.0) < 0.05                # and it ends at clip b's velocity


def test_root_adjustment_matches_the_simulation_velocity_within_its_bound():
    """Character and simulation stand at the same place, the simulation at
    1.3 m/s and the character's clip at 1 m/s: the position pull alone does
    nothing; adjust_velocity adds the difference, within adjust_max_ratio of
    the character's speed, and never moves a standing character."""
    import dataclasses
    ident = np.array([1.0, 0, 0, 0])
    sim = Simulation(position=np.zeros(3))
    sim.velocity[:] = [0.0, 0.0, 1.3]
    dt = 1 / 60
    off = dataclasses.replace(RuntimeConfig(), adjust_velocity=0.0)
    pos, _ = adjusted_root(np.zeros(3), ident, np.array([0.0, 0, 1.0]), sim, off, dt)
    assert np.allclose(pos, 0)
    on = dataclasses.replace(RuntimeConfig(), adjust_velocity=1.0, adjust_max_ratio=0.5)
    pos, _ = adjusted_root(np.zeros(3), ident, np.array([0.0, 0, 1.0]), sim, on, dt)
    assert np.allclose(pos, [0, 0, 0.3 * dt])
    pos, _ = adjusted_root(np.zeros(3), ident, np.array([0.0, 0, 0.2]), sim, on, dt)
    assert np.allclose(pos, [0, 0, 0.5 * 0.2 * dt])   # bounded by the ratio of its own speed
    pos, _ = adjusted_root(np.zeros(3), ident, np.zeros(3), sim, on, dt)
    assert np.allclose(pos, 0)                        # standing: not moved


def test_a_foot_released_far_from_the_animation_eases_back_gently():
    """A locked foot 35 cm from the animation's foot (it drifted within the
    unlock radius) is let go when the contact ends: its pull toward the
    animation starts at kernels.RELEASE_ACCEL, not at the lock halflife's
    260 m/s^2 (a knee spike); small releases keep the lock halflife."""
    dt = 1 / 60

    def release(dist, frames=90):
        state = np.array([1, 1, 0], np.int64)
        v = np.zeros((9, 3))
        anim = np.array([dist, 0.0, 0.0])
        out = []
        for i in range(frames):
            out.append(k.foot_lock(state, v[0], v[1], v[2], v[3], v[4], v[5], v[6], anim, i < 3, 0.6, 0.05, dt,
                                   False, v[7], v[8], 0.0).copy())
            v[7] = out[-1]
        return np.array(out)

    far = release(0.35)
    acc = np.linalg.norm(np.diff(far, 2, axis=0), axis=-1) / dt ** 2
    assert np.allclose(far[:3], 0)                          # locked while in contact
    assert acc.max() < 1.2 * k.RELEASE_ACCEL
    assert np.linalg.norm(far[-1] - [0.35, 0, 0]) < 1e-3    # and it does get back
    near = release(0.03, 20)
    # 3 cm: the lock halflife as before (halfway in about 0.05 s ~ 3 frames, allowing the spring's start)
    assert np.linalg.norm(near[3 + 6] - [0.03, 0, 0]) < 0.5 * 0.03


def test_a_foot_held_up_by_a_transition_lands_only_on_the_ground():
    """The clip says contact while a transition's offsets still hold the
    animation's toe 15 cm up: the foot is not pinned in the air (it was,
    for up to 1.6 s); it follows the animation down, reported not in
    contact, and is pinned where it arrives, at the clip's toe height."""
    dt = 1 / 60
    ground = 0.04                                # the clip's own toe height (the pose before offsets)
    state = np.array([0, 0, 0], np.int64)
    v = np.zeros((9, 3))
    heights, locked, stepping = [], [], []
    for i in range(40):
        h = ground + 0.15 * 0.5 ** (i / 6.0)      # the shown toe comes down as the offsets decay
        anim = np.array([0.3, h, 0.0])
        out = k.foot_lock(state, v[0], v[1], v[2], v[3], v[4], v[5], v[6], anim, True, 0.2, 0.05, dt,
                          False, v[7], v[8], ground).copy()
        v[8] = (out - v[7]) / dt
        v[7] = out
        heights.append(out[1])
        locked.append(state[1] == 1)
        stepping.append(state[2] == 1)
    heights, locked, stepping = np.array(heights), np.array(locked), np.array(stepping)
    assert not locked[0] and stepping[0]                         # not pinned 15 cm up
    first = int(np.argmax(locked))
    assert locked[first:].all() and first > 0                    # lands once, then stays
    assert heights[first - 1] - ground <= k.LAND_HEIGHT + 0.01   # ... only when the toe is down
    assert not stepping[first:].any()                            # and is in contact from then on
    assert abs(heights[-1] - ground) < 2e-3                      # pinned at the clip's toe height
    acc = np.abs(np.diff(heights, 2)) / dt ** 2
    assert acc.max() < 1.2 * k.RELEASE_ACCEL                    # no snap down at the landing


def test_a_landing_foot_is_pinned_at_the_clips_toe_height():
    """A foot landing a little above its clip's toe (within LAND_HEIGHT) is
    pinned at the clip's toe height, not at the shown one."""
    dt = 1 / 60
    state = np.array([0, 0, 0], np.int64)
    v = np.zeros((9, 3))
    anim = np.array([0.1, 0.06, 0.2])
    for i in range(70):                          # free for 10 frames, then in contact
        out = k.foot_lock(state, v[0], v[1], v[2], v[3], v[4], v[5], v[6], anim, i >= 10, 0.2, 0.05, dt,
                          False, v[7], v[8], 0.04).copy()
        v[7] = out
        if i == 9:
            assert state[1] == 0 and np.abs(out - anim).max() < 1e-3
    assert state[1] == 1 and abs(v[0][1] - 0.04) < 1e-9 and abs(out[1] - 0.04) < 1e-4
    assert abs(out[0] - 0.1) < 1e-6 and abs(out[2] - 0.2) < 1e-6   # where it was shown, horizontally


# ------------------------------------------------------------ acceleration limit
def _chain(n=4):
    """A vertical chain of n joints 0.3 m apart, the root 1 m up."""
    parents = np.arange(n) - 1
    pos = np.tile(np.array([0.0, 0.3, 0.0]), (n, 1))
    pos[0] = (0.0, 1.0, 0.0)
    rot = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (n, 1))
    return parents, rot, pos


def _accelerations(frames, parents, fps=60.0):
    g = np.stack([quat.fk(r, p, parents)[1] for r, p in frames])
    return np.linalg.norm(g[2:] - 2 * g[1:-1] + g[:-2], axis=-1) * fps * fps


def test_acceleration_limit_leaves_motion_within_it_untouched():
    parents, rot, pos = _chain()
    lim = AccelerationLimiter(parents, 100.0)
    lim.reset(rot, pos)
    for i in range(60):                      # a swing of ~1 rad/s^2, the root walking at 1 m/s
        r, p = rot.copy(), pos.copy()
        r[1] = quat.from_angle_axis(0.3 * np.sin(i / 60.0 * 2.0), np.array([1.0, 0, 0]))
        p[0, 0] = i / 60.0
        out_rot, out_pos = lim.apply(r, p, 1 / 60)
        assert np.array_equal(out_rot, r) and np.array_equal(out_pos, p)
    assert lim.limited == 0 and lim.share == 1.0


def _drive(lim, poses, dt=1 / 60):
    frames = [(poses[0][0], poses[0][1])] * 2
    frames += [lim.apply(r, p, dt) for r, p in poses]
    return frames


def test_acceleration_limit_bounds_a_sudden_stop_and_catches_up():
    """The chain sets off at 3 m/s and stops dead (a heel strike: 180 m/s^2
    in one frame, twice): shown, no joint goes past the limit, the pose falls behind by
    centimetres at most and is back on the asked one within 0.2 s; without the
    limit the same input goes past it."""
    parents, rot, pos = _chain()
    limit = 100.0
    poses = []
    for i in range(60):
        p = pos.copy()
        p[0, 0] = 3.0 * min(i, 20) / 60.0
        poses.append((rot, p))
    for cap in (limit, 0.0):
        lim = AccelerationLimiter(parents, cap)
        lim.reset(*poses[0])
        frames = _drive(lim, poses)
        acc = _accelerations(frames, parents)
        lag = np.array([abs(f[1][0, 0] - p[1][0, 0]) for f, p in zip(frames[2:], poses)])
        if cap:
            assert acc.max() <= limit and 0 < lim.limited <= 5
            assert 0 < lag.max() < 0.03 and lag[32:].max() < 1e-9
        else:
            assert acc.max() > 1.7 * limit and lag.max() == 0


def test_acceleration_limit_tames_a_snap():
    """A pathological input: a chain at rest snaps 1 rad at its first joint
    (the tip would jump 0.8 m in one frame: ~2,800 m/s^2) while its root sets
    off at 2 m/s. The shown pose swings over within a fraction of a second
    near the limit (where even the kept velocities' centripetal pull is
    past it, the share with the least acceleration) and settles on the asked
    pose. Where the swing would overshoot, carrying the tip further from the
    asked pose than MAX_DRIFT, the drift bound lets it past the limit (a
    frame at 3.6x) instead: without the bound it strays 0.57 m."""
    parents, rot, pos = _chain()
    bent = rot.copy()
    bent[1] = quat.from_angle_axis(1.0, np.array([0.0, 0, 1]))
    poses = [(rot, pos)]
    for i in range(1, 90):
        p = pos.copy()
        p[0, 0] = 2.0 * i / 60.0
        poses.append((bent, p))
    lim = AccelerationLimiter(parents, 100.0)
    lim.reset(rot, pos)
    frames = _drive(lim, poses)
    acc = _accelerations(frames, parents)
    free = _accelerations([(rot, pos)] * 2 + poses, parents)
    assert free.max() > 2000 and acc.max() < 4.0 * 100.0 and lim.drift_bound > 0
    drift = [np.abs(quat.fk(*f, parents)[1] - quat.fk(*p, parents)[1]).max() for f, p in zip(frames[2:], poses)]
    assert max(drift[6:]) <= AccelerationLimiter.MAX_DRIFT + 1e-6      # once caught up, never strays again
    assert np.abs(np.abs(np.sum(frames[-1][0] * bent, -1)) - 1).max() < 1e-9       # settled on the pose
    assert np.allclose(frames[-1][1], poses[-1][1], atol=1e-9)


def test_acceleration_limit_kernel_blends_toward_the_extrapolated_pose():
    """kernels.limit_acceleration's share 0 keeps the last frames' local
    velocities: a joint turning at a constant rate goes on turning at it; a
    limit that nothing meets gives the share with the least acceleration,
    near that."""
    parents, rot, pos = _chain(3)
    r1, r2 = rot.copy(), rot.copy()
    r2[1] = quat.from_angle_axis(0.1, np.array([1.0, 0, 0]))
    r1[1] = quat.from_angle_axis(0.2, np.array([1.0, 0, 0]))
    g1, g2 = quat.fk(r1, pos, parents)[1], quat.fk(r2, pos, parents)[1]
    out_rot, out_pos, g = np.empty_like(rot), np.empty_like(pos), np.empty_like(pos)
    far = rot.copy()
    far[1] = quat.from_angle_axis(-2.0, np.array([1.0, 0, 0]))
    s = k.limit_acceleration(far, pos, parents, r1, pos, r2, pos, g1, g2, 0.0, 30, out_rot, out_pos, g)
    angle = 2 * np.arccos(min(1.0, abs(out_rot[1, 0])))
    assert s < 0.01 and abs(angle - 0.3) < 0.01
    assert np.allclose(g, quat.fk(out_rot, out_pos, parents)[1])
    # a limit the extrapolation meets: the largest share within it, found to 2^-30
    lim = 2.0 * np.linalg.norm(g - 2 * g1 + g2, axis=-1).max()
    s = k.limit_acceleration(far, pos, parents, r1, pos, r2, pos, g1, g2, lim, 30, out_rot, out_pos, g)
    assert 0 < s < 1 and np.linalg.norm(g - 2 * g1 + g2, axis=-1).max() <= lim


def test_acceleration_limit_bounds_the_drift_from_the_animation():
    """A chain flung upward at 6 m/s stops dead and stays (a small database's
    clip ending mid-swing): a low limit (10 m/s^2) alone would carry the shown
    pose on upward, 0.85 m past the stop, before it turns back; the drift bound keeps every
    joint within max_drift of the asked pose, and where the bound does not bite
    the limit still holds."""
    parents, rot, pos = _chain()
    poses = []
    for i in range(90):
        p = pos.copy()
        p[0, 1] = 1.0 + 6.0 * min(i, 10) / 60.0
        poses.append((rot, p))
    lim = AccelerationLimiter(parents, 10.0)
    lim.reset(*poses[0])
    frames = _drive(lim, poses)
    drift = np.array([np.abs(quat.fk(*f, parents)[1] - quat.fk(*p, parents)[1]).max()
                      for f, p in zip(frames[2:], poses)])
    assert drift.max() <= AccelerationLimiter.MAX_DRIFT + 1e-6
    assert lim.drift_bound > 0
    unbounded = AccelerationLimiter(parents, 10.0, max_drift=0.0)
    unbounded.reset(*poses[0])
    far = _drive(unbounded, poses)
    assert max(abs(f[1][0, 1] - p[1][0, 1]) for f, p in zip(far[2:], poses)) > 0.5
    assert _accelerations(far, parents).max() <= 10.0


def test_foot_locks_keep_toes_above_the_floor():
    """A floor: a toe the animation puts under it, free or locked, is lifted
    onto it by the leg's IK (bone lengths kept); without one (the motion-
    matching controller's default) the toe stays where the animation has it."""
    parents, rot, pos = _leg()                   # the toe 2 cm above y = 0
    for contact in (False, True):
        for floor, want in ((0.05, 0.05), (None, 0.02 - 0.1)):
            locks = FootLocks(parents, [3], [4], halflife=0.05, unlock_radius=0.6, pelvis_drop=False,
                              **({} if floor is None else {"floor": floor}))
            p = pos.copy()
            locks.reset(rot, p, [contact])
            for i in range(10):
                p = pos.copy()
                p[0, 1] = -0.01 * (i + 1)        # the body sinks 10 cm: the toe goes 8 cm under y = 0
                out, lp = locks.apply(rot, p, [contact], 1 / 60)
                _, g = quat.fk(out, lp, parents)
                assert g[4, 1] >= (floor if floor is not None else -np.inf) - 1e-6
            if floor is not None:
                assert abs(g[4, 1] - want) < 2e-3
                _, g0 = quat.fk(rot, p, parents)
                for a, b in ((1, 2), (2, 3), (3, 4)):    # the leg bends; its bones keep their lengths
                    assert np.isclose(np.linalg.norm(g[b] - g[a]), np.linalg.norm(g0[b] - g0[a]), atol=1e-5)
            elif not contact:
                assert abs(g[4, 1] - want) < 1e-6
