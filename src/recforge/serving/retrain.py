"""Retrain a challenger on the original data plus the store's events; promote only if better.

Procedure (:func:`retrain`):

1. Combine the original interactions with every stored event (ids unified).
2. Hold out the newest ``holdout`` fraction of interactions by time; train the challenger on
   the rest.
3. Score challenger and active model on the held-out interactions with the same metric
   (NDCG@k or recall@k, binary relevance), both excluding each user's training items.
4. Promote only if ``challenger > active + margin``: the challenger is then refitted on all
   data, published with its metrics, data fingerprint, lineage and the last event it includes
   (``events_seq``), and made active. The decision is always recorded as JSON in the registry.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from recforge.data import Dataset
from recforge.exceptions import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.registry import ModelRegistry
from recforge.serving.store import EventStore

__all__ = ["RetrainDecision", "combine", "ranking_metric", "retrain"]

_METRIC_RE = re.compile(r"^(ndcg|recall)@(\d{1,4})$")


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
        Sizes, and the last event included.
    created : float
        Epoch seconds.
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _parse_metric(metric: str) -> tuple[str, int]:
    m = _METRIC_RE.match(metric.lower())
    if not m:
        raise ConfigError(f"metric must look like 'ndcg@10' or 'recall@20', got {metric!r}")
    k = int(m.group(2))
    if k < 1:
        raise ConfigError(f"metric cutoff must be at least 1, got {metric!r}")
    return m.group(1), k


def _all_int(values: pd.Series) -> bool:
    if values.empty:
        return True
    return bool(values.astype(str).str.fullmatch(r"-?\d{1,18}").all())


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


def _user_sets(frame: pd.DataFrame) -> dict[Any, set[Any]]:
    out: dict[Any, set[Any]] = {}
    for user, items in frame.groupby("user", sort=False)["item"]:
        out[str(user)] = {str(i) for i in items.tolist()}
    return out


def ranking_metric(
    model: Recommender,
    train: pd.DataFrame,
    test: pd.DataFrame,
    metric: str = "ndcg@10",
) -> tuple[float, int]:
    """Mean NDCG@k or recall@k of ``model`` on ``test`` users, excluding their ``train`` items.

    Returns
    -------
    (score, n_users)
    """
    kind, k = _parse_metric(metric)
    truth = _user_sets(test)
    history = _user_sets(train)
    users = list(truth)
    if not users:
        return 0.0, 0
    n_items = len(model.items_)
    k_big = int(min(n_items, k + 200))
    ids = np.asarray(test["user"].drop_duplicates().tolist())
    users = [str(u) for u in ids.tolist()]
    recs = model.recommend(ids, k=k_big, exclude_seen=True, on_unknown="popular")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    total = 0.0
    for row, user in enumerate(users):
        seen = history.get(user, set())
        n = int(recs.lengths[row])
        ranked = [s for s in map(str, recs.items[row, :n].tolist()) if s not in seen][:k]
        rel = truth[user]
        hits = np.array([x in rel for x in ranked], dtype=bool)
        if kind == "recall":
            total += hits.sum() / min(len(rel), k)
        else:
            dcg = float(discounts[: hits.size][hits].sum())
            idcg = float(discounts[: min(len(rel), k)].sum())
            total += dcg / idcg
    return total / len(users), len(users)


def retrain(
    registry: ModelRegistry,
    store: EventStore,
    *,
    base: Dataset | None = None,
    challenger: Recommender | None = None,
    metric: str = "ndcg@10",
    margin: float = 0.0,
    holdout: float = 0.1,
) -> RetrainDecision:
    """Train a challenger, compare it with the active model, promote only if better.

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
        ``"ndcg@K"`` or ``"recall@K"``.
    margin
        The challenger must beat the active model by more than this.
    holdout
        Fraction of the newest interactions (by time) held out for the comparison.

    Returns
    -------
    RetrainDecision
        Also written to the registry's ``decisions/`` directory.

    Raises
    ------
    ConfigError
        Invalid metric/holdout, or no challenger and no active model.
    DataError
        No data to train on.
    """
    _parse_metric(metric)
    if not 0.0 < holdout < 0.9:
        raise ConfigError(f"holdout must be in (0, 0.9), got {holdout!r}")
    active_model: Recommender | None = None
    active_version = registry.active_version()
    if active_version is not None:
        active_model, _ = registry.load(active_version)
    if challenger is None:
        if active_model is None:
            raise ConfigError("no active model to clone: pass a challenger model")
        challenger = active_model.clone()
    events = store.events_frame()
    events_seq = int(events["seq"].max()) if len(events) else 0
    frame = combine(base, events)
    if frame.empty:
        raise DataError("no interactions to train on (original data and event store are empty)")
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    n_test = max(1, round(len(frame) * holdout))
    train_f, test_f = frame.iloc[:-n_test], frame.iloc[-n_test:]
    # only users and items the challenger can know are evaluated
    test_f = test_f[
        test_f["user"].isin(set(train_f["user"])) & test_f["item"].isin(set(train_f["item"]))
    ]
    attrs = base.item_attributes if base is not None else None
    if attrs is not None and frame["item"].dtype == object:
        attrs = attrs.set_axis(attrs.index.astype(str))

    def fit(model: Recommender, f: pd.DataFrame) -> Recommender:
        ds = Dataset.from_frame(
            f, value="value", time="time", item_attributes=attrs, name="retrain"
        )
        return model.fit(ds)

    label = f"{type(challenger).__name__}({challenger.get_params()})"
    fitted = fit(challenger.clone(), train_f)
    ch_score, n_users = ranking_metric(fitted, train_f, test_f, metric)
    act_score = None
    if active_model is not None:
        act_score, _ = ranking_metric(active_model, train_f, test_f, metric)
    now = time.time()
    if act_score is None:
        promote, reason = True, "no active model: the challenger becomes the first version"
    elif n_users == 0:
        promote, reason = False, "no held-out users known to the challenger: nothing to compare"
    elif ch_score > act_score + margin:
        promote = True
        reason = (
            f"challenger {metric}={ch_score:.4f} beats active {act_score:.4f} + margin {margin:g}"
        )
    else:
        promote = False
        reason = (
            f"challenger {metric}={ch_score:.4f} does not beat active {act_score:.4f} "
            f"+ margin {margin:g}"
        )
    new_version = None
    if promote:
        full = Dataset.from_frame(
            frame, value="value", time="time", item_attributes=attrs, name="retrain"
        )
        final = challenger.clone().fit(full)
        info = registry.publish(
            final,
            metrics={metric: ch_score, "n_test_users": n_users},
            data_fingerprint=full.fingerprint(),
            parent=active_version,
            extra={"events_seq": events_seq, "retrain_reason": reason},
            promote=True,
        )
        new_version = info.version
    decision = RetrainDecision(
        promoted=promote,
        reason=reason,
        metric=metric,
        challenger_score=float(ch_score),
        active_score=None if act_score is None else float(act_score),
        margin=float(margin),
        active_version=active_version,
        new_version=new_version,
        challenger=label,
        n_train=len(train_f),
        n_test=len(test_f),
        n_test_users=n_users,
        events_seq=events_seq,
        created=now,
    )
    registry.record_decision(decision.to_dict())
    return decision
