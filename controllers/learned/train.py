"""Train learned motion matching (Holden, Kanoun, Perepichka, Popa, SIGGRAPH 2020)
on a motion database, in three stages, and write one weights file.

    1. compressor + decompressor: (features, latent) -> full pose, with losses in
       local space, in character space after forward kinematics, on their time
       derivatives, and a latent regularization;
    2. stepper: (features, latent) at t -> at t + 1/60 s, rolled out over windows
       of 20 frames on its own outputs;
    3. projector: noisy query features -> (features, latent) of the nearest
       matchable database frame (the engine's kd-tree finds it), plus the
       distance to the query.

Reproduce the shipped weights (normal-style locomotion, CPU, 2 threads)::

    .venv/bin/anim build-db          # out/databases/locomotion-normal.animdb
    .venv/bin/python -m controllers.learned.train \\
        --db out/databases/locomotion-normal.animdb --out out/lmm/locomotion-normal \\
        --weights controllers/learned/weights/lmm-locomotion-normal.npz

`--out` holds the checkpoint (`checkpoint.pt`, written every
`checkpoint_every` iterations and on Ctrl-C) and the loss log
(`losses.jsonl`); running the same command again resumes where it stopped
(`--fresh` starts over). Hyperparameters are `TrainConfig`; the defaults fit
all three stages in about 20 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, replace

import numpy as np
import torch

from anim import quat, search
from anim.database import FEATURE_GROUPS, Database
from anim.fileio import truncate_jsonl

from . import data as D
from . import losses as L
from . import networks as nw
from . import weights as W
from .cli import add_arguments
from .config import TrainConfig

STAGES = ("decompressor", "stepper", "projector")
CHECKPOINT = "checkpoint.pt"
LOG = "losses.jsonl"


# keys that must agree between a checkpoint and the run resuming it
_RESUME_KEYS = ("latent", "hidden", "decompressor_iterations", "stepper_iterations", "projector_iterations",
                "decompressor_batch", "stepper_batch", "stepper_window", "projector_batch", "lr", "lr_final",
                "weight_decay", "projector_noise", "seed")


# ====================================================================== data
class Data:
    """Everything the stages read, as tensors on the training device."""

    def __init__(self, db: Database, device: str = "cpu", progress: bool = True):
        t0 = time.perf_counter()
        self.db = db
        self.device = device
        self.layout = D.layout_of(db)
        self.parents = np.asarray(db.skeleton.parents)
        self.levels = nw.depth_levels(self.parents)
        n = db.num_frames
        X = np.asarray(db.features, np.float32)
        Y = D.pose_vectors(db, self.layout)
        rot0 = np.asarray(db.rotations[:, 0])
        root = {"rot": quat.to_matrix(rot0).astype(np.float32), "pos": np.asarray(db.positions[:, 0], np.float32),
                "vel": np.asarray(db.velocities[:, 0], np.float32),
                "ang": np.asarray(db.angular_velocities[:, 0], np.float32)}
        self.rest_np = D.rest_positions(db)
        rest = torch.as_tensor(self.rest_np)
        # true character space, by the same forward kinematics as the losses
        q = {"rot": [], "pos": [], "vel": [], "ang": []}
        with torch.no_grad():
            for a in range(0, n, 8192):
                b = min(n, a + 8192)
                r = {k: torch.from_numpy(np.array(v[a:b])) for k, v in root.items()}
                qr, qp, qv, qa = nw.character_space(*nw.fk_vel(
                    *L.assemble(torch.as_tensor(Y[a:b]), r, self.layout, rest), self.parents, self.levels))
                for k, v in zip(("rot", "pos", "vel", "ang"), (qr, qp, qv, qa)):
                    q[k].append(v.numpy())
        q = {k: np.concatenate(v) for k, v in q.items()}
        g = self.layout.split(Y)
        parts = [("pos", g["pos"]), ("rot", g["rot"]), ("vel", g["vel"]), ("avel", g["avel"]),
                 ("qpos", q["pos"].reshape(n, -1)), ("qrot", nw.matrix_to_6d(torch.as_tensor(q["rot"])).numpy().reshape(n, -1)),
                 ("qvel", q["vel"].reshape(n, -1)), ("qang", q["ang"].reshape(n, -1)),
                 ("rvel", g["rvel"]), ("rang", g["rang"])]
        C = np.concatenate([p for _, p in parts], axis=1).astype(np.float32)
        self.comp_norm = D.group_normalization(C, [(k, p.shape[1]) for k, p in parts])
        self.dec_norm = D.group_normalization(Y, self.layout.groups)
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a)).to(device)  # noqa: E731
        self.X, self.Y, self.C = t(X), t(Y), t(C)
        self.root = {k: t(v) for k, v in root.items()}
        self.Q = {k: t(v) for k, v in q.items()}
        self.rest = rest.to(device)
        self.valid = np.asarray(db.valid)
        self.valid_ids = torch.as_tensor(np.flatnonzero(self.valid))
        self.Z = None
        self.seconds = time.perf_counter() - t0

    @property
    def num_features(self) -> int:
        return self.X.shape[1]


# ================================================================ checkpoint
class Checkpoint:
    """One file in the run folder, replaced atomically."""

    def __init__(self, folder: str, cfg: TrainConfig, db: Database, fresh: bool = False):
        self.path = os.path.join(folder, CHECKPOINT)
        self.cfg = cfg
        self.state = {"format": "anim-lmm-checkpoint", "version": 1, "config": asdict(cfg),
                      "skeleton": db.skeleton.signature(), "frames": int(db.num_frames),
                      "features": _feature_fingerprint(db), "done": {}, "current": None, "seconds": {}}
        os.makedirs(folder, exist_ok=True)
        if fresh or not os.path.exists(self.path):
            return
        try:
            old = torch.load(self.path, map_location="cpu", weights_only=True)     # never runs pickled code
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint
            raise RuntimeError(f"{self.path}: unreadable checkpoint ({type(e).__name__}: {_reason(e)}); "
                               f"delete it or pass --fresh") from None
        if old.get("format") != self.state["format"] or old.get("version") != 1:
            raise RuntimeError(f"{self.path}: not a checkpoint of this trainer; delete it or pass --fresh")
        if (old["skeleton"], old["frames"], old["features"]) != (self.state["skeleton"], self.state["frames"],
                                                                 self.state["features"]):
            raise RuntimeError(f"{self.path}: checkpoint of another database; pass --fresh to start over")
        diff = [k for k in _RESUME_KEYS if old["config"].get(k) != getattr(cfg, k)]
        if diff:
            raise RuntimeError(f"{self.path}: checkpoint made with other settings "
                               f"({', '.join(str(k) + '=' + str(old['config'].get(k)) for k in diff)}); "
                               f"pass the same settings or --fresh")
        self.state.update(done=_arrays(old["done"], np.asarray), current=old["current"],
                          seconds=old.get("seconds", {}))

    def save(self) -> None:
        from anim.fileio import atomic_write
        with atomic_write(self.path) as f:      # numpy arrays as tensors: loadable with weights_only
            torch.save({**self.state, "done": _arrays(self.state["done"], torch.from_numpy)}, f)


def _reason(e: Exception) -> str:
    """The line of a torch.load error that says why (it spans many lines)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return next((ln for ln in lines if "unsupported" in ln.lower()), lines[0] if lines else "")[:300]


def _arrays(tree, convert):
    """A copy of nested dicts/lists with every array or tensor leaf converted
    (torch.from_numpy to save, np.asarray to load)."""
    if isinstance(tree, dict):
        return {k: _arrays(v, convert) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_arrays(v, convert) for v in tree)
    if isinstance(tree, (np.ndarray, torch.Tensor)):
        return convert(tree)
    return tree


def _feature_fingerprint(db: Database) -> list:
    f = np.asarray(db.features)
    return [float(np.asarray(db.features_scale).sum()), float(f[:: max(1, len(f) // 1000)].sum())]


# ==================================================================== stages
def _decompressor_stage(data: Data, cfg: TrainConfig):
    lay, nf = data.layout, data.num_features
    torch.manual_seed(cfg.seed)
    comp = nw.make("compressor", data.C.shape[1], cfg.latent, cfg.hidden,
                   mean_in=data.comp_norm[0], std_in=data.comp_norm[1])
    dec = nw.make("decompressor", nf + cfg.latent, lay.size, cfg.hidden,
                  mean_out=data.dec_norm[0], std_out=data.dec_norm[1])
    nets = {"compressor": comp.to(data.device), "decompressor": dec.to(data.device)}
    starts = torch.as_tensor(D.stepper_windows(data.db, 2))
    window = torch.arange(2)

    def step(gen):
        frames = (starts[torch.randint(len(starts), (cfg.decompressor_batch,), generator=gen)][:, None]
                  + window).to(data.device)
        z = comp(data.C[frames])
        y = dec(torch.cat([data.X[frames], z], dim=-1))
        root = {k: v[frames] for k, v in data.root.items()}
        q = {k: v[frames] for k, v in data.Q.items()}
        return L.decompressor(y, data.Y[frames], q, z, root, lay, data.rest, data.parents, data.levels)

    return nets, step


def _stepper_stage(data: Data, cfg: TrainConfig):
    nf, dt = data.num_features, 1.0 / data.db.config.fps
    starts = D.stepper_windows(data.db, cfg.stepper_window)
    XZ = torch.cat([data.X, data.Z], dim=-1)
    pairs = torch.as_tensor(D.stepper_windows(data.db, 2)).to(data.device)
    vel = (XZ[pairs + 1] - XZ[pairs]) / dt
    groups = [("x", nf), ("z", cfg.latent)]
    mean_in, std_in = D.group_normalization(XZ.cpu().numpy(), groups)
    mean_out, std_out = D.group_normalization(vel.cpu().numpy(), groups)
    torch.manual_seed(cfg.seed + 1)
    net = nw.make("stepper", nf + cfg.latent, nf + cfg.latent, cfg.hidden, mean_in=mean_in, std_in=std_in,
                  mean_out=mean_out, std_out=std_out).to(data.device)
    starts = torch.as_tensor(starts)
    window = torch.arange(cfg.stepper_window)

    def step(gen):
        frames = (starts[torch.randint(len(starts), (cfg.stepper_batch,), generator=gen)][:, None]
                  + window).to(data.device)
        gnd = XZ[frames]
        cur = gnd[:, 0]
        out = [cur]
        for _ in range(1, cfg.stepper_window):
            cur = cur + dt * net(cur)
            out.append(cur)
        til = torch.stack(out, dim=1)
        return L.stepper(til[..., :nf], til[..., nf:], gnd[..., :nf], gnd[..., nf:], dt)

    return {"stepper": net}, step


def _projector_stage(data: Data, cfg: TrainConfig):
    nf = data.num_features
    X_np = data.X.cpu().numpy()
    index = search.make_index("kdtree", X_np, data.valid)
    XZ = torch.cat([data.X, data.Z], dim=-1)
    mean_x, std_x = D.group_normalization(X_np, [("x", nf)])
    mean_o, std_o = D.group_normalization(XZ.cpu().numpy(), [("x", nf), ("z", cfg.latent)])
    torch.manual_seed(cfg.seed + 2)
    net = nw.make("projector", nf, nf + cfg.latent, cfg.hidden, mean_in=mean_x, std_in=std_x,
                  mean_out=mean_o, std_out=std_o).to(data.device)
    ids = data.valid_ids

    def step(gen):
        b = cfg.projector_batch
        frames = ids[torch.randint(len(ids), (b,), generator=gen)]
        sigma = cfg.projector_noise * torch.rand((b, 1), generator=gen)
        query = data.X[frames.to(data.device)].cpu() + sigma * torch.randn((b, nf), generator=gen)
        nearest, _ = index.query_batch(query.numpy())
        nearest = torch.as_tensor(nearest).to(data.device)
        query = query.to(data.device)
        out = net(query)
        return L.projector(out[:, :nf], out[:, nf:], data.X[nearest], data.Z[nearest], query)

    return {"projector": net}, step


_STAGE_FNS = {"decompressor": _decompressor_stage, "stepper": _stepper_stage, "projector": _projector_stage}


def _compress(data: Data, comp: dict, cfg: TrainConfig) -> torch.Tensor:
    """Latent of every database frame by the trained compressor."""
    net = nw.make("compressor", data.C.shape[1], cfg.latent, cfg.hidden)
    _load_exported(net, comp)
    net = net.to(data.device)
    out = []
    with torch.no_grad():
        for a in range(0, len(data.C), 16384):
            out.append(net(data.C[a:a + 16384]))
    return torch.cat(out)


def _load_exported(net: nw.Net, arrays: dict) -> None:
    with torch.no_grad():
        for i, layer in enumerate(net.layers):
            layer.weight.copy_(torch.as_tensor(arrays[f"W{i}"]).T)
            layer.bias.copy_(torch.as_tensor(arrays[f"b{i}"]))
        for k in ("mean_in", "std_in", "mean_out", "std_out"):
            getattr(net, k).copy_(torch.as_tensor(arrays[k]))


# ====================================================================== loop
def _run_stage(stage: str, data: Data, cfg: TrainConfig, ckpt: Checkpoint, log_path: str, progress: bool):
    from tqdm import tqdm

    nets, step = _STAGE_FNS[stage](data, cfg)
    iterations = cfg.iterations(stage)
    params = [p for n in nets.values() for p in n.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, amsgrad=True, weight_decay=cfg.weight_decay)
    gamma = (cfg.lr_final / cfg.lr) ** (1.0 / max(iterations, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    gen = torch.Generator().manual_seed(cfg.seed + 100 * (STAGES.index(stage) + 1))
    start, rolling, elapsed = 0, None, 0.0
    cur = ckpt.state["current"]
    if cur is not None and cur["stage"] == stage:
        for name, net in nets.items():
            net.load_state_dict(cur["nets"][name])
        opt.load_state_dict(cur["opt"])
        sched.load_state_dict(cur["sched"])
        gen.set_state(cur["gen"])
        start, rolling, elapsed = cur["iteration"], cur["rolling"], cur["elapsed"]

    def save(it):
        ckpt.state["current"] = {"stage": stage, "iteration": it, "rolling": rolling,
                                 "elapsed": elapsed + time.perf_counter() - t0,
                                 "nets": {k: v.state_dict() for k, v in nets.items()},
                                 "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state()}
        ckpt.save()

    t0 = time.perf_counter()
    it = start
    bar = tqdm(total=iterations, initial=start, desc=f"{stage:>12}", disable=not progress, unit="it",
               dynamic_ncols=True)
    # Ctrl-C: finish the iteration, write a checkpoint, then stop (a second Ctrl-C stops at once;
    # the last periodic checkpoint is then the resume point)
    asked = []

    def on_sigint(signum, frame):
        asked.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    main_thread = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        with open(log_path, "a") as log:
            while it < iterations:
                parts = step(gen)
                loss = sum(parts.values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                it += 1
                value = float(loss.detach())
                if not np.isfinite(value):
                    raise FloatingPointError(f"{stage}: loss became {value} at iteration {it}")
                rolling = value if rolling is None else 0.98 * rolling + 0.02 * value
                bar.update(1)
                if it % cfg.log_every == 0 or it == iterations or it == 1:
                    bar.set_postfix(loss=f"{rolling:.4f}")
                    log.write(json.dumps({"stage": stage, "iteration": it, "loss": value, "rolling": rolling,
                                          "lr": sched.get_last_lr()[0],
                                          "seconds": round(elapsed + time.perf_counter() - t0, 2),
                                          **{k: float(v.detach()) for k, v in parts.items()}}) + "\n")
                    log.flush()
                if (it % cfg.checkpoint_every == 0 and it < iterations) or asked:
                    save(it)
                if asked:
                    bar.close()
                    print(f"\ninterrupted: checkpoint at {stage} iteration {it} in {ckpt.path}; "
                          f"run the same command to resume", file=sys.stderr)
                    raise KeyboardInterrupt
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, old_handler)
    bar.close()
    seconds = elapsed + time.perf_counter() - t0
    ckpt.state["done"][stage] = {"nets": {k: v.cpu().export() for k, v in nets.items()}, "rolling": rolling}
    ckpt.state["seconds"][stage] = seconds
    ckpt.state["current"] = None
    ckpt.save()
    for v in nets.values():
        v.to(data.device)
    return ckpt.state["done"][stage]


def train(db: Database, out_dir: str, weights_path: str | None = None, config: TrainConfig = TrainConfig(),
          device: str = "cpu", fresh: bool = False, progress: bool = True, command: str = "",
          db_path: str = "") -> str:
    """Train the three stages (resuming from out_dir/checkpoint.pt when there),
    then write the weights file (default out_dir/lmm.npz). Returns its path."""
    from controllers.motion_matching import measured_accel_limit, measured_coverage, measured_speeds

    if config.threads:
        torch.set_num_threads(config.threads)
    weights_path = weights_path or os.path.join(out_dir, "lmm.npz")
    wall0 = time.perf_counter()
    ckpt = Checkpoint(out_dir, config, db, fresh)
    log_path = os.path.join(out_dir, LOG)
    if fresh and os.path.exists(log_path):
        os.unlink(log_path)
    else:       # resuming: the log ends where the checkpoint does
        done, cur = ckpt.state["done"], ckpt.state["current"] or {}
        truncate_jsonl(log_path, lambda r: r.get("stage") in done or (
            r.get("stage") == cur.get("stage") and r.get("iteration", 0) <= cur.get("iteration", -1)))
    data = Data(db, device, progress)
    if progress:
        print(f"training data: {db.describe()}; pose vector {data.layout.size}, compressor input "
              f"{data.C.shape[1]}, moving joints {[db.skeleton.names[j] for j in data.layout.moving]} "
              f"({data.seconds:.1f} s)", file=sys.stderr)
    for stage in STAGES:
        if stage == "stepper" or (stage == "projector" and data.Z is None):
            data.Z = _compress(data, ckpt.state["done"]["decompressor"]["nets"]["compressor"], config)
        if stage in ckpt.state["done"]:
            continue
        _run_stage(stage, data, config, ckpt, log_path, progress)
    done = ckpt.state["done"]
    Z = data.Z.cpu().numpy()
    X = data.X.cpu().numpy()
    stand = D.standing_frame(db)
    XZ = np.concatenate([X, Z], axis=1)
    lo, hi = XZ.min(axis=0), XZ.max(axis=0)
    arrays = {"features_offset": np.asarray(db.features_offset), "features_scale": np.asarray(db.features_scale),
              "rest_positions": data.rest_np, "init_features": X[stand], "init_latent": Z[stand],
              "state_min": lo - 0.1 * (hi - lo), "state_max": hi + 0.1 * (hi - lo)}
    for stage in STAGES:
        for name, net in done[stage]["nets"].items():
            for k, v in net.items():
                arrays[f"{name}/{k}"] = v
    sk = db.skeleton
    meta = {
        "skeleton": {"names": list(sk.names), "parents": sk.parents.tolist(), "offsets": sk.offsets.tolist(),
                     "signature": sk.signature()},
        "num_features": int(X.shape[1]), "feature_groups": [list(g) for g in FEATURE_GROUPS],
        "trajectory_frames": list(db.config.trajectory_frames), "feet": list(db.config.feet),
        "toes": list(db.config.toes),
        "helpers": list(db.meta.get("roles", {}).get("helpers", ())),   # joints the accel limit leaves out
        "fps": float(db.config.fps), "latent": config.latent,
        "layout": {"moving": list(data.layout.moving), "num_contacts": data.layout.num_contacts,
                   "groups": [list(g) for g in data.layout.groups]},
        "speeds": measured_speeds(db), "coverage": measured_coverage(db),
        "accel_limit": round(measured_accel_limit(db), 2),
        "styles": db.tag_values("style"), "style_key": "style",
        "seed": config.seed, "command": command, "config": asdict(config), "device": device,
        "torch_threads": torch.get_num_threads(),
        "database": {"path": db_path, "frames": int(db.num_frames), "describe": db.describe()},
        "train_seconds": {k: round(v, 1) for k, v in ckpt.state["seconds"].items()},
        "final_loss": {k: done[k]["rolling"] for k in STAGES},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    W.save(weights_path, meta, arrays)
    if progress:
        total = sum(ckpt.state["seconds"].values())
        print(f"wrote {weights_path} ({os.path.getsize(weights_path) / 1e6:.1f} MB); training "
              f"{total / 60:.1f} min over all sessions ({', '.join(f'{k} {v:.0f} s' for k, v in ckpt.state['seconds'].items())}), "
              f"this call {time.perf_counter() - wall0:.0f} s", file=sys.stderr)
    return weights_path


# ======================================================================= CLI
def config_from_args(args) -> TrainConfig:
    cfg = replace(TrainConfig(), seed=args.seed, latent=args.latent, hidden=args.hidden, lr=args.lr,
                  checkpoint_every=args.checkpoint_every, threads=args.threads)
    if args.iterations:
        a, b, c = args.iterations
        cfg = replace(cfg, decompressor_iterations=a, stepper_iterations=b, projector_iterations=c)
    return cfg


def run_from_args(args, command: str | None = None) -> int:
    from anim import database

    if not os.path.exists(args.db):
        raise SystemExit(f"{args.db}: no such database (build it with `anim build-db`)")
    db = database.load(args.db)
    out = args.out or os.path.join("out", "lmm", os.path.splitext(os.path.basename(args.db))[0])
    if command is None:
        command = " ".join(["python -m controllers.learned.train"] + sys.argv[1:])
    try:
        train(db, out, args.weights, config_from_args(args), device=args.device, fresh=args.fresh,
              progress=not args.quiet, command=command, db_path=args.db)
    except KeyboardInterrupt:
        return 130
    except RuntimeError as e:
        raise SystemExit(f"train: {e}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m controllers.learned.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    return run_from_args(args, None if argv is None else
                         " ".join(["python -m controllers.learned.train"] + list(argv)))


if __name__ == "__main__":
    sys.exit(main())
