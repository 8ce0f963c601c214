"""Sparse top-n similarity and kNN prediction kernels against slow NumPy references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from recforge._kernels.knn import predict_pairs, predict_pairs_reference
from recforge._kernels.similarity import neighbours_reference, topn_similarity


def _ratings(n_rows: int = 30, n_cols: int = 45, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_rows, n_cols)) < 0.3
    return (mask * rng.integers(1, 6, (n_rows, n_cols))).astype(np.float32)


def _rows(s: sp.csr_array, n_keep: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.full((s.shape[0], n_keep), -1, dtype=np.int32)
    val = np.zeros((s.shape[0], n_keep), dtype=np.float32)
    for r in range(s.shape[0]):
        a, b = s.indptr[r], s.indptr[r + 1]
        idx[r, : b - a] = s.indices[a:b]
        val[r, : b - a] = s.data[a:b]
    return idx, val


@pytest.mark.parametrize("mode", ["cosine", "pearson", "jaccard", "asymmetric"])
@pytest.mark.parametrize("common_norms", [False, True])
@pytest.mark.parametrize("shrink", [0.0, 4.0])
def test_topn_similarity_matches_dense_reference(
    mode: str, common_norms: bool, shrink: float
) -> None:
    d = _ratings()
    options: dict[str, Any] = {
        "common_norms": common_norms,
        "alpha": 0.3,
        "shrink": shrink,
        "min_support": 2,
        "min_sim": -1.0 if mode == "pearson" else 0.0,
    }
    s = topn_similarity(sp.csr_array(d), mode, 7, block=4, **options)
    ref_idx, ref_val = neighbours_reference(d, mode, n_keep=7, **options)
    idx, val = _rows(s, 7)
    np.testing.assert_allclose(val, ref_val, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(idx, ref_idx)


def test_cosine_brute_force_values() -> None:
    d = _ratings(12, 20, seed=3)
    s = topn_similarity(sp.csr_array(d), "cosine", 11).toarray()
    norms = np.linalg.norm(d, axis=1)
    dense = (d @ d.T) / np.outer(norms, norms)
    np.fill_diagonal(dense, 0.0)
    np.testing.assert_allclose(s, np.where(dense > 0, dense, 0.0), rtol=1e-5)


def test_dot_scaled_is_scaled_product_without_diagonal() -> None:
    rng = np.random.default_rng(1)
    a = sp.random_array((15, 25), density=0.3, random_state=rng, dtype=np.float32).tocsr()
    b = sp.random_array((25, 15), density=0.3, random_state=rng, dtype=np.float32).tocsr()
    scale = rng.random(15)
    got = topn_similarity(a, "dot_scaled", 14, scale=scale, t=b).toarray()
    dense = (a @ b).toarray() * scale[None, :]
    np.fill_diagonal(dense, 0.0)
    np.testing.assert_allclose(got, dense, rtol=1e-5)


def test_pruning_keeps_best_and_ties_go_to_lower_index() -> None:
    # entities 1, 2, 3 are identical, so all have similarity 1 to entity 0's twin 1..3
    d = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 0, 1]], dtype=np.float32)
    s = topn_similarity(sp.csr_array(d), "cosine", 2)
    assert s.indices[s.indptr[0] : s.indptr[1]].tolist() == [1, 2]
    assert s.indices[s.indptr[4] : s.indptr[5]].tolist() == [0, 1]


def test_rows_subset_and_errors() -> None:
    d = _ratings(10, 12)
    full = topn_similarity(sp.csr_array(d), "cosine", 4).toarray()
    part = topn_similarity(sp.csr_array(d), "cosine", 4, rows=np.array([7, 2])).toarray()
    np.testing.assert_array_equal(part, full[[7, 2]])
    with pytest.raises(ValueError, match="unknown similarity mode"):
        topn_similarity(sp.csr_array(d), "manhattan", 3)
    with pytest.raises(ValueError, match="needs scale"):
        topn_similarity(sp.csr_array(d), "dot_scaled", 3)


@pytest.mark.parametrize("fallback_when_few", [True, False])
def test_predict_pairs_matches_reference(fallback_when_few: bool) -> None:
    rng = np.random.default_rng(5)
    d = _ratings(20, 16, seed=5)  # 20 "others" (users) x 16 entities (items)
    sim_sparse = topn_similarity(sp.csr_array(d.T), "pearson", 15, min_sim=-1.0)
    sim = sim_sparse.toarray()
    r = sp.csr_array(d)
    r.sort_indices()
    target = rng.integers(0, 16, 60).astype(np.int64)
    other = rng.integers(0, 20, 60).astype(np.int64)
    base_t = rng.normal(3, 0.5, 16)
    base_n = rng.normal(3, 0.5, 16)
    base_o = rng.normal(0, 0.3, 20)
    out = np.empty(60)
    out_k = np.empty(60, dtype=np.int64)
    s = sim_sparse
    predict_pairs(
        s.indptr.astype(np.int64),
        s.indices,
        s.data,
        r.indptr.astype(np.int64),
        r.indices,
        r.data,
        target,
        other,
        base_t,
        base_n,
        base_o,
        3,
        2,
        fallback_when_few,
        3.3,
        out,
        out_k,
    )
    ref = predict_pairs_reference(
        sim, d, d != 0, target, other, base_t, base_n, base_o, 3, 2, fallback_when_few, 3.3
    )
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    assert out_k.max() <= 3
