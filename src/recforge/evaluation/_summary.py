"""Summaries of per-user values: means with bootstrap intervals, per group and segment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recforge.evaluation._engine import AGGREGATE_COLUMNS
from recforge.evaluation._names import RATING_METRICS

__all__ = ["SUMMARY_COLUMNS", "summarise"]

SUMMARY_COLUMNS = AGGREGATE_COLUMNS


def _ci(values: np.ndarray, n_bootstrap: int, confidence: float, rng: int) -> tuple[float, float]:
    from recforge.metrics import bootstrap_ci

    finite = values[np.isfinite(values)]
    if n_bootstrap <= 0 or finite.size < 2:
        return math.nan, math.nan
    low, high = bootstrap_ci(finite, confidence=confidence, n_resamples=n_bootstrap, rng=rng)
    return float(low), float(high)


def summarise(
    per_user: pd.DataFrame,
    aggregates: pd.DataFrame,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    rng: int = 0,
    segments: pd.Series | None = None,
    segment_metrics: Sequence[tuple[str, int | None]] | None = None,
) -> pd.DataFrame:
    """Tidy summary ``model, group, metric, k, value, ci_low, ci_high, n_users``.

    Per-user metrics get the mean over the group's users (users whose value is undefined are
    skipped) with a bootstrap interval; aggregate rows (coverage, gini, RMSE/MAE) are kept as
    the engine computed them.

    Parameters
    ----------
    per_user, aggregates
        Concatenated tables of :class:`~recforge.evaluation.ModelEvaluation`.
    n_bootstrap, confidence, rng
        Bootstrap resamples (0: no intervals), level and seed.
    segments
        Activity segment of known users (external id -> ``light``/``regular``/``heavy``);
        adds one row per segment for ``segment_metrics`` (default: every metric).
    """
    rows: list[tuple[object, ...]] = []
    # rating errors are summarised over interactions (the aggregates), not as a user mean
    per_user = per_user[~per_user["metric"].isin(RATING_METRICS)]
    parts: list[tuple[str | None, pd.DataFrame]] = [(None, per_user)]
    if segments is not None and len(per_user):
        known = per_user[per_user["group"] == "known"]
        if segment_metrics is not None:
            keep = np.zeros(len(known), dtype=bool)
            for metric, k in segment_metrics:
                hit = known["metric"] == metric
                hit &= known["k"].isna() if k is None else known["k"] == k
                keep |= hit.to_numpy(dtype=bool, na_value=False)
            known = known[keep]
        labels = segments.reindex(known["user"].to_numpy()).to_numpy()
        for seg in ("light", "regular", "heavy"):
            parts.append((seg, known[labels == seg]))
    for segment, frame in parts:
        if frame.empty:
            continue
        keys = frame["k"].astype("float64").fillna(-1.0)
        for key, part in frame.groupby(
            [frame["model"], frame["group"], frame["metric"], keys], sort=False
        ):
            fields: tuple[Any, ...] = tuple(key)  # type: ignore[arg-type,unused-ignore]
            name, group, metric_name = str(fields[0]), str(fields[1]), str(fields[2])
            cutoff = float(fields[3])
            vals = part["value"].to_numpy(dtype=np.float64)
            finite = np.isfinite(vals)
            mean = float(vals[finite].mean()) if finite.any() else math.nan
            lo, hi = _ci(vals, n_bootstrap, confidence, rng)
            rows.append(
                (
                    name,
                    segment if segment is not None else group,
                    metric_name,
                    None if cutoff < 0 else int(cutoff),
                    mean,
                    lo,
                    hi,
                    int(vals.size),
                )
            )
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    summary["k"] = pd.array(summary["k"].tolist(), dtype="Int64")
    if len(aggregates):
        summary = pd.concat([summary, aggregates[SUMMARY_COLUMNS]], ignore_index=True)
    summary["n_users"] = summary["n_users"].astype(np.int64)
    return summary
