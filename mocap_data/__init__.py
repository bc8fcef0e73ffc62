"""The mocap data catalog: where datasets live, what they are, and a cache of
parsed clips.

    import mocap_data
    sets = mocap_data.datasets()                          # the known datasets found
    clips = mocap_data.load_clips(sets, tags={"content": ["walk", "run"], "style": "normal"})
    mocap_data.summary(sets)                              # rows for `anim data list`

Where the data is (`mocap_root()`): $ANIM_MOCAP_DIR if set, else
`../shared/mocap` beside the repository checkout if it exists, else this folder
(put your own files here; `generic_dataset(folder)` reads any folder of BVH).

Files are selected by tags parsed from their names *before* anything is read.
Parsed clips (scaled to metres) are cached in `mocap_data/.cache/` (or
$ANIM_CACHE_DIR): per dataset, one manifest.json (file -> size, mtime_ns, frame
range, skeleton) beside two .npy arrays of concatenated frames (rotations,
positions), memory-mapped on load. A file whose size or mtime changes is parsed
again; a corrupt or outdated cache is rebuilt silently. Writes are atomic
(temporary file, then rename).

The Bandai Namco data is CC BY-NC 4.0: attribution required, no commercial use.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["Dataset", "mocap_root", "cache_root", "datasets", "find_dataset", "generic_dataset",
           "select_files", "load_clips", "summary", "record_import", "import_record", "KNOWN_DATASETS",
           "CACHE_VERSION"]

CACHE_VERSION = 1          # bump when the parser or the cache layout changes
_HERE = Path(__file__).resolve().parent


def mocap_root() -> Path:
    """$ANIM_MOCAP_DIR if set; else ../shared/mocap beside the checkout if it
    exists; else the mocap_data/ folder itself."""
    env = os.environ.get("ANIM_MOCAP_DIR")
    if env:
        return Path(env).expanduser()
    shared = _HERE.parent.parent / "shared" / "mocap"
    return shared if shared.is_dir() else _HERE


def cache_root() -> Path:
    """$ANIM_CACHE_DIR if set, else mocap_data/.cache (git-ignored)."""
    env = os.environ.get("ANIM_CACHE_DIR")
    return Path(env).expanduser() if env else _HERE / ".cache"


# ----------------------------------------------------------------- datasets

def _name_tags(dataset: str, stem: str) -> dict:
    return {"dataset": dataset, "name": stem}


_BANDAI_RE = re.compile(r"dataset-(\d+)_([^_]+)_([^_]+)_([^_]+)")


def _bandai_tags(dataset: str, stem: str) -> dict:
    """'dataset-2_walk-turn-left_normal_012' -> content walk-turn-left, style normal, take 012."""
    m = _BANDAI_RE.fullmatch(stem)
    if not m:
        return _name_tags(dataset, stem)
    return {"dataset": dataset, "content": m.group(2), "style": m.group(3), "take": m.group(4)}


@dataclass(frozen=True)
class Dataset:
    """One folder of BVH files and what is known about them.

    name:        short id ('bandai-namco-2'), also the 'dataset' tag of its clips.
    path:        the folder of BVH files (searched recursively).
    fps:         the files' frame rate if known (None: whatever each file says).
    scale:       file units -> metres (0.01 for centimetres).
    up:          up axis of the files ('y').
    license:     one-line license summary; license_file: the full text, if any.
    attribution, citation: what a user of the data must credit.
    parse_tags:  file stem -> tags dict (always with 'dataset').
    """

    name: str
    path: Path
    fps: float | None = None
    scale: float = 1.0
    up: str = "y"
    license: str = ""
    license_file: Path | None = None
    attribution: str = ""
    citation: str = ""
    parse_tags: Callable[[str], dict] = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        if self.parse_tags is None:
            object.__setattr__(self, "parse_tags", functools.partial(_name_tags, self.name))

    def files(self) -> list[Path]:
        """The dataset's BVH files, sorted; a clear error if there are none."""
        if not self.path.is_dir():
            raise FileNotFoundError(f"dataset {self.name!r}: folder {self.path} does not exist")
        found = sorted(p for p in self.path.rglob("*") if p.suffix.lower() == ".bvh"
                       and not any(part.startswith(".") for part in p.relative_to(self.path).parts)
                       and p.is_file())
        if not found:
            raise FileNotFoundError(f"dataset {self.name!r}: no .bvh files under {self.path}")
        return found

    def tags_for(self, path) -> dict:
        """Tags parsed from the file name, updated by a sidecar STEM.tags.json
        (a JSON object of string tags) when one sits beside the file."""
        path = Path(path)
        tags = dict(self.parse_tags(path.stem))
        side = path.with_name(path.stem + ".tags.json")
        if side.is_file():
            try:
                extra = json.loads(side.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"{side}: not a readable JSON object of tags ({e})") from None
            if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
                raise ValueError(f"{side}: tags must be a JSON object of strings, e.g. {{\"content\": \"walk\"}}")
            tags.update(extra)
        return tags


_BANDAI_LICENSE = "CC BY-NC 4.0 (attribution required, non-commercial use only)"
_BANDAI_ATTRIBUTION = "Bandai Namco Research Inc. (github.com/BandaiNamcoResearchInc/Bandai-Namco-Research-Motiondataset)"
_BANDAI_CITATION = ("Kobayashi et al., \"Motion Capture Dataset for Practical Use of AI-based Motion "
                    "Editing and Stylization\", 2023, arXiv:2306.08861")

# name -> fixed facts; the folder is found under mocap_root()
KNOWN_DATASETS = {
    name: dict(fps=30.0, scale=0.01, up="y", license=_BANDAI_LICENSE, attribution=_BANDAI_ATTRIBUTION,
               citation=_BANDAI_CITATION)
    for name in ("bandai-namco-1", "bandai-namco-2")
}


def _known(name: str, folder: Path) -> Dataset:
    facts = KNOWN_DATASETS[name]
    data = folder / "data"
    lic = folder / "LICENSE"
    return Dataset(name=name, path=data if data.is_dir() else folder,
                   license_file=lic if lic.is_file() else None,
                   parse_tags=functools.partial(_bandai_tags, name), **facts)


def datasets(root=None) -> list[Dataset]:
    """The known datasets present under `root` (default mocap_root()); absent ones are skipped."""
    root = Path(root) if root is not None else mocap_root()
    return [_known(name, root / name) for name in KNOWN_DATASETS if (root / name).is_dir()]


def _pattern_tags(dataset: str, pattern: re.Pattern, stem: str) -> dict:
    tags = _name_tags(dataset, stem)
    m = pattern.search(stem)
    if m:
        tags.update({k: v for k, v in m.groupdict().items() if v is not None})
    return tags


def generic_dataset(folder, scale: float = 1.0, fps: float | None = None,
                    tag_pattern: str | None = None) -> Dataset:
    """Any folder of BVH files: tags {'dataset': folder name, 'name': file stem},
    plus the named groups of `tag_pattern` (a regex searched in each stem), plus
    a sidecar STEM.tags.json beside a file (see Dataset.tags_for)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"mocap folder {folder} does not exist")
    name = folder.resolve().name or str(folder)
    parse = functools.partial(_name_tags, name)
    if tag_pattern:
        try:
            rx = re.compile(tag_pattern)
        except re.error as e:
            raise ValueError(f"tag pattern {tag_pattern!r} is not a regular expression ({e})") from None
        if not rx.groupindex:
            raise ValueError(f"tag pattern {tag_pattern!r} has no named group (?P<key>...) to make a tag of")
        parse = functools.partial(_pattern_tags, name, rx)
    return Dataset(name=name, path=folder, fps=fps, scale=scale, parse_tags=parse)


def find_dataset(name_or_folder, root=None) -> Dataset:
    """A known dataset by name (under root), or a folder of BVH files."""
    if isinstance(name_or_folder, Dataset):
        return name_or_folder
    s = str(name_or_folder)
    if s in KNOWN_DATASETS:
        root = Path(root) if root is not None else mocap_root()
        if not (root / s).is_dir():
            raise FileNotFoundError(f"dataset {s!r} not found: no folder {root / s}")
        return _known(s, root / s)
    if Path(s).expanduser().is_dir():
        return generic_dataset(s)
    raise FileNotFoundError(f"no dataset named {s!r} (known: {', '.join(KNOWN_DATASETS)}) "
                            f"and no folder {s}")


def _as_list(dataset_or_datasets) -> list[Dataset]:
    if isinstance(dataset_or_datasets, (Dataset, str, os.PathLike)):
        return [find_dataset(dataset_or_datasets)]
    return [find_dataset(d) for d in dataset_or_datasets]


def _matches(tags: dict, want: dict | None) -> bool:
    if not want:
        return True
    for key, accepted in want.items():
        if key not in tags:
            return False
        if isinstance(accepted, str):
            if tags[key] != accepted:
                return False
        elif tags[key] not in accepted:
            return False
    return True


def select_files(dataset_or_datasets, tags: dict | None = None) -> list[tuple[Dataset, Path, dict]]:
    """(dataset, file, tags) of the files whose name tags match `tags`; nothing is read."""
    out = []
    for ds in _as_list(dataset_or_datasets):
        for p in ds.files():
            t = ds.tags_for(p)
            if _matches(t, tags):
                out.append((ds, p, t))
    return out


# ----------------------------------------------------------------- cache

def _atomic_write(path: Path, write: Callable):
    """write(file object) into a temporary file beside `path`, then rename."""
    from anim.fileio import atomic_write

    with atomic_write(path) as f:
        write(f)


def _cache_dir(ds: Dataset) -> Path:
    key = f"{ds.path.resolve()}|{float(ds.scale)!r}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ds.name)[:40]
    return cache_root() / f"{safe}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def _skel_to_json(s) -> dict:
    return {"names": list(s.names), "parents": s.parents.tolist(), "offsets": s.offsets.tolist(),
            "channels": [list(c) for c in s.channels],
            "end_sites": [[int(k), np.asarray(v, np.float32).tolist()] for k, v in sorted(s.end_sites.items())]}


def _skel_from_json(d: dict):
    from anim.skeleton import Skeleton
    return Skeleton(tuple(d["names"]), np.asarray(d["parents"], np.int32), np.asarray(d["offsets"], np.float32),
                    tuple(tuple(c) for c in d["channels"]),
                    {int(k): np.asarray(v, np.float32) for k, v in d["end_sites"]})


class _Cache:
    """One dataset's cache as read from disk: manifest + memory-mapped arrays."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.manifest = {"files": {}, "skeletons": []}
        self.rotations = self.positions = None
        self._skeletons = {}

    @classmethod
    def open(cls, ds: Dataset) -> "_Cache":
        c = cls(_cache_dir(ds))
        try:
            m = json.loads((c.folder / "manifest.json").read_bytes())
            if m.get("version") != CACHE_VERSION or m.get("format") != "anim-clip-cache":
                return c
            if m.get("path") != str(ds.path.resolve()) or m.get("scale") != float(ds.scale):
                return c
            rot = np.load(c.folder / m["arrays"]["rotations"], mmap_mode="r")
            pos = np.load(c.folder / m["arrays"]["positions"], mmap_mode="r")
            n = rot.shape[0]
            nsk = len(m["skeletons"])
            if rot.dtype != np.float32 or pos.dtype != np.float32 or pos.shape[0] != n or rot.ndim != 2 \
                    or pos.ndim != 2 or rot.shape[1] % 4 or pos.shape[1] % 3 or rot.shape[1] // 4 != pos.shape[1] // 3:
                return c
            for e in m["files"].values():
                nj = len(m["skeletons"][e["skeleton"]]["names"]) if 0 <= e["skeleton"] < nsk else -1
                if not (0 <= e["start"] < e["stop"] <= n) or nj * 4 > rot.shape[1] or nj < 1 \
                        or not isinstance(e["size"], int) or not isinstance(e["mtime_ns"], int) or e["fps"] <= 0:
                    return c
        except Exception:          # missing, partial, corrupt: start afresh
            return c
        c.manifest, c.rotations, c.positions = m, rot, pos
        return c

    def skeleton(self, k: int):
        if k not in self._skeletons:
            self._skeletons[k] = _skel_from_json(self.manifest["skeletons"][k])
        return self._skeletons[k]

    def lookup(self, rel: str, st: os.stat_result):
        e = self.manifest["files"].get(rel)
        if e is not None and e["size"] == st.st_size and e["mtime_ns"] == st.st_mtime_ns:
            return e
        return None

    def arrays(self, e):
        """Copies (writable, independent of the cache file) of one file's frames."""
        nj = len(self.manifest["skeletons"][e["skeleton"]]["names"])
        rot = np.array(self.rotations[e["start"]:e["stop"], :nj * 4]).reshape(-1, nj, 4)
        pos = np.array(self.positions[e["start"]:e["stop"], :nj * 3]).reshape(-1, nj, 3)
        return rot, pos


def _write_cache(ds: Dataset, old: _Cache, keep: dict, new: dict):
    """Write a dataset's cache: `keep` {rel: old entry} still valid, `new` {rel:
    (stat, Clip)} freshly parsed. Arrays are padded to the widest skeleton."""
    folder = old.folder
    skel_index, skeletons = {}, []

    def skel_id(js: dict) -> int:
        key = json.dumps(js, sort_keys=True)
        if key not in skel_index:
            skel_index[key] = len(skeletons)
            skeletons.append(js)
        return skel_index[key]

    items = []          # (rel, entry-without-range, rotations [T,J,4], positions [T,J,3])
    for rel, e in keep.items():
        rot, pos = old.arrays(e)
        js = old.manifest["skeletons"][e["skeleton"]]
        items.append((rel, {"size": e["size"], "mtime_ns": e["mtime_ns"], "fps": e["fps"],
                            "skeleton": skel_id(js)}, rot, pos))
    for rel, (st, clip) in new.items():
        items.append((rel, {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "fps": float(clip.fps),
                            "skeleton": skel_id(_skel_to_json(clip.skeleton))}, clip.rotations, clip.positions))
    items.sort(key=lambda it: it[0])
    width = max(it[2].shape[1] for it in items)
    total = sum(it[2].shape[0] for it in items)
    rot_all = np.zeros((total, width * 4), np.float32)
    pos_all = np.zeros((total, width * 3), np.float32)
    files, start = {}, 0
    for rel, e, rot, pos in items:
        t, nj = rot.shape[:2]
        rot_all[start:start + t, :nj * 4] = rot.reshape(t, -1)
        pos_all[start:start + t, :nj * 3] = pos.reshape(t, -1)
        e.update(start=start, stop=start + t)
        files[rel] = e
        start += t
    gen = uuid.uuid4().hex[:12]
    arrays = {"rotations": f"rotations-{gen}.npy", "positions": f"positions-{gen}.npy"}
    _atomic_write(folder / arrays["rotations"], lambda f: np.save(f, rot_all))
    _atomic_write(folder / arrays["positions"], lambda f: np.save(f, pos_all))
    manifest = {"format": "anim-clip-cache", "version": CACHE_VERSION, "dataset": ds.name,
                "path": str(ds.path.resolve()), "scale": float(ds.scale), "written": time.time(),
                "arrays": arrays, "skeletons": skeletons, "files": files}
    _atomic_write(folder / "manifest.json", lambda f: f.write(json.dumps(manifest).encode()))
    # remove the generation replaced, and orphans (crashed writers) older than an hour
    previous = set(old.manifest.get("arrays", {}).values()) - set(arrays.values())
    now = time.time()
    for p in folder.iterdir():
        if p.name in arrays.values() or p.name == "manifest.json":
            continue
        try:
            if p.name in previous or now - p.stat().st_mtime > 3600:
                p.unlink()
        except OSError:
            pass


# ----------------------------------------------------------------- loading

def _parse(args):
    """One file -> (Clip, None), or (None, the error) for a file that cannot
    be read: a BVHError (picklable, naming the file and line) or an OSError."""
    path, scale = args
    from anim.bvh import read_bvh
    try:
        _, clip = read_bvh(path, scale=scale)
    except (ValueError, OSError) as e:
        return None, e
    return clip, None


def _worker_init(parent: int) -> None:
    """In each parsing process: leave Ctrl-C to the parent (it stops the pool),
    and exit as soon as the parent is gone (killed: nothing else would stop us)."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ppid = os.getppid()

    def watch():
        while True:
            time.sleep(0.2)
            try:
                os.kill(parent, 0)
            except OSError:
                os._exit(1)
            if os.getppid() != ppid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _parse_all(paths: list, scale: float, workers: int, bar) -> list:
    """[(Clip or None, error or None)] per path, parsed in `workers` processes."""
    if workers <= 1 or len(paths) < 2:
        out = []
        for p in paths:
            out.append(_parse((p, scale)))
            bar.update(1)
        return out
    from concurrent.futures import ProcessPoolExecutor
    out = []
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),))
    try:
        for res in pool.map(_parse, [(p, scale) for p in paths], chunksize=4):
            out.append(res)
            bar.update(1)
    except BaseException:
        # Ctrl-C or an error: start nothing new, let the workers finish their chunk and exit
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return out


def _auto_workers(n_files: int) -> int:
    cpus = os.cpu_count() or 1
    return min(2, cpus) if n_files >= 200 else 1


def load_clips(dataset_or_datasets, tags: dict | None = None, progress: bool = True, cache: bool = True,
               workers: int | None = None, errors: list | None = None) -> list:
    """Parse (or load from cache) the clips of one or several datasets whose
    file-name tags match `tags` ({key: value or [accepted values]}), scaled to
    metres. Returns Clips in dataset then file order, each with .tags and
    .source (the file path). workers: parsing processes (None: 2 for large
    uncached loads on a multi-core machine, else 1). A file that cannot be
    read raises its error (a BVHError naming the file and line); with
    `errors` (a list) it is skipped instead and (path, message) appended."""
    from tqdm import tqdm
    from anim.skeleton import Clip

    sets = _as_list(dataset_or_datasets)
    clips = []
    for ds in sets:
        chosen = [(p, t) for _, p, t in select_files(ds, tags)]
        if not chosen:
            continue
        old = _Cache.open(ds) if cache else _Cache(_cache_dir(ds))
        stats = {}
        hits, misses = {}, []
        for p, _ in chosen:
            rel = p.relative_to(ds.path).as_posix()
            st = p.stat()
            stats[rel] = st
            e = old.lookup(rel, st) if cache else None
            if e is not None:
                hits[rel] = e
            else:
                misses.append(p)
        with tqdm(total=len(chosen), desc=f"clips {ds.name}", unit="clip", disable=not progress,
                  leave=False) as bar:
            bar.update(len(hits))
            n = workers if workers is not None else _auto_workers(len(misses))
            results = _parse_all(misses, ds.scale, n, bar)
        parsed = {}
        for p, (clip, err) in zip(misses, results):
            if err is None:
                parsed[p.relative_to(ds.path).as_posix()] = clip
            elif errors is None:
                raise err
            else:
                errors.append((str(p), str(err)))
        for p, t in chosen:
            rel = p.relative_to(ds.path).as_posix()
            if rel not in hits and rel not in parsed:
                continue                    # skipped: unreadable
            if rel in hits:
                e = hits[rel]
                rot, pos = old.arrays(e)
                clip = Clip(old.skeleton(e["skeleton"]), rot, pos, e["fps"], str(p), dict(t))
            else:
                clip = parsed[rel]
                clip.tags = dict(t)
                clip.source = str(p)
            clips.append(clip)
        if cache and parsed:
            keep = {}
            for rel, e in old.manifest["files"].items():   # entries outside this selection stay if valid
                if rel in parsed:
                    continue
                if rel in hits:
                    keep[rel] = e
                    continue
                try:
                    if old.lookup(rel, (ds.path / rel).stat()) is not None:
                        keep[rel] = e
                except OSError:
                    pass
            new = {rel: (stats[rel], clip) for rel, clip in parsed.items()}
            try:
                _write_cache(ds, old, keep, new)
            except OSError as err:          # read-only disk and the like: work uncached
                import warnings
                warnings.warn(f"mocap_data: could not write the clip cache in {old.folder}: {err}")
    return clips


# ----------------------------------------------------------------- import records

def _import_record_path(ds: Dataset) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ds.name)[:40]
    return cache_root() / "imports" / f"{safe}-{hashlib.sha1(str(ds.path.resolve()).encode()).hexdigest()[:12]}.json"


def record_import(ds: Dataset, report: dict) -> None:
    """Remember what `anim build-db --data` decided about a folder (anim.conform's
    report: units, up axis, root channels, re-rooting, per file), for `anim data
    list`. Written atomically beside the clip cache; a failure to write is a warning."""
    try:
        _atomic_write(_import_record_path(ds), lambda f: f.write(json.dumps(
            {"path": str(ds.path.resolve()), "written": time.time(), **report}).encode()))
    except OSError as err:
        import warnings
        warnings.warn(f"mocap_data: could not record the import of {ds.path}: {err}")


def import_record(ds: Dataset) -> dict | None:
    """The last recorded import of a folder (record_import), or None."""
    try:
        return json.loads(_import_record_path(ds).read_bytes())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------- summary

def summary(dataset_or_datasets=None) -> list[dict]:
    """One row per dataset: name, path, clips, frames, minutes, joints (an int,
    or 'a-b' when files differ), contents and styles {tag: clip count}, license,
    bad_files [(path, problem)] (files that cannot be read, left out of the
    counts). Motion data is not parsed: frame counts come from the cache
    manifest, else from each file's header, checked against its count of data
    lines (a header that disagrees makes the file a bad one)."""
    from anim.bvh import _fps, read_bvh_header

    sets = datasets() if dataset_or_datasets is None else _as_list(dataset_or_datasets)
    rows = []
    for ds in sets:
        files = ds.files()
        old = _Cache.open(ds)
        frames, minutes, joints = 0, 0.0, set()
        contents, styles = Counter(), Counter()
        bad = []
        for p in files:
            rel = p.relative_to(ds.path).as_posix()
            e = old.lookup(rel, p.stat())
            if e is not None:
                t, fps = e["stop"] - e["start"], e["fps"]
                nj = len(old.manifest["skeletons"][e["skeleton"]]["names"])
            else:
                try:
                    skel, t, ft = read_bvh_header(p, count_frames=True)
                except (ValueError, OSError) as err:
                    bad.append((str(p), str(err)))
                    continue
                fps, nj = _fps(ft), skel.num_joints
            frames += t
            minutes += t / fps / 60.0
            joints.add(nj)
            tags = ds.tags_for(p)
            if "content" in tags:
                contents[tags["content"]] += 1
            if "style" in tags:
                styles[tags["style"]] += 1
        rows.append({"name": ds.name, "path": str(ds.path), "clips": len(files) - len(bad), "frames": frames,
                     "minutes": minutes,
                     "joints": (min(joints) if len(joints) == 1 else f"{min(joints)}-{max(joints)}") if joints
                     else 0,
                     "contents": dict(contents), "styles": dict(styles), "license": ds.license,
                     "attribution": ds.attribution, "bad_files": bad,
                     "import": (import_record(ds) or {}).get("summary")})
    return rows
