"""Every pillar on a skeleton that is not Bandai Namco's: motion matching runs,
the physics humanoid is generated (helper joints merged, legs labelled from the
roles), the VR pipeline finds the head and hands, on a CMU-named rig the tests
write (Z up, inches) and on the real Character Creator rig where present."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import _databases
import _skeletons as S
import mocap_data
from anim import database
from anim.bvh import read_bvh
from anim.conform import conform_clips
from anim.importing import database_config

CMU_ICLONE = mocap_data.mocap_root() / "other-skeletons" / "cmu-iclone"


@functools.lru_cache(maxsize=None)
def _cmu_db(tmp: str) -> database.Database:
    paths = S.write_walks(tmp, "cmu", n=3, units=0.0254, up="z", frames=300)
    clips, report = conform_clips([read_bvh(p)[1] for p in paths])
    cfg, roles = database_config(clips, database.DatabaseConfig())
    db = database.build_database(clips, cfg, progress=False)
    db.meta = {"import": report, "roles": roles.to_json()}
    return db


@pytest.fixture(scope="module")
def cmu_db(tmp_path_factory):
    return _cmu_db(str(tmp_path_factory.mktemp("cmu31")))


def test_motion_matching_walks_on_a_cmu_rig(cmu_db):
    from anim import runner
    from anim.scripts import load as load_script
    from controllers.motion_matching import MotionMatchingController

    ctrl = MotionMatchingController(cmu_db)
    rec = runner.run(ctrl, load_script("walk"), seconds=4.0)
    assert rec.positions.shape[0] == 241            # the reset pose and 240 ticks
    speed = np.linalg.norm(np.diff(rec.positions[90:, 0, [0, 2]], axis=0), axis=-1).mean() * 60
    assert 0.8 < speed < 1.6                        # the synthetic walk is 1.2 m/s


def test_physics_humanoid_of_a_cmu_rig_labels_legs_from_roles(cmu_db):
    mujoco = pytest.importorskip("mujoco")
    from controllers.physics import humanoid as hum

    h = hum.from_database(cmu_db)
    names = cmu_db.skeleton.names
    seg = {names[j]: h.segments[j] for j in range(len(names))}
    assert seg["LHipJoint"] == "pelvis" and seg["LeftUpLeg"] == "thigh" and seg["LeftLeg"] == "shank"
    assert seg["LeftFoot"] == "foot" and seg["LeftToeBase"] == "toes"
    bodies = {names[j] for j in h.joints}
    assert not bodies & {"LeftHandIndex1", "LeftHandThumb1", "RightHandIndex1", "RightHandThumb1"}
    m = mujoco.MjModel.from_xml_string(h.xml)
    assert m.nbody == len(h.joints) + 1 and m.nu == h.nu


def test_physics_runtime_feet_sides_come_from_the_roles(cmu_db):
    pytest.importorskip("mujoco")
    from anim.control import ControlInput
    from controllers.physics.runtime import PhysicsController

    ctrl = PhysicsController(cmu_db, cmu_db.clip_names[0], None)
    ctrl.reset(None)
    ctrl.step(ControlInput(), 1 / 60)
    names = cmu_db.skeleton.names
    sides = {names[ctrl.h.joints[b - 1]]: s for b, s in ctrl._foot_side.items()}    # MuJoCo body id -> side
    assert sides == {"LeftFoot": 0, "LeftToeBase": 0, "RightFoot": 1, "RightToeBase": 1}


def test_vr_data_of_any_database_uses_the_head_and_hand_roles(cmu_db, tmp_path):
    from controllers.vr import data as vd

    data = vd.from_any_database(cmu_db)
    assert tuple(data.calibration) == ("Head", "LeftHand", "RightHand")
    assert set(data.clip_split) <= {"train", "val", "test"} and "train" in data.clip_split
    head = cmu_db.skeleton.index("Head")
    a, b = int(cmu_db.range_starts[0]), int(cmu_db.range_stops[0])
    g = cmu_db.global_positions(slice(a, b))
    k = data.clip_names.index(cmu_db.clip_names[0])
    s = int(data.starts[k])
    assert np.allclose(data.dev_p[s:s + (b - a), 0], g[:, head], atol=1e-5)
    groups = vd.joint_groups(cmu_db.skeleton)
    assert groups["lower_body"][:3] == ("Hips", "LeftUpLeg", "RightUpLeg") and groups["feet"] == (
        "LeftToeBase", "RightToeBase")
    r = vd.pack(data, tmp_path / "p.pack", progress=False)
    assert r["max_device_error"] < 1e-3


def test_vr_joint_groups_of_the_bandai_rig_are_the_shipped_names():
    from controllers.vr import data as vd

    skel, _ = S.make_skeleton("bandai", extras=False)
    g = vd.joint_groups(skel)
    assert (g["devices"], g["lower_body"], g["hands"], g["feet"]) == (vd.DEVICES, vd.LOWER_BODY, vd.HANDS, vd.FEET)


@pytest.mark.skipif(not CMU_ICLONE.is_dir(), reason="the CMU takes on the CC rig are not in ../shared/mocap")
def test_physics_humanoid_of_the_character_creator_rig(tmp_path, monkeypatch):
    """On the 101-joint CC rig the 76 helper joints (twists, share bones, fingers,
    toes, face, eyes, tongue, breasts) get no body and no actuator: 24 bodies,
    69 hinges; legs are thigh/shank/foot/toes, not all toes."""
    mujoco = pytest.importorskip("mujoco")
    from anim.importing import ConformOptions, prepare
    from controllers.physics import humanoid as hum

    monkeypatch.setenv("ANIM_CACHE_DIR", str(tmp_path / "cache"))
    ds = mocap_data.generic_dataset(CMU_ICLONE, scale=1.0)
    clips = mocap_data.load_clips(ds, tags={"name": ["002_01", "002_04"]}, progress=False)
    clips, cfg, meta = prepare(clips, database.DatabaseConfig(), ConformOptions())
    db = database.build_database(clips, cfg, progress=False)
    db.meta = meta
    h = hum.from_database(db)
    names = db.skeleton.names
    assert len(h.joints) == 24 and h.nu == 69
    seg = {names[j]: h.segments[j] for j in h.joints}
    assert [seg[f"CC_Base_L_{n}"] for n in ("Thigh", "Calf", "Foot", "ToeBase")] == ["thigh", "shank", "foot", "toes"]
    assert not any(n in seg for n in ("CC_Base_L_Eye", "CC_Base_Tongue01", "CC_Base_L_Index1", "CC_Base_L_Breast"))
    m = mujoco.MjModel.from_xml_string(h.xml)
    assert m.nu == 69


def test_a_small_database_stays_sane_through_the_turns_script(cmu_db):
    """Three straight walks cannot follow the turns script's 180-degree turns:
    the acceleration limiter works hard (hundreds of frames held) and the drift
    bound keeps the pose on the animation: the toes stay under 0.5 m, the head
    over 1.3 m (the issue saw a toe 2.5 m up and the head at 0.23 m on nine clips)."""
    from anim import quat, runner
    from anim.scripts import load as load_script
    from controllers.motion_matching import MotionMatchingController

    ctrl = MotionMatchingController(cmu_db)
    rec = runner.run(ctrl, load_script("turns"))
    _, g = quat.fk(rec.rotations, rec.positions, cmu_db.skeleton.parents)
    toes = [cmu_db.skeleton.index(t) for t in cmu_db.config.toes]
    assert ctrl.stats["limited"] > 100
    assert g[:, toes, 1].max() < 0.5 and g[:, cmu_db.skeleton.index("Head"), 1].min() > 1.3


@pytest.fixture(scope="module")
def cc_db(tmp_path_factory):
    """The whole CMU folder on the CC rig, built as a user would (`anim build-db --data DIR`)."""
    import os

    from anim_app.cli import main
    if not CMU_ICLONE.is_dir():
        pytest.skip(f"the CMU takes on the CC rig are not at {CMU_ICLONE}")
    tmp = tmp_path_factory.mktemp("cc")
    old = os.environ.get("ANIM_CACHE_DIR")
    os.environ["ANIM_CACHE_DIR"] = str(tmp / "cache")
    try:
        assert main(["build-db", "--data", str(CMU_ICLONE), "--out", str(tmp / "cc.animdb"), "--quiet"]) == 0
    finally:
        if old is None:
            os.environ.pop("ANIM_CACHE_DIR", None)
        else:
            os.environ["ANIM_CACHE_DIR"] = old
    return database.load(str(tmp / "cc.animdb"))


@pytest.mark.skipif(not CMU_ICLONE.is_dir(), reason="the CMU takes on the CC rig are not in ../shared/mocap")
def test_the_cc_rig_walks_in_physics_with_its_shipped_policy(cc_db):
    """The physics humanoid generated from the CC rig tracks its walks under
    the policy shipped for it (`weights/cmu-walk.npz`, which the physics
    stage picks for this skeleton by itself; the Bandai Namco skeleton still
    gets the live-loop policy): subject 2's takes 1-3 and their mirrors,
    each from its first frame. With the policy at least 5 of them end
    without a fall (all 6 when it was shipped, at 3.6 cm of pose error; 1
    to 4 at half its training) and the body stays up more than 1.5x as long
    as under PD tracking alone, which falls on every one within 1.4 s (the
    humanoid is sound: balance is what PD lacks)."""
    from anim_app.registry import default_policy
    from controllers.physics.cli import CMU_POLICY, LIVE_POLICY
    from controllers.physics.runtime import PhysicsController

    assert default_policy(None, True, cc_db.skeleton) == CMU_POLICY
    assert default_policy(None, True, _databases.physics_db().skeleton) == LIVE_POLICY
    walks = ["002_01", "002_02", "002_03"]
    up, done = {CMU_POLICY: [], None: []}, {CMU_POLICY: 0, None: 0}
    for name in walks + [w + "_mirror" for w in walks]:
        for policy in (CMU_POLICY, None):
            ctrl = PhysicsController(cc_db, name, policy)
            fall = ctrl.play_to_end()
            up[policy].append((ctrl.clip_rot.shape[0] - 1) / 60 if fall is None else fall)
            done[policy] += fall is None
    assert done[None] == 0 and max(up[None]) < 1.4, up[None]
    assert done[CMU_POLICY] >= 5, (done, up)
    assert np.mean(up[CMU_POLICY]) > 1.5 * np.mean(up[None]), up


@pytest.mark.skipif(not CMU_ICLONE.is_dir(), reason="the CMU takes on the CC rig are not in ../shared/mocap")
def test_the_drift_bound_keeps_the_cc_rig_on_its_feet_through_circles(cc_db, monkeypatch):
    """The CMU takes (walks, a run, punches, swordplay) on the CC rig, the circles
    script: the limiter without the drift bound carries the shown pose away from
    the animation (a toe 2 m up, the head down to 0.6 m, 183 cm/s of skating when
    measured for the benchmark); with it the toes stay under 0.6 m and the head
    over 1 m."""
    from anim import quat, runner
    from anim.scripts import load as load_script
    from controllers.motion_matching import MotionMatchingController
    from controllers.motion_matching.runtime import AccelerationLimiter

    db = cc_db
    toes = [db.skeleton.index(t) for t in db.config.toes]
    head = db.skeleton.index(db.roles()["head"])
    seen = {}
    for bound in (0.15, 0.0):
        monkeypatch.setattr(AccelerationLimiter, "MAX_DRIFT", bound)
        ctrl = MotionMatchingController(db)
        rec = runner.run(ctrl, load_script("circles"))
        _, g = quat.fk(rec.rotations, rec.positions, db.skeleton.parents)
        seen[bound] = (float(g[:, toes, 1].max()), float(g[:, head, 1].min()))
    assert seen[0.15][0] < 0.6 and seen[0.15][1] > 1.0
    assert seen[0.0][0] > 1.0 or seen[0.0][1] < 0.8          # the limiter as it was: the wreck


@pytest.mark.skipif(not CMU_ICLONE.is_dir(), reason="the CMU takes on the CC rig are not in ../shared/mocap")
def test_the_headless_demo_runs_both_sessions_on_a_folder_without_style_tags(cc_db, tmp_path):
    """`anim demo --db CC --headless` on a `--data` database (no style tags):
    the demo script's style keys are skipped for the motion-matching session
    and the physics session alike (the physics one stopped with "style
    'normal' is not in" the database); a database that lacks a style the
    script asks for is still refused by name."""
    import json
    import os
    import sys

    from anim_app import demo
    s = demo.session_script(demo.PHYSICS_SCRIPT, cc_db, "cc.animdb")
    assert s.keys and all(k.style is None for k in s.keys)
    if sys.platform.startswith("linux"):
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    r = demo.run_physics_demo(cc_db, "cc.animdb", headless=True, out_dir=str(tmp_path), seconds=1.0,
                              width=160, height=90, echo=lambda *a: None)
    with open(tmp_path / f"{s.name}-physics.json") as f:
        report = json.load(f)
    assert report["frames"] >= 60 and report["finite"] and "falls" in report["physics"]
    assert r["render"]["frames"] > 0
    normal = _databases.physics_db()           # the normal style only; the script also asks for active, elderly
    if not {"active", "elderly"} <= set(normal.tag_values("style")):
        with pytest.raises(ValueError, match="style"):
            demo.session_script(demo.PHYSICS_SCRIPT, normal, "locomotion-normal.animdb")
