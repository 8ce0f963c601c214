"""Exact re-scoring of retrieved candidates, with exclusion and an allow mask.

Shapes and dtypes
-----------------
queries : (n_rows, d) float32; keys : (n_items, d) float32; offsets : (n_rows,) float32
cand : (n_rows, n_cand) int64, -1 for "no candidate"
rows : (n_rows,) int64, the exclusion CSR row of each query, -1 for "exclude nothing"
excl_indptr : (n_csr_rows + 1,) int64; excl_indices : (nnz,) int32, sorted within a row
allowed : (n_items,) bool, or an empty array for "everything allowed"
out_idx : (n_rows, k) int32, -1 where fewer than k candidates were eligible
out_scores : (n_rows, k) float32, -inf where padded

Scores are ``queries[r] . keys[c] + offsets[r]``; ties go to the lower item code, as in the
full-catalogue top-K kernel, so an index that returns every item gives the exact list.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recforge._kernels.topk import _better, _sift_down


@njit(cache=True, nogil=True)
def _is_excluded(item: int, lo: int, hi: int, indices: np.ndarray) -> bool:
    while lo < hi:
        mid = (lo + hi) // 2
        v = indices[mid]
        if v == item:
            return True
        if v < item:
            lo = mid + 1
        else:
            hi = mid
    return False


@njit(cache=True, nogil=True)
def _rescore_row(
    q: np.ndarray,
    keys: np.ndarray,
    offset: float,
    cand: np.ndarray,
    lo: int,
    hi: int,
    excl_indices: np.ndarray,
    allowed: np.ndarray,
    k: int,
    out_i: np.ndarray,
    out_s: np.ndarray,
) -> int:
    hs = np.empty(k, dtype=np.float32)
    hi_ = np.empty(k, dtype=np.int32)
    size = 0
    d = q.shape[0]
    check_allowed = allowed.shape[0] > 0
    for j in range(cand.shape[0]):
        c = cand[j]
        if c < 0 or (check_allowed and not allowed[c]):
            continue
        if hi > lo and _is_excluded(c, lo, hi, excl_indices):
            continue
        s = np.float32(offset)
        for t in range(d):
            s += q[t] * keys[c, t]
        if not s > -np.inf:
            continue
        if size < k:
            hs[size] = s
            hi_[size] = c
            size += 1
            if size == k:
                for p in range(k // 2 - 1, -1, -1):
                    _sift_down(hs, hi_, p, k)
        elif _better(s, c, hs[0], hi_[0]):  # type: ignore[arg-type]
            hs[0] = s
            hi_[0] = c
            _sift_down(hs, hi_, 0, k)
    n_valid = size
    if size < k:
        for p in range(size // 2 - 1, -1, -1):
            _sift_down(hs, hi_, p, size)
    for pos in range(n_valid - 1, -1, -1):
        out_s[pos] = hs[0]
        out_i[pos] = hi_[0]
        size -= 1
        if size > 0:
            hs[0] = hs[size]
            hi_[0] = hi_[size]
            _sift_down(hs, hi_, 0, size)
    for pos in range(n_valid, k):
        out_s[pos] = -np.inf
        out_i[pos] = -1
    return n_valid


@njit(cache=True, parallel=True, nogil=True)
def rescore_candidates(
    queries: np.ndarray,
    keys: np.ndarray,
    offsets: np.ndarray,
    cand: np.ndarray,
    rows: np.ndarray,
    excl_indptr: np.ndarray,
    excl_indices: np.ndarray,
    allowed: np.ndarray,
    k: int,
    out_idx: np.ndarray,
    out_scores: np.ndarray,
) -> np.ndarray:
    """Top-``k`` of each row's candidates by exact score; returns the valid count per row."""
    n = queries.shape[0]
    n_valid = np.zeros(n, dtype=np.int64)
    for r in prange(n):
        row = rows[r]
        lo = 0
        hi = 0
        if row >= 0:
            lo = excl_indptr[row]
            hi = excl_indptr[row + 1]
        n_valid[r] = _rescore_row(
            queries[r],
            keys,
            offsets[r],
            cand[r],
            lo,
            hi,
            excl_indices,
            allowed,
            k,
            out_idx[r],
            out_scores[r],
        )
    return n_valid
