"""Sparse-VR prediction (controllers/vr) and its input sources (viewer/vr_input.py).

Data tests use real clips of ../shared/mocap: four walks and four runs of
bandai-namco-2 (normal style, takes 002, 003, 005, 018), two of them in the
test split, the rest in train with their mirrors.
"""

import json
import os
import sys
import urllib.request
from dataclasses import replace

import numpy as np
import pytest

import mocap_data
from anim import quat
from anim.control import ControlInput
from controllers.vr import data as vd
from controllers.vr import evaluate as ve
from controllers.vr import infer

from _vr import HAVE_DATA, SMALL, needs_data
UP = np.array([0.0, 1.0, 0.0], np.float32)


@pytest.fixture(scope="module")
def small():
    if not HAVE_DATA:
        pytest.skip("no corpus")
    return vd.build(SMALL, progress=False)


@pytest.fixture(scope="module")
def hf(small):
    return vd.head_forward_axis(small.calibration)


def _random_model(path, small, kind="diffusion", **cfg):
    """An untrained (randomly initialized) network exported as an artefact."""
    import torch

    from controllers.vr import train
    from controllers.vr.models import DiffMLP, DiffusionConfig, MLPConfig, MLPRegressor
    torch.manual_seed(0)
    if kind == "diffusion":
        mc = DiffusionConfig(**{"latent": 32, "blocks": 2, "window": 12, "global_cond": 48, **cfg})
        net = DiffMLP(mc)
    else:
        mc = MLPConfig(**{"hidden": 32, "layers": 2, "window": 12, **cfg})
        net = MLPRegressor(mc)
    hf = vd.head_forward_axis(small.calibration)
    norm = train.norm_stats(small, small.frames("train")[::7], hf, mc.window)
    train.export(str(path), kind, mc, net.state_dict(), norm, small, 0, {})
    return net, mc


# ------------------------------------------------------------------ split
@needs_data
def test_split_file_is_by_clip_and_deterministic():
    split = vd.read_split(vd.SPLIT_PATH)
    sets = {k: set(v) for k, v in split.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    items = [(f"{t['dataset']}/{p.stem}", t) for _, p, t in mocap_data.select_files(mocap_data.datasets())]
    assert {i for i, _ in items} == sets["train"] | sets["val"] | sets["test"]       # every clip, both datasets
    doc = json.loads(vd.SPLIT_PATH.read_text())
    assert vd.make_split(items, doc["seed"], doc["fractions"]) == split             # reproducible from the seed
    n = sum(len(v) for v in split.values())
    assert 0.07 < len(split["test"]) / n < 0.13 and 0.07 < len(split["val"]) / n < 0.13


@needs_data
@pytest.mark.parametrize("kind", ["diffusion", "mlp"])
def test_shipped_training_record_names_no_machine_folder(kind):
    """The shipped models' training record gives the split file relative to
    the checkout (anim.fileio.shown_path), not the folder it was trained in."""
    from anim.fileio import REPO_ROOT, shown_path
    path = os.path.join(REPO_ROOT, "controllers", "vr", "weights", f"{kind}.npz")
    meta, _ = infer.load_artefact(path)
    assert meta["training"]["data_config"]["split_path"] == os.path.join("controllers", "vr", "split.json")
    assert "/work/" not in json.dumps(meta) and "/tmp/" not in json.dumps(meta)
    assert shown_path(path) == os.path.join("controllers", "vr", "weights", f"{kind}.npz")
    assert shown_path("/elsewhere/x.npz") == "/elsewhere/x.npz"


def test_mirrors_only_in_train(small):
    assert sorted(set(small.clip_split)) == ["test", "train"]
    for s, m, cid in zip(small.clip_split, small.clip_mirrored, small.clip_ids):
        assert not (m and s != "train"), cid
    assert sum(small.clip_mirrored) == len(small.clips("train", mirrored=False)) > 0
    test_ids = {small.clip_ids[c] for c in small.clips("test")}
    assert not test_ids & {small.clip_ids[c] for c in small.clips("train")}


# ------------------------------------------------------------------ features
@needs_data
def test_window_shapes_and_padding(small, hf):
    c = small.clips("test")[0]
    a = int(small.starts[c])
    x, y, theta, origin = vd.windows(small, np.array([a, a + 100]), hf, 40)
    assert x.shape == (2, 40, vd.SPARSE_DIM) == (2, 40, 54) and y.shape == (2, 40, 126)
    assert theta.shape == (2,) and origin.shape == (2, 3) and origin[0, 1] == 0
    assert np.isfinite(x).all() and np.isfinite(y).all()
    # a window at a clip start repeats its first frame: zero velocities, identity rotation deltas
    s = x[0].reshape(40, 3, 18)
    assert np.abs(s[..., 15:18]).max() == 0
    assert np.allclose(s[..., 6:12], [1, 0, 0, 0, 1, 0], atol=1e-6)
    # the head is on the canonical origin's vertical, facing +Z at the last frame
    head_pos = s[-1, 0, 12:15]
    assert abs(head_pos[0]) < 1e-5 and abs(head_pos[2]) < 1e-5 and 1.0 < head_pos[1] < 2.0
    fwd = vd.quat.rot(vd.quat.from_6d(s[-1, 0, 0:6]), hf)
    assert abs(fwd[0]) < 1e-4 and fwd[2] > 0


@needs_data
def test_targets_rebuild_the_ground_truth(small, hf):
    frames = small.frames("train")[::97]
    x, y, theta, _ = vd.windows(small, frames, hf, 8)
    rot, pos = vd.poses_from_features(y[:, -1], theta, small.dev_p[frames, 0], small.skeleton)
    grot, gpos = vd.ground_truth_pose(small, frames, hf)
    _, p1 = quat.fk(rot, pos, small.skeleton.parents)
    _, p2 = quat.fk(grot, gpos, small.skeleton.parents)
    assert np.abs(p1 - p2).max() < 1e-4
    head = small.skeleton.index("Head")
    assert np.abs(p1[:, head] - small.dev_p[frames, 0]).max() < 1e-5      # hung from the tracked head


def _moved(q, p, angle, shift):
    r = quat.from_angle_axis(np.float32(angle), UP).astype(np.float32)
    return quat.mul(r, q).astype(np.float32), (quat.rot(r, p) + shift).astype(np.float32)


@needs_data
@pytest.mark.parametrize("angle,shift", [(0.0, (3.0, 0.0, -2.0)), (-2.2, (-5.0, 0.0, 7.5))])
def test_input_and_pose_invariant_to_where_the_user_stands_and_faces(small, hf, tmp_path, angle, shift):
    """Translating / rotating the user about +Y leaves the model input and the
    predicted local pose unchanged (the root moves with the user)."""
    from controllers.vr.controller import VRController
    shift = np.float32(shift)
    c = small.clips("test")[0]
    idx = small.window_indices(np.arange(small.starts[c] + 30, small.starts[c] + 60), 40)
    q, p = small.dev_q[idx], small.dev_p[idx]
    x1, _, _ = vd.sparse_features(q, p, hf)
    x2, _, _ = vd.sparse_features(*_moved(q, p, angle, shift), hf)
    assert np.abs(x1 - x2).max() < 2e-4

    _random_model(tmp_path / "m.npz", small, window=40)
    frames = np.arange(small.starts[c], small.starts[c] + 45)
    dq = vd.joints_to_devices(small.dev_q[frames], small.calibration)
    dp = small.dev_p[frames]
    mq, mp = _moved(dq, dp, angle, shift)
    poses = []
    for qq, pp in ((dq, dp), (mq, mp)):
        ctrl = VRController.load(str(tmp_path / "m.npz"), small.skeleton)
        ctrl.reset()
        for f in range(len(frames)):
            pose = ctrl.step(ControlInput(head=(pp[f, 0], qq[f, 0]), left_hand=(pp[f, 1], qq[f, 1]),
                                          right_hand=(pp[f, 2], qq[f, 2])), 1 / 60)
        poses.append(pose)
    a, b = poses
    assert np.abs(np.abs(quat.dot(a.rotations[1:], b.rotations[1:])) - 1).max() < 1e-4     # local pose
    assert np.abs(a.positions[1:] - b.positions[1:]).max() < 1e-4
    _, ga = quat.fk(a.rotations, a.positions, small.skeleton.parents)
    _, gb = quat.fk(b.rotations, b.positions, small.skeleton.parents)
    ga_moved = quat.rot(quat.from_angle_axis(np.float32(angle), UP), ga) + shift
    assert np.abs(ga_moved - gb).max() < 1e-3                                             # world pose follows


# ------------------------------------------------------------------ models
@needs_data
@pytest.mark.parametrize("kind", ["diffusion", "mlp"])
def test_numpy_inference_matches_torch(small, tmp_path, kind):
    import torch

    from controllers.vr.models import Diffusion
    net, mc = _random_model(tmp_path / "m.npz", small, kind)
    pred = infer.load_predictor(str(tmp_path / "m.npz"), small.skeleton)
    x = np.random.default_rng(0).standard_normal((5, mc.window, 54)).astype(np.float32)
    with torch.no_grad():
        want = (Diffusion(mc).sample(net, torch.from_numpy(x))[:, -1] if kind == "diffusion"
                else net(torch.from_numpy(x))).numpy()
    assert np.abs(pred._predict(x) - want).max() < 1e-4
    if kind == "diffusion":                                       # the fused online kernel agrees too
        assert np.abs(pred._sample_one(x[2]) - pred.sample_window(x[2:3])[0]).max() < 1e-4
        known = np.random.default_rng(1).standard_normal((mc.window - 1, 126)).astype(np.float32)
        assert np.abs(pred._sample_one(x[2], known) - pred.sample_window(x[2:3], known[None])[0]).max() < 1e-4
        part = known[-4:]                                         # fewer inpainted frames: those just before now
        got = pred._sample_one(x[2], part)
        assert np.abs(got - pred.sample_window(x[2:3], part[None])[0]).max() < 1e-4
        assert np.abs(got[-1] - pred._sample_one(x[2], known)[-1]).max() > 1e-3
        soft = infer.load_predictor(str(tmp_path / "m.npz"), small.skeleton, inpaint_weight=0.5)
        got = soft._sample_one(x[2], known)                     # the past held softly after the first step
        assert np.abs(got - soft.sample_window(x[2:3], known[None])[0]).max() < 1e-4
        assert np.abs(got[-1] - pred._sample_one(x[2], known)[-1]).max() > 1e-3


@needs_data
def test_inpainted_past_is_the_shown_frames_in_the_new_heading_frame(small, hf, tmp_path):
    _random_model(tmp_path / "m.npz", small)                       # window 12: 11 frames inpainted
    pred = infer.load_predictor(str(tmp_path / "m.npz"), small.skeleton)
    assert pred.inpaint == 11 and pred.stateful
    e = int(small.starts[small.clips("test")[0]]) + 50
    _, y_prev, th_prev, _ = vd.windows(small, np.array([e - 1]), hf, 12)
    _, y_new, th_new, _ = vd.windows(small, np.array([e]), hf, 12)
    assert abs(float(th_new[0] - th_prev[0])) > 1e-4                # the heading moved between the windows
    pred._shown, pred._shown_theta = y_prev[:, 1:], th_prev         # frames e-11 .. e-1 as shown at e-1
    known = pred._known(th_new) * pred.y_std + pred.y_mean
    assert np.abs(known[0] - y_new[0, :11]).max() < 1e-4


@needs_data
def test_artefact_checks_skeleton_and_version(small, tmp_path):
    from anim.skeleton import Skeleton
    _random_model(tmp_path / "m.npz", small)
    sk = small.skeleton
    other = Skeleton(sk.names[:-1], sk.parents[:-1], sk.offsets[:-1])
    with pytest.raises(ValueError, match="skeleton"):
        infer.load_predictor(str(tmp_path / "m.npz"), other)
    meta, arrays = infer.load_artefact(str(tmp_path / "m.npz"))
    meta["version"] = 99
    infer.save_artefact(str(tmp_path / "old.npz"), {k: v for k, v in meta.items() if k not in ("format",)}, arrays)
    with pytest.raises(ValueError, match="v99"):
        infer.load_predictor(str(tmp_path / "old.npz"))


def test_online_steps_travel_with_the_artefact(small, tmp_path):
    """The DDIM steps a diffusion model runs online are part of the shipped
    artefact (ship(..., online_steps)); an explicit sample_steps still wins,
    and without either the config's sample_steps apply."""
    from controllers.vr import train
    _random_model(tmp_path / "m.npz", small, sample_steps=5)
    assert len(infer.load_predictor(str(tmp_path / "m.npz")).timesteps) == 5
    train.ship(str(tmp_path / "m.npz"), str(tmp_path / "s.npz"), online_steps=3)
    shipped = infer.load_predictor(str(tmp_path / "s.npz"))
    assert shipped.meta["online_steps"] == 3 and len(shipped.timesteps) == 3
    assert len(infer.load_predictor(str(tmp_path / "s.npz"), sample_steps=2).timesteps) == 2
    x = np.zeros((1, shipped.window, vd.SPARSE_DIM), np.float32)
    assert np.isfinite(shipped.predict(x)).all()



def test_fewer_inpainted_frames_sit_just_before_the_current_one(small, tmp_path):
    """inpaint K < W-1: the K shown frames are the rows right before the
    current frame (they once went to the window's oldest rows)."""
    _random_model(tmp_path / "m.npz", small)
    pred = infer.load_predictor(str(tmp_path / "m.npz"), inpaint=4, noise_scale=0.0)
    seen = []
    real = pred.denoise
    pred.denoise = lambda xt, hc, step: (seen.append(np.array(xt)), real(xt, hc, step))[1]
    x = np.zeros((1, pred.window, vd.SPARSE_DIM), np.float32)
    known = np.full((1, 4, 126), 7.0, np.float32)
    pred.sample_window(x, known)
    rows = np.flatnonzero(np.abs(seen[0][0] - np.sqrt(pred.ab[0]) * 7.0).max(axis=1) < 1e-4)
    assert rows.tolist() == list(range(pred.window - 5, pred.window - 1))


def test_online_noise_travels_with_the_artefact(small, tmp_path):
    """The scale of the starting noise is the artefact's online_noise (1 when
    absent, as older models were measured); 0 samples from zeros, which is a
    different, deterministic answer; an explicit noise_scale wins."""
    from controllers.vr import train
    _random_model(tmp_path / "m.npz", small)
    assert infer.load_predictor(str(tmp_path / "m.npz")).noise_scale == 1.0
    train.ship(str(tmp_path / "m.npz"), str(tmp_path / "one.npz"), online_noise=1.0)
    train.ship(str(tmp_path / "m.npz"), str(tmp_path / "zero.npz"), online_noise=0.0)
    one = infer.load_predictor(str(tmp_path / "one.npz"), inpaint=0)
    zero = infer.load_predictor(str(tmp_path / "zero.npz"), inpaint=0)
    assert zero.meta["online_noise"] == 0.0 and zero.noise_scale == 0.0 and not zero.noise.any()
    x = np.random.default_rng(0).standard_normal((1, one.window, vd.SPARSE_DIM)).astype(np.float32)
    y0, y1 = zero.predict(x), one.predict(x)
    assert np.isfinite(y0).all() and np.abs(y0 - y1).max() > 1e-3
    forced = infer.load_predictor(str(tmp_path / "one.npz"), inpaint=0, noise_scale=0.0)
    assert np.allclose(forced.predict(x), y0, atol=1e-5)


@needs_data
def test_short_training_lowers_loss_and_resumes_exactly(small, tmp_path):
    from controllers.vr import train
    from controllers.vr.models import DiffusionConfig
    mc = DiffusionConfig(window=12, latent=32, blocks=2, global_cond=32)
    cfg = train.TrainConfig(iterations=40, batch=24, lr=3e-3, warmup=5, val_every=40, val_windows=64,
                            norm_windows=2000, log_every=5, checkpoint_s=1e9)
    rec = train.train(cfg, str(tmp_path / "a"), mc, SMALL, progress=False, data=small)
    logged = [json.loads(line) for line in open(tmp_path / "a" / "log.jsonl")]
    raw = [r["loss"] for r in logged if "loss" in r]
    assert np.mean(raw[-2:]) < 0.6 * np.mean(raw[:2]) and rec["final_loss"] < rec["first_loss"]
    pred = infer.load_predictor(str(tmp_path / "a" / "model.npz"), small.skeleton)
    assert pred.meta["seed"] == 0 and pred.meta["training"]["iterations"] == 40
    # interrupted at 20 then resumed: the same weights as the uninterrupted run
    train.train(cfg, str(tmp_path / "b"), mc, SMALL, progress=False, data=small, stop_at=20)
    assert not (tmp_path / "b" / "model.npz").exists()
    with pytest.raises(SystemExit):              # another schedule is not silently mixed in
        train.train(replace(cfg, lr=1e-3), str(tmp_path / "b"), mc, SMALL, progress=False, data=small)
    import torch
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert ck["it"] == 20
    with open(tmp_path / "b" / "log.jsonl", "a") as f:     # what a run killed after its checkpoint leaves
        f.write(json.dumps({"it": 25, "loss": 99.0}) + "\n" + '{"it": 30, "lo')
    train.train(cfg, str(tmp_path / "b"), mc, SMALL, progress=False, data=small)
    resumed = [json.loads(line) for line in open(tmp_path / "b" / "log.jsonl")]
    its = [r["it"] for r in resumed if "loss" in r]
    assert its == sorted(set(its)) and its[-1] == 40 and 99.0 not in [r["loss"] for r in resumed if "loss" in r]
    a = infer.load_artefact(str(tmp_path / "a" / "model.npz"))[1]
    b = infer.load_artefact(str(tmp_path / "b" / "model.npz"))[1]
    assert max(np.abs(a[k] - b[k]).max() for k in a) < 1e-5


def test_denoiser_trains_and_samples_on_another_device():
    """Every tensor the denoiser and its sampler make follows the input's
    device: checked on torch's 'meta' device, which refuses to mix with CPU
    tensors as CUDA does (the step embedding's frequencies were made on the
    CPU, so a CUDA training crashed at its first step)."""
    import torch

    from controllers.vr.models import Diffusion, DiffusionConfig, DiffMLP
    cfg = DiffusionConfig(window=8, latent=16, blocks=1, global_cond=16)
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.zeros(2, device="meta") * torch.ones(2)        # the check this test relies on
    net, diffusion = DiffMLP(cfg).to("meta"), Diffusion(cfg)
    diffusion.alpha_bar = diffusion.alpha_bar.to("meta")
    x = torch.zeros(3, cfg.window, vd.SPARSE_DIM, device="meta")
    y = torch.zeros(3, cfg.window, 126, device="meta")
    g = torch.Generator().manual_seed(0)
    t = diffusion.sample_t(3, g).to("meta")
    loss = diffusion.loss(net(diffusion.q_sample(y, t, torch.randn(y.shape, generator=g).to("meta")), t, x), y)
    loss.backward()
    assert diffusion.sample(net, x).shape == (3, cfg.window, 126)


@needs_data
def test_data_pack_round_trip_and_errors(small, hf, tmp_path):
    path = tmp_path / "pack.npz"
    r = vd.pack(small, path, splits=("train", "val", "test"))
    assert r["frames"] == small.num_frames and r["max_device_error"] < 1e-3
    u = vd.unpack(path)
    assert u.clip_ids == small.clip_ids and u.clip_split == small.clip_split
    assert (u.starts == small.starts).all() and (u.contacts == small.contacts).all()
    # rotations within the quantization (1/16384 per component), devices rebuilt by FK within 1 mm
    assert np.abs(np.abs((u.local_q * small.local_q).sum(-1)) - 1).max() < 1e-6
    assert np.abs(u.dev_p - small.dev_p).max() < 1e-3 and np.abs(u.hips_p - small.hips_p).max() < 1e-4
    ends = small.frames("test")[::37]
    xa, ya, _, _ = vd.windows(small, ends, hf, 20)
    xb, yb, _, _ = vd.windows(u, ends, hf, 20)
    assert np.abs(ya - yb).max() < 1e-3 and np.abs(xa - xb).max() < 0.05
    only_train = vd.unpack(vd.pack(small, tmp_path / "train.npz", splits=("train",))["path"])
    assert set(only_train.clip_split) == {"train"} and only_train.num_frames == len(small.frames("train"))
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        vd.unpack(tmp_path / "missing.npz")
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        vd.unpack(bad)
    np.savez(tmp_path / "foreign.npz", meta=np.frombuffer(b'{"format": "x"}', np.uint8))
    with pytest.raises(ValueError, match="foreign.npz.*anim-vr-pack"):
        vd.unpack(tmp_path / "foreign.npz")
    with pytest.raises(ValueError, match="no clips"):
        vd.pack(small, tmp_path / "none.npz", splits=("nope",))


@needs_data
def test_batch_workers_and_a_pack_train_the_same_weights(small, tmp_path):
    """`train --data PACK --workers 2` (a fresh interpreter: the suite's own
    may run JAX, which forking does not survive) trains the same weights, bit
    for bit, as the training process making its own batches from the pack."""
    import subprocess
    import sys

    from controllers.vr import train
    from controllers.vr.models import DiffusionConfig
    pack = vd.pack(small, tmp_path / "p.npz", splits=("train", "test"))["path"]
    flags = ["--window", "12", "--latent", "32", "--blocks", "2", "--global-cond", "32", "--iterations", "12",
             "--batch", "16", "--val-every", "6"]
    r = subprocess.run([sys.executable, "-m", "controllers.vr.train", "--model", "diffusion", "--out",
                        str(tmp_path / "w"), "--data", pack, "--workers", "2", "--quiet", *flags],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    mc = DiffusionConfig(window=12, latent=32, blocks=2, global_cond=32)
    cfg = train.TrainConfig(iterations=12, batch=16, val_every=6)
    train.train(cfg, str(tmp_path / "h"), mc, vd.VRDataConfig(), progress=False, data=vd.unpack(pack))
    a = infer.load_artefact(str(tmp_path / "w" / "model.npz"))[1]
    b = infer.load_artefact(str(tmp_path / "h" / "model.npz"))[1]
    assert all(np.array_equal(a[k], b[k]) for k in a)


@needs_data
@pytest.mark.slow
def test_gpu_training_script_runs_its_three_models(small, tmp_path):
    """weights/train_gpu.sh, the documented GPU reproduction, run here on the
    CPU with a few seconds' budget: each model trains from the pack, stops by
    the clock with its schedule ended (--paced) and exports an artefact."""
    import subprocess

    pack = vd.pack(small, tmp_path / "p.npz", splits=("train", "test"))["path"]
    script = os.path.join(os.path.dirname(vd.__file__), "weights", "train_gpu.sh")
    env = {**os.environ, "DEVICE": "cpu", "MINUTES": "0.05", "PYTHON": sys.executable, "FOOT_WEIGHT": "0.5",
           "ARGS": "--speed-aug 0.2 --noise-aug 0.05"}
    r = subprocess.run(["bash", script, pack, str(tmp_path / "gpu"), "100000"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for m in ("diffusion", "diffusion192", "mlp"):
        meta = infer.load_artefact(str(tmp_path / "gpu" / m / "model.npz"))[0]
        tr = meta["training"]
        assert tr["stopped_by"] == "minutes" and tr["train_config"]["paced"] and tr["train_config"]["batch"] == 256
        assert tr["train_config"]["foot_weight"] == (0.0 if m == "mlp" else 0.5)
        assert tr["train_config"]["speed_aug"] == 0.2 and tr["train_config"]["noise_aug"] == 0.05
    assert infer.load_artefact(str(tmp_path / "gpu" / "diffusion192" / "model.npz"))[0]["config"]["latent"] == 192


@needs_data
def test_paced_schedule_ends_its_decay_by_the_clock(small, tmp_path):
    """--paced: a run cut by --minutes long before its iterations still ends
    its learning-rate decay (unpaced, the rate has barely moved)."""
    from controllers.vr import train
    from controllers.vr.models import DiffusionConfig
    mc = DiffusionConfig(window=12, latent=32, blocks=2, global_cond=32)
    cfg = train.TrainConfig(iterations=10**6, minutes=0.03, batch=8, warmup=2, val_every=10**6, val_windows=32,
                            norm_windows=500, log_every=1, checkpoint_s=1e9)
    last_lr = {}
    for paced in (False, True):
        out = tmp_path / f"paced{paced}"
        rec = train.train(replace(cfg, paced=paced), str(out), mc, SMALL, progress=False, data=small)
        assert rec["stopped_by"] == "minutes" and 10 < rec["iterations"] < cfg.iterations
        logged = [json.loads(line) for line in open(out / "log.jsonl")]
        assert logged[-1]["it"] == rec["iterations"] and "val_last_frame_mse" in logged[-1]   # validated at the cut
        last_lr[paced] = [r for r in logged if "lr" in r][-1]["lr"]
    assert last_lr[False] > 0.99 * cfg.lr and last_lr[True] < 0.15 * cfg.lr


@needs_data
def test_motion_matching_baseline_finds_training_frames(small, hf):
    from controllers.vr.baselines import MotionMatchingBaseline
    mm = MotionMatchingBaseline(small, window=4)
    f = small.frames("train")[[100, 400, 900]]
    x, y, _, _ = vd.windows(small, f, hf, 4)
    mm.reset()
    got = np.stack([mm.predict(x[i:i + 1])[0] for i in range(3)])
    assert [mm.frames[mm.cur]] == [f[2]] or np.abs(got - y[:, -1]).max() < 1e-4


# ------------------------------------------------------------------ metrics
def test_metrics_on_hand_made_motion():
    from anim.skeleton import Skeleton
    names = ("Sim", "Hips", "Spine", "Head", "Hand_L", "Hand_R", "UpperLeg_L", "UpperLeg_R", "LowerLeg_L",
             "LowerLeg_R", "Foot_L", "Foot_R", "Toes_L", "Toes_R")
    sk = Skeleton(names, [-1, 0, 1, 2, 2, 2, 1, 1, 6, 7, 8, 9, 10, 11], np.zeros((14, 3)))
    t = np.arange(60) / 60.0
    j = len(names) - 1
    gt = np.zeros((60, j, 3))
    gt[..., 0] = t[:, None] * 1.5                       # everything walks at 1.5 m/s along x
    pred = gt.copy()
    pred[..., 1] += 0.01                                # 1 cm too high: MPJPE 1 cm, MPJVE 0
    rot = quat.identity((60, j)).astype(np.float64)
    prot = rot.copy()
    prot[:, 0] = quat.from_angle_axis(np.radians(30.0), [0.0, 0.0, 1.0])   # one joint off by 30 degrees
    contacts = np.ones((60, 2), bool)
    acc = ve.Accumulator(sk)
    acc.clip(prot, pred, rot, gt, contacts)
    m = acc.result()
    assert m["mpjpe_cm"] == pytest.approx(1.0) and m["root_pe_cm"] == pytest.approx(1.0)
    assert m["mpjve_cm_s"] == pytest.approx(0.0, abs=1e-9)
    assert m["mpjre_deg"] == pytest.approx(30.0 / 3 / j)           # AGRoL: per axis-angle component
    assert m["mpjre_geodesic_deg"] == pytest.approx(30.0 / j)
    assert m["jitter_km_s3"] == pytest.approx(0.0, abs=1e-6)        # constant velocity: no jerk
    assert m["foot_skate_cm_s"] == pytest.approx(150.0)             # feet slide at 1.5 m/s while in contact
    # jerk: p = a t^3 has third derivative 6 a
    cubic = np.zeros((60, 1, 3))
    cubic[:, 0, 1] = 2.0 * t ** 3
    assert ve.jitter(cubic, 60.0).mean() == pytest.approx(12.0 / 1000)
    # groups: the lower body is AGRoL's (hips, legs, feet)
    assert [names[1:][i] for i in acc.idx_lower] == ["Hips", "UpperLeg_L", "UpperLeg_R", "LowerLeg_L",
                                                      "LowerLeg_R", "Foot_L", "Foot_R", "Toes_L", "Toes_R"]
    assert ve.targets({"methods": {"diffusion": {"mpjpe_cm": 1, "lower_pe_cm": 1, "jitter_km_s3": 1,
                                                 "latency_p99_ms": 4},
                                   "mlp": {"mpjpe_cm": 2, "lower_pe_cm": 2, "jitter_km_s3": 3}},
                       "gt": {"jitter_km_s3": 0.4}}) == {
        "beats_baselines_mpjpe_cm": True, "beats_baselines_lower_pe_cm": True,
        "beats_baselines_jitter_km_s3": True, "jitter_within_2x_gt": False, "p99_le_5ms": True}


@needs_data
def test_evaluate_runs_and_prints_a_table(small, tmp_path):
    _random_model(tmp_path / "m.npz", small)
    pred = infer.load_predictor(str(tmp_path / "m.npz"), small.skeleton)
    res = ve.evaluate({"diffusion": pred}, small, max_clips=1, latency_frames=30, progress=False)
    m = res["methods"]["diffusion"]
    for k, _ in ve.COLUMNS:
        assert np.isfinite(m[k]), k
    assert res["gt"]["jitter_km_s3"] > 0
    assert "| AGRoL-style diffusion |" in ve.markdown(res)


# ------------------------------------------------------------------ inputs
def test_webxr_axes_conversion():
    from viewer.vr_input import webxr_to_engine
    p, q = webxr_to_engine([1.0, 1.6, -2.0], [1, 0, 0, 0])
    assert np.allclose(p, [-1.0, 1.6, 2.0])               # right of and ahead of the user -> -X, +Z
    assert np.allclose(q, [1, 0, 0, 0])                   # looking down WebXR's -Z: engine identity
    turn_left = quat.from_angle_axis(np.float32(np.pi / 2), UP)      # WebXR: -Z turns to -X (left)
    _, q = webxr_to_engine([0, 0, 0], turn_left)
    assert np.allclose(quat.rot(q, np.float32([0, 0, 1])), [1, 0, 0], atol=1e-6)   # engine left is +X
    pitch_down = quat.from_angle_axis(np.float32(-0.5), [1.0, 0.0, 0.0])           # WebXR: look down
    _, q = webxr_to_engine([0, 0, 0], pitch_down)
    assert quat.rot(q, np.float32([0, 0, 1]))[1] < -0.4
    p, q = webxr_to_engine(*webxr_to_engine([0.3, 1.2, 0.4], quat.normalize(np.float32([0.9, 0.1, 0.2, 0.3]))))
    assert np.allclose(p, [0.3, 1.2, 0.4]) and np.allclose(q, quat.normalize(np.float32([0.9, 0.1, 0.2, 0.3])))


def test_websocket_bridge_with_a_real_client():
    from websockets.sync.client import connect

    from viewer.webxr_bridge import WebXRBridge, pose_message
    with WebXRBridge(port=0) as bridge:
        page = urllib.request.urlopen(bridge.url, timeout=5).read().decode()
        assert "navigator.xr" in page and "/ws" in page and "token" in page
        with connect(f"ws://127.0.0.1:{bridge.port}/ws", origin=f"http://127.0.0.1:{bridge.port}") as client:
            client.send(json.dumps({"type": "hello", "userAgent": "test"}))
            head = (np.float32([0.1, 1.7, 0.2]), quat.from_angle_axis(np.float32(0.3), UP).astype(np.float32))
            left = (np.float32([0.3, 1.0, 0.4]), np.float32([1, 0, 0, 0]))
            client.send(pose_message(head, left, None, 0.0))
            msg = pose_message(head, left, None, 1 / 60)
            client.send([msg[:10], msg[10:40], msg[40:]])          # fragmented
            assert client.ping(b"abc").wait(5)
            assert bridge.wait_for_messages(2, 5.0)
            h, lh, rh = bridge.latest()
            assert np.allclose(h[0], head[0], atol=1e-6) and np.allclose(h[1], head[1], atol=1e-6)
            assert np.allclose(lh[0], left[0]) and rh is None
            assert bridge.clients == 1 and not bridge.errors and bridge.user_agent == "test"


def test_dependencies_are_declared():
    """The bridge's and the BLAS limit's libraries are project dependencies, not optional extras."""
    import tomllib
    with open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in deps}
    assert {"websockets", "threadpoolctl"} <= names


def test_single_thread_limits_blas_and_restores():
    import threadpoolctl

    from controllers.vr.blas import single_thread

    def blas():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    before = blas()
    assert before
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        with single_thread():
            assert blas() == [1] * len(before)
        assert blas() == [2] * len(before)
    assert blas() == before


@needs_data
def test_trace_export_and_replay_end_to_end(small, tmp_path):
    from controllers.vr.controller import VRController
    from viewer.vr_input import TraceReplay, export_test_traces, read_trace
    from viewer.webxr_bridge import WebXRBridge, send_trace
    paths = export_test_traces(tmp_path, small, clips=1, seconds=1.5)
    tr = read_trace(paths[0])
    assert tr.header["split"] == "test" and tr.pos.shape == (90, 3, 3) and tr.gt_rot.shape[1] == 22
    _random_model(tmp_path / "m.npz", small, window=40)
    ctrl = VRController.load(str(tmp_path / "m.npz"), small.skeleton)
    replay = TraceReplay(paths[0])
    ctrl.reset()
    head = small.skeleton.index("Head")
    for i in range(90):
        ci = replay.control_at(i / 60)
        ctrl.ghost = replay.ghost_at(i / 60)
        pose = ctrl.step(ci, 1 / 60)
        _, g = quat.fk(pose.rotations, pose.positions, small.skeleton.parents)
        assert np.abs(g[head] - ci.head[0]).max() < 1e-4          # the body hangs from the tracked head
    assert pose.info.ghost is not None and len(pose.info.debug_lines) == 3
    # the live window's input: the HUD names the VR source, the controls carry the tracked devices
    from viewer.input import DeviceInput
    from viewer.vr_input import VRInput
    di = VRInput(replay).update([], set())
    assert di.device == "VR replay + keyboard" and di.to_control().head is not None
    assert DeviceInput.from_control(replay.control_at(0.5)).device == "VR script"
    # the same trace through the WebXR bridge, as a headset would stream it
    with WebXRBridge(port=0) as bridge:
        n = send_trace(paths[0], f"ws://127.0.0.1:{bridge.port}/ws", realtime=False)
        assert bridge.wait_for_messages(n, 10.0)
        h, lh, rh = bridge.latest()
        last = replay.devices_at(replay.duration)
        assert np.allclose(h[0], last[0][0], atol=1e-5) and np.allclose(rh[0], last[2][0], atol=1e-5)


def test_trace_format_errors(tmp_path):
    from viewer.vr_input import read_trace, write_trace
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "something-else", "version": 1}\n')
    with pytest.raises(ValueError, match="anim-vr-trace"):
        read_trace(bad)
    t = np.arange(3) / 60
    pos = np.zeros((3, 3, 3), np.float32)
    rot = np.tile(np.float32([1, 0, 0, 0]), (3, 3, 1))
    valid = np.array([[1, 1, 0]] * 3, bool)
    write_trace(tmp_path / "ok.jsonl", t, pos, rot, valid)
    tr = read_trace(tmp_path / "ok.jsonl")
    assert tr.valid.tolist() == valid.tolist() and tr.gt_rot is None


def test_openxr_absent_gives_a_clear_message():
    try:
        import xr  # noqa: F401
        pytest.skip("pyopenxr is installed")
    except ImportError:
        pass
    from viewer.vr_input import OpenXRSource
    with pytest.raises(RuntimeError, match="pyopenxr"):
        OpenXRSource()


@needs_data
def test_controller_handles_missing_devices(small, tmp_path):
    from controllers.vr.controller import VRController
    _random_model(tmp_path / "m.npz", small)
    ctrl = VRController.load(str(tmp_path / "m.npz"))
    pose0 = ctrl.reset()
    assert pose0.rotations.shape == (22, 4)
    assert ctrl.step(ControlInput(), 1 / 60) is not None                   # no head yet: standing pose
    head = (np.float32([0, 1.6, 0]), np.float32([1, 0, 0, 0]))
    p1 = ctrl.step(ControlInput(head=head), 1 / 60)                        # hands at rest under the head
    assert np.isfinite(p1.rotations).all() and np.isfinite(p1.positions).all()
    p2 = ctrl.step(ControlInput(head=None), 1 / 60)
    assert p2.info.status == "head lost"


SHIPPED = ve.DEFAULT_WEIGHTS["diffusion"]


@needs_data
@pytest.mark.skipif(not os.path.exists(SHIPPED), reason="shipped weights not trained yet")
def test_shipped_diffusion_weights_predict_a_test_clip(small):
    pred = infer.load_predictor(str(SHIPPED), small.skeleton)
    assert pred.meta["kind"] == "diffusion" and pred.meta["training"]["command"].startswith("python -m")
    res = ve.evaluate({"diffusion": pred}, small, max_clips=1, latency_frames=0, progress=False)
    assert res["methods"]["diffusion"]["mpjpe_cm"] < 15.0


# ------------------------------------------------------------------ feet in training
@needs_data
def test_foot_kinematics_places_the_toes_as_the_skeletons_fk(small, hf):
    """The differentiable toes of the training loss: the head device's
    position plus FootKinematics of the target features is where the
    skeleton's own forward kinematics puts the toes (canonical frame)."""
    import torch

    from anim import quat
    from controllers.vr.models import FootKinematics
    ends = small.frames("train")[::997][:6]
    x, y, th, origin = vd.windows(small, ends, hf, 12)
    rel = FootKinematics(small.skeleton)(torch.from_numpy(y)).numpy()
    head = x.reshape(x.shape[:2] + (len(vd.DEVICES), vd.SPARSE_PER_DEVICE))[..., 0, 12:15]
    world = np.einsum("bij,bwfj->bwfi", vd.yaw_matrix(th), head[:, :, None] + rel) + origin[:, None, None]
    idx = small.window_indices(ends, 12)[:, 1:]
    rot, pos = vd.ground_truth_pose(small, idx.reshape(-1), hf)
    g = quat.fk(rot, pos, small.skeleton.parents)[1].reshape(idx.shape + (-1, 3))
    feet = [small.skeleton.index(n) for n in vd.joint_groups(small.skeleton)["feet"]]
    assert np.abs(world - g[:, :, feet]).max() < 1e-4
    assert np.ptp(world[..., 1]) > 0.05          # the toes do move: the check is not on a still pose


def test_foot_slide_loss_charges_planted_steps_only():
    import torch

    from controllers.vr.models import foot_slide_loss
    w = 6
    true = torch.zeros(1, w, 2, 3)
    pred = torch.zeros(1, w, 2, 3)
    pred[0, :, 0, 0] = torch.arange(w) * 0.01          # the left toe slides 0.6 m/s along x
    pred[0, :, 1, 1] = torch.arange(w) * 0.05          # the right one rises: not a ground velocity
    contacts = torch.zeros(1, w, 2, dtype=torch.bool)
    contacts[0, :3, 0] = True                          # the left planted for frames 0-2: steps 0-1, 1-2
    contacts[0, :, 1] = True
    loss = foot_slide_loss(pred, true, contacts, 60.0)
    assert float(loss) == pytest.approx(0.36 * 2 / (2 + 5), rel=1e-5)   # 2 charged steps of 7 counted
    contacts[0, :, 0] = False
    assert float(foot_slide_loss(pred, true, contacts, 60.0)) == 0.0
    contacts[0, :, 0] = True                           # every step; the last counts 1 + 3 times
    assert float(foot_slide_loss(pred, true, contacts, 60.0, last_frame_weight=3.0)) == pytest.approx(
        0.36 * 8 / 16, rel=1e-5)


@needs_data
def test_fine_tune_starts_from_a_model_and_the_foot_loss_lowers_the_slide(small, tmp_path):
    import torch

    from controllers.vr import train
    from controllers.vr.models import DiffusionConfig
    _random_model(tmp_path / "init.npz", small, latent=32, blocks=2, global_cond=32)
    meta0, arrays0 = infer.load_artefact(str(tmp_path / "init.npz"))
    cfg = train.TrainConfig(iterations=60, batch=24, lr=3e-3, warmup=5, val_every=60, val_windows=64,
                            norm_windows=2000, log_every=10, checkpoint_s=1e9, foot_weight=1.0,
                            init=str(tmp_path / "init.npz"))
    mc = DiffusionConfig(window=12, latent=64)      # the run's own shape gives way to the model's
    train.train(cfg, str(tmp_path / "s"), mc, SMALL, progress=False, data=small, stop_at=0)
    ck = torch.load(tmp_path / "s" / "checkpoint.pt", weights_only=True)
    assert all(np.allclose(ck["net"][k].numpy(), arrays0[k]) for k in ck["net"])
    assert all(np.array_equal(np.asarray(a), arrays0[k]) for a, k in zip(ck["norm"], ("x_mean", "x_std", "y_mean",
                                                                                       "y_std")))
    train.train(cfg, str(tmp_path / "f"), mc, SMALL, progress=False, data=small)
    meta, arrays = infer.load_artefact(str(tmp_path / "f" / "model.npz"))
    assert meta["config"]["latent"] == 32 and np.array_equal(arrays["y_std"], arrays0["y_std"])
    assert meta["training"]["train_config"]["foot_weight"] == 1.0
    slide = [json.loads(line)["foot_slide_avg"] for line in open(tmp_path / "f" / "log.jsonl") if "foot_slide_avg" in line]
    assert slide[-1] < 0.5 * slide[0]
    mlp = tmp_path / "mlp.npz"
    _random_model(mlp, small, kind="mlp")
    with pytest.raises(ValueError, match="mlp model, not a diffusion"):
        train.train(replace(cfg, init=str(mlp)), str(tmp_path / "g"), mc, SMALL, progress=False, data=small)
    with pytest.raises(ValueError, match="diffusion model only"):
        train.train(replace(cfg, model="mlp", init=""), str(tmp_path / "h"), progress=False, data=small)
    with pytest.raises(SystemExit, match="drop --latent"):
        train.main(["--out", str(tmp_path / "i"), "--init", str(tmp_path / "init.npz"), "--latent", "64"])
    with pytest.raises(SystemExit, match="diffusion model only"):
        train.main(["--model", "mlp", "--out", str(tmp_path / "i"), "--foot-weight", "1"])
