"""The one evaluation engine: rank through the model contract, then score the lists.

:func:`evaluate_model` is the single code path behind every number recforge reports about a
model on held-out data: :func:`recforge.evaluation.evaluate`, ``recforge evaluate``,
``recforge run`` / ``tune`` / ``auto``, the retrain gate and the report. Blending learns its
weights with the same two steps (the shared top-K kernel, then
:func:`recforge.metrics.compute_metrics`).

1. **Truth**: the test interactions with a positive value (or ``value >= threshold``) are
   relevant; a repeated pair keeps its largest value as the grade.
2. **Groups**: ``known`` test users have training interactions; ``cold`` users have none and
   get the model's fallback list (``recommend(..., on_unknown="popular")``), reported in their
   own group so they neither flatter nor drown the personalised results.
3. **Ranking**: ``recommend`` over the full catalogue, training items excluded, in blocks of
   users (so a model that customises ``recommend`` is evaluated as it serves).
4. **Scoring**: every list metric at every cutoff in one pass
   (:func:`recforge.metrics.compute_metrics`), AUC from the dense score rows, RMSE/MAE from
   ``predict`` for rating models on explicit data.

The result is a per-user table keyed by external user ids plus list-level values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge._kernels.topk import topk
from recforge.data import Dataset
from recforge.evaluation._names import (
    LIST_METRICS,
    RATING_METRICS,
    SCORE_METRICS,
    check_metrics,
)
from recforge.exceptions import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.models.rerank import Reranker

__all__ = [
    "AGGREGATE_COLUMNS",
    "PER_USER_COLUMNS",
    "EvaluationProtocol",
    "ModelEvaluation",
    "evaluate_model",
    "user_segments",
]

PER_USER_COLUMNS = ["model", "group", "metric", "k", "user", "value"]
AGGREGATE_COLUMNS = ["model", "group", "metric", "k", "value", "ci_low", "ci_high", "n_users"]

Tick = Callable[[int], None]


@dataclass(frozen=True)
class EvaluationProtocol:
    """What is measured and how: the same protocol gives the same numbers everywhere.

    Parameters
    ----------
    metrics
        Metric names (validated by :func:`~recforge.evaluation.check_metrics`).
    ks
        Cutoffs of the list metrics.
    relevance_threshold
        Test interactions with ``value >= relevance_threshold`` are relevant; ``None``: every
        test interaction with a positive value.
    max_users
        Evaluate a seeded random sample of at most this many test users (``None``: all).
    seed
        Seed of that sample.
    confidence
        Level of the normal-approximation intervals of RMSE/MAE.
    """

    metrics: tuple[str, ...]
    ks: tuple[int, ...] = (10,)
    relevance_threshold: float | None = None
    max_users: int | None = None
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(check_metrics(self.metrics)))
        values = [self.ks] if isinstance(self.ks, int | np.integer) else list(self.ks)
        if not values:
            raise ConfigError("k must be a positive int or a non-empty list of them")
        for v in values:
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"k must be a positive int or a list of them. Got {v!r} instead.")
        object.__setattr__(self, "ks", tuple(sorted({int(v) for v in values})))
        t = self.relevance_threshold
        if t is not None and not (
            isinstance(t, int | float | np.integer | np.floating) and math.isfinite(float(t))
        ):
            raise ConfigError(f"relevance_threshold must be a finite number or None. Got {t!r}")
        if self.max_users is not None and (
            not isinstance(self.max_users, int | np.integer) or self.max_users < 1
        ):
            raise ConfigError(f"max_users must be a positive int or None. Got {self.max_users!r}")
        if not 0.0 < float(self.confidence) < 1.0:
            raise ConfigError(f"confidence must be in (0, 1). Got {self.confidence!r}")

    @property
    def list_metrics(self) -> list[str]:
        """Metrics of the top-K lists (ranking and beyond-accuracy)."""
        return [m for m in self.metrics if m not in RATING_METRICS and m not in SCORE_METRICS]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "metrics": list(self.metrics),
            "ks": list(self.ks),
            "relevance_threshold": self.relevance_threshold,
            "max_users": self.max_users,
            "seed": self.seed,
            "ranking": "full catalogue, training items excluded",
        }


@dataclass
class ModelEvaluation:
    """What :func:`evaluate_model` measured for one model.

    Attributes
    ----------
    per_user : pandas.DataFrame
        ``model, group, metric, k, user, value``: one row per user, metric and cutoff;
        ``user`` is the external id, ``k`` is missing (``<NA>``) for metrics without a cutoff.
    aggregates : pandas.DataFrame
        ``model, group, metric, k, value, ci_low, ci_high, n_users``: metrics whose value is
        not a mean over users (coverage and gini of all lists, RMSE/MAE over interactions).
    recommended_popularity : numpy.ndarray of float32
        Training popularity of every item recommended to known users at the largest cutoff.
    seconds : dict
        ``recommend`` (ranking) and ``metrics`` (scoring) wall time.
    n_users : dict
        Evaluated users per group.
    notes : dict
        Per group, how its lists were made when the model could not personalise them.
    """

    per_user: pd.DataFrame
    aggregates: pd.DataFrame
    recommended_popularity: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)
    n_users: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def value(self, metric: str, k: int | None = None, group: str = "known") -> float:
        """Headline value of ``metric@k`` for ``group``: the aggregate, else the user mean."""
        agg = self.aggregates
        sel = agg[(agg["metric"] == metric) & (agg["group"] == group)]
        if k is not None:
            sel = sel[sel["k"] == k]
        if len(sel):
            return float(sel["value"].iloc[0])
        pu = self.per_user
        part = pu[(pu["metric"] == metric) & (pu["group"] == group)]
        if k is not None:
            part = part[part["k"] == k]
        vals = part["value"].to_numpy(dtype=np.float64)
        return float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan


# --------------------------------------------------------------------------- truth and groups
def truth_matrix(test: Dataset, threshold: float | None) -> tuple[np.ndarray, sp.csr_array]:
    """Test users (codes) with at least one relevant item, and their graded truth rows."""
    user, item, value = test.user, test.item, test.value.astype(np.float64)
    keep = value >= threshold if threshold is not None else value > 0
    user, item, value = user[keep], item[keep], value[keep]
    if user.size == 0:
        return np.zeros(0, np.int32), sp.csr_array((0, test.n_items), dtype=np.float64)
    key = user.astype(np.int64) * test.n_items + item
    order = np.lexsort((-value, key))
    first = np.r_[True, key[order][1:] != key[order][:-1]]
    sel = order[first]
    user, item, value = user[sel], item[sel], value[sel]
    users, rows = np.unique(user, return_inverse=True)
    truth = sp.csr_array(
        (value, (rows.reshape(-1), item)), shape=(users.size, test.n_items), dtype=np.float64
    )
    truth.sort_indices()
    return users.astype(np.int32), truth


def user_segments(train: Dataset, users: np.ndarray) -> np.ndarray:
    """``light`` / ``regular`` / ``heavy`` activity segment of known users (codes) in ``train``.

    Light users are the least active quarter, heavy users the most active tenth (ties go to
    ``regular``). Users without training interactions are the ``cold`` *group*, not a segment.
    """
    counts = train.user_counts()[users]
    lo, hi = np.quantile(counts, [0.25, 0.9]) if counts.size else (0, 0)
    seg = np.full(users.size, "regular", dtype=object)
    seg[counts <= lo] = "light"
    seg[counts > hi] = "heavy"
    return seg


def metric_context(train: Dataset, names: Sequence[str]) -> Any:
    """Training-side facts of the beyond-accuracy metrics."""
    from recforge.metrics import MetricContext

    return MetricContext(
        n_items=train.n_items,
        item_popularity=train.item_counts().astype(np.float64),
        n_users_train=max(int((train.user_counts() > 0).sum()), 1),
        train_matrix=train.matrix(binary=True) if "diversity" in names else None,
    )


def _check_compatible(label: str, model: Recommender, train: Dataset, test: Dataset) -> None:
    if not model.is_fitted:
        raise ConfigError(f"model {label!r} is not fitted; fit it on the training data first")
    if model.users_ != train.users or model.items_ != train.items:
        raise ConfigError(
            f"model {label!r} was fitted on data with other id indices than the evaluation's "
            "training data; fit it on that data"
        )
    if test.users != train.users or test.items != train.items:
        raise ConfigError("test and training data must share their id indices (use a Split)")


# --------------------------------------------------------------------------- ranking
def rank_known(
    model: Recommender,
    users: np.ndarray,
    k: int,
    on_scores: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    tick: Tick | None = None,
    reranker: Reranker | None = None,
) -> np.ndarray:
    """Top-``k`` item codes of known users through ``recommend``: full catalogue, seen excluded.

    ``on_scores(start, codes, scores)`` sees each block's dense scores (``score_users``);
    with a ``reranker`` the lists are :meth:`Reranker.rerank`'s (rules, MMR, calibration).
    """
    out = np.full((users.size, k), -1, dtype=np.int32)
    block = max(1, int(model.score_block_size))
    if reranker is not None:
        reranker = reranker.for_model(model)
    for start in range(0, users.size, block):
        codes = users[start : start + block]
        if on_scores is not None:
            on_scores(start, codes, model.score_users(codes))
        ids = model.users_.ids_of(codes)
        if reranker is None:
            recs = model.recommend(ids, k=k, exclude_seen=True)
        else:
            recs = reranker.rerank(model, ids, k=k, exclude_seen=True)
        idx = np.asarray(recs.item_codes, dtype=np.int32)
        out[start : start + block, : idx.shape[1]] = idx
        if tick is not None:
            tick(codes.size)
    return out


def rank_cold(
    model: Recommender, n_users: int, k: int, reranker: Reranker | None = None
) -> np.ndarray:
    """The fallback list (``on_unknown="popular"``), one row per cold user (re-ranked by
    ``reranker`` when given, against an empty history)."""
    out = np.full((n_users, k), -1, dtype=np.int32)
    if n_users == 0:
        return out
    if reranker is not None:
        empty = sp.csr_array((1, model.n_items), dtype=np.float32)
        idx, _ = reranker.for_model(model).rerank_scores(
            model.fallback_scores()[None, :], model.items_, k, empty
        )
    else:
        idx, _ = topk(model.fallback_scores()[None, :], k)
    out[:, : idx.shape[1]] = idx[0]
    return out


class _AucCollector:
    """Per-user AUC computed block by block from the dense scores (no full matrix kept)."""

    def __init__(self, truth: sp.csr_array, seen: sp.csr_array) -> None:
        self.truth = truth
        self.seen = seen
        self.values = np.full(truth.shape[0], np.nan, dtype=np.float64)

    def __call__(self, start: int, codes: np.ndarray, scores: np.ndarray) -> None:
        from recforge.metrics import auc

        stop = start + codes.size
        finite = np.where(np.isfinite(scores), scores, np.float32(-3.0e38))
        self.values[start:stop] = auc(finite, self.truth[start:stop], self.seen[codes])


# --------------------------------------------------------------------------- rows
@dataclass
class _Rows:
    """Per-user value blocks and aggregate rows of one model; frames are built once."""

    label: str
    blocks: list[tuple[str, str, int | None, np.ndarray, np.ndarray]] = field(default_factory=list)
    aggregates: list[tuple[Any, ...]] = field(default_factory=list)

    def per_user(self, group: str, metric: str, k: int | None, users: Any, values: Any) -> None:
        self.blocks.append(
            (group, metric, k, np.asarray(users), np.asarray(values, dtype=np.float64))
        )

    def aggregate(
        self,
        group: str,
        metric: str,
        k: int | None,
        value: float,
        ci: tuple[float, float],
        n_users: int,
    ) -> None:
        self.aggregates.append((self.label, group, metric, k, value, ci[0], ci[1], n_users))

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        agg = pd.DataFrame(self.aggregates, columns=AGGREGATE_COLUMNS)
        agg["k"] = pd.array(agg["k"].tolist(), dtype="Int64")
        agg["n_users"] = agg["n_users"].astype(np.int64)
        if not self.blocks:
            empty = pd.DataFrame({c: [] for c in PER_USER_COLUMNS})
            empty["k"] = pd.array([], dtype="Int64")
            return empty, agg
        sizes = [b[3].size for b in self.blocks]
        per_user = pd.DataFrame(
            {
                "model": self.label,
                "group": np.repeat([b[0] for b in self.blocks], sizes),
                "metric": np.repeat([b[1] for b in self.blocks], sizes),
                "k": pd.array(
                    np.repeat([pd.NA if b[2] is None else b[2] for b in self.blocks], sizes),
                    dtype="Int64",
                ),
                "user": np.concatenate([b[3] for b in self.blocks]),
                "value": np.concatenate([b[4] for b in self.blocks]),
            }
        )
        return per_user, agg


def _list_metrics(
    rows: _Rows,
    group: str,
    protocol: EvaluationProtocol,
    recs: np.ndarray,
    truth: sp.csr_array,
    user_ids: np.ndarray,
    context: Any,
) -> None:
    from recforge.metrics import compute_metrics

    names = protocol.list_metrics
    if not names or recs.shape[0] == 0:
        return
    values = compute_metrics(recs, truth, protocol.ks, names, context)
    for name in names:
        for k in protocol.ks:
            got = values[(name, k)]
            if name in LIST_METRICS or not isinstance(got, np.ndarray):
                rows.aggregate(group, name, k, float(got), (math.nan, math.nan), recs.shape[0])
            else:
                rows.per_user(group, name, k, user_ids, got)


def _normal_ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Normal-approximation interval of the mean of many per-interaction errors."""
    from statistics import NormalDist

    if values.size < 2:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    mean = float(values.mean())
    half = z * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean - half, mean + half


def _rating_metrics(
    rows: _Rows,
    model: Recommender,
    test: Dataset,
    cold: np.ndarray,
    evaluated: np.ndarray,
    protocol: EvaluationProtocol,
) -> None:
    """RMSE / MAE over the test interactions of each group (and per user)."""
    names = [n for n in protocol.metrics if n in RATING_METRICS]
    keep = evaluated[test.user]
    users = test.users.ids_of(test.user[keep])
    items = test.items.ids_of(test.item[keep])
    err = model.predict(users, items) - test.value[keep].astype(np.float64)
    u = test.user[keep]
    is_cold = cold[u]
    for group, mask in (("known", ~is_cold), ("cold", is_cold)):
        if not mask.any():
            continue
        e, gu = err[mask], u[mask]
        ucodes, inv = np.unique(gu, return_inverse=True)
        counts = np.bincount(inv).astype(np.float64)
        uid = test.users.ids_of(ucodes)
        for metric in names:
            if metric == "rmse":
                per = np.sqrt(np.bincount(inv, weights=e * e) / counts)
                low, high = _normal_ci(e * e, protocol.confidence)
                ci = (
                    (math.sqrt(max(low, 0.0)), math.sqrt(high))
                    if math.isfinite(low)
                    else (low, high)
                )
                value = float(np.sqrt(np.mean(e * e)))
            else:
                per = np.bincount(inv, weights=np.abs(e)) / counts
                ci = _normal_ci(np.abs(e), protocol.confidence)
                value = float(np.mean(np.abs(e)))
            rows.per_user(group, metric, None, uid, per)
            rows.aggregate(group, metric, None, value, ci, int(ucodes.size))


# --------------------------------------------------------------------------- the engine
def evaluate_model(
    model: Recommender,
    train: Dataset,
    test: Dataset,
    protocol: EvaluationProtocol,
    *,
    label: str = "model",
    tick: Tick | None = None,
    reranker: Reranker | None = None,
) -> ModelEvaluation:
    """Measure a fitted model on held-out interactions (the one evaluation code path).

    Parameters
    ----------
    model
        Fitted on ``train`` (same id indices).
    train
        The model's training data: which users are known, which items they saw, and the
        popularity and co-occurrence the beyond-accuracy metrics need.
    test
        Held-out interactions sharing ``train``'s id indices.
    protocol
        Metrics, cutoffs, relevance and user sampling.
    label
        The model's name in the tables.
    tick
        Called with the number of users ranked after each block (progress bars).
    reranker
        Re-rank every list (rules, MMR diversity, calibration) before it is scored, so a
        re-ranking setting is measured by the same metrics as the model alone.

    Returns
    -------
    ModelEvaluation

    Raises
    ------
    ConfigError
        If the model or the data do not share the id indices.
    DataError
        If the test part has no relevant interaction.
    """
    _check_compatible(label, model, train, test)
    test_users, truth = _test_users(test, protocol)
    cold_mask = train.user_counts() == 0
    is_cold = cold_mask[test_users]
    groups = {"known": np.flatnonzero(~is_cold), "cold": np.flatnonzero(is_cold)}
    user_ids = train.users.ids_of(test_users)
    rows = _Rows(label)

    t0 = time.perf_counter()
    auc = (
        _AucCollector(truth[groups["known"]], model.seen_matrix())
        if "auc" in protocol.metrics
        else None
    )
    recs = np.empty((test_users.size, protocol.ks[-1]), dtype=np.int32)
    recs[groups["known"]] = rank_known(
        model, test_users[groups["known"]], recs.shape[1], auc, tick, reranker
    )
    recs[groups["cold"]] = rank_cold(model, int(groups["cold"].size), recs.shape[1], reranker)
    t1 = time.perf_counter()

    context = metric_context(train, protocol.metrics)
    for group, pos in groups.items():
        _list_metrics(rows, group, protocol, recs[pos], truth[pos], user_ids[pos], context)
    if auc is not None and groups["known"].size:
        rows.per_user("known", "auc", None, user_ids[groups["known"]], auc.values)
    wants_rating = any(n in RATING_METRICS for n in protocol.metrics)
    if wants_rating and model.supports_predict and not train.is_implicit:
        evaluated = np.zeros(train.n_users, dtype=bool)
        evaluated[test_users] = True
        _rating_metrics(rows, model, test, cold_mask, evaluated, protocol)
    known_recs = recs[groups["known"]]
    per_user, aggregates = rows.frames()
    return ModelEvaluation(
        per_user=per_user,
        aggregates=aggregates,
        recommended_popularity=train.item_counts().astype(np.float32)[known_recs[known_recs >= 0]],
        seconds={"recommend": t1 - t0, "metrics": time.perf_counter() - t1},
        n_users={g: int(p.size) for g, p in groups.items()},
        notes=_notes(model, int(groups["cold"].size)),
    )


def _test_users(test: Dataset, protocol: EvaluationProtocol) -> tuple[np.ndarray, sp.csr_array]:
    """Evaluated test users (a seeded sample under ``max_users``) and their truth rows."""
    test_users, truth = truth_matrix(test, protocol.relevance_threshold)
    if test_users.size == 0:
        t = protocol.relevance_threshold
        what = f" with value >= {t:g}" if t is not None else ""
        raise DataError(f"{test.name!r} has no relevant test interaction{what}")
    if protocol.max_users is not None and test_users.size > protocol.max_users:
        gen = np.random.default_rng(protocol.seed)
        pick = np.sort(gen.choice(test_users.size, protocol.max_users, replace=False))
        test_users, truth = test_users[pick], sp.csr_array(truth[pick])
    return test_users, truth


def _notes(model: Recommender, n_cold: int) -> dict[str, str]:
    """How each group's lists were made, where the model could not personalise them."""
    if not n_cold:
        return {}
    return {
        "cold": f"{type(model).__name__} cannot personalise users without training data: "
        "they get its fallback list (most popular items)"
    }
