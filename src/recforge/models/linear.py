"""Linear item-item autoencoders: :class:`EASE` and :class:`SLIM`.

Both learn an item x item matrix ``W`` with a zero diagonal and score ``x_u @ W``.

* EASE (Steck 2019) solves ``min ‖X - XB‖² + λ‖B‖²`` s.t. ``diag(B) = 0`` in closed form:
  ``P = (XᵀX + λI)⁻¹``, ``B = I - P · diag(1 / diag(P))`` (so ``B_ij = -P_ij / P_jj``,
  ``B_jj = 0``). Dense ``n_items x n_items``: meant for catalogs up to a few ten thousand items.
* SLIM (Ning & Karypis 2011) fits, for every item ``j``, a non-negative elastic net predicting
  column ``j`` of ``X`` from the other columns (column ``j`` zeroed while fitting it), with
  scikit-learn's coordinate descent (``positive=True``, ``fit_intercept=False``); the fits run
  in threads over blocks of items (the solver releases the GIL). Each column keeps its
  ``n_neighbors`` largest weights.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recforge._memory import available_memory_bytes, format_bytes
from recforge.data import Dataset
from recforge.exceptions import InsufficientMemoryError
from recforge.models._itemitem import ItemItemModel
from recforge.models.base import TrainingOptions, param

__all__ = ["EASE", "SLIM", "ease_memory_bytes", "ease_weights", "slim_weights"]


def ease_memory_bytes(n_items: int, dtype: Any = np.float64) -> int:
    """Peak bytes of :func:`ease_weights` on ``n_items`` items: the Gram matrix inverted in
    place (``n²`` of ``dtype``) plus the float32 ``B`` it becomes (``n²`` more when ``dtype``
    is float64)."""
    size = np.dtype(dtype).itemsize
    extra = 4 if size != 4 else 0
    return int(n_items) ** 2 * (size + extra)


def check_ease_memory(n_items: int, dtype: Any) -> None:
    """Refuse a fit that would not fit in memory (it would swap for hours, or be killed)."""
    need = ease_memory_bytes(n_items, dtype)
    have = available_memory_bytes()
    if have is None or need <= have:
        return
    half = ease_memory_bytes(n_items, np.float32)
    hint = (
        f"precision='float32' needs {format_bytes(half)}; " if np.dtype(dtype) != np.float32 else ""
    )
    raise InsufficientMemoryError(
        f"EASE on {n_items:,} items needs about {format_bytes(need)} (a dense items x items "
        f"matrix) but only {format_bytes(have)} is available. {hint}for a catalogue this "
        "size use a sparse item model (slim, itemknn, rp3beta) or a factor model (als), or "
        "filter rare items first (prepare: k_core)"
    )


def ease_weights(x: sp.csr_array, reg: float, dtype: Any = np.float64) -> np.ndarray:
    """EASE's ``B`` (dense ``(n_items, n_items)`` float32) of a users x items matrix ``x``."""
    xs = sp.csr_array(x, dtype=dtype)
    gram = np.asarray((xs.T @ xs).toarray(), dtype=dtype)
    gram[np.diag_indices_from(gram)] += reg
    p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    del gram
    p /= -np.diag(p).copy()[None, :]
    p[np.diag_indices_from(p)] = 0.0
    return np.ascontiguousarray(p, dtype=np.float32)


class EASE(ItemItemModel):
    """Embarrassingly Shallow Autoencoder (Steck 2019), closed form.

    Attributes
    ----------
    weights_ : numpy.ndarray of float32
        ``B`` (items x items), zero diagonal.
    """

    name = "ease"

    reg: float = param(
        default=500.0,
        low=0.0,
        low_open=True,
        doc="L2 regularisation ``λ`` added to the Gram matrix's diagonal.",
        search={"low": 50.0, "high": 5000.0, "log": True},
    )
    binary: bool = param(
        default=False,
        doc="Use 1 for every interaction instead of its value (EASE's usual input).",
    )
    precision: str = param(
        default="float64",
        options=("float64", "float32"),
        doc='``"float64"`` or ``"float32"`` for the Gram matrix and its inverse (float32 '
        "halves memory and time; the learned ``B`` is stored as float32 either way).",
    )

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        check_ease_memory(dataset.n_items, np.dtype(self.precision))
        self.user_items_ = dataset.matrix(binary=self.binary, dtype=np.float32)
        self.weights_ = ease_weights(self.user_items_, self.reg, np.dtype(self.precision))

    def _get_state(self) -> dict[str, np.ndarray]:
        return self._item_item_state()

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self._set_item_item_state(state, dense=True)


def _fit_slim_block(
    x: sp.csc_matrix,
    items: np.ndarray,
    reg: float,
    l1_ratio: float,
    n_neighbors: int,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Fit the columns ``items`` on a private copy of ``x``; returns (rows, cols, vals, n_bad)."""
    from sklearn.linear_model import ElasticNet

    xb = x.copy()
    model = ElasticNet(
        alpha=reg,
        l1_ratio=l1_ratio,
        positive=True,
        fit_intercept=False,
        copy_X=False,
        precompute=False,
        selection="cyclic",
        max_iter=max_iter,
        tol=tol,
    )
    rows, cols, vals = [], [], []
    not_converged = 0
    for j in items:
        start, stop = xb.indptr[j], xb.indptr[j + 1]
        y = np.zeros(xb.shape[0], dtype=np.float64)
        y[xb.indices[start:stop]] = xb.data[start:stop]
        saved = xb.data[start:stop].copy()
        xb.data[start:stop] = 0.0
        model.fit(xb, y, check_input=False)
        xb.data[start:stop] = saved
        if model.n_iter_ >= max_iter:
            not_converged += 1
        coef = model.coef_
        nz = np.flatnonzero(coef > 0)
        if nz.size > n_neighbors:
            part = np.argpartition(-coef[nz], n_neighbors - 1)[:n_neighbors]
            nz = nz[part]
        rows.append(nz.astype(np.int32))
        cols.append(np.full(nz.size, j, dtype=np.int32))
        vals.append(coef[nz].astype(np.float32))
    cat = np.concatenate
    empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0, np.float32)
    return (
        cat(rows) if rows else empty_i,
        cat(cols) if cols else empty_i,
        cat(vals) if vals else empty_f,
        not_converged,
    )


def slim_weights(
    x: sp.csr_array,
    reg: float,
    l1_ratio: float,
    n_neighbors: int,
    max_iter: int = 100,
    tol: float = 1e-4,
    n_threads: int = 0,
    block: int = 64,
) -> tuple[sp.csr_array, int]:
    """SLIM's ``W`` (sparse items x items) and the number of columns that hit ``max_iter``.

    Each column ``j`` solves ``min 1/(2n) ‖x_j - X w‖² + reg·l1_ratio‖w‖₁ +
    reg·(1-l1_ratio)/2 ‖w‖²`` with ``w ≥ 0`` and ``w_j = 0`` (scikit-learn's objective).
    Results do not depend on ``n_threads``.
    """
    xc = sp.csc_matrix(x, dtype=np.float64)
    xc.sum_duplicates()
    xc.sort_indices()
    n_items = xc.shape[1]
    blocks = [np.arange(s, min(s + block, n_items)) for s in range(0, n_items, block)]
    workers = n_threads if n_threads > 0 else (os.cpu_count() or 1)
    with warnings.catch_warnings():
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)
        if workers == 1 or len(blocks) == 1:
            parts = [
                _fit_slim_block(xc, b, reg, l1_ratio, n_neighbors, max_iter, tol) for b in blocks
            ]
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(blocks))) as pool:
                parts = list(
                    pool.map(
                        lambda b: _fit_slim_block(xc, b, reg, l1_ratio, n_neighbors, max_iter, tol),
                        blocks,
                    )
                )
    rows = np.concatenate([p[0] for p in parts])
    cols = np.concatenate([p[1] for p in parts])
    vals = np.concatenate([p[2] for p in parts])
    w = sp.csr_array((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)
    w.sum_duplicates()
    w.sort_indices()
    return w, int(sum(p[3] for p in parts))


class SLIM(ItemItemModel):
    """Sparse Linear Methods (Ning & Karypis 2011) with elastic-net column fits.

    Attributes
    ----------
    weights_ : scipy.sparse.csr_array
        ``W`` (items x items), zero diagonal, non-negative.
    n_not_converged_ : int
        Columns whose fit stopped at ``max_iter`` (raise ``max_iter`` or ``tol`` if large).
    """

    name = "slim"

    reg: float = param(
        default=1e-3,
        low=0.0,
        low_open=True,
        doc="Overall penalty (scikit-learn's ``alpha``).",
        search={"low": 1e-5, "high": 0.1, "log": True},
    )
    l1_ratio: float = param(
        default=0.1,
        low=0.0,
        high=1.0,
        doc="Share of L1 in the penalty (0: ridge, 1: lasso).",
        search={"low": 0.01, "high": 0.9, "log": True},
    )
    n_neighbors: int = param(default=100, low=1, doc="Largest weights kept per item column.")
    max_iter: int = param(
        default=100, low=1, doc="Coordinate-descent iteration limit of each column fit."
    )
    tol: float = param(
        default=1e-4, low=0.0, low_open=True, doc="Coordinate-descent tolerance of each column fit."
    )
    binary: bool = param(default=False, doc="Use 1 for every interaction instead of its value.")
    n_threads: int = param(
        default=0,
        low=0,
        doc="Threads for the column fits (0: one per CPU); does not change the result.",
    )

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        self.user_items_ = dataset.matrix(binary=self.binary, dtype=np.float32)
        self.weights_, self.n_not_converged_ = slim_weights(
            self.user_items_,
            self.reg,
            self.l1_ratio,
            self.n_neighbors,
            self.max_iter,
            self.tol,
            self.n_threads,
        )

    def _get_state(self) -> dict[str, np.ndarray]:
        return self._item_item_state()

    def _get_meta(self) -> dict[str, Any]:
        return {"n_not_converged": self.n_not_converged_}

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self._set_item_item_state(state, dense=False)
        self.n_not_converged_ = int(meta.get("n_not_converged", 0))
