"""The VR avatar in physics: the sparse-VR predictor as the kinematic stage
under the physics stage (the MuJoCo humanoid and its tracking policy).

    from controllers.vr.physics import vr_in_physics
    stage = vr_in_physics(predictor)             # PhysicsStage(VRController(predictor), policy=live)
    pose = stage.step(control_input, 1 / 60)     # head and hands in, the simulated body out

What physics adds to the predicted pose: the feet are the simulated body's,
held by friction and the floor's contacts, so they cannot slide through a
stance as the predicted ones do, and no part of the body passes through the
floor. What it costs: the physics stage tracks a lagged reference (its
`lag`: 4 ticks, 67 ms, so that the policy sees frames the predictor has
already made, as in its training; controllers/physics/tracker.py), so the
simulated head trails the headset by that much, and the tracking policy
can fall (the stage stands the body up again where it lies).

`evaluate` runs every test-split clip's tracked head and hands through the
stage, as the live loop does, and scores falls, the simulated head against
the tracked one, foot skating in the data's contact frames and the lowest
foot, beside the kinematic predictor's own figures on the same clips
(`python -m bench vr_physics` writes them to BENCHMARKS.md).
"""

from __future__ import annotations

import os
import time

import numpy as np

from anim import metrics as am
from anim import quat
from anim.control import ControlInput

from . import data as vd


def _live_policy() -> str:
    from controllers.physics.cli import LIVE_POLICY
    return LIVE_POLICY


def vr_in_physics(predictor, policy: str | None = None, foot_lock: bool = True, tracker=None):
    """A PhysicsStage over a VRController of `predictor` (policy: a file
    from `anim train policy`; default the live-loop policy)."""
    from controllers.physics.tracker import PhysicsStage, TrackerConfig

    from .controller import VRController
    return PhysicsStage(VRController(predictor, foot_lock=foot_lock), policy=policy or _live_policy(),
                        config=tracker or TrackerConfig())


class MocapReplay:
    """A kinematic stage that plays one clip's captured poses (the data's,
    in the predictor's world) a frame per tick, whatever the input: under
    the physics stage it separates what the tracking policy cannot follow
    from what the predictor adds. `clip` picks the clip; reset() starts it
    again. The first `hold` steps after a reset repeat the first frame: the
    physics stage fills its look-ahead with `lag` steps on the first tick's
    input and its first tick gives that input again, so the VR avatar shows
    its first frame lag + 1 times (the devices do not move); with hold =
    lag + 1 both references start the body at rest, frame for frame alike,
    mid-clip as it may be."""

    name = "mocap"

    def __init__(self, data: vd.VRData, head_forward, hold: int = 0):
        self.data, self.skeleton = data, data.skeleton
        self.hf = np.asarray(head_forward, np.float32)
        self.hold = int(hold)
        self.a = self.b = self.k = 0

    def clip(self, clip: int) -> None:
        self.a, self.b = int(self.data.starts[clip]), int(self.data.stops[clip])

    def _pose(self):
        from anim.skeleton import Pose, PoseInfo
        f = min(self.a + max(self.k - self.hold, 0), max(self.b - 1, self.a))
        rot, pos = vd.ground_truth_pose(self.data, np.array([f]), self.hf)
        return Pose(rot[0], pos[0], self.data.contacts[f].copy(), PoseInfo(controller=self.name, frame=f))

    def reset(self, pose=None):
        self.k = 0
        return self._pose()

    def step(self, control=None, dt: float = 1.0 / 60.0):
        self.k += 1
        return self._pose()


def clip_controls(data: vd.VRData, clip: int) -> list[ControlInput]:
    """The tracked head and hands of every frame of one clip, as the live loop gets them."""
    dev_q = vd.joints_to_devices(data.dev_q, data.calibration)
    return [ControlInput(**{k: (data.dev_p[f, i], dev_q[f, i]) for i, k in enumerate(vd.DEVICE_KEYS)})
            for f in range(int(data.starts[clip]), int(data.stops[clip]))]


def run_clip(stage, data: vd.VRData, clip: int) -> dict:
    """One clip through `stage` (a PhysicsStage over a VR controller), from
    a reset at its first frame. Returns the simulated global joint
    positions [T, J, 3] (frame t: the body after tick t), the kinematic
    reference's at the frame the body tracks, the data frame each tick
    shows (t - lag, the first frame repeated before that), per-tick times
    (ms), whether the body was upright (neither fallen nor recovering) and
    the stage's falls."""
    controls = clip_controls(data, clip)
    parents = data.skeleton.parents
    stage.reset(control=controls[0])           # the look-ahead holds the first frame's devices
    sim, ref, ms, upright = [], [], [], []
    for c in controls:
        t0 = time.perf_counter()
        pose = stage.step(c, 1.0 / vd.FPS)
        ms.append(1e3 * (time.perf_counter() - t0))
        upright.append(pose.info.status is None)
        sim.append(quat.fk(pose.rotations, pose.positions, parents)[1])
        g = pose.info.ghost
        ref.append(quat.fk(g.rotations, g.positions, parents)[1])
    n = len(controls)
    shown = np.maximum(np.arange(n) - stage.lag, 0) + int(data.starts[clip])
    return {"sim": np.array(sim), "ref": np.array(ref), "frames": shown, "ms": np.array(ms),
            "upright": np.array(upright),
            "falls": int(stage.stats["falls"]), "recoveries": int(stage.stats.get("recoveries", 0))}


def evaluate(predictor, data: vd.VRData | None = None, split: str = "test", max_clips: int = 0,
             policy: str | None = None, progress: bool = True, reference: str = "vr", clips=None) -> dict:
    """The physics avatar on every clip of `split` (originals, no mirrors):
    falls (total, per minute, clips without one), head error (cm: the
    simulated Head joint against the data's at the frame the body shows;
    and against the frame the headset is at now, which adds the lag),
    foot skating (cm/s, toes in the data's contact frames while the body
    is upright, as `anim eval vr` measures it), the lowest toe joint (cm
    above the floor; the kinematic reference's beside it), the pose error
    against the kinematic reference (cm, root-relative) and tick times
    (ms). Head, pose and toe figures are over the frames the body is
    upright (its share is reported). reference='mocap': the same policy
    tracking the captured motion itself (MocapReplay) instead of the
    predictor's, the baseline that shows what the policy alone loses.
    clips: these clip indices instead of the split's."""
    from tqdm import tqdm

    from . import feet as vf
    if data is None:
        data = vd.build(vd.VRDataConfig(), progress=progress)
    clips = list(data.clips(split, mirrored=False) if clips is None else clips)[:max_clips or None]
    if not clips:
        raise ValueError(f"no {split} clips")
    if reference == "vr":
        stage = vr_in_physics(predictor, policy=policy)
    elif reference == "mocap":
        from controllers.physics.tracker import PhysicsStage
        replay = MocapReplay(data, predictor.head_forward)
        stage = PhysicsStage(replay, policy=policy or _live_policy())
        replay.hold = stage.lag + 1        # as the avatar: its first frame until the first tick's after it
    else:
        raise ValueError(f"reference {reference!r}: 'vr' or 'mocap'")
    sk = data.skeleton
    groups = vd.joint_groups(sk)
    head, toes = sk.index(groups["devices"][0]), [sk.index(n) for n in groups["feet"]]
    hf = np.asarray(predictor.head_forward, np.float32)
    acc: dict = {k: [] for k in ("head", "head_now", "pose", "ms", "low_sim", "low_kin")}
    skate = [0.0, 0]
    falls, clean, frames_total, upright = 0, 0, 0, 0
    for c in tqdm(clips, desc=f"{reference} in physics", disable=not progress, unit="clip", leave=False):
        if reference == "mocap":
            replay.clip(c)
        r = run_clip(stage, data, c)
        up = r["upright"]
        f = r["frames"]
        grot, gpos = vd.ground_truth_pose(data, f, hf)
        gt = quat.fk(grot, gpos, sk.parents)[1]
        now = np.arange(int(data.starts[c]), int(data.stops[c]))
        grot_n, gpos_n = vd.ground_truth_pose(data, now, hf)
        gt_now = quat.fk(grot_n, gpos_n, sk.parents)[1]
        acc["head"].append(np.linalg.norm(r["sim"][up, head] - gt[up, head], axis=-1))
        acc["head_now"].append(np.linalg.norm(r["sim"][up, head] - gt_now[up, head], axis=-1))
        rel_s = r["sim"][up, 1:] - r["sim"][up, 1:2]
        rel_r = r["ref"][up, 1:] - r["ref"][up, 1:2]
        acc["pose"].append(np.linalg.norm(rel_s - rel_r, axis=-1).mean(-1))
        acc["ms"].append(r["ms"])
        acc["low_sim"].append(r["sim"][up][:, toes, 1].min(-1))
        acc["low_kin"].append(r["ref"][up][:, toes, 1].min(-1))
        contacts = data.contacts[f] & r["upright"][:, None]     # a fallen body's feet are not standing
        s = am.foot_skating(r["sim"][:, toes], contacts, vd.FPS)
        skate[0] += s["mean_cm_s"] * s["samples"]
        skate[1] += s["samples"]
        upright += int(r["upright"].sum())
        falls += r["falls"]
        clean += r["falls"] == 0
        frames_total += len(f)
    cat = {k: np.concatenate(v) for k, v in acc.items()}
    t = am.tick_times(cat["ms"])
    minutes = frames_total / vd.FPS / 60.0
    return {
        "reference": reference, "split": split, "clips": len(clips), "frames": frames_total, "policy": os.path.basename(policy or _live_policy()),
        "lag_ms": 1e3 * stage.lag / vd.FPS,
        "falls": falls, "falls_per_min": falls / max(minutes, 1e-9), "clips_without_fall": clean,
        "head_err_cm": 100 * float(cat["head"].mean()), "head_err_p95_cm": 100 * float(np.percentile(cat["head"], 95)),
        "head_err_now_cm": 100 * float(cat["head_now"].mean()),
        "pose_err_cm": 100 * float(cat["pose"].mean()),
        "upright_share": upright / max(frames_total, 1),
        "skate_cm_s": skate[0] / max(skate[1], 1),
        "lowest_toe_cm": 100 * float(cat["low_sim"].min()),
        "lowest_toe_p1_cm": 100 * float(np.percentile(cat["low_sim"], 1)),
        "kinematic_lowest_toe_cm": 100 * float(cat["low_kin"].min()),
        "floor_cm": 100 * vf.FeetConfig().floor,
        "tick_p50_ms": t["p50_ms"], "tick_p99_ms": t["p99_ms"],
    }
