"""Building a CSR matrix from coordinates (two counting sorts and a merge of duplicates), and
looking a column up in a sorted CSR row (:func:`row_contains`, shared by the SGD samplers).

Shapes and dtypes
-----------------
rows : (nnz,) int32, in ``[0, n_rows)``; cols : (nnz,) int32, in ``[0, n_cols)``
vals : (nnz,) float32 or float64
returns ``indptr`` (n_rows + 1,) int64, ``indices`` (m,) int32 and ``data`` (m,) of ``vals``'
dtype, with the column indices of every row sorted ascending and duplicate (row, col) pairs
summed (``m <= nnz``). Explicit zeros are kept.

O(nnz + n_rows + n_cols) instead of the O(nnz log nnz) per-row sorting of
``scipy.sparse.coo_array.tocsr`` followed by ``sort_indices``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit


@njit(cache=True, nogil=True)
def coo_to_csr(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays of the coordinates (see module docs)."""
    nnz = rows.shape[0]
    # counting sort by column
    cstart = np.zeros(n_cols + 1, dtype=np.int64)
    for k in range(nnz):
        cstart[cols[k] + 1] += 1
    for c in range(n_cols):
        cstart[c + 1] += cstart[c]
    by_col = np.empty(nnz, dtype=np.int64)
    for k in range(nnz):
        c = cols[k]
        by_col[cstart[c]] = k
        cstart[c] += 1
    # stable counting sort of that order by row: columns end up ascending within each row
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    for k in range(nnz):
        indptr[rows[k] + 1] += 1
    for r in range(n_rows):
        indptr[r + 1] += indptr[r]
    fill = indptr[:-1].copy()
    indices = np.empty(nnz, dtype=np.int32)
    data = np.empty(nnz, dtype=vals.dtype)
    for t in range(nnz):
        k = by_col[t]
        r = rows[k]
        p = fill[r]
        indices[p] = cols[k]
        data[p] = vals[k]
        fill[r] = p + 1
    # merge duplicates (adjacent now) in place
    out_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    w = 0
    for r in range(n_rows):
        j = indptr[r]
        end = indptr[r + 1]
        while j < end:
            c = indices[j]
            s = data[j]
            j += 1
            while j < end and indices[j] == c:
                s += data[j]
                j += 1
            indices[w] = c
            data[w] = s
            w += 1
        out_ptr[r + 1] = w
    return out_ptr, indices[:w].copy(), data[:w].copy()


def coo_to_csr_reference(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SciPy reference of :func:`coo_to_csr`."""
    m = sp.csr_array((vals, (rows, cols)), shape=(n_rows, n_cols), dtype=vals.dtype)
    m.sum_duplicates()
    m.sort_indices()
    return m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data


@njit(cache=True, nogil=True, inline="always")
def row_contains(indices: np.ndarray, lo: int, hi: int, value: int | np.int64) -> bool:
    """Whether the sorted ``indices[lo:hi]`` (one CSR row) hold ``value`` (binary search)."""
    while lo < hi:
        mid = (lo + hi) // 2
        v = indices[mid]
        if v == value:
            return True
        if v < value:
            lo = mid + 1
        else:
            hi = mid
    return False
