"""Fixtures of the data tests: the shipped MovieLens latest-small, guarded against mutation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pandas as pd
import pytest

from recforge.data import Dataset, load


def _attributes_digest(ds: Dataset) -> str:
    assert ds.item_attributes is not None
    hashed = pd.util.hash_pandas_object(ds.item_attributes.astype(str), index=True)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


@pytest.fixture(scope="session")
def ml_small() -> Iterator[Dataset]:
    """MovieLens latest-small as shipped; fails the session if a test mutated it."""
    ds = load("movielens-small")
    fingerprint, attrs = ds.fingerprint(), _attributes_digest(ds)
    yield ds
    ds._cache.clear()
    assert ds.fingerprint() == fingerprint, "a test mutated the shipped dataset's interactions"
    assert _attributes_digest(ds) == attrs, "a test mutated the shipped dataset's attributes"
