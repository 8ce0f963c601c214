"""read_sequences and Dataset.sequences: order kept, errors naming the line, leave-one-out."""

from __future__ import annotations

import doctest
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset, read_sequences
from recforge.data import _sequences as seq_module
from recforge.exceptions import DataError
from recforge.split import leave_one_out


def _write(tmp_path: Path, text: str, name: str = "seq.txt") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _as_lists(ds: Dataset) -> list[list[object]]:
    indptr, items = ds.sequences()
    return [ds.items.ids_of(items[a:b]).tolist() for a, b in itertools.pairwise(indptr)]


def test_read_keeps_order_and_times_increase(tmp_path: Path) -> None:
    ds = read_sequences(_write(tmp_path, "5 3 9\n3  5\t7\n\n"))
    assert ds.users.ids.tolist() == [1, 2]
    assert _as_lists(ds) == [[5, 3, 9], [3, 5, 7]]
    assert ds.time is not None
    assert np.all(np.diff(ds.time) > 0)
    assert ds.is_implicit


def test_first_token_as_user_and_string_items(tmp_path: Path) -> None:
    ds = read_sequences(_write(tmp_path, "alice a b\nbob c a\n"), users="first")
    assert ds.users.ids.tolist() == ["alice", "bob"]
    assert _as_lists(ds) == [["a", "b"], ["c", "a"]]


@pytest.mark.parametrize(
    ("text", "users", "match"),
    [
        ("1 2\n\n3 4\n", "line", "line 2 is blank"),
        ("u1 1 2\nu2\n", "first", "line 2 has a user id .'u2'. but no items"),
        ("u1 1\nu2 2\nu1 3\n", "first", "line 3 repeats user id 'u1' of line 1"),
        ("\n\n", "line", "empty"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, text: str, users: str, match: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(DataError, match=match) as info:
        read_sequences(p, users=users)  # type: ignore[arg-type]
    assert str(p) in str(info.value)


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_sequences(tmp_path / "nope.txt")
    p = tmp_path / "bad.txt"
    p.write_bytes(b"1 2\n3 \xff\n")
    with pytest.raises(DataError, match="line 2 is not valid UTF-8"):
        read_sequences(p)
    with pytest.raises(DataError, match="users must be"):
        read_sequences(_write(tmp_path, "1\n"), users="column")  # type: ignore[arg-type]


def test_sequences_order_by_time_with_row_order_ties() -> None:
    frame = pd.DataFrame(
        {
            "user": ["b", "a", "a", "a", "b", "a"],
            "item": [1, 2, 3, 4, 5, 6],
            "time": [5, 9, 1, 9, 2, 3],
        }
    )
    ds = Dataset.from_frame(frame, time="time")
    # a: times 9, 1, 9, 3 -> 3 (t=1), 6 (t=3), then the two t=9 rows in row order: 2, 4
    assert _as_lists(ds) == [[5, 1], [3, 6, 2, 4]]
    untimed = Dataset.from_frame(frame)
    assert _as_lists(untimed) == [[1, 5], [2, 3, 4, 6]]
    indptr, items = ds.sequences()
    assert not items.flags.writeable
    assert indptr.dtype == np.int64
    assert items.dtype == np.int32


def test_leave_one_out_holds_out_the_last_items(tmp_path: Path) -> None:
    ds = read_sequences(_write(tmp_path, "1 2 3 4\n5 6 7\n8 9\n"))
    split = leave_one_out(ds, by="time", valid=True)
    assert split.valid is not None
    test = dict(zip(split.test.to_frame().user, split.test.to_frame().item, strict=True))
    valid = dict(zip(split.valid.to_frame().user, split.valid.to_frame().item, strict=True))
    assert test == {1: 4, 2: 7, 3: 9}
    assert valid == {1: 3, 2: 6}
    assert _as_lists(split.train) == [[1, 2], [5], [8]]


def test_doctest() -> None:
    assert doctest.testmod(seq_module).failed == 0


@pytest.mark.realdata
def test_ml1m_sequences(ml1m_seq_path: Path) -> None:
    ds = read_sequences(ml1m_seq_path)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (6040, 3416, 987_019)
    first_line = ml1m_seq_path.read_text().split("\n", 1)[0].split()
    indptr, items = ds.sequences()
    assert ds.items.ids_of(items[: indptr[1]]).tolist() == [int(t) for t in first_line]
