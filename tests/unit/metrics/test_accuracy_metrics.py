"""RMSE and MAE, overall and per user."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.exceptions import DataError
from recforge.metrics import mae, mae_per_user, rmse, rmse_per_user


def test_hand_computed_scalars() -> None:
    assert rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(np.sqrt(4 / 3))
    assert mae([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(2 / 3)
    assert rmse([3.5], [3.5]) == 0.0
    assert np.isnan(rmse([], []))
    assert np.isnan(mae([], []))


def test_hand_computed_per_user() -> None:
    pred = [1.0, 2.0, 3.0, 4.0]
    actual = [2.0, 4.0, 5.0, 4.0]
    users = [0, 0, 2, 2]
    np.testing.assert_allclose(
        rmse_per_user(pred, actual, users, n_users=4), [np.sqrt(2.5), np.nan, np.sqrt(2.0), np.nan]
    )
    np.testing.assert_allclose(mae_per_user(pred, actual, users), [1.5, np.nan, 1.0])


def test_per_user_is_consistent_with_scalar() -> None:
    rng = np.random.default_rng(0)
    pred = rng.normal(size=200)
    actual = rng.normal(size=200)
    users = rng.integers(0, 7, 200)
    per = rmse_per_user(pred, actual, users)
    counts = np.bincount(users, minlength=7)
    assert np.sqrt(np.nansum(per**2 * counts) / counts.sum()) == pytest.approx(rmse(pred, actual))
    per_mae = mae_per_user(pred, actual, users)
    assert np.nansum(per_mae * counts) / counts.sum() == pytest.approx(mae(pred, actual))


def test_errors_name_the_input() -> None:
    with pytest.raises(DataError, match="predicted has 2 values but actual has 1"):
        rmse([1.0, 2.0], [1.0])
    with pytest.raises(DataError, match="actual value at position 1"):
        mae([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(DataError, match="user_codes has 1 values"):
        rmse_per_user([1.0, 2.0], [1.0, 2.0], [0])
    with pytest.raises(DataError, match="non-negative integer"):
        rmse_per_user([1.0], [1.0], [-1])
    with pytest.raises(DataError, match="n_users is 2"):
        mae_per_user([1.0], [1.0], [5], n_users=2)
