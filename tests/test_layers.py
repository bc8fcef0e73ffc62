"""The layers point down (../shared/DESIGN.md): `anim/` (the core) imports
nothing from `controllers/`, `viewer/` or the application layer `anim_app/`;
controllers and the viewer never import `anim_app/`. The contracts live in
pyproject.toml ([tool.importlinter]) and import-linter checks them, lazy
imports inside functions included."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("anim", "anim_app", "controllers", "viewer", "mocap_data", "export")


def _lint(root):
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports (import-linter, a dev dependency) is not installed")
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([exe, "--config", os.path.join(root, "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_layers_point_down():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_an_upward_import_in_the_core_breaks_the_contract(tmp_path):
    """The same check on a copy of the packages with one lazy upward import
    added to the core: the contract is reported broken, naming the module."""
    for p in PACKAGES:
        shutil.copytree(os.path.join(ROOT, p), tmp_path / p,
                        ignore=shutil.ignore_patterns("__pycache__", "weights", "*.npz", ".cache", "webxr"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path / "pyproject.toml")
    (tmp_path / "anim" / "probe_upward.py").write_text(
        "def f():\n    from controllers.motion_matching import MotionMatchingController\n"
        "    return MotionMatchingController\n")
    r = _lint(str(tmp_path))
    assert r.returncode != 0
    assert "BROKEN" in r.stdout and "anim.probe_upward" in r.stdout
