"""The shared top-K kernel against its NumPy reference (both the parallel and serial paths)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge._kernels.topk import SERIAL_ROWS, topk, topk_reference


def _case(
    seed: int, n_rows: int, n_items: int, ties: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.random((n_rows, n_items)).astype(np.float32)
    if ties:
        scores = np.round(scores * 3).astype(np.float32)
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    scores[rng.random(scores.shape) < 0.02] = np.nan
    n_csr = 5
    counts = rng.integers(0, n_items + 1, n_csr)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate(
        [np.sort(rng.choice(n_items, c, replace=False)) for c in counts]
    ).astype(np.int32)
    rows = rng.integers(-1, n_csr, n_rows).astype(np.int64)
    return scores, rows, indptr, indices


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_rows=st.sampled_from([1, 3, SERIAL_ROWS - 1, SERIAL_ROWS, 40]),
    n_items=st.integers(1, 60),
    k=st.integers(1, 70),
    ties=st.booleans(),
)
def test_topk_matches_reference(seed: int, n_rows: int, n_items: int, k: int, ties: bool) -> None:
    scores, rows, indptr, indices = _case(seed, n_rows, n_items, ties)
    k_eff = min(k, n_items)
    want_idx, want_val = topk_reference(scores, rows, indptr, indices, k_eff)
    got_idx, got_val = topk(scores.copy(), k, rows, (indptr, indices))
    np.testing.assert_array_equal(got_idx, want_idx)
    np.testing.assert_array_equal(got_val, want_val)


def test_ties_go_to_the_lower_item_and_padding_is_marked() -> None:
    scores = np.array([[1.0, 2.0, 2.0, -np.inf, np.nan]], dtype=np.float32)
    idx, val = topk(scores, 5)
    assert idx.tolist() == [[1, 2, 0, -1, -1]]
    assert val[0, :3].tolist() == [2.0, 2.0, 1.0]
    assert np.all(np.isneginf(val[0, 3:]))


def test_exclusion_uses_the_csr_row_of_each_score_row() -> None:
    scores = np.tile(np.arange(5, dtype=np.float32)[::-1], (2, 1))
    indptr = np.array([0, 2, 2], dtype=np.int64)
    indices = np.array([0, 1], dtype=np.int32)
    idx, _ = topk(scores, 2, np.array([0, 1]), (indptr, indices))
    assert idx.tolist() == [[2, 3], [0, 1]]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2-D"):
        topk(np.zeros(3, dtype=np.float32), 1)
    with pytest.raises(ValueError, match="k must be"):
        topk(np.zeros((1, 3), dtype=np.float32), 0)
    with pytest.raises(ValueError, match="rows is required"):
        topk(np.zeros((1, 3), dtype=np.float32), 1, None, (np.zeros(2), np.zeros(0)))
