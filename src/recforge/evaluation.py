"""Offline evaluation of recommenders on a :class:`~recforge.split.Split`.

:func:`evaluate` fits each model on ``split.train``, ranks the *whole* catalogue for every test
user (items seen in train excluded), and scores the top-``max(k)`` lists against the user's test
interactions. Test users without training interactions ("cold" users) cannot be personalised:
they get the model's popularity fallback (as ``recommend(..., on_unknown="popular")`` does) and
are reported in their own group, so they neither flatter nor drown the personalised results.

Ranking goes through the model contract (``recommend`` in blocks of users, so a model that
customises it is evaluated as it serves), and the metric computation (vectorised in
:mod:`recforge.metrics`) is a small fraction of it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge._kernels.topk import topk
from recforge.data import Dataset
from recforge.exceptions import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.split import Split

__all__ = [
    "DEFAULT_METRICS",
    "GROUPS",
    "RATING_METRICS",
    "EvaluationResult",
    "evaluate",
]

#: Metrics computed when none are named: accuracy of the lists and two beyond-accuracy views.
DEFAULT_METRICS: tuple[str, ...] = (
    "precision",
    "recall",
    "ndcg",
    "map",
    "mrr",
    "hit_rate",
    "coverage",
    "novelty",
)
#: Metrics of rating prediction (need ``supports_predict`` and explicit data); no cutoff.
RATING_METRICS: tuple[str, ...] = ("rmse", "mae")
#: Metrics needing the full dense score matrix rather than top-K lists; no cutoff.
SCORE_METRICS: tuple[str, ...] = ("auc",)
#: User groups of the result: users with training interactions, and users without.
GROUPS: tuple[str, ...] = ("known", "cold")

_SUMMARY_COLUMNS = ["model", "group", "metric", "k", "value", "ci_low", "ci_high", "n_users"]
_PER_USER_COLUMNS = ["model", "group", "metric", "k", "user", "value"]


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class EvaluationResult:
    """Outcome of :func:`evaluate`.

    Attributes
    ----------
    summary : pandas.DataFrame
        Tidy table, one row per (model, group, metric, k) with columns ``model``, ``group``
        (``"known"`` or ``"cold"``), ``metric``, ``k`` (nullable int; missing for metrics
        without a cutoff such as ``rmse``), ``value`` (mean over users, or the list-level
        value for ``coverage``/``gini``), ``ci_low``/``ci_high`` (bootstrap confidence interval;
        NaN when not applicable) and ``n_users``.
    per_user : pandas.DataFrame
        Long table of per-user values: ``model``, ``group``, ``metric``, ``k``, ``user``
        (external id), ``value``. List-level metrics have no per-user rows.
    timings : dict of str to dict of str to float
        ``model -> {"fit_seconds": ..., "recommend_seconds": ..., "metric_seconds": ...}``.
    split_name : str
        Name of the split evaluated on.
    ks : tuple of int
        Cutoffs.
    settings : dict
        Evaluation settings (threshold, bootstrap size, confidence, seed).
    """

    summary: pd.DataFrame
    per_user: pd.DataFrame
    timings: dict[str, dict[str, float]]
    split_name: str = ""
    ks: tuple[int, ...] = (10,)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        """Model names in evaluation order."""
        return list(dict.fromkeys(self.summary["model"].tolist()))

    def table(
        self, k: int | None = None, *, group: str = "known", ci: bool = False
    ) -> pd.DataFrame:
        """Wide table: one row per model, one column per ``metric@k`` (or ``metric``).

        Parameters
        ----------
        k
            Keep only this cutoff (metrics without a cutoff are always kept); ``None`` keeps
            every cutoff.
        group
            ``"known"`` (default) or ``"cold"`` users.
        ci
            Add ``"<column> ci"`` columns with the interval as ``"[low, high]"`` strings.

        Raises
        ------
        ConfigError
            If ``group`` is unknown or ``k`` was not evaluated.
        """
        if group not in GROUPS:
            raise ConfigError(f"group must be one of {', '.join(GROUPS)}. Got {group!r} instead.")
        if k is not None and k not in self.ks:
            raise ConfigError(
                f"k={k!r} was not evaluated (cutoffs: {', '.join(map(str, self.ks))})"
            )
        df = self.summary[self.summary["group"] == group]
        if k is not None:
            df = df[df["k"].isna() | (df["k"] == k)]
        if df.empty:
            return pd.DataFrame(index=pd.Index(self.models, name="model"))
        label = [
            m if pd.isna(kk) else f"{m}@{int(kk)}"
            for m, kk in zip(df["metric"], df["k"], strict=True)
        ]
        df = df.assign(column=label)
        columns = list(dict.fromkeys(label))
        wide = df.pivot(index="model", columns="column", values="value")
        wide = wide.reindex(index=[m for m in self.models if m in wide.index], columns=columns)
        if ci:
            low = df.pivot(index="model", columns="column", values="ci_low")
            high = df.pivot(index="model", columns="column", values="ci_high")
            for col in columns:
                wide[f"{col} ci"] = [
                    "" if pd.isna(lo) else f"[{lo:.4f}, {hi:.4f}]"
                    for lo, hi in zip(
                        low[col].reindex(wide.index), high[col].reindex(wide.index), strict=True
                    )
                ]
        wide.columns.name = None
        return wide

    def to_dict(self, *, per_user: bool = False) -> dict[str, Any]:
        """JSON-ready dictionary (NaN as ``None``); per-user rows only when asked for."""
        out: dict[str, Any] = {
            "split": self.split_name,
            "ks": list(self.ks),
            "settings": _jsonable(self.settings),
            "timings": _jsonable(self.timings),
            "summary": _records(self.summary),
        }
        if per_user:
            out["per_user"] = _records(self.per_user)
        return out

    def to_json(self, path: str | None = None, *, per_user: bool = False, indent: int = 2) -> str:
        """Serialise :meth:`to_dict` as JSON; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict(per_user=per_user), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def __repr__(self) -> str:
        return (
            f"EvaluationResult(split={self.split_name!r}, models={self.models}, "
            f"ks={list(self.ks)}, rows={len(self.summary)})"
        )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is pd.NA:
        return None
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [_jsonable(dict(zip(df.columns, row, strict=True))) for row in df.itertuples(False)]


# --------------------------------------------------------------------------- inputs
def _named_models(
    models: Recommender | Mapping[str, Recommender] | Sequence[Recommender],
) -> dict[str, Recommender]:
    if isinstance(models, Recommender):
        items: list[tuple[str, Any]] = [(models.name, models)]
    elif isinstance(models, Mapping):
        items = [(str(k), v) for k, v in models.items()]
    elif isinstance(models, Iterable) and not isinstance(models, str | bytes):
        items = [(getattr(m, "name", type(m).__name__), m) for m in models]
    else:
        raise ConfigError(
            "models must be a Recommender, a dict of name -> Recommender or a list of them, "
            f"got {type(models).__name__}"
        )
    if not items:
        raise ConfigError("models is empty: give at least one Recommender")
    out: dict[str, Recommender] = {}
    for name, model in items:
        if not isinstance(model, Recommender):
            raise ConfigError(
                f"model {name!r} is not a recforge Recommender: {type(model).__name__}"
            )
        unique, n = name, 2
        while unique in out:
            unique, n = f"{name}-{n}", n + 1
        out[unique] = model
    return out


def _cutoffs(k: int | Iterable[int]) -> tuple[int, ...]:
    values = [k] if isinstance(k, int | np.integer) else list(k)
    if not values:
        raise ConfigError("k must be a positive int or a non-empty list of them")
    for v in values:
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"k must be a positive int or a list of them. Got {v!r} instead.")
    return tuple(sorted({int(v) for v in values}))


def _metric_names(metrics: str | Iterable[str]) -> list[str]:
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise ConfigError("metrics is empty: name at least one metric")
    out = []
    for name in names:
        key = str(name).strip().lower().replace("-", "_")
        if key not in out:
            out.append(key)
    return out


def _truth_matrix(test: Dataset, threshold: float | None) -> tuple[np.ndarray, sp.csr_array]:
    """Test users (codes) with at least one relevant item, and their graded truth rows.

    Duplicate test interactions of a pair keep their largest value as the grade.
    """
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


def _check_compatible(name: str, model: Recommender, train: Dataset) -> None:
    if not model.is_fitted:
        raise ConfigError(f"model {name!r} is not fitted; pass fit=True to fit it on split.train")
    if model.users_ != train.users or model.items_ != train.items:
        raise ConfigError(
            f"model {name!r} was fitted on data with other id indices than the split; "
            "fit it on split.train (or pass fit=True)"
        )


# --------------------------------------------------------------------------- ranking
def _rank_known(
    model: Recommender,
    users: np.ndarray,
    k: int,
    on_scores: Callable[[int, np.ndarray, np.ndarray], None] | None,
    tick: Callable[[int], None],
) -> np.ndarray:
    """Top-``k`` item codes of known users through ``recommend``: full catalogue, seen excluded.

    ``on_scores(start, codes, scores)`` sees each block's dense scores (``score_users``).
    """
    out = np.full((users.size, k), -1, dtype=np.int32)
    block = max(1, int(model.score_block_size))
    for start in range(0, users.size, block):
        codes = users[start : start + block]
        if on_scores is not None:
            on_scores(start, codes, model.score_users(codes))
        recs = model.recommend(model.users_.ids_of(codes), k=k, exclude_seen=True)
        idx = np.asarray(recs.item_codes, dtype=np.int32)
        out[start : start + block, : idx.shape[1]] = idx
        tick(codes.size)
    return out


def _rank_cold(model: Recommender, n_users: int, k: int) -> np.ndarray:
    """The popularity fallback list (``on_unknown="popular"``), one row per cold user."""
    out = np.full((n_users, k), -1, dtype=np.int32)
    if n_users == 0:
        return out
    idx, _ = topk(model.fallback_scores()[None, :], k)
    out[:, : idx.shape[1]] = idx[0]
    return out


# --------------------------------------------------------------------------- metrics
def _ci(values: np.ndarray, n_bootstrap: int, confidence: float, rng: int) -> tuple[float, float]:
    from recforge.metrics import bootstrap_ci

    finite = values[np.isfinite(values)]
    if n_bootstrap <= 0 or finite.size < 2:
        return math.nan, math.nan
    low, high = bootstrap_ci(finite, confidence=confidence, n_resamples=n_bootstrap, rng=rng)
    return float(low), float(high)


def _normal_ci(values: np.ndarray, boot: tuple[int, float, int]) -> tuple[float, float]:
    """Normal-approximation interval of the mean of many per-interaction errors.

    Rating errors number in the thousands to millions, where the central limit theorem holds
    and a bootstrap would cost far more than the predictions themselves.
    """
    from statistics import NormalDist

    n_bootstrap, confidence, _ = boot
    if n_bootstrap <= 0 or values.size < 2:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    mean = float(values.mean())
    half = z * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean - half, mean + half


@dataclass
class _Rows:
    """Accumulates summary rows and per-user value blocks; frames are built once at the end."""

    summary: list[tuple[Any, ...]] = field(default_factory=list)
    blocks: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(
        self,
        model: str,
        group: str,
        metric: str,
        k: int | None,
        value: float,
        ci: tuple[float, float],
        n_users: int,
        user_ids: np.ndarray | None = None,
        per_user: np.ndarray | None = None,
    ) -> None:
        self.summary.append((model, group, metric, k, value, ci[0], ci[1], n_users))
        if per_user is not None and user_ids is not None:
            row = len(self.summary) - 1
            self.blocks.append((row, np.asarray(user_ids), np.asarray(per_user, np.float64)))

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        summary = pd.DataFrame(self.summary, columns=_SUMMARY_COLUMNS)
        summary["k"] = pd.array(summary["k"].tolist(), dtype="Int64")
        summary["n_users"] = summary["n_users"].astype(np.int64)
        if not self.blocks:
            return summary, pd.DataFrame({c: [] for c in _PER_USER_COLUMNS})
        source = np.repeat(np.array([b[0] for b in self.blocks]), [b[1].size for b in self.blocks])
        per_user = summary.loc[source, ["model", "group", "metric", "k"]].reset_index(drop=True)
        per_user["user"] = np.concatenate([b[1] for b in self.blocks])
        per_user["value"] = np.concatenate([b[2] for b in self.blocks])
        return summary, per_user


def _ranking_metrics(
    rows: _Rows,
    model: str,
    group: str,
    names: list[str],
    ks: tuple[int, ...],
    recs: np.ndarray,
    truth: sp.csr_array,
    user_ids: np.ndarray,
    context: Any,
    boot: tuple[int, float, int],
) -> None:
    from recforge.metrics import compute_metrics

    if not names or recs.shape[0] == 0:
        return
    values = compute_metrics(recs, truth, ks, names, context)
    for name in names:
        for k in ks:
            got = values[(name, k)]
            if isinstance(got, np.ndarray):
                per = np.asarray(got, dtype=np.float64)
                mean = float(np.nanmean(per)) if np.isfinite(per).any() else math.nan
                ci = _ci(per, *boot)
                rows.add(model, group, name, k, mean, ci, per.size, user_ids, per)
            else:
                rows.add(model, group, name, k, float(got), (math.nan, math.nan), recs.shape[0])


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


def _rating_metrics(
    rows: _Rows,
    name: str,
    model: Recommender,
    test: Dataset,
    cold: np.ndarray,
    names: list[str],
    boot: tuple[int, float, int],
) -> None:
    """RMSE / MAE over the test interactions of each group (value and bootstrap CI)."""
    users = test.users.ids_of(test.user)
    items = test.items.ids_of(test.item)
    predicted = model.predict(users, items)
    err = predicted - test.value.astype(np.float64)
    is_cold = cold[test.user]
    for group, mask in (("known", ~is_cold), ("cold", is_cold)):
        if not mask.any():
            continue
        e, u = err[mask], test.user[mask]
        ucodes, inv = np.unique(u, return_inverse=True)
        counts = np.bincount(inv).astype(np.float64)
        uid = test.users.ids_of(ucodes)
        for metric in names:
            if metric == "rmse":
                per = np.sqrt(np.bincount(inv, weights=e * e) / counts)
                low, high = _normal_ci(e * e, boot)
                ci = (
                    (math.sqrt(max(low, 0.0)), math.sqrt(high))
                    if math.isfinite(low)
                    else (low, high)
                )
                value = float(np.sqrt(np.mean(e * e)))
            else:
                per = np.bincount(inv, weights=np.abs(e)) / counts
                ci = _normal_ci(np.abs(e), boot)
                value = float(np.mean(np.abs(e)))
            rows.add(name, group, metric, None, value, ci, int(ucodes.size), uid, per)


# --------------------------------------------------------------------------- evaluate
def evaluate(
    models: Recommender | Mapping[str, Recommender] | Sequence[Recommender],
    split: Split,
    *,
    metrics: str | Iterable[str] = DEFAULT_METRICS,
    k: int | Iterable[int] = (10,),
    fit: bool = True,
    relevance_threshold: float | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    rng: int = 0,
    progress: bool = False,
) -> EvaluationResult:
    """Fit models on ``split.train`` and measure their top-K lists on ``split.test``.

    Parameters
    ----------
    models
        One :class:`~recforge.models.Recommender`, a dict ``name -> model``, or a list (named by
        ``model.name``; repeated names get ``-2``, ``-3`` suffixes).
    split
        Train/test split; ``split.valid`` is not used.
    metrics
        Metric names: top-K metrics of :func:`recforge.metrics.compute_metrics` (``precision``,
        ``recall``, ``ndcg``, ``ndcg_graded``, ``map``, ``mrr``, ``hit_rate``, ``coverage``,
        ``gini``, ``novelty``, ``diversity``, ``serendipity``, ``popularity``), ``auc``
        (from full score rows, known users only) and the rating metrics ``rmse`` and ``mae``
        (only for models with ``supports_predict`` on explicit data; silently skipped
        otherwise).
    k
        Cutoff or cutoffs; lists of length ``max(k)`` are produced once.
    fit
        Fit each model on ``split.train`` (a fresh fit). With ``False`` the models must
        already be fitted on data sharing the split's id indices.
    relevance_threshold
        Test interactions with ``value >= relevance_threshold`` are relevant; ``None`` makes
        every test interaction with a positive value relevant. The value is the grade of
        ``ndcg_graded``.
    n_bootstrap
        Bootstrap resamples of the per-user values for the confidence intervals (0: no
        intervals). The intervals of ``rmse``/``mae`` use the normal approximation over the
        test interactions instead.
    confidence
        Confidence level of the intervals.
    rng
        Seed of the bootstrap.
    progress
        Show a progress bar (rich) while fitting and ranking.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    ConfigError
        On an unknown metric, bad cutoffs or settings, or an unfitted/incompatible model
        with ``fit=False``.
    DataError
        If the test part has no relevant interaction.

    Examples
    --------
    >>> from recforge.models.popular import MostPopular
    >>> from recforge.split import random_split
    >>> from recforge.testing import toy_dataset
    >>> result = evaluate(MostPopular(), random_split(toy_dataset(), 0.2), k=5, n_bootstrap=0)
    >>> result.table().columns[:3].tolist()
    ['precision@5', 'recall@5', 'ndcg@5']
    """
    named = _named_models(models)
    if not isinstance(split, Split):
        raise ConfigError(f"split must be a recforge Split, got {type(split).__name__}")
    ks = _cutoffs(k)
    names = _metric_names(metrics)
    if (
        not isinstance(n_bootstrap, int | np.integer)
        or isinstance(n_bootstrap, bool)
        or n_bootstrap < 0
    ):
        raise ConfigError(f"n_bootstrap must be an int >= 0. Got {n_bootstrap!r} instead.")
    if not isinstance(confidence, float | int) or not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence must be a float in (0, 1). Got {confidence!r} instead.")
    if relevance_threshold is not None and not (
        isinstance(relevance_threshold, int | float | np.integer | np.floating)
        and math.isfinite(float(relevance_threshold))
    ):
        raise ConfigError(
            f"relevance_threshold must be a finite number or None. Got {relevance_threshold!r}"
        )
    rating_names = [n for n in names if n in RATING_METRICS]
    score_names = [n for n in names if n in SCORE_METRICS]
    list_names = [n for n in names if n not in RATING_METRICS and n not in SCORE_METRICS]
    _validate_list_metrics(list_names)

    train, test = split.train, split.test
    test_users, truth = _truth_matrix(test, relevance_threshold)
    if test_users.size == 0:
        what = f" with value >= {relevance_threshold:g}" if relevance_threshold is not None else ""
        raise DataError(f"split {split.name!r} has no relevant test interaction{what}")
    cold_mask = train.user_counts() == 0
    is_cold = cold_mask[test_users]
    groups = {
        "known": np.flatnonzero(~is_cold),
        "cold": np.flatnonzero(is_cold),
    }
    user_ids = train.users.ids_of(test_users)
    kmax = ks[-1]
    context = _context(train)
    boot = (int(n_bootstrap), float(confidence), int(rng))
    explicit = not train.is_implicit

    rows = _Rows()
    timings: dict[str, dict[str, float]] = {}
    bar = _Progress(progress, total=len(named) * (int(groups["known"].size) + 1))
    with bar:
        for name, model in named.items():
            bar.describe(f"fitting {name}")
            t0 = time.perf_counter()
            if fit:
                model.fit(train)
            else:
                _check_compatible(name, model, train)
            t1 = time.perf_counter()
            bar.describe(f"ranking with {name}")
            known_users = test_users[groups["known"]]
            auc = (
                _AucCollector(truth[groups["known"]], model.seen_matrix()) if score_names else None
            )
            recs = np.empty((test_users.size, kmax), dtype=np.int32)
            recs[groups["known"]] = _rank_known(model, known_users, kmax, auc, bar.advance)
            recs[groups["cold"]] = _rank_cold(model, int(groups["cold"].size), kmax)
            bar.advance(1)
            t2 = time.perf_counter()
            for group, pos in groups.items():
                _ranking_metrics(
                    rows,
                    name,
                    group,
                    list_names,
                    ks,
                    recs[pos],
                    truth[pos],
                    user_ids[pos],
                    context,
                    boot,
                )
            if auc is not None and groups["known"].size:
                per = auc.values
                mean = float(np.nanmean(per)) if np.isfinite(per).any() else math.nan
                ids = user_ids[groups["known"]]
                rows.add(name, "known", "auc", None, mean, _ci(per, *boot), per.size, ids, per)
            if rating_names and model.supports_predict and explicit:
                _rating_metrics(rows, name, model, test, cold_mask, rating_names, boot)
            t3 = time.perf_counter()
            timings[name] = {
                "fit_seconds": t1 - t0 if fit else 0.0,
                "recommend_seconds": t2 - t1,
                "metric_seconds": t3 - t2,
            }
    summary, per_user = rows.frames()
    settings = {
        "metrics": names,
        "relevance_threshold": relevance_threshold,
        "n_bootstrap": int(n_bootstrap),
        "confidence": float(confidence),
        "rng": int(rng),
        "fit": bool(fit),
        "n_test_users": int(test_users.size),
        "n_cold_users": int(groups["cold"].size),
    }
    return EvaluationResult(summary, per_user, timings, split.name, ks, settings)


def _validate_list_metrics(names: list[str]) -> None:
    from recforge.metrics import BEYOND_METRICS, RANKING_METRICS

    known = [*RANKING_METRICS, *BEYOND_METRICS, *SCORE_METRICS, *RATING_METRICS]
    for name in names:
        if name not in RANKING_METRICS and name not in BEYOND_METRICS:
            import difflib

            near = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"unknown metric {name!r}{hint} (metrics: {', '.join(known)})")


def _context(train: Dataset) -> Any:
    from recforge.metrics import MetricContext

    return MetricContext(
        n_items=train.n_items,
        item_popularity=train.item_counts().astype(np.float64),
        n_users_train=int((train.user_counts() > 0).sum()),
        train_matrix=train.matrix(binary=True),
    )


class _Progress:
    """A rich progress bar, or nothing when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar: Any = None
        self._task: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task("evaluating", total=total)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)
