"""System tools a test needs (g++, cmake, mcs, mono, node...): a test that lacks
one is skipped with the reason, except under CI (the environment variable
CI=true), where the project's own files must have installed it and a missing
tool is a failure."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_tools(*names: str, why: str = "") -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    msg = f"needs {', '.join(missing)} on PATH{(' (' + why + ')') if why else ''}"
    if in_ci():
        pytest.fail(f"CI=true: {msg}; .ci/run must install it", pytrace=False)
    pytest.skip(msg)
