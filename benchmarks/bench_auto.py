"""``recforge auto`` against a hand-tuned grid on MovieLens: time, test accuracy, tuning overhead.

For each data set, on the same split (the one AutoRec picks: each user's newest 20 % as test,
the newest 10 % of the rest as validation):

* **auto**: :func:`recforge.pipeline.auto.auto` with the given wall-time budget (families,
  budget shares and search spaces chosen by its rules; TPE, pruning).
* **grid**: a small hand-written grid per family, of the kind a person would try first; every
  point is fitted on train and scored on validation (nDCG@10), the best point per family is
  refitted on train + validation and scored on test.

Both are evaluated by the same code (full-catalog top-10, training items excluded). Tuning
overhead per trial is the search wall time minus the time spent fitting and evaluating,
divided by the number of trials (Optuna sampling, pruning, journal writes, bookkeeping).

Usage::

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/bench_auto.py --budget 5m
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from _common import environment, load_ratings, markdown_table
from recforge.data import Dataset
from recforge.evaluation import EvaluationProtocol, evaluate_model
from recforge.pipeline.auto import auto, plan
from recforge.pipeline.config import parse_duration
from recforge.pipeline.tuning import make_model, validation_score
from recforge.split import split_by_name

GRID: dict[str, list[dict[str, Any]]] = {
    "itemknn": [{"n_neighbors": n} for n in (20, 50, 100, 200)],
    "rp3beta": [{"alpha": a, "beta": b} for a in (0.5, 1.0) for b in (0.3, 0.6)],
    "als": [{"factors": f, "reg": r} for f in (64, 128) for r in (0.01, 0.1)],
    "ease": [{"reg": r, "precision": "float32"} for r in (100.0, 500.0, 2000.0)],
}


def _dataset(name: str) -> Dataset:
    frame = load_ratings(name)
    return Dataset.from_frame(
        frame, user="user_id", item="item_id", value="rating", time="timestamp", name=name
    )


def grid_search(ds: Dataset, budget_s: float, seed: int) -> dict[str, Any]:
    """Best-on-validation point of every family's grid, then its test score."""
    spec = plan(ds, budget_s).split
    split = split_by_name(ds, spec)
    assert split.valid is not None
    full = split.train.concat(split.valid)
    families = [f for f in GRID if f != "ease" or "ease" in plan(ds, budget_s).families]
    t0 = time.perf_counter()
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    n_fits = 0
    for fam in families:
        for params in GRID[fam]:
            model = make_model(fam, params, seed).fit(split.train)
            n_fits += 1
            score = validation_score(model, split.train, split.valid, "ndcg", 10, max_users=2000)
            if fam not in best or score > best[fam][0]:
                best[fam] = (score, params)
    tuned = {fam: make_model(fam, p, seed).fit(full) for fam, (_, p) in best.items()}
    protocol = EvaluationProtocol(metrics=("ndcg",), ks=(10,))
    means = pd.Series(
        {
            fam: evaluate_model(model, full, split.test, protocol, label=fam).value("ndcg", 10)
            for fam, model in tuned.items()
        }
    )
    winner = str(means.idxmax())
    return {
        "wall_s": time.perf_counter() - t0,
        "winner": winner,
        "params": best[winner][1],
        "ndcg@10": float(means.max()),
        "n_fits": n_fits,
        "per_family": {str(k): float(v) for k, v in means.items()},
    }


def auto_run(ds: Dataset, budget_s: float, seed: int, out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = auto(ds, budget_s, output=out, seed=seed, progress=False)
    wall = time.perf_counter() - t0
    doc = json.loads((out / "metrics.json").read_text())
    n_trials = n_pruned = 0
    overhead_total = 0.0
    for label, info in doc["models"].items():
        path = out / "tuning" / label / "trials.csv"
        if path.is_file():
            trials = pd.read_csv(path)
            n_trials += len(trials)
            n_pruned += int((trials["state"] == "PRUNED").sum())
            # search wall time minus fit and evaluation time, over all trials of the family
            overhead_total += info["tuning"]["overhead_per_trial_s"] * len(trials)
    return {
        "wall_s": wall,
        "winner": result.best,
        "params": doc["models"][result.best]["params"],
        "ndcg@10": float(doc["models"][result.best]["test_score"]),
        "n_trials": n_trials,
        "n_pruned": n_pruned,
        "overhead_ms": 1000 * overhead_total / n_trials if n_trials else float("nan"),
        "per_family": {k: v["test_score"] for k, v in doc["models"].items()},
        "reason": result.reason,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["ml-latest-small", "ml-100k"])
    parser.add_argument("--budget", nargs="+", default=["5m"], help="e.g. 5m 15m")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    budgets = [parse_duration(b) for b in args.budget]
    rows = []
    details = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.data:
            try:
                ds = _dataset(name)
            except FileNotFoundError as exc:
                print(f"skipping {name}: {exc}", file=sys.stderr)
                continue
            grid = grid_search(ds, max(b or 0 for b in budgets), args.seed)
            print(f"{name} grid: {grid}", flush=True)
            rows.append(
                {
                    "data": name,
                    "method": "hand-tuned grid",
                    "budget": "-",
                    "wall s": grid["wall_s"],
                    "fits/trials": grid["n_fits"],
                    "winner": grid["winner"],
                    "test ndcg@10": grid["ndcg@10"],
                    "vs grid": 1.0,
                    "overhead ms/trial": "-",
                }
            )
            for budget in budgets:
                assert budget is not None
                res = auto_run(ds, budget, args.seed, Path(tmp) / f"{name}-{budget:.0f}")
                print(f"{name} auto {budget:.0f}s: {res}", flush=True)
                rows.append(
                    {
                        "data": name,
                        "method": "recforge auto",
                        "budget": f"{budget / 60:g} min",
                        "wall s": res["wall_s"],
                        "fits/trials": f"{res['n_trials']} ({res['n_pruned']} pruned)",
                        "winner": res["winner"],
                        "test ndcg@10": res["ndcg@10"],
                        "vs grid": res["ndcg@10"] / grid["ndcg@10"],
                        "overhead ms/trial": res["overhead_ms"],
                    }
                )
                details.append((name, budget, res, grid))
    print()
    print(environment())
    print()
    print(markdown_table(rows))
    print()
    for name, budget, res, grid in details:
        fam = ", ".join(f"{k} {v:.4f}" for k, v in res["per_family"].items())
        gfam = ", ".join(f"{k} {v:.4f}" for k, v in grid["per_family"].items())
        print(f"- {name}, {budget / 60:g} min: auto per family: {fam}; grid per family: {gfam}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
