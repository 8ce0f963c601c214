"""Neighbourhood rating prediction (Surprise's KNNBasic / KNNWithMeans / KNNBaseline rules).

For a pair (target ``x``, other ``y``) — (item, user) for item-kNN, (user, item) for user-kNN —
the neighbours of ``x`` are walked in order of decreasing similarity; those that ``y`` rated
and whose similarity is positive are used, at most ``max_k`` of them::

    est = base_t[x] + base_o[y] + Σ sim · (r - base_n[nb] - base_o[y]) / Σ sim

With fewer than ``min_k`` usable neighbours the sum is dropped (``est = base_t[x] +
base_o[y]``), or, with ``fallback_when_few``, ``est = fallback`` (KNNBasic's "impossible"
prediction, the global mean).

Shapes and dtypes
-----------------
s_indptr (n_entities + 1,) int64; s_indices (nnz,) int32; s_data (nnz,) float32 — each row's
neighbours sorted by decreasing similarity
r_indptr (n_other + 1,) int64; r_indices (nnz,) int32 sorted within rows; r_data float32 — the
entities each ``y`` rated, with the rating
target, other (n_pairs,) int64 — known codes only
base_t, base_n (n_entities,) float64; base_o (n_other,) float64
out (n_pairs,) float64; out_k (n_pairs,) int64 — neighbours used
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["predict_pairs", "predict_pairs_reference"]


@njit(cache=True, nogil=True)
def _lookup(indices: np.ndarray, start: int, stop: int, key: int) -> int:
    lo = start
    hi = stop
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < stop and indices[lo] == key:
        return lo
    return -1


@njit(cache=True, nogil=True, parallel=True)
def predict_pairs(
    s_indptr: np.ndarray,
    s_indices: np.ndarray,
    s_data: np.ndarray,
    r_indptr: np.ndarray,
    r_indices: np.ndarray,
    r_data: np.ndarray,
    target: np.ndarray,
    other: np.ndarray,
    base_t: np.ndarray,
    base_n: np.ndarray,
    base_o: np.ndarray,
    max_k: int,
    min_k: int,
    fallback_when_few: bool,
    fallback: float,
    out: np.ndarray,
    out_k: np.ndarray,
) -> None:
    """Estimate every (target, other) pair; see the module docstring."""
    for p in prange(target.shape[0]):
        x = target[p]
        y = other[p]
        r0 = r_indptr[y]
        r1 = r_indptr[y + 1]
        sum_sim = 0.0
        sum_dev = 0.0
        used = 0
        for q in range(s_indptr[x], s_indptr[x + 1]):
            if used >= max_k:
                break
            sim = np.float64(s_data[q])
            if not sim > 0.0:
                break  # rows are sorted: the rest are not positive either
            nb = s_indices[q]
            pos = _lookup(r_indices, r0, r1, nb)
            if pos < 0:
                continue
            sum_sim += sim
            sum_dev += sim * (np.float64(r_data[pos]) - base_n[nb] - base_o[y])
            used += 1
        out_k[p] = used
        if used < min_k:
            out[p] = fallback if fallback_when_few else base_t[x] + base_o[y]
        else:
            out[p] = base_t[x] + base_o[y] + sum_dev / sum_sim


def predict_pairs_reference(
    sim: np.ndarray,
    ratings: np.ndarray,
    rated: np.ndarray,
    target: np.ndarray,
    other: np.ndarray,
    base_t: np.ndarray,
    base_n: np.ndarray,
    base_o: np.ndarray,
    max_k: int,
    min_k: int,
    fallback_when_few: bool,
    fallback: float,
) -> np.ndarray:
    """Slow reference of :func:`predict_pairs` on a dense similarity (tests only).

    ``sim`` is ``(n_entities, n_entities)``; ``ratings`` / ``rated`` are ``(n_other,
    n_entities)`` values and presence. Follows Surprise: the ``max_k`` most similar rated
    neighbours, of which the positive ones are used.
    """
    out = np.empty(target.shape[0])
    for p, (x, y) in enumerate(zip(target, other, strict=True)):
        cand = [nb for nb in np.flatnonzero(rated[y]) if nb != x]
        cand.sort(key=lambda nb: (-sim[x, nb], nb))
        top = [nb for nb in cand[:max_k] if sim[x, nb] > 0]
        if len(top) < min_k:
            out[p] = fallback if fallback_when_few else base_t[x] + base_o[y]
            continue
        w = np.array([sim[x, nb] for nb in top])
        dev = np.array([ratings[y, nb] - base_n[nb] - base_o[y] for nb in top])
        out[p] = base_t[x] + base_o[y] + (w * dev).sum() / w.sum()
    return out
