"""Statistics of a run: confidence intervals and paired tests of every model against the best."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recforge.metrics.significance import (
    bootstrap_ci,
    holm_correction,
    paired_t_test,
    wilcoxon_test,
)

__all__ = ["paired_tests", "summarise"]


def _p_value(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    res = paired_t_test(a, b) if kind == "t-test" else wilcoxon_test(a, b)
    return float(res.pvalue) if np.isfinite(res.pvalue) else 1.0


def paired_tests(
    per_user: pd.DataFrame,
    *,
    metric: str,
    k: int,
    tests: Sequence[str] = ("t-test", "wilcoxon"),
    alpha: float = 0.05,
    correction: str = "holm",
) -> tuple[str, pd.DataFrame]:
    """Compare every model with the best one on per-user values of ``metric@k``.

    Parameters
    ----------
    per_user
        Long frame ``model, user, metric, k, value``; models are paired by user.
    metric, k
        The compared metric.
    tests
        ``"t-test"`` (paired Student) and/or ``"wilcoxon"`` (signed-rank).
    alpha
        Level at which an adjusted p-value counts as significant.
    correction
        ``"holm"`` or ``"none"``.

    Returns
    -------
    best : str
        Model with the highest mean.
    table : pandas.DataFrame
        One row per other model and test: ``model, test, mean, best_mean, diff, p_value,
        p_adjusted, significant``.
    """
    sel = per_user[(per_user["metric"] == metric) & (per_user["k"] == k)]
    wide = sel.pivot_table(index="user", columns="model", values="value", aggfunc="first")
    wide = wide.dropna()
    means = wide.mean().sort_values(ascending=False, kind="stable")
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
                    "diff": float(means[best] - means[model]),
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


def summarise(
    per_user: pd.DataFrame,
    catalog: pd.DataFrame,
    segments: pd.Series | None = None,
    *,
    segment_metric: tuple[str, int] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Tidy summary ``model, metric, k, value, ci_low, ci_high, n_users, group``.

    Per-user metrics get a bootstrap CI of the mean over users for ``group == "all"`` and
    for each user segment (``segments`` maps user code -> label; only ``segment_metric``
    ``(metric, k)`` when given); catalog-level metrics have no interval.
    """
    rows = []
    groups: list[tuple[str, pd.DataFrame]] = [("all", per_user)]
    if segments is not None and len(per_user):
        chosen = per_user
        if segment_metric is not None:
            seg_metric, seg_k = segment_metric
            chosen = per_user[(per_user["metric"] == seg_metric) & (per_user["k"] == seg_k)]
        labels = segments.reindex(chosen["user"].to_numpy()).to_numpy()
        for seg in ("cold", "regular", "heavy"):
            groups.append((seg, chosen[labels == seg]))
    for group, frame in groups:
        for (model, metric, k), part in frame.groupby(["model", "metric", "k"], sort=False):
            vals = part["value"].to_numpy()
            if n_boot > 0 and vals.size > 1:
                lo, hi = bootstrap_ci(vals, confidence=1 - alpha, n_resamples=n_boot, rng=seed)
            else:
                lo = hi = float(np.nanmean(vals)) if vals.size else float("nan")
            rows.append(
                {
                    "model": str(model),
                    "metric": str(metric),
                    "k": int(k),  # type: ignore[call-overload]
                    "value": float(np.nanmean(vals)) if vals.size else float("nan"),
                    "ci_low": lo,
                    "ci_high": hi,
                    "n_users": int(vals.size),
                    "group": group,
                }
            )
    for rec in catalog.to_dict("records"):
        rows.append(
            {
                **{str(key): val for key, val in rec.items()},
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n_users": 0,
                "group": "all",
            }
        )
    return pd.DataFrame(
        rows, columns=["model", "metric", "k", "value", "ci_low", "ci_high", "n_users", "group"]
    )
