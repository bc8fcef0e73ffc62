"""The VR avatar under the physics stage (controllers/vr/physics.py): the
MuJoCo humanoid tracks the sparse-VR predictor's pose, started under the
headset, and is scored on real test-split clips.

Real data: the two test-split clips (a walk and a run, bandai-namco-2, normal
style) of the small selection test_vr.py uses, the shipped diffusion model
and the shipped live-loop policy.
"""

import os
import sys

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # offscreen without a display server

import numpy as np
import pytest

from anim import quat
from anim.control import ControlInput
from controllers.vr import data as vd
from controllers.vr import infer
from controllers.vr import physics as vp

from _vr import SHIPPED, SMALL, needs_shipped

pytestmark = needs_shipped


@pytest.fixture(scope="module")
def small():
    return vd.build(SMALL, progress=False)


@pytest.fixture(scope="module")
def predictor(small):
    return infer.load_predictor(str(SHIPPED), small.skeleton)


def _head(skeleton):
    return skeleton.index(vd.joint_groups(skeleton)["devices"][0])


def test_the_body_starts_under_the_headset(small, predictor):
    """Built before any device pose (the live viewer's case), the stage waits;
    the first tick with the headset starts the body there: its head within
    10 cm of the data's while it shows the clip's first frame (the lag's
    ticks). Started from the avatar's rest pose instead, the body stood
    3.5 m from the headset."""
    stage = vp.vr_in_physics(predictor)
    assert stage.waiting
    clip = small.clips("test", mirrored=False)[0]
    controls = vp.clip_controls(small, clip)
    a = int(small.starts[clip])
    hf = np.asarray(predictor.head_forward, np.float32)
    head = _head(small.skeleton)
    for k in range(stage.lag + 1):
        pose = stage.step(controls[k], 1 / 60)
        assert not stage.waiting
        g = quat.fk(pose.rotations, pose.positions, small.skeleton.parents)[1]
        shown = a + max(k - stage.lag, 0)
        grot, gpos = vd.ground_truth_pose(small, np.array([shown]), hf)
        truth = quat.fk(grot, gpos, small.skeleton.parents)[1][0]
        err = np.linalg.norm(g[head] - truth[head])
        assert err < 0.10, (k, err)
    # a tick without devices does not restart it: it holds
    stage.step(ControlInput(), 1 / 60)
    assert not stage.waiting


def test_evaluation_scores_the_avatar_and_the_mocap_baseline(small, predictor):
    """`evaluate` on the test walk, for the predictor's reference and the
    captured motion's: every figure finite, the simulated toes never under
    the floor, and the body upright through the walk under the avatar (it
    is, with the shipped policy: a body started away from the headset, or
    from the avatar's rest pose, falls at once)."""
    walk = [c for c in small.clips("test", mirrored=False) if "walk" in small.clip_names[c]]
    assert walk
    for ref in ("vr", "mocap"):
        r = vp.evaluate(predictor, small, progress=False, reference=ref, clips=walk[:1])
        assert r["reference"] == ref and r["clips"] == 1 and r["frames"] > 60
        for k in ("head_err_cm", "head_err_now_cm", "pose_err_cm", "skate_cm_s", "lowest_toe_cm", "tick_p99_ms",
                  "falls_per_min", "upright_share"):
            assert np.isfinite(r[k]), (ref, k)
        assert r["lowest_toe_cm"] > 0.0                     # the floor holds the simulated feet
        assert r["lag_ms"] == pytest.approx(1000 * 4 / 60)
        if ref == "vr":
            assert r["upright_share"] > 0.9 and r["head_err_cm"] < 100.0, r
    with pytest.raises(ValueError, match="reference"):
        vp.evaluate(predictor, small, max_clips=1, progress=False, reference="nope")


def test_replay_with_physics_runs_headless(small, tmp_path, capsys):
    """`anim demo --vr replay --physics --headless` (viewer.vr_input replay
    --physics): a test-split trace drives the avatar, the humanoid tracks it,
    frames and a contact sheet are written."""
    from viewer import vr_input
    trace = vr_input.export_test_traces(tmp_path / "traces", small, clips=1, seconds=1.0)[0]
    out = tmp_path / "out"
    assert vr_input.main(["replay", str(trace), "--physics", "--headless", str(out)]) == 0
    assert "ticks" in capsys.readouterr().out
    pngs = sorted(out.glob("frame_*.png"))
    assert len(pngs) >= 2 and (out / "frame_contact_sheet.png").exists()


def test_a_recovery_stands_the_body_under_the_headset(small, predictor):
    """A fall's recovery resets the kinematic stage at the body's place; the
    VR avatar does not go on from there (it stands where the headset is), so
    the body starts at the avatar's next frame, at rest: not at the place a
    jump away from it, moving at the jump's speed (2 m in a tick: 120 m/s,
    which blew the simulation up)."""
    stage = vp.vr_in_physics(predictor)
    clip = small.clips("test", mirrored=False)[0]
    controls = vp.clip_controls(small, clip)
    for c in controls[:20]:
        stage.step(c, 1 / 60)
    stage.data.qpos[0] += 2.0                       # the body lies 2 m away (MuJoCo x)
    stage._recover(controls[20])
    assert np.abs(stage.data.qvel[:3]).max() < 10.0, stage.data.qvel[:3]
    assert stage._ground_gap(stage.frames[0], stage.frames[1]) <= stage.tracker.max_root_distance
    head = _head(small.skeleton)
    pose = stage.step(controls[21], 1 / 60)
    g = quat.fk(pose.info.ghost.rotations, pose.info.ghost.positions, small.skeleton.parents)[1]
    assert np.linalg.norm(g[head] - controls[21].head[0]) < 0.5      # the reference is the avatar under the headset
    assert np.isfinite(stage.data.qpos).all()
