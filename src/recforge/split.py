"""Train / validation / test splits of a :class:`~recforge.data.Dataset`.

Every splitter works on distinct ``(user, item)`` *pairs*: all copies of a repeated pair go to
the same side, so no test pair is ever in train. The three parts of a :class:`Split` share the
id indices of the source dataset, so internal codes line up between them.

Splitters
---------
:func:`random_split`
    Random pairs, globally or within each user.
:func:`temporal_split`
    A global cut by timestamp or time quantile, or the last ``n`` (or last fraction) of each
    user's pairs.
:func:`leave_one_out`
    The last (or a random) pair of every user; optionally the one before it for validation.
:func:`kfold`
    ``n_folds`` splits over pairs, or stratified within users.
:func:`cold_start_split`
    Users or items held out entirely (optionally keeping ``known`` interactions of each
    held-out user in train, for the "1, 3, 5 known interactions" protocol).
:func:`split_by_name`
    Run one of the above from a configuration dict.

Per-user splitters never move anything to test for a user with fewer than two distinct
pairs, and always keep at least one pair of each user in train. Every splitter that draws at
random takes ``rng`` (a seed or a :class:`numpy.random.Generator`) and is deterministic under it.
:func:`random_split` and :func:`leave_one_out` (``by="random"``) order pairs by a keyed hash
of ``(seed, user code, item code)`` (:func:`pair_random_keys`, a Generator gives the seed), which
:mod:`recforge.spark` computes identically, so both engines give the same split.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from recforge.data import Dataset
from recforge.exceptions import ConfigError, DataError

__all__ = [
    "SPLITS_METHODS",
    "SPLIT_METHODS",
    "Split",
    "cold_start_split",
    "kfold",
    "leave_one_out",
    "pair_hash_seed",
    "pair_random_keys",
    "random_split",
    "split_by_name",
    "split_options",
    "splits_by_name",
    "temporal_split",
]

RngLike = int | np.random.Generator | None


# --------------------------------------------------------------------------- the Split type
@dataclass(frozen=True)
class Split:
    """Train, test and optional validation interactions sharing one pair of id indices.

    Attributes
    ----------
    train : Dataset
        Interactions to fit on.
    test : Dataset
        Held-out interactions; no ``(user, item)`` pair of test occurs in train.
    valid : Dataset or None
        Interactions carved from the training side for tuning (``None`` when not asked for).
    name : str
        Description of the rule that produced the split, e.g. ``"temporal(quantile=0.8)"``.
    """

    train: Dataset
    test: Dataset
    valid: Dataset | None
    name: str

    def __post_init__(self) -> None:
        for part_name in ("test", "valid"):
            part = getattr(self, part_name)
            if part is None:
                continue
            if part.users != self.train.users or part.items != self.train.items:
                raise DataError(f"Split {part_name} does not share the id indices of train")

    @property
    def parts(self) -> dict[str, Dataset]:
        """The non-empty parts by name (``"train"``, ``"valid"``, ``"test"``)."""
        out = {"train": self.train}
        if self.valid is not None:
            out["valid"] = self.valid
        out["test"] = self.test
        return out

    def test_users(self) -> np.ndarray:
        """Sorted codes of the users with at least one test interaction."""
        return np.unique(self.test.user)

    def cold_users(self) -> np.ndarray:
        """Codes of test users that have no interaction in train."""
        users = self.test_users()
        return users[self.train.user_counts()[users] == 0]

    def describe(self) -> pd.DataFrame:
        """Size of each part: interactions, users, items, cold users/items and time range.

        Returns
        -------
        pandas.DataFrame
            One row per part (index ``part``), columns ``interactions``, ``users``, ``items``,
            ``cold_users`` and ``cold_items`` (entities absent from train), ``share`` of all
            interactions, and ``time_min``/``time_max`` when the data has timestamps.
        """
        train_users = self.train.user_counts() > 0
        train_items = self.train.item_counts() > 0
        total = sum(len(p) for p in self.parts.values())
        rows = []
        for name, part in self.parts.items():
            users = np.unique(part.user)
            items = np.unique(part.item)
            row: dict[str, Any] = {
                "part": name,
                "interactions": len(part),
                "users": int(users.size),
                "items": int(items.size),
                "cold_users": int((~train_users[users]).sum()),
                "cold_items": int((~train_items[items]).sum()),
                "share": len(part) / total if total else 0.0,
            }
            if part.time is not None:
                row["time_min"] = int(part.time.min()) if len(part) else None
                row["time_max"] = int(part.time.max()) if len(part) else None
            rows.append(row)
        return pd.DataFrame(rows).set_index("part")

    def __repr__(self) -> str:
        valid = f", valid={len(self.valid)}" if self.valid is not None else ""
        return f"Split({self.name!r}, train={len(self.train)}{valid}, test={len(self.test)})"


# --------------------------------------------------------------------------- helpers
def _generator(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (
        isinstance(rng, int | np.integer) and not isinstance(rng, bool) and rng >= 0
    ):
        return np.random.default_rng(rng)
    raise ConfigError(f"rng must be a non-negative int seed or a numpy Generator, got {rng!r}")


def pair_hash_seed(rng: RngLike) -> int:
    """The key of :func:`pair_random_keys` drawn from ``rng`` (an int seed or a Generator).

    ``rng=1`` and ``numpy.random.default_rng(1)`` give the same key, hence the same split.
    """
    return int(_generator(rng).integers(0, 1 << 62))


_U64 = np.uint64
_P1, _P2, _P3 = _U64(0x9E3779B185EBCA87), _U64(0xC2B2AE3D27D4EB4F), _U64(0x165667B19E3779F9)
_P4, _P5 = _U64(0x85EBCA77C2B2AE63), _U64(0x27D4EB2F165667C5)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return np.asarray((x << _U64(r)) | (x >> _U64(64 - r)))


def _fmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U64(33))
    h = h * _P2
    h = h ^ (h >> _U64(29))
    h = h * _P3
    return np.asarray(h ^ (h >> _U64(32)))


def pair_random_keys(seed: int, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """The random key of each ``(user code, item code)`` pair under ``seed`` (int64).

    XXH64 of ``(seed as int64, user as int32, item as int32)`` with seed 42, exactly as
    Spark's ``xxhash64(seed, user, item)`` computes it, so the random splitters of
    :mod:`recforge.spark` put every pair on the same side as the local ones: a pair's key
    depends only on the seed and its codes, not on row order or threads.
    """
    u = np.asarray(user, dtype=np.int32).astype(np.int64).astype(np.uint64) & _U64(0xFFFFFFFF)
    i = np.asarray(item, dtype=np.int32).astype(np.int64).astype(np.uint64) & _U64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        s = np.full(u.shape, np.int64(seed), dtype=np.int64).astype(np.uint64)
        h = np.full(u.shape, _U64(42)) + _P5 + _U64(8)  # hashLong(seed, 42)
        h = h ^ (_rotl(s * _P2, 31) * _P1)
        h = _fmix(_rotl(h, 27) * _P1 + _P4)
        for v in (u, i):  # hashInt(v, h)
            h = h + _P5 + _U64(4)
            h = h ^ (v * _P1)
            h = _fmix(_rotl(h, 23) * _P2 + _P3)
    return h.view(np.int64)


def _random_order(ds: Dataset, pairs: _Pairs, seed: int) -> np.ndarray:
    """Rank of each pair by its random key, ties by first appearance (a permutation)."""
    keys = pair_random_keys(seed, pairs.user, ds.item[pairs.first_pos])
    order = np.lexsort((np.arange(pairs.n), keys))
    rank = np.empty(pairs.n, dtype=np.int64)
    rank[order] = np.arange(pairs.n)
    return rank


def _check_fraction(name: str, value: Any, *, allow_zero: bool) -> float:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (value >= 0.0 if allow_zero else value > 0.0) and value < 1
    if not ok:
        lb = "[" if allow_zero else "("
        raise ConfigError(f"{name} must be a float in the range {lb}0, 1). Got {value!r} instead.")
    return float(value)


def _check_count_or_fraction(name: str, value: Any, *, allow_zero: bool) -> int | float:
    """A positive int (count) or a float in (0, 1) (fraction)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        if value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(
                f"{name} must be a positive int or a float in (0, 1). Got {value!r} instead."
            )
        return int(value)
    if isinstance(value, float | np.floating):
        if value == 0.0 and allow_zero:
            return 0
        if math.isfinite(value) and 0.0 < value < 1.0:
            return float(value)
    raise ConfigError(f"{name} must be a positive int or a float in (0, 1). Got {value!r} instead.")


@dataclass(frozen=True)
class _Pairs:
    """Distinct (user, item) pairs of a dataset and the pair of every interaction."""

    user: np.ndarray  # int64 user code per pair
    inverse: np.ndarray  # pair position of every interaction
    first_time: np.ndarray | None  # earliest time of each pair
    first_pos: np.ndarray  # position of the first interaction of each pair

    @property
    def n(self) -> int:
        return int(self.user.shape[0])


def _pairs(ds: Dataset) -> _Pairs:
    """Distinct pairs in order of first appearance (hash-based: linear time, no sort)."""
    key = ds.user.astype(np.int64) * max(ds.n_items, 1) + ds.item.astype(np.int64)
    codes, uniques = pd.factorize(key, sort=False)
    inverse = np.asarray(codes, dtype=np.int64)
    n_pairs = int(uniques.shape[0])
    # codes are handed out 0, 1, 2, ... in order of first appearance
    if inverse.size:
        running_max = np.maximum.accumulate(inverse)
        is_new = np.empty(inverse.size, dtype=bool)
        is_new[0] = True
        np.greater(inverse[1:], running_max[:-1], out=is_new[1:])
        first_pos = np.flatnonzero(is_new).astype(np.int64)
    else:
        first_pos = np.zeros(0, dtype=np.int64)
    first_time = None
    if ds.time is not None:
        first_time = np.full(n_pairs, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_time, inverse, ds.time)
    return _Pairs(
        user=ds.user[first_pos].astype(np.int64),
        inverse=inverse,
        first_time=first_time,
        first_pos=first_pos,
    )


def _rank_within_user(pair_user: np.ndarray, order_key: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rank (0-based, ascending ``order_key``) of each pair within its user, and user sizes.

    ``order_key`` is a permutation of ``0 .. n-1`` (a total order of the pairs), so one sort
    of the combined key ``user * n + order_key`` orders pairs by user, then by the key.
    """
    n = pair_user.shape[0]
    order = np.argsort(pair_user.astype(np.int64) * max(n, 1) + order_key)
    sorted_user = pair_user[order]
    starts = np.flatnonzero(np.r_[True, sorted_user[1:] != sorted_user[:-1]]) if n else np.array([])
    sizes_sorted = np.diff(np.r_[starts, n]).astype(np.int64)
    group_start = np.repeat(starts, sizes_sorted)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    size = np.empty(n, dtype=np.int64)
    size[order] = np.repeat(sizes_sorted, sizes_sorted)
    return rank, size


def _tail_per_user(pair_user: np.ndarray, order_key: np.ndarray, amount: int | float) -> np.ndarray:
    """Mask of the last ``amount`` pairs (count or fraction) of each user by ``order_key``.

    Users with fewer than two pairs give none; at least one pair of each user stays out.
    """
    rank, size = _rank_within_user(pair_user, order_key)
    if isinstance(amount, float):
        n_tail = np.floor(size * amount + 0.5).astype(np.int64)
    else:
        n_tail = np.full(size.shape, amount, dtype=np.int64)
    n_tail = np.minimum(n_tail, size - 1)
    return rank >= size - n_tail


def _time_order_key(ds: Dataset, pairs: _Pairs) -> np.ndarray:
    """Rank of each pair by first time, ties broken by first appearance (a permutation)."""
    if pairs.first_time is None:
        return np.arange(pairs.n, dtype=np.int64)
    # pairs are numbered in order of first appearance, so a stable sort breaks ties by it
    order = np.argsort(pairs.first_time, kind="stable")
    key = np.empty(pairs.n, dtype=np.int64)
    key[order] = np.arange(pairs.n)
    return key


def _carve(
    ds: Dataset,
    test_pairs: np.ndarray,
    pairs: _Pairs,
    name: str,
    valid_rule: Callable[[Dataset], np.ndarray] | None,
) -> Split:
    """Build a Split from a pair-level test mask, carving validation from train with a rule."""
    test_rows = test_pairs[pairs.inverse]
    train = ds.subset(~test_rows)
    test = ds.subset(test_rows)
    valid = None
    if valid_rule is not None:
        valid_rows = valid_rule(train)
        valid = train.subset(valid_rows)
        train = train.subset(~valid_rows)
    return Split(train=train, test=test, valid=valid, name=name)


def _rows(rule: Callable[[Dataset, _Pairs], np.ndarray]) -> Callable[[Dataset], np.ndarray]:
    """Lift a pair-level rule to an interaction-level mask function."""

    def apply(ds: Dataset) -> np.ndarray:
        pairs = _pairs(ds)
        return rule(ds, pairs)[pairs.inverse]

    return apply


def _fmt(**kwargs: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if v is not None)


def _require_nonempty(ds: Dataset) -> None:
    if not isinstance(ds, Dataset):
        raise DataError(f"expected a recforge Dataset, got {type(ds).__name__}")
    if len(ds) == 0:
        raise DataError(f"cannot split dataset {ds.name!r}: it has no interactions")


# --------------------------------------------------------------------------- random
def random_split(
    ds: Dataset,
    test_size: float = 0.2,
    *,
    per_user: bool = False,
    valid_size: float = 0.0,
    rng: RngLike = 0,
) -> Split:
    """Random split of the distinct ``(user, item)`` pairs.

    Parameters
    ----------
    ds
        Interactions to split.
    test_size
        Fraction of pairs (globally, or of each user's pairs with ``per_user=True``) that goes
        to test; equals the fraction of interactions when no pair repeats.
    per_user
        Split within each user (users with a single pair stay in train; each user keeps at
        least one pair in train).
    valid_size
        Fraction of the remaining *training* pairs moved to validation by the same rule.
    rng
        Seed or :class:`numpy.random.Generator`.

    Returns
    -------
    Split

    Raises
    ------
    ConfigError
        If a size is outside ``[0, 1)`` (``test_size`` must be positive).
    DataError
        If the dataset is empty.
    """
    _require_nonempty(ds)
    test_size = _check_fraction("test_size", test_size, allow_zero=False)
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    seed = pair_hash_seed(rng)

    def rule(fraction: float) -> Callable[[Dataset, _Pairs], np.ndarray]:
        def pick(d: Dataset, pairs: _Pairs) -> np.ndarray:
            order = _random_order(d, pairs, seed)
            if per_user:
                return _tail_per_user(pairs.user, order, fraction)
            return order < round(fraction * pairs.n)

        return pick

    pairs = _pairs(ds)
    test_pairs = rule(test_size)(ds, pairs)
    valid_rule = _rows(rule(valid_size)) if valid_size > 0 else None
    kind = "user_random" if per_user else "random"
    name = f"{kind}({_fmt(test_size=test_size, valid_size=valid_size or None)})"
    return _carve(ds, test_pairs, pairs, name, valid_rule)


# --------------------------------------------------------------------------- temporal
def _to_epoch(at: Any) -> int:
    if isinstance(at, bool):
        raise ConfigError(f"at must be a timestamp (epoch seconds) or a datetime, got {at!r}")
    if isinstance(at, int | np.integer):
        return int(at)
    if isinstance(at, float | np.floating):
        if not math.isfinite(at):
            raise ConfigError(f"at must be a finite timestamp, got {at!r}")
        return math.ceil(at)
    if isinstance(at, str | _dt.datetime | _dt.date | pd.Timestamp | np.datetime64):
        try:
            ts = pd.Timestamp(at)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"at is not a valid time: {at!r} ({exc})") from exc
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        return math.ceil(ts.timestamp())
    raise ConfigError(
        f"at must be a timestamp (epoch seconds) or a datetime, got {type(at).__name__}"
    )


def _quantile_cut(times: np.ndarray, quantile: float) -> int:
    """Time of the first test interaction when a ``quantile`` share of times is train."""
    sorted_times = np.sort(times)
    pos = min(math.ceil(quantile * sorted_times.size), sorted_times.size - 1)
    return int(sorted_times[pos])


def temporal_split(
    ds: Dataset,
    *,
    at: Any = None,
    quantile: float | None = None,
    per_user_last: int | float | None = None,
    valid_size: int | float = 0.0,
) -> Split:
    """Split by time: a global cut, or the most recent pairs of each user.

    Exactly one of ``at``, ``quantile`` and ``per_user_last`` must be given. A pair is dated by
    its *first* interaction; repeats of a pair first seen before the cut are re-consumptions and
    stay in train with it. Hence for a global cut every test interaction is at or after the cut,
    and every pair in train started before it.

    Parameters
    ----------
    ds
        Interactions with timestamps.
    at
        Cut time: epoch seconds, a :class:`datetime.datetime` (naive means UTC) or an ISO
        string. Pairs first seen at or after it go to test.
    quantile
        Share of interactions (by time) kept before the cut, in ``(0, 1)``; e.g. ``0.8`` puts
        the newest ~20 % in test.
    per_user_last
        Per user: the ``n`` newest pairs (int) or the newest fraction (float in ``(0, 1)``) go to
        test. Users with a single pair stay in train; each user keeps one pair in train.
    valid_size
        Validation carved from train by the same rule: for a global cut, the newest
        ``valid_size`` fraction of train; for ``per_user_last``, the newest ``valid_size``
        pairs (int) or fraction (float) of each user's remaining pairs.

    Returns
    -------
    Split

    Raises
    ------
    DataError
        If the dataset has no timestamps, or a cut leaves train or test empty.
    ConfigError
        If not exactly one rule is given or a value is out of range.
    """
    _require_nonempty(ds)
    if ds.time is None:
        raise DataError(
            f"temporal_split needs timestamps but dataset {ds.name!r} has no time column "
            "(map one with time=..., or use random_split)"
        )
    options = {"at": at, "quantile": quantile, "per_user_last": per_user_last}
    given = [n for n, v in options.items() if v is not None]
    if len(given) != 1:
        raise ConfigError(
            "temporal_split needs exactly one of at=, quantile= or per_user_last= "
            f"(got {', '.join(given) if given else 'none'})"
        )
    if per_user_last is not None:
        return _temporal_per_user(ds, per_user_last, valid_size)
    return _temporal_cut(ds, at, quantile, valid_size)


def _temporal_per_user(ds: Dataset, per_user_last: int | float, valid_size: int | float) -> Split:
    """:func:`temporal_split` with ``per_user_last``: each user's newest pairs are test."""
    amount = _check_count_or_fraction("per_user_last", per_user_last, allow_zero=False)
    valid_amount = _check_count_or_fraction("valid_size", valid_size, allow_zero=True)

    def tail(n: int | float) -> Callable[[Dataset, _Pairs], np.ndarray]:
        return lambda d, p: _tail_per_user(p.user, _time_order_key(d, p), n)

    pairs = _pairs(ds)
    name = f"temporal({_fmt(per_user_last=amount, valid_size=valid_amount or None)})"
    valid_rule = _rows(tail(valid_amount)) if valid_amount else None
    return _carve(ds, tail(amount)(ds, pairs), pairs, name, valid_rule)


def _temporal_cut(ds: Dataset, at: Any, quantile: float | None, valid_size: int | float) -> Split:
    """:func:`temporal_split` with one global cut (``at`` or ``quantile``)."""
    assert ds.time is not None
    valid_frac = _check_fraction("valid_size", valid_size, allow_zero=True)
    if quantile is not None:
        q = _check_fraction("quantile", quantile, allow_zero=False)
        cut = _quantile_cut(ds.time, q)
        label = f"quantile={q!r}"
    else:
        cut = _to_epoch(at)
        label = f"at={cut!r}"
    pairs = _pairs(ds)
    assert pairs.first_time is not None
    test_pairs = pairs.first_time >= cut
    if not test_pairs.any() or test_pairs.all():
        side = "test" if not test_pairs.any() else "train"
        raise DataError(
            f"temporal cut {label} leaves {side} empty for dataset {ds.name!r} "
            f"(times span {int(ds.time.min())} .. {int(ds.time.max())})"
        )

    def valid_pick(d: Dataset, p: _Pairs) -> np.ndarray:
        assert d.time is not None
        assert p.first_time is not None
        return p.first_time >= _quantile_cut(d.time, 1.0 - valid_frac)

    valid_rule = _rows(valid_pick) if valid_frac > 0 else None
    name = f"temporal({label}{f', valid_size={valid_frac!r}' if valid_frac else ''})"
    return _carve(ds, test_pairs, pairs, name, valid_rule)


# --------------------------------------------------------------------------- leave one out
def leave_one_out(
    ds: Dataset,
    *,
    by: Literal["time", "random"] = "time",
    valid: bool = True,
    rng: RngLike = 0,
) -> Split:
    """Hold out one pair per user: the newest (``by="time"``) or a random one.

    Parameters
    ----------
    ds
        Interactions to split.
    by
        ``"time"`` (needs timestamps; ties broken by row order) or ``"random"``.
    valid
        Also hold out the next pair (by the same rule) of each user for validation. A user
        gives a test pair only with at least two pairs, and a validation pair only with at
        least three, so every user keeps one pair in train.
    rng
        Seed or generator (used with ``by="random"``).

    Returns
    -------
    Split

    Raises
    ------
    DataError
        If ``by="time"`` and the dataset has no timestamps.
    ConfigError
        If ``by`` is not ``"time"`` or ``"random"``.
    """
    _require_nonempty(ds)
    if by not in ("time", "random"):
        raise ConfigError(f"by must be 'time' or 'random'. Got {by!r} instead.")
    if by == "time" and ds.time is None:
        raise DataError(
            f"leave_one_out(by='time') needs timestamps but dataset {ds.name!r} has none "
            "(use by='random')"
        )
    pairs = _pairs(ds)
    key = (
        _time_order_key(ds, pairs)
        if by == "time"
        else _random_order(ds, pairs, pair_hash_seed(rng))
    )
    rank, size = _rank_within_user(pairs.user, key)
    test_pairs = (rank == size - 1) & (size >= 2)
    test_rows = test_pairs[pairs.inverse]
    valid_ds = None
    train_rows = ~test_rows
    if valid:
        valid_pairs = (rank == size - 2) & (size >= 3)
        valid_rows = valid_pairs[pairs.inverse]
        train_rows &= ~valid_rows
        valid_ds = ds.subset(valid_rows)
    return Split(
        train=ds.subset(train_rows),
        test=ds.subset(test_rows),
        valid=valid_ds,
        name=f"leave_one_out(by={by!r}{', valid=True' if valid else ''})",
    )


# --------------------------------------------------------------------------- k-fold
def kfold(
    ds: Dataset,
    n_folds: int = 5,
    *,
    by: Literal["interaction", "user"] = "interaction",
    rng: RngLike = 0,
) -> Iterator[Split]:
    """``n_folds`` splits whose test parts partition the pairs.

    Parameters
    ----------
    ds
        Interactions to split.
    n_folds
        Number of folds (at least 2).
    by
        ``"interaction"``: pairs are shuffled and dealt into folds globally. ``"user"``: each
        user's pairs are shuffled and dealt round-robin into folds, so every fold tests every
        user with enough pairs; users with a single pair are never in test.
    rng
        Seed or generator.

    Yields
    ------
    Split
        Fold ``f`` (named ``"kfold(f/n_folds)"``); ``valid`` is ``None``.

    Raises
    ------
    ConfigError
        If ``n_folds`` is not an int >= 2 or ``by`` is unknown.
    DataError
        If the dataset has fewer pairs than folds.
    """
    _require_nonempty(ds)
    if not isinstance(n_folds, int | np.integer) or isinstance(n_folds, bool) or n_folds < 2:
        raise ConfigError(f"n_folds must be an int in the range [2, inf). Got {n_folds!r} instead.")
    if by not in ("interaction", "user"):
        raise ConfigError(f"by must be 'interaction' or 'user'. Got {by!r} instead.")
    gen = _generator(rng)
    pairs = _pairs(ds)
    if pairs.n < n_folds:
        raise DataError(
            f"cannot make {n_folds} folds of dataset {ds.name!r}: it has only {pairs.n} "
            "distinct (user, item) pairs"
        )
    if by == "interaction":
        fold = np.empty(pairs.n, dtype=np.int64)
        fold[gen.permutation(pairs.n)] = np.arange(pairs.n) % n_folds
    else:
        rank, size = _rank_within_user(pairs.user, gen.permutation(pairs.n))
        # a random offset per user spreads users' first pairs over the folds
        offset = gen.integers(0, n_folds, size=int(pairs.user.max()) + 1)
        fold = (rank + offset[pairs.user]) % n_folds
        fold[size < 2] = -1
    for f in range(int(n_folds)):
        test_rows = (fold == f)[pairs.inverse]
        yield Split(
            train=ds.subset(~test_rows),
            test=ds.subset(test_rows),
            valid=None,
            name=f"kfold({f + 1}/{n_folds}, by={by!r})",
        )


# --------------------------------------------------------------------------- cold start
def cold_start_split(
    ds: Dataset,
    *,
    entity: Literal["user", "item"] = "user",
    test_size: float = 0.2,
    valid_size: float = 0.0,
    rng: RngLike = 0,
    known: int = 0,
) -> Split:
    """Hold out whole users or items, to evaluate cold-start recommendation.

    Parameters
    ----------
    ds
        Interactions to split.
    entity
        ``"user"`` or ``"item"``: which kind of entity is held out.
    test_size
        Fraction of the entities (among those with more than ``known`` pairs) held out for
        test; at least one is held out, and with ``known=0`` at least one stays in train.
    valid_size
        Fraction of the remaining entities held out for validation, by the same rule (none
        when train is left with a single entity).
    rng
        Seed or generator.
    known
        Interactions of each held-out entity kept in train: its ``known`` earliest pairs (by
        time, or at random without timestamps). Only entities with more than ``known`` pairs
        can be held out. ``known=0`` makes held-out entities absent from train.

    Returns
    -------
    Split

    Raises
    ------
    ConfigError
        On an unknown ``entity``, sizes out of range or a negative ``known``.
    DataError
        If no entity can be held out (none has more than ``known`` pairs, or there is a
        single entity and ``known=0``).
    """
    _require_nonempty(ds)
    if entity not in ("user", "item"):
        raise ConfigError(f"entity must be 'user' or 'item'. Got {entity!r} instead.")
    test_size = _check_fraction("test_size", test_size, allow_zero=False)
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    if not isinstance(known, int | np.integer) or isinstance(known, bool) or known < 0:
        raise ConfigError(f"known must be an int in the range [0, inf). Got {known!r} instead.")
    gen = _generator(rng)

    def rule(fraction: float, strict: bool) -> Callable[[Dataset, _Pairs], np.ndarray]:
        def pick(d: Dataset, p: _Pairs) -> np.ndarray:
            if p.n == 0:
                return np.zeros(0, dtype=bool)
            ent = p.user if entity == "user" else d.item[p.first_pos].astype(np.int64)
            if known:
                key = _time_order_key(d, p) if d.time is not None else gen.permutation(p.n)
                rank, _ = _rank_within_user(ent, key)
            else:
                rank = np.zeros(p.n, dtype=np.int64)
            pair_counts = np.bincount(ent)
            eligible = np.flatnonzero(pair_counts > known)
            n_entities = int(np.count_nonzero(pair_counts))
            # without known interactions, at least one entity must stay in train
            cap = eligible.size if known else min(eligible.size, n_entities - 1)
            n_out = min(max(round(fraction * eligible.size), 1), cap)
            if n_out < 1 and strict:
                if eligible.size == 0:
                    reason = f"no {entity} has more than {known} distinct pairs"
                else:
                    reason = f"it has a single {entity} with interactions"
                raise DataError(
                    f"cold_start_split cannot hold out any {entity} of dataset {d.name!r}: {reason}"
                )
            held = np.zeros(int(ent.max()) + 1, dtype=bool)
            held[gen.permutation(eligible)[: max(n_out, 0)]] = True
            return held[ent] & (rank >= known)

        return pick

    pairs = _pairs(ds)
    test_pairs = rule(test_size, True)(ds, pairs)
    valid_rule = _rows(rule(valid_size, False)) if valid_size > 0 else None
    extra = _fmt(test_size=test_size, valid_size=valid_size or None, known=known or None)
    return _carve(ds, test_pairs, pairs, f"cold_{entity}s({extra})", valid_rule)


# --------------------------------------------------------------------------- by name
_METHODS: dict[str, tuple[Callable[..., Split], dict[str, Any]]] = {
    "random": (random_split, {}),
    "user_random": (random_split, {"per_user": True}),
    "temporal": (temporal_split, {}),
    "leave_one_out": (leave_one_out, {}),
    "cold_start": (cold_start_split, {}),
    "cold_users": (cold_start_split, {"entity": "user"}),
    "cold_items": (cold_start_split, {"entity": "item"}),
}
_ALIASES = {"loo": "leave_one_out", "per_user": "user_random", "cold": "cold_start"}
#: Splitters that give several splits (evaluation reports the mean and spread over them).
_MULTI: dict[str, Callable[..., Iterable[Split]]] = {"kfold": kfold}

#: Method names accepted by :func:`split_by_name` (dashes and underscores are interchangeable).
SPLIT_METHODS: tuple[str, ...] = tuple(sorted([*_METHODS, *_ALIASES]))
#: Method names accepted by :func:`splits_by_name`: every split method plus ``kfold``.
SPLITS_METHODS: tuple[str, ...] = tuple(sorted([*SPLIT_METHODS, *_MULTI]))


def split_options(method: str) -> tuple[str, list[str]]:
    """Canonical name of a split method and the options a configuration may give it.

    Raises
    ------
    ConfigError
        If the method is unknown (naming the nearest one).
    """
    raw = str(method)
    name = raw.strip().lower().replace("-", "_")
    name = _ALIASES.get(name, name)
    if name in _MULTI:
        return name, [k for k in _keywords(_MULTI[name])]
    if name not in _METHODS:
        import difflib

        near = difflib.get_close_matches(name, list(SPLITS_METHODS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(
            f"unknown split method {raw!r}{hint} (methods: {', '.join(SPLITS_METHODS)})"
        )
    func, fixed = _METHODS[name]
    return name, [k for k in _keywords(func) if k not in fixed]


def splits_by_name(ds: Dataset, spec: Mapping[str, Any]) -> list[Split]:
    """Like :func:`split_by_name`, but ``{"method": "kfold", "n_folds": 5}`` gives every fold.

    Returns
    -------
    list of Split
        One split, or the folds of ``kfold``.
    """
    if isinstance(spec, Mapping) and "method" in spec:
        name, allowed = split_options(str(spec["method"]))
        if name in _MULTI:
            kwargs = {k: v for k, v in spec.items() if k != "method"}
            for key in kwargs:
                if key not in allowed:
                    raise ConfigError(
                        f"split method {spec['method']!r} has no option {key!r} "
                        f"(options: {', '.join(allowed)})"
                    )
            return list(_MULTI[name](ds, **kwargs))
    return [split_by_name(ds, spec)]


def _keywords(func: Callable[..., Any]) -> list[str]:
    import inspect

    return [
        p.name
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "ds"
    ]


def split_by_name(ds: Dataset, spec: Mapping[str, Any]) -> Split:
    """Run a splitter described by a configuration dict.

    Parameters
    ----------
    ds
        Interactions to split.
    spec
        ``{"method": NAME, **arguments}``, e.g. ``{"method": "temporal", "quantile": 0.8}``.
        Names: ``random``, ``user_random`` (alias ``per_user``), ``temporal``,
        ``leave_one_out`` (alias ``loo``), ``cold_start`` (alias ``cold``), ``cold_users``,
        ``cold_items``; dashes may replace underscores. The other keys are the splitter's
        keyword arguments.

    Returns
    -------
    Split

    Raises
    ------
    ConfigError
        If ``method`` is missing or unknown, or a key is not an argument of the splitter.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"split spec must be a mapping, got {type(spec).__name__}")
    if "method" not in spec:
        raise ConfigError(f"split spec is missing 'method' (one of: {', '.join(SPLIT_METHODS)})")
    raw = str(spec["method"])
    method = raw.strip().lower().replace("-", "_")
    method = _ALIASES.get(method, method)
    if method not in _METHODS:
        import difflib

        near = difflib.get_close_matches(method, list(SPLIT_METHODS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(
            f"unknown split method {raw!r}{hint} (methods: {', '.join(SPLIT_METHODS)})"
        )
    func, fixed = _METHODS[method]
    allowed = [k for k in _keywords(func) if k not in fixed]
    kwargs = {k: v for k, v in spec.items() if k != "method"}
    for key in kwargs:
        if key not in allowed:
            raise ConfigError(
                f"split method {raw!r} has no option {key!r} (options: {', '.join(allowed)})"
            )
    return func(ds, **fixed, **kwargs)
