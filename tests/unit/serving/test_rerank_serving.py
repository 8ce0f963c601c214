"""Diversity re-ranking for every served model, and the reason when there is no explanation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recforge.models import model_class
from recforge.models.rerank import mmr, similarity_vectors
from recforge.registry import ModelRegistry
from recforge.serving.app import create_app

from .conftest import catalog_dataset
from .test_app import W, make_settings


def _serve(tmp_path: Path, name: str, **params: object) -> tuple[TestClient, object]:
    ds = catalog_dataset()
    model = model_class(name)(**params).fit(ds)
    reg = ModelRegistry(tmp_path / f"reg-{name}")
    reg.publish(model, promote=True)
    app = create_app(make_settings(tmp_path, reg), background=False)
    return TestClient(app), model


@pytest.mark.parametrize("name", ["popular", "bias", "random", "blend"])
def test_diversity_works_for_models_without_item_vectors(tmp_path: Path, name: str) -> None:
    with_params = {"blend": {"members": [{"model": "popular"}, {"model": "bias"}]}}
    client, model = _serve(tmp_path, name, **with_params.get(name, {}))
    assert not model.supports_item_vectors
    with client:
        plain = client.get("/recommendations/u0", params={"k": 15})
        assert plain.status_code == 200, plain.text
        r = client.get("/recommendations/u0", params={"k": 5, "diversity": 0.8})
        assert r.status_code == 200, r.text
        assert "on auto" in r.json()["reason"]
        got = [it["item"] for it in r.json()["items"]]
    # the service's list is the one engine's MMR on co-occurrence of the 15 candidates
    cands = [(it["item"], it["score"]) for it in plain.json()["items"]]
    codes = model.items_.codes([int(i) for i, _ in cands])
    scores = np.array([s for _, s in cands], dtype=np.float32)
    vectors = similarity_vectors(model, "cooccurrence")
    want, _ = mmr(codes[None, :], scores[None, :], vectors, 5, 0.2)
    assert got == [str(i) for i in model.items_.ids_of(want[0])]


def test_diversity_on_stored_features_and_bad_source(tmp_path: Path) -> None:
    client, _ = _serve(tmp_path, "itemknn")
    ds = catalog_dataset()
    attrs = ds.item_attributes
    assert attrs is not None
    with client:
        missing = client.get(
            "/recommendations/u0", params={"k": 4, "diversity": 0.9, "diversity_on": "features"}
        )
        assert missing.status_code == 422
        assert "genres" in missing.text
        items = [
            {"id": str(i), "attributes": {"genres": str(g)}} for i, g in attrs["genres"].items()
        ]
        assert client.put("/items", json={"items": items}, headers=W).status_code == 200
        plain = client.get("/recommendations/u0", params={"k": 4}).json()["items"]
        diverse = client.get(
            "/recommendations/u0",
            params={"k": 4, "diversity": 1.0, "diversity_on": "features", "details": True},
        ).json()["items"]
        genres = {it["attributes"]["genres"] for it in diverse}
        plain_genres = {attrs.loc[int(it["item"]), "genres"] for it in plain}
        assert len(genres) >= len(plain_genres)
        assert len(genres) == 4  # diversity 1: one item per genre among 4 picks
        bad = client.get("/recommendations/u0", params={"diversity": 0.5, "diversity_on": "x"})
        assert bad.status_code == 422


def test_explain_says_why_there_is_none(tmp_path: Path) -> None:
    client, model = _serve(tmp_path, "random")
    with client:
        r = client.get("/recommendations/u0", params={"k": 3, "explain": True})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert all(it["explanation"] is None for it in doc["items"])
        assert doc["explanation_unavailable"] == model.explain_unavailable()
        assert "pseudo-random" in doc["explanation_unavailable"]
        plain = client.get("/recommendations/u0", params={"k": 3}).json()
        assert plain["explanation_unavailable"] is None


def test_explain_for_userknn_and_unknown_users(tmp_path: Path) -> None:
    client, _ = _serve(tmp_path, "userknn")
    with client:
        doc = client.get("/recommendations/u0", params={"k": 3, "explain": True}).json()
        assert doc["explanation_unavailable"] is None
        assert all(it["explanation"] for it in doc["items"])
        assert all(c["id"].startswith("u") for it in doc["items"] for c in it["explanation"])
        cold = client.get("/recommendations/nobody", params={"k": 3, "explain": True}).json()
        assert "no training history" in cold["explanation_unavailable"]
