"""anim.bvh: reading any hierarchy, writing it back, and naming bad lines."""

from __future__ import annotations

import glob
import os
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import mocap_data
from anim import quat
from anim.bvh import BVHError, parse_bvh, read_bvh, read_bvh_header, write_bvh
from anim.skeleton import Clip, Skeleton


# ------------------------------------------------------------------ helpers

def angle_error(a, b):
    """Largest rotation angle (radians) between two quaternion arrays, sign-blind."""
    r = quat.mul(quat.inv(np.asarray(a, np.float64)), np.asarray(b, np.float64))
    return float((2 * np.arctan2(np.linalg.norm(r[..., 1:], axis=-1), np.abs(r[..., 0]))).max(initial=0))


def scipy_quat(rots, degrees=True):
    """[(axis letter, angle)] composed in order (intrinsic) -> (w, x, y, z)."""
    r = Rotation.identity()
    for axis, a in rots:
        r = r * Rotation.from_euler(axis, a, degrees=degrees)
    x, y, z, w = r.as_quat()
    return np.array([w, x, y, z])


def make_bvh(joints, values, fps=30.0, nl="\n", indent="  ", fmt="%.6f"):
    """joints: [(name, parent, offset, channels, end_site or None)], parents first.
    Returns the text and a {marker: line number} map."""
    lines = ["HIERARCHY"]
    kids = {i: [k for k, j in enumerate(joints) if j[1] == i] for i in range(len(joints))}

    def emit(i, d):
        name, parent, off, chans, site = joints[i]
        ind = indent * d
        lines.append(f"{ind}{'ROOT' if parent < 0 else 'JOINT'} {name}")
        lines.append(ind + "{")
        lines.append(f"{ind}{indent}OFFSET {off[0]} {off[1]} {off[2]}")
        lines.append(f"{ind}{indent}CHANNELS {len(chans)} {' '.join(chans)}")
        for k in kids[i]:
            emit(k, d + 1)
        if site is not None:
            lines.extend([f"{ind}{indent}End Site", f"{ind}{indent}{{",
                          f"{ind}{indent}{indent}OFFSET {site[0]} {site[1]} {site[2]}", f"{ind}{indent}}}"])
        lines.append(ind + "}")

    for i, j in enumerate(joints):
        if j[1] < 0:
            emit(i, 0)
    lines += ["MOTION", f"Frames: {len(values)}", f"Frame Time: {1.0 / fps:.7f}"]
    lines += [" ".join(fmt % v for v in row) for row in values]
    return nl.join(lines) + nl


def expected(joints, values, scale=1.0):
    """Rotations and positions by composing scipy single-axis rotations per channel."""
    t = len(values)
    rot = np.zeros((t, len(joints), 4))
    pos = np.zeros((t, len(joints), 3))
    col = 0
    cols = []
    for name, parent, off, chans, site in joints:
        cols.append(list(range(col, col + len(chans))))
        col += len(chans)
    for f in range(t):
        for j, (name, parent, off, chans, site) in enumerate(joints):
            p = np.array(off, float) * scale
            rs = []
            for c, k in zip(chans, cols[j]):
                axis = "xyz".index(c[0].lower())
                if c.lower().endswith("position"):
                    p[axis] = values[f][k] * scale
                else:
                    rs.append((c[0].lower(), values[f][k]))
            rot[f, j] = scipy_quat(rs)
            pos[f, j] = p
    return rot, pos


ODD = [  # a non-standard hierarchy: mixed channel orders and counts, partial positions
    ("hip", -1, (1.0, 90.5, -3.0), ("Yrotation", "Xposition", "Zrotation", "Yposition", "Xrotation", "Zposition"), None),
    ("spine", 0, (0.0, 10.0, 0.0), ("Xrotation", "Yrotation", "Zrotation"), None),
    ("head", 1, (0.0, 20.0, 1e-3), ("Zrotation", "Yrotation", "Xrotation"), (0.0, 8.0, 0.0)),
    ("arm", 1, (12.0, 0.0, 0.0), ("Yposition", "Zrotation", "Xrotation", "Yrotation"), None),
    ("hand", 3, (20.0, 0.0, 0.0), ("Xrotation", "Zrotation"), (5.0, 0.0, 0.0)),
    ("leg", 0, (-8.0, -5.0, 0.0), ("Yrotation",), None),
    ("foot", 5, (0.0, -40.0, 0.0), (), (0.0, -3.0, 10.0)),
    ("tail", 0, (0.0, 0.0, -10.0), ("Zrotation", "Xrotation", "Zrotation", "Yrotation"), None),
]


def odd_values(t, seed=0):
    rng = np.random.default_rng(seed)
    n = sum(len(j[3]) for j in ODD)
    return rng.uniform(-170, 170, size=(t, n))


def corpus_files():
    root = mocap_data.mocap_root()
    files = sorted(glob.glob(str(root / "bandai-namco-*" / "data" / "*.bvh")))
    if not files:
        pytest.skip(f"mocap corpus absent (no bandai-namco-*/data/*.bvh under {root}; set ANIM_MOCAP_DIR)")
    return files


# ------------------------------------------------------------------ reading

@pytest.mark.parametrize("nl,indent,fmt", [("\n", "  ", "%.6f"), ("\r\n", "\t", "%.8e"), ("\n", "\t  ", "%.10g")])
def test_odd_hierarchy_matches_scipy(tmp_path, nl, indent, fmt):
    values = odd_values(5)
    path = tmp_path / "odd.bvh"
    path.write_bytes(make_bvh(ODD, values, nl=nl, indent=indent, fmt=fmt).encode())
    skel, clip = read_bvh(path, scale=0.5)
    values = np.array([[float(fmt % v) for v in row] for row in values])
    rot, pos = expected(ODD, values, scale=0.5)
    assert skel.names == tuple(j[0] for j in ODD)
    assert skel.parents.tolist() == [j[1] for j in ODD]
    assert skel.channels == tuple(tuple(j[3]) for j in ODD)
    np.testing.assert_allclose(skel.offsets, np.array([j[2] for j in ODD]) * 0.5, rtol=1e-6)
    assert sorted(skel.end_sites) == [2, 4, 6]
    np.testing.assert_allclose(skel.end_sites[6], [0.0, -1.5, 5.0])
    assert clip.rotations.dtype == np.float32 and clip.rotations.shape == (5, len(ODD), 4)
    assert angle_error(clip.rotations, rot) < 1e-5
    np.testing.assert_allclose(clip.positions, pos, atol=1e-5)
    assert clip.fps == 30.0 and clip.source == str(path)


def test_one_frame_sci_notation_and_odd_spacing(tmp_path):
    text = ("HIERARCHY\r\nROOT  root\r\n{\r\n\tOFFSET\t0 0 0\r\n\tCHANNELS 6 Xposition Yposition Zposition "
            "Zrotation Xrotation Yrotation\r\n\tJOINT child{\r\n\t\tOFFSET 1.5E+01 -2e-1 .5\r\n"
            "\t\tCHANNELS 3 Zrotation Xrotation Yrotation\r\n\t\tEnd Site\r\n\t\t{\r\n\t\t\tOFFSET 0 1 0\r\n"
            "\t\t}\r\n\t}\r\n}\r\nMOTION\r\nFrames:\t1\r\nFrame Time: 8.333333e-03\r\n"
            "1e2\t-2.5E-1  3 \t 9.0e+01 0 0    0 4.5e1 -0\t\r\n")
    path = tmp_path / "one.bvh"
    path.write_bytes(text.encode())
    skel, clip = read_bvh(path)
    assert clip.num_frames == 1 and clip.fps == 120.0
    np.testing.assert_allclose(clip.positions[0], [[100, -0.25, 3], [15, -0.2, 0.5]], rtol=1e-6)
    assert angle_error(clip.rotations[0, 0], scipy_quat([("z", 90), ("x", 0), ("y", 0)])) < 1e-6
    assert angle_error(clip.rotations[0, 1], scipy_quat([("z", 0), ("x", 45), ("y", 0)])) < 1e-6
    assert skel.names == ("root", "child")
    # the header alone, without the motion data
    skel2, frames, ft = read_bvh_header(path)
    assert skel2.names == skel.names and frames == 1 and ft == pytest.approx(1 / 120, rel=1e-6)


def test_joint_names_with_spaces_and_multiple_roots():
    text = ("HIERARCHY\nROOT Left Thing\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n}\n"
            "ROOT other\n{\n OFFSET 1 2 3\n CHANNELS 1 Zposition\n}\nMOTION\nFrames: 2\nFrame Time: 0.5\n"
            "10 20 30 7\n0 0 0 8\n")
    skel, clip = parse_bvh(text, "x.bvh")
    assert skel.names == ("Left Thing", "other") and skel.parents.tolist() == [-1, -1]
    np.testing.assert_allclose(clip.positions[:, 1], [[1, 2, 7], [1, 2, 8]])
    assert clip.fps == 2.0


# ------------------------------------------------------------------ writing

def test_round_trip_odd_hierarchy(tmp_path):
    path = tmp_path / "odd.bvh"
    path.write_text(make_bvh(ODD, odd_values(20, seed=1), fmt="%.9g"))
    skel, clip = read_bvh(path, scale=0.01)
    out = tmp_path / "odd_out.bvh"
    write_bvh(out, skel, clip, scale=0.01)
    skel2, clip2 = read_bvh(out, scale=0.01)
    assert skel2.names == skel.names and skel2.channels == skel.channels
    assert skel2.parents.tolist() == skel.parents.tolist()
    np.testing.assert_allclose(skel2.offsets, skel.offsets, atol=1e-6)
    assert sorted(skel2.end_sites) == sorted(skel.end_sites)
    assert angle_error(clip.rotations, clip2.rotations) < 1e-5
    np.testing.assert_allclose(clip2.positions, clip.positions, atol=1e-4)
    assert clip2.fps == clip.fps
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_write_default_channels_and_order(tmp_path):
    rng = np.random.default_rng(3)
    skel = Skeleton(("root", "a", "b"), [-1, 0, 1], [[0, 0, 0], [0, 0.5, 0], [0.3, 0, 0]])
    rot = quat.normalize(rng.normal(size=(7, 3, 4))).astype(np.float32)
    rot[2, 1] = quat.from_euler(np.array([0.3, np.pi / 2, -0.2]), "zxy")     # gimbal lock
    pos = np.broadcast_to(skel.offsets, (7, 3, 3)).copy()
    pos[:, 0] = rng.normal(size=(7, 3))
    clip = Clip(skel, rot, pos, fps=60.0)
    for order in (None, "xyz", "yzx"):
        path = tmp_path / f"default_{order}.bvh"
        write_bvh(path, skel, clip, scale=0.01, order=order)
        skel2, clip2 = read_bvh(path, scale=0.01)
        rot_names = tuple(f"{a}rotation" for a in (order or "zxy").upper())
        assert skel2.channels == (("Xposition", "Yposition", "Zposition") + rot_names, rot_names, rot_names)
        assert angle_error(clip.rotations, clip2.rotations) < 1e-5
        np.testing.assert_allclose(clip2.positions, clip.positions, atol=1e-4)
        assert clip2.fps == 60.0


def test_write_is_atomic_on_failure(tmp_path):
    skel = Skeleton(("root",), [-1], [[0, 0, 0]])
    clip = Clip(skel, np.tile([1, 0, 0, 0], (2, 1, 1)), np.zeros((2, 1, 3)), 30.0)
    path = tmp_path / "keep.bvh"
    path.write_text("old contents")
    bad = Skeleton(("root", "x"), [-1, 0], [[0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError):
        write_bvh(path, bad, clip)
    assert path.read_text() == "old contents"
    assert os.listdir(tmp_path) == ["keep.bvh"]


# ------------------------------------------------------------------ errors

SMALL = """HIERARCHY
ROOT hips
{
  OFFSET 0 90 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT knee
  {
    OFFSET 0 -40 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -40 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0333333
0 90 0 1 2 3 4 5 6
0 91 0 1 2 3 4 5 6
0 92 0 1 2 3 4 5 6
"""
# line numbers of SMALL: 2 ROOT, 6 JOINT, 8-9 knee OFFSET/CHANNELS, 16 MOTION, 17 Frames,
# 18 Frame Time, 19-21 data


def bad_file(tmp_path, text):
    path = tmp_path / "broken_take.bvh"
    path.write_bytes(text.encode())
    return path


def edit(line, new):
    lines = SMALL.split("\n")
    lines[line - 1] = new
    return "\n".join(lines)


ERRORS = {  # case: (text, line the error names, words of the problem)
    "truncated hierarchy": (SMALL[:SMALL.index("    End Site")], 9, "ends inside the HIERARCHY"),
    "truncated mid-line": (SMALL[:-8], 21, "truncated"),
    "truncated at a line end": ("\n".join(SMALL.split("\n")[:19]) + "\n", 20, "says 3"),
    "more frames than declared": (edit(17, "Frames: 2"), 21, "more frame data"),
    "fewer frames than declared": (edit(17, "Frames: 4"), 22, "says 4"),
    "unknown channel": (edit(9, "    CHANNELS 3 Zrotation Wrotation Yrotation"), 9, "unknown channel name 'Wrotation'"),
    "non-numeric value": (edit(19, "0 91 0 1 2 abc 4 5 6"), 19, "non-numeric value 'abc'"),
    "non-numeric offset": (edit(8, "    OFFSET 0 -4O 0"), 8, "non-numeric value '-4O'"),
    "too many values": (edit(19, "0 91 0 1 2 3 4 5 6 7"), 19, "expected 9 values"),
    "too few values": (edit(20, "0 91 0 1 2 3 4 5"), 20, "expected 9 values"),
    "balanced line lengths": (edit(19, "0 91 0 1 2 3 4 5 6 7").replace("0 92 0 1 2 3 4 5 6", "0 92 0 1 2 3 4 5"),
                              19, "expected 9 values"),
    "joint with no name": (edit(6, "  JOINT"), 6, "no name"),
    "root with no name": (edit(2, "ROOT {").replace("ROOT {\n{", "ROOT {"), 2, "no name"),
    "zero frames": (edit(17, "Frames: 0"), 17, "empty MOTION"),
    "missing Frames line": (SMALL[:SMALL.index("Frames")], 17, "missing 'Frames:'"),
    "missing Frame Time": (edit(18, ""), 19, "missing 'Frame Time:'"),
    "Frame Time at end of file": (SMALL[:SMALL.index("Frame Time")], 18, "missing 'Frame Time:'"),
    "NaN value": (edit(19, "0 91 0 1 2 nan 4 5 6"), 19, "non-finite"),
    "inf value": (edit(20, "0 91 0 1 2 3 4 -inf 6"), 20, "non-finite"),
    "missing MOTION": (SMALL[:SMALL.index("MOTION")], 15, "no MOTION"),
    "bad channel count": (edit(9, "    CHANNELS x Zrotation"), 9, "bad channel count"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_name_file_and_line(tmp_path, case):
    text, line, problem = ERRORS[case]
    path = bad_file(tmp_path, text)
    with pytest.raises(BVHError) as err:
        read_bvh(path)
    msg = str(err.value)
    assert "broken_take.bvh" in msg, msg
    assert f"line {line}:" in msg, msg
    assert problem in msg, msg
    assert err.value.line == line
    assert isinstance(err.value, ValueError)


def test_small_is_valid(tmp_path):
    skel, clip = read_bvh(bad_file(tmp_path, SMALL), scale=0.01)
    assert clip.num_frames == 3
    np.testing.assert_allclose(clip.positions[:, 0, 1], [0.90, 0.91, 0.92], rtol=1e-6)


# ------------------------------------------------------------------ the real corpus

def test_real_file_facts():
    path = corpus_files()[0]
    skel, clip = read_bvh(path, scale=0.01)
    assert skel.names[0] == "joint_Root" and skel.names[1] == "Hips"
    assert skel.num_joints == 22                 # joint_Root + 21 body joints
    assert {"Hand_L", "Hand_R", "Toes_L", "Toes_R"} <= set(skel.names)
    assert clip.fps == 30.0
    assert 0.8 < float(np.median(clip.positions[:, 1, 1])) < 1.0      # Hips height, metres
    assert all(c == ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
               for c in skel.channels)
    # Euler ZXY -> quaternion agrees with scipy on the raw numbers of the file
    with open(path) as f:
        lines = f.read().split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Frame Time")) + 1
    raw = np.array([[float(v) for v in ln.split()] for ln in lines[start:] if ln.strip()])
    raw = raw.reshape(clip.num_frames, skel.num_joints, 6)
    xyzw = Rotation.from_euler("ZXY", raw[..., 3:].reshape(-1, 3), degrees=True).as_quat()
    ref = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=-1).reshape(clip.rotations.shape)
    assert angle_error(clip.rotations, ref) < 1e-5
    np.testing.assert_allclose(clip.positions, raw[..., :3] * 0.01, atol=1e-6)


def test_real_files_round_trip(tmp_path):
    files = corpus_files()
    for path in files[:: max(1, len(files) // 3)][:3]:
        skel, clip = read_bvh(path, scale=0.01)
        out = tmp_path / os.path.basename(path)
        write_bvh(out, skel, clip, scale=0.01)
        skel2, clip2 = read_bvh(out, scale=0.01)
        assert skel2.names == skel.names and skel2.channels == skel.channels
        assert angle_error(clip.rotations, clip2.rotations) < 1e-5
        np.testing.assert_allclose(clip2.positions, clip.positions, atol=1e-4)
        np.testing.assert_allclose(skel2.offsets, skel.offsets, atol=1e-6)


@pytest.mark.slow
def test_whole_corpus_parses():
    files = corpus_files()
    t0 = time.perf_counter()
    frames = 0
    for path in files:
        skel, clip = read_bvh(path, scale=0.01)
        assert skel.num_joints == 22 and clip.fps == 30.0
        assert np.isfinite(clip.rotations).all()
        frames += clip.num_frames
    elapsed = time.perf_counter() - t0
    print(f"parsed {len(files)} files, {frames} frames in {elapsed:.1f} s")
    if len(files) == 1324:
        assert frames == 192415


def test_random_layouts_round_trip(tmp_path):
    """Random hierarchies: any channel count and order, positions interleaved."""
    rng = np.random.default_rng(7)
    names = [f"{a}{k}" for a in "XYZ" for k in ("position", "rotation")]
    for case in range(15):
        joints = []
        for j in range(int(rng.integers(1, 6))):
            chans = tuple(rng.choice(names, size=int(rng.integers(0, 7))))
            site = tuple(rng.normal(size=3).round(3)) if rng.random() < 0.5 else None
            joints.append((f"j{j}", -1 if j == 0 else int(rng.integers(0, j)), tuple(rng.normal(size=3).round(4)),
                           chans, site))
        n = sum(len(j[3]) for j in joints)
        values = rng.uniform(-179, 179, size=(int(rng.integers(1, 4)), n))
        path = tmp_path / f"rand{case}.bvh"
        path.write_text(make_bvh(joints, values, fmt="%.9g"))
        skel, clip = read_bvh(path)
        rot, pos = expected(joints, values)
        assert angle_error(clip.rotations, rot) < 1e-5, joints
        np.testing.assert_allclose(clip.positions, pos, atol=1e-4)
        write_bvh(tmp_path / "out.bvh", skel, clip)
        skel2, clip2 = read_bvh(tmp_path / "out.bvh")
        assert skel2.channels == skel.channels
        np.testing.assert_allclose(clip2.positions, clip.positions, atol=1e-4)
        # rotations survive the trip wherever the layout can express them (<= 3 distinct axes per joint)
        simple = [j for j, c in enumerate(skel.channels)
                  if len([x for x in c if x.endswith("rotation")]) == len({x for x in c if x.endswith("rotation")})]
        assert angle_error(clip.rotations[:, simple], clip2.rotations[:, simple]) < 1e-5, joints
