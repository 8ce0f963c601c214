"""Top-N neighbourhood and linear models: recforge vs implicit (and LensKit when installed).

For each data set (ML-100K and the MovieLens latest-small), interactions are binarised and split
per user at random, 80/20; 20 % of each user's training part is carved out for validation.
Every model is tuned on the validation carve-out over the same small grid (best NDCG@10),
refitted on the full training part and evaluated on the test part with full ranking
(training items excluded): NDCG@10, Recall@20, MAP@10, coverage@10. Fit times are medians of
several fits of the chosen configuration; ratios are against implicit's ItemItem models.

Run from the repository root::

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/bench_topn_neighbourhood.py \
        [--datasets ml-100k ml-latest-small] [--repeats 3] [--skip-slim]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    HoldoutSplit,
    binarize,
    csr_from_frame,
    environment,
    grid_search,
    load_ratings,
    markdown_table,
    measure,
    per_user_split,
    ranking_metrics,
    to_dataset,
)
from recforge.models.graph import RP3beta
from recforge.models.knn import ItemKNN
from recforge.models.linear import EASE, SLIM

THREADS = 2
KNN_GRID = [{"n_neighbors": k} for k in (20, 50, 100, 200)]


class Candidate:
    """A library's model with its grid; ``fit(train_frame) -> recommend(users, k) -> codes``."""

    def __init__(
        self,
        name: str,
        grid: list[dict[str, Any]],
        build: Callable[[dict[str, Any]], Any],
        kind: str,
    ) -> None:
        self.name, self.grid, self.build, self.kind = name, grid, build, kind

    def prepare(self, train: Any, split: HoldoutSplit) -> Any:
        """The library's input (built outside the timed fit)."""
        if self.kind == "recforge":
            return to_dataset(train, split.n_users, split.n_items, implicit=True)
        return csr_from_frame(train, split.n_users, split.n_items, binary=True)

    def fit(self, params: dict[str, Any], data: Any) -> Any:
        model = self.build(params)
        if self.kind == "recforge":
            model.fit(data)
        else:
            model.fit(data, show_progress=False)
        return model

    def recommend(
        self, model: Any, users: np.ndarray, train: Any, split: HoldoutSplit, k: int
    ) -> np.ndarray:
        if self.kind == "recforge":
            return np.asarray(model.recommend(users, k=k).item_codes, dtype=np.int64)
        ui = csr_from_frame(train, split.n_users, split.n_items, binary=True)
        ids, _scores = model.recommend(users, ui[users], N=k, filter_already_liked_items=True)
        return np.asarray(ids, dtype=np.int64)


def candidates(skip_slim: bool) -> list[Candidate]:
    out = [
        Candidate(
            "recforge ItemKNN cosine",
            KNN_GRID,
            lambda p: ItemKNN(binary=True, **p),
            "recforge",
        ),
        Candidate(
            "recforge ItemKNN bm25",
            KNN_GRID,
            lambda p: ItemKNN(binary=True, weighting="bm25", **p),
            "recforge",
        ),
        Candidate(
            "recforge RP3beta",
            [
                {"alpha": a, "beta": b, "n_neighbors": k}
                for a, b, k in itertools.product((0.5, 1.0), (0.2, 0.5), (50, 200))
            ],
            lambda p: RP3beta(binary=True, **p),
            "recforge",
        ),
        Candidate(
            "recforge EASE",
            [{"reg": r} for r in (50.0, 100.0, 250.0, 500.0, 1000.0)],
            lambda p: EASE(binary=True, **p),
            "recforge",
        ),
    ]
    if not skip_slim:
        out.append(
            Candidate(
                "recforge SLIM",
                [{"reg": r, "l1_ratio": 0.1, "n_neighbors": 100} for r in (1e-3, 1e-2)],
                lambda p: SLIM(binary=True, n_threads=THREADS, max_iter=50, **p),
                "recforge",
            )
        )
    try:
        import implicit.nearest_neighbours as inn

        out += [
            Candidate(
                "implicit CosineRecommender",
                [{"K": g["n_neighbors"]} for g in KNN_GRID],
                lambda p: inn.CosineRecommender(num_threads=THREADS, **p),
                "implicit",
            ),
            Candidate(
                "implicit BM25Recommender",
                [{"K": g["n_neighbors"]} for g in KNN_GRID],
                lambda p: inn.BM25Recommender(num_threads=THREADS, **p),
                "implicit",
            ),
        ]
    except ImportError:
        print("implicit is not installed: its peers are skipped", file=sys.stderr)
    return out


def _evaluate(
    cand: Candidate, model: Any, train: Any, truth: Any, split: HoldoutSplit
) -> dict[str, float]:
    users = np.unique(truth["user"].to_numpy()).astype(np.int64)
    top = cand.recommend(model, users, train, split, 20)
    return ranking_metrics(top, users, truth, split.n_items)


def run_dataset(name: str, repeats: int, skip_slim: bool) -> list[dict[str, Any]]:
    split = per_user_split(binarize(load_ratings(name)), seed=42)
    print(
        f"\n## {name}: {split.n_users} users, {split.n_items} items, train {len(split.train)}, "
        f"valid {len(split.valid)}, test {len(split.test)}",
        flush=True,
    )
    rows = []
    for cand in candidates(skip_slim):
        t_tune = time.perf_counter()
        data = cand.prepare(split.train, split)

        def valid_ndcg(params: dict[str, Any], cand: Candidate = cand, data: Any = data) -> float:
            model = cand.fit(params, data)
            return _evaluate(cand, model, split.train, split.valid, split)["ndcg@10"]

        best, best_ndcg = grid_search(cand.grid, valid_ndcg)
        tune_s = time.perf_counter() - t_tune
        data = cand.prepare(split.train_full, split)
        t0 = time.perf_counter()
        cand.fit(best, data)  # warm-up (JIT compile, caches)
        slow = time.perf_counter() - t0 > 20.0  # one timed fit is enough for slow models
        fit = measure(lambda c=cand, b=best, d=data: c.fit(b, d), repeats=1 if slow else repeats)
        model = fit.result
        t0 = time.perf_counter()
        metrics = _evaluate(cand, model, split.train_full, split.test, split)
        rec_s = time.perf_counter() - t0
        row = {
            "data": name,
            "model": cand.name,
            "best params": ", ".join(f"{k}={v}" for k, v in best.items()),
            "valid ndcg@10": best_ndcg,
            **metrics,
            "fit s (median)": fit.median_s,
            "fit peak MiB": fit.peak_mb,
            "recommend s (all test users)": rec_s,
            "tuning s": tune_s,
        }
        rows.append(row)
        print(markdown_table([row]), flush=True)
    ref = {r["model"]: r["fit s (median)"] for r in rows}
    for r in rows:
        for peer in ("implicit CosineRecommender", "implicit BM25Recommender"):
            if peer in ref:
                r[f"fit ratio vs {peer.split()[1]}"] = r["fit s (median)"] / ref[peer]
    return rows


def speed_same_k(name: str, repeats: int) -> list[dict[str, Any]]:
    """Fit time of recforge ItemKNN vs implicit's ItemItem models at the same K (interleaved)."""
    try:
        import implicit.nearest_neighbours as inn
    except ImportError:
        return []
    split = per_user_split(binarize(load_ratings(name)), seed=42)
    ds = to_dataset(split.train_full, split.n_users, split.n_items, implicit=True)
    ui = csr_from_frame(split.train_full, split.n_users, split.n_items, binary=True)
    rows = []
    for k in (50, 200):
        pairs = [
            (
                "cosine",
                lambda k=k: ItemKNN(n_neighbors=k, binary=True).fit(ds),
                lambda k=k: inn.CosineRecommender(K=k, num_threads=THREADS).fit(
                    ui, show_progress=False
                ),
            ),
            (
                "bm25",
                lambda k=k: ItemKNN(n_neighbors=k, binary=True, weighting="bm25").fit(ds),
                lambda k=k: inn.BM25Recommender(K=k, num_threads=THREADS).fit(
                    ui, show_progress=False
                ),
            ),
        ]
        for label, ours, theirs in pairs:
            ours()
            theirs()
            t_ours, t_theirs = [], []
            for _ in range(repeats):  # interleaved, so load changes hit both alike
                t_ours.append(measure(ours, repeats=1).median_s)
                t_theirs.append(measure(theirs, repeats=1).median_s)
            a, b = float(np.median(t_ours)), float(np.median(t_theirs))
            rows.append(
                {
                    "data": name,
                    "similarity": label,
                    "K": k,
                    "recforge ItemKNN fit s": a,
                    "implicit fit s": b,
                    "recforge / implicit": a / b,
                }
            )
            print(markdown_table(rows[-1:]), flush=True)
    return rows


def main() -> None:
    # implicit converts its weighted inputs itself; its notice about it is noise here
    warnings.filterwarnings("ignore", message="Method expects CSR input")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-latest-small"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-slim", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="only the same-K fit timing")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    speed: list[dict[str, Any]] = []
    for name in args.datasets:
        speed += speed_same_k(name, max(args.repeats, 5))
        if not args.speed_only:
            rows += run_dataset(name, args.repeats, args.skip_slim)
    print()
    print(environment())
    print(markdown_table(speed))
    if rows:
        print(markdown_table(rows))


if __name__ == "__main__":
    main()
