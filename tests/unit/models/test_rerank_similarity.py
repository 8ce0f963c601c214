"""The one item similarity of MMR (:func:`similarity_vectors`) and declarative settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.exceptions import ConfigError
from recforge.models.knn import ItemKNN
from recforge.models.popular import MostPopular
from recforge.models.rerank import RerankSpec, similarity_vectors
from recforge.testing import toy_dataset


def _dense(v: object) -> np.ndarray:
    return v.toarray() if hasattr(v, "toarray") else np.asarray(v)


def test_cooccurrence_is_the_cosine_of_the_items_user_columns() -> None:
    data = toy_dataset()
    model = MostPopular().fit(data)
    v = _dense(similarity_vectors(model))  # auto: no item vectors, no attributes
    x = (data.matrix(binary=True).toarray() > 0).astype(np.float64)
    assert v.shape == (data.n_items, data.n_users)
    np.testing.assert_array_equal(v, x.T)
    assert similarity_vectors(model) is similarity_vectors(model)  # cached per model


def test_auto_prefers_model_vectors_then_features() -> None:
    data = toy_dataset()
    knn = ItemKNN().fit(data)
    np.testing.assert_array_equal(_dense(similarity_vectors(knn)), _dense(knn.item_vectors()))
    attrs = pd.DataFrame(
        {"genres": ["A|B" if i % 2 else "B" for i in data.items.ids]}, index=data.items.ids
    )
    pop = MostPopular().fit(data)
    feats = _dense(similarity_vectors(pop, attributes=attrs))
    assert feats.shape == (data.n_items, 2)
    assert feats.sum(axis=1).tolist() == [2.0 if i % 2 else 1.0 for i in data.items.ids]
    with pytest.raises(ConfigError, match="MostPopular has no item vectors"):
        similarity_vectors(pop, "vectors")
    with pytest.raises(ConfigError, match="needs item attributes"):
        similarity_vectors(pop, "features")
    with pytest.raises(ConfigError, match="must be one of"):
        similarity_vectors(pop, "colour")


def test_spec_round_trips_and_reranks_like_the_reranker() -> None:
    doc = {
        "name": "diverse",
        "mmr": {"lambda": 0.3, "similarity": "cooccurrence"},
        "rules": {"filters": [{"column": "year", "op": ">=", "value": 2000}]},
        "candidates": 3,
    }
    spec = RerankSpec.from_dict(doc)
    again = RerankSpec.from_dict(spec.to_dict())
    assert again.to_dict() == spec.to_dict()
    assert spec.label == "diverse"
    data = toy_dataset()
    attrs = pd.DataFrame(
        {"year": [1990 + int(i) % 30 for i in data.items.ids]}, index=data.items.ids
    )
    model = MostPopular().fit(data)
    recs = spec.reranker(attrs).rerank(model, ["u0", "u1"], k=4)
    years = attrs["year"].to_dict()
    assert all(years[i] >= 2000 for i in recs.items.ravel().tolist())
    with pytest.raises(ConfigError, match="needs mmr, calibrate or rules"):
        RerankSpec.from_dict({"name": "nothing"})
