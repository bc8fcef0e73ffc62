"""mocap_data: finding datasets, tags from file names, the parsed-clip cache."""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import anim.bvh
import mocap_data
from anim.skeleton import Clip


def corpus_root() -> Path:
    root = mocap_data.mocap_root()
    if not glob.glob(str(root / "bandai-namco-*" / "data" / "*.bvh")):
        pytest.skip(f"mocap corpus absent (no bandai-namco-*/data/*.bvh under {root}; set ANIM_MOCAP_DIR)")
    return root


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("ANIM_CACHE_DIR", str(d))
    return d


@pytest.fixture
def small_set(tmp_path):
    """A tmp copy of the 3 smallest real clips (2 from dataset 2, 1 from dataset 1), in a subfolder."""
    root = corpus_root()
    files = sorted(glob.glob(str(root / "bandai-namco-*" / "data" / "*.bvh")), key=os.path.getsize)
    d1 = [f for f in files if "dataset-1_" in f][:1]
    d2 = [f for f in files if "dataset-2_" in f][:2]
    folder = tmp_path / "mini"
    (folder / "sub").mkdir(parents=True)
    for f in d2:
        shutil.copy2(f, folder / os.path.basename(f))
    for f in d1:
        shutil.copy2(f, folder / "sub" / os.path.basename(f))
    return folder


@pytest.fixture
def count_parses(monkeypatch):
    calls = []
    real = anim.bvh.read_bvh

    def counting(path, scale=1.0):
        calls.append(Path(path).name)
        return real(path, scale)

    monkeypatch.setattr(anim.bvh, "read_bvh", counting)
    return calls


# ------------------------------------------------------------------ where data is

def test_mocap_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIM_MOCAP_DIR", str(tmp_path))
    assert mocap_data.mocap_root() == tmp_path
    monkeypatch.delenv("ANIM_MOCAP_DIR")
    here = Path(mocap_data.__file__).resolve().parent
    shared = here.parent.parent / "shared" / "mocap"
    assert mocap_data.mocap_root() == (shared if shared.is_dir() else here)


def test_cache_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIM_CACHE_DIR", str(tmp_path / "c"))
    assert mocap_data.cache_root() == tmp_path / "c"
    monkeypatch.delenv("ANIM_CACHE_DIR")
    assert mocap_data.cache_root() == Path(mocap_data.__file__).resolve().parent / ".cache"


def test_datasets_under_a_root(tmp_path):
    assert mocap_data.datasets(tmp_path) == []
    (tmp_path / "bandai-namco-2" / "data").mkdir(parents=True)
    (tmp_path / "bandai-namco-2" / "LICENSE").write_text("CC BY-NC 4.0")
    (found,) = mocap_data.datasets(tmp_path)
    assert found.name == "bandai-namco-2" and found.path == tmp_path / "bandai-namco-2" / "data"
    assert found.scale == 0.01 and found.fps == 30.0 and found.up == "y"
    assert "CC BY-NC 4.0" in found.license and "Bandai Namco" in found.attribution
    assert "2306.08861" in found.citation and found.license_file == tmp_path / "bandai-namco-2" / "LICENSE"
    with pytest.raises(FileNotFoundError, match="no .bvh files under .*bandai-namco-2"):
        found.files()


def test_real_datasets_found():
    root = corpus_root()
    names = [d.name for d in mocap_data.datasets(root)]
    assert names == ["bandai-namco-1", "bandai-namco-2"]


def test_missing_folder_errors_name_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        mocap_data.generic_dataset(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .bvh files under .*empty"):
        mocap_data.load_clips(mocap_data.generic_dataset(empty), progress=False)


# ------------------------------------------------------------------ tags

def test_tags_from_real_names():
    ds = mocap_data._known("bandai-namco-2", Path("/nonexistent"))
    assert ds.parse_tags("dataset-2_walk-turn-left_normal_012") == {
        "dataset": "bandai-namco-2", "content": "walk-turn-left", "style": "normal", "take": "012"}
    ds1 = mocap_data._known("bandai-namco-1", Path("/nonexistent"))
    assert ds1.parse_tags("dataset-1_dance-short_not-confident_001") == {
        "dataset": "bandai-namco-1", "content": "dance-short", "style": "not-confident", "take": "001"}
    # anything else keeps its name and nothing is guessed
    assert ds.parse_tags("my_odd_take") == {"dataset": "bandai-namco-2", "name": "my_odd_take"}


def test_generic_tags_do_not_guess(tmp_path):
    ds = mocap_data.generic_dataset(tmp_path)
    assert ds.parse_tags("walk_normal_001") == {"dataset": tmp_path.name, "name": "walk_normal_001"}


def test_tag_filter_selects_by_name_only(monkeypatch):
    root = corpus_root()
    monkeypatch.setattr(anim.bvh, "read_bvh", None)       # selecting must not parse anything
    sets = mocap_data.datasets(root)
    picked = mocap_data.select_files(sets, {"content": ["walk", "run"], "style": "normal"})
    names = sorted(p.name for _, p, _ in picked)
    expected = sorted(os.path.basename(f) for f in glob.glob(str(root / "bandai-namco-*" / "data" / "*.bvh"))
                      if f.split("_")[-3] in ("walk", "run") and f.split("_")[-2] == "normal")
    assert names == expected and len(names) > 10
    assert all(t["style"] == "normal" and t["content"] in ("walk", "run") for _, _, t in picked)
    only2 = mocap_data.select_files(sets, {"dataset": "bandai-namco-2", "content": "walk-turn-left"})
    assert only2 and all(d.name == "bandai-namco-2" for d, _, _ in only2)
    assert mocap_data.select_files(sets, {"content": "no-such-thing"}) == []
    assert mocap_data.select_files(sets, {"unknown-key": "x"}) == []


# ------------------------------------------------------------------ loading and the cache

def test_load_and_cache(small_set, cache_dir, count_parses):
    ds = mocap_data.generic_dataset(small_set, scale=0.01)
    clips = mocap_data.load_clips(ds, progress=False, workers=1)
    assert len(count_parses) == 3 and len(clips) == 3
    assert all(isinstance(c, Clip) and c.tags["dataset"] == "mini" and c.tags["name"] == c.name for c in clips)
    assert all(0.7 < np.median(c.positions[:, 1, 1]) < 1.1 for c in clips)          # metres
    assert [Path(c.source) for c in clips] == ds.files()

    count_parses.clear()
    again = mocap_data.load_clips(ds, progress=False, workers=1)
    assert count_parses == []                                                         # all from cache
    for a, b in zip(clips, again):
        np.testing.assert_array_equal(a.rotations, b.rotations)
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.skeleton.names == b.skeleton.names and a.skeleton.channels == b.skeleton.channels
        np.testing.assert_array_equal(a.skeleton.offsets, b.skeleton.offsets)
        assert sorted(a.skeleton.end_sites) == sorted(b.skeleton.end_sites)
        assert a.fps == b.fps and a.tags == b.tags and a.source == b.source
    assert again[0].rotations.flags.writeable

    # touching one file (mtime) re-parses just that file
    f0 = ds.files()[0]
    st = f0.stat()
    os.utime(f0, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    count_parses.clear()
    mocap_data.load_clips(ds, progress=False, workers=1)
    assert count_parses == [f0.name]

    # changing a file's contents (size) re-parses it and the new data shows
    f1 = ds.files()[1]
    text = f1.read_text().replace("Frame Time: 0.0333333", "Frame Time: 0.02")
    text = text.replace("Frame Time:\t0.0333333", "Frame Time:\t0.02") + "\n"
    f1.write_text(text)
    count_parses.clear()
    changed = mocap_data.load_clips(ds, progress=False, workers=1)
    assert count_parses == [f1.name] and changed[1].fps == 50.0

    count_parses.clear()
    mocap_data.load_clips(ds, progress=False, workers=1)
    assert count_parses == []
    assert not [p for p in cache_dir.rglob("*.tmp")]
    assert len(list(cache_dir.rglob("*.npy"))) == 2          # old generations removed


def test_subset_then_all_parses_only_the_rest(small_set, cache_dir, count_parses):
    ds = mocap_data.generic_dataset(small_set, scale=0.01)
    first = ds.files()[0].stem
    assert len(mocap_data.load_clips(ds, tags={"name": first}, progress=False, workers=1)) == 1
    assert count_parses == [first + ".bvh"]
    count_parses.clear()
    assert len(mocap_data.load_clips(ds, progress=False, workers=1)) == 3
    assert len(count_parses) == 2 and first + ".bvh" not in count_parses
    count_parses.clear()
    mocap_data.load_clips(ds, tags={"name": [first, "nope"]}, progress=False, workers=1)
    assert count_parses == []


@pytest.mark.parametrize("damage", ["garbage manifest", "truncated array", "old version", "missing array",
                                    "bad range"])
def test_damaged_cache_is_rebuilt(small_set, cache_dir, count_parses, damage):
    ds = mocap_data.generic_dataset(small_set, scale=0.01)
    clips = mocap_data.load_clips(ds, progress=False, workers=1)
    (folder,) = [p for p in cache_dir.iterdir() if p.is_dir()]
    manifest = folder / "manifest.json"
    m = json.loads(manifest.read_text())
    rot = folder / m["arrays"]["rotations"]
    if damage == "garbage manifest":
        manifest.write_bytes(b"\x00{not json")
    elif damage == "truncated array":
        rot.write_bytes(rot.read_bytes()[:1000])
    elif damage == "old version":
        m["version"] = -1
        manifest.write_text(json.dumps(m))
    elif damage == "missing array":
        rot.unlink()
    elif damage == "bad range":
        next(iter(m["files"].values()))["stop"] = 10 ** 9
        manifest.write_text(json.dumps(m))
    count_parses.clear()
    rebuilt = mocap_data.load_clips(ds, progress=False, workers=1)
    assert len(count_parses) == 3
    for a, b in zip(clips, rebuilt):
        np.testing.assert_array_equal(a.rotations, b.rotations)
    count_parses.clear()
    mocap_data.load_clips(ds, progress=False, workers=1)
    assert count_parses == []


def test_removed_file_and_no_cache(small_set, cache_dir, count_parses):
    ds = mocap_data.generic_dataset(small_set, scale=0.01)
    mocap_data.load_clips(ds, progress=False, cache=False, workers=1)
    assert not cache_dir.exists()
    mocap_data.load_clips(ds, progress=False, workers=1)
    gone = ds.files()[2]
    gone.unlink()
    count_parses.clear()
    assert len(mocap_data.load_clips(ds, progress=False, workers=1)) == 2
    assert count_parses == []


def test_parallel_parse_matches_serial(small_set, cache_dir):
    ds = mocap_data.generic_dataset(small_set, scale=0.01)
    serial = mocap_data.load_clips(ds, progress=False, cache=False, workers=1)
    parallel = mocap_data.load_clips(ds, progress=False, cache=False, workers=2)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.rotations, b.rotations)
        assert a.source == b.source and a.tags == b.tags


def test_summary_uses_the_cache(small_set, cache_dir, monkeypatch):
    ds = mocap_data.generic_dataset(small_set, scale=0.01)
    (cold,) = mocap_data.summary([ds])
    clips = mocap_data.load_clips(ds, progress=False, workers=1)
    frames = sum(c.num_frames for c in clips)
    assert cold["clips"] == 3 and cold["frames"] == frames and cold["joints"] == 22
    assert cold["minutes"] == pytest.approx(frames / 30 / 60)
    monkeypatch.setattr(anim.bvh, "read_bvh_header", None)   # warm: nothing read from the files
    monkeypatch.setattr(anim.bvh, "read_bvh", None)
    (warm,) = mocap_data.summary([ds])
    assert warm == cold


def test_summary_of_the_corpus():
    root = corpus_root()
    rows = {r["name"]: r for r in mocap_data.summary(mocap_data.datasets(root))}
    assert rows["bandai-namco-2"]["clips"] == 1150 and rows["bandai-namco-1"]["clips"] == 174
    assert rows["bandai-namco-2"]["styles"]["normal"] > 100
    assert set(rows["bandai-namco-2"]["contents"]) >= {"walk", "run", "walk-turn-left", "walk-turn-right"}
    assert rows["bandai-namco-1"]["minutes"] == pytest.approx(17.7, abs=0.1)
