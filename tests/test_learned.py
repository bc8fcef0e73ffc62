"""Learned motion matching: training, the weights file, the controller, and the
shipped weights' reconstruction of real database frames."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

import mocap_data
from anim import database, quat
from anim.control import ControlInput
from anim.skeleton import Skeleton
from controllers.learned import weights as W
from controllers.learned.config import TrainConfig
from controllers.learned.controller import DEFAULT_WEIGHTS, LearnedController

HAVE_DATA = any(True for _ in mocap_data.datasets())
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, DEFAULT_WEIGHTS)
needs_shipped = pytest.mark.skipif(not os.path.exists(SHIPPED), reason=f"{DEFAULT_WEIGHTS} not trained yet")

TINY = replace(TrainConfig(), hidden=48, latent=8, decompressor_iterations=60, stepper_iterations=40,
               projector_iterations=60, decompressor_batch=32, stepper_batch=16, stepper_window=8,
               projector_batch=64, checkpoint_every=20, log_every=10, lr=2e-3)


@pytest.fixture(scope="module")
def db():
    if not HAVE_DATA:
        pytest.skip("the mocap corpus is absent")
    clips = mocap_data.load_clips(mocap_data.datasets(), tags={
        "content": ["walk", "run", "walk-turn-left"], "style": "normal", "take": "001",
        "dataset": "bandai-namco-2"}, progress=False)
    assert len(clips) == 3
    return database.build_database(clips, progress=False)


@pytest.fixture(scope="module")
def trained(db, tmp_path_factory):
    from controllers.learned import train
    out = tmp_path_factory.mktemp("lmm")
    path = train.train(db, str(out), None, TINY, progress=False, command="pytest")
    return str(out), path


def _log(out_dir):
    with open(os.path.join(out_dir, "losses.jsonl")) as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------- training
@needs_data
def test_short_training_lowers_every_loss(trained):
    out, path = trained
    log = _log(out)
    for stage in ("decompressor", "stepper", "projector"):
        rows = [r for r in log if r["stage"] == stage]
        assert rows, stage
        assert rows[0]["iteration"] == 1
        first = rows[0]["loss"]                                  # the untrained network's loss
        last = np.mean([r["loss"] for r in rows[-3:]])
        assert last < (0.8 if stage == "decompressor" else 0.95) * first, (stage, first, last)
        assert all(np.isfinite(r["loss"]) for r in rows)
    w = W.load(path, training=True)
    assert w.meta["seed"] == TINY.seed and w.meta["command"] == "pytest"
    assert w.meta["styles"] == ["normal"]
    assert w.meta["config"]["hidden"] == 48
    assert set(w.meta["speeds"]) == {"walk", "run", "side", "back"}


@needs_data
def test_interrupted_training_resumes_to_the_same_weights(db, trained, tmp_path, monkeypatch):
    """Ctrl-C mid-stage leaves a checkpoint; running again finishes with the
    very weights of the uninterrupted run (same seed, batches, optimizer state)."""
    from controllers.learned import losses, train
    _, reference = trained
    calls = {"n": 0}
    real = losses.stepper

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 35:                 # after the checkpoint at 20 and the log line at 30
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(losses, "stepper", flaky)
    with pytest.raises(KeyboardInterrupt):
        train.train(db, str(tmp_path), None, TINY, progress=False)
    assert not os.path.exists(tmp_path / "lmm.npz")
    monkeypatch.setattr(losses, "stepper", real)
    path = train.train(db, str(tmp_path), None, TINY, progress=False)
    # the log does not repeat the iterations between the checkpoint and the interruption
    logged = [(r["stage"], r["iteration"]) for r in map(json.loads, open(tmp_path / train.LOG))]
    assert len(logged) == len(set(logged)) and ("stepper", 30) in logged
    a, b = W.load(reference, training=True).arrays, W.load(path, training=True).arrays
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # other settings against the same checkpoint folder: a clear error
    with pytest.raises(RuntimeError, match="other settings"):
        train.Checkpoint(str(tmp_path), replace(TINY, seed=7), db)


# ---------------------------------------------------------------- weights file
@needs_data
def test_weights_round_trip_and_numpy_matches_torch(trained, tmp_path):
    import torch

    from controllers.learned import networks as nw
    _, path = trained
    w = W.load(path, training=True)
    copy = tmp_path / "copy.npz"
    W.save(str(copy), {k: v for k, v in w.meta.items() if k not in ("format", "version")}, w.arrays)
    w2 = W.load(str(copy), training=True)
    assert w2.meta == w.meta
    for k in w.arrays:
        np.testing.assert_array_equal(w.arrays[k], w2.arrays[k])
    # the numpy evaluation is the torch network
    for name, kind in (("decompressor", "decompressor"), ("stepper", "stepper"), ("projector", "projector")):
        net = w.net(name)
        n_in, n_out = net["mean_in"].shape[0], net["mean_out"].shape[0]
        t = nw.make(kind, n_in, n_out, 48)
        with torch.no_grad():
            for i, layer in enumerate(t.layers):
                layer.weight.copy_(torch.as_tensor(net["layers"][i][0]).T)
                layer.bias.copy_(torch.as_tensor(net["layers"][i][1]))
            for k in ("mean_in", "std_in", "mean_out", "std_out"):
                getattr(t, k).copy_(torch.as_tensor(net[k]))
            x = np.random.default_rng(0).normal(size=(5, n_in)).astype(np.float32)
            np.testing.assert_allclose(W.mlp(net, x), t(torch.as_tensor(x)).numpy(), rtol=1e-4, atol=1e-4)
    # run-time load leaves the compressor out
    assert not any(k.startswith("compressor/") for k in W.load(path).arrays)
    assert W.load(path).nbytes < w.nbytes


@needs_data
def test_mismatched_skeleton_and_damaged_files_are_clear_errors(trained, tmp_path, db):
    _, path = trained
    W.load(path, db.skeleton)                                 # the right skeleton loads
    sk = db.skeleton
    other = Skeleton(sk.names[:-1], sk.parents[:-1], sk.offsets[:-1])
    with pytest.raises(W.WeightsError, match="another skeleton") as e:
        W.load(path, other)
    assert path in str(e.value)
    with pytest.raises(W.WeightsError, match="another skeleton"):
        LearnedController.load(path, skeleton=other)
    blob = open(path, "rb").read()
    cases = {"truncated.npz": blob[: len(blob) // 2], "garbage.npz": b"not a weights file at all",
             "flipped.npz": blob[:len(blob) // 2] + bytes([blob[len(blob) // 2] ^ 0xFF]) + blob[len(blob) // 2 + 1:]}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(W.WeightsError) as e:
            W.load(str(p))
        assert str(p) in str(e.value), name
    with pytest.raises(W.WeightsError, match="no such weights file"):
        W.load(str(tmp_path / "missing.npz"))
    # another format version
    w = W.load(path, training=True)
    meta = {k: v for k, v in w.meta.items() if k not in ("format", "version")}
    bad = tmp_path / "v0.npz"
    W.save(str(bad), meta, w.arrays)
    with np.load(bad) as z:
        arrays = dict(z)
    m = json.loads(bytes(arrays["meta"]).decode())
    m["version"] = 99
    arrays["meta"] = np.frombuffer(json.dumps(m).encode(), np.uint8)
    np.savez(bad, **arrays)
    with pytest.raises(W.WeightsError, match="version 99"):
        W.load(str(bad))


# ---------------------------------------------------------------- controller
@needs_data
def test_source_search_semantics_and_styles(trained):
    _, path = trained
    ctrl = LearnedController.load(path)
    src = ctrl.source
    src.reset()
    q = src.features().copy()
    moved, _ = src.search(q, must_move=False, margin=1e9)      # nothing beats the current state by 1e9
    assert not moved
    moved, cost = src.search(q + 1.0, must_move=True, margin=1e9)
    assert moved and np.isfinite(cost)
    assert not src.at_end()
    # one trained style: asking another is refused with one warning, nothing changes
    assert ctrl.style == "normal"
    with pytest.warns(UserWarning, match="style 'active'"):
        ctrl.step(ControlInput(move=np.array([0.0, 1.0]), style="active"))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            ctrl.step(ControlInput(move=np.array([0.0, 1.0]), style="active"))
    assert ctrl.style == "normal"


def test_the_controller_does_not_import_torch():
    code = ("import sys; import controllers.learned.controller, controllers.learned.cli; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@needs_shipped
def test_shipped_controller_walks_forward_and_turns():
    ctrl = LearnedController.load(SHIPPED)
    assert ctrl.nbytes() < 10e6
    ctrl.reset()
    start = None
    for i in range(300):
        pose = ctrl.step(ControlInput(move=np.array([0.0, 1.0], np.float32)), 1 / 60)
        assert np.isfinite(pose.rotations).all() and np.isfinite(pose.positions).all()
        if i == 0:
            start = pose.positions[0].copy()
    travelled = pose.positions[0] - start
    walk = ctrl.speeds["walk"]
    assert travelled[2] > 0.7 * walk * 5.0, travelled          # forward (+Z) near walking speed
    assert abs(travelled[0]) < 0.3 * travelled[2]
    hips_y = quat.fk(pose.rotations, pose.positions, ctrl.skeleton.parents)[1][1, 1]
    assert 0.6 < hips_y < 1.2                                    # standing upright, not collapsed
    # then left (+X): the character turns and goes there
    x0 = pose.positions[0, 0]
    for _ in range(180):
        pose = ctrl.step(ControlInput(move=np.array([1.0, 0.0], np.float32)), 1 / 60)
    assert pose.positions[0, 0] - x0 > 1.0
    fwd = quat.rot(pose.rotations[0], np.array([0.0, 0.0, 1.0]))
    assert fwd[0] > 0.8                                          # facing +X
    # standing still: the root settles
    for _ in range(180):
        pose = ctrl.step(ControlInput(), 1 / 60)
    p0 = pose.positions[0].copy()
    for _ in range(30):
        pose = ctrl.step(ControlInput(), 1 / 60)
    assert np.linalg.norm(pose.positions[0] - p0) < 0.15
    # strafing sideways: the weights carry their database's coverage, so the HUD note comes too
    assert ctrl.coverage["side"] < 10 < ctrl.coverage["forward"]
    pose = ctrl.step(ControlInput(move=np.array([1.0, 0.0], np.float32), facing=np.array([0.0, 1.0])), 1 / 60)
    assert "side steps" in pose.info.note


@needs_shipped
@needs_data
def test_shipped_decompressor_reconstructs_database_frames(db):
    """Frames of real clips (part of the training database), latent from the
    shipped compressor: mean joint error within the issue's 2 cm."""
    from controllers.learned import evaluate as E
    w = W.load(SHIPPED, db.skeleton, training=True)
    # the small database normalizes its features itself: bring them into the weights' normalization
    raw = np.asarray(db.features) * db.features_scale + db.features_offset
    small = database.Database(**{**db.__dict__, "features": ((raw - w.arrays["features_offset"])
                                                              / w.arrays["features_scale"]).astype(np.float32)})
    frames = np.arange(0, db.num_frames, 3)
    r = E.decompressor_error(small, w, frames, E.latents(small, w, frames))
    assert r["joint_cm_mean"] < 2.0, r
    assert r["rotation_deg_mean"] < 5.0, r
    assert r["contact_accuracy"] > 0.9, r


@needs_data
def test_evaluate_reports_every_measure(db, trained):
    """The measurement script end to end on the tiny model (the numbers are
    those of an untrained model; here only that each is measured)."""
    from controllers.learned import evaluate as E
    _, path = trained
    r = E.evaluate(db, path, run_controllers=False, decompressor_frames=300, drift_starts=8,
                   projector_queries=64)
    assert r["memory"]["lmm_bytes"] == W.load(path).nbytes and r["memory"]["mm_bytes"] > 0
    assert r["decompressor"]["joint_cm_mean"] > 0 and r["decompressor"]["frames"] == 300
    assert "drift_1s_cm" in r["stepper"] and "nearest_pose_10s_cm" in r["stepper"]
    assert 0.0 <= r["projector"]["agreement"] <= 1.0
    text = E.table(r)
    for word in ("memory", "decompressor", "stepper drift after 1 s", "projector agreement"):
        assert word in text


@needs_shipped
def test_a_projection_does_not_jump_on_its_first_step():
    """The projector's output is not always where the stepper would have put
    a state: the first step after it jumped (strafe: a hand moved 10 cm in
    one frame, 380 m/s^2). The source steps a projection once before showing
    it, so the inertialization starts from a state the stepper continues
    smoothly: over the pose at the projection and the next two frames the
    body (root-relative) never accelerates past 120 m/s^2."""
    from anim import runner, scripts
    ctrl = LearnedController.load(SHIPPED)
    src, parents = ctrl.source, ctrl.skeleton.parents
    worst = []
    search = src.search

    def measured_search(query, must_move, margin):
        moved, cost = search(query, must_move, margin)
        if moved:
            keep = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(src).items()
                    if k in ("state", "rot", "pos", "vel", "avel", "contacts", "root_pos", "root_rot", "ticks")}
            g = []
            for _ in range(3):
                _, p = quat.fk(src.rot.astype(np.float64), src.pos.astype(np.float64), parents)
                g.append(p - p[0])
                src.advance(1 / 60)
            a = np.linalg.norm(g[2] - 2 * g[1] + g[0], axis=-1).max() * 3600
            worst.append(a)
            for k, v in keep.items():
                if isinstance(v, np.ndarray) and k not in ("root_pos", "root_rot"):
                    getattr(src, k)[...] = v
                else:
                    setattr(src, k, v)
        return moved, cost

    src.search = measured_search
    runner.run(ctrl, scripts.load("strafe"))
    assert len(worst) > 50
    assert max(worst) < 120.0, np.round(np.sort(worst)[-5:], 1)
