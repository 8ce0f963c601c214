"""Summary statistics of a :class:`~recforge.data.Dataset`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rich.table import Table

    from recforge.data._dataset import Dataset

__all__ = ["DatasetSummary", "describe"]

#: Quantiles reported for per-user and per-item activity.
QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
#: Values with at most this many distinct values get one histogram bin per value.
MAX_DISTINCT_BINS = 20
#: Number of equal-width bins for values with more distinct values.
N_BINS = 10


def _qlabel(q: float) -> str:
    return {0.0: "min", 1.0: "max"}.get(q, f"p{round(q * 100):d}")


@dataclass(frozen=True)
class DatasetSummary:
    """Summary statistics of a dataset, as returned by :func:`describe`.

    Attributes
    ----------
    name : str
        Name of the dataset.
    n_users, n_items : int
        Size of the id indices (including entities without interactions).
    n_interactions : int
        Number of interactions (rows).
    n_pairs : int
        Number of distinct (user, item) pairs; ``n_interactions - n_pairs`` are duplicates.
    density : float
        ``n_pairs / (n_users * n_items)``.
    implicit : bool
        Whether every value is 1.0 (implicit feedback) rather than ratings or counts.
    value_min, value_max, value_mean : float
        Range and mean of the values.
    value_histogram : dict of str to int
        Interactions per value (when there are at most 20 distinct values, keys are the
        values, e.g. ``"4.5"``) or per equal-width bin (keys like ``"[0.5, 1)"``, the last
        bin closed).
    time_min, time_max : int or None
        First and last timestamp (epoch seconds), ``None`` without times.
    top1_share, top20_share : float
        Share of interactions on the most popular 1% / 20% of the items of the catalogue
        (at least one item each).
    user_activity, item_activity : dict of str to float
        Quantiles (``min``, ``p25``, ``p50``, ``p75``, ``p90``, ``p99``, ``max``) of the number
        of interactions per user / item, over the users / items with at least one.
    cold_users, cold_items : int
        Users / items in the index without any interaction (e.g. known from attributes only).
    feedback, feedback_reason : str
        What the values mean (``binary``, ``ratings``, ``counts``, ``weights``) and why, see
        :attr:`Dataset.feedback`.
    """

    name: str
    n_users: int
    n_items: int
    n_interactions: int
    n_pairs: int
    density: float
    implicit: bool
    value_min: float
    value_max: float
    value_mean: float
    value_histogram: dict[str, int] = field(default_factory=dict)
    time_min: int | None = None
    time_max: int | None = None
    top1_share: float = 0.0
    top20_share: float = 0.0
    user_activity: dict[str, float] = field(default_factory=dict)
    item_activity: dict[str, float] = field(default_factory=dict)
    cold_users: int = 0
    cold_items: int = 0
    feedback: str = ""
    feedback_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary of every field."""
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(label, formatted value) pairs in display order, used by ``__str__`` and tables."""

        def when(t: int | None) -> str:
            if t is None:
                return "-"
            return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

        def quant(q: dict[str, float]) -> str:
            return "  ".join(f"{k}={v:g}" for k, v in q.items())

        hist = "  ".join(f"{k}: {v:,}" for k, v in self.value_histogram.items())
        return [
            ("name", self.name),
            ("users", f"{self.n_users:,} ({self.cold_users:,} without interactions)"),
            ("items", f"{self.n_items:,} ({self.cold_items:,} without interactions)"),
            ("interactions", f"{self.n_interactions:,}"),
            ("distinct pairs", f"{self.n_pairs:,}"),
            ("density", f"{self.density:.4%}"),
            ("feedback", f"{self.feedback}: {self.feedback_reason}"),
            (
                "values",
                f"min {self.value_min:g}, max {self.value_max:g}, mean {self.value_mean:.4g}",
            ),
            ("value histogram", hist or "-"),
            ("time range", f"{when(self.time_min)} .. {when(self.time_max)}"),
            ("top 1% items share", f"{self.top1_share:.1%}"),
            ("top 20% items share", f"{self.top20_share:.1%}"),
            ("interactions per user", quant(self.user_activity)),
            ("interactions per item", quant(self.item_activity)),
        ]

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    def to_table(self) -> Table:
        """A :class:`rich.table.Table` of the summary, for printing with rich."""
        from rich.table import Table

        table = Table(title=f"Dataset {self.name}", show_header=False)
        table.add_column("statistic", style="bold")
        table.add_column("value")
        for k, v in self.rows():
            table.add_row(k, v)
        return table


def _histogram(values: np.ndarray) -> dict[str, int]:
    if values.size == 0:
        return {}
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size <= MAX_DISTINCT_BINS:
        return {f"{float(v):g}": int(c) for v, c in zip(distinct, counts, strict=True)}
    lo, hi = float(distinct[0]), float(distinct[-1])
    hist, edges = np.histogram(values.astype(np.float64), bins=N_BINS, range=(lo, hi))
    out: dict[str, int] = {}
    for i, c in enumerate(hist):
        close = "]" if i == N_BINS - 1 else ")"
        out[f"[{edges[i]:.4g}, {edges[i + 1]:.4g}{close}"] = int(c)
    return out


def _quantiles(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return {_qlabel(q): 0.0 for q in QUANTILES}
    qs = np.quantile(counts.astype(np.float64), QUANTILES)
    return {_qlabel(q): float(v) for q, v in zip(QUANTILES, qs, strict=True)}


def _top_share(item_counts: np.ndarray, fraction: float, total: int) -> float:
    if total == 0 or item_counts.size == 0:
        return 0.0
    k = max(1, math.ceil(fraction * item_counts.size))
    top = np.partition(item_counts, item_counts.size - k)[item_counts.size - k :]
    return float(top.sum()) / total


def describe(dataset: Dataset) -> DatasetSummary:
    """Compute summary statistics of a dataset.

    Parameters
    ----------
    dataset
        The dataset to summarise.

    Returns
    -------
    DatasetSummary

    Examples
    --------
    >>> import pandas as pd
    >>> from recforge.data import Dataset
    >>> ds = Dataset.from_frame(pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"]}))
    >>> s = describe(ds)
    >>> s.n_users, s.n_items, s.density, s.implicit
    (2, 2, 0.75, True)
    """
    n = dataset.n_interactions
    n_users, n_items = dataset.n_users, dataset.n_items
    ucounts = dataset.user_counts()
    icounts = dataset.item_counts()
    pair_keys = dataset.user.astype(np.int64) * max(n_items, 1) + dataset.item
    n_pairs = int(np.unique(pair_keys).size)
    values = dataset.value
    cells = n_users * n_items
    return DatasetSummary(
        name=dataset.name,
        n_users=n_users,
        n_items=n_items,
        n_interactions=n,
        n_pairs=n_pairs,
        density=n_pairs / cells if cells else 0.0,
        implicit=dataset.is_implicit,
        value_min=float(values.min()) if n else 0.0,
        value_max=float(values.max()) if n else 0.0,
        value_mean=float(values.astype(np.float64).mean()) if n else 0.0,
        value_histogram=_histogram(values),
        time_min=int(dataset.time.min()) if dataset.time is not None and n else None,
        time_max=int(dataset.time.max()) if dataset.time is not None and n else None,
        top1_share=_top_share(icounts, 0.01, n),
        top20_share=_top_share(icounts, 0.20, n),
        user_activity=_quantiles(ucounts[ucounts > 0]),
        item_activity=_quantiles(icounts[icounts > 0]),
        cold_users=int(np.count_nonzero(ucounts == 0)),
        cold_items=int(np.count_nonzero(icounts == 0)),
        feedback=dataset.feedback.kind,
        feedback_reason=dataset.feedback.reason,
    )
