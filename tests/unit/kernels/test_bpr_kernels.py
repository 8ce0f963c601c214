"""BPR kernels: one-step update against the NumPy reference, samplers, thread independence."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from recforge._kernels.bpr import (
    block_negative_cdf,
    bpr_epoch,
    bpr_fold_in,
    bpr_step_reference,
    negative_cdf,
    sample_items,
    seed_states,
)
from recforge._kernels.strata import Strata


def _matrix(seed: int = 0, n: int = 30, m: int = 20):
    rng = np.random.default_rng(seed)
    x = sp.csr_array((rng.random((n, m)) < 0.25).astype(np.float32))
    x.sort_indices()
    indptr = x.indptr.astype(np.int64)
    indices = x.indices.astype(np.int32)
    row_of = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
    return row_of, indptr, indices, rng


def _one_block(nnz: int, n_items: int) -> tuple[np.ndarray, ...]:
    """Block arguments of :func:`bpr_epoch` for a single block (sequential, global negatives)."""
    return (
        np.arange(nnz, dtype=np.int64),
        np.array([0, nnz], dtype=np.int64),
        np.arange(n_items, dtype=np.int32),
        np.array([0, n_items], dtype=np.int64),
    )


def test_uniform_sampler_is_uniform() -> None:
    states = seed_states(np.random.default_rng(0), 1)
    draws = sample_items(np.empty(0), 10, 50_000, states)
    freq = np.bincount(draws, minlength=10) / draws.size
    np.testing.assert_allclose(freq, 0.1, atol=0.01)


def test_popularity_sampler_follows_count_power() -> None:
    counts = np.array([0, 1, 2, 4, 8, 16], dtype=np.float32)
    beta = 0.5
    cdf = negative_cdf(counts, beta)
    states = seed_states(np.random.default_rng(1), 1)
    draws = sample_items(cdf, counts.size, 100_000, states)
    freq = np.bincount(draws, minlength=counts.size) / draws.size
    expected = counts**beta / (counts**beta).sum()
    np.testing.assert_allclose(freq, expected, atol=0.01)
    assert freq[0] == 0.0  # items without interactions are never drawn


def test_single_sample_matches_reference() -> None:
    # one interaction, two items: the only triple is (0, 0, 1)
    indptr = np.array([0, 1], dtype=np.int64)
    indices = np.array([0], dtype=np.int32)
    row_of = np.array([0], dtype=np.int32)
    rng = np.random.default_rng(3)
    P = rng.normal(0, 0.1, (1, 4)).astype(np.float32)
    Q = rng.normal(0, 0.1, (2, 4)).astype(np.float32)
    b = rng.normal(0, 0.1, 2).astype(np.float32)
    P2, Q2, b2 = P.copy(), Q.copy(), b.copy()
    blocks = _one_block(1, 2)
    stats = bpr_epoch(
        row_of, indptr, indices, P, Q, b, 0.1, 0.01, *blocks, np.empty(0), seed_states(rng, 1)
    )
    bpr_step_reference(0, 0, 1, P2, Q2, b2, 0.1, 0.01)
    assert stats[0] == 1
    np.testing.assert_allclose(P, P2, rtol=1e-6)
    np.testing.assert_allclose(Q, Q2, rtol=1e-6)
    np.testing.assert_allclose(b, b2, rtol=1e-6)


def _epochs_on(threads: int, popularity: bool) -> tuple[np.ndarray, ...]:
    row_of, indptr, indices, rng = _matrix()
    strata = Strata(row_of, indices, 30, 20, rng, equal_cols=True, n_blocks=3)
    blocks = (*strata.grouped(), *strata.col_groups())
    counts = np.bincount(indices, minlength=20)
    cdf = block_negative_cdf(counts, 0.75, *blocks[2:]) if popularity else np.empty(0)
    states = seed_states(rng, 9)
    P = rng.normal(0, 0.1, (30, 4)).astype(np.float32)
    Q = rng.normal(0, 0.1, (20, 4)).astype(np.float32)
    b = np.zeros(20, dtype=np.float32)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        for _ in range(3):
            stats = bpr_epoch(row_of, indptr, indices, P, Q, b, 0.05, 0.01, *blocks, cdf, states)
    finally:
        numba.set_num_threads(before)
    assert stats[0] + stats[2] == indices.size  # one sample per interaction
    return P, Q, b, states


def test_epoch_bit_identical_across_thread_counts() -> None:
    many = min(numba.config.NUMBA_NUM_THREADS, 4)
    for popularity in (False, True):
        one = _epochs_on(1, popularity)
        par = _epochs_on(many, popularity)
        for x, y in zip(one, par, strict=True):
            np.testing.assert_array_equal(x, y)


def test_block_negative_cdf_restarts_in_each_block() -> None:
    counts = np.array([4.0, 0.0, 1.0, 9.0, 1.0])
    items = np.array([3, 0, 1, 2, 4], dtype=np.int32)
    cdf = block_negative_cdf(counts, 0.5, items, np.array([0, 2, 5], dtype=np.int64))
    np.testing.assert_allclose(cdf, [0.6, 1.0, 0.0, 0.5, 1.0])


def test_negatives_are_never_positives() -> None:
    # a user who has every item but one: the only valid negative is that item
    indptr = np.array([0, 4], dtype=np.int64)
    indices = np.array([0, 1, 2, 4], dtype=np.int32)
    row_of = np.zeros(4, dtype=np.int32)
    Q = np.zeros((5, 2), dtype=np.float32)
    P = np.zeros((1, 2), dtype=np.float32)
    b = np.zeros(5, dtype=np.float32)
    blocks = _one_block(4, 5)
    states = np.array([7], dtype=np.uint64)
    for _ in range(100):
        bpr_epoch(row_of, indptr, indices, P, Q, b, 0.1, 0.0, *blocks, np.empty(0), states)
    # only item 3 was ever a negative, so only its bias went down
    assert b[3] < 0
    assert np.all(b[[0, 1, 2, 4]] >= 0)


def test_fold_in_learns_preference() -> None:
    rng = np.random.default_rng(5)
    Q = rng.normal(0, 1, (12, 3)).astype(np.float32)
    b = np.zeros(12, dtype=np.float32)
    items = np.array([0, 1, 2], dtype=np.int32)
    p = bpr_fold_in(items, Q, b, 50, 0.1, 0.01, np.empty(0), np.array([9], dtype=np.uint64))
    scores = Q @ p
    assert scores[items].mean() > np.delete(scores, items).mean()
    p2 = bpr_fold_in(items, Q, b, 50, 0.1, 0.01, np.empty(0), np.array([9], dtype=np.uint64))
    np.testing.assert_array_equal(p, p2)


def test_epoch_rejects_too_few_generator_states() -> None:
    row_of, indptr, indices, rng = _matrix()
    strata = Strata(row_of, indices, 30, 20, rng, equal_cols=True, n_blocks=3)
    P = np.zeros((30, 2), dtype=np.float32)
    Q = np.zeros((20, 2), dtype=np.float32)
    b = np.zeros(20, dtype=np.float32)
    blocks = (*strata.grouped(), *strata.col_groups())
    with pytest.raises(ValueError, match="9 generator states"):
        bpr_epoch(
            row_of, indptr, indices, P, Q, b, 0.1, 0.0, *blocks, np.empty(0), seed_states(rng, 1)
        )
