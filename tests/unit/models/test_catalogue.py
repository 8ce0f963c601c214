"""``add_items`` grows every per-item array in one base-class step; nothing pads scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.exceptions import ModelFormatError
from recforge.models.base import Recommender, TrainingOptions, param


class _ItemScores(Recommender):
    """Scores every user by one learned number per item; new items get ``prior``."""

    supports_new_items = True

    prior: float = param(default=0.5, doc="Score of an added item.")
    grow: bool = param(default=True, doc="Whether ``_add_items`` grows the array (a bug if not).")

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        self.per_item_ = self.item_popularity_.copy()

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.tile(self.per_item_, (user_idx.size, 1))

    def _add_items(self, codes: np.ndarray, attributes: pd.DataFrame, n_items: int) -> None:
        if self.grow:
            grown = np.zeros(n_items, dtype=np.float32)
            grown[: self.per_item_.size] = self.per_item_
            self.per_item_ = grown
        self.per_item_[codes[codes < self.per_item_.size]] = self.prior


def _data() -> Dataset:
    frame = pd.DataFrame({"user": [1, 1, 2, 3], "item": ["a", "b", "a", "c"]})
    return Dataset.from_frame(frame)


def test_add_items_grows_seen_popularity_and_the_models_arrays_together() -> None:
    m = _ItemScores().fit(_data())
    before = m.seen_matrix().toarray()
    m.add_items(pd.DataFrame(index=pd.Index(["d", "a", "e"])))  # two new ids, one known
    assert m.n_items == 5
    assert m.items_.ids.tolist() == ["a", "b", "c", "d", "e"]
    seen = m.seen_matrix()
    assert seen.shape == (3, 5)
    np.testing.assert_array_equal(seen.toarray()[:, :3], before)
    assert seen[:, [3, 4]].nnz == 0
    np.testing.assert_array_equal(m.fallback_scores(), [2.0, 1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(m.score_users(np.array([0]))[0], [0.5, 1.0, 1.0, 0.5, 0.5])
    recs = m.recommend([1], k=5)
    assert recs.items[0, : recs.lengths[0]].tolist() == ["c", "d", "e"]  # seen a, b excluded


def test_a_per_item_array_left_short_is_an_error_never_padded() -> None:
    m = _ItemScores(grow=False).fit(_data())
    m.add_items(pd.DataFrame(index=pd.Index(["d"])))
    with pytest.raises(ModelFormatError, match="every per-item array must cover"):
        m.recommend([1], k=2)
