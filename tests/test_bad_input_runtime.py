"""Bad input at run time, grouped by where it enters (files have their own test file).

1. The input boundary (anim.control): `clamp_dt` and `InputGuard`, field by field.
2. Controllers stepped directly with bad values (motion matching, learned
   motion matching, the VR MLP and diffusion predictors, the physics clock):
   one test per bug found, then a property test feeding random bad values to
   every controller and checking each comes back with a finite pose that
   follows the next good input.
3. The WebXR bridge (viewer/webxr_bridge.py), with real `websockets` clients on
   127.0.0.1: who may connect (origin, token), message size and rate, idle and
   half-open connections, malformed messages, the bounded error list.
4. `anim demo --vr webxr --headless`.

Controllers run the shipped weights (LMM, VR, physics policy) and databases
built from real clips (tests/_databases.py); tests needing the corpus skip
without it.
"""

import json
import math
import os
import socket
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anim import quat
from anim.control import DT_MAX, DT_MIN, DT_NOMINAL, ControlInput, InputGuard, clamp_dt

sys.path.insert(0, os.path.dirname(__file__))
import _databases  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_data = pytest.mark.skipif(not _databases.corpus_available(),
                                reason="the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")
NAN, INF = float("nan"), float("inf")
FWD = ControlInput(move=np.float32([0.0, 1.0]))


def finite(pose) -> bool:
    return bool(np.isfinite(pose.rotations).all() and np.isfinite(pose.positions).all())


# ====================================================================== 1. the input boundary
@pytest.mark.parametrize("dt, want", [(NAN, DT_NOMINAL), (INF, DT_NOMINAL), (-INF, DT_NOMINAL), (0.0, DT_MIN),
                                      (-1.0, DT_MIN), (1e9, DT_MAX), ("x", DT_NOMINAL), (None, DT_NOMINAL),
                                      (1 / 60, 1 / 60), (0.05, 0.05)])
def test_clamp_dt(dt, want):
    assert clamp_dt(dt) == pytest.approx(want)


def test_guard_replaces_each_field_as_documented():
    g = InputGuard()
    c = g.control(ControlInput(move=np.array([NAN, 1.0])))
    assert c.move.tolist() == [0.0, 0.0] and g.rejected["move"] == 1          # a broken stick: stand
    c = g.control(ControlInput(move=np.array([1e300, 1e300])))
    assert np.allclose(c.move, [np.sqrt(0.5)] * 2)                            # huge: a full deflection
    assert g.control(ControlInput(facing=np.array([0.0, -1.0]))).facing.tolist() == [0.0, -1.0]
    c = g.control(ControlInput(facing=np.array([INF, 0.0])))
    assert c.facing.tolist() == [0.0, -1.0] and g.rejected["facing"] == 1     # the last good facing
    assert InputGuard().control(ControlInput(facing=[NAN, 0])).facing is None   # none before: face the move
    good = (np.float32([0.0, 1.6, 0.0]), np.float32([2.0, 0.0, 0.0, 0.0]))
    c = g.control(ControlInput(head=good, left_hand=(np.float32([NAN, 1, 0]), good[1]),
                               right_hand=(good[0], np.zeros(4))))
    assert c.head[1].tolist() == [1.0, 0.0, 0.0, 0.0]                         # normalized
    assert c.left_hand is None and c.right_hand is None                       # untracked this tick
    for bad in ((np.float32([1e4, 0, 0]), good[1]), "abc", (1, 2, 3), ([0, 1], [1, 0, 0, 0])):
        assert g.control(ControlInput(head=bad)).head is None
    c = g.control(ControlInput(run=NAN, style=3, actions=5))
    assert c.run is False and c.style is None and c.actions == frozenset()
    assert g.control(None).move.tolist() == [0.0, 0.0]
    assert g.control(ControlInput(move="ab", actions=[1])).actions == frozenset()
    assert g.last_problem.startswith("actions")


# ====================================================================== 2. controllers
@pytest.fixture(scope="module")
def mm():
    if not _databases.corpus_available():
        pytest.skip("no corpus")
    from controllers.motion_matching.controller import MotionMatchingController
    return MotionMatchingController(_databases.two_style_db())


@pytest.fixture(scope="module")
def lmm():
    from controllers.learned.controller import LearnedController
    return LearnedController.load(os.path.join(ROOT, "controllers", "learned", "weights", "lmm-locomotion-normal.npz"))


@pytest.fixture(scope="module")
def vr_models():
    from controllers.vr.controller import VRController
    from controllers.vr.evaluate import DEFAULT_WEIGHTS
    return {k: VRController.load(str(DEFAULT_WEIGHTS[k])) for k in ("mlp", "diffusion")}


@pytest.fixture(scope="module")
def physics():
    if not _databases.corpus_available():
        pytest.skip("no corpus")
    pytest.importorskip("mujoco")
    from controllers.physics.runtime import PhysicsController
    return PhysicsController(_databases.two_style_db(), policy=os.path.join(ROOT, "controllers", "physics",
                                                                            "weights", "walk-run.npz"))


@pytest.fixture(scope="module")
def registered():
    """Every stage of the registry (anim_app.registry: what `anim run
    --controller` offers), built over the small two-style database; the
    physics stage tracks motion matching with the shipped policy."""
    if not _databases.corpus_available():
        pytest.skip("no corpus")
    from anim_app import registry
    db = _databases.two_style_db()
    return {name: registry.build_stage(name, db) for name in registry.stage_names()}


@pytest.fixture(params=["mm", "lmm"])
def kinematic(request):
    return request.getfixturevalue(request.param)


BAD_KINEMATIC = {
    "stick NaN": (ControlInput(move=np.float32([NAN, 1.0])), 1 / 60),
    "stick inf": (ControlInput(move=np.float32([INF, 0.0])), 1 / 60),
    "facing NaN": (ControlInput(move=np.float32([0.0, 1.0]), facing=np.float32([NAN, 1.0])), 1 / 60),
    "dt NaN": (FWD, NAN),
    "dt inf": (FWD, INF),
    "dt 0": (FWD, 0.0),
    "dt negative": (FWD, -1.0),
}


@pytest.mark.parametrize("case", list(BAD_KINEMATIC))
def test_kinematic_controllers_survive_one_bad_tick(kinematic, case):
    """Before: a NaN / inf stick, a NaN facing or dt left MM and LMM with a NaN
    root for ever; dt = 0 raised ZeroDivisionError."""
    ci, dt = BAD_KINEMATIC[case]
    kinematic.reset()
    for _ in range(5):
        kinematic.step(FWD, 1 / 60)
    assert finite(kinematic.step(ci, dt))
    z0 = kinematic.step(FWD, 1 / 60).positions[0, 2]
    for _ in range(30):
        pose = kinematic.step(FWD, 1 / 60)
        assert finite(pose)
    assert pose.positions[0, 2] > z0 + 0.2          # and it walks on forward


@pytest.mark.parametrize("kind", ["mlp", "diffusion"])
@pytest.mark.parametrize("bad", ["hand NaN", "head NaN", "head inf"])
def test_vr_controllers_survive_nan_devices(vr_models, kind, bad):
    """Before: the MLP kept a NaN hand for ever; the diffusion model raised
    ZeroDivisionError on any NaN."""
    ctrl = vr_models[kind]
    head = (np.float32([0.0, 1.6, 0.0]), np.float32([1, 0, 0, 0]))
    hands = [(np.float32([0.2, 1.0, 0.25]), np.float32([1, 0, 0, 0])),
             (np.float32([-0.2, 1.0, 0.25]), np.float32([1, 0, 0, 0]))]
    ci = ControlInput(head=head, left_hand=hands[0], right_hand=hands[1])
    ctrl.reset()
    for _ in range(5):
        ctrl.step(ci, 1 / 60)
    v = NAN if "NaN" in bad else INF
    broken = (np.float32([v, 1.0, 0.2]), np.float32([1, 0, 0, 0]))
    bad_ci = (ControlInput(head=head, left_hand=broken, right_hand=hands[1]) if bad.startswith("hand")
              else ControlInput(head=broken, left_hand=hands[0], right_hand=hands[1]))
    assert finite(ctrl.step(bad_ci, 1 / 60))
    # the next good ticks (the left hand lost: it keeps its last GOOD pose)
    head_j = ctrl.skeleton.index("Head")
    for _ in range(40):
        pose = ctrl.step(ControlInput(head=head, left_hand=None, right_hand=hands[1]), 1 / 60)
        assert finite(pose)
    _, g = quat.fk(pose.rotations, pose.positions, ctrl.skeleton.parents)
    assert np.abs(g[head_j] - head[0]).max() < 1e-3      # the body hangs from the tracked head again


@pytest.mark.parametrize("dt", [NAN, INF, -1.0])
def test_physics_clock_survives_bad_dt(physics, dt):
    """Before: a NaN or negative dt froze the character (no tick ran again, or
    not for a minute of ticks); an infinite one ran four ticks per step for ever."""
    physics.reset()
    for _ in range(3):
        physics.step(ControlInput(), 1 / 60)
    pose = physics.step(ControlInput(), dt)
    assert finite(pose)
    t0 = physics.stats["ticks"]
    for _ in range(30):
        pose = physics.step(ControlInput(), 1 / 60)
    assert physics.stats["ticks"] - t0 in (29, 30, 31) and finite(pose)


def test_physics_push_with_a_nan_stick(physics):
    physics.reset()
    physics.step(ControlInput(move=np.float32([NAN, 0.0]), actions=frozenset({"push"})), 1 / 60)
    assert np.isfinite(physics.push_force).all() and np.linalg.norm(physics.push_force) > 0   # to the left
    physics.push(np.array([INF, 1.0]))                   # the direct API too
    assert np.isfinite(physics.push_force).all()


def _controller(request, name):
    """'vr-KIND', 'stage-NAME' (a registered stage) or a fixture's name."""
    if name.startswith("vr-"):
        return request.getfixturevalue("vr_models")[name[3:]]
    if name.startswith("stage-"):
        return request.getfixturevalue("registered")[name[6:]]
    return request.getfixturevalue(name)


REGISTERED = ["stage-mm", "stage-lmm", "stage-clip", "stage-physics"]


def test_every_registered_stage_is_covered():
    from anim_app import registry
    assert sorted("stage-" + n for n in registry.stage_names()) == sorted(REGISTERED)


@pytest.mark.parametrize("name", ["mm", "lmm", "physics", "vr-mlp", "vr-diffusion", "stage-clip", "stage-physics"])
def test_reset_to_a_nan_pose_starts_from_the_default(request, name):
    """Before: reset(pose) took a NaN root (from a broken controller handing
    over) into the state: every pose after was NaN."""
    from anim.skeleton import Pose
    ctrl = _controller(request, name)
    j = ctrl.skeleton.num_joints
    bad = Pose(np.full((j, 4), NAN, np.float32), np.full((j, 3), NAN, np.float32))
    assert finite(ctrl.reset(bad))
    ci = FWD if not name.startswith("vr") else ControlInput(head=(np.float32([0, 1.6, 0]), np.float32([1, 0, 0, 0])))
    for _ in range(5):
        pose = ctrl.step(ci, 1 / 60)
    assert finite(pose)
    if name.startswith("vr"):       # with the head lost, the held pose is the standing one, not the NaN
        ctrl.reset(bad)
        assert finite(ctrl.step(ControlInput(), 1 / 60))


# ---- the property test: random bad values into every controller
floats = st.one_of(st.sampled_from([NAN, INF, -INF, 0.0, -1.0, 1e300, -1e-300, 3.4e38, 1.0]),
                   st.floats(allow_nan=True, allow_infinity=True, width=64))
vec2 = st.one_of(st.lists(floats, min_size=2, max_size=2).map(np.array), st.none(), st.just("ab"),
                 st.just([]), st.lists(floats, min_size=3, max_size=3))
device = st.one_of(st.none(), st.tuples(st.lists(floats, min_size=3, max_size=3),
                                        st.lists(floats, min_size=4, max_size=4)),
                   st.just((np.zeros(3), np.zeros(4))), st.just("head"), st.just((1, 2)))
bad_input = st.builds(lambda move, facing, run, head, lh, rh, actions: ControlInput(
    move=move, facing=facing, run=run, head=head, left_hand=lh, right_hand=rh, actions=actions),
    vec2, st.one_of(st.none(), vec2), st.one_of(st.booleans(), st.just(NAN), st.just("yes")),
    device, device, device, st.sampled_from([frozenset(), frozenset({"push"}), frozenset({"debug"}), 5]))
bad_dt = st.one_of(floats, st.just(None), st.just("1/60"))
ticks = st.lists(st.tuples(bad_input, bad_dt), min_size=1, max_size=6)
PROPERTY = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _recovers(ctrl, bad_ticks, good: ControlInput, n_good: int = 12):
    ctrl.reset()
    for _ in range(3):
        ctrl.step(good, 1 / 60)
    for ci, dt in bad_ticks:
        assert finite(ctrl.step(ci, dt))
    poses = [ctrl.step(good, 1 / 60) for _ in range(n_good)]
    assert all(finite(p) for p in poses)
    return poses


@pytest.mark.parametrize("name", ["lmm", "physics"] + REGISTERED)
def test_property_stick_controllers_recover(request, name):
    """Every registered stage, the LMM without a corpus, and the physics
    controller that tracks a clip."""
    ctrl = _controller(request, name)
    walks = name in ("lmm", "stage-mm", "stage-lmm")

    @PROPERTY
    @given(ticks)
    def check(bad_ticks):
        poses = _recovers(ctrl, bad_ticks, FWD)
        if walks:                  # kinematic: it walks on forward
            assert poses[-1].positions[0, 2] > poses[0].positions[0, 2]
    check()


@pytest.mark.parametrize("kind", ["mlp", "diffusion"])
def test_property_vr_controllers_recover(vr_models, kind):
    ctrl = vr_models[kind]
    head = (np.float32([0.1, 1.65, 0.3]), np.float32([1, 0, 0, 0]))
    good = ControlInput(head=head, left_hand=(np.float32([0.25, 1.0, 0.5]), np.float32([1, 0, 0, 0])),
                        right_hand=(np.float32([-0.2, 1.0, 0.45]), np.float32([1, 0, 0, 0])))
    head_j = ctrl.skeleton.index("Head")

    @PROPERTY
    @given(ticks)
    def check(bad_ticks):
        poses = _recovers(ctrl, bad_ticks, good)
        _, g = quat.fk(poses[-1].rotations, poses[-1].positions, ctrl.skeleton.parents)
        assert np.abs(g[head_j] - head[0]).max() < 1e-3
    check()


# ====================================================================== 3. the WebXR bridge
def _origin(bridge, host="127.0.0.1"):
    return f"http://{host}:{bridge.port}"


def _connect(bridge, origin=None, path="/ws", **kw):
    from websockets.sync.client import connect
    return connect(f"ws://127.0.0.1:{bridge.port}{path}", origin=origin, open_timeout=5, **kw)


def _until(cond, timeout: float = 5.0) -> bool:
    end = time.perf_counter() + timeout
    while not cond() and time.perf_counter() < end:
        time.sleep(0.01)
    return cond()


def _alive(ws) -> bool:
    return ws.ping(b"x").wait(5)


def _pose_msg(x=0.0):
    from viewer.webxr_bridge import pose_message
    return pose_message((np.float32([x, 1.6, 0.0]), np.float32([1, 0, 0, 0])))


@pytest.fixture
def bridge():
    from viewer.webxr_bridge import WebXRBridge
    with WebXRBridge(port=0, idle_timeout=5.0) as b:
        yield b


def test_bridge_refuses_other_origins(bridge):
    """Before: any Origin was accepted: any web page in the user's browser could drive the avatar."""
    from websockets.exceptions import InvalidStatus
    for origin in ("http://evil.example", f"http://evil.example:{bridge.port}", "null",
                   f"http://127.0.0.1:{bridge.port + 1}", "file://"):
        with pytest.raises(InvalidStatus) as e:
            _connect(bridge, origin=origin)
        assert e.value.response.status_code == 403, origin
    assert bridge.refused == 5 and bridge.error_counts["refused"] == 5
    with _connect(bridge, origin=_origin(bridge)) as ws:      # the page's own origin
        ws.send(_pose_msg())
        assert _alive(ws) and bridge.wait_for_messages(1)


def test_bridge_allow_list_origin():
    from websockets.exceptions import InvalidStatus

    from viewer.webxr_bridge import WebXRBridge
    with WebXRBridge(port=0, allow_origins=["https://vr.example.org"]) as b:
        with _connect(b, origin="https://vr.example.org") as ws:
            assert _alive(ws)
        with pytest.raises(InvalidStatus):
            _connect(b, origin="https://other.example.org")
    with pytest.raises(ValueError, match="scheme://host"):
        WebXRBridge(port=0, allow_origins=["vr.example.org/path"])


def test_bridge_refuses_oversize_messages(bridge):
    """Before: fragments had no total limit (300 one-MiB fragments: 43 -> 349 MB)."""
    from websockets.exceptions import ConnectionClosed
    with _connect(bridge, origin=_origin(bridge), max_size=None) as ws:
        chunk = "x" * 16384
        with pytest.raises(ConnectionClosed) as e:       # the server may close while the fragments still go out
            ws.send([chunk] * 8)                          # 128 KiB in 8 fragments, over the 64 KiB limit
            ws.recv(timeout=5)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009
    assert _until(lambda: bridge.clients == 0)
    assert bridge.error_counts["size"] == 1 and bridge.messages == 0


def _raw_upgrade(port: int) -> socket.socket:
    """A WebSocket handshake by hand (to send frames no library client would)."""
    import base64
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Origin: http://127.0.0.1:{port}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    return s


def test_bridge_refuses_unmasked_client_frames(bridge):
    """Before: unmasked client frames were accepted (RFC 6455 requires the
    server to close the connection)."""
    import struct
    s = _raw_upgrade(bridge.port)
    payload = _pose_msg().encode()
    s.sendall(bytes([0x81, 126]) + struct.pack("!H", len(payload)) + payload)     # FIN text, NO mask bit
    reply = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    assert reply[:1] == b"\x88" and struct.unpack("!H", reply[2:4])[0] == 1002    # close: protocol error
    assert bridge.messages == 0 and _until(lambda: bridge.clients == 0)


def test_bridge_times_out_idle_and_half_open_connections():
    """Before: a half-open connection stayed for ever."""
    from websockets.exceptions import ConnectionClosed

    from viewer.webxr_bridge import WebXRBridge
    with WebXRBridge(port=0, idle_timeout=0.5, open_timeout=0.5) as b:
        with _connect(b, origin=_origin(b)) as ws:
            t = time.perf_counter()
            with pytest.raises(ConnectionClosed) as e:
                ws.recv(timeout=5)
            assert e.value.rcvd.code == 1000 and e.value.rcvd.reason == "idle"
            assert 0.4 < time.perf_counter() - t < 3.0
        # a TCP connection that never sends its request: closed by the handshake timeout
        s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        t = time.perf_counter()
        s.sendall(b"GET /ws HTTP/1.1\r\n")                # half a request, then silence
        while s.recv(1024):                               # until the server closes it
            pass
        assert time.perf_counter() - t < 3.0
        s.close()
        assert _until(lambda: b.clients == 0) and b.error_counts["idle"] == 1


def test_bridge_limits_message_rate():
    from viewer.webxr_bridge import WebXRBridge
    with WebXRBridge(port=0, rate=20.0, burst=5.0) as b:
        with _connect(b, origin=_origin(b)) as ws:
            for i in range(100):
                ws.send(_pose_msg(0.001 * i))
            assert _alive(ws)                             # dropped, not disconnected
            assert _until(lambda: b.messages + b.error_counts["rate"] == 100)
            assert b.messages < 20 and b.error_counts["rate"] >= 80


BAD_MESSAGES = ["null", "[]", "{", '"pose"', "1e999", '{"type": "pose", "head": [NaN, 1, 0, 1, 0, 0, 0]}',
                '{"type": "pose", "head": [Infinity, 1, 0, 1, 0, 0, 0]}',
                '{"type": "pose", "head": [1e400, 1, 0, 1, 0, 0, 0]}', '{"type": "pose", "head": "abc"}',
                '{"type": "pose", "head": [1, 2]}', '{"type": "pose", "head": [true, 1, 0, 1, 0, 0, 0]}',
                '{"type": "pose", "head": [0, 1, 0, 0, 0, 0, 0]}', '{"type": "pose", "head": [5000, 1, 0, 1, 0, 0, 0]}',
                '{"type": "pose", "left": {"x": 1}}', '{"type": null}', '{"type": ["pose"]}', '{"type": "reboot"}',
                "[" * 50000, b"\x00\xff"]


def test_bridge_rejects_bad_messages_and_keeps_the_connection(bridge, vr_models):
    """Before: NaN reached the controller (the diffusion kernel raised
    ZeroDivisionError in the live loop); `null` or `[]` dropped the connection
    with an AttributeError."""
    with _connect(bridge, origin=_origin(bridge)) as ws:
        ws.send(_pose_msg(0.25))
        assert bridge.wait_for_messages(1)
        for m in BAD_MESSAGES:
            ws.send(m)
            assert _alive(ws), m
        assert _until(lambda: sum(bridge.error_counts.values()) == len(BAD_MESSAGES))
        assert bridge.messages == 1 and bridge.clients == 1
        head = bridge.latest()[0]
        assert np.allclose(head[0], [0.25, 1.6, 0.0])     # the last good pose
        ctrl = vr_models["diffusion"]
        ctrl.reset()
        for _ in range(10):
            h, lh, rh = bridge.latest()
            pose = ctrl.step(ControlInput(head=h, left_hand=lh, right_hand=rh), 1 / 60)
            assert finite(pose)
        ws.send(_pose_msg(0.5))
        assert bridge.wait_for_messages(2) and np.allclose(bridge.latest()[0][0], [0.5, 1.6, 0.0])


def test_bridge_error_list_is_bounded():
    """Before: the error list grew without bound."""
    from viewer.webxr_bridge import WebXRBridge
    with WebXRBridge(port=0, rate=1e6, burst=1e6) as b:
        for _ in range(500):
            assert b.on_message("null") is False
        assert len(b.errors) == 50 and b.error_counts["shape"] == 500


def test_token_policy():
    """Serving beyond loopback needs a token; the policy decides without binding anything."""
    from viewer.webxr_bridge import access_policy, is_loopback
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host) and access_policy(host).token is None, host
    for host in ("0.0.0.0", "", "::", "192.168.1.5", "my-laptop.local"):
        assert not is_loopback(host)
        p = access_policy(host)
        assert p.token and len(p.token) >= 16, host
        assert p.check("/ws", {}) [0] == 401
        assert p.check("/ws?token=wrong-token", {})[0] == 401
        assert p.check(f"/ws?token={p.token}", {}) is None
        assert p.check(f"/ws?token={p.token}", {"Origin": "http://evil.example", "Host": "10.0.0.2:8765"})[0] == 403
        assert p.check(f"/ws?token={p.token}", {"Origin": "http://10.0.0.2:8765", "Host": "10.0.0.2:8765"}) is None
    assert access_policy("0.0.0.0").token != access_policy("0.0.0.0").token       # random each time
    assert access_policy("0.0.0.0", token="my-token-123").token == "my-token-123"
    with pytest.raises(ValueError, match="token"):
        access_policy("0.0.0.0", token="short")
    # a DNS name rebound to this machine is not the page's origin, even when Host agrees
    p = access_policy("127.0.0.1")
    assert p.check("/ws", {"Origin": "http://rebind.example:8765", "Host": "rebind.example:8765"})[0] == 403
    assert p.check("/ws", {"Origin": "http://localhost:8765", "Host": "localhost:8765"}) is None


def test_token_given_on_loopback_is_required():
    from websockets.exceptions import InvalidStatus

    from viewer.webxr_bridge import WebXRBridge
    with WebXRBridge(port=0, token="secret-token-1") as b:
        assert b.page_url.endswith("/?token=secret-token-1")
        page = urllib.request.urlopen(b.url, timeout=5).read().decode()
        assert "URLSearchParams(location.search).get(\"token\")" in page      # the page passes it on
        with pytest.raises(InvalidStatus) as e:
            _connect(b, origin=_origin(b))
        assert e.value.response.status_code == 401
        with _connect(b, origin=_origin(b), path="/ws?token=secret-token-1") as ws:
            assert _alive(ws)


# ---- a real browser: the page passes its token on; another site's page is refused
def _chromium():
    import shutil
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing (.ci/run installs it)")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    return exe


def _browse(url: str, tmp_path, until, timeout: float = 30.0) -> None:
    """Open `url` in headless Chromium until `until()` holds (or timeout), then close it."""
    import signal
    import subprocess
    p = subprocess.Popen([_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", url],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _until(until, timeout)
        time.sleep(0.3)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)


def test_browser_page_carries_its_token(tmp_path):
    from viewer.webxr_bridge import WebXRBridge
    with WebXRBridge(port=0, token="secret-token-1") as b:
        _browse(b.url, tmp_path, lambda: b.refused > 0)                 # opened without the token: refused
        assert b.user_agent is None and "token" in b.errors[-1]
        _browse(b.page_url, tmp_path, lambda: b.user_agent is not None)   # the printed address: connected
        assert "Chrome" in b.user_agent and b.refused == 1


def test_browser_page_of_another_site_is_refused(tmp_path):
    """Before: any page open in the user's browser could drive the avatar."""
    import functools
    import http.server

    from viewer.webxr_bridge import WebXRBridge
    with WebXRBridge(port=0) as b:
        (tmp_path / "evil.html").write_text(
            "<script>const ws = new WebSocket('ws://127.0.0.1:%d/ws');"
            "ws.onopen = () => ws.send(JSON.stringify({type: 'pose', head: [0, 1.6, 0, 1, 0, 0, 0]}));"
            "</script>" % b.port)
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass
        handler = functools.partial(Quiet, directory=str(tmp_path))
        with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as site:
            threading.Thread(target=site.serve_forever, daemon=True).start()
            _browse(f"http://localhost:{site.server_address[1]}/evil.html", tmp_path, lambda: b.refused > 0)
            site.shutdown()
        assert b.refused == 1 and b.messages == 0 and "origin" in b.errors[-1]


# ====================================================================== 4. the demo without a display
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_webxr_headless_serves_and_runs(tmp_path, capsys, monkeypatch):
    """Before: `anim demo --vr webxr --headless` ignored --headless and ended in
    a RuntimeError traceback (no OpenGL window)."""
    from anim_app.cli import main
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    port = _free_port()
    done = threading.Event()
    sent = []

    def headset():
        from websockets.sync.client import connect
        end = time.perf_counter() + 120
        while not done.is_set() and time.perf_counter() < end:
            try:
                with connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}", open_timeout=2) as ws:
                    while not done.is_set():
                        ws.send(_pose_msg(0.1) if len(sent) % 10 else '{"type": "pose", "head": [NaN]}')
                        sent.append(1)
                        time.sleep(1 / 60)
            except OSError:
                time.sleep(0.05)
            except Exception:
                break
    t = threading.Thread(target=headset, daemon=True)
    t.start()
    try:
        rc = main(["demo", "--vr", "webxr", "--headless", "--seconds", "1.5", "--vr-port", str(port),
                   "--out", str(tmp_path)])
    finally:
        done.set()
        t.join(5)
    out = capsys.readouterr().out
    assert rc == 0 and f"http://127.0.0.1:{port}/" in out
    assert (tmp_path / "vr" / "frame_contact_sheet.png").exists()
    got = int(out.split(" poses received")[0].rsplit(" ", 1)[1])
    rejected = int(out.split(" rejected")[0].rsplit(" ", 1)[1])
    assert got > 10 and rejected >= 1 and sent


def test_webxr_arguments_are_checked(capsys):
    from viewer.vr_input import main
    for args in (["--seconds", "inf"], ["--seconds", "nan"], ["--seconds", "0"], ["--seconds", "-3"],
                 ["--port", "99999"], ["--port", "http"], ["--host", "0.0.0.0", "--token", "short"],
                 ["--allow-origin", "example.org/page"]):
        with pytest.raises(SystemExit) as e:
            main(["webxr", "--headless", "x"] + args)
        assert e.value.code == 2, args
        assert "error:" in capsys.readouterr().err


def test_webxr_port_in_use_is_a_clear_error(tmp_path, capsys):
    from viewer.vr_input import main
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        rc = main(["webxr", "--headless", str(tmp_path), "--seconds", "1", "--port", str(s.getsockname()[1])])
    assert rc == 1 and "could not listen" in capsys.readouterr().err
