"""Retrain: challenger vs active on the newest events, promotion gate, recorded decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
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
    from recforge.split import leave_one_out

    split = leave_one_out(dataset, rng=0)
    model = MostPopular().fit(split.train)
    score, n, per_user = ranking_metric(model, split.train, split.test, "ndcg@2")
    assert n == len(per_user) > 0
    # by hand: the held-out item's rank in each user's popularity list (seen items excluded)
    expected = []
    for user in per_user.index:
        recs = model.recommend([user], k=2).items[0].tolist()
        code = split.test.users.codes([user])[0]
        held = split.test.items.ids_of(split.test.item[split.test.user == code])
        hits = [1.0 / np.log2(r + 2) for r, item in enumerate(recs) if item in set(held)]
        expected.append(sum(hits))
    np.testing.assert_allclose(per_user.to_numpy(), expected)
    assert score == pytest.approx(np.mean(expected))
    rec, _, _ = ranking_metric(model, split.train, split.test, "recall@1")
    assert 0.0 <= rec <= 1.0


def test_gate_agrees_with_evaluate(dataset):
    """The gate's per-user values are the ones evaluate() reports (one engine)."""
    from recforge.evaluation import evaluate
    from recforge.split import leave_one_out

    split = leave_one_out(dataset, rng=0)
    model = content_model(split.train)
    _, _, gate = ranking_metric(model, split.train, split.test, "ndcg@5")
    result = evaluate({"m": model}, split, metrics=["ndcg"], k=5, fit=False, n_bootstrap=0)
    pu = result.per_user
    ev = pu[(pu["group"] == "known") & (pu["metric"] == "ndcg")].set_index("user")["value"]
    pd.testing.assert_series_equal(gate.sort_index(), ev.sort_index(), check_names=False)


def test_incumbent_trained_on_the_window_is_compared_like_with_like(tmp_path, store, dataset):
    """An incumbent that has seen the held-out window must not lose by construction.

    It is refitted (its recipe) on the same older data as the challenger; scored as published,
    every held-out item would be one of its 'seen' items, so it would score 0 and a worse
    challenger would be promoted.
    """
    store.add_events(_genre_events())
    everything = Dataset.from_frame(
        combine(dataset, store.events_frame()),
        value="value",
        time="time",
        item_attributes=dataset.item_attributes.set_axis(dataset.item_attributes.index.astype(str)),
    )
    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(content_model(everything), promote=True)
    d = retrain(reg, store, base=dataset, challenger=MostPopular(), metric="ndcg@5", holdout=0.3)
    assert d.active_score > d.challenger_score, d.reason
    assert not d.promoted
    assert reg.active_version() == "v000001"
    assert d.ci_low is not None
    assert d.p_value is not None


def test_too_few_users_never_promote(tmp_path, store, dataset):
    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(Random(rng=1).fit(dataset), promote=True)
    store.add_events(_genre_events(n_users=40))
    d = retrain(
        reg,
        store,
        base=dataset,
        challenger=content_model(dataset).clone(),
        metric="ndcg@5",
        holdout=0.3,
        min_users=10_000,
    )
    assert not d.promoted
    assert "too few" in d.reason
    assert d.min_users == 10_000


def test_a_version_promoted_during_the_retrain_is_not_overwritten(tmp_path, store, dataset):
    class Racing(ModelRegistry):
        """A registry in which someone promotes another version while the retrain runs."""

        calls = -1  # counting starts once the race is on

        def active_version(self) -> str | None:
            if Racing.calls < 0:
                return super().active_version()
            Racing.calls += 1
            return "v000001" if Racing.calls == 1 else "v000002"

    reg = Racing(tmp_path / "reg")
    reg.publish(Random(rng=1).fit(dataset), promote=True)
    ModelRegistry(tmp_path / "reg").publish(Random(rng=2).fit(dataset), promote=False)
    Racing.calls = 0
    store.add_events(_genre_events())
    d = retrain(
        reg, store, base=dataset, challenger=content_model(dataset).clone(), metric="ndcg@5",
        holdout=0.3, min_users=5,
    )  # fmt: skip
    assert not d.promoted
    assert "changed during the retrain" in d.reason
    assert [v.version for v in ModelRegistry(tmp_path / "reg").list()] == ["v000001", "v000002"]


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
