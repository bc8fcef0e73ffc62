"""The native runtime core (export/native/) against the Python engine: the
runtime database format (`anim export runtime-db`), clear errors for bad
files and bad input, and the parity of the tick, frame by frame, on the
shipped stick scripts. Motion matching: the same database frame after every
search (or an exact duplicate of it: takes that share frames hold identical
rows), the same searches and transitions, every joint within 1 mm. Learned
motion matching (`anim export runtime-lmm` of the shipped weights): the same
searches and transitions, every joint within 1 mm."""

from __future__ import annotations

import ctypes
import functools
import struct
import zlib

import _native
import numpy as np
import pytest

from anim import quat, scripts
from export import native_api as na
from export import runtime_db as rdb

MM = 1e-3
# demo and styles ask for styles the default database lacks: test_motion_matching_parity_across_styles
SHIPPED = ["walk", "run", "turns", "circles", "strafe", "stop_start"]


@functools.lru_cache(maxsize=None)
def _python_controller(which: str):
    from controllers.motion_matching import MotionMatchingController

    db, _ = _native.runtime_db(which)
    return MotionMatchingController(db)


def same_frame(db, a: int, b: int) -> bool:
    """Frames a and b are the same search result: equal, or rows the database holds twice."""
    return a == b or (np.array_equal(db.features[a], db.features[b]) and np.array_equal(db.rotations[a], db.rotations[b])
                      and np.array_equal(db.positions[a], db.positions[b]) and np.array_equal(db.contacts[a], db.contacts[b]))


def run_both(which: str, script, seconds: float | None = None) -> dict:
    """Drive the Python and the native controller with the same script; per tick:
    the frames, searched/transitioned flags, global joint positions, contacts."""
    db, path = _native.runtime_db(which)
    py = _python_controller(which)
    nc = na.NativeController.motion_matching(path, _native.lib())
    n = int(round((seconds or script.duration) * 60))
    dt = 1.0 / 60.0
    out = {k: [] for k in ("py_frame", "nc_frame", "py_searched", "nc_searched", "py_moved", "nc_moved",
                           "py_contacts", "nc_contacts")}
    py_rot, py_pos, nc_rot, nc_pos = [], [], [], []
    py.set_style(None)                 # the shared controller may hold another test's style
    p = py.reset()
    r, q, c = nc.reset()
    py_rot.append(p.rotations); py_pos.append(p.positions); nc_rot.append(r); nc_pos.append(q)
    for i in range(n):
        ci = script(i * dt)
        s0, t0 = py.stats["searches"], py.stats["transitions"]
        p = py.step(ci, dt)
        r, q, c = nc.step(ci, dt)
        info = nc.info()
        out["py_frame"].append(py.frame); out["nc_frame"].append(int(info.frame))
        out["py_searched"].append(py.stats["searches"] > s0); out["nc_searched"].append(bool(info.searched))
        out["py_moved"].append(py.stats["transitions"] > t0); out["nc_moved"].append(bool(info.transitioned))
        out["py_contacts"].append(np.asarray(p.contacts, bool)); out["nc_contacts"].append(c)
        py_rot.append(p.rotations); py_pos.append(p.positions); nc_rot.append(r); nc_pos.append(q)
    nc.close()
    parents = db.skeleton.parents
    out = {k: np.array(v) for k, v in out.items()}
    out["py_g"] = quat.fk(np.array(py_rot), np.array(py_pos), parents)[1]
    out["nc_g"] = quat.fk(np.array(nc_rot), np.array(nc_pos), parents)[1]
    out["db"] = db
    return out


def assert_parity(r: dict, name: str) -> None:
    db = r["db"]
    bad = [i for i, (a, b) in enumerate(zip(r["py_frame"], r["nc_frame"])) if not same_frame(db, a, b)]
    assert not bad, f"{name}: {len(bad)} ticks play another frame, first at tick {bad[0]}"
    assert np.array_equal(r["py_searched"], r["nc_searched"]), f"{name}: searches differ"
    assert np.array_equal(r["py_moved"], r["nc_moved"]), f"{name}: transitions differ"
    assert r["py_moved"].sum() > 10, f"{name}: too few transitions to say anything"
    err = np.abs(r["py_g"] - r["nc_g"]).max()
    assert err < MM, f"{name}: a joint {err * 1e3:.3f} mm away from Python's"
    assert np.array_equal(r["py_contacts"], r["nc_contacts"]), f"{name}: contacts differ"


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize("name", SHIPPED)
def test_motion_matching_parity_on_shipped_scripts(name):
    assert_parity(run_both("normal", scripts.load(name)), name)


def test_motion_matching_parity_across_styles():
    """Style masks: the search is restricted to the asked style's frames, switched live."""
    text = "\n".join(["duration=9", "t=0 move=0 style=normal", "t=0.5 move=0,1", "t=2.5 style=active",
                      "t=4.5 move=1,0 style=normal", "t=6.5 move=0,-1 style=active run=1", "t=8 move=0"])
    r = run_both("two_style", scripts.parse(text, "two-styles.stick"))
    assert_parity(r, "two styles")
    db = r["db"]
    styles = [db.clip_tags[db.clip_of(f)]["style"] for f in r["nc_frame"]]
    assert styles[int(3.5 * 60)] == "active" and styles[int(5.5 * 60)] == "normal"


# ------------------------------------------------------------------ learned motion matching
@functools.lru_cache(maxsize=None)
def _lmm_file() -> str:
    from controllers.learned import DEFAULT_WEIGHTS

    path = _native._tmp() / "lmm.animlmm"
    rdb.write_runtime_lmm(DEFAULT_WEIGHTS, path)
    return str(path)


@functools.lru_cache(maxsize=None)
def _python_lmm():
    from controllers.learned import DEFAULT_WEIGHTS, LearnedController

    return LearnedController.load(DEFAULT_WEIGHTS)


@pytest.mark.filterwarnings("ignore:learned motion matching")
@pytest.mark.parametrize("name", SHIPPED + ["styles"])
def test_learned_motion_matching_parity_on_shipped_scripts(name):
    py = _python_lmm()
    nc = na.NativeController.learned(_lmm_file(), _native.lib())
    script = scripts.load(name)
    dt, n = 1.0 / 60.0, int(round(script.duration * 60))
    p, (r, q, _) = py.reset(), nc.reset()
    parents = py.skeleton.parents
    py_g, nc_g, moved = [], [], []
    py_g.append(quat.fk(p.rotations, p.positions, parents)[1]); nc_g.append(quat.fk(r, q, parents)[1])
    for i in range(n):
        ci = script(i * dt)
        s0, t0 = py.stats["searches"], py.stats["transitions"]
        p = py.step(ci, dt)
        r, q, c = nc.step(ci, dt)
        info = nc.info()
        assert (py.stats["searches"] > s0, py.stats["transitions"] > t0) == (bool(info.searched),
                                                                               bool(info.transitioned)), i
        assert np.array_equal(np.asarray(p.contacts, bool), c), f"tick {i}: contacts differ"
        moved.append(info.transitioned)
        py_g.append(quat.fk(p.rotations, p.positions, parents)[1]); nc_g.append(quat.fk(r, q, parents)[1])
    nc.close()
    err = np.abs(np.array(py_g) - np.array(nc_g)).max()
    assert sum(moved) > 10 and err < MM, f"{name}: {sum(moved)} transitions, a joint {err * 1e3:.4f} mm off"


def test_lmm_file_errors_name_the_file(tmp_path):
    lib = _native.lib()
    with pytest.raises(na.NativeError, match="bad magic"):         # a runtime database is not a learned file
        bad = tmp_path / "not-lmm.animlmm"
        bad.write_bytes(b"ANIMRTDB" + open(_lmm_file(), "rb").read()[8:])
        na.NativeController.learned(bad, lib)
    blob = bytearray(open(_lmm_file(), "rb").read())
    bad = tmp_path / "no-stepper.animlmm"
    bad.write_bytes(bytes(_drop_chunk(blob, "stepper.W1")))
    with pytest.raises(na.NativeError, match=r"no-stepper.animlmm: .*stepper.W1") as e:
        na.NativeController.learned(bad, lib)
    assert e.value.code == -5


# ------------------------------------------------------------------ the file
def test_runtime_db_round_trip_holds_what_the_tick_reads():
    db, path = _native.runtime_db("two_style")
    r = rdb.read_runtime_db(path)
    assert r["skeleton.names"].split("\n") == list(db.skeleton.names)
    assert np.array_equal(r["skeleton.parents"], db.skeleton.parents)
    for name in ("features", "rotations", "positions", "velocities", "angular_velocities"):
        assert np.array_equal(r[name], np.asarray(getattr(db, name))), name
    assert np.array_equal(r["valid"].astype(bool), db.valid)
    assert np.array_equal(r["clips.ranges"][:, 0], db.range_starts)
    assert r["styles"].split("\n") == ["active", "normal"]
    names = r["config.names"].split("\n")
    assert dict(zip(names, r["config.values"]))["transition_margin"] == 0.01
    assert r["accel_limit"][0] > 10.0          # the database's p99.9 (m/s^2)


def _rewrite(src, dst, edit):
    blob = bytearray(open(src, "rb").read())
    blob = edit(blob)
    open(dst, "wb").write(bytes(blob))
    return dst


def _fix_crc(blob):
    payload = bytes(blob[rdb.HEADER.size:])
    struct.pack_into("<I", blob, 24, zlib.crc32(payload) & 0xFFFFFFFF)
    return blob


def _drop_chunk(blob, name):
    """The file without chunk `name` (sizes and checksum made right again)."""
    out, o, payload = [], 0, bytes(blob[rdb.HEADER.size:])
    while o < len(payload):
        cname, code, ndim, *shape = rdb.CHUNK.unpack_from(payload, o)
        n = int(np.prod(shape[:ndim])) * rdb.DTYPES[code].itemsize
        end = o + rdb.CHUNK.size + n + (-n % 8)
        if cname.rstrip(b"\0").decode() != name:
            out.append(payload[o:end])
        o = end
    payload = b"".join(out)
    magic, version = rdb.HEADER.unpack_from(blob)[:2]
    head = rdb.HEADER.pack(magic, version, rdb.HEADER.size, len(payload), zlib.crc32(payload) & 0xFFFFFFFF, 0)
    return bytearray(head + payload)


def _reshape_chunk(blob, name, shape_to):
    """Chunk `name` declared with another shape of the same size (checksum made right again)."""
    o, payload = 0, bytes(blob[rdb.HEADER.size:])
    while o < len(payload):
        cname, code, ndim, *shape = rdb.CHUNK.unpack_from(payload, o)
        n = int(np.prod(shape[:ndim])) * rdb.DTYPES[code].itemsize
        if cname.rstrip(b"\0").decode() == name:
            dims = list(shape_to) + [0] * (4 - len(shape_to))
            struct.pack_into("<II4Q", blob, rdb.HEADER.size + o + 32, code, len(shape_to), *dims)
            return _fix_crc(blob)
        o += rdb.CHUNK.size + n + (-n % 8)
    raise KeyError(name)


BAD_FILES = {
    "magic": (lambda b: bytearray(b"NOTADB!!") + b[8:], -3, "bad magic"),
    "version": (lambda b: _fix_crc(b[:8] + bytearray(struct.pack("<I", 99)) + b[12:]), -3, "format version 99"),
    "truncated": (lambda b: b[: len(b) - 1000], -3, "truncated"),
    "corrupt": (lambda b: b[:5000] + bytearray([b[5000] ^ 0xFF]) + b[5001:], -4, "checksum"),
    "missing chunk": (lambda b: _drop_chunk(b, "velocities"), -5, "missing chunk 'velocities'"),
    "wrong shape": (lambda b: _reshape_chunk(b, "skeleton.offsets", (33, 2)), -5,
                    "chunk 'skeleton.offsets' has shape [33, 2], expected [22, 3]"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_runtime_db_is_a_clear_error_naming_the_file(case, tmp_path):
    _, path = _native.runtime_db("two_style")
    edit, code, words = BAD_FILES[case]
    bad = _rewrite(path, tmp_path / f"{case.replace(' ', '_')}.animrt", edit)
    with pytest.raises(na.NativeError) as e:
        na.NativeController.motion_matching(bad, _native.lib())
    assert e.value.code == code and str(bad) in str(e.value) and words in str(e.value), str(e.value)
    if case not in ("wrong shape", "missing chunk"):     # the Python reader refuses the same files
        with pytest.raises(rdb.RuntimeDbError, match=words):
            rdb.read_runtime_db(bad)


def test_missing_file_and_bad_style_are_errors():
    lib = _native.lib()
    with pytest.raises(na.NativeError, match="nowhere.animrt: cannot open"):
        na.NativeController.motion_matching("/nonexistent/nowhere.animrt", lib)
    _, path = _native.runtime_db("two_style")
    c = na.NativeController.motion_matching(path, lib)
    x = na.AnimInput(0.0, 1.0, 0.0, 0.0, 0, 0, 7)
    assert lib.anim_step(c.h, ctypes.byref(x), 1 / 60) == -1 and "style 7" in lib.anim_last_error().decode()
    x.style = -1
    assert lib.anim_step(c.h, ctypes.byref(x), 1 / 60) == 0


def test_bad_input_is_sanitized_as_python_does():
    """NaN and huge sticks, a NaN facing, 0 s, negative, NaN and 1 s ticks: the native guard
    plays what anim.control.InputGuard makes of them, tick for tick."""
    from anim.control import ControlInput

    db, path = _native.runtime_db("two_style")
    py = _python_controller("two_style")
    nc = na.NativeController.motion_matching(path, _native.lib())
    nan = float("nan")
    seq = ([(ControlInput(move=np.array([0.0, 1.0], np.float32)), 1 / 60)] * 40
           + [(ControlInput(move=np.array([nan, 1.0], np.float32)), 1 / 60)] * 5
           + [(ControlInput(move=np.array([1e30, 0.0], np.float32)), 1 / 60)] * 30
           + [(ControlInput(move=np.array([0.0, 1.0], np.float32), facing=np.array([1.0, 0.0], np.float32)), 1 / 60)] * 20
           + [(ControlInput(move=np.array([0.0, 1.0], np.float32), facing=np.array([nan, 0.0], np.float32)), 1 / 60)] * 20
           + [(ControlInput(move=np.array([0.0, -1.0], np.float32)), dt) for dt in (0.0, -1.0, nan, 1.0, 1 / 60)] * 6)
    py.set_style(None)                 # the shared controller may hold another test's style
    p, (r, q, _) = py.reset(), nc.reset()
    worst = 0.0
    for i, (ci, dt) in enumerate(seq):
        p = py.step(ci, dt)
        r, q, _ = nc.step(ci, dt)
        assert same_frame(db, py.frame, int(nc.info().frame)), f"tick {i}: another frame"
        g0 = quat.fk(p.rotations, p.positions, db.skeleton.parents)[1]
        g1 = quat.fk(r, q, db.skeleton.parents)[1]
        assert np.isfinite(g1).all()
        worst = max(worst, float(np.abs(g0 - g1).max()))
    assert worst < MM, f"a joint {worst * 1e3:.3f} mm from Python's"
    assert np.abs(q[0] - py.reset().positions[0]).max() > 0.5          # it went somewhere meanwhile


# ------------------------------------------------------------------ engine axes
def _rand_quats(n, rng):
    q = rng.standard_normal((n, 4)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _rot_xyzw(q, v):
    """Rotate v by (x, y, z, w) quaternions with the standard formula (both engines use it)."""
    return quat.rot(np.concatenate([q[:, 3:], q[:, :3]], 1), v)


@pytest.mark.parametrize("engine", ["unity", "unreal"])
def test_engine_axis_conversion_keeps_rotations_and_directions(engine):
    lib = _native.lib()
    fn = getattr(lib, f"anim_convert_{engine}")
    rng = np.random.default_rng(0)
    n = 64
    p = rng.standard_normal((n, 3)).astype(np.float32)
    q = _rand_quats(n, rng)
    op, oq = np.zeros_like(p), np.zeros_like(q)
    assert fn(n, na._fp(p), na._fp(q), na._fp(op), na._fp(oq)) == 0
    # rotating then converting == converting then rotating in the engine's axes
    rotated = quat.rot(q, p)
    conv = np.zeros_like(p)
    fn(n, na._fp(np.ascontiguousarray(rotated)), None, na._fp(conv), None)
    np.testing.assert_allclose(_rot_xyzw(oq, op), conv, atol=1e-4)
    axes = np.eye(3, dtype=np.float32)            # our left (+X), up (+Y), forward (+Z)
    out = np.zeros_like(axes)
    fn(3, na._fp(axes), None, na._fp(out), None)
    want = {"unity": [[-1, 0, 0], [0, 1, 0], [0, 0, 1]],           # Unity: +X right, +Y up, +Z forward
            "unreal": [[0, -100, 0], [0, 0, 100], [100, 0, 0]]}     # Unreal: +Y right, +Z up, +X forward, cm
    np.testing.assert_allclose(out, want[engine])
    assert np.linalg.det(np.array(want[engine], float)) < 0          # a change of handedness


@pytest.mark.parametrize("engine", ["unity", "unreal"])
def test_stick_from_engine_axes_inverts_the_position_map(engine):
    """A ground direction converted to the engine's axes and read back as a stick is the same direction."""
    lib = _native.lib()
    to_engine, from_engine = getattr(lib, f"anim_convert_{engine}"), getattr(lib, f"anim_stick_from_{engine}")
    for d in ([0.0, 1.0], [1.0, 0.0], [0.6, -0.8], [-0.3, 0.2]):
        p = np.array([d[0], 0.0, d[1]], np.float32)
        e = np.zeros(3, np.float32)
        to_engine(1, na._fp(p), None, na._fp(e), None)
        x, z = ctypes.c_float(), ctypes.c_float()
        args = (e[0], e[2]) if engine == "unity" else (e[0], e[1])     # Unity (x, z); Unreal (X fwd, Y right)
        assert from_engine(*args, ctypes.byref(x), ctypes.byref(z)) == 0
        scale = 1.0 if engine == "unity" else 100.0
        np.testing.assert_allclose([x.value / scale, z.value / scale], d, atol=1e-6)


def test_bones_map_by_exported_joint_name():
    _, path = _native.runtime_db("two_style")
    c = na.NativeController.motion_matching(path, _native.lib())
    assert [c.lib.anim_joint_index(c.h, n.encode()) for n in c.names] == list(range(c.num_joints))
    assert c.lib.anim_joint_index(c.h, b"NoSuchBone") == -1
    assert c.names[c.parents.tolist().index(-1)] == c.names[0]


def test_no_allocation_per_tick(tmp_path):
    """The C++ bench tool counts every operator new of the process while it ticks a script."""
    import json
    import subprocess

    _native.lib()
    tool = na.BUILD / "anim_native_bench"
    inputs = tmp_path / "in.bin"
    na.write_inputs(na.script_inputs(scripts.load("strafe"), seconds=6.0), inputs)
    for path, kind in ((_lmm_file(), "lmm"), (_native.runtime_db("two_style")[1], "mm")):
        out = subprocess.run([str(tool), str(path), str(inputs), "2"] + ([kind] if kind == "lmm" else []),
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out)
        assert r["allocations_at_create"] > 0 and r["searches"] > 10, r     # the counter sees the core
        assert r["allocations_while_ticking"] == 0, r


def test_cli_exports_a_runtime_db_the_core_loads(tmp_path, capsys):
    from anim import database
    from anim_app import cli

    db, _ = _native.runtime_db("two_style")
    src, out = tmp_path / "two.animdb", tmp_path / "two.animrt"
    database.save(db, str(src))
    assert cli.main(["export", "runtime-db", "--db", str(src), "--out", str(out)]) == 0
    assert "crc32" in capsys.readouterr().out
    c = na.NativeController.motion_matching(out, _native.lib())
    assert c.styles == ["active", "normal"] and c.num_joints == db.skeleton.num_joints
    assert cli.main(["export", "runtime-db", "--db", str(src), "--out", str(out), "--accel-limit", "-1"]) == 2
    assert "--accel-limit -1" in capsys.readouterr().err
