"""Online updates between retrains, and the model bundle that requests read.

* :class:`ServingModel` is one immutable bundle (model + version + metadata). The service holds
  one reference to the current bundle; a request reads it once and uses it to the end, and a
  hot swap replaces the reference (see :class:`ModelHolder`).
* :class:`OnlineState` keeps, per user, the events stored after the model's training cutoff
  (bounded: the ``max_history`` most recent per user, ``max_users`` users, least recently
  active dropped first) and per-item event counts. It is a deterministic function of the
  durable events after the cutoff, so it is rebuilt from the store after a restart or a swap.
* :func:`recommend_user` combines them: a user's new events are excluded at once, and models
  that support fold-in (``recommend_for_history``) re-score the user from their training
  history plus the new events, so the next list reflects the events without retraining.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recforge.data import IdIndex
from recforge.exceptions import ModelFormatError
from recforge.models.base import Recommender
from recforge.serving.store import Event, EventStore

__all__ = [
    "ModelHolder",
    "OnlineState",
    "ServingModel",
    "model_ids",
    "recommend_history",
    "recommend_user",
    "similar",
    "warm_up",
]


@dataclass(frozen=True)
class ServingModel:
    """An immutable, verified model ready to serve.

    Attributes
    ----------
    model : Recommender
        The fitted model (never mutated once published in a bundle).
    version : str
        Registry version or ``"local"``.
    info : dict
        Model name, params, metrics and registry metadata.
    events_seq : int
        Last store event included in the model's training data (0: none).
    loaded_at : float
        Epoch seconds of loading.
    """

    model: Recommender
    version: str
    info: dict[str, Any] = field(default_factory=dict)
    events_seq: int = 0
    loaded_at: float = field(default_factory=time.time)
    online: OnlineState | None = None


class ModelHolder:
    """Holds the current :class:`ServingModel`; swapping is one reference assignment."""

    def __init__(self) -> None:
        self._current: ServingModel | None = None
        self._swap_lock = threading.Lock()
        self.last_load_error: str | None = None

    @property
    def current(self) -> ServingModel | None:
        """The bundle to use for one request (read once, keep the reference)."""
        return self._current

    def swap(self, bundle: ServingModel) -> None:
        """Publish a new bundle (requests already running keep the old one)."""
        with self._swap_lock:
            self._current = bundle

    @property
    def lock(self) -> threading.Lock:
        """Serialises writers that derive a new bundle from the current one."""
        return self._swap_lock


def model_ids(index: IdIndex, ids: Iterable[str]) -> list[Any]:
    """External ids from HTTP (strings) in the type of ``index``; unparseable ones dropped."""
    return index.ids_from_text(ids)


def _known_items(model: Recommender, ids: Sequence[str]) -> np.ndarray:
    conv = model_ids(model.items_, ids)
    if not conv:
        return np.zeros(0, dtype=np.int32)
    codes = model.items_.codes(conv, missing="negative")
    return codes[codes >= 0]


class OnlineState:
    """Recent events per user and per-item counts since the model's training cutoff.

    Parameters
    ----------
    after_seq
        Only events with a larger sequence number are applied (those newer than the model).
    max_history
        Most recent events kept per user.
    max_users
        Users kept; the least recently active are dropped first.
    items
        Item index of the model; events of these items are counted per item code (for the
        popularity fallback). Events of other items are kept in user histories only.
    """

    def __init__(
        self,
        after_seq: int = 0,
        max_history: int = 200,
        max_users: int = 100_000,
        items: IdIndex | None = None,
    ):
        self.last_seq = int(after_seq)
        self.max_history = int(max_history)
        self.max_users = int(max_users)
        # per user: (item, value, seq, item code or -1), oldest first
        self._users: OrderedDict[str, deque[tuple[str, float, int, int]]] = OrderedDict()
        self._items = items
        self._counts = np.zeros(len(items) if items is not None else 0, dtype=np.float32)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()

    def apply(self, events: Iterable[Event]) -> int:
        """Apply stored events (ordered by ``seq``); returns how many were new."""
        n = 0
        events = [e for e in events if e.seq > self.last_seq]
        codes = self._codes([e.item for e in events])
        with self._lock:
            if codes.size:
                np.add.at(self._counts, codes[codes >= 0], 1.0)
            for e, code in zip(events, codes.tolist(), strict=True):
                if e.seq <= self.last_seq:
                    continue
                hist = self._users.get(e.user)
                if hist is None:
                    hist = deque(maxlen=self.max_history)
                    self._users[e.user] = hist
                    if len(self._users) > self.max_users:
                        self._users.popitem(last=False)
                else:
                    self._users.move_to_end(e.user)
                hist.append((e.item, float(e.value), e.seq, code))
                self.last_seq = e.seq
                n += 1
        return n

    def sync(self, store: EventStore, batch: int = 50_000) -> int:
        """Read events stored since the last sync (by any replica) and apply them."""
        total = 0
        with self._sync_lock:
            while True:
                events = store.events_after(self.last_seq, limit=batch)
                total += self.apply(events)
                if len(events) < batch:
                    return total

    def recent(self, user: str) -> list[tuple[str, float]]:
        """``(item, value)`` of the user's events since the cutoff, oldest first."""
        with self._lock:
            hist = self._users.get(user)
            return [(i, v) for i, v, _, _ in hist] if hist else []

    def recent_coded(self, user: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The user's events since the cutoff as ``(items, values, codes)``, oldest first.

        ``codes`` are item codes of the index the state was built with (``-1``: unknown to
        it), resolved once when the event was applied, so a request does no id lookups.
        """
        with self._lock:
            hist = self._users.get(user)
            if not hist:
                return [], np.zeros(0, np.float32), np.zeros(0, np.int32)
            items = [h[0] for h in hist]
            values = np.fromiter((h[1] for h in hist), np.float32, len(hist))
            codes = np.fromiter((h[3] for h in hist), np.int32, len(hist))
        return items, values, codes

    @property
    def n_items(self) -> int:
        """Items of the index the state codes events against."""
        return len(self._items) if self._items is not None else 0

    def _codes(self, items: list[str]) -> np.ndarray:
        if self._items is None:
            return np.full(len(items), -1, dtype=np.int32)
        return _string_id_codes(self._items, items)

    def counts(self) -> np.ndarray:
        """Events per item code of the model since the cutoff (a copy)."""
        with self._lock:
            return self._counts.copy()

    @property
    def n_users(self) -> int:
        """Users with recent events in memory."""
        return len(self._users)


# --------------------------------------------------------------------------- recommending
def _to_json_ids(values: np.ndarray, n: int) -> list[str]:
    return [str(v.item() if hasattr(v, "item") else v) for v in values[:n]]


def _rows(recs: Any, position: int = 0) -> list[tuple[str, float]]:
    n = int(recs.lengths[position])
    ids = _to_json_ids(recs.items[position], n)
    return [(ids[j], float(recs.scores[position, j])) for j in range(n)]


def _popular(
    bundle: ServingModel,
    state: OnlineState | None,
    k: int,
    exclude: Sequence[str],
    require: Sequence[str] | None,
) -> list[tuple[str, float]]:
    model = bundle.model
    n = model.n_items
    pop = model.fallback_scores()
    if state is not None:
        counts = state.counts()
        m = min(counts.size, n)  # items added after the state was built have no counts yet
        pop[:m] += counts[:m]
    if require is not None:
        mask = np.zeros(n, dtype=bool)
        mask[_known_items(model, require)] = True
        pop[~mask] = -np.inf
    pop[_known_items(model, exclude)] = -np.inf
    k_eff = min(k, n)
    top = np.argpartition(-pop, k_eff - 1)[:k_eff] if k_eff else np.zeros(0, np.int64)
    top = top[np.argsort(-pop[top], kind="stable")]
    top = top[np.isfinite(pop[top])]
    ids = model.items_.ids_of(top)
    return [
        (str(i.item() if hasattr(i, "item") else i), float(pop[c]))
        for i, c in zip(ids, top, strict=True)
    ]


def _parses(index: IdIndex, key: str) -> bool:
    return bool(index.ids_from_text([key]))


def recommend_user(
    bundle: ServingModel,
    state: OnlineState | None,
    user: str,
    k: int,
    *,
    exclude: Sequence[str] = (),
    require: Sequence[str] | None = None,
    exclude_seen: bool = True,
) -> tuple[list[tuple[str, float]], str]:
    """Top-``k`` ``(item, score)`` for a user and the reason, online events included.

    Parameters
    ----------
    bundle
        The model bundle (read once by the caller).
    state
        Online state, or ``None`` to ignore events after training.
    user
        External user id as a string.
    k
        List length.
    exclude, require
        Items never to recommend / the only items that may be recommended.
    exclude_seen
        Leave out items from the user's training history and new events.

    Returns
    -------
    (items, reason)
        ``reason`` says how the list was made, e.g. ``"unknown user: most popular items"``.
    """
    model = bundle.model
    recent_items, recent_vals, recent_codes = (
        state.recent_coded(user)
        if state is not None
        else ([], np.zeros(0, np.float32), np.zeros(0, np.int32))
    )
    if state is not None and len(model.items_) != state.n_items:
        recent_codes = _recode(model, recent_items, recent_codes)
    conv_user = model_ids(model.users_, [user])
    ucode = int(model.users_.codes(conv_user, missing="negative")[0]) if conv_user else -1
    known = recent_codes >= 0
    cand = model_ids(model.items_, require) if require is not None else None
    excl = model_ids(model.items_, exclude)
    if ucode >= 0 and (not known.any() or not model.supports_history):
        if exclude_seen and recent_items:
            excl = excl + model_ids(model.items_, recent_items)
        recs = model.recommend(
            conv_user[0], k, exclude_seen=exclude_seen, items=cand, exclude=excl or None
        )
        reason = "personalised"
        if recent_items:
            reason += f"; {len(recent_items)} new events excluded"
        return _rows(recs), reason
    if known.any() and model.supports_history:
        seen_codes, seen_vals = (
            model.user_history(ucode)
            if ucode >= 0
            else (np.zeros(0, np.int32), np.zeros(0, np.float32))
        )
        hist_codes = np.concatenate([seen_codes, recent_codes[known]])
        hist_vals = np.concatenate([seen_vals, recent_vals[known]])
        # one value per item: the latest event wins over training presence
        order = np.arange(hist_codes.size)[::-1]
        _, first = np.unique(hist_codes[order], return_index=True)
        keep = np.sort(order[first])
        hist_ids = model.items_.ids_of(hist_codes[keep])
        recs = model.recommend_for_history(
            hist_ids,
            hist_vals[keep],
            k,
            exclude_seen=exclude_seen,
            candidates=cand,
            exclude=excl or None,
        )
        who = "known user" if ucode >= 0 else "new user"
        return _rows(recs), f"{who}: online fold-in of {int(known.sum())} new events"
    items = _popular(
        bundle, state, k, list(exclude) + (recent_items if exclude_seen else []), require
    )
    return items, "unknown user: most popular items"


def _recode(model: Recommender, items: list[str], codes: np.ndarray) -> np.ndarray:
    """Codes in ``model``'s index for events the state could not code (items added later)."""
    missing = np.flatnonzero(codes < 0)
    if missing.size == 0:
        return codes
    out = codes.copy()
    out[missing] = _string_id_codes(model.items_, [items[j] for j in missing])
    return out


def _string_id_codes(index: IdIndex, items: list[str]) -> np.ndarray:
    """Codes of string ids from HTTP in ``index`` (``-1``: unknown, or not an id of its type)."""
    return index.codes_from_text(items)


def recommend_history(
    bundle: ServingModel,
    items: Sequence[str],
    values: Sequence[float] | None,
    k: int,
    *,
    exclude: Sequence[str] = (),
    require: Sequence[str] | None = None,
) -> tuple[list[tuple[str, float]], str]:
    """Recommendations for an anonymous history (fold-in, or popularity when unsupported)."""
    model = bundle.model
    if not model.supports_history:
        pop = _popular(bundle, None, k, list(exclude) + list(items), require)
        return pop, f"{type(model).__name__} cannot fold in histories: most popular items"
    conv = model_ids(model.items_, items)
    vals = None
    if values is not None:
        keep = [_parses(model.items_, x) for x in items]
        vals = [v for v, ok in zip(values, keep, strict=True) if ok]
    recs = model.recommend_for_history(
        conv,
        vals,
        k,
        candidates=model_ids(model.items_, require) if require is not None else None,
        exclude=model_ids(model.items_, exclude) or None,
    )
    reason = "anonymous history: fold-in"
    if recs.reasons is not None and recs.reasons[0]:
        reason = str(recs.reasons[0])
    return _rows(recs), reason


def similar(bundle: ServingModel, item: str, k: int) -> list[tuple[str, float]]:
    """Items most similar to ``item`` (raises UnknownIdError / UnsupportedCapabilityError)."""
    model = bundle.model
    conv = model_ids(model.items_, [item])
    recs = model.similar_items(conv[0] if conv else item, k)
    return _rows(recs)


def with_new_items(bundle: ServingModel, attributes: pd.DataFrame) -> ServingModel | None:
    """A new bundle whose model knows the given items (content models), or ``None``.

    The current model is never mutated: a shallow copy gets the new items, so requests
    holding the old bundle are unaffected.
    """
    if not bundle.model.supports_new_items:
        return None
    clone = copy.copy(bundle.model)
    clone.add_items(attributes)
    return ServingModel(
        clone, bundle.version, bundle.info, bundle.events_seq, bundle.loaded_at, bundle.online
    )


def warm_up(bundle: ServingModel) -> None:
    """Run one request of each supported kind so the first real request is not slow.

    Raises
    ------
    ModelFormatError
        When the model fails on a test request (the bundle must not be published).
    """
    model = bundle.model
    try:
        if len(model.users_):
            model.recommend(model.users_.ids_of([0]), 10)
        model.recommend(["__recforge_warmup_unknown__"], 10, on_unknown="popular")
        if model.supports_similar_items and len(model.items_) > 1:
            model.similar_items(model.items_.ids_of([0]), 10)
        if model.supports_history and len(model.items_):
            model.recommend_for_history(list(model.items_.ids_of([0])), None, 10)
    except Exception as exc:
        raise ModelFormatError(f"model failed its warm-up request: {exc}") from exc
