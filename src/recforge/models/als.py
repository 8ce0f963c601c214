"""Implicit-feedback alternating least squares: :class:`ALS`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.data import Dataset
from recforge.data.weighting import bm25, linear_confidence, log_confidence
from recforge.exceptions import DataError
from recforge.models._shared import (
    FACTORS,
    INIT_STD,
    ImplicitFactorCapabilities,
    load_factors,
    make_rng,
    normal_factors,
)
from recforge.models.base import Recommender, TrainingOptions, check_state_shape, param

__all__ = ["ALS"]


def _csr_parts(x: sp.csr_array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.ascontiguousarray(x.indptr, dtype=np.int64),
        np.ascontiguousarray(x.indices, dtype=np.int32),
        np.ascontiguousarray(x.data, dtype=np.float32),
    )


class ALS(ImplicitFactorCapabilities, Recommender):
    """Implicit-feedback matrix factorisation by alternating least squares.

    Hu, Koren & Volinsky (2008): with preference ``p_ui = 1`` for observed pairs (0 otherwise)
    and confidence ``c_ui = 1 + w_ui``, minimise::

        Σ_{u,i} c_ui (p_ui - x_u·y_i)² + reg (Σ_u ‖x_u‖² + Σ_i ‖y_i‖²)

    over all pairs, alternating exact (``solver="cholesky"``) or conjugate-gradient
    (``solver="cg"``, ``cg_steps`` warm-started steps, Takács et al. 2011 as in ``implicit``)
    solves for items then users. The weight ``w_ui`` of an interaction value ``r`` is
    ``alpha * r`` (``weighting="linear"``), ``alpha * log(1 + r / eps)`` (``"log"``) or
    ``alpha * bm25(r)`` (``"bm25"``, users as documents). Each iteration ends with the user
    half-step, so the exact fold-in of a training user's history reproduces their factors.

    Attributes
    ----------
    user_factors_, item_factors_ : numpy.ndarray of float32
        ``(n_users, factors)`` and ``(n_items, factors)``.
    loss_ : list of float
        Objective after each iteration when ``fit(..., track_loss=True)``.

    Examples
    --------
    >>> from recforge.testing import toy_dataset
    >>> model = ALS(factors=8, iterations=3, rng=0).fit(toy_dataset(explicit=False))
    >>> model.recommend(["u0"], k=3).items.shape
    (1, 3)
    """

    name = "als"
    supports_explain = True
    factors: int = FACTORS
    iterations: int = param(
        default=15,
        low=0,
        doc="Alternating sweeps (items then users).",
        search={"low": 5, "high": 30},
    )
    reg: float = param(
        default=0.01,
        low=0.0,
        low_open=True,
        doc="L2 regularisation ``reg``.",
        search={"low": 0.001, "high": 10.0, "log": True},
    )
    alpha: float = param(
        default=10.0,
        low=0.0,
        doc="Confidence scale.",
        search={"low": 1.0, "high": 100.0, "log": True},
    )
    weighting: str = param(
        default="linear",
        options=("linear", "log", "bm25"),
        doc='``"linear"``, ``"log"`` or ``"bm25"``.',
    )
    eps: float = param(default=1.0, low=0.0, low_open=True, doc="Scale inside the log weighting.")
    solver: str = param(
        default="cg",
        options=("cg", "cholesky"),
        doc='``"cg"`` (fast, approximate per sweep) or ``"cholesky"`` (exact).',
    )
    cg_steps: int = param(default=3, low=1, doc="Conjugate-gradient steps per row and sweep.")
    init_std: float = INIT_STD
    rng: int | None = param(
        default=None,
        low=0,
        doc="Seed of the initialisation (fits are deterministic: rows are solved independently).",
    )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_factors(
        cls,
        dataset: Dataset,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        **params: Any,
    ) -> ALS:
        """A fitted ALS holding factors learned elsewhere (e.g. by Spark MLlib).

        The ids, seen items and popularity come from ``dataset`` exactly as :meth:`fit`
        takes them; the factors replace the trained ones, so the model recommends, folds in,
        saves, loads and serves like any fitted ALS.

        Parameters
        ----------
        dataset
            The training interactions the factors belong to (row ``u`` of
            ``user_factors`` is user code ``u``, row ``i`` of ``item_factors`` item code ``i``).
        user_factors, item_factors
            ``(n_users, f)`` and ``(n_items, f)`` finite arrays.
        **params
            Other hyperparameters recorded with the model (``reg``, ``alpha``, ...);
            ``factors`` is the factors' width.

        Raises
        ------
        DataError
            If a factor array has the wrong shape or non-finite values.
        """
        uf = np.ascontiguousarray(user_factors, dtype=np.float32)
        itf = np.ascontiguousarray(item_factors, dtype=np.float32)
        f = uf.shape[1] if uf.ndim == 2 else -1
        for name, arr, n in (("user", uf, dataset.n_users), ("item", itf, dataset.n_items)):
            if arr.ndim != 2 or arr.shape != (n, f):
                raise DataError(
                    f"{name}_factors must have shape ({n}, {f}) for this dataset, got {arr.shape}"
                )
            if not np.isfinite(arr).all():
                raise DataError(f"{name}_factors hold non-finite values")
        model = cls(**{**params, "factors": f})
        iterations = model.iterations
        model.set_params(iterations=0)  # fit sets ids, seen items and popularity only
        model.fit(dataset)
        model.set_params(iterations=iterations)
        model.user_factors_, model.item_factors_ = uf, itf
        model._gram = None
        return model

    # ------------------------------------------------------------------ fitting
    def _confidence(self, x: sp.csr_array) -> sp.csr_array:
        if self.weighting == "linear":
            return linear_confidence(x, alpha=self.alpha)
        if self.weighting == "log":
            return log_confidence(x, alpha=self.alpha, eps=self.eps)
        w = bm25(x)
        w.data = (self.alpha * w.data).astype(np.float32)
        return w

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        from recforge._kernels.als import als_loss

        self._gram: np.ndarray | None = None
        x = dataset.matrix()
        if self.weighting == "bm25":
            self._store_bm25_stats(x)
        conf_u = self._confidence(x)
        conf_i = sp.csr_array(conf_u.T)
        conf_i.sort_indices()
        cu, ci = _csr_parts(conf_u), _csr_parts(conf_i)
        gen = make_rng(self.rng)
        f = self.factors
        self.user_factors_ = normal_factors(gen, dataset.n_users, f, 0.0, self.init_std)
        self.item_factors_ = normal_factors(gen, dataset.n_items, f, 0.0, self.init_std)
        self.loss_: list[float] = []
        for it in options.epochs(self.iterations, f"{type(self).__name__} fit"):
            self._half_step(ci, self.user_factors_, self.item_factors_)
            self._half_step(cu, self.item_factors_, self.user_factors_)
            self._gram = None
            if options.track_loss:
                self.loss_.append(als_loss(*cu, self.user_factors_, self.item_factors_, self.reg))
            if options.after_epoch(it, self):
                break

    def _half_step(
        self,
        conf: tuple[np.ndarray, np.ndarray, np.ndarray],
        fixed: np.ndarray,
        target: np.ndarray,
    ) -> None:
        from recforge._kernels.als import als_update_cg, als_update_cholesky

        fd = fixed.astype(np.float64)
        gram = fd.T @ fd
        if self.solver == "cholesky":
            als_update_cholesky(*conf, fixed, gram, target, self.reg)
        else:
            als_update_cg(*conf, fixed, gram, target, self.reg, self.cg_steps)

    # ------------------------------------------------------------------ bm25 fold-in support
    def _store_bm25_stats(self, x: sp.csr_array) -> None:
        # the statistics bm25() derives from the whole matrix, kept to weight new histories
        df = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float64)
        self.bm25_idf_ = (np.log(x.shape[0] / np.maximum(df, 1.0)).clip(min=0.0) + 1e-3).astype(
            np.float32
        )
        lengths = np.asarray(x.sum(axis=1)).ravel().astype(np.float64)
        avg = float(lengths.mean()) if lengths.size and lengths.mean() > 0 else 1.0
        self.bm25_avg_len_ = avg

    def _history_weights(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        if self.weighting == "bm25":
            k1, b = 1.2, 0.75
            r = values.astype(np.float64)
            denom = r + k1 * (1.0 - b + b * r.sum() / self.bm25_avg_len_)
            w = self.bm25_idf_[item_idx] * r * (k1 + 1.0) / denom
            return (self.alpha * w).astype(np.float32)
        row = sp.csr_array(
            (values.astype(np.float32), item_idx, np.array([0, item_idx.size])),
            shape=(1, len(self.items_)),
        )
        return self._confidence(row).data

    # ------------------------------------------------------------------ scoring
    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors_[user_idx] @ self.item_factors_.T, dtype=np.float32)

    def fold_in(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Exact least-squares factors of a new user against the fixed item factors.

        Parameters
        ----------
        item_idx
            Item codes of the history (duplicates are summed).
        values
            Interaction strengths (weighted like the training data).

        Returns
        -------
        numpy.ndarray of float32, shape (factors,)
        """
        from recforge._kernels.als import als_update_cholesky

        self._check_fitted("fold_in")
        n_items = len(self.items_)
        row = sp.csr_array(
            (values.astype(np.float32), item_idx.astype(np.int32), np.array([0, item_idx.size])),
            shape=(1, n_items),
        )
        row.sum_duplicates()
        row.sort_indices()
        weights = self._history_weights(row.indices, row.data)
        gram = self._item_gram()
        x = np.zeros((1, self.factors), dtype=np.float32)
        als_update_cholesky(
            np.array([0, row.indices.size], dtype=np.int64),
            np.ascontiguousarray(row.indices, dtype=np.int32),
            np.ascontiguousarray(weights, dtype=np.float32),
            self.item_factors_,
            gram,
            x,
            self.reg,
        )
        return x[0]

    def _item_gram(self) -> np.ndarray:
        """``Yᵀ Y`` of the item factors in float64 (computed once per fitted factors)."""
        gram = getattr(self, "_gram", None)
        if gram is None:
            y = self.item_factors_.astype(np.float64)
            gram = self._gram = y.T @ y
        return gram

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """Each history item's share of the score, exactly (Hu, Koren & Volinsky 2008, §5).

        With the user's factors solved against the item factors, ``x_u = W Σ_j (1 + w_uj)
        y_j`` for ``W = (YᵀY + Σ_j w_uj y_j y_jᵀ + reg I)⁻¹``, so the score of item ``i``
        is ``Σ_j (1 + w_uj) y_iᵀ W y_j``: one term per history item ``j``. The terms add up
        to the score (each iteration ends with the user half-step, so the user's factors are
        that solve).
        """
        items, values = self.user_history(user_idx)
        score = float(self._score_users(np.array([user_idx]))[0, item_idx])
        if items.size == 0:
            return score, "items", []
        weights = self._history_weights(items, values).astype(np.float64)
        y_hist = self.item_factors_[items].astype(np.float64)
        a = self._item_gram() + (y_hist.T * weights) @ y_hist
        a[np.diag_indices_from(a)] += self.reg
        w_yi = np.linalg.solve(a, self.item_factors_[item_idx].astype(np.float64))
        terms = (1.0 + weights) * (y_hist @ w_yi)
        order = np.argsort(-np.abs(terms), kind="stable")
        ids = self.items_.ids_of(items[order])
        return score, "items", [(i, float(t)) for i, t in zip(ids, terms[order], strict=True)]

    def _query_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors_[user_idx]

    def _key_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _history_query(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        return self.fold_in(item_idx, values), 0.0

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        state = {"user_factors": self.user_factors_, "item_factors": self.item_factors_}
        if self.weighting == "bm25":
            state["bm25_idf"] = self.bm25_idf_
        return state

    def _get_meta(self) -> dict[str, Any]:
        return {"bm25_avg_len": getattr(self, "bm25_avg_len_", None)}

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        ni = len(self.items_)
        self.user_factors_, self.item_factors_ = load_factors(
            state, len(self.users_), ni, self.factors
        )
        self._gram = None
        if self.weighting == "bm25":
            self.bm25_idf_ = check_state_shape(state, "bm25_idf", (ni,), np.float32)
            self.bm25_avg_len_ = float(meta["bm25_avg_len"])
