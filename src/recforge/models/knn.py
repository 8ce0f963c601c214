"""Neighbourhood models: :class:`ItemKNN` and :class:`UserKNN`.

Both compute a sparse top-``n_neighbors`` similarity blockwise (never a dense ``n x n`` matrix,
see :mod:`recforge._kernels.similarity`) and serve two purposes:

* **top-N ranking** (implicit or explicit data): ``score(u, j) = Σ_i x_ui · s(j, i)`` for
  item-kNN (the user's items weighted by their similarity to ``j``), ``Σ_v s(u, v) · x_vj`` for
  user-kNN;
* **rating prediction** with Surprise's rules (Hug 2020): ``prediction="plain"`` (KNNBasic),
  ``"mean_centered"`` (KNNWithMeans) or ``"baseline"`` (KNNBaseline) using the ``max_k`` most
  similar neighbours of the target that rated the item (user-kNN: that the user's neighbours
  rated), and only if at least ``min_k`` such neighbours have a positive similarity.

Similarities (``similarity``): ``"cosine"``, ``"adjusted_cosine"`` (cosine after centring each
feature, e.g. each user for item-kNN, on its mean; Sarwar et al. 2001), ``"pearson"`` (over the
common support, as Surprise), ``"jaccard"`` and ``"asymmetric_cosine"`` (Aiolli 2013,
``Σxy / (‖y‖²^alpha · ‖x‖²^(1-alpha))``). ``norms="common"`` takes cosine norms over co-rated
entries only (Surprise's cosine). Shrinkage multiplies by ``n_common / (n_common + shrink)``.

A small prediction example (Surprise KNNBasic semantics)::

    >>> import pandas as pd
    >>> from recforge.data import Dataset
    >>> from recforge.models.knn import ItemKNN
    >>> frame = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "b", "a", "c"],
    ...                       "r": [5.0, 4.0, 3.0, 2.0, 4.0, 1.0]})
    >>> data = Dataset.from_frame(frame, value="r")
    >>> m = ItemKNN(similarity="cosine", prediction="plain").fit(data)
    >>> round(float(m.predict([3], ["b"])[0]), 3)
    4.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge._io import csr_from_state, csr_state
from recforge._kernels.knn import predict_pairs
from recforge._kernels.similarity import topn_similarity
from recforge.data import Dataset
from recforge.data.weighting import bm25, tfidf
from recforge.exceptions import ConfigError, ModelFormatError
from recforge.models._itemitem import ItemItemModel
from recforge.models._shared import CooccurrenceItemVectors
from recforge.models.base import Recommender, TrainingOptions, check_state_shape, param
from recforge.models.bias import dataset_biases

__all__ = ["ItemKNN", "UserKNN"]

SIMILARITIES = ("cosine", "adjusted_cosine", "pearson", "jaccard", "asymmetric_cosine")
_KERNEL_MODE = {
    "cosine": "cosine",
    "adjusted_cosine": "cosine",
    "pearson": "pearson",
    "jaccard": "jaccard",
    "asymmetric_cosine": "asymmetric",
}


def _values(dataset: Dataset, binary: bool) -> sp.csr_array:
    return dataset.matrix(binary=binary, dtype=np.float32)


def _weight(m: sp.csr_array, scheme: str) -> sp.csr_array:
    """Weight the rows-as-documents matrix ``m`` (entities x features)."""
    if scheme == "bm25":
        return bm25(m)
    if scheme == "tfidf":
        return tfidf(m)
    return m


def _centre_columns(m: sp.csr_array) -> sp.csr_array:
    """Subtract from each stored entry its column's mean over stored entries."""
    out = sp.csr_array(m, dtype=np.float32, copy=True)
    n = np.bincount(out.indices, minlength=out.shape[1]).astype(np.float64)
    s = np.bincount(out.indices, weights=out.data, minlength=out.shape[1])
    mean = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
    out.data = (out.data - mean[out.indices]).astype(np.float32)
    return out


# --------------------------------------------------------------------------- kNN common
class _KNNState:
    """Learned state shared by item- and user-kNN (for type checkers; set in ``_fit``)."""

    ratings_: sp.csr_array
    user_items_: sp.csr_array
    global_mean_: float
    base_target_: np.ndarray
    base_neighbor_: np.ndarray
    base_other_: np.ndarray
    rating_range_: tuple[float, float]


class _KNN(_KNNState, Recommender):
    """Hyperparameters and fitting steps shared by item- and user-kNN (entities = rows compared).

    The parameter docs speak of item-kNN; user-kNN swaps the roles of users and items.
    """

    n_neighbors: int = param(
        default=100,
        low=1,
        doc="Neighbours kept per entity (the most similar ones). For predictions identical to "
        "Surprise's (which never prunes), use at least the catalog size.",
        search={"low": 10, "high": 500, "log": True},
    )
    similarity: str = param(
        default="cosine",
        options=SIMILARITIES,
        doc='``"cosine"``, ``"adjusted_cosine"``, ``"pearson"``, ``"jaccard"`` or '
        '``"asymmetric_cosine"``.',
    )
    alpha: float = param(
        default=0.5,
        low=0.0,
        high=1.0,
        doc="Exponent of the asymmetric cosine (0.5 gives the cosine).",
    )
    shrink: float = param(
        default=0.0,
        low=0.0,
        doc="Shrinkage ``n_common / (n_common + shrink)`` of each similarity.",
        search={"low": 0.0, "high": 100.0},
    )
    norms: str = param(
        default="full",
        options=("full", "common"),
        doc='``"full"`` (norms over all of an entity\'s features) or ``"common"`` (over '
        "co-rated entries only, Surprise's cosine).",
    )
    min_support: int = param(
        default=1, low=1, doc="Pairs with fewer common users (items) get similarity 0."
    )
    min_similarity: float = param(
        default=0.0, low=-1.0, doc="Only similarities strictly above this are kept."
    )
    weighting: str = param(
        default="none",
        options=("none", "bm25", "tfidf"),
        doc='``"none"``, ``"bm25"`` or ``"tfidf"`` re-weighting of the entity x feature '
        "matrix (entities as documents) before the similarity.",
    )
    binary: bool = param(
        default=False,
        doc="Treat every interaction as 1 (implicit data) for similarity and ranking scores.",
    )
    prediction: str = param(
        default="plain",
        options=("plain", "mean_centered", "baseline"),
        doc='Rating rule of :meth:`predict`: ``"plain"`` (KNNBasic), ``"mean_centered"`` '
        '(KNNWithMeans) or ``"baseline"`` (KNNBaseline).',
    )
    max_k: int = param(default=40, low=1, doc="At most ``max_k`` neighbours enter a prediction.")
    min_k: int = param(
        default=1,
        low=1,
        doc="With fewer than ``min_k`` neighbours the rule's fallback is used (global mean, "
        "entity mean, or baseline); at most ``max_k``.",
    )
    reg_user: float = param(
        default=15.0,
        low=0.0,
        doc='Regularisation of the user baselines of ``prediction="baseline"`` (Surprise\'s '
        "ALS defaults).",
    )
    reg_item: float = param(
        default=10.0,
        low=0.0,
        doc='Regularisation of the item baselines of ``prediction="baseline"``.',
    )

    @classmethod
    def _check_combination(cls, values: Mapping[str, Any]) -> None:
        if values["min_k"] > values["max_k"]:
            raise ConfigError(
                f"The 'min_k' parameter of {cls.__name__} ({values['min_k']}) must not exceed "
                f"'max_k' ({values['max_k']})"
            )

    def _entity_similarity(
        self, entities: sp.csr_array, rows: np.ndarray | None = None
    ) -> sp.csr_array:
        """Top-n similarity of the rows of ``entities`` (entities x features, values).

        ``rows`` limits the result to those rows' neighbours (all rows when ``None``).
        """
        m = sp.csr_array(entities, dtype=np.float32)
        if self.binary:
            m = m.copy()
            m.data[:] = 1.0
        m = _weight(m, self.weighting)
        if self.similarity == "adjusted_cosine":
            m = _centre_columns(m)
        return topn_similarity(
            m,
            _KERNEL_MODE[self.similarity],
            self.n_neighbors,
            common_norms=self.norms == "common",
            alpha=self.alpha,
            shrink=self.shrink,
            min_support=self.min_support,
            min_sim=self.min_similarity,
            rows=rows,
        )

    def _fit_baselines(self, dataset: Dataset, item_based: bool) -> None:
        """Set the global mean, the baselines of the prediction rule and the rating range."""
        mu, bt, bn, bo = self._rating_baselines(dataset, item_based)
        self.global_mean_ = mu
        self.base_target_, self.base_neighbor_, self.base_other_ = bt, bn, bo
        self.rating_range_ = (float(dataset.value.min()), float(dataset.value.max()))

    def _set_user_items(self) -> None:
        """Scoring values ``user_items_``: the ratings, or ones when ``binary``."""
        self.user_items_ = self.ratings_.copy()
        if self.binary:
            self.user_items_.data[:] = 1.0

    def _get_state(self) -> dict[str, np.ndarray]:
        return _knn_state(self)

    def _get_meta(self) -> dict[str, Any]:
        return {"global_mean": self.global_mean_, "rating_range": list(self.rating_range_)}

    def _rating_baselines(
        self, dataset: Dataset, item_based: bool
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """``(global_mean, base_target, base_neighbour, base_other)`` of the prediction rule."""
        v = dataset.value.astype(np.float64)
        mu = float(v.mean())
        ent = dataset.item if item_based else dataset.user
        n_ent = dataset.n_items if item_based else dataset.n_users
        n_oth = dataset.n_users if item_based else dataset.n_items
        if self.prediction == "plain":
            z = np.zeros(n_ent)
            return mu, z, z, np.zeros(n_oth)
        if self.prediction == "mean_centered":
            cnt = np.bincount(ent, minlength=n_ent).astype(np.float64)
            s = np.bincount(ent, weights=v, minlength=n_ent)
            means = np.divide(s, cnt, out=np.full(n_ent, mu), where=cnt > 0)
            return mu, means, means, np.zeros(n_oth)
        _mu, bu, bi = dataset_biases(dataset, self.reg_user, self.reg_item)
        b_ent, b_oth = (bi, bu) if item_based else (bu, bi)
        return mu, mu + b_ent, mu + b_ent, b_oth


class ItemKNN(_KNN, ItemItemModel):
    """Item-based k-nearest-neighbours (Sarwar et al. 2001; Deshpande & Karypis 2004).

    The entities compared are items, their features the users who rated them.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_array
        ``(n_items, n_items)``; row ``j`` holds ``j``'s neighbours, sorted by similarity.
    weights_ : scipy.sparse.csr_array
        ``similarity_.T``: scores are ``user_items_ @ weights_``.
    """

    name = "itemknn"
    explicit = True
    supports_predict = True
    _item_based: ClassVar[bool] = True

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        ratings = _values(dataset, binary=False)
        self.similarity_ = self._entity_similarity(sp.csr_array(ratings.T))
        self.weights_ = sp.csr_array(self.similarity_.T)
        self.ratings_ = ratings
        self.user_items_ = _values(dataset, binary=self.binary)
        self._fit_baselines(dataset, item_based=True)

    def _similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.similarity_[item_idx].toarray(), dtype=np.float32)

    def _predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return _predict_knn(self, target=item_idx, other=user_idx, rated_by_other=self.ratings_)

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        n_u, n_i = len(self.users_), len(self.items_)
        self.similarity_ = csr_from_state(state, "similarity", (n_i, n_i))
        self.weights_ = sp.csr_array(self.similarity_.T)
        self.ratings_ = csr_from_state(state, "ratings", (n_u, n_i))
        self._set_user_items()
        _set_knn_bases(self, state, meta, n_i, n_u)


class UserKNN(CooccurrenceItemVectors, _KNN):
    """User-based k-nearest-neighbours (Herlocker et al. 1999; Surprise's user-based kNN).

    Scores ``Σ_v s(u, v) · x_vj`` over the ``n_neighbors`` users most similar to ``u``; rating
    predictions use the ``max_k`` most similar neighbours of ``u`` that rated the item.
    The entities compared are users, their features the items they rated (``weighting``
    treats users as documents, ``adjusted_cosine`` centres each item).

    Fold-in (:meth:`recommend_for_history`) computes the new user's similarity to every
    training user (weighting and centring computed with the new row included).
    Explanations list the similar users who have the item, by their term ``s(u, v) · x_vj``.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_array
        ``(n_users, n_users)``; row ``u`` holds ``u``'s neighbours, sorted by similarity.
    """

    name = "userknn"
    explicit = True
    supports_predict = True
    supports_history = True
    supports_explain = True

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        ratings = _values(dataset, binary=False)
        self.ratings_ = ratings
        self.similarity_ = self._entity_similarity(ratings)
        self._set_derived()
        self._fit_baselines(dataset, item_based=False)

    def _set_derived(self) -> None:
        self._set_user_items()
        self.item_raters_ = sp.csr_array(self.ratings_.T)
        self.item_raters_.sort_indices()

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        s = self.similarity_[user_idx]
        return np.ascontiguousarray((s @ self.user_items_).toarray(), dtype=np.float32)

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        n_u, n_i = self.ratings_.shape
        row = sp.csr_array(
            (values.astype(np.float32), (np.zeros(item_idx.size, dtype=np.int64), item_idx)),
            shape=(1, n_i),
        )
        row.sum_duplicates()
        stacked = sp.csr_array(sp.vstack([self.ratings_, row], format="csr"))
        sim = self._entity_similarity(stacked, rows=np.array([n_u], dtype=np.int64))
        sim = sp.csr_array(sim[:, :n_u])
        return np.asarray((sim @ self.user_items_).toarray(), dtype=np.float32)[0]

    def _predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return _predict_knn(self, target=user_idx, other=item_idx, rated_by_other=self.item_raters_)

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """Similar users who have the item: each neighbour's term ``s(u, v) · x_vj``.

        The terms add up to the ranking score (:meth:`score_users`).
        """
        s = self.similarity_[[user_idx]]
        neighbours = s.indices
        x = np.asarray(self.user_items_[neighbours][:, [item_idx]].toarray()[:, 0], np.float64)
        contrib = s.data.astype(np.float64) * x
        score = float(contrib.sum())
        keep = np.flatnonzero(contrib != 0)
        order = keep[np.lexsort((neighbours[keep], -np.abs(contrib[keep])))]
        ids = self.users_.ids_of(neighbours[order])
        return score, "users", [(v, float(c)) for v, c in zip(ids, contrib[order], strict=True)]

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        n_u, n_i = len(self.users_), len(self.items_)
        self.similarity_ = csr_from_state(state, "similarity", (n_u, n_u))
        self.ratings_ = csr_from_state(state, "ratings", (n_u, n_i))
        self._set_derived()
        _set_knn_bases(self, state, meta, n_u, n_i)


# --------------------------------------------------------------------------- shared helpers
def _knn_state(model: Any) -> dict[str, np.ndarray]:
    state = csr_state("similarity", model.similarity_)
    state.update(csr_state("ratings", model.ratings_))
    state["base_target"] = np.asarray(model.base_target_, dtype=np.float64)
    state["base_neighbor"] = np.asarray(model.base_neighbor_, dtype=np.float64)
    state["base_other"] = np.asarray(model.base_other_, dtype=np.float64)
    return state


def _set_knn_bases(
    model: Any, state: Mapping[str, np.ndarray], meta: Mapping[str, Any], n_ent: int, n_oth: int
) -> None:
    model.base_target_ = check_state_shape(state, "base_target", (n_ent,), np.float64)
    model.base_neighbor_ = check_state_shape(state, "base_neighbor", (n_ent,), np.float64)
    model.base_other_ = check_state_shape(state, "base_other", (n_oth,), np.float64)
    try:
        model.global_mean_ = float(meta["global_mean"])
        lo, hi = (float(v) for v in meta["rating_range"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(
            f"model metadata lacks a valid global mean / rating range: {exc}"
        ) from exc
    model.rating_range_ = (lo, hi)


def _predict_knn(
    model: Any, target: np.ndarray, other: np.ndarray, rated_by_other: sp.csr_array
) -> np.ndarray:
    """Surprise-style estimates; unknown ids get the rule's fallback (see module docstring)."""
    mu = float(model.global_mean_)
    n = target.shape[0]
    est = np.full(n, mu, dtype=np.float64)
    kt, ko = target >= 0, other >= 0
    if model.prediction == "baseline":  # KNNBaseline: mu + whatever biases are known
        est[kt] += model.base_target_[target[kt]] - mu
        est[ko] += model.base_other_[other[ko]]
    known = np.flatnonzero(kt & ko)
    if known.size:
        r = rated_by_other
        if not r.has_sorted_indices:
            r.sort_indices()
        s = model.similarity_
        out = np.empty(known.size, dtype=np.float64)
        out_k = np.empty(known.size, dtype=np.int64)
        predict_pairs(
            s.indptr.astype(np.int64),
            s.indices.astype(np.int32),
            s.data.astype(np.float32),
            r.indptr.astype(np.int64),
            r.indices.astype(np.int32),
            r.data.astype(np.float32),
            target[known].astype(np.int64),
            other[known].astype(np.int64),
            np.asarray(model.base_target_, dtype=np.float64),
            np.asarray(model.base_neighbor_, dtype=np.float64),
            np.asarray(model.base_other_, dtype=np.float64),
            int(model.max_k),
            int(model.min_k),
            model.prediction == "plain",
            mu,
            out,
            out_k,
        )
        est[known] = out
    lo, hi = model.rating_range_
    return np.clip(est, lo, hi)
