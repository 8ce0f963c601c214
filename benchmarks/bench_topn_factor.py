"""Top-N implicit factor models: recforge ALS / BPR vs implicit's ALS / BPR.

Protocol, identical for both libraries and run side by side in one process:

1. MovieLens ratings binarised (every rating is an interaction), per-user random 80/20
   holdout, and inside the 80 % a per-user 20 % validation carve-out (``_common``).
2. Each model is tuned on the validation carve-out over the same small grid (NDCG@10 of
   models fitted on the remaining training part); the best setting is refitted on the full
   training part.
3. Full-ranking top-20 lists for every test user (training items excluded) through each
   library's own recommend call; NDCG@10, Recall@20, MAP@10 and catalog coverage@10.
4. Fit time: median of ``--repeats`` fits; recommend time: median of ``--repeats`` calls.

Equal settings: factors, iterations / epochs, threads and the grid are the same. implicit's
confidence is ``alpha_implicit * r`` while recforge's is ``1 + alpha * r``, so for binary data
recforge's ``alpha`` corresponds to implicit's ``alpha + 1`` (applied). implicit's BPR samples
negatives from the interaction list (popularity-proportional); recforge's BPR runs with
uniform negatives (its default) and, as a separate row, popularity negatives (beta = 1).

Run::

    .venv/bin/python benchmarks/bench_topn_factor.py [--datasets ml-100k ml-latest-small]
        [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
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

FACTORS = 64
ALS_ITERATIONS = 15
BPR_EPOCHS = 50
ALS_GRID = {"reg": [0.01, 0.1, 1.0], "alpha": [1.0, 10.0, 40.0]}
BPR_GRID = {"learning_rate": [0.01, 0.05, 0.1], "reg": [0.001, 0.01]}


class Runner:
    """Fits and ranks with one library's model for one hyperparameter setting."""

    def __init__(self, library: str, model: str, threads: int, variant: str = "") -> None:
        self.library = library
        self.model = model
        self.threads = threads
        self.variant = variant

    @property
    def label(self) -> str:
        return f"{self.library} {self.model}{self.variant}"

    def grid(self) -> list[dict[str, float]]:
        g = ALS_GRID if self.model == "ALS" else BPR_GRID
        return [dict(zip(g, v, strict=True)) for v in itertools.product(*g.values())]

    def make(self, params: dict[str, float]) -> Any:
        if self.library == "recforge":
            from recforge.models.als import ALS
            from recforge.models.bpr import BPR

            if self.model == "ALS":
                return ALS(factors=FACTORS, iterations=ALS_ITERATIONS, rng=0, **params)
            sampling = "popularity" if "popularity" in self.variant else "uniform"
            return BPR(
                factors=FACTORS,
                epochs=BPR_EPOCHS,
                neg_sampling=sampling,
                neg_beta=1.0,
                rng=0,
                **params,
            )
        import implicit

        if self.model == "ALS":
            return implicit.als.AlternatingLeastSquares(
                factors=FACTORS,
                iterations=ALS_ITERATIONS,
                regularization=params["reg"],
                alpha=params["alpha"] + 1.0,
                num_threads=self.threads,
                random_state=0,
            )
        return implicit.bpr.BayesianPersonalizedRanking(
            factors=FACTORS,
            iterations=BPR_EPOCHS,
            learning_rate=params["learning_rate"],
            regularization=params["reg"],
            num_threads=self.threads,
            random_state=0,
        )

    def fit(self, model: Any, data: Any) -> None:
        if self.library == "recforge":
            model.fit(data["dataset"])
        else:
            model.fit(data["csr"], show_progress=False)

    def recommend(self, model: Any, data: Any, users: np.ndarray, k: int) -> np.ndarray:
        if self.library == "recforge":
            return np.asarray(model.recommend(users, k=k).item_codes, dtype=np.int64)
        ids, _ = model.recommend(users, data["csr"][users], N=k, filter_already_liked_items=True)
        return np.asarray(ids, dtype=np.int64)


def _data(frame: Any, n_users: int, n_items: int) -> dict[str, Any]:
    return {
        "dataset": to_dataset(frame, n_users, n_items, implicit=True),
        "csr": csr_from_frame(frame, n_users, n_items, binary=True),
    }


def run_dataset(name: str, threads: int, repeats: int) -> list[dict[str, Any]]:
    import numba

    numba.set_num_threads(threads)
    frame = binarize(load_ratings(name))
    split = per_user_split(frame, test_fraction=0.2, valid_fraction=0.2, seed=42)
    nu, ni = split.n_users, split.n_items
    train, full = _data(split.train, nu, ni), _data(split.train_full, nu, ni)
    valid_users = np.unique(split.valid["user"].to_numpy()).astype(np.int64)
    test_users = np.unique(split.test["user"].to_numpy()).astype(np.int64)
    print(
        f"{name}: {len(frame)} interactions, {nu} users, {ni} items; "
        f"train {len(split.train_full)}, test {len(split.test)} ({test_users.size} users)",
        flush=True,
    )
    runners = [
        Runner("recforge", "ALS", threads),
        Runner("implicit", "ALS", threads),
        Runner("recforge", "BPR", threads),
        Runner("recforge", "BPR", threads, " (popularity negatives)"),
        Runner("implicit", "BPR", threads),
    ]
    # JIT warm-up so compile time is not counted
    for r in runners[:1] + runners[2:3]:
        m = r.make(r.grid()[0])
        m.set_params(**({"iterations": 1} if r.model == "ALS" else {"epochs": 1}))
        r.fit(m, train)
        r.recommend(m, train, valid_users[:5], 20)
    rows = []
    for r in runners:

        def valid_ndcg(params: dict[str, Any], r: Runner = r) -> float:
            m = r.make(params)
            r.fit(m, train)
            top = r.recommend(m, train, valid_users, 20)
            return ranking_metrics(top, valid_users, split.valid, ni)["ndcg@10"]

        params, valid_score = grid_search(r.grid(), valid_ndcg)
        holder: dict[str, Any] = {}

        def fit_once(
            r: Runner = r, params: dict[str, float] = params, holder: dict[str, Any] = holder
        ) -> None:
            m = r.make(params)
            r.fit(m, full)
            holder["model"] = m

        fit_m = measure(fit_once, repeats=repeats)
        model = holder["model"]
        rec_times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            top = r.recommend(model, full, test_users, 20)
            rec_times.append(time.perf_counter() - t0)
        metrics = ranking_metrics(top, test_users, split.test, ni)
        row = {
            "data": name,
            "model": r.label,
            "best params": ", ".join(f"{k}={v:g}" for k, v in params.items()),
            "valid ndcg@10": valid_score,
            **metrics,
            "fit s": fit_m.median_s,
            "recommend s": float(np.median(rec_times)),
            "fit peak MiB": fit_m.peak_mb,
        }
        print(row, flush=True)
        rows.append(row)
    # fit-time ratios implicit / recforge for the same family
    by_label = {r["model"]: r for r in rows}
    for row in rows:
        fam = "ALS" if "ALS" in row["model"] else "BPR"
        peer = by_label[f"implicit {fam}"]
        row["implicit fit / this fit"] = peer["fit s"] / row["fit s"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-latest-small"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(environment())
    print(
        f"factors={FACTORS}, ALS iterations={ALS_ITERATIONS} (CG, 3 steps), "
        f"BPR epochs={BPR_EPOCHS}, threads={args.threads}"
    )
    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        rows += run_dataset(name, args.threads, args.repeats)
    print()
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
