"""Explicit-rating matrix factorisation trained by SGD: :class:`SVD` and :class:`SVDpp`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from recforge.data import Dataset
from recforge.models._shared import (
    CosineSimilarItems,
    load_factors,
    make_rng,
    normal_factors,
    train_epochs,
    with_unit_column,
)
from recforge.models.base import Recommender, TrainingOptions, check_state_shape, param

__all__ = ["SVD", "SVDpp"]


def group_by_user(
    user: np.ndarray, item: np.ndarray, value: np.ndarray, n_users: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratings grouped by user as CSR rows ``(indptr int64, indices int32, values float32)``.

    Unlike :meth:`Dataset.matrix`, duplicate pairs are kept (each rating is one SGD step).
    """
    order = np.argsort(user, kind="stable")
    counts = np.bincount(user, minlength=n_users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return (
        indptr,
        np.ascontiguousarray(item[order], dtype=np.int32),
        np.ascontiguousarray(value[order], dtype=np.float32),
    )


# hyperparameters both SGD rating models declare, in the same words
_INIT_MEAN: float = param(default=0.0, doc="Mean of the normal initialisation of the factors.")
_INIT_STD: float = param(
    default=0.1, low=0.0, doc="Standard deviation of the normal initialisation of the factors."
)
_CLIP: bool = param(
    default=True, doc="Clip predictions to the training rating range (as Surprise does)."
)
_RNG: int | None = param(
    default=None, low=0, doc="Seed of the initialisation and of the shuffling."
)


class _RatingMFState:
    """What the shared rating-model code reads (for type checkers): parameters and state."""

    factors: int
    reg: float
    init_mean: float
    init_std: float
    rng: int | None
    clip: bool
    global_mean_: float
    rating_range_: tuple[float, float]
    user_bias_: np.ndarray
    item_bias_: np.ndarray
    user_factors_: np.ndarray
    item_factors_: np.ndarray


class _RatingMF(_RatingMFState, CosineSimilarItems, Recommender):
    """Shared parts of the SGD rating models (prediction clipping, persistence of biases)."""

    explicit = True
    supports_predict = True
    supports_similar_items = True
    supports_history = True
    supports_explain = True
    supports_epochs = True
    supports_inner_product = True
    similar_items_by_vector_cosine = True

    def _init_common(self, dataset: Dataset) -> np.random.Generator:
        """Set the mean, rating range, zero biases and normal factors; return the generator."""
        values = dataset.value
        self.global_mean_ = float(np.mean(values, dtype=np.float64))
        self.rating_range_ = (float(values.min()), float(values.max()))
        self.user_bias_ = np.zeros(dataset.n_users, dtype=np.float32)
        self.item_bias_ = np.zeros(dataset.n_items, dtype=np.float32)
        gen = make_rng(self.rng)
        self.user_factors_ = self._normal_factors(gen, dataset.n_users)
        self.item_factors_ = self._normal_factors(gen, dataset.n_items)
        return gen

    def _biases_and_factors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(user_bias_, item_bias_, user_factors_, item_factors_)``, the kernels' order."""
        return self.user_bias_, self.item_bias_, self.user_factors_, self.item_factors_

    def _normal_factors(self, gen: np.random.Generator, n: int) -> np.ndarray:
        """``(n, factors)`` float32 draws from ``N(init_mean, init_std²)``."""
        return normal_factors(gen, n, self.factors, self.init_mean, self.init_std)

    def _user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors_[user_idx]

    def _ridge_user(self, item_idx: np.ndarray, values: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Fold-in: ``p`` minimising ``Σ (r - μ - b_i - q_i·(base + p))² + reg n ‖p‖²``.

        The values are ratings with the training data's meaning; ``base`` is a part of the
        user vector that is known from the items alone (SVD++'s implicit term).
        """
        q = self.item_factors_[item_idx].astype(np.float64)
        resid = values.astype(np.float64) - self.global_mean_ - self.item_bias_[item_idx]
        resid -= q @ base
        lam = max(self.reg, 1e-6) * item_idx.shape[0]
        a = q.T @ q + lam * np.eye(self.factors)
        return np.asarray(np.linalg.solve(a, q.T @ resid), dtype=np.float32)

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        scores = self._user_vectors(user_idx) @ self.item_factors_.T
        scores += self.item_bias_[None, :]
        scores += (self.user_bias_[user_idx] + np.float32(self.global_mean_))[:, None]
        return np.asarray(scores, dtype=np.float32)

    def _query_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        return with_unit_column(self._user_vectors(user_idx))

    def _query_offsets(self, user_idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_bias_[user_idx] + np.float32(self.global_mean_), np.float32)

    def _key_vectors(self) -> np.ndarray:
        return np.column_stack([self.item_factors_, self.item_bias_])

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """The score's parts: global mean, user bias, item bias and the factor match."""
        u = np.array([user_idx])
        match = float(self._user_vectors(u)[0] @ self.item_factors_[item_idx])
        parts = [
            ("global mean", float(self.global_mean_)),
            ("user bias", float(self.user_bias_[user_idx])),
            ("item bias", float(self.item_bias_[item_idx])),
            ("taste match (factors)", match),
        ]
        return float(self._score_users(u)[0, item_idx]), "features", parts

    def _predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        est = np.full(user_idx.shape[0], self.global_mean_, dtype=np.float64)
        ku, ki = user_idx >= 0, item_idx >= 0
        est[ku] += self.user_bias_[user_idx[ku]]
        est[ki] += self.item_bias_[item_idx[ki]]
        both = ku & ki
        if both.any():
            pu = self._user_vectors(user_idx[both]).astype(np.float64)
            qi = self.item_factors_[item_idx[both]].astype(np.float64)
            est[both] += np.einsum("ij,ij->i", pu, qi)
        if self.clip:
            np.clip(est, self.rating_range_[0], self.rating_range_[1], out=est)
        return est

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "user_bias": self.user_bias_,
            "item_bias": self.item_bias_,
        }

    def _get_meta(self) -> dict[str, Any]:
        return {"global_mean": self.global_mean_, "rating_range": list(self.rating_range_)}

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        nu, ni = len(self.users_), len(self.items_)
        self.user_factors_, self.item_factors_ = load_factors(state, nu, ni, self.factors)
        self.user_bias_ = check_state_shape(state, "user_bias", (nu,), np.float32)
        self.item_bias_ = check_state_shape(state, "item_bias", (ni,), np.float32)
        self.global_mean_ = float(meta["global_mean"])
        lo, hi = meta["rating_range"]
        self.rating_range_ = (float(lo), float(hi))


class SVD(_RatingMF):
    """Biased matrix factorisation trained by SGD (Funk 2006; Koren, Bell & Volinsky 2009).

    Predicts ``r̂_ui = μ + b_u + b_i + q_i·p_u`` and minimises the regularised squared error
    over the observed ratings by stochastic gradient descent in a random order per epoch,
    with the update rule of Surprise's ``SVD``::

        e = r - r̂;  b_u += lr_bu (e - reg_bu b_u);  b_i += lr_bi (e - reg_bi b_i)
        p_u += lr (e q_i - reg p_u);  q_i += lr (e p_u - reg q_i)

    Epochs run in parallel and deterministically (DSGD, Gemulla et al. 2011): users and items
    are cut into ``B`` seed-drawn blocks each (one per 50,000 ratings, at most 16; one block,
    a sequential epoch, below 100,000 ratings), and the blocks of one stratum, which share no
    user and no item, are trained by separate threads (:mod:`recforge._kernels.strata`). A
    fit is therefore bit-identical under ``rng`` whatever the number of numba threads; each
    block visits its ratings in a fresh random order per epoch.

    Unknown users or items drop their terms from the prediction (``μ + b_i`` for an unknown
    user, as Surprise does).

    Attributes
    ----------
    user_factors_, item_factors_ : numpy.ndarray of float32
        ``(n_users, factors)`` and ``(n_items, factors)``.
    user_bias_, item_bias_ : numpy.ndarray of float32
    global_mean_ : float
    rating_range_ : tuple of float
        Smallest and largest training rating (the clipping range).
    train_rmse_ : list of float
        Training RMSE seen during each epoch (not saved).

    Notes
    -----
    :meth:`recommend_for_history` treats the history values as ratings and folds the new
    user in by ridge regression on the fixed item factors and biases.
    """

    name = "svd"

    factors: int = param(
        default=100,
        low=1,
        doc="Number of latent factors.",
        search={"low": 10, "high": 200, "log": True},
    )
    epochs: int = param(
        default=20, low=0, doc="SGD passes over the ratings.", search={"low": 10, "high": 60}
    )
    learning_rate: float = param(
        default=0.005,
        low=0.0,
        low_open=True,
        doc="Step size of the factors (and of the biases unless ``lr_bu`` / ``lr_bi`` are given).",
        search={"low": 0.002, "high": 0.03, "log": True},
    )
    reg: float = param(
        default=0.02,
        low=0.0,
        doc="L2 regularisation of the factors (and of the biases unless ``reg_bu`` / ``reg_bi`` "
        "are given).",
        search={"low": 0.005, "high": 0.2, "log": True},
    )
    lr_bu: float | None = param(default=None, low=0.0, doc="Step size of the user biases.")
    lr_bi: float | None = param(default=None, low=0.0, doc="Step size of the item biases.")
    reg_bu: float | None = param(default=None, low=0.0, doc="Regularisation of the user biases.")
    reg_bi: float | None = param(default=None, low=0.0, doc="Regularisation of the item biases.")
    init_mean: float = _INIT_MEAN
    init_std: float = _INIT_STD
    biased: bool = param(
        default=True,
        doc="Learn biases (``False``: plain ``q_i·p_u``, the global mean still added).",
    )
    clip: bool = _CLIP
    rng: int | None = _RNG

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        from recforge._kernels.sgd import svd_epoch_strata
        from recforge._kernels.strata import Strata

        gen = self._init_common(dataset)
        lr, reg = self.learning_rate, self.reg
        lr_bu = (lr if self.lr_bu is None else self.lr_bu) if self.biased else 0.0
        lr_bi = (lr if self.lr_bi is None else self.lr_bi) if self.biased else 0.0
        reg_bu = reg if self.reg_bu is None else self.reg_bu
        reg_bi = reg if self.reg_bi is None else self.reg_bi
        user = np.ascontiguousarray(dataset.user, dtype=np.int32)
        item = np.ascontiguousarray(dataset.item, dtype=np.int32)
        value = np.ascontiguousarray(dataset.value, dtype=np.float32)
        rates = (lr_bu, lr_bi, lr, lr, reg_bu, reg_bi, reg, reg)
        ratings = (user, item, value)
        params = self._biases_and_factors()
        strata = Strata(user, item, dataset.n_users, dataset.n_items, gen)

        def epoch() -> float:
            order, bounds = strata.order(gen)
            sse = svd_epoch_strata(ratings, order, bounds, self.global_mean_, params, rates)
            return float(np.sqrt(sse / max(1, user.shape[0])))

        self.train_rmse_: list[float] = []
        train_epochs(self, options, self.epochs, "SVD", epoch, self.train_rmse_)

    def _history_query(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        p = self._ridge_user(item_idx, values, np.zeros(self.factors))
        return np.append(p, np.float32(1.0)), float(self.global_mean_)


class SVDpp(_RatingMF):
    """SVD++ (Koren 2008): biased MF plus the implicit feedback of the items a user rated.

    ``r̂_ui = μ + b_u + b_i + q_i·(p_u + |N(u)|^-1/2 Σ_{j∈N(u)} y_j)``, trained by SGD with
    Surprise's per-rating update rule (every ``y_j`` of ``N(u)`` moves after every rating of
    ``u``), ratings grouped by user and users visited in random order. The kernel computes
    these updates exactly in ``O(factors)`` per rating instead of ``O(|N(u)| factors)``: the
    implicit sum follows its own closed-form update and the ``y_j`` are brought up to date
    once per user (see :func:`recforge._kernels.sgd.svdpp_epoch`). ``N(u)`` is the list of
    items the user rated in training; duplicate (user, item) ratings make the ``y_j`` update
    approximate, so deduplicate the data first.

    Every ``y_j`` of a user moves with each of the user's ratings, so users cannot be split into
    blocks that share no parameter: epochs run on one thread and are deterministic under
    ``rng`` (the implicit sums are computed in parallel, also deterministically).

    Attributes
    ----------
    user_factors_, item_factors_, implicit_factors_ : numpy.ndarray of float32
    user_implicit_ : numpy.ndarray of float32
        ``(n_users, factors)`` implicit sums of the training users.
    """

    name = "svdpp"

    factors: int = param(
        default=20,
        low=1,
        doc="Number of latent factors.",
        search={"low": 5, "high": 50, "log": True},
    )
    epochs: int = param(default=20, low=0, doc="SGD passes.", search={"low": 10, "high": 40})
    learning_rate: float = param(
        default=0.007,
        low=0.0,
        low_open=True,
        doc="Step size of factors and implicit factors.",
        search={"low": 0.002, "high": 0.02, "log": True},
    )
    reg: float = param(
        default=0.02,
        low=0.0,
        doc="L2 regularisation of factors and implicit factors.",
        search={"low": 0.005, "high": 0.2, "log": True},
    )
    lr_bias: float | None = param(
        default=None, low=0.0, doc="Step size of the biases (default: ``learning_rate``)."
    )
    reg_bias: float | None = param(
        default=None, low=0.0, doc="Regularisation of the biases (default: ``reg``)."
    )
    init_mean: float = _INIT_MEAN
    init_std: float = _INIT_STD
    clip: bool = _CLIP
    rng: int | None = _RNG

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        from recforge._kernels.sgd import svdpp_epoch, svdpp_implicit_sums

        gen = self._init_common(dataset)
        nu = dataset.n_users
        self.implicit_factors_ = self._normal_factors(gen, dataset.n_items)
        indptr, indices, values = group_by_user(dataset.user, dataset.item, dataset.value, nu)
        lr, reg = self.learning_rate, self.reg
        lr_b = lr if self.lr_bias is None else self.lr_bias
        reg_b = reg if self.reg_bias is None else self.reg_bias
        rates = (lr_b, lr, lr, reg_b, reg, reg)
        csr = (indptr, indices, values)
        params = (*self._biases_and_factors(), self.implicit_factors_)

        def epoch() -> float:
            user_order = gen.permutation(nu).astype(np.int64)
            sse = svdpp_epoch(user_order, csr, self.global_mean_, params, rates)
            self.user_implicit_ = svdpp_implicit_sums(indptr, indices, self.implicit_factors_)
            return float(np.sqrt(sse / max(1, indices.shape[0])))

        self.user_implicit_ = svdpp_implicit_sums(indptr, indices, self.implicit_factors_)
        self.train_rmse_: list[float] = []
        train_epochs(self, options, self.epochs, "SVD++", epoch, self.train_rmse_)

    def _user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors_[user_idx] + self.user_implicit_[user_idx]

    def _history_query(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        # the implicit term needs only the items; the explicit factors are fitted to the
        # ratings by ridge regression around it (b_u = 0: the offset is the global mean)
        items = np.unique(item_idx)
        z = self.implicit_factors_[items].astype(np.float64).sum(axis=0) / np.sqrt(items.size)
        p = self._ridge_user(item_idx, values, z)
        return np.append((z + p).astype(np.float32), np.float32(1.0)), float(self.global_mean_)

    def _get_state(self) -> dict[str, np.ndarray]:
        state = super()._get_state()
        state["implicit_factors"] = self.implicit_factors_
        state["user_implicit"] = self.user_implicit_
        return state

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        super()._set_state(state, meta)
        nu, ni, f = len(self.users_), len(self.items_), self.factors
        self.implicit_factors_ = check_state_shape(state, "implicit_factors", (ni, f), np.float32)
        self.user_implicit_ = check_state_shape(state, "user_implicit", (nu, f), np.float32)
