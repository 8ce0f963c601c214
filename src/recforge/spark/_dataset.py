"""Interactions as a Spark DataFrame with their id indices: :class:`SparkDataset`.

The interactions hold internal codes, like a local :class:`~recforge.data.Dataset`: columns
``pos`` (source order), ``user`` and ``item`` (int codes), ``value`` (float32) and, when
mapped, ``time`` (epoch seconds). The id indices are DataFrames ``code, id``. Ids are coded
by first appearance in source order, as :meth:`Dataset.from_frame` codes them, in Spark jobs
(nothing is collected to the driver until :meth:`SparkDataset.to_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recforge.data import Dataset, IdIndex
from recforge.exceptions import DataError

__all__ = [
    "SparkDataset",
    "from_dataset",
    "from_spark",
    "read_csv",
    "read_parquet",
    "read_table",
    "recode",
]

_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = (*_INTEGRAL, T.FloatType, T.DoubleType, T.DecimalType)


@dataclass(frozen=True)
class SparkDataset:
    """Interactions on Spark with their user and item indices.

    Attributes
    ----------
    interactions : pyspark.sql.DataFrame
        ``pos`` (long, source order), ``user``, ``item`` (int codes), ``value`` (float) and
        ``time`` (long epoch seconds, only when :attr:`has_time`).
    users, items : pyspark.sql.DataFrame
        ``code`` (int, 0..n-1) and ``id`` (long or string external id).
    has_time : bool
        Whether interactions carry timestamps.
    name : str
        Human-readable name of the source.
    """

    interactions: DataFrame
    users: DataFrame
    items: DataFrame
    has_time: bool
    name: str = "dataset"

    @property
    def spark(self) -> SparkSession:
        """The session the data lives in."""
        return self.interactions.sparkSession

    def count(self) -> int:
        """Number of interactions (a Spark job)."""
        return int(self.interactions.count())

    def with_interactions(self, interactions: DataFrame) -> SparkDataset:
        """The same indices over other interaction rows (same columns)."""
        return replace(self, interactions=interactions)

    def to_frame(self) -> DataFrame:
        """Interactions with external ids: ``user, item, value[, time]`` in source order."""
        u = self.users.select(F.col("code").alias("user"), F.col("id").alias("user_id"))
        i = self.items.select(F.col("code").alias("item"), F.col("id").alias("item_id"))
        cols: list[Column | str] = [
            F.col("user_id").alias("user"),
            F.col("item_id").alias("item"),
            "value",
        ]
        if self.has_time:
            cols.append("time")
        df = self.interactions.join(F.broadcast(i), "item").join(u, "user")
        return df.orderBy("pos").select(*cols)

    def index_arrays(self) -> tuple[IdIndex, IdIndex]:
        """The user and item indices collected to the driver (ids in code order)."""
        return _collect_index(self.users), _collect_index(self.items)

    def to_dataset(self, indices: tuple[IdIndex, IdIndex] | None = None) -> Dataset:
        """Collect to a local :class:`~recforge.data.Dataset` (rows in source order).

        Parameters
        ----------
        indices
            Already collected ``(users, items)`` indices (e.g. shared by the parts of a
            split); collected from :attr:`users` / :attr:`items` when not given.
        """
        users, items = indices if indices is not None else self.index_arrays()
        cols = ["user", "item", "value", *(["time"] if self.has_time else [])]
        pdf = self.interactions.orderBy("pos").select(*cols).toPandas()
        return Dataset(
            user=pdf["user"].to_numpy(dtype=np.int32),
            item=pdf["item"].to_numpy(dtype=np.int32),
            value=pdf["value"].to_numpy(dtype=np.float32),
            time=pdf["time"].to_numpy(dtype=np.int64) if self.has_time else None,
            users=users,
            items=items,
            name=self.name,
        )


def _collect_index(index: DataFrame) -> IdIndex:
    pdf = index.orderBy("code").toPandas()
    if len(pdf) and not np.array_equal(pdf["code"].to_numpy(), np.arange(len(pdf))):
        raise DataError("a Spark id index must hold the codes 0..n-1")
    ids = pdf["id"].to_numpy()
    return IdIndex(ids.astype(np.int64) if ids.dtype.kind in "iuf" else ids.astype(object))


# --------------------------------------------------------------------------- coding


def recode(index: DataFrame, keep: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Keep the index entries whose codes are in ``keep`` (a ``code`` column), renumbered.

    Codes keep their order (``0..m-1``), as the local preparation renumbers them.

    Returns
    -------
    new_index, mapping
        ``code, id`` and ``old, new`` (old code to new code).
    """
    kept = index.join(keep.select("code").distinct(), "code")
    numbered = kept.withColumn("new", (F.row_number().over(Window.orderBy("code")) - 1).cast("int"))
    mapping = numbered.select(F.col("code").alias("old"), "new")
    return numbered.select(F.col("new").alias("code"), "id"), mapping


def _first_appearance_index(df: DataFrame, column: str) -> DataFrame:
    """``code, id`` of the distinct values of ``column`` numbered by their first ``pos``."""
    first = df.groupBy(F.col(column).alias("id")).agg(F.min("pos").alias("first"))
    order = Window.orderBy("first")
    return first.select((F.row_number().over(order) - 1).cast("int").alias("code"), "id")


# --------------------------------------------------------------------------- checks


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def _check_columns(df: DataFrame, names: list[str | None], source: str | None) -> None:
    missing = [c for c in names if c is not None and c not in df.columns]
    if missing:
        raise DataError(
            f"{_where(source)}interactions are missing column {missing[0]!r} "
            f"(columns: {', '.join(df.columns)})"
        )


def _id_column(df: DataFrame, name: str, source: str | None) -> Column:
    """The id column as long (integral values) or string, like ``IdIndex`` normalises ids."""
    dtype = df.schema[name].dataType
    col = F.col(name)
    if isinstance(dtype, _INTEGRAL):
        return col.cast("long")
    if isinstance(dtype, T.FloatType | T.DoubleType | T.DecimalType):
        bad = df.filter(col.isNotNull() & (col != F.floor(col))).limit(1).collect()
        if bad:
            raise DataError(
                f"{_where(source)}column {name!r} holds non-integral float ids "
                f"(e.g. {bad[0][name]!r}); ids must be integers or strings"
            )
        return col.cast("long")
    if isinstance(dtype, T.BooleanType):
        raise DataError(f"{_where(source)}column {name!r}: ids must be integers or strings")
    return col.cast("string")


def _value_column(df: DataFrame, name: str | None) -> Column:
    if name is None:
        return F.lit(1.0).cast("float")
    return F.col(name).try_cast("float")


def _time_column(df: DataFrame, name: str) -> Column:
    """Epoch seconds (long): integers as given, floats truncated, datetimes and strings parsed."""
    dtype = df.schema[name].dataType
    col = F.col(name)
    if isinstance(dtype, _INTEGRAL):
        return col.cast("long")
    if isinstance(dtype, _NUMERIC):
        return F.when(F.isnan(col.cast("double")), None).otherwise(col.cast("long"))
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType | T.DateType):
        return F.unix_timestamp(col.cast("timestamp"))
    return F.unix_timestamp(F.try_to_timestamp(col.cast("string")))


def _check_rows(df: DataFrame, checks: dict[str, tuple[str, Column]], source: str | None) -> None:
    """Raise DataError naming the column and first bad row of the first failing check."""
    counts = df.agg(
        *[F.sum(F.when(bad, 1).otherwise(0)).alias(key) for key, (_, bad) in checks.items()]
    ).first()
    assert counts is not None
    for key, (what, bad) in checks.items():
        if counts[key]:
            first = df.filter(bad).orderBy("pos").select("pos").first()
            assert first is not None
            row = df.filter(F.col("pos") < first["pos"]).count()
            raise DataError(
                f"{_where(source)}column {key!r} has {what} at row {row} "
                f"(0-based, in source order; {counts[key]} bad rows in all)"
            )


# --------------------------------------------------------------------------- sources


def from_spark(
    df: DataFrame,
    *,
    user: str = "user",
    item: str = "item",
    value: str | None = None,
    time: str | None = None,
    name: str | None = None,
    source: str | None = None,
) -> SparkDataset:
    """Map the columns of a Spark DataFrame and code its ids (by first appearance).

    Parameters
    ----------
    df
        One row per interaction; its row order (Spark's ``monotonically_increasing_id``
        order) is the source order.
    user, item
        Names of the user and item id columns.
    value
        Name of the value column; ``None`` gives implicit data with value 1.0.
    time
        Name of the time column: epoch seconds, timestamps or parseable strings.
    name
        Name shown in summaries; defaults to ``source`` or ``"dataset"``.
    source
        File or table the frame came from; used in error messages.

    Raises
    ------
    DataError
        On missing columns, null ids, non-numeric or non-finite values, unparseable times or
        empty input; the message names the source, the column and the first bad row.
    """
    _check_columns(df, [user, item, value, time], source)
    rows = df.select(
        F.monotonically_increasing_id().alias("pos"),
        _id_column(df, user, source).alias("user_id"),
        _id_column(df, item, source).alias("item_id"),
        _value_column(df, value).alias("value"),
        *([] if time is None else [_time_column(df, time).alias("time")]),
    )
    checks: dict[str, tuple[str, Column]] = {
        user: ("a missing id", F.col("user_id").isNull()),
        item: ("a missing id", F.col("item_id").isNull()),
    }
    if value is not None:
        v = F.col("value")
        bad_value = v.isNull() | F.isnan(v) | (F.abs(v) == float("inf"))
        checks[value] = ("a non-numeric or non-finite value", bad_value)
    if time is not None:
        checks[time] = ("a missing or unparseable time", F.col("time").isNull())
    rows = rows.localCheckpoint()
    if rows.isEmpty():
        raise DataError(f"{_where(source)}interactions are empty (no rows)")
    _check_rows(rows, checks, source)
    users = _first_appearance_index(rows, "user_id")
    items = _first_appearance_index(rows, "item_id")
    coded = rows.join(F.broadcast(_renamed(items, "item")), "item_id").join(
        _renamed(users, "user"), "user_id"
    )
    cols = ["pos", "user", "item", "value", *([] if time is None else ["time"])]
    return SparkDataset(
        interactions=coded.select(*cols),
        users=users,
        items=items,
        has_time=time is not None,
        name=name or (source.rstrip("/").rsplit("/", 1)[-1] if source else "dataset"),
    )


def _renamed(index: DataFrame, what: str) -> DataFrame:
    return index.select(F.col("code").alias(what), F.col("id").alias(f"{what}_id"))


def read_parquet(spark: SparkSession, path: str, **columns: Any) -> SparkDataset:
    """Read interactions from Parquet (a file or a folder); see :func:`from_spark`."""
    return from_spark(spark.read.parquet(path), source=str(path), **columns)


def read_csv(
    spark: SparkSession, path: str, *, sep: str = ",", header: bool = True, **columns: Any
) -> SparkDataset:
    """Read interactions from delimited text (types inferred); see :func:`from_spark`."""
    df = spark.read.csv(str(path), sep=sep, header=header, inferSchema=True)
    return from_spark(df, source=str(path), **columns)


def read_table(spark: SparkSession, table: str, **columns: Any) -> SparkDataset:
    """Read interactions from a catalog table (Hive, Delta, ...); see :func:`from_spark`."""
    return from_spark(spark.read.table(table), source=table, **columns)


def from_dataset(spark: SparkSession, ds: Dataset) -> SparkDataset:
    """A local :class:`~recforge.data.Dataset` on Spark, with the same codes and row order."""
    import pandas as pd

    data: dict[str, Any] = {
        "pos": np.arange(ds.n_interactions, dtype=np.int64),
        "user": ds.user.astype(np.int32),
        "item": ds.item.astype(np.int32),
        "value": ds.value.astype(np.float32),
    }
    if ds.time is not None:
        data["time"] = ds.time.astype(np.int64)
    interactions = spark.createDataFrame(pd.DataFrame(data))
    return SparkDataset(
        interactions=interactions,
        users=_index_frame(spark, ds.users),
        items=_index_frame(spark, ds.items),
        has_time=ds.time is not None,
        name=ds.name,
    )


def _index_frame(spark: SparkSession, index: IdIndex) -> DataFrame:
    import pandas as pd

    ids = index.ids
    pdf = pd.DataFrame(
        {
            "code": np.arange(len(ids), dtype=np.int32),
            "id": ids.astype(np.int64) if ids.dtype.kind in "iu" else ids.astype(str),
        }
    )
    if len(pdf) == 0:
        id_type = "long" if ids.dtype.kind in "iu" else "string"
        return spark.createDataFrame([], f"code int, id {id_type}")
    return spark.createDataFrame(pdf)
