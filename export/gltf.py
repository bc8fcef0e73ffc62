"""glTF 2.0 binary (.glb) export of a skeleton and its animations, and a reader.

    from export import gltf
    gltf.write_glb("out/export/walk.glb", [clip_a, clip_b], names=["walk", "run"])
    skeleton, clips = gltf.read_glb("out/export/walk.glb")

What the file holds (one scene, one skin, one mesh, one animation per clip):

- nodes 0..J-1: the joints, named as the skeleton's and in its order (parents
  before children), each with its rest transform: translation = the
  skeleton's offset, rotation identity (the skeleton's zero pose, as BVH
  defines it). Joint 0 is a root node of the scene.
- node J, `<root>_mesh`: the skinned mesh, a root node without a transform
  (glTF ignores a skinned mesh node's transform; the validator warns on one).
- the skin: joints = nodes 0..J-1 (skin joint j is skeleton joint j), inverse
  bind matrices = the inverse of each joint's rest world transform.
- the mesh: one octahedral "bone" per parent-to-child segment and per BVH end
  site, and a small octahedron at each leaf joint, each rigidly skinned to
  one joint (JOINTS_0 = (j, ...), WEIGHTS_0 = (1, 0, 0, 0)), flat normals, one
  material. Importers then treat the file as a skeletal mesh (Unity glTFast
  makes a SkinnedMeshRenderer, Unreal's importer a Skeletal Mesh with its
  Skeleton and Animation Sequences).
- one animation per clip, named: each joint's rotation, and translation for
  the root and each joint whose local position moves or differs from the
  first clip's skeleton offset (clips of one file share joint names and
  parents; their offsets may differ, e.g. a learned controller's rest
  positions and its database's); LINEAR samplers,
  keyframes at the clip's own rate (t = i / fps, no resampling).
- `asset.extras.anim`: the format name and version, the skeleton signature and
  each animation's fps, frame count and source, so `read_glb` rebuilds the
  clips exactly.

Conventions: glTF and this engine agree (right-handed, +Y up, metres,
character forward +Z), so positions go out unchanged; the only conversion is
the quaternion order, (w, x, y, z) here to (x, y, z, w) in glTF. Rotations are
renormalized and made sign-continuous along time (glTF's LINEAR rotation is a
slerp between keyframes; q and -q are the same rotation, but an importer that
does not take the shortest path would spin through the long way).

Why a writer of our own and not pygltflib: a .glb is a JSON header and one
binary buffer, so the writer is the JSON plus numpy's `tobytes`. The work is
in what pygltflib does not do either (accessor bounds, alignment, inverse
bind matrices, the bone mesh); it would add a dependency that only wraps the
same dictionaries in dataclasses.

A skeleton or clip that glTF (or the importers) cannot hold is an
`ExportError` naming the clip and the problem: no joints, more than 65535
joints (JOINTS_0 indices are unsigned 16-bit at most), duplicate or empty
joint names (importers find bones by name), more than one root (a skin needs
one common root), NaN or infinite values, zero-length quaternions, no frames,
a non-positive frame rate, clips on different skeletons in one file.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from anim import quat
from anim.fileio import atomic_write
from anim.skeleton import Clip, Skeleton

FORMAT = "anim-gltf"
FORMAT_VERSION = 1
MAX_JOINTS = 65535          # JOINTS_0 as UNSIGNED_SHORT
GENERATOR = "anim-engine export.gltf"

_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DTYPE = {_FLOAT: np.float32, _UBYTE: np.uint8, _USHORT: np.uint16, _UINT: np.uint32}


class ExportError(ValueError):
    """A skeleton or clip that the export format cannot hold."""


# ---------------------------------------------------------------- checks
def check_skeleton(skeleton: Skeleton, where: str = "skeleton") -> None:
    """Raise ExportError if glTF (or the engines importing it) cannot hold `skeleton`."""
    j = skeleton.num_joints
    if j == 0:
        raise ExportError(f"{where}: the skeleton has no joints")
    if j > MAX_JOINTS:
        raise ExportError(f"{where}: {j} joints; glTF skins index joints with unsigned 16-bit "
                          f"integers at most, so a file holds {MAX_JOINTS} joints")
    roots = [skeleton.names[i] for i, p in enumerate(skeleton.parents.tolist()) if p < 0]
    if len(roots) != 1:
        raise ExportError(f"{where}: {len(roots)} root joints ({', '.join(roots[:5])}); a glTF skin "
                          f"needs one common root")
    empty = [i for i, n in enumerate(skeleton.names) if not str(n).strip()]
    if empty:
        raise ExportError(f"{where}: joint {empty[0]} has an empty name (importers find bones by name)")
    seen = set()
    for n in skeleton.names:
        if n in seen:
            raise ExportError(f"{where}: joint name {n!r} appears twice (importers find bones by name)")
        seen.add(n)
    bad = ~np.isfinite(skeleton.offsets).all(axis=-1)
    if bad.any():
        raise ExportError(f"{where}: the offset of joint {skeleton.names[int(np.flatnonzero(bad)[0])]!r} "
                          f"is not finite")


def check_clip(clip: Clip, where: str | None = None) -> None:
    """Raise ExportError if `clip` cannot be written (see the module docstring)."""
    where = where or f"clip {clip.name!r}" + (f" ({clip.source})" if clip.source else "")
    check_skeleton(clip.skeleton, where)
    if clip.num_frames < 1:
        raise ExportError(f"{where}: the clip has no frames")
    if not (np.isfinite(clip.fps) and clip.fps > 0):
        raise ExportError(f"{where}: frame rate {clip.fps} is not a positive number")
    for what, a in (("rotations", clip.rotations), ("positions", clip.positions)):
        bad = ~np.isfinite(a).all(axis=-1)
        if bad.any():
            f, j = (int(x[0]) for x in np.nonzero(bad))
            raise ExportError(f"{where}: {what} hold NaN or infinite values (first at frame {f}, "
                              f"joint {clip.skeleton.names[j]!r})")
    n = np.linalg.norm(clip.rotations.astype(np.float64), axis=-1)
    if (n < 1e-6).any():
        f, j = (int(x[0]) for x in np.nonzero(n < 1e-6))
        raise ExportError(f"{where}: a zero-length quaternion at frame {f}, joint {clip.skeleton.names[j]!r}")


# ---------------------------------------------------------------- helpers
def _unit_continuous(q: np.ndarray) -> np.ndarray:
    """[T, J, 4] -> unit quaternions (float64) with q[t] . q[t-1] >= 0 along time."""
    q = q.astype(np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    if len(q) > 1:
        flip = np.sum(q[1:] * q[:-1], axis=-1) < 0
        sign = np.cumprod(np.where(flip, -1.0, 1.0), axis=0)
        q[1:] *= sign[..., None]
    return q


def _xyzw(q_wxyz: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(q_wxyz[..., [1, 2, 3, 0]], np.float32)


def _wxyz(q_xyzw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(q_xyzw[..., [3, 0, 1, 2]], np.float32)


def rest_world_positions(skeleton: Skeleton) -> np.ndarray:
    """World positions of the joints in the rest pose (identity rotations), float64 [J, 3]."""
    g = np.zeros((skeleton.num_joints, 3))
    for j, p in enumerate(skeleton.parents.tolist()):
        g[j] = skeleton.offsets[j] + (g[p] if p >= 0 else 0.0)
    return g


def _octahedron(a, b, width, at):
    """Triangles [8, 3, 3] of an octahedral bone from a to b: tips at a and b,
    a square of half-width `width` at fraction `at` of the way."""
    d = b - a
    length = np.linalg.norm(d)
    d = d / length
    u = np.cross(d, [0.0, 1.0, 0.0] if abs(d[1]) < 0.9 else [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    c = a + at * length * d
    ring = [c + width * u, c + width * v, c - width * u, c - width * v]
    tris = []
    for i in range(4):
        r0, r1 = ring[i], ring[(i + 1) % 4]
        tris.append([a, r1, r0])
        tris.append([b, r0, r1])
    tris = np.array(tris)
    centre = tris.reshape(-1, 3).mean(axis=0)
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    inward = np.sum(n * (tris.mean(axis=1) - centre), axis=-1) < 0
    tris[inward] = tris[inward][:, ::-1]          # every face wound counter-clockwise seen from outside
    return tris


def bone_mesh(skeleton: Skeleton):
    """The skinned bone mesh in the rest pose: (positions [V, 3], normals [V, 3],
    joint of each vertex [V], triangle indices [F*3]); flat shaded (three
    vertices per triangle)."""
    g = rest_world_positions(skeleton)
    parents = skeleton.parents.tolist()
    height = float(np.ptp(g[:, 1])) if len(g) > 1 else 0.0
    scale = max(height, float(np.ptp(g, axis=0).max()) if len(g) > 1 else 0.0, 0.1)
    pieces = []                                       # (triangles, joint)
    has_child = np.zeros(skeleton.num_joints, bool)
    for j, p in enumerate(parents):
        if p >= 0:
            has_child[p] = True
            length = np.linalg.norm(g[j] - g[p])
            if length > 1e-4 * scale:
                pieces.append((_octahedron(g[p], g[j], min(0.12 * length, 0.02 * scale), 0.15), p))
    for j, site in skeleton.end_sites.items():
        site = np.asarray(site, np.float64)
        length = np.linalg.norm(site)
        if length > 1e-4 * scale:
            has_child[int(j)] = True
            pieces.append((_octahedron(g[j], g[j] + site, min(0.12 * length, 0.02 * scale), 0.15), int(j)))
    r = 0.012 * scale
    for j in range(skeleton.num_joints):
        if not has_child[j] or (j == 0 and not pieces):
            c = g[j]
            pieces.append((_octahedron(c - [0.0, r, 0.0], c + [0.0, r, 0.0], r, 0.5), j))
    tris = np.concatenate([t for t, _ in pieces])                       # [F, 3, 3]
    joint = np.concatenate([np.full(len(t) * 3, j, np.int64) for t, j in pieces])
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    pos = tris.reshape(-1, 3)
    nrm = np.repeat(n, 3, axis=0)
    return pos.astype(np.float32), nrm.astype(np.float32), joint, np.arange(len(pos), dtype=np.int64)


# ---------------------------------------------------------------- writer
class _Bin:
    """Accumulates buffer views and accessors of the one binary buffer."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.size = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        pad = (-self.size) % 4
        if pad:
            self.chunks.append(b"\0" * pad)
            self.size += pad
        v = {"buffer": 0, "byteOffset": self.size, "byteLength": len(data)}
        if target is not None:
            v["target"] = target
        self.chunks.append(data)
        self.size += len(data)
        self.views.append(v)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, ctype: int = _FLOAT, target: int | None = None,
                 bounds: bool = False, normalized: bool = False) -> int:
        a = np.ascontiguousarray(array, _DTYPE[ctype])
        count = a.shape[0]
        acc = {"bufferView": self.view(a.tobytes(), target), "componentType": ctype, "count": count,
               "type": kind}
        if normalized:
            acc["normalized"] = True
        if bounds:
            flat = a.reshape(count, -1)
            conv = float if ctype == _FLOAT else int
            acc["min"] = [conv(x) for x in flat.min(axis=0)]
            acc["max"] = [conv(x) for x in flat.max(axis=0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def data(self) -> bytes:
        out = b"".join(self.chunks)
        return out + b"\0" * ((-len(out)) % 4)


def _unique_names(names: list[str]) -> list[str]:
    out, seen = [], {}
    for n in names:
        base = n or "animation"
        k = seen.get(base, 0)
        seen[base] = k + 1
        out.append(base if k == 0 else f"{base}-{k + 1}")
    return out


def build_glb(clips, names=None, moving_tolerance: float = 1e-6) -> bytes:
    """The .glb bytes for `clips` (all on one skeleton), animations named by
    `names` (default each clip's name). Raises ExportError on bad input."""
    clips = list(clips)
    if not clips:
        raise ExportError("glTF export: no clips to write")
    names = _unique_names([str(n) for n in (names or [c.name for c in clips])])
    if len(names) != len(clips):
        raise ExportError(f"glTF export: {len(clips)} clips but {len(names)} names")
    skeleton = clips[0].skeleton
    for c, n in zip(clips, names):
        check_clip(c, f"animation {n!r}" + (f" ({c.source})" if c.source else ""))
        if c.skeleton.signature() != skeleton.signature():
            raise ExportError(f"animation {n!r} ({c.source or 'in memory'}) is on another skeleton than "
                              f"{names[0]!r}: one glTF file holds one skeleton (export them to two files)")
    nj = skeleton.num_joints
    b = _Bin()

    # joints: rest transforms
    nodes = []
    children = [[] for _ in range(nj)]
    for j, p in enumerate(skeleton.parents.tolist()):
        if p >= 0:
            children[p].append(j)
    for j in range(nj):
        node = {"name": skeleton.names[j]}
        t = [float(x) for x in skeleton.offsets[j]]
        if any(t):
            node["translation"] = t
        if children[j]:
            node["children"] = children[j]
        nodes.append(node)

    # the bone mesh, skinned
    pos, nrm, joint, idx = bone_mesh(skeleton)
    jt, nj_type = (_UBYTE, np.uint8) if nj <= 256 else (_USHORT, np.uint16)
    joints4 = np.zeros((len(pos), 4), nj_type)
    joints4[:, 0] = joint
    weights4 = np.zeros((len(pos), 4), np.float32)
    weights4[:, 0] = 1.0
    itype = _USHORT if len(pos) < 65535 else _UINT
    attrs = {"POSITION": b.accessor(pos, "VEC3", target=_ARRAY_BUFFER, bounds=True),
             "NORMAL": b.accessor(nrm, "VEC3", target=_ARRAY_BUFFER),
             "JOINTS_0": b.accessor(joints4, "VEC4", jt, target=_ARRAY_BUFFER),
             "WEIGHTS_0": b.accessor(weights4, "VEC4", target=_ARRAY_BUFFER)}
    indices = b.accessor(idx, "SCALAR", itype, target=_ELEMENT_ARRAY_BUFFER)
    rest = rest_world_positions(skeleton)
    ibm = np.tile(np.eye(4), (nj, 1, 1))
    ibm[:, :3, 3] = -rest
    ibm_acc = b.accessor(np.transpose(ibm, (0, 2, 1)).reshape(nj, 16), "MAT4")   # column-major
    root = int(np.flatnonzero(skeleton.parents < 0)[0])
    mesh_node = len(nodes)
    nodes.append({"name": f"{skeleton.names[root]}_mesh", "mesh": 0, "skin": 0})

    # animations
    animations, meta = [], []
    for c, name in zip(clips, names):
        t = (np.arange(c.num_frames, dtype=np.float64) / c.fps).astype(np.float32)
        t_acc = b.accessor(t, "SCALAR", bounds=True)
        q = _xyzw(_unit_continuous(c.rotations))
        moving = np.abs(c.positions - skeleton.offsets[None]).max(axis=(0, 2)) > moving_tolerance
        moving[skeleton.parents < 0] = True
        samplers, channels = [], []
        for j in range(nj):
            samplers.append({"input": t_acc, "output": b.accessor(q[:, j], "VEC4"), "interpolation": "LINEAR"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": j, "path": "rotation"}})
            if moving[j]:
                samplers.append({"input": t_acc, "output": b.accessor(c.positions[:, j], "VEC3"),
                                 "interpolation": "LINEAR"})
                channels.append({"sampler": len(samplers) - 1, "target": {"node": j, "path": "translation"}})
        animations.append({"name": name, "samplers": samplers, "channels": channels})
        meta.append({"name": name, "fps": float(c.fps), "frames": int(c.num_frames),
                     "source": str(c.source or "")})

    doc = {
        "asset": {"version": "2.0", "generator": GENERATOR,
                  "extras": {"anim": {"format": FORMAT, "version": FORMAT_VERSION,
                                      "skeleton": skeleton.signature(), "animations": meta}}},
        "scene": 0,
        "scenes": [{"name": "scene", "nodes": [root, mesh_node]}],
        "nodes": nodes,
        "skins": [{"name": skeleton.names[root], "joints": list(range(nj)), "skeleton": root,
                   "inverseBindMatrices": ibm_acc}],
        "meshes": [{"name": "bones", "primitives": [{"attributes": attrs, "indices": indices, "material": 0,
                                                     "mode": 4}]}],
        "materials": [{"name": "bone", "pbrMetallicRoughness": {
            "baseColorFactor": [0.85, 0.62, 0.38, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.7}}],
        "animations": animations,
    }
    binary = b.data()
    doc["buffers"] = [{"byteLength": len(binary)}]
    doc["bufferViews"] = b.views
    doc["accessors"] = b.accessors
    js = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(js), b"JSON"), js,
                     struct.pack("<I4s", len(binary), b"BIN\0"), binary])


def write_glb(path, clips, names=None) -> dict:
    """Write `clips` (one skeleton) to one .glb at `path` (atomically).
    Returns {'path', 'bytes', 'joints', 'animations': [(name, frames, fps)]}."""
    clips = list(clips)
    data = build_glb(clips, names)
    with atomic_write(path) as f:
        f.write(data)
    doc = read_json(path)
    return {"path": os.fspath(path), "bytes": len(data), "joints": clips[0].skeleton.num_joints,
            "animations": [(a["name"], a["frames"], a["fps"]) for a in doc["asset"]["extras"]["anim"]["animations"]]}


# ---------------------------------------------------------------- reader
class GlbError(ValueError):
    """A .glb file that read_glb cannot read."""


def _split(data: bytes, where: str) -> tuple[dict, bytes]:
    if len(data) < 20:
        raise GlbError(f"{where}: too short for a .glb file ({len(data)} bytes)")
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2:
        raise GlbError(f"{where}: not a glTF 2.0 binary file (magic {magic!r}, version {version})")
    if total != len(data):
        raise GlbError(f"{where}: the header says {total} bytes, the file has {len(data)}")
    off, doc, binary = 12, None, b""
    while off + 8 <= len(data):
        n, kind = struct.unpack_from("<I4s", data, off)
        chunk = data[off + 8: off + 8 + n]
        if len(chunk) != n:
            raise GlbError(f"{where}: a chunk runs past the end of the file")
        if kind == b"JSON":
            doc = json.loads(chunk.decode("utf-8"))
        elif kind == b"BIN\0":
            binary = chunk
        off += 8 + n
    if doc is None:
        raise GlbError(f"{where}: no JSON chunk")
    return doc, binary


def read_json(path) -> dict:
    """The JSON part of a .glb file."""
    with open(path, "rb") as f:
        return _split(f.read(), os.fspath(path))[0]


def _accessor(doc: dict, binary: bytes, i: int) -> np.ndarray:
    a = doc["accessors"][i]
    v = doc["bufferViews"][a["bufferView"]]
    dtype = np.dtype(_DTYPE[a["componentType"]])
    n = _NCOMP[a["type"]]
    if v.get("byteStride", dtype.itemsize * n) != dtype.itemsize * n:
        raise GlbError("interleaved buffer views are not read")
    start = v.get("byteOffset", 0) + a.get("byteOffset", 0)
    out = np.frombuffer(binary, dtype, a["count"] * n, start).reshape(a["count"], n)
    if a.get("normalized") and dtype != np.float32:
        out = out.astype(np.float32) / np.iinfo(dtype).max
    return out


def read_glb(path) -> tuple[Skeleton, list[Clip]]:
    """Read a .glb with one skin (as written by write_glb) back into the
    skeleton and one Clip per animation (quaternions back to (w, x, y, z);
    joints without a translation channel keep their rest offset). The frame
    rate is the one stored in asset.extras, else 1 / the first keyframe step."""
    where = os.fspath(path)
    with open(path, "rb") as f:
        doc, binary = _split(f.read(), where)
    if not doc.get("skins"):
        raise GlbError(f"{where}: no skin (no skeleton to read)")
    joints = doc["skins"][0]["joints"]
    slot = {n: j for j, n in enumerate(joints)}
    parents = np.full(len(joints), -1, np.int32)
    for ni, node in enumerate(doc["nodes"]):
        for c in node.get("children", []):
            if c in slot and ni in slot:
                parents[slot[c]] = slot[ni]
    if any(p >= j for j, p in enumerate(parents.tolist())):
        raise GlbError(f"{where}: the skin's joints are not listed parents first")
    nodes = [doc["nodes"][n] for n in joints]
    names = tuple(n.get("name", f"joint{j}") for j, n in enumerate(nodes))
    offsets = np.array([n.get("translation", [0.0, 0.0, 0.0]) for n in nodes], np.float32)
    rest_q = _wxyz(np.array([n.get("rotation", [0.0, 0.0, 0.0, 1.0]) for n in nodes], np.float32))
    skeleton = Skeleton(names, parents, offsets)
    extras = {a["name"]: a for a in doc.get("asset", {}).get("extras", {}).get("anim", {}).get("animations", [])}
    clips = []
    for anim in doc.get("animations", []):
        name = anim.get("name", f"animation{len(clips)}")
        times = None
        rot, pos = None, None
        for ch in anim["channels"]:
            node, path_ = ch["target"].get("node"), ch["target"]["path"]
            if node not in slot or path_ not in ("rotation", "translation"):
                continue
            s = anim["samplers"][ch["sampler"]]
            t = _accessor(doc, binary, s["input"])[:, 0]
            if times is None:
                times = t
                rot = np.tile(rest_q, (len(t), 1, 1))
                pos = np.tile(offsets, (len(t), 1, 1))
            elif len(t) != len(times) or not np.array_equal(t, times):
                raise GlbError(f"{where}: animation {name!r} has channels with different keyframe times")
            out = _accessor(doc, binary, s["output"])
            if path_ == "rotation":
                rot[:, slot[node]] = _wxyz(out)
            else:
                pos[:, slot[node]] = out
        if times is None:
            continue
        info = extras.get(name, {})
        fps = float(info.get("fps") or (1.0 / float(times[1] - times[0]) if len(times) > 1 else 30.0))
        clips.append(Clip(skeleton, rot, pos, fps, source=info.get("source", ""), tags={"name": name}))
    return skeleton, clips
