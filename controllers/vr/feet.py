"""Planted feet for the sparse-VR avatar: foot contacts read from the
predicted motion, then the motion-matching controller's foot locking.

    from controllers.vr.feet import FeetConfig, FootLocker
    feet = FootLocker(skeleton)                  # FeetConfig() defaults
    feet.reset()
    rot, pos, contacts = feet.apply(rot, pos)    # one predicted pose per 60 Hz tick

Contacts. The predictors output rotations only, no contact labels, so the
contacts are read from the predicted motion, causally (the live loop has
no future frames), in one of two ways:
* learned (the default where it fits the skeleton): a small network
  (controllers/vr/contacts.py) reads the last 1/6 s of the predicted legs;
  trained on the shipped diffusion model's own predictions of the train
  split against the data's contacts, it knows how that model's feet land
  early, slide and hover (val: F1 0.968, recall 0.967);
* the height rule: a toe joint (the joints the data's contacts are
  detected on) lands when it is lower than `on_height` and slower than
  `on_speed`, and lifts when it rises above `off_height` or moves faster
  than `off_speed` (hysteresis: the predicted feet skate and jitter, so one
  threshold would flicker); speed is the toe's 3D backward difference. It
  needs no training, so any skeleton and any predictor has it (val, the
  diffusion model: F1 0.937, recall 0.943).
Both work with weights already trained, where a contact head would need
the model retrained with it. Thresholds and the locking were chosen on the
val split (FeetConfig says how; `python -m controllers.vr.feet` ranks a
grid of the rule's thresholds by F1 against the data's contacts there,
`--locking` scores whole configurations by skating and error); the test
split's precision, recall and F1 are in `anim eval vr` (BENCHMARKS.md).

Locking. The contacts drive `controllers.motion_matching.runtime.FootLocks`
(the motion-matching controller's foot locking, two-bone IK and pelvis drop,
the same kernels): a landing toe is pinned where it touched down and the
leg bent onto it; a locked foot its leg can no longer reach first lifts its
heel about the toe, then, if that does not reach either, steps to the
predicted foot rather than being dragged, so the legs always join the hips
to the feet they stand on. The hips themselves stay where the predictor
hangs them from the tracked head (FootLocks' pelvis drop is off: moving the
hips would move the head off the headset). `floor`: no toe joint is shown
below it (a lower one is lifted by the same IK).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, replace

import numpy as np
from numba import njit

from controllers.motion_matching.kernels import fk_chain
from controllers.motion_matching.runtime import FootLocks

from . import data as vd


@dataclass(frozen=True)
class FeetConfig:
    """Foot contacts and locking of the sparse-VR avatar (m, m/s, s).

    on_height, off_height: a toe lands below on_height, lifts above off_height.
    on_speed, off_speed: a toe lands slower than on_speed, lifts faster than off_speed.
    unlock_radius: a locked foot is let go (it steps) when the predicted toe
        is this far from where it was pinned.
    halflife: the lock's spring (blend into and out of a lock).
    pelvis_drop: let the pelvis come down for stretched legs (FootLocks). Off:
        the hips carry the whole body up to the head, and the head is the
        tracked headset (a 5 cm drop moved it 2 cm off on standing clips).
    floor: the lowest height a toe joint is shown at: the toe joint sits
        above the floor by the foot's thickness (on the Bandai Namco rig at
        3.8 cm and more in every contact frame of the training data), so
        0.035 keeps the sole on or above the floor; -inf: no floor.
    toe_pivot (rad): a locked foot its leg cannot reach lifts its heel,
        turning about the planted toe by up to this angle, before it is let
        go to step (FootLocks, kernels.pivot_ankle): the predicted hips run
        on while the foot is pinned, and a late stance needs the heel-off a
        person makes; 0: the foot steps at once.
    contacts: where the contacts come from. 'learned': the network of
        controllers.vr.contacts (`contact_weights`, default the shipped
        one), a foot landing when its probability passes `contact_on` and
        lifting when it falls under `contact_off`; 'height': the toe height
        and speed rule above; 'auto': the learned one when the network
        reads this skeleton, else the rule.
    settle, settle_time (s): a landing foot's pin settles onto the
        predicted toe: each 60 Hz frame it moves horizontally by `settle` x
        exp(-age / settle_time) of the way, so it is still after ~0.5 s.
        None: 0 with the learned contacts, 0.07 with the height rule. The
        predictor lands its feet early and slides them on (a pin where the
        toe touched down is 4.9 cm from the data's foot on the val split,
        the predicted toe half-way through the stance 3.6 cm): with the rule,
        which lands feet later and lifts them earlier than the data, the
        settling brings the pin nearer the real foot for a little skating;
        the learned contacts land pins well enough without it.

    The defaults were chosen on the val split (never the test split), with
    the shipped diffusion model (`python -m controllers.vr.feet --locking`
    and a grid around it): among those tried, the least skating whose
    MPJPE, lower-body error and jitter stay within 4% of the unlocked
    prediction's (a margin under the 5% target: val and test differed by
    0.7 points of lower-body error before). Val: unlocked 31.2 cm/s; with
    the learned contacts 4.59 cm/s, MPJPE +2.1%, lower body +3.0%, jitter
    -10.6% (contact precision 0.964, recall 0.958: a foot lands above 0.9
    and lifts under 0.1, holding a stance through the prediction's wobbles).
    With the height rule (settle 0.07, halflife 0.05, toe_pivot 0.8) 8.9
    cm/s, lower body +3.3%. Landing at 0.8 skates 4.39 cm/s but the lower
    body goes to +4.7%; pins that settle (0.03) skate 5.42 cm/s, lower body
    +1.4%; without the heel-off 7.24 cm/s. What is left: feet the heel-off
    cannot save stepping in 1.6% of the data's contact frames (2.3 cm/s of
    the 4.59; three quarters of those steps come in the last third of the
    data's stance: the predicted leg has already left for its next step),
    stances the network misses (4.4%, 2.1 cm/s), the locked feet's own
    motion (0.1 cm/s). On the test split the same locking skates 6.52 cm/s
    (`anim eval vr`): the network's recall there is 0.943, against 0.958 on
    val; locked on the data's own contacts (`anim eval vr --data-contacts`)
    it would skate 4.09 (val 3.20), so there the detector is 2.4 cm/s of it
    (controllers/vr/weights/README.md: why a better network did not come of
    it).
    """

    contacts: str = "auto"
    contact_weights: str = ""
    contact_on: float = 0.9
    contact_off: float = 0.1
    on_height: float = 0.065
    off_height: float = 0.065
    on_speed: float = 0.6
    off_speed: float = 1.6
    unlock_radius: float = 0.3
    halflife: float = 0.03
    pelvis_drop: bool = False
    floor: float = 0.035
    toe_pivot: float = 1.2
    settle: float | None = None
    settle_time: float = 1.0 / 6.0


@njit(cache=True)
def _hysteresis(toe, prev, state, have_prev, on_h, off_h, on_v, off_v, fps):
    """Contacts [T, F] of toe positions [T, F, 3] (frames in order); prev [F, 3]
    (the toes of the frame before), state [F] (in contact) and have_prev[0]
    carry over between calls and are updated in place."""
    t_n, f_n = toe.shape[0], toe.shape[1]
    out = np.zeros((t_n, f_n), np.bool_)
    for t in range(t_n):
        for f in range(f_n):
            v = 0.0
            if have_prev[0]:
                dx = toe[t, f, 0] - prev[f, 0]
                dy = toe[t, f, 1] - prev[f, 1]
                dz = toe[t, f, 2] - prev[f, 2]
                v = np.sqrt(dx * dx + dy * dy + dz * dz) * fps
            h = toe[t, f, 1]
            if state[f]:
                if h > off_h or v > off_v:
                    state[f] = False
            elif h < on_h and v < on_v:
                state[f] = True
            out[t, f] = state[f]
            prev[f] = toe[t, f]
        have_prev[0] = True
    return out


class ContactDetector:
    """Causal contacts of the toe joints from their positions, one frame (or
    a run of consecutive frames) at a time, with hysteresis (FeetConfig)."""

    def __init__(self, config: FeetConfig = FeetConfig(), feet: int = 2, fps: float = vd.FPS):
        self.config, self.fps = config, float(fps)
        self.prev = np.zeros((feet, 3))
        self.state = np.zeros(feet, np.bool_)
        self.have_prev = np.zeros(1, np.bool_)

    def reset(self) -> None:
        self.prev[:] = 0
        self.state[:] = False
        self.have_prev[:] = False

    def step(self, toes: np.ndarray) -> np.ndarray:
        """toes [F, 3] (one frame) -> [F] bool, or [T, F, 3] -> [T, F]."""
        x = np.asarray(toes, np.float64)
        c = self.config
        out = _hysteresis(x.reshape((-1,) + x.shape[-2:]), self.prev, self.state, self.have_prev,
                          c.on_height, c.off_height, c.on_speed, c.off_speed, self.fps)
        return out.reshape(x.shape[:-1])


def detect(toes: np.ndarray, config: FeetConfig = FeetConfig(), fps: float = vd.FPS) -> np.ndarray:
    """[T, F] contacts of one clip's toe positions [T, F, 3] (from its first frame)."""
    return ContactDetector(config, toes.shape[-2], fps).step(toes)


def _learned(skeleton, config: FeetConfig):
    """The learned contacts FeetConfig asks for (None: the height rule)."""
    from . import contacts as vc
    if config.contacts not in ("auto", "learned", "height"):
        raise ValueError(f"FeetConfig.contacts {config.contacts!r}: 'auto', 'learned' or 'height'")
    if config.contacts == "height":
        return None
    if config.contacts == "learned":
        net = vc.load(config.contact_weights or vc.DEFAULT_WEIGHTS, skeleton)
    else:
        net = vc.for_skeleton(skeleton, config.contact_weights or None)
        if net is None:
            return None
    return vc.LearnedContacts(net, config.contact_on, config.contact_off)


class FootLocker:
    """Contacts from the predicted toes, then FootLocks on the pose. apply()
    takes and returns poses in the database layout (joint 0 the simulation
    bone, in world space)."""

    def __init__(self, skeleton, config: FeetConfig = FeetConfig(), fps: float = vd.FPS):
        self.skeleton, self.config, self.fps = skeleton, config, float(fps)
        self.parents = np.asarray(skeleton.parents, np.int64)
        self.toes = np.array([skeleton.index(n) for n in vd.joint_groups(skeleton)["feet"]], np.int64)
        self.feet = self.parents[self.toes]
        self._last = int(self.toes.max())       # forward kinematics up to the last toe
        self.detector = ContactDetector(config, len(self.toes), fps)
        self.learned = _learned(skeleton, config)
        self.settle = config.settle if config.settle is not None else (0.0 if self.learned is not None else 0.07)
        self.locks = FootLocks(self.parents, self.feet, self.toes, config.halflife, config.unlock_radius,
                               pelvis_drop=config.pelvis_drop, floor=config.floor, toe_pivot=config.toe_pivot)
        self._started = False
        self.contacts = np.zeros(len(self.toes), bool)      # the detector's, last frame

    def reset(self) -> None:
        """Forget the past: the next pose starts the detector and the locks afresh."""
        self.detector.reset()
        if self.learned is not None:
            self.learned.reset()
        self._started = False

    def apply(self, rot: np.ndarray, pos: np.ndarray, dt: float | None = None, contacts=None):
        """(rot [J, 4], pos [J, 3]) predicted -> (rot, pos) float32 with planted
        feet, and the contacts shown [F] (the detector's, less stepping feet).
        contacts [F]: lock on these instead of the detector's (the data's own,
        for the evaluation's bound on what perfect contacts would leave)."""
        dt = 1.0 / self.fps if dt is None else float(dt)
        rot64, pos64 = np.asarray(rot, np.float64), np.asarray(pos, np.float64)
        _, gpos = fk_chain(rot64, pos64, self.parents, self._last)
        if contacts is not None:
            self.contacts = np.asarray(contacts, bool).copy()
        elif self.learned is not None:
            self.contacts = self.learned.step(gpos)
        else:
            self.contacts = self.detector.step(gpos[self.toes])
        if not self._started:
            self.locks.reset(rot, pos, self.contacts)
            self._started = True
        r, p = self.locks.apply(rot64, pos64, self.contacts, dt)
        if self.settle > 0.0:
            self.locks.settle(gpos[self.toes], self.settle, self.config.settle_time, dt, self.fps)
        return r.astype(np.float32), p.astype(np.float32), self.locks.planted(self.contacts)


def lock_clip(rot: np.ndarray, pos: np.ndarray, skeleton, config: FeetConfig = FeetConfig(),
              fps: float = vd.FPS, contacts: np.ndarray | None = None):
    """One clip's predicted poses [T, J, 4] / [T, J, 3], frame after frame as
    the live controller locks them. Returns (rot, pos, detected contacts [T, F],
    shown contacts [T, F]). contacts [T, F]: lock on these (the data's) in
    place of the detector's."""
    lock = FootLocker(skeleton, config, fps)
    out_r = np.empty(rot.shape, np.float32)
    out_p = np.empty(pos.shape, np.float32)
    det = np.zeros((len(rot), len(lock.toes)), bool)
    shown = np.zeros_like(det)
    for t in range(len(rot)):
        out_r[t], out_p[t], shown[t] = lock.apply(rot[t], pos[t], 1.0 / fps,
                                                  None if contacts is None else contacts[t])
        det[t] = lock.contacts
    return out_r, out_p, det, shown


def contact_accuracy(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Precision, recall and F1 of predicted contacts against the data's
    (bool arrays of the same shape, every foot-frame counted), with the counts."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    return {"contact_precision": prec, "contact_recall": rec,
            "contact_f1": 2 * prec * rec / max(prec + rec, 1e-12), "contact_tp": tp, "contact_fp": fp,
            "contact_fn": fn, "contact_frames": int(p.size)}


SKATE_TARGET_CM_S = 5.0     # issue 23: foot skating in contact with the feet locked
WORSE_AT_MOST = 0.05        # MPJPE, lower-body error and jitter at most 5% worse than without the locking


def lock_targets(plain: dict, locked: dict) -> dict:
    """The locking's targets from one method's metrics without (`plain`) and
    with (`locked`) the feet locked: skating <= 5 cm/s; MPJPE, lower-body
    error and jitter at most 5% over the plain figures; p99 step <= 5 ms."""
    t = {"locked_skate_le_5cm_s": locked["foot_skate_cm_s"] <= SKATE_TARGET_CM_S}
    for k in ("mpjpe_cm", "lower_pe_cm", "jitter_km_s3"):
        t[f"locked_{k}_within_5pct"] = locked[k] <= (1.0 + WORSE_AT_MOST) * plain[k]
    if "latency_p99_ms" in locked:
        t["locked_p99_le_5ms"] = locked["latency_p99_ms"] <= 5.0
    return t


# ------------------------------------------------------------------ tuning
GRID = {"on_height": (0.05, 0.06, 0.07, 0.08), "hysteresis_height": (0.0, 0.01, 0.02),
        "on_speed": (0.4, 0.6, 0.8, 1.0, 1.2), "hysteresis_speed": (0.4, 0.8, 1.2, 1.6)}


def grid_search(toes: list, truth: list, base: FeetConfig = FeetConfig(), grid: dict = GRID) -> list:
    """The detector's thresholds over `grid` (off = on + hysteresis), scored
    by F1 against the data's contacts: toes, truth: per clip [T, F, 3]
    positions and [T, F] contacts. Returns [(F1, precision, recall,
    FeetConfig)], best first."""
    import itertools
    truth_all = np.concatenate(truth)
    out = []
    for oh, dh, ov, dv in itertools.product(grid["on_height"], grid["hysteresis_height"], grid["on_speed"],
                                            grid["hysteresis_speed"]):
        cfg = replace(base, on_height=oh, off_height=oh + dh, on_speed=ov, off_speed=ov + dv)
        a = contact_accuracy(np.concatenate([detect(t, cfg) for t in toes]), truth_all)
        out.append((a["contact_f1"], a["contact_precision"], a["contact_recall"], cfg))
    out.sort(key=lambda r: -r[0])
    return out


def tune(weights: str | None = None, split: str = "val", top: int = 5, progress: bool = True) -> list:
    """Predict every clip of `split` (never 'test') with a shipped model as
    the evaluation does and grid-search the detector's thresholds on it."""
    from anim import quat

    from . import evaluate as ve
    data, _, clips = ve.predict_split(weights, split, progress)
    toe_idx = [data.skeleton.index(n) for n in vd.joint_groups(data.skeleton)["feet"]]
    toes = [quat.fk(rot, pos, data.skeleton.parents)[1][:, toe_idx] for _, _, rot, pos in clips]
    return grid_search(toes, [data.contacts[frames] for _, frames, _, _ in clips])[:top]


HEIGHT_RULE = {"contacts": "height", "settle": 0.07, "halflife": 0.05, "toe_pivot": 0.8}   # its best, before the network
LOCKING_TRIALS = ({"contacts": "height", "toe_pivot": 0.0, "settle": 0.0, "on_height": 0.05, "off_height": 0.05,
                   "halflife": 0.05},                                                      # the first locking
                  HEIGHT_RULE, {**HEIGHT_RULE, "toe_pivot": 0.0}, {**HEIGHT_RULE, "settle": 0.0},
                  {}, {"toe_pivot": 0.0}, {"settle": 0.03}, {"contact_on": 0.5, "contact_off": 0.5},
                  {"contact_on": 0.8}, {"halflife": 0.05})


def score_locking(weights: str | None = None, trials=LOCKING_TRIALS, split: str = "val",
                  progress: bool = True) -> list:
    """Whole locking configurations (FeetConfig() with each trial's fields
    replaced) scored on `split` (never 'test') as the evaluation scores them:
    [(trial, metrics with the feet locked)], the first row the unlocked
    prediction's (trial None)."""
    from anim import quat

    from . import evaluate as ve
    data, pred, clips = ve.predict_split(weights, split, progress)
    hf = np.asarray(pred.head_forward, np.float32)
    poses = []
    for _, frames, rot, pos in clips:
        grot, gpos = vd.ground_truth_pose(data, frames, hf)
        gg = quat.fk(grot, gpos, data.skeleton.parents)[1][:, 1:]
        poses.append((rot, pos, ve.joint_rotations(grot), gg, data.contacts[frames]))
    out = []
    for trial in (None,) + tuple(trials):
        acc, seen = ve.Accumulator(data.skeleton), ([], [])
        for rot, pos, jg, gg, contacts in poses:
            if trial is not None:
                rot, pos, det, _ = lock_clip(rot, pos, data.skeleton, replace(FeetConfig(), **trial))
                seen[0].append(det)
                seen[1].append(contacts)
            acc.clip(ve.joint_rotations(rot), quat.fk(rot, pos, data.skeleton.parents)[1][:, 1:], jg, gg, contacts)
        m = acc.result()
        if seen[0]:
            m.update(contact_accuracy(np.concatenate(seen[0]), np.concatenate(seen[1])))
        out.append((trial, m))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m controllers.vr.feet",
                                description="Tune the foot-contact detector's thresholds on the val split; "
                                            "with --locking, score whole locking configurations there.")
    p.add_argument("--weights", default=None, help="model (.npz; default the shipped diffusion model)")
    p.add_argument("--top", type=int, default=5, help="configurations to print")
    p.add_argument("--locking", action="store_true",
                   help="score the FeetConfig variants of LOCKING_TRIALS by skating, MPJPE, lower-body error "
                        "and jitter against the unlocked prediction (val split)")
    a = p.parse_args(argv)
    if a.locking:
        rows = score_locking(a.weights)
        plain = rows[0][1]
        for trial, m in rows:
            rel = " ".join(f"{k} {m[k]:.3f} ({100 * (m[k] / plain[k] - 1):+.1f}%)"
                           for k in ("mpjpe_cm", "lower_pe_cm", "jitter_km_s3"))
            acc = (f" recall {m['contact_recall']:.3f} precision {m['contact_precision']:.3f}"
                   if trial is not None else "")
            print(f"{'unlocked' if trial is None else trial}: skate {m['foot_skate_cm_s']:.2f} cm/s {rel}{acc}")
        return 0
    for f1, prec, rec, cfg in tune(a.weights, top=a.top):
        print(f"F1 {f1:.4f} precision {prec:.4f} recall {rec:.4f}  "
              + " ".join(f"{k}={v}" for k, v in asdict(cfg).items() if k.endswith(("height", "speed"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
