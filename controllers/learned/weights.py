"""The learned-motion-matching weights file, and the networks evaluated in numpy.

One `.npz` file plus a JSON header stored in it as `meta`. The layer matrices
W{i} are stored as float16 (half the file; the run time computes in float32,
and the decompressor's error moves by well under a millimetre), every other
array as float32:

    meta                 JSON: format 'anim-lmm', version, skeleton (names, parents,
                         offsets, signature), feature groups and trajectory frames,
                         feet, fps, pose layout, latent size, measured speeds and
                         coverage (optional: seconds of motion per direction),
                         accel_limit (optional: the database's p99.9 joint
                         acceleration, m/s^2, the controller's output limit),
                         styles, seed, command, training configuration and times
    features_offset/scale  the database's feature normalization (27)
    rest_positions       [J, 3] local positions of joints that do not move
    init_features, init_latent   the standing state the controller starts in
    state_min, state_max the range of (features, latent) over the database, widened
                         by 10% each side: the stepper's state is kept inside it
    decompressor/*, stepper/*, projector/*    W{i} [in, out], b{i}, mean_in, std_in,
                                 mean_out, std_out of each network (run time)
    compressor/*         the compressor (training and evaluation only; the run
                         time never reads it)

`meta` also holds a CRC-32 of every array, checked on load. Inference needs
this file only, no database. A file for another skeleton, of another format
version, or damaged is a `WeightsError` naming the file.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

FORMAT = "anim-lmm"
FORMAT_VERSION = 2      # 2: layer matrices stored as float16
RUNTIME_NETS = ("decompressor", "stepper", "projector")
RUNTIME_ARRAYS = ("features_offset", "features_scale", "rest_positions", "init_features", "init_latent",
                  "state_min", "state_max")


class WeightsError(ValueError):
    """A weights file that cannot be used (missing, damaged, mismatched)."""


@dataclass
class Weights:
    path: str
    meta: dict
    arrays: dict        # name -> float32 array (run-time arrays only unless asked)

    def net(self, name: str) -> list:
        """[(W, b), ...] layers plus the normalization, for `mlp`."""
        return net_from_arrays(self.arrays, name)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))

    @property
    def skeleton_signature(self) -> str:
        return self.meta["skeleton"]["signature"]


def net_from_arrays(arrays: dict, name: str) -> dict:
    n = 0
    while f"{name}/W{n}" in arrays:
        n += 1
    if n == 0:
        raise KeyError(name)
    return {"layers": [(arrays[f"{name}/W{i}"], arrays[f"{name}/b{i}"]) for i in range(n)],
            **{k: arrays[f"{name}/{k}"] for k in ("mean_in", "std_in", "mean_out", "std_out")}}


def mlp(net: dict, x: np.ndarray) -> np.ndarray:
    """Evaluate an exported network (ELU between layers) on x [..., in], float32.
    ELU(h) = max(h, 0) + expm1(min(h, 0)), computed in place (this runs every tick)."""
    h = (np.asarray(x, np.float32) - net["mean_in"]) / net["std_in"]
    layers = net["layers"]
    for W, b in layers[:-1]:
        h = h @ W
        h += b
        neg = np.minimum(h, 0)
        np.expm1(neg, out=neg)
        np.maximum(h, 0, out=h)
        h += neg
    W, b = layers[-1]
    out = h @ W
    out += b
    out *= net["std_out"]
    out += net["mean_out"]
    return out


# ------------------------------------------------------------------ save / load
def save(path: str, meta: dict, arrays: dict) -> None:
    """Write the file atomically (temporary file in the same folder, then rename)."""
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **meta}
    for k in RUNTIME_ARRAYS:
        if k not in arrays:
            raise ValueError(f"weights: array {k!r} missing")
    out = {k: np.ascontiguousarray(v, dtype=_stored_dtype(k)) for k, v in arrays.items()}
    meta["checksums"] = {k: _crc(v) for k, v in out.items()}
    out["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    from anim.fileio import atomic_write

    with atomic_write(path) as f:
        np.savez(f, **out)


def _stored_dtype(name: str):
    return np.float16 if name.split("/")[-1].startswith("W") else np.float32


def load(path: str, skeleton=None, training: bool = False) -> Weights:
    """Read a weights file. With `skeleton` (an anim.skeleton.Skeleton or its
    signature string), a file made for another skeleton is a WeightsError.
    training=True also reads the compressor."""
    if not os.path.exists(path):
        raise WeightsError(f"{path}: no such weights file (train one with "
                           f"`python -m controllers.learned.train`)")
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path}: damaged or not a weights file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise WeightsError(f"{path}: not a learned-motion-matching weights file (no 'meta')")
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise WeightsError(f"{path}: not a learned-motion-matching weights file "
                                   f"(format {meta.get('format')!r})")
            if meta.get("version") != FORMAT_VERSION:
                raise WeightsError(f"{path}: weights format version {meta.get('version')}, this code reads "
                                   f"version {FORMAT_VERSION}; retrain with `python -m controllers.learned.train`")
            # every array is read and checked (a few MB: milliseconds), the run time keeps its own
            stored = {k: z[k] for k in z.files if k != "meta"}
    except WeightsError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, UnicodeDecodeError,
            json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: damaged or not a weights file ({type(e).__name__}: {e})") from None
    sums = meta.get("checksums", {})
    bad = [k for k, a in stored.items() if sums.get(k) != _crc(a)]
    arrays = {k: np.asarray(v, np.float32) for k, v in stored.items()}
    if bad or set(sums) != set(arrays):
        raise WeightsError(f"{path}: damaged weights file (checksum mismatch in "
                           f"{', '.join(bad[:4]) or 'the array list'})")
    if not training:
        arrays = {k: v for k, v in arrays.items() if k in RUNTIME_ARRAYS or k.split("/")[0] in RUNTIME_NETS}
    missing = [k for k in RUNTIME_ARRAYS if k not in arrays]
    missing += [n for n in RUNTIME_NETS if f"{n}/W0" not in arrays]
    if training and "compressor/W0" not in arrays:
        missing.append("compressor")
    if missing:
        raise WeightsError(f"{path}: damaged weights file (missing {', '.join(missing)})")
    for k, a in arrays.items():
        if not np.isfinite(a).all():
            raise WeightsError(f"{path}: damaged weights file ({k} holds NaN or infinite values)")
    sk = meta.get("skeleton", {})
    sig = ";".join(f"{n}<{p}" for n, p in zip(sk.get("names", []), sk.get("parents", [])))
    if sig != sk.get("signature"):
        raise WeightsError(f"{path}: damaged weights file (skeleton header inconsistent)")
    if skeleton is not None:
        want = skeleton if isinstance(skeleton, str) else skeleton.signature()
        if want != sig:
            raise WeightsError(f"{path}: trained for another skeleton ({len(sk['names'])} joints: "
                               f"{', '.join(sk['names'][:6])}, ...) than the one expected "
                               f"(signature {want[:80]}...); retrain for this skeleton")
    _check_shapes(path, meta, arrays)
    return Weights(path, meta, arrays)


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a).tobytes())


def _check_shapes(path, meta, arrays) -> None:
    j = len(meta["skeleton"]["names"])
    f = int(meta["num_features"])
    lat = int(meta["latent"])
    lay = meta["layout"]
    m = len(lay["moving"])
    pose = 6 * m + 9 * (j - 1) + 6 + int(lay["num_contacts"])
    expect = {
        "features_offset": (f,), "features_scale": (f,), "rest_positions": (j, 3),
        "init_features": (f,), "init_latent": (lat,), "state_min": (f + lat,), "state_max": (f + lat,),
        "decompressor/mean_in": (f + lat,), "decompressor/mean_out": (pose,),
        "stepper/mean_in": (f + lat,), "stepper/mean_out": (f + lat,),
        "projector/mean_in": (f,), "projector/mean_out": (f + lat,),
    }
    for k, shape in expect.items():
        if arrays[k].shape != shape:
            raise WeightsError(f"{path}: damaged weights file ({k} has shape {arrays[k].shape}, "
                               f"expected {shape})")
    for name in RUNTIME_NETS:
        net = net_from_arrays(arrays, name)
        n_in = net["mean_in"].shape[0]
        for W, b in net["layers"]:
            if W.ndim != 2 or W.shape[0] != n_in or b.shape != (W.shape[1],):
                raise WeightsError(f"{path}: damaged weights file ({name} layer shapes do not chain)")
            n_in = W.shape[1]
        if n_in != net["mean_out"].shape[0]:
            raise WeightsError(f"{path}: damaged weights file ({name} output size)")
