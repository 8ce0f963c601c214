"""The :class:`Recommender` contract shared by every model, and :class:`Recommendations`.

Unknown-id policy
-----------------
* ``predict``: a pair whose user or item was not seen in training gets the best available
  estimate (global mean plus any known bias), as Surprise does, so cross-validation works.
* ``recommend``: an unknown user raises :class:`~recforge.exceptions.UnknownIdError` with
  ``on_unknown="raise"`` (the default) or gets the most popular training items with
  ``on_unknown="popular"``.
* ``similar_items`` / ``recommend_for_history``: unknown items raise, or are ignored with
  ``on_unknown="ignore"`` for histories (a history may mention items added after training).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge._kernels.topk import topk
from recforge.data import Columns, Dataset, IdIndex
from recforge.exceptions import (
    ConfigError,
    DataError,
    ModelFormatError,
    NotFittedError,
    UnknownIdError,
    UnsupportedCapabilityError,
)

__all__ = [
    "FORMAT_VERSION",
    "Explanation",
    "Param",
    "Recommendations",
    "Recommender",
    "check_state_shape",
]

FORMAT_VERSION = 1
"""Version of the on-disk model format; checked on load."""

OnUnknown = Literal["raise", "popular"]
ItemFilter = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Param:
    """Declared constraint of one hyperparameter, checked on construction and ``set_params``.

    Parameters
    ----------
    kind
        ``int``, ``float``, ``bool`` or ``str``.
    low, high
        Inclusive bounds for numbers (``None``: unbounded).
    options
        Allowed values for strings.
    nullable
        Whether ``None`` is allowed.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    options: tuple[Any, ...] | None = None
    nullable: bool = False
    low_open: bool = False

    def check(self, owner: str, name: str, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        ok = True
        if self.kind is int:
            ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
            value = int(value) if ok else value
        elif self.kind is float:
            ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                value, bool
            )
            ok = ok and math.isfinite(float(value))
            value = float(value) if ok else value
        elif self.kind is bool:
            ok = isinstance(value, bool | np.bool_)
        elif self.kind is str:
            ok = isinstance(value, str)
        if ok and self.options is not None:
            ok = value in self.options
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value <= self.high
        if not ok:
            raise ConfigError(
                f"The {name!r} parameter of {owner} must be {self.describe()}. "
                f"Got {value!r} instead."
            )
        return value

    def describe(self) -> str:
        if self.options is not None:
            text = "one of " + ", ".join(repr(o) for o in self.options)
        else:
            kind = {int: "an int", float: "a float", bool: "a bool", str: "a str"}[self.kind]
            if self.low is not None or self.high is not None:
                lo = "-inf" if self.low is None else f"{self.low:g}"
                hi = "inf" if self.high is None else f"{self.high:g}"
                lb = "(" if self.low is None or self.low_open else "["
                rb = ")" if self.high is None else "]"
                text = f"{kind} in the range {lb}{lo}, {hi}{rb}"
            else:
                text = kind
        return text + (" or None" if self.nullable else "")


# --------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class Recommendations:
    """Top-K lists for a batch of users.

    Attributes
    ----------
    users : numpy.ndarray
        External user ids, shape ``(n,)``.
    items : numpy.ndarray
        External item ids, shape ``(n, k)``; entries past ``lengths[i]`` are padding.
    scores : numpy.ndarray of float32
        Scores, shape ``(n, k)``; NaN for padding.
    lengths : numpy.ndarray of int64
        Number of real recommendations in each row (fewer than ``k`` when too few items
        were eligible).
    item_codes : numpy.ndarray of int32
        Internal item codes of the model's index, ``-1`` for padding.
    reasons : numpy.ndarray of object or None
        Per-user note, e.g. ``"unknown user: popular items"`` for a fallback.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    lengths: np.ndarray
    item_codes: np.ndarray
    reasons: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @property
    def k(self) -> int:
        """List length (columns of :attr:`items`)."""
        return int(self.items.shape[1])

    def to_frame(self) -> pd.DataFrame:
        """Long format: one row per (user, item) with ``score`` and 1-based ``rank``."""
        _n, _k = self.item_codes.shape
        valid = self.item_codes >= 0
        rows, cols = np.nonzero(valid)
        return pd.DataFrame(
            {
                Columns.user: self.users[rows],
                Columns.item: self.items[rows, cols],
                Columns.score: self.scores[rows, cols],
                Columns.rank: (cols + 1).astype(np.int64),
            }
        )

    def for_user(self, position: int) -> list[tuple[Any, float]]:
        """``(item, score)`` pairs of the ``position``-th user in the batch."""
        n = int(self.lengths[position])
        return [
            (
                self.items[position, j].item()
                if hasattr(self.items[position, j], "item")
                else self.items[position, j],
                float(self.scores[position, j]),
            )
            for j in range(n)
        ]


@dataclass(frozen=True)
class Explanation:
    """Why a model scored an item for a user.

    Attributes
    ----------
    user, item
        External ids.
    score : float
        The model's score of the pair.
    kind : str
        ``"items"`` (contributions of the user's own items) or ``"features"``.
    contributions : list of (id or feature name, weight)
        Sorted by decreasing absolute weight.
    """

    user: Any
    item: Any
    score: float
    kind: str
    contributions: list[tuple[Any, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "user": _py(self.user),
            "item": _py(self.item),
            "score": float(self.score),
            "kind": self.kind,
            "contributions": [{"id": _py(c), "weight": float(w)} for c, w in self.contributions],
        }


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


# --------------------------------------------------------------------------- contract
class Recommender:
    """Base class of every recforge model (scikit-learn spirit).

    Hyperparameters are constructor arguments stored verbatim and validated against
    :attr:`params`; learned state ends in ``_``. Subclasses implement ``_fit`` and
    ``_score_users`` on internal codes; the base class does id mapping, seen-item exclusion,
    candidate sets, filters, top-K selection, persistence and the unknown-id policy.

    Capabilities are declared by class flags: :attr:`supports_predict`,
    :attr:`supports_similar_items`, :attr:`supports_history`, :attr:`supports_explain`.

    Attributes
    ----------
    users_, items_ : IdIndex
        Id maps of the training data.
    seen_ : scipy.sparse.csr_array
        Binary user x item matrix of training interactions (used to exclude seen items).
    item_popularity_ : numpy.ndarray of float32
        Training interactions per item (fallback for unknown users).
    """

    name: ClassVar[str] = "recommender"
    params: ClassVar[Mapping[str, Param]] = {}
    supports_predict: ClassVar[bool] = False
    supports_similar_items: ClassVar[bool] = False
    supports_history: ClassVar[bool] = False
    supports_explain: ClassVar[bool] = False
    #: whether the model learns from rating values (explicit) rather than presence (implicit)
    explicit: ClassVar[bool] = False
    #: rows of users scored per block in ``recommend`` (bounded memory)
    score_block_size: ClassVar[int] = 2048

    users_: IdIndex
    items_: IdIndex
    seen_: sp.csr_array
    item_popularity_: np.ndarray

    # ------------------------------------------------------------------ params
    def __init__(self, **kwargs: Any) -> None:  # subclasses declare explicit keyword args
        for key, value in kwargs.items():
            setattr(self, key, value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Validate once, after the most-derived constructor: wrap the class's own __init__ or,
        # when it inherits one (e.g. from a mixin shared by sibling models), the inherited one.
        init = cls.__dict__.get("__init__")
        if init is None:
            inherited = cls.__init__
            init = getattr(inherited, "__wrapped__", inherited)
            if init is object.__init__ or init is Recommender.__init__:
                return

        def checked_init(self: Recommender, *args: Any, _init: Any = init, **kw: Any) -> None:
            _init(self, *args, **kw)
            if type(self) is cls:
                self._validate_params()

        checked_init.__doc__ = init.__doc__
        checked_init.__signature__ = inspect.signature(init)  # type: ignore[attr-defined,arg-type]
        checked_init.__wrapped__ = init  # type: ignore[attr-defined]
        cls.__init__ = checked_init  # type: ignore[method-assign]

    @classmethod
    def _param_names(cls) -> list[str]:
        init = getattr(cls.__init__, "__wrapped__", cls.__init__)
        sig = inspect.signature(init)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as a flat dict (constructor argument -> value)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set hyperparameters; unknown names raise :class:`ConfigError`. Returns ``self``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(
                    f"{type(self).__name__} has no parameter {key!r} "
                    f"(parameters: {', '.join(sorted(valid))})"
                )
            setattr(self, key, value)
        self._validate_params()
        return self

    def _validate_params(self) -> None:
        owner = type(self).__name__
        for name, spec in self.params.items():
            if hasattr(self, name):
                setattr(self, name, spec.check(owner, name, getattr(self, name)))

    def clone(self) -> Self:
        """Unfitted copy with the same hyperparameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load``) has run."""
        return hasattr(self, "items_")

    def _check_fitted(self, action: str) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. "
                f"Call 'fit' before '{action}'."
            )

    def fit(self, dataset: Dataset) -> Self:
        """Learn from interactions.

        Parameters
        ----------
        dataset
            Training interactions.

        Returns
        -------
        self
        """
        if not isinstance(dataset, Dataset):
            raise DataError(f"fit expects a recforge Dataset, got {type(dataset).__name__}")
        if dataset.n_interactions == 0:
            raise DataError(f"cannot fit {type(self).__name__} on an empty dataset")
        self._validate_params()
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        self.users_ = dataset.users
        self.items_ = dataset.items
        seen = dataset.matrix(binary=True)
        self.seen_ = seen
        self.item_popularity_ = np.bincount(dataset.item, minlength=dataset.n_items).astype(
            np.float32
        )
        self._fit(dataset)
        return self

    def _fit(self, dataset: Dataset) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ scoring hooks
    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Dense ``(len(user_idx), n_items)`` float32 scores of known users (codes)."""
        raise NotImplementedError

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Dense ``(n_items,)`` float32 scores for an anonymous history (fold-in)."""
        raise UnsupportedCapabilityError(
            f"{type(self).__name__} does not support recommend_for_history"
        )

    def _similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        """Dense ``(len(item_idx), n_items)`` similarity of items to the catalog."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support similar_items")

    def _predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Rating estimates; codes are ``-1`` for unknown ids (use the fallback estimate)."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support predict")

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """``(score, kind, contributions)``; contribution ids are external ids or names."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support explain")

    def _require(self, flag: str, what: str) -> None:
        if not getattr(self, flag):
            raise UnsupportedCapabilityError(f"{type(self).__name__} does not support {what}")

    # ------------------------------------------------------------------ public API
    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Iterable[Any] | None = None,
        exclude: Iterable[Any] | None = None,
        filter: ItemFilter | None = None,
        on_unknown: OnUnknown = "raise",
    ) -> Recommendations:
        """Top-``k`` items for each user.

        Parameters
        ----------
        users
            One external user id or a sequence of them.
        k
            List length.
        exclude_seen
            Drop items the user interacted with in training.
        items
            Candidate subset: only these items may be recommended.
        exclude
            Items never to recommend.
        filter
            Callable receiving the catalog's external item ids and returning a boolean mask
            of items that may be recommended.
        on_unknown
            ``"raise"`` for unknown users, or ``"popular"`` to give them the most popular items.

        Returns
        -------
        Recommendations

        Raises
        ------
        NotFittedError, UnknownIdError, ConfigError
        """
        self._check_fitted("recommend")
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"k must be a positive int, got {k!r}")
        if on_unknown not in ("raise", "popular"):
            raise ConfigError(f"on_unknown must be 'raise' or 'popular', got {on_unknown!r}")
        user_ids = np.atleast_1d(np.asarray(users if not isinstance(users, str) else [users]))
        codes = self.users_.codes(user_ids, missing="negative")
        unknown = codes < 0
        if unknown.any() and on_unknown == "raise":
            bad = user_ids[np.flatnonzero(unknown)[0]]
            raise UnknownIdError(
                f"unknown user id {bad!r}: it was not in the training data "
                "(pass on_unknown='popular' for a popularity fallback)"
            )
        allowed = self._allowed_mask(items, exclude, filter)
        k_eff = int(min(k, self.n_items_catalog))
        n = codes.shape[0]
        out_idx = np.full((n, k_eff), -1, dtype=np.int32)
        out_val = np.full((n, k_eff), -np.inf, dtype=np.float32)
        known_pos = np.flatnonzero(~unknown)
        seen = self.seen_
        bs = self.score_block_size
        for start in range(0, known_pos.size, bs):
            pos = known_pos[start : start + bs]
            scores = self._score_users(codes[pos])
            idx, val = self._select(scores, codes[pos], allowed, k_eff, exclude_seen, seen)
            out_idx[pos] = idx
            out_val[pos] = val
        reasons = None
        if unknown.any():
            pos = np.flatnonzero(unknown)
            pop = np.broadcast_to(self._popularity_scores(), (pos.size, self.n_items_catalog))
            idx, val = self._select(np.array(pop), None, allowed, k_eff, False, seen)
            out_idx[pos] = idx
            out_val[pos] = val
            reasons = np.full(n, None, dtype=object)
            reasons[pos] = "unknown user: most popular items"
        return self._package(user_ids, out_idx, out_val, reasons)

    @property
    def n_items_catalog(self) -> int:
        """Number of items the model can score."""
        return len(self.items_)

    def _popularity_scores(self) -> np.ndarray:
        pop = np.zeros(self.n_items_catalog, dtype=np.float32)
        n = min(pop.size, self.item_popularity_.size)
        pop[:n] = self.item_popularity_[:n]
        return pop

    def _allowed_mask(
        self,
        items: Iterable[Any] | None,
        exclude: Iterable[Any] | None,
        filter: ItemFilter | None,
    ) -> np.ndarray | None:
        n = self.n_items_catalog
        mask: np.ndarray | None = None
        if items is not None:
            cand = self.items_.codes(list(items), missing="negative")
            mask = np.zeros(n, dtype=bool)
            mask[cand[cand >= 0]] = True
        if exclude is not None:
            ex = self.items_.codes(list(exclude), missing="negative")
            mask = np.ones(n, dtype=bool) if mask is None else mask
            mask[ex[ex >= 0]] = False
        if filter is not None:
            keep = np.asarray(filter(self.items_.ids[:n]), dtype=bool)
            if keep.shape != (n,):
                raise ConfigError(
                    f"filter must return a boolean mask of shape ({n},), got {keep.shape}"
                )
            mask = keep if mask is None else mask & keep
        return mask

    def _select(
        self,
        scores: np.ndarray,
        user_codes: np.ndarray | None,
        allowed: np.ndarray | None,
        k: int,
        exclude_seen: bool,
        seen: sp.csr_array,
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if scores.shape[1] < self.n_items_catalog:  # items added after fit score -inf
            pad = np.full(
                (scores.shape[0], self.n_items_catalog - scores.shape[1]), -np.inf, np.float32
            )
            scores = np.hstack([scores, pad])
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        if exclude_seen and user_codes is not None:
            return topk(scores, k, user_codes, self._exclusion_arrays(seen))
        return topk(scores, k)

    def _exclusion_arrays(self, seen: sp.csr_array) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr int64, indices int32)`` of ``seen`` as the top-K kernel takes them.

        SciPy stores both index arrays in one dtype (int64 for our matrices), so converting
        per request would copy every stored interaction; the converted pair is kept per
        matrix object (a new ``seen_`` gets its own).
        """
        cached = getattr(self, "_exclusion_cache", None)
        if cached is not None and cached[0] is seen:
            return cached[1], cached[2]
        indptr = np.ascontiguousarray(seen.indptr, dtype=np.int64)
        indices = np.ascontiguousarray(seen.indices, dtype=np.int32)
        self._exclusion_cache = (seen, indptr, indices)
        return indptr, indices

    def _package(
        self,
        user_ids: np.ndarray,
        idx: np.ndarray,
        val: np.ndarray,
        reasons: np.ndarray | None = None,
    ) -> Recommendations:
        valid = idx >= 0
        ids = self.items_.ids
        fill = -1 if self.items_.is_integer else ""
        items = np.where(valid, ids[np.where(valid, idx, 0)] if ids.size else fill, fill)
        if not self.items_.is_integer:
            items = items.astype(object)
        scores = np.where(valid, val, np.nan).astype(np.float32)
        return Recommendations(
            users=user_ids,
            items=items,
            scores=scores,
            lengths=valid.sum(axis=1).astype(np.int64),
            item_codes=idx,
            reasons=reasons,
        )

    def score(self, users: Any) -> np.ndarray:
        """Dense scores of every catalog item for known users, shape ``(n_users, n_items)``."""
        self._check_fitted("score")
        codes = self.users_.codes(np.atleast_1d(np.asarray(users)), what="user")
        return np.asarray(self._score_users(codes), dtype=np.float32)

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Rating estimates for ``(user, item)`` pairs (unknown ids get the fallback estimate).

        Parameters
        ----------
        users, items
            Equal-length sequences of external ids.

        Returns
        -------
        numpy.ndarray of float64
        """
        self._require("supports_predict", "predict")
        self._check_fitted("predict")
        u = np.atleast_1d(np.asarray(users))
        i = np.atleast_1d(np.asarray(items))
        if u.shape != i.shape:
            raise ConfigError(f"users and items differ in length: {u.shape[0]} vs {i.shape[0]}")
        uc = self.users_.codes(u, missing="negative")
        ic = self.items_.codes(i, missing="negative")
        return np.asarray(self._predict(uc, ic), dtype=np.float64)

    def similar_items(self, items: Any, k: int = 10) -> Recommendations:
        """The ``k`` most similar items to each given item (the item itself excluded).

        Returns
        -------
        Recommendations
            ``users`` holds the query items.
        """
        self._require("supports_similar_items", "similar_items")
        self._check_fitted("similar_items")
        q = np.atleast_1d(np.asarray(items if not isinstance(items, str) else [items]))
        codes = self.items_.codes(q, what="item")
        scores = np.ascontiguousarray(self._similar_scores(codes), dtype=np.float32)
        scores[np.arange(codes.size), codes] = -np.inf
        k_eff = int(min(k, max(self.n_items_catalog - 1, 1)))
        idx, val = self._select(scores, None, None, k_eff, False, self.seen_)
        return self._package(q, idx, val)

    def recommend_for_history(
        self,
        items: Sequence[Any] | np.ndarray,
        values: Sequence[float] | np.ndarray | None = None,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Iterable[Any] | None = None,
        exclude: Iterable[Any] | None = None,
        filter: ItemFilter | None = None,
    ) -> Recommendations:
        """Recommend for a new or anonymous user from their items, without retraining.

        Parameters
        ----------
        items
            External ids of the items the user interacted with; unknown ids are ignored.
        values
            Interaction values (default 1.0 each).
        k
            List length.
        exclude_seen
            Leave out the history's items.
        candidates, exclude, filter
            As in :meth:`recommend`.
        """
        self._require("supports_history", "recommend_for_history")
        self._check_fitted("recommend_for_history")
        ids = np.asarray(list(items))
        vals = (
            np.ones(ids.shape[0], dtype=np.float32)
            if values is None
            else np.asarray(list(values), dtype=np.float32)
        )
        if vals.shape != ids.shape:
            raise ConfigError("items and values differ in length")
        codes = self.items_.codes(ids, missing="negative") if ids.size else ids.astype(np.int32)
        keep = codes >= 0
        codes, vals = codes[keep].astype(np.int32), vals[keep]
        if codes.size == 0:
            scores = self._popularity_scores()[None, :]
        else:
            scores = np.asarray(self._score_history(codes, vals), dtype=np.float32)[None, :]
        scores = np.array(scores, dtype=np.float32)
        if exclude_seen and codes.size:
            scores[0, codes] = -np.inf
        allowed = self._allowed_mask(candidates, exclude, filter)
        k_eff = int(min(k, self.n_items_catalog))
        idx, val = self._select(scores, None, allowed, k_eff, False, self.seen_)
        reasons = None if codes.size else np.array(["empty history: most popular items"], object)
        return self._package(np.array([None], dtype=object), idx, val, reasons)

    def explain(self, user: Any, item: Any) -> Explanation:
        """Why ``item`` is scored as it is for ``user``."""
        self._require("supports_explain", "explain")
        self._check_fitted("explain")
        u = int(self.users_.codes([user], what="user")[0])
        i = int(self.items_.codes([item], what="item")[0])
        score, kind, contrib = self._explain(u, i)
        return Explanation(
            _py(user), _py(item), float(score), kind, [(_py(c), float(w)) for c, w in contrib]
        )

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        """Learned arrays of the subclass (names without the trailing ``_``)."""
        return {}

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Restore learned arrays; validate their shapes and raise ModelFormatError if wrong."""

    def _get_meta(self) -> dict[str, Any]:
        """JSON-serialisable learned scalars of the subclass (e.g. global mean)."""
        return {}

    def save(self, path: str | Path, *, metadata: Mapping[str, Any] | None = None) -> Path:
        """Save to a directory (or ``.zip``) with ``model.json`` and ``arrays.npz``; no pickle.

        Parameters
        ----------
        path
            Target directory, or a file name ending in ``.zip``.
        metadata
            Extra JSON-serialisable information (metrics, data fingerprint, lineage).
        """
        from recforge.models._io import save_model

        self._check_fitted("save")
        return save_model(self, Path(path), metadata or {})

    @staticmethod
    def load(path: str | Path) -> Recommender:
        """Load a model saved by :meth:`save`; rejects unknown classes, versions and pickles."""
        from recforge.models._io import load_model

        return load_model(Path(path))


def check_state_shape(
    state: Mapping[str, np.ndarray], name: str, shape: tuple[int | None, ...], dtype: Any = None
) -> np.ndarray:
    """Fetch ``state[name]`` and check its shape (``None`` = any) or raise ModelFormatError."""
    if name not in state:
        raise ModelFormatError(f"model arrays are missing {name!r}")
    arr = state[name]
    if arr.ndim != len(shape) or any(
        s is not None and s != d for s, d in zip(shape, arr.shape, strict=True)
    ):
        raise ModelFormatError(f"model array {name!r} has shape {arr.shape}, expected {shape}")
    if dtype is not None and arr.dtype != np.dtype(dtype):
        raise ModelFormatError(f"model array {name!r} has dtype {arr.dtype}, expected {dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ModelFormatError(f"model array {name!r} contains NaN or infinite values")
    return arr
