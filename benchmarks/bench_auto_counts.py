"""``recforge auto`` on heavy-tailed play counts against EASE and implicit's ALS tuned on grids.

The data are synthetic: users and items with latent tastes and Zipf popularity
(:func:`recforge.data.synthetic_data`), each (user, item) pair given a play count with a heavy
tail (log-normal with a per-user scale, rounded up: most pairs are played once or twice, a few
tens of thousands of times), the shape of music or video play logs. ``auto`` has never seen it.

On one split (the one ``auto`` picks for data without time: 20 % of each user's items to the
test, 10 % of the rest to validation), every method is scored by the same engine (full-catalogue
NDCG@10, training items excluded, relevance = presence in the test part):

* **recforge auto** with the given budget (it must tell the counts from ratings and choose the
  weighting itself);
* **EASE grid**: ``reg`` in 100/500/2000, on presence (``binary=True``) and on ``log1p`` counts;
* **implicit ALS grid** (implicit 0.7, 64 factors, 15 iterations): ``regularization`` 0.01/0.1/1,
  ``alpha`` 1/10/40, on BM25-weighted and on ``log1p`` counts; its factors are wrapped with
  :meth:`recforge.models.ALS.from_factors` so that the engine scores them like any model.

Each grid picks its point on validation, refits on train + validation and is scored on test.

Usage::

    NUMBA_NUM_THREADS=2 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_auto_counts.py --budget 5m
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _common import environment, markdown_table
from bench_auto import auto_run
from recforge.data import Dataset, synthetic_data
from recforge.evaluation import EvaluationProtocol, evaluate_model
from recforge.models.als import ALS
from recforge.models.base import Recommender
from recforge.models.linear import EASE
from recforge.pipeline.auto import plan
from recforge.pipeline.config import parse_duration
from recforge.pipeline.tuning import validation_score
from recforge.split import split_by_name

PROTOCOL = EvaluationProtocol(metrics=("ndcg",), ks=(10,))


def play_counts(n_users: int, n_items: int, n_interactions: int, seed: int) -> Dataset:
    """Synthetic play counts: latent-taste pairs, log-normal counts with a per-user scale."""
    data = synthetic_data(
        n_users=n_users, n_items=n_items, n_interactions=n_interactions, rng=seed, implicit=True
    )
    ds = data.dataset
    gen = np.random.default_rng(seed + 1)
    user_scale = gen.normal(0.5, 1.0, ds.n_users)
    counts = np.ceil(np.exp(gen.normal(user_scale[ds.user], 1.6))).astype(np.float32)
    frame = pd.DataFrame(
        {"user": ds.users.ids_of(ds.user), "item": ds.items.ids_of(ds.item), "plays": counts}
    )
    return Dataset.from_frame(frame, value="plays", name="synthetic play counts")


def _log_values(ds: Dataset) -> Dataset:
    return ds.with_interactions(ds.user, ds.item, np.log1p(ds.value), ds.time)


def _best(candidates: list[tuple[float, Any]]) -> Any:
    return max(candidates, key=lambda c: c[0])[1]


def ease_grid(train: Dataset, valid: Dataset, full: Dataset) -> tuple[Recommender, Any, float]:
    t0 = time.perf_counter()
    scored = []
    for reg in (100.0, 500.0, 2000.0):
        for values in ("presence", "log1p"):
            data = train if values == "presence" else _log_values(train)
            model = EASE(reg=reg, binary=values == "presence", precision="float32").fit(data)
            score = validation_score(model, train, valid, "ndcg", 10, max_users=2000)
            scored.append((score, (reg, values)))
    reg, values = _best(scored)
    data = full if values == "presence" else _log_values(full)
    model = EASE(reg=reg, binary=values == "presence", precision="float32").fit(data)
    return model, {"reg": reg, "values": values}, time.perf_counter() - t0


def _implicit_als(ds: Dataset, reg: float, alpha: float, weighting: str) -> ALS:
    import implicit
    from implicit.nearest_neighbours import bm25_weight

    x = ds.matrix(dtype=np.float32)
    x = bm25_weight(x, K1=100, B=0.8) if weighting == "bm25" else x.copy()
    if weighting == "log1p":
        x.data = np.log1p(x.data)
    model = implicit.als.AlternatingLeastSquares(
        factors=64, iterations=15, regularization=reg, alpha=alpha, random_state=0
    )
    model.fit(x.tocsr().astype(np.float32), show_progress=False)
    return ALS.from_factors(
        ds, np.asarray(model.user_factors), np.asarray(model.item_factors), reg=reg, alpha=alpha
    )


def implicit_grid(train: Dataset, valid: Dataset, full: Dataset) -> tuple[Recommender, Any, float]:
    t0 = time.perf_counter()
    scored = []
    for reg in (0.01, 0.1, 1.0):
        for alpha in (1.0, 10.0, 40.0):
            for weighting in ("bm25", "log1p"):
                model = _implicit_als(train, reg, alpha, weighting)
                score = validation_score(model, train, valid, "ndcg", 10, max_users=2000)
                scored.append((score, (reg, alpha, weighting)))
    reg, alpha, weighting = _best(scored)
    model = _implicit_als(full, reg, alpha, weighting)
    chosen = {"reg": reg, "alpha": alpha, "weighting": weighting}
    return model, chosen, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=8000)
    parser.add_argument("--interactions", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    budget = parse_duration(args.budget)
    assert budget is not None
    ds = play_counts(args.users, args.items, args.interactions, args.seed)
    print(ds, ds.feedback, flush=True)
    split = split_by_name(ds, plan(ds, budget, estimate=lambda f, s: _no_probe()).split)
    assert split.valid is not None
    full = split.train.concat(split.valid)
    rows = []
    for label, search in (("EASE grid", ease_grid), ("implicit ALS grid", implicit_grid)):
        model, params, wall = search(split.train, split.valid, full)
        score = evaluate_model(model, full, split.test, PROTOCOL, label=label).value("ndcg", 10)
        rows.append({"method": label, "chosen": params, "wall s": wall, "test ndcg@10": score})
        print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        res = auto_run(ds, budget, args.seed, Path(tmp) / "auto")
    rows.append(
        {
            "method": f"recforge auto ({args.budget})",
            "chosen": f"{res['winner']} {res['params']}",
            "wall s": res["wall_s"],
            "test ndcg@10": res["ndcg@10"],
        }
    )
    print(rows[-1], flush=True)
    best_peer = max(r["test ndcg@10"] for r in rows[:-1])
    for row in rows:
        row["vs best grid"] = row["test ndcg@10"] / best_peer
    print()
    print(environment())
    print()
    print(markdown_table(rows))
    print()
    fam = ", ".join(f"{k} {v:.4f}" for k, v in res["per_family"].items())
    print(f"auto per family (test ndcg@10): {fam}")
    print(f"auto's reasoning: {res['reason']}")
    return 0


def _no_probe() -> Any:
    from recforge.pipeline._probe import FitEstimate

    return FitEstimate(0.0, 0.0)


if __name__ == "__main__":
    raise SystemExit(main())
