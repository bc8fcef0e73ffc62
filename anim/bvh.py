"""BVH motion files: read any hierarchy into a (Skeleton, Clip), write one back.

    skeleton, clip = read_bvh("walk.bvh", scale=0.01)   # centimetres -> metres
    write_bvh("out.bvh", skeleton, clip, scale=0.01)    # back to centimetres

Any joint may have any channels (3, 6 or another count), rotation channels in
any Euler order, position and rotation channels interleaved in any order.
Rotations become local quaternions (w, x, y, z); positions are the joint's
per-frame translation channels where it has them and its offset elsewhere.

The MOTION section is parsed in bulk (one `np.fromstring` over the whole data
block, then a vectorized check of values per line); only a file that fails
those checks is scanned line by line, to name the exact bad line in the
`BVHError`. Euler angles are converted with `anim.quat.from_euler`, one call
per group of joints that share a rotation order.

What a file may hold is bounded so that a damaged one is a BVHError naming the
line, never a wrong clip: the hierarchy is read with an explicit stack (any
depth), joint names are unique, every value fits float32 (checked after the
cast and the scale as well), the frame time lies in [MIN_FRAME_TIME,
MAX_FRAME_TIME], old Mac line ends (CR) read as LF. BVHError pickles with its
fields, so an error raised in a worker process reaches the caller intact.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from . import quat
from .fileio import write_bytes
from .skeleton import Clip, Skeleton

__all__ = ["BVHError", "read_bvh", "parse_bvh", "read_bvh_header", "write_bvh", "DEFAULT_ROOT_CHANNELS",
           "DEFAULT_CHANNELS"]

DEFAULT_ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
DEFAULT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")

# lower-cased channel name -> (kind, axis): kind 'p' position, 'r' rotation
_CHANNELS = {f"{a}{k}": (k[0], i) for i, a in enumerate("xyz") for k in ("position", "rotation")}
_AXES = "xyz"

_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Frame time bounds: 10 kHz to 1 fps. Motion capture runs at 24-1000 Hz; a
# single-pose file often says 1 s. Outside these the file is damaged.
MIN_FRAME_TIME = 1e-4
MAX_FRAME_TIME = 1.0

_MOTION_RE = re.compile(rb"^[ \t]*MOTION[ \t]*\r?$", re.MULTILINE | re.IGNORECASE)
_FRAMES_RE = re.compile(r"^\s*Frames\s*:\s*(\S*)\s*$", re.IGNORECASE)
_FRAME_TIME_RE = re.compile(r"^\s*Frame\s*Time\s*:\s*(\S*)\s*$", re.IGNORECASE)


class BVHError(ValueError):
    """A malformed BVH file. The message reads '<file>, line <n>: <problem>'."""

    def __init__(self, path, line, problem):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        # picklable with its fields, so an error raised in a parsing worker
        # process reaches the caller as itself (naming the file)
        return type(self), (self.path, self.line, self.problem)


# --------------------------------------------------------------------------- reading

class _Header:
    """What the text before the motion data says."""

    def __init__(self):
        self.names, self.parents, self.offsets, self.channels = [], [], [], []
        self.end_sites = {}
        self.frames = 0
        self.frame_time = 0.0
        self.frames_line = 0
        self.data_offset = 0      # byte offset of the first data line
        self.data_line = 0        # its line number (1-based)


def _tokens(text: str):
    """[(token, line number, index of token within its line, tokens of that line)]"""
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        toks = line.replace("{", " { ").replace("}", " } ").split()
        for i, t in enumerate(toks):
            out.append((t, n, i, toks))
    return out


def _parse_hierarchy(text: str, path, last_line: int, h: _Header, motion_follows: bool):
    toks = _tokens(text)
    pos = 0

    def eof(problem):
        if motion_follows:
            problem = problem.replace("file ends inside the HIERARCHY", "MOTION comes before the HIERARCHY ends")
        raise BVHError(path, last_line, problem)

    def take():
        nonlocal pos
        if pos >= len(toks):
            return None
        t = toks[pos]
        pos += 1
        return t

    def number(what):
        t = take()
        if t is None:
            eof(f"file ends inside the HIERARCHY (expected {what})")
        try:
            v = float(t[0])
        except ValueError:
            raise BVHError(path, t[1], f"non-numeric value {t[0]!r} in {what}") from None
        if not abs(v) <= _FLOAT32_MAX:
            raise BVHError(path, t[1], f"non-finite value {t[0]!r} in {what}" if not np.isfinite(v) else
                           f"value {t[0]!r} in {what} is out of range (beyond the float32 limit "
                           f"{_FLOAT32_MAX:.3g})")
        return v

    def offset(what):
        return [number(what) for _ in range(3)]

    def expect_open(after):
        t = take()
        if t is None:
            eof(f"file ends inside the HIERARCHY (expected '{{' after {after})")
        if t[0] != "{":
            raise BVHError(path, t[1], f"expected '{{' after {after}, found {t[0]!r}")

    first_line = {}                 # joint name -> line of its declaration

    def open_joint(kw, parent):
        """Read a ROOT/JOINT keyword's name and '{'; returns the new joint's index."""
        nonlocal pos
        _, line, i, linetoks = kw
        name_toks = []
        for t in linetoks[i + 1:]:
            if t == "{":
                break
            name_toks.append(t)
        if not name_toks:
            raise BVHError(path, line, f"{kw[0]} has no name")
        pos += len(name_toks)
        name = " ".join(name_toks)
        if name in first_line:
            raise BVHError(path, line, f"duplicate joint name {name!r} (first declared at line "
                                       f"{first_line[name]}); joint names must be unique")
        first_line[name] = line
        j = len(h.names)
        h.names.append(name)
        h.parents.append(parent)
        h.offsets.append([0.0, 0.0, 0.0])
        h.channels.append(())
        expect_open(f"{kw[0]} {name}")
        return j, name, line

    def expect_site():
        t = take()
        if t is None:
            eof("file ends inside the HIERARCHY (End Site)")
        if t[0].upper() != "SITE":
            raise BVHError(path, t[1], f"expected 'End Site', found 'End {t[0]}'")

    def site_body(j, name):
        expect_open("End Site")
        site = [0.0, 0.0, 0.0]
        while True:
            u = take()
            if u is None:
                eof(f"file ends inside the End Site of joint {name!r}")
            if u[0] == "}":
                break
            if u[0].upper() == "OFFSET":
                site = offset(f"End Site OFFSET of {name!r}")
            else:
                raise BVHError(path, u[1], f"unexpected {u[0]!r} in End Site of {name!r}")
        h.end_sites[j] = site

    t = take()
    if t is None:
        eof("empty file (no HIERARCHY)")
    if t[0].upper() != "HIERARCHY":
        raise BVHError(path, t[1], f"expected 'HIERARCHY', found {t[0]!r}")
    # An explicit stack of open joints (index, name, line) instead of recursion:
    # any depth parses (a 1,000-joint chain is as good as a 1,000-joint fan).
    stack = []
    while True:
        t = take()
        if not stack:
            if t is None:
                break
            if t[0].upper() not in ("ROOT", "JOINT"):
                raise BVHError(path, t[1], f"expected 'ROOT' or 'MOTION', found {t[0]!r}")
            stack.append(open_joint(t, -1))
            continue
        j, name, line = stack[-1]
        if t is None:
            eof(f"file ends inside the HIERARCHY: joint {name!r} (line {line}) is not closed")
        key = t[0].upper()
        if key == "}":
            stack.pop()
        elif key == "OFFSET":
            h.offsets[j] = offset(f"OFFSET of {name!r}")
        elif key == "CHANNELS":
            c = take()
            if c is None:
                eof(f"file ends inside the HIERARCHY (CHANNELS of {name!r})")
            try:
                n = int(c[0])
                if n < 0:
                    raise ValueError
            except ValueError:
                raise BVHError(path, c[1], f"bad channel count {c[0]!r} for joint {name!r}") from None
            chans = []
            for _ in range(n):
                c2 = take()
                if c2 is None:
                    eof(f"file ends inside the HIERARCHY (CHANNELS of {name!r})")
                if c2[0].lower() not in _CHANNELS:
                    raise BVHError(path, c2[1], f"unknown channel name {c2[0]!r} for joint {name!r} "
                                                f"(expected X/Y/Z position/rotation)")
                chans.append(c2[0])
            h.channels[j] = tuple(chans)
        elif key in ("JOINT", "ROOT"):
            stack.append(open_joint(t, j))
        elif key in ("END", "ENDSITE"):
            if key == "END":
                expect_site()
            site_body(j, name)
        else:
            raise BVHError(path, t[1], f"unexpected {t[0]!r} in joint {name!r}")
    if not h.names:
        eof("the HIERARCHY has no ROOT joint")


def _parse_header(data: bytes, path) -> _Header:
    """Parse everything before the motion data; data holds at least that much."""
    h = _Header()
    if data.startswith(b"\xef\xbb\xbf"):
        data = b"   " + data[3:]
    m = _MOTION_RE.search(data)
    head = data[:m.start()] if m else data
    text = head.decode("utf-8", errors="replace")
    if m is not None:
        last_line = text.count("\n") + 1            # the MOTION line
    else:
        last_line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    _parse_hierarchy(text, path, last_line, h, m is not None)
    if m is None:
        raise BVHError(path, last_line, "file ends after the HIERARCHY (no MOTION section)")
    line = last_line
    pos = m.end()
    if pos < len(data) and data[pos:pos + 1] == b"\n":
        pos += 1
    else:
        pos = len(data)

    def next_line():
        nonlocal pos, line
        while pos < len(data):
            e = data.find(b"\n", pos)
            e = len(data) if e < 0 else e
            s = data[pos:e].decode("utf-8", errors="replace")
            pos = e + 1
            line += 1
            if s.strip():
                return s
        return None

    s = next_line()
    if s is None:
        raise BVHError(path, line + 1, "empty MOTION section (missing 'Frames:' line)")
    mf = _FRAMES_RE.match(s)
    if not mf:
        raise BVHError(path, line, f"expected 'Frames: <count>', found {s.strip()!r}")
    try:
        h.frames = int(mf.group(1))
    except ValueError:
        raise BVHError(path, line, f"bad frame count {mf.group(1)!r}") from None
    h.frames_line = line
    if h.frames <= 0:
        raise BVHError(path, line, f"empty MOTION section ({h.frames} frames)")
    s = next_line()
    if s is None:
        raise BVHError(path, line + 1, "missing 'Frame Time:' line (file ends after 'Frames:')")
    mt = _FRAME_TIME_RE.match(s)
    if not mt:
        raise BVHError(path, line, f"missing 'Frame Time:' line (found {s.strip()[:40]!r})")
    try:
        h.frame_time = float(mt.group(1))
    except ValueError:
        raise BVHError(path, line, f"bad frame time {mt.group(1)!r}") from None
    if not (np.isfinite(h.frame_time) and h.frame_time > 0):
        raise BVHError(path, line, f"frame time must be positive, found {mt.group(1)!r}")
    if not MIN_FRAME_TIME <= h.frame_time <= MAX_FRAME_TIME:
        raise BVHError(path, line, f"frame time {mt.group(1)} s is out of range: expected "
                                   f"{MIN_FRAME_TIME:g} to {MAX_FRAME_TIME:g} s ({1 / MAX_FRAME_TIME:g} to "
                                   f"{1 / MIN_FRAME_TIME:g} frames per second)")
    h.data_offset = min(pos, len(data))
    h.data_line = line + 1
    return h


def _fps(frame_time: float) -> float:
    """1 / frame time, snapped to an integer within 0.01% (BVH files print the
    frame time with ~6 digits: 0.0333333 is 30 fps)."""
    fps = 1.0 / frame_time
    r = round(fps)
    return float(r) if r > 0 and abs(fps - r) <= 1e-4 * fps else fps


def _bulk_values(block: bytes, frames: int, nchan: int):
    """All motion values as [frames, nchan] float64, or None when the block is
    not exactly `frames` lines of `nchan` finite numbers (the caller then scans
    it line by line for the error)."""
    if not block.strip():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v = np.fromstring(block, dtype=np.float64, sep=" ")
    except (ValueError, DeprecationWarning):
        return None
    if v.size != frames * nchan or not np.isfinite(v).all():
        return None
    # values per line: count token starts between newlines (vectorized)
    u = np.frombuffer(block, dtype=np.uint8)
    ws = u <= 32
    starts = np.flatnonzero(ws[:-1] & ~ws[1:]) + 1
    if not ws[0]:
        starts = np.concatenate([[0], starts])
    newlines = np.flatnonzero(u == 10)
    per_line = np.bincount(np.searchsorted(newlines, starts), minlength=newlines.size + 1)
    per_line = per_line[per_line > 0]
    if per_line.size != frames or (per_line != nchan).any():
        return None
    return v.reshape(frames, nchan)


def _scan_values(block: bytes, h: _Header, nchan: int, path):
    """Line-by-line parse of the motion data that raises BVHError at the first bad line."""
    rows = []
    lines = block.split(b"\n")
    nonempty = [i for i, ln in enumerate(lines) if ln.strip()]
    last = nonempty[-1] if nonempty else -1
    for i in nonempty:
        lineno = h.data_line + i
        toks = lines[i].split()
        if len(rows) >= h.frames:
            raise BVHError(path, lineno, f"more frame data than the {h.frames} frames declared by "
                                         f"'Frames:' at line {h.frames_line}")
        if len(toks) != nchan:
            if i == last and len(toks) < nchan and not block.endswith(b"\n"):
                raise BVHError(path, lineno, f"file is truncated: frame {len(rows) + 1} has {len(toks)} "
                                             f"of {nchan} values")
            raise BVHError(path, lineno, f"expected {nchan} values (the channels of the hierarchy), "
                                         f"found {len(toks)}")
        row = []
        for t in toks:
            try:
                x = float(t)
            except ValueError:
                raise BVHError(path, lineno, f"non-numeric value {t.decode('utf-8', 'replace')!r}") from None
            if not np.isfinite(x):
                raise BVHError(path, lineno, f"non-finite value {t.decode('utf-8', 'replace')!r}")
            row.append(x)
        rows.append(row)
    if len(rows) < h.frames:
        end = h.data_line + last + 1
        raise BVHError(path, end, f"file ends after {len(rows)} frames, but 'Frames:' at line "
                                  f"{h.frames_line} says {h.frames} (truncated file or wrong frame count)")
    return np.array(rows, dtype=np.float64).reshape(h.frames, nchan)


def _layout(channels):
    """Channel columns: (rotation groups {order: ([joint], [[col]*3])}, extra
    rotation chunks [(joint, order, cols)], position (joints, axes, cols), count).

    A joint's rotation channels compose in file order: they are cut into runs of
    at most three (a new run where an axis repeats the previous one), shorter
    runs padded with zero-angle axes (column -1); the runs' rotations multiply."""
    groups, extra = {}, []
    pj, pa, pc = [], [], []
    col = 0
    for j, chans in enumerate(channels):
        axes, cols = [], []
        for c in chans:
            kind, axis = _CHANNELS[c.lower()]
            if kind == "p":
                pj.append(j), pa.append(axis), pc.append(col)
            else:
                axes.append(axis), cols.append(col)
            col += 1
        chunks = []               # runs of <= 3 axes, no axis twice in a row
        for a, c in zip(axes, cols):
            if not chunks or len(chunks[-1][0]) == 3 or chunks[-1][0][-1] == a:
                chunks.append(([], []))
            chunks[-1][0].append(a), chunks[-1][1].append(c)
        for n, (ax, cl) in enumerate(chunks):
            if len(ax) == 1:          # pad with zero-angle axes (column -1 holds zeros)
                ax += [(ax[0] + 1) % 3, (ax[0] + 2) % 3]
                cl += [-1, -1]
            elif len(ax) == 2:
                ax.append(3 - ax[0] - ax[1])
                cl.append(-1)
            order = "".join(_AXES[a] for a in ax)
            if n == 0:
                g = groups.setdefault(order, ([], []))
                g[0].append(j), g[1].append(cl)
            else:
                extra.append((j, order, cl))
    return groups, extra, (np.array(pj, int), np.array(pa, int), np.array(pc, int)), col


def _to_clip(h: _Header, values: np.ndarray, path, scale: float):
    skel = Skeleton(h.names, h.parents, np.asarray(h.offsets, np.float64) * scale, tuple(h.channels),
                    {j: np.asarray(o, np.float32) * np.float32(scale) for j, o in h.end_sites.items()})
    t, nj = h.frames, len(h.names)
    groups, extra, (pj, pa, pc), nchan = _layout(h.channels)
    vals = np.zeros((t, nchan + 1))          # last column: zero, for padded axes
    vals[:, :nchan] = values
    rot = np.zeros((t, nj, 4))
    rot[..., 0] = 1.0
    for order, (joints, cols) in groups.items():
        ang = np.radians(vals[:, np.asarray(cols)])          # [T, Jg, 3]
        rot[:, joints] = quat.from_euler(ang, order)
    for j, order, cols in extra:
        rot[:, j] = quat.mul(rot[:, j], quat.from_euler(np.radians(vals[:, cols]), order))
    pos = np.empty((t, nj, 3))
    pos[:] = np.asarray(h.offsets, np.float64) * scale
    if pj.size:
        pos[:, pj, pa] = vals[:, pc] * scale
    with np.errstate(over="ignore"):          # checked by the caller (naming the frame)
        clip = Clip(skel, rot.astype(np.float32), pos.astype(np.float32), _fps(h.frame_time), str(path))
    return skel, clip


def _read_head_bytes(path) -> bytes:
    """The start of a file, long enough to hold its header (up to the data)."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
        mac = b"\n" not in data and b"\r" in data
        data = _unix_line_ends(data)
        while True:
            m = _MOTION_RE.search(data)
            if m and re.search(rb"Frame\s*Time\s*:[^\n]*\n", data[m.end():], re.IGNORECASE):
                return data
            more = f.read(len(data))
            if not more:
                return data
            data += more.replace(b"\r", b"\n") if mac else more


def read_bvh_header(path, scale: float = 1.0, count_frames: bool = False):
    """(Skeleton, frame count, frame time) from the header: cheap, the motion
    data is not parsed. The frame count is what 'Frames:' declares; with
    count_frames the data lines are counted too (the file is read, not
    parsed) and a count that differs from the declared one is a BVHError."""
    if count_frames:
        with open(path, "rb") as f:
            data = _unix_line_ends(f.read())
        h = _parse_header(data, path)
        nchan = sum(len(c) for c in h.channels)
        if nchan:
            lines = [i for i, ln in enumerate(data[h.data_offset:].split(b"\n")) if ln.strip()]
            if len(lines) != h.frames:
                end = h.data_line + (lines[-1] if lines else 0)
                raise BVHError(path, end, f"'Frames:' at line {h.frames_line} says {h.frames} frames, but "
                                          f"the file holds {len(lines)} lines of frame data")
    else:
        h = _parse_header(_read_head_bytes(path), path)
    skel = Skeleton(h.names, h.parents, np.asarray(h.offsets, np.float64) * scale, tuple(h.channels),
                    {j: np.asarray(o, np.float32) * np.float32(scale) for j, o in h.end_sites.items()})
    return skel, h.frames, h.frame_time


def read_bvh(path, scale: float = 1.0):
    """Read a BVH file into (Skeleton, Clip). Offsets and positions are
    multiplied by `scale` (0.01 for centimetre files). Raises BVHError (a
    ValueError naming the file and line) on a malformed file."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    return parse_bvh(data, path, scale)


def _unix_line_ends(data: bytes) -> bytes:
    """Old Mac files end lines with a bare CR: make them LF (CRLF is handled as is)."""
    if b"\n" not in data[:1 << 16] and b"\r" in data:
        data = data.replace(b"\r", b"\n")
    return data


def _frame_line(block: bytes, h: _Header, frame: int) -> int:
    """The file line holding frame `frame` (0-based) of the data block."""
    k = -1
    for i, ln in enumerate(block.split(b"\n")):
        if ln.strip():
            k += 1
            if k == frame:
                return h.data_line + i
    return h.data_line


def parse_bvh(data: bytes | str, path="<string>", scale: float = 1.0):
    """read_bvh on the file's contents; `path` names it in errors and Clip.source."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = _unix_line_ends(data)
    h = _parse_header(data, path)
    nchan = sum(len(c) for c in h.channels)
    block = data[h.data_offset:]
    if nchan == 0:         # nothing to read: every frame is the rest pose
        lines = block.count(b"\n") + 1
        if h.frames > lines:
            raise BVHError(path, h.frames_line, f"'Frames:' says {h.frames} frames but the hierarchy has "
                                                f"no channels and only {lines} lines follow")
        values = np.zeros((h.frames, 0))
    else:
        values = _bulk_values(block, h.frames, nchan)
    if values is None:
        values = _scan_values(block, h, nchan, path)
    big = ~(np.abs(values) <= _FLOAT32_MAX).all(axis=1)
    if big.any():
        k = int(np.argmax(big))
        v = float(values[k][~(np.abs(values[k]) <= _FLOAT32_MAX)][0])
        raise BVHError(path, _frame_line(block, h, k), f"value {v!r} in frame {k + 1} is out of range (beyond "
                                                       f"the float32 limit {_FLOAT32_MAX:.3g})")
    skel, clip = _to_clip(h, values, path, scale)
    bad = ~(np.isfinite(clip.positions).all(axis=(1, 2)) & np.isfinite(clip.rotations).all(axis=(1, 2)))
    if bad.any():
        k = int(np.argmax(bad))
        raise BVHError(path, _frame_line(block, h, k), f"frame {k + 1} gives non-finite positions or rotations "
                                                       f"in float32 (values too large at scale {scale:g})")
    if not np.isfinite(skel.offsets).all():
        raise BVHError(path, 0, f"joint offsets overflow float32 at scale {scale:g}")
    return skel, clip


# --------------------------------------------------------------------------- writing

def _g(x) -> str:
    s = "%.9g" % x
    return "0" if s == "-0" else s


def write_bvh(path, skeleton: Skeleton, clip: Clip, scale: float = 1.0, order: str | None = None):
    """Write a clip as BVH (atomically: temporary file, then rename).

    Channels per joint come from skeleton.channels (the layout it was read
    with); when that is empty, the root gets 'Xposition Yposition Zposition
    Zrotation Xrotation Yrotation' and every other joint 'Zrotation Xrotation
    Yrotation'. `order` (e.g. "zxy") replaces every joint's rotation channels by
    that Euler order. Offsets and positions are divided by `scale`. Values are
    written with 9 significant digits, so read -> write -> read is exact to
    ~1e-6 rad and ~1e-6 of the position's magnitude.
    """
    nj = skeleton.num_joints
    if clip.rotations.shape[1] != nj:
        raise ValueError(f"write_bvh: clip has {clip.rotations.shape[1]} joints, skeleton {nj}")
    if skeleton.channels and len(skeleton.channels) == nj:
        channels = [tuple(c) for c in skeleton.channels]
    else:
        channels = [DEFAULT_ROOT_CHANNELS if p < 0 else DEFAULT_CHANNELS for p in skeleton.parents.tolist()]
    if order is not None:
        order = order.lower()
        if len(order) != 3 or any(a not in _AXES for a in order):
            raise ValueError(f"write_bvh: bad Euler order {order!r}")
        rot_names = tuple(f"{a.upper()}rotation" for a in order)
        new = []
        for chans in channels:
            kinds = [_CHANNELS[c.lower()][0] for c in chans]
            if "r" not in kinds:
                new.append(chans)
                continue
            first = kinds.index("r")
            keep = [c for c, k in zip(chans, kinds) if k == "p"]
            npos_before = sum(1 for k in kinds[:first] if k == "p")
            new.append(tuple(keep[:npos_before]) + rot_names + tuple(keep[npos_before:]))
        channels = new
    for chans in channels:
        for c in chans:
            if c.lower() not in _CHANNELS:
                raise ValueError(f"write_bvh: unknown channel name {c!r}")

    # header
    inv = 1.0 / scale
    offsets = skeleton.offsets.astype(np.float64) * inv
    children = [[] for _ in range(nj)]
    roots = []
    for j, p in enumerate(skeleton.parents.tolist()):
        (roots if p < 0 else children[p]).append(j)
    out = ["HIERARCHY"]

    # depth-first, with an explicit stack (no recursion: any depth writes)
    stack = [("open", r, 0) for r in reversed(roots)]
    while stack:
        what, j, depth = stack.pop()
        ind = "\t" * depth
        if what == "close":
            if j in skeleton.end_sites:
                site = np.asarray(skeleton.end_sites[j], np.float64) * inv
                out.extend([f"{ind}\tEnd Site", f"{ind}\t{{",
                            f"{ind}\t\tOFFSET {' '.join(_g(x) for x in site)}", f"{ind}\t}}"])
            out.append(f"{ind}}}")
            continue
        out.append(f"{ind}{'ROOT' if skeleton.parents[j] < 0 else 'JOINT'} {skeleton.names[j]}")
        out.append(f"{ind}{{")
        out.append(f"{ind}\tOFFSET {' '.join(_g(x) for x in offsets[j])}")
        out.append(f"{ind}\tCHANNELS {len(channels[j])}" + "".join(" " + c for c in channels[j]))
        stack.append(("close", j, depth))
        stack.extend(("open", c, depth + 1) for c in reversed(children[j]))

    t = clip.num_frames
    out += ["MOTION", f"Frames: {t}", f"Frame Time: {_g(1.0 / clip.fps)}"]

    # data
    groups, extra, (pj, pa, pc), nchan = _layout(channels)
    vals = np.zeros((t, nchan + 1))
    q = clip.rotations.astype(np.float64)
    for order_, (joints, cols) in groups.items():
        ang = quat.to_euler(q[:, joints], order_)                   # [T, Jg, 3] radians
        cols = np.asarray(cols)
        two = (cols[:, 2] == -1) & (cols[:, 1] != -1)              # joints with 2 rotation channels
        if two.any():
            # the unwritten third angle must be ~0: take the equivalent solution
            # (a + pi, pi - b, c + pi) where that makes it smaller
            a = ang[:, two]
            alt = np.stack([a[..., 0] + np.pi, np.pi - a[..., 1], a[..., 2] + np.pi], axis=-1)
            alt = (alt + np.pi) % (2 * np.pi) - np.pi
            use = np.abs(alt[..., 2]) < np.abs(a[..., 2])
            ang[:, two] = np.where(use[..., None], alt, a)
        ang = np.degrees(ang)
        vals[:, cols] = ang                                          # padded axes land in column -1
    vals[:, nchan] = 0.0
    if pj.size:
        vals[:, pc] = clip.positions[:, pj, pa].astype(np.float64) * inv
    vals = vals[:, :nchan] + 0.0        # no "-0"
    if nchan:
        fmt = " ".join(["%.9g"] * nchan)
        lines = [fmt % tuple(row) for row in vals.tolist()]
    else:
        lines = [""] * t
    payload = ("\n".join(out) + "\n" + "\n".join(lines) + "\n").encode("utf-8")
    write_bytes(path, payload)
