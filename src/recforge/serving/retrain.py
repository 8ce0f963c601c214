"""Retrain a challenger on the original data plus the store's events; promote only if better.

Procedure (:func:`retrain`):

1. Combine the original interactions with every stored event (ids unified) into one dataset.
2. Hold out the newest ``holdout`` fraction of interactions by time (the *window*); both
   candidates are trained on the rest: the challenger, and the incumbent's recipe (the active
   model's class and hyperparameters) refitted on the same data. Neither has seen the window,
   so the comparison is like with like (an incumbent trained on the window would be scored
   on interactions it must exclude as "seen").
3. Score both on the window with the evaluation engine (:func:`recforge.evaluation.
   evaluate_model`, the code path of every reported metric), paired by user.
4. Promote only if at least ``min_users`` users were compared, the challenger's mean beats the
   incumbent's by more than ``margin``, and the lower end of the ``confidence`` interval of
   the paired per-user difference is above zero. The active version is read again just before
   promoting: a version promoted by hand meanwhile is never overwritten. The winner is refitted
   on all data, published with its metrics, data fingerprint, lineage and the position of the
   last event it includes in the store's commit-ordered log (``events_txid``, ``events_seq``,
   see :class:`~recforge.serving.store.Cursor`), and made active. The decision is always
   recorded as JSON.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from recforge.data import Dataset, IdIndex
from recforge.evaluation import EvaluationProtocol, evaluate_model, parse_metric
from recforge.exceptions import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.registry import ModelRegistry
from recforge.serving.store import EventStore

__all__ = ["RetrainDecision", "combine", "compare", "ranking_metric", "retrain"]


@dataclass(frozen=True)
class RetrainDecision:
    """Outcome of one retrain, recorded in the registry.

    Attributes
    ----------
    promoted : bool
        Whether the challenger became active.
    reason : str
        Human-readable explanation.
    metric : str
        E.g. ``"ndcg@10"``.
    challenger_score, active_score : float or None
        Metric on the held-out newest interactions.
    margin : float
        Required improvement.
    active_version, new_version : str or None
        Versions before and after.
    challenger : str
        Model name and parameters.
    n_train, n_test, n_test_users, events_seq : int
        Sizes, and the last event included (``n_test_users``: users compared).
    created : float
        Epoch seconds.
    difference, ci_low, ci_high, p_value : float or None
        Mean paired per-user difference (challenger - incumbent), its interval at
        ``confidence`` and the two-sided paired t-test p-value.
    min_users, confidence : int, float
        The decision rule's settings.
    """

    promoted: bool
    reason: str
    metric: str
    challenger_score: float | None
    active_score: float | None
    margin: float
    active_version: str | None
    new_version: str | None
    challenger: str
    n_train: int
    n_test: int
    n_test_users: int
    events_seq: int
    created: float
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    min_users: int = 0
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _parse_metric(metric: str) -> tuple[str, int]:
    name, k = parse_metric(metric, what="retrain metric")
    if name not in ("ndcg", "recall", "precision", "map", "mrr", "hit_rate") or k is None:
        raise ConfigError(f"metric must look like 'ndcg@10' or 'recall@20', got {metric!r}")
    return name, k


def _all_int(values: pd.Series) -> bool:
    if values.empty:
        return True
    return bool(IdIndex.parse_int_ids(values.astype(str))[1].all())


def combine(base: Dataset | None, events: pd.DataFrame) -> pd.DataFrame:
    """Original interactions plus stored events in one frame (``user, item, value, time``).

    Integer ids of the original data are kept when every event id is an integer too;
    otherwise all ids become strings so they compare equal.
    """
    parts = []
    ev = events[["user", "item", "value", "time"]].copy()
    frame = base.to_frame() if base is not None else None
    if frame is not None and "time" not in frame:
        frame["time"] = 0
    for col, index in (
        ("user", base.users if base else None),
        ("item", base.items if base else None),
    ):
        base_int = index is None or index.is_integer
        if base_int and _all_int(ev[col]):
            ev[col] = ev[col].astype(np.int64)
        elif frame is not None:
            frame[col] = frame[col].astype(str)
    if frame is not None:
        parts.append(frame[["user", "item", "value", "time"]])
    parts.append(ev)
    out = pd.concat(parts, ignore_index=True)
    out["value"] = out["value"].astype(np.float32)
    out["time"] = out["time"].astype(np.int64)
    return out


def _window(
    frame: pd.DataFrame, holdout: float, attrs: pd.DataFrame | None
) -> tuple[Dataset, Dataset, Dataset]:
    """All data as one dataset, and its older part and newest ``holdout`` part (one index)."""
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    full = Dataset.from_frame(
        frame, value="value", time="time", item_attributes=attrs, name="retrain"
    )
    n_test = max(1, round(len(frame) * holdout))
    newest = np.zeros(full.n_interactions, dtype=bool)
    newest[-n_test:] = True  # interactions keep the frame's (time) order
    return full, full.subset(~newest), full.subset(newest)


def ranking_metric(
    model: Recommender, train: Dataset, test: Dataset, metric: str = "ndcg@10"
) -> tuple[float, int, pd.Series]:
    """``metric@k`` of ``model`` (fitted on ``train``) on ``test``, through the engine.

    Only users with training interactions are scored (known users); their training items are
    excluded from the lists.

    Returns
    -------
    (mean, n_users, per-user values indexed by external user id)
    """
    name, k = _parse_metric(metric)
    ev = evaluate_model(model, train, test, EvaluationProtocol(metrics=(name,), ks=(k,)))
    pu = ev.per_user
    sel = pu[(pu["group"] == "known") & (pu["metric"] == name) & (pu["k"] == k)]
    values = pd.Series(sel["value"].to_numpy(dtype=np.float64), index=sel["user"].to_numpy())
    return (float(values.mean()) if len(values) else 0.0), len(values), values


def compare(
    challenger: pd.Series, incumbent: pd.Series, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Paired comparison of per-user values: mean difference, its t-interval, and p-value."""
    from scipy import stats

    a, b = challenger.align(incumbent, join="inner")
    d = (a - b).to_numpy(dtype=np.float64)
    if d.size < 2:
        return (float(d.mean()) if d.size else math.nan), math.nan, math.nan, math.nan
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return mean, mean, mean, (1.0 if mean == 0.0 else 0.0)
    se = sd / math.sqrt(d.size)
    half = float(stats.t.ppf(0.5 + confidence / 2, d.size - 1)) * se
    p = float(2 * stats.t.sf(abs(mean / se), d.size - 1))
    return mean, mean - half, mean + half, p


def retrain(
    registry: ModelRegistry,
    store: EventStore,
    *,
    base: Dataset | None = None,
    challenger: Recommender | None = None,
    metric: str = "ndcg@10",
    margin: float = 0.0,
    holdout: float = 0.1,
    min_users: int = 20,
    confidence: float = 0.95,
) -> RetrainDecision:
    """Train a challenger, compare it with the incumbent like with like, promote only if better.

    Parameters
    ----------
    registry
        Model registry; the active version is the incumbent.
    store
        Event store with the events collected while serving.
    base
        Original training data (e.g. the shipped MovieLens data).
    challenger
        Unfitted model to train; default: a clone of the active model.
    metric
        ``"ndcg@K"``, ``"recall@K"``, ``"precision@K"``, ``"map@K"``, ``"mrr@K"`` or
        ``"hit_rate@K"``.
    margin
        The challenger's mean must beat the incumbent's by more than this.
    holdout
        Fraction of the newest interactions (by time) held out for the comparison.
    min_users
        Fewest compared users for any promotion over an incumbent.
    confidence
        Level of the interval of the paired difference, whose lower end must exceed zero.

    Returns
    -------
    RetrainDecision
        Also written to the registry's ``decisions/`` directory.

    Raises
    ------
    ConfigError
        Invalid settings, or no challenger and no active model.
    DataError
        No data to train on.
    """
    _check_settings(metric, holdout, min_users, confidence)
    active_version, active_model, challenger = _candidates(registry, challenger)
    # the watermark first, then the events up to it: an event whose transaction is still
    # running is left to the online state that starts from the same cursor, never skipped
    cursor = store.cursor()
    events = store.events_frame(until=cursor)
    events_seq = cursor.seq
    full, train, test = _data(base, events, holdout)

    scores = _score_both(challenger, active_model, train, test, metric, confidence)
    promote, reason = _decide(metric, scores, margin, min_users, confidence)
    new_version = None
    if promote:
        promote, reason, new_version = _promote(
            registry, active_version, challenger.clone().fit(full), full, metric, scores,
            {**cursor.to_dict(), "retrain_reason": reason}, reason,
        )  # fmt: skip
    decision = RetrainDecision(
        promoted=promote,
        reason=reason,
        metric=metric,
        challenger_score=scores.challenger,
        active_score=scores.incumbent,
        margin=float(margin),
        active_version=active_version,
        new_version=new_version,
        challenger=f"{type(challenger).__name__}({challenger.get_params()})",
        n_train=train.n_interactions,
        n_test=test.n_interactions,
        n_test_users=scores.n_users,
        events_seq=events_seq,
        created=time.time(),
        **scores.paired(),
        min_users=min_users,
        confidence=confidence,
    )
    registry.record_decision(decision.to_dict())
    return decision


def _candidates(
    registry: ModelRegistry, challenger: Recommender | None
) -> tuple[str | None, Recommender | None, Recommender]:
    """The active version, its model (``None`` without one) and the challenger to train.

    The challenger defaults to a clone of the active model (ConfigError when there is none).
    """
    active_version = registry.active_version()
    active_model = registry.load(active_version)[0] if active_version is not None else None
    if challenger is None:
        if active_model is None:
            raise ConfigError("no active model to clone: pass a challenger model")
        challenger = active_model.clone()
    return active_version, active_model, challenger


@dataclass(frozen=True)
class _Scores:
    """Both candidates' means on the window and their paired per-user comparison."""

    challenger: float
    n_users: int
    incumbent: float | None = None
    difference: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan

    def paired(self) -> dict[str, float | None]:
        """The paired statistics as JSON-ready values (``None`` when undefined)."""
        return {
            name: _finite(getattr(self, name))
            for name in ("difference", "ci_low", "ci_high", "p_value")
        }


def _score_both(
    challenger: Recommender,
    active: Recommender | None,
    train: Dataset,
    test: Dataset,
    metric: str,
    confidence: float,
) -> _Scores:
    """Both candidates' recipes fitted on ``train``, scored on ``test`` and paired by user."""
    fitted = challenger.clone().fit(train)
    ch_score, n_users, ch_values = ranking_metric(fitted, train, test, metric)
    if active is None:
        return _Scores(ch_score, n_users)
    act_score, _, act_values = ranking_metric(active.clone().fit(train), train, test, metric)
    return _Scores(ch_score, n_users, act_score, *compare(ch_values, act_values, confidence))


def _check_settings(metric: str, holdout: float, min_users: int, confidence: float) -> None:
    _parse_metric(metric)
    if not 0.0 < holdout < 0.9:
        raise ConfigError(f"holdout must be in (0, 0.9), got {holdout!r}")
    if not isinstance(min_users, int) or min_users < 2:
        raise ConfigError(f"min_users must be an int >= 2, got {min_users!r}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")


def _data(
    base: Dataset | None, events: pd.DataFrame, holdout: float
) -> tuple[Dataset, Dataset, Dataset]:
    """All interactions (original data plus events), their older part and the newest window."""
    frame = combine(base, events)
    if frame.empty:
        raise DataError("no interactions to train on (original data and event store are empty)")
    attrs = base.item_attributes if base is not None else None
    if attrs is not None and frame["item"].dtype == object:
        attrs = attrs.set_axis(attrs.index.astype(str))
    return _window(frame, holdout, attrs)


def _promote(
    registry: ModelRegistry,
    active_version: str | None,
    final: Recommender,
    full: Dataset,
    metric: str,
    scores: _Scores,
    extra: dict[str, Any],
    reason: str,
) -> tuple[bool, str, str | None]:
    """Publish the winner (refitted on all data) as active, unless the active version changed."""
    now_active = registry.active_version()
    if now_active != active_version:
        return (
            False,
            (
                f"the active version changed during the retrain ({active_version} -> "
                f"{now_active}); nothing promoted, retrain again"
            ),
            None,
        )
    info = registry.publish(
        final,
        metrics={metric: scores.challenger, "n_test_users": scores.n_users},
        data_fingerprint=full.fingerprint(),
        parent=active_version,
        extra=extra,
        promote=True,
    )
    return True, reason, info.version


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _decide(
    metric: str, scores: _Scores, margin: float, min_users: int, confidence: float
) -> tuple[bool, str]:
    ch, act, n_users, lo = scores.challenger, scores.incumbent, scores.n_users, scores.ci_low
    if act is None:
        return True, "no active model: the challenger becomes the first version"
    if n_users < min_users:
        return False, (
            f"only {n_users} held-out users known to both models (need {min_users}): "
            "too few to decide"
        )
    if not ch > act + margin:
        return False, (
            f"challenger {metric}={ch:.4f} does not beat active {act:.4f} + margin {margin:g}"
        )
    if not (math.isfinite(lo) and lo > 0):
        return False, (
            f"challenger {metric}={ch:.4f} beats active {act:.4f}, but the {confidence:.0%} "
            f"interval of the paired difference [{lo:.4f}, ...] includes 0 ({n_users} users)"
        )
    return True, (
        f"challenger {metric}={ch:.4f} beats active {act:.4f} + margin {margin:g} "
        f"(paired difference {scores.difference:+.4f}, {confidence:.0%} CI lower end "
        f"{lo:.4f}, {n_users} users)"
    )
