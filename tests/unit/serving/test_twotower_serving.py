"""A served TwoTower: known users, histories, new users by attributes and new items."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recforge.data import Dataset
from recforge.registry import ModelRegistry
from recforge.serving.app import create_app

from .conftest import GENRES, catalog_dataset
from .test_app import make_settings

pytest.importorskip("torch")

TASTE = [{"kind": "categories", "column": "taste", "sep": None}]
ITEM_GENRES = [{"kind": "categories", "column": "genres", "sep": None}]


def _with_tastes() -> Dataset:
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
def model() -> object:
    from recforge.models.twotower import TwoTower

    return TwoTower(
        embedding_size=8,
        epochs=40,
        batch_size=32,
        learning_rate=0.02,
        early_stopping=False,
        features=ITEM_GENRES,
        user_features=TASTE,
        threads=1,
        rng=0,
    ).fit(_with_tastes())


@pytest.fixture
def client(tmp_path: Path, model: object) -> Iterator[TestClient]:
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(model, promote=True)  # type: ignore[arg-type]
    with TestClient(create_app(make_settings(tmp_path, reg), background=False)) as c:
        yield c


def test_served_lists_are_the_model_lists(client: TestClient, model: object) -> None:
    r = client.get("/recommendations/u2", params={"k": 3})
    assert r.status_code == 200, r.text
    expected = model.recommend(["u2"], k=3)  # type: ignore[attr-defined]
    assert [it["item"] for it in r.json()["items"]] == [str(i) for i in expected.items[0]]
    hist = client.post("/recommendations", json={"items": ["3", "7"], "k": 3})
    assert hist.status_code == 200, hist.text
    folded = model.recommend_for_history([3, 7], k=3)  # type: ignore[attr-defined]
    assert [it["item"] for it in hist.json()["items"]] == [str(i) for i in folded.items[0]]


def test_new_user_from_attributes(client: TestClient, model: object) -> None:
    body = {"items": [], "attributes": {"taste": "Horror"}, "k": 3}
    r = client.post("/recommendations", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["reason"] == "new user: from attributes taste"
    got = [it["item"] for it in doc["items"]]
    expected = model.recommend_for_user_attributes({"taste": "Horror"}, k=3)  # type: ignore[attr-defined]
    assert got == [str(i) for i in expected.items[0]]
    assert sum(int(i) % 4 == 3 for i in got) >= 2  # Horror items are 3, 7, 11, ...
