"""What the values of a data set mean: presence, ratings on a scale, counts or weights.

The rule is simple enough to check by hand, and :class:`Feedback` says which rule fired:

* **binary**: every value is the same (clicks, views, purchases recorded once);
* **ratings**: at most 21 distinct values on a half-step grid within ``[0, 10]`` whose most
  frequent value is not the smallest (rating scales peak in the middle or at the top: most
  people rate what they liked);
* **counts**: non-negative whole numbers otherwise (plays, purchases, visits): many at the
  smallest value and a long tail;
* **weights**: anything else (dwell times, scores): treated like counts, as confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["Feedback", "FeedbackKind", "feedback_of"]

FeedbackKind = Literal["binary", "ratings", "counts", "weights"]

#: Largest value and number of distinct values of a rating scale.
RATING_MAX = 10.0
RATING_MAX_DISTINCT = 21


@dataclass(frozen=True)
class Feedback:
    """The kind of a data set's values and the evidence for it.

    Attributes
    ----------
    kind : {"binary", "ratings", "counts", "weights"}
    reason : str
        The rule that decided, with the numbers it looked at.
    """

    kind: FeedbackKind
    reason: str

    @property
    def explicit(self) -> bool:
        """Whether the values are ratings (a model may predict them)."""
        return self.kind == "ratings"


def feedback_of(values: np.ndarray) -> Feedback:
    """Tell ratings from counts, presence and other weights by the values alone.

    Parameters
    ----------
    values
        The interaction values.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return Feedback("binary", "no interactions")
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return Feedback("binary", f"every value is {lo:g}: presence only (clicks, views)")
    distinct, freq = np.unique(v, return_counts=True)
    mode = float(distinct[int(np.argmax(freq))])
    on_half_grid = bool(np.all(np.abs(distinct * 2 - np.round(distinct * 2)) < 1e-6))
    whole = bool(np.all(np.abs(distinct - np.round(distinct)) < 1e-6))
    if (
        lo >= 0
        and hi <= RATING_MAX
        and distinct.size <= RATING_MAX_DISTINCT
        and on_half_grid
        and mode > lo
    ):
        return Feedback(
            "ratings",
            f"{distinct.size} distinct values from {lo:g} to {hi:g}, most often {mode:g}: "
            "a rating scale",
        )
    if lo >= 0 and whole:
        median, p99 = np.quantile(v, [0.5, 0.99])
        return Feedback(
            "counts",
            f"whole numbers from {lo:g} to {hi:g} (median {median:g}, 99th percentile "
            f"{p99:g}, most often {mode:g}): counts such as plays or purchases",
        )
    return Feedback(
        "weights",
        f"{distinct.size} distinct values from {lo:g} to {hi:g}, not a rating scale nor "
        "whole counts: treated as confidence weights",
    )
