"""Helpers shared by the factor models (ALS, BPR, SVD, SVD++, HybridMF).

Seeding and initial factors, loading saved user and item factors, the epoch loop of the SGD
models, cosine similarity of item factor rows (with the norms cached per factor array), and the
hyperparameters and capabilities the implicit factor models (ALS, BPR) share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge.models.base import check_state_shape, param

if TYPE_CHECKING:
    from recforge.models.base import TrainingOptions

__all__ = [
    "FACTORS",
    "INIT_STD",
    "TORCH_THREADS",
    "CooccurrenceItemVectors",
    "CosineSimilarItems",
    "ImplicitFactorCapabilities",
    "cosine_scores",
    "factor_norms",
    "load_factors",
    "make_rng",
    "normal_factors",
    "train_epochs",
]


#: ``factors`` of ALS and BPR (one declaration, assigned in both classes)
FACTORS: int = param(
    default=64,
    low=1,
    doc="Number of latent factors.",
    search={"low": 16, "high": 256, "log": True},
)
#: ``threads`` of the torch models (SASRec, Mult-VAE, TwoTower)
TORCH_THREADS: int | None = param(
    default=None,
    low=1,
    doc="torch threads for training and scoring (``None``: torch's default).",
)
#: ``init_std`` of ALS and BPR
INIT_STD: float = param(
    default=0.01, low=0.0, doc="Standard deviation of the normal initial factors."
)


def make_rng(seed: int | None) -> np.random.Generator:
    """Generator from the model's ``rng`` seed (``None``: fresh OS entropy)."""
    return np.random.default_rng(seed)


def normal_factors(
    gen: np.random.Generator, n: int, factors: int, mean: float, std: float
) -> np.ndarray:
    """``(n, factors)`` float32 draws from ``N(mean, std²)``, the SGD models' initial factors."""
    return gen.normal(mean, std, (n, factors)).astype(np.float32)


def train_epochs(
    model: Any,
    options: TrainingOptions,
    n_epochs: int,
    label: str,
    step: Callable[[], float],
    history: list[float],
) -> None:
    """Run ``step`` once per epoch, append what it returns to ``history`` and honour callbacks.

    ``history`` is the model's own list (e.g. ``train_rmse_``), so a callback sees it grow.
    """
    for epoch in options.epochs(n_epochs, label):
        history.append(step())
        if options.after_epoch(epoch, model):
            break


def factor_norms(factors: np.ndarray) -> np.ndarray:
    """Euclidean norm of each factor row (float32), with 1 for all-zero rows."""
    f = factors.astype(np.float32, copy=False)
    norms = np.sqrt(np.einsum("ij,ij->i", f, f))
    norms[norms == 0] = 1.0
    return norms


def cosine_scores(
    factors: np.ndarray, item_idx: np.ndarray, norms: np.ndarray | None = None
) -> np.ndarray:
    """``(len(item_idx), n_items)`` float32 cosine similarities between item factor rows.

    ``norms`` (from :func:`factor_norms`) may be passed to avoid recomputing them per call.
    """
    f = factors.astype(np.float32, copy=False)
    if norms is None:
        norms = factor_norms(f)
    q = f[item_idx] / norms[item_idx, None]
    return np.asarray((q @ f.T) / norms[None, :], dtype=np.float32)


class CosineSimilarItems:
    """Mixin: ``similar_items`` by cosine of ``item_factors_``, with the norms cached.

    The cache holds the factor array it was computed from and is rebuilt whenever
    ``item_factors_`` is another array (refit, load), so serving pays for the norms once.
    """

    supports_item_vectors: ClassVar[bool] = True
    item_factors_: np.ndarray

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        factors = self.item_factors_
        cache = self.__dict__.get("_norm_cache")
        if cache is None or cache[0] is not factors:
            cache = (factors, factor_norms(factors))
            self.__dict__["_norm_cache"] = cache
        return cosine_scores(factors, item_idx, cache[1])


class ImplicitFactorCapabilities(CosineSimilarItems):
    """Mixin: what ALS and BPR both offer besides their factors' cosine ``similar_items``.

    A new user's history is folded in against the fixed item factors, training runs in
    epochs (callbacks, progress) and scores are inner products (approximate retrieval).
    """

    supports_similar_items: ClassVar[bool] = True
    supports_history: ClassVar[bool] = True
    supports_epochs: ClassVar[bool] = True
    supports_inner_product: ClassVar[bool] = True
    similar_items_by_vector_cosine: ClassVar[bool] = True


def load_factors(
    state: Mapping[str, np.ndarray], n_users: int, n_items: int, factors: int
) -> tuple[np.ndarray, np.ndarray]:
    """The saved ``user_factors`` and ``item_factors``, checked to be float32
    ``(n_users, factors)`` and ``(n_items, factors)`` (ModelFormatError otherwise)."""
    return (
        check_state_shape(state, "user_factors", (n_users, factors), np.float32),
        check_state_shape(state, "item_factors", (n_items, factors), np.float32),
    )


class CooccurrenceItemVectors:
    """Mixin: item vectors of neighbourhood and linear models, the items' user columns.

    Row ``i`` is the binary vector of the training users of item ``i``, so the cosine of two
    rows is their co-occurrence similarity. Built on first use and kept per ``seen_`` matrix.
    """

    supports_item_vectors: ClassVar[bool] = True
    seen_: sp.csr_array

    def _item_vectors(self) -> sp.csr_array:
        seen = self.seen_
        cache = self.__dict__.get("_item_vector_cache")
        if cache is None or cache[0] is not seen:
            vectors = sp.csr_array(seen.T, dtype=np.float32)
            vectors.data[:] = 1.0
            vectors.sort_indices()
            cache = (seen, vectors)
            self.__dict__["_item_vector_cache"] = cache
        return cache[1]


def with_unit_column(x: np.ndarray) -> np.ndarray:
    """``x`` with a column of ones appended: the query side of a ``[factors, bias]`` key."""
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([x, np.ones((x.shape[0], 1), dtype=np.float32)], axis=1)
