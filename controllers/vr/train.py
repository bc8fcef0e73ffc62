"""Train a sparse-VR predictor.

    python -m controllers.vr.train --model diffusion --out out/vr/diffusion
    python -m controllers.vr.train --model mlp --out out/vr/mlp
    (--iterations N, --minutes M (a wall-clock cap), --seed S, --device cpu|cuda,
     --threads T, --fresh to ignore a checkpoint, --export PATH to copy the model)

Writes OUT/checkpoint.pt (every `checkpoint_s` seconds and at the end; written
to a temporary file and renamed), OUT/log.jsonl (one line per logged
iteration and per validation) and OUT/model.npz (the numpy artefact of the EMA
weights, what the controller and the evaluation load). Running the same
command again resumes from the checkpoint. Every random draw of iteration i
comes from generators seeded with (seed, i), so a resumed run continues
exactly as an uninterrupted one would (on the same device and thread count).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from anim.fileio import atomic_write, shown_path, truncate_jsonl

from . import data as vd
from . import infer


@dataclass(frozen=True)
class TrainConfig:
    """model: 'diffusion' or 'mlp'; iterations: optimizer steps (the learning
    rate schedule spans them); minutes: stop early after this wall time (0 = no
    cap); batch: windows per step; lr, weight_decay, warmup: AdamW with linear
    warm-up then cosine decay to 5%; ema: decay of the exported weights;
    seed; threads: torch CPU threads; val_every: iterations between validations;
    val_windows: fixed validation windows; norm_windows: windows sampled for the
    normalization statistics; checkpoint_s: seconds between checkpoints;
    log_every: iterations between log lines; online_steps: DDIM steps the
    exported diffusion model runs online (written into its artefact; 2,
    chosen on the val split: against 3, jitter 1.16 -> 1.12 km/s^3
    for MPJPE 2.52 -> 2.53 cm; 1 step is far worse, 5.2 cm); online_noise:
    the scale of the fixed starting noise online (0: DDIM from zeros, chosen
    on the val split: MPJPE 2.55 -> 2.48 cm, lower body 4.21 -> 4.09,
    against 1); online_inpaint_weight: how hard the shown past holds after
    the first step (1; less trades jitter for error: 0.5 gave MPJPE 2.41,
    lower body 3.98, jitter 1.20 against 2.48 / 4.09 / 1.11); paced: with
    `minutes`, the learning-rate schedule runs on the larger of iteration and
    wall-clock progress, so a run cut by the clock still ends its decay (for
    a fixed time budget on an unknown machine; the weights then depend on
    its speed); height_aug: each training window's sparse positions and
    velocities scaled by a factor drawn uniformly in [1 - h, 1 + h] (a user
    taller or shorter with the same joint rotations, the target unchanged;
    0: off); foot_weight: weight of models.foot_slide_loss, the predicted
    toes' ground velocity against the data's where the data plants them
    (diffusion only; 0: off): the x0 loss alone leaves a predicted foot
    still moving when the data's has landed, which no locking after the
    fact can undo; speed_aug: each training window's motion played faster
    or slower, by a factor drawn uniformly in [1 - s, 1 + s] (a time warp of
    the sparse signal and the target alike, vd.windows; 0: off): a user who
    moves slower or faster than the actors; noise_aug: Gaussian noise of
    this standard deviation, in units of each input feature's spread
    (the normalized sparse window), added to the input only (tracking
    noise; 0: off); init: a model artefact (model.npz or a shipped file) whose
    weights and normalization the run starts from (fine-tuning), '' for a
    fresh network."""

    model: str = "diffusion"
    iterations: int = 8000
    minutes: float = 0.0
    batch: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    ema: float = 0.998
    seed: int = 0
    threads: int = 1
    val_every: int = 300
    val_windows: int = 1024
    norm_windows: int = 20000
    checkpoint_s: float = 120.0
    log_every: int = 50
    online_steps: int = 2
    online_noise: float = 0.0
    online_inpaint_weight: float = 1.0
    paced: bool = False
    height_aug: float = 0.0
    speed_aug: float = 0.0
    noise_aug: float = 0.0
    foot_weight: float = 0.0
    init: str = ""


DEFAULT_ITERATIONS = {"diffusion": 8000, "mlp": 4000}


def _lr(cfg: TrainConfig, it: int) -> float:
    if it < cfg.warmup:
        return cfg.lr * (it + 1) / cfg.warmup
    p = min(1.0, (it - cfg.warmup) / max(1, cfg.iterations - cfg.warmup))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * p)))


def norm_stats(data, ends, hf, window):
    x, y, _, _ = vd.windows(data, ends, hf, window)
    xm, xs = x.reshape(-1, x.shape[-1]).mean(0), x.reshape(-1, x.shape[-1]).std(0)
    ym, ys = y.reshape(-1, y.shape[-1]).mean(0), y.reshape(-1, y.shape[-1]).std(0)
    return (xm.astype(np.float32), np.maximum(xs, 1e-3).astype(np.float32),
            ym.astype(np.float32), np.maximum(ys, 1e-3).astype(np.float32))


_WORKER: dict = {}


def _normalized_windows(data, ends, hf, window, norm):
    """The windows ending at `ends`, normalized: sparse x and targets y, float32."""
    x, y, _, _ = vd.windows(data, ends, hf, window)
    return ((x - norm[0]) / norm[1]).astype(np.float32), ((y - norm[2]) / norm[3]).astype(np.float32)


def _make_batch(it: int):
    """Iteration `it`'s training batch as float32 numpy arrays: normalized
    sparse windows x, targets y and, for the diffusion, the steps t and noise.
    Every draw comes from generators seeded with (seed, it), so the batch is
    the same in a worker process as in the training process."""
    import torch
    w = _WORKER
    rng = np.random.default_rng([w["seed"], it])
    ends = rng.choice(w["train_ends"], w["batch"])
    speed = rng.uniform(1 - w["speed_aug"], 1 + w["speed_aug"], w["batch"]) if w.get("speed_aug") else None
    x, y, _, _ = vd.windows(w["data"], ends, w["hf"], w["window"], speed=speed)
    if w.get("height_aug"):
        scale = rng.uniform(1 - w["height_aug"], 1 + w["height_aug"], (w["batch"], 1, 1)).astype(np.float32)
        x = x.reshape(x.shape[:2] + (len(vd.DEVICES), vd.SPARSE_PER_DEVICE)).copy()
        x[..., 12:18] *= scale[..., None]          # positions and linear velocities of every device
        x = x.reshape(x.shape[:2] + (-1,))
    norm = w["norm"]
    x = ((x - norm[0]) / norm[1]).astype(np.float32)
    y = ((y - norm[2]) / norm[3]).astype(np.float32)
    if w.get("noise_aug"):
        x = (x + w["noise_aug"] * rng.standard_normal(x.shape)).astype(np.float32)
    t = noise = contacts = None
    if w["diffusion"] is not None:
        g = torch.Generator().manual_seed(w["seed"] * 1_000_003 + it)
        t = w["diffusion"].sample_t(w["batch"], g)
        noise = torch.randn(y.shape, generator=g)
    if w.get("foot_weight"):
        if speed is None:
            idx = w["data"].window_indices(ends, w["window"])
        else:       # the nearer frame's contacts
            i0, i1, a = w["data"].window_samples(ends, w["window"], speed)
            idx = np.where(a < 0.5, i0, i1)
        contacts = w["data"].contacts[idx[:, 1:]]
    return x, y, t, noise, contacts


def _batch_stream(start: int, stop: int, workers: int):
    """Batches of iterations start..stop-1, made here (workers <= 1) or by
    `workers` forked processes, at most 2 x workers ahead."""
    if workers > 1 and "jax" in sys.modules:
        # forking a process that runs JAX's threads can deadlock the child
        print("warning: JAX is loaded in this process: batches are made here, not by forked workers",
              file=sys.stderr)
        workers = 0
    if workers <= 1:
        for it in range(start, stop):
            yield _make_batch(it)
        return
    import collections
    import multiprocessing as mp
    with mp.get_context("fork").Pool(workers) as pool:
        ahead = collections.deque()
        nxt = start
        while nxt < stop or ahead:
            while nxt < stop and len(ahead) < 2 * workers:
                ahead.append(pool.apply_async(_make_batch, (nxt,)))
                nxt += 1
            yield ahead.popleft().get()


def _reason(e: Exception) -> str:
    """The line of a torch.load error that says why (it spans many lines)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return next((ln for ln in lines if "unsupported" in ln.lower()), lines[0] if lines else "")[:300]


def _plain(obj):
    """numpy scalars as Python numbers and arrays as tensors, inside dicts,
    lists and tuples: what torch.load(weights_only=True) reads back."""
    import torch
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    return obj


def _atomic_torch_save(obj, path):
    import torch
    with atomic_write(path) as f:
        torch.save(_plain(obj), f)


def rest_pose(data) -> dict:
    """A standing pose at the origin facing +Z (the first frame of the first
    training clip), what the controller shows before any tracking arrives."""
    c = (data.clips("train", mirrored=False) or data.clips("train"))[0]
    f = np.array([data.starts[c]])
    rot, pos = vd.ground_truth_pose(data, f, vd.head_forward_axis(data.calibration))
    rot[0, 0] = [1, 0, 0, 0]
    pos[0, 0] = 0
    return {"rotations": rot[0].tolist(), "positions": pos[0].tolist()}


def export(path: str, kind: str, model_cfg, state: dict, norm, data, seed: int, record: dict,
           online_steps: int | None = None, online_noise: float | None = None,
           online_inpaint_weight: float | None = None) -> None:
    """Write the numpy artefact of a trained network (online_*: a diffusion
    model's sampling settings, see _set_online)."""
    from .models import fixed_noise
    arrays = {k: v.detach().cpu().numpy() for k, v in state.items()}
    arrays.update(x_mean=norm[0], x_std=norm[1], y_mean=norm[2], y_std=norm[3])
    if kind == "diffusion":
        arrays["noise"] = fixed_noise(model_cfg)
    meta = {"kind": kind, "config": asdict(model_cfg), "window": model_cfg.window,
            "skeleton": infer.skeleton_meta(data.skeleton), "calibration": data.calibration,
            "head_forward": vd.head_forward_axis(data.calibration).tolist(),
            "devices": list(vd.joint_groups(data.skeleton)["devices"]), "fps": vd.FPS, "seed": seed, "training": record,
            "rest_pose": rest_pose(data)}
    _set_online(meta, online_steps, online_noise, online_inpaint_weight)
    infer.save_artefact(path, meta, arrays)


def _set_online(meta: dict, steps: int | None, noise: float | None, inpaint_weight: float | None) -> None:
    """Write a diffusion artefact's online sampling settings into its meta
    (None leaves a setting as it is; infer.DiffusionPredictor reads them)."""
    if meta.get("kind") != "diffusion":
        return
    if steps:
        meta["online_steps"] = int(steps)
    if noise is not None:
        meta["online_noise"] = float(noise)
    if inpaint_weight is not None:
        meta["online_inpaint_weight"] = float(inpaint_weight)


def _init_weights(cfg: TrainConfig, model_cfg, data):
    """(model config, state dict arrays, normalization, training record) of the artefact
    `cfg.init` a run starts from: its kind must be the run's and its
    skeleton the data's; its network shape and normalization replace the
    run's (a fine-tune keeps the model it starts from)."""
    from .models import DiffusionConfig, MLPConfig
    meta, arrays = infer.load_artefact(cfg.init, data.skeleton)
    if meta.get("kind") != cfg.model:
        raise ValueError(f"{cfg.init}: a {meta.get('kind')} model, not a {cfg.model} (--model)")
    mc = (DiffusionConfig if cfg.model == "diffusion" else MLPConfig)(**meta["config"])
    if mc.window != model_cfg.window:
        raise ValueError(f"{cfg.init}: window {mc.window}, the run asks {model_cfg.window}")
    norm = tuple(arrays.pop(k) for k in ("x_mean", "x_std", "y_mean", "y_std"))
    arrays.pop("noise", None)
    return mc, arrays, norm, meta.get("training")


def train(cfg: TrainConfig, out: str, model_cfg=None, data_cfg: vd.VRDataConfig | None = None,
          device: str = "cpu", fresh: bool = False, progress: bool = True, data=None, command: str = "",
          stop_at: int | None = None, workers: int = 0) -> dict:
    """Train (or resume) and export OUT/model.npz. Returns a summary dict.
    stop_at: stop at this iteration as an interruption would (checkpoint, no
    export); running again resumes. workers: processes that make the batches
    (0 or 1: this one); the batches, so the weights, do not depend on it."""
    import torch
    from tqdm import tqdm

    from .models import Diffusion, DiffusionConfig, DiffMLP, MLPConfig, MLPRegressor, foot_slide_loss

    torch.set_num_threads(cfg.threads)
    if model_cfg is None:
        model_cfg = DiffusionConfig() if cfg.model == "diffusion" else MLPConfig()
    window = model_cfg.window
    data_cfg = replace(data_cfg or vd.VRDataConfig(), window=window)
    os.makedirs(out, exist_ok=True)
    t_start = time.perf_counter()
    if data is None:
        data = vd.build(data_cfg, progress=progress)
    data.config = replace(data.config, window=window)
    model_cfg = replace(model_cfg, target_dim=6 * (1 + len(data.joint_names_below_hips())))   # any skeleton
    hf = vd.head_forward_axis(data.calibration)
    train_ends = data.frames("train")
    val_ends = data.frames("val")
    if len(train_ends) == 0:
        raise ValueError("no training frames")
    rng0 = np.random.default_rng([cfg.seed, 10**9])
    init = _init_weights(cfg, model_cfg, data) if cfg.init else None
    if init is not None:
        model_cfg, norm = replace(init[0], target_dim=model_cfg.target_dim), init[2]
        rng0.choice(train_ends, min(cfg.norm_windows, len(train_ends)), replace=False)   # same val windows
    else:
        norm = norm_stats(data, rng0.choice(train_ends, min(cfg.norm_windows, len(train_ends)), replace=False),
                          hf, window)
    if len(val_ends):
        val_ends = np.sort(rng0.choice(val_ends, min(cfg.val_windows, len(val_ends)), replace=False))

    def batch_arrays(ends):
        x, y = _normalized_windows(data, ends, hf, window, norm)
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    torch.manual_seed(cfg.seed)
    diffusion = feet = None
    if cfg.foot_weight and cfg.model != "diffusion":
        raise ValueError("foot_weight: the foot loss trains the diffusion model only")
    if cfg.model == "diffusion":
        net = DiffMLP(model_cfg).to(device)
        if cfg.foot_weight:
            from .models import FootKinematics
            feet = FootKinematics(data.skeleton).to(device)
            y_mean, y_std = (torch.from_numpy(a).to(device) for a in norm[2:])
            head = slice(12, 15)       # the head device's position in the window's canonical frame
            x_mean, x_std = (torch.from_numpy(a[head].copy()).to(device) for a in norm[:2])
        diffusion = Diffusion(model_cfg)
        feature_weight = None
        if model_cfg.lower_body_weight != 1.0:
            target_joints = (data.skeleton.names[1],) + tuple(data.joint_names_below_hips())
            lower = vd.joint_groups(data.skeleton)["lower_body"]
            w = np.repeat([model_cfg.lower_body_weight if n in lower else 1.0 for n in target_joints], 6)
            feature_weight = torch.tensor(w / w.mean(), dtype=torch.float32).to(device)
        diffusion.alpha_bar = diffusion.alpha_bar.to(device)
    elif cfg.model == "mlp":
        net = MLPRegressor(model_cfg).to(device)
    else:
        raise ValueError(f"unknown model {cfg.model!r} (diffusion, mlp)")
    if init is not None:
        net.load_state_dict({k: torch.from_numpy(v) for k, v in init[1].items()})
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    it, elapsed, history = 0, 0.0, []
    ckpt_path = os.path.join(out, "checkpoint.pt")
    ident = {"train": asdict(replace(cfg, minutes=0.0, iterations=0, threads=0, online_steps=0, online_noise=0.0,
                                     online_inpaint_weight=1.0)),
             "model": asdict(model_cfg),
             "data": asdict(data_cfg)}
    if getattr(data, "left_out_style", None):
        ident["left_out_style"] = data.left_out_style
    if not cfg.paced:
        del ident["train"]["paced"]       # checkpoints from before the option resume
    for k in ("height_aug", "speed_aug", "noise_aug", "foot_weight", "init"):     # checkpoints from before these options resume
        if not getattr(cfg, k):
            del ident["train"][k]
    if os.path.exists(ckpt_path) and not fresh:
        try:      # weights only: a planted checkpoint cannot run code
            ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint
            raise SystemExit(f"{ckpt_path}: unreadable checkpoint ({type(e).__name__}: {_reason(e)}); "
                             f"delete it or pass --fresh") from None
        if ck["ident"] != ident:
            raise SystemExit(f"{ckpt_path} was made with other settings; pass --fresh to start over "
                             f"(or another --out)")
        net.load_state_dict(ck["net"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        it, elapsed, history = ck["it"], ck["elapsed"], ck["history"]
        truncate_jsonl(os.path.join(out, "log.jsonl"), lambda r: r.get("it", 0) <= it)
        if progress:
            print(f"resuming {ckpt_path} at iteration {it} ({elapsed / 60:.1f} min trained)", file=sys.stderr)
    n_params = sum(p.numel() for p in net.parameters())
    log_path = os.path.join(out, "log.jsonl")
    log = open(log_path, "a")

    def checkpoint():
        _atomic_torch_save({"ident": ident, "net": net.state_dict(), "ema": ema.state_dict(),
                            "opt": opt.state_dict(), "it": it, "elapsed": elapsed, "history": history,
                            "norm": norm}, ckpt_path)

    def validate():
        if len(val_ends) == 0:
            return float("nan")
        ema.eval()
        losses = []
        with torch.no_grad():
            for a in range(0, len(val_ends), 512):
                x, y = batch_arrays(val_ends[a:a + 512])
                pred = diffusion.sample(ema, x)[:, -1] if cfg.model == "diffusion" else ema(x)
                losses.append(((pred - y[:, -1]) ** 2).mean(-1))
        return float(torch.cat(losses).mean())

    prep_s = time.perf_counter() - t_start
    last_ckpt = time.perf_counter()
    stopped = "iterations"
    seg_start = time.perf_counter()
    seg_base = elapsed
    bar = tqdm(total=cfg.iterations, initial=it, desc=f"train {cfg.model}", unit="it", disable=not progress,
               dynamic_ncols=True)
    run_loss = run_slide = None
    _WORKER.update(data=data, train_ends=train_ends, hf=hf, window=window, norm=norm, seed=cfg.seed,
                   batch=cfg.batch, diffusion=diffusion, height_aug=cfg.height_aug, speed_aug=cfg.speed_aug,
                   noise_aug=cfg.noise_aug, foot_weight=cfg.foot_weight)
    batches = _batch_stream(it, cfg.iterations, workers)
    try:
        while it < cfg.iterations:
            if stop_at is not None and it >= stop_at:
                batches.close()
                checkpoint()
                bar.close()
                log.close()
                return {"iterations": it, "stopped_by": "stop_at"}
            if cfg.minutes and seg_base + time.perf_counter() - seg_start >= cfg.minutes * 60:
                stopped = "minutes"
                break
            xb, yb, t, noise, cb = next(batches)
            x, y = torch.from_numpy(xb).to(device), torch.from_numpy(yb).to(device)
            sched_it = it
            if cfg.paced and cfg.minutes:
                sched_it = max(it, int(elapsed / (cfg.minutes * 60) * cfg.iterations))
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, sched_it)
            net.train()
            if cfg.model == "diffusion":
                t, noise = t.to(device), noise.to(device)
                pred = net(diffusion.q_sample(y, t, noise), t, x)
                loss = diffusion.loss(pred, y, feature_weight)
                if feet is not None:
                    hp = x[..., head] * x_std + x_mean
                    toes_p = hp[:, :, None] + feet(pred * y_std + y_mean)
                    with torch.no_grad():
                        toes_t = hp[:, :, None] + feet(y * y_std + y_mean)
                    slide = foot_slide_loss(toes_p, toes_t, torch.from_numpy(cb).to(device), vd.FPS,
                                            model_cfg.last_frame_weight)
                    loss = loss + cfg.foot_weight * slide
            else:
                loss = ((net(x) - y[:, -1]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                d = min(cfg.ema, (1 + it) / (10 + it))
                pe = list(ema.parameters())
                torch._foreach_mul_(pe, d)
                torch._foreach_add_(pe, [q.detach() for q in net.parameters()], alpha=1 - d)
            it += 1
            elapsed = seg_base + time.perf_counter() - seg_start
            lv = float(loss.detach())
            run_loss = lv if run_loss is None else 0.98 * run_loss + 0.02 * lv
            if feet is not None:
                sv = float(slide.detach())
                run_slide = sv if run_slide is None else 0.98 * run_slide + 0.02 * sv
            bar.update(1)
            if it % cfg.log_every == 0 or it == cfg.iterations:
                rec = {"it": it, "loss": lv, "loss_avg": run_loss, "lr": opt.param_groups[0]["lr"],
                       "elapsed_s": elapsed}
                if feet is not None:
                    rec["foot_slide_avg"] = run_slide
                history.append(rec)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{run_loss:.4f}")
            if it % cfg.val_every == 0 or it == cfg.iterations:
                v = validate()
                rec = {"it": it, "val_last_frame_mse": v, "elapsed_s": elapsed}
                history.append(rec)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.write(f"it {it}: train loss {run_loss:.4f}, val last-frame mse {v:.4f} "
                          f"({elapsed / 60:.1f} min)")
            if time.perf_counter() - last_ckpt >= cfg.checkpoint_s:
                checkpoint()
                last_ckpt = time.perf_counter()
    except KeyboardInterrupt:
        batches.close()
        stopped = "interrupted"
        checkpoint()
        bar.close()
        log.close()
        print(f"interrupted at iteration {it}: checkpoint saved, run the same command to resume", file=sys.stderr)
        raise
    batches.close()
    bar.close()
    if stopped == "minutes" and it and not any(h.get("it") == it and "val_last_frame_mse" in h for h in history):
        rec = {"it": it, "val_last_frame_mse": validate(), "elapsed_s": elapsed}
        history.append(rec)
        log.write(json.dumps(rec) + "\n")
    checkpoint()
    log.close()
    val = [h["val_last_frame_mse"] for h in history if "val_last_frame_mse" in h]
    losses = [h["loss_avg"] for h in history if "loss_avg" in h]
    record = {"iterations": it, "planned_iterations": cfg.iterations, "stopped_by": stopped,
              "train_wall_s": round(elapsed, 1), "data_prep_s": round(prep_s, 1), "params": n_params,
              "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
              "final_val_last_frame_mse": val[-1] if val else None, "train_config": asdict(cfg),
              "data_config": {**asdict(data_cfg), "split_path": shown_path(data_cfg.split_path)},
              "device": device, "command": command,
              "train_frames": int(len(train_ends)), "left_out_style": getattr(data, "left_out_style", None)}
    if init is not None:       # what it was fine-tuned from, and how that was trained
        record["init"] = {"model": os.path.basename(cfg.init), "training": init[3]}
        record["train_config"]["init"] = os.path.basename(cfg.init)
    export(os.path.join(out, "model.npz"), cfg.model, model_cfg, ema.state_dict(), norm, data, cfg.seed, record,
           cfg.online_steps, cfg.online_noise, cfg.online_inpaint_weight)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record


def ship(src: str, dst: str, online_steps: int | None = None, online_noise: float | None = None,
         online_inpaint_weight: float | None = None) -> None:
    """Copy a trained model.npz as a shipped artefact: float16 arrays (half the
    size); online_steps / online_noise / online_inpaint_weight (diffusion) set
    the DDIM steps it runs online, the scale of its starting noise and how
    hard the shown past holds (infer.DiffusionPredictor)."""
    meta, arrays = infer.load_artefact(src)
    meta = {k: v for k, v in meta.items() if k not in ("format", "version", "float16")}
    _set_online(meta, online_steps, online_noise, online_inpaint_weight)
    infer.save_artefact(dst, meta, arrays, half=True)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("diffusion", "mlp"), default="diffusion")
    p.add_argument("--out", required=True, help="output folder (checkpoint, log, model.npz)")
    p.add_argument("--iterations", type=int, default=None,
                   help=f"optimizer steps (default {DEFAULT_ITERATIONS})")
    p.add_argument("--minutes", type=float, default=0.0, help="wall-clock cap in minutes (0: none)")
    p.add_argument("--paced", action="store_true",
                   help="with --minutes: the learning-rate schedule ends by the cap even if the iterations "
                        "do not (a fixed time budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: on a shared 2-core machine 2 threads ran 3x slower)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--window", type=int, default=None, help="frames per window (default 40)")
    p.add_argument("--latent", type=int, default=None, help="diffusion latent width (default 160)")
    p.add_argument("--blocks", type=int, default=None, help="diffusion MLP blocks (default 4)")
    p.add_argument("--cond-blocks", type=int, default=None, help="sparse-signal encoder blocks (default 2)")
    p.add_argument("--global-cond", type=int, default=None, help="window-level encoder width (default 384, 0: off)")
    p.add_argument("--last-frame-weight", type=float, default=None, help="extra loss weight of the current frame (default 4)")
    p.add_argument("--online-steps", type=int, default=None,
                   help=f"DDIM steps the exported diffusion model runs online (default {TrainConfig.online_steps})")
    p.add_argument("--online-noise", type=float, default=None,
                   help=f"scale of the fixed starting noise online (default {TrainConfig.online_noise}: DDIM from zeros)")
    p.add_argument("--online-inpaint-weight", type=float, default=None,
                   help="how hard the shown past holds after the first DDIM step online "
                        f"(default {TrainConfig.online_inpaint_weight}: fully)")
    p.add_argument("--lower-body-weight", type=float, default=None,
                   help="loss weight of the hips and legs against the other joints (default 2)")
    p.add_argument("--max-clips", type=int, default=0, help="use at most this many clips (0: all)")
    p.add_argument("--data", metavar="PACK", default=None,
                   help="train on a data pack (`python -m controllers.vr.data --pack PACK`) instead of the "
                        "corpus: for a machine without ../shared/mocap")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that make the batches (default 0: the training process; a GPU run needs "
                        "several to keep the GPU busy)")
    p.add_argument("--height-aug", type=float, default=0.0, metavar="H",
                   help="scale each window's device positions by a factor in [1-H, 1+H] (augmentation; 0: off)")
    p.add_argument("--speed-aug", type=float, default=0.0, metavar="S",
                   help="play each window's motion faster or slower, by a factor in [1-S, 1+S] "
                        "(augmentation; 0: off)")
    p.add_argument("--noise-aug", type=float, default=0.0, metavar="SIGMA",
                   help="add Gaussian noise of SIGMA x each input feature's spread to the sparse input "
                        "(augmentation; 0: off)")
    p.add_argument("--foot-weight", type=float, default=0.0, metavar="W",
                   help="diffusion: weight of the loss on the predicted toes' ground velocity where the data "
                        "plants them (0: off)")
    p.add_argument("--init", default=None, metavar="MODEL",
                   help="start from this model's weights and normalization (a model.npz or a shipped file: "
                        "fine-tuning; its network and loss settings are kept)")
    p.add_argument("--leave-out-style", default=None, metavar="STYLE",
                   help="train without any clip of this style (controllers/vr/styles.py: e.g. elderly)")
    p.add_argument("--fresh", action="store_true", help="start over even if OUT has a checkpoint")
    p.add_argument("--export", default=None,
                   help="also write model.npz here as float16 (e.g. controllers/vr/weights/diffusion.npz)")
    p.add_argument("--val-every", type=int, default=None)
    p.add_argument("--quiet", action="store_true")


def run_from_args(args) -> int:
    from .models import DiffusionConfig, MLPConfig
    cfg = TrainConfig(model=args.model, iterations=args.iterations or DEFAULT_ITERATIONS[args.model],
                      minutes=args.minutes, seed=args.seed, threads=args.threads, paced=args.paced,
                      height_aug=args.height_aug, speed_aug=args.speed_aug, noise_aug=args.noise_aug,
                      foot_weight=args.foot_weight, init=args.init or "")
    if not 0 <= args.height_aug < 1 or not 0 <= args.speed_aug < 1:
        raise SystemExit(f"--height-aug {args.height_aug} / --speed-aug {args.speed_aug}: each must be in [0, 1)")
    if args.noise_aug < 0:
        raise SystemExit(f"--noise-aug {args.noise_aug}: must be >= 0")
    if args.foot_weight < 0:
        raise SystemExit(f"--foot-weight {args.foot_weight}: must be >= 0")
    if args.foot_weight and args.model != "diffusion":
        raise SystemExit("--foot-weight trains the diffusion model only")
    shape = [k for k in ("window", "latent", "blocks", "cond_blocks", "global_cond", "last_frame_weight",
                         "lower_body_weight") if getattr(args, k) is not None]
    if args.init and shape:
        raise SystemExit(f"--init keeps {args.init}'s network: drop --{shape[0].replace('_', '-')}")
    if args.paced and not args.minutes:
        raise SystemExit("--paced needs --minutes")
    if args.batch:
        cfg = replace(cfg, batch=args.batch)
    if args.lr:
        cfg = replace(cfg, lr=args.lr)
    if args.val_every:
        cfg = replace(cfg, val_every=args.val_every)
    if args.online_steps:
        cfg = replace(cfg, online_steps=args.online_steps)
    if args.online_noise is not None:
        cfg = replace(cfg, online_noise=args.online_noise)
    if args.online_inpaint_weight is not None:
        cfg = replace(cfg, online_inpaint_weight=args.online_inpaint_weight)
    if args.model == "diffusion":
        mc = DiffusionConfig()
        for k in ("window", "latent", "blocks", "cond_blocks", "global_cond", "last_frame_weight",
                  "lower_body_weight"):
            if getattr(args, k) is not None:
                mc = replace(mc, **{k: getattr(args, k)})
    else:
        mc = MLPConfig()
        if args.window:
            mc = replace(mc, window=args.window)
    dc = vd.VRDataConfig(max_clips=args.max_clips)
    command = "python -m controllers.vr.train " + " ".join(sys.argv[1:]) if sys.argv else ""
    data = None
    if args.data:
        if args.max_clips:
            raise SystemExit("--max-clips applies to the corpus, not to a --data pack")
        data = vd.unpack(args.data, dc)
        if "val" not in data.clip_split:
            print(f"warning: {args.data} has no val clips: no validation", file=sys.stderr)
    if args.leave_out_style:
        from . import styles
        data = styles.leave_out(data if data is not None else vd.build(dc, progress=not args.quiet),
                                args.leave_out_style)
    rec = train(cfg, args.out, mc, dc, device=args.device, fresh=args.fresh, progress=not args.quiet,
                command=command, data=data, workers=args.workers)
    print(json.dumps({k: rec[k] for k in ("iterations", "stopped_by", "train_wall_s", "params", "first_loss",
                                          "final_loss", "final_val_last_frame_mse")}))
    if args.export:
        dif = args.model == "diffusion"
        ship(os.path.join(args.out, "model.npz"), args.export, cfg.online_steps if dif else None,
             cfg.online_noise if dif else None, cfg.online_inpaint_weight if dif else None)
        print(f"exported {args.export} (float16)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m controllers.vr.train", description=__doc__.split("\n\n")[0])
    add_train_arguments(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
