"""Export (export/): glTF files checked by the Khronos glTF-Validator and by
three.js in headless Chromium, read back against their source clips; ONNX
networks checked by onnxruntime against the project's own inference on
recorded inputs.

The browser and validator tests need node, `npm ci` in export/web (`make
test` runs it) and Chromium (`.ci/run` installs it); they skip with the reason
when one is missing, and fail instead when CI=true. One browser is launched
for the whole module. The screenshot it takes is kept in the pytest temporary
folder (its path is printed) and copied to out/export/three-js-check.png.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import _databases
import mocap_data
from anim import bvh, quat
from anim_app.cli import main
from anim.control import ControlInput
from anim.skeleton import Clip, Skeleton
from export import checks, gltf
from export import cli as export_cli

CI = os.environ.get("CI") == "true"
HAVE_DATA = _databases.corpus_available()
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")
WALK, RUN = "dataset-2_walk_normal_001", "dataset-2_run_normal_001"
SCREENSHOT_COPY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "out", "export",
                               "three-js-check.png")


def parse(argv):
    """argv after `anim` through export.cli's own parser registration."""
    import argparse
    p = argparse.ArgumentParser(prog="anim")
    export_cli.add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def need_web(browser: bool = False) -> None:
    problem = checks.web_problem(browser)
    if problem:
        if CI:
            pytest.fail(f"CI=true and the web checks cannot run: {problem}")
        pytest.skip(problem)


def _same_rotations(a, b):
    """Max difference between two quaternion arrays, sign-insensitive."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = np.sum(a * b, axis=-1, keepdims=True)
    return float(np.abs(a - np.where(d < 0, -b, b)).max())


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tiny_db_path(tmp_path_factory):
    if not HAVE_DATA:
        pytest.skip("no mocap corpus")
    from anim import database
    path = str(tmp_path_factory.mktemp("db") / "tiny.animdb")
    database.save(_databases.two_style_db(), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_db_path):
    """Two .glb files made through the command line's own parsing: two catalog
    clips (30 Hz) in one; three recorded runs (mm, lmm, physics; 60 Hz) in the other."""
    out = tmp_path_factory.mktemp("glb")
    made = {}
    for key, argv in {
        "clips": ["--clip", WALK, "--clip", RUN],
        "runs": ["--db", tiny_db_path, "--seconds", "2", "--run", "walk", "--controller", "mm",
                 "--run", "turns", "--controller", "lmm", "--run", "walk", "--controller", "physics"],
    }.items():
        args = parse(["export", "gltf", *argv])
        clips, names = export_cli.gather(args)
        path = str(out / f"{key}.glb")
        gltf.write_glb(path, clips, names)
        made[key] = (path, clips, names)
    return made


def _times(clip, n_frames=12, n_mid=6):
    """Keyframe times (every few frames, the last included) and times between keyframes."""
    f = np.unique(np.linspace(0, clip.num_frames - 1, n_frames).round().astype(int))
    mid = np.linspace(0, clip.num_frames - 2, n_mid).astype(int) + 0.37
    return [float(x) / clip.fps for x in np.concatenate([f, mid])]


def _fk_at(clip, t):
    """World joint positions at time t: glTF LINEAR semantics (slerp of local
    rotations, lerp of local positions between keyframes), then the engine's FK."""
    x = t * clip.fps
    i = min(int(np.floor(x + 1e-6)), clip.num_frames - 1)
    a = x - i
    rot = clip.rotations[i].astype(np.float64)
    pos = clip.positions[i].astype(np.float64)
    if a > 1e-6:
        rot = quat.slerp(rot, clip.rotations[i + 1].astype(np.float64), a)
        pos = (1 - a) * pos + a * clip.positions[i + 1]
    return quat.fk(rot, pos, clip.skeleton.parents)[1]


def _view(clip, t):
    """Camera direction: in front of the character, from its direction of travel."""
    i = int(min(t * clip.fps, clip.num_frames - 1))
    a, b = max(i - int(clip.fps // 2), 0), min(i + int(clip.fps // 2), clip.num_frames - 1)
    g = quat.fk(clip.rotations[[a, b]], clip.positions[[a, b]], clip.skeleton.parents)[1]
    d = g[1, 1, [0, 2]] - g[0, 1, [0, 2]]
    if np.linalg.norm(d) < 0.1:
        return [0.5, 0.85]
    d = d / np.linalg.norm(d)
    c, s = np.cos(0.6), np.sin(0.6)
    return [float(c * d[0] + s * d[1]), float(-s * d[0] + c * d[1])]


@pytest.fixture(scope="module")
def browser(files, tmp_path_factory):
    """One headless Chromium for every check: each animation of both files
    sampled at keyframe and in-between times; one screenshot."""
    need_web(browser=True)
    shot = str(tmp_path_factory.mktemp("screenshot") / "three-js.png")
    jobs, expected = [], []
    for key, (path, clips, names) in files.items():
        for c, n in zip(clips, names):
            times = _times(c)
            job = {"glb": path, "animation": n, "times": times}
            if key == "clips" and n == WALK:
                t = 2.0
                job.update(screenshot=shot, screenshot_time=t, view=_view(c, t),
                           label=f"three.js {n}  t = {t:.1f} s  (GLTFLoader + AnimationMixer, headless Chromium)")
            jobs.append(job)
            expected.append((c, n, times))
    result = checks.browser_sample(jobs)
    print(f"\nbrowser: Chromium {result['browser']}; screenshot {shot}")
    os.makedirs(os.path.dirname(SCREENSHOT_COPY), exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)
    return result, expected, shot


# ------------------------------------------------------------------ glTF: outside clients
@needs_data
def test_validator_reports_no_errors_and_no_warnings(files):
    need_web()
    report = checks.validate([p for p, _, _ in files.values()])
    for (key, (path, clips, names)), r in zip(files.items(), report.values()):
        msgs = [f"{m['code']}: {m['message']} at {m.get('pointer')}" for m in r["messages"]]
        assert r["numErrors"] == 0 and r["numWarnings"] == 0, "\n".join(msgs)
        assert r["numInfos"] == 0, "\n".join(msgs)
        assert r["info"]["animationCount"] == len(clips) and r["info"]["hasSkins"]
        print(f"{key}: glTF-Validator {r['validatorVersion']}: {r['numErrors']} errors, {r['numWarnings']} "
              f"warnings, {r['numInfos']} infos, {r['numHints']} hints, {os.path.getsize(path)} bytes")


def test_validator_accepts_one_frame_and_300_joints(tmp_path):
    """Edge cases of the writer: a one-keyframe animation, and more than 256
    joints (JOINTS_0 as unsigned 16-bit)."""
    need_web()
    one, big = tmp_path / "one.glb", tmp_path / "big.glb"
    gltf.write_glb(one, [_tiny_clip(frames=1)], ["one"])
    gltf.write_glb(big, [_tiny_clip(_tiny_skeleton(300), frames=5)], ["big"])
    doc = gltf.read_json(big)
    assert doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["JOINTS_0"]]["componentType"] == 5123
    for r in checks.validate([one, big]).values():
        assert (r["numErrors"], r["numWarnings"], r["numInfos"]) == (0, 0, 0), r["messages"]
    _, (c,) = gltf.read_glb(big)
    assert c.skeleton.num_joints == 300 and c.num_frames == 5


@needs_data
def test_validator_catches_a_broken_file(files, tmp_path):
    """The validator check can fail: the same file with a rotation accessor's
    count cut (an out-of-range read) is reported."""
    need_web()
    import json
    import struct
    data = open(files["clips"][0], "rb").read()
    doc, binary = gltf._split(data, "x")
    out = doc["animations"][0]["samplers"][0]["output"]
    doc["accessors"][out]["count"] += 10 ** 6
    js = json.dumps(doc).encode()
    js += b" " * ((-len(js)) % 4)
    bad = tmp_path / "bad.glb"
    bad.write_bytes(struct.pack("<4sII", b"glTF", 2, 28 + len(js) + len(binary))
                    + struct.pack("<I4s", len(js), b"JSON") + js + struct.pack("<I4s", len(binary), b"BIN\0") + binary)
    r = checks.validate([bad])[str(bad.resolve())]
    assert r["numErrors"] > 0


@needs_data
def test_three_js_joint_positions_equal_the_engine_fk(browser):
    """three.js's GLTFLoader + AnimationMixer pose every joint within 1 mm of
    the engine's forward kinematics, at keyframes and between them, for
    catalog clips (30 Hz) and recorded mm / lmm / physics runs (60 Hz)."""
    result, expected, _ = browser
    assert not result["console"], result["console"]
    worst = 0.0
    for r, (clip, name, times) in zip(result["results"], expected):
        assert name in r["animations"]
        assert r["joints"] == list(clip.skeleton.names)
        assert r["duration"] == pytest.approx((clip.num_frames - 1) / clip.fps, abs=1e-4)
        got = np.asarray(r["positions"])
        want = np.stack([_fk_at(clip, t) for t in times])
        err = float(np.abs(got - want).max())
        print(f"  {name}: {len(times)} times x {clip.skeleton.num_joints} joints, max |three.js - FK| "
              f"{1e3 * err:.4f} mm")
        assert err < 1e-3, name
        worst = max(worst, err)
    print(f"max over all animations: {1e3 * worst:.4f} mm")


@needs_data
def test_three_js_screenshot_shows_the_skinned_character(browser):
    """The page rendered the skinned bone mesh (WebGL in headless Chromium):
    enough pixels of the bone material's colour."""
    import pygame
    _, _, shot = browser
    img = pygame.surfarray.array3d(pygame.image.load(shot)).astype(int)      # [W, H, 3]
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    bone = (r > 110) & (r > g + 15) & (g > b + 15)
    print(f"screenshot {shot}: {img.shape[0]}x{img.shape[1]}, {int(bone.sum())} bone-coloured pixels")
    assert bone.sum() > 800
    ys = np.flatnonzero(bone.any(axis=0))
    assert ys.max() - ys.min() > 150          # a standing figure, not a speck


# ------------------------------------------------------------------ glTF: round trips
@needs_data
def test_glb_round_trip_equals_the_source_bvh(tmp_path):
    """A catalog BVH file -> .glb -> read back equals the source clip; written
    back as BVH and read again, it still does."""
    ds = mocap_data.datasets()[0]
    src = next(p for p in ds.files() if p.stem.endswith("walk_normal_001"))
    skeleton, clip = bvh.read_bvh(src, scale=0.01)
    path = tmp_path / "walk.glb"
    info = gltf.write_glb(path, [clip])
    skel, back = gltf.read_glb(path)
    assert info["animations"][0][1] == clip.num_frames
    assert skel.names == clip.skeleton.names and (skel.parents == clip.skeleton.parents).all()
    assert np.abs(skel.offsets - clip.skeleton.offsets).max() < 1e-6
    (c,) = back
    assert c.fps == clip.fps and c.num_frames == clip.num_frames
    assert _same_rotations(c.rotations, clip.rotations) < 1e-6
    assert np.abs(c.positions - clip.positions).max() < 1e-6
    again = tmp_path / "again.bvh"
    bvh.write_bvh(again, skeleton, c, scale=0.01)
    _, c2 = bvh.read_bvh(again, scale=0.01)
    _, g0 = quat.fk(clip.rotations, clip.positions, clip.skeleton.parents)
    _, g2 = quat.fk(c2.rotations, c2.positions, c2.skeleton.parents)
    assert np.abs(g2 - g0).max() < 1e-4            # BVH text: 9 significant digits, degrees


@needs_data
def test_glb_round_trip_of_recorded_runs(files):
    """Runs on one skeleton whose offsets differ (LMM's rest positions) come
    back equal: joints off the file's rest offsets get translation channels."""
    path, clips, names = files["runs"]
    _, back = gltf.read_glb(path)
    assert [c.tags["name"] for c in back] == names == ["mm-walk", "lmm-turns", "physics-walk"]
    for src, c in zip(clips, back):
        assert c.fps == 60.0 and c.num_frames == 121
        assert _same_rotations(c.rotations, src.rotations) < 1e-6
        assert np.abs(c.positions - src.positions).max() < 1e-6


def _tiny_skeleton(n=3, names=None, parents=None):
    names = names or tuple(f"j{i}" for i in range(n))
    parents = parents if parents is not None else np.arange(-1, n - 1)
    offsets = np.zeros((len(names), 3), np.float32)
    offsets[1:, 1] = 0.3
    return Skeleton(names, parents, offsets)


def _tiny_clip(skel=None, frames=4, fps=30.0):
    skel = skel or _tiny_skeleton()
    j = skel.num_joints
    ang = np.linspace(0, 1, frames)[:, None] * np.ones(j)
    rot = quat.from_angle_axis(ang, np.array([0.0, 0.0, 1.0]))
    pos = np.broadcast_to(skel.offsets, (frames, j, 3)).copy()
    return Clip(skel, rot, pos, fps, source="tiny.bvh")


def test_hand_made_clip_round_trip_and_rest_pose():
    """A small clip in memory: rest transforms, inverse bind matrices and
    the quaternion order (x, y, z, w) in the file."""
    clip = _tiny_clip()
    data = gltf.build_glb([clip], ["bend"])
    doc, binary = gltf._split(data, "mem")
    assert [n["name"] for n in doc["nodes"][:3]] == ["j0", "j1", "j2"]
    assert doc["nodes"][2]["translation"] == pytest.approx([0.0, 0.3, 0.0])
    ibm = gltf._accessor(doc, binary, doc["skins"][0]["inverseBindMatrices"]).reshape(3, 4, 4)
    assert ibm[2][3][:3] == pytest.approx([0.0, -0.6, 0.0])         # column-major: translation in row 3
    ch = doc["animations"][0]["channels"][2]
    assert ch["target"] == {"node": 1, "path": "rotation"}
    q = gltf._accessor(doc, binary, doc["animations"][0]["samplers"][ch["sampler"]]["output"])
    assert q[-1] == pytest.approx([0.0, 0.0, np.sin(0.5), np.cos(0.5)], abs=1e-6)


# ------------------------------------------------------------------ glTF: bad input
def _bad(kind):
    clip = _tiny_clip()
    if kind == "nan":
        clip.rotations[2, 1, 0] = np.nan
    elif kind == "inf":
        clip.positions[1, 0, 2] = np.inf
    elif kind == "zero quaternion":
        clip.rotations[3, 2] = 0.0
    elif kind == "no frames":
        clip = Clip(clip.skeleton, clip.rotations[:0], clip.positions[:0], 30.0, "tiny.bvh")
    elif kind == "fps":
        clip.fps = 0.0
    elif kind == "too many joints":
        clip = _tiny_clip(_tiny_skeleton(gltf.MAX_JOINTS + 1), frames=1)
    elif kind == "duplicate names":
        clip = _tiny_clip(_tiny_skeleton(names=("a", "b", "a")))
    elif kind == "two roots":
        clip = _tiny_clip(_tiny_skeleton(parents=np.array([-1, 0, -1])))
    return [clip]


@pytest.mark.parametrize("kind, words", [
    ("nan", "rotations hold NaN or infinite values (first at frame 2, joint 'j1')"),
    ("inf", "positions hold NaN or infinite values (first at frame 1, joint 'j0')"),
    ("zero quaternion", "zero-length quaternion at frame 3, joint 'j2'"),
    ("no frames", "no frames"),
    ("fps", "frame rate 0.0"),
    ("too many joints", "65536 joints"),
    ("duplicate names", "joint name 'a' appears twice"),
    ("two roots", "2 root joints"),
])
def test_bad_clips_are_clear_errors(kind, words):
    with pytest.raises(gltf.ExportError) as e:
        gltf.build_glb(_bad(kind), ["bad"])
    assert words in str(e.value) and "'bad'" in str(e.value) and "tiny.bvh" in str(e.value)


def test_two_skeletons_in_one_file_is_an_error():
    other = _tiny_clip(_tiny_skeleton(names=("x", "y", "z")))
    with pytest.raises(gltf.ExportError, match="another skeleton"):
        gltf.build_glb([_tiny_clip(), other], ["a", "b"])


def test_read_glb_rejects_other_files(tmp_path):
    p = tmp_path / "x.glb"
    p.write_bytes(b"not a glb file at all, really")
    with pytest.raises(gltf.GlbError, match="not a glTF 2.0 binary"):
        gltf.read_glb(p)


# ------------------------------------------------------------------ the command
def test_cli_exports_a_bvh_file_and_reports_errors(tmp_path, capsys):
    clip = _tiny_clip(frames=10)
    src = tmp_path / "bend.bvh"
    bvh.write_bvh(src, clip.skeleton, clip, scale=0.01)
    out = tmp_path / "bend.glb"
    assert main(["export", "gltf", "--bvh", str(src), "--name", "bend", "--out", str(out)]) == 0
    assert "1 animation(s)" in capsys.readouterr().out
    _, (c,) = gltf.read_glb(out)
    assert c.tags["name"] == "bend" and c.num_frames == 10
    assert _same_rotations(c.rotations, clip.rotations) < 1e-5
    assert main(["export", "gltf", "--bvh", str(tmp_path / "missing.bvh")]) == 2
    assert "missing.bvh: no such file" in capsys.readouterr().err
    assert main(["export", "gltf"]) == 2
    assert "give at least one --clip, --bvh or --run" in capsys.readouterr().err


def test_controller_flag_belongs_to_the_run_before_it():
    args = parse(["export", "gltf", "--run", "walk", "--run", "turns", "--controller", "lmm",
                                      "--clip", "x", "--run", "run", "--controller", "physics"])
    assert args.sources == [["run", "walk", None], ["run", "turns", "lmm"], ["clip", "x", None],
                            ["run", "run", "physics"]]
    assert args.controller == "mm"


# ------------------------------------------------------------------ ONNX
@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from export import onnx_export as ox
    out = tmp_path_factory.mktemp("onnx")
    written = ox.export_all(str(out))
    for p, n in written:
        print(f"  {os.path.basename(p)}: {n / 1e6:.2f} MB")
    return {os.path.splitext(os.path.basename(p))[0]: p for p, _ in written}


def _session(path):
    import onnxruntime as ort
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def test_onnx_files_use_opset_15_and_allowed_operators(onnx_files):
    import onnx
    from export import onnx_export as ox
    allowed = {"MatMul", "Add", "Sub", "Mul", "Div", "Elu", "Sigmoid", "Clip", "Reshape", "Slice", "Concat",
               "Unsqueeze", "ReduceMean", "Sqrt", "Cos", "Sin", "Identity"}
    assert set(onnx_files) == {n for group in ox.NETWORKS.values() for n in group}
    for name, path in onnx_files.items():
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        assert [(o.domain, o.version) for o in m.opset_import] == [("", 15)] and m.ir_version == 8
        assert {n.op_type for n in m.graph.node} <= allowed, name
        meta = ox.metadata(m)
        assert meta["format"] == "anim-onnx" and meta["network"] == name


def test_lmm_onnx_equals_numpy_on_a_recorded_run(onnx_files):
    """The decompressor, stepper and projector on the states and queries of a
    real learned-motion-matching run (turns script, 4 s), fed raw features."""
    from anim import scripts
    from controllers.learned import LearnedController
    from controllers.learned import weights as W
    from export import onnx_export as ox
    ctrl = LearnedController.load(ox.LMM_WEIGHTS)
    src = ctrl.source
    states, queries = [], []
    search = src.search

    def recording_search(query, *rest):
        queries.append(np.array(query, np.float32))
        return search(query, *rest)
    src.search = recording_search
    script = scripts.load("turns")
    ctrl.reset(None)
    for i in range(240):
        ctrl.step(script(i / 60), 1 / 60)
        states.append(src.state.copy())
    states, queries = np.array(states), np.array(queries)
    assert len(queries) >= 20
    a, nf = src.weights.arrays, src.nf
    raw = lambda s: s[:, :nf] * a["features_scale"] + a["features_offset"]     # noqa: E731
    errs = {}
    dec = _session(onnx_files["lmm_decompressor"]).run(None, {"features": raw(states), "latent": states[:, nf:]})[0]
    errs["decompressor"] = np.abs(dec - W.mlp(src.dec, states)).max()
    fv, lv = _session(onnx_files["lmm_stepper"]).run(None, {"features": raw(states), "latent": states[:, nf:]})
    d = W.mlp(src.stepper, states)
    errs["stepper"] = max(np.abs(fv - d[:, :nf] * a["features_scale"]).max(), np.abs(lv - d[:, nf:]).max())
    qraw = queries * a["features_scale"] + a["features_offset"]
    f, lat = _session(onnx_files["lmm_projector"]).run(None, {"query": qraw})
    p = W.mlp(src.projector, queries)
    errs["projector"] = max(np.abs(f - raw(p)).max(), np.abs(lat - p[:, nf:]).max())
    print({k: f"{v:.2e}" for k, v in errs.items()}, f"({len(states)} states, {len(queries)} queries)")
    assert max(errs.values()) < 1e-4


@pytest.fixture(scope="module")
def vr_windows():
    if not HAVE_DATA:
        pytest.skip("no mocap corpus")
    from controllers.vr import data as vd
    cfg = vd.VRDataConfig(tags=(("dataset", "bandai-namco-2"), ("content", ("walk", "run")), ("style", "normal"),
                                ("take", ("002",))), cache_dir="")
    data = vd.build(cfg, progress=False)
    from controllers.vr import infer
    from export import onnx_export as ox
    hf = np.asarray(infer.load_artefact(ox.VR_DIFFUSION)[0]["head_forward"], np.float32)
    ends = np.linspace(0, data.num_frames - 1, 16).astype(int)
    x, y, theta, _ = vd.windows(data, ends, hf)
    return x.astype(np.float32), y.astype(np.float32)


def test_vr_onnx_equals_numpy_on_recorded_windows(onnx_files, vr_windows):
    """The MLP baseline, the unrolled DDIM sampler and the denoiser at each
    DDIM step on real head-and-hands windows; and the online sampler (past
    frames inpainted) as the documented loop around the exported denoiser."""
    from controllers.vr import infer
    from export import onnx_export as ox
    x, y = vr_windows
    errs = {}
    mlp = infer.load_predictor(ox.VR_MLP)
    errs["mlp"] = np.abs(_session(onnx_files["vr_mlp"]).run(None, {"sparse": x})[0] - mlp.predict(x)).max()
    pred = infer.load_predictor(ox.VR_DIFFUSION, inpaint=0)
    xn = ((x - pred.x_mean) / pred.x_std).astype(np.float32)
    want = pred.sample_window(xn)
    pose, window = _session(onnx_files["vr_sampler"]).run(None, {"sparse": x})
    errs["sampler"] = max(np.abs(pose - (want[:, -1] * pred.y_std + pred.y_mean)).max(),
                          np.abs(window - (want * pred.y_std + pred.y_mean)).max())
    den = _session(onnx_files["vr_denoiser"])
    hc = pred.encode(xn)
    xt = np.random.default_rng(0).normal(size=(len(x), pred.window, 126)).astype(np.float32)
    errs["denoiser"] = max(np.abs(den.run(["x0"], {"sparse": x, "x_t": xt, "t": np.full(len(x), t, np.float32)})[0]
                                  - pred.denoise(xt, hc, i)).max() for i, t in enumerate(pred.timesteps))

    def denoise(s, xt_, t):
        return den.run(["x0"], {"sparse": s, "x_t": xt_, "t": t})[0]
    constants = ox.metadata(onnx_files["vr_denoiser"])["ddim"]
    online = infer.load_predictor(ox.VR_DIFFUSION)                                # the shipped online settings
    known = y[:, -online.inpaint - 1:-1]                                         # raw: the frames already shown
    want = online.sample_window(xn, ((known - online.y_mean) / online.y_std).astype(np.float32))
    got = ox.ddim_loop(denoise, x, constants, known)
    errs["denoiser loop (inpainting)"] = np.abs(got[:, -1] - want[:, -1]).max() * float(online.y_std.max())
    want0 = pred.sample_window(xn)
    errs["denoiser loop (plain)"] = np.abs(ox.ddim_loop(denoise, x, constants)[:, -1] - want0[:, -1]).max() \
        * float(pred.y_std.max())
    print({k: f"{v:.2e}" for k, v in errs.items()}, f"({len(x)} windows)")
    assert max(errs.values()) < 1e-4


def test_physics_policy_onnx_equals_numpy_on_recorded_observations(onnx_files, tiny_db_path):
    """The policy on the observations of a real tracking run (1 s, C MuJoCo)."""
    from anim import database
    from controllers.physics.cli import make_controller
    db = database.load(tiny_db_path)
    ctrl = make_controller(db, 0)
    obs = []
    for _ in range(60):
        obs.append(ctrl.observe())
        ctrl.step(ControlInput(), 1 / 60)
    obs = np.array(obs, np.float32)
    got = _session(onnx_files["physics_policy"]).run(None, {"observation": obs})[0]
    err = np.abs(got - ctrl.policy(obs)).max()
    print(f"physics policy: max |onnx - numpy| {err:.2e} over {len(obs)} observations")
    assert err < 1e-4


def test_web_checks_name_what_is_missing(monkeypatch):
    """Without node on PATH the web checks say why (the tests then skip, or
    fail under CI=true)."""
    monkeypatch.setenv("PATH", "")
    assert "node is not installed" in checks.web_problem()
    with pytest.raises(RuntimeError, match="node is not installed"):
        checks.validate(["x.glb"])


def test_cli_onnx(tmp_path, capsys):
    pytest.importorskip("onnx")
    assert main(["export", "onnx", "--only", "physics", "--out", str(tmp_path)]) == 0
    assert "opset 15" in capsys.readouterr().out
    assert os.listdir(tmp_path) == ["physics_policy.onnx"]
