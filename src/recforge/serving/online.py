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

import contextlib
import copy
import dataclasses
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recforge.data import IdIndex
from recforge.exceptions import DataError, ModelFormatError
from recforge.models.base import Recommender
from recforge.serving.store import MAX_STRENGTH, Cursor, Event, EventStore

__all__ = [
    "EVENT_BYTES",
    "USER_BYTES",
    "EventValues",
    "ModelHolder",
    "OnlineState",
    "ServingModel",
    "attribute_frame",
    "model_ids",
    "recommend_history",
    "recommend_user",
    "similar",
    "warm_up",
    "with_new_items",
    "with_stored_items",
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
    online : OnlineState or None
        Events since the model's training cutoff.
    items_mark : int
        Latest update time of the stored items re-applied to the model (see
        :func:`with_stored_items`).
    """

    model: Recommender
    version: str
    info: dict[str, Any] = field(default_factory=dict)
    events_seq: int = 0
    loaded_at: float = field(default_factory=time.time)
    online: OnlineState | None = None
    items_mark: int = 0


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

    def swap(
        self,
        bundle: ServingModel,
        prepare: Callable[[ServingModel], ServingModel] | None = None,
    ) -> ServingModel:
        """Publish a new bundle (requests already running keep the old one).

        ``prepare`` runs under the lock just before publication (to catch up with writers
        that derive bundles from the current one, e.g. ``PUT /items``); returns what was
        published.
        """
        with self._swap_lock:
            if prepare is not None:
                bundle = prepare(bundle)
            self._current = bundle
        return bundle

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


@dataclass(frozen=True)
class EventValues:
    """How an event's value enters fold-in, with the training data's meaning.

    Fold-in re-scores a user from their training history (the stored training values) plus
    their new events, so an event's value must be on the training data's scale:

    * a ``rating`` event carries a value on that scale: used as it is, clipped to the range
      of the training values;
    * other events (``view``, ``click``, ``purchase``) carry a strength, 1.0 for one
      interaction. An implicit model gets ``strength x`` the median training value (one
      typical interaction: 1.0 on binary data, a typical rating on ratings used as
      confidences). A rating model (``explicit``) learns from ratings only, and an event
      without a rating says nothing about one (1.0 would be the worst rating), so such
      events are excluded from the user's lists but not folded in.

    Attributes
    ----------
    explicit : bool
        Whether the model learns from rating values.
    typical, low, high : float
        Median, minimum and maximum of the training values.
    """

    explicit: bool = False
    typical: float = 1.0
    low: float = -np.inf
    high: float = np.inf

    @classmethod
    def of(cls, model: Recommender) -> EventValues:
        """The meaning of ``model``'s training values (read from its seen matrix)."""
        data = np.asarray(model.seen_matrix().data, dtype=np.float64)
        data = data[np.isfinite(data)]
        if data.size == 0:
            return cls(bool(model.explicit))
        typical = float(np.median(data))
        return cls(
            bool(model.explicit),
            typical if typical != 0.0 else 1.0,
            float(data.min()),
            float(data.max()),
        )

    def fold_value(self, kind: str, value: float) -> float:
        """The value fold-in uses for one event (NaN: not folded in).

        Values are bounded whatever wrote them (an older version, another client of the
        store): a rating is clipped to the training range, a strength to
        ``[0, MAX_STRENGTH]``, and a non-finite value is not folded in.
        """
        if not np.isfinite(value):
            return float("nan")
        if kind == "rating":
            return float(min(max(value, self.low), self.high))
        if self.explicit:
            return float("nan")
        return float(min(max(value, 0.0), MAX_STRENGTH)) * self.typical


class _UserEvents:
    """One user's recent events (oldest first) and whether older ones were dropped."""

    __slots__ = ("events", "truncated")

    def __init__(self, max_history: int) -> None:
        # (item, value, fold-in value, seq, item code or -1)
        self.events: deque[tuple[str, float, float, int, int]] = deque(maxlen=max_history)
        self.truncated = False


class OnlineState:
    """Recent events per user and per-item counts since the model's training cutoff.

    The state is a bounded cache of the durable events after the cutoff; what it drops is
    never lost to exclusion: a user whose older events were dropped (more than
    ``max_history``), or who was dropped as least recently active, has their seen items read
    from the store (:meth:`seen_items`), so nothing they interacted with is recommended back.

    Parameters
    ----------
    after
        Only events after this position are applied (those newer than the model): a
        :class:`~recforge.serving.store.Cursor`, or a bare sequence number.
    max_history
        Most recent events kept per user (what fold-in uses).
    max_users
        Users kept; the least recently active are dropped first.
    items
        Item index of the model; events of these items are counted per item code (for the
        popularity fallback). Events of other items are kept in user histories only.
    max_events
        Events kept in all (least recently active users are dropped first). The state takes
        about ``max_events * EVENT_BYTES + max_users * USER_BYTES`` bytes at most
        (:data:`EVENT_BYTES`, :data:`USER_BYTES`): some 270 MB at the defaults.
    store
        The event store, read for the seen items of users whose events were dropped.
    values
        How event values enter fold-in (default: as they are).
    """

    def __init__(
        self,
        after: Cursor | int = 0,
        max_history: int = 200,
        max_users: int = 100_000,
        items: IdIndex | None = None,
        *,
        max_events: int = 1_000_000,
        store: EventStore | None = None,
        values: EventValues | None = None,
    ):
        self.cursor = after if isinstance(after, Cursor) else Cursor.after_seq(after)
        self.max_history = int(max_history)
        self.max_users = int(max_users)
        self.max_events = int(max_events)
        self.values = values or EventValues()
        self._store = store
        self._users: OrderedDict[str, _UserEvents] = OrderedDict()
        self._n_events = 0
        # users dropped as least recently active, as bits of a hash (false positives only
        # cost a store read): bounded memory however many users pass through
        self._dropped = np.zeros(_DROPPED_BITS, dtype=bool)
        self._items = items
        self._counts = np.zeros(len(items) if items is not None else 0, dtype=np.float32)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()

    @property
    def last_seq(self) -> int:
        """Sequence number of the last event applied (of the cursor)."""
        return max(self.cursor.seq, self.cursor.floor)

    def apply(self, events: Iterable[Event]) -> int:
        """Apply stored events (in the store's log order); returns how many were new."""
        n = 0
        events = [e for e in events if not self.cursor.covers(e)]
        codes = self._codes([e.item for e in events])
        folds = [self.values.fold_value(e.type, e.value) for e in events]
        with self._lock:
            if codes.size:
                np.add.at(self._counts, codes[codes >= 0], 1.0)
            for e, code, fold in zip(events, codes.tolist(), folds, strict=True):
                if self.cursor.covers(e):
                    continue
                entry = self._users.get(e.user)
                if entry is None:
                    entry = _UserEvents(self.max_history)
                    self._users[e.user] = entry
                else:
                    self._users.move_to_end(e.user)
                if len(entry.events) == self.max_history:
                    entry.truncated = True
                    self._n_events -= 1
                entry.events.append((e.item, float(e.value), fold, e.seq, code))
                self._n_events += 1
                self.cursor = self.cursor.advanced(e)
                n += 1
                self._evict()
        return n

    def _evict(self) -> None:
        while len(self._users) > 1 and (
            len(self._users) > self.max_users or self._n_events > self.max_events
        ):
            user, entry = self._users.popitem(last=False)
            self._n_events -= len(entry.events)
            self._dropped[_bit(user)] = True

    def sync(self, store: EventStore, batch: int = 50_000) -> int:
        """Read events committed since the last sync (by any replica) and apply them."""
        total = 0
        with self._sync_lock:
            while True:
                events = store.events_since(self.cursor, limit=batch)
                total += self.apply(events)
                if len(events) < batch:
                    return total

    def recent(self, user: str) -> list[tuple[str, float]]:
        """``(item, value)`` of the user's events since the cutoff, oldest first."""
        with self._lock:
            entry = self._users.get(user)
            return [(h[0], h[1]) for h in entry.events] if entry else []

    def recent_coded(self, user: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The user's events since the cutoff as ``(items, fold-in values, codes)``, oldest first.

        ``values`` are those fold-in uses (:class:`EventValues`; NaN: not folded in).
        ``codes`` are item codes of the index the state was built with (``-1``: unknown to
        it), resolved once when the event was applied, so a request does no id lookups.
        """
        with self._lock:
            entry = self._users.get(user)
            if not entry:
                return [], np.zeros(0, np.float32), np.zeros(0, np.int32)
            hist = entry.events
            items = [h[0] for h in hist]
            values = np.fromiter((h[2] for h in hist), np.float32, len(hist))
            codes = np.fromiter((h[4] for h in hist), np.int32, len(hist))
        return items, values, codes

    def seen_items(self, user: str) -> list[str] | None:
        """Every item of the user's stored events when the state holds only part of them.

        Returns ``None`` when the state holds all of the user's events since the cutoff
        (their recent items are the complete list), and the store's list otherwise: when
        older events were dropped (more than ``max_history``) or the user was dropped as
        least recently active. Exclusion must cover everything the store holds for the user.
        """
        with self._lock:
            entry = self._users.get(user)
            complete = not entry.truncated if entry is not None else not self._dropped[_bit(user)]
        if complete or self._store is None:
            return None
        return self._store.user_items(user)

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

    @property
    def n_events(self) -> int:
        """Events in memory."""
        return self._n_events


EVENT_BYTES = 160
"""Approximate memory of one event kept in an :class:`OnlineState` (measured, CPython 3.11)."""

USER_BYTES = 1100
"""Approximate memory of one user kept in an :class:`OnlineState`, besides their events."""

_DROPPED_BITS = 1 << 23  # 8 MiB of flags for users dropped from the state


def _bit(user: str) -> int:
    return hash(user) & (_DROPPED_BITS - 1)


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
    # everything the user interacted with since the cutoff: the state's recent events, or
    # the store's whole list when the state dropped some of them
    seen_items = recent_items
    if exclude_seen and state is not None:
        stored = state.seen_items(user)
        if stored is not None:
            seen_items = list(dict.fromkeys(recent_items + stored))
    conv_user = model_ids(model.users_, [user])
    ucode = int(model.users_.codes(conv_user, missing="negative")[0]) if conv_user else -1
    fold = (recent_codes >= 0) & np.isfinite(recent_vals)
    cand = model_ids(model.items_, require) if require is not None else None
    excl = model_ids(model.items_, exclude)
    if exclude_seen and seen_items:
        excl = excl + model_ids(model.items_, seen_items)
    if ucode >= 0 and (not fold.any() or not model.supports_history):
        recs = model.recommend(
            conv_user[0], k, exclude_seen=exclude_seen, items=cand, exclude=excl or None
        )
        reason = "personalised"
        if recent_items:
            reason += f"; {len(recent_items)} new events excluded"
        return _rows(recs), reason
    if fold.any() and model.supports_history:
        hist_ids, hist_vals = _fold_in_history(model, ucode, recent_codes[fold], recent_vals[fold])
        recs = model.recommend_for_history(
            hist_ids,
            hist_vals,
            k,
            exclude_seen=exclude_seen,
            candidates=cand,
            exclude=excl or None,
        )
        who = "known user" if ucode >= 0 else "new user"
        return _rows(recs), f"{who}: online fold-in of {int(fold.sum())} new events"
    items = _popular(
        bundle, state, k, list(exclude) + (seen_items if exclude_seen else []), require
    )
    return items, "unknown user: most popular items"


def _fold_in_history(
    model: Recommender, ucode: int, codes: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """External ids and values of the history a user's fold-in reads: the training items
    (in time order for sequential models), then the new events, one value per item (the
    latest event wins over training presence)."""
    seen_codes, seen_vals = (
        model.user_history(ucode)
        if ucode >= 0
        else (np.zeros(0, np.int32), np.zeros(0, np.float32))
    )
    if model.sequential and ucode >= 0:
        # the training items in time order, then the new events: one ordered session
        seen_codes = model.user_sequence(ucode)
        seen_vals = np.ones(seen_codes.size, dtype=np.float32)
    hist_codes = np.concatenate([seen_codes, codes])
    hist_vals = np.concatenate([seen_vals, values])
    order = np.arange(hist_codes.size)[::-1]
    _, first = np.unique(hist_codes[order], return_index=True)
    keep = np.sort(order[first])
    return model.items_.ids_of(hist_codes[keep]), hist_vals[keep]


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
    """Recommendations for an anonymous history (fold-in, or popularity when unsupported).

    ``values`` are on the training data's scale and clipped to its range (see
    :class:`EventValues`), so no value can push the model's arithmetic out of range.
    """
    model = bundle.model
    if not model.supports_history:
        pop = _popular(bundle, None, k, list(exclude) + list(items), require)
        return pop, f"{type(model).__name__} cannot fold in histories: most popular items"
    conv = model_ids(model.items_, items)
    vals = None
    if values is not None:
        # values on the training data's scale, as events' ratings: clipped to its range
        meaning = bundle.online.values if bundle.online is not None else EventValues.of(model)
        keep = [_parses(model.items_, x) for x in items]
        vals = [meaning.fold_value("rating", v) for v, ok in zip(values, keep, strict=True) if ok]
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


def recommend_attributes(
    bundle: ServingModel,
    attributes: Mapping[str, Any],
    k: int,
    *,
    exclude: Sequence[str] = (),
    require: Sequence[str] | None = None,
) -> tuple[list[tuple[str, float]], str]:
    """Recommendations for a new user described by attributes (popular when unsupported).

    Raises
    ------
    DataError
        When an attribute the model reads is missing (the message names it).
    """
    model = bundle.model
    columns: list[str] = []
    if model.supports_user_attributes:
        with contextlib.suppress(DataError):  # fitted without user features
            columns = model.user_attribute_columns()
    if not columns:
        pop = _popular(bundle, None, k, list(exclude), require)
        return pop, f"{type(model).__name__} does not use user attributes: most popular items"
    recs = model.recommend_for_user_attributes(
        {name: attributes.get(name) for name in columns},
        k,
        candidates=model_ids(model.items_, require) if require is not None else None,
        exclude=model_ids(model.items_, exclude) or None,
    )
    used = [c for c in columns if attributes.get(c) is not None]
    reason = f"new user: from attributes {', '.join(used)}" if used else "new user: no attributes"
    unknown = [c for c in columns if c not in used]
    if unknown:
        reason += f" ({', '.join(unknown)} not given)"
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
    return dataclasses.replace(bundle, model=clone)


def attribute_frame(model: Recommender, items: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Stored item attributes (JSON objects by id) as the table :meth:`add_items` takes.

    Raises
    ------
    DataError
        When an id is not of the type of the model's item ids.
    """
    ids: list[Any] = list(items)
    if model.items_.is_integer:
        values, ok = IdIndex.parse_int_ids(ids)
        if not ok.all():
            bad = ids[int(np.flatnonzero(~ok)[0])]
            raise DataError(f"item id {bad!r}: the served model's item ids are integers")
        ids = values.tolist()
    rows = []
    for v in items.values():
        rows.append({k: ("|".join(x) if isinstance(x, list) else x) for k, x in v.items()})
    return pd.DataFrame(rows, index=pd.Index(ids, name="item"))


def with_stored_items(
    bundle: ServingModel, store: EventStore, since: int | None = None
) -> tuple[ServingModel, int, list[str]]:
    """The bundle with the items added through ``PUT /items`` re-applied to its model.

    Items are stored durably in the event store; a model loaded later (a restart, a hot swap
    to a version trained without them) gets them back here when it can take new items
    (``supports_new_items``).

    Parameters
    ----------
    bundle
        A bundle that is not published yet (or the current one, under the holder's lock).
    store
        The event store.
    since
        ``None``: apply every stored item the model does not know, and those updated after
        the version was created. Otherwise: every item updated at or after ``since`` (epoch
        seconds), to catch up with updates made while the bundle was being loaded.

    Returns
    -------
    (bundle, mark, problems)
        ``mark`` is the latest update time read (the next ``since``); ``problems`` names the
        items that could not be applied and why (they are skipped, never fatal).
    """
    stamps = store.item_stamps(since)
    mark = max(stamps.values(), default=since if since is not None else 0)
    if not bundle.model.supports_new_items or not stamps:
        return dataclasses.replace(bundle, items_mark=mark), mark, []
    model = bundle.model
    if since is None:
        created = float(bundle.info.get("created") or 0.0)
        codes = _string_id_codes(model.items_, list(stamps))
        wanted = [i for (i, t), c in zip(stamps.items(), codes.tolist(), strict=True) if c < 0]
        if created:
            wanted += [
                i for (i, t), c in zip(stamps.items(), codes.tolist(), strict=True)
                if c >= 0 and t >= created
            ]  # fmt: skip
    else:
        wanted = list(stamps)
    if not wanted:
        return dataclasses.replace(bundle, items_mark=mark), mark, []
    attributes = store.get_items(wanted)
    problems: list[str] = []
    try:
        new = with_new_items(bundle, attribute_frame(model, attributes))
    except (DataError, KeyError, ValueError):
        new = None
        # one bad item must not keep the others out: apply them one by one
        for item_id, attrs in attributes.items():
            try:
                step = with_new_items(new or bundle, attribute_frame(model, {item_id: attrs}))
            except (DataError, KeyError, ValueError) as exc:
                problems.append(f"{item_id}: {exc}")
                continue
            new = step or new
    return dataclasses.replace(new or bundle, items_mark=mark), mark, problems


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
