"""Prequential evaluation of the feedback loop: replay a data set's events through the service.

:func:`replay` sorts a data set's interactions by time, trains the initial model on the first
``initial_fraction`` of them, and replays the following events one at a time through a real
service (:func:`recforge.serving.app.create_app` behind uvicorn on a loopback port, called
with :class:`recforge.client.Client` over HTTP): for each event it asks for the user's top-k
list, scores whether the event's item is in it (hit rate and NDCG with a single relevant
item: ``1 / log2(rank + 1)``), and then, in the arms that feed the loop, posts the event.

Arms, all on the same event stream and the same initial model:

``static``
    The initial model as trained; no event is posted, so nothing changes while replaying.
``online``
    Every event is posted; the service's online updates (fold-in of the user's new events,
    their exclusion, popularity counts) are the only change.
``periodic``
    As ``online``, plus a retrain every ``retrain_every`` events or every
    ``retrain_period_s`` seconds of event time: :func:`recforge.serving.retrain.retrain` with
    its promotion gate (``periodic_mode="gate"``), or a refit of the served recipe on all
    data, promoted without a comparison (``"refresh"``). A promoted version is hot-swapped by
    the service's registry polling; the replay waits until the service answers with it.

Confidence intervals are percentile intervals of a *cluster bootstrap over users*: users are
resampled with replacement and each resample's statistic is the event-weighted mean of the
drawn users' events, because events of one user are not independent. Differences between
arms are paired: the same events, resampled by the same users.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from recforge.data import Dataset
from recforge.exceptions import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.registry import ModelRegistry
from recforge.serving.schemas import MIN_TIMESTAMP
from recforge.serving.settings import ServiceSettings
from recforge.serving.store import EventStore

__all__ = [
    "ARMS",
    "ReplayResult",
    "cluster_bootstrap",
    "replay",
    "summarise",
]

ARMS = ("static", "online", "periodic")
Arm = Literal["static", "online", "periodic"]
PeriodicMode = Literal["gate", "refresh"]
#: longest wait for the service to serve a newly promoted version
SWAP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RetrainRecord:
    """One retrain of the ``periodic`` arm."""

    before_event: int
    """Position in the replayed stream of the first event scored after the retrain."""
    promoted: bool
    reason: str
    new_version: str | None
    seconds: float
    challenger_score: float | None = None
    active_score: float | None = None
    n_test_users: int | None = None


@dataclass
class ReplayResult:
    """Per-event outcomes of every arm, their summaries and the run's settings.

    Attributes
    ----------
    events : pandas.DataFrame
        One row per arm and replayed event: ``arm, position, time, user, item, value, rank``
        (1-based, 0 when the item was not in the top k), ``hit``, ``ndcg``,
        ``model_version``, ``reason`` (the service's account of how the list was made).
    windows : pandas.DataFrame
        Per arm and window of consecutive events: ``n_events``, ``n_users``, the time range
        and ``hit_rate``/``ndcg`` with ``*_low``/``*_high`` interval bounds.
    overall : pandas.DataFrame
        The same over all replayed events, one row per arm.
    differences : pandas.DataFrame
        Paired differences between arms (``online - static``, ...) with their intervals.
    retrains : list of RetrainRecord
        What each retrain of the ``periodic`` arm decided.
    settings : dict
        Everything needed to reproduce the run.
    timings : dict
        Wall seconds per arm and requests sent.
    """

    events: pd.DataFrame
    windows: pd.DataFrame
    overall: pd.DataFrame
    differences: pd.DataFrame
    retrains: list[RetrainRecord] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the per-event table is written separately as Parquet)."""
        return {
            "settings": self.settings,
            "timings": self.timings,
            "overall": _records(self.overall),
            "windows": _records(self.windows),
            "differences": _records(self.differences),
            "retrains": [asdict(r) for r in self.retrains],
        }

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``replay.json`` and ``replay_events.parquet`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "replay.json", "events": out / "replay_events.parquet"}
        tmp = paths["json"].with_name(".replay.json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
        tmp.replace(paths["json"])
        self.events.to_parquet(paths["events"], index=False)
        return paths


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({str(k): _jsonable(v) for k, v in row.items()})
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# --------------------------------------------------------------------------- statistics
def cluster_bootstrap(
    values: np.ndarray,
    clusters: np.ndarray,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    rng: int | np.random.Generator = 0,
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile interval, resampling whole clusters (users).

    Parameters
    ----------
    values
        One value per event (e.g. a hit, or a paired difference).
    clusters
        Cluster of each event (any hashable ids; users in the replay).
    n_boot
        Bootstrap resamples.
    confidence
        Level of the interval.
    rng
        Seed or generator.

    Returns
    -------
    (mean, low, high)
        ``mean`` is the plain mean over events; ``nan`` bounds when there are fewer than two
        clusters.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    codes = pd.factorize(np.asarray(clusters))[0]
    sums = np.bincount(codes, weights=values)
    counts = np.bincount(codes).astype(np.float64)
    m = sums.size
    if m < 2 or n_boot < 1:
        return mean, math.nan, math.nan
    gen = np.random.default_rng(rng)
    draws = gen.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(np.float64)
    est = (draws @ sums) / (draws @ counts)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(est, [alpha, 1.0 - alpha])
    return mean, float(low), float(high)


def summarise(
    events: pd.DataFrame,
    *,
    windows: int = 10,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Windows, overall figures and paired arm differences of a replay's per-event table.

    Returns
    -------
    (windows, overall, differences)
        See :class:`ReplayResult`.
    """
    if windows < 1:
        raise ConfigError(f"windows must be >= 1, got {windows}")
    n = int(events["position"].max()) + 1 if len(events) else 0
    win = (events["position"].to_numpy() * windows) // max(n, 1)
    events = events.assign(window=win)
    rows: list[dict[str, Any]] = []
    overall: list[dict[str, Any]] = []
    for arm, part in events.groupby("arm", sort=False):
        overall.append({"arm": arm, **_stats(part, n_boot, confidence, seed)})
        for w, chunk in part.groupby("window", sort=True):
            rows.append(
                {"arm": arm, "window": int(str(w)), **_stats(chunk, n_boot, confidence, seed)}
            )
    diffs: list[dict[str, Any]] = []
    arms = list(dict.fromkeys(events["arm"]))
    pairs = [
        (a, b)
        for a, b in (("online", "static"), ("periodic", "static"), ("periodic", "online"))
        if a in arms and b in arms
    ]
    for a, b in pairs:
        left = events[events["arm"] == a].set_index("position")
        right = events[events["arm"] == b].set_index("position").reindex(left.index)
        for metric in ("hit", "ndcg"):
            d = left[metric].to_numpy() - right[metric].to_numpy()
            mean, lo, hi = cluster_bootstrap(
                d, left["user"].to_numpy(), n_boot=n_boot, confidence=confidence, rng=seed
            )
            name = "hit_rate" if metric == "hit" else "ndcg"
            diffs.append(
                {
                    "comparison": f"{a} - {b}",
                    "metric": name,
                    "difference": mean,
                    "low": lo,
                    "high": hi,
                    "n_events": int(d.size),
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(overall), pd.DataFrame(diffs)


def _stats(part: pd.DataFrame, n_boot: int, confidence: float, seed: int) -> dict[str, Any]:
    users = part["user"].to_numpy()
    out: dict[str, Any] = {
        "n_events": len(part),
        "n_users": int(pd.unique(users).size),
        "time_start": int(part["time"].min()),
        "time_end": int(part["time"].max()),
    }
    for metric, name in (("hit", "hit_rate"), ("ndcg", "ndcg")):
        mean, lo, hi = cluster_bootstrap(
            part[metric].to_numpy(), users, n_boot=n_boot, confidence=confidence, rng=seed
        )
        out[name], out[f"{name}_low"], out[f"{name}_high"] = mean, lo, hi
    return out


# --------------------------------------------------------------------------- data
def _ordered_frame(data: Dataset) -> tuple[pd.DataFrame, int]:
    """Interactions by time (stable), shifted into the service's accepted time range."""
    if data.time is None:
        raise DataError(
            f"data set {data.name or '<unnamed>'!r} has no timestamps; replay needs the time "
            "order of the events"
        )
    frame = data.to_frame().sort_values("time", kind="stable").reset_index(drop=True)
    tmin, tmax = int(frame["time"].iloc[0]), int(frame["time"].iloc[-1])
    offset = 0
    now = int(time.time())
    if tmin < MIN_TIMESTAMP or tmax > now:
        # the service refuses pre-2000 and future stamps: move the whole clock (intervals kept)
        offset = now - 3600 - tmax
        if tmin + offset < MIN_TIMESTAMP:
            raise DataError(
                f"data set {data.name!r} spans {tmax - tmin} s, more than the service's "
                "accepted time range (2000 until now)"
            )
        frame["time"] = frame["time"].astype(np.int64) + offset
    return frame, offset


def split_stream(
    data: Dataset, initial_fraction: float = 0.8, n_events: int | None = None
) -> tuple[Dataset, pd.DataFrame, int]:
    """The initial training data and the stream of events to replay, in time order.

    The initial data set holds the first ``initial_fraction`` of the interactions by time and
    only their users and items (ids that first appear later are unknown to the initial
    model, as they would be in production). The stream is the next ``n_events`` interactions
    (all when ``None``), with ``position`` 0, 1, ...

    Returns
    -------
    (initial, stream, time_offset)
        ``time_offset`` seconds were added to every timestamp (0 unless the data predate
        2000, which the service refuses).
    """
    if not 0.0 < initial_fraction < 1.0:
        raise ConfigError(f"initial_fraction must be in (0, 1), got {initial_fraction!r}")
    if n_events is not None and n_events < 1:
        raise ConfigError(f"n_events must be >= 1, got {n_events!r}")
    frame, offset = _ordered_frame(data)
    n_init = round(len(frame) * initial_fraction)
    if n_init < 1 or n_init >= len(frame):
        raise DataError(f"initial_fraction {initial_fraction} leaves no events on one side")
    attrs = data.item_attributes
    init = Dataset.from_frame(
        frame.iloc[:n_init],
        value="value",
        time="time",
        item_attributes=attrs,
        name=f"{data.name or 'data'}[:{initial_fraction:g}]",
    )
    stream = frame.iloc[n_init:]
    if n_events is not None:
        stream = stream.iloc[:n_events]
    stream = stream.reset_index(drop=True)
    stream.insert(0, "position", np.arange(len(stream), dtype=np.int64))
    return init, stream, offset


# --------------------------------------------------------------------------- replay
@dataclass(frozen=True)
class _Plan:
    """Settings of one replay, validated once (ConfigError) on construction."""

    arms: tuple[str, ...]
    k: int
    initial_fraction: float
    retrain_every: int | None
    retrain_period_s: int | None
    periodic_mode: PeriodicMode
    gate_metric: str
    gate_holdout: float
    gate_min_users: int
    gate_margin: float
    windows: int
    n_boot: int
    confidence: float
    seed: int

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if self.periodic_mode not in ("gate", "refresh"):
            raise ConfigError(
                f"periodic_mode must be 'gate' or 'refresh', got {self.periodic_mode!r}"
            )
        if "periodic" in self.arms and (self.retrain_every is None) == (
            self.retrain_period_s is None
        ):
            raise ConfigError(
                "the periodic arm needs exactly one of retrain_every, retrain_period_s"
            )
        for name in ("retrain_every", "retrain_period_s"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")


def _boundaries(stream: pd.DataFrame, plan: _Plan) -> set[int]:
    """Positions before which the periodic arm retrains."""
    n = len(stream)
    if plan.retrain_every is not None:
        return set(range(plan.retrain_every, n, plan.retrain_every))
    assert plan.retrain_period_s is not None
    period = plan.retrain_period_s
    slot = stream["time"].to_numpy() // period  # e.g. the day of each event
    return {int(p) for p in np.flatnonzero(np.diff(slot) > 0) + 1}


def replay(
    data: Dataset,
    model: Recommender,
    workdir: str | Path,
    *,
    k: int = 10,
    initial_fraction: float = 0.8,
    n_events: int | None = None,
    arms: Sequence[str] = ARMS,
    retrain_every: int | None = None,
    retrain_period_s: int | None = None,
    periodic_mode: PeriodicMode = "gate",
    gate_holdout: float = 0.1,
    gate_min_users: int = 20,
    gate_margin: float = 0.0,
    windows: int = 10,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> ReplayResult:
    """Replay ``data``'s events in time order through a real service, for each arm.

    Parameters
    ----------
    data
        Interactions with timestamps.
    model
        Unfitted model (its hyperparameters are the recipe); fitted once on the initial data.
    workdir
        Directory for each arm's registry and event store (SQLite).
    k
        List length scored.
    initial_fraction
        Share of the interactions (oldest first) the initial model is trained on.
    n_events
        Events replayed after the initial part (default: all of them).
    arms
        Any of ``"static"``, ``"online"``, ``"periodic"``.
    retrain_every, retrain_period_s
        Periodic arm: retrain every this many events, or whenever the event time enters a new
        period of this many seconds (86400: nightly). One of them is needed for ``periodic``.
    periodic_mode
        ``"gate"``: :func:`~recforge.serving.retrain.retrain` with its promotion gate
        (``ndcg@k``, ``gate_holdout``, ``gate_min_users``, ``gate_margin``); ``"refresh"``:
        refit the served recipe on all data and promote it without a comparison.
    windows
        Consecutive equal-count windows of the stream in the summaries.
    n_boot, confidence
        Cluster bootstrap over users for every interval.
    seed
        Seed of the bootstrap, and ``rng`` of the model when it takes one.
    progress
        Called as ``progress(arm, done, total)`` every 100 events.

    Returns
    -------
    ReplayResult

    Raises
    ------
    ConfigError
        Invalid settings.
    DataError
        No timestamps, or too few events.
    """
    plan = _Plan(
        arms=_check_arms(arms),
        k=k,
        initial_fraction=initial_fraction,
        retrain_every=retrain_every,
        retrain_period_s=retrain_period_s,
        periodic_mode=periodic_mode,
        gate_metric=f"ndcg@{k}",
        gate_holdout=gate_holdout,
        gate_min_users=gate_min_users,
        gate_margin=gate_margin,
        windows=windows,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
    )
    initial, stream, offset = split_stream(data, initial_fraction, n_events)
    recipe = _seeded_recipe(model, seed)
    events, retrains, timings = _run_arms(recipe, initial, stream, Path(workdir), plan, progress)
    win, overall, diffs = summarise(
        events, windows=windows, n_boot=n_boot, confidence=confidence, seed=seed
    )
    settings = _settings(data, model, recipe, initial, stream, offset, plan)
    return ReplayResult(events, win, overall, diffs, retrains, settings, timings)


def _check_arms(arms: Sequence[str]) -> tuple[str, ...]:
    """``arms`` without repeats, in the given order (ConfigError for an unknown or no arm)."""
    arms = tuple(dict.fromkeys(arms))
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        raise ConfigError(f"arms must be among {', '.join(ARMS)}; got {', '.join(arms) or 'none'}")
    return arms


def _seeded_recipe(model: Recommender, seed: int) -> Recommender:
    """An unfitted copy of ``model`` whose unset ``rng`` (if it takes one) is ``seed``."""
    recipe = model.clone()
    if "rng" in recipe.param_names() and recipe.get_params().get("rng") is None:
        recipe.set_params(rng=seed)
    return recipe


def _run_arms(
    recipe: Recommender,
    initial: Dataset,
    stream: pd.DataFrame,
    root: Path,
    plan: _Plan,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[pd.DataFrame, list[RetrainRecord], dict[str, Any]]:
    """Fit ``recipe`` on ``initial`` once, then replay ``stream`` through each arm.

    Returns the scored events of all arms, the retrains, and the timings.
    """
    t0 = time.perf_counter()
    fitted = recipe.clone().fit(initial)
    fit_s = time.perf_counter() - t0
    parts: list[pd.DataFrame] = []
    retrains: list[RetrainRecord] = []
    timings: dict[str, Any] = {"initial_fit_s": round(fit_s, 3)}
    for arm in plan.arms:
        t0 = time.perf_counter()
        frame, records, requests = _run_arm(
            arm, fitted, initial, stream, root / arm, plan, progress
        )
        timings[arm] = {"seconds": round(time.perf_counter() - t0, 3), "requests": requests}
        parts.append(frame)
        retrains.extend(records)
    return pd.concat(parts, ignore_index=True), retrains, timings


def _settings(
    data: Dataset,
    model: Recommender,
    recipe: Recommender,
    initial: Dataset,
    stream: pd.DataFrame,
    offset: int,
    plan: _Plan,
) -> dict[str, Any]:
    """The ``settings`` of a :class:`ReplayResult`: data, recipe, plan and stream facts."""
    return {
        "data": data.name,
        "model": type(model).__name__,
        "params": {kk: v for kk, v in recipe.get_params().items() if _plain(v)},
        "k": plan.k,
        "initial_fraction": plan.initial_fraction,
        "n_initial": initial.n_interactions,
        "n_events": len(stream),
        "arms": list(plan.arms),
        "retrain_every": plan.retrain_every,
        "retrain_period_s": plan.retrain_period_s,
        "periodic_mode": plan.periodic_mode if "periodic" in plan.arms else None,
        "gate": {
            "metric": plan.gate_metric,
            "holdout": plan.gate_holdout,
            "min_users": plan.gate_min_users,
            "margin": plan.gate_margin,
        },
        "windows": plan.windows,
        "interval": (
            f"{plan.confidence:.0%} percentile cluster bootstrap over users "
            f"({plan.n_boot} resamples)"
        ),
        "seed": plan.seed,
        "time_offset_s": offset,
        **_unknown_shares(initial, stream),
    }


def _unknown_shares(initial: Dataset, stream: pd.DataFrame) -> dict[str, float]:
    """Shares of the stream's users and items that the initial model has not seen."""
    known_users = set(initial.users.ids.astype(str).tolist())
    known_items = set(initial.items.ids.astype(str).tolist())
    return {
        "stream_users_unknown_to_initial_model": float(
            1.0 - stream["user"].astype(str).isin(known_users).mean()
        ),
        "stream_items_unknown_to_initial_model": float(
            1.0 - stream["item"].astype(str).isin(known_items).mean()
        ),
    }


def _plain(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _run_arm(
    arm: str,
    fitted: Recommender,
    initial: Dataset,
    stream: pd.DataFrame,
    workdir: Path,
    plan: _Plan,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[pd.DataFrame, list[RetrainRecord], int]:
    """Replay the stream through a fresh service of one arm."""
    from recforge.client import Client
    from recforge.serving._thread import serve_in_thread

    workdir.mkdir(parents=True, exist_ok=True)
    registry = ModelRegistry(workdir / "registry")
    if registry.active_version() is not None:
        raise ConfigError(f"{workdir} already holds a replay; give an empty output directory")
    registry.publish(
        fitted, data_fingerprint=initial.fingerprint(), extra={"events_seq": 0}, promote=True
    )
    db = f"sqlite:///{workdir / 'events.db'}"
    key = secrets.token_urlsafe(24)
    settings = ServiceSettings(
        registry=registry.root,
        db=db,
        write_keys=[key],
        max_k=max(plan.k, 10),
        poll_interval_s=0.05,
        sync_interval_s=0.5,
        web=False,
    )
    boundaries = _boundaries(stream, plan) if arm == "periodic" else set()
    posts = arm != "static"
    n = len(stream)
    users = stream["user"].astype(str).tolist()
    items = stream["item"].astype(str).tolist()
    values = stream["value"].to_numpy(dtype=np.float64)
    times = stream["time"].to_numpy(dtype=np.int64)
    ranks = np.zeros(n, dtype=np.int64)
    versions: list[str] = []
    reasons: list[str] = []
    records: list[RetrainRecord] = []
    requests = 0
    store = EventStore(db)
    with serve_in_thread(settings, store) as url, Client(url, api_key=key, timeout=60.0) as rf:
        for j in range(n):
            if j in boundaries:
                rec = _retrain(registry, EventStore(db), initial, fitted, plan, j)
                records.append(rec)
                if rec.new_version is not None:
                    requests += _wait_for_version(rf, rec.new_version)
            recs = rf.recommend(users[j], k=plan.k)
            requests += 1
            ids = recs.ids
            ranks[j] = ids.index(items[j]) + 1 if items[j] in ids else 0
            versions.append(recs.model_version)
            reasons.append(_reason_kind(recs.reason))
            if posts:
                rf.send_event(
                    users[j],
                    items[j],
                    type="rating",
                    value=float(values[j]),
                    timestamp=int(times[j]),
                    event_id=f"replay-{j}",
                )
                requests += 1
            if progress is not None and (j + 1) % 100 == 0:
                progress(arm, j + 1, n)
    if progress is not None and n % 100:
        progress(arm, n, n)
    hit = (ranks > 0).astype(np.float64)
    ndcg = np.zeros(n, dtype=np.float64)
    ndcg[ranks > 0] = 1.0 / np.log2(ranks[ranks > 0] + 1.0)
    frame = pd.DataFrame(
        {
            "arm": arm,
            "position": stream["position"].to_numpy(),
            "time": times,
            "user": users,
            "item": items,
            "value": values,
            "rank": ranks,
            "hit": hit,
            "ndcg": ndcg,
            "model_version": versions,
            "reason": reasons,
        }
    )
    return frame, records, requests


def _reason_kind(reason: str) -> str:
    """The service's reason without counts ("known user: online fold-in of 3 new events")."""
    return "".join(c for c in reason.split(";")[0] if not c.isdigit()).replace("  ", " ").strip()


def _wait_for_version(rf: Any, version: str) -> int:
    """Poll ``GET /model`` until the service serves ``version``; returns requests sent."""
    deadline = time.monotonic() + SWAP_TIMEOUT_S
    sent = 0
    while True:
        sent += 1
        if rf.model_info().version == version:
            return sent
        if time.monotonic() > deadline:
            raise ConfigError(f"the service did not swap to {version} in {SWAP_TIMEOUT_S:g} s")
        time.sleep(0.02)


def _retrain(
    registry: ModelRegistry,
    store: EventStore,
    initial: Dataset,
    fitted: Recommender,
    plan: _Plan,
    position: int,
) -> RetrainRecord:
    """One retrain of the periodic arm, through the gate or as a refresh."""
    from recforge.serving.retrain import retrain

    t0 = time.perf_counter()
    if plan.periodic_mode == "gate":
        d = retrain(
            registry,
            store,
            base=initial,
            metric=plan.gate_metric,
            margin=plan.gate_margin,
            holdout=plan.gate_holdout,
            min_users=plan.gate_min_users,
        )
        return RetrainRecord(
            position,
            d.promoted,
            d.reason,
            d.new_version,
            round(time.perf_counter() - t0, 3),
            d.challenger_score,
            d.active_score,
            d.n_test_users,
        )
    version = _refresh(registry, store, initial)
    return RetrainRecord(
        position,
        True,
        "refresh: the served recipe refitted on all data, promoted without a comparison",
        version,
        round(time.perf_counter() - t0, 3),
    )


def _refresh(registry: ModelRegistry, store: EventStore, initial: Dataset) -> str:
    """Refit the active recipe on the initial data plus every stored event; promote it."""
    from recforge.serving.retrain import combine

    active = registry.active_version()
    if active is None:
        raise ConfigError("no active version to refresh")
    model, _ = registry.load(active)
    events = store.events_frame()
    frame = combine(initial, events).sort_values("time", kind="stable")
    full = Dataset.from_frame(
        frame, value="value", time="time", item_attributes=initial.item_attributes, name="refresh"
    )
    info = registry.publish(
        model.clone().fit(full),
        data_fingerprint=full.fingerprint(),
        parent=active,
        extra={"events_seq": int(events["seq"].max()) if len(events) else 0},
        promote=True,
    )
    return info.version
