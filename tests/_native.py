"""The native core built once per test session, and the runtime databases it
reads (a helper module shared by test_native.py and test_unity.py)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import _databases
import pytest
from _tools import require_tools

from export import native_api


@functools.lru_cache(maxsize=None)
def _build():
    return native_api.load(native_api.build())


def lib():
    """The loaded core, built with CMake on first use (skips without cmake/g++, fails under CI)."""
    require_tools("cmake", "g++", why="the native core is built with CMake and g++")
    return _build()


@functools.lru_cache(maxsize=None)
def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="anim-native-"))


@functools.lru_cache(maxsize=None)
def _written(which: str) -> Path:
    from export.runtime_db import write_runtime_db

    db = {"normal": _databases.normal_db, "two_style": _databases.two_style_db}[which]()
    path = _tmp() / f"{which}.animrt"
    write_runtime_db(db, path)
    return path


def runtime_db(which: str = "normal"):
    """(database, path of its runtime export): 'normal' (the default preset) or
    'two_style' (a small two-style database). Skips without the mocap corpus."""
    if not _databases.corpus_available():
        pytest.skip("the mocap corpus (../shared/mocap) is not available")
    db = {"normal": _databases.normal_db, "two_style": _databases.two_style_db}[which]()
    return db, _written(which)
