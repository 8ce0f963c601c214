"""Batch scoring of any saved recforge model on Spark.

The model travels to the executors as the bytes of its saved ``.zip`` (``model.json`` and
``arrays.npz``, no pickle) in a broadcast variable; each Python worker loads it once with
:meth:`Recommender.load` and scores its partitions in batches through the model's public
:meth:`~recforge.models.Recommender.recommend` and
:meth:`~recforge.models.Recommender.predict`, so lists and scores are those of a local call.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recforge.exceptions import DataError
from recforge.models import Recommender

__all__ = ["model_bytes", "predict", "recommend"]

#: Models loaded in this Python worker, by the SHA-256 of their bytes.
_LOADED: dict[str, Recommender] = {}


def model_bytes(model: Recommender | str | Path) -> bytes:
    """The saved ``.zip`` of a fitted model, or of the model saved at ``model`` (a path).

    A path is loaded (and so validated) first, so a bad file fails on the driver.
    """
    fitted = model if isinstance(model, Recommender) else Recommender.load(Path(model))
    with tempfile.TemporaryDirectory(prefix="recforge-spark-") as tmp:
        target = Path(tmp) / "model.zip"
        fitted.save(target)
        return target.read_bytes()


def _load(data: bytes) -> Recommender:
    """The model saved in ``data``, loaded once per worker process."""
    key = hashlib.sha256(data).hexdigest()
    model = _LOADED.get(key)
    if model is None:
        with tempfile.TemporaryDirectory(prefix="recforge-spark-") as tmp:
            path = Path(tmp) / "model.zip"
            path.write_bytes(data)
            model = Recommender.load(path)
        _LOADED.clear()  # one model per worker at a time bounds memory
        _LOADED[key] = model
    return model


def arrow_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with text columns as plain object columns (pyspark's Arrow path wants them)."""
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype)]
    return frame.astype(dict.fromkeys(text, object)) if text else frame


def _id_type(ids: np.ndarray) -> str:
    return "long" if ids.dtype.kind in "iu" else "string"


def _user_column(users: DataFrame, column: str | None) -> str:
    name = column or users.columns[0]
    if name not in users.columns:
        raise DataError(f"users are missing column {name!r} (columns: {', '.join(users.columns)})")
    return name


def _broadcast(spark: SparkSession, model: Recommender | str | Path) -> tuple[Any, Recommender]:
    data = model_bytes(model)
    return spark.sparkContext.broadcast(data), _load(data)


def recommend(
    model: Recommender | str | Path,
    users: DataFrame,
    k: int = 10,
    *,
    user_column: str | None = None,
    exclude_seen: bool = True,
    on_unknown: str = "raise",
    batch_size: int = 1024,
    path: str | None = None,
) -> DataFrame:
    """Top-``k`` lists of every user in ``users``, scored on the executors.

    Parameters
    ----------
    model
        A fitted model, or the path of one saved with :meth:`Recommender.save`.
    users
        External user ids (one row per user), in ``user_column``.
    k
        List length.
    user_column
        Column of ``users`` holding the ids; the first column by default.
    exclude_seen, on_unknown
        As in :meth:`Recommender.recommend` (``on_unknown="popular"`` gives unknown users
        the most popular items instead of failing the job).
    batch_size
        Users per ``recommend`` call inside a task (bounds the dense score block).
    path
        Write the lists here as Parquet (overwriting) and return the written table.

    Returns
    -------
    pyspark.sql.DataFrame
        ``user, item, score, rank`` (external ids, float32 scores, 1-based rank), the long
        format of :meth:`Recommendations.to_frame`.
    """
    column = _user_column(users, user_column)
    spark = users.sparkSession
    shared, local = _broadcast(spark, model)
    schema = (
        f"user {_id_type(local.users_.ids)}, item {_id_type(local.items_.ids)}, "
        "score float, rank long"
    )

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted = _load(shared.value)
        for batch in batches:
            ids = batch[column].to_numpy()
            for start in range(0, ids.size, batch_size):
                recs = fitted.recommend(
                    ids[start : start + batch_size],
                    k,
                    exclude_seen=exclude_seen,
                    on_unknown=on_unknown,  # type: ignore[arg-type]
                )
                yield arrow_ready(recs.to_frame())

    out = users.select(F.col(column)).mapInPandas(score, schema)
    if path is None:
        return out
    out.write.mode("overwrite").parquet(path)
    return spark.read.parquet(path)


def predict(
    model: Recommender | str | Path,
    pairs: DataFrame,
    *,
    user_column: str = "user",
    item_column: str = "item",
) -> DataFrame:
    """Rating estimates of ``(user, item)`` pairs with :meth:`Recommender.predict`.

    Returns
    -------
    pyspark.sql.DataFrame
        The columns of ``pairs`` plus ``prediction`` (double).
    """
    for name in (user_column, item_column):
        if name not in pairs.columns:
            raise DataError(
                f"pairs are missing column {name!r} (columns: {', '.join(pairs.columns)})"
            )
    shared, _ = _broadcast(pairs.sparkSession, model)
    fields = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in pairs.schema.fields)

    def estimate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted = _load(shared.value)
        for batch in batches:
            if len(batch):
                users = batch[user_column].to_numpy()
                items = batch[item_column].to_numpy()
                batch = batch.assign(prediction=fitted.predict(users, items).astype(np.float64))
            else:
                batch = batch.assign(prediction=np.zeros(0))
            yield arrow_ready(batch)

    return pairs.mapInPandas(estimate, f"{fields}, prediction double")
