"""Re-ranking of any model's candidate lists: diversity, calibration and business rules.

* :func:`mmr` -- maximal marginal relevance (Carbonell & Goldstein 1998): greedily pick the
  candidate maximising ``λ · rel(i) - (1 - λ) · max_{j ∈ S} sim(i, j)``, with ``rel`` the
  candidate's score min-max normalised within the user's list and ``sim`` the cosine of item
  vectors (item features or item factors). ``λ = 1`` keeps the original order.
* :func:`calibrate` -- calibrated recommendations (Steck 2018): greedily pick the candidate
  maximising ``(1 - λ) · Σ_{i ∈ S} rel(i) - λ · KL(p_u || q̃_S)``, where ``p_u`` is the category
  distribution of the user's history, ``q_S`` that of the list, and
  ``q̃ = (1 - α) q + α p`` keeps the divergence finite.
* :class:`BusinessRules` -- exclude / require categories, attribute filters
  (``AttributeFilter("year", ">=", 2000)``) and boosts (multiply or add to the score of
  matching items). Filters are applied as a hard mask before anything else, so an excluded
  item can never come through.
* :class:`Reranker` -- ``rerank(model, users, k)`` asks the model for ``candidates · k`` items
  (already restricted by the rules' mask), applies the boosts and the chosen re-ranking, and
  returns :class:`~recforge.models.base.Recommendations` (scores are the model's scores after
  boosts; the order is the re-ranked one).
* :func:`similarity_vectors` -- the one definition of the item similarity MMR uses, for every
  model: its item vectors when it declares them, else the multi-hot categories of the item
  attributes, else the items' co-occurrence in the model's training matrix
  (:meth:`~recforge.models.base.Recommender.seen_matrix`). Python, the CLI, ``recforge.yaml``
  and the service all call it.
* :class:`RerankSpec` -- a declarative re-ranking setting (``{mmr: {lambda: 0.7,
  similarity: auto}, calibrate: {...}, rules: {...}}``), as written in ``recforge.yaml``
  and built by the CLI.

All greedy steps are vectorised over a block of users; the only Python loop runs ``k`` times.
"""

from __future__ import annotations

import copy
import math
import operator
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge.data import IdIndex
from recforge.data.weighting import normalize_rows
from recforge.exceptions import ConfigError, DataError
from recforge.features import _split_values
from recforge.models.base import Recommendations, Recommender

__all__ = [
    "SIMILARITY_SOURCES",
    "AttributeFilter",
    "Boost",
    "BusinessRules",
    "RerankSpec",
    "Reranker",
    "calibrate",
    "category_matrix",
    "mmr",
    "rules_from_dict",
    "similarity_vectors",
]

#: Where MMR's item similarity comes from (see :func:`similarity_vectors`).
SIMILARITY_SOURCES = ("auto", "vectors", "features", "cooccurrence")
#: co-occurrence vectors per model, rebuilt when its training matrix is another array
_COOCCURRENCE: weakref.WeakKeyDictionary[Recommender, tuple[sp.csr_array, sp.csr_array]] = (
    weakref.WeakKeyDictionary()
)

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_BLOCK_FLOATS = 20_000_000


# =========================================================================== helpers
def category_matrix(
    attributes: pd.DataFrame, items: IdIndex, column: str, sep: str | None = "|"
) -> tuple[sp.csr_array, list[str]]:
    """Binary item x category matrix aligned with ``items`` codes.

    Parameters
    ----------
    attributes
        Attribute table indexed by item id.
    items
        Index giving the row order (items without attributes get empty rows).
    column
        Multi-valued column (lists, or strings split on ``sep``).
    sep
        Separator of string cells.

    Returns
    -------
    matrix : scipy.sparse.csr_array of float32, ``(len(items), n_categories)``
    names : list of str
        Category of each column, sorted.

    Raises
    ------
    DataError
        If ``column`` is missing (listing the available columns).
    """
    if column not in attributes.columns:
        raise DataError(
            f"item attributes are missing column {column!r} "
            f"(columns: {', '.join(map(str, attributes.columns))})"
        )
    codes = items.codes(attributes.index.to_numpy(), missing="negative")
    labels = [
        _split_values(v, sep, column, row)
        for row, v in zip(attributes.index, attributes[column].tolist(), strict=True)
    ]
    names = sorted({s for ls in labels for s in ls})
    lookup = pd.Index(names)
    lengths = np.fromiter((len(ls) for ls in labels), dtype=np.int64, count=len(labels))
    flat = [s for ls in labels for s in ls]
    cols = lookup.get_indexer(pd.Index(flat)) if flat else np.zeros(0, np.int64)
    rows = np.repeat(codes, lengths)
    ok = rows >= 0
    m = sp.csr_array(
        (np.ones(int(ok.sum()), np.float32), (rows[ok], cols[ok])),
        shape=(len(items), len(names)),
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m, names


def similarity_vectors(
    model: Recommender,
    on: str = "auto",
    attributes: pd.DataFrame | None = None,
    category_column: str = "genres",
    sep: str | None = "|",
) -> np.ndarray | sp.csr_array:
    """Item rows whose cosine is the item similarity of MMR, for any fitted model.

    Parameters
    ----------
    model
        A fitted recommender (rows follow its item codes).
    on
        ``"vectors"``: the model's :meth:`~recforge.models.base.Recommender.item_vectors`
        (models with ``supports_item_vectors``); ``"features"``: the multi-hot categories of
        ``attributes[category_column]``; ``"cooccurrence"``: each item's binary column of
        training users in :meth:`~recforge.models.base.Recommender.seen_matrix` (two items are
        similar when the same users have them); ``"auto"``: the first of these the model and
        the data allow.
    attributes
        Item attribute table indexed by item id (for ``"features"``).
    category_column, sep
        The multi-valued attribute column and its separator.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array
        ``(model.n_items, d)``.

    Raises
    ------
    ConfigError
        For an unknown ``on``, ``"vectors"`` on a model without item vectors, or
        ``"features"`` without the attribute column.
    """
    if on not in SIMILARITY_SOURCES:
        raise ConfigError(
            f"MMR similarity 'on' must be one of {', '.join(SIMILARITY_SOURCES)}, got {on!r}"
        )
    has_features = attributes is not None and category_column in attributes.columns
    if on == "auto":
        on = (
            "vectors"
            if model.supports_item_vectors
            else "features"
            if has_features
            else "cooccurrence"
        )
    if on == "vectors":
        if not model.supports_item_vectors:
            raise ConfigError(
                f"{type(model).__name__} has no item vectors for MMR; use similarity: features "
                "(item attributes) or similarity: cooccurrence (its training matrix)"
            )
        return model.item_vectors()
    if on == "features":
        if attributes is None:
            raise ConfigError("MMR on features needs item attributes")
        return category_matrix(attributes, model.items_, category_column, sep)[0]
    seen = model.seen_matrix()
    hit = _COOCCURRENCE.get(model)
    if hit is not None and hit[0] is seen:
        return hit[1]
    vectors = sp.csr_array(seen.T, dtype=np.float32)
    vectors.data[:] = 1.0
    vectors.sort_indices()
    _COOCCURRENCE[model] = (seen, vectors)
    return vectors


def _unit_rows(vectors: np.ndarray | sp.sparray | sp.spmatrix) -> np.ndarray | sp.csr_array:
    if sp.issparse(vectors):
        return normalize_rows(vectors)
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ConfigError(f"item vectors must be 2-D, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1)
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return v * inv[:, None]


def _gather(vectors: np.ndarray | sp.csr_array, codes: np.ndarray) -> np.ndarray:
    """Dense ``(*codes.shape, F)`` rows; code -1 gives a zero row."""
    flat = codes.ravel()
    safe = np.where(flat >= 0, flat, 0)
    if isinstance(vectors, sp.csr_array):
        rows = vectors[safe].toarray()
    else:
        rows = np.asarray(vectors)[safe]
    rows = np.array(rows, dtype=np.float32, copy=True)
    rows[flat < 0] = 0.0
    return rows.reshape(*codes.shape, rows.shape[-1])


def _relevance(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scores min-max scaled to [0, 1] over each row's valid entries (1 when all equal)."""
    lo = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
    hi = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
    span = hi - lo
    ok = valid & (span > 0)
    safe_span = np.where(span > 0, span, 1.0)
    safe_scores = np.where(valid, scores, 0.0)
    safe_lo = np.where(np.isfinite(lo), lo, 0.0)
    rel = np.where(ok, (safe_scores - safe_lo) / safe_span, np.where(valid, 1.0, 0.0))
    return rel.astype(np.float32)


def _check_candidates(item_idx: np.ndarray, scores: np.ndarray, k: int) -> None:
    if item_idx.ndim != 2 or item_idx.shape != scores.shape:
        raise ConfigError(
            f"candidate items and scores must be 2-D of equal shape, got {item_idx.shape} "
            f"and {scores.shape}"
        )
    if not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive int, got {k!r}")


def _pick(
    item_idx: np.ndarray, scores: np.ndarray, chosen: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Selected codes/scores from positions (``-1`` -> padding)."""
    safe = np.where(chosen >= 0, chosen, 0)
    codes = np.take_along_axis(item_idx, safe, axis=1)
    vals = np.take_along_axis(scores, safe, axis=1).astype(np.float32)
    codes = np.where(chosen >= 0, codes, -1).astype(np.int32)
    vals = np.where(chosen >= 0, vals, np.float32(np.nan)).astype(np.float32)
    return codes, vals


# =========================================================================== MMR
def mmr(
    item_idx: np.ndarray,
    scores: np.ndarray,
    vectors: np.ndarray | sp.sparray | sp.spmatrix,
    k: int,
    lambda_: float = 0.7,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximal marginal relevance re-ranking of candidate lists.

    Parameters
    ----------
    item_idx
        ``(n, K)`` candidate item codes in the model's order, ``-1`` for padding.
    scores
        ``(n, K)`` candidate scores (higher is better).
    vectors
        ``(n_items, F)`` item vectors (dense or sparse) indexed by code; similarity is their
        cosine.
    k
        Length of the re-ranked lists (at most ``K``).
    lambda_
        Relevance weight in ``[0, 1]``; 1 keeps the original order, 0 maximises diversity.

    Returns
    -------
    codes : numpy.ndarray of int32, ``(n, k)``
        Selected codes, ``-1`` where fewer than ``k`` candidates were valid.
    scores : numpy.ndarray of float32, ``(n, k)``
        The original scores of the selected items (NaN for padding).
    """
    _check_candidates(item_idx, scores, k)
    if not 0.0 <= lambda_ <= 1.0:
        raise ConfigError(f"lambda_ must be in [0, 1], got {lambda_!r}")
    n, big_k = item_idx.shape
    k = int(min(k, big_k))
    vec = _unit_rows(vectors)
    chosen = np.full((n, k), -1, dtype=np.int64)
    width = int(vec.shape[1])
    block = max(1, _BLOCK_FLOATS // max(big_k * max(width, big_k), 1))
    for start in range(0, n, block):
        sl = slice(start, start + block)
        chosen[sl] = _mmr_block(item_idx[sl], scores[sl], vec, k, lambda_)
    return _pick(item_idx, scores, chosen)


def _mmr_block(
    item_idx: np.ndarray,
    scores: np.ndarray,
    vec: np.ndarray | sp.csr_array,
    k: int,
    lambda_: float,
) -> np.ndarray:
    n, big_k = item_idx.shape
    valid = (item_idx >= 0) & np.isfinite(scores)
    rel = _relevance(scores, valid)
    v = _gather(vec, item_idx)
    sim = np.einsum("nkf,njf->nkj", v, v, optimize=True)
    max_sim = np.zeros((n, big_k), dtype=np.float32)
    avail = valid.copy()
    out = np.full((n, k), -1, dtype=np.int64)
    rows = np.arange(n)
    for step in range(k):
        obj = lambda_ * rel - (1.0 - lambda_) * max_sim
        obj = np.where(avail, obj, -np.inf)
        best = np.argmax(obj, axis=1)  # first maximum: ties keep the original order
        ok = avail[rows, best]
        out[ok, step] = best[ok]
        avail[rows[ok], best[ok]] = False
        max_sim = np.where(ok[:, None], np.maximum(max_sim, sim[rows, best, :]), max_sim).astype(
            np.float32
        )
    return out


# =========================================================================== calibration
def calibrate(
    item_idx: np.ndarray,
    scores: np.ndarray,
    categories: sp.sparray | sp.spmatrix | np.ndarray,
    target: np.ndarray,
    k: int,
    lambda_: float = 0.5,
    alpha: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated re-ranking (Steck 2018) towards each user's category distribution.

    Parameters
    ----------
    item_idx, scores
        ``(n, K)`` candidate codes (``-1`` padding) and scores.
    categories
        ``(n_items, G)`` item x category weights; each item's row is normalised to a
        distribution ``p(g | i)`` (items without categories contribute nothing).
    target
        ``(n, G)`` the category distribution ``p(g | u)`` of each user's history.
    k
        List length.
    lambda_
        Trade-off in ``[0, 1]``: 0 ranks by relevance, 1 only minimises the divergence.
    alpha
        Smoothing of the list distribution, ``q̃ = (1 - α) q + α p``.

    Returns
    -------
    codes, scores
        As in :func:`mmr`.
    """
    _check_candidates(item_idx, scores, k)
    if not 0.0 <= lambda_ <= 1.0:
        raise ConfigError(f"lambda_ must be in [0, 1], got {lambda_!r}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    n, big_k = item_idx.shape
    cat = sp.csr_array(categories, dtype=np.float32)
    sums = np.asarray(cat.sum(axis=1)).ravel().astype(np.float32)
    cat = sp.csr_array(
        sp.diags_array(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ cat
    )
    p = np.asarray(target, dtype=np.float64)
    if p.shape != (n, cat.shape[1]):
        raise ConfigError(f"target must have shape ({n}, {cat.shape[1]}), got {p.shape}")
    k = int(min(k, big_k))
    chosen = np.full((n, k), -1, dtype=np.int64)
    block = max(1, _BLOCK_FLOATS // max(big_k * max(cat.shape[1], 1), 1))
    for start in range(0, n, block):
        sl = slice(start, start + block)
        chosen[sl] = _calibrate_block(item_idx[sl], scores[sl], cat, p[sl], k, lambda_, alpha)
    return _pick(item_idx, scores, chosen)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    return np.asarray(terms.sum(axis=-1))


def _calibrate_block(
    item_idx: np.ndarray,
    scores: np.ndarray,
    cat: sp.csr_array,
    p: np.ndarray,
    k: int,
    lambda_: float,
    alpha: float,
) -> np.ndarray:
    n = item_idx.shape[0]
    valid = (item_idx >= 0) & np.isfinite(scores)
    rel = _relevance(scores, valid).astype(np.float64)
    c = _gather(cat, item_idx).astype(np.float64)  # (n, K, G)
    acc = np.zeros((n, cat.shape[1]))
    rel_sum = np.zeros(n)
    avail = valid.copy()
    out = np.full((n, k), -1, dtype=np.int64)
    rows = np.arange(n)
    for step in range(k):
        q = (acc[:, None, :] + c) / (step + 1)
        q_s = (1.0 - alpha) * q + alpha * p[:, None, :]
        obj = (1.0 - lambda_) * (rel_sum[:, None] + rel) - lambda_ * _kl(p[:, None, :], q_s)
        obj = np.where(avail, obj, -np.inf)
        best = np.argmax(obj, axis=1)
        ok = avail[rows, best]
        out[ok, step] = best[ok]
        avail[rows[ok], best[ok]] = False
        acc[ok] += c[rows[ok], best[ok]]
        rel_sum[ok] += rel[rows[ok], best[ok]]
    return out


# =========================================================================== rules
@dataclass(frozen=True)
class AttributeFilter:
    """Keep items whose attribute ``column`` satisfies ``op value``.

    ``op`` is one of ``==, !=, <, <=, >, >=, in, not in`` (``in`` takes a list). Items without
    the attribute (missing value or no attribute row) never satisfy a filter.

    Examples
    --------
    >>> AttributeFilter("year", ">=", 2000).to_dict()
    {'column': 'year', 'op': '>=', 'value': 2000}
    """

    column: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in (*_OPS, "in", "not in"):
            raise ConfigError(
                f"AttributeFilter op must be one of {', '.join([*_OPS, 'in', 'not in'])}, "
                f"got {self.op!r}"
            )
        if self.op in ("in", "not in") and isinstance(self.value, str | bytes):
            raise ConfigError(f"AttributeFilter {self.op!r} needs a list of values")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        value = list(self.value) if self.op in ("in", "not in") else self.value
        return {"column": self.column, "op": self.op, "value": value}

    def mask(self, attributes: pd.DataFrame) -> np.ndarray:
        """Boolean mask over the rows of ``attributes``."""
        if self.column not in attributes.columns:
            raise DataError(
                f"item attributes are missing column {self.column!r} "
                f"(columns: {', '.join(map(str, attributes.columns))})"
            )
        col = attributes[self.column]
        present = col.notna().to_numpy().copy()
        if self.op == "in":
            res = col.isin(list(self.value)).to_numpy()
        elif self.op == "not in":
            res = ~col.isin(list(self.value)).to_numpy()
        else:
            res, comparable = self._compare(col)
            present &= comparable
        return np.asarray(res & present, dtype=bool)

    def _compare(self, col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """``(result, comparable)`` of ``col op value``; missing values compare false.

        Nullable columns (``Int64``, ``string``...) keep their missing values out of the
        result; in a mixed-type (object) column only the entries of the value's kind are
        compared (numbers, including numeric text, with a number; text with text).
        """
        everything = np.ones(len(col), dtype=bool)
        try:
            out = _OPS[self.op](col, self.value)
            return _bool_array(out), everything
        except TypeError as exc:
            if col.dtype != object:
                raise DataError(
                    f"cannot compare column {self.column!r} ({col.dtype}) with "
                    f"{self.value!r} using {self.op!r}"
                ) from exc
        if isinstance(self.value, int | float | np.number) and not isinstance(self.value, bool):
            numbers = pd.to_numeric(col, errors="coerce")
            return _bool_array(_OPS[self.op](numbers, self.value)), numbers.notna().to_numpy()
        text = col.map(lambda v: v if isinstance(v, str) else None).astype("string")
        return _bool_array(_OPS[self.op](text, str(self.value))), text.notna().to_numpy()


def _bool_array(values: Any) -> np.ndarray:
    """A comparison result as a bool array, missing entries false."""
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=bool, na_value=False)
    return np.asarray(values, dtype=bool)


@dataclass(frozen=True)
class Boost:
    """Change the score of matching items: ``score * multiply + add``.

    Matching is by category (``category``) and/or an attribute condition (``when``);
    with both, both must hold.
    """

    multiply: float = 1.0
    add: float = 0.0
    category: str | None = None
    when: AttributeFilter | None = None

    def __post_init__(self) -> None:
        if self.category is None and self.when is None:
            raise ConfigError("Boost needs a category or an attribute condition ('when')")
        for name in ("multiply", "add"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"Boost {name} must be a finite number, got {v!r}")


@dataclass(frozen=True)
class BusinessRules:
    """Hard filters and boosts applied before any re-ranking.

    Parameters
    ----------
    exclude_categories
        Items in any of these categories are never recommended.
    require_categories
        If given, only items in at least one of these categories are recommended (items
        without categories are dropped).
    filters
        Attribute conditions every recommended item must satisfy.
    boosts
        Score changes for matching items.
    category_column, sep
        Attribute column holding the categories, and its separator.
    """

    exclude_categories: Sequence[str] = ()
    require_categories: Sequence[str] = ()
    filters: Sequence[AttributeFilter] = ()
    boosts: Sequence[Boost] = ()
    category_column: str = "genres"
    sep: str | None = "|"
    _cache: dict[int, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _needs_categories(self) -> bool:
        return bool(
            self.exclude_categories
            or self.require_categories
            or any(b.category is not None for b in self.boosts)
        )

    def _aligned(
        self, attributes: pd.DataFrame, items: IdIndex
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(allowed mask, multiplier, addend) over item codes; cached per index."""
        key = id(items)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is items and hit[1] is attributes:
            return hit[2]  # type: ignore[no-any-return]
        n = len(items)
        codes = items.codes(attributes.index.to_numpy(), missing="negative")
        known = codes >= 0
        attrs = attributes.iloc[np.flatnonzero(known)]
        codes = codes[known]
        has_row = np.zeros(n, dtype=bool)
        has_row[codes] = True
        cats: sp.csr_array | None = None
        names: list[str] = []
        if self._needs_categories():
            cats, names = category_matrix(attrs, items, self.category_column, self.sep)
        allowed = np.ones(n, dtype=bool)
        lookup = {c: j for j, c in enumerate(names)}

        def in_any(labels: Sequence[str]) -> np.ndarray:
            assert cats is not None
            cols = [lookup[c] for c in labels if c in lookup]
            if not cols:
                return np.zeros(n, dtype=bool)
            return np.asarray(cats[:, cols].sum(axis=1)).ravel() > 0

        if self.exclude_categories:
            allowed &= ~in_any(self.exclude_categories)
        if self.require_categories:
            allowed &= in_any(self.require_categories)
        for flt in self.filters:
            ok = np.zeros(n, dtype=bool)
            ok[codes] = flt.mask(attrs)
            allowed &= ok
        mult = np.ones(n, dtype=np.float32)
        add = np.zeros(n, dtype=np.float32)
        for b in self.boosts:
            match = has_row.copy()
            if b.category is not None:
                match &= in_any([b.category])
            if b.when is not None:
                ok = np.zeros(n, dtype=bool)
                ok[codes] = b.when.mask(attrs)
                match &= ok
            mult[match] *= np.float32(b.multiply)
            add[match] = add[match] * np.float32(b.multiply) + np.float32(b.add)
        result = (allowed, mult, add)
        self._cache.clear()
        self._cache[key] = (items, attributes, result)
        return result

    def allowed_mask(self, attributes: pd.DataFrame, items: IdIndex) -> np.ndarray:
        """Boolean mask over ``items`` codes of the items the rules let through."""
        return self._aligned(attributes, items)[0]

    def apply_boosts(
        self, item_idx: np.ndarray, scores: np.ndarray, attributes: pd.DataFrame, items: IdIndex
    ) -> np.ndarray:
        """Boosted copy of candidate ``scores`` (``(n, K)``, codes ``-1`` untouched)."""
        _, mult, add = self._aligned(attributes, items)
        safe = np.where(item_idx >= 0, item_idx, 0)
        out = scores * mult[safe] + add[safe]
        return np.where(item_idx >= 0, out, scores).astype(np.float32)

    @property
    def has_boosts(self) -> bool:
        """Whether any boost is declared."""
        return bool(self.boosts)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as :func:`rules_from_dict` reads it."""
        boosts = []
        for b in self.boosts:
            doc: dict[str, Any] = {"multiply": b.multiply, "add": b.add}
            if b.category is not None:
                doc["category"] = b.category
            if b.when is not None:
                doc["when"] = b.when.to_dict()
            boosts.append(doc)
        return {
            "exclude_categories": list(self.exclude_categories),
            "require_categories": list(self.require_categories),
            "filters": [f.to_dict() for f in self.filters],
            "boosts": boosts,
            "category_column": self.category_column,
            "sep": self.sep,
        }


# =========================================================================== Reranker
class Reranker:
    """Re-rank a model's recommendations with rules, MMR diversity or calibration.

    Parameters
    ----------
    attributes
        Item attribute table (indexed by item id); needed for rules, calibration and
        feature-based similarity.
    rules
        Hard filters and boosts.
    diversity
        MMR ``λ`` in ``[0, 1]`` (``None``: no MMR).
    calibration
        Calibration ``λ`` in ``[0, 1]`` (``None``: no calibration). Exclusive with diversity.
    item_vectors
        Vectors for MMR similarity aligned with the model's item codes (e.g. a factor
        model's item factors). Without them, :meth:`rerank` takes them from the model by
        :func:`similarity_vectors` (``similarity``) and :meth:`rerank_candidates` uses the
        multi-hot categories of ``category_column``.
    similarity
        Source of :meth:`rerank`'s MMR similarity: one of :data:`SIMILARITY_SOURCES`.
    category_column, sep
        Categories used by calibration and the default similarity.
    candidates
        The model is asked for ``candidates · k`` items before re-ranking.
    alpha
        Calibration smoothing.

    Examples
    --------
    >>> import numpy as np
    >>> r = Reranker(diversity=0.0, item_vectors=np.eye(3), candidates=3)
    >>> codes, _ = r.rerank_candidates(
    ...     np.array([[0, 1, 2]]), np.array([[3.0, 2.0, 1.0]]), IdIndex([7, 8, 9]), k=2
    ... )
    >>> codes.tolist()
    [[0, 1]]
    """

    def __init__(
        self,
        *,
        attributes: pd.DataFrame | None = None,
        rules: BusinessRules | None = None,
        diversity: float | None = None,
        calibration: float | None = None,
        item_vectors: np.ndarray | sp.sparray | sp.spmatrix | None = None,
        category_column: str = "genres",
        sep: str | None = "|",
        candidates: int = 5,
        alpha: float = 0.01,
        similarity: str = "auto",
    ) -> None:
        if similarity not in SIMILARITY_SOURCES:
            raise ConfigError(
                f"The 'similarity' parameter of Reranker must be one of "
                f"{', '.join(SIMILARITY_SOURCES)}, got {similarity!r}"
            )
        if diversity is not None and calibration is not None:
            raise ConfigError("choose diversity (MMR) or calibration, not both")
        for name, lam in (("diversity", diversity), ("calibration", calibration)):
            if lam is not None and not 0.0 <= lam <= 1.0:
                raise ConfigError(
                    f"The {name!r} parameter of Reranker must be in [0, 1], got {lam!r}"
                )
        if not isinstance(candidates, int) or candidates < 1:
            raise ConfigError(
                f"The 'candidates' parameter of Reranker must be an int >= 1, got {candidates!r}"
            )
        needs_attrs = rules is not None or calibration is not None
        needs_attrs = needs_attrs or (
            diversity is not None and item_vectors is None and similarity == "features"
        )
        if needs_attrs and attributes is None:
            raise ConfigError(
                "Reranker needs item attributes for rules, calibration or "
                "category similarity (pass attributes=)"
            )
        self.attributes = attributes
        self.rules = rules
        self.diversity = diversity
        self.calibration = calibration
        self.item_vectors = item_vectors
        self.category_column = category_column
        self.sep = sep
        self.candidates = candidates
        self.alpha = alpha
        self.similarity = similarity

    def _categories(self, items: IdIndex) -> sp.csr_array:
        assert self.attributes is not None
        return category_matrix(self.attributes, items, self.category_column, self.sep)[0]

    def filter_for(self, items: IdIndex) -> Callable[[np.ndarray], np.ndarray] | None:
        """The rules as a ``filter=`` callable for :meth:`Recommender.recommend`."""
        if self.rules is None:
            return None
        assert self.attributes is not None
        mask = self.rules.allowed_mask(self.attributes, items)
        return lambda ids: mask[: len(ids)]

    def rerank_candidates(
        self,
        item_idx: np.ndarray,
        scores: np.ndarray,
        items: IdIndex,
        k: int,
        history: sp.sparray | sp.spmatrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Re-rank ``(n, K)`` candidate codes/scores of the item index ``items``.

        Parameters
        ----------
        item_idx, scores
            Candidates in the model's order (``-1`` padding).
        items
            The model's item index (codes -> ids, alignment of attributes and vectors).
        k
            Output length.
        history
            ``(n, n_items)`` user histories (rows aligned with the candidates), required for
            calibration.

        Returns
        -------
        codes, scores : ``(n, k)``
        """
        _check_candidates(item_idx, scores, k)
        item_idx = np.array(item_idx, dtype=np.int32, copy=True)
        scores = np.array(scores, dtype=np.float32, copy=True)
        if self.rules is not None:
            assert self.attributes is not None
            allowed = self.rules.allowed_mask(self.attributes, items)
            bad = (item_idx >= 0) & ~allowed[np.where(item_idx >= 0, item_idx, 0)]
            item_idx[bad] = -1
            scores[bad] = -np.inf
            if self.rules.has_boosts:
                scores = self.rules.apply_boosts(item_idx, scores, self.attributes, items)
        scores = np.where(item_idx >= 0, scores, -np.inf).astype(np.float32)
        order = np.argsort(-scores, axis=1, kind="stable")
        item_idx = np.take_along_axis(item_idx, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        if self.diversity is not None:
            vecs = self.item_vectors
            if vecs is None:
                if self.attributes is None:
                    raise ConfigError(
                        "MMR needs item_vectors or item attributes (or use rerank(model, ...), "
                        "which takes the similarity from the model)"
                    )
                vecs = self._categories(items)
            if vecs.shape[0] < len(items):
                raise ConfigError(
                    f"item_vectors has {vecs.shape[0]} rows but the model has {len(items)} items"
                )
            return mmr(item_idx, scores, vecs, k, self.diversity)
        if self.calibration is not None:
            if history is None:
                raise ConfigError("calibration needs the users' histories")
            cats = self._categories(items)
            h = sp.csr_array(history, dtype=np.float32)
            if h.shape[1] < cats.shape[0]:
                h = sp.csr_array((h.data, h.indices, h.indptr), shape=(h.shape[0], cats.shape[0]))
            sums = np.asarray(cats.sum(axis=1)).ravel().astype(np.float32)
            norm = sp.diags_array(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0))
            dist = np.asarray((h @ (norm @ cats)).toarray(), dtype=np.float64)
            tot = dist.sum(axis=1, keepdims=True)
            dist = np.divide(dist, tot, out=np.zeros_like(dist), where=tot > 0)
            return calibrate(item_idx, scores, cats, dist, k, self.calibration, self.alpha)
        k = int(min(k, item_idx.shape[1]))
        codes = item_idx[:, :k]
        vals = np.where(codes >= 0, scores[:, :k], np.nan).astype(np.float32)
        return codes.astype(np.int32), vals

    def rerank(
        self,
        model: Recommender,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        on_unknown: str = "raise",
    ) -> Recommendations:
        """Recommend with ``model`` and re-rank.

        The model is asked for ``candidates · k`` items with the rules' mask as its filter,
        so excluded items are not even candidates; the mask is applied again after boosting.

        Returns
        -------
        Recommendations
            ``scores`` are the model's (boosted) scores in the re-ranked order.
        """
        if not isinstance(k, int | np.integer) or k < 1:
            raise ConfigError(f"k must be a positive int, got {k!r}")
        items = model.items_
        recs = model.recommend(
            users,
            k=int(k) * self.candidates,
            exclude_seen=exclude_seen,
            filter=self.filter_for(items),
            on_unknown=on_unknown,  # type: ignore[arg-type]
        )
        history = None
        if self.calibration is not None:
            codes = model.users_.codes(recs.users, missing="negative")
            seen = model.seen_matrix()
            rows = np.where(codes >= 0, codes, 0)
            history = sp.csr_array(seen[rows])
            history = sp.csr_array(sp.diags_array((codes >= 0).astype(np.float32)) @ history)
        scores = np.where(recs.item_codes >= 0, recs.scores, -np.inf).astype(np.float32)
        codes_out, vals = self.for_model(model).rerank_candidates(
            recs.item_codes, scores, items, k, history
        )
        return _package(items, recs.users, codes_out, vals, recs.reasons)

    def for_model(self, model: Recommender) -> Reranker:
        """This re-ranker with MMR's item vectors taken from ``model`` (when it needs them).

        The vectors come from :func:`similarity_vectors` with this re-ranker's
        ``similarity``, attributes and category column; explicit ``item_vectors`` win.
        """
        if self.diversity is None or self.item_vectors is not None:
            return self
        vectors = similarity_vectors(
            model, self.similarity, self.attributes, self.category_column, self.sep
        )
        out = copy.copy(self)
        out.item_vectors = vectors
        return out

    def rerank_recommendations(
        self,
        recs: Recommendations,
        items: IdIndex,
        k: int,
        history: sp.sparray | sp.spmatrix | None = None,
    ) -> Recommendations:
        """Re-rank existing :class:`Recommendations` (made with item index ``items``)."""
        scores = np.where(recs.item_codes >= 0, recs.scores, -np.inf).astype(np.float32)
        codes, vals = self.rerank_candidates(recs.item_codes, scores, items, k, history)
        return _package(items, recs.users, codes, vals, recs.reasons)

    def rerank_scores(
        self,
        scores: np.ndarray,
        items: IdIndex,
        k: int,
        history: sp.sparray | sp.spmatrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Re-rank a dense ``(n, n_items)`` score matrix (``-inf`` = not recommendable).

        Returns
        -------
        codes, scores : ``(n, k)``
        """
        from recforge._kernels.topk import topk

        s = np.array(scores, dtype=np.float32, copy=True)
        if self.rules is not None:
            assert self.attributes is not None
            s[:, ~self.rules.allowed_mask(self.attributes, items)[: s.shape[1]]] = -np.inf
        idx, val = topk(s, int(k) * self.candidates)
        return self.rerank_candidates(idx, val, items, k, history)


def _package(
    items: IdIndex,
    users: np.ndarray,
    codes: np.ndarray,
    vals: np.ndarray,
    reasons: np.ndarray | None,
) -> Recommendations:
    valid = codes >= 0
    ids = items.ids
    fill: Any = -1 if items.is_integer else ""
    out = np.where(valid, ids[np.where(valid, codes, 0)] if ids.size else fill, fill)
    if not items.is_integer:
        out = out.astype(object)
    return Recommendations(
        users=users,
        items=out,
        scores=np.where(valid, vals, np.nan).astype(np.float32),
        lengths=valid.sum(axis=1).astype(np.int64),
        item_codes=codes.astype(np.int32),
        reasons=reasons,
    )


def rules_from_dict(config: Mapping[str, Any]) -> BusinessRules:
    """:class:`BusinessRules` from a JSON-like dict (e.g. a config file section).

    Raises
    ------
    ConfigError
        On unknown keys or malformed filters/boosts.
    """
    allowed = {
        "exclude_categories",
        "require_categories",
        "filters",
        "boosts",
        "category_column",
        "sep",
    }
    extra = set(config) - allowed
    if extra:
        raise ConfigError(
            f"unknown business rule keys {sorted(extra)} (allowed: {sorted(allowed)})"
        )
    try:
        filters = [AttributeFilter(**f) for f in config.get("filters", [])]
        boosts = []
        for b in config.get("boosts", []):
            b = dict(b)
            if b.get("when") is not None:
                b["when"] = AttributeFilter(**b["when"])
            boosts.append(Boost(**b))
    except TypeError as exc:
        raise ConfigError(f"malformed business rule: {exc}") from exc
    return BusinessRules(
        exclude_categories=list(config.get("exclude_categories", [])),
        require_categories=list(config.get("require_categories", [])),
        filters=filters,
        boosts=boosts,
        category_column=str(config.get("category_column", "genres")),
        sep=config.get("sep", "|"),
    )


# =========================================================================== declarative setting
_SPEC_KEYS = {"name", "mmr", "calibrate", "rules", "candidates"}
_MMR_KEYS = {"lambda", "similarity", "category_column", "sep"}
_CALIBRATE_KEYS = {"lambda", "alpha", "category_column", "sep"}


def _section(doc: Any, what: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(doc, Mapping):
        raise ConfigError(f"rerank {what} must be a mapping, got {doc!r}")
    extra = set(doc) - allowed
    if extra:
        raise ConfigError(
            f"unknown rerank {what} keys {sorted(extra)} (allowed: {sorted(allowed)})"
        )
    return dict(doc)


def _unit(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"rerank {what} must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RerankSpec:
    """One declarative re-ranking setting: MMR or calibration, and business rules.

    Parameters
    ----------
    mmr
        MMR relevance weight ``λ`` in ``[0, 1]`` (1 keeps the model's order); ``None``: no MMR.
    on
        Source of MMR's item similarity (:func:`similarity_vectors`); ``similarity`` in the
        dict form.
    calibrate
        Calibration ``λ`` in ``[0, 1]``; ``None``: no calibration (exclusive with ``mmr``).
    alpha
        Calibration smoothing.
    rules
        Filters, exclusions and boosts.
    category_column, sep
        The multi-valued item attribute of calibration and ``on="features"``.
    candidates
        The model proposes ``candidates · k`` items before re-ranking.
    name
        Label in reports (default: :meth:`describe`).

    Examples
    --------
    >>> spec = RerankSpec.from_dict({"mmr": {"lambda": 0.7, "similarity": "cooccurrence"}})
    >>> spec.label
    'mmr λ=0.7 on cooccurrence'
    """

    mmr: float | None = None
    on: str = "auto"
    calibrate: float | None = None
    alpha: float = 0.01
    rules: BusinessRules | None = None
    category_column: str = "genres"
    sep: str | None = "|"
    candidates: int = 5
    name: str | None = None

    def __post_init__(self) -> None:
        if self.mmr is None and self.calibrate is None and self.rules is None:
            raise ConfigError("a rerank setting needs mmr, calibrate or rules")
        if self.mmr is not None and self.calibrate is not None:
            raise ConfigError("a rerank setting takes mmr or calibrate, not both")
        if self.on not in SIMILARITY_SOURCES:
            raise ConfigError(
                f"rerank mmr 'similarity' must be one of {', '.join(SIMILARITY_SOURCES)}, "
                f"got {self.on!r}"
            )
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int):
            raise ConfigError(f"rerank candidates must be an int >= 1, got {self.candidates!r}")
        if self.candidates < 1:
            raise ConfigError(f"rerank candidates must be an int >= 1, got {self.candidates!r}")

    @property
    def label(self) -> str:
        """The setting's name in tables."""
        return self.name or self.describe()

    def describe(self) -> str:
        """A short description (``"mmr λ=0.7 on auto + rules"``)."""
        parts = []
        if self.mmr is not None:
            parts.append(f"mmr λ={self.mmr:g} on {self.on}")
        if self.calibrate is not None:
            parts.append(f"calibrate λ={self.calibrate:g} ({self.category_column})")
        if self.rules is not None:
            parts.append("rules")
        return " + ".join(parts)

    def reranker(self, attributes: pd.DataFrame | None) -> Reranker:
        """The :class:`Reranker` of this setting over the item attribute table."""
        return Reranker(
            attributes=attributes,
            rules=self.rules,
            diversity=self.mmr,
            calibration=self.calibrate,
            category_column=self.category_column,
            sep=self.sep,
            candidates=self.candidates,
            alpha=self.alpha,
            similarity=self.on,
        )

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RerankSpec:
        """A setting from its ``recforge.yaml`` form.

        ``{name: ..., mmr: {lambda, similarity, category_column, sep} | λ, calibrate:
        {lambda, alpha, category_column, sep} | λ, rules: {...} (see
        :func:`rules_from_dict`), candidates}``.

        Raises
        ------
        ConfigError
            Naming the unknown key or the bad value.
        """
        d = _section(doc, "setting", _SPEC_KEYS)
        kw: dict[str, Any] = {}
        for key in ("mmr", "calibrate"):
            sub = d.get(key)
            if sub is None:
                continue
            sub = {"lambda": sub} if isinstance(sub, int | float) else sub
            sub = _section(sub, key, _MMR_KEYS if key == "mmr" else _CALIBRATE_KEYS)
            if "lambda" not in sub:
                raise ConfigError(f"rerank {key} needs 'lambda' (a number in [0, 1])")
            kw[key] = _unit(sub["lambda"], f"{key}.lambda")
            if "similarity" in sub:
                kw["on"] = str(sub["similarity"])
            if "alpha" in sub:
                kw["alpha"] = float(sub["alpha"])
            for field_name in ("category_column", "sep"):
                if field_name in sub:
                    kw[field_name] = sub[field_name]
        if d.get("rules") is not None:
            if not isinstance(d["rules"], Mapping):
                raise ConfigError(f"rerank rules must be a mapping, got {d['rules']!r}")
            kw["rules"] = rules_from_dict(d["rules"])
        if "candidates" in d:
            kw["candidates"] = d["candidates"]
        if d.get("name") is not None:
            kw["name"] = str(d["name"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``from_dict`` reads it back)."""
        doc: dict[str, Any] = {"name": self.label, "candidates": self.candidates}
        if self.mmr is not None:
            doc["mmr"] = {"lambda": self.mmr, "similarity": self.on}
        if self.calibrate is not None:
            doc["calibrate"] = {"lambda": self.calibrate, "alpha": self.alpha}
        if self.mmr is not None or self.calibrate is not None:
            key = "mmr" if self.mmr is not None else "calibrate"
            doc[key].update({"category_column": self.category_column, "sep": self.sep})
        if self.rules is not None:
            doc["rules"] = self.rules.to_dict()
        return doc
