"""Rating-prediction kNN: recforge ItemKNN/UserKNN vs Surprise's KNNBasic/KNNWithMeans/KNNBaseline.

ML-100K, 5-fold cross-validation (the same folds for both libraries, cut as Surprise's KFold
does), same k (``max_k``), ``min_k`` and similarity. recforge keeps every neighbour
(``n_neighbors`` = number of entities) so its rule is exactly Surprise's; a pruned variant
(``n_neighbors=100``) is listed too. Reports median RMSE/MAE and median fit and predict times
over the folds, and recforge/Surprise time ratios.

Run from the repository root::

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/bench_rating_knn.py [--folds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import environment, kfold, load_ratings, markdown_table, rating_metrics, to_dataset
from recforge.models.knn import ItemKNN, UserKNN

RULES = {"plain": "KNNBasic", "mean_centered": "KNNWithMeans", "baseline": "KNNBaseline"}
#: (label, user_based, recforge similarity, recforge norms, surprise sim name)
SIMS = [
    ("user pearson", True, "pearson", "full", "pearson"),
    ("item cosine", False, "cosine", "common", "cosine"),
]


def _surprise_run(
    train: Any, test: Any, rule: str, user_based: bool, sim: str, k: int, min_k: int
) -> tuple[float, float, np.ndarray]:
    import surprise

    reader = surprise.Reader(rating_scale=(1, 5))
    data = surprise.Dataset.load_from_df(train[["user", "item", "rating"]], reader)
    trainset = data.build_full_trainset()
    algo_cls = getattr(surprise, RULES[rule])
    algo = algo_cls(
        k=k, min_k=min_k, sim_options={"name": sim, "user_based": user_based}, verbose=False
    )
    t0 = time.perf_counter()
    algo.fit(trainset)
    fit_s = time.perf_counter() - t0
    testset = list(
        zip(test["user"].tolist(), test["item"].tolist(), test["rating"].tolist(), strict=True)
    )
    t0 = time.perf_counter()
    preds = algo.test(testset)
    pred_s = time.perf_counter() - t0
    return fit_s, pred_s, np.array([p.est for p in preds])


def _recforge_run(
    train: Any,
    test: Any,
    n_users: int,
    n_items: int,
    rule: str,
    user_based: bool,
    sim: str,
    norms: str,
    k: int,
    min_k: int,
    n_neighbors: int | None,
) -> tuple[float, float, np.ndarray]:
    ds = to_dataset(train, n_users, n_items)
    cls = UserKNN if user_based else ItemKNN
    full = n_users if user_based else n_items
    model = cls(
        n_neighbors=full if n_neighbors is None else n_neighbors,
        similarity=sim,
        norms=norms,
        prediction=rule,
        max_k=k,
        min_k=min_k,
    )
    t0 = time.perf_counter()
    model.fit(ds)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    est = model.predict(test["user"].to_numpy(), test["item"].to_numpy())
    pred_s = time.perf_counter() - t0
    return fit_s, pred_s, est


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--min-k", type=int, default=1)
    args = parser.parse_args()

    frame = load_ratings("ml-100k")
    n_users, n_items = int(frame["user"].max()) + 1, int(frame["item"].max()) + 1
    folds = kfold(frame, args.folds, seed=42)
    # warm the JIT once (compile time is not fit time)
    _recforge_run(folds[0][0], folds[0][1][:10], n_users, n_items, "plain", True, "pearson",
                  "full", args.k, args.min_k, 50)  # fmt: skip
    rows: list[dict[str, Any]] = []
    for label, user_based, rf_sim, norms, sp_sim in SIMS:
        for rule, sname in RULES.items():
            res: dict[str, list[Any]] = {}
            for train, test in folds:
                truth = test["rating"].to_numpy()
                runs = {
                    f"surprise {sname}": _surprise_run(
                        train, test, rule, user_based, sp_sim, args.k, args.min_k
                    ),
                    "recforge (all neighbours)": _recforge_run(
                        train, test, n_users, n_items, rule, user_based, rf_sim, norms,
                        args.k, args.min_k, None,
                    ),
                    "recforge (n_neighbors=100)": _recforge_run(
                        train, test, n_users, n_items, rule, user_based, rf_sim, norms,
                        args.k, args.min_k, 100,
                    ),
                }  # fmt: skip
                for name, (fit_s, pred_s, est) in runs.items():
                    m = rating_metrics(est, truth)
                    res.setdefault(name, []).append((m["rmse"], m["mae"], fit_s, pred_s))
            base = res[f"surprise {sname}"]
            base_fit = statistics.median(r[2] for r in base)
            base_pred = statistics.median(r[3] for r in base)
            for name, vals in res.items():
                fit_med = statistics.median(r[2] for r in vals)
                pred_med = statistics.median(r[3] for r in vals)
                rows.append(
                    {
                        "sim": label,
                        "rule": sname,
                        "library": name,
                        "RMSE": statistics.median(r[0] for r in vals),
                        "MAE": statistics.median(r[1] for r in vals),
                        "fit s": fit_med,
                        "predict s": pred_med,
                        "fit ratio vs surprise": fit_med / base_fit,
                        "predict ratio vs surprise": pred_med / base_pred,
                    }
                )
            print(markdown_table(rows[-3:]), flush=True)
    print()
    print(f"ML-100K, {args.folds}-fold CV, k={args.k}, min_k={args.min_k}; medians over folds")
    print(environment())
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
