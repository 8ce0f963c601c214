"""Every registered model explains its scores, or declares in words why it cannot."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.exceptions import UnsupportedCapabilityError
from recforge.models import MODELS, Explanation, model_class
from recforge.models.hybrid import Blend
from recforge.models.knn import UserKNN
from recforge.models.popular import Random
from recforge.testing import toy_dataset


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_explains_or_gives_a_reason(name: str) -> None:
    cls = model_class(name)
    if cls.supports_explain:
        assert cls.explain_unavailable() is None
    else:
        reason = cls.explain_unavailable()
        assert cls.explain_unsupported_reason, f"{name} declares no reason"
        assert reason is not None
        assert reason.startswith(f"{cls.__name__} does not explain")


def test_userknn_neighbour_terms_add_up_to_the_score() -> None:
    data = toy_dataset()
    model = UserKNN(n_neighbors=7).fit(data)
    scores = model.score_users(np.arange(3))
    for u in range(3):
        user = data.users.ids[u]
        for i in np.flatnonzero(scores[u] != 0)[:6]:
            e = model.explain(user, data.items.ids[i])
            assert e.kind == "users"
            assert e.score == pytest.approx(float(scores[u, i]), rel=1e-5)
            assert sum(w for _, w in e.contributions) == pytest.approx(e.score, rel=1e-5)
            # the neighbours named are users with the item, among the user's 7 neighbours
            neighbours = set(data.users.ids_of(model.similarity_[[u]].indices).tolist())
            assert {c for c, _ in e.contributions} <= neighbours
            assert 0 < len(e.contributions) <= 7


def test_userknn_explanation_closed_form() -> None:
    # two users share item a; u2 also has b: u1's score of b is s(u1, u2) * 1
    import pandas as pd

    from recforge.data import Dataset

    frame = pd.DataFrame({"user": ["u1", "u2", "u2"], "item": ["a", "a", "b"]})
    model = UserKNN(binary=True).fit(Dataset.from_frame(frame))
    e = model.explain("u1", "b")
    cos = 1.0 / np.sqrt(2.0)
    assert e.contributions == [("u2", pytest.approx(cos))]
    assert e.score == pytest.approx(cos)


@pytest.mark.parametrize(
    "extra",
    [{}, {"cold_item_member": 1}, {"fallback": 0, "min_user_interactions": 1000}],
    ids=["plain", "cold-item-rule", "fallback-rule"],
)
def test_blend_member_terms_add_up_to_the_blended_score(extra: dict) -> None:
    full = toy_dataset()
    data = full.subset(full.item != 0)  # item 0 is cold: no training interaction
    blend = Blend(
        members=[{"model": "popular"}, {"model": "userknn"}, {"model": "random"}],
        weights=[0.3, 0.5, 0.2],
        **extra,
    ).fit(data)
    assert blend.cold_items_.tolist() == [0]
    scores = blend.score_users(np.arange(2))
    for u in range(2):
        for i in (0, 5, 17):
            e = blend.explain(data.users.ids[u], data.items.ids[i])
            assert e.kind == "members"
            assert e.score == pytest.approx(float(scores[u, i]), abs=1e-5)
            assert sum(w for _, w in e.contributions) == pytest.approx(e.score, abs=1e-5)
            labels = [label for label, _ in e.parts]
            assert labels == ["member 0 (popular)", "member 1 (userknn)", "member 2 (random)"]
            popular, knn, rnd = (p for _, p in e.parts)
            assert isinstance(popular, Explanation)
            assert isinstance(knn, Explanation)
            assert knn.score == pytest.approx(
                float(blend.members_[1].score_users(np.array([u]))[0, i]), rel=1e-5
            )
            assert isinstance(rnd, str)
            assert "pseudo-random" in rnd
            doc = e.to_dict()
            assert doc["parts"][2] == {"label": "member 2 (random)", "unavailable": rnd}
    first = blend.explain(data.users.ids[0], data.items.ids[0]).contributions
    if "fallback" in extra:
        warm = blend.explain(data.users.ids[0], data.items.ids[5]).contributions
        assert len(warm) == 1
        assert "alone" in warm[0][0]
    elif "cold_item_member" in extra:
        assert any("cold" in label for label, _ in first)


def test_blend_explains_after_save_and_load(tmp_path) -> None:
    from recforge.models import Recommender

    data = toy_dataset()
    blend = Blend(members=[{"model": "popular"}, {"model": "itemknn"}], weights=[0.5, 0.5])
    blend.fit(data)
    again = Recommender.load(blend.save(tmp_path / "blend"))
    assert again.explain("u0", data.items.ids[3]) == blend.explain("u0", data.items.ids[3])


def test_random_raises_its_reason() -> None:
    model = Random().fit(toy_dataset())
    with pytest.raises(UnsupportedCapabilityError, match="pseudo-random numbers"):
        model.explain("u0", model.items_.ids[0])
