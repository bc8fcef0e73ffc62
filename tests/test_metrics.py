"""anim.metrics on synthetic motions whose answers are known."""

import math

import numpy as np
import pytest

from anim import metrics, quat

FPS = 60.0
SPEEDS = {"walk": 1.0, "run": 3.0, "side": 0.8, "back": 0.6}


def test_desired_velocity_scales_the_stick_per_direction():
    nan = [np.nan, np.nan]
    move = np.array([[0, 1], [0, 1], [1, 0], [0, -1], [0, -1], [0.6, 0.0], [0, 0]], np.float64)
    facing = np.array([nan, nan, [0, 1], [0, 1], [0, 1], [1, 0], nan])
    run = np.array([False, True, False, False, True, False, False])
    v = metrics.desired_velocity(move, facing, run, SPEEDS)
    assert np.allclose(v, [[0, 0, 1], [0, 0, 3], [0.8, 0, 0], [0, 0, -0.6], [0, 0, -1.5], [0.6, 0, 0], [0, 0, 0]])
    # not strafing: the character faces where it moves, so any direction is 'forward'
    d = metrics.desired_velocity(np.array([[-0.6, -0.8]]), np.array([nan]), np.array([False]), SPEEDS)
    assert np.allclose(d, [[-0.6, 0, -0.8]])


def test_desired_heading_holds_while_the_stick_rests():
    nan = [np.nan, np.nan]
    move = np.array([[0, 0], [1, 0], [0, 0], [0, 1], [0, 1]], np.float64)
    facing = np.array([nan, nan, nan, nan, [-1, 0]])
    h = metrics.desired_heading(move, facing)
    assert np.allclose(h, [[0, 1], [1, 0], [1, 0], [0, 1], [-1, 0]])


def test_headings_and_heading_error():
    ang = np.radians([0, 90, 180, -45])
    rot = quat.from_angle_axis(ang, np.array([0, 1.0, 0]))
    h = metrics.headings(rot)
    assert np.allclose(h, np.stack([np.sin(ang), np.cos(ang)], -1), atol=1e-6)
    err = metrics.heading_error(h, np.tile([0.0, 1.0], (4, 1)))
    assert np.degrees(err) == pytest.approx([0, 90, 180, 45], abs=1e-4)


def test_sharp_changes_finds_steps_not_ramps():
    d = np.zeros((600, 3))
    d[60:] = [0, 0, 1.0]               # start
    d[120:] = [0, 0, 3.0]              # speed-up (walk -> run)
    d[180:] = [0, 0, -3.0]             # 180 turn
    d[240:] = [3.0, 0, 0]              # 90 turn
    d[300:] = [1.0, 0, 0]              # slow-down
    a = np.radians(np.arange(60)) * 1.5   # a gradual 90-degree curve: no event
    d[360:420] = np.stack([np.cos(a), 0 * a, np.sin(a)], -1)
    d[420:] = [0, 0, 1.0]
    d[480:] = 0                        # stop
    ev = metrics.sharp_changes(d)
    assert [(e["frame"], e["kind"]) for e in ev] == [(60, "start"), (120, "speed-up"), (180, "turn"), (240, "turn"),
                                                     (300, "slow-down"), (480, "stop")]
    assert [e["angle_deg"] for e in ev if e["kind"] == "turn"] == [180.0, 90.0]


def lagging(desired, lag_frames):
    """A velocity that follows the desired one after lag_frames frames, exactly."""
    v = np.zeros_like(desired)
    v[lag_frames:] = desired[:-lag_frames]
    return v


def test_response_time_of_a_delayed_follower():
    d = np.zeros((300, 3))
    d[30:] = [0, 0, 1.0]
    d[120:] = [0, 0, -1.0]
    v = lagging(d, 12)
    head = np.tile([0.0, 1.0], (300, 1))
    head[132:] = [0.0, -1.0]
    target = metrics.desired_heading(d[:, [0, 2]], np.full((300, 2), np.nan))
    ev = metrics.responsiveness(v, d, head, target, FPS)
    assert [e["kind"] for e in ev] == ["start", "turn"]
    assert [e["response_s"] for e in ev] == pytest.approx([0.2, 0.2])
    assert ev[1]["heading_s"] == pytest.approx(0.2)


def test_response_time_needs_90_percent_and_the_right_direction():
    d = np.tile([0, 0, 2.0], (100, 1))
    d[0] = [0, 0, -2.0]
    v = np.tile([0, 0, 1.7], (100, 1))            # 85%: never reached
    assert metrics.response_time(v, d, 1, 100, FPS) is None
    v[50:] = [0, 0, 1.8]                          # 90%
    assert metrics.response_time(v, d, 1, 100, FPS) == pytest.approx(49 / 60)
    v[50:] = [1.5, 0, 1.8]                        # fast enough along z, but 40 degrees off
    assert metrics.response_time(v, d, 1, 100, FPS) is None
    # slowing down: 90% of the change done
    d = np.tile([0, 0, 1.0], (100, 1))
    d[0] = [0, 0, 3.0]
    v = np.linspace(3.0, 1.0, 100)[:, None] * [0, 0, 1.0]
    t = metrics.response_time(v, d, 1, 100, FPS)
    assert v[1 + round(t * 60), 2] <= 1.2 + 1e-9 < v[round(t * 60), 2]


def test_foot_skating_counts_only_frames_in_contact_at_both_ends():
    t = 120
    p = np.zeros((t, 2, 3))
    p[:, 0, 0] = np.arange(t) * 0.001            # left foot slides 1 mm per frame = 6 cm/s
    p[:, 1, 2] = np.arange(t) * 0.1              # right foot swings fast
    p[:, :, 1] = np.arange(t)[:, None] * 0.5     # vertical motion is not skating
    c = np.zeros((t, 2), bool)
    c[:60, 0] = True
    s = metrics.foot_skating(p, c, FPS)
    assert s["samples"] == 59 and s["mean_cm_s"] == pytest.approx(6.0) and s["max_cm_s"] == pytest.approx(6.0)
    c[:, 1] = True
    assert metrics.foot_skating(p, c, FPS)["mean_cm_s"] == pytest.approx((59 * 6 + 119 * 600) / 178)
    assert metrics.foot_skating(p, np.zeros_like(c), FPS)["samples"] == 0


def test_joint_accelerations_of_a_parabola_and_smoothness():
    t = np.arange(90) / FPS
    g = np.zeros((90, 2, 3))
    g[:, 0, 1] = 0.5 * 9.81 * t ** 2             # free fall: 9.81 m/s^2
    g[:, 1, 0] = np.sin(2 * np.pi * t)           # peak (2 pi)^2 = 39.5 m/s^2
    a = metrics.joint_accelerations(g, FPS)
    assert a.shape == (88, 2) and np.allclose(a[:, 0], 9.81)
    assert a[:, 1].max() == pytest.approx((2 * np.pi) ** 2, rel=1e-3)
    s = metrics.smoothness(g, FPS, reference=20.0, names=["a", "b"])
    assert s["joint"] == "b" and s["ratio"] == pytest.approx(a.max() / 20.0)
    assert 0 < s["above_fraction"] < 0.5
    g[45, 0, 1] += 0.01                          # a 1 cm pop: -2 * 0.01 * 60^2 = -72 m/s^2 at frame 45
    marks = np.zeros(90, bool)
    marks[45] = True
    s = metrics.smoothness(g, FPS, 20.0, marks=marks)
    assert s["max_near_marks_m_s2"] == pytest.approx(72 - 9.81, rel=1e-3)
    assert s["max_elsewhere_m_s2"] == pytest.approx((2 * np.pi) ** 2, rel=1e-3)


def test_acceleration_percentile_does_not_cross_segments():
    a = np.zeros((30, 1, 3))
    b = np.ones((30, 1, 3)) * 5.0                # far away, but still: no acceleration inside
    assert metrics.acceleration_percentile([a, b], FPS, 100) == 0.0
    assert metrics.acceleration_percentile([np.concatenate([a, b])], FPS, 100) > 1000


def test_tick_times_and_style_changes():
    t = metrics.tick_times(np.r_[np.ones(99), 10.0])
    assert t["p50_ms"] == 1.0 and t["max_ms"] == 10.0 and 1.0 <= t["p99_ms"] <= 10.0
    asked = ["normal"] * 10 + ["active"] * 10 + [None] * 5
    played = ["normal"] * 13 + ["active"] * 12
    (c,) = metrics.style_changes(asked, played, FPS)
    assert c == {"frame": 10, "time_s": 10 / 60, "from": "normal", "to": "active", "latency_s": 3 / 60}
    (c,) = metrics.style_changes(asked, ["normal"] * 25, FPS)
    assert c["latency_s"] is None


def test_targets_table():
    assert metrics.TARGETS == {"response_s": 0.5, "skating_cm_s": 2.0, "accel_ratio": 1.0}
    assert math.isfinite(metrics.TARGETS["response_s"])


def test_frechet_distance_of_gaussians():
    """Zero for one distribution, the closed form for two known Gaussians
    (|mu|^2 + sum (s_a - s_b)^2 for diagonal covariances), scale-aware, and
    clear errors on mismatched shapes."""
    import pytest
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (200_000, 3))
    b = rng.normal([1.0, 0.0, 0.0], [1.0, 2.0, 0.5], (200_000, 3))
    assert metrics.frechet_distance(a, a) < 1e-9
    expect = 1.0 + (1 - 2) ** 2 + (1 - 0.5) ** 2
    assert abs(metrics.frechet_distance(a, b) - expect) < 0.03
    assert abs(metrics.frechet_distance(a * 10, b * 10, scale=np.full(3, 10.0)) - expect) < 0.03
    with pytest.raises(ValueError, match="frechet_distance"):
        metrics.frechet_distance(a, b[:, :2])


def test_motion_statistics_of_a_known_motion():
    """A 2-joint body walking at 1.5 m/s while turning at 0.5 rad/s, foot planted:
    root speed, turn rate, foot height and contact speed come out as built."""
    from anim import quat
    fps, t = 60.0, 120
    time = np.arange(t) / fps
    g = np.zeros((t, 2, 3))
    g[:, 0, 0] = 1.5 * time                 # hips move along x at 1.5 m/s
    g[:, 0, 1] = 1.0
    g[:, 1, 1] = 0.07                        # a foot on the floor, still
    rot = quat.from_angle_axis(0.5 * time, np.array([0.0, 1.0, 0.0]))
    s = metrics.motion_statistics(g, rot, np.ones((t, 1), bool), [1], fps)
    assert s.shape == (t - 2, 2 * 2 + 2 * 1 + 2)
    assert np.allclose(s[:, 0], 1.5) and np.allclose(s[:, 1], 0.0)       # joint speeds
    assert np.allclose(s[:, 2:4], 0.0, atol=1e-9)                        # no acceleration
    assert np.allclose(s[:, 4], 0.07) and np.allclose(s[:, 5], 0.0)      # foot height, contact speed
    assert np.allclose(s[:, 6], 1.5) and np.allclose(s[:, 7], 0.5)       # root speed, turn rate


def test_upright_segments_leave_out_falls_and_their_recovery():
    from anim.metrics import upright_segments
    fallen = np.zeros(200, bool)
    fallen[50:60] = True
    fallen[195:] = True
    assert upright_segments(fallen, after=20) == [(0, 50), (80, 195)]
    assert upright_segments(fallen, after=20, min_len=60) == [(80, 195)]
    assert upright_segments(np.zeros(5, bool), after=3) == []
