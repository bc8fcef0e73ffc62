"""Leave-one-style-out split and evaluation of the sparse-VR predictors
(controllers/vr/styles.py), on the real corpus: the split over every file
name of ../shared/mocap, and walks of bandai-namco-1 'old', bandai-namco-2
'elderly' (the same style, named per dataset) and 'masculine' (takes 001,
002, 012: the style's clips in train and test, masculine in both).
"""

import json

import numpy as np
import pytest

import mocap_data
from controllers.vr import data as vd
from controllers.vr import evaluate as ve
from controllers.vr import infer, styles

HAVE_DATA = any(True for _ in mocap_data.datasets())
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")
SEL = vd.VRDataConfig(tags=(("content", "walk"), ("style", ("elderly", "old", "masculine")),
                            ("take", ("001", "002", "012"))), cache_dir="")


def _style_of(clip_id: str) -> str:
    """The style field of a file name ('.../dataset-2_walk_elderly_012' -> 'elderly'), read here apart from the tags."""
    return clip_id.split("/")[1].split("_")[2]


@pytest.fixture(scope="module")
def sel():
    if not HAVE_DATA:
        pytest.skip("no corpus")
    return vd.build(SEL, progress=False)


@needs_data
def test_the_split_holds_out_every_clip_of_the_style_and_nothing_else():
    split = vd.read_split(vd.SPLIT_PATH)
    id_tags = {f"{t['dataset']}/{p.stem}": t for _, p, t in mocap_data.select_files(mocap_data.datasets())}
    out = styles.split_ids(split, id_tags, "elderly")
    every = {i for v in split.values() for i in v}
    style = {i for i in every if _style_of(i) in ("elderly", "old")}
    assert set(out["heldout"]) == style and len(style) == 117          # 106 'elderly' + 11 'old'
    for k in ("train", "val", "test"):
        assert set(out[k]) == set(split[k]) - style                     # nothing else moves
        assert not set(out[k]) & style
    assert sum(len(v) for v in out.values()) == len(every)
    assert {i for i in split["test"] if i in style}                    # the style has test clips to compare on


@needs_data
def test_no_frame_of_the_held_out_style_reaches_training(sel, tmp_path):
    from controllers.vr import train
    from controllers.vr.baselines import MotionMatchingBaseline
    from controllers.vr.models import MLPConfig
    with pytest.raises(ValueError, match="'elderlly': no clip of the data has that style"):
        styles.leave_out(sel, "elderlly")
    held = styles.leave_out(sel, "elderly")
    in_style = [c for c, i in enumerate(sel.clip_ids) if _style_of(i) in ("elderly", "old")]
    assert in_style and sum(sel.clip_mirrored[c] for c in in_style) > 0     # originals and mirrors
    for c in range(len(sel.clip_ids)):
        if c in in_style:
            assert held.clip_split[c] == ("heldout-mirror" if sel.clip_mirrored[c] else "heldout")
        else:
            assert held.clip_split[c] == sel.clip_split[c]
    style_frames = np.concatenate([np.arange(sel.starts[c], sel.stops[c]) for c in in_style])
    assert len(np.intersect1d(held.frames("train"), style_frames)) == 0
    assert len(np.intersect1d(sel.frames("train"), style_frames)) > 0      # the usual split trains on them
    # no training frame carries a held-out clip's head trajectory (data, not labels)
    train_heads = {tuple(np.round(p, 5)) for p in held.dev_p[held.frames("train"), 0]}
    assert not any(tuple(np.round(p, 5)) in train_heads for p in sel.dev_p[style_frames[::5], 0])
    assert len(np.intersect1d(MotionMatchingBaseline(held).frames, style_frames)) == 0
    # training on it: the record names the style and counts only the other frames
    rec = train.train(train.TrainConfig(model="mlp", iterations=2, batch=8, val_every=100, norm_windows=500),
                      str(tmp_path / "m"), MLPConfig(hidden=16, layers=1, window=8), data=held, progress=False)
    assert rec["left_out_style"] == "elderly"
    assert rec["train_frames"] == len(held.frames("train")) == len(sel.frames("train")) - len(
        np.intersect1d(sel.frames("train"), style_frames))
    meta, _ = infer.load_artefact(str(tmp_path / "m" / "model.npz"))
    assert meta["training"]["left_out_style"] == "elderly"


def _tiny(path, data, kind, left_out=None):
    import torch

    from controllers.vr import train
    from controllers.vr.models import DiffMLP, DiffusionConfig, MLPConfig, MLPRegressor
    torch.manual_seed(0 if left_out else 1)
    if kind == "diffusion":
        mc = DiffusionConfig(latent=32, blocks=2, window=12, global_cond=48)
        net = DiffMLP(mc)
    else:
        mc = MLPConfig(hidden=32, layers=2, window=12)
        net = MLPRegressor(mc)
    hf = vd.head_forward_axis(data.calibration)
    norm = train.norm_stats(data, data.frames("train")[::7], hf, mc.window)
    train.export(str(path), kind, mc, net.state_dict(), norm, data, 0, {"left_out_style": left_out})
    return str(path)


@needs_data
def test_per_style_figures_of_tiny_models(sel, tmp_path):
    held = styles.leave_out(sel, "elderly")
    files = {"diffusion_in": _tiny(tmp_path / "d_in.npz", sel, "diffusion"),
             "diffusion_out": _tiny(tmp_path / "d_out.npz", held, "diffusion", "elderly"),
             "mlp_in": _tiny(tmp_path / "m_in.npz", sel, "mlp"),
             "mlp_out": _tiny(tmp_path / "m_out.npz", held, "mlp", "elderly")}
    res = styles.run("elderly", data=sel, max_clips=2, **files)
    assert set(res["rows"]) == {f"{s}/{m}" for s in ("in", "out") for m in ("diffusion", "mlp", "mm")}
    for key, per in res["rows"].items():
        assert set(per) == ({"heldout", "in-style", "style-test"} if key.startswith("out/") else
                            {"in-style", "style-test"})
    # the sets: the style's clips / the test split without them / the style's test clips
    sets = {k: v["ids"] for k, v in res["sets"].items()}
    assert sets["in-style"] == ["bandai-namco-2/dataset-2_walk_masculine_001"]
    assert len(sets["heldout"]) == 2 and all(_style_of(i) in ("elderly", "old") for i in sets["heldout"])
    assert sets["style-test"] == ["bandai-namco-2/dataset-2_walk_elderly_012"]
    every = styles.evaluate({}, {}, sel, "elderly", progress=False, mm=False, every=2)["sets"]
    full = styles.evaluate({}, {}, sel, "elderly", progress=False, mm=False)["sets"]
    assert all(every[k]["ids"] == full[k]["ids"][::2] for k in full) and len(full["heldout"]["ids"]) == 5
    # the held-out rows are evaluate()'s figures on the style's clips, the ratio theirs over the in-style ones
    clips = held.clips("heldout", mirrored=False)[:2]
    direct = ve.evaluate({"mlp": infer.load_predictor(files["mlp_out"], sel.skeleton)},
                         styles._relabel(sel, clips), latency_frames=0, progress=False, split="eval")
    out_mlp = res["rows"]["out/mlp"]
    assert out_mlp["heldout"]["mpjpe_cm"] == pytest.approx(direct["methods"]["mlp"]["mpjpe_cm"])
    r = res["ratios"]["out/mlp"]
    assert r["mpjpe_ratio"] == pytest.approx(out_mlp["heldout"]["mpjpe_cm"] / out_mlp["in-style"]["mpjpe_cm"])
    assert r["mpjpe_ratio_vs_control"] == pytest.approx(
        out_mlp["heldout"]["mpjpe_cm"] / res["rows"]["in/mlp"]["in-style"]["mpjpe_cm"])
    assert res["rows"]["in/mlp"]["in-style"]["mpjpe_cm"] != out_mlp["in-style"]["mpjpe_cm"]   # two models
    assert res["gt"]["heldout"]["jitter_km_s3"] > 0
    assert set(res["targets"]) == {"mpjpe_within_1.5x_in_style", "jitter_within_2x_gt", "beats_mlp_mpjpe",
                                   "beats_mm_mpjpe"}
    assert "without elderly" in res["table"] and "| usual split |" in res["table"]
    json.dumps(styles.summary(res))
    # figures measured in separate runs join into the same table
    part = lambda keep: {**res, "rows": {k: v for k, v in res["rows"].items() if keep(k)}}  # noqa: E731
    joined = styles.merge(part(lambda k: k.endswith("/mm")), part(lambda k: not k.endswith("/mm")))
    assert joined["ratios"] == res["ratios"] and joined["targets"] == res["targets"]
    assert styles.merge(part(lambda k: k.endswith("/mm")))["targets"] == {}
    # a control given as the held-out model (or the other way round) is refused, naming the file
    with pytest.raises(ValueError, match="d_in.npz: not trained without style 'elderly'"):
        styles.run("elderly", data=sel, diffusion_out=files["diffusion_in"], mm=False)
    with pytest.raises(ValueError, match="m_out.npz: trained without style 'elderly'"):
        styles.run("elderly", data=sel, mlp_in=files["mlp_out"], mm=False)
    # the same check through the CLI (before any data is loaded)
    from anim_app.cli import build_parser
    args = build_parser().parse_args(["eval", "vr", "--leave-out-style", "elderly", "--diffusion-out",
                                      files["diffusion_in"], "--methods", "diffusion"])
    with pytest.raises(SystemExit, match="d_in.npz: not trained without style"):
        args.func(args)


@needs_data
def test_a_pack_trains_without_the_style(sel, tmp_path):
    """The GPU route (`train --data PACK --leave-out-style`): the pack keeps the
    style tags, so the style is left out there too."""
    from controllers.vr import train
    pack = vd.pack(sel, tmp_path / "p.npz", splits=("train", "test"), progress=False)["path"]
    train.main(["--model", "mlp", "--data", pack, "--leave-out-style", "elderly", "--out", str(tmp_path / "m"),
                "--iterations", "2", "--batch", "8", "--window", "8", "--quiet"])
    rec = infer.load_artefact(str(tmp_path / "m" / "model.npz"))[0]["training"]
    held = styles.leave_out(sel, "elderly")
    assert rec["left_out_style"] == "elderly" and rec["train_frames"] == len(held.frames("train"))


@needs_data
def test_height_augmentation_scales_positions_only(sel):
    """--height-aug: a window's device positions and velocities scaled by one
    factor within the range, rotations and targets untouched; off, the batch
    is the one without the option."""
    from controllers.vr import train
    hf = vd.head_forward_axis(sel.calibration)
    norm = train.norm_stats(sel, sel.frames("train")[::50], hf, 8)
    base = dict(data=sel, train_ends=sel.frames("train"), hf=hf, window=8, norm=norm, seed=3, batch=16,
                diffusion=None)
    train._WORKER.update(base, height_aug=0.0)
    x0, y0 = train._make_batch(5)[:2]
    train._WORKER.update(height_aug=0.1)
    x1, y1 = train._make_batch(5)[:2]
    train._WORKER.clear()
    np.testing.assert_array_equal(y0, y1)
    raw = lambda x: (x * norm[1] + norm[0]).reshape(16, 8, 3, 18)  # noqa: E731
    r0, r1 = raw(x0), raw(x1)
    np.testing.assert_allclose(r1[..., :12], r0[..., :12], atol=1e-5)
    ratio = r1[..., 12:15] / np.where(np.abs(r0[..., 12:15]) > 1e-2, r0[..., 12:15], np.nan)
    per_window = np.nanmedian(ratio.reshape(16, -1), axis=1)
    assert np.all((per_window > 0.9 - 1e-4) & (per_window < 1.1 + 1e-4)) and per_window.std() > 0.01
    np.testing.assert_allclose(np.nanmax(np.abs(ratio.reshape(16, -1) - per_window[:, None]), axis=1), 0, atol=1e-3)


@needs_data
def test_speed_warps_the_window_in_time(sel):
    """vd.windows(speed=): speed 1 is the data's own window; speed 2 the
    window of every other frame (velocities doubled with it); speed 0.5 puts
    the devices half-way between frames; the end frame never moves."""
    hf = vd.head_forward_axis(sel.calibration)
    ends = sel.frames("train")[::997][:6] + 30
    ends = ends[(ends < len(sel.contacts))]
    ends = ends[sel._clip_start[ends] <= ends - 2 * 8]           # whole windows at speed 2
    x1, y1, th1, o1 = vd.windows(sel, ends, hf, 8)
    xs, ys, ths, os_ = vd.windows(sel, ends, hf, 8, speed=np.ones(len(ends)))
    np.testing.assert_allclose(xs, x1, atol=1e-5)
    np.testing.assert_allclose(ys, y1, atol=1e-5)
    idx = ends[:, None] + 2 * np.arange(-8, 1)[None]
    x2, th2, _ = vd.sparse_features(sel.dev_q[idx], sel.dev_p[idx], hf)
    xw, yw, thw, _ = vd.windows(sel, ends, hf, 8, speed=np.full(len(ends), 2.0))
    np.testing.assert_allclose(xw, x2, atol=1e-5)
    np.testing.assert_allclose(thw, th1, atol=1e-6)                 # the end frame is the same
    y2 = vd.target_features(sel.hips_q[idx[:, 1:]], sel.local_q[idx[:, 1:]], th2)
    np.testing.assert_allclose(yw, y2, atol=1e-5)
    xh, _, _, oh = vd.windows(sel, ends, hf, 8, speed=np.full(len(ends), 0.5))
    t = ends[:, None] + 0.5 * np.arange(-8, 1)[None]
    lo = np.floor(t).astype(int)
    share = (t - lo)[..., None, None]                                # 0.5 between frames, 0 on one
    mid = sel.dev_p[lo] + share * (sel.dev_p[np.minimum(lo + 1, ends[:, None])] - sel.dev_p[lo])
    want = vd.sparse_features(sel.dev_q[lo], mid, hf)[0].reshape(len(ends), 8, 3, 18)[..., 12:15]
    got = xh.reshape(len(ends), 8, 3, 18)[..., 12:15]
    np.testing.assert_allclose(got, want, atol=1e-5)               # positions: half-way between frames
    v1 = x1.reshape(len(ends), 8, 3, 18)[..., 15:18]
    vw = xw.reshape(len(ends), 8, 3, 18)[..., 15:18]
    assert np.abs(vw).mean() > 1.5 * np.abs(v1).mean()              # twice as fast: faster devices


@needs_data
def test_speed_and_noise_augmentation_in_the_batch(sel):
    """--speed-aug changes the windows (targets too) and, off, leaves the batch
    as it was; --noise-aug adds noise of the asked spread to the input only."""
    from controllers.vr import train
    hf = vd.head_forward_axis(sel.calibration)
    norm = train.norm_stats(sel, sel.frames("train")[::50], hf, 8)
    base = dict(data=sel, train_ends=sel.frames("train"), hf=hf, window=8, norm=norm, seed=3, batch=64,
                diffusion=None, height_aug=0.0)
    train._WORKER.update(base, speed_aug=0.0, noise_aug=0.0)
    x0, y0 = train._make_batch(5)[:2]
    np.testing.assert_array_equal(x0, train._normalized_windows(sel, np.random.default_rng([3, 5]).choice(
        sel.frames("train"), 64), hf, 8, norm)[0])
    train._WORKER.update(speed_aug=0.3)
    x1, y1 = train._make_batch(5)[:2]
    train._WORKER.update(speed_aug=0.0, noise_aug=0.2)
    x2, y2 = train._make_batch(5)[:2]
    train._WORKER.clear()
    assert np.abs(y1 - y0).max() > 0.1 and np.abs(x1 - x0).max() > 0.1
    np.testing.assert_array_equal(y2, y0)
    assert abs(float((x2 - x0).std()) - 0.2) < 0.01 and abs(float((x2 - x0).mean())) < 0.01


def test_augmentation_flags_are_checked(tmp_path):
    from controllers.vr import train
    for flag, value in (("--speed-aug", "1.2"), ("--speed-aug", "-0.1"), ("--noise-aug", "-1")):
        with pytest.raises(SystemExit, match=flag):
            train.main(["--model", "mlp", "--out", str(tmp_path / "m"), flag, value, "--quiet"])
