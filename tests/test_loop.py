"""The one runtime loop (anim.loop), the stage registry (anim_app.registry)
and the physics stage that tracks any kinematic stage live
(controllers.physics.tracker)."""

import json
import os

import numpy as np
import pytest

import _databases
from anim import quat, runner, scripts
from anim.control import ControlInput
from anim.loop import Loop
from anim.skeleton import Pose, PoseInfo, Skeleton

needs_corpus = pytest.mark.skipif(not _databases.corpus_available(),
                                  reason="the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "controllers", "physics",
                       "weights", "walk-run.npz")


class Counter:
    """A two-joint stage whose root moves by the stick times dt."""

    def __init__(self):
        self.skeleton = Skeleton(("root", "hips"), np.array([-1, 0]), np.array([[0, 0, 0], [0, 1, 0]], np.float32))
        self.seen = []

    def reset(self, pose=None):
        self.x = np.zeros(3, np.float32)
        return self._pose()

    def step(self, ci, dt):
        self.seen.append((ci, dt))
        self.x = self.x + np.array([ci.move[0], 0, ci.move[1]], np.float32) * dt
        return self._pose()

    def _pose(self):
        pos = self.skeleton.offsets.copy()
        pos[0] = self.x
        return Pose(quat.identity((2,)), pos, np.array([True, False]), PoseInfo(clip="c", frame=len(getattr(self, "seen", []))))


# ------------------------------------------------------------------ the loop
def test_loop_feeds_the_source_through_the_guard_to_the_stage_and_the_sinks():
    stage = Counter()
    seen = []

    def guard(ci, dt):        # a guard may replace the input and bound dt
        return ControlInput(move=np.clip(ci.move, -1, 1)), min(dt, 0.05)

    loop = Loop(stage, lambda t: ControlInput(move=np.array([5.0 * t, 2.0], np.float32)), [seen.append],
                fps=30.0, guard=guard)
    loop.run(ticks=30)
    assert loop.index == 30 and loop.time == pytest.approx(1.0)
    assert [s.index for s in seen] == list(range(1, 31))
    assert all(s.dt == pytest.approx(1 / 30) for s in seen)
    # the stage saw the guarded input, taken at the start of each tick
    assert stage.seen[0][0].move.tolist() == [0.0, 1.0]
    assert stage.seen[-1][0].move.tolist() == [1.0, 1.0]
    assert seen[-1].pose.positions[0, 2] == pytest.approx(1.0, abs=1e-5)
    assert all(s.ms >= 0 and s.stage is stage for s in seen)
    with pytest.raises(ValueError):
        loop.run(ticks=0)
    with pytest.raises(ValueError):
        Loop(stage, fps=0)


def test_loop_without_a_source_takes_the_input_it_is_given():
    stage = Counter()
    loop = Loop(stage)
    loop.reset()
    loop.tick(ControlInput(move=np.array([0.0, 1.0], np.float32)))
    loop.tick()                                   # no source, no input: the resting stick
    assert stage.seen[1][0].move.tolist() == [0.0, 0.0]
    assert loop.pose.positions[0, 2] == pytest.approx(1 / 60)


def test_runner_records_through_the_loop():
    """anim.runner.run is the loop with a Recorder: frame 0 the reset pose,
    frame i+1 the pose after step i; the inputs at each frame's time."""
    s = scripts.parse("duration=1\nt=0 move=0,1\nt=0.5 move=1,0 run=1\n", "s.stick")
    rec = runner.run(Counter(), s, 1.0)
    assert rec.num_frames == 61 and rec.tick_ms.shape == (60,)
    assert rec.positions[60, 0, 2] == pytest.approx(0.5, abs=1e-5) and rec.positions[60, 0, 0] == pytest.approx(0.5, abs=1e-5)
    assert rec.run[29] == False and rec.run[30] == True  # noqa: E712
    assert rec.clips[5] == "c" and rec.tracking is None and rec.transitions is None


# ------------------------------------------------------------------ the registry
def test_every_registered_stage_is_a_command_line_choice():
    from anim_app import registry
    from anim_app.cli import build_parser
    p = build_parser()
    run = next(a for a in p._subparsers._group_actions[0].choices["run"]._actions if a.dest == "controller")
    assert set(run.choices) == set(registry.STAGES) >= {"mm", "lmm", "clip", "physics"}
    assert registry.STAGES["physics"].kind == "physics"
    with pytest.raises(ValueError, match="unknown controller"):
        registry.build_stage("nope", None)


@needs_corpus
def test_registry_builds_each_stage_on_the_database():
    from anim.control import Controller
    from anim_app import registry
    db = _databases.normal_db()
    for name in registry.STAGES:
        opts = {"clip": db.clip_names[0]} if name == "clip" else {}
        st = registry.build_stage(name, db, **opts)
        assert isinstance(st, Controller), name
        p = Loop(st).reset()
        assert p.rotations.shape == (db.skeleton.num_joints, 4) and np.isfinite(p.positions).all()
    with pytest.raises(ValueError, match="kinematic"):
        registry.build_stage("physics", db, kinematic="physics")


# ------------------------------------------------------------------ the physics stage
@pytest.fixture(scope="module")
def db():
    if not _databases.corpus_available():
        pytest.skip("the mocap corpus is absent")
    return _databases.normal_db()


def _walk(db):
    return next(n for n, t in zip(db.clip_names, db.clip_tags) if t.get("content") == "walk" and not t.get("mirrored"))


@needs_corpus
def test_physics_stage_over_a_clip_tracks_as_the_clip_controller(db):
    """The physics stage tracking a clip player follows the clip as the clip
    controller (which reads the clip's future frames directly) does: the
    lagged reference shows the policy the same frames."""
    from controllers.physics.runtime import PhysicsController, PhysicsRuntimeConfig
    from controllers.physics.tracker import PhysicsStage, TrackerConfig
    from controllers.playback import ClipPlayer
    clip = _walk(db)
    st = PhysicsStage(ClipPlayer(db, clip), SHIPPED, config=TrackerConfig(max_root_distance=100.0))
    pc = PhysicsController(db, clip, SHIPPED, config=PhysicsRuntimeConfig(loop=False))
    ea, eb = [], []
    for _ in range(120):
        a, b = st.step(ControlInput(), 1 / 60), pc.step(ControlInput(), 1 / 60)
        ea.append(a.info.pose_error_cm)
        eb.append(b.info.pose_error_cm)
    assert st.stats["falls"] == pc.stats["falls"] == 0
    assert abs(np.mean(ea) - np.mean(eb)) < 1.0 and np.mean(ea) < 6.0
    # the ghost is the reference frame the body is at: lag frames behind the clip player
    assert a.info.frame == st.kinematic.frame - st.lag == 120


@needs_corpus
def test_physics_stage_pulls_the_reference_back_to_the_body(db):
    """A body 1 m off its reference: the kinematic world is moved so that the
    reference's hips are max_root_distance from the body's, and stay there."""
    import mujoco

    from controllers.physics.tracker import PhysicsStage, TrackerConfig
    from controllers.playback import ClipPlayer
    st = PhysicsStage(ClipPlayer(db, _walk(db)), SHIPPED, config=TrackerConfig(max_root_distance=0.2))
    st.data.qpos[0] += 1.0                          # MuJoCo x: 1 m to the side
    mujoco.mj_forward(st.model, st.data)
    first = st.step(ControlInput(), 1 / 60)
    assert first.info.root_distance_cm > 90
    assert np.linalg.norm(st.offset) == pytest.approx(0.8, abs=0.05)
    # the pull-back is counted (the lag a bounded root distance hides)
    assert st.stats["shift_m"] == pytest.approx(np.linalg.norm(st.offset), abs=1e-9)
    d = [st.step(ControlInput(), 1 / 60).info.root_distance_cm for _ in range(30)]
    assert max(d) < 25.0 and st.stats["falls"] == 0
    assert st.stats["shift_m"] >= 0.75
    # the ghost (the tracked reference, drawn by the viewer) moved with it
    ghost = st._pose().info.ghost
    kin = st.kinematic._pose()
    assert np.linalg.norm((ghost.positions[0] - kin.positions[0])[[0, 2]]) > 0.5


@needs_corpus
def test_physics_stage_recovers_from_a_fall_without_a_restart(db):
    """A hard shove fells the body; after fall_reset_seconds it is stood up
    where it lies (the kinematic stage reset there) and tracks on."""
    from controllers.physics.tracker import PhysicsStage, TrackerConfig
    from controllers.playback import ClipPlayer
    st = PhysicsStage(ClipPlayer(db, _walk(db)), SHIPPED,
                      config=TrackerConfig(push_impulse=400.0, fall_reset_seconds=0.5, recover_seconds=0.25))
    for _ in range(10):
        st.step(ControlInput(), 1 / 60)
    st.step(ControlInput(move=np.array([1.0, 0.0], np.float32), actions=frozenset({"push"})), 1 / 60)
    statuses = []
    for _ in range(150):
        p = st.step(ControlInput(), 1 / 60)
        statuses.append(p.info.status)
    assert st.stats["falls"] >= 1 and st.stats["recoveries"] >= 1
    assert "fallen" in statuses and "recovering" in statuses
    assert statuses[-1] is None and not p.info.fallen
    assert np.isfinite(p.positions).all()
    hips = db.skeleton.index("Hips")
    _, g = quat.fk(p.rotations, p.positions, db.skeleton.parents)
    assert g[hips, 1] > 0.7                         # standing again


@needs_corpus
def test_physics_over_motion_matching_from_the_command_line(db, tmp_path):
    """`anim run --controller physics --input walk`: the humanoid tracks
    motion matching driven by the script; the report has the kinematic
    metrics plus falls, pose error against the reference and root distance."""
    from anim import database
    from anim_app.cli import main
    path = tmp_path / "n.animdb"
    database.save(db, str(path))
    out = tmp_path / "runs"
    assert main(["run", "--controller", "physics", "--input", "walk", "--seconds", "3", "--db", str(path),
                 "--out", str(out)]) == 0
    m = json.loads((out / "walk.json").read_text())
    ph = m["physics"]
    assert set(ph) >= {"falls", "pose_error_cm", "tracking_error_cm", "root_distance_cm", "recoveries",
                       "pulled_back_m_per_min"}
    assert ph["root_distance_cm"]["p95"] < 30 and m["finite"]
    # the shipped policy walks a little behind motion matching: pulled back, but well under the walk's 70 m/min
    assert 0.0 <= ph["pulled_back_m_per_min"] < 20.0
    assert m["tick"]["p50_ms"] > 0 and (out / "walk.bvh").exists()


def test_the_loop_validates_input_once_at_the_boundary_by_default():
    """With no guard given, the loop's InputGuard replaces a NaN stick (the
    stage stands) and counts it; guard=False passes the input as it is."""
    stage = Counter()
    bad = ControlInput(move=np.array([np.nan, 1.0], np.float32), run="yes")
    loop = Loop(stage, lambda t: bad)
    loop.run(ticks=3)
    assert all(np.isfinite(ci.move).all() and ci.move.tolist() == [0.0, 0.0] and ci.run is False
               for ci, _ in stage.seen)
    assert loop.guard.rejected["move"] == 3 and np.isfinite(loop.pose.positions).all()
    raw = Counter()
    Loop(raw, lambda t: bad, guard=False).run(ticks=1)
    assert np.isnan(raw.seen[0][0].move[0])
