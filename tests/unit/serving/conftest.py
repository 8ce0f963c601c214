"""Fixtures of the service tests: a small catalog with titles/genres and a registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.models.content import ContentBased
from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry

GENRES = ["Comedy", "Drama", "Horror", "Animation"]


def catalog_dataset(seed: int = 3) -> Dataset:
    """40 users x 24 items (ids 1..24); each user prefers one genre."""
    rng = np.random.default_rng(seed)
    items = np.arange(1, 25)
    genre = {int(i): GENRES[(int(i) - 1) % 4] for i in items}
    rows = []
    for u in range(40):
        liked = GENRES[u % 4]
        pool = [i for i in items if genre[int(i)] == liked]
        other = [i for i in items if genre[int(i)] != liked]
        chosen = list(rng.choice(pool, 3, replace=False)) + list(rng.choice(other, 1))
        for j, it in enumerate(chosen):
            rows.append(
                (
                    f"u{u}",
                    int(it),
                    5.0 if genre[int(it)] == liked else 1.0,
                    1_700_000_000 + 10 * u + j,
                )
            )
    frame = pd.DataFrame(rows, columns=["user", "item", "value", "time"])
    attrs = pd.DataFrame(
        {
            "title": [f"Movie {i} ({genre[int(i)]})" for i in items],
            "genres": [genre[int(i)] for i in items],
        },
        index=pd.Index(items, name="item"),
    )
    return Dataset.from_frame(frame, value="value", time="time", item_attributes=attrs)


def content_model(ds: Dataset) -> ContentBased:
    return ContentBased(features=[{"kind": "categories", "column": "genres"}]).fit(ds)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return catalog_dataset()


@pytest.fixture
def registry(tmp_path: Path, dataset: Dataset) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(content_model(dataset), metrics={"ndcg@10": 0.3}, promote=True)
    return reg


@pytest.fixture
def popular_registry(tmp_path: Path, dataset: Dataset) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry-pop")
    reg.publish(MostPopular().fit(dataset), promote=True)
    return reg
