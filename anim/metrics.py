"""Metrics of a controller's output: responsiveness, heading error, foot
skating, smoothness, tick time.

Plain functions over arrays, so that every controller (motion matching, learned
motion matching, VR, physics) is measured the same way:

    gpos      [T, J, 3]  global joint positions (metres, Y up), by FK of the poses
    root_rot  [T, 4]     root (joint 0) rotation, for the heading
    contacts  [T, F]     bool, feet in contact
    desired   [T, 3]     desired world velocity at each frame (what the input asks)
    fps                  frames per second (the runtime's 60 Hz)

Frames are evenly spaced at `fps`; frame i is at time i / fps. Velocities are
horizontal (y dropped) unless said otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from . import quat

__all__ = ["horizontal_velocity", "headings", "desired_velocity", "desired_heading", "sharp_changes",
           "heading_changes", "response_time", "responsiveness", "heading_error", "foot_skating", "joint_accelerations",
           "acceleration_percentile", "smoothness", "tick_times", "style_changes", "TARGETS"]

# The targets (shipped scripts, normal-style locomotion database).
TARGETS = {
    "response_s": 0.5,        # 90% of a walk-to-run or 180-degree change reached within 0.5 s
    "skating_cm_s": 2.0,      # mean horizontal foot speed while in contact
    "accel_ratio": 1.0,       # largest joint acceleration / database 99.9th percentile
}


# ------------------------------------------------------------- velocity, heading
def horizontal_velocity(pos: np.ndarray, fps: float) -> np.ndarray:
    """[T, 3] horizontal velocity (y = 0) of positions [T, 3], central differences
    inside, one-sided at the ends."""
    pos = np.asarray(pos, np.float64)
    v = np.zeros_like(pos)
    if len(pos) >= 2:
        v[1:-1] = (pos[2:] - pos[:-2]) * (fps / 2)
        v[0] = (pos[1] - pos[0]) * fps
        v[-1] = (pos[-1] - pos[-2]) * fps
    v[:, 1] = 0.0
    return v


def headings(root_rot: np.ndarray) -> np.ndarray:
    """[T, 2] unit ground direction (x, z) the root's forward (+Z) points to."""
    f = quat.rot(np.asarray(root_rot, np.float64), np.array([0.0, 0.0, 1.0]))[..., [0, 2]]
    return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-9)


def desired_velocity(move: np.ndarray, facing: np.ndarray, run: np.ndarray, speeds: dict) -> np.ndarray:
    """[T, 3] world velocity asked by a stick: move [T, 2] (world x, z, length <= 1),
    facing [T, 2] (NaN rows where not strafing: the character faces where it
    moves), run [T] bool, speeds {walk, run, side, back} in m/s.

    The stick is scaled per direction relative to the *asked* facing: forward by
    the walk (run) speed, sideways by `side`, backwards by `back`; when running,
    side and back speeds are at least half the run speed (as the motion-matching
    controller does). This is the velocity the user asks for, not a
    controller's lagging internal goal."""
    move = np.asarray(move, np.float64)
    facing = np.asarray(facing, np.float64)
    run = np.asarray(run, bool)
    fwd_speed = np.where(run, speeds["run"], speeds["walk"])
    side = np.where(run, np.maximum(speeds["side"], 0.5 * speeds["run"]), speeds["side"])
    back = np.where(run, np.maximum(speeds["back"], 0.5 * speeds["run"]), speeds["back"])
    n = np.linalg.norm(move, axis=-1, keepdims=True)
    strafe = np.isfinite(facing).all(axis=-1)
    head = np.where(strafe[:, None], np.nan_to_num(facing), move / np.maximum(n, 1e-9))
    # character space: z along the heading, x to its left
    z = head[:, 0] * move[:, 0] + head[:, 1] * move[:, 1]
    x = head[:, 1] * move[:, 0] - head[:, 0] * move[:, 1]
    z = z * np.where(z > 0, fwd_speed, back)
    x = x * side
    out = np.zeros((len(move), 3))
    out[:, 0] = head[:, 1] * x + head[:, 0] * z
    out[:, 2] = -head[:, 0] * x + head[:, 1] * z
    return out


def desired_heading(move: np.ndarray, facing: np.ndarray, initial=(0.0, 1.0)) -> np.ndarray:
    """[T, 2] the facing asked for: `facing` where given (strafing), else the
    move direction; with the stick at rest the last asked heading holds
    (`initial` before any)."""
    move = np.asarray(move, np.float64)
    facing = np.asarray(facing, np.float64)
    out = np.empty_like(move)
    last = np.asarray(initial, np.float64)
    for i in range(len(move)):
        if np.isfinite(facing[i]).all():
            last = facing[i] / max(np.linalg.norm(facing[i]), 1e-9)
        elif np.linalg.norm(move[i]) > 1e-3:
            last = move[i] / np.linalg.norm(move[i])
        out[i] = last
    return out


def heading_error(heading: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[T] unsigned angle (radians) between headings [T, 2] and targets [T, 2]."""
    h, g = np.asarray(heading, np.float64), np.asarray(target, np.float64)
    cross = h[:, 0] * g[:, 1] - h[:, 1] * g[:, 0]
    dot = (h * g).sum(-1)
    return np.abs(np.arctan2(cross, dot))


# ------------------------------------------------------------- responsiveness
def _angle(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-9 or nb < 1e-9:
        return 0.0
    return math.degrees(math.acos(float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def sharp_changes(desired: np.ndarray, min_angle_deg: float = 90.0, min_speed_ratio: float = 1.5,
                  rest_speed: float = 0.05) -> list[dict]:
    """Frames where the desired velocity [T, 3] jumps from one frame to the next:

    'turn'       both moving, direction changes by >= min_angle_deg;
    'speed-up'   same direction, speed grows by >= min_speed_ratio (walk -> run);
    'slow-down'  same direction, speed shrinks by that ratio (run -> walk);
    'start'      from rest (speed < rest_speed) to moving; 'stop' the reverse.

    Gradual changes (ramps, circles) are not events. Returns dicts with frame
    (the first frame asking the new velocity), kind, angle_deg, from and to
    (desired speeds, m/s)."""
    d = np.asarray(desired, np.float64)
    s = np.linalg.norm(d, axis=-1)
    out = []
    for i in range(1, len(d)):
        a, b = d[i - 1], d[i]
        if np.allclose(a, b, atol=1e-6):
            continue
        sa, sb = s[i - 1], s[i]
        kind = None
        ang = _angle(a, b)
        if sa < rest_speed and sb >= rest_speed:
            kind = "start"
        elif sa >= rest_speed and sb < rest_speed:
            kind = "stop"
        elif sa >= rest_speed and sb >= rest_speed:
            if ang >= min_angle_deg:
                kind = "turn"
            elif sb >= min_speed_ratio * sa:
                kind = "speed-up"
            elif sa >= min_speed_ratio * sb:
                kind = "slow-down"
        if kind:
            out.append({"frame": i, "kind": kind, "angle_deg": round(ang, 1), "from": float(sa), "to": float(sb)})
    return out


def heading_changes(target_heading: np.ndarray, min_angle_deg: float = 90.0) -> list[dict]:
    """Frames where the asked heading [T, 2] jumps by >= min_angle_deg (e.g. a
    new strafing direction): dicts with frame, kind 'facing', angle_deg."""
    h = np.asarray(target_heading, np.float64)
    out = []
    for i in range(1, len(h)):
        ang = _angle(h[i - 1], h[i])
        if ang >= min_angle_deg:
            s = 0.0
            out.append({"frame": i, "kind": "facing", "angle_deg": round(ang, 1), "from": s, "to": s})
    return out


def response_time(vel: np.ndarray, desired: np.ndarray, frame: int, stop: int, fps: float,
                  fraction: float = 0.9, max_angle_deg: float = 20.0) -> float | None:
    """Seconds from `frame` until the velocity vel [T, 3] reaches the asked
    velocity desired [T, 3], searched over frames [frame, stop); None if never.

    Speeding up, turning or starting: reached when the velocity projected on the
    desired direction is >= fraction * |desired| and its direction is within
    max_angle_deg of the desired one. Slowing down or stopping: when
    |vel - desired| <= (1 - fraction) * |desired before - desired| (that part
    of the change is done)."""
    d0 = desired[max(frame - 1, 0)]
    for i in range(frame, min(stop, len(vel))):
        d, v = desired[i], vel[i]
        sd = float(np.linalg.norm(d))
        if sd >= float(np.linalg.norm(d0)) - 1e-9 or _angle(d0, d) >= 90.0:
            if sd < 1e-9:
                continue
            ok = float(np.dot(v, d)) / sd >= fraction * sd and _angle(v, d) <= max_angle_deg
        else:
            ok = float(np.linalg.norm(v - d)) <= (1.0 - fraction) * float(np.linalg.norm(d0 - d))
        if ok:
            return (i - frame) / fps
    return None


def responsiveness(vel: np.ndarray, desired: np.ndarray, heading: np.ndarray, target_heading: np.ndarray,
                   fps: float, events: list[dict] | None = None, fraction: float = 0.9,
                   heading_tolerance_deg: float = 15.0) -> list[dict]:
    """For each sharp change (default: `sharp_changes(desired)`), the response
    time (`response_time`, None if not reached before the next change or the
    end), and for turns the time until the heading [T, 2] is within
    heading_tolerance_deg of the target [T, 2]."""
    if events is None:
        events = sharp_changes(desired)
        seen = {e["frame"] for e in events}
        events += [e for e in heading_changes(target_heading) if e["frame"] not in seen]
        events.sort(key=lambda e: e["frame"])
    out = []
    for n, e in enumerate(events):
        stop = events[n + 1]["frame"] if n + 1 < len(events) else len(vel)
        r = dict(e)
        r["time_s"] = float(e["frame"] / fps)
        r["response_s"] = (None if e["kind"] == "facing" else
                           response_time(vel, desired, e["frame"], stop, fps, fraction))
        if e["kind"] in ("turn", "facing"):
            err = np.degrees(heading_error(heading[e["frame"]:stop], target_heading[e["frame"]:stop]))
            hit = np.flatnonzero(err <= heading_tolerance_deg)
            r["heading_s"] = float(hit[0] / fps) if hit.size else None
        out.append(r)
    return out


# ---------------------------------------------------------------- foot skating
def foot_skating(foot_pos: np.ndarray, contacts: np.ndarray, fps: float) -> dict:
    """Horizontal foot speed while in contact. foot_pos [T, F, 3] global
    positions (e.g. the ankles), contacts [T, F] bool. A foot's step from frame
    i-1 to i counts when it is in contact at both. Returns mean_cm_s, p95_cm_s,
    max_cm_s (cm/s) and samples (foot-frames counted)."""
    p = np.asarray(foot_pos, np.float64)
    c = np.asarray(contacts, bool)
    if len(p) < 2:
        return {"mean_cm_s": 0.0, "p95_cm_s": 0.0, "max_cm_s": 0.0, "samples": 0}
    step = p[1:, :, [0, 2]] - p[:-1, :, [0, 2]]
    speed = np.linalg.norm(step, axis=-1) * fps * 100.0
    both = c[1:] & c[:-1]
    s = speed[both]
    if s.size == 0:
        return {"mean_cm_s": 0.0, "p95_cm_s": 0.0, "max_cm_s": 0.0, "samples": 0}
    return {"mean_cm_s": float(s.mean()), "p95_cm_s": float(np.percentile(s, 95)),
            "max_cm_s": float(s.max()), "samples": int(s.size)}


# ------------------------------------------------------------------ smoothness
def joint_accelerations(gpos: np.ndarray, fps: float) -> np.ndarray:
    """[T-2, J] magnitude (m/s^2) of the second finite difference of global
    joint positions gpos [T, J, 3] (frame i+1 of the input is row i)."""
    g = np.asarray(gpos, np.float64)
    if len(g) < 3:
        return np.zeros((0,) + g.shape[1:2])
    return np.linalg.norm(g[2:] - 2 * g[1:-1] + g[:-2], axis=-1) * fps * fps


def acceleration_percentile(segments, fps: float, q=99.9) -> np.ndarray | float:
    """Percentile(s) q of joint accelerations pooled over segments (an iterable
    of gpos [T, J, 3], e.g. one per clip, so that no difference crosses a clip
    boundary)."""
    acc = [joint_accelerations(g, fps).ravel() for g in segments]
    acc = np.concatenate([a for a in acc if a.size] or [np.zeros(1)])
    return np.percentile(acc, q)


def smoothness(gpos: np.ndarray, fps: float, reference: float, names=None, marks=None) -> dict:
    """The largest joint acceleration of gpos [T, J, 3] against a reference
    (the database's 99.9th percentile): max_m_s2, ratio (max / reference),
    where (joint, time of the middle frame), p999_m_s2 (this motion's own 99.9th
    percentile), above_fraction (share of joint-frames above the reference; a
    motion drawn like the database has about 0.001). With marks [T] bool (e.g.
    the frames a transition starts), also the largest acceleration whose
    3-frame stencil touches a marked frame (max_near_marks_m_s2) and elsewhere."""
    a = joint_accelerations(gpos, fps)
    if a.size == 0:
        return {"max_m_s2": 0.0, "ratio": 0.0, "p999_m_s2": 0.0, "above_fraction": 0.0}
    i, j = np.unravel_index(int(np.argmax(a)), a.shape)
    mx = float(a[i, j])
    out = {"max_m_s2": mx, "ratio": mx / max(float(reference), 1e-9), "reference_m_s2": float(reference),
           "joint": names[j] if names is not None else int(j), "time_s": float((i + 1) / fps),
           "p999_m_s2": float(np.percentile(a, 99.9)),
           "above_fraction": float((a > reference).mean())}
    if marks is not None:
        m = np.asarray(marks, bool)
        near = m[:-2] | m[1:-1] | m[2:]
        per_frame = a.max(axis=1)
        out["max_near_marks_m_s2"] = float(per_frame[near].max()) if near.any() else 0.0
        out["max_elsewhere_m_s2"] = float(per_frame[~near].max()) if (~near).any() else 0.0
    return out


# ----------------------------------------------------------------- other stats
def tick_times(ms: np.ndarray) -> dict:
    """Per-tick controller time in milliseconds -> p50, p99, max, mean."""
    ms = np.asarray(ms, np.float64)
    if ms.size == 0:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "mean_ms": float(ms.mean())}


def style_changes(asked: list, played: list, fps: float) -> list[dict]:
    """For each frame where the asked style [T] (None = unchanged) switches, the
    seconds until the played style [T] (the style tag of the clip on screen)
    first equals it; None if never before the next switch."""
    out = []
    current = None
    switches = []
    for i, s in enumerate(asked):
        if s is not None and s != current:
            if current is not None or i > 0:
                switches.append((i, current, s))
            current = s
    for n, (i, old, new) in enumerate(switches):
        stop = switches[n + 1][0] if n + 1 < len(switches) else len(played)
        hit = next((k for k in range(i, stop) if played[k] == new), None)
        out.append({"frame": i, "time_s": i / fps, "from": old, "to": new,
                    "latency_s": None if hit is None else (hit - i) / fps})
    return out


# ------------------------------------------------------------------ naturalness
def motion_statistics(gpos: np.ndarray, root_rot: np.ndarray, contacts: np.ndarray, feet, fps: float) -> np.ndarray:
    """Per-frame features of a motion for comparing its distribution with
    mocap's (`frechet_distance`): [T-2, 2J + 2F + 2] rows of joint speeds
    (m/s), joint acceleration magnitudes (m/s^2), foot heights (m) and
    horizontal foot speeds while in contact (m/s, 0 when not), the hips'
    horizontal speed (m/s) and turn rate (|yaw rate|, rad/s). gpos [T, J, 3]
    global positions (Y up), root_rot [T, 4] the hips' global rotation,
    contacts [T, F] bool for the joints `feet`. Central differences, so no row
    depends on a frame outside the segment: pass one clip or session at a
    time and stack the rows."""
    g = np.asarray(gpos, np.float64)
    t = g.shape[0]
    if t < 3:
        return np.zeros((0, 2 * g.shape[1] + 2 * len(feet) + 2))
    vel = (g[2:] - g[:-2]) * (fps / 2)                              # at frames 1 .. T-2
    acc = (g[2:] - 2 * g[1:-1] + g[:-2]) * fps * fps
    foot = g[1:-1][:, feet]
    foot_speed = np.linalg.norm(vel[:, feet][..., [0, 2]], axis=-1) * np.asarray(contacts, bool)[1:-1]
    root_speed = np.linalg.norm(vel[:, 0, [0, 2]], axis=-1)
    hd = headings(np.asarray(root_rot, np.float64))
    yaw = np.unwrap(np.arctan2(hd[:, 0], hd[:, 1]))
    turn = np.abs(yaw[2:] - yaw[:-2]) * (fps / 2)
    return np.concatenate([np.linalg.norm(vel, axis=-1), np.linalg.norm(acc, axis=-1), foot[..., 1], foot_speed,
                           root_speed[:, None], turn[:, None]], axis=1)


def frechet_distance(a: np.ndarray, b: np.ndarray, scale: np.ndarray | None = None) -> float:
    """Fréchet distance between Gaussians fitted to feature rows a [N, K] and
    b [M, K] (as FID: |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2)),
    after dividing every feature by `scale` [K] (e.g. the reference mocap's
    standard deviations, so that metres, m/s and m/s^2 weigh alike)."""
    import scipy.linalg
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance: need [N, K] and [M, K] with N, M >= 2, got {a.shape} and {b.shape}")
    if scale is not None:
        s = np.maximum(np.asarray(scale, np.float64), 1e-9)
        a, b = a / s, b / s
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(sa @ sb)
    if np.iscomplexobj(root):
        root = root.real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(sa + sb - 2 * root))


def upright_segments(fallen, after: int, min_len: int = 10) -> list:
    """[start, stop) frame ranges of a session with the body up: neither
    fallen nor within `after` frames of a fallen frame (the recovery's reset
    and blend). Falls are counted apart; the naturalness and acceleration
    figures are those of the motion between them."""
    f = np.asarray(fallen, bool)
    bad = f.copy()
    for k in range(1, after + 1):
        bad[k:] |= f[:-k]
    out, start = [], None
    for i, b in enumerate(np.append(bad, True)):
        if not b and start is None:
            start = i
        elif b and start is not None:
            if i - start >= min_len:
                out.append((start, i))
            start = None
    return out
