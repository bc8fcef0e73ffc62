"""anim.scripts (stick scripts), anim.runner (headless runs, BVH out, `anim run`)
and the metrics on known inputs (anim.metrics has its own file)."""

import json
import math

import numpy as np
import pytest

import _databases
from anim import bvh, quat, runner, scripts
from anim_app import registry
from anim_app.cli import main as cli_main
from anim.control import ControlInput
from anim.skeleton import Pose, PoseInfo, Skeleton

needs_corpus = pytest.mark.skipif(not _databases.corpus_available(),
                                  reason="the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")


# --------------------------------------------------------------------- script format
def test_keys_are_piecewise_constant_and_sticky():
    s = scripts.parse("duration=6\n"
                      "t=0   move=0\n"
                      "t=1   move=0,1   style=normal\n"
                      "t=2   run=1      facing=1,0   # strafe, facing left\n"
                      "t=3   move=-1,0  facing=none\n", "x.stick")
    assert s.duration == 6 and len(s.keys) == 4
    assert np.allclose(s(0.5).move, [0, 0]) and s(0.5).style is None and not s(0.5).run
    c = s(1.5)
    assert np.allclose(c.move, [0, 1]) and c.style == "normal" and not c.run and c.facing is None
    c = s(2.0)                                       # a key applies from its own time on
    assert c.run and np.allclose(c.facing, [1, 0]) and np.allclose(c.move, [0, 1]) and c.strafe
    c = s(5.9)
    assert np.allclose(c.move, [-1, 0]) and c.facing is None and c.run and c.style == "normal"
    assert np.allclose(s(100).move, [-1, 0])         # the last key holds
    assert isinstance(c, ControlInput)


def test_ramp_and_turn():
    s = scripts.parse("t=0 move=0\nt=2 ramp move=0,1\nt=3 turn=90\nt=5 turn=0\n", "r.stick")
    assert np.allclose(s(1.0).move, [0, 0.5]) and np.allclose(s(2.0).move, [0, 1])
    assert np.allclose(s(4.0).move, [1, 0], atol=1e-6)         # 90 deg/s for 1 s: +Z turned left to +X
    assert np.allclose(s(5.0).move, [0, -1], atol=1e-6)        # 180 deg at the key that stops the turn
    assert np.allclose(s(7.0).move, [0, -1], atol=1e-6)
    assert s.duration == pytest.approx(7.0)                    # last key + 2 s without a header
    for t in np.linspace(3, 5, 9):
        assert np.linalg.norm(s(t).move) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("text, line, words", [
    ("t=0 move=0\nt=1 speed=3\n", 2, "unknown field 'speed'"),
    ("t=0 move=0\nt=2 move=0,1\nt=1.5 move=0\n", 3, "does not come after"),
    ("t=0.5 move=0,1\n", 1, "first key must be at t=0"),
    ("t=0 move=1,1\n", 1, "stick length 1.414 > 1"),
    ("t=0 move=0,1,2\n", 1, "expected two numbers"),
    ("t=0 run=maybe\n", 1, "run='maybe'"),
    ("t=0 move=0\nt=1 ramp run=1\n", 2, "'ramp' needs a move"),
    ("t=0 move=0,1 turn=30\nt=1 ramp move=0\n", 2, "after a turning segment"),
    ("t=0 facing=0,0\n", 1, "zero direction"),
    ("t=0 t=1\n", 1, "given twice"),
    ("t=0 move 0,1\n", 1, "expected NAME=VALUE"),
    ("seconds=3\nt=0\n", 1, "unknown header field 'seconds'"),
    ("t=0\nduration=3\n", 2, "before the first key"),
    ("duration=3\nt=0\nt=4 move=0\n", 3, "past duration=3"),
    ("# only a comment\n", 0, "no keys"),
])
def test_errors_name_the_file_and_line(text, line, words):
    with pytest.raises(scripts.ScriptError) as e:
        scripts.parse(text, "bad.stick")
    assert e.value.line == line and words in str(e.value)
    assert str(e.value).startswith("bad.stick, line %d: " % line if line else "bad.stick: ")


def test_shipped_scripts_parse_and_resolve_by_name(tmp_path):
    names = [p.stem for p in scripts.shipped()]
    for want in ("walk", "run", "turns", "circles", "strafe", "styles", "stop_start"):
        assert want in names
    for n in names:
        s = scripts.load(n)
        assert s.name == n and s.duration > s.keys[-1].t and s.description
        assert all(np.linalg.norm(s(t).move) <= 1 + 1e-5 for t in np.arange(0, s.duration, 0.1))
    assert scripts.load("styles").styles == ["active", "feminine", "normal"]
    p = tmp_path / "mine.stick"
    p.write_text("t=0 move=0,1\n")
    assert scripts.load(str(p)).name == "mine"
    with pytest.raises(FileNotFoundError, match="no such stick script .*shipped: .*walk"):
        scripts.load("no-such-script")


def test_styles_are_checked_against_the_database():
    s = scripts.load("styles")
    s.check_styles(["normal", "active", "feminine", "sad"])
    with pytest.raises(scripts.ScriptError) as e:
        s.check_styles(["normal"], "db.animdb")
    msg = str(e.value)
    assert "styles.stick, line" in msg and "'active' is not in db.animdb (it has: normal)" in msg
    assert "anim build-db --preset locomotion" in msg


# -------------------------------------------------------------- runner on a fake
class Glider:
    """A two-joint 'character' whose root takes the asked velocity at once
    (walk 1 m/s, run 3 m/s) and faces where it moves."""

    skeleton = Skeleton(("root", "foot"), [-1, 0], [[0, 0, 0], [0.1, 0.05, 0]])
    speeds = {"walk": 1.0, "run": 3.0, "side": 1.0, "back": 1.0}

    def reset(self, pose=None):
        self.pos = np.zeros(3)
        self.rot = quat.identity()
        self.stats = {"searches": 0, "transitions": 0, "transition_cost": 0.0}
        return self._pose()

    def step(self, ci, dt):
        v = np.array([ci.move[0], 0, ci.move[1]]) * (3.0 if ci.run else 1.0)
        self.pos = self.pos + v * dt
        if np.linalg.norm(ci.move) > 1e-3:
            self.rot = quat.from_angle_axis(math.atan2(ci.move[0], ci.move[1]), np.array([0, 1.0, 0]))
        self.stats["searches"] += 1
        return self._pose()

    def _pose(self):
        rot = np.stack([self.rot, quat.identity()]).astype(np.float32)
        pos = np.stack([self.pos, self.skeleton.offsets[1]]).astype(np.float32)
        return Pose(rot, pos, np.array([False, False]), PoseInfo())


def test_run_records_every_tick_with_its_input():
    s = scripts.parse("t=0 move=0\nt=0.5 move=0,1\nt=1 run=1\n")
    rec = runner.run(Glider(), s, seconds=1.5)
    assert rec.num_frames == 91 and rec.tick_ms.shape == (90,) and rec.fps == 60
    # frame i is at i/60 and holds the input asked at that time
    assert not rec.move[29].any() and np.allclose(rec.move[30], [0, 1]) and rec.run[60] and not rec.run[59]
    # the glider moves from the step after the key: 0.5 s walking + 0.5 s running
    assert rec.positions[-1, 0, 2] == pytest.approx(0.5 * 1.0 + 0.5 * 3.0, abs=1e-4)
    assert rec.stats["searches"] == 90 and rec.transitions is not None and not rec.transitions.any()
    assert rec.global_positions().shape == (91, 2, 3)


# ------------------------------------------------------------ runner on the real thing
@pytest.fixture(scope="module")
def tiny_db():
    if not _databases.corpus_available():
        pytest.skip("the mocap corpus is absent")
    return _databases.two_style_db()


@needs_corpus
def test_bvh_out_reads_back_to_the_same_motion(tiny_db, tmp_path):
    ctrl = registry.build_stage("mm", tiny_db)
    rec = runner.run(ctrl, scripts.load("turns"), seconds=4.0)
    path = tmp_path / "m.bvh"
    runner.write_bvh(rec, str(path))
    text = path.read_text()
    assert "ROOT joint_Root" in text and "Frame Time: 0.0166666667" in text
    hips_block = text.split("JOINT Hips")[1].split("JOINT")[0]
    assert "CHANNELS 6 Xposition" in hips_block                 # the hips translate under the root
    assert "CHANNELS 3 Zrotation" in text.split("JOINT Spine")[1].split("JOINT")[0]
    _, clip = bvh.read_bvh(str(path), scale=0.01)               # written in centimetres
    assert clip.num_frames == rec.num_frames and clip.fps == pytest.approx(60.0)
    _, g = quat.fk(clip.rotations, clip.positions, clip.skeleton.parents)
    assert np.abs(g - rec.global_positions()).max() < 1e-3
    assert np.abs(clip.skeleton.offsets[1] - tiny_db.skeleton.offsets[1]).max() < 1e-5


@needs_corpus
def test_evaluate_reports_every_metric(tiny_db):
    ctrl = registry.build_stage("mm", tiny_db)
    rec = runner.run(ctrl, scripts.load("stop_start"), seconds=5.5)
    m = runner.evaluate(rec, tiny_db, ctrl.speeds)
    json.dumps(m)                                               # JSON-able
    events = m["responsiveness"]["events"]
    assert [e["kind"] for e in events] == ["start", "stop", "start"]        # keys at 0.5, 2.5 and 4 s
    assert [e["time_s"] for e in events] == pytest.approx([0.5, 2.5, 4.0])
    assert all(e["response_s"] is not None and 0 < e["response_s"] < 1.5 for e in events)
    assert m["foot_skating"]["samples"] > 100 and m["foot_skating"]["mean_cm_s"] >= 0
    sm = m["smoothness"]
    assert sm["max_m_s2"] > 0 and sm["ratio"] == pytest.approx(sm["max_m_s2"] / m["database"]["accel_p999_m_s2"])
    assert m["search"]["searches"] > 10 and "average_transition_cost" in m["search"]
    assert 0 < m["tick"]["p50_ms"] <= m["tick"]["p99_ms"]
    assert len(m["series"]["heading_error_deg"]) == rec.num_frames
    assert m["finite"] and m["ground"]["root_y_max_abs_m"] < 1e-6
    assert set(m["targets"]) == {"response_s", "skating_cm_s", "accel_ratio"}
    text = runner.report_text(m)
    assert "foot skating" in text and "tick: p50" in text and "responsiveness" in text


@needs_corpus
def test_database_reference_is_the_database_played_back(tiny_db):
    ref = runner.database_reference(tiny_db)
    assert 0 < ref["accel_p99_m_s2"] < ref["accel_p999_m_s2"] < ref["accel_max_m_s2"]
    assert runner.database_reference(tiny_db) is ref             # cached
    # a clip of the database, measured like a run, stays within the database's maximum
    from anim import metrics
    a, b = int(tiny_db.range_starts[0]), int(tiny_db.range_stops[0])
    g = tiny_db.global_positions(slice(a, b))
    assert metrics.smoothness(g, 60, ref["accel_p999_m_s2"])["max_m_s2"] <= ref["accel_max_m_s2"] + 1e-6


@needs_corpus
def test_style_changes_are_measured(tiny_db):
    ctrl = registry.build_stage("mm", tiny_db)
    s = scripts.parse("t=0 move=0,1 style=normal\nt=2 style=active\n")
    rec = runner.run(ctrl, s, seconds=3.0)
    m = runner.evaluate(rec, tiny_db, ctrl.speeds, series=False)
    (c,) = m["style_changes"]
    assert c["from"] == "normal" and c["to"] == "active" and c["latency_s"] is not None and c["latency_s"] < 0.5


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def tiny_db_file(tiny_db, tmp_path_factory):
    from anim import database
    path = tmp_path_factory.mktemp("db") / "tiny.animdb"
    database.save(tiny_db, str(path))
    return str(path)


@needs_corpus
def test_cli_run_writes_bvh_json_and_prints_the_report(tiny_db_file, tmp_path, capsys):
    script = tmp_path / "zigzag.stick"
    script.write_text("# zigzag\nt=0 move=0\nt=0.3 move=0,1\nt=1.3 move=0,-1\n")
    out = tmp_path / "runs"
    rc = cli_main(["run", "--input", str(script), "--input", "walk", "--seconds", "2.5", "--db", tiny_db_file,
                   "--out", str(out), "--style", "active"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "zigzag.stick: MotionMatchingController, 2.5 s (151 frames at 60 Hz)" in text
    assert "turn        180 deg" in text and "| zigzag |" in text and "| walk |" in text
    m = json.loads((out / "zigzag.json").read_text())
    assert m["frames"] == 151 and m["database_file"] == tiny_db_file
    assert (out / "zigzag.bvh").stat().st_size > 10_000 and (out / "walk.bvh").exists()
    assert (out / "summary.md").exists()


@needs_corpus
def test_cli_run_errors_are_clear(tiny_db_file, tmp_path, capsys):
    assert cli_main(["run", "--input", "styles", "--db", tiny_db_file, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "styles.stick, line" in err and "'feminine' is not in" in err and "--preset locomotion" in err
    assert cli_main(["run", "--input", "walk", "--db", tiny_db_file, "--style", "sad",
                     "--out", str(tmp_path)]) == 2
    assert "style 'sad' not in the database" in capsys.readouterr().err
    assert cli_main(["run", "--input", "nope", "--db", tiny_db_file]) == 2
    assert "no such stick script" in capsys.readouterr().err


@needs_corpus
def test_cli_run_accel_limit_sets_the_bound(tiny_db_file, tmp_path, capsys):
    """--accel-limit 0 shows the matched clips untouched; a bound below what
    they reach (but not below what keeping the joints' velocities needs, where
    it is a best effort) holds the run under it; a negative or NaN one is an
    error."""
    script = tmp_path / "zigzag.stick"
    script.write_text("t=0 move=0,1\nt=0.8 move=0,1 run=1\nt=1.6 move=0,-1\n")
    runs = {}
    for limit in ("0", None):
        out = tmp_path / f"limit-{limit}"
        args = ["run", "--input", str(script), "--seconds", "2.5", "--db", tiny_db_file, "--out", str(out)]
        assert cli_main(args + (["--accel-limit", limit] if limit else [])) == 0
        runs[limit] = json.loads((out / "zigzag.json").read_text())
    free, default = runs["0"], runs[None]
    assert free["search"]["limited"] == 0 and default["search"]["limited"] > 0
    assert default["smoothness"]["ratio"] <= 1.01 < free["smoothness"]["ratio"]     # the database's p99.9
    bound = 0.8 * free["smoothness"]["max_m_s2"]
    out = tmp_path / "limit-lower"
    assert cli_main(["run", "--input", str(script), "--seconds", "2.5", "--db", tiny_db_file, "--out", str(out),
                     "--accel-limit", str(bound)]) == 0
    lower = json.loads((out / "zigzag.json").read_text())
    assert lower["search"]["limited"] > 0
    assert lower["smoothness"]["max_m_s2"] <= 1.01 * bound
    capsys.readouterr()
    for bad in ("-1", "nan"):
        assert cli_main(["run", "--input", "walk", "--db", tiny_db_file, "--accel-limit", bad]) == 2
        assert "--accel-limit" in capsys.readouterr().err
