"""Readers: column mapping, attribute joins, and errors naming the file, column and row."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset, read_csv, read_parquet, read_sql
from recforge.exceptions import DataError


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        "ratings.csv",
        "uid,mid,stars,ts,extra\n"
        "a,10,4.0,1600000000,x\n"
        "b,10,3.5,1600000100,y\n"
        "a,20,5,1600000200,z\n",
    )


class TestReadCsv:
    def test_maps_columns_by_name(self, ratings_csv: Path) -> None:
        ds = read_csv(ratings_csv, user="uid", item="mid", value="stars", time="ts")
        assert ds.name == "ratings.csv"
        assert ds.users.ids.tolist() == ["a", "b"]
        assert ds.items.ids.tolist() == [10, 20]
        assert ds.user.tolist() == [0, 1, 0]
        assert ds.item.tolist() == [0, 0, 1]
        assert ds.value.tolist() == [4.0, 3.5, 5.0]
        assert ds.time is not None
        assert ds.time.tolist() == [1600000000, 1600000100, 1600000200]

    def test_implicit_without_value(self, ratings_csv: Path) -> None:
        ds = read_csv(ratings_csv, user="uid", item="mid")
        assert ds.is_implicit
        assert ds.time is None

    def test_datetime_strings(self, tmp_path: Path) -> None:
        p = write(tmp_path, "t.csv", "user,item,when\n1,2,2020-01-01T00:00:10Z\n1,3,2020-01-02\n")
        ds = read_csv(p, time="when")
        assert ds.time is not None
        assert ds.time.tolist() == [1577836810, 1577923200]

    def test_separator_and_gzip(self, tmp_path: Path) -> None:
        p = tmp_path / "r.tsv.gz"
        pd.DataFrame({"user": [1, 2], "item": [3, 3]}).to_csv(p, sep="\t", index=False)
        ds = read_csv(p, sep="\t")
        assert ds.n_interactions == 2
        assert ds.n_items == 1

    def test_item_attributes_from_path_add_cold_items(
        self, ratings_csv: Path, tmp_path: Path
    ) -> None:
        attrs = write(tmp_path, "items.csv", "mid,title\n10,Ten\n20,Twenty\n30,Thirty\n")
        ds = read_csv(ratings_csv, user="uid", item="mid", item_attributes=attrs, item_key="mid")
        assert ds.items.ids.tolist() == [10, 20, 30]
        assert ds.item_attributes is not None
        assert ds.item_attributes.loc[30, "title"] == "Thirty"
        assert ds.item_counts().tolist() == [2, 1, 0]

    def test_attribute_key_defaults_to_the_id_column(
        self, ratings_csv: Path, tmp_path: Path
    ) -> None:
        attrs = tmp_path / "items.parquet"
        pd.DataFrame({"title": ["Ten", "Forty"], "mid": [10, 40]}).to_parquet(attrs)
        ds = read_csv(ratings_csv, user="uid", item="mid", item_attributes=attrs)
        assert ds.items.ids.tolist() == [10, 20, 40]
        assert ds.item_attributes is not None
        assert ds.item_attributes.loc[40, "title"] == "Forty"

    def test_user_attributes_dataframe(self, ratings_csv: Path) -> None:
        users = pd.DataFrame({"uid": ["a", "c"], "age": [30, 40]})
        ds = read_csv(ratings_csv, user="uid", item="mid", user_attributes=users, user_key="uid")
        assert ds.users.ids.tolist() == ["a", "b", "c"]
        assert ds.user_attributes is not None
        assert ds.user_attributes.loc["c", "age"] == 40

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DataError, match=r"nope\.csv: interactions file does not exist"):
            read_csv(tmp_path / "nope.csv")

    def test_empty_file(self, tmp_path: Path) -> None:
        p = write(tmp_path, "empty.csv", "")
        with pytest.raises(DataError, match=r"empty\.csv: interactions file is empty"):
            read_csv(p)

    def test_header_only(self, tmp_path: Path) -> None:
        p = write(tmp_path, "h.csv", "user,item\n")
        with pytest.raises(DataError, match=r"h\.csv: interactions are empty"):
            read_csv(p)

    def test_missing_column_lists_found(self, ratings_csv: Path) -> None:
        with pytest.raises(DataError) as err:
            read_csv(ratings_csv, user="uid", item="movie")
        msg = str(err.value)
        assert "ratings.csv" in msg
        assert "missing column 'movie'" in msg
        assert "(columns: uid, mid, stars, ts, extra)" in msg

    @pytest.mark.parametrize(
        ("text", "kwargs", "message"),
        [
            ("user,item\n1,2\n3,4\n,5\n", {}, "column 'user' has a missing id at line 4"),
            (
                "user,item,r\n1,2,4\n1,3,good\n",
                {"value": "r"},
                "column 'r' has a non-numeric value 'good' at line 3",
            ),
            (
                "user,item,r\n1,2,4\n1,3,5\n2,3,inf\n",
                {"value": "r"},
                "column 'r' has a non-finite value inf at line 4",
            ),
            (
                "user,item,r\n1,2,\n",
                {"value": "r"},
                "column 'r' has a non-finite value nan at line 2",
            ),
            (
                "user,item,t\n1,2,2020-01-01\n1,3,yesterday\n",
                {"time": "t"},
                "column 't' has an unparseable time 'yesterday' at line 3",
            ),
        ],
        ids=["null-id", "non-numeric-value", "non-finite-value", "missing-value", "bad-time"],
    )
    def test_bad_cell_names_file_column_and_line(
        self, tmp_path: Path, text: str, kwargs: dict[str, str], message: str
    ) -> None:
        p = write(tmp_path, "bad.csv", text)
        with pytest.raises(DataError, match=re.escape(f"bad.csv: {message}")):
            read_csv(p, **kwargs)

    def test_duplicate_attribute_ids_name_the_attribute_file(
        self, ratings_csv: Path, tmp_path: Path
    ) -> None:
        attrs = write(tmp_path, "items.csv", "mid,title\n10,Ten\n20,Twenty\n10,Again\n")
        with pytest.raises(
            DataError,
            match=r"items\.csv: item attributes have duplicate id 10 in column 'mid' at line 4",
        ):
            read_csv(ratings_csv, user="uid", item="mid", item_attributes=attrs, item_key="mid")

    def test_attribute_key_missing(self, ratings_csv: Path, tmp_path: Path) -> None:
        attrs = write(tmp_path, "items.csv", "movie,title\n10,Ten\n")
        with pytest.raises(
            DataError,
            match=r"items\.csv: item attributes are missing column 'mid' \(columns: movie, title\)",
        ):
            read_csv(ratings_csv, user="uid", item="mid", item_attributes=attrs, item_key="mid")

    def test_missing_attribute_file(self, ratings_csv: Path, tmp_path: Path) -> None:
        with pytest.raises(DataError, match=r"gone\.csv: item attributes file does not exist"):
            read_csv(ratings_csv, user="uid", item="mid", item_attributes=tmp_path / "gone.csv")

    def test_duplicate_ids_in_attribute_frame(self, ratings_csv: Path) -> None:
        attrs = pd.DataFrame({"title": ["x", "y"]}, index=pd.Index([10, 10]))
        with pytest.raises(DataError, match=r"ratings\.csv: item attributes have duplicate id 10"):
            read_csv(ratings_csv, user="uid", item="mid", item_attributes=attrs)

    def test_from_csv_classmethod(self, ratings_csv: Path) -> None:
        ds = Dataset.from_csv(ratings_csv, user="uid", item="mid", value="stars")
        assert ds.n_interactions == 3


class TestReadParquet:
    def test_reads_only_mapped_columns(self, tmp_path: Path) -> None:
        p = tmp_path / "r.parquet"
        frame = pd.DataFrame(
            {
                "u": np.array([5, 6, 5], dtype=np.int32),
                "i": ["x", "y", "y"],
                "r": [1.0, 2.0, 3.0],
                "when": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"], utc=True),
                "blob": ["a", "b", "c"],
            }
        )
        frame.to_parquet(p)
        ds = read_parquet(p, user="u", item="i", value="r", time="when")
        assert ds.users.ids.tolist() == [5, 6]
        assert ds.items.ids.tolist() == ["x", "y"]
        assert ds.value.tolist() == [1.0, 2.0, 3.0]
        assert ds.time is not None
        assert ds.time.tolist() == [1577836800, 1577923200, 1578009600]
        same = Dataset.from_parquet(p, user="u", item="i", value="r", time="when")
        assert same.fingerprint() == ds.fingerprint()

    def test_partitioned_directory(self, tmp_path: Path) -> None:
        d = tmp_path / "events"
        d.mkdir()
        pd.DataFrame({"user": [1, 2], "item": [5, 5]}).to_parquet(d / "part-0.parquet")
        pd.DataFrame({"user": [3], "item": [6]}).to_parquet(d / "part-1.parquet")
        ds = read_parquet(d)
        assert ds.n_interactions == 3
        assert sorted(ds.items.ids.tolist()) == [5, 6]

    def test_leading_zero_ids_kept_as_strings(self, tmp_path: Path) -> None:
        p = write(tmp_path, "z.csv", "user,item\n007,1\n7,1\n")
        assert read_csv(p).n_users == 1
        assert read_csv(p, dtype={"user": str}).users.ids.tolist() == ["007", "7"]

    def test_missing_column(self, tmp_path: Path) -> None:
        p = tmp_path / "r.parquet"
        pd.DataFrame({"user": [1], "thing": [2]}).to_parquet(p)
        with pytest.raises(
            DataError,
            match=r"r\.parquet: interactions are missing column 'item' \(columns: user, thing\)",
        ):
            read_parquet(p)

    def test_null_id_row(self, tmp_path: Path) -> None:
        p = tmp_path / "r.parquet"
        pd.DataFrame({"user": [1.0, None], "item": [2, 3]}).to_parquet(p)
        with pytest.raises(DataError, match=r"r\.parquet: column 'user' has a missing id at row 1"):
            read_parquet(p)

    def test_not_parquet(self, tmp_path: Path) -> None:
        p = write(tmp_path, "fake.parquet", "user,item\n1,2\n")
        with pytest.raises(DataError, match=r"fake\.parquet: cannot read as Parquet"):
            read_parquet(p)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DataError, match=r"x\.parquet: interactions file does not exist"):
            read_parquet(tmp_path / "x.parquet")

    def test_empty(self, tmp_path: Path) -> None:
        p = tmp_path / "e.parquet"
        pd.DataFrame(
            {"user": pd.Series([], dtype="int64"), "item": pd.Series([], dtype="int64")}
        ).to_parquet(p)
        with pytest.raises(DataError, match=r"e\.parquet: interactions are empty"):
            read_parquet(p)


class TestReadSql:
    @pytest.fixture
    def db(self, tmp_path: Path) -> str:
        path = tmp_path / "events.db"
        con = sqlite3.connect(path)
        con.execute("create table events (who text, what integer, score real, at integer)")
        con.executemany(
            "insert into events values (?, ?, ?, ?)",
            [("u1", 7, 1.0, 100), ("u2", 7, 2.0, 200), ("u1", 8, None, 300)],
        )
        con.commit()
        con.close()
        return f"sqlite:///{path}"

    def test_query_with_params(self, db: str) -> None:
        ds = read_sql(
            db,
            "select who, what, at from events where at >= :since order by at",
            user="who",
            item="what",
            time="at",
            params={"since": 150},
        )
        assert ds.users.ids.tolist() == ["u2", "u1"]
        assert ds.items.ids.tolist() == [7, 8]
        assert ds.time is not None
        assert ds.time.tolist() == [200, 300]
        assert ds.name == "sql"

    def test_bad_value_names_query_and_row(self, db: str) -> None:
        with pytest.raises(DataError) as err:
            read_sql(db, "select * from events order by at", user="who", item="what", value="score")
        assert re.search(
            r"query 'select \* from events order by at'.*column 'score'", str(err.value)
        )
        assert "row 2" in str(err.value)

    def test_failing_query(self, db: str) -> None:
        with pytest.raises(
            DataError,
            match=r"query 'select \* from missing_table' failed: no such table: missing_table",
        ):
            read_sql(db, "select * from missing_table")

    def test_empty_result(self, db: str) -> None:
        with pytest.raises(DataError, match="interactions are empty"):
            read_sql(db, "select who, what from events where at < 0", user="who", item="what")

    def test_bad_url(self) -> None:
        with pytest.raises(DataError, match="invalid database URL"):
            read_sql("notadb://x", "select 1")

    def test_from_sql_classmethod(self, db: str) -> None:
        ds = Dataset.from_sql(db, "select who as user, what as item from events")
        assert ds.n_interactions == 3


class TestFromFrameIds:
    def test_mixed_int_and_str_ids_merge(self) -> None:
        ds = Dataset.from_frame(pd.DataFrame({"user": [1, "1", "a"], "item": [1.0, 2.0, 1.0]}))
        assert ds.users.ids.tolist() == ["1", "a"]
        assert ds.user.tolist() == [0, 0, 1]
        assert ds.items.ids.tolist() == [1, 2]

    def test_extend_existing_index_keeps_codes(self) -> None:
        base = Dataset.from_frame(pd.DataFrame({"user": ["x", "y"], "item": [1, 2]}))
        ds = Dataset.from_frame(
            pd.DataFrame({"user": ["z", "x"], "item": [3, 2]}), users=base.users, items=base.items
        )
        assert ds.users.ids.tolist() == ["x", "y", "z"]
        assert ds.user.tolist() == [2, 0]
        assert ds.items.ids.tolist() == [1, 2, 3]
        assert ds.item.tolist() == [2, 1]

    def test_codes_round_trip_on_arrow_strings(self) -> None:
        rng = np.random.default_rng(0)
        users = pd.Series([f"u{k}" for k in rng.integers(0, 50, 500)], dtype="string[pyarrow]")
        items = rng.integers(0, 30, 500)
        ds = Dataset.from_frame(pd.DataFrame({"user": users, "item": items}))
        assert ds.users.ids_of(ds.user).tolist() == users.tolist()
        assert ds.items.ids_of(ds.item).tolist() == items.tolist()


@pytest.mark.realdata
def test_movielens_100k_csv(ml100k_dir: Path) -> None:
    ds = read_csv(
        ml100k_dir / "ratings.csv",
        user="user_id",
        item="item_id",
        value="rating",
        time="timestamp",
        item_attributes=ml100k_dir / "items.csv",
        item_key="item_id",
        user_attributes=ml100k_dir / "users.csv",
        user_key="user_id",
    )
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (100_000, 943, 1_682)
    assert ds.item_attributes is not None
    assert ds.item_attributes.loc[1, "title"] == "Toy Story"
    assert ds.user_attributes is not None
    assert ds.user_attributes.loc[1, "occupation"] == "technician"
    summary = ds.describe()
    assert summary.value_histogram == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}
