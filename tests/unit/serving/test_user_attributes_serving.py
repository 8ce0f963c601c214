"""A new user described by attributes gets a list from a model that reads them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recforge.data import Dataset
from recforge.models.hybrid import HybridMF
from recforge.registry import ModelRegistry
from recforge.serving.app import create_app

from .conftest import GENRES, catalog_dataset
from .test_app import make_settings

TASTE = [{"kind": "categories", "column": "taste", "sep": None}]


def _with_tastes() -> Dataset:
    """The service catalogue plus each user's favourite genre as a user attribute."""
    ds = catalog_dataset()
    users = ds.users.ids.tolist()
    tastes = pd.DataFrame({"taste": [GENRES[int(u[1:]) % 4] for u in users]}, index=users)
    return Dataset.from_frame(
        ds.to_frame(),
        value="value",
        time="time",
        item_attributes=ds.item_attributes,
        user_attributes=tastes,
    )


@pytest.fixture(scope="module")
def hybrid() -> HybridMF:
    return HybridMF(
        factors=8, epochs=30, loss="bpr", learning_rate=0.2, user_features=TASTE, n_threads=1
    ).fit(_with_tastes())


@pytest.fixture
def client(tmp_path: Path, hybrid: HybridMF) -> Iterator[TestClient]:
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(hybrid, promote=True)
    with TestClient(create_app(make_settings(tmp_path, reg), background=False)) as c:
        yield c


def test_new_user_from_attributes(client: TestClient, hybrid: HybridMF) -> None:
    body = {"items": [], "attributes": {"taste": "Horror", "unused": 3}, "k": 3}
    r = client.post("/recommendations", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["reason"] == "new user: from attributes taste"
    got = [it["item"] for it in doc["items"]]
    expected = hybrid.recommend_for_user_attributes({"taste": "Horror"}, k=3)
    assert got == [str(i) for i in expected.items[0]]
    assert all(int(i) % 4 == 3 for i in got)  # Horror items are 3, 7, 11, ...
    blank = client.post("/recommendations", json={"items": [], "attributes": {}, "k": 3}).json()
    assert blank["reason"] == "new user: no attributes (taste not given)"
    excluded = client.post("/recommendations", json={**body, "exclude": [got[0]]}).json()
    assert got[0] not in [it["item"] for it in excluded["items"]]


def test_attribute_values_are_bounded(client: TestClient) -> None:
    r = client.post("/recommendations", json={"items": [], "attributes": {"taste": "x" * 5000}})
    assert r.status_code == 422
    assert "longer than 4096" in r.text


def test_model_without_user_features_says_so(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(HybridMF(factors=4, epochs=2, n_threads=1).fit(catalog_dataset()), promote=True)
    with TestClient(create_app(make_settings(tmp_path, reg), background=False)) as c:
        doc = c.post("/recommendations", json={"items": [], "attributes": {"taste": "Drama"}})
    assert doc.status_code == 200
    assert doc.json()["reason"] == "HybridMF does not use user attributes: most popular items"
