"""Spark sources, preparation and splits equal the local functions row for row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset, prepare
from recforge.exceptions import ConfigError, DataError
from recforge.split import leave_one_out, split_by_name

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _frame(seed: int = 0, n: int = 400) -> pd.DataFrame:
    gen = np.random.default_rng(seed)
    users = gen.zipf(1.6, n) % 40
    frame = pd.DataFrame(
        {
            "uid": [f"u{u}" for u in users],
            "iid": (gen.zipf(1.4, n) % 60) * 7 + 3,
            "rating": gen.integers(1, 11, n) / 2.0,
            "ts": gen.integers(1_000, 1_200, n),  # many ties
        }
    )
    return frame


def assert_same(got: Dataset, want: Dataset) -> None:
    np.testing.assert_array_equal(got.users.ids, want.users.ids)
    np.testing.assert_array_equal(got.items.ids, want.items.ids)
    np.testing.assert_array_equal(got.user, want.user)
    np.testing.assert_array_equal(got.item, want.item)
    np.testing.assert_array_equal(got.value, want.value)
    if want.time is None:
        assert got.time is None
    else:
        np.testing.assert_array_equal(got.time, want.time)


@pytest.fixture(scope="module")
def both(spark: Any) -> tuple[Any, Dataset]:
    from recforge import spark as rs

    frame = _frame()
    sds = rs.from_spark(
        spark.createDataFrame(frame), user="uid", item="iid", value="rating", time="ts"
    )
    return sds, Dataset.from_frame(frame, user="uid", item="iid", value="rating", time="ts")


def test_sources_code_ids_by_first_appearance(spark: Any, tmp_path: Any, both: Any) -> None:
    from recforge import spark as rs

    sds, local = both
    assert_same(sds.to_dataset(), local)
    frame = _frame()
    frame.to_parquet(tmp_path / "x.parquet")
    frame.to_csv(tmp_path / "x.csv", index=False)
    cols = {"user": "uid", "item": "iid", "value": "rating", "time": "ts"}
    assert_same(rs.read_parquet(spark, str(tmp_path / "x.parquet"), **cols).to_dataset(), local)
    assert_same(rs.read_csv(spark, str(tmp_path / "x.csv"), **cols).to_dataset(), local)
    assert_same(rs.from_dataset(spark, local).to_dataset(), local)
    implicit = rs.from_spark(spark.createDataFrame(frame), user="uid", item="iid")
    assert implicit.to_dataset().is_implicit
    assert not implicit.has_time
    out = sds.to_frame().toPandas()
    pd.testing.assert_frame_equal(out, local.to_frame(), check_dtype=False)

    with pytest.raises(DataError, match=r"missing column 'movie' \(columns: uid, iid"):
        rs.from_spark(spark.createDataFrame(frame), user="uid", item="movie")
    bad = frame.astype({"rating": object})
    bad.loc[5, "rating"] = "n/a"
    with pytest.raises(DataError, match=r"column 'rating' has a non-numeric .* at row 5"):
        rs.from_spark(
            spark.createDataFrame(bad.astype({"rating": str})),
            user="uid",
            item="iid",
            value="rating",
        )
    nulls = frame.astype({"iid": "Int64"})
    nulls.loc[7, "iid"] = pd.NA
    with pytest.raises(DataError, match="column 'iid' has a missing id at row 7"):
        rs.from_spark(
            spark.createDataFrame(nulls.astype({"iid": object}).where(nulls.notna(), None)),
            user="uid",
            item="iid",
        )


STEPS: list[list[dict[str, Any]]] = [  # every step; aggregating and ordering dedup paths
    [
        {"step": "filter_min_counts", "min_user": 4, "min_item": 2},
        {"step": "deduplicate", "policy": "mean"},
        {"step": "k_core", "k": 3},
    ],
    [
        {"step": "deduplicate", "policy": "last"},
        {"step": "to_implicit", "threshold": 3.5},
        {"step": "weight", "scheme": "log", "alpha": 2.0},
    ],
]


def test_prepare_steps_match_local(both: Any) -> None:
    from recforge import spark as rs

    sds, local = both
    all_reports = []
    for steps in STEPS:
        got, got_reports = rs.apply_steps(sds, steps)
        want, want_reports = prepare.apply_steps(local, steps)
        assert_same(got.to_dataset(), want)
        assert [r.to_dict() for r in got_reports] == [r.to_dict() for r in want_reports], steps
        all_reports += want_reports
    assert any(r.users_dropped for r in all_reports)  # codes renumbered
    assert any(r.items_dropped for r in all_reports)
    assert any(r.values_changed for r in all_reports)
    deduped, _ = rs.deduplicate(sds)
    assert_same(deduped.to_dataset(), prepare.deduplicate(local)[0])
    for scheme in ("bm25", "tfidf"):
        got, report = rs.weight(deduped, scheme)
        want, want_report = prepare.weight(prepare.deduplicate(local)[0], scheme)
        np.testing.assert_allclose(got.to_dataset().value, want.value, rtol=1e-6)
        assert report.n_after == want_report.n_after
    with pytest.raises(DataError, match="duplicate"):
        rs.weight(sds, "linear")
    with pytest.raises(ConfigError, match=r"steps\[1\]: unknown step 'kcore'"):
        rs.apply_steps(sds, [{"step": "deduplicate"}, {"step": "kcore"}])


SPLITS: list[dict[str, Any]] = [
    {"method": "temporal", "quantile": 0.8},
    {"method": "temporal", "at": 1150, "valid_size": 0.1},
    {"method": "temporal", "per_user_last": 2, "valid_size": 1},
    {"method": "temporal", "per_user_last": 0.3},
    {"method": "loo"},
    {"method": "leave_one_out", "valid": False, "by": "random", "rng": 7},
    {"method": "random", "test_size": 0.3, "valid_size": 0.2, "rng": 5},
    {"method": "user_random", "test_size": 0.25, "valid_size": 0.1},
]


def test_splits_match_local(both: Any) -> None:
    from recforge import spark as rs

    sds, local = both
    for spec in SPLITS:
        got = rs.split_by_name(sds, spec).to_split()
        want = split_by_name(local, spec)
        assert got.name == want.name
        for part in ("train", "test", "valid"):
            g, w = getattr(got, part), getattr(want, part)
            assert (g is None) == (w is None), (spec, part)
            if w is not None:
                assert_same(g, w)
    assert leave_one_out(local).test.n_interactions > 0
    with pytest.raises(ConfigError, match="no Spark version"):
        rs.split_by_name(sds, {"method": "cold_users"})
    with pytest.raises(DataError, match="leaves test empty"):
        rs.temporal_split(sds, at=5000)
