"""SVD / SVD++ SGD kernels against slow NumPy references, and the parallel SVD epoch (DSGD)."""

from __future__ import annotations

import numba
import numpy as np

from recforge._kernels.sgd import (
    svd_epoch,
    svd_epoch_reference,
    svd_epoch_strata,
    svdpp_epoch,
    svdpp_epoch_reference,
    svdpp_implicit_sums,
)
from recforge._kernels.strata import Strata
from recforge.models.mf import group_by_user

N_USERS, N_ITEMS, NNZ, F = 40, 30, 300, 5


def _ratings(seed: int = 0):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, N_USERS, NNZ).astype(np.int32)
    i = rng.integers(0, N_ITEMS, NNZ).astype(np.int32)
    r = rng.integers(1, 6, NNZ).astype(np.float32)
    state = [
        rng.normal(0, 0.1, N_USERS).astype(np.float32),
        rng.normal(0, 0.1, N_ITEMS).astype(np.float32),
        rng.normal(0, 0.1, (N_USERS, F)).astype(np.float32),
        rng.normal(0, 0.1, (N_ITEMS, F)).astype(np.float32),
        rng.normal(0, 0.1, (N_ITEMS, F)).astype(np.float32),
    ]
    return u, i, r, state, rng


RATES = (0.01, 0.02, 0.005, 0.007, 0.02, 0.01, 0.03, 0.015)


def test_svd_epoch_matches_reference() -> None:
    u, i, r, state, rng = _ratings()
    order = rng.permutation(NNZ).astype(np.int64)
    fast = [a.copy() for a in state[:4]]
    slow = [a.copy() for a in state[:4]]
    sse_fast = svd_epoch((u, i, r), order, 3.2, tuple(fast), RATES)
    sse_slow = svd_epoch_reference((u, i, r), order, 3.2, tuple(slow), RATES)
    assert abs(sse_fast - sse_slow) <= 1e-6 * sse_slow
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # parameters moved
    assert not np.allclose(fast[2], state[2])


def _strata_epochs(u, i, r, state, threads: int, epochs: int = 3) -> tuple[list, list]:
    """``epochs`` parallel epochs on ``threads`` threads from one seed: (state, sse list)."""
    gen = np.random.default_rng(7)
    strata = Strata(u, i, N_USERS, N_ITEMS, gen, n_blocks=4)
    a = [x.copy() for x in state[:4]]
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        sse = [
            svd_epoch_strata((u, i, r), *strata.order(gen), 3.0, tuple(a), RATES)
            for _ in range(epochs)
        ]
    finally:
        numba.set_num_threads(before)
    return a, sse


def test_svd_strata_equals_sequential_on_the_stratified_order() -> None:
    u, i, r, state, _ = _ratings(1)
    gen = np.random.default_rng(3)
    order, bounds = Strata(u, i, N_USERS, N_ITEMS, gen, n_blocks=4).order(gen)
    a = [x.copy() for x in state[:4]]
    b = [x.copy() for x in state[:4]]
    s1 = svd_epoch((u, i, r), order, 3.0, tuple(a), RATES)
    s2 = svd_epoch_strata((u, i, r), order, bounds, 3.0, tuple(b), RATES)
    assert abs(s1 - s2) <= 1e-12 * s1  # partial sums per block, added in a fixed order
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_svd_strata_bit_identical_across_thread_counts() -> None:
    u, i, r, state, _ = _ratings(2)
    many = min(numba.config.NUMBA_NUM_THREADS, 4)
    one, sse_one = _strata_epochs(u, i, r, state, threads=1)
    par, sse_par = _strata_epochs(u, i, r, state, threads=many)
    assert sse_one == sse_par
    for x, y in zip(one, par, strict=True):
        np.testing.assert_array_equal(x, y)
    assert sse_one[-1] < sse_one[0]  # and it learns


def test_svdpp_epoch_matches_reference() -> None:
    u, i, r, state, rng = _ratings(3)
    # N(u) is a set: one rating per (user, item) pair
    _, first = np.unique(u.astype(np.int64) * N_ITEMS + i, return_index=True)
    u, i, r = u[first], i[first], r[first]
    csr = group_by_user(u, i, r, N_USERS)
    user_order = rng.permutation(N_USERS).astype(np.int64)
    fast = [a.copy() for a in state]
    slow = [a.copy() for a in state]
    rates = (0.007, 0.005, 0.006, 0.02, 0.015, 0.01)
    s1 = svdpp_epoch(user_order, csr, 3.1, tuple(fast), rates)
    s2 = svdpp_epoch_reference(user_order, csr, 3.1, tuple(slow), rates)
    assert abs(s1 - s2) < 1e-6 * s2
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fast[4], state[4])  # implicit factors were trained


def test_implicit_sums() -> None:
    u, i, r, state, _ = _ratings(4)
    indptr, indices, _ = group_by_user(u, i, r, N_USERS)
    Y = state[4]
    z = svdpp_implicit_sums(indptr, indices, Y)
    for row in (0, 7, 39):
        items = indices[indptr[row] : indptr[row + 1]]
        expected = Y[items].astype(np.float64).sum(0) / np.sqrt(max(items.size, 1))
        np.testing.assert_allclose(z[row], expected, rtol=1e-5, atol=1e-6)
