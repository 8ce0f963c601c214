"""MMR re-ranking: the vectorised kernel against a plain per-user reference, and the
accuracy / diversity trade-off it buys, measured by the evaluation engine.

1. **Correctness and speed** of :func:`recforge.models.rerank.mmr` against an independent
   textbook implementation (one user at a time, Python loops over the candidates) on the same
   candidate lists: the selections must be identical; reported are the median wall times and
   their ratio.
2. **Trade-off**: ``evaluate(..., reranker=)`` of ALS (similarity: its item vectors, and
   co-occurrence) and MostPopular (no item vectors: co-occurrence) at several ``λ``:
   NDCG@10, intra-list diversity@10, coverage@10 and the evaluation's wall time.

Run::

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/bench_rerank.py [--repeats 3]

Needs the MovieLens 100K copy in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import DATA_DIR, environment, load_ratings, markdown_table, measure, to_dataset
from recforge.evaluation import evaluate
from recforge.models.als import ALS
from recforge.models.popular import MostPopular
from recforge.models.rerank import RerankSpec, mmr
from recforge.split import random_split


def reference_mmr(
    codes: np.ndarray, scores: np.ndarray, vectors: np.ndarray, k: int, lam: float
) -> np.ndarray:
    """Carbonell & Goldstein's greedy MMR, one user and one candidate at a time."""
    out = np.full((codes.shape[0], k), -1, dtype=np.int64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
    for u in range(codes.shape[0]):
        s = scores[u].astype(np.float64)
        lo, hi = s.min(), s.max()
        rel = (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)
        picked: list[int] = []
        for _ in range(k):
            best, best_val = -1, -np.inf
            for j in range(codes.shape[1]):
                if j in picked:
                    continue
                sim = max(
                    (float(unit[codes[u, j]] @ unit[codes[u, p]]) for p in picked), default=0.0
                )
                val = lam * rel[j] - (1 - lam) * sim
                if val > best_val + 1e-9:
                    best, best_val = j, val
            picked.append(best)
        out[u] = picked
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (DATA_DIR / "ml-100k").is_dir():
        sys.exit("MovieLens 100K not found in ../shared/data")
    frame = load_ratings("ml-100k")
    data = to_dataset(
        frame, int(frame["user"].max()) + 1, int(frame["item"].max()) + 1, implicit=True
    )
    split = random_split(data, 0.2, per_user=True, rng=0)
    als = ALS(factors=64, rng=0).fit(split.train)
    pop = MostPopular().fit(split.train)
    print(environment())

    # 1. kernel vs reference on 200 users' top-50 candidates, k = 10, λ = 0.5
    users = np.arange(200)
    recs = als.recommend(als.users_.ids_of(users), k=50)
    vectors = np.asarray(als.item_vectors())
    fast = measure(
        lambda: mmr(recs.item_codes, recs.scores, vectors, 10, 0.5), repeats=args.repeats, warmup=1
    )
    slow = measure(
        lambda: reference_mmr(recs.item_codes, recs.scores, vectors, 10, 0.5), repeats=args.repeats
    )
    got = np.take_along_axis(recs.item_codes, np.asarray(slow.result), axis=1)
    same = bool(np.array_equal(fast.result[0], got))
    print(
        markdown_table(
            [
                {
                    "implementation": "reference (per user, Python loops)",
                    "median s": slow.median_s,
                    "ratio": 1.0,
                    "identical": "-",
                },
                {
                    "implementation": "recforge mmr (vectorised over users)",
                    "median s": fast.median_s,
                    "ratio": fast.median_s / slow.median_s,
                    "identical": str(same),
                },
            ]
        )
    )

    # 2. trade-off through the evaluation engine
    rows = []
    for label, model, sources in (
        ("als", als, ("vectors", "cooccurrence")),
        ("popular", pop, ("cooccurrence",)),
    ):
        settings: list[RerankSpec | None] = [None]
        settings += [RerankSpec(mmr=lam, on=src) for src in sources for lam in (0.7, 0.4)]
        for spec in settings:
            reranker = None if spec is None else spec.reranker(None)
            m = measure(
                lambda r=reranker, mm=model: evaluate(
                    mm,
                    split,
                    metrics=["ndcg", "diversity", "coverage"],
                    k=10,
                    fit=False,
                    n_bootstrap=0,
                    reranker=r,
                ),
                repeats=args.repeats,
            )
            t = m.result.table()
            rows.append(
                {
                    "model": label,
                    "rerank": "none" if spec is None else spec.label,
                    "ndcg@10": float(t["ndcg@10"].iloc[0]),
                    "diversity@10": float(t["diversity@10"].iloc[0]),
                    "coverage@10": float(t["coverage@10"].iloc[0]),
                    "median s": m.median_s,
                }
            )
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
