"""Graph random-walk model :class:`RP3beta` (Paudel et al. 2017; Dacrema et al. 2019).

A three-step random walk user -> item -> user -> item on the bipartite interaction graph, with
each step's transition probabilities raised to ``alpha`` and the arrival item's probability
divided by its popularity to the power ``beta``::

    P_ui = rownorm(X) ** alpha          (users x items, from the interaction values)
    P_iu = rownorm(bool(X).T) ** alpha  (items x users)
    W[i, j] = (P_iu @ P_ui)[i, j] / pop_j ** beta,   W[i, i] = 0

Each row of ``W`` keeps its ``n_neighbors`` largest entries and, with ``normalize``, is
rescaled to sum to one; scores are ``x_u @ W``. ``W`` is computed blockwise by the sparse
top-n kernel of :mod:`recforge._kernels.similarity` (mode ``"dot_scaled"``), so the dense
``n_items x n_items`` product is never formed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge._kernels.similarity import topn_similarity
from recforge.data import Dataset
from recforge.data.weighting import normalize_rows
from recforge.models._itemitem import ItemItemModel
from recforge.models.base import TrainingOptions, param

__all__ = ["RP3beta", "rp3beta_weights"]


def rp3beta_weights(
    x: sp.csr_array, alpha: float, beta: float, n_neighbors: int, normalize: bool
) -> sp.csr_array:
    """The pruned RP3beta item x item matrix ``W`` of a users x items matrix ``x``."""
    x = sp.csr_array(x, dtype=np.float32)
    x.sum_duplicates()
    p_ui = normalize_rows(x, "l1", dtype=np.float64)
    x_bool = sp.csr_array(x.T, dtype=np.float64)
    x_bool.data[:] = 1.0
    pop = np.asarray(x_bool.sum(axis=1)).ravel()
    p_iu = normalize_rows(x_bool, "l1", dtype=np.float64)
    if alpha != 1.0:
        p_ui.data = np.power(p_ui.data, alpha)
        p_iu.data = np.power(p_iu.data, alpha)
    degree = np.zeros_like(pop)
    nz = pop > 0
    degree[nz] = np.power(pop[nz], -beta)
    w = topn_similarity(p_iu, "dot_scaled", n_neighbors, scale=degree, t=p_ui, min_sim=0.0)
    if normalize:
        w = sp.csr_array(normalize_rows(w, "l1", dtype=np.float64), dtype=np.float32)
    w.sort_indices()
    return w


class RP3beta(ItemItemModel):
    """Random walk with popularity-penalised arrival (RP3beta).

    Attributes
    ----------
    weights_ : scipy.sparse.csr_array
        ``W`` (items x items); row ``i`` holds ``i``'s neighbours.
    """

    name = "rp3beta"

    alpha: float = param(
        default=1.0,
        low=0.0,
        low_open=True,
        doc="Exponent of the transition probabilities (1 gives plain P3).",
        search={"low": 0.2, "high": 1.5},
    )
    beta: float = param(
        default=0.5,
        low=0.0,
        doc="Popularity penalty: the arrival item's probability is divided by ``pop ** beta``.",
        search={"low": 0.0, "high": 1.0},
    )
    n_neighbors: int = param(
        default=100,
        low=1,
        doc="Entries kept per row of ``W``.",
        search={"low": 20, "high": 500, "log": True},
    )
    normalize: bool = param(
        default=True,
        doc="Rescale each pruned row of ``W`` to sum to one (Dacrema et al.'s default).",
    )
    binary: bool = param(default=False, doc="Use 1 for every interaction instead of its value.")

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        self.user_items_ = dataset.matrix(binary=self.binary, dtype=np.float32)
        self.weights_ = rp3beta_weights(
            self.user_items_, self.alpha, self.beta, self.n_neighbors, self.normalize
        )

    def _get_state(self) -> dict[str, np.ndarray]:
        return self._item_item_state()

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self._set_item_item_state(state, dense=False)
