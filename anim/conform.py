"""Bring clips from any BVH folder to the engine's conventions, and say what was decided.

BVH files from elsewhere differ in ways the file does not state: units (centimetres,
metres, inches), which axis is up, whether the root's position channels are absolute
or relative to its OFFSET, a static root above the hips in some files only, a T-pose
prepended as frame 0. `conform_clips` detects each from the motion itself, applies it
(metres, Y up, absolute root, one skeleton), and returns a report of the decisions
that the database stores in its header and `anim build-db` prints:

    clips, report = conform_clips(clips, ConformOptions())          # all detected
    clips, report = conform_clips(clips, ConformOptions(units="in", up="z"))   # stated

Detection, per file (translation-invariant measures first, so that a wrong root
offset cannot mislead them):
- up: the world axis (±X, ±Y, ±Z) closest to the mean head-minus-feet vector.
- units: the head's height above the lowest foot or toe (median over frames), read
  in each unit; the one closest to 1.6 m wins (m, cm, mm, inches).
- root offset: when the root has position channels and the planted feet sit far
  below the floor as written (more than a quarter of the body height) but near it
  once the root's OFFSET is added, the channels are taken as relative to the OFFSET.
- two roots: when files disagree on the joints above the hips (CC rigs exported with
  and without `RL_BoneRoot`), every clip is re-rooted at the hips (their world
  transform baked in), so that one skeleton remains.
- floor: a clip whose feet sit more than 10 cm off the folder's median floor is moved
  onto it (CMU subject 3 walks on uneven terrain: its root channels put the feet
  40-80 cm off as written and 25-45 cm off with the OFFSET).
- T-pose frame: frame 0 is dropped when its pose jumps from frame 1 by more than
  ten times the clip's median per-frame joint rotation change (and over 0.3 rad).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import quat
from .roles import find_roles
from .skeleton import Clip, Skeleton

__all__ = ["ConformOptions", "conform_clips", "UNITS", "planted_height"]

UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
_HEAD_HEIGHT = 1.6     # a typical head joint height above the soles (m), for guessing units
_AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class ConformOptions:
    """units: 'auto', a key of UNITS, or a number (file units -> metres).
    up: 'auto', 'y', 'z', '-y', 'x'... (the files' up axis).
    root_offset: 'auto', 'absolute' (root channels are world positions) or
    'relative' (root channels add to the root's OFFSET).
    drop_frames: frames dropped from the start of every clip; None: drop a T-pose
    frame 0 where one is detected.
    reroot: 'auto' (re-root at the hips when files disagree above them), 'always', 'never'.
    align_floor: lift or lower a clip whose feet sit more than 10 cm off the folder's
    median floor (mocap on uneven terrain, a take recorded on a platform) onto it.
    joint_map: a joint map (anim.roles.load_joint_map) for finding the hips, feet, head."""

    units: str | float = "auto"
    up: str = "auto"
    root_offset: str = "auto"
    drop_frames: int | None = None
    reroot: str = "auto"
    align_floor: bool = True
    joint_map: dict | None = None


def _axis_vector(up: str) -> np.ndarray:
    s = up.strip().lower()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s not in _AXES:
        raise ValueError(f"up axis {up!r}: expected x, y or z (optionally signed, e.g. -z)")
    v = np.zeros(3)
    v[_AXES[s]] = sign
    return v


def _axis_name(v) -> str:
    i = int(np.argmax(np.abs(v)))
    return ("-" if v[i] < 0 else "") + "xyz"[i]


def _scale_of(units) -> float:
    if isinstance(units, (int, float)):
        if not units > 0:
            raise ValueError(f"units scale {units!r} must be > 0")
        return float(units)
    if units not in UNITS:
        raise ValueError(f"units {units!r}: expected auto, {', '.join(UNITS)} or a number")
    return UNITS[units]


def _sub_skeleton(skel: Skeleton, keep: list[int]) -> Skeleton:
    idx = {j: i for i, j in enumerate(keep)}
    parents = [idx.get(int(skel.parents[j]), -1) for j in keep]
    chans = tuple(skel.channels[j] for j in keep) if skel.channels else ()
    ends = {idx[j]: v for j, v in skel.end_sites.items() if j in idx}
    return Skeleton(tuple(skel.names[j] for j in keep), parents, skel.offsets[keep], chans, ends)


def planted_height(clips, toe_names, speed=0.35) -> float:
    """Median height (m, Y up) of the toe joints on frames where they move slower
    than `speed` m/s: how high a planted toe sits on this rig (a few cm for
    Bandai Namco's toes, ~9 cm for the CC rig's ToeBase)."""
    hs = []
    for c in clips:
        idx = [c.skeleton.index(t) for t in toe_names]
        _, g = quat.fk(c.rotations, c.positions, c.skeleton.parents)
        toe = g[:, idx]
        if len(toe) < 3:
            continue
        v = np.linalg.norm(np.diff(toe, axis=0), axis=-1) * c.fps
        hs.append(toe[1:, :, 1][v < speed])
    h = np.concatenate(hs) if hs else np.zeros(0)
    return float(np.median(h)) if h.size else 0.0


def conform_clips(clips: list[Clip], options: ConformOptions = ConformOptions()) -> tuple[list[Clip], dict]:
    """Clips in file units (parsed with scale 1) -> clips in metres, Y up, absolute
    root, one skeleton; and the report {'files': {name: decisions}, 'summary': ...}."""
    if not clips:
        return clips, {"files": {}, "summary": {}}
    for key, allowed in (("root_offset", ("auto", "absolute", "relative")),
                         ("reroot", ("auto", "always", "never"))):
        if getattr(options, key) not in allowed:
            raise ValueError(f"{key} {getattr(options, key)!r}: expected one of {', '.join(allowed)}")
    if options.drop_frames is not None and options.drop_frames < 0:
        raise ValueError(f"drop_frames {options.drop_frames} must be >= 0")
    roles_of = {}

    def roles(skel):
        sig = skel.signature()
        if sig not in roles_of:
            try:
                roles_of[sig] = find_roles(skel, options.joint_map)
            except KeyError as e:
                raise type(e)(f"{e} [skeleton of {skel.names[0]}...]") from None
        return roles_of[sig]

    # which clips need re-rooting: files that differ above the hips
    hips_subtrees = set()
    for c in clips:
        r = roles(c.skeleton)
        h = c.skeleton.index(r["hips"])
        hips_subtrees.add(tuple(n for j, n in enumerate(c.skeleton.names) if h in _anc(c.skeleton.parents, j)))
    roots_differ = len({c.skeleton.signature() for c in clips}) > 1 and len(hips_subtrees) == 1
    reroot = options.reroot == "always" or (options.reroot == "auto" and roots_differ)

    out, files = [], {}
    for c in clips:
        skel = c.skeleton
        r = roles(skel)
        rot = np.array(c.rotations, np.float32)
        pos = np.array(c.positions, np.float32)
        dec = {}
        # T-pose first frame
        drop = options.drop_frames
        if drop is None:
            drop = 0
            if rot.shape[0] > 3:
                d = quat.dot(rot[1:], rot[:-1])
                ang = 2 * np.arccos(np.clip(np.abs(d), 0, 1)).max(axis=-1)     # [T-1] max joint change
                med = float(np.median(ang[1:])) if ang.shape[0] > 1 else 0.0
                if ang[0] > 0.3 and ang[0] > 10 * max(med, 1e-3):
                    drop = 1
        if drop >= rot.shape[0]:
            raise ValueError(f"{c.source}: dropping {drop} first frames leaves nothing ({rot.shape[0]} frames)")
        rot, pos = rot[drop:], pos[drop:]
        dec["dropped_frames"] = int(drop)
        # translation-invariant measures: up and units
        grot, gpos = quat.fk(rot, pos, skel.parents)
        head = gpos[:, skel.index(r["head"])]
        lows = [skel.index(r[k]) for k in ("left_foot", "right_foot", "left_toe", "right_toe")]
        feet = gpos[:, lows[:2]].mean(axis=1)
        if options.up == "auto":
            up = np.zeros(3)
            up[int(np.argmax(np.abs((head - feet).mean(0))))] = 1.0
            up *= np.sign((head - feet).mean(0) @ up) or 1.0
        else:
            up = _axis_vector(options.up)
        dec["up"] = _axis_name(up)
        height = float(np.median(head @ up - (gpos[:, lows] @ up).min(axis=1)))
        if options.units == "auto":
            unit = min(UNITS, key=lambda u: abs(np.log(max(height * UNITS[u], 1e-9) / _HEAD_HEIGHT)))
            scale = UNITS[unit]
            dec["units"] = unit
        else:
            scale = _scale_of(options.units)
            dec["units"] = options.units if isinstance(options.units, str) else f"x{scale:g}"
        dec["scale"] = scale
        dec["head_height_m"] = round(height * scale, 3)
        # root channels: absolute or relative to the OFFSET
        has_pos = bool(skel.channels) and any("position" in ch.lower() for ch in skel.channels[0])
        off = skel.offsets[0].astype(np.float64)
        floor = float(np.median((gpos[:, lows] @ up).min(axis=1)))
        mode = options.root_offset
        if mode == "auto":
            mode = "absolute"
            if has_pos and np.any(off):
                shifted = floor + off @ up
                if abs(floor) > 0.25 * height and abs(shifted) < abs(floor):
                    mode = "relative"
        if mode == "relative" and has_pos:
            pos[:, 0] += off.astype(np.float32)
            floor += float(off @ up)
        dec["root_offset"] = mode
        dec["floor_m"] = round(floor * scale, 3)
        # re-root at the hips
        h = skel.index(r["hips"])
        if reroot and h != 0:
            keep = [j for j in range(skel.num_joints) if h in _anc(skel.parents, j)]
            grot, gpos = quat.fk(rot, pos, skel.parents)        # with the root offset settled
            grot_h, gpos_h = grot[:, h], gpos[:, h]
            new = _sub_skeleton(skel, keep)
            rest = float(np.linalg.norm(skel.offsets[h]))
            offs = new.offsets.copy()
            offs[0] = up * rest
            chans = tuple(new.channels)
            if chans:
                chans = (tuple(skel.channels[0]),) + chans[1:]
            new = Skeleton(new.names, new.parents, offs, chans, new.end_sites)
            rot, pos = rot[:, keep].copy(), pos[:, keep].copy()
            rot[:, 0], pos[:, 0] = grot_h, gpos_h
            dec["rerooted_from"] = skel.names[0]
            skel = new
        # up -> +Y
        if dec["up"] != "y":
            q = quat.between(up.astype(np.float32), np.array([0, 1, 0], np.float32)).astype(np.float32)
            rot[:, 0] = quat.mul(q, rot[:, 0])
            pos[:, 0] = quat.rot(q, pos[:, 0])
        skel = Skeleton(skel.names, skel.parents, skel.offsets * np.float32(scale), skel.channels,
                        {k: np.asarray(v) * np.float32(scale) for k, v in skel.end_sites.items()})
        pos = pos * np.float32(scale)
        clip = Clip(skel, quat.normalize(rot).astype(np.float32), pos, c.fps, c.source, dict(c.tags))
        out.append(clip)
        files[c.name] = dec
    if options.align_floor and len(out) > 1:
        ref = float(np.median([d["floor_m"] for d in files.values()]))
        for i, c in enumerate(out):
            d = files[c.name]
            if abs(d["floor_m"] - ref) > 0.1:
                c.positions[:, 0, 1] += np.float32(ref - d["floor_m"])
                d["floor_shift_m"] = round(ref - d["floor_m"], 3)
    sigs = {c.skeleton.signature() for c in out}
    if len(sigs) > 1:
        groups = {}
        for c in out:
            groups.setdefault(c.skeleton.names[0] + f" ({c.skeleton.num_joints} joints)", []).append(c.name)
        desc = "; ".join(f"{k}: {', '.join(v[:4])}{'...' if len(v) > 4 else ''}" for k, v in groups.items())
        raise ValueError(f"the folder mixes skeletons that differ below the hips too ({desc}); build one "
                         f"database per skeleton (split the folder)")
    summary = {}
    for key in ("units", "up", "root_offset", "dropped_frames"):
        vals = sorted({str(d[key]) for d in files.values()})
        summary[key] = vals[0] if len(vals) == 1 else vals
    summary["floor_shifted"] = sorted(n for n, d in files.items() if "floor_shift_m" in d)
    summary["rerooted"] = sorted({d["rerooted_from"] for d in files.values() if "rerooted_from" in d})
    return out, {"files": files, "summary": summary}


def _anc(parents, j):
    out = []
    while j >= 0:
        out.append(j)
        j = int(parents[j])
    return out
