"""The motion-matching controller on the real normal-style locomotion database:
it reaches the asked speeds, turns, stays on the ground, never produces NaN,
switches style, locks planted feet, and meets relaxed versions of the issue's
targets on the shipped stick scripts (anim/scripts/).

The database is built once per session from the corpus (the default
`anim build-db` preset, a few seconds); the tests drive the controller only
through its Protocol (reset, step) via anim.runner and read anim.metrics.
"""

import numpy as np
import pytest

import _databases
from anim import metrics, runner, scripts
from anim.control import ControlInput
from controllers.motion_matching import MotionMatchingController, RuntimeConfig

pytestmark = pytest.mark.skipif(not _databases.corpus_available(),
                                reason="the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")
FPS = 60.0


@pytest.fixture(scope="module")
def db():
    return _databases.normal_db()


@pytest.fixture(scope="module")
def mm(db):
    """One controller for the tests that only reset it (a controller is reset
    by runner.run before every script)."""
    return MotionMatchingController(db)


def drive(ctrl, text, seconds=None):
    return runner.run(ctrl, scripts.parse(text, "<test>"), seconds)


def root_speed(rec, a, b):
    """Mean horizontal root velocity between times a and b (s)."""
    v = metrics.horizontal_velocity(rec.positions[:, 0], FPS)
    return v[int(a * FPS):int(b * FPS)].mean(axis=0)


def feet(db):
    return [db.skeleton.index(f) for f in db.config.feet]


# ----------------------------------------------------------------- speed and turning
def test_measured_speeds_are_human(mm):
    s = mm.speeds
    assert 0.8 < s["walk"] < 1.8 and 2.0 < s["run"] < 5.0 and s["run"] > 1.6 * s["walk"]
    assert 0.5 < s["side"] < 1.8 and 0.5 < s["back"] < 1.8


@pytest.mark.parametrize("run", [False, True])
def test_reaches_the_asked_velocity(mm, run):
    rec = drive(mm, f"t=0 move=0,1 run={int(run)}\n", seconds=6.0)
    want = mm.speeds["run" if run else "walk"]
    v = root_speed(rec, 3.0, 6.0)
    assert np.hypot(v[0], v[2]) == pytest.approx(want, rel=0.2)
    assert abs(np.degrees(np.arctan2(v[0], v[2]))) < 10          # straight ahead (+Z)


def test_strafes_sideways_while_facing_ahead(mm):
    rec = drive(mm, "t=0 move=1,0 facing=0,1\n", seconds=5.0)
    v = root_speed(rec, 2.5, 5.0)
    assert v[0] == pytest.approx(mm.speeds["side"], rel=0.3) and abs(v[2]) < 0.3
    head = metrics.headings(rec.rotations[int(2.5 * FPS):, 0])
    assert np.degrees(metrics.heading_error(head, np.tile([0.0, 1.0], (len(head), 1)))).max() < 30


@pytest.mark.parametrize("move, angle", [("1,0", 90), ("-1,0", 90), ("0,-1", 180)])
def test_heading_follows_a_sharp_turn(mm, move, angle):
    rec = drive(mm, f"t=0 move=0,1\nt=3 move={move}\n", seconds=6.0)
    head = metrics.headings(rec.rotations[:, 0])
    goal = np.array([float(x) for x in move.split(",")])
    err = np.degrees(metrics.heading_error(head, np.tile(goal, (len(head), 1))))
    assert err[int(2.5 * FPS)] == pytest.approx(angle, abs=20)    # before: still facing +Z
    after = np.flatnonzero(err[int(3 * FPS):] < 20)
    assert after.size and after[0] / FPS <= 1.5                    # within 1.5 s of the change
    assert err[int(4.5 * FPS):].max() < 25                         # and it stays there
    v = root_speed(rec, 5.0, 6.0)
    assert np.dot(v[[0, 2]], goal) > 0.8 * mm.speeds["walk"]       # moving the new way


# ------------------------------------------------------------------ ground and NaN
def test_stays_on_the_ground(mm, db):
    rec = runner.run(mm, scripts.load("turns"))
    g = rec.global_positions()
    assert np.abs(rec.positions[:, 0, 1]).max() < 1e-6            # the root is on the floor
    ankles = g[:, feet(db), 1]
    toes = g[:, [db.skeleton.index(t) for t in db.config.toes], 1]
    assert ankles.min() > 0.03 and toes.min() > -0.03              # never far below the ground
    assert np.percentile(toes, 5) < 0.08                           # ... nor floating
    hips = g[:, db.skeleton.index(db.config.hips), 1]
    assert 0.7 < hips.min() and hips.max() < 1.15                 # a standing human's hips


def random_script(seed, seconds):
    """Random stick keys every 0.1-1.5 s: directions, lengths, run, strafing, turns."""
    rng = np.random.default_rng(seed)
    lines, t = ["t=0 move=0"], 0.0
    while True:
        t += float(rng.uniform(0.1, 1.5))
        if t >= seconds:
            break
        a, r = rng.uniform(-np.pi, np.pi), 0.999 * float(rng.choice([0.0, 0.3, 1.0, rng.uniform(0, 1)]))
        key = f"t={t:.3f} move={r * np.sin(a):.3f},{r * np.cos(a):.3f} run={int(rng.random() < 0.4)}"
        if rng.random() < 0.3:
            b = rng.uniform(-np.pi, np.pi)
            key += f" facing={np.sin(b):.3f},{np.cos(b):.3f}"
        elif rng.random() < 0.5:
            key += " facing=none"
        key += f" turn={rng.choice([0, 0, 90, -180]):d}"
        lines.append(key)
    return "\n".join(lines) + "\n"


def check_sane(rec, db):
    assert np.isfinite(rec.rotations).all() and np.isfinite(rec.positions).all()
    assert np.abs(np.linalg.norm(rec.rotations, axis=-1) - 1).max() < 1e-3
    assert np.abs(rec.positions[:, 0, 1]).max() < 1e-6
    speed = np.linalg.norm(metrics.horizontal_velocity(rec.positions[:, 0], FPS), axis=-1)
    assert speed.max() < 8.0                                       # no teleporting
    # the skeleton keeps its shape: bone lengths are the database's
    g = rec.global_positions()
    bones = np.linalg.norm(g[:, 2:] - g[:, db.skeleton.parents[2:]], axis=-1)
    rest = np.linalg.norm(db.skeleton.offsets[2:], axis=-1)
    assert np.abs(bones - rest).max() < 1e-3
    return g


@pytest.fixture(scope="module")
def random_run(mm):
    return drive(mm, random_script(0, 60.0), seconds=60.0)


def test_no_nan_over_a_long_random_input(random_run, db):
    check_sane(random_run, db)
    assert random_run.stats["transitions"] > 50


def test_feet_stay_above_the_ground_under_random_input(random_run, db):
    g = random_run.global_positions()
    assert g[:, feet(db), 1].min() > 0.0                           # ankles sit 5-10 cm up when planted


@pytest.mark.slow
def test_no_nan_over_ten_minutes_of_random_input(db):
    ctrl = MotionMatchingController(db)
    for seed in range(1, 6):
        check_sane(drive(ctrl, random_script(seed, 120.0), seconds=120.0), db)
    assert ctrl.stats["transitions"] > 100


def test_unknown_style_is_a_clear_error(mm):
    mm.reset()
    with pytest.raises(ValueError, match="style 'sad' not in the database"):
        mm.step(ControlInput(move=np.zeros(2, np.float32), style="sad"), 1 / FPS)
    mm.reset()


# --------------------------------------------------------------------------- styles
def test_style_change_takes_effect():
    db2 = _databases.two_style_db()
    ctrl = MotionMatchingController(db2)
    assert ctrl.styles == ["active", "normal"]
    rec = drive(ctrl, "t=0 move=0,1 style=normal\nt=3 style=active\nt=6 style=normal\n", seconds=8.0)
    tag = {n: t["style"] for n, t in zip(db2.clip_names, db2.clip_tags)}
    played = np.array([tag[c] for c in rec.clips[1:]])              # frame i + 1 is the step at time i
    times = np.arange(len(played)) / FPS
    assert (played[times < 3.0] == "normal").all()
    assert (played[(times >= 3.0) & (times < 6.0)] == "active").all()   # the switch is immediate
    assert (played[times >= 6.0] == "normal").all()
    m = runner.evaluate(rec, db2, ctrl.speeds, series=False)
    assert [c["latency_s"] for c in m["style_changes"]] == pytest.approx([1 / FPS, 1 / FPS])


# ----------------------------------------------------------------------- foot locking
def stance_drift_cm(rec, db, settle=6, min_frames=12):
    """Per stance (a run of >= min_frames contact frames), the largest
    horizontal distance (cm) the toe (the joint contacts are defined on, and the
    one foot locking pins) moves after the first `settle` frames."""
    toes = [db.skeleton.index(t) for t in db.config.toes]
    g = rec.global_positions()[:, toes][..., [0, 2]]
    out = []
    for f in range(2):
        c = np.r_[False, rec.contacts[:, f], False].astype(int)
        starts, stops = np.flatnonzero(np.diff(c) == 1), np.flatnonzero(np.diff(c) == -1)
        for a, b in zip(starts, stops):
            if b - a >= min_frames:
                p = g[a + settle:b, f]
                out.append(100 * np.linalg.norm(p - p[0], axis=-1).max())
    return np.array(out)


def test_foot_locking_keeps_a_planted_foot_still(db):
    text = scripts.load("walk")
    locked = stance_drift_cm(runner.run(MotionMatchingController(db), text), db)
    free = stance_drift_cm(runner.run(MotionMatchingController(db, RuntimeConfig(foot_lock=False)), text), db)
    assert len(locked) >= 10 and len(free) >= 10
    assert np.median(locked) < 2.0                                 # a planted foot stays within 2 cm
    assert np.median(locked) < 0.5 * np.median(free)               # ... where the raw animation slides


# ---------------------------------------------------------- the targets, relaxed
# The issue asks (shipped scripts, normal-style locomotion database): 90% of a
# walk-to-run or 180-degree change within 0.5 s, foot skating in contact at most
# 2 cm/s, no joint acceleration above the database's 99.9th percentile; the
# benchmark reports the exact figures. These tests check relaxed bounds, per
# script where the data limits what the controller can do: the normal-style
# database holds no side steps and about one second of backward walking, and
# no pivots, so strafing plays forward-walk clips moved sideways by the root
# correction, and its feet re-plant (step) far more often than elsewhere. Those
# bounds guard against regressions; they are not the targets. Measured (python -m bench motion_matching): skating 0.4 /
# 0.1 / 0.2 / 0.8 cm/s on walk / run / circles / stop_start, turns 1.2, strafe
# 1.7 (steps 0-5%, turns 15%, strafe 46%); worst response 0.23-0.47 s. The
# acceleration target is exact: RuntimeConfig.accel_limit holds every joint
# under the database's p99.9 (largest 0.91-0.995x it), where faithful playback
# reached 1.32x (the data's own run clips go above it). The bounds leave room
# for another CPU's rounding.
RELAXED = {"response_s": 0.6, "skating_cm_s": 5.0, "accel_ratio": 3.0}
SKATING = {"walk": 0.75, "circles": 0.75, "run": 0.5, "stop_start": 1.2, "turns": 2.5, "strafe": 2.5}
# share of the clip's contact frames a foot spends stepping (lifted to re-plant): a bound, so that the
# skating above cannot be bought by lifting feet (strafe: the data has 3.4 s of side steps)
STEPS = {"walk": 0.03, "circles": 0.07, "run": 0.06, "stop_start": 0.1, "turns": 0.2, "strafe": 0.5}
SCRIPTS = [p.stem for p in scripts.shipped() if not scripts.load(p).styles]


def cases(metric):
    return SCRIPTS


_RESULTS: dict = {}


def measured(db, name):
    if name not in _RESULTS:
        ctrl = MotionMatchingController(db)
        rec = runner.run(ctrl, scripts.load(name))
        _RESULTS[name] = runner.evaluate(rec, db, ctrl.speeds, series=False)
    return _RESULTS[name]


def test_shipped_scripts_are_covered():
    assert set(SCRIPTS) == {"walk", "run", "turns", "circles", "strafe", "stop_start"}


@pytest.mark.parametrize("name", cases("response_s"))
def test_responsiveness(db, name):
    m = measured(db, name)
    events = [e for e in m["responsiveness"]["events"] if e["kind"] != "facing"]
    assert events and all(e["response_s"] is not None for e in events), events   # every change is reached
    key = [e["response_s"] for e in events
           if e["kind"] == "speed-up" or (e["kind"] == "turn" and e["angle_deg"] >= 150)]
    assert all(t < RELAXED["response_s"] for t in key), key


@pytest.mark.parametrize("name", cases("skating_cm_s"))
def test_foot_skating(db, name):
    assert measured(db, name)["foot_skating"]["mean_cm_s"] < SKATING[name]


@pytest.mark.parametrize("name", cases("skating_cm_s"))
def test_feet_step_only_when_they_cannot_stay(db, name):
    steps = measured(db, name)["foot_steps"]
    assert steps["share_of_clip_contact"] < STEPS[name]


@pytest.mark.parametrize("name", cases("skating_cm_s"))
def test_planted_feet_stand_on_the_ground(db, name):
    """A foot the pose reports in contact stands where the database's contacts
    do (its toe under the contact height): a transition's offsets held feet
    pinned 11-18 cm up for up to 1.6 s in an earlier version."""
    gr = measured(db, name)["ground"]
    assert gr["planted_toe_height_max_m"] < gr["contact_height_m"] + 0.01
    assert gr["planted_above_contact_height"] < 0.002


_UPPER: dict = {}


@pytest.mark.parametrize("name", ["walk", "turns", "strafe"])
def test_arms_blend_into_a_transition_without_a_hand_spike(db, name):
    """Transitions change the arms' swing (the search matches legs and
    trajectory, not arms): the upper body's offsets decay no harder than
    RuntimeConfig.inertialize_accel at the hands, so the hands, forearms and
    head stay under the database's p99.9 joint acceleration on scripts whose
    clips' own arms do (their 0.1 s decay threw hands at 115-121 m/s^2)."""
    if name not in _UPPER:
        ctrl = MotionMatchingController(db)
        rec = runner.run(ctrl, scripts.load(name))
        up = [db.skeleton.index(n) for n in ("Hand_L", "Hand_R", "LowerArm_L", "LowerArm_R", "Head")]
        _UPPER[name] = metrics.joint_accelerations(rec.global_positions(), FPS)[:, up].max()
    assert _UPPER[name] < runner.database_reference(db)["accel_p999_m_s2"]


@pytest.mark.parametrize("name", cases("accel_ratio"))
def test_joint_accelerations(db, name):
    """The issue's target as worded: no joint acceleration above the
    database's 99.9th percentile."""
    assert measured(db, name)["smoothness"]["ratio"] <= metrics.TARGETS["accel_ratio"]


@pytest.mark.parametrize("name", cases("accel_above"))
def test_few_joint_accelerations_above_the_database(db, name):
    """Less strict than the maximum (the database's own maximum is about 2.2
    times its 99.9th percentile): at most 1% of joint-frames above the
    database's 99.9th percentile (the database itself has 0.1%)."""
    assert measured(db, name)["smoothness"]["above_fraction"] < 0.01


def test_the_databases_own_runs_go_above_its_p999(db):
    """Why the issue's 'no joint acceleration above the database's 99.9th
    percentile' needs the acceleration limit: played exactly as captured,
    every run clip of the normal-style database goes above it somewhere (its
    toes at push-off), the walks do not; and no shipped script goes above the
    database's own largest."""
    ref = runner.database_reference(db)
    by = ref["clips_by_content"]
    assert by["run"]["clips"] > 50 and by["run"]["above_p999"] > 0.9 and by["run"]["median_max_ratio"] > 1.15
    assert by["walk"]["clips"] > 30 and by["walk"]["above_p999"] < 0.1
    for name in SCRIPTS:
        assert measured(db, name)["smoothness"]["max_m_s2"] <= ref["accel_max_m_s2"]


def test_the_acceleration_limit_is_what_holds_the_target_and_moves_little(db):
    """The run script played without the limit (accel_limit=0) goes past the
    database's p99.9 as its clips do; with it, the shown pose differs from the
    unlimited one on under 5% of frames, by at most 2 cm, and the rest of the
    motion is the same (the limit is the tick's last stage: nothing feeds back)."""
    ref = runner.database_reference(db)["accel_p999_m_s2"]
    script = scripts.load("run")
    a, b = MotionMatchingController(db), MotionMatchingController(db, RuntimeConfig(accel_limit=0.0))
    assert a.accel_limit == pytest.approx(ref) and b.accel_limit == 0.0
    ga, gb = runner.run(a, script).global_positions(), runner.run(b, script).global_positions()
    assert metrics.smoothness(gb, FPS, ref)["ratio"] > 1.15
    assert metrics.smoothness(ga, FPS, ref)["ratio"] <= 1.0
    moved = np.linalg.norm(ga.astype(np.float64) - gb, axis=-1).max(axis=1)
    assert 0 < a.stats["limited"] < 0.05 * len(ga) and (moved > 1e-4).mean() < 0.05
    assert moved.max() < 0.02


# ---------------------------------------------------------- what the data covers
def test_coverage_measures_directions_of_travel(db):
    """The normal-style locomotion holds minutes of forward motion but seconds of
    side steps and backward walking (its walk-left/right clips walk forward
    toward the side): the coverage says so, from the root velocities."""
    from controllers.motion_matching import measured_coverage
    cov = measured_coverage(db)
    assert cov["forward"] > 600 and cov["side"] < 10 and cov["back"] < 10
    v = db.root_velocity_character()
    moving = np.hypot(v[:, 0], v[:, 2]) > 0.5
    assert sum(cov.values()) == pytest.approx(moving.sum() / db.config.fps, rel=0.02)


def test_hud_note_when_strafing_beyond_the_data(mm):
    from controllers.motion_matching.controller import coverage_note
    mm.reset()
    side = mm.step(ControlInput(move=np.array([1.0, 0.0]), facing=np.array([0.0, 1.0])), 1 / FPS)
    assert "side steps" in side.info.note
    back = mm.step(ControlInput(move=np.array([0.0, -1.0]), facing=np.array([0.0, 1.0])), 1 / FPS)
    assert "backward" in back.info.note
    ahead = mm.step(ControlInput(move=np.array([0.0, 1.0]), facing=np.array([0.0, 1.0])), 1 / FPS)
    turning = mm.step(ControlInput(move=np.array([1.0, 0.0])), 1 / FPS)
    assert ahead.info.note is None and turning.info.note is None
    assert coverage_note({"forward": 100.0, "side": 50.0, "back": 50.0}, [1.0, 0.0], [0.0, 1.0]) is None
