"""The headless runner: drive a controller with a stick script at 60 Hz, keep
the motion, measure it, write it out.

    from anim import database, runner, scripts
    db = database.load("out/databases/locomotion-normal.animdb")
    ctrl = MotionMatchingController(db)                     # any stage (anim_app.registry builds them)
    rec = runner.run(ctrl, scripts.load("turns"))          # a Recording
    m = runner.evaluate(rec, db, speeds=ctrl.speeds)         # a metrics dict (JSON-able)
    print(runner.report_text(m))
    runner.write_bvh(rec, "out/runs/turns.bvh")

`anim run` (anim_app.session) is the command-line face of this module. The
runner ticks controllers in the one loop (`anim.loop.Loop`) with a `Recorder`
sink; it talks to them only through the `Controller` protocol (reset, step);
search statistics are read from `controller.stats` when a controller keeps them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from . import metrics, quat
from .fileio import write_text
from .skeleton import Clip, Skeleton

FPS = 60.0
ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
ROT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")


@dataclass
class Recording:
    """What a headless run produced: T = steps + 1 frames (frame 0 is the reset
    pose), frame i at time i / fps. Input arrays hold what the script asked at
    each frame's time (the input of the step that starts there)."""

    skeleton: Skeleton
    fps: float
    rotations: np.ndarray                 # [T, J, 4] local
    positions: np.ndarray                 # [T, J, 3] local, joint 0 in world
    contacts: np.ndarray                  # [T, 2] bool
    move: np.ndarray                      # [T, 2]
    facing: np.ndarray                    # [T, 2], NaN where not strafing
    run: np.ndarray                       # [T] bool
    style: list                           # [T] asked style or None
    clips: list                           # [T] pose.info.clip (or None)
    tick_ms: np.ndarray                   # [T-1] time spent in controller.step
    transitions: np.ndarray | None = None # [T] bool: the step to this frame took a transition
    stats: dict = field(default_factory=dict)
    script: str = ""
    controller: str = ""
    clip_contacts: np.ndarray | None = None   # [T, 2] bool: the clip's contacts, before the controller
                                              # lifted feet it could not keep planted (re-planting steps)
    tracking: dict | None = None          # a physics stage's per-frame figures: pose_error_cm, tracking_error_cm,
                                          # root_distance_cm [T] (cm), fallen [T] bool; None for kinematic stages

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    def global_positions(self) -> np.ndarray:
        _, g = quat.fk(self.rotations, self.positions, self.skeleton.parents)
        return g

    def clip(self) -> Clip:
        return Clip(self.skeleton, self.rotations, self.positions, self.fps, source=self.script)


class Recorder:
    """A loop sink that keeps the motion, the input and the timings of a run
    and gives them as a `Recording` (`recording()`). Frame 0 is the reset
    pose; frame i + 1 the pose after step i. The input arrays hold at frame i
    the input of the step that starts there (the last frame: the source's
    input at the end time, else the last step's)."""

    def __init__(self):
        self.frames: list = []
        self.controls: list = []
        self.ms: list = []
        self.transitions: list = []
        self.stage = None
        self._end_control = None
        self._count = 0

    def reset(self, pose, control) -> None:
        self.frames, self.controls, self.ms, self.transitions = [pose], [], [], [False]
        self._end_control, self._count = None, 0

    def __call__(self, tick) -> None:
        stats = getattr(tick.stage, "stats", None)
        if isinstance(stats, dict) and "transitions" in stats:     # a stage that counts its transitions
            n = stats["transitions"]
            self.transitions.append(n > self._count)
            self._count = n
        self.stage = tick.stage
        self.frames.append(tick.pose)
        self.controls.append(tick.control)
        self.ms.append(tick.ms)

    def close(self, loop) -> None:
        self._end_control = loop.control_at(loop.time) if loop.source is not None else None
        self.stage = loop.stage

    def recording(self, fps: float, script: str = "") -> "Recording":
        frames = self.frames
        n = len(frames) - 1
        if n < 1:
            raise ValueError("Recorder: nothing recorded (no tick since the reset)")
        j = frames[0].rotations.shape[0]
        rot = np.empty((n + 1, j, 4), np.float32)
        pos = np.empty((n + 1, j, 3), np.float32)
        con = np.zeros((n + 1, 2), bool)
        clip_con = np.zeros((n + 1, 2), bool)
        clips: list = [None] * (n + 1)
        for i, p in enumerate(frames):
            rot[i], pos[i] = p.rotations, p.positions
            if p.contacts is not None:
                con[i] = np.asarray(p.contacts, bool)[:2]
            clips[i] = p.info.clip
            cc = p.info.clip_contacts
            clip_con[i] = con[i] if cc is None else np.asarray(cc, bool)[:2]
        tracking = None
        if any(p.info.pose_error_cm is not None for p in frames):
            tracking = {k: np.array([getattr(p.info, k) or 0.0 for p in frames], np.float64)
                        for k in ("pose_error_cm", "tracking_error_cm", "root_distance_cm")}
            tracking["fallen"] = np.array([bool(p.info.fallen) for p in frames])
        controls = self.controls + [self._end_control or self.controls[-1]]
        move = np.array([c.move for c in controls], np.float32).reshape(n + 1, 2)
        facing = np.full((n + 1, 2), np.nan, np.float32)
        for i, c in enumerate(controls):
            if c.facing is not None:
                facing[i] = c.facing
        run_ = np.array([bool(c.run) for c in controls])
        style = [c.style for c in controls]
        stage = self.stage
        transitions = np.array(self.transitions, bool) if len(self.transitions) == n + 1 else None
        stats = dict(getattr(stage, "stats", {}) or {})
        return Recording(stage.skeleton, fps, rot, pos, con, move, facing, run_, style, clips,
                         np.array(self.ms, np.float64), transitions, stats, clip_contacts=clip_con,
                         script=script, controller=type(stage).__name__, tracking=tracking)


def run(controller, script, seconds: float | None = None, fps: float = FPS, reset_pose=None) -> Recording:
    """Reset the controller, then step it round(seconds * fps) times with the
    script's input (`script(t) -> anim.control.ControlInput`, e.g. an `anim.scripts.Script`)
    in the runtime loop (`anim.loop.Loop`), recording every frame. The run
    length is bounded (anim.scripts.check_seconds: at most an hour)."""
    from .loop import Loop
    from .scripts import check_seconds

    if seconds is None:
        seconds = getattr(script, "duration", None)
        if seconds is None:
            raise ValueError("run: give seconds (the script has no duration)")
    seconds = check_seconds(seconds, "run: seconds")
    if not (math.isfinite(fps) and 1 <= fps <= 1000):
        raise ValueError(f"run: fps {fps!r} out of range (1 to 1000)")
    n = int(round(seconds * fps))
    if n < 1:
        raise ValueError(f"run: {seconds} s is less than one tick")
    rec = Recorder()
    Loop(controller, script, [rec], fps=fps).run(ticks=n, reset_pose=reset_pose)
    return rec.recording(fps, script=getattr(script, "path", ""))


# ----------------------------------------------------------------- database reference
_REFERENCE_CACHE: dict = {}


def database_reference(db, max_frames: int = 200_000) -> dict:
    """The database's own numbers to compare a run with: joint-acceleration
    percentiles (99th, 99.9th, max; m/s^2) pooled over its clips without
    crossing clip boundaries, and its foot skating (ankles, its contact labels).
    clips_by_content: per content tag (walk, run, ...), how many clips, the
    share whose largest joint acceleration is above the p99.9, and the median
    of that largest over the p99.9 (what playing the clips as they are
    gives). Clips are subsampled (every k-th) when the database holds more
    than max_frames frames. Cached per database object."""
    key = id(db)
    hit = _REFERENCE_CACHE.get(key)
    if hit is not None and hit[0] is db:
        return hit[1]
    fps = float(db.config.fps)
    starts, stops = np.asarray(db.range_starts), np.asarray(db.range_stops)
    step = max(1, int(np.ceil(db.num_frames / max_frames)))
    toes = [db.skeleton.index(f) for f in db.config.toes]   # the joints contacts are defined on
    acc, skate_num, skate_n, clip_max, content = [], 0.0, 0, [], []
    for c in range(0, len(starts), step):
        a, b = int(starts[c]), int(stops[c])
        g = db.global_positions(slice(a, b))
        acc.append(metrics.joint_accelerations(g[:, db.body_joints()], fps).ravel())   # helpers left out
        clip_max.append(float(acc[-1].max()) if acc[-1].size else 0.0)
        content.append(str(db.clip_tags[c].get("content", "-")) if c < len(db.clip_tags) else "-")
        s = metrics.foot_skating(g[:, toes], np.asarray(db.contacts[a:b]), fps)
        skate_num += s["mean_cm_s"] * s["samples"]
        skate_n += s["samples"]
    acc = np.concatenate(acc)
    p99, p999 = np.percentile(acc, [99.0, 99.9])
    ref = {"accel_p99_m_s2": float(p99), "accel_p999_m_s2": float(p999), "accel_max_m_s2": float(acc.max()),
           "skating_cm_s": skate_num / max(skate_n, 1), "clips_used": len(range(0, len(starts), step))}
    clip_max, content = np.array(clip_max), np.array(content)
    ref["clips_by_content"] = {
        str(t): {"clips": int((content == t).sum()), "above_p999": float((clip_max[content == t] > p999).mean()),
                 "median_max_ratio": float(np.median(clip_max[content == t]) / p999)}
        for t in sorted(set(content.tolist()))}
    _REFERENCE_CACHE.clear()
    _REFERENCE_CACHE[key] = (db, ref)
    return ref


# ---------------------------------------------------------------------- evaluation
def evaluate(rec: Recording, db, speeds: dict, series: bool = True) -> dict:
    """All metrics of a recording (a JSON-able dict). `db` gives the feet, the
    hips, the style tags of the played clips and the reference numbers;
    `speeds` ({walk, run, side, back} m/s, e.g. the controller's `.speeds`)
    turn the stick into the desired velocity. `series` adds per-frame time
    series (speed, desired speed, heading error, contacts, tick time)."""
    fps = rec.fps
    g = rec.global_positions()
    feet = [rec.skeleton.index(f) for f in db.config.feet]
    hips = rec.skeleton.index(db.config.hips)
    vel = metrics.horizontal_velocity(rec.positions[:, 0], fps)
    desired = metrics.desired_velocity(rec.move, rec.facing, rec.run, speeds)
    head = metrics.headings(rec.rotations[:, 0])
    target = metrics.desired_heading(rec.move, rec.facing, initial=head[0])
    herr = np.degrees(metrics.heading_error(head, target))
    moving = (np.linalg.norm(rec.move, axis=-1) > 1e-3) | np.isfinite(rec.facing).all(-1)
    events = metrics.responsiveness(vel, desired, head, target, fps)
    ref = database_reference(db)
    toes = [rec.skeleton.index(f) for f in db.config.toes]
    skating = metrics.foot_skating(g[:, toes], rec.contacts, fps)   # on the contact joints (toes)
    # the same over the clip's contacts, counting feet the controller lifts to re-plant (shown as not in contact)
    clip_contacts = rec.clip_contacts if rec.clip_contacts is not None else rec.contacts
    lifted = clip_contacts & ~rec.contacts
    skating_clip = metrics.foot_skating(g[:, toes], clip_contacts, fps)
    steps = {"share_of_clip_contact": float(lifted[clip_contacts].mean()) if clip_contacts.any() else 0.0,
             "count": int((lifted[1:] & ~lifted[:-1]).sum()),
             "skating_on_clip_contacts_cm_s": skating_clip["mean_cm_s"]}
    planted = g[:, toes, 1][rec.contacts]          # heights of the toes the pose shows in contact
    body = db.body_joints()                        # helper joints (fingers, twists) left out
    smooth = metrics.smoothness(g[:, body], fps, ref["accel_p999_m_s2"], [rec.skeleton.names[j] for j in body],
                                rec.transitions)
    roles = db.roles()
    pose_range = {"toe_max_m": float(g[:, toes, 1].max()),
                  "head_min_m": float(g[:, rec.skeleton.index(roles["head"]), 1].min())}
    tag_of = {name: tags.get("style") for name, tags in zip(db.clip_names, db.clip_tags)}
    played = [tag_of.get(c) for c in rec.clips]
    stats = dict(rec.stats)
    if "transitions" in stats:
        stats["average_transition_cost"] = (stats.get("transition_cost", 0.0) / stats["transitions"]
                                            if stats["transitions"] else 0.0)
    key = [e for e in events if e["kind"] == "speed-up" or (e["kind"] == "turn" and e["angle_deg"] >= 150)]
    key_times = [e["response_s"] for e in key]
    worst = None if not key_times else (None if any(t is None for t in key_times) else max(key_times))
    out = {
        "script": rec.script, "controller": rec.controller, "fps": fps, "seconds": (rec.num_frames - 1) / fps,
        "frames": rec.num_frames, "speeds": {k: float(v) for k, v in speeds.items()},
        "responsiveness": {
            "events": events,
            "key_events": len(key),
            "worst_key_response_s": worst,
            "mean_response_s": _mean([e["response_s"] for e in events if e["kind"] != "facing"]),
            "unreached": sum(e["response_s"] is None for e in events if e["kind"] != "facing"),
        },
        "heading_error_deg": {"mean": float(herr[moving].mean()) if moving.any() else 0.0,
                              "max": float(herr[moving].max()) if moving.any() else 0.0},
        "foot_skating": skating,
        "foot_steps": steps,
        "smoothness": smooth,
        "search": stats,
        "tick": metrics.tick_times(rec.tick_ms),
        "style_changes": metrics.style_changes(rec.style, played, fps),
        "ground": {"root_y_max_abs_m": float(np.abs(rec.positions[:, 0, 1]).max()),
                   "lowest_foot_m": float(g[:, feet, 1].min()),
                   # planted toes: how high the toes the pose shows in contact stand (the
                   # database's own contacts are all under its contact_height)
                   "planted_toe_height_max_m": float(planted.max()) if planted.size else 0.0,
                   "planted_above_contact_height": float((planted > db.config.contact_height).mean())
                   if planted.size else 0.0,
                   "contact_height_m": float(db.config.contact_height),
                   "hips_height_m": [float(g[:, hips, 1].min()), float(g[:, hips, 1].max())], **pose_range},
        "finite": bool(np.isfinite(rec.rotations).all() and np.isfinite(rec.positions).all()),
        "database": ref,
        "targets": targets(worst, skating["mean_cm_s"], smooth["ratio"], bool(key)),
    }
    if rec.tracking is not None:
        out["physics"] = physics_metrics(rec)
    if series:
        speed = np.linalg.norm(vel, axis=-1)
        out["series"] = {
            "t": _r(np.arange(rec.num_frames) / fps, 4),
            "speed_m_s": _r(speed), "desired_speed_m_s": _r(np.linalg.norm(desired, axis=-1)),
            "heading_error_deg": _r(herr, 2),
            "contacts": rec.contacts.astype(int).tolist(),
            "tick_ms": _r(rec.tick_ms, 4),
        }
    return out


def physics_metrics(rec: Recording) -> dict:
    """A physics stage's figures over a run: falls (a fall is counted when the
    body goes down; the stage's own count), the mean joint error against the
    kinematic reference (global, and relative to each pose's root), the root's
    ground distance to the reference (mean, p95, max), and how far the
    reference was pulled back to the body per upright minute (m/min): the
    root distance is held at its bound, so a body that walks slower than its
    reference shows there, not in the distance."""
    tr = rec.tracking
    fallen = tr["fallen"]
    down = int((fallen[1:] & ~fallen[:-1]).sum() + fallen[0])
    rd = tr["root_distance_cm"][1:]
    return {"falls": int(rec.stats.get("falls", down)), "recoveries": int(rec.stats.get("recoveries", 0)),
            "pushes": int(rec.stats.get("pushes", 0)),
            "fallen_share": float(fallen.mean()),
            "pose_error_cm": float(tr["pose_error_cm"][1:].mean()),
            "tracking_error_cm": float(tr["tracking_error_cm"][1:].mean()),
            "root_distance_cm": {"mean": float(rd.mean()), "p95": float(np.percentile(rd, 95)),
                                 "max": float(rd.max())},
            "pulled_back_m_per_min": float(rec.stats.get("shift_m", 0.0)
                                           / max((~fallen).sum() / (60.0 * rec.fps), 1e-9))}


def targets(worst_response, skating, accel_ratio, has_key_events: bool = True) -> dict:
    """Each issue target: the measured value, the bound, met or not."""
    t = metrics.TARGETS
    return {
        "response_s": {"value": worst_response, "bound": t["response_s"],
                       "met": None if not has_key_events else (worst_response is not None
                                                               and worst_response <= t["response_s"])},
        "skating_cm_s": {"value": skating, "bound": t["skating_cm_s"], "met": skating <= t["skating_cm_s"]},
        "accel_ratio": {"value": accel_ratio, "bound": t["accel_ratio"], "met": accel_ratio <= t["accel_ratio"]},
    }


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _r(a, nd=3):
    return [round(float(x), nd) for x in np.asarray(a).ravel()]


def _fmt(x, f="{:.2f}"):
    return "never" if x is None else f.format(x)


def report_text(m: dict) -> str:
    """The metrics as a few readable lines."""
    r = m["responsiveness"]
    lines = [f"{os.path.basename(m['script']) or 'run'}: {m['controller']}, {m['seconds']:.1f} s "
             f"({m['frames']} frames at {m['fps']:g} Hz)"]
    lines.append("  responsiveness (90% of the asked velocity):")
    for e in r["events"]:
        if e["kind"] == "facing":
            lines.append(f"    t={e['time_s']:5.2f}  {e['kind']:<9} {e['angle_deg']:5.0f} deg  "
                         f"heading within 15 deg after {_fmt(e.get('heading_s'))} s")
            continue
        extra = f", heading within 15 deg {_fmt(e.get('heading_s'))} s" if e["kind"] == "turn" else ""
        lines.append(f"    t={e['time_s']:5.2f}  {e['kind']:<9} {e['angle_deg']:5.0f} deg  "
                     f"{e['from']:.2f} -> {e['to']:.2f} m/s: {_fmt(e['response_s'])} s{extra}")
    if not r["events"]:
        lines.append("    (no sharp change in this script)")
    h = m["heading_error_deg"]
    lines.append(f"  heading error: mean {h['mean']:.1f} deg, max {h['max']:.1f} deg")
    s = m["foot_skating"]
    lines.append(f"  foot skating in contact: mean {s['mean_cm_s']:.2f} cm/s, p95 {s['p95_cm_s']:.2f}, "
                 f"max {s['max_cm_s']:.1f} ({s['samples']} foot-frames; database "
                 f"{m['database']['skating_cm_s']:.2f} cm/s)")
    fs = m.get("foot_steps")
    if fs and fs["count"]:
        lines.append(f"  re-planting steps: {fs['count']} ({100 * fs['share_of_clip_contact']:.1f}% of the clip's "
                     f"contact frames); skating over the clip's contacts, steps included: "
                     f"{fs['skating_on_clip_contacts_cm_s']:.2f} cm/s")
    gr = m.get("ground", {})
    if "planted_toe_height_max_m" in gr:
        lines.append(f"  planted toes: highest {100 * gr['planted_toe_height_max_m']:.1f} cm "
                     f"({100 * gr['planted_above_contact_height']:.2f}% of contact foot-frames above the "
                     f"database's contact height, {100 * gr['contact_height_m']:.0f} cm)")
    if "toe_max_m" in gr:
        lines.append(f"  pose range: toes up to {gr['toe_max_m']:.2f} m, head down to {gr['head_min_m']:.2f} m")
    a = m["smoothness"]
    lines.append(f"  largest joint acceleration: {a['max_m_s2']:.1f} m/s^2 ({a.get('joint')} at "
                 f"t={a.get('time_s', 0):.2f} s) = {a['ratio']:.2f} x database p99.9 "
                 f"({a.get('reference_m_s2', 0):.1f}); own p99.9 {a['p999_m_s2']:.1f}, "
                 f"{100 * a['above_fraction']:.2f}% of joint-frames above")
    if "max_near_marks_m_s2" in a:
        lines.append(f"    largest at transition frames {a['max_near_marks_m_s2']:.1f} m/s^2, "
                     f"elsewhere {a['max_elsewhere_m_s2']:.1f}")
    st = m["search"]
    if st and "limited" in st:
        lines.append(f"    held to the acceleration limit (RuntimeConfig.accel_limit) on {st['limited']} frames"
                     + (f", of which {st['drift_bound']} let past it to stay within "
                        f"{100 * st.get('max_drift_m', 0):.0f} cm of the animation" if st.get("drift_bound") else ""))
    if st:
        lines.append(f"  search: {st.get('searches', 0)} searches, {st.get('transitions', 0)} transitions, "
                     f"average cost {st.get('average_transition_cost', 0):.3f}, "
                     f"{st.get('forced', 0)} forced")
    ph = m.get("physics")
    if ph:
        lines.append(f"  physics: {ph['falls']} falls ({ph['recoveries']} recovered), {ph['pushes']} pushes; joint error "
                     f"{ph['pose_error_cm']:.1f} cm relative to the root ({ph['tracking_error_cm']:.1f} global) "
                     f"against the kinematic reference; root distance mean {ph['root_distance_cm']['mean']:.1f} "
                     f"cm, p95 {ph['root_distance_cm']['p95']:.1f}; reference pulled back "
                     f"{ph['pulled_back_m_per_min']:.2f} m per upright minute")
    t = m["tick"]
    lines.append(f"  tick: p50 {t['p50_ms']:.2f} ms, p99 {t['p99_ms']:.2f} ms, max {t['max_ms']:.1f} ms")
    for c in m["style_changes"]:
        lines.append(f"  style {c['from']} -> {c['to']} at t={c['time_s']:.2f}: on screen after "
                     f"{_fmt(c['latency_s'])} s")
    lines.append("  targets: " + "; ".join(
        f"{k} n/a" if v["met"] is None else
        f"{k} {_fmt(v['value'])} <= {v['bound']:g}: {'met' if v['met'] else 'MISSED'}"
        for k, v in m["targets"].items()))
    return "\n".join(lines)


def summary_table(results: list[dict]) -> str:
    """One Markdown row per run (for BENCHMARKS.md)."""
    head = ("| script | worst walk-to-run / 180 response (s) | mean response (s) | heading err mean (deg) "
            "| skating (cm/s) | steps (% of clip contact) | skating incl. steps (cm/s) "
            "| max accel (m/s^2) | / db p99.9 | planted toe max (cm) | searches | transitions | avg cost "
            "| tick p50 / p99 (ms) |")
    rows = [head, "|" + " --- |" * (head.count("|") - 1)]
    for m in results:
        r, st, t = m["responsiveness"], m["search"], m["tick"]
        rows.append(
            f"| {os.path.splitext(os.path.basename(m['script']))[0]} "
            f"| {_fmt(r['worst_key_response_s']) if r['key_events'] else '-'} "
            f"| {_fmt(r['mean_response_s'])} | {m['heading_error_deg']['mean']:.1f} "
            f"| {m['foot_skating']['mean_cm_s']:.2f} "
            f"| {100 * m.get('foot_steps', {}).get('share_of_clip_contact', 0.0):.1f} "
            f"| {m.get('foot_steps', {}).get('skating_on_clip_contacts_cm_s', m['foot_skating']['mean_cm_s']):.2f} "
            f"| {m['smoothness']['max_m_s2']:.1f} "
            f"| {m['smoothness']['ratio']:.2f} "
            f"| {100 * m.get('ground', {}).get('planted_toe_height_max_m', float('nan')):.1f} "
            f"| {st.get('searches', '-')} | {st.get('transitions', '-')} "
            f"| {st.get('average_transition_cost', 0):.3f} | {t['p50_ms']:.2f} / {t['p99_ms']:.2f} |")
    return "\n".join(rows)


# -------------------------------------------------------------------------- output
def bvh_skeleton(skeleton: Skeleton, positions: np.ndarray, tol: float = 1e-6) -> Skeleton:
    """The skeleton with BVH channels for writing `positions` [T, J, 3]: the root
    and every joint whose local position moves (e.g. the hips under the
    simulation bone) get position channels, the others rotations only."""
    moves = np.abs(positions - skeleton.offsets[None]).max(axis=0).max(axis=-1) > tol
    channels = tuple(ROOT_CHANNELS if (p < 0 or moves[j]) else ROT_CHANNELS
                     for j, p in enumerate(skeleton.parents.tolist()))
    return Skeleton(skeleton.names, skeleton.parents, skeleton.offsets, channels, skeleton.end_sites)


def write_bvh(rec: Recording, path: str, scale: float = 0.01) -> None:
    """Write the recorded motion as BVH on the controller's skeleton; `scale`
    0.01 writes centimetres (the database is in metres, the source data in cm)."""
    from .bvh import write_bvh as _write

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    skel = bvh_skeleton(rec.skeleton, rec.positions)
    _write(path, skel, Clip(skel, rec.rotations, rec.positions, rec.fps, source=rec.script), scale=scale)


def write_json(m: dict, path: str) -> None:
    """Write metrics as JSON (atomically: temporary file, then rename)."""
    write_text(path, json.dumps(m, indent=1))
