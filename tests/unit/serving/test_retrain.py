"""Retrain: challenger vs active on the newest events, promotion gate, recorded decisions."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.exceptions import ConfigError
from recforge.models.popular import MostPopular, Random
from recforge.registry import ModelRegistry
from recforge.serving.retrain import combine, ranking_metric, retrain
from recforge.serving.store import Event, EventStore

from .conftest import catalog_dataset, content_model


@pytest.fixture
def store(tmp_path):
    s = EventStore(f"sqlite:///{tmp_path / 'ev.db'}")
    yield s
    s.close()


def _genre_events(n_users: int = 40, t0: int = 1_800_000_000) -> list[Event]:
    """New events that follow each user's genre taste (item i has genre (i-1) % 4)."""
    evs = []
    for u in range(n_users):
        liked = u % 4
        for j, item in enumerate(range(liked + 1, 25, 4)):
            evs.append(Event(f"g{u}-{item}", f"u{u}", str(item), "rating", 5.0, t0 + 100 * u + j))
    return evs


def test_ranking_metric_matches_hand_computation(dataset):
    model = MostPopular().fit(dataset)
    import pandas as pd

    train = dataset.to_frame()
    top = model.recommend(["u0"], k=2).items[0].tolist()
    test = pd.DataFrame({"user": ["u0"], "item": [top[1]], "value": [1.0], "time": [0]})
    score, n = ranking_metric(model, train, test, "ndcg@2")
    assert n == 1
    assert score == pytest.approx(1 / np.log2(3))
    rec, _ = ranking_metric(model, train, test, "recall@1")
    assert rec == 0.0


def test_better_challenger_is_promoted_with_lineage(tmp_path, store, dataset):
    reg = ModelRegistry(tmp_path / "reg")
    active = reg.publish(Random(rng=1).fit(dataset), promote=True)
    store.add_events(_genre_events())
    challenger = content_model(dataset).clone()
    d = retrain(reg, store, base=dataset, challenger=challenger, metric="ndcg@5", holdout=0.3)
    assert d.promoted, d.reason
    assert d.challenger_score > d.active_score
    assert reg.active_version() == d.new_version
    info = reg.info(d.new_version)
    assert info.parent == active.version
    assert info.extra["events_seq"] == store.max_seq()
    assert info.metrics["ndcg@5"] == pytest.approx(d.challenger_score)
    assert reg.decisions()[-1]["promoted"] is True


def test_worse_challenger_is_not_promoted(tmp_path, store, dataset):
    reg = ModelRegistry(tmp_path / "reg")
    ds = catalog_dataset()
    reg.publish(content_model(ds), promote=True)
    store.add_events(_genre_events())
    d = retrain(reg, store, base=ds, challenger=Random(rng=3), metric="ndcg@5", holdout=0.3)
    assert not d.promoted
    assert "does not beat" in d.reason
    assert reg.active_version() == "v000001"
    assert [v.version for v in reg.list()] == ["v000001"]
    assert reg.decisions()[-1]["reason"] == d.reason


def test_margin_blocks_equal_models(tmp_path, store, dataset):
    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(content_model(dataset), promote=True)
    store.add_events(_genre_events())
    d = retrain(reg, store, base=dataset, metric="ndcg@5", holdout=0.3, margin=0.0)
    assert d.challenger.startswith("ContentBased(")
    assert not d.promoted  # same model, same data: not strictly better


def test_combine_unifies_id_types(dataset):
    import pandas as pd

    ev = pd.DataFrame({"user": ["u1"], "item": ["3"], "value": [1.0], "time": [5]})
    out = combine(dataset, ev)
    assert out["item"].map(type).nunique() == 1
    assert len(out) == dataset.n_interactions + 1


def test_invalid_arguments(tmp_path, store):
    reg = ModelRegistry(tmp_path / "reg")
    with pytest.raises(ConfigError, match="metric"):
        retrain(reg, store, metric="auc")
    with pytest.raises(ConfigError, match="holdout"):
        retrain(reg, store, holdout=0.95)
    with pytest.raises(ConfigError, match="no active model"):
        retrain(reg, store)
