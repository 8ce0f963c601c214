"""The :class:`BiasedBaseline` rating model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from recforge.data import Dataset
from recforge.models.base import Recommender, TrainingOptions, check_state_shape, param

__all__ = ["BiasedBaseline", "dataset_biases", "fit_biases"]


def fit_biases(
    user: np.ndarray,
    item: np.ndarray,
    value: np.ndarray,
    n_users: int,
    n_items: int,
    reg_user: float,
    reg_item: float,
    iterations: int = 10,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Regularised user and item biases by alternating least squares.

    Minimises ``Σ (r_ui - μ - b_u - b_i)² + reg_item Σ b_i² + reg_user Σ b_u²`` (Koren 2010,
    §2.1); each half-step is the closed-form solution with the other biases fixed.

    Returns
    -------
    mu, b_user, b_item
    """
    v = value.astype(np.float64)
    mu = float(v.mean())
    bu = np.zeros(n_users)
    bi = np.zeros(n_items)
    cnt_i = np.bincount(item, minlength=n_items).astype(np.float64)
    cnt_u = np.bincount(user, minlength=n_users).astype(np.float64)
    for _ in range(iterations):
        bi = np.bincount(item, weights=v - mu - bu[user], minlength=n_items) / (reg_item + cnt_i)
        bu = np.bincount(user, weights=v - mu - bi[item], minlength=n_users) / (reg_user + cnt_u)
    return mu, bu, bi


def dataset_biases(
    dataset: Dataset, reg_user: float, reg_item: float, iterations: int = 10
) -> tuple[float, np.ndarray, np.ndarray]:
    """:func:`fit_biases` of a dataset's interactions: ``(mu, b_user, b_item)``."""
    return fit_biases(
        dataset.user,
        dataset.item,
        dataset.value,
        dataset.n_users,
        dataset.n_items,
        reg_user,
        reg_item,
        iterations,
    )


class BiasedBaseline(Recommender):
    """Global mean plus regularised user and item biases: ``r̂_ui = μ + b_u + b_i``.

    Predicts ratings (Surprise's ``BaselineOnly`` with ALS) and ranks items by ``b_i``
    (the user bias does not change a user's ranking).

    Attributes
    ----------
    global_mean_ : float
    user_bias_, item_bias_ : numpy.ndarray of float32
    """

    name = "bias"
    explicit = True
    supports_predict = True
    supports_history = True
    supports_explain = True

    reg_user: float = param(
        default=15.0,
        low=0.0,
        doc="L2 regularisation of the user biases (damping in rating units).",
        search={"low": 0.1, "high": 50.0, "log": True},
    )
    reg_item: float = param(
        default=10.0,
        low=0.0,
        doc="L2 regularisation of the item biases (damping in rating units).",
        search={"low": 0.1, "high": 50.0, "log": True},
    )
    iterations: int = param(default=10, low=1, doc="Alternating least-squares sweeps.")

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        mu, bu, bi = dataset_biases(dataset, self.reg_user, self.reg_item, self.iterations)
        self.global_mean_ = mu
        self.user_bias_ = bu.astype(np.float32)
        self.item_bias_ = bi.astype(np.float32)

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        base = self.global_mean_ + self.item_bias_
        return (self.user_bias_[user_idx, None] + base[None, :]).astype(np.float32)

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        return (self.global_mean_ + self.item_bias_).astype(np.float32)

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """The score's parts: global mean, user bias and item bias."""
        parts = [
            ("global mean", float(self.global_mean_)),
            ("user bias", float(self.user_bias_[user_idx])),
            ("item bias", float(self.item_bias_[item_idx])),
        ]
        return float(self._score_users(np.array([user_idx]))[0, item_idx]), "features", parts

    def _predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        est = np.full(user_idx.shape[0], self.global_mean_, dtype=np.float64)
        ku, ki = user_idx >= 0, item_idx >= 0
        est[ku] += self.user_bias_[user_idx[ku]]
        est[ki] += self.item_bias_[item_idx[ki]]
        return est

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"user_bias": self.user_bias_, "item_bias": self.item_bias_}

    def _get_meta(self) -> dict[str, Any]:
        return {"global_mean": self.global_mean_}

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.user_bias_ = check_state_shape(state, "user_bias", (len(self.users_),), np.float32)
        self.item_bias_ = check_state_shape(state, "item_bias", (len(self.items_),), np.float32)
        self.global_mean_ = float(meta["global_mean"])
