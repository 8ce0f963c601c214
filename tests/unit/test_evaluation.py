"""Tests of :func:`recforge.evaluation.evaluate` against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.evaluation import DEFAULT_METRICS, EvaluationResult, evaluate
from recforge.exceptions import ConfigError, DataError
from recforge.models.base import Recommendations
from recforge.models.bias import BiasedBaseline
from recforge.models.popular import MostPopular, Random
from recforge.split import Split, random_split
from recforge.testing import toy_dataset

IDCG2 = 1.0 + 1.0 / math.log2(3.0)

# (user, item, value, part). Item codes follow first appearance: item n has code n - 1.
# Train popularity: item 1: 3, item 2: 2, item 3: 1, item 4: 1, item 5: 0.
ROWS = [
    ("a", 1, 4.0, "train"),
    ("a", 2, 3.0, "train"),
    ("b", 1, 5.0, "train"),
    ("b", 3, 2.0, "train"),
    ("d", 1, 4.0, "train"),
    ("d", 2, 4.0, "train"),
    ("d", 4, 1.0, "train"),
    ("a", 3, 5.0, "test"),
    ("a", 5, 2.0, "test"),
    ("b", 2, 4.0, "test"),
    ("b", 4, 1.0, "test"),
    ("c", 1, 4.0, "test"),  # c has no training interactions: a cold user
    ("c", 5, 5.0, "test"),
]


@pytest.fixture
def hand_split() -> Split:
    frame = pd.DataFrame(ROWS, columns=["user", "item", "value", "part"])
    ds = Dataset.from_frame(frame, value="value", name="hand")
    is_test = (frame["part"] == "test").to_numpy()
    return Split(train=ds.subset(~is_test), test=ds.subset(is_test), valid=None, name="hand")


def value(result: EvaluationResult, model: str, metric: str, k: int | None, group: str) -> float:
    s = result.summary
    rows = s[(s["model"] == model) & (s["metric"] == metric) & (s["group"] == group)]
    rows = rows[rows["k"].isna()] if k is None else rows[rows["k"] == k]
    assert len(rows) == 1, rows
    return float(rows["value"].iloc[0])


class SpyPopular(MostPopular):
    """MostPopular that records the datasets it is fitted on (in ``fitted_on``)."""

    def fit(self, dataset: Dataset) -> SpyPopular:
        vars(self).setdefault("fitted_on", []).append(dataset)
        return super().fit(dataset)


class ReversedPopular(MostPopular):
    """MostPopular whose ``recommend`` re-ranks its list worst-first (a custom re-ranker)."""

    def recommend(self, users: Any, k: int = 10, **kwargs: Any) -> Recommendations:
        recs = super().recommend(users, k=self.n_items, **kwargs)
        order = np.argsort(-np.where(recs.item_codes >= 0, np.arange(recs.k), -1), axis=1)
        codes = np.take_along_axis(recs.item_codes, order, axis=1)[:, :k]
        items = np.take_along_axis(recs.items, order, axis=1)[:, :k]
        scores = np.take_along_axis(recs.scores, order, axis=1)[:, :k]
        lengths = np.minimum(recs.lengths, k)
        return Recommendations(recs.users, items, scores, lengths, codes, recs.reasons)


# --------------------------------------------------------------------------- values
def test_hand_computed_known_and_cold(hand_split: Split) -> None:
    metrics = ["precision", "recall", "ndcg", "ndcg_graded", "mrr", "hit_rate", "coverage"]
    result = evaluate(MostPopular(), hand_split, metrics=metrics, k=2, n_bootstrap=0)
    # a: seen {1, 2}; list [3, 4]; relevant {3, 5} -> 1 hit at rank 1
    # b: seen {1, 3}; list [2, 4]; relevant {2, 4} -> 2 hits
    assert value(result, "popular", "precision", 2, "known") == pytest.approx(0.75)
    assert value(result, "popular", "recall", 2, "known") == pytest.approx(0.75)
    assert value(result, "popular", "ndcg", 2, "known") == pytest.approx((1 / IDCG2 + 1) / 2)
    graded_a = 5.0 / (5.0 + 2.0 / math.log2(3.0))
    assert value(result, "popular", "ndcg_graded", 2, "known") == pytest.approx(
        (graded_a + 1.0) / 2
    )
    assert value(result, "popular", "mrr", 2, "known") == pytest.approx(1.0)
    assert value(result, "popular", "coverage", 2, "known") == pytest.approx(3 / 5)
    # c is cold: popularity fallback [1, 2], nothing excluded; relevant {1, 5}
    assert value(result, "popular", "precision", 2, "cold") == pytest.approx(0.5)
    assert value(result, "popular", "ndcg", 2, "cold") == pytest.approx(1 / IDCG2)
    assert result.settings["n_cold_users"] == 1
    assert result.settings["n_test_users"] == 3

    per = result.per_user
    prec = per[(per["metric"] == "precision") & (per["group"] == "known")]
    assert dict(zip(prec["user"], prec["value"], strict=True)) == {"a": 0.5, "b": 1.0}
    cold = per[per["group"] == "cold"]
    assert set(cold["user"]) == {"c"}


def test_relevance_threshold(hand_split: Split) -> None:
    result = evaluate(
        MostPopular(),
        hand_split,
        metrics=["precision", "recall"],
        k=2,
        relevance_threshold=3,
        n_bootstrap=0,
    )
    # relevant: a {3}, b {2}; lists [3, 4] and [2, 4]
    assert value(result, "popular", "precision", 2, "known") == pytest.approx(0.5)
    assert value(result, "popular", "recall", 2, "known") == pytest.approx(1.0)
    with pytest.raises(DataError, match="no relevant test interaction with value >= 9"):
        evaluate(MostPopular(), hand_split, k=2, relevance_threshold=9)


def test_rating_metrics_only_for_predicting_models(hand_split: Split) -> None:
    bias = BiasedBaseline()
    result = evaluate(
        {"pop": MostPopular(), "bias": bias},
        hand_split,
        metrics=["rmse", "mae", "precision"],
        k=2,
        n_bootstrap=0,
    )
    assert set(result.summary[result.summary["metric"] == "rmse"]["model"]) == {"bias"}
    test = hand_split.test
    known = test.user != test.users.codes(["c"])[0]
    pred = bias.predict(test.users.ids_of(test.user[known]), test.items.ids_of(test.item[known]))
    err = pred - test.value[known]
    assert value(result, "bias", "rmse", None, "known") == pytest.approx(
        float(np.sqrt(np.mean(err**2))), rel=1e-6
    )
    assert value(result, "bias", "mae", None, "known") == pytest.approx(
        float(np.mean(np.abs(err))), rel=1e-6
    )
    assert value(result, "bias", "rmse", None, "cold") > 0


def test_auc_in_unit_interval(hand_split: Split) -> None:
    result = evaluate(MostPopular(), hand_split, metrics=["auc"], k=2, n_bootstrap=0)
    auc = value(result, "popular", "auc", None, "known")
    # a: eligible {3, 4, 5}, scores 1, 1, 0; relevant {3, 5}: pairs (3,4)=.5, (5,4)=0 -> .25
    # b: eligible {2, 4, 5}, scores 2, 1, 0; relevant {2, 4}: (2,5)=1, (4,5)=1 -> 1
    assert auc == pytest.approx((0.25 + 1.0) / 2)


def test_custom_recommend_is_honoured(hand_split: Split) -> None:
    result = evaluate(ReversedPopular(), hand_split, metrics=["precision"], k=2, n_bootstrap=0)
    # a: eligible by popularity [3, 4, 5] reversed -> [5, 4]: hit 5; b: [2, 4, 5] -> [5, 4]: hit 4
    assert value(result, "popular", "precision", 2, "known") == pytest.approx(0.5)
    per = result.per_user[result.per_user["group"] == "known"]
    assert dict(zip(per["user"], per["value"], strict=True)) == {"a": 0.5, "b": 0.5}


# --------------------------------------------------------------------------- protocol
def test_fit_sees_exactly_the_training_part(hand_split: Split) -> None:
    spy = SpyPopular()
    evaluate(spy, hand_split, k=2, n_bootstrap=0)
    assert len(spy.fitted_on) == 1
    assert spy.fitted_on[0] is hand_split.train
    assert spy.seen_matrix().nnz == len(hand_split.train)


def test_models_compared_and_named() -> None:
    split = random_split(toy_dataset(), 0.2, per_user=True, rng=0)
    result = evaluate([MostPopular(), MostPopular(), Random()], split, k=(5, 10), n_bootstrap=50)
    assert result.models == ["popular", "popular-2", "random"]
    table = result.table(k=10)
    assert list(table.index) == ["popular", "popular-2", "random"]
    assert "ndcg@10" in table.columns
    assert "ndcg@5" not in table.columns
    assert table.loc["popular", "ndcg@10"] == table.loc["popular-2", "ndcg@10"]
    assert table.loc["popular", "ndcg@10"] > table.loc["random", "ndcg@10"]
    assert set(result.timings) == {"popular", "popular-2", "random"}
    assert all(t["recommend_seconds"] >= 0 for t in result.timings.values())
    both = result.table()
    assert {"ndcg@5", "ndcg@10"} <= set(both.columns)
    with_ci = result.table(k=10, ci=True)
    assert with_ci.loc["popular", "ndcg@10 ci"].startswith("[")
    known = result.summary[
        (result.summary["group"] == "known") & (result.summary["metric"] == "precision")
    ]
    assert (known["ci_low"] <= known["value"]).all()
    assert (known["value"] <= known["ci_high"]).all()
    assert set(result.summary["metric"]) == set(DEFAULT_METRICS)


def test_prefitted_models(hand_split: Split) -> None:
    model = MostPopular().fit(hand_split.train)
    a = evaluate(model, hand_split, k=2, fit=False, n_bootstrap=0)
    b = evaluate(MostPopular(), hand_split, k=2, n_bootstrap=0)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    assert a.timings["popular"]["fit_seconds"] == 0.0
    with pytest.raises(ConfigError, match="not fitted"):
        evaluate(MostPopular(), hand_split, fit=False)
    other = MostPopular().fit(toy_dataset())
    with pytest.raises(ConfigError, match="other id indices"):
        evaluate(other, hand_split, fit=False)


def test_json_round_trip(hand_split: Split, tmp_path: Path) -> None:
    result = evaluate(BiasedBaseline(), hand_split, metrics=["ndcg", "rmse"], k=2)
    path = tmp_path / "r.json"
    text = result.to_json(str(path), per_user=True)
    data = json.loads(path.read_text())
    assert json.loads(text) == data
    assert data["split"] == "hand"
    assert data["ks"] == [2]
    assert {r["metric"] for r in data["summary"]} == {"ndcg", "rmse"}
    rmse_rows = [r for r in data["summary"] if r["metric"] == "rmse"]
    assert all(r["k"] is None for r in rmse_rows)
    assert len(data["per_user"]) == len(result.per_user)
    assert "fit_seconds" in data["timings"]["bias"]
    assert "EvaluationResult(" in repr(result)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["ndgc"]}, "did you mean 'ndcg'"),
        ({"metrics": []}, "metrics is empty"),
        ({"k": 0}, "k must be"),
        ({"k": []}, "k must be"),
        ({"n_bootstrap": -1}, "n_bootstrap"),
        ({"confidence": 1.5}, "confidence"),
        ({"relevance_threshold": "4"}, "relevance_threshold"),
    ],
)
def test_bad_settings(hand_split: Split, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        evaluate(MostPopular(), hand_split, **kwargs)  # type: ignore[arg-type]


def test_bad_models_and_split(hand_split: Split) -> None:
    with pytest.raises(ConfigError, match="models is empty"):
        evaluate([], hand_split)
    with pytest.raises(ConfigError, match="not a recforge Recommender"):
        evaluate({"x": object()}, hand_split)  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="split must be"):
        evaluate(MostPopular(), hand_split.train)  # type: ignore[arg-type]
    result = evaluate(MostPopular(), hand_split, k=2, n_bootstrap=0)
    with pytest.raises(ConfigError, match="k=5 was not evaluated"):
        result.table(k=5)
    with pytest.raises(ConfigError, match="group"):
        result.table(group="warm")


# --------------------------------------------------------------------------- real data
@pytest.mark.slow
@pytest.mark.realdata
def test_movielens_100k_personalised_beats_baselines(ml100k_dir: Path) -> None:
    from recforge.models.knn import ItemKNN
    from recforge.split import temporal_split

    ds = Dataset.from_csv(
        ml100k_dir / "ratings.csv",
        user="user_id",
        item="item_id",
        value="rating",
        time="timestamp",
    )
    split = temporal_split(ds, per_user_last=0.2)
    result = evaluate(
        {"popular": MostPopular(), "random": Random(), "itemknn": ItemKNN(n_neighbors=50)},
        split,
        metrics=["ndcg", "recall", "coverage"],
        k=10,
        n_bootstrap=200,
    )
    table = result.table(k=10)
    assert result.settings["n_cold_users"] == 0
    assert result.settings["n_test_users"] == 943
    assert table.loc["itemknn", "ndcg@10"] > table.loc["popular", "ndcg@10"]
    assert table.loc["popular", "ndcg@10"] > 5 * table.loc["random", "ndcg@10"]
    assert table.loc["random", "coverage@10"] > table.loc["popular", "coverage@10"]
    known = result.summary[result.summary["metric"] == "ndcg"]
    assert (known["ci_low"] < known["value"]).all()
    assert (known["value"] < known["ci_high"]).all()
