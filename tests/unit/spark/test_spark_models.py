"""Batch scoring, metrics and MLlib ALS on Spark against the local recforge reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.evaluation import EvaluationProtocol, evaluate_model
from recforge.models import Recommender
from recforge.models.als import ALS
from recforge.models.bias import BiasedBaseline
from recforge.split import temporal_split

pytestmark = [pytest.mark.spark, pytest.mark.slow]

METRICS = [
    "ndcg",
    "recall",
    "precision",
    "map",
    "mrr",
    "hit_rate",
    "coverage",
    "gini",
    "novelty",
    "popularity",
    "rmse",
    "mae",
]


def _data() -> Dataset:
    gen = np.random.default_rng(3)
    n = 500
    frame = pd.DataFrame(
        {
            "user": [f"u{u}" for u in gen.integers(0, 30, n)],
            "item": gen.zipf(1.5, n) % 50,
            "rating": gen.integers(1, 6, n).astype(float),
            "ts": gen.integers(0, 10_000, n),
        }
    )
    ds = Dataset.from_frame(frame, value="rating", time="ts")
    from recforge.data.prepare import deduplicate

    return deduplicate(ds)[0]


def test_recommend_and_evaluate_match_local(spark: Any, tmp_path: Path) -> None:
    from recforge import spark as rs

    ds = _data()
    split = temporal_split(ds, per_user_last=2)
    ssplit = rs.temporal_split(rs.from_dataset(spark, ds), per_user_last=2)
    model = BiasedBaseline().fit(split.train)
    model.save(tmp_path / "bias.zip")
    users = np.unique(split.test.users.ids_of(split.test.user))
    users_df = spark.createDataFrame(pd.DataFrame({"user_id": users}))

    recs = rs.recommend(tmp_path / "bias.zip", users_df, k=5, path=str(tmp_path / "recs"))
    got = recs.toPandas().sort_values(["user", "rank"], ignore_index=True)
    want = model.recommend(users, 5).to_frame().sort_values(["user", "rank"], ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert (tmp_path / "recs").is_dir()

    result = rs.evaluate(recs, ssplit.train, ssplit.test, metrics=METRICS, ks=[3, 5], model=model)
    local = evaluate_model(
        model, split.train, split.test, EvaluationProtocol(metrics=tuple(METRICS), ks=(3, 5))
    )
    key = ["group", "metric", "k", "user"]
    mine = result.per_user.toPandas().sort_values(key, ignore_index=True)
    ref = local.per_user.drop(columns="model").sort_values(key, ignore_index=True)
    assert len(mine) == len(ref) > 0
    assert set(ref["metric"]) == {
        "ndcg",
        "recall",
        "precision",
        "map",
        "mrr",
        "hit_rate",
        "novelty",
        "popularity",
        "rmse",
        "mae",
    }
    pd.testing.assert_frame_equal(mine[key], ref[key], check_dtype=False)
    np.testing.assert_allclose(mine["value"], ref["value"], rtol=0, atol=1e-9)
    for _, row in local.aggregates.iterrows():
        k = None if pd.isna(row["k"]) else int(row["k"])
        assert result.value(row["metric"], k) == pytest.approx(row["value"], abs=1e-9), row
        sel = result.aggregates[(result.aggregates["metric"] == row["metric"])]
        sel = sel[sel["k"].isna()] if k is None else sel[sel["k"] == k]
        assert sel["n_users"].iloc[0] == row["n_users"]
        if row["metric"] in ("rmse", "mae"):
            assert sel["ci_low"].iloc[0] == pytest.approx(row["ci_low"], abs=1e-9)
    assert result.value("ndcg", 5) == pytest.approx(local.value("ndcg", 5), abs=1e-9)

    from recforge.exceptions import ConfigError, DataError

    with pytest.raises(ConfigError, match="diversity"):
        rs.evaluate(recs, ssplit.train, ssplit.test, metrics=["diversity"])
    with pytest.raises(DataError, match="users are missing column 'user_id '"):
        rs.recommend(model, users_df, user_column="user_id ")


def test_fit_als_exports_a_recforge_als(spark: Any, tmp_path: Path) -> None:
    from recforge import spark as rs

    ds = _data()
    sds = rs.from_dataset(spark, ds)
    model = rs.fit_als(sds, factors=4, iterations=3, reg=0.1, alpha=5.0)
    assert isinstance(model, ALS)
    assert model.get_params()["iterations"] == 3
    assert model.user_factors_.shape == (ds.n_users, 4)
    assert np.abs(model.item_factors_).sum() > 0
    users = ds.users.ids[:5]
    recs = model.recommend(users, 5)
    seen = ds.matrix().toarray() > 0
    for row, user in enumerate(ds.users.codes(users)):
        assert not seen[user, recs.item_codes[row]].any()  # seen items excluded
    path = model.save(tmp_path / "mllib-als.zip")
    loaded = Recommender.load(path)
    assert isinstance(loaded, ALS)
    np.testing.assert_array_equal(loaded.recommend(users, 5).item_codes, recs.item_codes)
    scores = model.user_factors_[:5] @ model.item_factors_.T
    np.testing.assert_allclose(model.score_users(np.arange(5)), scores, rtol=1e-6)
    with pytest.raises(Exception, match="item_factors must have shape"):
        ALS.from_factors(ds, model.user_factors_, model.item_factors_[:3])
