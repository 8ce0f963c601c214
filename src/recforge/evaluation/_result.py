"""The result of :func:`~recforge.evaluation.evaluate`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recforge._io import jsonable
from recforge.evaluation._names import GROUPS, SEGMENTS
from recforge.exceptions import ConfigError

__all__ = ["EvaluationResult", "jsonable"]


@dataclass(frozen=True)
class EvaluationResult:
    """Outcome of :func:`evaluate`.

    Attributes
    ----------
    summary : pandas.DataFrame
        Tidy table, one row per (model, group, metric, k) with columns ``model``, ``group``
        (``"known"`` or ``"cold"``), ``metric``, ``k`` (nullable int; missing for metrics
        without a cutoff such as ``rmse``), ``value`` (mean over users, or the list-level
        value for ``coverage``/``gini``), ``ci_low``/``ci_high`` (bootstrap confidence interval;
        NaN when not applicable) and ``n_users``.
    per_user : pandas.DataFrame
        Long table of per-user values: ``model``, ``group``, ``metric``, ``k``, ``user``
        (external id), ``value``. List-level metrics have no per-user rows.
    timings : dict of str to dict of str to float
        ``model -> {"fit_seconds": ..., "recommend_seconds": ..., "metric_seconds": ...}``.
    split_name : str
        Name of the split evaluated on.
    ks : tuple of int
        Cutoffs.
    settings : dict
        Evaluation settings (threshold, bootstrap size, confidence, seed).
    """

    summary: pd.DataFrame
    per_user: pd.DataFrame
    timings: dict[str, dict[str, float]]
    split_name: str = ""
    ks: tuple[int, ...] = (10,)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        """Model names in evaluation order."""
        return list(dict.fromkeys(self.summary["model"].tolist()))

    def table(
        self, k: int | None = None, *, group: str = "known", ci: bool = False
    ) -> pd.DataFrame:
        """Wide table: one row per model, one column per ``metric@k`` (or ``metric``).

        Parameters
        ----------
        k
            Keep only this cutoff (metrics without a cutoff are always kept); ``None`` keeps
            every cutoff.
        group
            ``"known"`` (default) or ``"cold"`` users.
        ci
            Add ``"<column> ci"`` columns with the interval as ``"[low, high]"`` strings.

        Raises
        ------
        ConfigError
            If ``group`` is unknown or ``k`` was not evaluated.
        """
        if group not in (*GROUPS, *SEGMENTS):
            raise ConfigError(
                f"group must be one of {', '.join((*GROUPS, *SEGMENTS))}. Got {group!r} instead."
            )
        if k is not None and k not in self.ks:
            raise ConfigError(
                f"k={k!r} was not evaluated (cutoffs: {', '.join(map(str, self.ks))})"
            )
        df = self.summary[self.summary["group"] == group]
        if k is not None:
            df = df[df["k"].isna() | (df["k"] == k)]
        if df.empty:
            return pd.DataFrame(index=pd.Index(self.models, name="model"))
        label = [
            m if pd.isna(kk) else f"{m}@{int(kk)}"
            for m, kk in zip(df["metric"], df["k"], strict=True)
        ]
        df = df.assign(column=label)
        columns = list(dict.fromkeys(label))
        wide = df.pivot(index="model", columns="column", values="value")
        wide = wide.reindex(index=[m for m in self.models if m in wide.index], columns=columns)
        if ci:
            low = df.pivot(index="model", columns="column", values="ci_low")
            high = df.pivot(index="model", columns="column", values="ci_high")
            for col in columns:
                wide[f"{col} ci"] = [
                    "" if pd.isna(lo) else f"[{lo:.4f}, {hi:.4f}]"
                    for lo, hi in zip(
                        low[col].reindex(wide.index), high[col].reindex(wide.index), strict=True
                    )
                ]
        wide.columns.name = None
        return wide

    def to_dict(self, *, per_user: bool = False) -> dict[str, Any]:
        """JSON-ready dictionary (NaN as ``None``); per-user rows only when asked for."""
        out: dict[str, Any] = {
            "split": self.split_name,
            "ks": list(self.ks),
            "settings": jsonable(self.settings),
            "timings": jsonable(self.timings),
            "summary": _records(self.summary),
        }
        if per_user:
            out["per_user"] = _records(self.per_user)
        return out

    def to_json(self, path: str | None = None, *, per_user: bool = False, indent: int = 2) -> str:
        """Serialise :meth:`to_dict` as JSON; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict(per_user=per_user), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def __repr__(self) -> str:
        return (
            f"EvaluationResult(split={self.split_name!r}, models={self.models}, "
            f"ks={list(self.ks)}, rows={len(self.summary)})"
        )


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [jsonable(dict(zip(df.columns, row, strict=True))) for row in df.itertuples(False)]
