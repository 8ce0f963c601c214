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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self, dataclass_transform

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge._io import check_state_shape
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
from recforge.models import _retrieval
from recforge.models._params import Param, declare_params, param, parameters_section, signature
from recforge.models._retrieval import Retrieval
from recforge.retrieval import IndexSpec

__all__ = [
    "FORMAT_VERSION",
    "EpochCallback",
    "Explanation",
    "Param",
    "Recommendations",
    "Recommender",
    "TrainingOptions",
    "check_state_shape",
    "param",
]

FORMAT_VERSION = 1
"""Version of the on-disk model format; checked on load."""

OnUnknown = Literal["raise", "popular"]
ItemFilter = Callable[[np.ndarray], np.ndarray]

EpochCallback = Callable[[int, Any], Any]
"""``callback(epoch, model)`` called after each epoch/iteration with the partly fitted model.

Returning ``True`` stops training early; raising (e.g. ``optuna.TrialPruned``) aborts it.
"""


@dataclass(frozen=True)
class TrainingOptions:
    """How one ``fit`` runs, as opposed to what it learns (hyperparameters).

    The base class builds it from the keyword arguments of :meth:`Recommender.fit` and hands
    it to the model's ``_fit``; models that train in epochs (``supports_epochs``) call
    :meth:`after_epoch` once per epoch.

    Attributes
    ----------
    callback : callable or None
        ``callback(epoch, model)`` after each epoch; returning ``True`` stops training,
        raising aborts it (a tuning pruner).
    progress : bool
        Show a progress bar over the epochs.
    track_loss : bool
        Record the training objective after every epoch (models that can compute it).
    """

    callback: EpochCallback | None = None
    progress: bool = False
    track_loss: bool = False

    def __post_init__(self) -> None:
        if self.callback is not None and not callable(self.callback):
            raise ConfigError(
                f"callback must be callable (epoch, model), got {type(self.callback).__name__}"
            )

    def after_epoch(self, epoch: int, model: Recommender) -> bool:
        """Run the callback for ``epoch`` (0-based); ``True`` means stop training."""
        return bool(self.callback(epoch, model)) if self.callback is not None else False

    def epochs(self, n: int, description: str) -> Iterable[int]:
        """``range(n)``, wrapped in a rich progress bar when :attr:`progress` is set."""
        if not self.progress:
            return range(n)
        from rich.progress import track

        return track(range(n), description=description, transient=True)


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
@dataclass_transform(eq_default=False, field_specifiers=(param,))
class Recommender:
    """Base class of every recforge model (scikit-learn spirit).

    Hyperparameters are declared once, as annotated class attributes with
    :func:`~recforge.models.base.param` (type, default, constraint, doc, search space); the
    base class derives the constructor, :attr:`params`, :meth:`param_names`,
    :meth:`get_params` / :meth:`set_params` / :meth:`clone` and the docstring's Parameters
    section from them, and validates every value (structured ones included) in
    :meth:`check_params`. Learned state ends in ``_`` and is set by ``fit`` only.
    Subclasses implement ``_fit`` and ``_score_users`` on internal codes; the base class does
    id mapping, seen-item exclusion, candidate sets, filters, top-K selection, persistence
    and the unknown-id policy.

    Library code (evaluation, pipeline, serving) uses a model only through its public
    methods and declared capability flags, never through private members:

    * by external ids: :meth:`recommend`, :meth:`predict`, :meth:`similar_items`,
      :meth:`recommend_for_history`, :meth:`recommend_for_user_attributes`, :meth:`explain`,
      :meth:`add_items`;
    * by internal codes (the position of an id in :attr:`users_` / :attr:`items_`):
      :meth:`score_users`, :meth:`score_history`, :meth:`score_user_attributes`,
      :meth:`fallback_scores`,
      :meth:`user_history`, :meth:`user_sequence`, :meth:`seen_matrix`, :meth:`item_vectors`;
    * sizes: :attr:`n_users`, :attr:`n_items`; hyperparameter names: :meth:`param_names`.

    Capabilities are declared by class flags, never guessed from attribute names:
    :attr:`supports_predict`, :attr:`supports_similar_items`, :attr:`supports_history`,
    :attr:`supports_explain`, :attr:`supports_item_vectors`, :attr:`supports_new_items`,
    :attr:`supports_user_attributes`, :attr:`supports_epochs`, :attr:`supports_inner_product`,
    :attr:`sequential`.

    Models that score by inner products (:attr:`supports_inner_product`) expose
    :meth:`query_vectors`, :meth:`query_offsets`, :meth:`key_vectors` and
    :meth:`history_query`, and can :meth:`build_index` for approximate retrieval.

    Attributes
    ----------
    users_, items_ : IdIndex
        Id maps of the training data (``items_`` grows with :meth:`add_items`).
    seen_ : scipy.sparse.csr_array
        User x item matrix of training interactions and their values (duplicates summed);
        its pattern is what ``exclude_seen`` excludes.
    item_popularity_ : numpy.ndarray of float32
        Training interactions per item (fallback for unknown users).
    """

    name: ClassVar[str] = "recommender"
    params: ClassVar[Mapping[str, Param]] = {}
    #: ``predict(users, items)`` gives rating estimates
    supports_predict: ClassVar[bool] = False
    #: ``similar_items(items, k)``
    supports_similar_items: ClassVar[bool] = False
    #: ``recommend_for_history`` / ``score_history`` fold a new history in without retraining
    supports_history: ClassVar[bool] = False
    #: ``explain(user, item)``
    supports_explain: ClassVar[bool] = False
    #: ``item_vectors()`` gives one row per item whose cosine measures item similarity
    supports_item_vectors: ClassVar[bool] = False
    #: ``add_items(attributes)`` makes new items recommendable from their attributes
    supports_new_items: ClassVar[bool] = False
    #: ``recommend_for_user_attributes`` / ``score_user_attributes`` represent a user who has
    #: no interactions by their attributes (columns of the dataset's ``user_attributes``)
    supports_user_attributes: ClassVar[bool] = False
    #: ``fit`` trains in epochs and honours ``callback`` (early stopping, pruning)
    supports_epochs: ClassVar[bool] = False
    #: scores are ``query_vectors(u) @ key_vectors().T + query_offsets(u)``: an index over
    #: the keys can propose candidates (``build_index``)
    supports_inner_product: ClassVar[bool] = False
    #: ``similar_items`` is the cosine of ``item_vectors()`` rows (a cosine index serves it)
    similar_items_by_vector_cosine: ClassVar[bool] = False
    #: scores depend on the order of a history; ``user_sequence`` gives training items in time
    #: order and histories passed to ``recommend_for_history`` must be oldest first
    sequential: ClassVar[bool] = False
    #: whether the model learns from rating values (explicit) rather than presence (implicit)
    explicit: ClassVar[bool] = False
    #: rows of users scored per block in ``recommend`` (bounded memory)
    score_block_size: ClassVar[int] = 2048

    users_: IdIndex
    items_: IdIndex
    seen_: sp.csr_array
    item_popularity_: np.ndarray

    # ------------------------------------------------------------------ params
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for forbidden in ("__init__", "params"):
            if forbidden in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} defines {forbidden!r}: hyperparameters are declared once, "
                    "as annotated attributes with param(); the base class derives the rest"
                )
        cls.params = MappingProxyType(declare_params(cls))
        cls.__init__ = _constructor(cls)  # type: ignore[method-assign]
        cls.__doc__ = parameters_section(cls.__name__, cls.__doc__, cls.params)

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the hyperparameters: the constructor's arguments, in order."""
        return list(cls.params)

    @classmethod
    def check_params(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validated, normalised values of every hyperparameter, from a complete mapping.

        The one check behind construction, :meth:`set_params`, ``fit`` and the config
        loader: each value against its declaration, then :meth:`_check_combination`.

        Raises
        ------
        ConfigError
            Naming the parameter and the model.
        """
        owner = cls.__name__
        out = {name: spec.check(owner, name, values[name]) for name, spec in cls.params.items()}
        cls._check_combination(out)
        return out

    @classmethod
    def _check_combination(cls, values: Mapping[str, Any]) -> None:
        """Checks of interdependent hyperparameters (raise ConfigError); default none."""

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as a flat dict (constructor argument -> value)."""
        return {name: getattr(self, name) for name in self.params}

    def set_params(self, **params: Any) -> Self:
        """Set hyperparameters; unknown names raise :class:`ConfigError`. Returns ``self``.

        Values are validated as on construction, structured ones included, before anything
        is changed: on an invalid value the model keeps its parameters.
        """
        valid = self.param_names()
        for key in params:
            if key not in valid:
                raise ConfigError(
                    f"{type(self).__name__} has no parameter {key!r} "
                    f"(parameters: {', '.join(sorted(valid))})"
                )
        values = self.check_params({**self.get_params(), **params})
        for key in params:
            setattr(self, key, values[key])
        return self

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

    def fit(
        self,
        dataset: Dataset,
        *,
        callback: EpochCallback | None = None,
        progress: bool = False,
        track_loss: bool = False,
    ) -> Self:
        """Learn from interactions.

        Parameters
        ----------
        dataset
            Training interactions.
        callback
            Only for models with ``supports_epochs``: ``callback(epoch, model)`` after each
            epoch; returning ``True`` stops, raising aborts (e.g. a tuning pruner).
        progress
            Show a progress bar over the epochs (models that train in epochs).
        track_loss
            Record the training objective per epoch (models that can compute it).

        Returns
        -------
        self

        Raises
        ------
        DataError
            If ``dataset`` is not a non-empty Dataset.
        ConfigError
            On invalid hyperparameters, or a callback for a model without epochs.
        """
        if not isinstance(dataset, Dataset):
            raise DataError(f"fit expects a recforge Dataset, got {type(dataset).__name__}")
        if dataset.n_interactions == 0:
            raise DataError(f"cannot fit {type(self).__name__} on an empty dataset")
        if callback is not None and not self.supports_epochs:
            raise ConfigError(
                f"{type(self).__name__} does not train in epochs; it takes no callback"
            )
        options = TrainingOptions(callback=callback, progress=progress, track_loss=track_loss)
        self.__dict__.update(self.check_params(self.get_params()))
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        self.__dict__.pop("_exclusion_cache", None)
        self.__dict__.pop("_key_cache", None)
        self.users_ = dataset.users
        self.items_ = dataset.items
        self.seen_ = dataset.matrix()
        self.item_popularity_ = np.bincount(dataset.item, minlength=dataset.n_items).astype(
            np.float32
        )
        self._fit(dataset, options)
        self.__dict__.pop("_key_cache", None)
        return self

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ model hooks
    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Dense ``(len(user_idx), n_items)`` float32 scores of known users (codes).

        Every score hook returns a fresh array that the caller may modify in place.
        """
        raise NotImplementedError

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Dense ``(n_items,)`` float32 scores for an anonymous history (fold-in).

        Inner-product models get it from :meth:`_history_query`.
        """
        if self.supports_inner_product:
            query, offset = self._history_query(item_idx, values)
            return np.asarray(self.key_vectors() @ query + offset, dtype=np.float32)
        raise UnsupportedCapabilityError(
            f"{type(self).__name__} does not support recommend_for_history"
        )

    def _query_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """``(len(user_idx), d)`` query rows of known users (inner-product models)."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not score by vectors")

    def _query_offsets(self, user_idx: np.ndarray) -> np.ndarray:
        """Per-user constant added to every item's score (rating models' biases)."""
        return np.zeros(np.asarray(user_idx).size, dtype=np.float32)

    def _key_vectors(self) -> np.ndarray:
        """``(n_items, d)`` key rows: the score is the query's inner product with them."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not score by vectors")

    def _history_query(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        """``(query (d,), offset)`` of a folded-in history (inner-product models)."""
        raise UnsupportedCapabilityError(
            f"{type(self).__name__} does not support recommend_for_history"
        )

    def _fallback_scores(self) -> np.ndarray:
        """``(n_items,)`` scores for users the model cannot personalise (popularity)."""
        return np.asarray(self.item_popularity_, dtype=np.float32).copy()

    def _similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        """Dense ``(len(item_idx), n_items)`` similarity of items to the catalog."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support similar_items")

    def _predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Rating estimates; codes are ``-1`` for unknown ids (use the fallback estimate)."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support predict")

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """``(score, kind, contributions)``; contribution ids are external ids or names."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support explain")

    def _item_vectors(self) -> np.ndarray | sp.csr_array:
        """``(n_items, d)`` rows whose cosine measures item similarity."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support item_vectors")

    def _add_items(self, codes: np.ndarray, attributes: pd.DataFrame, n_items: int) -> None:
        """Grow every per-item array to ``n_items`` rows and (re)build the rows ``codes``."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support add_items")

    def _user_attribute_columns(self) -> list[str]:
        """User attribute columns the model reads (models with ``supports_user_attributes``)."""
        raise UnsupportedCapabilityError(
            f"{type(self).__name__} does not support recommend_for_user_attributes"
        )

    def _score_user_attributes(self, attributes: pd.DataFrame) -> np.ndarray:
        """Dense ``(len(attributes), n_items)`` float32 scores of users from attributes only.

        ``attributes`` has been checked to hold every :meth:`_user_attribute_columns` column.
        """
        raise UnsupportedCapabilityError(
            f"{type(self).__name__} does not support recommend_for_user_attributes"
        )

    def _require(self, flag: str, what: str) -> None:
        if not getattr(self, flag):
            raise UnsupportedCapabilityError(f"{type(self).__name__} does not support {what}")

    # ------------------------------------------------------------------ by internal codes
    @property
    def n_users(self) -> int:
        """Number of users the model knows (codes ``0 .. n_users - 1``)."""
        self._check_fitted("n_users")
        return len(self.users_)

    @property
    def n_items(self) -> int:
        """Number of items the model can score (codes ``0 .. n_items - 1``)."""
        self._check_fitted("n_items")
        return len(self.items_)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Dense scores of the whole catalogue for known users given by code.

        Parameters
        ----------
        user_idx
            Codes in :attr:`users_`.

        Returns
        -------
        numpy.ndarray of float32
            Shape ``(len(user_idx), n_items)``, C-contiguous and writable (a fresh array).
        """
        self._check_fitted("score_users")
        codes = _codes(user_idx, self.n_users, "user")
        return _dense_scores(self._score_users(codes), (codes.size, self.n_items), self)

    def score_history(self, item_idx: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Scores of the whole catalogue for a history given by item codes (fold-in).

        Parameters
        ----------
        item_idx
            Item codes in :attr:`items_`, in the order they happened.
        values
            Interaction values with the training data's meaning (ratings stay ratings);
            default 1.0 each.

        Returns
        -------
        numpy.ndarray of float32, shape ``(n_items,)``
        """
        self._require("supports_history", "score_history")
        self._check_fitted("score_history")
        codes, vals = _history(item_idx, values, self.n_items)
        if codes.size == 0:
            return self.fallback_scores()
        out = self._score_history(codes, vals)
        return _dense_scores(np.asarray(out)[None, :], (1, self.n_items), self)[0]

    def fallback_scores(self) -> np.ndarray:
        """``(n_items,)`` float32 scores for users the model cannot personalise.

        The popularity of each item in training (recency-weighted for models that weight
        it), the list ``on_unknown="popular"`` and empty histories get.
        """
        self._check_fitted("fallback_scores")
        return _dense_scores(self._fallback_scores()[None, :], (1, self.n_items), self)[0]

    def seen_matrix(self) -> sp.csr_array:
        """The ``(n_users, n_items)`` training matrix whose pattern ``exclude_seen`` removes.

        The matrix is shared, not copied: treat it as read-only.
        """
        self._check_fitted("seen_matrix")
        return self.seen_

    def user_history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Training items of one user and their values, with the training data's meaning.

        Returns
        -------
        (item codes int32, values float32)
            In item-code order; duplicates of a pair were summed as in training.
        """
        self._check_fitted("user_history")
        u = int(user_idx)
        if not 0 <= u < self.n_users:
            raise UnknownIdError(f"user code {u} is out of range [0, {self.n_users})")
        lo, hi = int(self.seen_.indptr[u]), int(self.seen_.indptr[u + 1])
        return (
            np.asarray(self.seen_.indices[lo:hi], dtype=np.int32),
            np.asarray(self.seen_.data[lo:hi], dtype=np.float32),
        )

    def user_sequence(self, user_idx: int) -> np.ndarray:
        """Training items of one user as the model reads them: in time order for models
        with :attr:`sequential` (the history a session continues), else in item-code order.

        Returns
        -------
        numpy.ndarray of int32
            Item codes, oldest first for sequential models.
        """
        if not self.sequential:
            return self.user_history(user_idx)[0]
        self._check_fitted("user_sequence")
        u = int(user_idx)
        if not 0 <= u < self.n_users:
            raise UnknownIdError(f"user code {u} is out of range [0, {self.n_users})")
        return np.asarray(self._user_sequence(u), dtype=np.int32)

    def _user_sequence(self, user_idx: int) -> np.ndarray:
        """Time-ordered training item codes of a user (models with ``sequential``)."""
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not keep sequences")

    def item_vectors(self) -> np.ndarray | sp.csr_array:
        """One row per item (dense factors or sparse features) for diversity and similarity.

        Returns
        -------
        numpy.ndarray or scipy.sparse.csr_array
            Shape ``(n_items, d)``; the cosine of two rows is the model's item similarity.
        """
        self._require("supports_item_vectors", "item_vectors")
        self._check_fitted("item_vectors")
        vectors = self._item_vectors()
        if vectors.shape[0] != self.n_items:
            raise ModelFormatError(
                f"{type(self).__name__} item vectors have {vectors.shape[0]} rows for "
                f"{self.n_items} items"
            )
        return vectors

    def query_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """Query rows of known users: ``score_users(u) == query_vectors(u) @ key_vectors().T
        + query_offsets(u)[:, None]`` (up to float rounding).

        Returns
        -------
        numpy.ndarray of float32, shape ``(len(user_idx), d)``
        """
        self._require("supports_inner_product", "query_vectors")
        self._check_fitted("query_vectors")
        codes = _codes(user_idx, self.n_users, "user")
        return np.ascontiguousarray(self._query_vectors(codes), dtype=np.float32)

    def query_offsets(self, user_idx: np.ndarray) -> np.ndarray:
        """Per-user constant of the score (zero unless the model has user biases)."""
        self._require("supports_inner_product", "query_offsets")
        self._check_fitted("query_offsets")
        codes = _codes(user_idx, self.n_users, "user")
        return np.asarray(self._query_offsets(codes), dtype=np.float32).reshape(codes.size)

    def key_vectors(self) -> np.ndarray:
        """``(n_items, d)`` float32 key rows of the inner-product score (cached; do not modify)."""
        self._require("supports_inner_product", "key_vectors")
        self._check_fitted("key_vectors")
        cached = self.__dict__.get("_key_cache")
        if cached is None or cached.shape[0] != self.n_items:
            cached = np.ascontiguousarray(self._key_vectors(), dtype=np.float32)
            self.__dict__["_key_cache"] = cached
        return cached

    def history_query(
        self, item_idx: np.ndarray, values: np.ndarray | None = None
    ) -> tuple[np.ndarray, float]:
        """Query row and offset of a history given by item codes (fold-in).

        ``score_history(items, values) == key_vectors() @ query + offset``.
        """
        self._require("supports_inner_product", "history_query")
        self._require("supports_history", "history_query")
        self._check_fitted("history_query")
        codes, vals = _history(item_idx, values, self.n_items)
        query, offset = self._history_query(codes, vals)
        return np.ascontiguousarray(query, dtype=np.float32), float(offset)

    # ------------------------------------------------------------------ retrieval
    def build_index(
        self, spec: IndexSpec | str | Mapping[str, Any] = "hnsw", **options: Any
    ) -> Self:
        """Build an approximate-retrieval index over the key vectors (and item vectors).

        ``recommend``, ``recommend_for_history`` and ``similar_items`` then take candidates
        from it and re-score them exactly; exclusions and filters stay exact. The index is
        saved with the model and dropped by a refit.

        Parameters
        ----------
        spec
            An :class:`~recforge.retrieval.IndexSpec`, a kind (``"hnsw"``, ``"ivf"``,
            ``"exact"``) or a mapping of its fields.
        **options
            Overrides of the spec's fields (``m=48``, ``ef_search=128``, ``min_items=0``...).

        Returns
        -------
        self

        Raises
        ------
        UnsupportedCapabilityError
            Unless ``supports_inner_product``.
        MissingDependencyError
            For faiss indexes when faiss is not installed.
        """
        self._require("supports_inner_product", "build_index")
        self._check_fitted("build_index")
        resolved = IndexSpec.coerce(
            spec if not isinstance(spec, Mapping) else dict(spec), **options
        )
        self.retrieval_ = _retrieval.build(self, resolved)
        return self

    def drop_index(self) -> Self:
        """Forget the retrieval index; every request is scored exactly."""
        self.__dict__.pop("retrieval_", None)
        return self

    @property
    def index_spec(self) -> IndexSpec | None:
        """Settings of the built index, or ``None`` when the model scores exactly."""
        retrieval = self.__dict__.get("retrieval_")
        return None if retrieval is None else retrieval.spec

    def _retrieval_for(self, exact: bool | None) -> Retrieval | None:
        retrieval: Retrieval | None = self.__dict__.get("retrieval_")
        if retrieval is None or not retrieval.used_for(self.n_items, exact):
            return None
        return retrieval

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
        exact: bool | None = None,
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
        exact
            With a built index (:meth:`build_index`): ``None`` uses it from its
            ``min_items`` catalogue size up, ``True`` always scores the whole catalogue,
            ``False`` always uses the index.

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
        k_eff = int(min(k, self.n_items))
        n = codes.shape[0]
        out_idx = np.full((n, k_eff), -1, dtype=np.int32)
        out_val = np.full((n, k_eff), -np.inf, dtype=np.float32)
        known_pos = np.flatnonzero(~unknown)
        bs = self.score_block_size
        retrieval = self._retrieval_for(exact)
        for start in range(0, known_pos.size, bs):
            pos = known_pos[start : start + bs]
            if retrieval is not None:
                idx, val = _retrieval.top_k_users(
                    self, retrieval, codes[pos], exclude_seen, allowed, k_eff
                )
            else:
                scores = self.score_users(codes[pos])
                idx, val = self._select(
                    scores, codes[pos] if exclude_seen else None, allowed, k_eff
                )
            out_idx[pos] = idx
            out_val[pos] = val
        reasons = None
        if unknown.any():
            pos = np.flatnonzero(unknown)
            idx, val = self._select(self.fallback_scores()[None, :], None, allowed, k_eff)
            out_idx[pos] = idx
            out_val[pos] = val
            reasons = np.full(n, None, dtype=object)
            reasons[pos] = "unknown user: most popular items"
        return self._package(user_ids, out_idx, out_val, reasons)

    def _allowed_mask(
        self,
        items: Iterable[Any] | None,
        exclude: Iterable[Any] | None,
        filter: ItemFilter | None,
    ) -> np.ndarray | None:
        n = self.n_items
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
        exclude_users: np.ndarray | None,
        allowed: np.ndarray | None,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of full-catalogue score rows (modified in place).

        ``exclude_users``: the user code of each row, whose training items are excluded.
        """
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        if exclude_users is not None:
            return topk(scores, k, exclude_users, self._exclusion_arrays())
        return topk(scores, k)

    def _exclusion_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr int64, indices int32)`` of ``seen_`` as the top-K kernel takes them.

        SciPy stores both index arrays in one dtype (int64 for our matrices), so converting
        per request would copy every stored interaction; the converted pair is kept per
        matrix object (a new ``seen_`` gets its own).
        """
        seen = self.seen_
        cached = self.__dict__.get("_exclusion_cache")
        if cached is not None and cached[0] is seen:
            return cached[1], cached[2]
        indptr = np.ascontiguousarray(seen.indptr, dtype=np.int64)
        indices = np.ascontiguousarray(seen.indices, dtype=np.int32)
        self.__dict__["_exclusion_cache"] = (seen, indptr, indices)
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
        return self.score_users(codes)

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

    def similar_items(
        self, items: Any, k: int = 10, *, exact: bool | None = None
    ) -> Recommendations:
        """The ``k`` most similar items to each given item (the item itself excluded).

        ``exact`` as in :meth:`recommend` (a built index serves it when the model's
        similarity is the cosine of its item vectors).

        Returns
        -------
        Recommendations
            ``users`` holds the query items.
        """
        self._require("supports_similar_items", "similar_items")
        self._check_fitted("similar_items")
        q = np.atleast_1d(np.asarray(items if not isinstance(items, str) else [items]))
        codes = self.items_.codes(q, what="item")
        k_eff = int(min(k, max(self.n_items - 1, 1)))
        retrieval = self._retrieval_for(exact)
        found = None
        if retrieval is not None:
            found = _retrieval.top_k_similar(self, retrieval, codes, k_eff)
        if found is None:
            scores = _dense_scores(self._similar_scores(codes), (codes.size, self.n_items), self)
            scores[np.arange(codes.size), codes] = -np.inf
            found = self._select(scores, None, None, k_eff)
        return self._package(q, *found)

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
        exact: bool | None = None,
    ) -> Recommendations:
        """Recommend for a new or anonymous user from their items, without retraining.

        Parameters
        ----------
        items
            External ids of the items the user interacted with, oldest first; unknown ids
            are ignored.
        values
            Interaction values with the training data's meaning (default 1.0 each).
        k
            List length.
        exclude_seen
            Leave out the history's items.
        candidates, exclude, filter, exact
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
        allowed = self._allowed_mask(candidates, exclude, filter)
        k_eff = int(min(k, self.n_items))
        retrieval = self._retrieval_for(exact)
        if retrieval is not None and codes.size:
            idx, val = _retrieval.top_k_history(
                self, retrieval, codes, vals, exclude_seen, allowed, k_eff
            )
        else:
            scores = self.score_history(codes, vals)[None, :]
            if exclude_seen and codes.size:
                scores[0, codes] = -np.inf
            idx, val = self._select(scores, None, allowed, k_eff)
        reasons = None if codes.size else np.array(["empty history: most popular items"], object)
        return self._package(np.array([None], dtype=object), idx, val, reasons)

    def user_attribute_columns(self) -> list[str]:
        """Columns of a user attribute table that :meth:`score_user_attributes` reads."""
        self._require("supports_user_attributes", "user_attribute_columns")
        self._check_fitted("user_attribute_columns")
        return list(self._user_attribute_columns())

    def score_user_attributes(self, attributes: pd.DataFrame) -> np.ndarray:
        """Scores of every item for users known only by their attributes (no interactions).

        Parameters
        ----------
        attributes
            One row per user with (at least) the :meth:`user_attribute_columns`; missing
            values are allowed (that attribute then says nothing about the user).

        Returns
        -------
        numpy.ndarray of float32, shape ``(len(attributes), n_items)``

        Raises
        ------
        DataError
            When a column the model reads is missing (named in the message).
        """
        self._require("supports_user_attributes", "score_user_attributes")
        self._check_fitted("score_user_attributes")
        frame = user_attribute_frame(attributes, self._user_attribute_columns())
        if len(frame) == 0:
            return np.zeros((0, self.n_items), dtype=np.float32)
        out = self._score_user_attributes(frame)
        return _dense_scores(np.asarray(out), (len(frame), self.n_items), self)

    def recommend_for_user_attributes(
        self,
        attributes: pd.DataFrame | Mapping[str, Any],
        k: int = 10,
        *,
        candidates: Iterable[Any] | None = None,
        exclude: Iterable[Any] | None = None,
        filter: ItemFilter | None = None,
    ) -> Recommendations:
        """Recommend for new users from their attributes alone (user cold start).

        Parameters
        ----------
        attributes
            A table with one row per user, indexed by the (new) user ids, or one user's
            attributes as a mapping ``{column: value}`` (the list's user is then ``None``).
        k
            List length.
        candidates, exclude, filter
            As in :meth:`recommend`.
        """
        self._require("supports_user_attributes", "recommend_for_user_attributes")
        self._check_fitted("recommend_for_user_attributes")
        if isinstance(attributes, pd.DataFrame):
            frame = attributes
            users = frame.index.to_numpy(dtype=object)
        else:
            frame = pd.DataFrame([dict(attributes)])
            users = np.array([None], dtype=object)
        scores = self.score_user_attributes(frame)
        allowed = self._allowed_mask(candidates, exclude, filter)
        idx, val = self._select(scores, None, allowed, int(min(k, self.n_items)))
        return self._package(users, idx, val)

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

    # ------------------------------------------------------------------ catalogue growth
    def add_items(self, attributes: pd.DataFrame) -> Self:
        """Make new (or updated) items recommendable from their attributes; no retraining.

        New ids are appended to :attr:`items_`; every per-item array (the seen matrix,
        popularity and the model's own) grows with it, so the model stays consistent. Ids
        already known get their attribute-derived parts rebuilt.

        Parameters
        ----------
        attributes
            Attribute table indexed by item id, with the columns the model was fitted on.

        Returns
        -------
        self

        Raises
        ------
        UnsupportedCapabilityError
            Unless ``supports_new_items``.
        DataError
            Missing columns or bad values (naming the column and item).
        """
        self._require("supports_new_items", "add_items")
        self._check_fitted("add_items")
        if not isinstance(attributes, pd.DataFrame):
            raise DataError(
                f"add_items expects a pandas DataFrame, got {type(attributes).__name__}"
            )
        if attributes.index.has_duplicates:
            dup = attributes.index[attributes.index.duplicated()][0]
            raise DataError(f"add_items: duplicate item id {_py(dup)!r}")
        if len(attributes) == 0:
            return self
        ids = attributes.index.to_numpy()
        items = self.items_.extend(ids)
        codes = np.asarray(items.codes(ids), dtype=np.int32)
        n_items = len(items)
        old_n = self.n_items
        self._add_items(codes, attributes, n_items)
        self.__dict__.pop("_key_cache", None)
        if n_items > self.seen_.shape[1]:
            seen = self.seen_
            self.seen_ = sp.csr_array(
                (seen.data, seen.indices, seen.indptr), shape=(seen.shape[0], n_items)
            )
            pop = np.zeros(n_items, dtype=np.float32)
            pop[: self.item_popularity_.size] = self.item_popularity_
            self.item_popularity_ = pop
        self.items_ = items
        retrieval = self.__dict__.get("retrieval_")
        if retrieval is not None:
            self.retrieval_ = _retrieval.grow(self, retrieval, old_n, codes)
        return self

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


def _constructor(cls: type[Recommender]) -> Callable[..., None]:
    """``cls.__init__``: bind the declared parameters, validate them all, then store them."""
    sig = signature(cls.params)

    def __init__(self: Recommender, *args: Any, **kwargs: Any) -> None:
        try:
            bound = sig.bind(self, *args, **kwargs)
        except TypeError as exc:
            names = ", ".join(cls.params) or "none"
            raise TypeError(f"{cls.__name__}(): {exc} (parameters: {names})") from None
        bound.apply_defaults()
        values = {k: v for k, v in bound.arguments.items() if k != "self"}
        self.__dict__.update(type(self).check_params(values))

    __init__.__signature__ = sig  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = f"Validate and store the hyperparameters of :class:`{cls.__name__}`."
    return __init__


def _codes(idx: Any, n: int, what: str) -> np.ndarray:
    """``idx`` as an int32 code array, checked against ``[0, n)``."""
    codes = np.atleast_1d(np.asarray(idx))
    if codes.ndim != 1 or (codes.size and codes.dtype.kind not in "iu"):
        raise ConfigError(f"{what} codes must be a 1-d integer array, got {codes.dtype}")
    codes = codes.astype(np.int32, copy=False)
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= n):
        bad = codes[(codes < 0) | (codes >= n)][0]
        raise UnknownIdError(f"{what} code {int(bad)} is out of range [0, {n})")
    return codes


def user_attribute_frame(attributes: Any, columns: Sequence[str]) -> pd.DataFrame:
    """``attributes`` as a DataFrame holding ``columns``, or a :class:`DataError` naming one."""
    if not isinstance(attributes, pd.DataFrame):
        raise DataError(
            f"user attributes must be a pandas DataFrame, got {type(attributes).__name__}"
        )
    missing = [c for c in columns if c not in attributes.columns]
    if missing:
        have = ", ".join(map(str, attributes.columns)) or "none"
        raise DataError(
            f"user attributes are missing column {missing[0]!r} (the model reads "
            f"{', '.join(map(repr, columns))}; columns given: {have})"
        )
    return attributes


def _history(item_idx: Any, values: Any, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """A history's item codes (checked against ``[0, n_items)``) and float32 values (1.0 each
    when ``values`` is None); ConfigError when they differ in length."""
    codes = _codes(item_idx, n_items, "item")
    vals = (
        np.ones(codes.size, dtype=np.float32)
        if values is None
        else np.asarray(values, dtype=np.float32).reshape(-1)
    )
    if vals.shape != codes.shape:
        raise ConfigError("items and values differ in length")
    return codes, vals


def _dense_scores(scores: Any, shape: tuple[int, int], model: Recommender) -> np.ndarray:
    """A model hook's scores as a writable C-contiguous float32 array of ``shape``.

    Hooks return fresh arrays (the caller modifies them in place), so a copy is made only
    when the hook's array has another dtype or layout, or is read-only.
    """
    out = np.require(scores, dtype=np.float32, requirements=["C", "W"])
    if out.shape != shape:
        raise ModelFormatError(
            f"{type(model).__name__} scored shape {out.shape}, expected {shape}: every "
            "per-item array must cover the whole catalogue"
        )
    return out
