"""Non-personalised baselines: :class:`MostPopular` and :class:`Random`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from recforge.data import Dataset
from recforge.models.base import Recommender, TrainingOptions, check_state_shape, param

__all__ = ["MostPopular", "Random"]


class MostPopular(Recommender):
    """Rank items by how many users interacted with them, optionally decayed by age.

    With ``half_life_days`` set, an interaction ``Δ`` days older than the newest one counts
    ``0.5 ** (Δ / half_life_days)``, so recent popularity wins.
    """

    name = "popular"
    supports_history = True
    supports_explain = True
    supports_similar_items = False

    half_life_days: float | None = param(
        default=None,
        low=0.0,
        low_open=True,
        doc="Half-life of the time decay in days; ``None`` counts every interaction once.",
        search={"choices": [None, 30.0, 180.0, 730.0]},
    )

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        if self.half_life_days is not None and dataset.time is not None:
            age_days = (dataset.time.max() - dataset.time).astype(np.float64) / 86400.0
            w = np.power(0.5, age_days / self.half_life_days)
            self.scores_ = np.bincount(dataset.item, weights=w, minlength=dataset.n_items).astype(
                np.float32
            )
        else:
            self.scores_ = self.item_popularity_.copy()

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores_, (user_idx.shape[0], self.scores_.shape[0])).copy()

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.scores_.copy()

    def _fallback_scores(self) -> np.ndarray:
        return self.scores_.copy()

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """Popular among all users: the item's (time-decayed) interaction count."""
        label = "interactions" if self.half_life_days is None else "time-decayed interactions"
        score = float(self.scores_[item_idx])
        return score, "features", [(f"popular among all users ({label})", score)]

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores_}

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.scores_ = check_state_shape(state, "scores", (len(self.items_),), np.float32)


class Random(Recommender):
    """Uniformly random ranking (a floor every model must beat).

    Scores are a fixed pseudo-random function of ``(rng, user, item)``, so the same user gets
    the same list on every call and after save/load.
    """

    name = "random"
    supports_history = True
    explain_unsupported_reason = (
        "its scores are pseudo-random numbers drawn for each user (a baseline), so no "
        "evidence lies behind them"
    )

    rng: int = param(default=0, low=0, doc="Seed.")

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        pass

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        out = np.empty((user_idx.shape[0], len(self.items_)), dtype=np.float32)
        for row, u in enumerate(user_idx):
            gen = np.random.default_rng([self.rng, int(u)])
            out[row] = gen.random(len(self.items_), dtype=np.float32)
        return out

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.random.default_rng([self.rng, *item_idx.tolist()]).random(
            len(self.items_), dtype=np.float32
        )
