"""VR input sources: recorded head-and-hands traces, a WebXR bridge, OpenXR.

Every source gives head / left hand / right hand poses in the engine's axes
(metres, Y up, +Z forward, +X left) and DEVICE convention: rotation (w, x, y, z)
with the identity meaning "level, pointing along world +Z" (forward +Z, up +Y,
left +X of the device). `controllers.vr.controller.VRController` consumes them
through `anim.control.ControlInput.head / left_hand / right_hand`.

WebXR and OpenXR share one convention (right-handed, Y up, the viewer looking
down -Z, +X to the right), converted ONCE here (`webxr_to_engine`): a half turn
about +Y of the world and of the device frame, i.e.
    p = (-x, y, -z),   q = (w, -x, y, -z).

Trace file (JSON lines, `write_trace` / `read_trace`): the first line is a header
    {"format": "anim-vr-trace", "version": 1, "fps": 60, "axes": "...", "devices":
     ["head", "left_hand", "right_hand"], "source": "...", "ghost": bool, ...}
then one line per sample
    {"t": 0.0, "head": [px, py, pz, qw, qx, qy, qz], "left_hand": [...] or null,
     "right_hand": [...] or null}
optionally with "gt_rot" (J*4 floats) and "gt_pos" (J*3) of the ground-truth
pose (database layout), which a replay shows as a translucent ghost. Samples
need not be evenly spaced; a replay interpolates (linear positions, slerp).
`export_test_traces` writes traces of test-split clips (never seen in training).

WebXR bridge: `viewer.webxr_bridge.WebXRBridge` serves viewer/webxr/index.html
and a WebSocket (the `websockets` library) over which the headset's page
streams its poses in WebXR axes; it accepts only its own page (or allowed
origins), needs a token beyond loopback, and bounds message size, rate and
idle time (see that module). The avatar goes back to the page, which draws it
in the headset with the connection state, latency and errors
(`AvatarPublisher`, `drive_from_bridge`); tests/test_webxr_browser.py runs the
page in headless Chromium with the `iwer` emulator as the headset. WebXR needs a secure context: on a Quest,
`adb reverse tcp:8765 tcp:8765` then open http://localhost:8765/ in the
headset's browser (localhost counts as secure), or serve it behind HTTPS
(`--allow-origin https://...` for the proxy's origin).

OpenXR (`OpenXRSource`): through pyopenxr (`pip install pyopenxr`) when an
OpenXR runtime is installed; absent either, a clear RuntimeError says so.

    python -m viewer.vr_input export --out out/vr/traces --clips 3      # test clips -> traces
    python -m viewer.vr_input replay out/vr/traces/<clip>.jsonl [--model ...] [--headless DIR]
    python -m viewer.vr_input webxr [--port 8765] [--model ...]          # live, from a headset
    python -m viewer.vr_input webxr --headless DIR [--seconds 30]        # no display: PNGs + stats
    python -m viewer.vr_input webxr --no-window                          # only the headset's page draws
    python -m viewer.vr_input send-trace TRACE --url ws://127.0.0.1:8765/ws   # fake a headset
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anim import quat

TRACE_FORMAT = "anim-vr-trace"
TRACE_VERSION = 1
DEVICE_KEYS = ("head", "left_hand", "right_hand")
AXES_NOTE = ("engine axes: metres, Y up, +Z forward, +X left; rotations (w, x, y, z) in the device "
             "convention (identity = level, pointing along +Z)")
WEBXR_PAGE = Path(__file__).resolve().parent / "webxr" / "index.html"


# ====================================================================== axes
def webxr_to_engine(pos, rot):
    """A WebXR / OpenXR pose (position [3], rotation (w, x, y, z) [4]) -> engine
    axes and device convention: a half turn about +Y of both the world and the
    device frame."""
    p = np.asarray(pos, np.float32)
    q = np.asarray(rot, np.float32)
    return (np.array([-p[0], p[1], -p[2]], np.float32),
            quat.normalize(np.array([q[0], -q[1], q[2], -q[3]], np.float32)).astype(np.float32))


engine_to_webxr = webxr_to_engine      # the conversion is its own inverse


# ====================================================================== traces
@dataclass
class Trace:
    """t [T]; pos [T, 3, 3]; rot [T, 3, 4]; valid [T, 3] (device tracked);
    gt_rot [T, J, 4] / gt_pos [T, J, 3] or None; header dict."""

    t: np.ndarray
    pos: np.ndarray
    rot: np.ndarray
    valid: np.ndarray
    header: dict = field(default_factory=dict)
    gt_rot: np.ndarray | None = None
    gt_pos: np.ndarray | None = None

    @property
    def duration(self) -> float:
        return float(self.t[-1] - self.t[0]) if len(self.t) else 0.0


def write_trace(path, t, pos, rot, valid=None, header: dict | None = None, gt_rot=None, gt_pos=None) -> None:
    """Write a trace (JSON lines), atomically. Arrays as in `Trace`."""
    from anim.fileio import atomic_write
    t = np.asarray(t, np.float64)
    pos = np.asarray(pos, np.float32)
    rot = np.asarray(rot, np.float32)
    valid = np.ones(pos.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    head = {"format": TRACE_FORMAT, "version": TRACE_VERSION, "fps": 60, "axes": AXES_NOTE,
            "devices": list(DEVICE_KEYS), "ghost": gt_rot is not None, **(header or {})}
    lines = [json.dumps(head)]
    for i in range(len(t)):
        rec = {"t": round(float(t[i]), 6)}
        for k, key in enumerate(DEVICE_KEYS):
            rec[key] = ([round(float(v), 6) for v in pos[i, k]] + [round(float(v), 6) for v in rot[i, k]]
                        if valid[i, k] else None)
        if gt_rot is not None:
            rec["gt_rot"] = [round(float(v), 6) for v in np.asarray(gt_rot[i]).ravel()]
            rec["gt_pos"] = [round(float(v), 6) for v in np.asarray(gt_pos[i]).ravel()]
        lines.append(json.dumps(rec))
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")


TRACE_MAX_METRES = 1e4        # device and ghost positions further out than this are damaged data


def read_trace(path) -> Trace:
    """Read a trace file. A wrong format or version, a line that is not a JSON
    object, a missing or non-numeric field, NaN, infinite or out-of-range
    values (positions beyond TRACE_MAX_METRES, a zero quaternion, times that
    go backwards or span more than anim.scripts.MAX_SECONDS) are ValueErrors
    naming the file and line: '<file>, line <n>: <problem>'."""
    from anim.scripts import MAX_SECONDS

    def bad(n, problem):
        return ValueError(f"{path}, line {n}: {problem}" if n else f"{path}: {problem}")

    def numbers(n, key, value, count=None):
        if not isinstance(value, list) or (count is not None and len(value) != count) or \
                not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            want = f"a list of {count} numbers" if count else "a list of numbers"
            raise bad(n, f"{key} must be {want}, found {json.dumps(value)[:60]}")
        a = np.asarray(value, np.float64)
        if not np.isfinite(a).all():
            raise bad(n, f"{key} holds NaN or infinite values")
        return a

    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
        try:
            header = json.loads(first)
        except json.JSONDecodeError:
            raise bad(0, f"not an {TRACE_FORMAT} file (first line is not JSON)") from None
        if not isinstance(header, dict) or header.get("format") != TRACE_FORMAT or \
                header.get("version") != TRACE_VERSION:
            h = header if isinstance(header, dict) else {}
            raise bad(0, f"{h.get('format')} v{h.get('version')}, expected {TRACE_FORMAT} v{TRACE_VERSION}")
        ts, ps, rs, vs, grs, gps = [], [], [], [], [], []
        for n, line in enumerate(f, start=2):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise bad(n, f"not JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise bad(n, f"a sample must be a JSON object, found {json.dumps(rec)[:40]}")
            if "t" not in rec:
                raise bad(n, "sample without a time 't'")
            t = rec["t"]
            if not isinstance(t, (int, float)) or isinstance(t, bool) or not np.isfinite(t):
                raise bad(n, f"time 't' must be a finite number, found {json.dumps(t)[:40]}")
            p = np.zeros((3, 3), np.float32)
            r = np.tile(np.float32([1, 0, 0, 0]), (3, 1))
            v = np.zeros(3, bool)
            for k, key in enumerate(DEVICE_KEYS):
                d = rec.get(key)
                if d is not None:
                    d = numbers(n, key, d, 7)
                    if np.abs(d[:3]).max() > TRACE_MAX_METRES:
                        raise bad(n, f"{key} position {d[:3].tolist()} is beyond {TRACE_MAX_METRES:g} m")
                    if not 1e-3 < np.linalg.norm(d[3:]) < 1e3:
                        raise bad(n, f"{key} rotation {d[3:].tolist()} is not a quaternion (w x y z)")
                    p[k], r[k], v[k] = d[:3], d[3:], True
            if ts and t < ts[-1]:
                raise bad(n, f"sample time {t:g} goes backwards (previous {ts[-1]:g})")
            if ts and t - ts[0] > MAX_SECONDS:
                raise bad(n, f"the trace spans more than {MAX_SECONDS:g} s")
            ts.append(float(t))
            ps.append(p)
            rs.append(r)
            vs.append(v)
            if "gt_rot" in rec or "gt_pos" in rec:
                gr = numbers(n, "gt_rot", rec.get("gt_rot"))
                gp = numbers(n, "gt_pos", rec.get("gt_pos"))
                if gr.size % 4 or gp.size % 3 or gr.size // 4 != gp.size // 3 or \
                        (grs and gr.size != grs[0].size):
                    raise bad(n, f"gt_rot ({gr.size} numbers) and gt_pos ({gp.size}) do not describe the same "
                                 f"joints as 4 and 3 numbers each (the same on every line)")
                if np.abs(gp).max(initial=0) > TRACE_MAX_METRES:
                    raise bad(n, f"gt_pos is beyond {TRACE_MAX_METRES:g} m")
                grs.append(gr.astype(np.float32).reshape(-1, 4))
                gps.append(gp.astype(np.float32).reshape(-1, 3))
    if not ts:
        raise bad(0, "no samples")
    t = np.asarray(ts)
    return Trace(t, np.stack(ps), quat.normalize(np.stack(rs)).astype(np.float32), np.stack(vs), header,
                 np.stack(grs) if len(grs) == len(ts) else None, np.stack(gps) if len(gps) == len(ts) else None)


class TraceReplay:
    """Plays a trace back: `control_at(t)` (t in seconds from the trace start)
    gives an `anim.control.ControlInput` with the interpolated device poses;
    `ghost_at(t)` the ground-truth pose if the trace has one. Calling the
    replay with t does control_at (usable as run_headless's input script)."""

    DEVICE_API = "joints"          # traces hold joint poses (controllers.vr.calibrate.DEVICE_OFFSETS)

    def __init__(self, trace: Trace | str, loop: bool = False):
        self.trace = read_trace(trace) if isinstance(trace, (str, os.PathLike)) else trace
        self.loop = loop

    @property
    def duration(self) -> float:
        return self.trace.duration

    def _locate(self, t: float):
        tr = self.trace
        t = tr.t[0] + (t % max(self.duration, 1e-9) if self.loop else min(max(t, 0.0), self.duration))
        i = int(np.clip(np.searchsorted(tr.t, t, side="right") - 1, 0, len(tr.t) - 1))
        j = min(i + 1, len(tr.t) - 1)
        a = 0.0 if j == i else float((t - tr.t[i]) / max(tr.t[j] - tr.t[i], 1e-12))
        return i, j, a

    def devices_at(self, t: float):
        """((pos, rot) or None for head, left hand, right hand) at time t."""
        tr = self.trace
        i, j, a = self._locate(t)
        out = []
        for k in range(3):
            if not tr.valid[i, k]:
                out.append(None)
                continue
            jj = j if tr.valid[j, k] else i
            p = tr.pos[i, k] * (1 - a) + tr.pos[jj, k] * a
            r = quat.slerp(tr.rot[i, k], tr.rot[jj, k], np.float32(a)).astype(np.float32)
            out.append((p.astype(np.float32), r))
        return out

    def control_at(self, t: float):
        from anim.control import ControlInput
        h, lh, rh = self.devices_at(t)
        return ControlInput(head=h, left_hand=lh, right_hand=rh)

    __call__ = control_at

    def ghost_at(self, t: float):
        tr = self.trace
        if tr.gt_rot is None:
            return None
        from anim.skeleton import Pose
        i, _, _ = self._locate(t)
        return Pose(tr.gt_rot[i], tr.gt_pos[i])


def export_test_traces(out_dir, data=None, clips: int = 3, seconds: float | None = None, ghost: bool = True,
                       split: str = "test") -> list[str]:
    """Write traces of the first `clips` clips of a split (default the test
    split: never seen in training) into out_dir, in the device convention of
    the data's calibration. Returns the paths."""
    from controllers.vr import data as vd
    if data is None:
        data = vd.build(vd.VRDataConfig(), progress=False)
    hf = vd.head_forward_axis(data.calibration)
    paths = []
    for c in data.clips(split, mirrored=False)[:clips]:
        a, b = int(data.starts[c]), int(data.stops[c])
        if seconds:
            b = min(b, a + int(round(seconds * vd.FPS)))
        frames = np.arange(a, b)
        rot = vd.joints_to_devices(data.dev_q[frames], data.calibration)
        gr, gp = vd.ground_truth_pose(data, frames, hf) if ghost else (None, None)
        name = data.clip_ids[c].replace("/", "__")
        path = os.path.join(out_dir, f"{name}.jsonl")
        write_trace(path, (frames - a) / vd.FPS, data.dev_p[frames], rot,
                    header={"source": data.clip_ids[c], "split": split,
                            "skeleton": data.skeleton.signature()}, gt_rot=gr, gt_pos=gp)
        paths.append(path)
    return paths


# ====================================================================== viewer input
def _device_input_class():
    from viewer.input import DeviceInput

    @dataclass
    class VRDeviceInput(DeviceInput):
        """A DeviceInput that also carries tracked head / hands (engine axes,
        device convention) into the ControlInput it converts to."""

        head: tuple | None = None
        left_hand: tuple | None = None
        right_hand: tuple | None = None

        def to_control(self, styles=(), current_style=None, facing_yaw=None):
            c = super().to_control(styles, current_style, facing_yaw)
            c.head, c.left_hand, c.right_hand = self.head, self.left_hand, self.right_hand
            return c

        def without_edges(self):
            d = super().without_edges()
            return VRDeviceInput(**{k: getattr(d, k) for k in d.__dataclass_fields__},
                                 head=self.head, left_hand=self.left_hand, right_hand=self.right_hand)

    return VRDeviceInput


class VRInput:
    """An input device for viewer.app.run_live: keyboard / gamepad for the
    viewer's own toggles and camera, head and hands from `source` (a
    TraceReplay played in real time, a WebXRBridge, or an OpenXRSource: anything
    with `devices_at(t)` or `latest()`)."""

    LABELS = {"TraceReplay": "VR replay", "WebXRBridge": "WebXR", "OpenXRSource": "OpenXR"}

    def __init__(self, source, keyboard=None, label: str | None = None):
        from viewer.input import GamepadKeyboardInput
        self.source = source
        self.keyboard = keyboard if keyboard is not None else GamepadKeyboardInput()
        self.start = time.perf_counter()
        self.cls = _device_input_class()
        self.label = label or self.LABELS.get(type(source).__name__, "VR")   # the HUD's input line

    def update(self, events, pressed=None):
        d = self.keyboard.update(events, pressed)
        if hasattr(self.source, "devices_at"):
            devs = self.source.devices_at(time.perf_counter() - self.start)
        else:
            devs = self.source.latest() or (None, None, None)
        fields = {k: getattr(d, k) for k in d.__dataclass_fields__}
        fields["device"] = f"{self.label} + {d.device}"
        return self.cls(**fields, head=devs[0], left_hand=devs[1], right_hand=devs[2])


# ====================================================================== OpenXR
class OpenXRSource:
    """Head and controller poses from an OpenXR runtime through pyopenxr.

    Needs `pip install pyopenxr` and an installed, active OpenXR runtime
    (SteamVR, Monado, Meta's PC runtime, ...). The frame loop runs in a
    background thread (pyopenxr's ContextObject, which opens its own small
    OpenGL window as OpenXR requires a graphics binding); `latest()` gives the
    newest poses in engine axes. Not exercised by the test suite (no runtime
    there): only the clear error when pyopenxr or a runtime is missing is.
    Poses are located in the STAGE space (y = 0 on the floor, as WebXR's
    'local-floor'), which the user's height calibration needs."""

    DEVICE_API = "openxr"          # its row of controllers.vr.calibrate.DEVICE_OFFSETS

    def __init__(self):
        try:
            import xr  # noqa: F401  (pyopenxr)
        except ImportError:
            raise RuntimeError("OpenXR input needs pyopenxr (pip install pyopenxr) and an OpenXR runtime; "
                               "without a headset use a trace (python -m viewer.vr_input replay) or the "
                               "WebXR bridge (python -m viewer.vr_input webxr)") from None
        self._latest = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="openxr", daemon=True)
        self._thread.start()
        time.sleep(0.5)
        if self._error:
            raise RuntimeError(f"OpenXR: no usable runtime ({self._error})")

    def _run(self):
        try:
            import ctypes

            import xr
            with xr.ContextObject(instance_create_info=xr.InstanceCreateInfo(
                    enabled_extension_names=[xr.KHR_OPENGL_ENABLE_EXTENSION_NAME]),
                    reference_space_create_info=xr.ReferenceSpaceCreateInfo(
                        reference_space_type=xr.ReferenceSpaceType.STAGE)) as ctx:
                paths = (xr.Path * 2)(xr.string_to_path(ctx.instance, "/user/hand/left"),
                                      xr.string_to_path(ctx.instance, "/user/hand/right"))
                action = xr.create_action(action_set=ctx.default_action_set, create_info=xr.ActionCreateInfo(
                    action_type=xr.ActionType.POSE_INPUT, action_name="hand_pose",
                    localized_action_name="Hand pose", count_subaction_paths=2, subaction_paths=paths))
                bindings = (xr.ActionSuggestedBinding * 2)(
                    xr.ActionSuggestedBinding(action, xr.string_to_path(ctx.instance,
                                                                        "/user/hand/left/input/grip/pose")),
                    xr.ActionSuggestedBinding(action, xr.string_to_path(ctx.instance,
                                                                        "/user/hand/right/input/grip/pose")))
                xr.suggest_interaction_profile_bindings(ctx.instance, xr.InteractionProfileSuggestedBinding(
                    interaction_profile=xr.string_to_path(ctx.instance,
                                                          "/interaction_profiles/khr/simple_controller"),
                    count_suggested_bindings=2, suggested_bindings=bindings))
                spaces = [xr.create_action_space(ctx.session, xr.ActionSpaceCreateInfo(
                    action=action, subaction_path=p)) for p in paths]
                view_space = xr.create_reference_space(ctx.session, xr.ReferenceSpaceCreateInfo(
                    reference_space_type=xr.ReferenceSpaceType.VIEW))
                for frame_state in ctx.frame_loop():
                    if self._stop.is_set():
                        break
                    if ctx.session_state != xr.SessionState.FOCUSED:
                        continue
                    active = xr.ActiveActionSet(ctx.default_action_set, xr.NULL_PATH)
                    xr.sync_actions(ctx.session, xr.ActionsSyncInfo(count_active_action_sets=1,
                                                                     active_action_sets=ctypes.pointer(active)))
                    devs = []
                    for space in [view_space] + spaces:
                        loc = xr.locate_space(space, ctx.space, frame_state.predicted_display_time)
                        ok = loc.location_flags & xr.SPACE_LOCATION_POSITION_VALID_BIT and \
                            loc.location_flags & xr.SPACE_LOCATION_ORIENTATION_VALID_BIT
                        if not ok:
                            devs.append(None)
                            continue
                        p, o = loc.pose.position, loc.pose.orientation
                        devs.append(webxr_to_engine((p.x, p.y, p.z), (o.w, o.x, o.y, o.z)))
                    with self._lock:
                        self._latest = tuple(devs)
        except Exception as e:       # no runtime, no headset, lost session
            self._error = repr(e)

    def latest(self):
        with self._lock:
            return self._latest

    def stop(self):
        self._stop.set()


# ====================================================================== command line
def _controller(model: str | None):
    from controllers.vr.controller import VRController
    from controllers.vr.evaluate import DEFAULT_WEIGHTS
    return VRController.load(model or str(DEFAULT_WEIGHTS["diffusion"]))


def fit_controller(ctrl, source, auto: bool = True):
    """Fit the VR controller to the devices of `source` (its DEVICE_API: which
    row of controllers.vr.calibrate.DEVICE_OFFSETS turns the reported head and
    grip poses into joints) and, with `auto`, to the user's size from their
    first still, upright second (calibrate.AutoCalibrator). Returns ctrl."""
    from controllers.vr import calibrate
    api = getattr(source, "DEVICE_API", "joints")
    ref = calibrate.reference_of_predictor(ctrl.predictor)
    ctrl.set_calibration(calibrate.Calibration(api=api, reference=ref))
    ctrl.calibrator = calibrate.AutoCalibrator(ref, api) if auto and api != "joints" else None
    return ctrl


def run_webxr_headless(ctrl, bridge, seconds: float, out_dir: str, frames_to_save: int = 6) -> dict:
    """Drive `ctrl` from `bridge` for `seconds` of wall time without a window
    (ticks paced to the clock: a headset streams in real time), rendering
    offscreen: PNGs and a contact sheet into out_dir. Before any pose arrives
    the avatar waits standing. run_headless's stats."""
    from anim.control import ControlInput
    from viewer.app import run_headless
    start = time.perf_counter()

    def script(t):
        wait = start + t - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        h, lh, rh = bridge.latest() or (None, None, None)
        return ControlInput(head=h, left_hand=lh, right_hand=rh)
    return run_headless(_named(ctrl), ctrl.skeleton.parents, script, seconds, out_dir, frames_to_save,
                        render_every=15)


def _named(ctrl) -> dict:
    """{the controller's class name: ctrl} for the viewer's HUD (the wrapped
    controller's name when ctrl is an AvatarPublisher)."""
    return {type(getattr(ctrl, "controller", ctrl)).__name__: ctrl}


def drive_from_bridge(ctrl, bridge, stop: threading.Event, seconds: float | None = None, hz: float = 60.0) -> int:
    """Step `ctrl` from the bridge's newest pose at `hz` (paced to the clock)
    until `stop` is set or `seconds` have passed, without drawing: the
    headset's page draws the avatar, which `ctrl` (an AvatarPublisher) sends
    it. Before any pose arrives the avatar waits standing. Returns the ticks."""
    from anim.control import ControlInput
    dt, start, ticks = 1.0 / hz, time.perf_counter(), 0
    while not stop.is_set() and (seconds is None or ticks < seconds * hz):
        h, lh, rh = bridge.latest() or (None, None, None)
        ctrl.step(ControlInput(head=h, left_hand=lh, right_hand=rh), dt)
        ticks += 1
        wait = start + ticks * dt - time.perf_counter()
        if wait > 0:
            stop.wait(wait)
        elif wait < -0.25:                 # too slow to keep up: drop time rather than spiral
            start = time.perf_counter() - ticks * dt
    return ticks


def _port(text: str) -> int:
    import argparse
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is a number from 0 to 65535 (0: any free port)")
    return port


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m viewer.vr_input", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write traces of test-split clips")
    e.add_argument("--out", default="out/vr/traces")
    e.add_argument("--clips", type=int, default=3)
    e.add_argument("--seconds", type=float, default=None)
    e.add_argument("--no-ghost", action="store_true", help="leave the ground-truth pose out")
    r = sub.add_parser("replay", help="drive the VR controller from a trace")
    r.add_argument("trace")
    r.add_argument("--model", default=None, help="model .npz (default: shipped diffusion weights)")
    r.add_argument("--headless", default=None, metavar="OUT_DIR", help="render offscreen PNGs instead of a window")
    r.add_argument("--physics", action="store_true",
                   help="the simulated body: the MuJoCo humanoid tracks the avatar (controllers/vr/physics.py); "
                        "the predicted pose is drawn as its ghost")
    r.add_argument("--policy", default=None, metavar="FILE",
                   help="with --physics: a policy from `anim train policy` (default the live-loop policy)")
    w = sub.add_parser("webxr", help="serve the WebXR page and drive the VR controller from a headset")
    w.add_argument("--host", default="127.0.0.1",
                   help="interface to serve on (default loopback; any other needs the token the engine prints)")
    w.add_argument("--port", type=_port, default=8765)
    w.add_argument("--model", default=None)
    w.add_argument("--token", default=None, help="the bridge's token (default: a random one beyond loopback)")
    w.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="also accept pages from this origin (scheme://host[:port], e.g. an HTTPS proxy); repeatable")
    w.add_argument("--headless", default=None, metavar="OUT_DIR",
                   help="no window: serve the page, drive the avatar for --seconds, write PNGs and a contact sheet")
    w.add_argument("--no-window", action="store_true",
                   help="no window of the engine's own: the headset's page draws the avatar "
                        "(until Ctrl-C or --seconds)")
    w.add_argument("--seconds", type=float, default=None,
                   help="with --headless (default 30) or --no-window (default: until Ctrl-C): how long to serve")
    o = sub.add_parser("openxr", help="drive the VR controller from an OpenXR runtime (pyopenxr)")
    o.add_argument("--model", default=None)
    s = sub.add_parser("send-trace", help="stream a trace to a running bridge (a fake headset)")
    s.add_argument("trace")
    s.add_argument("--url", default="ws://127.0.0.1:8765/ws",
                   help="the bridge's WebSocket, with ?token=... when it needs one")
    args = p.parse_args(argv)

    if args.cmd == "export":
        for path in export_test_traces(args.out, clips=args.clips, seconds=args.seconds, ghost=not args.no_ghost):
            print(path)
        return 0
    if args.cmd == "send-trace":
        from viewer.webxr_bridge import send_trace
        print(f"sent {send_trace(args.trace, args.url)} poses")
        return 0
    if args.cmd == "webxr":
        if args.seconds is None and args.headless:
            args.seconds = 30.0
        if args.seconds is not None and not (math.isfinite(args.seconds) and 0 < args.seconds <= 86400):
            p.error(f"--seconds {args.seconds}: give a number of seconds in (0, 86400]")
        from viewer.webxr_bridge import access_policy
        try:
            access_policy(args.host, args.token, args.allow_origin)
        except ValueError as e:
            p.error(str(e))
    from viewer.app import run_headless, run_live
    ctrl = _controller(args.model)
    parents = ctrl.skeleton.parents
    if args.cmd == "replay":
        replay = TraceReplay(args.trace)
        vr = ctrl
        if args.physics:
            from controllers.physics.tracker import PhysicsStage
            from controllers.vr.physics import _live_policy
            ctrl = PhysicsStage(vr, policy=args.policy or _live_policy())

        def script(t):
            vr.ghost = None if args.physics else replay.ghost_at(t)     # under physics the ghost is the avatar
            return replay.control_at(t)
        if args.headless:
            stats = run_headless(ctrl, parents, script, replay.duration, args.headless, 6)
            print(f"{stats['ticks']} ticks, controller {stats['controller_ms_mean']:.2f} ms/tick; "
                  f"contact sheet {stats['contact_sheet']}")
            return 0
        run_live(ctrl, parents, input_device=VRInput(replay), title="anim: VR trace replay")
        return 0
    if args.cmd == "webxr":
        from viewer.webxr_bridge import AvatarPublisher, WebXRBridge
        try:
            bridge = WebXRBridge(args.host, args.port, token=args.token, allow_origins=args.allow_origin).start()
        except RuntimeError as e:
            print(f"anim: error: {e}", file=sys.stderr)
            return 1
        fit_controller(ctrl, bridge)
        with bridge:
            ctrl = AvatarPublisher(ctrl, bridge)      # the avatar goes back to the page too
            print(f"open {bridge.page_url} in the headset's browser"
                  + (" (the token is part of the address)" if bridge.token else "")
                  + "; viewer/webxr_bridge.py explains adb reverse, HTTPS and the token", flush=True)
            if args.headless:
                stats = run_webxr_headless(ctrl, bridge, args.seconds, args.headless)
                counts, _ = bridge.error_summary()
                print(f"{stats['ticks']} ticks over {args.seconds:g} s; {bridge.messages} poses received, "
                      f"{sum(counts.values())} rejected {counts}; contact sheet {stats['contact_sheet']}")
            elif args.no_window:
                try:
                    ticks = drive_from_bridge(ctrl, bridge, threading.Event(), args.seconds)
                except KeyboardInterrupt:
                    ticks = None
                counts, _ = bridge.error_summary()
                print(f"{'' if ticks is None else f'{ticks} ticks; '}{bridge.messages} poses received, "
                      f"{sum(counts.values())} rejected {counts}; {bridge.avatar_frames} avatars sent")
            else:
                try:
                    run_live(_named(ctrl), parents, input_device=VRInput(bridge), title="anim: WebXR")
                except RuntimeError as e:       # no display / OpenGL window
                    print(f"anim: error: {e}\n(webxr serves without a window too: add --headless DIR)",
                          file=sys.stderr)
                    return 1
        return 0
    if args.cmd == "openxr":
        src = OpenXRSource()
        fit_controller(ctrl, src)
        try:
            run_live(ctrl, parents, input_device=VRInput(src), title="anim: OpenXR")
        finally:
            src.stop()
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
