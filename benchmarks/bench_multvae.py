"""Mult-VAE and Mult-DAE against EASE on MovieLens 100K and latest-small (top-N, implicit).

Same per-user random split for all (``per_user_split``: 20 % of each user's interactions to
the test, 20 % of the rest to validation), ratings binarised. EASE picks ``reg`` on
validation; each autoencoder trains on ``train`` with the validation NDCG@10 measured after
every epoch (the recforge evaluation engine), and is refitted on ``train_full`` for the
best epoch count. Test lists rank the full catalogue with training items excluded.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_multvae.py
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from _common import binarize, environment, load_ratings, markdown_table, per_user_split, to_dataset
from recforge.data import Dataset
from recforge.evaluation import EvaluationProtocol, evaluate_model
from recforge.models import Recommender
from recforge.models.linear import EASE
from recforge.models.vae import MultVAE

PROTOCOL = EvaluationProtocol(metrics=("ndcg", "recall"), ks=(10,))


def ndcg(model: Recommender, train: Dataset, test: Dataset) -> float:
    return evaluate_model(model, train, test, PROTOCOL).value("ndcg", 10)


def best_ease(train: Dataset, valid: Dataset) -> dict[str, Any]:
    scores = {r: ndcg(EASE(reg=r).fit(train), train, valid) for r in (100.0, 250.0, 500.0, 1000.0)}
    return {"reg": max(scores, key=scores.__getitem__)}


def best_epochs(params: dict[str, Any], train: Dataset, valid: Dataset) -> int:
    history: list[float] = []

    def callback(epoch: int, model: Recommender) -> bool:
        history.append(ndcg(model, train, valid))
        return epoch - max(range(len(history)), key=history.__getitem__) >= 10

    MultVAE(**params).fit(train, callback=callback)
    return max(range(len(history)), key=history.__getitem__) + 1


def run(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    split = per_user_split(binarize(load_ratings(name)), seed=42)
    n_u, n_i = split.n_users, split.n_items
    train, valid, full, test = (
        to_dataset(f, n_u, n_i, implicit=True)
        for f in (split.train, split.valid, split.train_full, split.test)
    )
    rows = []
    t0 = time.perf_counter()
    ease = EASE(**best_ease(train, valid)).fit(full)
    ease_ndcg = ndcg(ease, full, test)
    rows.append(
        {
            "data": name,
            "model": f"EASE reg={ease.reg:g}",
            "ndcg@10": ease_ndcg,
            "vs EASE": 1.0,
            "fit+tune s": time.perf_counter() - t0,
        }
    )
    for variant in ("vae", "dae"):
        t0 = time.perf_counter()
        params = {
            "variant": variant,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "anneal_steps": args.anneal_steps,
            "threads": args.threads,
            "rng": 0,
        }
        epochs = best_epochs(params, train, valid)
        model = MultVAE(**{**params, "epochs": epochs}).fit(full)
        value = ndcg(model, full, test)
        rows.append(
            {
                "data": name,
                "model": f"Mult-{variant.upper()} epochs={epochs}",
                "ndcg@10": value,
                "vs EASE": value / ease_ndcg,
                "fit+tune s": time.perf_counter() - t0,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", default=["ml-100k", "ml-latest-small"])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--anneal-steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(environment(), flush=True)
    rows = [row for name in args.data for row in run(name, args)]
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
