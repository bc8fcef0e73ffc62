"""Exact nearest-neighbour search over a motion database's feature matrix.

Motion matching asks, every few frames, "which database frame has features
closest to this query?". The features are already normalized and weighted, so
the metric is plain squared Euclidean distance. Every index here is *exact*:
it returns a frame at the true minimum distance (ties broken arbitrarily).

Indexes (one interface, `SearchIndex`; make one with `make_index(kind, X, valid)`):

- ``'brute'``   `BruteForce`: numpy over all candidate rows. The reference answer.
- ``'kdtree'``  `KDTree`: the engine's own kd-tree in numba. Built in the
  principal axes of the valid frames (a rotation: distances unchanged, boxes
  fit the data far better), median splits on the widest axis, leaves of 32
  frames stored contiguously in leaf order, a tight bounding box per node; a
  query descends depth first, nearer child first, skips every node whose box
  is farther than the best so far, and abandons a leaf row after its 8 leading
  axes when they already exceed the best. The fastest; the one to use.
- ``'aabb'``    `AABBSearch`: Holden's bounding-box scan (Motion-Matching demo,
  ``database.h``): frames in contiguous blocks of 16 and 64 with a min/max box
  each; a linear pass skips blocks whose box is farther than the best so far.
  No permutation, no tree; best when given a good starting frame (``init``).
- ``'ckdtree'`` `CKDTree`: scipy's cKDTree, for the benchmark only.

Candidates. A frame is a candidate when ``valid[i]`` (given at build; frames
too close to a clip end are not) and, when a mask is given, ``mask[i]``.

Masks. Register a mask once, outside the loop, and query with the integer id::

    idx = make_index("kdtree", db.features, db.valid)
    normal = idx.mask_id(db.tag_mask(style="normal"))   # O(N) once
    frame, cost = idx.query(q, mask=normal)             # no O(N) work

``mask_id`` is idempotent (the same contents give the same id) and prepares
what that index needs for the candidate set ``mask & valid``: a kd-tree (or
cKDTree) over the candidates only, or per-block "has a candidate" flags for
AABB, or the candidate rows for brute force. Registered masks stay prepared
for the life of the index. ``query(q, mask=<bool array>)`` also works and is
exact for any mask, but it pays O(N) per call to identify the mask by content
(``np.packbits`` then a dict lookup on the bytes, ~50 µs at 770k frames);
the prepared structure for such ad-hoc masks is kept in a small LRU
(``max_cached`` entries, default 8), built on first use. Mutating a mask array
after ``mask_id`` has no effect on the registered id (the contents are copied).

Exactness: every index returns the minimum squared distance over the
candidates, computed in float32 on the original features; two frames whose
distances differ by float32 rounding (~1e-6 relative) may come back either way.

Empty candidate set (all-False mask, no valid frame): every index returns
``(-1, inf)`` rather than raising, so a controller can keep playing the
current clip; check ``index >= 0``.

``init``: ``query(q, init=frame)`` seeds the search with that frame (e.g. the
natural continuation of the current clip) as the best so far. It is ignored
when it is not a candidate. The answer is still the exact minimum; when
``init`` ties with the best it is returned. It mostly speeds up AABB.

Numba kernels are compiled (or loaded from the on-disk cache) and warmed up when
an index is built, so the first query in the live loop is not a compile.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol, runtime_checkable

import numpy as np
from numba import njit

__all__ = ["SearchIndex", "BruteForce", "KDTree", "AABBSearch", "CKDTree",
           "make_index", "KINDS"]

# fastmath without 'nnan'/'ninf': the kernels use +inf as "nothing yet".
_FM = {"nsz", "arcp", "contract", "reassoc"}
_HEAD = 8             # kd-tree leaf scan: dims summed before the first early-out test
_STACK = 128          # kd-tree depth is ~log2(N / leaf) + 1 (17 at 770k); plenty
BLOCK_SMALL = 16      # AABB block sizes, as in Holden's database.h
BLOCK_LARGE = 64


@runtime_checkable
class SearchIndex(Protocol):
    """Exact nearest neighbour over the rows of X among candidate frames."""

    num_frames: int
    num_features: int

    def mask_id(self, mask: np.ndarray) -> int:
        """Register a bool mask [N] (once, O(N)); returns an id for `query`."""
        ...

    def query(self, q: np.ndarray, mask: "int | np.ndarray | None" = None,
              init: int = -1) -> tuple[int, float]:
        """(frame index, squared distance) of the nearest candidate; (-1, inf) if none."""
        ...

    def query_batch(self, Q: np.ndarray, mask: "int | np.ndarray | None" = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Indices int64 [M] and squared distances float32 [M] for queries Q [M, F]."""
        ...


# ----------------------------------------------------------------------------
# shared: mask registry
# ----------------------------------------------------------------------------

class _Index:
    """Input checking and the mask registry shared by all indexes.

    A subclass implements `_prepare(cand) -> entry` (cand: bool [N], the
    candidate frames) and `_query(q, entry, init)` / `_query_batch(Q, entry)`.
    """

    def __init__(self, X: np.ndarray, valid: np.ndarray | None = None, max_cached: int = 8):
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"search: X must be [N, F], got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("search: X has non-finite values")
        n = X.shape[0]
        if valid is None:
            valid = np.ones(n, bool)
        valid = np.asarray(valid)
        if valid.dtype != np.bool_ or valid.shape != (n,):
            raise ValueError(f"search: valid must be bool [{n}], got {valid.dtype} {valid.shape}")
        self.X = X
        self.valid = valid.copy()
        self.num_frames, self.num_features = X.shape
        self.max_cached = int(max_cached)
        self._registered: list = []          # id -> entry (kept for the index's life)
        self._key_to_id: dict[bytes, int] = {}
        self._lru: OrderedDict[bytes, object] = OrderedDict()
        self._build()
        self._full = self._prepare(self.valid)
        # warm up: compile (or load from the cache) the kernels now, not mid-game
        self.query(np.zeros(self.num_features, np.float32))
        self.query_batch(np.zeros((1, self.num_features), np.float32))

    def _build(self):
        """Structures shared by all candidate sets (after X and valid are set)."""

    # -- masks -----------------------------------------------------------------
    def _key(self, mask) -> tuple[bytes, np.ndarray]:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (self.num_frames,):
            raise ValueError(
                f"search: mask must be bool [{self.num_frames}], got {mask.dtype} {mask.shape}")
        return np.packbits(mask).tobytes(), mask

    def mask_id(self, mask: np.ndarray) -> int:
        key, mask = self._key(mask)
        i = self._key_to_id.get(key)
        if i is None:
            entry = self._lru.pop(key, None)
            if entry is None:
                entry = self._prepare(mask & self.valid)
            i = len(self._registered)
            self._registered.append(entry)
            self._key_to_id[key] = i
        return i

    def _entry(self, mask):
        if mask is None:
            return self._full
        if isinstance(mask, (int, np.integer)) and not isinstance(mask, (bool, np.bool_)):
            if 0 <= mask < len(self._registered):
                return self._registered[mask]
            raise KeyError(f"search: unknown mask id {mask} (register the mask with mask_id)")
        key, mask = self._key(mask)
        i = self._key_to_id.get(key)
        if i is not None:
            return self._registered[i]
        entry = self._lru.get(key)
        if entry is None:
            entry = self._prepare(mask & self.valid)
            self._lru[key] = entry
            while len(self._lru) > self.max_cached:
                self._lru.popitem(last=False)
        else:
            self._lru.move_to_end(key)
        return entry

    def _check_q(self, q) -> np.ndarray:
        q = np.array(q, dtype=np.float32)   # a fresh C-contiguous writable copy: one numba signature
        if q.shape != (self.num_features,):
            raise ValueError(f"search: query must be [{self.num_features}], got {q.shape}")
        return q

    def _check_Q(self, Q) -> np.ndarray:
        Q = np.array(Q, dtype=np.float32, order="C")
        if Q.ndim != 2 or Q.shape[1] != self.num_features:
            raise ValueError(f"search: queries must be [M, {self.num_features}], got {Q.shape}")
        return Q

    # -- queries -----------------------------------------------------------------
    def query(self, q, mask=None, init: int = -1) -> tuple[int, float]:
        entry = self._full if mask is None else self._entry(mask)
        q = self._check_q(q)
        init = int(init) if 0 <= init < self.num_frames else -1   # a Python int: one numba signature
        return self._query(q, entry, init)

    def query_batch(self, Q, mask=None) -> tuple[np.ndarray, np.ndarray]:
        entry = self._full if mask is None else self._entry(mask)
        return self._query_batch(self._check_Q(Q), entry)

    def _query_batch(self, Q, entry):
        idx = np.empty(len(Q), np.int64)
        dist = np.empty(len(Q), np.float32)
        for m in range(len(Q)):
            idx[m], dist[m] = self._query(Q[m], entry, -1)
        return idx, dist


# ----------------------------------------------------------------------------
# brute force (numpy; the reference)
# ----------------------------------------------------------------------------

class BruteForce(_Index):
    """numpy: squared distance to every candidate row, then argmin."""

    kind = "brute"

    def _prepare(self, cand):
        rows = np.flatnonzero(cand)
        return rows, self.X[rows], cand.copy()

    def _query(self, q, entry, init):
        rows, Xc, cand = entry
        if len(rows) == 0:
            return -1, float("inf")
        D = Xc - q
        d = np.einsum("ij,ij->i", D, D)
        j = int(np.argmin(d))
        if init >= 0 and cand[init]:
            di = self.X[init] - q
            di = float(np.dot(di, di))
            if di <= d[j]:
                return int(init), di
        return int(rows[j]), float(d[j])


# ----------------------------------------------------------------------------
# kd-tree (numba)
# ----------------------------------------------------------------------------

@njit(cache=True)
def _kd_build(X, leaf_size):
    """kd-tree over the rows of X [n, F]. Returns (perm, bounds, nodes).

    perm:   int64 [n], rows of X in leaf order.
    bounds: float32 [nodes, 2, F], tight min/max box of each node's points.
    nodes:  int32 [nodes, 3]: (right child, or -1 for a leaf; start; end) into perm.
            Nodes are in depth-first order, so the left child of node k is k + 1.
    Splits at the median of the widest dimension of the node's box.
    """
    n, F = X.shape
    perm = np.arange(n)
    if n == 0:
        return perm, np.empty((0, 2, F), np.float32), np.empty((0, 3), np.int32)
    # a split node has > leaf_size points, so leaves hold > leaf_size // 2: < 4n/leaf + 2 nodes
    max_nodes = 4 * (n // leaf_size) + 3
    bounds = np.empty((max_nodes, 2, F), np.float32)
    nodes = np.empty((max_nodes, 3), np.int32)
    keys = np.empty(n, np.float32)
    st_parent = np.empty(_STACK, np.int64)
    st_s = np.empty(_STACK, np.int64)
    st_e = np.empty(_STACK, np.int64)
    sp = 1
    st_parent[0] = -1
    st_s[0] = 0
    st_e[0] = n
    count = 0
    while sp > 0:
        sp -= 1
        parent = st_parent[sp]
        s = st_s[sp]
        e = st_e[sp]
        nd = count
        count += 1
        if parent >= 0 and nd != parent + 1:   # a right child: link it to its parent
            nodes[parent, 0] = nd
        r0 = perm[s]
        for f in range(F):
            bounds[nd, 0, f] = X[r0, f]
            bounds[nd, 1, f] = X[r0, f]
        for p in range(s + 1, e):
            r = perm[p]
            for f in range(F):
                v = X[r, f]
                if v < bounds[nd, 0, f]:
                    bounds[nd, 0, f] = v
                if v > bounds[nd, 1, f]:
                    bounds[nd, 1, f] = v
        nodes[nd, 0] = -1
        nodes[nd, 1] = s
        nodes[nd, 2] = e
        if e - s <= leaf_size:
            continue
        dim = 0
        widest = np.float32(-1.0)
        for f in range(F):
            w = bounds[nd, 1, f] - bounds[nd, 0, f]
            if w > widest:
                widest = w
                dim = f
        if widest <= 0:       # all points identical: keep them in one (big) leaf
            continue
        nodes[nd, 0] = 0      # internal; its right child links itself when popped
        # median: quickselect on the keys, carrying perm along (Hoare / Wirth)
        for p in range(s, e):
            keys[p] = X[perm[p], dim]
        k = (s + e) // 2
        lo = s
        hi = e - 1
        while hi > lo:
            a = keys[lo]
            b = keys[(lo + hi) // 2]
            c = keys[hi]
            if a > b:
                a, b = b, a
            if b > c:
                b = c
            pivot = max(a, b)     # median of three
            i = lo
            j = hi
            while i <= j:
                while keys[i] < pivot:
                    i += 1
                while keys[j] > pivot:
                    j -= 1
                if i <= j:
                    keys[i], keys[j] = keys[j], keys[i]
                    perm[i], perm[j] = perm[j], perm[i]
                    i += 1
                    j -= 1
            if k <= j:
                hi = j
            elif k >= i:
                lo = i
            else:
                break
        # push right then left, so the left child is popped next (id nd + 1)
        st_parent[sp] = nd
        st_s[sp] = k
        st_e[sp] = e
        sp += 1
        st_parent[sp] = nd
        st_s[sp] = s
        st_e[sp] = k
        sp += 1
    return perm, bounds[:count].copy(), nodes[:count].copy()


@njit(cache=True, fastmath=_FM, inline="always")
def _box_dist(q, bounds, nd):
    z = np.float32(0.0)
    acc = np.float32(0.0)
    for f in range(q.shape[0]):
        x = q[f]
        t = max(bounds[nd, 0, f] - x, x - bounds[nd, 1, f], z)
        acc += t * t
    return acc


@njit(cache=True, fastmath=_FM, inline="always")
def _sqdist(a, b):
    acc = np.float32(0.0)
    for f in range(a.shape[0]):
        t = a[f] - b[f]
        acc += t * t
    return acc


@njit(cache=True, fastmath=_FM)
def _kd_query(q, rot, Xp, ids, bounds, nodes, X, cand, init):
    """Nearest candidate frame to q: (frame, squared distance), or (-1, inf).

    The tree lives in a rotated frame: row r of Xp is (X[ids[r]] - mean) @ R,
    with rot = [R; -mean @ R] ([F + 1, F]). Rotation keeps distances, so the
    search runs on the rotated query; the answer's distance is recomputed in
    the original frame. `init` (a frame, or -1) seeds the best if a candidate.
    """
    F = q.shape[0]
    best_i = -1
    best_d = np.float32(np.inf)
    if init >= 0 and cand[init]:
        best_i = init
        best_d = _sqdist(X[init], q)
    if nodes.shape[0] == 0:
        return best_i, best_d
    qr = np.empty(F, np.float32)
    for g in range(F):
        qr[g] = rot[F, g]
    for f in range(F):
        x = q[f]
        for g in range(F):
            qr[g] += x * rot[f, g]
    H = min(_HEAD, F)
    best_p = -1
    st_n = np.empty(_STACK, np.int32)
    st_d = np.empty(_STACK, np.float32)
    d0 = _box_dist(qr, bounds, 0)
    sp = 0
    if d0 < best_d:
        st_n[0] = 0
        st_d[0] = d0
        sp = 1
    while sp > 0:
        sp -= 1
        if st_d[sp] >= best_d:
            continue
        nd = st_n[sp]
        right = nodes[nd, 0]
        if right < 0:
            for p in range(nodes[nd, 1], nodes[nd, 2]):
                # leading (highest-variance) dims first; finish only if still better
                acc = np.float32(0.0)
                for f in range(H):
                    t = Xp[p, f] - qr[f]
                    acc += t * t
                if acc >= best_d:
                    continue
                for f in range(H, F):
                    t = Xp[p, f] - qr[f]
                    acc += t * t
                if acc < best_d:
                    best_d = acc
                    best_p = p
        else:
            left = nd + 1
            dl = _box_dist(qr, bounds, left)
            dr = _box_dist(qr, bounds, right)
            if dl <= dr:
                if dr < best_d:
                    st_n[sp] = right
                    st_d[sp] = dr
                    sp += 1
                if dl < best_d:
                    st_n[sp] = left
                    st_d[sp] = dl
                    sp += 1
            else:
                if dl < best_d:
                    st_n[sp] = left
                    st_d[sp] = dl
                    sp += 1
                if dr < best_d:
                    st_n[sp] = right
                    st_d[sp] = dr
                    sp += 1
    if best_p >= 0:
        best_i = ids[best_p]
        best_d = _sqdist(X[best_i], q)
    return best_i, best_d


@njit(cache=True)
def _kd_query_batch(Q, rot, Xp, ids, bounds, nodes, X, cand):
    m = Q.shape[0]
    out_i = np.empty(m, np.int64)
    out_d = np.empty(m, np.float32)
    for k in range(m):
        i, d = _kd_query(Q[k], rot, Xp, ids, bounds, nodes, X, cand, -1)
        out_i[k] = i
        out_d[k] = d
    return out_i, out_d


class KDTree(_Index):
    """The engine's kd-tree (numba): one tree per candidate set (per mask).

    rotate=True (default) builds the trees in the principal axes of the valid
    frames (an orthogonal change of basis: same distances): axis-aligned boxes
    fit the data much better and the leaf scan can stop after the leading axes.
    """

    kind = "kdtree"

    def __init__(self, X, valid=None, leaf_size: int = 32, rotate: bool = True, max_cached: int = 8):
        self.leaf_size = max(1, int(leaf_size))
        self.rotate = bool(rotate)
        super().__init__(X, valid, max_cached)

    def _build(self):
        F = self.num_features
        R = np.eye(F)
        mean = np.zeros(F)
        rows = np.flatnonzero(self.valid)
        if self.rotate and len(rows) > 1:
            sample = self.X[rows[:: max(1, len(rows) // 200_000)]].astype(np.float64)
            mean = sample.mean(axis=0)
            _, _, Vt = np.linalg.svd(sample - mean, full_matrices=False)
            R[:, : len(Vt)] = Vt.T          # columns: principal axes, largest first
            if len(Vt) < F:                 # fewer samples than features: complete the basis
                R, _ = np.linalg.qr(R)
        self.rot = np.ascontiguousarray(np.vstack([R, -mean @ R]), dtype=np.float32)

    def _prepare(self, cand):
        rows = np.flatnonzero(cand)
        R = self.rot[:-1]
        Xc = self.X[rows] @ R + self.rot[-1]
        perm, bounds, nodes = _kd_build(Xc, self.leaf_size)
        return (np.ascontiguousarray(Xc[perm]), rows[perm], bounds, nodes, cand.copy())

    def _query(self, q, entry, init):
        Xp, ids, bounds, nodes, cand = entry
        i, d = _kd_query(q, self.rot, Xp, ids, bounds, nodes, self.X, cand, init)
        return int(i), float(d)

    def _query_batch(self, Q, entry):
        Xp, ids, bounds, nodes, cand = entry
        return _kd_query_batch(Q, self.rot, Xp, ids, bounds, nodes, self.X, cand)


# ----------------------------------------------------------------------------
# AABB blocks (Holden's database.h search, numba)
# ----------------------------------------------------------------------------

@njit(cache=True)
def _aabb_build(X, valid, size):
    """Min/max box [B, 2, F] of the valid frames of each block of `size` frames.
    A block with no valid frame gets an empty box (+inf, -inf)."""
    n, F = X.shape
    nb = (n + size - 1) // size
    b = np.empty((nb, 2, F), np.float32)
    b[:, 0, :] = np.inf
    b[:, 1, :] = -np.inf
    for i in range(n):
        if valid[i]:
            k = i // size
            for f in range(F):
                v = X[i, f]
                if v < b[k, 0, f]:
                    b[k, 0, f] = v
                if v > b[k, 1, f]:
                    b[k, 1, f] = v
    return b


@njit(cache=True, fastmath=_FM, inline="always")
def _box_dist_bounded(q, bounds, k, best):
    """Distance from q to box k, giving up (returning >= best) once it reaches best."""
    z = np.float32(0.0)
    acc = np.float32(0.0)
    F = q.shape[0]
    f = 0
    while f < F:
        stop = min(f + 8, F)
        for g in range(f, stop):
            x = q[g]
            t = max(bounds[k, 0, g] - x, x - bounds[k, 1, g], z)
            acc += t * t
        if acc >= best:
            return acc
        f = stop
    return acc


@njit(cache=True, fastmath=_FM)
def _aabb_query(q, X, cand, any_sm, any_lr, b_sm, b_lr, init):
    n, F = X.shape
    best_i = -1
    best_d = np.float32(np.inf)
    if init >= 0 and cand[init]:
        acc = np.float32(0.0)
        for f in range(F):
            t = X[init, f] - q[f]
            acc += t * t
        best_i = init
        best_d = acc
    per = BLOCK_LARGE // BLOCK_SMALL
    n_sm = any_sm.shape[0]
    for L in range(any_lr.shape[0]):
        if not any_lr[L]:
            continue
        if _box_dist_bounded(q, b_lr, L, best_d) >= best_d:
            continue
        for S in range(L * per, min(L * per + per, n_sm)):
            if not any_sm[S]:
                continue
            if _box_dist_bounded(q, b_sm, S, best_d) >= best_d:
                continue
            for i in range(S * BLOCK_SMALL, min(S * BLOCK_SMALL + BLOCK_SMALL, n)):
                if not cand[i]:
                    continue
                acc = np.float32(0.0)
                for f in range(F):
                    t = X[i, f] - q[f]
                    acc += t * t
                if acc < best_d:
                    best_d = acc
                    best_i = i
    return best_i, best_d


@njit(cache=True)
def _aabb_query_batch(Q, X, cand, any_sm, any_lr, b_sm, b_lr):
    m = Q.shape[0]
    out_i = np.empty(m, np.int64)
    out_d = np.empty(m, np.float32)
    for k in range(m):
        i, d = _aabb_query(Q[k], X, cand, any_sm, any_lr, b_sm, b_lr, -1)
        out_i[k] = i
        out_d[k] = d
    return out_i, out_d


def _block_any(cand, size):
    n = cand.shape[0]
    nb = (n + size - 1) // size
    pad = np.zeros(nb * size, bool)
    pad[:n] = cand
    return pad.reshape(nb, size).any(axis=1)


class AABBSearch(_Index):
    """Holden's bounding-box scan: boxes of the valid frames per block of 16 and
    64 frames (built once); a mask adds per-block "has a candidate" flags."""

    kind = "aabb"

    def _build(self):
        self.b_sm = _aabb_build(self.X, self.valid, BLOCK_SMALL)
        self.b_lr = _aabb_build(self.X, self.valid, BLOCK_LARGE)

    def _prepare(self, cand):
        return (cand.copy(), _block_any(cand, BLOCK_SMALL), _block_any(cand, BLOCK_LARGE))

    def _query(self, q, entry, init):
        cand, any_sm, any_lr = entry
        i, d = _aabb_query(q, self.X, cand, any_sm, any_lr, self.b_sm, self.b_lr, init)
        return int(i), float(d)

    def _query_batch(self, Q, entry):
        cand, any_sm, any_lr = entry
        return _aabb_query_batch(Q, self.X, cand, any_sm, any_lr, self.b_sm, self.b_lr)


# ----------------------------------------------------------------------------
# scipy cKDTree (benchmark only)
# ----------------------------------------------------------------------------

class CKDTree(_Index):
    """scipy.spatial.cKDTree over the candidate rows (one tree per mask). Benchmark only."""

    kind = "ckdtree"

    def __init__(self, X, valid=None, leaf_size: int = 16, max_cached: int = 8):
        self.leaf_size = max(1, int(leaf_size))
        super().__init__(X, valid, max_cached)

    def _prepare(self, cand):
        from scipy.spatial import cKDTree
        rows = np.flatnonzero(cand)
        tree = cKDTree(self.X[rows], leafsize=self.leaf_size) if len(rows) else None
        return tree, rows, cand.copy()

    def _query(self, q, entry, init):
        tree, rows, cand = entry
        di = float("inf")
        if init >= 0 and cand[init]:
            t = self.X[init] - q
            di = float(np.dot(t, t))
        if tree is None:
            return (int(init), di) if di < float("inf") else (-1, di)
        d, j = tree.query(q, k=1)
        d = d * d
        if d < di:
            return int(rows[j]), float(d)
        return int(init), di

    def _query_batch(self, Q, entry):
        tree, rows, cand = entry
        if tree is None:
            return np.full(len(Q), -1, np.int64), np.full(len(Q), np.inf, np.float32)
        d, j = tree.query(Q, k=1)
        return rows[j].astype(np.int64), (d * d).astype(np.float32)


KINDS = {"brute": BruteForce, "kdtree": KDTree, "aabb": AABBSearch, "ckdtree": CKDTree}


def make_index(kind: str, X: np.ndarray, valid: np.ndarray | None = None, **kwargs) -> SearchIndex:
    """Build a search index: kind is one of 'brute', 'kdtree' (default choice),
    'aabb', 'ckdtree'. X: float32 [N, F] features; valid: bool [N] matchable frames."""
    try:
        cls = KINDS[kind]
    except KeyError:
        raise ValueError(f"search: unknown index kind {kind!r}; one of {sorted(KINDS)}") from None
    return cls(X, valid, **kwargs)
