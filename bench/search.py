"""Benchmark of the exact nearest-neighbour indexes of `anim.search`.

For each implementation: build time, mask registration time, and single-query
latency from Python (p50/p99 in µs, one `index.query` call timed at a time),
unmasked and with each mask, plus a check of every answer against brute force.

    python -m bench.search                     # synthetic 770k x 27 clustered data
    python -m bench.search --frames 100000 --queries 500

From code: `run(X, valid, masks)` returns one dict per (implementation, mask).
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from anim.search import KINDS, make_index

ALL = ("brute", "kdtree", "aabb", "ckdtree")


def run(X: np.ndarray, valid: np.ndarray, masks: dict[str, np.ndarray] | None = None,
        n_queries: int = 2000, rng: np.random.Generator | int | None = 0,
        impls: tuple[str, ...] = ALL, noise: float = 0.1, brute_queries: int = 100,
        with_init: bool = True, verbose: bool = True,
        query_sets: list[dict] | None = None, noise_label: str | None = None) -> list[dict]:
    """Time each index kind on queries X[random candidate rows] + N(0, noise),
    and on any recorded query sets.

    query_sets: [{"name": str, "Q": float32 [M, F], "init": int [M] or None,
    "mask": bool [N] or None, "mask_name": str}]: queries timed in their
    recorded order (e.g. what a controller asked, see bench.search_db); with
    `init` (and with_init) each is also timed seeded with its init frame.

    Rows: impl, queries (the query set: `noise_label`, default
    'rows+N(0, <noise>)', or a query_sets name), mask ('-' for none; '/init'
    appended when seeded with init: for noisy rows the next frame of the
    query's source row, as a controller seeds with the continuation frame),
    candidates, build_s (index build, or mask registration for a mask row),
    p50_us, p99_us, mean_us, max_us, n (queries timed; brute force is capped at
    `brute_queries`, it takes tens of ms each), mismatches (answers whose
    distance differs from brute force's by more than 1e-5 relative, over the
    first `brute_queries` queries; None when brute is not run).
    """
    rng = np.random.default_rng(rng)
    masks = dict(masks or {})
    X = np.ascontiguousarray(X, dtype=np.float32)
    valid = np.asarray(valid, bool)
    n, f = X.shape
    label = noise_label or f"rows+N(0, {noise:g})"

    def queries(cand):
        rows = np.flatnonzero(cand)
        if len(rows) == 0:
            rows = np.flatnonzero(valid)
        src = rng.choice(rows, n_queries)
        Q = (X[src] + rng.normal(0.0, noise, (n_queries, f))).astype(np.float32)
        return Q, np.minimum(src + 1, n - 1)

    # (query set, mask name, mask, seeded with init, queries, init frames); a masked
    # search draws its noisy queries from its own candidates, as a controller playing
    # that style would
    cases = []
    if n_queries > 0:
        Q, init = queries(valid)
        cases.append((label, "-", None, False, Q, init))
        if with_init:
            cases.append((label, "-/init", None, True, Q, init))
        cases += [(label, name, np.asarray(m, bool), False) + queries(np.asarray(m, bool) & valid)
                  for name, m in masks.items()]
    for qs in query_sets or []:
        qname = qs["name"]
        Q = np.ascontiguousarray(qs["Q"], dtype=np.float32)
        m = qs.get("mask")
        mname = qs.get("mask_name", "mask") if m is not None else "-"
        m = None if m is None else np.asarray(m, bool)
        init = qs.get("init")
        cases.append((qname, mname, m, False, Q, np.full(len(Q), -1) if init is None else init))
        if init is not None and with_init:
            cases.append((qname, mname + "/init", m, True, Q, np.asarray(init)))

    ref: dict[tuple, np.ndarray] = {}      # case -> brute-force distances
    rows = []
    for kind in impls:
        make_index(kind, X[:64], valid[:64])   # numba compile / cache load: not build time
        t = time.perf_counter()
        index = make_index(kind, X, valid)
        build_s = time.perf_counter() - t
        if verbose:
            print(f"{kind}: built in {build_s:.2f} s", flush=True)
        for qname, name, m, use_init, Q, init in cases:
            mid, reg_s, cands = None, build_s, int(valid.sum())
            if m is not None:
                t = time.perf_counter()
                mid = index.mask_id(m)
                reg_s = time.perf_counter() - t
                cands = int((m & valid).sum())
            k = min(len(Q), brute_queries) if kind == "brute" else len(Q)
            lat = np.empty(k)
            dist = np.empty(k)
            gc_was = gc.isenabled()
            gc.disable()
            try:
                for j in range(k):
                    ini = int(init[j]) if use_init else -1
                    q = Q[j]
                    t0 = time.perf_counter_ns()
                    _, d = index.query(q, mid, ini)
                    lat[j] = time.perf_counter_ns() - t0
                    dist[j] = d
            finally:
                if gc_was:
                    gc.enable()
            key = (qname, name)
            if kind == "brute":
                ref[key] = dist
            mism = None
            if key in ref:
                r = ref[key]
                c = min(len(r), k)
                mism = int(np.sum(~np.isclose(dist[:c], r[:c], rtol=1e-5, atol=1e-6)))
            lat /= 1e3
            row = dict(impl=kind, queries=qname, mask=name, candidates=cands, build_s=round(reg_s, 4),
                       p50_us=float(np.percentile(lat, 50)), p99_us=float(np.percentile(lat, 99)),
                       mean_us=float(lat.mean()), max_us=float(lat.max()), n=k, mismatches=mism)
            rows.append(row)
            if verbose:
                print(_fmt_row(row), flush=True)
        del index
        gc.collect()
    return rows


def synthetic(n: int = 770_000, f: int = 27, seed: int = 0, latent: int = 8):
    """Clustered motion-like features: clips of 300-5000 frames, each a smooth
    random walk in a `latent`-dim space around a per-style centre, mapped
    nonlinearly to f dims, normalized to unit variance, plus a little noise.
    Returns X float32 [n, f], valid bool [n] (not within 20 frames of a clip
    end), and masks {'normal': ~60% of clips, 'rare': ~3% of clips,
    'range': a contiguous 10% of frames}."""
    from scipy.signal import lfilter
    rng = np.random.default_rng(seed)
    lengths = []
    while sum(lengths) < n:
        lengths.append(int(rng.integers(300, 5000)))
    lengths[-1] -= sum(lengths) - n
    starts = np.cumsum([0] + lengths[:-1])
    stops = starts + np.array(lengths)
    styles = rng.choice(3, len(lengths), p=[0.6, 0.37, 0.03])    # normal, other, rare
    centres = rng.normal(0.0, 1.5, (3, latent))
    z = rng.normal(0.0, 1.0, (n, latent))
    z = lfilter([1 - 0.97], [1, -0.97], z, axis=0)
    z = lfilter([1 - 0.97], [1, -0.97], z, axis=0)
    z /= z.std(axis=0)
    style = np.repeat(styles, lengths)
    z += centres[style]
    A = rng.normal(0.0, 1.0, (latent, f)) / np.sqrt(latent)
    B = rng.normal(0.0, 1.0, (latent, f)) / np.sqrt(latent)
    X = z @ A + 0.5 * np.tanh(z @ B)
    X += rng.normal(0.0, 0.02 * X.std(), X.shape)
    X = (X - X.mean(0)) / X.std(0)
    valid = np.ones(n, bool)
    for e in stops:
        valid[max(e - 20, 0):e] = False
    masks = {"normal": style == 0, "rare": style == 2}
    rng_mask = np.zeros(n, bool)
    a = int(rng.integers(0, n - n // 10))
    rng_mask[a:a + n // 10] = True
    masks["range"] = rng_mask
    return X.astype(np.float32), valid, masks


def _fmt_row(r: dict) -> str:
    mism = "" if r["mismatches"] is None else str(r["mismatches"])
    return (f"| {r['impl']:8s} | {r['queries']:16s} | {r['mask']:12s} | {r['candidates']:9,d} | "
            f"{r['build_s']:8.3f} | {r['p50_us']:10.1f} | {r['p99_us']:10.1f} | {r['mean_us']:10.1f} | "
            f"{r['n']:5d} | {mism:5s} |")


def table(rows: list[dict]) -> str:
    head = ("| impl     | queries          | mask         | cands     | build s  |    p50 µs  |    p99 µs  |"
            "   mean µs  |     n | mism  |\n"
            "| -------- | ---------------- | ------------ | --------- | -------- | ---------- | ---------- |"
            " ---------- | ----- | ----- |")
    return "\n".join([head] + [_fmt_row(r) for r in rows])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=770_000)
    ap.add_argument("--features", type=int, default=27)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--brute-queries", type=int, default=100)
    ap.add_argument("--impls", default=",".join(ALL), help=f"comma-separated, of {sorted(KINDS)}")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t = time.perf_counter()
    X, valid, masks = synthetic(a.frames, a.features, a.seed)
    print(f"synthetic {X.shape[0]:,} x {X.shape[1]} ({int(valid.sum()):,} valid) "
          f"in {time.perf_counter() - t:.1f} s")
    rows = run(X, valid, masks, n_queries=a.queries, rng=a.seed,
               impls=tuple(a.impls.split(",")), brute_queries=a.brute_queries, verbose=False)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
