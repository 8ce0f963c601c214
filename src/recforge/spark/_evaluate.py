"""Metrics of recommendation lists on Spark, equal to :mod:`recforge.evaluation`'s.

The protocol is the local engine's (:func:`recforge.evaluation._engine.evaluate_model`):
relevant test pairs (``value > 0`` or ``>= relevance_threshold``, one per pair with its
highest value) define the evaluated users; users with training interactions are the
``known`` group, the others ``cold``. Per-user metrics are computed on the executors by
:func:`recforge.metrics.compute_metrics` itself, on batches of whole users, so every value
equals the local one; catalogue metrics (coverage, gini) and RMSE/MAE are Spark aggregates.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recforge.evaluation import LIST_METRICS, RATING_METRICS
from recforge.exceptions import ConfigError, DataError
from recforge.models import Recommender
from recforge.spark._dataset import SparkDataset
from recforge.spark._score import arrow_ready, predict

__all__ = ["SparkEvaluation", "evaluate"]

_PER_USER_SCHEMA = "group string, metric string, k int, user int, value double"


@dataclass(frozen=True)
class SparkEvaluation:
    """What :func:`evaluate` measured.

    Attributes
    ----------
    per_user : pyspark.sql.DataFrame
        ``group, metric, k, user, value``: one row per evaluated user, metric and cutoff
        (external user ids; ``k`` null for RMSE/MAE), the table paired tests take.
    aggregates : pandas.DataFrame
        ``group, metric, k, value, ci_low, ci_high, n_users``: metrics that are not a mean
        over users (coverage and gini of all lists, RMSE/MAE over interactions).
    summary : pandas.DataFrame
        ``group, metric, k, value, n_users``: the headline value of every metric (the
        aggregate, else the mean over users with a defined value).
    """

    per_user: DataFrame
    aggregates: pd.DataFrame
    summary: pd.DataFrame

    def value(self, metric: str, k: int | None = None, group: str = "known") -> float:
        """Headline value of ``metric@k`` for ``group`` (NaN when not measured)."""
        s = self.summary
        sel = s[(s["metric"] == metric) & (s["group"] == group)]
        if k is not None:
            sel = sel[sel["k"] == k]
        return float(sel["value"].iloc[0]) if len(sel) else math.nan


def _relevant(test: SparkDataset, threshold: float | None) -> DataFrame:
    """One row per relevant test pair (highest value), as ``truth_matrix`` selects them."""
    value = F.col("value")
    keep = value >= F.lit(float(threshold)) if threshold is not None else value > 0
    pairs = test.interactions.filter(keep).groupBy("user", "item")
    return pairs.agg(F.max(value).cast("double").alias("grade"))


def _user_rows(recs: DataFrame, train: SparkDataset, truth: DataFrame, depth: int) -> DataFrame:
    """Per evaluated user: ``group``, truth items and grades, and the ranked item codes."""
    for name in ("user", "item", "rank"):
        if name not in recs.columns:
            raise DataError(
                f"recommendations are missing column {name!r} (columns: {', '.join(recs.columns)})"
            )
    users = train.users.select(F.col("code").alias("user"), F.col("id").alias("user_id"))
    items = train.items.select(F.col("code").alias("item"), F.col("id").alias("item_id"))
    coded = (
        recs.filter(F.col("rank") <= depth)
        .select(F.col("user").alias("user_id"), F.col("item").alias("item_id"), "rank")
        .join(F.broadcast(items), "item_id")
        .join(users, "user_id")
    )
    lists = coded.groupBy("user").agg(
        F.sort_array(F.collect_list(F.struct("rank", "item"))).alias("ranked")
    )
    relevant = truth.groupBy("user").agg(
        F.collect_list("item").alias("truth_items"), F.collect_list("grade").alias("grades")
    )
    known = train.interactions.select("user").distinct().withColumn("known", F.lit(True))
    rows = relevant.join(lists, "user", "left").join(known, "user", "left")
    group = F.when(F.col("known").isNull(), "cold").otherwise("known")
    return rows.select(
        "user",
        group.alias("group"),
        "truth_items",
        "grades",
        F.coalesce(F.col("ranked.item"), F.array().cast("array<int>")).alias("items"),
    )


def _per_user_metrics(
    rows: DataFrame,
    names: list[str],
    ks: list[int],
    n_items: int,
    popularity: np.ndarray,
    n_users_train: int,
) -> DataFrame:
    """Per-user values from :func:`compute_metrics` on batches of whole users."""
    from recforge.metrics import MetricContext, compute_metrics

    depth = max(ks)
    shared = rows.sparkSession.sparkContext.broadcast(popularity.astype(np.float64))

    def measure(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        context = MetricContext(
            n_items=n_items, item_popularity=shared.value, n_users_train=n_users_train
        )
        for batch in batches:
            for group, part in batch.groupby("group", sort=False):
                yield arrow_ready(
                    _measure_block(part, str(group), names, ks, depth, context, compute_metrics)
                )

    return rows.mapInPandas(measure, _PER_USER_SCHEMA)


def _measure_block(
    part: pd.DataFrame,
    group: str,
    names: list[str],
    ks: list[int],
    depth: int,
    context: object,
    compute: object,
) -> pd.DataFrame:
    n = len(part)
    recs = np.full((n, depth), -1, dtype=np.int32)
    for row, items in enumerate(part["items"]):
        got = np.asarray(items, dtype=np.int32)[:depth]
        recs[row, : got.size] = got
    lengths = part["truth_items"].map(len).to_numpy()
    truth = sp.csr_array(
        (
            np.concatenate(part["grades"].map(np.asarray).to_list()).astype(np.float64),
            (np.repeat(np.arange(n), lengths), np.concatenate(part["truth_items"].to_list())),
        ),
        shape=(n, context.n_items),  # type: ignore[attr-defined]
    )
    truth.sort_indices()
    values = compute(recs, truth, ks, names, context)  # type: ignore[operator]
    users = part["user"].to_numpy(dtype=np.int32)
    frames = [
        pd.DataFrame({"group": group, "metric": name, "k": k, "user": users, "value": got})
        for (name, k), got in values.items()
        if isinstance(got, np.ndarray)
    ]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"group": [], "metric": [], "k": [], "user": [], "value": []})
    )


def _list_metrics(rows: DataFrame, names: list[str], ks: list[int], n_items: int) -> list[tuple]:
    """Coverage and gini of the lists of each group (as ``beyond.catalog_coverage`` and
    ``beyond.gini_index`` define them over the whole catalogue)."""
    wanted = [n for n in names if n in LIST_METRICS]
    if not wanted:
        return []
    exposed = rows.select("group", F.posexplode("items").alias("at", "item"))
    out = []
    sizes = {r["group"]: r["count"] for r in rows.groupBy("group").count().collect()}
    for k in ks:
        counts = exposed.filter(F.col("at") < k).groupBy("group", "item").count().toPandas()
        for group, n_users in sizes.items():
            c = counts.loc[counts["group"] == group, "count"].to_numpy(dtype=np.float64)
            full = np.sort(np.concatenate([np.zeros(n_items - c.size), c]))
            for name in wanted:
                if name == "coverage":
                    value = float(c.size / n_items)
                else:
                    i = np.arange(1, n_items + 1, dtype=np.float64)
                    total = full.sum()
                    value = (
                        float(((2.0 * i - n_items - 1.0) * full).sum() / (n_items * total))
                        if total
                        else math.nan
                    )
                out.append((group, name, k, value, math.nan, math.nan, int(n_users)))
    return out


def _normal_ci(mean: float, std: float | None, n: int, confidence: float) -> tuple[float, float]:
    if n < 2 or std is None:
        return math.nan, math.nan
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * std / math.sqrt(n)
    return mean - half, mean + half


def _rating_metrics(
    model: Recommender,
    train: SparkDataset,
    test: SparkDataset,
    evaluated: DataFrame,
    names: list[str],
    confidence: float,
) -> tuple[DataFrame, list[tuple]]:
    """RMSE / MAE over the test interactions of the evaluated users, per group and user."""
    users = train.users.select(F.col("code").alias("user"), F.col("id").alias("user_id"))
    items = train.items.select(F.col("code").alias("item"), F.col("id").alias("item_id"))
    pairs = (
        test.interactions.join(evaluated.select("user", "group"), "user")
        .join(F.broadcast(items), "item")
        .join(users, "user")
        .select("user", "group", "value", F.col("user_id"), F.col("item_id"))
    )
    err = (
        predict(model, pairs, user_column="user_id", item_column="item_id")
        .withColumn("e", F.col("prediction") - F.col("value").cast("double"))
        .cache()
    )
    per_user, aggregates = [], []
    for name in names:
        x: Column = F.col("e") * F.col("e") if name == "rmse" else F.abs(F.col("e"))
        per = err.groupBy("group", "user").agg(F.avg(x).alias("value"))
        if name == "rmse":
            per = per.withColumn("value", F.sqrt("value"))
        per_user.append(
            per.select(
                "group",
                F.lit(name).alias("metric"),
                F.lit(None).cast("int").alias("k"),
                "user",
                "value",
            )
        )
        stats = (
            err.groupBy("group")
            .agg(
                F.avg(x).alias("m"),
                F.stddev_samp(x).alias("s"),
                F.count("*").alias("n"),
                F.countDistinct("user").alias("u"),
            )
            .collect()
        )
        for r in stats:
            low, high = _normal_ci(float(r["m"]), r["s"], int(r["n"]), confidence)
            value = float(r["m"])
            if name == "rmse":
                value = math.sqrt(value)
                if math.isfinite(low):
                    low, high = math.sqrt(max(low, 0.0)), math.sqrt(high)
            aggregates.append((r["group"], name, None, value, low, high, int(r["u"])))
    frame = per_user[0]
    for other in per_user[1:]:
        frame = frame.unionByName(other)
    return frame, aggregates


def evaluate(
    recs: DataFrame,
    train: SparkDataset,
    test: SparkDataset,
    *,
    metrics: Sequence[str] = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate"),
    ks: Sequence[int] = (10,),
    relevance_threshold: float | None = None,
    model: Recommender | None = None,
    confidence: float = 0.95,
) -> SparkEvaluation:
    """Metrics of top-K lists (``user, item, rank``: the output of :func:`recommend`).

    Parameters
    ----------
    recs
        Lists with external ids and 1-based ranks (at least ``max(ks)`` deep); items
        outside the training index are ignored.
    train, test
        The split the lists were made for (sharing one pair of indices).
    metrics
        Ranking (``precision``, ``recall``, ``ndcg``, ``ndcg_graded``, ``map``, ``mrr``,
        ``hit_rate``), beyond-accuracy (``coverage``, ``gini``, ``novelty``,
        ``popularity``, ``serendipity``) and, with ``model``, rating metrics (``rmse``,
        ``mae``). ``diversity`` and ``auc`` need the model's full scores and stay local.
    ks
        Cutoffs.
    relevance_threshold
        Test values at or above it are relevant; ``None``: every positive value.
    model
        The fitted model, for RMSE/MAE from its :meth:`~Recommender.predict`.
    confidence
        Level of the RMSE/MAE intervals.

    Returns
    -------
    SparkEvaluation

    Raises
    ------
    ConfigError
        For an unknown metric, or one that cannot run on Spark.
    DataError
        If ``test`` has no relevant interaction.
    """
    from recforge.evaluation import check_metrics

    names = check_metrics(list(metrics))
    local_only = [n for n in names if n in ("diversity", "auc")]
    if local_only:
        raise ConfigError(
            f"metric {local_only[0]!r} needs the model's full score rows and runs only "
            "locally (recforge.evaluation)"
        )
    cutoffs = sorted({int(k) for k in ks})
    if not cutoffs or cutoffs[0] < 1:
        raise ConfigError(f"ks must hold cutoffs >= 1. Got {list(ks)!r}.")
    truth = _relevant(test, relevance_threshold)
    rows = _user_rows(recs, train, truth, cutoffs[-1]).cache()
    if rows.isEmpty():
        raise DataError(f"{test.name!r} has no relevant test interaction")
    n_items = int(train.items.count())
    counts = train.interactions.groupBy("item").count().toPandas()
    popularity = np.zeros(n_items, dtype=np.float64)
    popularity[counts["item"].to_numpy()] = counts["count"].to_numpy()
    n_users_train = max(int(train.interactions.select("user").distinct().count()), 1)
    per_user_names = [n for n in names if n not in LIST_METRICS and n not in RATING_METRICS]
    per_user = (
        _per_user_metrics(
            rows.select("user", "group", "truth_items", "grades", "items"),
            per_user_names,
            cutoffs,
            n_items,
            popularity,
            n_users_train,
        )
        if per_user_names
        else None
    )
    aggregates = _list_metrics(rows, names, cutoffs, n_items)
    rating = [n for n in names if n in RATING_METRICS]
    if rating and model is not None and model.supports_predict:
        rating_rows, rating_aggs = _rating_metrics(model, train, test, rows, rating, confidence)
        per_user = rating_rows if per_user is None else per_user.unionByName(rating_rows)
        aggregates += rating_aggs
    return _result(train, per_user, aggregates, rows.sparkSession)


def _result(
    train: SparkDataset, per_user: DataFrame | None, aggregates: list[tuple], spark: object
) -> SparkEvaluation:
    agg = pd.DataFrame(
        aggregates, columns=["group", "metric", "k", "value", "ci_low", "ci_high", "n_users"]
    )
    agg["k"] = pd.array(agg["k"].tolist(), dtype="Int64")
    if per_user is None:
        per_user = spark.createDataFrame([], _PER_USER_SCHEMA)  # type: ignore[attr-defined]
    ids = train.users.select(F.col("code").alias("user"), F.col("id").alias("user_id"))
    table = (
        per_user.join(ids, "user")
        .select("group", "metric", "k", F.col("user_id").alias("user"), "value")
        .cache()
    )
    defined = ~F.isnan("value")
    means = (
        table.groupBy("group", "metric", "k")
        .agg(
            F.avg(F.when(defined, F.col("value"))).alias("value"),
            F.count(F.when(defined, 1)).alias("n_users"),
        )
        .toPandas()
    )
    means["k"] = pd.array(means["k"].tolist(), dtype="Int64")
    rated = set(zip(agg["group"], agg["metric"], strict=True))
    means = means[
        [(g, m) not in rated for g, m in zip(means["group"], means["metric"], strict=True)]
    ]
    summary = pd.concat(
        [means, agg[["group", "metric", "k", "value", "n_users"]]], ignore_index=True
    ).sort_values(["group", "metric", "k"], ignore_index=True)
    return SparkEvaluation(per_user=table, aggregates=agg, summary=summary)
