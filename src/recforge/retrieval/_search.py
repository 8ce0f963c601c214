"""Candidate generation by an index, then exact re-scoring with exclusion and filters.

The index only proposes items. Every proposed item is re-scored exactly, items the user
has seen or that the filters forbid are dropped, and the top ``k`` are kept. A row that
ends up with fewer than ``k`` items asks the index again for more candidates (four times
as many each round) and, past half the catalogue, is scored exactly over the whole
catalogue. So a forbidden item is never returned, and a list is ``k`` long whenever ``k``
items are eligible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recforge.retrieval._index import VectorIndex

#: ``fallback(positions)`` -> ``(idx, scores)`` of exact full-catalogue top-K for those rows.
ExactFallback = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Exclusions:
    """Items to drop per query row, as CSR rows (``indices`` sorted within each row).

    ``rows[r]`` is the CSR row of query ``r`` (``-1``: drop nothing).
    """

    rows: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def none(cls, n_rows: int) -> Exclusions:
        """No exclusions for ``n_rows`` queries."""
        return cls(
            np.full(n_rows, -1, dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.zeros(0, dtype=np.int32),
        )

    @classmethod
    def per_row(cls, items: list[np.ndarray]) -> Exclusions:
        """One CSR row per query from a list of item-code arrays."""
        sorted_rows = [np.unique(np.asarray(r, dtype=np.int32)) for r in items]
        lengths = np.array([r.size for r in sorted_rows], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indices = (
            np.concatenate(sorted_rows).astype(np.int32)
            if sorted_rows
            else np.zeros(0, dtype=np.int32)
        )
        return cls(np.arange(len(items), dtype=np.int64), indptr, indices)

    def counts(self) -> np.ndarray:
        """Number of excluded items of each query row."""
        r = self.rows
        out = np.zeros(r.size, dtype=np.int64)
        has = r >= 0
        out[has] = self.indptr[r[has] + 1] - self.indptr[r[has]]
        return out


def retrieve_top_k(
    index: VectorIndex,
    queries: np.ndarray,
    keys: np.ndarray,
    offsets: np.ndarray,
    k: int,
    exclusions: Exclusions,
    allowed: np.ndarray | None,
    fallback: ExactFallback,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` item codes and exact scores per query row (``-1`` / ``-inf`` padding).

    Parameters
    ----------
    index
        Index over ``keys`` (same item codes).
    queries, keys, offsets
        Exact score of item ``c`` for row ``r``: ``queries[r] @ keys[c] + offsets[r]``.
    k
        List length.
    exclusions
        Items each row must not get (seen items, the query item itself...).
    allowed
        Boolean mask over items that may be returned, or ``None`` for all.
    fallback
        Exact full-catalogue scoring for rows the index cannot fill.
    """
    from recforge._kernels.retrieval import rescore_candidates

    n = queries.shape[0]
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_val = np.full((n, k), -np.inf, dtype=np.float32)
    if n == 0:
        return out_idx, out_val
    q = np.ascontiguousarray(queries, dtype=np.float32)
    keys32 = np.ascontiguousarray(keys, dtype=np.float32)
    off = np.ascontiguousarray(offsets, dtype=np.float32)
    allow = np.zeros(0, dtype=np.bool_) if allowed is None else np.ascontiguousarray(allowed)
    share = 1.0 if allowed is None else max(float(allowed.mean()), 1.0 / max(index.n, 1))
    wanted = (k * index.spec.oversample + exclusions.counts()) / share
    n_cand = np.maximum(2 ** np.ceil(np.log2(np.maximum(wanted, 1.0))), k).astype(np.int64)
    pending = np.arange(n)
    while pending.size:
        c = int(n_cand[pending].min())
        group = pending[n_cand[pending] == c]
        if 2 * c > index.n:
            idx, val = fallback(group)
            out_idx[group], out_val[group] = idx, val
            pending = np.setdiff1d(pending, group, assume_unique=True)
            continue
        cand = index.search(q[group], c)
        g_idx = np.full((group.size, k), -1, dtype=np.int32)
        g_val = np.full((group.size, k), -np.inf, dtype=np.float32)
        n_valid = rescore_candidates(
            q[group],
            keys32,
            off[group],
            np.ascontiguousarray(cand),
            np.ascontiguousarray(exclusions.rows[group]),
            exclusions.indptr,
            exclusions.indices,
            allow,
            k,
            g_idx,
            g_val,
        )
        full = n_valid >= k
        out_idx[group[full]], out_val[group[full]] = g_idx[full], g_val[full]
        n_cand[group[~full]] = c * 4
        pending = np.setdiff1d(pending, group[full], assume_unique=True)
    return out_idx, out_val
