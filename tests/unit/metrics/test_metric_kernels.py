"""Numba metric kernels against their slow NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge._kernels import metrics as km


def _recs(rng: np.random.Generator, n: int, m: int, length: int) -> np.ndarray:
    recs = rng.integers(-1, m, size=(n, length)).astype(np.int32)  # padding and repeats
    recs[0, :] = -1
    return recs


def _csr(rng: np.random.Generator, n: int, m: int, density: float) -> sp.csr_array:
    mat = sp.random_array((n, m), density=density, format="csr", rng=rng)
    mat.data = np.ceil(mat.data * 3.0)
    mat.sort_indices()
    return sp.csr_array(mat)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hit_gains_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m, length = 60, 15, 7
    recs = _recs(rng, n, m, length)
    truth = _csr(rng, n, m, 0.3)
    indptr = truth.indptr.astype(np.int64)
    indices = truth.indices.astype(np.int32)
    data = truth.data.astype(np.float64)
    for k in (1, 4, 7, 9):
        out = np.full((n, k), -5.0)
        km.hit_gains(recs, k, indptr, indices, data, out)
        np.testing.assert_array_equal(out, km.hit_gains_reference(recs, k, indptr, indices, data))


def test_hit_gains_counts_a_repeated_item_once() -> None:
    recs = np.array([[3, 3, 1]], dtype=np.int32)
    out = np.empty((1, 3))
    km.hit_gains(
        recs, 3, np.array([0, 2], np.int64), np.array([1, 3], np.int32), np.array([2.0, 5.0]), out
    )
    np.testing.assert_array_equal(out, [[5.0, 0.0, 2.0]])


@pytest.mark.parametrize("seed", [0, 1])
def test_ideal_dcg_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = _csr(rng, 50, 20, 0.25)
    indptr = truth.indptr.astype(np.int64)
    data = truth.data.astype(np.float64)
    for k in (1, 5, 30):
        out = np.empty((50, k))
        km.ideal_dcg(indptr, data, k, out)
        np.testing.assert_allclose(out, km.ideal_dcg_reference(indptr, data, k), rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_rows_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = 40, 25
    scores = rng.integers(0, 6, size=(n, m)).astype(np.float32)  # many ties
    pos = _csr(rng, n, m, 0.2)
    excl = _csr(rng, n, m, 0.2)
    args = (
        pos.indptr.astype(np.int64),
        pos.indices.astype(np.int32),
        excl.indptr.astype(np.int64),
        excl.indices.astype(np.int32),
    )
    out = np.empty(n)
    km.auc_rows(scores, *args, out)
    ref = km.auc_rows_reference(scores, *args)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=0)
    assert np.isnan(ref).sum() < n  # the comparison is not vacuous


@pytest.mark.parametrize("seed", [0, 1])
def test_pair_sum_block_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, n_u, k = 40, 12, 6
    pos = rng.integers(-1, n_u, size=(n, k)).astype(np.int32)
    sim = rng.random((n_u, n_u))
    for start, stop in ((0, n_u), (0, 5), (5, 12), (11, 12)):
        block = np.ascontiguousarray(sim[start:stop])
        out = np.full(n, 0.25)
        km.pair_sum_block(pos, block, start, stop, out)
        ref = km.pair_sum_block_reference(pos, block, start, stop)
        np.testing.assert_allclose(out, 0.25 + ref, rtol=1e-12, atol=0)
    # the blocks together count every pair exactly once
    total = np.zeros(n)
    for start, stop in ((0, 5), (5, 11), (11, 12)):
        km.pair_sum_block(pos, np.ascontiguousarray(sim[start:stop]), start, stop, total)
    np.testing.assert_allclose(total, km.pair_sum_block_reference(pos, sim, 0, n_u), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_pairwise_cosine_sum_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m, d = 50, 20, 8
    dense = sp.random_array((m, d), density=0.4, format="csr", rng=rng).toarray()
    dense[3] = 0.0  # an item without features
    feats = sp.csr_array(dense)
    norms = np.linalg.norm(dense, axis=1)
    recs = _recs(rng, n, m, 6)
    for k in (1, 3, 6, 8):
        total = np.empty(n)
        pairs = np.empty(n, dtype=np.int64)
        km.pairwise_cosine_sum(
            recs,
            k,
            feats.indptr.astype(np.int64),
            feats.indices.astype(np.int32),
            feats.data.astype(np.float64),
            norms,
            total,
            pairs,
        )
        ref_total, ref_pairs = km.pairwise_cosine_sum_reference(recs, k, dense)
        np.testing.assert_array_equal(pairs, ref_pairs)
        np.testing.assert_allclose(total, ref_total, rtol=1e-12, atol=1e-12)
