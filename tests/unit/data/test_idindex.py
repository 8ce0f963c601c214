"""Properties of IdIndex (Hypothesis) and its error cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.data import IdIndex
from recforge.exceptions import DataError, UnknownIdError

int_ids = st.lists(st.integers(-(2**62), 2**62), max_size=60)
# NumPy unicode arrays drop trailing NUL characters, and lone surrogates cannot come from any
# file or database, so ids never contain them.
id_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
str_ids = st.lists(st.text(id_chars, min_size=0, max_size=6), max_size=60)
any_ids = st.one_of(int_ids, str_ids)


@settings(max_examples=60, deadline=None)
@given(any_ids)
def test_from_values_round_trips(values: list) -> None:
    idx, codes = IdIndex.from_values(values)
    assert codes.dtype == np.int32
    assert len(idx) == len(set(values))
    assert idx.ids_of(codes).tolist() == values
    # codes are contiguous and follow first appearance
    if values:
        assert sorted(set(codes.tolist())) == list(range(len(idx)))
        firsts = [codes.tolist().index(c) for c in range(len(idx))]
        assert firsts == sorted(firsts)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.tuples(int_ids, int_ids), st.tuples(str_ids, str_ids)))
def test_extend_keeps_existing_codes(pair: tuple[list, list]) -> None:
    first, more = pair
    idx = IdIndex(list(dict.fromkeys(first)))
    ext = idx.extend(more)
    assert ext.ids[: len(idx)].tolist() == idx.ids.tolist()
    assert ext.ids[len(idx) :].tolist() == [m for m in dict.fromkeys(more) if m not in idx]
    assert len(ext) == len(set(first) | set(more))
    assert all(x in ext for x in more)
    assert ext.codes(idx.ids).tolist() == list(range(len(idx)))
    if more:
        assert ext.ids_of(ext.codes(more)).tolist() == more


@settings(max_examples=40, deadline=None)
@given(any_ids)
def test_storage_round_trip(values: list) -> None:
    idx = IdIndex(list(dict.fromkeys(values)))
    back = IdIndex.from_array(idx.to_array())
    assert back == idx
    assert back.to_array().dtype != object


def test_duplicates_rejected_with_the_id() -> None:
    with pytest.raises(DataError, match="'b' appears more than once"):
        IdIndex(["a", "b", "b"])
    with pytest.raises(DataError, match="7 appears more than once"):
        IdIndex(np.array([7, 7]))


def test_unknown_id_message() -> None:
    idx = IdIndex([10, 20])
    with pytest.raises(UnknownIdError, match="unknown item id 30: it was not in the training data"):
        idx.codes([10, 30], what="item")
    assert idx.codes([30, 20], missing="negative").tolist() == [-1, 1]


def test_int_and_str_lookups_do_not_cross() -> None:
    assert "10" in IdIndex([10])
    assert 10 in IdIndex(["10"])
    assert "x" not in IdIndex([10])


def test_bad_ids() -> None:
    with pytest.raises(DataError, match="booleans"):
        IdIndex([True, False])
    with pytest.raises(DataError, match="non-integral floats"):
        IdIndex([1.5])
    with pytest.raises(DataError, match="NaN"):
        IdIndex([1.0, float("nan")])


def test_extend_empty_index_takes_the_new_id_type() -> None:
    assert IdIndex([]).extend(["a", "b", "a"]).ids.tolist() == ["a", "b"]


def test_extend_integer_index() -> None:
    assert IdIndex([1]).extend(["2", 3]).ids.tolist() == [1, 2, 3]
    with pytest.raises(DataError, match="cannot add id 'a' to an index of integer ids"):
        IdIndex([1]).extend(["5", "a"])


def test_one_rule_for_integer_ids_given_as_text() -> None:
    texts = [
        "7",
        "-3",
        "0",
        "007",
        "-0",
        "00",
        " 7",
        "+7",
        "7.0",
        "1_000",
        "²",
        "١",
        "--5",
        "",
        "x",
    ]
    values, ok = IdIndex.parse_int_ids(texts)
    assert ok.tolist() == [True, True, True] + [False] * 12
    assert values[ok].tolist() == [7, -3, 0]
    big = ["9223372036854775807", "-9223372036854775808", "9223372036854775808"]
    values, ok = IdIndex.parse_int_ids(big)
    assert ok.tolist() == [True, True, False]
    assert values[:2].tolist() == [2**63 - 1, -(2**63)]


def test_codes_and_ids_from_text() -> None:
    ints = IdIndex([5, 2**63 - 1])
    assert ints.codes_from_text(["9223372036854775807", "x", "5", "6"]).tolist() == [1, -1, 0, -1]
    assert ints.ids_from_text(["5", "+5", "8"]) == [5, 8]
    assert ints.codes(["5", "x"], missing="negative").tolist() == [0, -1]
    with pytest.raises(UnknownIdError, match="'x'"):
        ints.codes(["5", "x"])
    strs = IdIndex(["a", "5"])
    assert strs.codes_from_text(["5", "b"]).tolist() == [1, -1]
    assert strs.ids_from_text(["5", " b"]) == ["5", " b"]
    assert ints.codes_from_text([]).dtype == np.int32
