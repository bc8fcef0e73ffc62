"""The Unity package (export/unity/): its C# (Runtime/, C# 7) compiles with
Mono's mcs, and a C# program (Tests~/ParityTest.cs) runs a stick script
through the package's P/Invoke layer against the built native core; the
poses it shows in Unity's axes match the Python engine's, converted to
Unity's axes (left-handed: x -> -x), within 1 mm at every tick, for learned
motion matching (the shipped weights) and motion matching."""

from __future__ import annotations

import functools
import os
import subprocess

import _native
import numpy as np
import pytest
from _tools import require_tools

from anim import quat, scripts
from export import native_api as na
from export import runtime_db as rdb

UNITY = na.ROOT / "export" / "unity"
OUT = na.ROOT / "build" / "unity"
MM = 1e-3


@functools.lru_cache(maxsize=None)
def _compile() -> tuple:
    OUT.mkdir(parents=True, exist_ok=True)
    dll, exe = OUT / "Anim.Runtime.dll", OUT / "ParityTest.exe"
    runtime = sorted(str(p) for p in (UNITY / "Runtime").glob("*.cs"))
    for cmd in (["mcs", "-langversion:7", "-warnaserror+", "-target:library", f"-out:{dll}", *runtime],
                ["mcs", "-langversion:7", f"-out:{exe}", f"-r:{dll}", str(UNITY / "Tests~" / "ParityTest.cs")]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(cmd[:4])} failed:\n{r.stdout}{r.stderr}"
    return dll, exe


def csharp_poses(runtime_file, inputs, tmp_path, learned: bool):
    """Run the C# test program; returns (frames [T], Unity-axes global positions [T, J, 3])."""
    require_tools("mcs", "mono", why="the Unity package's C# is compiled with Mono's mcs and run with mono")
    lib = _native.lib()            # builds the core
    _, exe = _compile()
    inp, out = tmp_path / "inputs.bin", tmp_path / "poses.bin"
    na.write_inputs(inputs, inp)
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join([str(na.BUILD), os.environ.get("LD_LIBRARY_PATH", "")]))
    r = subprocess.run(["mono", str(exe), str(runtime_file), str(inp), str(out)] + (["lmm"] if learned else []),
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"ParityTest.exe failed:\n{r.stdout}{r.stderr}"
    assert lib is not None
    blob = out.read_bytes()
    t, j = np.frombuffer(blob[:8], np.int32)
    rec = np.frombuffer(blob[8:], np.dtype([("frame", "<i8"), ("g", "<f4", (j, 3))]))
    assert len(rec) == t
    return rec["frame"], rec["g"]


def python_poses(ctrl, script, n):
    p = ctrl.reset()
    g = [quat.fk(p.rotations, p.positions, ctrl.skeleton.parents)[1]]
    frames = [getattr(ctrl, "frame", 0)]
    for i in range(n):
        p = ctrl.step(script(i / 60.0), 1.0 / 60.0)
        g.append(quat.fk(p.rotations, p.positions, ctrl.skeleton.parents)[1])
        frames.append(getattr(ctrl, "frame", 0))
    return np.array(frames), np.array(g)


def to_unity(g):
    return g * np.array([-1.0, 1.0, 1.0], np.float32)


def test_unity_package_layout():
    import json

    pkg = json.loads((UNITY / "package.json").read_text())
    asm = json.loads((UNITY / "Runtime" / "Anim.Runtime.asmdef").read_text())
    assert pkg["name"].startswith("com.") and pkg["name"] == pkg["name"].lower() and pkg["version"]
    assert asm["name"] == "Anim.Runtime"
    assert "DllImport" in (UNITY / "Runtime" / "AnimNative.cs").read_text()


def test_csharp_learned_motion_matching_matches_python_in_unity_axes(tmp_path):
    from controllers.learned import DEFAULT_WEIGHTS, LearnedController

    lmm = tmp_path / "lmm.animlmm"
    rdb.write_runtime_lmm(DEFAULT_WEIGHTS, lmm)
    script = scripts.load("strafe")                 # strafing: the facing crosses the axis conversion too
    inputs = na.script_inputs(script)
    _, cs = csharp_poses(lmm, inputs, tmp_path, learned=True)
    _, py = python_poses(LearnedController.load(DEFAULT_WEIGHTS), script, len(inputs))
    err = np.abs(cs - to_unity(py)).max()
    assert err < MM, f"C# pose {err * 1e3:.4f} mm from Python's"
    assert np.abs(cs[-1, 0] - cs[0, 0]).max() > 0.5     # it went somewhere (in Unity axes)


def test_csharp_motion_matching_matches_python_in_unity_axes(tmp_path):
    from controllers.motion_matching import MotionMatchingController

    db, path = _native.runtime_db("normal")
    script = scripts.load("turns")
    inputs = na.script_inputs(script)
    frames, cs = csharp_poses(path, inputs, tmp_path, learned=False)
    py_frames, py = python_poses(MotionMatchingController(db), script, len(inputs))
    err = np.abs(cs - to_unity(py)).max()
    assert err < MM, f"C# pose {err * 1e3:.4f} mm from Python's"
    same = [a == b or np.array_equal(db.features[a], db.features[b]) for a, b in zip(frames, py_frames)]
    assert all(same), f"another frame played at tick {same.index(False)}"


def test_csharp_reports_a_bad_file(tmp_path):
    bad = tmp_path / "bad.animrt"
    bad.write_bytes(b"not a runtime database at all, far too short")
    require_tools("mcs", "mono", why="the Unity package's C# is compiled with Mono's mcs and run with mono")
    _native.lib()
    _, exe = _compile()
    inp = tmp_path / "in.bin"
    na.write_inputs([na.AnimInput()], inp)
    env = dict(os.environ, LD_LIBRARY_PATH=str(na.BUILD))
    r = subprocess.run(["mono", str(exe), str(bad), str(inp), str(tmp_path / "o.bin")], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 1 and "bad.animrt" in r.stderr and "error -3" in r.stderr, r.stderr
