"""What reproducibility costs: deterministic SGD epochs vs the previous Hogwild kernels.

recforge's SGD models train reproducibly (the same bits under a seed, whatever the thread
count): SVD and BPR by DSGD strata of seed-drawn user and item blocks run in parallel, SVD++
and HybridMF (by default) on one thread. Their previous kernels ran lock-free Hogwild blocks,
one per numba thread, which raced. This script fits, side by side on the same per-user 80/20
split of MovieLens (``_common.per_user_split``, seed 42):

* the current models with ``--threads`` threads and with one thread (their results must be
  bit-identical: the ``same bits as 1 thread`` column checks it on every fit);
* the previous kernels, rebuilt here from the same per-rating steps (Hogwild over
  ``--threads`` blocks, and their sequential one-thread mode);
* implicit's BPR (its own parallel Hogwild, popularity negatives) where installed.

``ml-1m-seq`` (987,019 implicit interactions, ranking models only) is large enough for several
blocks (ML-100K and latest-small train on one block: fewer than 100,000 updates).

Rating models report test RMSE, ranking models NDCG@10 / Recall@20 over the full catalogue
(training items excluded). Fit time: median of ``--repeats`` fits, the variants of one model
interleaved so that changes in machine load hit them alike; ``vs previous`` is the previous
kernel's median fit time at the same thread count divided by this variant's.

Run::

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/bench_sgd_parallel.py \\
        [--datasets ml-100k ml-latest-small ml-1m-seq] [--threads 2] [--repeats 3]
        [--models SVD SVD++ BPR HybridMF] [--bpr-epochs 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numba
import numpy as np
import pandas as pd
from numba import njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DATA_DIR,
    binarize,
    csr_from_frame,
    environment,
    load_ratings,
    markdown_table,
    per_user_split,
    ranking_metrics,
    rating_metrics,
    to_dataset,
)
from recforge._kernels.bpr import _bpr_step, _randint, _sample_in, seed_states
from recforge._kernels.csr import row_contains
from recforge._kernels.sgd import _svd_range, _svdpp_user, svdpp_implicit_sums
from recforge.models.bpr import BPR
from recforge.models.hybrid import HybridMF
from recforge.models.mf import SVD, SVDpp, group_by_user

_FAST = {"reassoc", "contract", "nsz", "arcp"}


# --------------------------------------------------------------- the previous Hogwild kernels
@njit(nogil=True, parallel=True, fastmath=_FAST)
def _svd_hogwild(ratings, order, mu, params, rates, nb):
    step = (order.shape[0] + nb - 1) // nb
    partial = np.zeros(nb, dtype=np.float64)
    for b in prange(nb):
        lo, hi = b * step, min(order.shape[0], (b + 1) * step)
        partial[b] = _svd_range(lo, hi, ratings, order, mu, params, rates)
    return partial.sum()


@njit(nogil=True, parallel=True, fastmath=_FAST)
def _svdpp_hogwild(order, csr, mu, params, rates, nb):
    step = (order.shape[0] + nb - 1) // nb
    partial = np.zeros(nb, dtype=np.float64)
    for b in prange(nb):
        z = np.empty(params[2].shape[1], dtype=np.float32)
        gz = np.empty(params[2].shape[1], dtype=np.float32)
        s = 0.0
        for t in range(b * step, min(order.shape[0], (b + 1) * step)):
            s += _svdpp_user(order[t], csr, mu, params, z, gz, rates)
        partial[b] = s
    return partial.sum()


@njit(nogil=True, parallel=True, fastmath=_FAST)
def _bpr_hogwild(row_of, indptr, indices, P, Q, bias, lr, reg, states):
    nb = states.shape[0]
    nnz = row_of.shape[0]
    step = (nnz + nb - 1) // nb
    lr32, rg32 = np.float32(lr), np.float32(reg)
    empty = np.empty(0, dtype=np.float64)
    for b in prange(nb):
        st = np.empty(1, dtype=np.uint64)
        st[0] = states[b]
        for _ in range(min(step, max(0, nnz - b * step))):
            p = _randint(st, 0, nnz)
            u = row_of[p]
            for _t in range(16):
                j = _sample_in(st, 0, empty, 0, Q.shape[0])
                if not row_contains(indices, indptr[u], indptr[u + 1], j):
                    _bpr_step(u, indices[p], j, P, Q, bias, lr32, rg32)
                    break
        states[b] = st[0]


class HogwildSVD(SVD):
    """:class:`SVD` with the previous epoch: Hogwild blocks, one per numba thread."""

    def _fit(self, dataset: Any, options: Any) -> None:
        gen = self._init_common(dataset)
        lr, reg = self.learning_rate, self.reg
        ratings = (
            dataset.user.astype(np.int32),
            dataset.item.astype(np.int32),
            dataset.value.astype(np.float32),
        )
        args = (self.global_mean_, self._biases_and_factors(), (lr,) * 4 + (reg,) * 4)
        for _ in range(self.epochs):
            order = gen.permutation(ratings[0].shape[0]).astype(np.int64)
            _svd_hogwild(ratings, order, *args, numba.get_num_threads())


class HogwildSVDpp(SVDpp):
    """:class:`SVDpp` with the previous epoch: Hogwild blocks of users, one per thread."""

    def _fit(self, dataset: Any, options: Any) -> None:
        gen = self._init_common(dataset)
        self.implicit_factors_ = self._normal_factors(gen, dataset.n_items)
        csr = group_by_user(dataset.user, dataset.item, dataset.value, dataset.n_users)
        lr, reg = self.learning_rate, self.reg
        for _ in range(self.epochs):
            _svdpp_hogwild(
                gen.permutation(dataset.n_users).astype(np.int64), csr, self.global_mean_,
                (*self._biases_and_factors(), self.implicit_factors_),
                (lr,) * 3 + (reg,) * 3, numba.get_num_threads(),
            )  # fmt: skip
        self.user_implicit_ = svdpp_implicit_sums(csr[0], csr[1], self.implicit_factors_)


class HogwildBPR(BPR):
    """:class:`BPR` with the previous epoch: Hogwild blocks of global samples, one per thread."""

    def _fit(self, dataset: Any, options: Any) -> None:
        x = self.seen_
        indptr, indices = x.indptr.astype(np.int64), x.indices.astype(np.int32)
        row_of = np.repeat(np.arange(x.shape[0], dtype=np.int32), np.diff(indptr))
        gen = np.random.default_rng(self.rng)
        shape_u, shape_i = (dataset.n_users, self.factors), (dataset.n_items, self.factors)
        self.user_factors_ = gen.normal(0.0, self.init_std, shape_u).astype(np.float32)
        self.item_factors_ = gen.normal(0.0, self.init_std, shape_i).astype(np.float32)
        self.item_bias_ = np.zeros(dataset.n_items, dtype=np.float32)
        states = seed_states(gen, numba.get_num_threads())
        for _ in range(self.epochs):
            _bpr_hogwild(
                row_of, indptr, indices, self.user_factors_, self.item_factors_,
                self.item_bias_, self.learning_rate, self.reg, states,
            )  # fmt: skip


# --------------------------------------------------------------------------------- runs
SVD_ARGS = {"factors": 100, "epochs": 20, "learning_rate": 0.005, "reg": 0.02, "rng": 0}
SVDPP_ARGS = {"factors": 20, "epochs": 20, "learning_rate": 0.007, "reg": 0.02, "rng": 0}
BPR_ARGS = {"factors": 64, "epochs": 50, "learning_rate": 0.05, "reg": 0.01, "rng": 0}
HYBRID_ARGS = {"factors": 32, "epochs": 20, "rng": 0}


Variant = tuple[str, Callable[[], Any], int]


def _variants(threads: int) -> dict[str, list[Variant]]:
    """Per model: (label, factory, numba threads); the first is the current default."""
    t = threads
    return {
        "SVD": [
            (f"DSGD, {t} threads", lambda: SVD(**SVD_ARGS), t),
            ("DSGD, 1 thread", lambda: SVD(**SVD_ARGS), 1),
            (f"previous Hogwild, {t} threads", lambda: HogwildSVD(**SVD_ARGS), t),
            ("previous sequential, 1 thread", lambda: HogwildSVD(**SVD_ARGS), 1),
        ],
        "SVD++": [
            ("sequential (now always)", lambda: SVDpp(**SVDPP_ARGS), t),
            (f"previous Hogwild, {t} threads", lambda: HogwildSVDpp(**SVDPP_ARGS), t),
        ],
        "BPR": [
            (f"DSGD, {t} threads", lambda: BPR(**BPR_ARGS), t),
            ("DSGD, 1 thread", lambda: BPR(**BPR_ARGS), 1),
            (f"previous Hogwild, {t} threads", lambda: HogwildBPR(**BPR_ARGS), t),
            ("previous sequential, 1 thread", lambda: HogwildBPR(**BPR_ARGS), 1),
            (f"implicit, {t} threads", lambda: _implicit_bpr(t), t),
        ],
        "HybridMF": [
            ("one chunk (now the default)", lambda: HybridMF(**HYBRID_ARGS), t),
            (f"Hogwild n_threads={t} (opt-in)", lambda: HybridMF(**HYBRID_ARGS, n_threads=t), t),
        ],
    }


def _implicit_bpr(threads: int) -> Any:
    import implicit

    return implicit.bpr.BayesianPersonalizedRanking(
        factors=64, iterations=BPR_ARGS["epochs"], learning_rate=0.05, regularization=0.01,
        num_threads=threads, random_state=0,
    )  # fmt: skip


def _is_recforge(model: Any) -> bool:
    return type(model).__module__.startswith(("recforge", "__main__"))


def _score(model: Any, split: Any, rating: bool) -> dict[str, float]:
    test = split.test
    if rating:
        est = model.predict(test["user"].to_numpy(), test["item"].to_numpy())
        return {"rmse": rating_metrics(est, test["rating"].to_numpy())["rmse"]}
    users = np.unique(test["user"].to_numpy())
    if _is_recforge(model):
        top = np.asarray(model.recommend(users, k=20).item_codes, dtype=np.int64)
    else:
        csr = csr_from_frame(split.train_full, split.n_users, split.n_items, binary=True)
        ids, _ = model.recommend(users, csr[users], N=20, filter_already_liked_items=True)
        top = np.asarray(ids, dtype=np.int64)
    m = ranking_metrics(top, users, test, split.n_items)
    return {"ndcg@10": m["ndcg@10"], "recall@20": m["recall@20"]}


def _timed_fit(make: Callable[[], Any], data: tuple[Any, Any], threads: int) -> tuple[Any, float]:
    """Fit on ``data`` = (recforge Dataset, CSR for peers); returns (model, seconds)."""
    numba.set_num_threads(threads)
    model = make()
    t0 = time.perf_counter()
    if _is_recforge(model):
        model.fit(data[0])
    else:
        model.fit(data[1], show_progress=False)
    return model, time.perf_counter() - t0


def _state(model: Any) -> list[np.ndarray]:
    names = ("user_factors_", "item_factors_", "feat_emb_", "user_feat_emb_", "item_bias_")
    return [getattr(model, n) for n in names if hasattr(model, n)]


def run_model(name: str, variants: list[Variant], data: tuple, split: Any, repeats: int) -> list:
    """Interleaved fits of every variant of one model; one result row per variant."""
    rating = name in ("SVD", "SVD++")
    runnable = []
    for label, make, threads in variants:
        try:
            small = make()
            small = small.set_params(epochs=1) if _is_recforge(small) else small
            _timed_fit(lambda m=small: m, data, threads)  # compile / warm up
            runnable.append((label, make, threads))
        except ImportError:
            print(f"{label}: not installed, skipped", file=sys.stderr)
    times: dict[str, list[float]] = {label: [] for label, _, _ in runnable}
    first: dict[str, Any] = {}
    for _ in range(repeats):
        for label, make, threads in runnable:
            model, seconds = _timed_fit(make, data, threads)
            times[label].append(seconds)
            first.setdefault(label, model)
    prev = {thr: statistics.median(times[lab]) for lab, _, thr in runnable if "previous" in lab}
    one = next((first[lab] for lab, _, thr in runnable if thr == 1 and "DSGD" in lab), None)
    rows = []
    for label, _, threads in runnable:
        fit_s = statistics.median(times[label])
        same = ""
        if one is not None and "DSGD" in label:
            pairs = zip(_state(first[label]), _state(one), strict=True)
            same = "yes" if all(np.array_equal(a, b) for a, b in pairs) else "NO"
        base = prev.get(threads)
        rows.append(
            {
                "model": name,
                "variant": label,
                **_score(first[label], split, rating),
                "fit s (median)": fit_s,
                "vs previous": base / fit_s if base else float("nan"),
                "same bits as 1 thread": same,
            }
        )
    return rows


def _load(name: str) -> pd.DataFrame:
    """MovieLens ratings, or ``ml-1m-seq`` (implicit: every listed item counts, value 1)."""
    if name != "ml-1m-seq":
        return load_ratings(name)
    lines = (DATA_DIR / "ml-1m-seq" / "sequences.txt").read_text().split("\n")
    seqs = [np.array(line.split(), dtype=np.int64) for line in lines if line.strip()]
    user = np.repeat(np.arange(len(seqs)), [len(q) for q in seqs])
    item = np.unique(np.concatenate(seqs), return_inverse=True)[1]
    return pd.DataFrame(
        {
            "user": user.astype(np.int32),
            "item": item.astype(np.int32),
            "rating": np.ones(user.size, dtype=np.float32),
            "timestamp": np.concatenate([np.arange(len(q)) for q in seqs]).astype(np.int64),
        }
    )


def run_dataset(name: str, threads: int, repeats: int, models: list[str]) -> list[dict]:
    """Every model's variants on one data set (ranking models only on ``ml-1m-seq``)."""
    frame = _load(name)
    split = per_user_split(frame, test_fraction=0.2, valid_fraction=0.2, seed=42)
    binary = per_user_split(binarize(frame), test_fraction=0.2, valid_fraction=0.2, seed=42)
    explicit = (to_dataset(split.train_full, split.n_users, split.n_items), None)
    implicit_data = (
        to_dataset(binary.train_full, binary.n_users, binary.n_items, implicit=True),
        csr_from_frame(binary.train_full, binary.n_users, binary.n_items, binary=True),
    )
    rows: list[dict] = []
    for model, variants in _variants(threads).items():
        if model not in models or (name == "ml-1m-seq" and model in ("SVD", "SVD++")):
            continue
        rating = model in ("SVD", "SVD++")
        data, sp = (explicit, split) if rating else (implicit_data, binary)
        rows += [{"data": name, **r} for r in run_model(model, variants, data, sp, repeats)]
        print(f"{name}: {model} done", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-latest-small"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["SVD", "SVD++", "BPR", "HybridMF"])
    parser.add_argument("--bpr-epochs", type=int, default=50)
    args = parser.parse_args()
    BPR_ARGS["epochs"] = args.bpr_epochs
    rows: list[dict] = []
    for name in args.datasets:
        rows += run_dataset(name, args.threads, args.repeats, args.models)
    print(environment())
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
