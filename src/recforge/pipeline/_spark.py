"""``engine: {type: spark}``: read, prepare and split a run's data on Spark."""

from __future__ import annotations

from typing import Any

from recforge.data import Dataset
from recforge.data.prepare import PrepareReport
from recforge.exceptions import ConfigError
from recforge.pipeline.config import RunConfig
from recforge.split import Split

__all__ = ["spark_prepare_and_split"]


def _read(cfg: RunConfig, spark: Any) -> Any:
    from recforge import spark as rs

    d = cfg.data
    if d.source not in ("csv", "parquet"):
        raise ConfigError(
            f"engine.type=spark reads data.source csv or parquet, not {d.source!r} "
            "(run it with engine.type=local)"
        )
    if d.item_attributes is not None or d.user_attributes is not None:
        raise ConfigError("engine.type=spark does not read attribute tables; use engine local")
    assert d.path is not None
    cols = d.columns
    mapping: dict[str, Any] = {
        "user": cols.user,
        "item": cols.item,
        "value": cols.value,
        "time": cols.time,
    }
    path = str(cfg.resolve(d.path))
    if d.source == "parquet":
        return rs.read_parquet(spark, path, **mapping)
    return rs.read_csv(spark, path, **mapping)


def spark_prepare_and_split(cfg: RunConfig) -> tuple[Dataset, list[PrepareReport], Split]:
    """The prepared data, the preparation reports and the split, computed on Spark.

    The split method must have a Spark version (``recforge.spark.SPARK_SPLIT_METHODS``);
    the results are collected to the driver for fitting and evaluation.

    Raises
    ------
    ConfigError
        For a data source, attribute table or split method Spark does not run.
    MissingDependencyError
        Without pyspark or Java.
    """
    from recforge import spark as rs

    engine = cfg.engine
    spark = rs.spark_session(
        engine.master, shuffle_partitions=engine.shuffle_partitions, config=engine.config
    )
    ds = _read(cfg, spark)
    reports: list[PrepareReport] = []
    if cfg.prepare:
        ds, reports = rs.apply_steps(ds, cfg.prepare)
    split = rs.split_by_name(ds, cfg.split.to_spec())
    indices = ds.index_arrays()
    return ds.to_dataset(indices), reports, split.to_split()
