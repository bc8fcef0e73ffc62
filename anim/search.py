"""Exact nearest-neighbour search over a motion database's feature matrix.

Motion matching asks, every few frames, "which database frame has features
closest to this query?". The features are already normalized and weighted, so
the metric is plain squared Euclidean distance. Every index here is *exact*:
it returns a frame at the true minimum distance (ties broken arbitrarily).

Indexes (one interface, `SearchIndex`; make one with `make_index(kind, X, valid)`):

- ``'brute'``   `BruteForce`: numpy over all candidate rows. The reference answer.
- ``'kdtree'``  `KDTree`: the engine's own kd-tree in numba, the one to use.
  A *wide* kd-tree: 32 children per node, 16 frames per leaf, built by median
  splits on the widest axis in the principal axes of the valid frames (a
  rotation: distances unchanged, boxes fit the data far better). Each node
  stores the tight boxes of its 32 children dims-major and each leaf its 16
  frames dims-major, so a query measures all children of a node, or all frames
  of a leaf, at once in SIMD lanes (16 float32; two small LLVM-IR kernels,
  see `_vec_kernel`). Depth first, nearest child first, skipping every child
  whose box is farther than the best so far. Why this shape: on the whole
  corpus the hard queries are the ones far from every frame (a controller
  asking for a trajectory no clip has), where hundreds of leaves lie at nearly
  the same distance and must all be opened; the time goes to touching those
  leaves and boxes, so the work per leaf and per box is what was cut (p99
  ~2.5x lower on the controller's queries, 5-7x on noisy rows, against the
  binary kd-tree with ~19-frame leaves it replaced).
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

Memory: `index.nbytes` is what the index holds beyond X (trees of the
unmasked set and of each prepared mask); the kd-tree keeps a rotated copy of
its candidates' features (~F * 4 bytes per candidate) plus ~20% for boxes
and ids.
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
LANES = 16            # SIMD width of the kd-tree kernels (float32 lanes)
UNROLL = 4            # independent accumulators in those kernels
_PREFETCH = 4         # kd-tree: leaves requested from memory ahead of the one scanned
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

    @property
    def nbytes(self) -> int:
        """Bytes of the numpy arrays prepared for all candidate sets, not counting X
        (nor what scipy's cKDTree holds inside)."""
        def size(obj):
            if isinstance(obj, np.ndarray):
                return obj.nbytes
            if isinstance(obj, (tuple, list)):
                return sum(size(o) for o in obj)
            return 0
        entries = [self._full] + self._registered + list(self._lru.values())
        return self.valid.nbytes + sum(size(e) for e in entries)

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
# SIMD lanes: the kd-tree's two inner loops, written in LLVM IR (numba intrinsics)
# ----------------------------------------------------------------------------
# numba runs LLVM with its SLP vectorizer off, and the loop vectorizer never
# sees the short fixed loops of a 16-frame leaf or a 32-child node (they are
# fully unrolled into scalar code first). So these two loops are emitted as
# <16 x float> operations directly: a 16-frame x 27-dim leaf takes ~25 ns
# against ~120-250 ns for the scalar loop numba makes of it (measured in L1).
# LLVM lowers the vectors to whatever the CPU has (AVX-512, AVX2, NEON); the
# prefetch is a hint (llvm.prefetch), a no-op where unsupported.

def _vec_kernel(kind: str):
    """An intrinsic f(A, i, q, out) on block i of a C-contiguous array A (float32,
    or float16 bits stored as uint16, widened to float32 as loaded), q float32
    [F], out float32 [M] (M a multiple of LANES); for each lane m:

    'sqdist':  A [n, F, M];  out[m] = sum_f (A[i, f, m] - q[f])**2
    'boxdist': A [n, F, 2M] (per dim the M lower bounds, then the M upper ones);
               out[m] = sum_f max(A[i, f, m] - q[f], q[f] - A[i, f, M + m], 0)**2
    """
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    f32 = ir.FloatType()
    vec = ir.VectorType(f32, LANES)
    i32 = ir.IntType(32)
    zero = ir.Constant(vec, [0.0] * LANES)

    def kernel(typingctx, A, i, q, out):
        for a in (A, q, out):
            if not (isinstance(a, types.Array) and a.layout == "C"
                    and (a.dtype == types.float32 or (a is A and a.dtype == types.uint16))):
                raise TypeError("search: SIMD kernels take C-contiguous float32 arrays "
                                "(A may hold float16 bits as uint16)")
        half = A.dtype == types.uint16
        if A.ndim != 3 or q.ndim != 1 or out.ndim != 1:
            raise TypeError("search: SIMD kernels take A [n, F, M], q [F] and out [M]")
        sig = types.void(A, types.intp, q, out)

        def codegen(context, builder, signature, args):
            a = context.make_array(signature.args[0])(context, builder, args[0])
            qa = context.make_array(signature.args[2])(context, builder, args[2])
            oa = context.make_array(signature.args[3])(context, builder, args[3])
            F = builder.extract_value(a.shape, 1)
            stride = builder.extract_value(a.shape, 2)      # floats from one dim to the next
            M = stride if kind == "sqdist" else builder.udiv(stride, ir.Constant(stride.type, 2))
            base = builder.bitcast(a.data, ir.IntType(8).as_pointer())
            elem = ir.IntType(16) if half else f32
            row = builder.bitcast(builder.gep(base, [builder.mul(args[1], builder.extract_value(a.strides, 0))]),
                                  elem.as_pointer())       # &A[i, 0, 0]
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{LANES}f32")

            def load(off):
                if half:       # float16 bits -> float32 lanes (F16C's vcvtph2ps on x86)
                    h = builder.load(builder.bitcast(builder.gep(row, [off]),
                                                     ir.VectorType(ir.IntType(16), LANES).as_pointer()), align=2)
                    return builder.fpext(builder.bitcast(h, ir.VectorType(ir.HalfType(), LANES)), vec)
                return builder.load(builder.bitcast(builder.gep(row, [off]), vec.as_pointer()), align=4)

            def vmax(x, y):
                return builder.select(builder.fcmp_ordered(">", x, y), x, y)

            def term(f, m0):       # what is squared for dim f, lanes m0 .. m0 + LANES
                off = builder.add(builder.mul(f, stride), m0)
                x = builder.load(builder.gep(qa.data, [f]))
                x = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(i32, 0))
                x = builder.shuffle_vector(x, ir.Constant(vec, ir.Undefined),
                                           ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))
                if kind == "sqdist":
                    return builder.fsub(load(off), x)
                t = vmax(builder.fsub(load(off), x), builder.fsub(x, load(builder.add(off, M))))
                return vmax(t, zero)

            # UNROLL independent accumulators over the dims: with a single one
            # every add waits for the previous one (latency bound, ~2x slower)
            accs = [cgutils.alloca_once(builder, vec) for _ in range(UNROLL)]

            def accumulate(acc, t):
                builder.store(builder.call(fma, [t, t, builder.load(acc)]), acc)

            unroll = ir.Constant(F.type, UNROLL)
            with cgutils.for_range(builder, builder.udiv(M, ir.Constant(M.type, LANES))) as chunk:
                m0 = builder.mul(chunk.index, ir.Constant(M.type, LANES))
                for acc in accs:
                    builder.store(zero, acc)
                n_main = builder.udiv(F, unroll)
                with cgutils.for_range(builder, n_main) as loop:
                    f0 = builder.mul(loop.index, unroll)
                    for u, acc in enumerate(accs):
                        accumulate(acc, term(builder.add(f0, ir.Constant(F.type, u)), m0))
                f_rest = builder.mul(n_main, unroll)
                with cgutils.for_range(builder, builder.sub(F, f_rest)) as loop:
                    accumulate(accs[0], term(builder.add(f_rest, loop.index), m0))
                total = builder.load(accs[0])
                for acc in accs[1:]:
                    total = builder.fadd(total, builder.load(acc))
                builder.store(total, builder.bitcast(builder.gep(oa.data, [m0]), vec.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    kernel.__name__ = f"_lanes_{kind}"
    return intrinsic(kernel)


def _prefetch_kernel():
    """An intrinsic f(A, i): prefetch (into all cache levels) every cache line of A[i]."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)

    def _prefetch(typingctx, A, i):
        if not (isinstance(A, types.Array) and A.layout == "C"):
            raise TypeError("search: prefetch takes a C-contiguous array")
        sig = types.void(A, types.intp)

        def codegen(context, builder, signature, llargs):
            a = context.make_array(signature.args[0])(context, builder, llargs[0])
            stride = builder.extract_value(a.strides, 0)
            base = builder.gep(builder.bitcast(a.data, i8p), [builder.mul(llargs[1], stride)])
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
            line = ir.Constant(stride.type, 64)
            n = builder.udiv(builder.add(stride, ir.Constant(stride.type, 63)), line)
            with cgutils.for_range(builder, n) as loop:
                p = builder.gep(base, [builder.mul(loop.index, line)])
                builder.call(fn, [p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return sig, codegen

    return intrinsic(_prefetch)


_lanes_sqdist = _vec_kernel("sqdist")
_lanes_boxdist = _vec_kernel("boxdist")
_prefetch = _prefetch_kernel()


# ----------------------------------------------------------------------------
# kd-tree (numba)
# ----------------------------------------------------------------------------

@njit(cache=True)
def _select(keys, perm, s, e, k):
    """Reorder keys[s:e] (carrying perm) so keys[k] is the k-th smallest, with
    nothing larger before it and nothing smaller after (Hoare / Wirth)."""
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


@njit(cache=True)
def _range_box(X, perm, s, e, lo, hi):
    """Tight min/max box of rows perm[s:e] of X into lo, hi [F]."""
    F = X.shape[1]
    r0 = perm[s]
    for f in range(F):
        lo[f] = X[r0, f]
        hi[f] = X[r0, f]
    for p in range(s + 1, e):
        r = perm[p]
        for f in range(F):
            v = X[r, f]
            if v < lo[f]:
                lo[f] = v
            if v > hi[f]:
                hi[f] = v


@njit(cache=True)
def _kd_build(X, leaf, fanout):
    """Wide kd-tree over the rows of X [n, F]. Returns (perm, boxes, child, leaves, slot, height).

    Every node has up to `fanout` children, cut by repeated kd splits (on the
    widest axis of the part being cut, near its median: at a multiple of the
    child size) so that a child of a node at height h holds exactly
    leaf * fanout**(h - 1) rows but for the node's last child; so every leaf
    holds `leaf` rows but the last leaf of each node. Node 0 is the root.

    perm:   int64 [n], rows of X in leaf order.
    boxes:  float32 [nodes, F, 2 * fanout]: tight box of each child, per dim
            the lower bounds of all children then their upper bounds (so one
            node's children are SIMD lanes, and a node is one contiguous
            block); unused slots hold +inf / -inf.
    child:  int32 [nodes, fanout]: >= 0 a node, < 0 the leaf ~child.
    leaves: float32 [num_leaves, F, leaf]: each leaf's rows, dims major; a short
            leaf repeats its first row in the unused lanes.
    slot:   int64 [num_leaves, leaf]: index into perm of each lane.
    """
    n, F = X.shape
    perm = np.arange(n)
    height = 1
    cap = leaf * fanout
    while cap < n:
        cap *= fanout
        height += 1
    # nodes at height h: at most n // (leaf * fanout**h) full ones plus one
    # partial per parent
    max_nodes = 1
    per = 1
    full = leaf
    for _ in range(height):
        full *= fanout
    for h in range(height - 1, 0, -1):
        full //= fanout
        per = n // full + per
        max_nodes += per
    max_leaves = n // leaf + max_nodes + 1
    if n == 0:
        max_nodes = 0
        max_leaves = 0
    boxes = np.empty((max_nodes, F, 2 * fanout), np.float32)
    boxes[:, :, :fanout] = np.inf
    boxes[:, :, fanout:] = -np.inf
    child = np.zeros((max_nodes, fanout), np.int32)
    spans = np.empty((max_leaves, 2), np.int64)
    keys = np.empty(n, np.float32)
    blo = np.empty(F, np.float32)
    bhi = np.empty(F, np.float32)
    # pending nodes: (start, end, height, parent, parent slot)
    t_s = np.empty(max_nodes + 1, np.int64)
    t_e = np.empty(max_nodes + 1, np.int64)
    t_h = np.empty(max_nodes + 1, np.int64)
    t_par = np.empty(max_nodes + 1, np.int64)
    t_slot = np.empty(max_nodes + 1, np.int64)
    # pending splits inside one node: (start, end, number of children)
    s_s = np.empty(2 * fanout + 2, np.int64)
    s_e = np.empty(2 * fanout + 2, np.int64)
    s_m = np.empty(2 * fanout + 2, np.int64)
    tp = 0
    if n > 0:
        t_s[0] = 0
        t_e[0] = n
        t_h[0] = height
        t_par[0] = -1
        t_slot[0] = 0
        tp = 1
    num_nodes = 0
    num_leaves = 0
    while tp > 0:
        tp -= 1
        s = t_s[tp]
        e = t_e[tp]
        h = t_h[tp]
        nd = num_nodes
        num_nodes += 1
        if t_par[tp] >= 0:
            child[t_par[tp], t_slot[tp]] = nd
        c = leaf                       # rows per child
        for _ in range(h - 1):
            c *= fanout
        slot = 0
        sp = 1
        s_s[0] = s
        s_e[0] = e
        s_m[0] = (e - s + c - 1) // c
        while sp > 0:
            sp -= 1
            a = s_s[sp]
            b = s_e[sp]
            m = s_m[sp]
            _range_box(X, perm, a, b, blo, bhi)
            if m == 1:                 # one child: record its box
                for f in range(F):
                    boxes[nd, f, slot] = blo[f]
                    boxes[nd, f, fanout + slot] = bhi[f]
                if h == 1:
                    spans[num_leaves, 0] = a
                    spans[num_leaves, 1] = b
                    child[nd, slot] = -(num_leaves + 1)
                    num_leaves += 1
                else:
                    t_s[tp] = a
                    t_e[tp] = b
                    t_h[tp] = h - 1
                    t_par[tp] = nd
                    t_slot[tp] = slot
                    tp += 1
                slot += 1
                continue
            dim = 0
            widest = np.float32(-1.0)
            for f in range(F):
                w = bhi[f] - blo[f]
                if w > widest:
                    widest = w
                    dim = f
            m1 = (m + 1) // 2
            k = a + m1 * c             # the left part holds m1 full children
            if widest > 0:
                for p in range(a, b):
                    keys[p] = X[perm[p], dim]
                _select(keys, perm, a, b, k)
            s_s[sp] = k
            s_e[sp] = b
            s_m[sp] = m - m1
            sp += 1
            s_s[sp] = a
            s_e[sp] = k
            s_m[sp] = m1
            sp += 1
    leaves = np.empty((num_leaves, F, leaf), np.float32)
    slots = np.empty((num_leaves, leaf), np.int64)
    for l in range(num_leaves):
        a = spans[l, 0]
        b = spans[l, 1]
        for i in range(leaf):
            p = a + i if a + i < b else a
            slots[l, i] = p
            r = perm[p]
            for f in range(F):
                leaves[l, f, i] = X[r, f]
    return perm, boxes[:num_nodes].copy(), child[:num_nodes].copy(), leaves, slots, height


@njit(cache=True, fastmath=_FM, inline="always")
def _sqdist(a, b):
    acc = np.float32(0.0)
    for f in range(a.shape[0]):
        t = a[f] - b[f]
        acc += t * t
    return acc


@njit(cache=True, fastmath=_FM)
def _kd_query(q, rot, boxes, child, leaves, ids, height, X, cand, init, eps):
    """Nearest candidate frame to q: (frame, squared distance), or (-1, inf).

    The tree lives in a rotated frame: rot = [R; -mean @ R] ([F + 1, F]) maps a
    row x to (x - mean) @ R. Rotation keeps distances, so the search runs on the
    rotated query. Depth first: at each node the boxes of all its children are
    measured at once (SIMD lanes), and the children nearer than the best so far
    are visited nearest first. `init` (a frame, or -1) seeds the best if it is
    a candidate.

    boxes and leaves may be stored compact (float16, see KDTree): boxes are
    rounded outward, so they still bound their frames; a leaf frame's stored
    coordinates lie within `eps` (Euclidean) of its true rotated row, so its
    distance d16 to the query gives the lower bound (sqrt(d16) - eps)**2 of the
    true one. A frame passing that bound is measured exactly on X, and only
    exact distances become the best: the answer is exact either way (eps = 0
    for float32 storage).
    """
    F = q.shape[0]
    K = child.shape[1]
    L = leaves.shape[2]
    best_i = -1
    best_d = np.float32(np.inf)
    thr = np.float32(np.inf)        # leaf frames nearer than this are measured exactly
    if init >= 0 and cand[init]:
        best_i = init
        best_d = _sqdist(X[init], q)
        r = np.sqrt(best_d) + eps
        thr = r * r
    if child.shape[0] == 0:
        return best_i, best_d
    qr = np.empty(F, np.float32)
    for g in range(F):
        qr[g] = rot[F, g]
    for f in range(F):
        x = q[f]
        for g in range(F):
            qr[g] += x * rot[f, g]
    box = np.empty(K, np.float32)
    dist = np.empty(L, np.float32)
    order = np.empty(K, np.int64)
    st_n = np.empty(height * K + 1, np.int64)
    st_d = np.empty(height * K + 1, np.float32)
    st_n[0] = 0
    st_d[0] = 0.0
    sp = 1
    while sp > 0:
        sp -= 1
        if st_d[sp] >= best_d:
            continue
        nd = st_n[sp]
        _lanes_boxdist(boxes, nd, qr, box)
        # children nearer than the best, sorted nearest first (insertion sort)
        cnt = 0
        for j in range(K):
            b = box[j]
            if b < best_d:
                k = cnt
                while k > 0 and box[order[k - 1]] > b:
                    order[k] = order[k - 1]
                    k -= 1
                order[k] = j
                cnt += 1
        if cnt == 0:
            continue
        if child[nd, order[0]] < 0:              # children are leaves: scan them
            # the leaves to open are known: have the next few in flight from memory
            for k in range(min(cnt, _PREFETCH)):
                _prefetch(leaves, -child[nd, order[k]] - 1)
            for k in range(cnt):
                if k + _PREFETCH < cnt:
                    _prefetch(leaves, -child[nd, order[k + _PREFETCH]] - 1)
                j = order[k]
                if box[j] >= best_d:
                    break
                leaf = -child[nd, j] - 1
                _lanes_sqdist(leaves, leaf, qr, dist)
                for m in range(L):
                    if dist[m] < thr:
                        i = ids[leaf, m]
                        d = _sqdist(X[i], q)
                        if d < best_d:
                            best_d = d
                            best_i = i
                            r = np.sqrt(best_d) + eps
                            thr = r * r
        else:                                    # push, nearest on top
            for k in range(cnt - 1, -1, -1):
                j = order[k]
                st_n[sp] = child[nd, j]
                st_d[sp] = box[j]
                sp += 1
    return best_i, best_d


@njit(cache=True)
def _kd_query_batch(Q, rot, boxes, child, leaves, ids, height, X, cand, eps):
    m = Q.shape[0]
    out_i = np.empty(m, np.int64)
    out_d = np.empty(m, np.float32)
    for k in range(m):
        i, d = _kd_query(Q[k], rot, boxes, child, leaves, ids, height, X, cand, -1, eps)
        out_i[k] = i
        out_d[k] = d
    return out_i, out_d


_HALF_MAX = 1e4       # compact kd-tree storage only for coordinates within +-this


def _half_outward(boxes: np.ndarray) -> np.ndarray:
    """float32 boxes [n, F, 2M] (lower bounds, then upper ones) -> float16 bits
    (uint16) rounded outward, so every box still holds what it held."""
    m = boxes.shape[2] // 2
    h = boxes.astype(np.float16)
    lo, hi = h[..., :m], h[..., m:]
    lo = np.where(lo.astype(np.float32) > boxes[..., :m], np.nextafter(lo, np.float16(-np.inf)), lo)
    hi = np.where(hi.astype(np.float32) < boxes[..., m:], np.nextafter(hi, np.float16(np.inf)), hi)
    return np.ascontiguousarray(np.concatenate([lo, hi], axis=-1).view(np.uint16))


def _round_lanes(n: int) -> int:
    return max(LANES, -(-int(n) // LANES) * LANES)


class KDTree(_Index):
    """The engine's kd-tree (numba): one tree per candidate set (per mask).

    A wide kd-tree: `fanout` children per node (32), `leaf_size` frames per
    leaf (16), both rounded up to a multiple of LANES = 16 (the SIMD width).
    Built in the principal axes of the valid frames (rotate=True; an orthogonal
    change of basis: same distances), where axis-aligned boxes fit the data far
    better. Measured on the whole corpus: leaves of 16 beat 32, and fanout 32
    beats 16 and 48 (fewer nodes to open; each a 7 kB block).

    compact=True stores the boxes and leaves as float16 (boxes rounded
    outward; leaf frames re-measured exactly on X when their float16 distance
    cannot rule them out, see _kd_query): answers stay exact, the tree takes
    half the memory, and the hard queries, which are memory bound (hundreds of
    leaves and a hundred 3.5 kB nodes), run about 1.7x faster (p99 on the
    controller's queries of the whole corpus: 132 -> 76 us). Rotated features
    beyond +-1e4 keep float32.
    """

    kind = "kdtree"

    def __init__(self, X, valid=None, leaf_size: int = 16, fanout: int = 32, rotate: bool = True,
                 max_cached: int = 8, compact: bool = True):
        self.leaf_size = _round_lanes(leaf_size)
        self.compact = bool(compact)
        self.fanout = _round_lanes(fanout)
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
        Xc = np.ascontiguousarray(self.X[rows] @ self.rot[:-1] + self.rot[-1], dtype=np.float32)
        perm, boxes, child, leaves, slots, height = _kd_build(Xc, self.leaf_size, self.fanout)
        ids = rows[perm][slots] if len(rows) else np.empty((0, self.leaf_size), np.int64)
        eps = np.float32(0.0)
        if self.compact and len(rows) and np.abs(leaves).max() <= _HALF_MAX:
            boxes = _half_outward(boxes)
            half = leaves.astype(np.float16)
            err = np.sqrt(((half.astype(np.float64) - leaves) ** 2).sum(axis=1)).max()
            # margin for float32 rounding of the distances themselves
            eps = np.float32(err * 1.01 + 1e-5 * (1.0 + np.sqrt((leaves.astype(np.float64) ** 2).sum(axis=1).max())))
            leaves = np.ascontiguousarray(half.view(np.uint16))
        return (boxes, child, leaves, np.ascontiguousarray(ids, dtype=np.int64), int(height), cand.copy(), eps)

    def _query(self, q, entry, init):
        boxes, child, leaves, ids, height, cand, eps = entry
        i, d = _kd_query(q, self.rot, boxes, child, leaves, ids, height, self.X, cand, init, eps)
        return int(i), float(d)

    def _query_batch(self, Q, entry):
        boxes, child, leaves, ids, height, cand, eps = entry
        return _kd_query_batch(Q, self.rot, boxes, child, leaves, ids, height, self.X, cand, eps)


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
