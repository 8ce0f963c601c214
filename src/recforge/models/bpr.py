"""Bayesian Personalised Ranking matrix factorisation: :class:`BPR`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from recforge.data import Dataset
from recforge.models._shared import (
    FACTORS,
    INIT_STD,
    ImplicitFactorCapabilities,
    load_factors,
    make_rng,
    normal_factors,
    train_epochs,
    with_unit_column,
)
from recforge.models.base import Recommender, TrainingOptions, check_state_shape, param

__all__ = ["BPR"]


class BPR(ImplicitFactorCapabilities, Recommender):
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

    Attributes
    ----------
    user_factors_, item_factors_ : numpy.ndarray of float32
    item_bias_ : numpy.ndarray of float32
    train_accuracy_ : list of float
        Fraction of the epoch's samples already ranked correctly before their update.
    """

    name = "bpr"
    supports_explain = True
    factors: int = FACTORS
    epochs: int = param(
        default=30,
        low=0,
        doc="Passes (``nnz`` samples each).",
        search={"low": 10, "high": 100, "log": True},
    )
    learning_rate: float = param(
        default=0.05,
        low=0.0,
        low_open=True,
        doc="SGD step size.",
        search={"low": 0.005, "high": 0.2, "log": True},
    )
    reg: float = param(
        default=0.01,
        low=0.0,
        doc="L2 regularisation.",
        search={"low": 1e-4, "high": 0.1, "log": True},
    )
    neg_sampling: str = param(
        default="uniform",
        options=("uniform", "popularity"),
        doc='``"uniform"`` or ``"popularity"``.',
    )
    neg_beta: float = param(default=0.75, low=0.0, doc="Exponent of the popularity distribution.")
    init_std: float = INIT_STD
    fold_in_epochs: int = param(
        default=30, low=1, doc="Epochs of the fold-in of a new user's history."
    )
    rng: int | None = param(default=None, low=0, doc="Seed.")

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

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """The score's parts: the item's bias (its pull on every user) and the factor match."""
        match = float(self.user_factors_[user_idx] @ self.item_factors_[item_idx])
        bias = float(self.item_bias_[item_idx])
        return bias + match, "features", [("taste match (factors)", match), ("item bias", bias)]

    def _query_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        return with_unit_column(self.user_factors_[user_idx])

    def _key_vectors(self) -> np.ndarray:
        return np.column_stack([self.item_factors_, self.item_bias_])

    def _history_query(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        return np.append(self.fold_in(item_idx), np.float32(1.0)), 0.0

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "item_bias": self.item_bias_,
        }

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        ni = len(self.items_)
        self.user_factors_, self.item_factors_ = load_factors(
            state, len(self.users_), ni, self.factors
        )
        self.item_bias_ = check_state_shape(state, "item_bias", (ni,), np.float32)
