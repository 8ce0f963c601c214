"""A model's approximate-retrieval state: the index over its key vectors, built and used.

Only models with ``supports_inner_product`` can have one: their score of item ``c`` for a
user is ``query @ keys[c] + offset``, so an inner-product index over ``keys`` proposes the
best items and exact re-scoring of the proposals gives the model's own scores. Similar
items use a second, cosine index over :meth:`~recforge.models.Recommender.item_vectors`
when the model's similarity is that cosine (``similar_items_by_vector_cosine``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from recforge.exceptions import ModelFormatError
from recforge.retrieval import (
    Exclusions,
    IndexSpec,
    VectorIndex,
    build_index,
    index_from_array,
    retrieve_top_k,
)

if TYPE_CHECKING:
    from recforge.models.base import Recommender

_PREFIX = "base.index."


@dataclass
class Retrieval:
    """The indexes of one fitted model and the key vectors they were built from."""

    spec: IndexSpec
    keys: np.ndarray
    index: VectorIndex
    similar: VectorIndex | None

    def used_for(self, n_items: int, exact: bool | None) -> bool:
        """Whether a request should go through the index (``exact=None``: by size)."""
        if exact is None:
            return n_items >= self.spec.min_items
        return not exact


def build(model: Recommender, spec: IndexSpec) -> Retrieval:
    """Build the indexes of a fitted model."""
    keys = np.ascontiguousarray(model.key_vectors(), dtype=np.float32)
    index = build_index(spec, keys)
    similar = None
    if model.supports_similar_items and model.similar_items_by_vector_cosine:
        vectors = np.asarray(model.item_vectors(), dtype=np.float32)
        similar = build_index(replace(spec, metric="cosine"), vectors)
    return Retrieval(spec, keys, index, similar)


def grow(model: Recommender, state: Retrieval, old_n: int, changed: np.ndarray) -> Retrieval:
    """The state after ``add_items``: new items appended, a rebuild if known ones changed."""
    if changed.size and int(changed.min()) < old_n:
        return build(model, state.spec)
    keys = np.ascontiguousarray(model.key_vectors(), dtype=np.float32)
    state.index.add(keys[old_n:])
    if state.similar is not None:
        vectors = np.asarray(model.item_vectors(), dtype=np.float32)
        state.similar.add(vectors[old_n:])
    return Retrieval(state.spec, keys, state.index, state.similar)


def top_k_users(
    model: Recommender,
    state: Retrieval,
    codes: np.ndarray,
    exclude_seen: bool,
    allowed: np.ndarray | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of known users (codes) through the index."""
    if exclude_seen:
        indptr, indices = model._exclusion_arrays()
        excl = Exclusions(codes.astype(np.int64), indptr, indices)
    else:
        excl = Exclusions.none(codes.size)

    def exact(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = model.score_users(codes[pos])
        return model._select(scores, codes[pos] if exclude_seen else None, allowed, k)

    return retrieve_top_k(
        state.index,
        model.query_vectors(codes),
        state.keys,
        model.query_offsets(codes),
        k,
        excl,
        allowed,
        exact,
    )


def top_k_history(
    model: Recommender,
    state: Retrieval,
    codes: np.ndarray,
    values: np.ndarray,
    exclude_seen: bool,
    allowed: np.ndarray | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` for one history (item codes, in order) through the index."""
    query, offset = model.history_query(codes, values)
    excl = Exclusions.per_row([codes if exclude_seen else codes[:0]])

    def exact(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = (state.keys @ query + np.float32(offset))[None, :].astype(np.float32)
        if exclude_seen and codes.size:
            scores[0, codes] = -np.inf
        return model._select(scores, None, allowed, k)

    return retrieve_top_k(
        state.index,
        query[None, :],
        state.keys,
        np.array([offset], dtype=np.float32),
        k,
        excl,
        allowed,
        exact,
    )


def top_k_similar(
    model: Recommender, state: Retrieval, codes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Most similar items through the cosine index (``None`` when there is none)."""
    similar = state.similar
    if similar is None:
        return None
    vectors = np.asarray(model.item_vectors(), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.maximum(norms, 1e-12)[:, None]
    queries = unit[codes]

    def exact(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(queries[pos] @ unit.T, dtype=np.float32)
        scores[np.arange(pos.size), codes[pos]] = -np.inf
        return model._select(scores, None, None, k)

    excl = Exclusions.per_row([np.array([c]) for c in codes])
    return retrieve_top_k(
        similar,
        queries,
        unit,
        np.zeros(codes.size, dtype=np.float32),
        k,
        excl,
        None,
        exact,
    )


def state_arrays(state: Retrieval) -> dict[str, np.ndarray]:
    """The indexes as ``uint8`` arrays, for a saved model's ``arrays.npz``."""
    arrays = {f"{_PREFIX}main": state.index.to_array()}
    if state.similar is not None:
        arrays[f"{_PREFIX}similar"] = state.similar.to_array()
    return arrays


def state_doc(state: Retrieval) -> dict[str, Any]:
    """The JSON description of the indexes, for a saved model's ``model.json``."""
    return {
        "spec": state.spec.to_dict(),
        "n": state.index.n,
        "d": state.index.d,
        "similar_d": None if state.similar is None else state.similar.d,
    }


def restore(model: Recommender, arrays: dict[str, np.ndarray], doc: Any) -> Retrieval:
    """The indexes of a loaded model, checked against its key vectors."""
    if not isinstance(doc, dict) or "spec" not in doc:
        raise ModelFormatError("'index' must be an object with a 'spec'")
    spec = IndexSpec.from_dict(doc["spec"])
    keys = np.ascontiguousarray(model.key_vectors(), dtype=np.float32)
    if f"{_PREFIX}main" not in arrays:
        raise ModelFormatError("the model declares an index but its arrays hold none")
    index = index_from_array(spec, arrays[f"{_PREFIX}main"], keys.shape[1])
    if index.n != keys.shape[0]:
        raise ModelFormatError(f"index holds {index.n} items, the model {keys.shape[0]}")
    similar = None
    if doc.get("similar_d") is not None and f"{_PREFIX}similar" in arrays:
        similar = index_from_array(
            replace(spec, metric="cosine"), arrays[f"{_PREFIX}similar"], int(doc["similar_d"])
        )
    return Retrieval(spec, keys, index, similar)
