"""anim.search: every index returns brute force's answer (distances equal up to
float32 rounding), honours `valid`, masks (registered or ad hoc) and `init`,
and returns (-1, inf) for an empty candidate set."""

import subprocess
import sys

import numpy as np
import pytest

from anim.search import (KINDS, LANES, BruteForce, KDTree, SearchIndex, _half_outward, _kd_build,
                         _lanes_boxdist, _lanes_sqdist, make_index)
from numba import njit

KIND_NAMES = sorted(KINDS)
RTOL, ATOL = 1e-5, 1e-6


# ----------------------------------------------------------------------------
# data and the float64 reference
# ----------------------------------------------------------------------------

def uniform(n, f=27, seed=0):
    return np.random.default_rng(seed).random((n, f), dtype=np.float32)


def clustered(n, f=27, seed=1, k=12, latent=6):
    """Gaussian clusters on a low-dimensional subspace, like motion features."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(latent, f))
    centres = rng.normal(0, 3, (k, latent))
    z = centres[rng.integers(0, k, n)] + rng.normal(0, 0.5, (n, latent))
    return (z @ A + rng.normal(0, 0.05, (n, f))).astype(np.float32)


def duplicates(n, f=27, seed=2):
    """Few distinct rows, each repeated many times (and integer coordinates: ties)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-3, 4, (max(n // 50, 1), f)).astype(np.float32)
    return base[rng.integers(0, len(base), n)]


def queries(X, m, seed=3, noise=0.1):
    """Rows of X plus noise, a few exact rows, and a few far-away points."""
    rng = np.random.default_rng(seed)
    Q = X[rng.integers(0, len(X), m)] + rng.normal(0, noise, (m, X.shape[1]))
    Q[: m // 10] = X[rng.integers(0, len(X), m // 10)]            # exact hits
    Q[-(m // 20):] = rng.normal(0, 10, (m // 20, X.shape[1]))      # far away
    return Q.astype(np.float32)


def reference(X, Q, cand):
    """Minimum squared distance (float64) per query over candidate rows; inf if none."""
    rows = np.flatnonzero(cand)
    if len(rows) == 0:
        return np.full(len(Q), np.inf)
    Xc = X[rows].astype(np.float64)
    Q = Q.astype(np.float64)
    out = np.empty(len(Q))
    for a in range(0, len(Q), 256):
        q = Q[a:a + 256]
        d = (Xc * Xc).sum(1)[None] - 2 * q @ Xc.T + (q * q).sum(1)[:, None]
        out[a:a + 256] = np.maximum(d.min(1), 0.0)
    return out


def check(X, Q, cand, idx, dist, ref):
    """Each answer is a candidate at the reference distance (ties aside)."""
    idx = np.asarray(idx)
    dist = np.asarray(dist, np.float64)
    if not cand.any():
        assert (idx == -1).all() and np.isinf(dist).all()
        return
    assert (idx >= 0).all() and cand[idx].all(), "answer is not a candidate"
    true = ((X[idx].astype(np.float64) - Q) ** 2).sum(1)
    np.testing.assert_allclose(dist, true, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(true, ref, rtol=RTOL, atol=ATOL)


_cache: dict = {}


def index_for(kind, name, X, valid, **kw):
    key = (kind, name, tuple(sorted(kw.items())))
    if key not in _cache:
        _cache[key] = make_index(kind, X, valid, **kw)
    return _cache[key]


def n_queries(kind, n):
    return 300 if kind == "brute" else 2000


# ----------------------------------------------------------------------------
# agreement with the reference
# ----------------------------------------------------------------------------

DATASETS = {
    "uniform": lambda: uniform(20_000),
    "clustered": lambda: clustered(20_000),
    "duplicates": lambda: duplicates(5_000),
    "uniform3d": lambda: uniform(3_000, f=3),
    "n1": lambda: uniform(1),
    "n2": lambda: uniform(2),
    "n17": lambda: clustered(17),
    "n513": lambda: clustered(513),     # one more than a kd-tree node of 32 leaves of 16
}


def dataset(name):
    if ("data", name) not in _cache:
        X = DATASETS[name]()
        rng = np.random.default_rng(7)
        valid = rng.random(len(X)) > 0.1
        if len(X) <= 2:
            valid[:] = True
        _cache[("data", name)] = X, valid
    return _cache[("data", name)]


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("name", list(DATASETS))
def test_unmasked_matches_reference(kind, name):
    X, valid = dataset(name)
    index = index_for(kind, name, X, valid)
    Q = queries(X, n_queries(kind, len(X)))
    idx, dist = index.query_batch(Q)
    check(X, Q, valid, idx, dist, reference(X, Q, valid))
    # the single-query path gives the same distances
    for q, d in zip(Q[:50], dist[:50]):
        i, dd = index.query(q)
        assert isinstance(i, int) and isinstance(dd, float)
        assert valid[i] and np.isclose(dd, d, rtol=RTOL, atol=ATOL)


def masks_for(n, seed=11):
    rng = np.random.default_rng(seed)
    m = {
        "half": rng.random(n) < 0.5,
        "sparse": rng.random(n) < 0.02,
        "range": np.zeros(n, bool),
        "single": np.zeros(n, bool),
        "none": np.zeros(n, bool),
    }
    m["range"][n // 3: n // 3 + max(n // 10, 1)] = True
    m["single"][n // 2] = True
    return m


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("name", ["clustered", "duplicates", "n17", "n2"])
def test_masked_matches_reference(kind, name):
    X, valid = dataset(name)
    index = index_for(kind, name, X, valid)
    for k, (mname, mask) in enumerate(masks_for(len(X)).items()):
        cand = mask & valid
        Q = queries(X, 500 if kind != "brute" else 100, seed=100 + k)
        ref = reference(X, Q, cand)
        mid = index.mask_id(mask)
        idx, dist = index.query_batch(Q, mask=mid)
        check(X, Q, cand, idx, dist, ref)
        # single queries: by id and by array give the same answers
        for j in range(0, len(Q), 25):
            a = index.query(Q[j], mask=mid)
            b = index.query(Q[j], mask=mask)
            assert a == b
            check(X, Q[j:j + 1], cand, [a[0]], [a[1]], ref[j:j + 1])


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_empty_candidates_give_minus_one_inf(kind):
    X = clustered(300)
    index = make_index(kind, X, np.ones(300, bool))
    assert index.query(X[0], mask=np.zeros(300, bool)) == (-1, float("inf"))
    # nothing valid at all
    index = make_index(kind, X, np.zeros(300, bool))
    assert index.query(X[0]) == (-1, float("inf"))
    idx, dist = index.query_batch(X[:5])
    assert (idx == -1).all() and np.isinf(dist).all()
    # init cannot make a non-candidate an answer
    assert index.query(X[0], init=0) == (-1, float("inf"))


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_init_seed(kind):
    X, valid = dataset("clustered")
    index = index_for(kind, "clustered", X, valid)
    mask = masks_for(len(X))["half"]
    mid = index.mask_id(mask)
    rng = np.random.default_rng(5)
    Q = queries(X, 200, seed=9)
    for m, cand in ((None, valid), (mid, mask & valid)):
        ref = reference(X, Q, cand)
        for j, q in enumerate(Q):
            init = int(rng.integers(0, len(X)))
            i, d = index.query(q, mask=m, init=init)
            check(X, Q[j:j + 1], cand, [i], [d], ref[j:j + 1])
    # the seed frame itself, when it is the exact answer, comes back
    f = int(np.flatnonzero(valid)[10])
    i, d = index.query(X[f], init=f)
    assert d <= ATOL and (i == f or np.array_equal(X[i], X[f]))
    # out-of-range or non-candidate seeds are ignored
    assert index.query(Q[0], init=-5)[1] == pytest.approx(index.query(Q[0])[1], rel=RTOL)
    assert index.query(Q[0], init=10**9)[1] == pytest.approx(index.query(Q[0])[1], rel=RTOL)


@pytest.mark.parametrize("leaf_size,fanout,rotate", [(1, 16, True), (16, 16, False), (64, 64, True)])
def test_kdtree_options(leaf_size, fanout, rotate):
    for name in ("clustered", "duplicates", "n17", "n513"):
        X, valid = dataset(name)
        index = KDTree(X, valid, leaf_size=leaf_size, fanout=fanout, rotate=rotate)
        assert index.leaf_size % LANES == 0 and index.fanout % LANES == 0
        Q = queries(X, 500)
        idx, dist = index.query_batch(Q)
        check(X, Q, valid, idx, dist, reference(X, Q, valid))


@njit
def _run_sqdist(A, i, q, out):
    _lanes_sqdist(A, i, q, out)


@njit
def _run_boxdist(B, i, q, out):
    _lanes_boxdist(B, i, q, out)


@pytest.mark.parametrize("F", [1, 3, 5, 27])
@pytest.mark.parametrize("M", [LANES, 2 * LANES])
def test_simd_kernels_match_numpy(F, M):
    rng = np.random.default_rng(F * 100 + M)
    A = rng.normal(0, 3, (4, F, M)).astype(np.float32)
    q = rng.normal(0, 3, F).astype(np.float32)
    out = np.full(M, np.nan, np.float32)
    _run_sqdist(A, 2, q, out)
    np.testing.assert_allclose(out, ((A[2] - q[:, None]) ** 2).sum(0), rtol=1e-5)
    lo = rng.normal(0, 3, (4, F, M)).astype(np.float32)
    hi = lo + rng.random((4, F, M), dtype=np.float32) * 2
    lo[1, :, M - 3:] = np.inf                   # unused child slots
    hi[1, :, M - 3:] = -np.inf
    B = np.ascontiguousarray(np.concatenate([lo, hi], axis=2))
    for i in (1, 3):
        _run_boxdist(B, i, q, out)
        t = np.maximum(np.maximum(lo[i] - q[:, None], q[:, None] - hi[i]), 0)
        np.testing.assert_allclose(out, (t ** 2).sum(0), rtol=1e-5)


def test_simd_kernels_read_float16_bits():
    rng = np.random.default_rng(7)
    A = rng.normal(0, 3, (3, 27, LANES)).astype(np.float16)
    q = rng.normal(0, 3, 27).astype(np.float32)
    out = np.full(LANES, np.nan, np.float32)
    _run_sqdist(np.ascontiguousarray(A.view(np.uint16)), 1, q, out)
    np.testing.assert_allclose(out, ((A[1].astype(np.float32) - q[:, None]) ** 2).sum(0), rtol=1e-5)


def test_half_boxes_round_outward():
    rng = np.random.default_rng(8)
    lo = rng.normal(0, 50, (5, 27, LANES)).astype(np.float32)
    hi = lo + rng.random((5, 27, LANES), dtype=np.float32) * 1e-3      # thinner than float16's step
    lo[2, :, -2:], hi[2, :, -2:] = np.inf, -np.inf
    B = np.ascontiguousarray(np.concatenate([lo, hi], axis=2))
    H = _half_outward(B).view(np.float16).astype(np.float32)
    assert (H[..., :LANES] <= lo).all() and (H[..., LANES:] >= hi).all()
    assert np.isposinf(H[2, :, LANES - 2:LANES]).all() and np.isneginf(H[2, :, -2:]).all()


@pytest.mark.parametrize("offset", [0.0, 700.0])
def test_compact_kdtree_is_exact_below_float16_resolution(offset):
    """Rows closer together than float16 can tell apart (its step is 0.5 at 700):
    the compact tree re-measures them on the float32 rows and still returns
    brute force's answer, and the same answer as the float32 tree."""
    rng = np.random.default_rng(9)
    X = (offset + rng.normal(0, 1, (4000, 27)) * np.float32(0.01)).astype(np.float32)
    X[::7] += rng.normal(0, 2, (len(X[::7]), 27)).astype(np.float32)
    Q = (X[rng.integers(0, len(X), 300)] + rng.normal(0, 0.003, (300, 27))).astype(np.float32)
    small = KDTree(X, compact=True, rotate=False)    # (rotation would centre the offset away)
    wide = KDTree(X, compact=False, rotate=False)
    assert small._full[2].dtype == np.uint16 and wide._full[2].dtype == np.float32
    i1, d1 = small.query_batch(Q)
    i2, d2 = wide.query_batch(Q)
    check(X, Q, np.ones(len(X), bool), i1, d1, reference(X, Q, np.ones(len(X), bool)))
    np.testing.assert_allclose(d1, d2, rtol=RTOL, atol=ATOL)


def test_compact_kdtree_keeps_float32_beyond_half_range():
    X = np.random.default_rng(10).normal(0, 1, (500, 27)).astype(np.float32)
    X[0, 0] = 5e4                                   # beyond float16's useful range
    index = KDTree(X, rotate=False)
    assert index._full[2].dtype == np.float32
    i, d = index.query(X[0])
    assert i == 0 and d == 0


@pytest.mark.parametrize("n", [1, 15, 16, 17, 511, 512, 513, 3000])
@pytest.mark.parametrize("leaf,fanout", [(16, 16), (16, 32)])
def test_kdtree_build_structure(n, leaf, fanout):
    """Every row sits in exactly one leaf, inside every box on its path."""
    X = clustered(n, f=5, seed=n)
    perm, boxes, child, leaves, slots, height = _kd_build(X, leaf, fanout)
    assert sorted(perm) == list(range(n))
    assert boxes.shape[1:] == (5, 2 * fanout) and child.shape[1] == fanout
    assert leaf * fanout ** (height - 1) < max(n, 2) <= leaf * fanout ** height or height == 1
    seen = np.zeros(n, int)
    for l in range(len(leaves)):
        used = np.unique(slots[l])
        seen[used] += 1
        np.testing.assert_array_equal(leaves[l].T, X[perm[slots[l]]])    # lanes hold their rows
    assert (seen == 1).all()
    # walk the tree: each child's box holds all rows below it
    def rows_below(node):
        out = []
        for j in range(fanout):
            c = child[node, j]
            if boxes[node, 0, j] > boxes[node, 0, fanout + j]:   # unused slot
                continue
            r = perm[np.unique(slots[-c - 1])] if c < 0 else rows_below(c)
            lo, hi = boxes[node, :, j], boxes[node, :, fanout + j]
            assert (X[r] >= lo).all() and (X[r] <= hi).all()
            out.append(r)
        return np.concatenate(out)
    assert sorted(rows_below(0)) == list(range(n))


def test_all_identical_points():
    X = np.ones((1000, 27), np.float32)
    for kind in KIND_NAMES:
        i, d = make_index(kind, X, None).query(np.zeros(27))
        assert 0 <= i < 1000 and d == pytest.approx(27.0)


# ----------------------------------------------------------------------------
# masks: registration and the ad-hoc cache
# ----------------------------------------------------------------------------

def test_mask_ids_are_by_content_and_copied():
    X, valid = dataset("clustered")
    index = index_for("kdtree", "clustered", X, valid)
    m = masks_for(len(X))["range"]
    a = index.mask_id(m)
    assert index.mask_id(m.copy()) == a
    other = index.mask_id(~m)
    assert other != a
    before = index.query(X[0], mask=a)
    m[:] = True                       # mutating the array does not change the registered id
    assert index.query(X[0], mask=a) == before


def test_adhoc_mask_lru():
    X, valid = dataset("n17")
    index = BruteForce(X, valid, max_cached=2)
    rng = np.random.default_rng(0)
    masks = [rng.random(len(X)) < 0.5 for _ in range(5)]
    for m in masks + masks:
        cand = m & valid
        i, d = index.query(X[3], mask=m)
        check(X, X[3:4], cand, [i], [d], reference(X, X[3:4], cand))
    assert len(index._lru) == 2


def test_bad_arguments():
    X, valid = dataset("n17")
    index = index_for("kdtree", "n17", X, valid)
    with pytest.raises(KeyError):
        index.query(X[0], mask=10**6)
    with pytest.raises(ValueError):
        index.query(X[0], mask=np.ones(len(X), np.int8))       # not bool
    with pytest.raises(ValueError):
        index.mask_id(np.ones(len(X) + 1, bool))               # wrong length
    with pytest.raises(ValueError):
        index.query(X[0, :5])
    with pytest.raises(ValueError):
        index.query_batch(X[:, :5])
    with pytest.raises(ValueError):
        make_index("octree", X, valid)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        make_index("kdtree", bad, valid)
    with pytest.raises(ValueError):
        make_index("kdtree", X, valid[:-1])


def test_protocol_and_light_import():
    X, valid = dataset("n17")
    for kind in KIND_NAMES:
        assert isinstance(index_for(kind, "n17", X, valid), SearchIndex)
    code = ("import sys, anim.search; "
            "bad = [m for m in ('torch', 'jax', 'mujoco', 'pygame') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
