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

WebXR bridge (`WebXRBridge`): a local asyncio server (standard library only)
on one port: `GET /` serves viewer/webxr/index.html, `GET /ws` upgrades to a
WebSocket (RFC 6455: handshake, masked client frames, fragmentation, ping/pong,
close) over which the page streams {"type": "pose", "t", "head", "left",
"right"} JSON messages in WebXR axes ('local-floor' space). WebXR needs a
secure context: on a Quest, `adb reverse tcp:8765 tcp:8765` then open
http://localhost:8765/ in the headset's browser (localhost counts as secure),
or serve it behind HTTPS.

OpenXR (`OpenXRSource`): through pyopenxr (`pip install pyopenxr`) when an
OpenXR runtime is installed; absent either, a clear RuntimeError says so.

    python -m viewer.vr_input export --out out/vr/traces --clips 3      # test clips -> traces
    python -m viewer.vr_input replay out/vr/traces/<clip>.jsonl [--model ...] [--headless DIR]
    python -m viewer.vr_input webxr [--port 8765] [--model ...]          # live, from a headset
    python -m viewer.vr_input send-trace TRACE --url ws://127.0.0.1:8765/ws   # fake a headset
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
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
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


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


# ====================================================================== WebSocket (RFC 6455)
def ws_accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key.strip() + WS_GUID).encode()).digest()).decode()


def ws_encode(payload: bytes, opcode: int = 0x1, mask: bool = False, fin: bool = True) -> bytes:
    """One WebSocket frame (clients must mask, servers must not)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 1 << 16:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


async def _ws_read_frame(reader) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of the next frame."""
    b0, b1 = await reader.readexactly(2)
    fin, opcode = bool(b0 & 0x80), b0 & 0x0F
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    if n > 1 << 20:
        raise ValueError("websocket frame too large")
    key = await reader.readexactly(4) if b1 & 0x80 else None
    data = await reader.readexactly(n)
    if key is not None:
        data = (np.frombuffer(data, np.uint8) ^ np.frombuffer((key * (n // 4 + 1))[:n], np.uint8)).tobytes()
    return fin, opcode, data


class WebXRBridge:
    """Local HTTP + WebSocket server for the WebXR page (standard library).

        bridge = WebXRBridge(port=8765).start()     # serves in a background thread
        head, left, right = bridge.latest() or (None, None, None)   # engine axes
        bridge.stop()

    `latest()` gives the newest pose message converted to the engine, or None
    before any (or when older than `stale_s`). `messages` counts pose messages,
    `clients` the open connections."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, stale_s: float = 0.5,
                 page: Path = WEBXR_PAGE):
        self.host, self.port, self.stale_s, self.page = host, port, stale_s, Path(page)
        self.messages = 0
        self.clients = 0
        self.errors: list[str] = []
        self._latest = None
        self._latest_time = 0.0
        self._lock = threading.Lock()
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "WebXRBridge":
        self._thread = threading.Thread(target=self._run, name="webxr-bridge", daemon=True)
        self._thread.start()
        if not self._ready.wait(5.0):
            raise RuntimeError("WebXR bridge did not start")
        if self._server is None:
            raise RuntimeError(f"WebXR bridge could not listen on {self.host}:{self.port}: {self.errors[-1:]}")
        return self

    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
        except OSError as e:
            self.errors.append(str(e))
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    def stop(self):
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # ------------------------------------------------------------ poses
    def latest(self):
        """(head, left_hand, right_hand), each (pos, rot) in engine axes or None;
        None when nothing fresh has arrived."""
        with self._lock:
            if self._latest is None or time.perf_counter() - self._latest_time > self.stale_s:
                return None
            return self._latest

    def wait_for_messages(self, n: int, timeout: float = 5.0) -> bool:
        end = time.perf_counter() + timeout
        while self.messages < n and time.perf_counter() < end:
            time.sleep(0.005)
        return self.messages >= n

    def _on_message(self, text: str):
        msg = json.loads(text)
        if msg.get("type") != "pose":
            return
        devs = []
        for key in ("head", "left", "right"):
            d = msg.get(key)
            devs.append(None if d is None else webxr_to_engine(d[:3], d[3:7]))
        with self._lock:
            self._latest = tuple(devs)
            self._latest_time = time.perf_counter()
            self.messages += 1

    # ------------------------------------------------------------ protocol
    async def _handle(self, reader, writer):
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            lines = request.decode("latin-1").split("\r\n")
            method, target = (lines[0].split(" ") + ["", ""])[:2]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            if method != "GET":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            elif headers.get("upgrade", "").lower() == "websocket" and target.startswith("/ws"):
                await self._websocket(reader, writer, headers)
                return
            elif target in ("/", "/index.html"):
                body = self.page.read_bytes()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                             b"Cache-Control: no-store\r\nContent-Length: " + str(len(body)).encode()
                             + b"\r\n\r\n" + body)
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except Exception as e:     # keep serving; remember what went wrong
            self.errors.append(repr(e))
        finally:
            writer.close()

    async def _websocket(self, reader, writer, headers):
        key = headers.get("sec-websocket-key")
        if not key or headers.get("sec-websocket-version") != "13":
            writer.write(b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {ws_accept_key(key)}\r\n\r\n").encode())
        await writer.drain()
        self.clients += 1
        parts, first_op = [], None
        try:
            while True:
                fin, op, data = await _ws_read_frame(reader)
                if op == 0x8:                                  # close: echo and end
                    writer.write(ws_encode(data[:2], 0x8))
                    await writer.drain()
                    return
                if op == 0x9:                                  # ping -> pong
                    writer.write(ws_encode(data, 0xA))
                    await writer.drain()
                    continue
                if op == 0xA:
                    continue
                if op in (0x1, 0x2):
                    parts, first_op = [data], op
                elif op == 0x0 and first_op is not None:
                    parts.append(data)
                else:
                    raise ValueError(f"unexpected websocket opcode {op}")
                if fin:
                    payload = b"".join(parts)
                    parts, first_op = [], None
                    try:
                        self._on_message(payload.decode("utf-8"))
                    except (ValueError, KeyError, TypeError, IndexError) as e:
                        self.errors.append(f"bad message: {e!r}")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.clients -= 1


class WebSocketClient:
    """A minimal blocking WebSocket client (standard library): what a headset's
    page does, for tests and for `send-trace`."""

    def __init__(self, url: str, timeout: float = 5.0):
        if not url.startswith("ws://"):
            raise ValueError("WebSocketClient speaks ws:// only")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed during the handshake")
            resp += chunk
        if b" 101 " not in resp.split(b"\r\n")[0] or ws_accept_key(key).encode() not in resp:
            raise ConnectionError(f"websocket handshake failed: {resp[:200]!r}")

    def send_text(self, text: str, fragments: int = 1):
        data = text.encode()
        if fragments <= 1:
            self.sock.sendall(ws_encode(data, 0x1, mask=True))
            return
        size = max(1, -(-len(data) // fragments))
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        for i, c in enumerate(chunks):
            self.sock.sendall(ws_encode(c, 0x1 if i == 0 else 0x0, mask=True, fin=i == len(chunks) - 1))

    def ping(self, payload: bytes = b"hi") -> bytes:
        """Send a ping, return the pong's payload."""
        self.sock.sendall(ws_encode(payload, 0x9, mask=True))
        b0, b1 = self._recv(2)
        n = b1 & 0x7F
        return self._recv(n) if (b0 & 0x0F) == 0xA else b""

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def close(self):
        try:
            self.sock.sendall(ws_encode(struct.pack("!H", 1000), 0x8, mask=True))
            self.sock.recv(16)
        except OSError:
            pass
        self.sock.close()


def pose_message(head, left=None, right=None, t: float = 0.0) -> str:
    """The page's JSON message for engine-axes device poses (converted back to WebXR)."""
    def enc(d):
        if d is None:
            return None
        p, q = engine_to_webxr(*d)
        return [float(v) for v in p] + [float(v) for v in q]
    return json.dumps({"type": "pose", "t": t, "space": "local-floor", "head": enc(head), "left": enc(left),
                       "right": enc(right)})


def send_trace(trace: Trace | str, url: str, realtime: bool = True, fps: float = 60.0) -> int:
    """Stream a trace to a bridge as a headset page would. Returns messages sent."""
    replay = TraceReplay(trace)
    client = WebSocketClient(url)
    n = int(round(replay.duration * fps)) + 1
    start = time.perf_counter()
    for i in range(n):
        h, lh, rh = replay.devices_at(i / fps)
        client.send_text(pose_message(h, lh, rh, i / fps))
        if realtime:
            time.sleep(max(0.0, start + (i + 1) / fps - time.perf_counter()))
    client.close()
    return n


# ====================================================================== OpenXR
class OpenXRSource:
    """Head and controller poses from an OpenXR runtime through pyopenxr.

    Needs `pip install pyopenxr` and an installed, active OpenXR runtime
    (SteamVR, Monado, Meta's PC runtime, ...). The frame loop runs in a
    background thread (pyopenxr's ContextObject, which opens its own small
    OpenGL window as OpenXR requires a graphics binding); `latest()` gives the
    newest poses in engine axes. Not exercised by the test suite (no runtime
    there): only the clear error when pyopenxr or a runtime is missing is."""

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
                    enabled_extension_names=[xr.KHR_OPENGL_ENABLE_EXTENSION_NAME])) as ctx:
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
    w = sub.add_parser("webxr", help="serve the WebXR page and drive the VR controller from a headset")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=8765)
    w.add_argument("--model", default=None)
    o = sub.add_parser("openxr", help="drive the VR controller from an OpenXR runtime (pyopenxr)")
    o.add_argument("--model", default=None)
    s = sub.add_parser("send-trace", help="stream a trace to a running bridge (a fake headset)")
    s.add_argument("trace")
    s.add_argument("--url", default="ws://127.0.0.1:8765/ws")
    args = p.parse_args(argv)

    if args.cmd == "export":
        for path in export_test_traces(args.out, clips=args.clips, seconds=args.seconds, ghost=not args.no_ghost):
            print(path)
        return 0
    if args.cmd == "send-trace":
        print(f"sent {send_trace(args.trace, args.url)} poses")
        return 0
    from viewer.app import run_headless, run_live
    ctrl = _controller(args.model)
    parents = ctrl.skeleton.parents
    if args.cmd == "replay":
        replay = TraceReplay(args.trace)

        def script(t):
            ctrl.ghost = replay.ghost_at(t)
            return replay.control_at(t)
        if args.headless:
            stats = run_headless(ctrl, parents, script, replay.duration, args.headless, 6)
            print(f"{stats['ticks']} ticks, controller {stats['controller_ms_mean']:.2f} ms/tick; "
                  f"contact sheet {stats['contact_sheet']}")
            return 0
        run_live(ctrl, parents, input_device=VRInput(replay), title="anim: VR trace replay")
        return 0
    if args.cmd == "webxr":
        with WebXRBridge(args.host, args.port) as bridge:
            print(f"open {bridge.url} in the headset's browser (see `python -m viewer.vr_input --help`)")
            run_live(ctrl, parents, input_device=VRInput(bridge), title="anim: WebXR")
        return 0
    if args.cmd == "openxr":
        src = OpenXRSource()
        try:
            run_live(ctrl, parents, input_device=VRInput(src), title="anim: OpenXR")
        finally:
            src.stop()
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
