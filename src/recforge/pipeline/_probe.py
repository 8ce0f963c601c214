"""How long one fit of a family takes on a data set, measured rather than guessed.

:func:`fit_seconds` fits the family (its default hyperparameters) on two random user samples,
5 % and 10 % of the users with every item kept, and draws a line through the two times:
``t(n) = a + b * n`` in the number of interactions ``n``. The constant ``a`` catches costs that
do not shrink with fewer users (EASE's dense ``items x items`` solve, item-item similarity
tables), the slope the per-interaction work (ALS sweeps, SGD epochs); the estimate for the
whole data is ``a + b * N``, never below the larger probe's time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recforge.data import Dataset
from recforge.exceptions import InsufficientMemoryError
from recforge.pipeline.tuning import make_model

__all__ = ["FitEstimate", "fit_seconds"]

#: Shares of the users in the two probe fits.
PROBE_SHARES = (0.05, 0.10)
#: Fewest users in a probe sample.
PROBE_MIN_USERS = 50


@dataclass(frozen=True)
class FitEstimate:
    """Estimated seconds of one full fit, and the probe time it cost to find out.

    ``seconds`` is infinite when the family cannot fit this data here (e.g. EASE's dense
    matrices would not fit in memory); ``note`` then says why.
    """

    seconds: float
    probe_seconds: float
    note: str = ""


def _user_sample(ds: Dataset, share: float, seed: int) -> Dataset:
    gen = np.random.default_rng(seed)
    n = max(PROBE_MIN_USERS, round(share * ds.n_users))
    chosen = np.zeros(ds.n_users, dtype=bool)
    chosen[gen.permutation(ds.n_users)[: min(n, ds.n_users)]] = True
    rows = chosen[ds.user]
    time_ = ds.time[rows] if ds.time is not None else None
    return ds.with_interactions(ds.user[rows], ds.item[rows], ds.value[rows], time_)


def _timed_fit(family: str, sample: Dataset, fixed: Mapping[str, Any], seed: int) -> float:
    model = make_model(family, fixed, seed)
    start = time.perf_counter()
    model.fit(sample)
    return time.perf_counter() - start


def fit_seconds(
    family: str,
    ds: Dataset,
    *,
    fixed: Mapping[str, Any] | None = None,
    seed: int = 0,
    limit_s: float = float("inf"),
) -> FitEstimate:
    """Estimate one fit of ``family`` on ``ds`` from two small fits (see the module text).

    Parameters
    ----------
    family
        Registered model name.
    ds
        The training data.
    fixed
        Hyperparameters the search keeps fixed (speed settings).
    seed
        Seed of the samples and the model.
    limit_s
        When the first probe alone takes longer than this, stop there (the family is too
        slow anyway) and extrapolate from it linearly.
    """
    fixed = dict(fixed or {})
    small = _user_sample(ds, PROBE_SHARES[0], seed)
    try:
        t_small = _timed_fit(family, small, fixed, seed)
    except InsufficientMemoryError as exc:
        return FitEstimate(float("inf"), 0.0, str(exc).split(";")[0])
    if t_small > limit_s or small.n_interactions == 0:
        scale = ds.n_interactions / max(small.n_interactions, 1)
        return FitEstimate(t_small * scale, t_small)
    large = _user_sample(ds, PROBE_SHARES[1], seed + 1)
    t_large = _timed_fit(family, large, fixed, seed)
    dn = large.n_interactions - small.n_interactions
    slope = max(0.0, (t_large - t_small) / dn) if dn > 0 else t_large / max(large.n_interactions, 1)
    base = max(0.0, t_large - slope * large.n_interactions)
    estimate = max(t_large, base + slope * ds.n_interactions)
    return FitEstimate(estimate, t_small + t_large)
