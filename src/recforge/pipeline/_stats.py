"""Statistics of a run: paired tests of every model against the best, and k-fold summaries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recforge.metrics.significance import (
    holm_correction,
    paired_t_test,
    wilcoxon_test,
)

__all__ = ["fold_summary", "paired_tests"]


def _p_value(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    res = paired_t_test(a, b) if kind == "t-test" else wilcoxon_test(a, b)
    return float(res.pvalue) if np.isfinite(res.pvalue) else 1.0


def _select(per_user: pd.DataFrame, metric: str, k: int | None) -> pd.DataFrame:
    sel = per_user["metric"] == metric
    sel &= per_user["k"].isna() if k is None else per_user["k"] == k
    return per_user[sel]


def paired_tests(
    per_user: pd.DataFrame,
    *,
    metric: str,
    k: int | None,
    tests: Sequence[str] = ("t-test", "wilcoxon"),
    alpha: float = 0.05,
    correction: str = "holm",
    maximize: bool = True,
) -> tuple[str, pd.DataFrame]:
    """Compare every model with the best one on per-user values of ``metric@k``.

    Parameters
    ----------
    per_user
        Long frame ``model, user, metric, k, value`` (and ``fold`` for k-fold runs, where
        models are paired by fold and user); models are paired by user.
    metric, k
        The compared metric (``k`` is ``None`` for metrics without a cutoff).
    tests
        ``"t-test"`` (paired Student) and/or ``"wilcoxon"`` (signed-rank).
    alpha
        Level at which an adjusted p-value counts as significant.
    correction
        ``"holm"`` or ``"none"``.
    maximize
        Whether a larger value is better (``False`` for RMSE/MAE).

    Returns
    -------
    best : str
        Model with the best mean.
    table : pandas.DataFrame
        One row per other model and test: ``model, test, mean, best_mean, diff, p_value,
        p_adjusted, significant``.
    """
    sel = _select(per_user, metric, k)
    index = ["fold", "user"] if "fold" in sel.columns else ["user"]
    wide = sel.pivot_table(index=index, columns="model", values="value", aggfunc="first")
    wide = wide.dropna()
    means = wide.mean().sort_values(ascending=not maximize, kind="stable")
    best = str(means.index[0])
    rows = []
    for test in tests:
        block = []
        for model in means.index[1:]:
            a = wide[best].to_numpy()
            b = wide[model].to_numpy()
            block.append(
                {
                    "model": str(model),
                    "test": test,
                    "mean": float(means[model]),
                    "best_mean": float(means[best]),
                    "diff": float(abs(means[best] - means[model])),
                    "p_value": _p_value(test, a, b),
                }
            )
        p = np.array([r["p_value"] for r in block])
        adj = holm_correction(p) if correction == "holm" else p
        for r, pa in zip(block, adj, strict=True):
            r["p_adjusted"] = float(pa)
            r["significant"] = bool(pa < alpha)
        rows.extend(block)
    cols = ["model", "test", "mean", "best_mean", "diff", "p_value", "p_adjusted", "significant"]
    return best, pd.DataFrame(rows, columns=cols)


def fold_summary(
    per_user: pd.DataFrame, aggregates: pd.DataFrame, *, alpha: float = 0.05
) -> pd.DataFrame:
    """Summary of a k-fold evaluation: the mean over folds and a t-interval over folds.

    Each fold's value is the mean over its users (or its aggregate value, for coverage, gini,
    RMSE and MAE); ``n_users`` sums the folds' users.
    """
    from recforge.evaluation import RATING_METRICS

    keys = ["model", "group", "metric", "k"]
    means = (
        per_user[~per_user["metric"].isin(RATING_METRICS)]
        .assign(k=lambda f: f["k"].astype("float64"))
        .groupby([*keys, "fold"], sort=False, dropna=False)["value"]
        .agg(value="mean", n_users="size")
        .reset_index()
    )
    agg = aggregates.assign(k=aggregates["k"].astype("float64"))[
        [*keys, "fold", "value", "n_users"]
    ]
    per_fold = pd.concat([means, agg], ignore_index=True)
    rows = []
    for key, part in per_fold.groupby(keys, sort=False, dropna=False):
        model, group, metric, k = key  # type: ignore[misc]
        cutoff: Any = k
        vals = part["value"].to_numpy(dtype=np.float64)
        lo, hi = _t_interval(vals, 1.0 - alpha)
        rows.append(
            {
                "model": model,
                "group": group,
                "metric": metric,
                "k": None if pd.isna(cutoff) else int(cutoff),
                "value": float(np.nanmean(vals)),
                "ci_low": lo,
                "ci_high": hi,
                "n_users": int(part["n_users"].sum()),
                "n_folds": int(vals.size),
            }
        )
    out = pd.DataFrame(rows)
    out["k"] = pd.array(out["k"].tolist(), dtype="Int64")
    return out


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    from scipy import stats

    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return float("nan"), float("nan")
    mean = float(finite.mean())
    half = (
        float(stats.t.ppf(0.5 + confidence / 2, finite.size - 1))
        * float(finite.std(ddof=1))
        / np.sqrt(finite.size)
    )
    return mean - half, mean + half
