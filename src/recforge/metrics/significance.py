"""Significance tests over paired per-user metric values, multiple-testing correction, bootstrap.

All paired tests take two arrays of per-user values for the same users in the same order; a
pair where either value is NaN (user without a defined metric) is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from recforge.exceptions import ConfigError, DataError

__all__ = [
    "SignificanceResult",
    "bootstrap_ci",
    "compare_to_best",
    "holm_correction",
    "paired_t_test",
    "wilcoxon_test",
]


class SignificanceResult(NamedTuple):
    """Outcome of a paired test."""

    statistic: float
    """Test statistic (t for the t-test, the smaller signed-rank sum W for Wilcoxon)."""
    pvalue: float
    """Two-sided p-value."""


def _paired(a: Any, b: Any) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise DataError(
            f"paired tests need values for the same users: a has {x.size} values, b has {y.size}"
        )
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep] - y[keep]


def paired_t_test(a: Any, b: Any) -> SignificanceResult:
    """Two-sided paired Student t-test of ``mean(a - b) == 0``.

    .. math:: t = \\bar d / (s_d / \\sqrt{n}), \\quad p = 2\\, P(T_{n-1} > |t|)

    Matches :func:`scipy.stats.ttest_rel`, except that identical samples (all differences 0)
    give ``t = 0, p = 1`` instead of NaN, and constant non-zero differences give
    ``t = ±inf, p = 0``.

    Parameters
    ----------
    a, b
        Per-user values of two systems for the same users; NaN pairs are dropped.

    Returns
    -------
    SignificanceResult
        ``(statistic, pvalue)``; NaN for fewer than two pairs.
    """
    from scipy import stats

    d = _paired(a, b)
    n = d.size
    if n < 2:
        return SignificanceResult(float("nan"), float("nan"))
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0 or not np.isfinite(sd):
        if mean == 0.0:
            return SignificanceResult(0.0, 1.0)
        return SignificanceResult(float(np.copysign(np.inf, mean)), 0.0)
    t = mean / (sd / np.sqrt(n))
    p = float(2.0 * stats.t.sf(abs(t), df=n - 1))
    return SignificanceResult(float(t), min(p, 1.0))


def wilcoxon_test(
    a: Any, b: Any, *, zero_method: Literal["wilcox", "pratt", "zsplit"] = "wilcox"
) -> SignificanceResult:
    """Two-sided Wilcoxon signed-rank test of paired per-user values.

    Delegates to :func:`scipy.stats.wilcoxon` (exact distribution for small samples without
    ties, normal approximation with tie correction otherwise). When every difference is zero
    the systems are indistinguishable and the result is ``W = 0, p = 1`` (scipy refuses).

    Parameters
    ----------
    a, b
        Per-user values of two systems for the same users; NaN pairs are dropped.
    zero_method
        How zero differences are treated; ``"wilcox"`` drops them (scipy's default).

    Returns
    -------
    SignificanceResult
        ``(statistic, pvalue)``; NaN for an empty sample.
    """
    from scipy import stats

    d = _paired(a, b)
    if d.size == 0:
        return SignificanceResult(float("nan"), float("nan"))
    if not np.any(d):
        return SignificanceResult(0.0, 1.0)
    res = stats.wilcoxon(d, zero_method=zero_method)
    return SignificanceResult(float(res.statistic), float(res.pvalue))


def holm_correction(pvalues: Any) -> np.ndarray:
    """Holm-Bonferroni step-down adjustment of a family of p-values (Holm, 1979).

    With the ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``,

    .. math:: \\tilde p_{(i)} = \\min\\big(1, \\max_{j \\le i} (m - j + 1)\\, p_{(j)}\\big)

    Rejecting where ``adjusted < alpha`` controls the family-wise error rate at ``alpha``.
    NaN p-values stay NaN and do not count in ``m``.

    Parameters
    ----------
    pvalues
        1-D array of raw p-values in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order.

    Examples
    --------
    >>> holm_correction([0.01, 0.04, 0.03])
    array([0.03, 0.06, 0.06])
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise DataError("p-values must lie in [0, 1]")
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    scaled = (m - np.arange(m)) * q[order]
    adj = np.minimum(np.maximum.accumulate(scaled), 1.0)
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out


def bootstrap_ci(
    values: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    rng: int | np.random.Generator | None = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (Efron & Tibshirani, 1993).

    Resamples the values with replacement ``n_resamples`` times, in vectorised blocks of at
    most about 8 million draws, and returns the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the resampled means. NaN values are dropped.

    Parameters
    ----------
    values
        1-D per-user values.
    confidence
        Coverage of the interval, in ``(0, 1)``.
    n_resamples
        Number of bootstrap samples, ``>= 1``.
    rng
        Seed or :class:`numpy.random.Generator`; the same seed gives the same interval.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` for an empty sample.
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie in (0, 1). Got {confidence!r} instead.")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ConfigError(f"n_resamples must be an int >= 1. Got {n_resamples!r} instead.")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return float("nan"), float("nan")
    gen = np.random.default_rng(rng)
    means = np.empty(n_resamples, dtype=np.float64)
    block = max(1, min(n_resamples, 8_000_000 // n))
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        idx = gen.integers(0, n, size=(stop - start, n))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def compare_to_best(
    per_user: Mapping[str, Any],
    higher_is_better: bool = True,
    *,
    alpha: float = 0.05,
    test: Literal["t", "wilcoxon"] = "t",
) -> pd.DataFrame:
    """Compare every model with the best one on paired per-user values of one metric.

    The best model has the highest mean (lowest with ``higher_is_better=False``); every other
    model is tested against it with :func:`paired_t_test` and :func:`wilcoxon_test`, and each
    family of p-values is adjusted with :func:`holm_correction`.

    Parameters
    ----------
    per_user
        Model name -> per-user values, all for the same users in the same order.
    higher_is_better
        Direction of the metric.
    alpha
        Family-wise significance level.
    test
        Which adjusted p-value decides ``significant``: ``"t"`` or ``"wilcoxon"``.

    Returns
    -------
    pandas.DataFrame
        One row per model, best first, with columns ``model``, ``mean``, ``diff_vs_best``
        (model mean minus best mean), ``t_p``, ``wilcoxon_p``, ``t_p_holm``,
        ``wilcoxon_p_holm`` (NaN for the best model) and ``significant`` (the difference to the
        best is significant at ``alpha``; False for the best model).

    Raises
    ------
    DataError
        If no model is given or the arrays differ in length.
    """
    if not per_user:
        raise DataError("compare_to_best needs per-user values of at least one model")
    if test not in ("t", "wilcoxon"):
        raise ConfigError(f"test must be 't' or 'wilcoxon'. Got {test!r} instead.")
    arrays = {str(name): np.asarray(v, dtype=np.float64).ravel() for name, v in per_user.items()}
    sizes = {a.size for a in arrays.values()}
    if len(sizes) != 1:
        detail = ", ".join(f"{m}: {a.size}" for m, a in arrays.items())
        raise DataError(f"per-user arrays must cover the same users; lengths differ ({detail})")
    names = list(arrays)
    means = np.array(
        [np.nanmean(arrays[m]) if np.any(~np.isnan(arrays[m])) else np.nan for m in names]
    )
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(range(len(names)), key=lambda i: (np.isnan(means[i]), -sign * means[i], i))
    best = names[order[0]]
    rows: list[dict[str, Any]] = []
    for i in order:
        m = names[i]
        if m == best:
            t_p = w_p = float("nan")
        else:
            t_p = paired_t_test(arrays[m], arrays[best]).pvalue
            w_p = wilcoxon_test(arrays[m], arrays[best]).pvalue
        rows.append(
            {
                "model": m,
                "mean": float(means[i]),
                "diff_vs_best": float(means[i] - means[order[0]]),
                "t_p": t_p,
                "wilcoxon_p": w_p,
            }
        )
    frame = pd.DataFrame(rows)
    frame["t_p_holm"] = holm_correction(frame["t_p"].to_numpy())
    frame["wilcoxon_p_holm"] = holm_correction(frame["wilcoxon_p"].to_numpy())
    decide = frame["t_p_holm" if test == "t" else "wilcoxon_p_holm"].to_numpy()
    frame["significant"] = np.nan_to_num(decide, nan=1.0) < alpha
    return frame
