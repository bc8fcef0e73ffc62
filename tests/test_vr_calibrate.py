"""Fitting the sparse-VR avatar to its user (controllers/vr/calibrate.py): the
device offsets table, the standing-pose calibration, and the predictor's
invariance to where the user stands and faces.

Real data: normal-style clips of bandai-namco-2 (walks, waving the left hand,
raising the right hand; takes 005, 018, 026). The gesture clips start with
the actor standing, the head and the other hand at rest (no clip of the
corpus starts wholly still: they are cut from longer takes); the walk is the
motion of the invariance test, which runs the shipped diffusion weights
(controllers/vr/weights/diffusion.npz) through VRController.
"""

import json

import numpy as np
import pytest

import mocap_data
from anim import quat
from anim.control import ControlInput
from controllers.vr import calibrate as cb
from controllers.vr import data as vd
from controllers.vr.evaluate import DEFAULT_WEIGHTS
from controllers.vr.infer import load_artefact, skeleton_of

HAVE_DATA = any(True for _ in mocap_data.datasets())
SMALL = vd.VRDataConfig(tags=(("dataset", "bandai-namco-2"), ("content", ("walk", "wave-left-hand", "raise-up-right-hand")),
                              ("style", "normal"), ("take", ("005", "018", "026"))), cache_dir="")
STANDING_CLIPS = ("bandai-namco-2/dataset-2_raise-up-right-hand_normal_005",
                  "bandai-namco-2/dataset-2_wave-left-hand_normal_026")
WALK_CLIP = "bandai-namco-2/dataset-2_walk_normal_018"
UP = np.array([0.0, 1.0, 0.0], np.float32)


@pytest.fixture(scope="module")
def small():
    if not HAVE_DATA:
        pytest.skip("the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")
    return vd.build(SMALL, progress=False)


@pytest.fixture(scope="module")
def ref():
    meta, _ = load_artefact(str(DEFAULT_WEIGHTS["diffusion"]))
    rest = meta["rest_pose"]
    return cb.reference_of(skeleton_of(meta), rest["rotations"], rest["positions"], meta["head_forward"],
                           meta["calibration"])


@pytest.fixture(scope="module")
def standing(small):
    """(joint positions [T, 3, 3], device rotations [T, 3, 4], at rest [T, 3])
    of the frames with the head at rest in the first 0.5 s of two real clips."""
    out = []
    for cid in STANDING_CLIPS:
        c = small.clip_ids.index(cid)
        f = np.arange(small.starts[c], small.starts[c] + 30)
        m = cb.standing_mask(small.dev_p[f])
        out.append((f[m[:, 0]], m[m[:, 0]]))
    f = np.concatenate([o[0] for o in out])
    still = np.concatenate([o[1] for o in out])
    assert len(f) >= 30 and still[:, 1].sum() >= 10 and still[:, 2].sum() >= 10, "the clips no longer start standing"
    return small.dev_p[f], vd.joints_to_devices(small.dev_q[f], small.calibration), still


# ------------------------------------------------------------------ the offsets table
def test_offsets_per_api_as_documented():
    """WebXR and OpenXR define the viewer / VIEW pose at the centre of the eyes
    and the grip at the fist's centroid alike (the table's rows hold the same
    numbers); traces hold the joints themselves. A level headset at eye height
    1.6 m has its head joint 11 cm lower and 9 cm behind; a right grip held
    with the identity XR orientation has its wrist 6 cm back along +Y and 2 cm
    out of the back of the hand (+X), in WebXR's own axes."""
    from viewer.vr_input import TraceReplay, engine_to_webxr, webxr_to_engine
    from viewer.webxr_bridge import WebXRBridge
    assert set(cb.DEVICE_OFFSETS) == set(cb.APIS)
    np.testing.assert_array_equal(cb.engine_offsets("joints"), 0)
    np.testing.assert_array_equal(cb.engine_offsets("webxr"), cb.engine_offsets("openxr"))
    assert np.abs(cb.engine_offsets("webxr")).min(axis=1).max() >= 0 and np.abs(cb.engine_offsets("webxr")).sum() > 0.3

    level = quat.identity(3)
    eyes = np.array([[0.0, 1.6, 0.0], [0.3, 1.0, 0.4], [-0.3, 1.0, 0.4]], np.float32)
    for api in ("webxr", "openxr"):
        joints = cb.Calibration(api=api).joint_points(eyes, level)
        np.testing.assert_allclose(joints[0], [0.0, 1.49, -0.09], atol=1e-6)   # engine: +Z forward
    np.testing.assert_array_equal(cb.Calibration().joint_points(eyes, level), eyes)

    # a right grip reported by a WebXR page, through the engine and back to WebXR axes
    grip_xr, q_xr = np.array([0.25, 1.1, -0.35], np.float32), np.array([1, 0, 0, 0], np.float32)
    p_e, q_e = webxr_to_engine(grip_xr, q_xr)
    p = np.stack([eyes[0], eyes[1], p_e])
    q = np.stack([level[0], level[1], q_e])
    wrist_e = cb.Calibration(api="webxr").joint_points(p, q)[2]
    wrist_xr, _ = engine_to_webxr(wrist_e, q_e)
    np.testing.assert_allclose(wrist_xr, grip_xr + np.array([0.02, 0.06, 0.0]), atol=1e-6)
    # grown with the user
    np.testing.assert_allclose(cb.Calibration(api="webxr", scale=1.2).joint_points(eyes, level)[0],
                               [0.0, 1.6 - 0.132, -0.108], atol=1e-6)

    # each source names its row
    assert WebXRBridge.DEVICE_API == "webxr" and TraceReplay.DEVICE_API == "joints"
    from viewer.vr_input import OpenXRSource
    assert OpenXRSource.DEVICE_API == "openxr"
    with pytest.raises(ValueError, match="unknown device API 'steamvr'"):
        cb.Calibration(api="steamvr")


# ------------------------------------------------------------------ estimation
@pytest.mark.parametrize("k", [1.0, 1.2, 0.88])
def test_height_and_arm_span_from_a_real_standing_frame(standing, ref, k):
    """The actor standing at the start of a real test clip, scaled by k, as a
    WebXR headset and controllers report it (offsets grown with the body): the
    estimated head-joint height is within 3% of k times the skeleton's standing
    head height (the artefact's rest pose), and the arm span within 6% of k
    times the skeleton's (shoulder width + both arms' bone lengths; the arms
    hang slightly bent, so it reads a little short)."""
    joints, dq, still = standing
    reported = cb.Calibration(api="webxr", scale=k).device_points(k * joints, dq)
    cal = cb.estimate(reported, dq, ref, "webxr", still=still)
    head_true = k * ref.head_height
    assert abs(cal.scale * ref.head_height - head_true) <= 0.03 * head_true, (cal.scale, k)
    span_true = k * (ref.shoulder_width + 2 * ref.arm_length)
    assert abs(cal.arm_span - span_true) <= 0.06 * span_true, (cal.arm_span, span_true)
    assert abs(cal.arm_ratio - 1) <= 0.06
    # stature from the headset: eye height / EYE_HEIGHT_RATIO
    assert cal.user_height == pytest.approx(float(np.median(reported[still[:, 0], 0, 1])) / cb.EYE_HEIGHT_RATIO)
    assert abs(cal.user_height - k * ref.stature()) <= 0.03 * k * ref.stature()


def test_estimate_refuses_a_user_who_is_not_upright(standing, ref):
    joints, dq, still = standing
    low = joints.copy()
    low[..., 1] -= 1.2                      # the headset 0.2 m above the floor: the floor is not at y = 0
    with pytest.raises(ValueError, match="above the floor"):
        cb.estimate(low, dq, ref, "joints", still=still)
    with pytest.raises(ValueError, match="no frame with a hand at rest"):
        cb.estimate(joints, dq, ref, "joints", still=still & np.array([True, False, False]))


# ------------------------------------------------------------------ round trips
def test_calibration_round_trip(small, standing, ref, tmp_path):
    joints, dq, still = standing
    cal = cb.Calibration(api="openxr", scale=1.17, arm_ratio=1.06, reference=ref)
    jq = vd.devices_to_joints(dq, small.calibration)
    # joints -> reported -> joints
    np.testing.assert_allclose(cal.joint_points(cal.device_points(joints, dq), dq), joints, atol=1e-6)
    # user's space -> model's space -> user's space; the arm ratio moves the hands only
    m = cal.to_model(joints, jq)
    np.testing.assert_allclose(cal.from_model(m, jq), joints, atol=1e-5)
    np.testing.assert_allclose(m[:, 0], joints[:, 0] / 1.17, atol=1e-6)
    assert np.abs(m[:, 1:] - joints[:, 1:] / 1.17).max() > 0.01
    # the estimate of a scaled user is the scaled estimate (and calibrating it maps it onto the actor)
    exact = cb.Calibration(api="webxr")
    a = cb.estimate(exact.device_points(joints, dq), dq, ref, "webxr", still=still)
    b = cb.estimate(cb.Calibration(api="webxr", scale=1.3).device_points(1.3 * joints, dq), dq, ref, "webxr",
                    still=still)
    assert b.scale == pytest.approx(1.3 * a.scale, rel=1e-5)
    assert b.arm_ratio == pytest.approx(a.arm_ratio, rel=1e-5)
    reported = cb.Calibration(api="webxr", scale=1.3).device_points(1.3 * joints, dq)
    np.testing.assert_allclose(b.to_model(b.joint_points(reported, dq), jq),
                               a.to_model(a.joint_points(exact.device_points(joints, dq), dq), jq), atol=1e-5)
    # the pose back at the user's size: all local positions x scale, the arm bones x arm_ratio more
    pos = np.broadcast_to(small.skeleton.offsets, (2,) + small.skeleton.offsets.shape).copy()
    out = cal.pose_to_user(pos)
    arm = list(ref.arm_joints)
    rest = [j for j in range(len(pos[0])) if j not in arm]
    np.testing.assert_allclose(out[:, rest], pos[:, rest] * 1.17, rtol=1e-6)
    np.testing.assert_allclose(out[:, arm], pos[:, arm] * 1.17 * 1.06, rtol=1e-6)
    # a file
    path = tmp_path / "user.json"
    cal.save(path)
    back = cb.Calibration.load(path, ref)
    assert back == cal
    path.write_text(json.dumps({"format": "anim-vr-calibration", "version": 1, "api": "webxr", "scale": -1,
                                "arm_ratio": 1}))
    with pytest.raises(ValueError, match="scale -1.0 is not a plausible"):
        cb.Calibration.load(path)
    path.write_text("{")
    with pytest.raises(ValueError, match=f"{path}: not JSON"):
        cb.Calibration.load(path)


# ------------------------------------------------------------------ through the controller
@pytest.fixture(scope="module")
def controller():
    from controllers.vr.controller import VRController
    return VRController.load(str(DEFAULT_WEIGHTS["diffusion"]))


def _run(ctrl, p, q, frames):
    """Body joint positions [T, J, 3] of VRController poses driven by device poses."""
    out = []
    ctrl.reset()
    for i in range(frames):
        pose = ctrl.step(ControlInput(**{k: (p[i, j], q[i, j]) for j, k in enumerate(vd.DEVICE_KEYS)}), 1 / 60)
        _, g = quat.fk(pose.rotations, pose.positions, ctrl.skeleton.parents)
        out.append(g)
    return np.stack(out)


def test_same_body_shifted_5m_and_turned_90_degrees(small, controller, ref, standing):
    """A real test clip (a walk) through the shipped diffusion predictor, as a
    WebXR user 1.2 times the actor's size calibrated from real standing
    frames, and the same (standing frames and walk) shifted 5 m and turned 90
    degrees about the vertical: the calibration is the same and the joints
    relative to the head agree within 1 mm."""
    c = small.clip_ids.index(WALK_CLIP)
    f = np.arange(small.starts[c], small.starts[c] + 90)
    k = 1.2
    user = cb.Calibration(api="webxr", scale=k)
    turn = quat.from_angle_axis(np.float32(np.pi / 2), UP).astype(np.float32)

    def moved(p, q):
        return (quat.rot(turn, p) + np.array([3.0, 0.0, -4.0], np.float32)).astype(np.float32), \
            quat.normalize(quat.mul(turn, q)).astype(np.float32)

    sj, sq, still = standing
    stand = (user.device_points(k * sj, sq), sq)
    dq = vd.joints_to_devices(small.dev_q[f], small.calibration)
    walk = (user.device_points(k * small.dev_p[f], dq), dq)
    head = controller.skeleton.index("Head")
    bodies = []
    for st, wk in ((stand, walk), (moved(*stand), moved(*walk))):
        cal = cb.estimate(*st, ref, "webxr", still=still)
        controller.set_calibration(cal)
        g = _run(controller, *wk, len(f))
        bodies.append((cal, g - g[:, head:head + 1]))
    (c1, b1), (c2, b2) = bodies
    assert c2.scale == pytest.approx(c1.scale, rel=1e-5) and c2.arm_ratio == pytest.approx(c1.arm_ratio, rel=1e-5)
    assert abs(c1.scale / k - 1) < 0.03
    back = quat.inv_rot(turn, b2)
    err = np.abs(back - b1).max()
    assert err < 1e-3, f"joints relative to the head differ by {err * 1000:.2f} mm"
    assert np.abs(b1).max() > 0.5          # a whole body, not a collapsed one
    controller.set_calibration(cb.Calibration())


def test_webxr_messages_calibrate_the_controller(small, controller):
    """A WebXR page's messages of a user 1.15 times the actor's size standing
    still (a real frame: the first of a clip that starts at rest), as the
    page sends them (eyes and fists, WebXR axes), through the bridge's own
    parser into a controller fitted to the bridge (viewer.vr_input.
    fit_controller): after a still second the controller has calibrated the
    user, and the body's head joint is at the user's head joint (the headset
    is 14 cm from it)."""
    from viewer.vr_input import engine_to_webxr, fit_controller
    from viewer.webxr_bridge import WebXRBridge, parse_message
    c = small.clip_ids.index(STANDING_CLIPS[0])
    f = small.starts[c]
    k = 1.15
    dq = vd.joints_to_devices(small.dev_q[f], small.calibration)
    joints = k * small.dev_p[f]
    reported = cb.Calibration(api="webxr", scale=k).device_points(joints, dq)
    msg = {"type": "pose", "t": 0.0}
    for key, n in (("head", 0), ("left", 1), ("right", 2)):
        pxr, qxr = engine_to_webxr(reported[n], dq[n])
        msg[key] = [float(v) for v in pxr] + [float(v) for v in qxr]
    kind, (h, lh, rh) = parse_message(json.dumps(msg))
    assert kind == "pose"
    fit_controller(controller, WebXRBridge)
    assert controller.calibration.api == "webxr" and controller.calibrator is not None
    head = controller.skeleton.index("Head")
    try:
        for _ in range(75):
            pose = controller.step(ControlInput(head=h, left_hand=lh, right_hand=rh), 1 / 60)
        assert controller.calibrator is None, "no calibration after a still second"
        assert abs(controller.calibration.scale / k - 1) < 0.03
        _, g = quat.fk(pose.rotations, pose.positions, controller.skeleton.parents)
        assert np.linalg.norm(g[head] - joints[0]) < 0.01
    finally:
        controller.set_calibration(cb.Calibration())
        controller.calibrator = None


@pytest.mark.parametrize("users, problem", [("tall", "give heights in metres"), ("1.5,9", "between 0.5 and 3 m")])
def test_eval_users_flag_names_a_bad_height(users, problem):
    import argparse
    with pytest.raises(SystemExit, match=problem):
        cb.run_users(argparse.Namespace(users=users))
