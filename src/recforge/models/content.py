"""Content-based recommendation: user profiles in item-feature space, cosine scoring.

Each item ``i`` has an L2-normalised feature vector ``x_i`` built by
:class:`~recforge.features.ItemFeatures` from the item attribute table. A user's profile is
the weighted mean of the vectors of the items they interacted with,

.. math:: p_u = \\frac{\\sum_{i \\in I_u} w_{ui} x_i}{\\sum_{i \\in I_u} |w_{ui}|},

and an item's score is the cosine similarity ``p_u · x_i / ||p_u||``. With explicit ratings
the weights are ``w_ui = r_ui - mean_u`` (``weighting="centered"``), so items the user rated
below their own average push the profile away from their features (Lops et al., 2011,
"Content-based Recommender Systems: State of the Art and Trends"). An optional exponential
decay multiplies each weight by ``0.5 ** (age / half_life_days)``, the age being measured from
the user's most recent interaction.

Because scoring only needs item features, an item added after training with
:meth:`ContentBased.add_items` is recommendable at once (cold-start items).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge._io import csr_from_state as _csr_from_state
from recforge._io import csr_state as _csr_state
from recforge.data import Dataset
from recforge.exceptions import ConfigError, DataError, ModelFormatError
from recforge.features import ItemFeatures, attributes_of
from recforge.models.base import (
    Explanation,
    Recommender,
    TrainingOptions,
    _py,
    param,
)

__all__ = ["ContentBased", "ContentExplanation", "feature_blocks", "profile_weights"]

_WEIGHTINGS = ("auto", "centered", "value", "binary")
_MAX_DENSE = 20_000_000  # floats per dense scoring sub-block


@dataclass(frozen=True)
class ContentExplanation(Explanation):
    """:class:`~recforge.models.base.Explanation` of a content score, plus the user's items.

    Attributes
    ----------
    contributions : list of (feature name, weight)
        Each feature's share of the cosine score (they sum to :attr:`score`).
    similar_history : list of (item id, weight)
        The user's own items with the largest share of the score
        (``w_uj · cos(x_j, x_i) / (Σ|w_u| · ||p_u||)``; they also sum to :attr:`score`).
    """

    similar_history: list[tuple[Any, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = super().to_dict()
        out["similar_history"] = [
            {"id": _py(c), "weight": float(w)} for c, w in self.similar_history
        ]
        return out


def profile_weights(
    user: np.ndarray,
    item: np.ndarray,
    value: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    weighting: str,
    time: np.ndarray | None = None,
    half_life_days: float | None = None,
) -> sp.csr_array:
    """Row-normalised user x item weight matrix ``W`` with ``profile = W @ X``.

    Parameters
    ----------
    user, item, value
        Interaction arrays (codes and values).
    n_users, n_items
        Matrix shape.
    weighting
        ``"centered"`` (value minus the user's mean value), ``"value"`` or ``"binary"``.
        A user whose centered weights are all zero (every value equal) gets binary weights.
    time, half_life_days
        Optional exponential decay from each user's most recent interaction.

    Returns
    -------
    scipy.sparse.csr_array of float32
        Rows sum to 1 in absolute value (empty rows for users without interactions).
    """
    v = value.astype(np.float64)
    if weighting == "binary":
        w = np.ones_like(v)
    elif weighting == "value":
        w = v.copy()
    elif weighting == "centered":
        cnt = np.bincount(user, minlength=n_users).astype(np.float64)
        sums = np.bincount(user, weights=v, minlength=n_users)
        mean = np.divide(sums, cnt, out=np.zeros(n_users), where=cnt > 0)
        w = v - mean[user]
        w[np.abs(w) < 1e-9] = 0.0
        total = np.bincount(user, weights=np.abs(w), minlength=n_users)
        flat = total[user] == 0.0
        w[flat] = 1.0
    else:  # pragma: no cover - validated by the caller
        raise ConfigError(f"unknown weighting {weighting!r}")
    if half_life_days is not None and time is not None and time.size:
        last = np.full(n_users, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, user, time)
        age_days = (last[user] - time).astype(np.float64) / 86400.0
        w = w * np.power(0.5, age_days / half_life_days)
    norm = np.bincount(user, weights=np.abs(w), minlength=n_users)
    scale = np.divide(1.0, norm, out=np.zeros(n_users), where=norm > 0)
    w = w * scale[user]
    out = sp.csr_array((w.astype(np.float32), (user, item)), shape=(n_users, n_items))
    out.sum_duplicates()
    out.sort_indices()
    return out


def _pad_rows(m: sp.csr_array, n_rows: int) -> sp.csr_array:
    """``m`` with empty rows appended up to ``n_rows`` rows."""
    indptr = np.concatenate([m.indptr, np.repeat(m.indptr[-1], n_rows - m.shape[0])])
    return sp.csr_array((m.data, m.indices, indptr), shape=(n_rows, m.shape[1]))


def _replace_rows(m: sp.csr_array, codes: np.ndarray, rows: sp.csr_array) -> sp.csr_array:
    """float32 copy of ``m`` whose rows ``codes`` are ``rows`` (one row of ``rows`` per code)."""
    keep = np.ones(m.shape[0], dtype=np.float32)
    keep[codes] = 0.0
    place = sp.csr_array(
        (np.ones(codes.size, dtype=np.float32), (codes, np.arange(codes.size))),
        shape=(m.shape[0], codes.size),
    )
    out = sp.csr_array(sp.diags_array(keep) @ m + place @ rows, dtype=np.float32)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def feature_blocks(value: Any) -> list[dict[str, Any]]:
    """A feature declaration checked by :meth:`ItemFeatures.from_config`, as plain dicts.

    The ``convert`` of the ``features`` / ``user_features`` parameters.

    Raises
    ------
    ValueError
        If ``value`` is not a list of valid feature blocks (naming the bad block).
    """
    if isinstance(value, Mapping | str) or not isinstance(value, Iterable):
        raise ValueError(f"expected a list of feature block dicts, got {value!r}")
    blocks = list(value)
    ItemFeatures.from_config(blocks)
    return [dict(b) for b in blocks]


def dense_block_rows(n_cols: int) -> int:
    """Rows of a dense ``(rows, n_cols)`` float32 block that stay within the memory budget."""
    return max(1, _MAX_DENSE // max(n_cols, 1))


class ContentBased(Recommender):
    """Recommend items whose attributes resemble those of the items a user liked.

    Attributes
    ----------
    features_ : ItemFeatures
        The fitted feature builder (reused for :meth:`add_items`).
    item_features_ : scipy.sparse.csr_array
        ``(n_items, n_features)`` L2-normalised item vectors, rows aligned with item codes;
        items without attributes have empty rows.
    profiles_ : scipy.sparse.csr_array
        ``(n_users, n_features)`` user profiles (weighted means).
    weighting_ : str
        The weighting actually used (``"auto"`` resolved).

    Notes
    -----
    The model needs item attributes: fitting on a dataset without ``item_attributes`` raises
    :class:`~recforge.exceptions.DataError` (it cannot degrade to anything meaningful).

    Examples
    --------
    >>> import pandas as pd
    >>> from recforge.data import Dataset
    >>> frame = pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "c"]})
    >>> attrs = pd.DataFrame({"genres": ["x|y", "x", "z"]}, index=["a", "b", "c"])
    >>> attrs.loc["d"] = ["x"]
    >>> ds = Dataset.from_frame(frame, item_attributes=attrs)
    >>> model = ContentBased(features=[{"kind": "categories", "column": "genres"}]).fit(ds)
    >>> model.recommend([1], k=1).items[0, 0]
    'd'
    """

    name = "content"
    supports_similar_items = True
    supports_history = True
    supports_explain = True
    supports_item_vectors = True
    supports_new_items = True
    #: number of features / history items listed by ``explain``
    explain_top: ClassVar[int] = 10

    features: Sequence[Mapping[str, Any]] | None = param(
        default=None,
        convert=feature_blocks,
        doc="Feature declaration as :meth:`ItemFeatures.to_config` gives it (JSON list of "
        "blocks); ``None`` guesses one from the attribute table with :meth:`ItemFeatures.auto`.",
    )
    weighting: str = param(
        default="auto",
        options=_WEIGHTINGS,
        doc='How interaction values weight a user\'s items: ``"centered"`` (value minus the '
        'user\'s mean, so low ratings subtract), ``"value"``, ``"binary"``, or ``"auto"`` '
        '(``"centered"`` for ratings, ``"binary"`` for counts, weights and presence: see '
        ":attr:`Dataset.feedback`).",
    )
    half_life_days: float | None = param(
        default=None,
        low=0.0,
        low_open=True,
        doc="Half-life of the exponential time decay of interaction weights; ``None``: no decay.",
    )

    # ------------------------------------------------------------------ fitting
    def _builder(self, attrs: pd.DataFrame) -> ItemFeatures:
        if self.features is None:
            return ItemFeatures.auto(attrs)
        return ItemFeatures.from_config(self.features)

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        attrs = attributes_of(dataset)
        self.features_ = self._builder(attrs)
        self.item_features_ = self.features_.fit_dataset(dataset)
        if self.weighting == "auto":
            self.weighting_ = "centered" if dataset.feedback.explicit else "binary"
        else:
            self.weighting_ = self.weighting
        w = profile_weights(
            dataset.user,
            dataset.item,
            dataset.value,
            dataset.n_users,
            dataset.n_items,
            weighting=self.weighting_,
            time=dataset.time,
            half_life_days=self.half_life_days,
        )
        self.weights_ = w
        self.profiles_ = sp.csr_array(w @ self.item_features_, dtype=np.float32)

    # ------------------------------------------------------------------ scoring
    def _cosine(self, profiles: sp.csr_array) -> np.ndarray:
        """Cosine of each profile row with every item, dense float32."""
        x = self.item_features_
        n = profiles.shape[0]
        out = np.zeros((n, x.shape[0]), dtype=np.float32)
        sq = np.asarray(profiles.multiply(profiles).sum(axis=1)).ravel()
        norms = np.sqrt(sq).astype(np.float32)
        step = dense_block_rows(x.shape[1])
        for start in range(0, n, step):
            block = profiles[start : start + step].toarray()
            out[start : start + step] = (x @ block.T).T
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        out *= inv[:, None]
        return out

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._cosine(sp.csr_array(self.profiles_[user_idx]))

    def _history_profile(self, item_idx: np.ndarray, values: np.ndarray) -> sp.csr_array:
        w = profile_weights(
            np.zeros(item_idx.size, dtype=np.int32),
            item_idx,
            values,
            1,
            self.item_features_.shape[0],
            weighting=self.weighting_,
        )
        return sp.csr_array(w @ self.item_features_, dtype=np.float32)

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self._cosine(self._history_profile(item_idx, values))[0]

    def _similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        x = self.item_features_
        q = x[item_idx].toarray()
        return np.asarray((x @ q.T).T, dtype=np.float32)

    # ------------------------------------------------------------------ explanations
    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        p = self.profiles_[[user_idx]].toarray()[0]
        x = self.item_features_[[item_idx]].toarray()[0]
        norm = float(np.linalg.norm(p))
        if norm == 0.0:
            return 0.0, "features", []
        contrib = p * x / norm
        nz = np.flatnonzero(contrib)
        order = nz[np.argsort(-np.abs(contrib[nz]), kind="stable")][: self.explain_top]
        names = self.features_.feature_names_
        return (
            float(contrib.sum()),
            "features",
            [(names[f], float(contrib[f])) for f in order],
        )

    def _history_contributions(self, user_idx: int, item_idx: int) -> list[tuple[Any, float]]:
        w = self.weights_[[user_idx]]
        hist = w.indices
        if hist.size == 0:
            return []
        p = self.profiles_[[user_idx]].toarray()[0]
        norm = float(np.linalg.norm(p))
        if norm == 0.0:
            return []
        x = self.item_features_
        sims = np.asarray((x[hist] @ x[[item_idx]].T).toarray()).ravel()
        contrib = w.data * sims / norm
        order = np.argsort(-np.abs(contrib), kind="stable")[: self.explain_top]
        ids = self.items_.ids_of(hist[order])
        return [(_py(i), float(c)) for i, c in zip(ids, contrib[order], strict=True)]

    def explain(self, user: Any, item: Any) -> ContentExplanation:
        """Why ``item`` scores as it does for ``user``: features and the user's own items.

        Returns
        -------
        ContentExplanation
            ``contributions`` lists the top features (name, share of the cosine score);
            ``similar_history`` the user's items with the largest share.
        """
        base = super().explain(user, item)
        u = int(self.users_.codes([user], what="user")[0])
        i = int(self.items_.codes([item], what="item")[0])
        return ContentExplanation(
            base.user,
            base.item,
            base.score,
            base.kind,
            base.contributions,
            similar_history=self._history_contributions(u, i),
        )

    # ------------------------------------------------------------------ new items
    def _add_items(self, codes: np.ndarray, attributes: pd.DataFrame, n_items: int) -> None:
        # featurised with the fitted vocabulary; user profiles stay as they are
        new_rows = self.features_.transform(attributes)
        padded = _pad_rows(self.item_features_, n_items)
        self.item_features_ = _replace_rows(padded, codes, new_rows)
        w = self.weights_
        if n_items > w.shape[1]:
            self.weights_ = sp.csr_array((w.data, w.indices, w.indptr), shape=(w.shape[0], n_items))

    def _item_vectors(self) -> sp.csr_array:
        return self.item_features_

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        out = self.features_.get_state(prefix="features.")
        out.update(_csr_state("item_features", self.item_features_))
        out.update(_csr_state("profiles", self.profiles_))
        out.update(_csr_state("weights", self.weights_))
        return out

    def _get_meta(self) -> dict[str, Any]:
        return {"features": self.features_.to_config(), "weighting": self.weighting_}

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        try:
            self.features_ = ItemFeatures.from_config(meta["features"])
            self.features_.set_state(state, prefix="features.")
        except (ConfigError, DataError) as exc:
            raise ModelFormatError(f"invalid feature state ({exc})") from exc
        weighting = meta.get("weighting")
        if weighting not in _WEIGHTINGS[1:]:
            raise ModelFormatError(f"invalid weighting {weighting!r}")
        self.weighting_ = str(weighting)
        x = _csr_from_state(state, "item_features")
        p = _csr_from_state(state, "profiles")
        w = _csr_from_state(state, "weights")
        n_items, n_users = len(self.items_), len(self.users_)
        if x.shape != (n_items, self.features_.n_features_):
            raise ModelFormatError(f"item_features has shape {x.shape}, expected ({n_items}, F)")
        if p.shape != (n_users, x.shape[1]) or w.shape != (n_users, n_items):
            raise ModelFormatError("profiles/weights do not match the user and item indices")
        self.item_features_ = x
        self.profiles_ = p
        self.weights_ = w
