"""Rating-prediction accuracy: RMSE and MAE, overall and per user."""

from __future__ import annotations

from typing import Any

import numpy as np

from recforge.exceptions import DataError

__all__ = ["mae", "mae_per_user", "rmse", "rmse_per_user"]


def _errors(predicted: Any, actual: Any) -> np.ndarray:
    """``predicted - actual`` as float64, for parallel arrays of finite values (DataError)."""
    p, a = (np.asarray(v, dtype=np.float64).ravel() for v in (predicted, actual))
    if p.shape != a.shape:
        raise DataError(
            f"predicted has {p.size} values but actual has {a.size}; they must be parallel arrays"
        )
    bad = ~np.isfinite(p) | ~np.isfinite(a)
    if bad.any():
        i = int(np.argmax(bad))
        which, value = ("predicted", p[i]) if not np.isfinite(p[i]) else ("actual", a[i])
        raise DataError(f"{which} value at position {i} is not finite ({value})")
    return p - a


def rmse(predicted: Any, actual: Any) -> float:
    """Root mean squared error over all (prediction, rating) pairs.

    .. math:: \\mathrm{RMSE} = \\sqrt{\\tfrac{1}{n} \\sum_i (\\hat r_i - r_i)^2}

    Parameters
    ----------
    predicted, actual
        Parallel 1-D arrays of predicted and true ratings.

    Returns
    -------
    float
        The RMSE; NaN for empty input.

    Raises
    ------
    DataError
        If the arrays differ in length or hold a non-finite value.

    Examples
    --------
    >>> rmse([3.0, 4.0], [4.0, 4.0])
    0.7071067811865476
    """
    err = _errors(predicted, actual)
    return float(np.sqrt(np.mean(err**2))) if err.size else float("nan")


def mae(predicted: Any, actual: Any) -> float:
    """Mean absolute error over all (prediction, rating) pairs.

    .. math:: \\mathrm{MAE} = \\tfrac{1}{n} \\sum_i |\\hat r_i - r_i|

    Parameters and errors as in :func:`rmse`.

    Examples
    --------
    >>> mae([3.0, 5.0], [4.0, 4.0])
    1.0
    """
    err = _errors(predicted, actual)
    return float(np.mean(np.abs(err))) if err.size else float("nan")


def _per_user(
    err: np.ndarray, user_codes: Any, n_users: int | None
) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(user_codes).ravel()
    if u.shape != err.shape:
        raise DataError(f"user_codes has {u.size} values but there are {err.size} predictions")
    if u.size and (not np.issubdtype(u.dtype, np.integer) or int(u.min()) < 0):
        raise DataError("user_codes must be non-negative integer user codes")
    top = int(u.max()) + 1 if u.size else 0
    size = top if n_users is None else int(n_users)
    if size < top:
        raise DataError(f"user_codes holds code {top - 1} but n_users is {n_users}")
    sums = np.bincount(u, weights=err, minlength=size)
    counts = np.bincount(u, minlength=size)
    return sums, counts


def rmse_per_user(
    predicted: Any, actual: Any, user_codes: Any, n_users: int | None = None
) -> np.ndarray:
    """RMSE of each user's own ratings.

    Parameters
    ----------
    predicted, actual
        Parallel 1-D arrays of predicted and true ratings.
    user_codes
        Parallel 1-D array of int user codes ``0..n_users-1``.
    n_users
        Length of the result; default ``max(user_codes) + 1``.

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64; NaN for users without ratings (aggregations skip them).
    """
    sums, counts = _per_user(_errors(predicted, actual) ** 2, user_codes, n_users)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(np.where(counts > 0, sums / counts, np.nan))


def mae_per_user(
    predicted: Any, actual: Any, user_codes: Any, n_users: int | None = None
) -> np.ndarray:
    """MAE of each user's own ratings; parameters and result as in :func:`rmse_per_user`."""
    sums, counts = _per_user(np.abs(_errors(predicted, actual)), user_codes, n_users)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)
