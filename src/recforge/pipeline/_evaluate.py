"""Top-K evaluation used by the pipeline (tuning objective and test metrics).

Every test user known to the model gets one top-``max(k)`` list from ``recommend`` (batched
scoring and partial sort); all metrics at all cut-offs are then computed in one pass by
:func:`recforge.metrics.compute_metrics`, which shares one hit matrix between them.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recforge.data import Dataset
from recforge.exceptions import ConfigError
from recforge.metrics import BEYOND_METRICS, RANKING_METRICS, MetricContext, compute_metrics
from recforge.models.base import Recommender

__all__ = ["ACCURACY_METRICS", "EvalOutput", "check_metrics", "evaluate_models", "user_segments"]

#: per-user ranking metrics (the ones a search can optimise)
ACCURACY_METRICS = tuple(RANKING_METRICS)


def check_metrics(names: Sequence[str]) -> list[str]:
    """Validated metric names (lower case).

    Raises
    ------
    ConfigError
        Naming the unknown metric and the nearest known one.
    """
    known = [*RANKING_METRICS, *BEYOND_METRICS]
    out = []
    for name in names:
        key = str(name).lower().replace("-", "_")
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"unknown metric {name!r}{hint} (metrics: {', '.join(known)})")
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
        Catalog-level values (coverage, gini): ``model, metric, k, value``.
    recommended_popularity : dict
        Model -> training popularity of every recommended item at the largest cut-off.
    timings : pandas.DataFrame
        ``model, recommend_s``.
    """

    per_user: pd.DataFrame
    catalog: pd.DataFrame
    recommended_popularity: dict[str, np.ndarray] = field(default_factory=dict)
    timings: pd.DataFrame = field(default_factory=pd.DataFrame)


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

    Test users without training interactions are skipped (collaborative models cannot score
    them; cold-start splits need content models, evaluated on their own).

    Parameters
    ----------
    models
        Label -> fitted model (trained on ``train``; indices shared with ``test``).
    train
        Training data (item popularity for novelty/popularity, co-occurrence for diversity).
    test
        Held-out interactions; every one counts as relevant.
    metrics
        Names from :data:`recforge.metrics.RANKING_METRICS` and ``BEYOND_METRICS``.
    ks
        Cut-offs.
    max_users
        Evaluate a seeded random sample of at most this many users.
    seed
        Seed of that sample.

    Returns
    -------
    EvalOutput

    Raises
    ------
    ConfigError
        On unknown metrics or when no test user has training interactions.
    """
    names = check_metrics(metrics)
    ks = sorted({int(k) for k in ks})
    kmax = ks[-1]
    train_counts = train.user_counts()
    users = np.unique(test.user)
    users = users[train_counts[users] > 0]
    if users.size == 0:
        raise ConfigError("no test user has training interactions; cannot evaluate")
    if max_users is not None and users.size > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    user_ids = train.users.ids_of(users)
    truth = test.matrix(binary=True)[users]
    pop = train.item_counts().astype(np.float64)
    context = MetricContext(
        n_items=test.n_items,
        item_popularity=pop,
        n_users_train=max(int((train_counts > 0).sum()), 1),
        train_matrix=train.matrix(binary=True) if "diversity" in names else None,
    )
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
        valid = codes >= 0
        rec_pop[label] = pop[codes[valid]].astype(np.float32)
        results = compute_metrics(codes, truth, ks, names, context)
        for (metric, k), value in results.items():
            if np.ndim(value) == 0:
                catalog_rows.append(
                    {"model": label, "metric": metric, "k": k, "value": float(value)}
                )
            else:
                frames.append(
                    pd.DataFrame(
                        {"model": label, "user": users, "metric": metric, "k": k, "value": value}
                    )
                )
    per_user = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["model", "user", "metric", "k", "value"])
    )
    catalog = pd.DataFrame(catalog_rows, columns=["model", "metric", "k", "value"])
    return EvalOutput(per_user, catalog, rec_pop, pd.DataFrame(timings))


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
