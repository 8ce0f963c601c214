"""Approximate retrieval: recall@10 against exact search, batch and single-query speed.

Item and query vectors are synthetic factors (``--items`` x ``--dim``, clustered around 64
taste directions with norms spread over a decade, as trained factors are), so the
inner-product search is the one a factor model's ``recommend`` runs. Side by side in one
process, on ``--threads`` threads:

* exact: numpy/BLAS inner products and top-10 (the default path of ``recommend``), and
  faiss ``IndexFlatIP``;
* faiss HNSW (M=32) at several ``efSearch`` and IVF at several ``nprobe``, with native
  inner product (no norm-augmentation transform);
* recforge's full path: ``ALS.recommend`` through an HNSW index with seen-item exclusion
  and exact re-scoring, against ``ALS.recommend(exact=True)``.

Reports recall@10 against exact, queries/s in batches of 1,000, single-query p50/p99,
build time and index size. Run::

    python benchmarks/bench_retrieval.py --items 1000000 --dim 64 --queries 2000 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp

from recforge.data import IdIndex
from recforge.models import model_class
from recforge.retrieval import IndexSpec, build_index


def _vectors(n: int, d: int, seed: int, centres: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, centres.shape[0], n)] + 0.7 * rng.normal(size=(n, d))
    return (x * rng.uniform(0.3, 3.0, size=(n, 1))).astype(np.float32)


def _exact_top(q: np.ndarray, keys: np.ndarray, k: int, block: int = 256) -> np.ndarray:
    out = np.empty((q.shape[0], k), dtype=np.int64)
    for s in range(0, q.shape[0], block):
        scores = q[s : s + block] @ keys.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        out[s : s + block] = np.take_along_axis(part, order, axis=1)
    return out


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(found, truth, strict=True)]))


def _batch_qps(search, queries: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    times, found = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        parts = [search(queries[s : s + 1000]) for s in range(0, queries.shape[0], 1000)]
        times.append(time.perf_counter() - t)
        found = np.concatenate(parts)
    return queries.shape[0] / float(np.median(times)), found


def _single_latency(search, queries: np.ndarray, n: int) -> tuple[float, float]:
    lat = []
    for i in range(n):
        t = time.perf_counter()
        search(queries[i : i + 1])
        lat.append(time.perf_counter() - t)
    ms = np.asarray(lat) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _row(name, recall, qps, p50, p99, build_s, size_mb) -> str:
    return (
        f"| {name} | {recall:.3f} | {qps:,.0f} | {p50:.2f} | {p99:.2f} | "
        f"{build_s:.1f} | {size_mb:.0f} |"
    )


def _indexes(args, keys, queries, truth) -> list[str]:

    rows = []
    if not args.skip_flat:
        rows.append(_flat_row(args, keys, queries, truth))
    t = time.perf_counter()
    hnsw = build_index(IndexSpec(kind="hnsw", m=32, ef_construction=args.ef_construction), keys)
    build = time.perf_counter() - t
    size = hnsw.to_array().nbytes / 2**20
    for ef in args.ef:
        spec_search = lambda q, ef=ef: _hnsw_search(hnsw, q, ef)  # noqa: E731
        qps, found = _batch_qps(spec_search, queries, args.repeats)
        p50, p99 = _single_latency(spec_search, queries, 300)
        rows.append(
            _row(f"faiss HNSW32 ef={ef}", _recall(found, truth), qps, p50, p99, build, size)
        )
    t = time.perf_counter()
    ivf = build_index(IndexSpec(kind="ivf", nlist=args.nlist), keys)
    build = time.perf_counter() - t
    size = ivf.to_array().nbytes / 2**20
    for nprobe in args.nprobe:
        ivf.spec = IndexSpec(kind="ivf", nlist=args.nlist, nprobe=nprobe)
        qps, found = _batch_qps(lambda q: ivf.search(q, 10), queries, args.repeats)
        p50, p99 = _single_latency(lambda q: ivf.search(q, 10), queries, 300)
        rows.append(
            _row(
                f"faiss IVF{args.nlist} nprobe={nprobe}",
                _recall(found, truth),
                qps,
                p50,
                p99,
                build,
                size,
            )
        )
    return rows


def _flat_row(args, keys: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> str:
    import faiss

    flat = faiss.IndexFlatIP(args.dim)
    flat.add(keys)
    qps, found = _batch_qps(lambda q: flat.search(q, 10)[1], queries, args.repeats)
    p50, p99 = _single_latency(lambda q: flat.search(q, 10), queries, 100)
    return _row(
        "faiss flat (exact)", _recall(found, truth), qps, p50, p99, 0.0, keys.nbytes / 2**20
    )


def _hnsw_search(index, q: np.ndarray, ef: int) -> np.ndarray:
    index._index.hnsw.efSearch = ef
    _, labels = index._index.search(q, 10)
    return labels


def _model_path(args, keys: np.ndarray, queries: np.ndarray) -> list[str]:
    """ALS.recommend through the index (exclusion + re-scoring) against exact=True."""
    rng = np.random.default_rng(5)
    n_users = queries.shape[0]
    m = model_class("als")(factors=args.dim)
    m.users_ = IdIndex(np.arange(n_users))
    m.items_ = IdIndex(np.arange(keys.shape[0]))
    seen_items = rng.integers(0, keys.shape[0], (n_users, 20))
    seen = sp.csr_array(
        (
            np.ones(seen_items.size, np.float32),
            seen_items.ravel(),
            np.arange(0, seen_items.size + 1, 20),
        ),
        shape=(n_users, keys.shape[0]),
    )
    seen.sum_duplicates()
    m.seen_ = seen
    m.item_popularity_ = np.ones(keys.shape[0], np.float32)
    m.user_factors_, m.item_factors_ = queries, keys
    users = np.arange(n_users)
    rows = []
    t = time.perf_counter()
    exact = m.recommend(users, k=10, exact=True)
    exact_s = time.perf_counter() - t
    rows.append(_row("ALS.recommend exact", 1.0, n_users / exact_s, 0, 0, 0, 0))
    t = time.perf_counter()
    m.build_index(
        "hnsw", m=32, ef_construction=args.ef_construction, ef_search=args.ef[-1], min_items=0
    )
    build = time.perf_counter() - t
    t = time.perf_counter()
    approx = m.recommend(users, k=10)
    approx_s = time.perf_counter() - t
    lat = []
    for u in users[:300]:
        s = time.perf_counter()
        m.recommend([u], k=10)
        lat.append(time.perf_counter() - s)
    ms = np.asarray(lat) * 1e3
    recall = _recall(approx.item_codes, exact.item_codes)
    rows.append(
        _row(
            f"ALS.recommend HNSW32 ef={args.ef[-1]} (+exclusion, re-scoring)",
            recall,
            n_users / approx_s,
            float(np.percentile(ms, 50)),
            float(np.percentile(ms, 99)),
            build,
            0,
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ef", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--nlist", type=int, default=4096)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument("--skip-flat", action="store_true", help="skip faiss IndexFlatIP")
    args = parser.parse_args()
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(args.threads)
    threadpool_limits(args.threads)
    centres = np.random.default_rng(0).normal(size=(64, args.dim))
    keys = _vectors(args.items, args.dim, 1, centres)
    queries = _vectors(args.queries, args.dim, 2, centres)
    t = time.perf_counter()
    truth = _exact_top(queries, keys, 10)
    exact_qps = args.queries / (time.perf_counter() - t)
    print(f"{args.items:,} items x {args.dim}, {args.queries:,} queries, {args.threads} threads")
    print("| method | recall@10 | batch q/s | single p50 ms | single p99 ms | build s | size MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(_row("numpy exact (BLAS)", 1.0, exact_qps, 0, 0, 0, keys.nbytes / 2**20))
    for row in _indexes(args, keys, queries, truth):
        print(row, flush=True)
    if not args.skip_model:
        for row in _model_path(args, keys, queries):
            print(row, flush=True)


if __name__ == "__main__":
    main()
