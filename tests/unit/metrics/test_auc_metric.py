"""Per-user AUC: hand-computed values and agreement with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from recforge.exceptions import DataError
from recforge.metrics import auc


def test_hand_computed_auc_with_ties_and_exclusion() -> None:
    scores = np.array(
        [
            [0.9, 0.5, 0.5, 0.1, 0.7],
            [0.1, 0.2, 0.3, 0.4, 0.5],
            [0.1, 0.2, 0.3, 0.4, 0.5],
        ],
        dtype=np.float32,
    )
    truth = sp.csr_array(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], float))
    exclude = sp.csr_array(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], float))
    # user 0: positive item 1 (0.5) vs negatives {2: 0.5 tie, 3: 0.1, 4: 0.7}; item 0 excluded
    # -> (0.5 + 1 + 0) / 3
    np.testing.assert_allclose(auc(scores, truth, exclude), [1.5 / 3, 1.0, np.nan])
    # without exclusion the 0.9 negative also beats it
    np.testing.assert_allclose(auc(scores, truth)[0], 1.5 / 4)


def test_all_items_positive_or_excluded_is_nan() -> None:
    scores = np.ones((1, 3))
    truth = sp.csr_array(np.array([[1.0, 1.0, 0.0]]))
    exclude = sp.csr_array(np.array([[0.0, 0.0, 1.0]]))
    assert np.isnan(auc(scores, truth, exclude)[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_per_user(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = 30, 40
    scores = np.round(rng.normal(size=(n, m)), 1)  # rounding creates ties
    pos = rng.random((n, m)) < 0.15
    excl = (rng.random((n, m)) < 0.2) & ~pos
    pos[:, 0] = True
    pos[:, 1] = False
    excl[:, 1] = False
    got = auc(scores, sp.csr_array(pos.astype(float)), sp.csr_array(excl.astype(float)))
    for u in range(n):
        keep = ~excl[u]
        expected = roc_auc_score(pos[u, keep], scores[u, keep])
        assert got[u] == pytest.approx(expected, abs=1e-12)


def test_float32_and_float64_scores_agree() -> None:
    rng = np.random.default_rng(4)
    scores = rng.random((10, 12))
    truth = sp.csr_array((rng.random((10, 12)) < 0.3).astype(float))
    np.testing.assert_allclose(
        auc(scores.astype(np.float32), truth), auc(scores.astype(np.float32).astype(float), truth)
    )


def test_errors() -> None:
    truth = sp.csr_array(np.eye(2))
    with pytest.raises(DataError, match="NaN"):
        auc(np.array([[0.1, np.nan], [0.2, 0.3]]), truth)
    with pytest.raises(DataError, match="3 item columns"):
        auc(np.zeros((2, 2)), sp.csr_array(np.zeros((2, 3))))
    with pytest.raises(DataError, match="exclude"):
        auc(np.zeros((2, 2)), truth, sp.csr_array(np.zeros((2, 3))))
    with pytest.raises(DataError, match="float"):
        auc(np.zeros((2, 2), dtype=int), truth)
