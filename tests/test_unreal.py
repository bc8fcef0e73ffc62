"""The Unreal plugin (export/unreal/) without Unreal: its layout. What lies
beneath the node, the core's tick, the Z-up centimetre axis map and the bone
lookup by exported name, is tested in tests/test_native.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent / "export" / "unreal" / "AnimMotionMatching"


def test_uplugin_names_modules_that_exist_with_their_build_rules():
    meta = json.loads((PLUGIN / "AnimMotionMatching.uplugin").read_text())
    assert meta["FileVersion"] == 3 and meta["Modules"]
    types = {m["Name"]: m["Type"] for m in meta["Modules"]}
    assert types["AnimMotionMatching"] == "Runtime"
    for name in types:
        rules = PLUGIN / "Source" / name / f"{name}.Build.cs"
        assert rules.exists(), rules
        assert re.search(rf"class {name}\s*:\s*ModuleRules", rules.read_text())


def test_the_module_finds_the_core_header_where_build_cs_looks():
    rules = (PLUGIN / "Source" / "AnimMotionMatching" / "AnimMotionMatching.Build.cs").read_text()
    assert '"..", "..", "native", "include"' in rules
    header = (PLUGIN / ".." / ".." / "native" / "include" / "anim_native.h").resolve()
    assert header.exists()
    text = header.read_text()
    used = set(re.findall(r"\b(anim_[a-z_]+)\(", (PLUGIN / "Source").joinpath(
        "AnimMotionMatching", "Private", "AnimNode_MotionMatching.cpp").read_text()
        + (PLUGIN / "Source" / "AnimMotionMatching" / "Public" / "UnrealAxes.h").read_text()))
    declared = set(re.findall(r"ANIM_API [^(]*?\b(anim_[a-z_]+)\(", text))
    assert used and used <= declared, f"the plugin calls undeclared functions: {used - declared}"


def test_the_axis_conversion_lives_in_one_header():
    """Only UnrealAxes.h converts (through the core's tested functions); the node calls it."""
    src = PLUGIN / "Source"
    users = {p.name for p in src.rglob("*.*") if "anim_convert_unreal" in p.read_text()
             or "anim_stick_from_unreal" in p.read_text()}
    assert users == {"UnrealAxes.h"}
