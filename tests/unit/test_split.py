"""Tests of the splitters: leakage, partition, determinism, sizes and time order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recforge.data import Dataset
from recforge.exceptions import ConfigError, DataError
from recforge.split import (
    Split,
    cold_start_split,
    kfold,
    leave_one_out,
    random_split,
    split_by_name,
    temporal_split,
)

HYPO = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- helpers
@st.composite
def datasets(draw: st.DrawFn, *, with_time: bool = True, min_rows: int = 4) -> Dataset:
    """Random interactions with duplicate pairs and tied times."""
    n = draw(st.integers(min_rows, 120))
    n_users = draw(st.integers(1, 12))
    n_items = draw(st.integers(1, 15))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, n_items - 1), min_size=n, max_size=n))
    values = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    frame = pd.DataFrame({"user": users, "item": items, "value": values})
    time = None
    if with_time:
        frame["time"] = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
        time = "time"
    return Dataset.from_frame(frame, value="value", time=time, name="hypo")


def rows(ds: Dataset) -> list[tuple[int, int, float, int]]:
    time = ds.time if ds.time is not None else np.zeros(len(ds), dtype=np.int64)
    return sorted(
        zip(ds.user.tolist(), ds.item.tolist(), ds.value.tolist(), time.tolist(), strict=True)
    )


def pairs(ds: Dataset) -> set[tuple[int, int]]:
    return set(zip(ds.user.tolist(), ds.item.tolist(), strict=True))


def check_invariants(ds: Dataset, split: Split) -> None:
    """No pair shared between parts; parts partition the interactions; indices shared."""
    parts = [split.train, split.test] + ([split.valid] if split.valid is not None else [])
    for part in parts:
        assert part.users is ds.users
        assert part.items is ds.items
    assert not pairs(split.train) & pairs(split.test)
    if split.valid is not None:
        assert not pairs(split.train) & pairs(split.valid)
        assert not pairs(split.valid) & pairs(split.test)
    assert sorted(r for p in parts for r in rows(p)) == rows(ds)


def same_split(a: Split, b: Split) -> bool:
    return rows(a.train) == rows(b.train) and rows(a.test) == rows(b.test)


def id_pairs(ds: Dataset, part: Dataset) -> set[tuple[int, int]]:
    return set(zip(ds.users.ids_of(part.user), ds.items.ids_of(part.item), strict=True))


def frame_ds(
    users: list[int], items: list[int], times: list[int] | None = None, name: str = "tiny"
) -> Dataset:
    frame = pd.DataFrame({"user": users, "item": items})
    if times is not None:
        frame["time"] = times
    return Dataset.from_frame(frame, time="time" if times is not None else None, name=name)


def dense_ds(n_users: int = 40, n_items: int = 30, seed: int = 3) -> Dataset:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < 0.3
    u, i = np.nonzero(mask)
    return frame_ds(u.tolist(), i.tolist(), rng.integers(0, 10_000, u.size).tolist())


# --------------------------------------------------------------------------- random
@HYPO
@given(
    ds=datasets(),
    test_size=st.floats(0.05, 0.9),
    per_user=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_random_split_properties(ds: Dataset, test_size: float, per_user: bool, seed: int) -> None:
    split = random_split(ds, test_size, per_user=per_user, valid_size=0.2, rng=seed)
    check_invariants(ds, split)
    again = random_split(ds, test_size, per_user=per_user, valid_size=0.2, rng=seed)
    assert same_split(split, again)
    if per_user:
        train_users = set(split.train.user.tolist())
        assert set(split.test.user.tolist()) <= train_users


def test_random_split_size_and_seed() -> None:
    ds = dense_ds()
    n = len(ds)
    split = random_split(ds, 0.25, rng=1)
    assert abs(len(split.test) - 0.25 * n) <= 1
    assert split.valid is None
    assert not same_split(split, random_split(ds, 0.25, rng=2))
    gen_split = random_split(ds, 0.25, rng=np.random.default_rng(1))
    assert same_split(split, gen_split)


def test_random_split_per_user_sizes() -> None:
    ds = dense_ds()
    split = random_split(ds, 0.2, per_user=True, rng=0)
    per_user = np.bincount(ds.user, minlength=ds.n_users)
    expected = np.minimum(np.floor(per_user * 0.2 + 0.5), np.maximum(per_user - 1, 0))
    assert np.array_equal(np.bincount(split.test.user, minlength=ds.n_users), expected)


def test_random_split_valid_fraction_of_train() -> None:
    ds = dense_ds()
    split = random_split(ds, 0.2, valid_size=0.25, rng=0)
    assert split.valid is not None
    remaining = len(ds) - len(split.test)
    assert abs(len(split.valid) - 0.25 * remaining) <= 1


def test_duplicates_go_to_one_side() -> None:
    ds = frame_ds([0, 0, 0, 0, 1, 1, 1], [5, 5, 5, 6, 5, 7, 7], [1, 2, 3, 4, 5, 6, 7])
    for seed in range(20):
        split = random_split(ds, 0.5, rng=seed)
        check_invariants(ds, split)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), True, "0.2"])
def test_random_split_rejects_bad_test_size(bad: object) -> None:
    with pytest.raises(ConfigError, match="test_size"):
        random_split(dense_ds(), bad)  # type: ignore[arg-type]


def test_random_split_rejects_bad_rng() -> None:
    with pytest.raises(ConfigError, match="rng"):
        random_split(dense_ds(), 0.2, rng="seed")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rng"):
        random_split(dense_ds(), 0.2, rng=-1)


# --------------------------------------------------------------------------- temporal
@HYPO
@given(ds=datasets(), q=st.floats(0.1, 0.9))
def test_temporal_quantile_properties(ds: Dataset, q: float) -> None:
    times = np.sort(ds.time)  # type: ignore[arg-type]
    cut = times[min(int(np.ceil(q * times.size)), times.size - 1)]
    frame = pd.DataFrame({"u": ds.user, "i": ds.item, "t": ds.time})
    first = frame.groupby(["u", "i"])["t"].min().to_numpy()
    if (first >= cut).all() or not (first >= cut).any():  # one side would be empty
        with pytest.raises(DataError, match=r"leaves (train|test) empty"):
            temporal_split(ds, quantile=q)
        return
    split = temporal_split(ds, quantile=q)
    check_invariants(ds, split)
    assert split.train.time is not None
    assert split.test.time is not None
    # every pair in train started before every test interaction
    train_first = (
        pd.DataFrame({"u": split.train.user, "i": split.train.item, "t": split.train.time})
        .groupby(["u", "i"])["t"]
        .min()
    )
    assert train_first.max() < split.test.time.min()
    assert temporal_split(ds, quantile=q).name == split.name


def test_temporal_no_duplicates_strict_order() -> None:
    ds = dense_ds()
    split = temporal_split(ds, quantile=0.8, valid_size=0.1)
    assert split.valid is not None
    assert split.train.time.max() <= split.valid.time.min()  # type: ignore[union-attr]
    assert split.valid.time.max() <= split.test.time.min()  # type: ignore[union-attr]
    assert abs(len(split.test) / len(ds) - 0.2) < 0.02


@HYPO
@given(ds=datasets(), last=st.one_of(st.integers(1, 4), st.floats(0.1, 0.9)))
def test_temporal_per_user_properties(ds: Dataset, last: float) -> None:
    split = temporal_split(ds, per_user_last=last)
    check_invariants(ds, split)
    train = pd.DataFrame({"u": split.train.user, "i": split.train.item, "t": split.train.time})
    first = train.groupby(["u", "i"])["t"].min().groupby(level="u").max()
    test = pd.DataFrame({"u": split.test.user, "t": split.test.time}).groupby("u")["t"].min()
    for user, tmin in test.items():
        assert first[user] <= tmin
    counts = train.groupby("u")["i"].nunique()
    assert set(split.test.user.tolist()) <= set(counts.index)


def test_temporal_per_user_last_n() -> None:
    ds = frame_ds([0, 0, 0, 1, 1, 2], [1, 2, 3, 1, 2, 1], [30, 10, 20, 5, 1, 9])
    split = temporal_split(ds, per_user_last=1, valid_size=1)
    test = id_pairs(ds, split.test)
    assert test == {(0, 1), (1, 1)}
    assert split.valid is not None
    valid = id_pairs(ds, split.valid)
    assert valid == {(0, 3)}  # user 1 has one pair left, user 2 only one pair in all


def test_temporal_at_datetime_and_int() -> None:
    ds = frame_ds([0, 0, 1, 1], [1, 2, 1, 2], [100, 200, 300, 400])
    a = temporal_split(ds, at=300)
    b = temporal_split(ds, at=dt.datetime.fromtimestamp(300, tz=dt.UTC))
    c = temporal_split(ds, at=dt.datetime(1970, 1, 1, 0, 5))  # naive means UTC: 300 s
    assert rows(a.test) == rows(b.test) == rows(c.test)
    assert sorted(a.test.time.tolist()) == [300, 400]  # type: ignore[union-attr]


def test_temporal_errors() -> None:
    ds = frame_ds([0, 0, 1], [1, 2, 1], [1, 2, 3])
    with pytest.raises(DataError, match="no time column"):
        temporal_split(frame_ds([0, 1], [1, 2]), quantile=0.5)
    with pytest.raises(ConfigError, match="exactly one"):
        temporal_split(ds)
    with pytest.raises(ConfigError, match=r"exactly one.*at, quantile"):
        temporal_split(ds, at=2, quantile=0.5)
    with pytest.raises(DataError, match="leaves test empty"):
        temporal_split(ds, at=10)
    with pytest.raises(ConfigError, match="per_user_last"):
        temporal_split(ds, per_user_last=0)
    with pytest.raises(ConfigError, match="at must be"):
        temporal_split(ds, at=[1])


# --------------------------------------------------------------------------- leave one out
@HYPO
@given(ds=datasets(), by=st.sampled_from(["time", "random"]), valid=st.booleans())
def test_leave_one_out_properties(ds: Dataset, by: str, valid: bool) -> None:
    split = leave_one_out(ds, by=by, valid=valid, rng=3)  # type: ignore[arg-type]
    check_invariants(ds, split)
    n_pairs = pd.DataFrame({"u": ds.user, "i": ds.item}).drop_duplicates().groupby("u").size()
    test_pairs = pd.DataFrame({"u": split.test.user, "i": split.test.item}).drop_duplicates()
    assert test_pairs.groupby("u").size().eq(1).all()
    assert set(test_pairs["u"]) == set(n_pairs.index[n_pairs >= 2])
    if valid:
        assert split.valid is not None
        vp = pd.DataFrame({"u": split.valid.user, "i": split.valid.item}).drop_duplicates()
        assert set(vp["u"]) == set(n_pairs.index[n_pairs >= 3])
    assert same_split(split, leave_one_out(ds, by=by, valid=valid, rng=3))  # type: ignore[arg-type]


def test_leave_one_out_by_time_picks_latest() -> None:
    ds = frame_ds([0, 0, 0, 1, 1, 2], [1, 2, 3, 1, 2, 1], [30, 10, 20, 5, 1, 9])
    split = leave_one_out(ds)
    assert split.valid is not None
    got = id_pairs(ds, split.test)
    assert got == {(0, 1), (1, 1)}
    got_valid = id_pairs(ds, split.valid)
    assert got_valid == {(0, 3)}


def test_leave_one_out_errors() -> None:
    with pytest.raises(DataError, match="by='random'"):
        leave_one_out(frame_ds([0, 0], [1, 2]))
    with pytest.raises(ConfigError, match="by must be"):
        leave_one_out(dense_ds(), by="size")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- k-fold
@HYPO
@given(
    ds=datasets(min_rows=8), n_folds=st.integers(2, 4), by=st.sampled_from(["interaction", "user"])
)
def test_kfold_properties(ds: Dataset, n_folds: int, by: str) -> None:
    n_pairs = len(pairs(ds))
    if n_pairs < n_folds:
        with pytest.raises(DataError, match="folds"):
            list(kfold(ds, n_folds, by=by))  # type: ignore[arg-type]
        return
    folds = list(kfold(ds, n_folds, by=by, rng=5))  # type: ignore[arg-type]
    assert len(folds) == n_folds
    tested: list[tuple[int, int, float, int]] = []
    for split in folds:
        check_invariants(ds, split)
        tested += rows(split.test)
    users_pairs = pd.DataFrame({"u": ds.user, "i": ds.item}).drop_duplicates().groupby("u").size()
    if by == "interaction":
        assert sorted(tested) == rows(ds)
    else:
        multi = set(users_pairs.index[users_pairs >= 2])
        assert {r[0] for r in tested} == multi
        for split in folds:
            assert set(split.test.user.tolist()) <= set(split.train.user.tolist())
    again = list(kfold(ds, n_folds, by=by, rng=5))  # type: ignore[arg-type]
    assert all(same_split(a, b) for a, b in zip(folds, again, strict=True))


def test_kfold_errors() -> None:
    with pytest.raises(ConfigError, match="n_folds"):
        next(kfold(dense_ds(), 1))
    with pytest.raises(ConfigError, match="by must be"):
        next(kfold(dense_ds(), 3, by="item"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- cold start
@HYPO
@given(
    ds=datasets(),
    entity=st.sampled_from(["user", "item"]),
    test_size=st.floats(0.1, 0.9),
    seed=st.integers(0, 1000),
)
def test_cold_start_properties(ds: Dataset, entity: str, test_size: float, seed: int) -> None:
    col = "user" if entity == "user" else "item"
    n_entities = np.unique(getattr(ds, col)).size
    if n_entities < 2:
        with pytest.raises(DataError, match="single"):
            cold_start_split(ds, entity=entity)  # type: ignore[arg-type]
        return
    split = cold_start_split(ds, entity=entity, test_size=test_size, valid_size=0.2, rng=seed)  # type: ignore[arg-type]
    check_invariants(ds, split)
    held = set(getattr(split.test, col).tolist())
    assert not held & set(getattr(split.train, col).tolist())
    assert split.valid is not None
    held_valid = set(getattr(split.valid, col).tolist())
    assert not held_valid & set(getattr(split.train, col).tolist())
    assert not held_valid & held
    assert len(held) == min(max(round(test_size * n_entities), 1), n_entities - 1)


@pytest.mark.parametrize("known", [1, 3])
def test_cold_start_known_interactions(known: int) -> None:
    ds = dense_ds()
    split = cold_start_split(ds, entity="user", test_size=0.3, known=known, rng=0)
    check_invariants(ds, split)
    test_users = np.unique(split.test.user)
    assert test_users.size > 0
    train_counts = np.bincount(split.train.user, minlength=ds.n_users)
    assert np.all(train_counts[test_users] == known)
    # the known interactions are the earliest of each held-out user
    assert split.train.time is not None
    assert split.test.time is not None
    for u in test_users[:5]:
        assert split.train.time[split.train.user == u].max() <= (
            split.test.time[split.test.user == u].min()
        )


def test_cold_start_errors() -> None:
    with pytest.raises(ConfigError, match="entity"):
        cold_start_split(dense_ds(), entity="session")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="known"):
        cold_start_split(dense_ds(), known=-1)
    with pytest.raises(DataError, match="more than 5"):
        cold_start_split(frame_ds([0, 0, 1], [1, 2, 1]), known=5)
    with pytest.raises(DataError, match="single user"):
        cold_start_split(frame_ds([0, 0, 0], [1, 2, 3]))


# --------------------------------------------------------------------------- by name, describe
def test_split_by_name() -> None:
    ds = dense_ds()
    a = split_by_name(ds, {"method": "temporal", "quantile": 0.8})
    assert same_split(a, temporal_split(ds, quantile=0.8))
    b = split_by_name(ds, {"method": "user-random", "test_size": 0.3, "rng": 4})
    assert same_split(b, random_split(ds, 0.3, per_user=True, rng=4))
    c = split_by_name(ds, {"method": "loo", "valid": False})
    assert c.valid is None
    d = split_by_name(ds, {"method": "cold-items"})
    assert not set(d.test.item.tolist()) & set(d.train.item.tolist())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"quantile": 0.8}, "missing 'method'"),
        ({"method": "temporl"}, "did you mean 'temporal'"),
        ({"method": "temporal", "quantil": 0.8}, "no option 'quantil'"),
        ({"method": "cold-users", "entity": "item"}, "no option 'entity'"),
    ],
)
def test_split_by_name_errors(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_by_name(dense_ds(), spec)


def test_describe_and_cold_users() -> None:
    ds = frame_ds([0, 0, 1, 1, 2], [1, 2, 1, 3, 2], [1, 2, 3, 4, 5])
    split = cold_start_split(ds, entity="user", test_size=0.34, rng=0)
    table = split.describe()
    assert list(table.index) == ["train", "test"]
    assert table["interactions"].sum() == len(ds)
    assert table.loc["test", "cold_users"] == table.loc["test", "users"] == 1
    assert split.cold_users().tolist() == split.test_users().tolist()
    assert "time_min" in table.columns
    assert "Split(" in repr(split)


def test_split_rejects_mismatched_indices() -> None:
    a = frame_ds([0, 1], [1, 2])
    b = frame_ds([0, 2], [1, 2])
    with pytest.raises(DataError, match="id indices"):
        Split(train=a, test=b, valid=None, name="x")


@pytest.mark.parametrize(
    "splitter",
    [
        lambda d: random_split(d),
        lambda d: temporal_split(d, quantile=0.5),
        lambda d: leave_one_out(d),
        lambda d: cold_start_split(d),
    ],
)
def test_empty_dataset_rejected(splitter: Callable[[Dataset], Split]) -> None:
    ds = dense_ds()
    empty = ds.subset(np.zeros(len(ds), dtype=bool))
    with pytest.raises(DataError, match="no interactions"):
        splitter(empty)
