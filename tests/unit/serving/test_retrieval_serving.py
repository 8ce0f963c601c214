"""The service with a model that carries an approximate-retrieval index."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recforge.data import Dataset
from recforge.models import model_class
from recforge.registry import ModelRegistry
from recforge.serving.app import create_app

from .test_app import W, make_settings

pytest.importorskip("faiss", reason="faiss-cpu (the 'ann' extra) is not installed")


def _items(resp) -> list[str]:  # type: ignore[no-untyped-def]
    assert resp.status_code == 200, resp.text
    return [it["item"] for it in resp.json()["items"]]


def test_indexed_model_serves_exact_rules_and_online_updates(
    tmp_path: Path, dataset: Dataset
) -> None:
    model = model_class("als")(factors=8, iterations=6).fit(dataset)
    exact = model.recommend(["u0"], k=6, exact=True)
    model.build_index("hnsw", min_items=0)
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(model, promote=True)
    app = create_app(make_settings(tmp_path, reg), background=False)
    with TestClient(app) as client:
        first = _items(client.get("/recommendations/u0", params={"k": 6}))
        assert first == [str(i) for i in exact.items[0]]
        posted = first[0]
        r = client.post("/events", json={"event_id": "e1", "user": "u0", "item": posted}, headers=W)
        assert r.status_code in (200, 201, 202), r.text
        after = _items(client.get("/recommendations/u0", params={"k": 6}))
        assert posted not in after
        kept = _items(client.get("/recommendations/u0", params={"k": 6, "exclude": after[:2]}))
        assert not set(kept) & set(after[:2])
        assert len(kept) == 6
        similar = client.get(f"/items/{first[1]}/similar", params={"k": 4})
        assert len(_items(similar)) == 4
        assert first[1] not in _items(similar)
