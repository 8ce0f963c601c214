"""describe(): every number on a tiny hand-computed dataset."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from rich.console import Console

from recforge.data import Dataset, DatasetSummary, describe


@pytest.fixture
def tiny() -> Dataset:
    # users: a(3), b(1), c(0: known from attributes); items: x(2), y(1), z(1), w(0)
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "a", "b", "a"],
            "item": ["x", "y", "z", "x", "x"],
            "r": [4.0, 2.0, 5.0, 4.0, 1.0],
            "t": [100, 200, 300, 400, 500],
        }
    )
    items = pd.DataFrame({"genre": ["g"] * 4}, index=["x", "y", "z", "w"])
    users = pd.DataFrame({"age": [1, 2, 3]}, index=["a", "b", "c"])
    return Dataset.from_frame(
        frame, value="r", time="t", item_attributes=items, user_attributes=users, name="tiny"
    )


def test_numbers(tiny: Dataset) -> None:
    s = describe(tiny)
    assert (s.n_users, s.n_items, s.n_interactions) == (3, 4, 5)
    assert s.n_pairs == 4  # (a, x) twice
    assert s.density == pytest.approx(4 / 12)
    assert s.implicit is False
    assert (s.value_min, s.value_max) == (1.0, 5.0)
    assert s.value_mean == pytest.approx(16 / 5)
    assert s.value_histogram == {"1": 1, "2": 1, "4": 2, "5": 1}
    assert (s.time_min, s.time_max) == (100, 500)
    # item counts x=3, y=1, z=1, w=0: top 1% -> 1 item (x) = 3/5; top 20% -> 1 item too
    assert s.top1_share == pytest.approx(0.6)
    assert s.top20_share == pytest.approx(0.6)
    # user activity over users with interactions: [4, 1]
    assert s.user_activity["min"] == 1
    assert s.user_activity["max"] == 4
    assert s.user_activity["p50"] == pytest.approx(2.5)
    # item activity over [3, 1, 1]
    assert s.item_activity["p50"] == 1
    assert s.item_activity["max"] == 3
    assert (s.cold_users, s.cold_items) == (1, 1)


def test_many_distinct_values_are_binned() -> None:
    frame = pd.DataFrame({"user": range(30), "item": [0] * 30, "v": [float(i) for i in range(30)]})
    s = describe(Dataset.from_frame(frame, value="v"))
    assert len(s.value_histogram) == 10
    assert sum(s.value_histogram.values()) == 30
    assert next(iter(s.value_histogram)) == "[0, 2.9)"
    assert list(s.value_histogram)[-1].endswith("]")


def test_implicit_without_time() -> None:
    s = describe(Dataset.from_frame(pd.DataFrame({"user": [1, 2], "item": [1, 1]})))
    assert s.implicit
    assert s.time_min is None
    assert s.value_histogram == {"1": 2}


def test_renderings(tiny: Dataset) -> None:
    s = tiny.describe()
    assert isinstance(s, DatasetSummary)
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    text = str(s)
    assert "tiny" in text
    assert "3 (1 without interactions)" in text
    assert "feedback               ratings: 4 distinct values from 1 to 5" in text
    assert "1970-01-01 00:01:40 UTC .. 1970-01-01 00:08:20 UTC" in text
    console = Console(width=120, record=True)
    console.print(s.to_table())
    out = console.export_text()
    assert "top 20% items share" in out
    assert "60.0%" in out
