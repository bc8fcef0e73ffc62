"""Evaluate the sparse-VR predictors on the test split, side by side.

    python -m controllers.vr.evaluate                       # shipped weights, all test clips
    python -m controllers.vr.evaluate --diffusion out/vr/diffusion/model.npz --json out/vr/eval.json
    python -m controllers.vr.evaluate --leave-out-style elderly --diffusion-out D.npz --mlp-out M.npz
        (styles it never saw: controllers/vr/styles.py)

`run(...)` (for bench/) loads the shipped models and returns evaluate()'s dict
with the markdown table under 'table'; `evaluate(predictors, data)` takes
predictors already loaded; `markdown(result)` formats one.

Protocol. Every frame of every test clip (original clips only, never mirrors)
is predicted from the window that ends there (frames before the clip start
repeat its first frame, as the live history buffer does), exactly what the
online controller computes: batched for the stateless MLP; clip by clip,
frame after frame, for motion matching; and for the diffusion model (which
inpaints each window's past with the frames it has shown) all clips advance
together one frame at a time. Errors are averaged over all frames of all
test clips (frame-weighted). The val split (split='val') is for choosing
between models; the test split is for the final table only.

Metrics (AGRoL / AvatarPoser definitions, on the 21 joints below the
simulation bone; positions in world space after the root is hung from the
tracked head):
  MPJRE  (deg)   mean over joints of |axis-angle(pred) - axis-angle(gt)| per
                 component, wrapped to [-pi, pi] (AGRoL's code), on the hips'
                 world rotation and the local rotations of the other joints;
                 'mpjre_geodesic_deg' in the dict is the mean geodesic angle.
  MPJPE  (cm)    mean joint position error.
  MPJVE  (cm/s)  mean error of joint velocities (forward differences x 60).
  Jitter (km/s^3) mean norm of the third finite difference of joint
                 positions x 60^3 (AGRoL's jitter), / 1000.
  Hand PE, Upper PE, Lower PE, Root PE (cm): MPJPE over the hands; the upper
                 body (spine, chest, neck, head, shoulders, arms, hands); the
                 lower body (hips, legs, feet, toes: AGRoL's lower index mapped
                 on this skeleton); the hips.
  Foot skate (cm/s): mean horizontal speed of the predicted toe joints over
                 frame pairs where the ground truth has the foot in contact
                 (anim.metrics.foot_skating with the database's contacts).
  Latency (ms): wall time of VRController.step per frame on the CPU (device
                 poses in, Pose out: features, model, placement), p50 and p99
                 over `latency_frames` frames of test clips after a warm-up;
                 the dict also has the thread's CPU time (latency_cpu_*), which
                 other processes sharing the machine do not inflate.

Foot locking (feet.py; `foot_lock`, on by default, --no-foot-lock: off):
every method is also scored with its feet planted as the live controller
plants them (contacts read from the predicted legs by FeetConfig's
detector: the learned network, trained on the diffusion model's
predictions, for every method; the motion-matching foot locking), clip by
clip from its first frame, under 'foot_lock' in the dict and as '+ feet
locked' rows of the table; its latency is VRController.step with the
locking. Contact accuracy: precision, recall and F1 of those contacts
against the data's, over every foot-frame. With `data_contacts`
(--data-contacts) the feet are also locked on the data's own contacts, a
bound rather than a method ('+ feet locked on the data's contacts'): what
the locking leaves where the contacts are perfect, so what is left of the
skating can be told apart into the detector's part and the prediction's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from anim import metrics as am
from anim import quat

from . import data as vd

HERE = Path(__file__).resolve().parent
DEFAULT_WEIGHTS = {"diffusion": HERE / "weights" / "diffusion.npz", "mlp": HERE / "weights" / "mlp.npz"}
LABELS = {"diffusion": "AGRoL-style diffusion", "mlp": "MLP regressor (baseline)",
          "mm": "motion matching (baseline)", "gt": "ground truth"}
COLUMNS = [("mpjre_deg", "MPJRE (deg)"), ("mpjpe_cm", "MPJPE (cm)"), ("mpjve_cm_s", "MPJVE (cm/s)"),
           ("jitter_km_s3", "Jitter (km/s^3)"), ("hand_pe_cm", "Hand PE (cm)"), ("upper_pe_cm", "Upper PE (cm)"),
           ("lower_pe_cm", "Lower PE (cm)"), ("root_pe_cm", "Root PE (cm)"), ("foot_skate_cm_s", "Foot skate (cm/s)"),
           ("latency_p50_ms", "p50 (ms)"), ("latency_p99_ms", "p99 (ms)")]


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def joint_rotations(rot: np.ndarray) -> np.ndarray:
    """[T, J, 4] pose (database layout) -> [T, J-1, 4]: hips world rotation, then locals."""
    out = rot[:, 1:].copy()
    out[:, 0] = quat.mul(rot[:, 0], rot[:, 1])
    return out


class Accumulator:
    """Frame-weighted sums of the metrics over clips."""

    def __init__(self, skeleton, fps: float = vd.FPS):
        self.fps = fps
        names = skeleton.names[1:]
        groups = vd.joint_groups(skeleton)               # by role: any skeleton
        self.idx_hands = [names.index(n) for n in groups["hands"]]
        self.idx_lower = [names.index(n) for n in groups["lower_body"]]
        self.idx_upper = [i for i in range(len(names)) if i not in self.idx_lower]
        self.idx_root = names.index(groups["hips"])
        self.idx_feet = [names.index(n) for n in groups["feet"]]
        self.sums: dict = {}
        self.counts: dict = {}

    def add(self, key, values):
        v = np.asarray(values, np.float64)
        self.sums[key] = self.sums.get(key, 0.0) + float(v.sum())
        self.counts[key] = self.counts.get(key, 0) + int(v.size)

    def clip(self, prot, ppos, grot, gpos, contacts):
        """prot/grot [T, J-1, 4] joint rotations (joint_rotations), ppos/gpos [T, J-1, 3] world positions."""
        aa_p = quat.to_scaled_angle_axis(prot.astype(np.float64))
        aa_g = quat.to_scaled_angle_axis(grot.astype(np.float64))
        self.add("mpjre_deg", np.degrees(np.abs(_wrap(aa_g - aa_p))).mean(-1))
        d = np.abs(np.sum(prot.astype(np.float64) * grot, -1)).clip(0, 1)
        self.add("mpjre_geodesic_deg", np.degrees(2 * np.arccos(d)))
        err = np.linalg.norm(ppos - gpos, axis=-1) * 100
        self.add("mpjpe_cm", err)
        self.add("hand_pe_cm", err[:, self.idx_hands])
        self.add("upper_pe_cm", err[:, self.idx_upper])
        self.add("lower_pe_cm", err[:, self.idx_lower])
        self.add("root_pe_cm", err[:, self.idx_root])
        if len(ppos) >= 2:
            vp, vg = np.diff(ppos, axis=0) * self.fps, np.diff(gpos, axis=0) * self.fps
            self.add("mpjve_cm_s", np.linalg.norm(vp - vg, axis=-1) * 100)
        self.add("jitter_km_s3", jitter(ppos, self.fps))
        self.add("gt_jitter_km_s3", jitter(gpos, self.fps))
        self._skate("foot_skate_cm_s", ppos[:, self.idx_feet], contacts)
        self._skate("gt_foot_skate_cm_s", gpos[:, self.idx_feet], contacts)

    def _skate(self, key, feet, contacts):
        s = am.foot_skating(feet, contacts, self.fps)
        self.sums[key] = self.sums.get(key, 0.0) + s["mean_cm_s"] * s["samples"]
        self.counts[key] = self.counts.get(key, 0) + s["samples"]

    def result(self) -> dict:
        return {k: self.sums[k] / max(self.counts[k], 1) for k in self.sums}


def jitter(gpos: np.ndarray, fps: float) -> np.ndarray:
    """[T-3, J] norm of the third difference of positions [T, J, 3], km/s^3."""
    g = np.asarray(gpos, np.float64)
    if len(g) < 4:
        return np.zeros((0,) + g.shape[1:2])
    j = g[3:] - 3 * g[2:-1] + 3 * g[1:-2] - g[:-3]
    return np.linalg.norm(j, axis=-1) * fps ** 3 / 1000.0


def _predict_clip(pred, data, frames, hf, chunk=2048):
    """Every frame of one clip: batched for stateless predictors, in order
    (rows taken as consecutive frames) for the motion-matching baseline."""
    ys, ths = [], []
    if hasattr(pred, "reset"):
        pred.reset()
    for a in range(0, len(frames), chunk):
        x, _, th, _ = vd.windows(data, frames[a:a + chunk], hf, pred.window, with_target=False)
        ys.append(pred.predict(x, th))
        ths.append(th)
    return np.concatenate(ys), np.concatenate(ths)


def predict_split(weights: str | None, split: str, progress: bool):
    """Every clip of `split` predicted with a model (default the shipped
    diffusion) as the evaluation predicts them, for training on (the
    contact network) and choosing (the feet's thresholds and locking); the
    test split is refused: it is read by the evaluation alone. Returns
    (data, predictor, [(clip, frames, rot, pos)])."""
    if split == "test":
        raise ValueError("predict_split: the test split is for the evaluation alone; train on 'train', choose on "
                         "'val'")
    from .infer import load_predictor
    data = vd.build(vd.VRDataConfig(), progress=progress)
    pred = load_predictor(str(weights or DEFAULT_WEIGHTS["diffusion"]), data.skeleton)
    clips = data.clips(split, mirrored=False)
    hf = np.asarray(pred.head_forward, np.float32)
    ys, ths = (_predict_lockstep(pred, data, clips, hf, progress) if getattr(pred, "stateful", False)
               else ({}, {}))
    out = []
    for c in clips:
        frames = np.arange(data.starts[c], data.stops[c])
        y, th = (ys[c], ths[c]) if ys else _predict_clip(pred, data, frames, hf)
        rot, pos = vd.poses_from_features(y, th, data.dev_p[frames, 0], data.skeleton)
        out.append((c, frames, rot, pos))
    return data, pred, out


def _predict_lockstep(pred, data, clips, hf, progress: bool = False):
    """A predictor that carries state from frame to frame per stream
    (`stateful`: the diffusion's inpainted past): all clips advance one frame
    at a time together, longest first, so that the streams still running are
    always a prefix of the batch. The same computation as the online loop.
    progress: a bar over the frames (the train split takes minutes)."""
    from tqdm import tqdm
    order = sorted(clips, key=lambda c: -(data.stops[c] - data.starts[c]))
    lengths = np.array([data.stops[c] - data.starts[c] for c in order])
    starts = np.array([data.starts[c] for c in order])
    ys = {c: np.empty((n, 126), np.float32) for c, n in zip(order, lengths)}
    ths = {c: np.empty(n, np.float32) for c, n in zip(order, lengths)}
    pred.reset()
    for k in tqdm(range(int(lengths.max())), desc=f"predict {len(clips)} clips", unit="frame",
                  disable=not progress, leave=False):
        n = int((lengths > k).sum())
        x, _, th, _ = vd.windows(data, starts[:n] + k, hf, pred.window, with_target=False)
        y = pred.predict(x, th)
        for i in range(n):
            ys[order[i]][k] = y[i]
            ths[order[i]][k] = th[i]
    return ys, ths


def measure_latency(pred, data, clips, frames: int = 600, warmup: int = 60, foot_lock: bool = False) -> dict:
    """Per-frame VRController.step time over test clips' device poses, ticked
    in the runtime loop (`anim.loop.Loop`) with each clip's devices as the
    source; foot_lock: the controller plants the feet."""
    from anim.control import ControlInput
    from anim.loop import Loop

    from .controller import VRController
    ctrl = VRController(pred, foot_lock=foot_lock)
    dev_q = vd.joints_to_devices(data.dev_q, data.calibration)
    times, cpu = [], []

    def keep(tick):
        times.append(tick.ms / 1000)
        cpu.append(tick.cpu_ms / 1000)

    for c in clips:
        a, b = int(data.starts[c]), int(data.stops[c])

        def source(t, a=a, b=b):
            f = min(a + int(round(t * vd.FPS)), b - 1)
            return ControlInput(**{k: (data.dev_p[f, i], dev_q[f, i]) for i, k in enumerate(vd.DEVICE_KEYS)})

        n = min(b - a, frames + warmup - len(times))
        if n < 1:
            break
        Loop(ctrl, source, [keep], fps=vd.FPS, cpu_time=True).run(ticks=n)
    ms = np.array(times[warmup:]) * 1000
    t = am.tick_times(ms)
    c = am.tick_times(np.array(cpu[warmup:]) * 1000)
    return {"latency_p50_ms": t["p50_ms"], "latency_p99_ms": t["p99_ms"], "latency_max_ms": t["max_ms"],
            "latency_cpu_p50_ms": c["p50_ms"], "latency_cpu_p99_ms": c["p99_ms"], "latency_frames": int(ms.size)}


def evaluate(predictors: dict, data: vd.VRData | None = None, max_clips: int = 0, latency_frames: int = 600,
             progress: bool = True, split: str = "test", foot_lock: bool = True,
             data_contacts: bool = False) -> dict:
    """Metrics of each predictor (name -> Predictor or MotionMatchingBaseline)
    on the test split (or split='val', for choosing between models). Returns
    {'methods': {name: metrics}, 'foot_lock': {name: metrics with the feet
    locked, and contact accuracy} (foot_lock), 'gt': {...}, 'test_clips',
    'test_frames', 'split', 'targets': {...}}. data_contacts: also
    'foot_lock_data', the feet locked on the data's own contacts in place of
    the detected ones: a bound, what the locking would leave with perfect
    contacts (no target reads it)."""
    from . import feet as vf
    from tqdm import tqdm
    if data is None:
        data = vd.build(vd.VRDataConfig(), progress=progress)
    clips = data.clips(split, mirrored=False)
    if max_clips:
        clips = clips[:max_clips]
    if not clips:
        raise ValueError(f"no {split} clips")
    out = {"methods": {}, "foot_lock": {}, "foot_lock_data": {}, "split": split, "test_clips": len(clips),
           "test_frames": int(sum(data.stops[c] - data.starts[c] for c in clips))}
    gt = None
    for name, pred in predictors.items():
        hf = np.asarray(pred.head_forward, np.float32)
        acc = Accumulator(data.skeleton)
        acc_lock, seen = Accumulator(data.skeleton), ([], [])
        acc_data = Accumulator(data.skeleton)
        t0 = time.perf_counter()
        lock = _predict_lockstep(pred, data, clips, hf) if getattr(pred, "stateful", False) else None
        for c in tqdm(clips, desc=f"eval {name}", disable=not progress, unit="clip", leave=False):
            frames = np.arange(data.starts[c], data.stops[c])
            y, th = (lock[0][c], lock[1][c]) if lock else _predict_clip(pred, data, frames, hf)
            rot, pos = vd.poses_from_features(y, th, data.dev_p[frames, 0], data.skeleton)
            grot_, gpos_ = vd.ground_truth_pose(data, frames, hf)
            _, pg = quat.fk(rot, pos, data.skeleton.parents)
            _, gg = quat.fk(grot_, gpos_, data.skeleton.parents)
            acc.clip(joint_rotations(rot), pg[:, 1:], joint_rotations(grot_), gg[:, 1:], data.contacts[frames])
            if foot_lock:
                lrot, lpos, det, _ = vf.lock_clip(rot, pos, data.skeleton)
                _, pl = quat.fk(lrot, lpos, data.skeleton.parents)
                acc_lock.clip(joint_rotations(lrot), pl[:, 1:], joint_rotations(grot_), gg[:, 1:],
                              data.contacts[frames])
                seen[0].append(det)
                seen[1].append(data.contacts[frames])
            if foot_lock and data_contacts:
                lrot, lpos, _, _ = vf.lock_clip(rot, pos, data.skeleton, contacts=data.contacts[frames])
                acc_data.clip(joint_rotations(lrot), quat.fk(lrot, lpos, data.skeleton.parents)[1][:, 1:],
                              joint_rotations(grot_), gg[:, 1:], data.contacts[frames])
        m = acc.result()
        m["eval_s"] = time.perf_counter() - t0
        if latency_frames:
            m.update(measure_latency(pred, data, clips, latency_frames))
        gt = {"jitter_km_s3": m.pop("gt_jitter_km_s3"), "foot_skate_cm_s": m.pop("gt_foot_skate_cm_s")}
        out["methods"][name] = m
        if foot_lock:
            ml = {k: v for k, v in acc_lock.result().items() if not k.startswith("gt_")}
            ml.update(vf.contact_accuracy(np.concatenate(seen[0]), np.concatenate(seen[1])))
            if latency_frames:
                ml.update(measure_latency(pred, data, clips, latency_frames, foot_lock=True))
            out["foot_lock"][name] = ml
            if data_contacts:
                out["foot_lock_data"][name] = {k: v for k, v in acc_data.result().items() if not k.startswith("gt_")}
    out["gt"] = gt or {}
    out["targets"] = targets(out)
    return out


def targets(res: dict) -> dict:
    """The issue's targets: diffusion beats both baselines on MPJPE, lower-body
    error and jitter; its jitter within 2x the ground truth's; p99 <= 5 ms."""
    m = res["methods"]
    if "diffusion" not in m:
        return {}
    d = m["diffusion"]
    others = [v for k, v in m.items() if k != "diffusion"]
    t = {f"beats_baselines_{k}": all(d[k] < o[k] for o in others)
         for k in ("mpjpe_cm", "lower_pe_cm", "jitter_km_s3")} if others else {}   # none to beat: no verdict
    if res.get("gt"):
        t["jitter_within_2x_gt"] = d["jitter_km_s3"] <= 2 * res["gt"]["jitter_km_s3"]
    if "latency_p99_ms" in d:
        t["p99_le_5ms"] = d["latency_p99_ms"] <= 5.0
    if "diffusion" in res.get("foot_lock", {}):
        from .feet import lock_targets
        t.update(lock_targets(d, res["foot_lock"]["diffusion"]))
    return t


def markdown(res: dict) -> str:
    head = "| method | " + " | ".join(c for _, c in COLUMNS) + " |"
    sep = "| --- |" + " --- |" * len(COLUMNS)
    rows = [head, sep]
    named = [(LABELS.get(n, n), m) for n, m in res["methods"].items()]
    named += [(f"{LABELS.get(n, n)} + feet locked", m) for n, m in res.get("foot_lock", {}).items()]
    named += [(f"{LABELS.get(n, n)} + feet locked on the data's contacts (bound)", m)
              for n, m in res.get("foot_lock_data", {}).items()]
    for label, m in named:
        rows.append(f"| {label} | " + " | ".join(
            f"{m[k]:.2f}" if k in m else "-" for k, _ in COLUMNS) + " |")
    if res.get("gt"):
        g = res["gt"]
        rows.append(f"| {LABELS['gt']} | " + " | ".join(
            f"{g[k]:.2f}" if k in g else "-" for k, _ in COLUMNS) + " |")
    rows.append("")
    cpu = ", ".join(f"{n} {m['latency_cpu_p50_ms']:.2f} / {m['latency_cpu_p99_ms']:.2f}"
                    for n, m in list(res["methods"].items()) + [(f"{n} + feet locked", m) for n, m in
                                                                 res.get("foot_lock", {}).items()]
                    if "latency_cpu_p50_ms" in m)
    if cpu:
        rows.append(f"Latency as CPU time of the stepping thread, p50 / p99 ms: {cpu}.")
    acc = ", ".join(f"{n} {m['contact_precision']:.3f} / {m['contact_recall']:.3f} / {m['contact_f1']:.3f}"
                    for n, m in res.get("foot_lock", {}).items() if "contact_f1" in m)
    if acc:
        rows.append("Foot contacts read from the predicted motion (controllers/vr/feet.py: the learned network of "
                    "controllers/vr/contacts.py) against the data's, "
                    f"precision / recall / F1 over every foot-frame: {acc}.")
    if res.get("load_average") is not None:
        rows.append(f"Machine load average while measuring: {res['load_average']:.1f}.")
    rows.append(f"{res['test_clips']} {res.get('split', 'test')} clips, {res['test_frames']} frames at 60 Hz. Targets: "
                + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in res.get("targets", {}).items()))
    return "\n".join(rows)


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--diffusion", default=str(DEFAULT_WEIGHTS["diffusion"]), help="diffusion model (.npz)")
    p.add_argument("--mlp", default=str(DEFAULT_WEIGHTS["mlp"]), help="MLP baseline model (.npz)")
    p.add_argument("--methods", default="diffusion,mlp,mm", help="comma-separated subset of diffusion,mlp,mm")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps of the diffusion model (default: its own)")
    p.add_argument("--inpaint", type=int, default=None,
                   help="diffusion: past frames inpainted with those shown (default W-1; 0: plain sliding window)")
    p.add_argument("--noise", type=float, default=None,
                   help="diffusion: scale of the fixed starting noise (default: the artefact's online_noise)")
    p.add_argument("--inpaint-weight", type=float, default=None,
                   help="diffusion: how hard the shown past holds after the first DDIM step "
                        "(default: the artefact's online_inpaint_weight)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="clips to evaluate on: 'val' to choose between models, 'test' for the final table")
    p.add_argument("--max-clips", type=int, default=0, help="evaluate on the first N clips (0: all)")
    p.add_argument("--latency-frames", type=int, default=600, help="frames timed per method (0: skip)")
    p.add_argument("--no-foot-lock", dest="foot_lock", action="store_false",
                   help="skip the rows with the feet locked (controllers/vr/feet.py)")
    p.add_argument("--data-contacts", action="store_true",
                   help="also lock the feet on the data's own contacts instead of the detected ones: a bound "
                        "on what the locking leaves with perfect contacts")
    p.add_argument("--users", default=None, metavar="HEIGHTS",
                   help="also synthetic users of these heights (m, comma separated, e.g. 1.5,1.7,2.0): scaled "
                        "clips, calibrated and predicted by the diffusion model (controllers/vr/calibrate.py)")
    p.add_argument("--users-clips", type=int, default=0,
                   help="with --users: that many clips, evenly spaced over the split (0: all)")
    p.add_argument("--json", default=None, help="also write the result dict here")
    p.add_argument("--quiet", action="store_true")
    from . import styles
    styles.add_arguments(p)            # --leave-out-style: controllers/vr/styles.py


def run(methods=("diffusion", "mlp", "mm"), diffusion: str = str(DEFAULT_WEIGHTS["diffusion"]),
        mlp: str = str(DEFAULT_WEIGHTS["mlp"]), steps: int | None = None, max_clips: int = 0,
        latency_frames: int = 600, progress: bool = False, data=None, inpaint: int | None = None,
        split: str = "test", noise: float | None = None, inpaint_weight: float | None = None,
        foot_lock: bool = True, data_contacts: bool = False) -> dict:
    """Load the methods (shipped weights by default) and evaluate them: the entry
    point for bench/. Returns evaluate()'s dict plus 'table' (markdown) and 'load_average'."""
    from .infer import load_predictor
    data = data if data is not None else vd.build(vd.VRDataConfig(), progress=progress)
    preds = {}
    for m in methods:
        if m == "diffusion":
            preds[m] = load_predictor(diffusion, data.skeleton, inpaint=inpaint, noise_scale=noise,
                                      inpaint_weight=inpaint_weight, **({"sample_steps": steps} if steps else {}))
        elif m == "mlp":
            preds[m] = load_predictor(mlp, data.skeleton)
        elif m == "mm":
            from .baselines import MotionMatchingBaseline
            preds[m] = MotionMatchingBaseline(data)
        else:
            raise ValueError(f"unknown method {m!r} (diffusion, mlp, mm)")
    res = evaluate(preds, data, max_clips, latency_frames, progress=progress, split=split, foot_lock=foot_lock,
                   data_contacts=data_contacts)
    res["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    res["table"] = markdown(res)
    return res


def run_from_args(args) -> dict:
    if getattr(args, "leave_out_style", None):
        from . import styles
        return styles.run_from_args(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        res = run(methods, args.diffusion, args.mlp, args.steps, args.max_clips, args.latency_frames,
                  progress=not args.quiet, inpaint=args.inpaint, split=args.split, noise=args.noise,
                  inpaint_weight=args.inpaint_weight, foot_lock=getattr(args, "foot_lock", True),
                  data_contacts=getattr(args, "data_contacts", False))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    print(res["table"])
    if getattr(args, "users", None):
        from . import calibrate
        res["users"] = calibrate.run_users(args)
        print("\n" + res["users"]["table"])
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m controllers.vr.evaluate", description=__doc__.split("\n\n")[0])
    add_eval_arguments(p)
    run_from_args(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
