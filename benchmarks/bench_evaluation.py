"""Full-ranking evaluation: recforge ``evaluate`` vs ``implicit.evaluation.ranking_metrics_at_k``.

Both evaluators score the *same* model (an implicit ALS fitted once; recforge sees its factors
through a small adapter model) on the same per-user 80/20 split, ranking the whole catalogue
with training items excluded, top 10. Reported: median wall time of the whole evaluation call
over several runs, the ratio, and nDCG@10 / MAP@10 from both (their definitions agree: binary
gains, IDCG and the MAP normaliser over ``min(k, n_relevant)``). implicit's "precision" divides by
``min(k, n_relevant)`` and its AUC is computed within the top-K list, so those are not compared.

Run::

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/bench_evaluation.py [--repeats 5]

Needs the ``bench`` extra (implicit) and the MovieLens copies in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import scipy.sparse as sp

from _common import DATA_DIR, environment, load_ratings, markdown_table, measure
from recforge.data import Dataset
from recforge.evaluation import evaluate
from recforge.models.base import Recommender, TrainingOptions, param
from recforge.split import random_split


class FactorScores(Recommender):
    """Scores ``user_factors @ item_factors.T`` of an already trained factor model."""

    name: ClassVar[str] = "implicit-als"

    user_factors: np.ndarray | None = param(
        default=None, convert=np.asarray, doc="The peer's user factors."
    )
    item_factors: np.ndarray | None = param(
        default=None, convert=np.asarray, doc="The peer's item factors."
    )

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        self.user_factors_ = np.ascontiguousarray(self.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(self.item_factors, dtype=np.float32)

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors_[user_idx] @ self.item_factors_.T, dtype=np.float32)


def _int32_csr(matrix: Any) -> sp.csr_matrix:
    """CSR with int32 index arrays (implicit's Cython evaluator requires them)."""
    m = sp.csr_matrix(matrix, dtype=np.float32)
    m.indptr = m.indptr.astype(np.int32)
    m.indices = m.indices.astype(np.int32)
    return m


def run(name: str, repeats: int, threads: int) -> list[dict[str, Any]]:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k

    frame = load_ratings(name)
    n_users, n_items = int(frame["user"].max()) + 1, int(frame["item"].max()) + 1
    from _common import to_dataset

    ds = to_dataset(frame, n_users, n_items, implicit=True)
    split = random_split(ds, 0.2, per_user=True, rng=0)
    train = _int32_csr(split.train.matrix(binary=True))
    test = _int32_csr(split.test.matrix(binary=True))

    als = AlternatingLeastSquares(
        factors=64, iterations=15, regularization=0.01, random_state=0, num_threads=threads
    )
    als.fit(train, show_progress=False)
    model = FactorScores(als.user_factors, als.item_factors)

    def ours(n_bootstrap: int) -> dict[str, float]:
        result = evaluate(model, split, metrics=["ndcg", "map"], k=10, n_bootstrap=n_bootstrap)
        table = result.table(k=10)
        return {
            "ndcg": float(table.loc["implicit-als", "ndcg@10"]),
            "map": float(table.loc["implicit-als", "map@10"]),
        }

    def peer() -> dict[str, float]:
        got = ranking_metrics_at_k(als, train, test, K=10, show_progress=False, num_threads=threads)
        return {"ndcg": float(got["ndcg"]), "map": float(got["map"])}

    m_peer = measure(peer, repeats=repeats, warmup=1)
    m_ours = measure(lambda: ours(0), repeats=repeats, warmup=1)
    m_boot = measure(lambda: ours(1000), repeats=repeats, warmup=1)
    base = m_peer.median_s
    rows = []
    for label, m in (
        ("implicit ranking_metrics_at_k", m_peer),
        ("recforge evaluate (no CI)", m_ours),
        ("recforge evaluate (+1000 bootstrap CI)", m_boot),
    ):
        rows.append(
            {
                "data": name,
                "evaluator": label,
                "median s": m.median_s,
                "vs implicit": m.median_s / base,
                "ndcg@10": m.result["ndcg"],
                "map@10": m.result["map"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=int(os.environ["NUMBA_NUM_THREADS"]))
    parser.add_argument("--data", nargs="+", default=["ml-100k", "ml-latest-small"])
    args = parser.parse_args()
    if not DATA_DIR.is_dir():
        sys.exit(f"MovieLens copies not found at {DATA_DIR}")
    rows: list[dict[str, Any]] = []
    for name in args.data:
        rows += run(name, args.repeats, args.threads)
    print(environment())
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
