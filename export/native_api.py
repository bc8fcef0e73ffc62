"""Python bindings (ctypes) of the native runtime core's C API
(export/native/include/anim_native.h): build the core with CMake, load it,
and drive a native controller with the same `ControlInput`s as the Python
controllers. The parity tests, the benchmark and the C# test use it.

    lib = build()                                   # cmake + g++ into build/native (once)
    c = NativeController.motion_matching("db.animrt", lib)
    pose = c.step(ControlInput(move=np.array([0, 1], np.float32)), 1 / 60)
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "export" / "native"
BUILD = ROOT / "build" / "native"
LIBNAME = "libanim_native.so"

ERRORS = {0: "ANIM_OK", -1: "ANIM_ERR_ARGUMENT", -2: "ANIM_ERR_IO", -3: "ANIM_ERR_FORMAT", -4: "ANIM_ERR_CHECKSUM",
          -5: "ANIM_ERR_CONTENT", -6: "ANIM_ERR_MEMORY"}


class NativeError(RuntimeError):
    """An error code from the core, with its message (which names the file)."""

    def __init__(self, code: int, message: str):
        self.code = code
        super().__init__(f"{ERRORS.get(code, code)}: {message}")


class AnimInput(ctypes.Structure):
    _fields_ = [("move_x", ctypes.c_float), ("move_z", ctypes.c_float), ("facing_x", ctypes.c_float),
                ("facing_z", ctypes.c_float), ("has_facing", ctypes.c_int32), ("run", ctypes.c_int32),
                ("style", ctypes.c_int32)]


class AnimTickInfo(ctypes.Structure):
    _fields_ = [("frame", ctypes.c_int64), ("searched", ctypes.c_int32), ("transitioned", ctypes.c_int32),
                ("cost", ctypes.c_double), ("limiter_share", ctypes.c_double), ("style", ctypes.c_int32),
                ("searches", ctypes.c_int32), ("transitions", ctypes.c_int32)]


def missing_tools() -> list[str]:
    """The build tools that are not on PATH (cmake, a C++ compiler)."""
    return [t for t in ("cmake", "g++") if shutil.which(t) is None]


def build(build_dir: Path = BUILD, quiet: bool = True) -> Path:
    """Configure and build the core (Release) with CMake; returns the library's path.
    Incremental: a second call only relinks what changed."""
    build_dir = Path(build_dir)
    out = None if not quiet else subprocess.PIPE
    for cmd in (["cmake", "-S", str(SOURCE), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", str(build_dir), "-j", str(min(4, os.cpu_count() or 1))]):
        r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"building the native core failed: {' '.join(cmd)}\n{r.stdout or ''}")
    lib = build_dir / LIBNAME
    if not lib.exists():
        raise RuntimeError(f"building the native core did not produce {lib}")
    return lib


def load(path: Path | str | None = None) -> ctypes.CDLL:
    """Load the built library and declare the C API's signatures."""
    lib = ctypes.CDLL(str(path or BUILD / LIBNAME))
    P, I, F, D = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_double
    sig = {
        "anim_last_error": (ctypes.c_char_p, []), "anim_version": (ctypes.c_char_p, []),
        "anim_create_mm": (I, [ctypes.c_char_p, ctypes.POINTER(P)]),
        "anim_create_lmm": (I, [ctypes.c_char_p, ctypes.POINTER(P)]),
        "anim_destroy": (None, [P]), "anim_reset": (I, [P]), "anim_reset_at": (I, [P, F, F]),
        "anim_step": (I, [P, ctypes.POINTER(AnimInput), D]), "anim_set_style": (I, [P, ctypes.c_int32]),
        "anim_num_joints": (I, [P]), "anim_joint_name": (ctypes.c_char_p, [P, I]), "anim_joint_parent": (I, [P, I]),
        "anim_num_styles": (I, [P]), "anim_style_name": (ctypes.c_char_p, [P, I]),
        "anim_get_pose": (I, [P, F, F, ctypes.POINTER(ctypes.c_uint8)]),
        "anim_get_global_pose": (I, [P, F, F]),
        "anim_get_info": (I, [P, ctypes.POINTER(AnimTickInfo)]),
        "anim_convert_unity": (I, [I, F, F, F, F]), "anim_convert_unreal": (I, [I, F, F, F, F]),
        "anim_stick_from_unity": (I, [ctypes.c_float, ctypes.c_float, F, F]),
        "anim_stick_from_unreal": (I, [ctypes.c_float, ctypes.c_float, F, F]),
        "anim_joint_index": (I, [P, ctypes.c_char_p]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def script_inputs(script, seconds: float | None = None, fps: float = 60.0) -> list:
    """The AnimInput of every tick of a stick script (anim.scripts.Script), as the
    controllers get them: tick i reads the script at i / fps. Style names are left
    out (-1): a caller that needs them sets `style`."""
    n = int(round((seconds or script.duration) * fps))
    out = []
    for i in range(n):
        ci = script(i / fps)
        x = AnimInput()
        m = np.asarray(ci.move, np.float32)
        x.move_x, x.move_z = float(m[0]), float(m[1])
        if ci.facing is not None:
            f = np.asarray(ci.facing, np.float32)
            x.facing_x, x.facing_z, x.has_facing = float(f[0]), float(f[1]), 1
        x.run, x.style = int(bool(ci.run)), -1
        out.append(x)
    return out


def write_inputs(inputs: list, path) -> int:
    """An inputs file of the bench tool and the C# test: int32 count, then the AnimInput structs."""
    import struct

    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(inputs)) + b"".join(bytes(x) for x in inputs))
    return len(inputs)


def _fp(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def check(lib, code: int) -> int:
    if code < 0:
        raise NativeError(code, lib.anim_last_error().decode())
    return code


class NativeController:
    """One native character; `step` takes the Python engine's ControlInput."""

    def __init__(self, lib, handle, learned: bool = False):
        self.lib, self.h = lib, handle
        self.learned = learned
        self.num_joints = check(lib, lib.anim_num_joints(handle))
        self.names = [lib.anim_joint_name(handle, j).decode() for j in range(self.num_joints)]
        self.parents = np.array([lib.anim_joint_parent(handle, j) for j in range(self.num_joints)])
        self.styles = [lib.anim_style_name(handle, s).decode() for s in range(lib.anim_num_styles(handle))]
        j = self.num_joints
        self.rot = np.zeros((j, 4), np.float32)
        self.pos = np.zeros((j, 3), np.float32)
        self.contacts = np.zeros(2, np.uint8)
        self._in = AnimInput()
        self._info = AnimTickInfo()

    @classmethod
    def motion_matching(cls, path, lib) -> "NativeController":
        h = ctypes.c_void_p()
        check(lib, lib.anim_create_mm(str(path).encode(), ctypes.byref(h)))
        return cls(lib, h)

    @classmethod
    def learned(cls, path, lib) -> "NativeController":
        h = ctypes.c_void_p()
        check(lib, lib.anim_create_lmm(str(path).encode(), ctypes.byref(h)))
        return cls(lib, h, learned=True)

    def close(self) -> None:
        if self.h:
            self.lib.anim_destroy(self.h)
            self.h = None

    def __del__(self):
        self.close()

    def reset(self):
        check(self.lib, self.lib.anim_reset(self.h))
        return self.pose()

    def input(self, control) -> AnimInput:
        """The C input struct of a ControlInput (float32 stick and facing, as the scripts give them)."""
        x = self._in
        move = np.asarray(control.move, np.float32)
        x.move_x, x.move_z = float(move[0]), float(move[1])
        if control.facing is not None:
            f = np.asarray(control.facing, np.float32)
            x.facing_x, x.facing_z, x.has_facing = float(f[0]), float(f[1]), 1
        else:
            x.facing_x = x.facing_z = 0.0
            x.has_facing = 0
        x.run = int(bool(control.run))
        if control.style is None or (self.learned and control.style not in self.styles):
            x.style = -1          # a learned model ignores styles it cannot play (as controllers.learned does)
        elif control.style not in self.styles:
            raise ValueError(f"style {control.style!r} not in the database (has: {', '.join(self.styles)})")
        else:
            x.style = self.styles.index(control.style)
        return x

    def step(self, control, dt: float = 1.0 / 60.0):
        check(self.lib, self.lib.anim_step(self.h, ctypes.byref(self.input(control)), float(dt)))
        return self.pose()

    def pose(self):
        """(local rotations [J, 4], local positions [J, 3], contacts [2]) of the pose shown."""
        check(self.lib, self.lib.anim_get_pose(self.h, _fp(self.rot), _fp(self.pos),
                                               self.contacts.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))))
        return self.rot.copy(), self.pos.copy(), self.contacts.astype(bool)

    def global_pose(self):
        r = np.zeros((self.num_joints, 4), np.float32)
        p = np.zeros((self.num_joints, 3), np.float32)
        check(self.lib, self.lib.anim_get_global_pose(self.h, _fp(r), _fp(p)))
        return r, p

    def info(self) -> AnimTickInfo:
        check(self.lib, self.lib.anim_get_info(self.h, ctypes.byref(self._info)))
        return self._info
