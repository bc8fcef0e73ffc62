"""Stages and input sources by name: the one place a new controller plugs in.

As MuJoCo Playground registers its environments, every stage the engine can
run registers here with a builder; the command line's `--controller` choices,
the demo and the benchmarks list and build them from this table, so a new
controller is added by one `register_stage` call.

    from anim_app import registry
    stage = registry.build_stage("physics", db, kinematic="mm")   # MuJoCo tracking motion matching
    registry.STAGES["lmm"].help

Builders take the motion database (the kinematic stages play from it; the
learned one checks its skeleton against it) and keyword options; options a
builder does not use are ignored, so the command line can pass one set.
Sources (`SOURCES`) are built the same way: `build_source("script", name="turns")`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Entry:
    name: str
    help: str
    build: Callable
    kind: str            # 'kinematic' | 'physics' (wraps a kinematic stage) | 'source'


STAGES: dict[str, Entry] = {}
SOURCES: dict[str, Entry] = {}


def register_stage(name: str, help: str, kind: str = "kinematic"):
    def deco(fn):
        if name in STAGES:
            raise ValueError(f"stage {name!r} is registered twice")
        STAGES[name] = Entry(name, help, fn, kind)
        return fn
    return deco


def register_source(name: str, help: str):
    def deco(fn):
        if name in SOURCES:
            raise ValueError(f"source {name!r} is registered twice")
        SOURCES[name] = Entry(name, help, fn, "source")
        return fn
    return deco


def stage_names(kind: str | None = None) -> list[str]:
    return [n for n, e in STAGES.items() if kind is None or e.kind == kind]


def build_stage(name: str, db, **options):
    """A stage by its registered name (see `STAGES`)."""
    if name not in STAGES:
        raise ValueError(f"unknown controller {name!r} (known: {', '.join(STAGES)})")
    return STAGES[name].build(db, **options)


def build_source(name: str, **options):
    if name not in SOURCES:
        raise ValueError(f"unknown input source {name!r} (known: {', '.join(SOURCES)})")
    return SOURCES[name].build(**options)


def _runtime_config(accel_limit=None, config=None, **_):
    from controllers.motion_matching import RuntimeConfig
    if config is not None:
        return config
    return RuntimeConfig(accel_limit=accel_limit) if accel_limit is not None else RuntimeConfig()


# ------------------------------------------------------------------ kinematic stages
@register_stage("mm", "motion matching over the database (kd-tree search, inertialized transitions, foot locking)")
def _mm(db, style=None, index="kdtree", **options):
    from controllers.motion_matching import MotionMatchingController
    return MotionMatchingController(db, _runtime_config(**options), index=index, style=style)


@register_stage("lmm", "learned motion matching (decompressor, stepper, projector; the shipped weights or --weights)")
def _lmm(db, style=None, weights=None, **options):
    from controllers.learned import DEFAULT_WEIGHTS, LearnedController
    return LearnedController.load(weights or DEFAULT_WEIGHTS, _runtime_config(**options), style=style,
                                  skeleton=db.skeleton)


@register_stage("clip", "a database clip played as it is (--clip), started again at its end")
def _clip(db, clip=None, **_):
    from controllers.playback import ClipPlayer
    return ClipPlayer(db, clip)


# ------------------------------------------------------------------ physics
def default_policy(policy, live: bool, skeleton=None):
    """The policy file to use: the given one, else the shipped live-loop
    policy for a kinematic stage (the clip policy for a clip), else None (PD).
    With `skeleton`, only a shipped policy built for it (on the CMU takes'
    rig: the one trained on its walks)."""
    from controllers.physics.cli import CMU_POLICY, DEFAULT_POLICY, LIVE_POLICY, policy_for
    if policy:
        return policy
    candidates = ((LIVE_POLICY, DEFAULT_POLICY) if live else (DEFAULT_POLICY,)) + (CMU_POLICY,)
    if skeleton is not None:
        return policy_for(skeleton, candidates)
    return next((p for p in candidates[:-1] if os.path.exists(p)), None)


@register_stage("physics", "the MuJoCo humanoid tracking a kinematic stage (--kinematic, default mm; with --clip "
                           "a clip) with the shipped policy or --policy", kind="physics")
def _physics(db, kinematic=None, policy=None, clip=None, tracker=None, **options):
    from controllers.physics.tracker import PhysicsStage, TrackerConfig
    kinematic = kinematic or ("clip" if clip is not None else "mm")
    if STAGES.get(kinematic) is None or STAGES[kinematic].kind != "kinematic":
        raise ValueError(f"--kinematic {kinematic!r}: the physics stage tracks a kinematic stage "
                         f"({', '.join(stage_names('kinematic'))})")
    return PhysicsStage(build_stage(kinematic, db, clip=clip, **options),
                        default_policy(policy, kinematic != "clip", db.skeleton), db=db,
                        config=tracker or TrackerConfig())


# ------------------------------------------------------------------ sources
@register_source("script", "a stick script: a shipped name (walk, run, turns, ...) or a .stick file")
def _script(name="walk", **_):
    from anim import scripts
    return scripts.load(name)


@register_source("random", "a random stick program (seed, seconds, styles): the physics benchmark's sessions")
def _random(seed=0, seconds=120.0, styles=(), **_):
    from anim import scripts
    return scripts.random_script(int(seed), float(seconds), styles=styles)


@register_source("gamepad", "gamepad, else keyboard (hot-plug), in the live window")
def _gamepad(**_):
    from viewer.input import GamepadKeyboardInput
    return GamepadKeyboardInput()
