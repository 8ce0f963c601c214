"""Metric registries and :func:`compute_metrics`, the one-call driver used by evaluation."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.exceptions import ConfigError, DataError
from recforge.metrics import beyond, ranking
from recforge.metrics._checks import check_k, check_recs

__all__ = ["BEYOND_METRICS", "RANKING_METRICS", "MetricContext", "compute_metrics"]


@dataclass
class MetricContext:
    """Training-side facts that beyond-accuracy metrics need.

    Parameters
    ----------
    n_items
        Catalog size (number of item codes).
    item_popularity
        ``(n_items,)`` training interaction counts per item.
    n_users_train
        Number of users in the training data.
    item_features
        Optional ``(n_items, n_features)`` sparse item features for ``"diversity"``.
    train_matrix
        Optional ``(n_users_train, n_items)`` training matrix; ``"diversity"`` uses its item
        co-occurrence when ``item_features`` is not given.
    expected
        Optional expected items for ``"serendipity"`` (see :func:`~recforge.metrics.serendipity`).
        By default the ``k`` most popular training items (a most-popular recommender's list).
    """

    n_items: int
    item_popularity: np.ndarray
    n_users_train: int
    item_features: sp.csr_array | None = None
    train_matrix: sp.csr_array | None = None
    expected: np.ndarray | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_items, bool) or not isinstance(self.n_items, int | np.integer):
            raise ConfigError(f"MetricContext.n_items must be an int. Got {self.n_items!r}.")
        if self.n_items < 1:
            raise ConfigError(f"MetricContext.n_items must be >= 1. Got {self.n_items}.")
        pop = np.asarray(self.item_popularity, dtype=np.float64)
        if pop.shape != (self.n_items,):
            raise DataError(
                f"MetricContext.item_popularity must have one count per item "
                f"(shape ({self.n_items},)), got shape {pop.shape}"
            )
        self.item_popularity = pop
        if self.n_users_train < 0:
            raise ConfigError(
                f"MetricContext.n_users_train must be >= 0. Got {self.n_users_train}."
            )
        for name in ("item_features", "train_matrix"):
            mat = getattr(self, name)
            if mat is None:
                continue
            if not sp.issparse(mat):
                raise DataError(f"MetricContext.{name} must be a scipy.sparse matrix")
            axis = 0 if name == "item_features" else 1
            if mat.shape[axis] != self.n_items:
                raise DataError(
                    f"MetricContext.{name} has shape {mat.shape}; axis {axis} must have "
                    f"n_items={self.n_items} entries"
                )

    def most_popular(self, k: int) -> np.ndarray:
        """Codes of the ``k`` most popular training items (ties towards the lower code)."""
        pop = np.asarray(self.item_popularity, dtype=np.float64)
        order = np.lexsort((np.arange(pop.size), -pop))
        return order[: min(k, pop.size)].astype(np.int32)


RankingFn = Callable[[Any, Any, int], np.ndarray]
BeyondFn = Callable[[Any, Any, int, MetricContext], "np.ndarray | float"]

RANKING_METRICS: dict[str, RankingFn] = {
    "precision": ranking.precision,
    "recall": ranking.recall,
    "ndcg": ranking.ndcg,
    "ndcg_graded": partial(ranking.ndcg, graded=True),
    "map": ranking.average_precision,
    "mrr": ranking.reciprocal_rank,
    "hit_rate": ranking.hit_rate,
}
"""Ranking metrics by name; each is ``f(recs, truth, k) -> (n_users,)`` float64."""


def _item_vectors(ctx: MetricContext) -> beyond.ItemVectors:
    if ctx.item_features is not None:
        return beyond.ItemVectors.build(item_features=ctx.item_features)
    if ctx.train_matrix is not None:
        return beyond.ItemVectors.build(cooccurrence=ctx.train_matrix)
    raise ConfigError(
        "metric 'diversity' needs MetricContext.item_features or MetricContext.train_matrix"
    )


def _diversity(recs: Any, truth: Any, k: int, ctx: MetricContext) -> np.ndarray:
    return beyond.diversity_from_vectors(recs, k, _item_vectors(ctx))


def _serendipity(recs: Any, truth: Any, k: int, ctx: MetricContext) -> np.ndarray:
    expected = ctx.expected if ctx.expected is not None else ctx.most_popular(k)
    return beyond.serendipity(recs, truth, k, expected)


BEYOND_METRICS: dict[str, BeyondFn] = {
    "coverage": lambda recs, truth, k, ctx: beyond.catalog_coverage(recs, ctx.n_items, k),
    "gini": lambda recs, truth, k, ctx: beyond.gini_index(recs, ctx.n_items, k),
    "novelty": lambda recs, truth, k, ctx: beyond.novelty(
        recs, ctx.item_popularity, ctx.n_users_train, k
    ),
    "diversity": _diversity,
    "serendipity": _serendipity,
    "popularity": lambda recs, truth, k, ctx: beyond.average_popularity(
        recs, ctx.item_popularity, k
    ),
}
"""Beyond-accuracy metrics by name; each is ``f(recs, truth, k, context)``. ``coverage`` and
``gini`` return one float for the whole batch, the others a ``(n_users,)`` float64 array."""

_RANKING_METHODS: dict[str, Callable[[ranking.RankingState, int], np.ndarray]] = {
    "precision": lambda s, k: s.precision(k),
    "recall": lambda s, k: s.recall(k),
    "ndcg": lambda s, k: s.ndcg(k),
    "ndcg_graded": lambda s, k: s.ndcg(k, graded=True),
    "map": lambda s, k: s.average_precision(k),
    "mrr": lambda s, k: s.reciprocal_rank(k),
    "hit_rate": lambda s, k: s.hit_rate(k),
}


def _check_names(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        names = [names]
    valid = sorted([*RANKING_METRICS, *BEYOND_METRICS])
    out = []
    for name in names:
        if name not in RANKING_METRICS and name not in BEYOND_METRICS:
            close = difflib.get_close_matches(str(name), valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown metric {name!r}.{hint} Valid metrics: {', '.join(valid)}.")
        out.append(name)
    return out


def compute_metrics(
    recs: Any,
    truth: Any,
    ks: Sequence[int],
    names: Sequence[str],
    context: MetricContext,
) -> dict[tuple[str, int], np.ndarray | float]:
    """Compute several metrics at several cutoffs in one pass over the recommendations.

    The hit matrix of ``recs`` against ``truth`` is built once at ``max(ks)`` and shared by all
    ranking metrics and cutoffs.

    Parameters
    ----------
    recs
        ``(n_users, L)`` int item codes ranked best-first, ``-1`` padded.
    truth
        ``(n_users, context.n_items)`` CSR array of relevance grades ``> 0``.
    ks
        Cutoffs, each ``>= 1``.
    names
        Metric names from :data:`RANKING_METRICS` and :data:`BEYOND_METRICS`.
    context
        Training-side facts for the beyond-accuracy metrics.

    Returns
    -------
    dict
        ``(name, k) -> value``: ``(n_users,)`` float64 arrays for per-user metrics (NaN where
        undefined), floats for catalog-level ones (``coverage``, ``gini``).

    Raises
    ------
    ConfigError
        For an unknown metric name (the message suggests the closest valid one and lists them
        all) or an invalid cutoff.
    DataError
        If ``truth`` does not match ``recs`` or ``context.n_items``.
    """
    metric_names = _check_names(names)
    cutoffs = [check_k(k) for k in ks]
    if not cutoffs:
        raise ConfigError("ks must hold at least one cutoff")
    r = check_recs(recs, context.n_items)
    if sp.issparse(truth) and truth.shape[1] != context.n_items:
        raise DataError(
            f"truth has {truth.shape[1]} item columns but context.n_items is {context.n_items}"
        )
    results: dict[tuple[str, int], np.ndarray | float] = {}
    state: ranking.RankingState | None = None
    if any(n in RANKING_METRICS for n in metric_names):
        state = ranking.RankingState(r, truth, max(cutoffs))
        truth = state.truth  # canonical, validated once
    vectors = _item_vectors(context) if "diversity" in metric_names else None  # once for all k
    for name in metric_names:
        for k in cutoffs:
            if name in RANKING_METRICS:
                assert state is not None
                results[(name, k)] = _RANKING_METHODS[name](state, k)
            elif name == "diversity":
                assert vectors is not None
                results[(name, k)] = beyond.diversity_from_vectors(r, k, vectors)
            else:
                results[(name, k)] = BEYOND_METRICS[name](r, truth, k, context)
    return results
