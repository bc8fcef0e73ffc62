"""The WebXR bridge: a headset's browser streams head and hand poses to the engine.

One port serves both: `GET /` is the page (viewer/webxr/index.html), `/ws` is
the WebSocket the page streams {"type": "pose", "t", "head", "left", "right"}
JSON messages over, in WebXR axes ('local-floor' space); each device is
[px, py, pz, qw, qx, qy, qz] or null, and `t` is the page's clock (seconds)
when it sent the pose. The `websockets` library speaks the protocol (its
asyncio server, in a background thread: the 60 Hz loop only reads `latest()`
under a lock and never waits on the network).

The avatar goes back the same way, so the headset shows the body the engine
made of its motion: `set_skeleton(names, parents)` once (sent to every page
as {"type": "skeleton", "names", "parents"} when it connects), then
`publish(positions)` after each tick sends {"type": "avatar", "seq",
"joints": [x, y, z, ...] (WebXR axes, mm precision), "t", "engine_ms"} to
every open page. `t` echoes the page's own `t` of the pose the avatar was
made from (the pose `latest()` handed out last, only to the page that sent
it, else null), so the page measures its motion-to-avatar latency on its own
clock. A page whose socket cannot keep up misses avatar frames (counted in
`avatar_dropped`) rather than queueing them. `AvatarPublisher` wraps a
controller so that every step is published (what `python -m viewer.vr_input
webxr` runs). A page that reloads simply connects again: the bridge keeps
serving, the old connection is closed by the browser, and the stream
resumes on the new one.

Who may drive the avatar (`AccessPolicy`, decided before the handshake):
- Origin: a browser page may connect only from the bridge's own page, i.e. an
  Origin whose host:port is the request's Host and is an IP address or
  `localhost` (a DNS name could be rebound to this machine by another site),
  or an origin named with `allow_origins` (`--allow-origin` /
  `anim demo --vr-allow-origin`, e.g. an HTTPS proxy in front of the bridge).
  Any other web page open in the user's browser is refused (403). A client
  without an Origin header is not a browser (browsers always send one) and the
  Origin rule does not apply to it.
- Token: serving beyond loopback (`--host 0.0.0.0` or a LAN address) needs a
  token (`--token`, else a random one is made). The engine prints the page's
  URL with it, `http://HOST:PORT/?token=...`: open that URL in the headset
  (type it or send it to the headset); the page reads the token from its own
  address and passes it on the WebSocket URL, and shows whether it has one. A
  connection without the right token is refused (401). On loopback
  (`127.0.0.1`, reached from a Quest through `adb reverse tcp:8765 tcp:8765`)
  no token is needed unless one is given.
- Limits: a message over `max_message` bytes (64 KiB; a pose is ~250) closes
  the connection (1009, the library's own check, fragments included);
  messages beyond `rate` per second (burst `burst`) are dropped and counted;
  a connection that sends nothing for `idle_timeout` s is closed (the page
  sends a keep-alive every 2 s outside a VR session), as is one that stops
  answering the library's pings (half-open: `ping_interval` + `ping_timeout`);
  at most `max_clients` connections at once (503 beyond); the handshake
  must finish in `open_timeout` s.

A bad message (not JSON, NaN or Infinity, `null`, `[]`, a wrong type or
shape, a non-finite or absurd pose) never ends the connection or reaches the
controller: it is rejected, counted in `error_counts` (by kind) and its
reason kept in `errors` (the last 50), and told to the page that sent it as
{"type": "error", "kind", "reason"} (at most `ERROR_REPLIES_PER_S` a second
per connection, so a flood of bad messages is not answered by a flood), for
the page to show its user.

    with WebXRBridge(port=8765) as bridge:            # serves in a background thread
        print(bridge.page_url)                        # with the token, when one is needed
        head, left, right = bridge.latest() or (None, None, None)   # engine axes
        bridge.publish(joint_positions)               # the avatar back to the page (engine axes)
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import json
import math
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import numpy as np

from anim.control import MAX_DEVICE_DISTANCE, sanitize_device

from .vr_input import WEBXR_PAGE, Trace, TraceReplay, engine_to_webxr, webxr_to_engine

MESSAGE_TYPES = ("pose", "hello", "keepalive")
ERROR_REPLIES_PER_S = 4.0           # error messages told back to one page, per second (burst 4)
AVATAR_BUFFER = 1 << 16             # bytes unsent to a page beyond which its avatar frames are dropped


# ====================================================================== access policy
def is_loopback(host: str) -> bool:
    """Whether binding `host` serves this machine only ('localhost', 127.x, ::1);
    '', '0.0.0.0', '::', a LAN address or any other name serves the network."""
    h = (host or "").strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _literal_host(host: str) -> bool:
    """An IP literal or 'localhost' (a name no other site can rebind)."""
    h = host.strip("[]").lower()
    if h == "localhost":
        return True
    try:
        ipaddress.ip_address(h)
        return True
    except ValueError:
        return False


def normalize_origin(origin: str) -> str:
    """'scheme://host[:port]' in lower case, or a ValueError naming the problem."""
    u = urllib.parse.urlsplit(origin.strip())
    if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/") or u.query:
        raise ValueError(f"origin {origin!r}: expected scheme://host[:port], e.g. https://vr.example.org")
    return f"{u.scheme}://{u.netloc.lower()}"


@dataclass(frozen=True)
class AccessPolicy:
    """Who may connect (see the module docstring). `token` None: none needed."""

    token: str | None
    allow_origins: frozenset

    def check(self, path: str, headers) -> tuple[HTTPStatus, str] | None:
        """None when a WebSocket request to `path` (with its query) with these
        headers (a mapping with .get) may go on, else (status, reason)."""
        origin = headers.get("Origin")
        if origin is not None and not self.origin_ok(origin, headers.get("Host") or ""):
            return HTTPStatus.FORBIDDEN, f"origin {origin!r} is not this bridge's page"
        if self.token is not None:
            given = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query).get("token", [""])[0]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return HTTPStatus.UNAUTHORIZED, "missing or wrong token (open the URL the engine printed)"
        return None

    def origin_ok(self, origin: str, host: str) -> bool:
        try:
            o = normalize_origin(origin)
        except ValueError:
            return False              # 'null' (a sandboxed or file:// page) and anything malformed
        if o in self.allow_origins:
            return True
        netloc = o.split("://", 1)[1]
        hostname = urllib.parse.urlsplit(o).hostname or ""
        return netloc == host.strip().lower() and _literal_host(hostname)


def access_policy(host: str, token: str | None = None, allow_origins=()) -> AccessPolicy:
    """The policy for a bridge bound to `host`: beyond loopback a token is
    required (a random one when none is given); on loopback only a given one.
    A malformed allowed origin is a ValueError."""
    if token is not None and (len(token) < 8 or not all(c.isalnum() or c in "-_" for c in token)):
        raise ValueError("the bridge token must be 8 or more letters, digits, '-' or '_'")
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(12)
    return AccessPolicy(token, frozenset(normalize_origin(o) for o in allow_origins))


def lan_address() -> str:
    """This machine's address on its network (the interface of the default
    route; no packet is sent), or 127.0.0.1 without one."""
    import socket
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.254.254.254", 1))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


# ====================================================================== messages
class MessageError(ValueError):
    """A message the bridge refuses: `kind` (counted) and the reason."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


def _no_constants(name):
    raise MessageError("non-finite", f"{name} is not a number JSON allows")


def _device(msg: dict, key: str):
    d = msg.get(key)
    if d is None:
        return None
    if (not isinstance(d, list) or len(d) != 7
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d)):
        raise MessageError("shape", f"{key!r} must be 7 numbers [px, py, pz, qw, qx, qy, qz] or null")
    if not all(math.isfinite(v) for v in d):
        raise MessageError("non-finite", f"{key!r} holds a non-finite number")
    dev = sanitize_device(webxr_to_engine(d[:3], d[3:7]))
    if dev is None:
        raise MessageError("range", f"{key!r}: a zero rotation or a position over {MAX_DEVICE_DISTANCE:g} m away")
    return dev


def parse_message(text) -> tuple[str, object]:
    """(type, payload) of one message: for 'pose' (head, left, right) in engine
    axes, for 'hello' the browser's user agent (or None), else None. Anything
    else is a MessageError naming what is wrong."""
    kind, payload, _ = _parse(text)
    return kind, payload


def _page_time(msg: dict) -> float | None:
    """A pose message's optional send time `t` (the page's clock, seconds)."""
    t = msg.get("t")
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) else None


def _parse(text) -> tuple[str, object, dict]:
    """parse_message's (type, payload) and the decoded message."""
    if not isinstance(text, str):
        raise MessageError("binary", "binary message (the page sends JSON text)")
    try:
        msg = json.loads(text, parse_constant=_no_constants)
    except MessageError:
        raise
    except (ValueError, RecursionError) as e:
        raise MessageError("json", f"not JSON ({str(e)[:60]})") from None
    if not isinstance(msg, dict):
        raise MessageError("shape", f"a message is a JSON object, not {type(msg).__name__}")
    kind = msg.get("type")
    if kind not in MESSAGE_TYPES:
        raise MessageError("type", f"unknown message type {str(kind)[:40]!r}")
    if kind == "hello":
        ua = msg.get("userAgent")
        return kind, ua[:200] if isinstance(ua, str) else None, msg
    if kind != "pose":
        return kind, None, msg
    return kind, tuple(_device(msg, k) for k in ("head", "left", "right")), msg


class _Bucket:
    """Token bucket: `rate` messages per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.level, self.t = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.t) * self.rate)
        self.t = now
        if self.level >= 1.0:
            self.level -= 1.0
            return True
        return False


# ====================================================================== the bridge
class WebXRBridge:
    """HTTP + WebSocket server for the WebXR page (see the module docstring).

    `latest()` gives the newest valid pose converted to the engine, or None
    before any (or when older than `stale_s`). `messages` counts valid pose
    messages, `clients` the open connections, `refused` the handshakes refused
    by the policy or the connection limit; `errors` keeps the last 50 problems,
    `error_counts` counts them by kind (json, non-finite, shape, type, range,
    binary, rate, size, idle, ...). `avatar_frames` counts published avatar
    frames, `avatar_dropped` the copies not sent to a page that lagged. The
    poses are the page's viewer pose (the centre of the eyes) and gripSpace
    poses (the fist): DEVICE_API names their row of
    controllers.vr.calibrate.DEVICE_OFFSETS, which the controller uses to
    reach the head and wrist joints (viewer.vr_input.fit_controller)."""

    DEVICE_API = "webxr"

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, stale_s: float = 0.5, page: Path = WEBXR_PAGE,
                 token: str | None = None, allow_origins=(), max_message: int = 1 << 16, rate: float = 240.0,
                 burst: float = 120.0, idle_timeout: float = 15.0, ping_interval: float = 5.0,
                 ping_timeout: float = 5.0, open_timeout: float = 5.0, max_clients: int = 4):
        self.host, self.port, self.stale_s, self.page = host, port, stale_s, Path(page)
        self.policy = access_policy(host, token, allow_origins)
        self.max_message, self.rate, self.burst = int(max_message), float(rate), float(burst)
        self.idle_timeout, self.ping_interval, self.ping_timeout = idle_timeout, ping_interval, ping_timeout
        self.open_timeout, self.max_clients = open_timeout, int(max_clients)
        self.messages = 0
        self.clients = 0
        self.refused = 0
        self.errors: collections.deque = collections.deque(maxlen=50)
        self.error_counts: collections.Counter = collections.Counter()
        self.user_agent: str | None = None
        self.avatar_frames = 0
        self.avatar_dropped = 0
        self._latest = None
        self._latest_time = 0.0
        self._latest_stamp = None         # (connection, page time) of the newest pose
        self._served_stamp = None         # ... of the pose latest() handed out last
        self._skeleton_msg: str | None = None
        self._conns: set = set()          # open connections (touched on the bridge's loop only)
        self._lock = threading.Lock()
        self._loop = None
        self._server = None
        self._thread = None
        self._stopped = None
        self._start_error = None
        self._ready = threading.Event()

    @property
    def token(self) -> str | None:
        return self.policy.token

    def _error(self, kind: str, reason: str) -> None:
        with self._lock:
            self.error_counts[kind] += 1
            self.errors.append(f"{kind}: {reason}")

    def error_summary(self) -> tuple[dict, list]:
        """(counts by kind, the last reasons): a consistent copy, safe from any thread."""
        with self._lock:
            return dict(self.error_counts), list(self.errors)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "WebXRBridge":
        self._thread = threading.Thread(target=self._run, name="webxr-bridge", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError("WebXR bridge did not start")
        if self._start_error is not None:
            raise RuntimeError(f"WebXR bridge could not listen on {self.host}:{self.port}: {self._start_error}")
        return self

    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self):
        from websockets.asyncio.server import serve
        self._stopped = asyncio.Event()
        try:
            server = await serve(self._handler, self.host, self.port, process_request=self._process_request,
                                 compression=None, max_size=self.max_message, max_queue=16,
                                 open_timeout=self.open_timeout, ping_interval=self.ping_interval,
                                 ping_timeout=self.ping_timeout, close_timeout=2.0, server_header=None)
        except (OSError, OverflowError, ValueError) as e:     # port in use, out of range, bad host
            self._start_error = str(e)
            self._ready.set()
            return
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopped.wait()
        server.close()
        await server.wait_closed()

    def stop(self):
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:          # the loop closed in between
                pass
        if self._thread is not None:
            self._thread.join(10.0)

    def __enter__(self):
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        """The page's address without the token (bound to all interfaces: at
        this machine's LAN address, the one a headset on the network uses)."""
        host = self.host if self.host not in ("", "0.0.0.0", "::") else lan_address()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    @property
    def page_url(self) -> str:
        """The page's address to open in the headset (with the token when one is needed)."""
        return self.url + (f"?token={self.token}" if self.token else "")

    # ------------------------------------------------------------ poses
    def latest(self):
        """(head, left_hand, right_hand), each (pos, rot) in engine axes or None;
        None when nothing fresh has arrived. The next `publish` answers the page
        that sent this pose with its time (its latency)."""
        with self._lock:
            if self._latest is None or time.perf_counter() - self._latest_time > self.stale_s:
                self._served_stamp = None
                return None
            self._served_stamp = self._latest_stamp
            return self._latest

    def wait_for_messages(self, n: int, timeout: float = 5.0) -> bool:
        end = time.perf_counter() + timeout
        while self.messages < n and time.perf_counter() < end:
            time.sleep(0.005)
        return self.messages >= n

    def on_message(self, text) -> bool:
        """Take one message: True when it was accepted; a bad one is counted,
        never raised."""
        return self._take(text, None) is None

    def _take(self, text, conn) -> MessageError | None:
        """What the connection handler does with each message of `conn`: None
        when accepted, else the (counted) MessageError to tell the page."""
        try:
            kind, devs, msg = _parse(text)
        except MessageError as e:
            self._error(e.kind, str(e))
            return e
        if kind == "hello":
            self.user_agent = devs
        elif kind == "pose":
            with self._lock:
                self._latest = devs
                self._latest_time = time.perf_counter()
                self._latest_stamp = (conn, _page_time(msg))
                self.messages += 1
        return None

    # ------------------------------------------------------------ the avatar, back to the pages
    def set_skeleton(self, names, parents) -> None:
        """The avatar's joint names and parent indices (-1: a root), sent to
        every page now and to each page that connects later."""
        names, parents = [str(n) for n in names], [int(p) for p in parents]
        if len(names) != len(parents):
            raise ValueError(f"{len(names)} joint names but {len(parents)} parents")
        self._skeleton_msg = json.dumps({"type": "skeleton", "names": names, "parents": parents})
        self._call(self._send_all, self._skeleton_msg, None)

    def publish(self, positions, engine_ms: float | None = None) -> None:
        """Send the avatar's joint world positions ([J, 3], engine axes) to every
        open page, from any thread (the sending happens on the bridge's loop;
        this never waits on the network)."""
        p = np.asarray(positions, np.float64).reshape(-1, 3) * (-1.0, 1.0, -1.0)   # engine -> WebXR axes
        if not np.isfinite(p).all():
            return
        with self._lock:
            stamp = self._served_stamp
            self.avatar_frames += 1
            seq = self.avatar_frames
        if self.clients == 0:         # no page to send it to
            return
        body = {"type": "avatar", "seq": seq, "joints": [round(float(v), 3) for v in p.ravel()],
                "engine_ms": None if engine_ms is None else round(float(engine_ms), 3)}
        plain = json.dumps(dict(body, t=None))
        answer = json.dumps(dict(body, t=stamp[1])) if stamp is not None and stamp[1] is not None else plain
        self._call(self._send_all, plain, (stamp[0], answer) if stamp is not None else None)

    def _call(self, fn, *args) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:          # the loop closed in between
            pass

    def _send_all(self, text: str, special) -> None:
        """On the loop: `text` to every open page (`special` = (connection,
        text): that one gets its own), skipping a page that lags."""
        from websockets.asyncio.server import broadcast
        for ws in list(self._conns):
            transport = ws.transport
            if transport is not None and transport.get_write_buffer_size() > AVATAR_BUFFER:
                with self._lock:
                    self.avatar_dropped += 1
                continue
            broadcast([ws], special[1] if special is not None and ws is special[0] else text)

    # ------------------------------------------------------------ protocol
    def _process_request(self, connection, request):
        from websockets.datastructures import Headers
        from websockets.http11 import Response
        path = urllib.parse.urlsplit(request.path).path
        upgrade = "websocket" in (request.headers.get("Upgrade") or "").lower()
        if not upgrade:
            if path in ("/", "/index.html"):
                body = self.page.read_bytes()
                return Response(200, "OK", Headers([("Content-Type", "text/html; charset=utf-8"),
                                                    ("Cache-Control", "no-store"),
                                                    ("Referrer-Policy", "no-referrer"),
                                                    ("Content-Length", str(len(body)))]), body)
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if path != "/ws":
            return connection.respond(HTTPStatus.NOT_FOUND, "the WebSocket is at /ws\n")
        refusal = self.policy.check(request.path, request.headers)
        if refusal is None and self.clients >= self.max_clients:
            refusal = HTTPStatus.SERVICE_UNAVAILABLE, f"already {self.clients} connections"
        if refusal is not None:
            self.refused += 1
            self._error("refused", refusal[1])
            return connection.respond(refusal[0], refusal[1] + "\n")
        return None

    async def _handler(self, ws):
        from websockets.asyncio.server import broadcast
        from websockets.exceptions import ConnectionClosed
        self.clients += 1
        self._conns.add(ws)
        bucket = _Bucket(self.rate, self.burst)
        replies = _Bucket(ERROR_REPLIES_PER_S, ERROR_REPLIES_PER_S)
        if self._skeleton_msg is not None:
            broadcast([ws], self._skeleton_msg)
        try:
            while True:
                try:
                    text = await asyncio.wait_for(ws.recv(), self.idle_timeout)
                except asyncio.TimeoutError:
                    self._error("idle", f"nothing received for {self.idle_timeout:g} s: closed")
                    await ws.close(1000, "idle")
                    return
                if not bucket.take():
                    self._error("rate", f"over {self.rate:g} messages/s: dropped")
                    continue
                problem = self._take(text, ws)
                if problem is not None and replies.take():
                    broadcast([ws], json.dumps({"type": "error", "kind": problem.kind, "reason": str(problem)}))
        except ConnectionClosed as e:
            if e.sent is not None and e.sent.code == 1009:
                self._error("size", f"message over {self.max_message} bytes: connection closed (1009)")
        except Exception as e:      # never let one connection take the bridge down; remember why
            self._error("internal", repr(e)[:200])
        finally:
            self._conns.discard(ws)
            self.clients -= 1


# ====================================================================== the engine side
class AvatarPublisher:
    """A controller whose every step is published to the bridge's pages: the
    pose's joint world positions (forward kinematics) and the step's time.
    Everything else (reset, skeleton, ...) is the wrapped controller's, so it
    stands wherever the controller does (run_live, run_headless)."""

    def __init__(self, controller, bridge: WebXRBridge):
        self.controller, self.bridge = controller, bridge
        sk = controller.skeleton
        self.parents = np.asarray(sk.parents)
        bridge.set_skeleton(sk.names, sk.parents)

    def step(self, control_input, dt):
        from anim import quat
        t0 = time.perf_counter()
        pose = self.controller.step(control_input, dt)
        ms = (time.perf_counter() - t0) * 1e3
        _, g = quat.fk(pose.rotations, pose.positions, self.parents)
        self.bridge.publish(g, ms)
        return pose

    def __getattr__(self, name):
        return getattr(self.controller, name)


# ====================================================================== a fake headset
def pose_message(head, left=None, right=None, t: float = 0.0) -> str:
    """The page's JSON message for engine-axes device poses (converted back to WebXR)."""
    def enc(d):
        if d is None:
            return None
        p, q = engine_to_webxr(*d)
        return [float(v) for v in p] + [float(v) for v in q]
    return json.dumps({"type": "pose", "t": t, "space": "local-floor", "head": enc(head), "left": enc(left),
                       "right": enc(right)})


def page_origin(url: str) -> str:
    """The Origin a browser would send for the page served beside ws(s)://HOST:PORT/ws."""
    u = urllib.parse.urlsplit(url)
    return f"{'https' if u.scheme == 'wss' else 'http'}://{u.netloc}"


def send_trace(trace: Trace | str, url: str, realtime: bool = True, fps: float = 60.0) -> int:
    """Stream a trace to a bridge as a headset page would (`url`: ws://HOST:PORT/ws,
    with ?token=... when the bridge needs one). Returns messages sent."""
    from websockets.sync.client import connect
    replay = TraceReplay(trace)
    n = int(round(replay.duration * fps)) + 1
    start = time.perf_counter()
    with connect(url, origin=page_origin(url), compression=None, open_timeout=5) as ws:
        for i in range(n):
            h, lh, rh = replay.devices_at(i / fps)
            ws.send(pose_message(h, lh, rh, i / fps))
            if realtime:
                time.sleep(max(0.0, start + (i + 1) / fps - time.perf_counter()))
    return n
