"""Mutated real BVH files for fuzzing `anim.bvh` (a helper module, not a test
file; tests/test_bad_input_files.py runs a short seeded round of it).

A *seed file* is a real file of ../shared/mocap (read in place) cut to its
header and its first frames (with 'Frames:' rewritten to match), so that one
parse takes milliseconds. A *mutant* is a seed with one to three mutations
(byte flips, inserted or deleted bytes, special numbers put in place of a
value, lines duplicated, dropped or swapped, truncation, other line ends,
deep nesting, odd frame counts and frame times). The reader must answer every
mutant with its own error type (BVHError) or a valid clip: finite float32
rotations of unit length and positions, as many frames as declared, a frame
rate within the reader's bounds. Anything else (another exception, a NaN, a
hang) is a finding.

The larger campaign (not part of the suite):

    python tests/_bvh_fuzz.py --mutants 10000 --seed 1
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections import Counter

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECIAL = [b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"1e39", b"-1e39", b"3.5e38", b"1e308", b"1e309",
           b"-0", b"0x10", b"1_000", b"", b"abc", b"1e-320", b"9" * 400, b"+", b"-", b".", b"1e", b"--1",
           b"\xff\xfe", b"{", b"}", b"1,5", b"\x00"]


def seed_files(limit: int = 6) -> list[str]:
    """A few real BVH files of the corpus (both Bandai Namco datasets and the
    CMU files of another skeleton), or [] when the corpus is absent."""
    base = os.environ.get("ANIM_MOCAP_DIR") or os.path.join(os.path.dirname(ROOT), "shared", "mocap")
    out = []
    for pattern in ("bandai-namco-1/data/*walk_normal_00*.bvh", "bandai-namco-2/data/*run_active_00*.bvh",
                    "other-skeletons/*/*.bvh"):
        out += sorted(glob.glob(os.path.join(base, pattern)))[:max(1, limit // 3)]
    return out


def cut(data: bytes, frames: int = 12) -> bytes:
    """The header and the first `frames` frames of a BVH file, 'Frames:' set to match."""
    m = re.search(rb"^\s*Frame\s*Time\s*:[^\n]*\n", data, re.M | re.I)
    if not m:
        return data
    rest = data[m.end():].split(b"\n")
    head = re.sub(rb"(?mi)^(\s*Frames\s*:\s*)\d+", lambda g: g.group(1) + str(frames).encode(), data[:m.end()])
    return head + b"\n".join(rest[:frames]) + b"\n"


def seeds(limit: int = 6, frames: int = 12) -> list[tuple[str, bytes]]:
    out = []
    for p in seed_files(limit):
        with open(p, "rb") as f:
            out.append((p, cut(f.read(), frames)))
    return out


# --------------------------------------------------------------- mutations
def _numbers(data: bytes):
    return [m.span() for m in re.finditer(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", data)]


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One mutation of `data`; returns the new bytes and its name."""
    b = bytearray(data)
    n = len(b)
    kind = rng.integers(14)
    if kind == 0 and n:                       # flip a bit
        i = int(rng.integers(n))
        b[i] ^= 1 << int(rng.integers(8))
        return bytes(b), "bit-flip"
    if kind == 1 and n:                       # a random byte
        i = int(rng.integers(n))
        b[i] = int(rng.integers(256))
        return bytes(b), "byte"
    if kind == 2:                             # insert bytes
        i = int(rng.integers(n + 1))
        ins = bytes(rng.integers(0, 256, int(rng.integers(1, 8))).astype(np.uint8))
        return bytes(b[:i]) + ins + bytes(b[i:]), "insert"
    if kind == 3 and n:                       # delete a span
        i = int(rng.integers(n))
        return bytes(b[:i]) + bytes(b[i + int(rng.integers(1, 64)):]), "delete"
    if kind == 4:                             # a number becomes something special
        spans = _numbers(data)
        if spans:
            a, e = spans[int(rng.integers(len(spans)))]
            return data[:a] + SPECIAL[int(rng.integers(len(SPECIAL)))] + data[e:], "special-number"
    if kind == 5:                             # a number scaled wildly
        spans = _numbers(data)
        if spans:
            a, e = spans[int(rng.integers(len(spans)))]
            v = float(data[a:e]) * 10.0 ** float(rng.choice([-300, -40, 10, 38, 39, 300]))
            return data[:a] + repr(v).encode() + data[e:], "scaled-number"
    lines = data.split(b"\n")
    if kind == 6 and len(lines) > 1:          # duplicate a line
        i = int(rng.integers(len(lines)))
        return b"\n".join(lines[:i + 1] + lines[i:]), "dup-line"
    if kind == 7 and len(lines) > 1:          # drop a line
        i = int(rng.integers(len(lines)))
        return b"\n".join(lines[:i] + lines[i + 1:]), "drop-line"
    if kind == 8 and len(lines) > 2:          # swap two lines
        i, j = (int(x) for x in rng.integers(len(lines), size=2))
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines), "swap-lines"
    if kind == 9 and n:                       # truncate
        return bytes(b[:int(rng.integers(n))]), "truncate"
    if kind == 10:                            # line ends
        nl = [b"\r", b"\r\n", b"\n\n", b" \t\n"][int(rng.integers(4))]
        return data.replace(b"\n", nl), "line-ends"
    if kind == 11:                            # deep nesting inserted after the first joint's CHANNELS
        m = re.search(rb"CHANNELS[^\n]*\n", data)
        if m:
            depth = int(rng.choice([50, 1000, 3000]))
            chain = b"".join(b"JOINT d%d\n{\nOFFSET 0 1 0\n" % k for k in range(depth))
            chain += b"End Site\n{\nOFFSET 0 1 0\n}\n" + b"}\n" * depth
            return data[:m.end()] + chain + data[m.end():], "deep-nesting"
    if kind == 12:                            # frame count
        v = [b"0", b"-1", b"1", b"13", b"11", b"999999999999", b"1e3", b"abc", b""][int(rng.integers(9))]
        return re.sub(rb"(?mi)^(\s*Frames\s*:\s*)\S*", lambda g: g.group(1) + v, data, count=1), "frames"
    if kind == 13:                            # frame time
        v = [b"0", b"-0.01", b"100", b"1e-9", b"nan", b"inf", b"0.0333333", b"1", b"1.0001", b""][int(rng.integers(10))]
        return re.sub(rb"(?mi)^(\s*Frame\s*Time\s*:\s*)\S*", lambda g: g.group(1) + v, data, count=1), "frame-time"
    return bytes(b), "none"


# ------------------------------------------------------------------ checking
def check(data: bytes, name: str = "<fuzz>") -> str:
    """Parse one mutant; returns 'ok' (a valid clip) or 'BVHError'. Raises
    AssertionError on an invalid clip; any other exception passes through."""
    from anim import bvh
    from anim.bvh import BVHError, parse_bvh

    min_ft, max_ft = getattr(bvh, "MIN_FRAME_TIME", 1e-4), getattr(bvh, "MAX_FRAME_TIME", 1.0)
    try:
        skel, clip = parse_bvh(data, name, scale=0.01)
    except BVHError:
        return "BVHError"
    t = clip.num_frames
    assert clip.rotations.dtype == np.float32 and clip.positions.dtype == np.float32
    assert clip.rotations.shape == (t, skel.num_joints, 4) and clip.positions.shape == (t, skel.num_joints, 3)
    assert np.isfinite(clip.rotations).all() and np.isfinite(clip.positions).all(), "non-finite clip"
    assert np.isfinite(skel.offsets).all(), "non-finite offsets"
    assert np.allclose(np.linalg.norm(clip.rotations, axis=-1), 1, atol=1e-3), "rotations not unit length"
    assert 1 / max_ft - 1e-6 <= clip.fps <= 1 / min_ft + 1e-6, f"fps {clip.fps}"
    assert len(set(skel.names)) == skel.num_joints, "duplicate joint names"
    return "ok"


def campaign(mutants: int, seed: int = 0, seconds: float | None = None, frames: int = 12, files: int = 6) -> dict:
    """Run `mutants` mutants (or until `seconds` pass). Returns counts by
    mutation and outcome and the findings (failures) with what reproduces them."""
    rng = np.random.default_rng(seed)
    src = seeds(files, frames)
    if not src:
        raise FileNotFoundError("no seed files: the corpus (../shared/mocap) is absent")
    outcomes, by_kind, findings = Counter(), Counter(), []
    slowest = (0.0, "")
    t0 = time.perf_counter()
    done = 0
    for i in range(mutants):
        if seconds is not None and time.perf_counter() - t0 > seconds:
            break
        path, data = src[int(rng.integers(len(src)))]
        names = []
        for _ in range(int(rng.integers(1, 4))):
            data, k = mutate(data, rng)
            names.append(k)
        label = "+".join(names)
        t1 = time.perf_counter()
        try:
            out = check(data, f"mutant-{i}")
        except AssertionError as e:
            out = "INVALID CLIP"
            findings.append({"mutant": i, "file": os.path.basename(path), "mutations": label, "problem": str(e)})
        except Exception as e:  # noqa: BLE001 - a finding
            out = type(e).__name__
            findings.append({"mutant": i, "file": os.path.basename(path), "mutations": label,
                             "problem": f"{type(e).__name__}: {str(e)[:200]}"})
        dt = time.perf_counter() - t1
        if dt > slowest[0]:
            slowest = (dt, label)
        outcomes[out] += 1
        for k in names:
            by_kind[(k, out)] += 1
        done += 1
    return {"mutants": done, "seconds": time.perf_counter() - t0, "outcomes": dict(outcomes),
            "by_mutation": {f"{k} -> {o}": c for (k, o), c in sorted(by_kind.items())},
            "slowest_s": round(slowest[0], 4), "slowest": slowest[1], "findings": findings}


if __name__ == "__main__":
    import argparse
    import json
    import sys

    sys.path.insert(0, os.environ.get("FUZZ_CODE_ROOT", ROOT))      # the code under test
    ap = argparse.ArgumentParser(description="BVH fuzz campaign over mutated real files")
    ap.add_argument("--mutants", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--files", type=int, default=6)
    a = ap.parse_args()
    r = campaign(a.mutants, a.seed, frames=a.frames, files=a.files)
    print(json.dumps(r, indent=1))
    sys.exit(1 if r["findings"] else 0)
