"""Rating prediction on MovieLens 100K, Surprise's protocol: recforge vs Surprise.

Five random folds (the same folds for every library), RMSE / MAE on each test fold, fit time
per fold. Models at Surprise's default hyperparameters:

* ``BiasedBaseline`` (reg_user=15, reg_item=10, 10 ALS sweeps) vs ``BaselineOnly`` (ALS)
* ``SVD`` (100 factors, 20 epochs, lr 0.005, reg 0.02) vs ``SVD``
* ``SVDpp`` (20 factors, 20 epochs, lr 0.007, reg 0.02) vs ``SVDpp``

recforge's SGD models run once with one numba thread (sequential, deterministic kernel) and
once with all threads given by ``--threads`` (Hogwild); Surprise is single-threaded.
Each fold is fitted with ``--seeds`` initialisation seeds (the same seeds for both libraries)
so RMSE differences are not one seed's luck. Reported: mean RMSE / MAE over folds and
seeds, median fit time over all fits, and the median over (fold, seed) pairs of the
fit-time ratio Surprise / recforge (each pair fitted back to back, so changes of machine
load affect both alike).

Run::

    .venv/bin/python benchmarks/bench_rating_mf.py [--folds 5] [--threads 2] [--seeds 3] [--svdpp-seeds 1]
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

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, kfold, load_ratings, markdown_table, rating_metrics


def _recforge_factory(name: str, seed: int) -> Callable[[], Any]:
    from recforge.models.bias import BiasedBaseline
    from recforge.models.mf import SVD, SVDpp

    return {
        "BiasedBaseline": lambda: BiasedBaseline(reg_user=15.0, reg_item=10.0, iterations=10),
        "SVD": lambda: SVD(factors=100, epochs=20, learning_rate=0.005, reg=0.02, rng=seed),
        "SVDpp": lambda: SVDpp(factors=20, epochs=20, learning_rate=0.007, reg=0.02, rng=seed),
    }[name]


def _surprise_factory(name: str, seed: int) -> Callable[[], Any]:
    import surprise

    return {
        "BiasedBaseline": lambda: surprise.BaselineOnly(verbose=False),
        "SVD": lambda: surprise.SVD(
            n_factors=100, n_epochs=20, lr_all=0.005, reg_all=0.02, random_state=seed
        ),
        "SVDpp": lambda: surprise.SVDpp(
            n_factors=20, n_epochs=20, lr_all=0.007, reg_all=0.02, random_state=seed
        ),
    }[name]


def _fit_recforge(make: Callable[[], Any], train: pd.DataFrame, test: pd.DataFrame) -> tuple:
    from recforge.data import Dataset

    ds = Dataset.from_frame(train, user="user", item="item", value="rating")
    model = make()
    t0 = time.perf_counter()
    model.fit(ds)
    fit_s = time.perf_counter() - t0
    est = model.predict(test["user"].to_numpy(), test["item"].to_numpy())
    return fit_s, rating_metrics(est, test["rating"].to_numpy())


def _fit_surprise(make: Callable[[], Any], train: pd.DataFrame, test: pd.DataFrame) -> tuple:
    import surprise

    reader = surprise.Reader(rating_scale=(1, 5))
    trainset = surprise.Dataset.load_from_df(
        train[["user", "item", "rating"]], reader
    ).build_full_trainset()
    algo = make()
    t0 = time.perf_counter()
    algo.fit(trainset)
    fit_s = time.perf_counter() - t0
    testset = list(
        zip(test["user"].tolist(), test["item"].tolist(), test["rating"].tolist(), strict=True)
    )
    est = np.array([p.est for p in algo.test(testset)])
    return fit_s, rating_metrics(est, test["rating"].to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seeds", type=int, default=3, help="initialisation seeds per fold (SGD models)"
    )
    parser.add_argument("--svdpp-seeds", type=int, default=1, help="seeds per fold for SVD++")
    parser.add_argument("--skip-surprise-svdpp", action="store_true")
    args = parser.parse_args()

    import numba

    frame = load_ratings("ml-100k")
    folds = kfold(frame[["user", "item", "rating"]], n_folds=args.folds, seed=42)
    print(environment())
    print(f"ML-100K: {len(frame)} ratings, {args.folds} folds")

    # JIT warm-up on a tiny fold so compile time is not counted in any fit
    small = folds[0][0].iloc[:2000]
    for name in ("SVD", "SVDpp"):
        for threads in (1, args.threads):
            numba.set_num_threads(threads)
            _fit_recforge(_recforge_factory(name, 0), small, small)

    rows: list[dict[str, Any]] = []
    for name in ("BiasedBaseline", "SVD", "SVDpp"):
        runs: list[tuple[str, Callable[[pd.DataFrame, pd.DataFrame], tuple]]] = []
        thread_set = [1] if name == "BiasedBaseline" else [1, args.threads]
        for threads in thread_set:
            label = f"recforge (threads={threads})"

            def run_rf(
                tr: pd.DataFrame, te: pd.DataFrame, seed: int, t: int = threads, n: str = name
            ) -> tuple:
                numba.set_num_threads(t)
                return _fit_recforge(_recforge_factory(n, seed), tr, te)

            runs.append((label, run_rf))
        if not (name == "SVDpp" and args.skip_surprise_svdpp):
            runs.append(
                (
                    "surprise",
                    lambda tr, te, seed, n=name: _fit_surprise(_surprise_factory(n, seed), tr, te),
                )
            )
        n_seeds = {"BiasedBaseline": 1, "SVD": args.seeds, "SVDpp": args.svdpp_seeds}[name]
        # paired runs: for every fold and seed all libraries fit back to back, so a change of
        # machine load hits them alike; the ratio is the median of the per-pair ratios
        per: dict[str, dict[str, list[float]]] = {
            label: {"t": [], "rmse": [], "mae": []} for label, _ in runs
        }
        for train, test in folds:
            for seed in range(n_seeds):
                for label, run in runs:
                    fit_s, m = run(train, test, seed)
                    per[label]["t"].append(fit_s)
                    per[label]["rmse"].append(m["rmse"])
                    per[label]["mae"].append(m["mae"])
        peer = per.get("surprise")
        for label, vals in per.items():
            ratio = (
                statistics.median(np.array(peer["t"]) / np.array(vals["t"]))
                if peer is not None and label != "surprise"
                else float("nan")
            )
            row = {
                "model": name,
                "library": label,
                "RMSE": float(np.mean(vals["rmse"])),
                # spread over seeds of the fold-averaged RMSE
                "RMSE sd (seeds)": float(
                    np.reshape(vals["rmse"], (len(folds), n_seeds)).mean(axis=0).std()
                )
                if n_seeds > 1
                else float("nan"),
                "MAE": float(np.mean(vals["mae"])),
                "fit s (median)": statistics.median(vals["t"]),
                "surprise fit / this fit": ratio,
            }
            rows.append(row)
            print(row, flush=True)
    print()
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
