"""Ranking metrics at scale: recforge's ``compute_metrics`` vs ranx, same random lists and truth.

Synthetic data (seeded): ``--users`` users (default 1M), top-``--k`` lists (default 10) of
distinct item codes over ``--items`` items, and per user 1..15 random relevant items plus about
``0.3 * k`` planted in the user's list (so there are hits at every rank), with grades 1..5.

Metrics: precision, recall, nDCG (binary), nDCG (graded), MAP, MRR, hit rate at K.

* recforge: :func:`recforge.metrics.compute_metrics` on the padded recs matrix and the truth CSR
  (one shared hit matrix), on all users and on the subsample.
* ranx: ``evaluate`` on ``Qrels``/``Run`` built from dicts of string ids (its documented input;
  a second, binary qrels gives the binary nDCG and the hit rate). ranx needs one Python dict entry per
  (user, item), so it runs on the first ``--subsample`` users (default 100k) and its 1M time is
  extrapolated linearly from the subsample (said so in the output). Conversion to ranx's
  structures and ``evaluate`` are timed separately.

Both run with the same numba thread count (``NUMBA_NUM_THREADS``); JIT compilation is warmed
up on tiny data before timing. Each timing is the median of ``--repeats`` runs (default 3),
reported as wall-clock and as process CPU time (summed over threads; steadier than wall time on
a shared machine).
The per-user values of both libraries are compared on the subsample (max abs difference).

Run from the repository root::

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/bench_metrics.py [--users 1000000] [--k 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.metrics import MetricContext, compute_metrics

NAMES = ["precision", "recall", "ndcg", "ndcg_graded", "map", "mrr", "hit_rate"]
#: recforge name -> (ranx metric prefix, uses binary qrels); MAP is ranx's |R|-normalised map
RANX = {
    "precision": ("precision", False),
    "recall": ("recall", False),
    "ndcg": ("ndcg", True),
    "ndcg_graded": ("ndcg", False),
    "map": ("map", False),
    "mrr": ("mrr", False),
    "hit_rate": ("hit_rate", True),
}


def make_data(n_users: int, n_items: int, k: int, seed: int) -> tuple[np.ndarray, sp.csr_array]:
    """Random distinct top-k lists and graded truth with planted hits."""
    rng = np.random.default_rng(seed)
    step = rng.integers(1, max(2, n_items // (2 * k)), size=(n_users, k))
    start = rng.integers(0, n_items, size=(n_users, 1))
    recs = ((start + np.cumsum(step, axis=1)) % n_items).astype(np.int32)  # distinct per row
    n_extra = rng.integers(1, 16, size=n_users)
    extra_rows = np.repeat(np.arange(n_users), n_extra)
    extra_cols = rng.integers(0, n_items, size=extra_rows.size)
    planted = rng.random((n_users, k)) < 0.3
    rows = np.concatenate([extra_rows, np.nonzero(planted)[0]])
    cols = np.concatenate([extra_cols, recs[planted]])
    truth = sp.csr_array(
        (np.ones(rows.size), (rows, cols)), shape=(n_users, n_items), dtype=np.float64
    )
    truth.sum_duplicates()
    truth.data = rng.integers(1, 6, size=truth.nnz).astype(np.float64)
    return recs, truth


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median wall-clock and median process CPU seconds (all threads) of ``repeats`` calls."""
    walls = []
    cpus = []
    out = None
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def recforge_run(recs: np.ndarray, truth: sp.csr_array, k: int) -> dict[tuple[str, int], Any]:
    ctx = MetricContext(
        n_items=truth.shape[1],
        item_popularity=np.zeros(truth.shape[1]),
        n_users_train=1,
    )
    return compute_metrics(recs, truth, [k], NAMES, ctx)


def ranx_inputs(recs: np.ndarray, truth: sp.csr_array) -> tuple[Any, Any, Any]:
    from ranx import Qrels, Run

    n = recs.shape[0]
    width = recs.shape[1]
    scores = [float(width - j) for j in range(width)]
    qids = [f"q{u:08d}" for u in range(n)]
    indptr, indices, data = truth.indptr, truth.indices.tolist(), truth.data.tolist()
    qrels: dict[str, dict[str, int]] = {}
    qrels_bin: dict[str, dict[str, int]] = {}
    for u, q in enumerate(qids):
        lo, hi = indptr[u], indptr[u + 1]
        docs = [f"d{i}" for i in indices[lo:hi]]
        qrels[q] = dict(zip(docs, (int(g) for g in data[lo:hi]), strict=True))
        qrels_bin[q] = dict.fromkeys(docs, 1)
    run = {
        q: dict(zip([f"d{i}" for i in row], scores, strict=True))
        for q, row in zip(qids, recs.tolist(), strict=True)
    }
    return Qrels(qrels), Qrels(qrels_bin), Run(run)


def ranx_evaluate(qrels: Any, qrels_bin: Any, run: Any, k: int) -> dict[str, np.ndarray]:
    """ranx per-user values; binary metrics (nDCG, hit rate) come from the binary qrels.

    Each ``evaluate`` call gets at least two metrics: with a single metric and
    ``save_results_in_run=False`` ranx 0.3.21 fails with a KeyError when returning.
    """
    from ranx import evaluate

    graded = [f"{RANX[n][0]}@{k}" for n in NAMES if not RANX[n][1]]
    binary = [f"{RANX[n][0]}@{k}" for n in NAMES if RANX[n][1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ranx's kernels emit numba type-safety warnings
        out = evaluate(qrels, run, graded, return_mean=False, save_results_in_run=False)
        out_bin = evaluate(qrels_bin, run, binary, return_mean=False, save_results_in_run=False)
    res = {f"graded:{m}": np.asarray(v) for m, v in out.items()}
    res.update({f"binary:{m}": np.asarray(v) for m, v in out_bin.items()})
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--subsample", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    k = args.k

    print(
        f"python {platform.python_version()}, {platform.machine()}, cpus={os.cpu_count()}, "
        f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}"
    )
    recs, truth = make_data(args.users, args.items, k, args.seed)
    sub = min(args.subsample, args.users)
    recs_s, truth_s = recs[:sub], truth[:sub]
    print(
        f"users={args.users:,} items={args.items:,} k={k} truth nnz={truth.nnz:,} "
        f"subsample={sub:,} repeats={args.repeats}"
    )

    # warm-up: JIT compilation of both libraries
    w_recs, w_truth = make_data(50, 100, k, 1)
    recforge_run(w_recs, w_truth, k)
    ranx_evaluate(*ranx_inputs(w_recs, w_truth), k)

    t_rf_full, c_rf_full, _ = median_time(lambda: recforge_run(recs, truth, k), args.repeats)
    t_rf_sub, c_rf_sub, rf_sub = median_time(lambda: recforge_run(recs_s, truth_s, k), args.repeats)
    t_conv, c_conv, inputs = median_time(lambda: ranx_inputs(recs_s, truth_s), args.repeats)
    t_eval, c_eval, rx = median_time(lambda: ranx_evaluate(*inputs, k), args.repeats)

    # agreement on the subsample (MAP: ranx normalises by |R|, recforge by min(k, |R|))
    n_rel = np.diff(truth_s.indptr)
    diffs = {}
    for name in NAMES:
        prefix, binary = RANX[name]
        ref = rx[f"{'binary' if binary else 'graded'}:{prefix}@{k}"]
        ours = rf_sub[(name, k)]
        if name == "map":
            ref = ref * n_rel / np.minimum(n_rel, k)
        diffs[name] = float(np.max(np.abs(ours - ref)))
    print(
        "max |recforge - ranx| per metric on the subsample: "
        + ", ".join(f"{n}={d:.1e}" for n, d in diffs.items())
    )

    scale = args.users / sub
    rows = [
        ("recforge compute_metrics (7 metrics)", args.users, t_rf_full, c_rf_full, None),
        ("recforge compute_metrics (7 metrics)", sub, t_rf_sub, c_rf_sub, None),
        ("ranx evaluate only", sub, t_eval, c_eval, (t_rf_sub, c_rf_sub)),
        (
            "ranx dict->Qrels/Run + evaluate",
            sub,
            t_conv + t_eval,
            c_conv + c_eval,
            (t_rf_sub, c_rf_sub),
        ),
    ]
    if scale > 1:
        rows += [
            (
                f"ranx evaluate only, extrapolated x{scale:g}",
                args.users,
                t_eval * scale,
                c_eval * scale,
                (t_rf_full, c_rf_full),
            ),
            (
                f"ranx conversion + evaluate, extrapolated x{scale:g}",
                args.users,
                (t_conv + t_eval) * scale,
                (c_conv + c_eval) * scale,
                (t_rf_full, c_rf_full),
            ),
        ]
    print()
    print("| step | users | median wall s | median CPU s | ranx / recforge (wall, CPU) |")
    print("|---|---:|---:|---:|---:|")
    for label, users, wall, cpu, base in rows:
        ratio = f"{wall / base[0]:.1f}x, {cpu / base[1]:.1f}x" if base else ""
        print(f"| {label} | {users:,} | {wall:.3f} | {cpu:.3f} | {ratio} |")
    print(f"\nload average after the run: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
