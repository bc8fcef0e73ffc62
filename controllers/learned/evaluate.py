"""Measure learned motion matching against motion matching and the database.

    .venv/bin/python -m controllers.learned.evaluate --db out/databases/locomotion-normal.animdb \\
        --weights controllers/learned/weights/lmm-locomotion-normal.npz \\
        [--full-db out/databases/locomotion.animdb]

prints a Markdown table of:

- memory: the run-time weights vs what motion matching holds (`DatabaseSource.nbytes()`:
  pose arrays, features and kd-tree), on the training database and, with
  --full-db, on the full locomotion database (all styles, mirrored);
- per-tick latency p50/p99 of both controllers over the same stick scripts;
- decompressor reconstruction of database frames (latent from the compressor):
  mean joint position error (cm, FK with the true root) and local rotation
  error (degrees);
- stepper drift: from database frames, step freely and compare the decompressed
  pose with the database continuation after 1 s and 5 s (cm, character space);
  clips are under 10 s, so at 10 s the pose is compared with its nearest
  database pose instead (is it still a plausible pose?);
- projector agreement on noisy queries (database features + U(0,1) N(0,1)):
  share of queries with cost(query, projected) <= 1.1 cost(query, nearest frame),
  and the feature distance |f_proj - f_nn|;
- responsiveness and foot skating of both controllers on the shipped scripts
  (anim.runner / anim.metrics).

`evaluate(...) -> dict` is the same as a function (bench/ calls it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from anim import quat
from anim.database import Database

from . import data as D
from . import weights as W

SCRIPTS = ("walk", "turns", "run", "stop_start", "circles", "strafe")


# ------------------------------------------------------------------ pieces
def memory(db: Database, weights: W.Weights, full_db_path: str | None = None) -> dict:
    from controllers.motion_matching import DatabaseSource

    out = {"lmm_bytes": weights.nbytes, "lmm_file_bytes": os.path.getsize(weights.path),
           "mm_bytes": DatabaseSource(db).nbytes(), "mm_frames": int(db.num_frames)}
    out["ratio"] = out["mm_bytes"] / out["lmm_bytes"]
    if full_db_path and os.path.exists(full_db_path):
        from anim import database
        full = database.load(full_db_path)
        out["mm_full_bytes"] = DatabaseSource(full).nbytes()
        out["mm_full_frames"] = int(full.num_frames)
        out["mm_full_db"] = full_db_path
        out["ratio_full"] = out["mm_full_bytes"] / out["lmm_bytes"]
    return out


def _decode_batch(weights: W.Weights, y: np.ndarray):
    """Local rotations [B, J, 4] (joint 0 identity) and positions [B, J, 3]
    (joint 0 zero) of pose vectors y [B, P]."""
    meta = weights.meta
    lay = D.PoseLayout(len(meta["skeleton"]["names"]), tuple(meta["layout"]["moving"]),
                       int(meta["layout"]["num_contacts"]))
    s = lay.split(y)
    b, j = y.shape[0], lay.num_joints
    rot = np.zeros((b, j, 4), np.float32)
    rot[:, 0, 0] = 1
    rot[:, 1:] = quat.from_6d(s["rot"].reshape(b, j - 1, 6))
    pos = np.broadcast_to(weights.arrays["rest_positions"], (b, j, 3)).copy()
    pos[:, list(lay.moving)] = s["pos"].reshape(b, -1, 3)
    return rot, pos, s


def _with_root(rot, pos, db, frames):
    rot, pos = rot.copy(), pos.copy()
    rot[:, 0] = db.rotations[frames, 0]
    pos[:, 0] = db.positions[frames, 0]
    return rot, pos


def compressor_inputs(db: Database, frames: np.ndarray) -> np.ndarray:
    """The compressor's input of database frames (as train.Data builds it)."""
    import torch

    from . import losses as L
    from . import networks as nw

    lay = D.layout_of(db)
    Y = D.pose_vectors(db, lay, frames)
    rot0 = np.asarray(db.rotations[frames, 0])
    root = {"rot": torch.as_tensor(quat.to_matrix(rot0).astype(np.float32)),
            "pos": torch.as_tensor(np.array(db.positions[frames, 0], np.float32)),
            "vel": torch.as_tensor(np.array(db.velocities[frames, 0], np.float32)),
            "ang": torch.as_tensor(np.array(db.angular_velocities[frames, 0], np.float32))}
    with torch.no_grad():
        qr, qp, qv, qa = nw.character_space(*nw.fk_vel(
            *L.assemble(torch.as_tensor(Y), root, lay, torch.as_tensor(D.rest_positions(db))),
            db.skeleton.parents))
    n = len(frames)
    g = lay.split(Y)
    parts = [g["pos"], g["rot"], g["vel"], g["avel"], qp.numpy().reshape(n, -1),
             nw.matrix_to_6d(qr).numpy().reshape(n, -1), qv.numpy().reshape(n, -1), qa.numpy().reshape(n, -1),
             g["rvel"], g["rang"]]
    return np.concatenate(parts, axis=1).astype(np.float32)


def latents(db: Database, weights: W.Weights, frames: np.ndarray) -> np.ndarray:
    comp = W.net_from_arrays(weights.arrays, "compressor")
    out = []
    for a in range(0, len(frames), 8192):
        out.append(W.mlp(comp, compressor_inputs(db, frames[a:a + 8192])))
    return np.concatenate(out)


def decompressor_error(db: Database, weights: W.Weights, frames: np.ndarray, Z: np.ndarray) -> dict:
    X = np.asarray(db.features[frames])
    y = W.mlp(weights.net("decompressor"), np.concatenate([X, Z], axis=1))
    rot, pos, s = _decode_batch(weights, y)
    rot, pos = _with_root(rot, pos, db, frames)
    true_rot, true_pos = np.asarray(db.rotations[frames]), np.asarray(db.positions[frames])
    _, g = quat.fk(rot, pos, db.skeleton.parents)
    _, gt = quat.fk(true_rot, true_pos, db.skeleton.parents)
    err = np.linalg.norm(g - gt, axis=-1)[:, 1:] * 100
    ang = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(rot[:, 1:] * true_rot[:, 1:], -1)), 0, 1)))
    cont = (s["cont"] > 0.5) == np.asarray(db.contacts[frames])
    return {"frames": int(len(frames)), "joint_cm_mean": float(err.mean()),
            "joint_cm_p95": float(np.percentile(err, 95)), "joint_cm_max": float(err.max()),
            "rotation_deg_mean": float(ang.mean()), "rotation_deg_p95": float(np.percentile(ang, 95)),
            "contact_accuracy": float(cont.mean())}


def _character_positions(rot, pos, parents):
    """Joint positions relative to the root, in the root's frame, [B, J-1, 3]."""
    rot, pos = rot.copy(), pos.copy()
    rot[:, 0] = [1, 0, 0, 0]
    pos[:, 0] = 0
    _, g = quat.fk(rot, pos, parents)
    return g[:, 1:]


def stepper_drift(db: Database, weights: W.Weights, seed: int = 0, starts: int = 200,
                  seconds=(1.0, 5.0), plausibility_seconds=(1.0, 10.0)) -> dict:
    """Free stepping from database frames (see the module docstring)."""
    rng = np.random.default_rng(seed)
    fps = float(weights.meta["fps"])
    parents = db.skeleton.parents
    stepper, dec = weights.net("stepper"), weights.net("decompressor")
    nf = int(weights.meta["num_features"])
    stops = np.repeat(np.asarray(db.range_stops), np.asarray(db.range_stops - db.range_starts))
    horizon = int(round(max(max(seconds), max(plausibility_seconds)) * fps))
    out = {}
    # reference poses for plausibility: character-space joint positions of a database sample
    ref_frames = np.arange(0, db.num_frames, 4)
    ref = _character_positions(np.asarray(db.rotations[ref_frames]), np.asarray(db.positions[ref_frames]),
                               parents).reshape(len(ref_frames), -1)
    ref_sq = np.sum(ref * ref, axis=1)

    def nearest_cm(p):
        p = p.reshape(len(p), -1)
        d = ref_sq[None] - 2 * p @ ref.T + np.sum(p * p, axis=1)[:, None]
        i = np.argmin(d, axis=1)
        return float(np.mean(np.linalg.norm((p - ref[i]).reshape(len(p), -1, 3), axis=-1)) * 100)

    # start frames: any frame with at least min(seconds) of clip ahead
    need = int(round(min(seconds) * fps))
    cand = np.flatnonzero(stops - np.arange(db.num_frames) > need)
    s0 = np.sort(rng.choice(cand, size=min(starts, len(cand)), replace=False))
    state = np.concatenate([np.asarray(db.features[s0]), latents(db, weights, s0)], axis=1).astype(np.float32)
    checks = {int(round(t * fps)): t for t in set(seconds) | set(plausibility_seconds)}
    finite = True
    lo, hi = weights.arrays["state_min"], weights.arrays["state_max"]
    free = state.copy()                 # the same without the run time's range clamp
    escaped = np.zeros(len(state), bool)
    for n in range(1, horizon + 1):
        step = np.float32(1.0 / fps)
        state = np.clip(state + step * W.mlp(stepper, state), lo, hi)   # as the run time
        free = free + step * W.mlp(stepper, free)
        escaped |= ((free < lo) | (free > hi)).any(axis=1)
        free = np.where(escaped[:, None], 0, free)     # stop following those (they may overflow)
        if n not in checks:
            continue
        finite &= bool(np.isfinite(state).all())
        t = checks[n]
        rot, pos, _ = _decode_batch(weights, W.mlp(dec, state))
        cp = _character_positions(rot, pos, parents)
        if t in seconds:
            ok = s0 + n < stops[s0]
            if ok.any():
                f = s0[ok] + n
                gt = _character_positions(np.asarray(db.rotations[f]), np.asarray(db.positions[f]), parents)
                out[f"drift_{t:g}s_cm"] = float(np.linalg.norm(cp[ok] - gt, axis=-1).mean() * 100)
                out[f"drift_{t:g}s_starts"] = int(ok.sum())
                # features too (normalized units): how far the stepped features wander
                out[f"drift_{t:g}s_features"] = float(np.linalg.norm(state[ok, :nf] - np.asarray(db.features[f]),
                                                                     axis=-1).mean())
        if t in plausibility_seconds:
            out[f"nearest_pose_{t:g}s_cm"] = nearest_cm(cp)
    out["finite"] = finite
    out["unclamped_escaped_fraction"] = float(escaped.mean())   # left the database's range by `horizon`
    out["horizon_s"] = horizon / fps
    return out


def projector_agreement(db: Database, weights: W.Weights, queries: int = 2000, seed: int = 0,
                        noise: float = 1.0, slack: float = 1.1) -> dict:
    from anim import search

    rng = np.random.default_rng(seed)
    X, valid = np.asarray(db.features), np.asarray(db.valid)
    index = search.make_index("kdtree", X, valid)
    ids = rng.choice(np.flatnonzero(valid), size=queries)
    q = (X[ids] + rng.uniform(0, noise, (queries, 1)) * rng.normal(size=(queries, X.shape[1]))).astype(np.float32)
    nn, d_nn = index.query_batch(q)
    out = W.mlp(weights.net("projector"), q)
    nf = X.shape[1]
    d_proj = np.sum((q - out[:, :nf]) ** 2, axis=1)
    gap = np.linalg.norm(out[:, :nf] - X[nn], axis=1)
    exact = W.mlp(weights.net("projector"), X[ids])[:, :nf]     # no noise: the frame itself
    return {"queries": queries, "agreement": float(np.mean(d_proj <= slack * d_nn + 1e-6)), "slack": slack,
            "feature_gap_mean": float(gap.mean()), "feature_gap_median": float(np.median(gap)),
            "nn_distance_mean": float(np.sqrt(d_nn).mean()),
            "proj_distance_mean": float(np.sqrt(d_proj).mean()),
            "clean_feature_error_mean": float(np.linalg.norm(exact - X[ids], axis=1).mean())}


def controllers(db: Database, weights_path: str, scripts=SCRIPTS, seconds: float | None = None) -> dict:
    """Both controllers on the same stick scripts: tick times, responsiveness,
    foot skating (anim.runner / anim.metrics)."""
    from anim import runner
    from anim import scripts as stick
    from controllers.motion_matching import MotionMatchingController, measured_speeds

    from .controller import LearnedController

    speeds = measured_speeds(db)
    res = {"mm": {"runs": [], "tick_ms": [], "cpu_ms": []}, "lmm": {"runs": [], "tick_ms": [], "cpu_ms": []}}
    for name in scripts:
        s = stick.load(name)
        for key, make in (("mm", lambda: MotionMatchingController(db)),
                          ("lmm", lambda: LearnedController.load(weights_path))):
            ctrl = make()
            cpu = []
            step = ctrl.step

            def timed(ci, dt, step=step, cpu=cpu):      # CPU time of the tick: what the machine's
                t = time.process_time_ns()                 # other processes cannot inflate
                pose = step(ci, dt)
                cpu.append((time.process_time_ns() - t) * 1e-6)
                return pose

            ctrl.step = timed
            rec = runner.run(ctrl, s, seconds)
            m = runner.evaluate(rec, db, speeds, series=False)
            res[key]["tick_ms"].append(rec.tick_ms)
            res[key]["cpu_ms"].append(np.asarray(cpu))
            r = m["responsiveness"]
            res[key]["runs"].append({"script": name, "worst_key_response_s": r["worst_key_response_s"],
                                     "mean_response_s": r["mean_response_s"], "unreached": r["unreached"],
                                     "skating_cm_s": m["foot_skating"]["mean_cm_s"],
                                     "heading_error_deg": m["heading_error_deg"]["mean"],
                                     "accel_ratio": m["smoothness"]["ratio"], "finite": m["finite"],
                                     "transitions": m["search"].get("transitions")})
    for key in res:
        ms = np.concatenate(res[key]["tick_ms"])
        cpu = np.concatenate(res[key]["cpu_ms"])
        res[key]["tick"] = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                            "max_ms": float(ms.max()), "ticks": int(ms.size),
                            "cpu_p50_ms": float(np.percentile(cpu, 50)), "cpu_p99_ms": float(np.percentile(cpu, 99))}
        del res[key]["tick_ms"], res[key]["cpu_ms"]
        runs = res[key]["runs"]
        res[key]["skating_cm_s"] = float(np.mean([r["skating_cm_s"] for r in runs]))
        resp = [r["mean_response_s"] for r in runs if r["mean_response_s"] is not None]
        res[key]["mean_response_s"] = float(np.mean(resp)) if resp else None
        worst = [r["worst_key_response_s"] for r in runs if r["worst_key_response_s"] is not None]
        res[key]["worst_key_response_s"] = float(max(worst)) if worst else None
        res[key]["unreached"] = int(sum(r["unreached"] for r in runs))
        worst_accel = max(runs, key=lambda r: r["accel_ratio"])
        res[key]["accel_ratio_max"] = float(worst_accel["accel_ratio"])
        res[key]["accel_ratio_max_script"] = worst_accel["script"]
    return res


# ------------------------------------------------------------------ all of it
def evaluate(db: Database | str, weights_path: str, full_db_path: str | None = None, seed: int = 0,
             decompressor_frames: int = 20_000, drift_starts: int = 200, projector_queries: int = 2000,
             scripts=SCRIPTS, run_controllers: bool = True, progress: bool = False) -> dict:
    """All measurements as a dict (see the module docstring)."""
    from anim import database

    if isinstance(db, str):
        db = database.load(db)
    weights = W.load(weights_path, db.skeleton, training=True)
    runtime = W.load(weights_path, db.skeleton)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    out = {"weights": weights_path, "database": db.describe(), "meta": {
        k: weights.meta.get(k) for k in ("seed", "command", "train_seconds", "styles", "created", "config")}}
    say("memory ...")
    out["memory"] = memory(db, runtime, full_db_path)
    say("decompressor ...")
    frames = np.sort(rng.choice(db.num_frames, size=min(decompressor_frames, db.num_frames), replace=False))
    out["decompressor"] = decompressor_error(db, weights, frames, latents(db, weights, frames))
    say("stepper ...")
    out["stepper"] = stepper_drift(db, weights, seed, drift_starts)
    say("projector ...")
    out["projector"] = projector_agreement(db, runtime, projector_queries, seed)
    if run_controllers:
        say("controllers ...")
        out["controllers"] = controllers(db, weights_path, scripts)
    out["seconds"] = time.perf_counter() - t0
    return out


def _mb(b):
    return f"{b / 1e6:.1f} MB"


def table(r: dict) -> str:
    """The measurements as a Markdown table."""
    m, d, s, p = r["memory"], r["decompressor"], r["stepper"], r["projector"]
    rows = [("memory: LMM run-time weights", f"{_mb(m['lmm_bytes'])} (file {_mb(m['lmm_file_bytes'])})"),
            (f"memory: MM on the training database ({m['mm_frames']:,} frames)",
             f"{_mb(m['mm_bytes'])} = {m['ratio']:.0f}x LMM")]
    if "mm_full_bytes" in m:
        rows.append((f"memory: MM on the full locomotion database ({m['mm_full_frames']:,} frames)",
                     f"{_mb(m['mm_full_bytes'])} = {m['ratio_full']:.0f}x LMM (target >= 10x)"))
    c = r.get("controllers")
    if c:
        for key, label in (("mm", "MM"), ("lmm", "LMM")):
            t = c[key]["tick"]
            rows.append((f"tick latency {label} p50 / p99 ({t['ticks']} ticks)",
                         f"wall {t['p50_ms']:.3f} / {t['p99_ms']:.3f} ms (max {t['max_ms']:.2f}); "
                         f"CPU {t['cpu_p50_ms']:.3f} / {t['cpu_p99_ms']:.3f} ms"))
    rows += [("decompressor: mean joint position error", f"{d['joint_cm_mean']:.2f} cm (p95 {d['joint_cm_p95']:.2f}, "
              f"max {d['joint_cm_max']:.1f}; {d['frames']:,} frames; target <= 2 cm)"),
             ("decompressor: mean local rotation error", f"{d['rotation_deg_mean']:.2f} deg (p95 "
              f"{d['rotation_deg_p95']:.2f}); contacts {100 * d['contact_accuracy']:.1f}% right")]
    for key in sorted(k for k in s if k.startswith("drift_") and k.endswith("s_cm")):
        t = key[len("drift_"):-len("s_cm")]
        rows.append((f"stepper drift after {t} s vs database continuation",
                     f"{s[key]:.1f} cm ({s[f'drift_{t}s_starts']} starts; features "
                     f"{s[f'drift_{t}s_features']:.2f})"))
    for key in sorted(k for k in s if k.startswith("nearest_pose_")):
        t = key[len("nearest_pose_"):-len("s_cm")]
        rows.append((f"stepper after {t} s: distance to nearest database pose", f"{s[key]:.1f} cm"))
    rows.append((f"stepper without the range clamp: starts leaving the database's range within "
                 f"{s['horizon_s']:g} s", f"{100 * s['unclamped_escaped_fraction']:.1f}%"))
    rows += [(f"projector agreement (cost <= {p['slack']:g} x nearest, {p['queries']} noisy queries)",
              f"{100 * p['agreement']:.1f}%"),
             ("projector |f_proj - f_nn|", f"mean {p['feature_gap_mean']:.3f}, median {p['feature_gap_median']:.3f} "
              f"(query to nearest {p['nn_distance_mean']:.3f}, to projected {p['proj_distance_mean']:.3f})")]
    if c:
        for key, label in (("mm", "MM"), ("lmm", "LMM")):
            x = c[key]
            wr = "never" if x["worst_key_response_s"] is None else f"{x['worst_key_response_s']:.2f} s"
            mr = "-" if x["mean_response_s"] is None else f"{x['mean_response_s']:.2f} s"
            rows.append((f"{label}: responsiveness mean / worst key ({len(x['runs'])} scripts)",
                         f"{mr} / {wr} ({x['unreached']} unreached)"))
            rows.append((f"{label}: foot skating in contact", f"{x['skating_cm_s']:.2f} cm/s"))
            if "accel_ratio_max" in x:
                rows.append((f"{label}: largest joint acceleration / database p99.9",
                             f"{x['accel_ratio_max']:.2f} (per script: "
                             + ", ".join(f"{r['script']} {r['accel_ratio']:.2f}" for r in x["runs"]) + ")"))
    lines = ["| measure | value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m controllers.learned.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default=os.path.join("out", "databases", "locomotion-normal.animdb"))
    p.add_argument("--weights", default="controllers/learned/weights/lmm-locomotion-normal.npz")
    p.add_argument("--full-db", default=os.path.join("out", "databases", "locomotion.animdb"),
                   help="database for the full memory comparison (skipped when absent; default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-controllers", action="store_true", help="skip the controller runs")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    try:
        r = evaluate(args.db, args.weights, args.full_db, args.seed, run_controllers=not args.no_controllers,
                     progress=True)
    except W.WeightsError as e:
        raise SystemExit(str(e))
    print(table(r))
    if args.json:
        import json

        from anim.fileio import write_text
        write_text(args.json, json.dumps(r, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
