"""Top-K selection over dense score blocks, excluding items through a CSR matrix.

Shapes and dtypes
-----------------
scores : (n_rows, n_items) float32, modified in place (excluded entries set to -inf)
rows : (n_rows,) int64, the CSR row of each score row, -1 for "exclude nothing"
excl_indptr : (n_csr_rows + 1,) int64; excl_indices : (nnz,) int32
out_idx : (n_rows, k) int32, -1 where fewer than k items were eligible
out_scores : (n_rows, k) float32, -inf where padded

Ties are broken towards the lower item index, so results are deterministic.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _better(s1: float, i1: int, s2: float, i2: int) -> bool:
    return s1 > s2 or (s1 == s2 and i1 < i2)


@njit(cache=True, nogil=True)
def _sift_down(hs: np.ndarray, hi: np.ndarray, pos: int, size: int) -> None:
    # min-heap by "worse first": the root is the worst of the kept items
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        worst = left
        right = left + 1
        if right < size and _better(hs[worst], hi[worst], hs[right], hi[right]):
            worst = right
        if _better(hs[pos], hi[pos], hs[worst], hi[worst]):
            hs[pos], hs[worst] = hs[worst], hs[pos]
            hi[pos], hi[worst] = hi[worst], hi[pos]
            pos = worst
        else:
            return


@njit(cache=True, nogil=True, inline="always")
def _push(hs: np.ndarray, hi: np.ndarray, size: int, k: int, s: np.float32, i: int) -> int:
    # keep the best k of a stream in a "worst at the root" heap; returns the new size
    if size < k:
        hs[size] = s
        hi[size] = i
        size += 1
        if size == k:
            for p in range(k // 2 - 1, -1, -1):
                _sift_down(hs, hi, p, k)
    elif _better(s, i, hs[0], hi[0]):  # type: ignore[arg-type]
        hs[0] = s
        hi[0] = i
        _sift_down(hs, hi, 0, k)
    return size


@njit(cache=True, nogil=True)
def _pop_into(
    hs: np.ndarray, hi: np.ndarray, size: int, k: int, out_i: np.ndarray, out_s: np.ndarray
) -> None:
    # heapify (when never full), pop worst-first into the tail, pad the rest with -1 / -inf
    if size < k:
        for p in range(size // 2 - 1, -1, -1):
            _sift_down(hs, hi, p, size)
    n = size
    for pos in range(n - 1, -1, -1):
        out_s[pos] = hs[0]
        out_i[pos] = hi[0]
        size -= 1
        if size > 0:
            hs[0] = hs[size]
            hi[0] = hi[size]
            _sift_down(hs, hi, 0, size)
    for pos in range(n, k):
        out_s[pos] = -np.inf
        out_i[pos] = -1


@njit(cache=True, nogil=True)
def _select_row(row: np.ndarray, k: int, out_i: np.ndarray, out_s: np.ndarray) -> None:
    hs = np.empty(k, dtype=np.float32)
    hi = np.empty(k, dtype=np.int32)
    size = 0
    for j in range(row.shape[0]):
        s = row[j]
        if s > -np.inf:  # skips -inf and NaN
            size = _push(hs, hi, size, k, s, j)
    _pop_into(hs, hi, size, k, out_i, out_s)


@njit(cache=True, nogil=True, inline="always")
def _topk_one(
    r: int,
    scores: np.ndarray,
    rows: np.ndarray,
    excl_indptr: np.ndarray,
    excl_indices: np.ndarray,
    k: int,
    out_idx: np.ndarray,
    out_scores: np.ndarray,
) -> None:
    u = rows[r]
    if u >= 0:
        for p in range(excl_indptr[u], excl_indptr[u + 1]):
            scores[r, excl_indices[p]] = -np.inf
    _select_row(scores[r], k, out_idx[r], out_scores[r])


@njit(cache=True, nogil=True, parallel=True)
def topk_exclude(
    scores: np.ndarray,
    rows: np.ndarray,
    excl_indptr: np.ndarray,
    excl_indices: np.ndarray,
    k: int,
    out_idx: np.ndarray,
    out_scores: np.ndarray,
) -> None:
    """Keep the ``k`` best items of each score row, skipping the row's CSR items."""
    for r in prange(scores.shape[0]):
        _topk_one(r, scores, rows, excl_indptr, excl_indices, k, out_idx, out_scores)


@njit(cache=True, nogil=True)
def topk_exclude_serial(
    scores: np.ndarray,
    rows: np.ndarray,
    excl_indptr: np.ndarray,
    excl_indices: np.ndarray,
    k: int,
    out_idx: np.ndarray,
    out_scores: np.ndarray,
) -> None:
    """:func:`topk_exclude` on the calling thread: for a few rows (a serving request), waking
    the thread pool costs more than the work and competes with BLAS's spinning threads."""
    for r in range(scores.shape[0]):
        _topk_one(r, scores, rows, excl_indptr, excl_indices, k, out_idx, out_scores)


#: below this many rows :func:`topk` runs on the calling thread
SERIAL_ROWS = 8


def topk_reference(
    scores: np.ndarray,
    rows: np.ndarray,
    excl_indptr: np.ndarray,
    excl_indices: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Slow NumPy reference of :func:`topk_exclude` (same tie-breaking)."""
    s = np.array(scores, dtype=np.float32, copy=True)
    n, _m = s.shape
    idx = np.full((n, k), -1, dtype=np.int32)
    val = np.full((n, k), -np.inf, dtype=np.float32)
    for r in range(n):
        u = rows[r]
        if u >= 0:
            s[r, excl_indices[excl_indptr[u] : excl_indptr[u + 1]]] = -np.inf
        ok = np.flatnonzero(s[r] > -np.inf)
        order = ok[np.lexsort((ok, -s[r, ok]))][:k]
        idx[r, : order.size] = order
        val[r, : order.size] = s[r, order]
    return idx, val


def topk(
    scores: np.ndarray,
    k: int,
    rows: np.ndarray | None = None,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Checked wrapper of :func:`topk_exclude`; ``scores`` is overwritten.

    Parameters
    ----------
    scores
        ``(n_rows, n_items)`` scores; NaN and -inf are never selected.
    k
        List length.
    rows
        CSR row per score row (-1: exclude nothing); required with ``exclude``.
    exclude
        ``(indptr, indices)`` of the CSR matrix of items to exclude.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    s = np.ascontiguousarray(scores, dtype=np.float32)
    n, m = s.shape
    k = int(min(k, max(m, 1)))
    if exclude is None:
        indptr = np.zeros(1, dtype=np.int64)
        indices = np.zeros(0, dtype=np.int32)
        r = np.full(n, -1, dtype=np.int64)
    else:
        indptr = np.ascontiguousarray(exclude[0], dtype=np.int64)
        indices = np.ascontiguousarray(exclude[1], dtype=np.int32)
        if rows is None:
            raise ValueError("rows is required with exclude")
        r = np.ascontiguousarray(rows, dtype=np.int64)
    out_idx = np.empty((n, k), dtype=np.int32)
    out_scores = np.empty((n, k), dtype=np.float32)
    kernel = topk_exclude_serial if n < SERIAL_ROWS else topk_exclude
    kernel(s, r, indptr, indices, k, out_idx, out_scores)
    return out_idx, out_scores
