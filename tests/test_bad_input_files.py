"""Bad input files and hostile environments, one class per kind of input:

* TestBVHFiles          anim.bvh and the catalog: depth, float32 range, frame time, duplicate
                        names, old Mac line ends, lying frame counts, errors from worker
                        processes, a killed parse
* TestBuildDbFolder     `anim build-db --data DIR`: a bad file (stop or --skip-bad), no preset
* TestDatabaseFiles     .animdb: flipped bytes, a 2^62 header length, fps 0, offsets past the
                        end, truncation, the previous format
* TestWeightsFiles      VR, physics and LMM weights: truncated, bit-flipped, NaN, wrong shapes;
                        checkpoints that would run pickled code
* TestRunLength         stick scripts and --seconds: 1e5, inf, 1e12, NaN
* TestTraceFiles        VR traces (`--vr replay`): NaN, 1e308, missing fields, bad lines
* TestWritingAndCLI     OSErrors as one line naming the path, killed writes, one write helper,
                        resumed logs, paths that do not depend on the working directory
* TestFuzz              mutated real BVH files: BVHError or a valid clip, nothing else

Real data is read in place from ../shared/mocap (tests that need it skip when
it is absent); everything else is built here.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import _bvh_fuzz
import mocap_data
from anim import database, fileio
from anim_app import cli
from anim.bvh import BVHError, parse_bvh, read_bvh, read_bvh_header, write_bvh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ====================================================================== helpers
def corpus_files(pattern: str = "bandai-namco-*/data/*.bvh") -> list[str]:
    files = sorted(glob.glob(str(mocap_data.mocap_root() / pattern)))
    if not files:
        pytest.skip(f"mocap corpus absent (no {pattern} under {mocap_data.mocap_root()}; set ANIM_MOCAP_DIR)")
    return files


def walk_files(n: int) -> list[str]:
    """n real normal-style walks of bandai-namco-2 (the default skeleton)."""
    return [f for f in corpus_files("bandai-namco-2/data/*_walk_normal_*.bvh")][:n]


def link_folder(folder: Path, files) -> Path:
    """A folder of symbolic links to real files (read in place, not copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        os.symlink(f, folder / os.path.basename(f))
    return folder


def chain_bvh(depth: int, frames: int = 2) -> str:
    lines = ["HIERARCHY"]
    for i in range(depth):
        lines += [("ROOT" if i == 0 else "JOINT") + f" j{i}", "{", "OFFSET 0 1 0",
                  "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if i == 0
                  else "CHANNELS 3 Zrotation Xrotation Yrotation"]
    lines += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * depth
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.0333333"]
    lines += [" ".join(["0"] * (3 * depth + 3))] * frames
    return "\n".join(lines) + "\n"


SMALL = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Leg
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
Frames: 2
Frame Time: 0.0333333
0 90 0 0 0 0 10 0 0
0 91 1 0 0 0 12 0 0
"""


def run_anim(args, cwd=ROOT, env=None, preexec_fn=None, timeout=120):
    """`python -m anim_app.cli ARGS` in a fresh process (this checkout's code)."""
    e = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, "-m", "anim_app.cli", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, preexec_fn=preexec_fn, timeout=timeout)


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    out = []
    for d in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d.split("/")[2]))
        except (OSError, ValueError, IndexError):
            pass
    return out


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    """A database of two real walks, saved; (Database, path)."""
    files = walk_files(2)
    folder = link_folder(tmp_path_factory.mktemp("walks") / "two", files)
    clips = mocap_data.load_clips(mocap_data.generic_dataset(folder, scale=0.01), progress=False, cache=False)
    db = database.build_database(clips, progress=False)
    path = str(tmp_path_factory.mktemp("db") / "two.animdb")
    database.save(db, path)
    return db, path


# ====================================================================== BVH
class TestBVHFiles:
    def test_a_1000_deep_hierarchy_parses_and_writes(self, tmp_path):
        skel, clip = parse_bvh(chain_bvh(1000), "deep.bvh")
        assert skel.num_joints == 1000 and clip.num_frames == 2
        assert list(skel.parents[:3]) == [-1, 0, 1] and skel.parents[-1] == 998
        write_bvh(tmp_path / "deep.bvh", skel, clip)
        skel2, clip2 = read_bvh(tmp_path / "deep.bvh")
        assert skel2.names == skel.names and (skel2.parents == skel.parents).all()

    @pytest.mark.parametrize("old,new,where", [
        ("0 91 1 0 0 0 12 0 0", "0 91 1e39 0 0 0 12 0 0", "line 20"),      # a position
        ("0 91 1 0 0 0 12 0 0", "0 91 1 0 0 0 -4e38 0 0", "line 20"),     # an angle
        ("OFFSET 0 -40 0\n    CHANNELS", "OFFSET 0 -4e38 0\n    CHANNELS", "line 8"),
    ])
    def test_values_beyond_float32_are_errors(self, old, new, where):
        with pytest.raises(BVHError, match=rf"big\.bvh, {where}: .*float32"):
            parse_bvh(SMALL.replace(old, new), "big.bvh")

    def test_values_that_overflow_at_the_scale_are_errors(self):
        with pytest.raises(BVHError, match=r"s\.bvh, line 19: frame 1 .*non-finite"):
            parse_bvh(SMALL.replace("0 90 0 0", "0 3e38 0 0"), "s.bvh", scale=100.0)

    @pytest.mark.parametrize("ft", ["100", "1.5", "0.00001"])
    def test_frame_time_out_of_bounds_is_an_error(self, ft):
        with pytest.raises(BVHError, match=r"t\.bvh, line 18: frame time .* out of range"):
            parse_bvh(SMALL.replace("0.0333333", ft), "t.bvh")

    def test_frame_time_of_one_second_is_fine(self):
        assert parse_bvh(SMALL.replace("0.0333333", "1"), "t.bvh")[1].fps == 1.0

    def test_duplicate_joint_names_are_an_error(self):
        with pytest.raises(BVHError, match=r"d\.bvh, line 6: duplicate joint name 'Hips' \(first declared at "
                                           r"line 2\)"):
            parse_bvh(SMALL.replace("JOINT Leg", "JOINT Hips"), "d.bvh")

    def test_old_mac_line_ends_read_the_same_everywhere(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("ANIM_CACHE_DIR", str(tmp_path / "cache"))
        data = _bvh_fuzz.cut(open(walk_files(1)[0], "rb").read(), 30)
        unix = tmp_path / "unix" / "a.bvh"
        mac = tmp_path / "mac" / "a.bvh"
        for p, d in ((unix, data), (mac, data.replace(b"\n", b"\r"))):
            p.parent.mkdir()
            p.write_bytes(d)
        (s1, c1), (s2, c2) = read_bvh(unix), read_bvh(mac)
        assert s1.names == s2.names and np.array_equal(c1.rotations, c2.rotations)
        assert read_bvh_header(mac)[1:] == read_bvh_header(unix)[1:] == (30, read_bvh_header(unix)[2])
        assert read_bvh_header(mac, count_frames=True)[1] == 30
        outs = []
        for folder in ("unix", "mac"):
            assert cli.main(["data", "list", "--data", str(tmp_path / folder)]) == 0
            outs.append(capsys.readouterr().out.split("\n", 1)[1].replace(folder, "X"))
        assert outs[0] == outs[1] and "1 clips" in outs[0] and "unreadable" not in outs[0]

    def test_data_list_does_not_trust_the_frame_count(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("ANIM_CACHE_DIR", str(tmp_path / "cache"))
        data = _bvh_fuzz.cut(open(walk_files(1)[0], "rb").read(), 30)
        folder = tmp_path / "lying"
        folder.mkdir()
        (folder / "good.bvh").write_bytes(data)
        (folder / "liar.bvh").write_bytes(re.sub(rb"Frames:\s*30", b"Frames: 1000000000", data))
        assert cli.main(["data", "list", "--data", str(folder)]) == 0
        out = capsys.readouterr().out
        assert "1 clips, 0.0 min" in out
        assert re.search(r"unreadable\): .*liar\.bvh, line \d+: 'Frames:' at line \d+ says 1000000000 frames, "
                         r"but the file holds 30 lines", out)
        rows = mocap_data.summary(mocap_data.generic_dataset(folder))
        assert rows[0]["frames"] == 30 and len(rows[0]["bad_files"]) == 1

    def test_bvh_error_pickles_with_its_fields(self):
        e = BVHError("/data/x.bvh", 12, "bad thing")
        e2 = pickle.loads(pickle.dumps(e))
        assert type(e2) is BVHError and str(e2) == str(e) == "/data/x.bvh, line 12: bad thing"
        assert (e2.path, e2.line, e2.problem) == ("/data/x.bvh", 12, "bad thing")

    def test_a_bad_file_among_worker_processes_is_named(self, tmp_path):
        folder = link_folder(tmp_path / "mixed", walk_files(3))
        (folder / "zz_bad.bvh").write_bytes(open(walk_files(1)[0], "rb").read()[:5000])
        ds = mocap_data.generic_dataset(folder, scale=0.01)
        with pytest.raises(BVHError, match=r"zz_bad\.bvh, line \d+: "):
            mocap_data.load_clips(ds, progress=False, cache=False, workers=2)
        bad = []
        clips = mocap_data.load_clips(ds, progress=False, cache=False, workers=2, errors=bad)
        assert len(clips) == 3 and len(bad) == 1 and bad[0][0].endswith("zz_bad.bvh")
        assert "zz_bad.bvh, line" in bad[0][1]

    @pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc to find the workers")
    def test_a_killed_parse_leaves_no_worker_processes(self, tmp_path):
        files = corpus_files()[:300]
        code = ("import sys, mocap_data\n"
                f"ds = mocap_data.generic_dataset({str(Path(files[0]).parent)!r}, scale=0.01)\n"
                "mocap_data.load_clips(ds, progress=False, cache=False, workers=2)\n")
        p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            workers = []
            deadline = time.time() + 60
            while len(workers) < 2 and time.time() < deadline and p.poll() is None:
                time.sleep(0.1)
                workers = children(p.pid)
            assert len(workers) >= 2, "the parse did not start its worker processes"
            time.sleep(0.5)
            p.kill()
            p.wait()
            deadline = time.time() + 5
            while any(alive(w) for w in workers) and time.time() < deadline:
                time.sleep(0.1)
            left = [w for w in workers if alive(w)]
            assert not left, f"worker processes {left} outlived their killed parent"
        finally:
            p.kill()
            for w in children(p.pid) + (workers if "workers" in dir() else []):
                try:
                    os.kill(w, signal.SIGKILL)
                except OSError:
                    pass


# ====================================================================== build-db --data
class TestBuildDbFolder:
    @pytest.fixture
    def folder(self, tmp_path, monkeypatch):
        monkeypatch.setenv("ANIM_CACHE_DIR", str(tmp_path / "cache"))
        f = link_folder(tmp_path / "clips", walk_files(2))
        (f / "broken.bvh").write_bytes(open(walk_files(1)[0], "rb").read()[:3000])
        return f

    def test_a_bad_file_stops_the_build_naming_it(self, folder, tmp_path, capsys):
        out = tmp_path / "x.animdb"
        assert cli.main(["build-db", "--data", str(folder), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert re.search(r"anim: error: .*broken\.bvh, line \d+: ", err) and not out.exists()

    def test_skip_bad_builds_without_a_preset_and_reports_each_file(self, folder, tmp_path, capsys):
        out = tmp_path / "x.animdb"
        assert cli.main(["build-db", "--data", str(folder), "--out", str(out), "--quiet", "--skip-bad",
                         "--no-mirror"]) == 0
        err = capsys.readouterr().err
        assert re.search(r"skipped .*broken\.bvh, line \d+: ", err) and "skipped 1 unreadable" in err
        db = database.load(str(out))
        assert db.num_clips == 2


# ====================================================================== databases
def _rewrite_header(path: Path, change) -> None:
    """Apply change(header dict) and write the file back with valid checksums
    (what a careless or hostile writer could produce)."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[24:24 + size])
    change(header)
    blob = json.dumps(header).encode()
    data = raw[(24 + size + 63) // 64 * 64:]
    pad = (24 + len(blob) + 63) // 64 * 64 - 24 - len(blob)
    path.write_bytes(raw[:8] + len(blob).to_bytes(8, "little") + zlib.crc32(blob).to_bytes(8, "little") + blob
                     + b"\0" * pad + data)


class TestDatabaseFiles:
    @pytest.fixture
    def copy(self, small_db, tmp_path):
        p = tmp_path / "db.animdb"
        p.write_bytes(Path(small_db[1]).read_bytes())
        return p

    def test_a_saved_database_loads_and_verifies(self, small_db):
        db = database.load(small_db[1])
        assert db.num_frames == small_db[0].num_frames
        assert np.array_equal(db.features, small_db[0].features)

    @pytest.mark.parametrize("array", ["rotations", "features", "range_stops", "valid"])
    def test_a_flipped_byte_in_an_array_is_an_error(self, copy, small_db, array):
        raw = bytearray(copy.read_bytes())
        size = int.from_bytes(raw[8:16], "little")
        spec = json.loads(bytes(raw[24:24 + size]))["arrays"][array]
        start = (24 + size + 63) // 64 * 64 + spec["offset"]
        raw[start + 5] ^= 0x10
        copy.write_bytes(bytes(raw))
        with pytest.raises(database.DatabaseError, match=rf"db\.animdb: damaged data \(checksum mismatch in "
                                                         rf"array '{array}'\)"):
            database.load(str(copy))

    def test_a_flipped_byte_in_the_header_is_an_error(self, copy):
        raw = bytearray(copy.read_bytes())
        raw[200] ^= 0x01
        copy.write_bytes(bytes(raw))
        with pytest.raises(database.DatabaseError, match=r"corrupted header \(checksum mismatch\)"):
            database.load(str(copy))

    @pytest.mark.parametrize("size", [2 ** 62, 0, 2 ** 64 - 1])
    def test_an_impossible_header_length_is_an_error(self, copy, size):
        raw = bytearray(copy.read_bytes())
        raw[8:16] = size.to_bytes(8, "little")
        copy.write_bytes(bytes(raw))
        with pytest.raises(database.DatabaseError, match=rf"header length {size} does not fit"):
            database.load(str(copy))

    @pytest.mark.parametrize("fps", [0, -60, 1e308])
    def test_fps_out_of_range_is_an_error(self, copy, fps):
        _rewrite_header(copy, lambda h: h["config"].update(fps=fps))
        with pytest.raises(database.DatabaseError, match=r"corrupted config \(fps"):
            database.load(str(copy))

    @pytest.mark.parametrize("change,problem", [
        (lambda h: h["arrays"]["features"].update(offset=2 ** 40), "runs past the end"),
        (lambda h: h["arrays"]["rotations"].update(shape=[1, 2, 3]), "has shape"),
        (lambda h: h["arrays"]["contacts"].update(dtype="|O"), "dtype"),
        (lambda h: h["clip_names"].pop(), "clip_names does not list"),
        (lambda h: h["skeleton"]["parents"].reverse(), "corrupted header"),
    ])
    def test_inconsistent_headers_are_errors(self, copy, change, problem):
        _rewrite_header(copy, change)
        with pytest.raises(database.DatabaseError, match=re.escape(problem)):
            database.load(str(copy))

    def test_a_truncated_file_is_an_error(self, copy):
        copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])
        with pytest.raises(database.DatabaseError, match="truncated"):
            database.load(str(copy))

    def test_the_previous_format_asks_for_a_rebuild(self, copy):
        raw = bytearray(copy.read_bytes())
        raw[:8] = b"ANIMDB\x00\x01"
        copy.write_bytes(bytes(raw))
        with pytest.raises(database.DatabaseError, match=r"format v1 .*rebuild it with `anim build-db`"):
            database.load(str(copy))

    def test_the_command_line_reports_a_damaged_database_in_one_line(self, copy, capsys):
        raw = bytearray(copy.read_bytes())
        raw[-3] ^= 0xFF
        copy.write_bytes(bytes(raw))
        assert cli.main(["search", "--db", str(copy)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(f"anim: error: {copy}: damaged data")


# ====================================================================== weights
VR_WEIGHTS = os.path.join(ROOT, "controllers", "vr", "weights")
PHYSICS_POLICY = os.path.join(ROOT, "controllers", "physics", "weights", "walk-run.npz")


def _npz_rewrite(src: str, dst: Path, change) -> None:
    """Rewrite an .npz with change(arrays dict) applied (valid archive CRCs)."""
    z = dict(np.load(src, allow_pickle=False))
    change(z)
    with open(dst, "wb") as f:
        np.savez(f, **z)


def _vr_load(path):
    from controllers.vr.infer import load_predictor
    return load_predictor(str(path))


def _physics_load(path):
    from controllers.physics.ppo import load_policy
    return load_policy(str(path))


def _lmm_load(path):
    from controllers.learned import weights
    return weights.load(str(path))


def _lmm_path():
    from controllers.learned import DEFAULT_WEIGHTS
    return DEFAULT_WEIGHTS


LOADERS = {
    "vr-mlp": (lambda: os.path.join(VR_WEIGHTS, "mlp.npz"), _vr_load, "out.weight"),
    "vr-diffusion": (lambda: os.path.join(VR_WEIGHTS, "diffusion.npz"), _vr_load, "x_in.weight"),
    "physics": (lambda: PHYSICS_POLICY, _physics_load, "policy_w1"),
    "lmm": (_lmm_path, _lmm_load, "decompressor/W0"),
}


def _expect_clear_error(load, path):
    with pytest.raises(ValueError) as e:
        load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    return str(e.value)


class TestWeightsFiles:
    @pytest.fixture(params=sorted(LOADERS))
    def kind(self, request):
        src = LOADERS[request.param][0]()
        if not os.path.exists(src):
            pytest.skip(f"{src} not shipped")
        return request.param

    def test_the_shipped_file_loads(self, kind):
        src, load, _ = LOADERS[kind]
        assert load(src()) is not None

    @pytest.mark.parametrize("keep", [0.0, 0.3, 0.9, 0.999])
    def test_a_truncated_file_is_a_clear_error(self, kind, keep, tmp_path):
        src, load, _ = LOADERS[kind]
        data = open(src(), "rb").read()
        p = tmp_path / "w.npz"
        p.write_bytes(data[: int(len(data) * keep)])
        _expect_clear_error(load, p)

    def test_bit_flips_are_clear_errors(self, kind, tmp_path):
        src, load, _ = LOADERS[kind]
        data = open(src(), "rb").read()
        rng = np.random.default_rng(3)
        p = tmp_path / "w.npz"
        for pos in rng.integers(0, len(data), 12):
            b = bytearray(data)
            b[pos] ^= 1 << int(rng.integers(8))
            p.write_bytes(bytes(b))
            try:
                load(p)        # a flip outside every member's data (a zip timestamp) changes nothing
            except ValueError as e:
                assert str(p) in str(e), f"flip at {pos}: {e}"

    def test_nan_weights_are_an_error(self, kind, tmp_path):
        src, load, key = LOADERS[kind]
        p = tmp_path / "w.npz"

        def poison(z):
            a = z[key].copy()
            a.flat[7] = np.nan
            z[key] = a
        _npz_rewrite(src(), p, poison)
        assert re.search(r"NaN|checksum", _expect_clear_error(load, p))

    def test_a_layer_of_the_wrong_shape_is_an_error(self, kind, tmp_path):
        src, load, key = LOADERS[kind]
        p = tmp_path / "w.npz"
        _npz_rewrite(src(), p, lambda z: z.update({key: z[key][:-1]}))
        _expect_clear_error(load, p)

    def test_resuming_never_runs_pickled_code(self, small_db, tmp_path):
        import torch

        from controllers.learned import train
        marker = tmp_path / "pwned"

        class Planted:
            def __reduce__(self):
                return os.system, (f"touch {marker}",)

        torch.save({"format": "anim-lmm-checkpoint", "version": 1, "payload": Planted()},
                   tmp_path / train.CHECKPOINT)
        with pytest.raises(RuntimeError, match=r"unreadable checkpoint \(UnpicklingError: Trying to load "
                                               r"unsupported GLOBAL posix.system"):
            train.Checkpoint(str(tmp_path), train.TrainConfig(), small_db[0])
        assert not marker.exists()

    def test_no_code_loads_torch_files_with_pickles(self):
        offenders = []
        for py in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True):
            if "/tests/" in py or "/." in py:
                continue
            if re.search(r"weights_only\s*=\s*False", open(py, encoding="utf-8").read()):
                offenders.append(os.path.relpath(py, ROOT))
        assert not offenders


# ====================================================================== run length
class TestRunLength:
    @pytest.mark.parametrize("text,problem", [
        ("duration=1e5\nt=0 move=0,1\n", "line 1: duration=1e5: must be more than 0 and at most 3600"),
        ("duration=inf\nt=0 move=0,1\n", "line 1: duration='inf': expected a finite number"),
        ("t=0 move=0,1\nt=1e5 move=0\n", "line 2: t=1e5: keys lie at most 3600"),
    ])
    def test_script_durations_are_bounded(self, text, problem):
        from anim import scripts
        with pytest.raises(scripts.ScriptError, match=re.escape(f"s.stick, {problem}")):
            scripts.parse(text, "s.stick")

    @pytest.mark.parametrize("value", ["inf", "1e12", "nan", "-1", "0", "3601", "abc"])
    def test_seconds_on_the_command_line_are_bounded(self, value, capsys):
        for cmd in (["run"], ["demo"]):
            with pytest.raises(SystemExit) as e:
                cli.build_parser().parse_args(cmd + ["--seconds", value])
            assert e.value.code == 2
            assert re.search(r"argument --seconds: .*at most 3600 s|argument --seconds: .*number of seconds",
                             capsys.readouterr().err)

    @pytest.mark.parametrize("seconds", [1e12, float("inf"), float("nan"), 1e5])
    def test_the_runner_refuses_before_allocating(self, seconds):
        from anim import runner, scripts
        with pytest.raises(ValueError, match="run: seconds .*at most 3600"):
            runner.run(object(), scripts.load("walk"), seconds)


# ====================================================================== traces
GOOD_SAMPLE = {"t": 0.0, "head": [0, 1.6, 0, 1, 0, 0, 0], "left_hand": None, "right_hand": [0.2, 1, 0.3, 1, 0, 0, 0]}


def _trace(tmp_path, second_line: str) -> Path:
    from viewer import vr_input
    p = tmp_path / "t.jsonl"
    head = {"format": vr_input.TRACE_FORMAT, "version": vr_input.TRACE_VERSION, "fps": 60}
    p.write_text(json.dumps(head) + "\n" + json.dumps(GOOD_SAMPLE) + "\n" + second_line + "\n")
    return p


class TestTraceFiles:
    @pytest.mark.parametrize("line,problem", [
        ('{"t": 0.1, "head": [0, NaN, 0, 1, 0, 0, 0]}', "head holds NaN or infinite values"),
        ('{"t": 0.1, "head": [0, 1e308, 0, 1, 0, 0, 0]}', "head position .* is beyond"),
        ('{"t": 0.1, "head": [0, Infinity, 0, 1, 0, 0, 0]}', "head holds NaN or infinite"),
        ('{"head": [0, 1, 0, 1, 0, 0, 0]}', "sample without a time 't'"),
        ('{"t": NaN}', "time 't' must be a finite number"),
        ('{"t": "soon"}', "time 't' must be a finite number"),
        ('{"t": 0.1, "head": [0, 1, 0]}', "head must be a list of 7 numbers"),
        ('{"t": 0.1, "head": [0, 1, 0, 0, 0, 0, 0]}', "head rotation .* is not a quaternion"),
        ('{"t": 0.1, "head": "up"}', "head must be a list of 7 numbers"),
        ("[]", "a sample must be a JSON object"),
        ("null", "a sample must be a JSON object"),
        ('{"t": 0.1, "head": [0, 1', "not JSON"),
        ('{"t": -5}', "sample time -5 goes backwards"),
        ('{"t": 1e9}', "the trace spans more than 3600 s"),
        ('{"t": 0.1, "gt_rot": [1, 0, 0], "gt_pos": [0, 0, 0]}', "gt_rot .* do not describe the same joints"),
    ])
    def test_bad_lines_name_the_file_and_line(self, tmp_path, line, problem):
        from viewer import vr_input
        p = _trace(tmp_path, line)
        with pytest.raises(ValueError, match=re.escape(f"{p}, line 3: ") + problem):
            vr_input.read_trace(p)

    def test_a_good_trace_reads(self, tmp_path):
        from viewer import vr_input
        tr = vr_input.read_trace(_trace(tmp_path, json.dumps({**GOOD_SAMPLE, "t": 0.5})))
        assert tr.t.tolist() == [0.0, 0.5] and tr.valid.tolist() == [[True, False, True]] * 2


# ====================================================================== writing and the command line
class TestWritingAndCLI:
    def test_a_folder_given_as_a_file_is_one_line(self, tmp_path, capsys):
        assert cli.main(["search", "--db", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"anim: error: {tmp_path}: Is a directory (expected a database file)"

    def test_a_file_where_a_folder_should_be_is_one_line(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("ANIM_CACHE_DIR", str(tmp_path / "cache"))
        folder = link_folder(tmp_path / "one", walk_files(1))
        (tmp_path / "plain").write_text("I am a file")
        assert cli.main(["build-db", "--data", str(folder), "--no-mirror", "--quiet",
                         "--out", str(tmp_path / "plain" / "x.animdb")]) == 2
        err = capsys.readouterr().err
        assert err == f"anim: error: {tmp_path}/plain: Not a directory (a file is where a folder should be)\n"

    @pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
    def test_a_full_disk_is_one_line_and_leaves_no_temporary(self, tmp_path):
        import resource

        def small_files():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # the write fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))
        folder = link_folder(tmp_path / "one", walk_files(2))
        out = tmp_path / "out"
        out.mkdir()
        r = run_anim(["build-db", "--data", str(folder), "--quiet", "--out", str(out / "x.animdb")],
                     preexec_fn=small_files, env={"ANIM_CACHE_DIR": str(tmp_path / "cache")})
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.endswith(f"anim: error: {out}/x.animdb: File too large\n"), r.stderr
        assert os.listdir(out) == []

    @pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                        reason="root writes into read-only folders (run as a normal user to check)")
    def test_a_read_only_folder_is_one_line(self, small_db, tmp_path, capsys):
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert cli.main(["run", "--db", small_db[1], "--seconds", "0.5", "--out", str(ro)]) == 2
        assert re.match(rf"anim: error: {re.escape(str(ro))}/\S+: Permission denied", capsys.readouterr().err)

    @pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
    def test_a_killed_write_leaves_no_temporary_behind(self, tmp_path, sig):
        target = tmp_path / "big.animdb"
        code = ("import sys, time\nfrom anim import fileio\n"
                "with fileio.interrupt_on_sigterm():\n"
                f"    with fileio.atomic_write({str(target)!r}) as f:\n"
                "        f.write(b'x' * 1_000_000); f.flush(); print('writing', flush=True); time.sleep(60)\n")
        p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert p.stdout.readline().strip() == "writing"
        temps = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        assert len(temps) == 1
        p.send_signal(sig)
        p.wait(timeout=30)
        if sig == signal.SIGTERM:       # unwinds like Ctrl-C: removed at once
            assert os.listdir(tmp_path) == []
        else:                           # nothing ran in the process: the next write of the file removes it
            assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == temps
            old = time.time() - 2 * fileio.QUIET_SECONDS        # as it is a few seconds later
            os.utime(tmp_path / temps[0], (old, old))
            fileio.write_bytes(target, b"new")
            assert os.listdir(tmp_path) == ["big.animdb"] and target.read_bytes() == b"new"

    def test_a_live_writer_keeps_its_temporary(self, tmp_path):
        target = tmp_path / "x.json"
        with fileio.atomic_write(target) as f:
            f.write(b"1")
            fileio.write_bytes(target, b"2")          # another write of the same file meanwhile
            assert len([n for n in os.listdir(tmp_path) if n.endswith(".tmp")]) == 1
        assert target.read_bytes() == b"1"

    def test_every_write_then_rename_goes_through_fileio(self):
        offenders = []
        for py in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True):
            rel = os.path.relpath(py, ROOT)
            if rel.startswith(("tests", ".")) or rel == os.path.join("anim", "fileio.py"):
                continue
            text = open(py, encoding="utf-8").read()
            if re.search(r"tempfile\.mkstemp|\.tmp[\"'-]|os\.(replace|rename)\(\s*tmp", text):
                offenders.append(rel)
        assert not offenders, f"hand-written write-then-rename in {offenders}: use anim.fileio.atomic_write"

    def test_a_resumed_log_is_cut_at_the_checkpoint(self, tmp_path):
        log = tmp_path / "log.jsonl"
        log.write_text("".join(json.dumps({"iteration": i}) + "\n" for i in range(1, 8)) + '{"iteration": 8, "lo')
        assert fileio.truncate_jsonl(log, lambda r: r["iteration"] <= 5) == 5
        assert [json.loads(x)["iteration"] for x in log.read_text().splitlines()] == [1, 2, 3, 4, 5]

    def test_the_default_lmm_weights_do_not_depend_on_the_working_folder(self, tmp_path, monkeypatch):
        from controllers.learned import DEFAULT_WEIGHTS, LearnedController
        if not os.path.exists(os.path.join(ROOT, "controllers", "learned", "weights",
                                           "lmm-locomotion-normal.npz")):
            pytest.skip("LMM weights not shipped")
        monkeypatch.chdir(tmp_path)
        assert os.path.isabs(DEFAULT_WEIGHTS)
        assert LearnedController.load(DEFAULT_WEIGHTS).skeleton.num_joints > 10

    def test_help_shows_no_path_of_this_machine(self):
        parser = cli.build_parser()
        subs = parser._subparsers._group_actions[0].choices
        for name in ("run", "build-db", "demo", "search"):
            text = subs[name].format_help()
            assert ROOT not in text and os.path.expanduser("~") + "/" not in text, name


# ====================================================================== fuzz
class TestFuzz:
    def test_mutated_real_files_give_bvherror_or_a_valid_clip(self):
        if not _bvh_fuzz.seed_files():
            pytest.skip("mocap corpus absent")
        r = _bvh_fuzz.campaign(mutants=400, seed=20261207, seconds=4.0)
        assert not r["findings"], json.dumps(r["findings"][:5], indent=1)
        assert r["mutants"] >= 50 and r["outcomes"].get("BVHError", 0) > 0 and r["outcomes"].get("ok", 0) > 0
