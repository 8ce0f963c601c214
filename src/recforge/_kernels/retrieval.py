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

from recforge._kernels.csr import row_contains
from recforge._kernels.topk import _pop_into, _push


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
        if hi > lo and row_contains(excl_indices, lo, hi, c):
            continue
        s = np.float32(offset)
        for t in range(d):
            s += q[t] * keys[c, t]
        if not s > -np.inf:
            continue
        size = _push(hs, hi_, size, k, s, c)
    _pop_into(hs, hi_, size, k, out_i, out_s)
    return size


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
