"""ALS half-step kernels against dense least-squares solves, and the objective."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge._kernels.als import (
    als_loss,
    als_loss_reference,
    als_solve_reference,
    als_update_cg,
    als_update_cholesky,
)


def _problem(seed: int = 0, n: int = 25, m: int = 18, f: int = 6):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n, m)) < 0.3) * rng.integers(1, 5, (n, m))
    dense[3] = 0  # a row without interactions
    conf = sp.csr_array((dense * 2.5).astype(np.float32))
    conf.sort_indices()
    parts = (
        conf.indptr.astype(np.int64),
        conf.indices.astype(np.int32),
        conf.data.astype(np.float32),
    )
    Y = rng.normal(0, 0.3, (m, f)).astype(np.float32)
    return parts, Y, rng


def test_cholesky_matches_dense_solve() -> None:
    parts, Y, _ = _problem()
    yd = Y.astype(np.float64)
    X = np.zeros((25, Y.shape[1]), dtype=np.float32)
    als_update_cholesky(*parts, Y, yd.T @ yd, X, 0.1)
    expected = als_solve_reference(*parts, Y, 0.1)
    np.testing.assert_allclose(X, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(X[3], 0.0)


def test_cg_converges_to_dense_solve() -> None:
    parts, Y, rng = _problem(seed=1)
    yd = Y.astype(np.float64)
    X = rng.normal(0, 0.1, (25, Y.shape[1])).astype(np.float32)
    # CG on an f-dimensional SPD system converges in at most f steps (up to rounding)
    als_update_cg(*parts, Y, yd.T @ yd, X, 0.1, 3 * Y.shape[1])
    expected = als_solve_reference(*parts, Y, 0.1)
    np.testing.assert_allclose(X, expected, rtol=1e-3, atol=1e-4)


def test_cg_few_steps_improves_warm_start() -> None:
    parts, Y, rng = _problem(seed=2)
    yd = Y.astype(np.float64)
    start = rng.normal(0, 0.1, (25, Y.shape[1])).astype(np.float32)
    expected = als_solve_reference(*parts, Y, 0.1)
    X = start.copy()
    als_update_cg(*parts, Y, yd.T @ yd, X, 0.1, 2)
    assert np.linalg.norm(X - expected) < np.linalg.norm(start - expected)


def test_loss_matches_dense_reference() -> None:
    parts, Y, rng = _problem(seed=3)
    X = rng.normal(0, 0.3, (25, Y.shape[1])).astype(np.float32)
    assert als_loss(*parts, X, Y, 0.05) == pytest.approx(
        als_loss_reference(*parts, X, Y, 0.05), rel=1e-6
    )
