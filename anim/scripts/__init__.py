"""Stick scripts: timed controller input as small text files (`*.stick`).

A stick script drives any controller without a device: the headless runner
(`anim run`), the tests and the benchmarks read one and ask it for a
`ControlInput` at each tick. Scripts are *data*, like a recorded trace, which is
why they live here beside their parser in the core library and not in
`controllers/` (controllers never read input) nor in `viewer/` (devices).

    from anim import scripts
    s = scripts.load("turns")            # a shipped script by name, or any path
    s(1.5)                               # -> ControlInput at t = 1.5 s (also s.sample(1.5))
    s.check_styles(db.tag_values("style"), "out/databases/locomotion-normal.animdb")

The format
----------
One *key* per line; `#` starts a comment; blank lines are ignored. A key is
whitespace-separated `name=value` fields (and the bare flag `ramp`)::

    # turns: walk forward, then reverse the stick (180 degrees)
    duration=12
    t=0     move=0,0
    t=0.5   move=0,1
    t=4     move=0,-1           # a sharp 180-degree turn
    t=8     move=0,1  run=1     # turn back and run
    t=11    move=0,0

Fields of a key (every field but `t` is optional; an omitted field keeps the
value it had just before the key, so input is piecewise constant):

    t=SECONDS     time of the key; the first key is at t=0, then strictly increasing.
    move=X,Z      stick in WORLD axes (x = left, z = forward), length <= 1;
                  `move=0` is the resting stick.
    run=0|1       run instead of walk (also yes/no, true/false, on/off).
    facing=X,Z    hold this world facing while moving (strafing); `facing=none`
                  lets the character face where it moves again.
    style=NAME    switch to a style tag of the database (e.g. normal, active).
                  Checked against the database when the script is used: style
                  changes need a database with several styles, built with
                  `anim build-db --preset locomotion`.
    turn=DEG      rotate the move direction at DEG degrees per second from this
                  key on (positive turns left, from +Z toward +X); `turn=0` stops.
                  The stick keeps its length. Circles are `move=0,1 turn=45`.
    ramp          this key's `move` is reached by a linear ramp from the value
                  at the previous key (instead of a step at this key's time);
                  not allowed after a turning segment.

Before the first key, a header line may set `duration=SECONDS`: the default run
length (else the last key's time plus 2 s). Durations and key times are at most
MAX_SECONDS (an hour: 216,000 ticks at 60 Hz); `check_seconds` holds any run
length (e.g. `anim run --seconds`) to the same bound. Mistakes are `ScriptError`s whose
message names the file and the line: `walk.stick, line 4: ...`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..control import ControlInput

__all__ = ["Script", "Key", "ScriptError", "load", "parse", "shipped", "resolve", "check_seconds", "seconds_arg",
           "SCRIPT_DIR", "EXT", "MAX_SECONDS"]

SCRIPT_DIR = Path(__file__).resolve().parent
EXT = ".stick"
DEFAULT_TAIL = 2.0
MAX_SECONDS = 3600.0      # the longest run or script: an hour (216,000 ticks at 60 Hz)
_FIELDS = ("t", "move", "run", "facing", "style", "turn", "ramp")
_HEADER = ("duration",)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


class ScriptError(ValueError):
    """A malformed stick script: '<file>, line <n>: <problem>'."""

    def __init__(self, path, line, problem):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Key:
    """One key, with every field resolved (omitted ones carried over).

    move: [2] the stick at time t (for a ramp key: the value the ramp reaches at t).
    facing: [2] unit vector or None. turn: radians per second from t on.
    """

    t: float
    move: np.ndarray
    run: bool
    facing: np.ndarray | None
    style: str | None
    turn: float
    ramp: bool
    line: int


def _rotate(move: np.ndarray, angle: float) -> np.ndarray:
    """Rotate a ground vector (x, z) about +Y: positive angles take +Z toward +X (left)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([move[0] * c + move[1] * s, -move[0] * s + move[1] * c], np.float32)


@dataclass
class Script:
    """A parsed stick script: keys in time order and the default duration."""

    path: str
    keys: list
    duration: float
    description: str = ""

    @property
    def name(self) -> str:
        base = os.path.basename(self.path)
        return base[: -len(EXT)] if base.endswith(EXT) else os.path.splitext(base)[0]

    @property
    def styles(self) -> list[str]:
        return sorted({k.style for k in self.keys if k.style is not None})

    def check_styles(self, available, db_name: str = "the database") -> None:
        """A clear error if the script asks for a style the database lacks."""
        available = set(available)
        for k in self.keys:
            if k.style is not None and k.style not in available:
                raise ScriptError(self.path, k.line,
                                  f"style {k.style!r} is not in {db_name} (it has: "
                                  f"{', '.join(sorted(available)) or 'no style tags'}); scripts that "
                                  f"change style need a database with those styles, e.g. "
                                  f"`anim build-db --preset locomotion`")

    def _segment(self, t: float) -> int:
        i = 0
        for j, k in enumerate(self.keys):
            if k.t <= t + 1e-9:
                i = j
            else:
                break
        return i

    def move_at(self, t: float) -> np.ndarray:
        i = self._segment(t)
        k = self.keys[i]
        nxt = self.keys[i + 1] if i + 1 < len(self.keys) else None
        if nxt is not None and nxt.ramp:
            a = (t - k.t) / (nxt.t - k.t)
            return ((1 - a) * k.move + a * nxt.move).astype(np.float32)
        if k.turn:
            return _rotate(k.move, k.turn * (t - k.t))
        return k.move.copy()

    def sample(self, t: float) -> ControlInput:
        """The input at time t (seconds; before 0 is the first key, after the
        end the last key's values hold)."""
        k = self.keys[self._segment(t)]
        facing = None if k.facing is None else k.facing.copy()
        return ControlInput(move=self.move_at(t), facing=facing, run=k.run, style=k.style)

    __call__ = sample

    def key_times(self) -> list[float]:
        return [k.t for k in self.keys]


def check_seconds(seconds, what: str = "run length") -> float:
    """`seconds` as a float if it is a usable run length (finite, more than
    zero, at most MAX_SECONDS), else a ValueError that says so."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {seconds!r}: expected a number of seconds") from None
    if not (math.isfinite(s) and 0 < s <= MAX_SECONDS):
        raise ValueError(f"{what} {seconds!r}: expected more than 0 and at most {MAX_SECONDS:g} s (an hour)")
    return s


def seconds_arg(text: str) -> float:
    """argparse type of a --seconds option: check_seconds with argparse's error."""
    import argparse
    try:
        return check_seconds(text, "")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).strip()) from None


# --------------------------------------------------------------------- parsing
def _vec2(path, line, name, value) -> np.ndarray:
    if value.strip() == "0":
        return np.zeros(2, np.float32)
    parts = value.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        v = np.array([float(p) for p in parts], np.float64)
    except ValueError:
        raise ScriptError(path, line, f"{name}={value!r}: expected two numbers X,Z (e.g. {name}=0,1)") from None
    if not np.isfinite(v).all():
        raise ScriptError(path, line, f"{name}={value!r}: not a finite vector")
    return v.astype(np.float32)


def _number(path, line, name, value) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ScriptError(path, line, f"{name}={value!r}: expected a number") from None
    if not math.isfinite(x):
        raise ScriptError(path, line, f"{name}={value!r}: expected a finite number")
    return x


def parse(text: str, path: str = "<string>") -> Script:
    """Parse the text of a stick script (see the module docstring)."""
    keys: list[Key] = []
    duration = None
    description = []
    prev = dict(move=np.zeros(2, np.float32), run=False, facing=None, style=None, turn=0.0)
    for n, raw in enumerate(text.splitlines(), start=1):
        body, _, comment = raw.partition("#")
        body = body.strip()
        if not body:
            if not keys and duration is None and comment.strip() and raw.lstrip().startswith("#"):
                description.append(comment.strip())
            continue
        fields: dict[str, str] = {}
        for tok in body.split():
            if tok == "ramp":
                name, value = "ramp", ""
            elif "=" in tok:
                name, value = tok.split("=", 1)
                name = name.strip().lower()
            else:
                raise ScriptError(path, n, f"{tok!r}: expected NAME=VALUE (or the flag 'ramp')")
            if name in fields:
                raise ScriptError(path, n, f"{name!r} given twice on one line")
            fields[name] = value
        if "t" not in fields:
            unknown = [f for f in fields if f not in _HEADER]
            if unknown:
                hint = "a key needs t=SECONDS" if any(f in _FIELDS for f in unknown) else \
                    f"known header fields: {', '.join(_HEADER)}"
                raise ScriptError(path, n, f"unknown header field {unknown[0]!r} ({hint})")
            if keys:
                raise ScriptError(path, n, "header lines (duration=...) must come before the first key")
            duration = _number(path, n, "duration", fields["duration"])
            if not 0 < duration <= MAX_SECONDS:
                raise ScriptError(path, n, f"duration={fields['duration']}: must be more than 0 and at most "
                                           f"{MAX_SECONDS:g} s (an hour)")
            continue
        unknown = [f for f in fields if f not in _FIELDS]
        if unknown:
            raise ScriptError(path, n, f"unknown field {unknown[0]!r} (known: {', '.join(_FIELDS)})")
        t = _number(path, n, "t", fields["t"])
        if t > MAX_SECONDS:
            raise ScriptError(path, n, f"t={fields['t']}: keys lie at most {MAX_SECONDS:g} s (an hour) in")
        if not keys and t != 0.0:
            raise ScriptError(path, n, f"the first key must be at t=0 (got t={fields['t']})")
        if keys and t <= keys[-1].t:
            raise ScriptError(path, n, f"t={fields['t']} does not come after the previous key (t={keys[-1].t:g})")
        if duration is not None and t > duration:
            raise ScriptError(path, n, f"key at t={t:g} lies past duration={duration:g}")
        ramp = "ramp" in fields
        if ramp and fields["ramp"]:
            raise ScriptError(path, n, "'ramp' is a flag and takes no value")
        # carried-over values: the state reached just before this key
        if keys:
            last = keys[-1]
            move = _rotate(last.move, last.turn * (t - last.t)) if last.turn else last.move
        else:
            move = prev["move"]
        facing, run, style, turn = prev["facing"], prev["run"], prev["style"], prev["turn"]
        if "move" in fields:
            move = _vec2(path, n, "move", fields["move"])
            length = float(np.hypot(*move))
            if length > 1.0 + 1e-3:
                raise ScriptError(path, n, f"move={fields['move']}: stick length {length:.3f} > 1 "
                                           f"(scale it to at most 1)")
        elif ramp:
            raise ScriptError(path, n, "'ramp' needs a move=X,Z on the same line (the value ramped to)")
        if ramp:
            if not keys:
                raise ScriptError(path, n, "the first key cannot ramp (nothing to ramp from)")
            if keys[-1].turn:
                raise ScriptError(path, n, "'ramp' after a turning segment is ambiguous: set turn=0 on "
                                           "the previous key or drop the ramp")
        if "run" in fields:
            v = fields["run"].strip().lower()
            if v not in _TRUE | _FALSE:
                raise ScriptError(path, n, f"run={fields['run']!r}: expected 0 or 1")
            run = v in _TRUE
        if "facing" in fields:
            v = fields["facing"].strip().lower()
            if v in ("none", "off", "free"):
                facing = None
            else:
                f = _vec2(path, n, "facing", fields["facing"])
                length = float(np.hypot(*f))
                if length < 1e-6:
                    raise ScriptError(path, n, f"facing={fields['facing']}: a zero direction "
                                               f"(use facing=none to stop strafing)")
                facing = (f / length).astype(np.float32)
        if "style" in fields:
            v = fields["style"].strip()
            if not v or not _NAME_RE.match(v):
                raise ScriptError(path, n, f"style={fields['style']!r}: expected a tag name such as normal")
            style = v
        if "turn" in fields:
            turn = math.radians(_number(path, n, "turn", fields["turn"]))
        key = Key(t=t, move=np.asarray(move, np.float32).copy(), run=run, facing=facing, style=style,
                  turn=turn, ramp=ramp, line=n)
        keys.append(key)
        prev = dict(move=key.move, run=run, facing=facing, style=style, turn=turn)
    if not keys:
        raise ScriptError(path, 0, "no keys (a key line starts with t=SECONDS)")
    if duration is None:
        duration = keys[-1].t + DEFAULT_TAIL
    return Script(path=str(path), keys=keys, duration=float(duration), description=" ".join(description))


def shipped() -> list[Path]:
    """The scripts shipped with the engine (anim/scripts/*.stick), sorted by name."""
    return sorted(SCRIPT_DIR.glob("*" + EXT))


def resolve(name_or_path) -> Path:
    """A path as is if it exists, else a shipped script by name (with or without .stick)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    cand = SCRIPT_DIR / (p.name if p.name.endswith(EXT) else p.name + EXT)
    if p.parent == Path(".") and cand.is_file():
        return cand
    names = ", ".join(q.stem for q in shipped())
    raise FileNotFoundError(f"{name_or_path}: no such stick script (shipped: {names})")


def load(name_or_path) -> Script:
    """Read and parse a stick script: a path, or the name of a shipped one."""
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ScriptError(path, 0, f"not a UTF-8 text file ({e})") from None
    return parse(text, str(path))


def random_script(seed: int, duration: float = 120.0, styles=(), name: str | None = None,
                  stop_seconds: tuple = (1.0, 4.0)) -> Script:
    """A random stick program, as a live player's stick might go: walks and runs
    in random directions, stops, sharp 90-180 degree reversals, circles,
    strafes and style changes (through every style of `styles` in turn, so a
    2-minute program visits each), written in the stick format and parsed like
    any script. The same seed gives the same program; the training streams of
    the physics policy and its held-out sessions use disjoint seeds. Segments
    last 1 to 4 s; stops `stop_seconds` (lo, hi) (the defaults give every
    seed's program of before; longer stops give a policy standing to learn:
    a held standing pose is not balanced by the stops of a few seconds)."""
    rng = np.random.default_rng(seed)
    styles = list(styles)
    order = list(rng.permutation(len(styles))) if styles else []
    lines = [f"# random stick program, seed {seed}", f"duration={duration:g}"]
    t, heading, k = 0.0, float(rng.uniform(-np.pi, np.pi)), 0
    lines.append(f"t=0 move=0 run=0 facing=none" + (f" style={styles[order[0]]}" if styles else ""))
    t = float(rng.uniform(0.5, 1.5))
    while t < duration - 1.0:
        kind = rng.choice(["walk", "run", "stop", "reverse", "turn90", "circle", "strafe"],
                          p=[0.24, 0.18, 0.1, 0.14, 0.14, 0.1, 0.1])
        lo, hi = stop_seconds if kind == "stop" else (1.0, 4.0)
        seg = float(rng.uniform(lo, hi))            # one draw either way: the other segments are unchanged
        fields = []
        if kind == "stop":
            fields = ["move=0", "turn=0", "facing=none"]
        else:
            if kind == "reverse":
                heading += np.pi + float(rng.uniform(-0.3, 0.3))
            elif kind == "turn90":
                heading += float(rng.choice([-1, 1]) * rng.uniform(0.5 * np.pi, 0.75 * np.pi))
            elif kind in ("walk", "run"):
                heading += float(rng.uniform(-0.8, 0.8))
            mag = float(rng.choice([0.6, 1.0]))
            x, z = mag * math.sin(heading), mag * math.cos(heading)
            fields.append(f"move={x:.3f},{z:.3f}")
            fields.append(f"run={int(kind == 'run' or (kind in ('reverse', 'turn90') and rng.random() < 0.3))}")
            if kind == "circle":
                deg = float(rng.choice([-1, 1]) * rng.uniform(30, 75))
                fields.append(f"turn={deg:.1f}")
                heading += math.radians(deg) * seg
            else:
                fields.append("turn=0")
            if kind == "strafe":
                f = heading + float(rng.choice([-1, 1]) * rng.uniform(0.4 * np.pi, 0.6 * np.pi))
                fields.append(f"facing={math.sin(f):.3f},{math.cos(f):.3f}")
                fields[1] = "run=0"
            else:
                fields.append("facing=none")
        if styles and rng.random() < 0.25:
            k += 1
            fields.append(f"style={styles[order[k % len(order)]]}")
        lines.append(f"t={t:.2f} " + " ".join(fields))
        t += seg
    lines.append(f"t={duration - 0.5:.2f} move=0 turn=0 facing=none run=0")
    return parse("\n".join(lines) + "\n", name or f"random-{seed}{EXT}")
