"""Databases shared by test_runner.py and test_motion_matching.py, built once
per test session from real clips (a helper module, not a test file: pytest
puts tests/ on sys.path, so `import _databases` works from any test there)."""

from __future__ import annotations

import functools

import mocap_data
from anim import database
from anim.presets import PRESETS


def corpus_available() -> bool:
    try:
        return any(True for _ in mocap_data.datasets())
    except Exception:
        return False


@functools.lru_cache(maxsize=None)
def normal_db() -> database.Database:
    """The default preset's database (normal-style locomotion of both Bandai
    Namco datasets, mirrored): what `anim build-db` builds, a few seconds."""
    clips = mocap_data.load_clips(mocap_data.datasets(), tags=PRESETS["locomotion-normal"], progress=False)
    return database.build_database(clips, progress=False)


@functools.lru_cache(maxsize=None)
def two_style_db() -> database.Database:
    """A tiny database with two styles: walks 001-006 of bandai-namco-2 in the
    normal and the active style, mirrored."""
    clips = mocap_data.load_clips(mocap_data.datasets(), progress=False,
                                  tags={"dataset": "bandai-namco-2", "content": "walk",
                                        "style": ["normal", "active"],
                                        "take": [f"{i:03d}" for i in range(1, 7)]})
    return database.build_database(clips, progress=False)


def physics_db():
    """The normal-style database of the physics tests: the one `anim build-db`
    wrote under out/databases when present (fast), else built from the corpus;
    the test is skipped when neither exists."""
    import os

    import pytest
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "out", "databases",
                        "locomotion-normal.animdb")
    if os.path.exists(path):
        return database.load(path)
    if not corpus_available():
        pytest.skip("no mocap corpus and no built database")
    return normal_db()
