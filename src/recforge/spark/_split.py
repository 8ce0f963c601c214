"""The splitters of :mod:`recforge.split` as Spark transformations.

They work on distinct ``(user, item)`` pairs like the local ones (every copy of a pair goes
to the same side), order pairs by their first interaction's time and then by their first
appearance, and give the same train / validation / test rows as the local splitter with the
same arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recforge.data import IdIndex
from recforge.exceptions import ConfigError, DataError
from recforge.spark._dataset import SparkDataset
from recforge.split import (
    Split,
    _check_count_or_fraction,
    _check_fraction,
    _fmt,
    _to_epoch,
    pair_hash_seed,
    split_options,
)

__all__ = [
    "SPARK_SPLIT_METHODS",
    "SparkSplit",
    "leave_one_out",
    "random_split",
    "split_by_name",
    "temporal_split",
]


@dataclass(frozen=True)
class SparkSplit:
    """Train, optional validation and test parts on Spark, sharing one pair of indices."""

    train: SparkDataset
    test: SparkDataset
    valid: SparkDataset | None = None
    name: str = "split"

    def to_split(self) -> Split:
        """Collect to a local :class:`~recforge.split.Split` (the indices collected once)."""
        indices: tuple[IdIndex, IdIndex] = self.train.index_arrays()
        return Split(
            train=self.train.to_dataset(indices),
            test=self.test.to_dataset(indices),
            valid=None if self.valid is None else self.valid.to_dataset(indices),
            name=self.name,
        )


def _pairs(ds: SparkDataset, seed: int | None = None) -> DataFrame:
    """Distinct pairs with ``first_pos``, ``first_time`` and their user's rank and size.

    ``rank`` (0-based) orders a user's pairs by first time, then by first appearance (the
    local splitters' time order key); without times by first appearance alone. With a
    ``seed`` it orders them by their random ``key`` (Spark's ``xxhash64(seed, user, item)``,
    :func:`recforge.split.pair_random_keys` locally), then by first appearance.
    """
    aggs = [F.min("pos").alias("first_pos")]
    if ds.has_time:
        aggs.append(F.min("time").alias("first_time"))
    pairs = ds.interactions.groupBy("user", "item").agg(*aggs)
    if seed is not None:
        pairs = pairs.withColumn("key", F.xxhash64(F.lit(seed).cast("long"), "user", "item"))
        keys = ["key", "first_pos"]
    else:
        keys = ["first_time", "first_pos"] if ds.has_time else ["first_pos"]
    by_user = Window.partitionBy("user")
    return pairs.withColumn("rank", F.row_number().over(by_user.orderBy(*keys)) - 1).withColumn(
        "size", F.count("*").over(by_user)
    )


def _tail(amount: int | float) -> Column:
    """Pairs among the last ``amount`` (count or fraction) of their user, keeping one back."""
    size = F.col("size")
    if isinstance(amount, float):
        n_tail = F.floor(size * F.lit(amount) + F.lit(0.5))
    else:
        n_tail = F.lit(amount)
    n_tail = F.least(n_tail, size - 1)
    return F.col("rank") >= size - n_tail


def _sides(ds: SparkDataset, pair_flag: DataFrame) -> tuple[SparkDataset, SparkDataset]:
    """``(rest, picked)``: interactions whose pair is flagged (``pick``) and the others."""
    rows = ds.interactions.join(pair_flag.select("user", "item", "pick"), ["user", "item"])
    rows = rows.select(*ds.interactions.columns, "pick").cache()
    columns = ds.interactions.columns
    picked = ds.with_interactions(rows.filter(F.col("pick")).select(*columns))
    rest = ds.with_interactions(rows.filter(~F.col("pick")).select(*columns))
    return rest, picked


def _carve(
    ds: SparkDataset,
    pick: Callable[[SparkDataset], DataFrame],
    name: str,
    valid_pick: Callable[[SparkDataset], DataFrame] | None,
) -> SparkSplit:
    train, test = _sides(ds, pick(ds))
    valid = None
    if valid_pick is not None:
        train, valid = _sides(train, valid_pick(train))
    return SparkSplit(train=train, test=test, valid=valid, name=name)


def _require_time(ds: SparkDataset, what: str, hint: str) -> None:
    if not ds.has_time:
        raise DataError(f"{what} needs timestamps but dataset {ds.name!r} has {hint}")


def _quantile_cut(ds: SparkDataset, quantile: float) -> int:
    """Time of the first test interaction when a ``quantile`` share of times is train.

    The exact order statistic the local split takes (``sorted(times)[ceil(q n)]``), from the
    counts per distinct time.
    """
    n = ds.count()
    pos = min(math.ceil(quantile * n), n - 1)
    counts = ds.interactions.groupBy("time").count()
    upto = F.sum("count").over(Window.orderBy("time").rowsBetween(Window.unboundedPreceding, 0))
    row = counts.withColumn("upto", upto).filter(F.col("upto") > pos).agg(F.min("time")).first()
    assert row is not None
    return int(row[0])


def temporal_split(
    ds: SparkDataset,
    *,
    at: Any = None,
    quantile: float | None = None,
    per_user_last: int | float | None = None,
    valid_size: int | float = 0.0,
) -> SparkSplit:
    """Split by time; see :func:`recforge.split.temporal_split` (same arguments and rows)."""
    _require_time(ds, "temporal_split", "no time column (map one with time=...)")
    options = {"at": at, "quantile": quantile, "per_user_last": per_user_last}
    given = [n for n, v in options.items() if v is not None]
    if len(given) != 1:
        raise ConfigError(
            "temporal_split needs exactly one of at=, quantile= or per_user_last= "
            f"(got {', '.join(given) if given else 'none'})"
        )
    if per_user_last is not None:
        amount = _check_count_or_fraction("per_user_last", per_user_last, allow_zero=False)
        valid_amount = _check_count_or_fraction("valid_size", valid_size, allow_zero=True)

        def tail(n: int | float) -> Callable[[SparkDataset], DataFrame]:
            return lambda d: _pairs(d).withColumn("pick", _tail(n))

        name = f"temporal({_fmt(per_user_last=amount, valid_size=valid_amount or None)})"
        return _carve(ds, tail(amount), name, tail(valid_amount) if valid_amount else None)
    return _temporal_cut(ds, at, quantile, valid_size)


def _temporal_cut(
    ds: SparkDataset, at: Any, quantile: float | None, valid_size: int | float
) -> SparkSplit:
    valid_frac = _check_fraction("valid_size", valid_size, allow_zero=True)
    if quantile is not None:
        q = _check_fraction("quantile", quantile, allow_zero=False)
        cut = _quantile_cut(ds, q)
        label = f"quantile={q!r}"
    else:
        cut = _to_epoch(at)
        label = f"at={cut!r}"
    pairs = _pairs(ds).withColumn("pick", F.col("first_time") >= F.lit(cut))
    sides = pairs.agg(F.sum(F.col("pick").cast("int")), F.count("*")).first()
    assert sides is not None
    if not sides[0] or sides[0] == sides[1]:
        side = "test" if not sides[0] else "train"
        span = ds.interactions.agg(F.min("time"), F.max("time")).first()
        assert span is not None
        raise DataError(
            f"temporal cut {label} leaves {side} empty for dataset {ds.name!r} "
            f"(times span {span[0]} .. {span[1]})"
        )

    def valid_pick(d: SparkDataset) -> DataFrame:
        valid_cut = _quantile_cut(d, 1.0 - valid_frac)
        return _pairs(d).withColumn("pick", F.col("first_time") >= F.lit(valid_cut))

    name = f"temporal({label}{f', valid_size={valid_frac!r}' if valid_frac else ''})"
    return _carve(ds, lambda d: pairs, name, valid_pick if valid_frac > 0 else None)


def random_split(
    ds: SparkDataset,
    test_size: float = 0.2,
    *,
    per_user: bool = False,
    valid_size: float = 0.0,
    rng: int = 0,
) -> SparkSplit:
    """Random split of the distinct pairs; see :func:`recforge.split.random_split`.

    Same rows as the local split with the same ``rng``: both order pairs by the keyed hash
    of ``(seed, user code, item code)``. The global split ranks all pairs in one window
    (a single task); ``per_user=True`` ranks within users.
    """
    test_size = _check_fraction("test_size", test_size, allow_zero=False)
    valid_size = _check_fraction("valid_size", valid_size, allow_zero=True)
    seed = pair_hash_seed(rng)

    def rule(fraction: float) -> Callable[[SparkDataset], DataFrame]:
        def pick(d: SparkDataset) -> DataFrame:
            pairs = _pairs(d, seed)
            if per_user:
                return pairs.withColumn("pick", _tail(fraction))
            n_pick = round(fraction * pairs.count())
            order = F.row_number().over(Window.orderBy("key", "first_pos")) - 1
            return pairs.withColumn("pick", order < F.lit(n_pick))

        return pick

    kind = "user_random" if per_user else "random"
    name = f"{kind}({_fmt(test_size=test_size, valid_size=valid_size or None)})"
    return _carve(ds, rule(test_size), name, rule(valid_size) if valid_size > 0 else None)


def leave_one_out(
    ds: SparkDataset, *, by: str = "time", valid: bool = True, rng: int = 0
) -> SparkSplit:
    """Each user's newest (or random) pair in test, and the one before in validation.

    See :func:`recforge.split.leave_one_out`: same rows, for ``by="random"`` too.
    """
    if by not in ("time", "random"):
        raise ConfigError(f"by must be 'time' or 'random'. Got {by!r} instead.")
    if by == "time":
        _require_time(ds, "leave_one_out(by='time')", "none (use by='random')")
    pairs = _pairs(ds, None if by == "time" else pair_hash_seed(rng)).withColumn(
        "side",
        F.when((F.col("rank") == F.col("size") - 1) & (F.col("size") >= 2), "test")
        .when(F.lit(valid) & (F.col("rank") == F.col("size") - 2) & (F.col("size") >= 3), "valid")
        .otherwise("train"),
    )
    rows = ds.interactions.join(pairs.select("user", "item", "side"), ["user", "item"])
    rows = rows.select(*ds.interactions.columns, "side").cache()

    def part(side: str) -> SparkDataset:
        return ds.with_interactions(
            rows.filter(F.col("side") == side).select(*ds.interactions.columns)
        )

    return SparkSplit(
        train=part("train"),
        test=part("test"),
        valid=part("valid") if valid else None,
        name=f"leave_one_out(by={by!r}{', valid=True' if valid else ''})",
    )


_METHODS: dict[str, Callable[..., SparkSplit]] = {
    "random": random_split,
    "user_random": lambda ds, **kw: random_split(ds, per_user=True, **kw),
    "temporal": temporal_split,
    "leave_one_out": leave_one_out,
}

#: Split methods that run on Spark (``split_by_name`` names, after aliases).
SPARK_SPLIT_METHODS: tuple[str, ...] = tuple(sorted(_METHODS))


def split_by_name(ds: SparkDataset, spec: Mapping[str, Any]) -> SparkSplit:
    """Run a splitter from a configuration dict; see :func:`recforge.split.split_by_name`.

    Raises
    ------
    ConfigError
        If the method is unknown, has no Spark version, or a key is not one of its options.
    """
    if not isinstance(spec, Mapping) or "method" not in spec:
        raise ConfigError("split spec must be a mapping with a 'method'")
    name, allowed = split_options(str(spec["method"]))
    if name not in _METHODS:
        raise ConfigError(
            f"split method {spec['method']!r} has no Spark version "
            f"(Spark methods: {', '.join(SPARK_SPLIT_METHODS)})"
        )
    kwargs = {k: v for k, v in spec.items() if k != "method"}
    for key in kwargs:
        if key not in allowed:
            raise ConfigError(
                f"split method {spec['method']!r} has no option {key!r} "
                f"(options: {', '.join(allowed)})"
            )
    return _METHODS[name](ds, **kwargs)
