"""Vectorised top-K evaluation used by the pipeline (tuning objective and test metrics).

Every test user known to the model gets one top-``max(k)`` list; hits are found with one
sorted-key lookup over the whole batch, and per-user metrics at every cut-off are computed on
the resulting ``(n_users, K)`` hit matrix without a Python loop over users.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recforge.data import Dataset
from recforge.exceptions import ConfigError
from recforge.models.base import Recommender

__all__ = [
    "ACCURACY_METRICS",
    "BEYOND_METRICS",
    "EvalOutput",
    "bootstrap_interval",
    "evaluate_models",
    "user_segments",
]

#: per-user ranking metrics
ACCURACY_METRICS = ("ndcg", "recall", "precision", "map", "hit_rate", "mrr")
#: list-level metrics beyond accuracy (coverage is catalog-level, no per-user value)
BEYOND_METRICS = ("novelty", "popularity", "coverage")
ALL_METRICS = ACCURACY_METRICS + BEYOND_METRICS


def check_metrics(names: Sequence[str]) -> list[str]:
    """Validated metric names (lower case).

    Raises
    ------
    ConfigError
        Naming the unknown metric and the nearest known one.
    """
    import difflib

    out = []
    for name in names:
        key = str(name).lower().replace("-", "_").replace("@", "")
        if key not in ALL_METRICS:
            near = difflib.get_close_matches(key, ALL_METRICS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"unknown metric {name!r}{hint} (metrics: {', '.join(ALL_METRICS)})")
        out.append(key)
    return out


@dataclass
class EvalOutput:
    """Result of :func:`evaluate_models`.

    Attributes
    ----------
    per_user : pandas.DataFrame
        Long format: ``model, user, metric, k, value`` (user = internal code).
    catalog : pandas.DataFrame
        Catalog-level values: ``model, metric, k, value`` (coverage).
    recommended_popularity : dict
        Model -> train popularity of every recommended item at the largest cut-off.
    timings : pandas.DataFrame
        ``model, recommend_s``.
    """

    per_user: pd.DataFrame
    catalog: pd.DataFrame
    recommended_popularity: dict[str, np.ndarray] = field(default_factory=dict)
    timings: pd.DataFrame = field(default_factory=pd.DataFrame)


def _hits(
    rec_codes: np.ndarray, users: np.ndarray, test: Dataset, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(hits (n, K) bool, n_relevant (n,))`` of ranked item codes against test items."""
    row_of = np.full(test.n_users, -1, dtype=np.int64)
    row_of[users] = np.arange(users.size)
    rows = row_of[test.user]
    keep = rows >= 0
    keys = np.unique(rows[keep] * n_items + test.item[keep].astype(np.int64))
    n_rel = np.bincount(keys // n_items, minlength=users.size)
    query = np.arange(users.size, dtype=np.int64)[:, None] * n_items + rec_codes
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, max(keys.size - 1, 0))
    hits = (keys[pos] == query) & (rec_codes >= 0) if keys.size else np.zeros_like(query, bool)
    return hits, n_rel


def ranking_metrics(
    hits: np.ndarray, n_rel: np.ndarray, k: int, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-user accuracy metrics at cut-off ``k`` from a hit matrix.

    Parameters
    ----------
    hits
        ``(n_users, K)`` booleans, ``K >= k``: whether the item at each rank is relevant.
    n_rel
        Relevant (test) items per user, all positive.
    k
        Cut-off.
    names
        Metrics among :data:`ACCURACY_METRICS`.
    """
    h = hits[:, :k].astype(np.float64)
    n_hit = h.sum(axis=1)
    ranks = np.arange(1, h.shape[1] + 1, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    rel_k = np.minimum(n_rel, k).astype(np.float64)
    for name in names:
        if name == "precision":
            out[name] = n_hit / k
        elif name == "recall":
            out[name] = n_hit / n_rel
        elif name == "hit_rate":
            out[name] = (n_hit > 0).astype(np.float64)
        elif name == "ndcg":
            disc = 1.0 / np.log2(ranks + 1.0)
            ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
            out[name] = (h * disc).sum(axis=1) / ideal[rel_k.astype(np.int64)]
        elif name == "map":
            prec_at = np.cumsum(h, axis=1) / ranks
            out[name] = (prec_at * h).sum(axis=1) / rel_k
        elif name == "mrr":
            first = np.where(h.any(axis=1), h.argmax(axis=1) + 1.0, np.inf)
            out[name] = 1.0 / first
    return out


def evaluate_models(
    models: Mapping[str, Recommender],
    train: Dataset,
    test: Dataset,
    *,
    metrics: Sequence[str],
    ks: Sequence[int],
    max_users: int | None = None,
    seed: int = 0,
) -> EvalOutput:
    """Top-K metrics of fitted models on held-out interactions.

    Test users that are unknown to training are skipped (they cannot be scored by
    collaborative models; cold-start splits evaluate content models separately).

    Parameters
    ----------
    models
        Label -> fitted model (trained on ``train``; indices shared with ``test``).
    train
        Training data (item popularity for novelty/popularity).
    test
        Held-out interactions; every one counts as relevant.
    metrics
        Names among :data:`ALL_METRICS`.
    ks
        Cut-offs.
    max_users
        Evaluate a seeded random sample of at most this many users.
    seed
        Seed of that sample.

    Returns
    -------
    EvalOutput
    """
    names = check_metrics(metrics)
    ks = sorted({int(k) for k in ks})
    kmax = ks[-1]
    train_counts = train.user_counts()
    users = np.unique(test.user)
    users = users[
        (users < train_counts.size) & (train_counts[np.minimum(users, train_counts.size - 1)] > 0)
    ]
    if users.size == 0:
        raise ConfigError("no test user has training interactions; cannot evaluate")
    if max_users is not None and users.size > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    user_ids = train.users.ids_of(users)
    pop = train.item_counts().astype(np.float64)
    n_train_users = max(int((train_counts > 0).sum()), 1)
    acc = [m for m in names if m in ACCURACY_METRICS]
    frames: list[pd.DataFrame] = []
    catalog_rows: list[dict[str, object]] = []
    rec_pop: dict[str, np.ndarray] = {}
    timings = []
    for label, model in models.items():
        t0 = time.perf_counter()
        recs = model.recommend(user_ids, k=kmax, exclude_seen=True)
        timings.append({"model": label, "recommend_s": time.perf_counter() - t0})
        codes = recs.item_codes.astype(np.int64)
        if codes.shape[1] < kmax:
            codes = np.hstack([codes, np.full((codes.shape[0], kmax - codes.shape[1]), -1)])
        codes = np.where(codes < test.n_items, codes, -1)
        hits, n_rel = _hits(codes, users, test, test.n_items)
        valid = codes >= 0
        item_pop = np.where(valid, pop[np.maximum(codes, 0)], np.nan)
        rec_pop[label] = item_pop[valid].astype(np.float32)
        for k in ks:
            values = ranking_metrics(hits, n_rel, k, acc)
            v = valid[:, :k]
            n_valid = np.maximum(v.sum(axis=1), 1)
            if "novelty" in names:
                info = -np.log2(np.maximum(item_pop[:, :k], 1.0) / n_train_users)
                values["novelty"] = np.where(v, info, 0.0).sum(axis=1) / n_valid
            if "popularity" in names:
                values["popularity"] = np.where(v, item_pop[:, :k], 0.0).sum(axis=1) / n_valid
            for metric, arr in values.items():
                frames.append(
                    pd.DataFrame(
                        {"model": label, "user": users, "metric": metric, "k": k, "value": arr}
                    )
                )
            if "coverage" in names:
                distinct = np.unique(codes[:, :k][v]).size
                catalog_rows.append(
                    {
                        "model": label,
                        "metric": "coverage",
                        "k": k,
                        "value": distinct / max(train.n_items, 1),
                    }
                )
    per_user = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["model", "user", "metric", "k", "value"])
    )
    catalog = pd.DataFrame(catalog_rows, columns=["model", "metric", "k", "value"])
    return EvalOutput(per_user, catalog, rec_pop, pd.DataFrame(timings))


def bootstrap_interval(
    values: np.ndarray, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    Resamples are drawn in blocks so memory stays bounded for many users.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or n_boot <= 0:
        m = float(values.mean()) if values.size else float("nan")
        return m, m
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    block = max(1, 2_000_000 // values.size)
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def user_segments(train: Dataset, users: np.ndarray) -> np.ndarray:
    """``cold`` / ``regular`` / ``heavy`` label of each user by training activity.

    Cold users are the least active quarter, heavy users the most active tenth (ties go to
    ``regular``).
    """
    counts = train.user_counts()[users]
    lo, hi = np.quantile(counts, [0.25, 0.9]) if counts.size else (0, 0)
    seg = np.full(users.size, "regular", dtype=object)
    seg[counts <= lo] = "cold"
    seg[counts > hi] = "heavy"
    return seg
