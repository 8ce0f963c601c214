"""Base of the models that score with an item x item matrix (ItemKNN, EASE, SLIM, RP3beta)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge._io import csr_from_state, csr_state
from recforge.models._shared import CooccurrenceItemVectors
from recforge.models.base import Recommender, check_state_shape

__all__ = ["ItemItemModel"]


class _ItemItemState:
    """What the item-item scoring reads (for type checkers): set by ``_fit`` or declared.

    ``binary`` is a hyperparameter every subclass declares; ``weights_`` and ``user_items_``
    are learned.
    """

    weights_: sp.csr_array | np.ndarray
    user_items_: sp.csr_array
    binary: bool


class ItemItemModel(_ItemItemState, CooccurrenceItemVectors, Recommender):
    """Base of models that score with an item x item matrix: ``scores = x_u @ W``.

    Subclasses set ``weights_`` (``W``, items x items, row = the user's item, column = the
    scored item; sparse CSR or dense ndarray) and ``user_items_`` (users x items CSR of the
    values ``x`` used for scoring) in ``_fit``.

    Fold-in (:meth:`recommend_for_history`) applies the same product to the given history, so
    a known user's history gives exactly that user's scores. Explanations list the user's items
    by their contribution ``x_ui · W[i, j]``.
    """

    supports_similar_items = True
    supports_history = True
    supports_explain = True

    def _history_row(self, item_idx: np.ndarray, values: np.ndarray) -> sp.csr_array:
        vals = np.ones_like(values, dtype=np.float32) if self.binary else values
        n = self.n_items
        row = sp.csr_array(
            (vals.astype(np.float32), (np.zeros(item_idx.size, dtype=np.int64), item_idx)),
            shape=(1, n),
        )
        row.sum_duplicates()
        if self.binary:
            row.data[:] = 1.0
        return row

    def _product(self, x: sp.csr_array) -> np.ndarray:
        w = self.weights_
        if isinstance(w, np.ndarray):
            out = np.asarray(x @ w, dtype=np.float32)
        else:
            out = np.asarray((x @ w).toarray(), dtype=np.float32)
        return np.ascontiguousarray(out)

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._product(self.user_items_[user_idx])

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self._product(self._history_row(item_idx, values))[0]

    def _similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        w = self.weights_
        if isinstance(w, np.ndarray):
            return np.array(w[item_idx], dtype=np.float32)
        return np.asarray(w[item_idx].toarray(), dtype=np.float32)

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        x = self.user_items_[[user_idx]]
        src = x.indices
        w = self.weights_
        col = (
            np.asarray(w[src, item_idx], dtype=np.float64)
            if isinstance(w, np.ndarray)
            else np.asarray(w[:, [item_idx]].toarray()[src, 0], dtype=np.float64)
        )
        contrib = x.data.astype(np.float64) * col
        score = float(contrib.sum())
        keep = np.flatnonzero(contrib != 0)
        order = keep[np.lexsort((src[keep], -np.abs(contrib[keep])))]
        ids = self.items_.ids_of(src[order])
        return score, "items", [(i, float(c)) for i, c in zip(ids, contrib[order], strict=True)]

    # persistence helpers for subclasses
    def _item_item_state(self) -> dict[str, np.ndarray]:
        state = csr_state("user_items", self.user_items_)
        if isinstance(self.weights_, np.ndarray):
            state["weights"] = np.ascontiguousarray(self.weights_, dtype=np.float32)
        else:
            state.update(csr_state("weights", self.weights_))
        return state

    def _set_item_item_state(self, state: Mapping[str, np.ndarray], dense: bool) -> None:
        n_u, n_i = len(self.users_), len(self.items_)
        self.user_items_ = csr_from_state(state, "user_items", (n_u, n_i))
        if dense:
            self.weights_ = check_state_shape(state, "weights", (n_i, n_i), np.float32)
        else:
            self.weights_ = csr_from_state(state, "weights", (n_i, n_i))
