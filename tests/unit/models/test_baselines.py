"""Baselines: contract, closed-form biases, popularity decay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.exceptions import ConfigError, UnsupportedCapabilityError
from recforge.models.bias import BiasedBaseline
from recforge.models.popular import MostPopular, Random
from recforge.testing import RecommenderContract


class TestMostPopular(RecommenderContract):
    model = MostPopular
    configs = [{}, {"half_life_days": 1.0}]


class TestRandom(RecommenderContract):
    model = Random
    configs = [{"rng": 3}]


class TestBiasedBaseline(RecommenderContract):
    model = BiasedBaseline
    configs = [{"reg_user": 5.0, "reg_item": 2.0}]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"user": [1, 1, 2, 2, 3], "item": ["a", "b", "a", "c", "a"], "r": [5.0, 3.0, 4.0, 2.0, 3.0]}
    )


def test_bias_unregularised_one_sweep_matches_hand_computation() -> None:
    ds = Dataset.from_frame(_frame(), value="r")
    m = BiasedBaseline(reg_user=0.0, reg_item=0.0, iterations=1).fit(ds)
    mu = 17.0 / 5
    assert m.global_mean_ == pytest.approx(mu)
    bi = {"a": (5 + 4 + 3) / 3 - mu, "b": 3 - mu, "c": 2 - mu}
    bu = {1: ((5 - mu - bi["a"]) + (3 - mu - bi["b"])) / 2}
    assert m.item_bias_[ds.items.codes(["a"])[0]] == pytest.approx(bi["a"], rel=1e-5)
    assert m.user_bias_[ds.users.codes([1])[0]] == pytest.approx(bu[1], rel=1e-5)


def test_bias_predict_unknown_falls_back_to_known_parts() -> None:
    ds = Dataset.from_frame(_frame(), value="r")
    m = BiasedBaseline().fit(ds)
    est = m.predict([1, 99, 99], ["zzz", "a", "zzz"])
    mu = m.global_mean_
    assert est[0] == pytest.approx(mu + m.user_bias_[0])
    assert est[1] == pytest.approx(mu + m.item_bias_[ds.items.codes(["a"])[0]])
    assert est[2] == pytest.approx(mu)


def test_most_popular_order_and_decay() -> None:
    frame = pd.DataFrame(
        {
            "user": [1, 2, 3, 4, 5],
            "item": ["old", "old", "old", "new", "new"],
            "t": [0, 0, 0, 86400 * 100, 86400 * 100],
        }
    )
    ds = Dataset.from_frame(frame, time="t")
    plain = MostPopular().fit(ds)
    assert plain.recommend([5], k=1, exclude_seen=False).items[0, 0] == "old"
    decayed = MostPopular(half_life_days=10.0).fit(ds)
    assert decayed.recommend([5], k=1, exclude_seen=False).items[0, 0] == "new"


def test_param_validation_message() -> None:
    with pytest.raises(ConfigError, match=r"'reg_user' parameter of BiasedBaseline must be"):
        BiasedBaseline(reg_user=-1.0)


def test_unsupported_capability() -> None:
    ds = Dataset.from_frame(_frame(), value="r")
    with pytest.raises(UnsupportedCapabilityError, match="MostPopular does not support predict"):
        MostPopular().fit(ds).predict([1], ["a"])


def test_recommend_pads_when_few_items_eligible() -> None:
    ds = Dataset.from_frame(_frame(), value="r")
    recs = MostPopular().fit(ds).recommend([1], k=3)
    assert recs.lengths.tolist() == [1]
    assert recs.items[0, 0] == "c"
    assert np.isnan(recs.scores[0, 1])
    assert len(recs.to_frame()) == 1


def test_inherited_declarations_are_validated() -> None:
    """A model whose parameters are declared by a shared base still validates them."""
    from recforge.models.knn import UserKNN

    with pytest.raises(ConfigError, match=r"'shrink' parameter of UserKNN"):
        UserKNN(shrink=-1.0)
    assert UserKNN(n_neighbors=7).get_params()["n_neighbors"] == 7


def test_seen_exclusion_follows_a_refit() -> None:
    """The converted exclusion arrays are cached per seen matrix, never reused after a refit."""
    model = MostPopular()
    first = pd.DataFrame({"user": [1, 1, 2, 3], "item": ["a", "b", "a", "c"]})
    model.fit(Dataset.from_frame(first))
    assert set(model.recommend([1], k=3).items[0, :1]) == {"c"}
    second = pd.DataFrame({"user": [1, 2, 2, 3], "item": ["c", "a", "b", "a"]})
    model.fit(Dataset.from_frame(second))
    assert model.recommend([1], k=2).items[0].tolist() == ["a", "b"]


def test_baseline_and_popularity_explanations_add_up_to_their_scores() -> None:
    from recforge.testing import toy_dataset

    ds = toy_dataset(explicit=True)
    for model in (BiasedBaseline().fit(ds), MostPopular().fit(ds)):
        item = model.recommend(["u0"], k=1).items[0, 0]
        e = model.explain("u0", item)
        code = model.items_.codes([item])[0]
        assert e.kind == "features"
        assert e.score == pytest.approx(float(model.score(["u0"])[0, code]), rel=1e-6)
        assert sum(w for _, w in e.contributions) == pytest.approx(e.score, rel=1e-6)
