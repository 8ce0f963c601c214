"""Spark MLlib ALS, exported as a recforge :class:`~recforge.models.ALS`."""

from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame

from recforge.models.als import ALS
from recforge.spark._dataset import SparkDataset

__all__ = ["fit_als"]


def _factor_array(frame: DataFrame, n: int, factors: int) -> np.ndarray:
    """MLlib's ``id, features`` factors as an ``(n, factors)`` array by code (zeros if absent)."""
    pdf = frame.toPandas()
    out = np.zeros((n, factors), dtype=np.float32)
    if len(pdf):
        out[pdf["id"].to_numpy(dtype=np.int64)] = np.stack(pdf["features"].to_list())
    return out


def fit_als(
    train: SparkDataset,
    *,
    factors: int = 64,
    iterations: int = 15,
    reg: float = 0.01,
    alpha: float = 10.0,
    implicit: bool = True,
    rng: int | None = 0,
    block_size: int = 4096,
) -> ALS:
    """Fit MLlib's ALS on the training interactions and return a fitted recforge ALS.

    The factors are learned on the executors; the model keeps the training data's ids,
    seen items and popularity (collected once), so it recommends, saves, loads, registers
    and serves like an ALS fitted locally.

    Parameters
    ----------
    train
        Training interactions (values are the ratings or counts MLlib weighs).
    factors, iterations, reg, alpha
        MLlib's ``rank``, ``maxIter``, ``regParam`` and ``alpha``. MLlib scales ``reg`` by
        each user's and item's number of interactions (ALS-WR), recforge's ALS does not,
        so equal values are not the same objective.
    implicit
        Hu et al.'s implicit-feedback objective (``implicitPrefs``); ``False`` fits the
        explicit rating objective (the exported model then ranks by predicted rating).
    rng
        MLlib's seed.
    block_size
        MLlib's ``blockSize``.

    Returns
    -------
    recforge.models.ALS
    """
    from pyspark.ml.recommendation import ALS as MLlibALS

    estimator = MLlibALS(
        rank=factors,
        maxIter=iterations,
        regParam=reg,
        alpha=alpha,
        implicitPrefs=implicit,
        userCol="user",
        itemCol="item",
        ratingCol="value",
        seed=0 if rng is None else int(rng),
        blockSize=block_size,
        nonnegative=False,
    )
    fitted = estimator.fit(train.interactions.select("user", "item", "value"))
    local = train.to_dataset()
    return ALS.from_factors(
        local,
        _factor_array(fitted.userFactors, local.n_users, factors),
        _factor_array(fitted.itemFactors, local.n_items, factors),
        iterations=iterations,
        reg=reg,
        alpha=alpha,
        rng=rng,
    )
