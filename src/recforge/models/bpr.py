"""Bayesian Personalised Ranking matrix factorisation: :class:`BPR`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from recforge.data import Dataset
from recforge.models._shared import CosineSimilarItems, make_rng, normal_factors, train_epochs
from recforge.models.base import Param, Recommender, TrainingOptions, check_state_shape

__all__ = ["BPR"]


class BPR(CosineSimilarItems, Recommender):
    """Matrix factorisation with item biases trained by BPR-Opt (Rendle et al. 2009).

    Scores are ``b_i + p_u·q_i``. Each epoch draws as many ``(u, i, j)`` triples as there are
    interactions: ``(u, i)`` uniformly among the interactions, ``j`` among the items ``u``
    did not interact with, either uniformly (``neg_sampling="uniform"``) or proportionally
    to ``count_j ** neg_beta`` (``"popularity"``), and ascends ``ln σ(x_ui - x_uj)`` minus
    L2 regularisation by SGD. Interaction values are ignored: presence counts.

    Epochs run in parallel and deterministically (DSGD): users are cut into ``B`` blocks of
    equal activity and items into ``B`` random blocks of equal size (``B``: one per 50,000
    interactions, at most 16; one block below 100,000), each sample's negative is drawn
    inside its positive's item block, and the blocks of one stratum, which share no user and
    no item, are trained by separate threads, each with its own random stream seeded from
    ``rng`` (:mod:`recforge._kernels.bpr`). A fit is bit-identical under ``rng`` whatever the
    number of numba threads. Fold-in for new users (:meth:`recommend_for_history`) runs
    ``fold_in_epochs`` SGD epochs on a new user vector with the item factors fixed and is
    always deterministic under ``rng``.

    Parameters
    ----------
    factors
        Number of latent factors.
    epochs
        Passes (``nnz`` samples each).
    learning_rate, reg
        SGD step size and L2 regularisation.
    neg_sampling
        ``"uniform"`` or ``"popularity"``.
    neg_beta
        Exponent of the popularity distribution.
    init_std
        Standard deviation of the normal initial factors.
    fold_in_epochs
        Epochs of the fold-in of a new user's history.
    rng
        Seed.

    Attributes
    ----------
    user_factors_, item_factors_ : numpy.ndarray of float32
    item_bias_ : numpy.ndarray of float32
    train_accuracy_ : list of float
        Fraction of the epoch's samples already ranked correctly before their update.
    """

    name = "bpr"
    params: ClassVar[Mapping[str, Param]] = {
        "factors": Param(int, low=1),
        "epochs": Param(int, low=0),
        "learning_rate": Param(float, low=0.0, low_open=True),
        "reg": Param(float, low=0.0),
        "neg_sampling": Param(str, options=("uniform", "popularity")),
        "neg_beta": Param(float, low=0.0),
        "init_std": Param(float, low=0.0),
        "fold_in_epochs": Param(int, low=1),
        "rng": Param(int, low=0, nullable=True),
    }
    supports_similar_items = True
    supports_history = True
    supports_epochs = True

    user_factors_: np.ndarray
    item_factors_: np.ndarray
    item_bias_: np.ndarray

    def __init__(
        self,
        factors: int = 64,
        epochs: int = 30,
        learning_rate: float = 0.05,
        reg: float = 0.01,
        neg_sampling: str = "uniform",
        neg_beta: float = 0.75,
        init_std: float = 0.01,
        fold_in_epochs: int = 30,
        rng: int | None = None,
    ) -> None:
        self.factors = factors
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.reg = reg
        self.neg_sampling = neg_sampling
        self.neg_beta = neg_beta
        self.init_std = init_std
        self.fold_in_epochs = fold_in_epochs
        self.rng = rng

    def _negative_cdf(self) -> np.ndarray:
        from recforge._kernels.bpr import negative_cdf

        if self.neg_sampling == "uniform":
            return np.empty(0, dtype=np.float64)
        return negative_cdf(self.item_popularity_, self.neg_beta)

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        from recforge._kernels.bpr import block_negative_cdf, bpr_epoch, seed_states
        from recforge._kernels.strata import Strata

        x = self.seen_
        indptr = np.ascontiguousarray(x.indptr, dtype=np.int64)
        indices = np.ascontiguousarray(x.indices, dtype=np.int32)
        row_of = np.repeat(np.arange(x.shape[0], dtype=np.int32), np.diff(indptr))
        gen = make_rng(self.rng)
        f = self.factors
        self.user_factors_ = normal_factors(gen, dataset.n_users, f, 0.0, self.init_std)
        self.item_factors_ = normal_factors(gen, dataset.n_items, f, 0.0, self.init_std)
        self.item_bias_ = np.zeros(dataset.n_items, dtype=np.float32)
        strata = Strata(row_of, indices, dataset.n_users, dataset.n_items, gen, equal_cols=True)
        blocks = (*strata.grouped(), *strata.col_groups())
        cdf = np.empty(0, dtype=np.float64)
        if self.neg_sampling != "uniform":
            cdf = block_negative_cdf(self.item_popularity_, self.neg_beta, *blocks[2:])
        states = seed_states(gen, strata.n_blocks**2)

        def epoch() -> float:
            stats = bpr_epoch(
                row_of, indptr, indices,
                self.user_factors_, self.item_factors_, self.item_bias_,
                self.learning_rate, self.reg, *blocks, cdf, states,
            )  # fmt: skip
            return float(stats[1] / max(stats[0], 1.0))

        self.train_accuracy_: list[float] = []
        train_epochs(self, options, self.epochs, "BPR", epoch, self.train_accuracy_)

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        scores = self.user_factors_[user_idx] @ self.item_factors_.T
        scores += self.item_bias_[None, :]
        return np.asarray(scores, dtype=np.float32)

    def fold_in(self, item_idx: np.ndarray) -> np.ndarray:
        """Factors of a new user learnt by BPR SGD against the fixed item factors.

        Parameters
        ----------
        item_idx
            Item codes of the user's history.

        Returns
        -------
        numpy.ndarray of float32, shape (factors,)
        """
        from recforge._kernels.bpr import bpr_fold_in, seed_states

        self._check_fitted("fold_in")
        items = np.unique(np.asarray(item_idx, dtype=np.int32))
        states = seed_states(make_rng(self.rng), 1)
        return np.asarray(
            bpr_fold_in(
                items,
                self.item_factors_,
                self.item_bias_,
                self.fold_in_epochs,
                self.learning_rate,
                self.reg,
                self._negative_cdf(),
                states,
            ),
            dtype=np.float32,
        )

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        p = self.fold_in(item_idx)
        return np.asarray(self.item_factors_ @ p + self.item_bias_, dtype=np.float32)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "item_bias": self.item_bias_,
        }

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        nu, ni, f = len(self.users_), len(self.items_), self.factors
        self.user_factors_ = check_state_shape(state, "user_factors", (nu, f), np.float32)
        self.item_factors_ = check_state_shape(state, "item_factors", (ni, f), np.float32)
        self.item_bias_ = check_state_shape(state, "item_bias", (ni,), np.float32)
