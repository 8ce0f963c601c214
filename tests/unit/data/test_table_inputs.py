"""Interactions and attributes from polars, Arrow and DuckDB give the same Dataset as pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset, read_sql
from recforge.exceptions import DataError

FRAME = pd.DataFrame(
    {
        "user": ["a", "b", "a", "c", "b"],
        "item": [10, 11, 12, 10, 12],
        "rating": [4.0, 3.5, 5.0, 1.0, 2.0],
        "ts": pd.to_datetime(
            ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"], utc=True
        ),
    }
)
ATTRS = pd.DataFrame({"item": [10, 11, 12, 13], "genre": ["x", "y", None, "z"]})


def _same(ds: Dataset, ref: Dataset) -> None:
    np.testing.assert_array_equal(ds.users.ids, ref.users.ids)
    np.testing.assert_array_equal(ds.items.ids, ref.items.ids)
    np.testing.assert_array_equal(ds.user, ref.user)
    np.testing.assert_array_equal(ds.item, ref.item)
    np.testing.assert_array_equal(ds.value, ref.value)
    np.testing.assert_array_equal(ds.time, ref.time)
    assert ds.item_attributes is not None
    assert ref.item_attributes is not None
    assert ds.item_attributes["genre"].tolist() == ref.item_attributes["genre"].tolist()


@pytest.fixture(scope="module")
def reference() -> Dataset:
    return Dataset.from_frame(
        FRAME, value="rating", time="ts", item_attributes=ATTRS, item_key="item"
    )


def test_polars_eager_and_lazy(reference: Dataset) -> None:
    pl = pytest.importorskip("polars")
    frame, attrs = pl.from_pandas(FRAME), pl.from_pandas(ATTRS)
    for table in (frame, frame.lazy()):
        ds = Dataset.from_frame(
            table, value="rating", time="ts", item_attributes=attrs, item_key="item"
        )
        _same(ds, reference)


def test_arrow_table_and_batch(reference: Dataset) -> None:
    import pyarrow as pa

    table = pa.Table.from_pandas(FRAME, preserve_index=False)
    attrs = pa.Table.from_pandas(ATTRS, preserve_index=False)
    for t in (table, table.to_batches()[0]):
        ds = Dataset.from_frame(
            t, value="rating", time="ts", item_attributes=attrs, item_key="item"
        )
        _same(ds, reference)


def test_other_objects_are_named() -> None:
    with pytest.raises(DataError, match="interactions must be a pandas, polars or Arrow table"):
        Dataset.from_frame({"user": ["a"], "item": [1]})
    with pytest.raises(DataError, match=r"item attributes must be .* got builtins\.list"):
        Dataset.from_frame(FRAME, item_attributes=[1, 2])


def test_duckdb_through_sql(tmp_path: Path, reference: Dataset) -> None:
    duckdb = pytest.importorskip("duckdb")
    pytest.importorskip("duckdb_engine")
    db = tmp_path / "events.duckdb"
    con = duckdb.connect(str(db))
    con.register("frame", FRAME)
    con.execute("CREATE TABLE events AS SELECT * FROM frame")
    con.close()
    ds = read_sql(
        f"duckdb:///{db}",
        "SELECT user, item, rating, ts FROM events WHERE rating >= :low ORDER BY ts",
        value="rating",
        time="ts",
        params={"low": 0.0},
        item_attributes=ATTRS,
        item_key="item",
    )
    _same(ds, reference)
    with pytest.raises(DataError, match="failed"):
        read_sql(f"duckdb:///{db}", "SELECT user, item FROM no_such_table")
