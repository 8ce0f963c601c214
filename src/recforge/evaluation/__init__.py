"""Offline evaluation of recommenders: one engine behind every reported number.

:func:`evaluate` fits each model on ``split.train``, ranks the *whole* catalogue for every test
user (items seen in train excluded) through the model contract, and scores the top-``max(k)``
lists against the user's test interactions. Test users without training interactions
(``cold`` users) cannot be personalised by most models: they get the model's fallback list
(as ``recommend(..., on_unknown="popular")`` does) and are reported in their own group, so they
neither flatter nor drown the personalised (``known``) results.

The same engine (:func:`evaluate_model`) serves ``recforge evaluate``, ``recforge run``, tuning,
``auto``, the retrain gate and the report, so one model on one split has one score.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recforge.evaluation._engine import (
    EvaluationProtocol,
    ModelEvaluation,
    evaluate_model,
    user_segments,
)
from recforge.evaluation._names import (
    DEFAULT_METRICS,
    GROUPS,
    LIST_METRICS,
    RATING_METRICS,
    SCORE_METRICS,
    SEGMENTS,
    check_metrics,
    direction,
    parse_metric,
)
from recforge.evaluation._result import EvaluationResult, jsonable
from recforge.evaluation._summary import summarise
from recforge.exceptions import ConfigError
from recforge.models.base import Recommender
from recforge.split import Split

if TYPE_CHECKING:
    from recforge.models.rerank import Reranker

__all__ = [
    "DEFAULT_METRICS",
    "GROUPS",
    "LIST_METRICS",
    "RATING_METRICS",
    "SCORE_METRICS",
    "SEGMENTS",
    "EvaluationProtocol",
    "EvaluationResult",
    "ModelEvaluation",
    "check_metrics",
    "direction",
    "evaluate",
    "evaluate_model",
    "jsonable",
    "parse_metric",
    "summarise",
    "user_segments",
]


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
    reranker: Reranker | None = None,
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
        Metric names (see :func:`check_metrics`): the top-K metrics of
        :func:`recforge.metrics.compute_metrics`, ``auc`` (known users) and ``rmse``/``mae``
        (models with ``supports_predict`` on explicit data; skipped otherwise).
    k
        Cutoff or cutoffs; lists of length ``max(k)`` are produced once.
    fit
        Fit each model on ``split.train`` (a fresh fit). With ``False`` the models must
        already be fitted on data sharing the split's id indices.
    relevance_threshold
        Test interactions with ``value >= relevance_threshold`` are relevant; ``None`` makes
        every test interaction with a positive value relevant. The value is the grade of
        ``ndcg_graded``.
    n_bootstrap, confidence, rng
        Bootstrap resamples of the per-user values (0: no intervals), level and seed of the
        intervals (``rmse``/``mae`` use the normal approximation over interactions).
    progress
        Show a progress bar (rich) while fitting and ranking.
    reranker
        Re-rank every model's lists (:class:`~recforge.models.rerank.Reranker`: rules, MMR,
        calibration) before they are measured.

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
    _check_settings(split, n_bootstrap, confidence)
    protocol = EvaluationProtocol(
        metrics=tuple(check_metrics(metrics, what="metrics")),
        ks=k,  # type: ignore[arg-type]
        relevance_threshold=relevance_threshold,
        confidence=float(confidence),
    )
    runs, timings = _fit_and_measure(
        named, split, protocol, fit=fit, progress=progress, reranker=reranker
    )
    pu = pd.concat([ev.per_user for ev in runs], ignore_index=True)
    agg = pd.concat([ev.aggregates for ev in runs], ignore_index=True)
    summary = _ordered(
        summarise(pu, agg, n_bootstrap=int(n_bootstrap), confidence=float(confidence), rng=rng),
        list(named),
        list(protocol.metrics),
    )
    n_users = runs[-1].n_users
    settings = {
        **protocol.to_dict(),
        "n_bootstrap": int(n_bootstrap),
        "confidence": float(confidence),
        "rng": int(rng),
        "fit": bool(fit),
        "n_test_users": int(sum(n_users.values())),
        "n_cold_users": int(n_users.get("cold", 0)),
    }
    return EvaluationResult(summary, pu, timings, split.name, protocol.ks, settings)


def _check_settings(split: Any, n_bootstrap: Any, confidence: Any) -> None:
    if not isinstance(split, Split):
        raise ConfigError(f"split must be a recforge Split, got {type(split).__name__}")
    if (
        not isinstance(n_bootstrap, int | np.integer)
        or isinstance(n_bootstrap, bool)
        or n_bootstrap < 0
    ):
        raise ConfigError(f"n_bootstrap must be an int >= 0. Got {n_bootstrap!r} instead.")
    if not isinstance(confidence, float | int) or not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence must be a float in (0, 1). Got {confidence!r} instead.")


def _fit_and_measure(
    named: Mapping[str, Recommender],
    split: Split,
    protocol: EvaluationProtocol,
    *,
    fit: bool,
    progress: bool,
    reranker: Reranker | None = None,
) -> tuple[list[ModelEvaluation], dict[str, dict[str, float]]]:
    """Fit (optionally) and evaluate each model on the split; their timings."""
    train, test = split.train, split.test
    runs: list[ModelEvaluation] = []
    timings: dict[str, dict[str, float]] = {}
    bar = _Progress(progress, total=len(named) * (int((train.user_counts() > 0).sum()) + 1))
    with bar:
        for name, model in named.items():
            bar.describe(f"fitting {name}")
            t0 = time.perf_counter()
            if fit:
                model.fit(train)
            t1 = time.perf_counter()
            bar.describe(f"ranking with {name}")
            ev = evaluate_model(
                model, train, test, protocol, label=name, tick=bar.advance, reranker=reranker
            )
            bar.advance(1)
            runs.append(ev)
            timings[name] = {
                "fit_seconds": t1 - t0 if fit else 0.0,
                "recommend_seconds": ev.seconds["recommend"],
                "metric_seconds": ev.seconds["metrics"],
            }
    return runs, timings


def _ordered(summary: pd.DataFrame, models: list[str], metrics: list[str]) -> pd.DataFrame:
    """Rows by model, then group, then the order the metrics were asked for, then k."""
    groups = [*GROUPS, *SEGMENTS]
    key = pd.DataFrame(
        {
            "m": summary["model"].map({m: i for i, m in enumerate(models)}),
            "g": summary["group"].map({g: i for i, g in enumerate(groups)}),
            "x": summary["metric"].map({m: i for i, m in enumerate(metrics)}),
            "k": summary["k"].astype("float64").fillna(-1.0),
        }
    )
    order = np.lexsort((key["k"], key["x"], key["g"], key["m"]))
    return summary.iloc[order].reset_index(drop=True)


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
