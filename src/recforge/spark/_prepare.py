"""The preparation steps of :mod:`recforge.data.prepare` as Spark transformations.

Each step takes a :class:`SparkDataset` and returns ``(dataset, report)`` with the same rows,
codes, values and :class:`~recforge.data.PrepareReport` as the local step on the same data:
users and items that lose all their interactions leave the indices and the remaining codes
are renumbered in order.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recforge.data import weighting
from recforge.data.prepare import PrepareReport, _check_int, _first_given, _scheme_params
from recforge.exceptions import ConfigError, DataError, DataWarning
from recforge.spark._dataset import SparkDataset, recode

__all__ = [
    "STEPS",
    "apply_steps",
    "deduplicate",
    "filter_min_counts",
    "k_core",
    "to_implicit",
    "weight",
]

_POLICIES = ("first", "last", "sum", "max", "mean")


def _keep_rows(ds: SparkDataset, kept: DataFrame) -> tuple[SparkDataset, int, int]:
    """``ds`` restricted to the rows ``kept``; drops users/items that lost every interaction."""
    kept = kept.localCheckpoint()
    out = ds.with_interactions(kept)
    dropped = []
    for what in ("user", "item"):
        had = ds.interactions.select(F.col(what).alias("code")).distinct()
        has = kept.select(F.col(what).alias("code")).distinct()
        lost = had.subtract(has).count()
        dropped.append(int(lost))
        if not lost:
            continue
        index = ds.users if what == "user" else ds.items
        # entities known from the index only (no interactions before) stay, as locally
        keep = index.select("code").subtract(had).union(has)
        new_index, mapping = recode(index, keep)
        rows = out.interactions.join(
            F.broadcast(mapping.withColumnRenamed("old", what)), what
        ).drop(what)
        rows = rows.withColumnRenamed("new", what).select(*ds.interactions.columns)
        out = SparkDataset(
            interactions=rows.localCheckpoint(),
            users=new_index.localCheckpoint() if what == "user" else out.users,
            items=new_index.localCheckpoint() if what == "item" else out.items,
            has_time=ds.has_time,
            name=ds.name,
        )
    return out, dropped[0], dropped[1]


def _filter_rows(
    ds: SparkDataset,
    kept: DataFrame,
    step: str,
    params: dict[str, Any],
    removed: dict[str, int],
    n_before: int,
) -> tuple[SparkDataset, PrepareReport]:
    out, du, di = _keep_rows(ds, kept)
    n_after = out.count()
    if n_before and not n_after:
        warnings.warn(
            f"{step} removed all {n_before} interactions of {ds.name!r}", DataWarning, stacklevel=3
        )
    report = PrepareReport(
        step=step,
        params=params,
        n_before=n_before,
        n_after=n_after,
        removed={reason: n for reason, n in removed.items() if n},
        users_dropped=du,
        items_dropped=di,
    )
    return out, report


def deduplicate(ds: SparkDataset, policy: str = "first") -> tuple[SparkDataset, PrepareReport]:
    """One interaction per (user, item) pair; see :func:`recforge.data.prepare.deduplicate`."""
    if policy not in _POLICIES:
        raise ConfigError(
            f"The 'policy' parameter of deduplicate must be one of {', '.join(_POLICIES)}. "
            f"Got {policy!r} instead."
        )
    pair = Window.partitionBy("user", "item")
    keys = [F.col("time"), F.col("pos")] if ds.has_time else [F.col("pos")]
    rank = F.row_number().over(
        pair.orderBy(*keys) if policy == "first" else pair.orderBy(*[k.desc() for k in keys])
    )
    df = ds.interactions.withColumn("_rank", rank)
    if policy == "sum":
        df = df.withColumn("_agg", F.sum(F.col("value").cast("double")).over(pair))
    elif policy == "max":
        df = df.withColumn("_agg", F.max(F.col("value").cast("double")).over(pair))
    elif policy == "mean":
        df = df.withColumn("_agg", F.avg(F.col("value").cast("double")).over(pair))
    kept = df.filter(F.col("_rank") == 1)
    if policy in ("sum", "max", "mean"):
        kept = kept.withColumn("_old", F.col("value")).withColumn(
            "value", F.col("_agg").cast("float")
        )
    kept = kept.localCheckpoint()
    n_before, n_after = ds.count(), kept.count()
    changed = kept.filter(F.col("value") != F.col("_old")).count() if "_old" in kept.columns else 0
    out = ds.with_interactions(kept.select(*ds.interactions.columns))
    removed = n_before - n_after
    return out, PrepareReport(
        step="deduplicate",
        params={"policy": policy},
        n_before=n_before,
        n_after=n_after,
        removed={"duplicate (user, item) pair": removed} if removed else {},
        values_changed=changed,
    )


def _counted(df: DataFrame) -> DataFrame:
    """Rows with their user's and item's interaction counts (``_uc``, ``_ic``)."""
    return df.withColumn("_uc", F.count("*").over(Window.partitionBy("user"))).withColumn(
        "_ic", F.count("*").over(Window.partitionBy("item"))
    )


def _bad_counts(df: DataFrame, ku: int, ki: int) -> tuple[Column, Column, DataFrame]:
    bad_u = F.col("_uc") < ku
    bad_i = (F.col("_ic") < ki) & ~bad_u
    counts = df.agg(
        F.sum(F.when(bad_u, 1).otherwise(0)).alias("u"),
        F.sum(F.when(bad_i, 1).otherwise(0)).alias("i"),
    )
    return bad_u, bad_i, counts


def filter_min_counts(
    ds: SparkDataset, min_user: int = 1, min_item: int = 1
) -> tuple[SparkDataset, PrepareReport]:
    """One pass of count filters; see :func:`recforge.data.prepare.filter_min_counts`."""
    min_user = _check_int("min_user", "filter_min_counts", min_user)
    min_item = _check_int("min_item", "filter_min_counts", min_item)
    df = _counted(ds.interactions).localCheckpoint()
    bad_u, bad_i, counts = _bad_counts(df, min_user, min_item)
    row = counts.first()
    assert row is not None
    kept = df.filter(~(bad_u | bad_i)).select(*ds.interactions.columns)
    return _filter_rows(
        ds,
        kept,
        "filter_min_counts",
        {"min_user": min_user, "min_item": min_item},
        {
            f"user has fewer than {min_user} interactions": int(row["u"] or 0),
            f"item has fewer than {min_item} interactions": int(row["i"] or 0),
        },
        df.count(),
    )


def k_core(
    ds: SparkDataset,
    k_user: int | None = None,
    k_item: int | None = None,
    *,
    k: int | None = None,
) -> tuple[SparkDataset, PrepareReport]:
    """Iterated count filter until stable; see :func:`recforge.data.prepare.k_core`.

    Each round is one Spark job over the remaining rows (checkpointed, so the plan does not
    grow with the rounds).
    """
    if k is None and k_user is None and k_item is None:
        raise ConfigError("k_core needs 'k' or 'k_user'/'k_item' (minimum interactions)")
    ku = _check_int("k_user", "k_core", _first_given(k_user, k, k_item))
    ki = _check_int("k_item", "k_core", _first_given(k_item, k, k_user))
    columns = ds.interactions.columns
    n_before = ds.count()
    df = ds.interactions
    n_user_rows = n_item_rows = 0
    while True:
        df = _counted(df).localCheckpoint()
        bad_u, bad_i, counts = _bad_counts(df, ku, ki)
        row = counts.first()
        assert row is not None
        nu, ni = int(row["u"] or 0), int(row["i"] or 0)
        if not (nu or ni):
            break
        n_user_rows += nu
        n_item_rows += ni
        df = df.filter(~(bad_u | bad_i)).select(*columns)
    return _filter_rows(
        ds,
        df.select(*columns),
        "k_core",
        {"k_user": ku, "k_item": ki},
        {
            f"user below {ku} interactions": n_user_rows,
            f"item below {ki} interactions": n_item_rows,
        },
        n_before,
    )


def to_implicit(
    ds: SparkDataset, threshold: float | None = None
) -> tuple[SparkDataset, PrepareReport]:
    """Keep ``value >= threshold`` and set values to 1; see the local ``to_implicit``."""
    n_before = ds.count()
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
            raise ConfigError(
                f"The 'threshold' parameter of to_implicit must be a number or None. "
                f"Got {threshold!r} instead."
            )
        if not np.isfinite(threshold):
            raise ConfigError(
                f"The 'threshold' parameter of to_implicit must be finite. Got {threshold!r}."
            )
        # compared in float32, as the local step compares float32 values
        kept = ds.interactions.filter(
            F.col("value") >= F.lit(float(np.float32(threshold))).cast("float")
        )
    else:
        kept = ds.interactions
    kept = kept.localCheckpoint()
    n_kept = kept.count()
    removed = {} if threshold is None else {f"value below {threshold:g}": n_before - n_kept}
    out, report = _filter_rows(ds, kept, "to_implicit", {"threshold": threshold}, removed, n_before)
    changed = out.interactions.filter(F.col("value") != 1.0).count()
    out = out.with_interactions(out.interactions.withColumn("value", F.lit(1.0).cast("float")))
    report = PrepareReport(**{**report.__dict__, "values_changed": changed})
    return out, report


def _elementwise(scheme: str, params: dict[str, float]) -> Column:
    """``value`` re-weighted by the local weighting function itself (in a pandas UDF)."""
    import scipy.sparse as sp

    @F.pandas_udf("float")  # type: ignore[call-overload]
    def apply(values: pd.Series) -> pd.Series:
        v = values.to_numpy(dtype=np.float32)
        n = v.size
        one_per_row = sp.csr_array(
            (v, np.zeros(n, dtype=np.int32), np.arange(n + 1, dtype=np.int64)), shape=(n, 1)
        )
        return pd.Series(weighting.weight_matrix(one_per_row, scheme, **params).data)

    return apply(F.col("value"))  # type: ignore[no-any-return]


def _weighted(ds: SparkDataset, scheme: str, params: dict[str, float]) -> Column:
    if scheme in ("none", "linear", "log"):
        return _elementwise(scheme, params)
    n_users = ds.users.count()
    df = F.count("*").over(Window.partitionBy("item")).cast("double")
    idf = F.greatest(F.log(F.lit(float(n_users)) / F.greatest(df, F.lit(1.0))), F.lit(0.0)) + 1e-3
    r = F.col("value").cast("double")
    if scheme == "tfidf":
        return (F.sqrt(F.abs(F.col("value"))).cast("float").cast("double") * idf).cast("float")
    k1, b = float(params.get("k1", 1.2)), float(params.get("b", 0.75))
    total = ds.interactions.agg(F.sum(r)).first()
    avg = float(total[0]) / n_users if total is not None and n_users else 0.0
    avg = avg if avg > 0 else 1.0
    length = F.sum(r).over(Window.partitionBy("user")) / F.lit(avg)
    return (idf * r * (k1 + 1.0) / (r + k1 * (1.0 - b + b * length))).cast("float")


def weight(
    ds: SparkDataset, scheme: str = "bm25", **kwargs: float
) -> tuple[SparkDataset, PrepareReport]:
    """Re-weight values; see :func:`recforge.data.prepare.weight`.

    ``linear``, ``log`` and ``none`` run the local weighting function on each batch of rows,
    so values are identical; ``bm25`` and ``tfidf`` are Spark expressions in double
    precision (equal to the local float32 values up to their last bit).
    """
    if scheme not in weighting.SCHEMES:
        raise ConfigError(
            f"The 'scheme' parameter of weight must be one of {', '.join(weighting.SCHEMES)}. "
            f"Got {scheme!r} instead."
        )
    allowed = _scheme_params(scheme)
    for name, val in kwargs.items():
        if name not in allowed:
            raise ConfigError(
                f"weight(scheme={scheme!r}) has no parameter {name!r} "
                f"(parameters: {', '.join(allowed) or 'none'})"
            )
        if isinstance(val, bool) or not isinstance(val, int | float | np.number):
            raise ConfigError(
                f"The {name!r} parameter of weight must be a number. Got {val!r} instead."
            )
    n = ds.count()
    n_pairs = ds.interactions.select("user", "item").distinct().count()
    if n_pairs != n:
        raise DataError(
            f"weight: dataset {ds.name!r} has {n - n_pairs} duplicate "
            "(user, item) pairs; weights are per pair, run deduplicate first"
        )
    new = ds.interactions.withColumn("_w", _weighted(ds, scheme, dict(kwargs))).localCheckpoint()
    changed = new.filter(F.col("_w") != F.col("value")).count()
    out = ds.with_interactions(
        new.withColumn("value", F.col("_w")).select(*ds.interactions.columns)
    )
    return out, PrepareReport(
        step="weight",
        params={"scheme": scheme, **kwargs},
        n_before=n,
        n_after=n,
        values_changed=changed,
    )


#: Steps available to :func:`apply_steps`, by name (the local step names).
STEPS = {
    "deduplicate": deduplicate,
    "filter_min_counts": filter_min_counts,
    "k_core": k_core,
    "to_implicit": to_implicit,
    "weight": weight,
}


def apply_steps(
    ds: SparkDataset, steps: Sequence[Mapping[str, Any]]
) -> tuple[SparkDataset, list[PrepareReport]]:
    """Run named steps in order; see :func:`recforge.data.prepare.apply_steps`.

    The steps are validated by the local :func:`~recforge.data.prepare.apply_steps` rules
    (same names, parameters and messages) before anything runs.
    """
    from recforge.data.prepare import validate_steps

    reports: list[PrepareReport] = []
    for i, (name, params) in enumerate(validate_steps(steps)):
        try:
            ds, report = STEPS[name](ds, **params)  # type: ignore[operator]
        except ConfigError as exc:
            raise ConfigError(f"steps[{i}] ({name}): {exc}") from exc
        reports.append(report)
    return ds, reports
