"""Kernels behind :mod:`recforge.metrics`: hit lookup, ideal DCG, per-user AUC, list diversity.

Shapes and dtypes
-----------------
recs : (n_rows, L) int32, item codes ranked best-first, ``-1`` (any negative) for padding
indptr : (n_rows + 1,) int64; indices : (nnz,) int32, sorted and unique within each row;
data : (nnz,) float64 -- a CSR matrix passed as its three arrays, one row per ``recs`` row
out_gain : (n_rows, k) float64, the stored value of each recommended item found in its CSR row,
0 elsewhere; a repeated item counts at its first position only
out_idcg : (n_rows, k) float64, ``out_idcg[u, j]`` is the ideal DCG at cutoff ``j + 1``
scores : (n_rows, n_items) float32 or float64; out_auc : (n_rows,) float64
pos : (n_rows, k) int32, position of each listed item among the distinct listed items, -1 padding
sim : (block_rows, n_distinct) float64, a row block of their cosine-similarity matrix
norms : (n_items,) float64, Euclidean norm of each item's feature row

Every kernel has a slow NumPy ``*_reference`` next to it with the same contract.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "auc_rows",
    "auc_rows_reference",
    "hit_gains",
    "hit_gains_reference",
    "ideal_dcg",
    "ideal_dcg_reference",
    "pair_sum_block",
    "pair_sum_block_reference",
    "pairwise_cosine_sum",
    "pairwise_cosine_sum_reference",
]


# --------------------------------------------------------------------------- hit lookup
@njit(cache=True, nogil=True, parallel=True)
def hit_gains(
    recs: np.ndarray,
    k: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    out_gain: np.ndarray,
) -> None:
    """Write into ``out_gain[u, j]`` the CSR value of ``recs[u, j]`` in row ``u`` (0 if absent)."""
    n = recs.shape[0]
    width = min(k, recs.shape[1])
    for u in prange(n):
        for j in range(k):
            out_gain[u, j] = 0.0
        lo = indptr[u]
        hi = indptr[u + 1]
        if hi == lo:
            continue
        for j in range(width):
            item = recs[u, j]
            if item < 0:
                continue
            a = lo
            b = hi
            while a < b:  # binary search for the first index >= item
                mid = (a + b) >> 1
                if indices[mid] < item:
                    a = mid + 1
                else:
                    b = mid
            if a < hi and indices[a] == item:
                repeated = False
                for jj in range(j):
                    if recs[u, jj] == item:
                        repeated = True
                        break
                if not repeated:
                    out_gain[u, j] = data[a]


def hit_gains_reference(
    recs: np.ndarray, k: int, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray
) -> np.ndarray:
    """Slow NumPy reference of :func:`hit_gains`; returns the ``(n_rows, k)`` gain matrix."""
    n = recs.shape[0]
    out = np.zeros((n, k), dtype=np.float64)
    for u in range(n):
        row = dict(
            zip(
                indices[indptr[u] : indptr[u + 1]].tolist(),
                data[indptr[u] : indptr[u + 1]].tolist(),
                strict=True,
            )
        )
        seen: set[int] = set()
        for j in range(min(k, recs.shape[1])):
            item = int(recs[u, j])
            if item < 0 or item in seen:
                continue
            seen.add(item)
            out[u, j] = row.get(item, 0.0)
    return out


# --------------------------------------------------------------------------- ideal DCG
@njit(cache=True, nogil=True, parallel=True)
def ideal_dcg(indptr: np.ndarray, data: np.ndarray, k: int, out_idcg: np.ndarray) -> None:
    """Ideal DCG of each CSR row at every cutoff ``1..k``: sorted gains, log2 discount."""
    n = indptr.shape[0] - 1
    disc = np.empty(k, dtype=np.float64)
    for j in range(k):
        disc[j] = 1.0 / np.log2(j + 2.0)
    for u in prange(n):
        buf = out_idcg[u]  # first the k largest gains, descending (insertion), no allocation
        size = 0
        for p in range(indptr[u], indptr[u + 1]):
            g = data[p]
            if size == k and g <= buf[k - 1]:
                continue
            pos = size if size < k else k - 1
            while pos > 0 and buf[pos - 1] < g:
                buf[pos] = buf[pos - 1]
                pos -= 1
            buf[pos] = g
            if size < k:
                size += 1
        acc = 0.0
        for j in range(k):
            if j < size:
                acc += buf[j] * disc[j]
            buf[j] = acc


def ideal_dcg_reference(indptr: np.ndarray, data: np.ndarray, k: int) -> np.ndarray:
    """Slow NumPy reference of :func:`ideal_dcg`; returns the ``(n_rows, k)`` matrix."""
    n = indptr.shape[0] - 1
    out = np.zeros((n, k), dtype=np.float64)
    disc = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    for u in range(n):
        g = np.sort(data[indptr[u] : indptr[u + 1]])[::-1][:k]
        padded = np.zeros(k, dtype=np.float64)
        padded[: g.size] = g
        out[u] = np.cumsum(padded * disc)
    return out


# --------------------------------------------------------------------------- AUC
@njit(cache=True, nogil=True, parallel=True)
def auc_rows(
    scores: np.ndarray,
    pos_indptr: np.ndarray,
    pos_indices: np.ndarray,
    excl_indptr: np.ndarray,
    excl_indices: np.ndarray,
    out_auc: np.ndarray,
) -> None:
    """ROC AUC of each score row: positives from the first CSR, items of the second left out.

    Ties count one half (Mann-Whitney U): each negative is located among the row's sorted
    positive scores by binary search, so a row costs ``O(n_items log n_pos)``. A row with no
    eligible positive or no eligible negative gets NaN. An item that is both positive and
    excluded is excluded.
    """
    n, m = scores.shape
    for u in prange(n):
        flag = np.zeros(m, dtype=np.int8)  # 0 negative, 1 positive, 2 excluded, 3 collected
        for p in range(excl_indptr[u], excl_indptr[u + 1]):
            flag[excl_indices[p]] = 2
        for p in range(pos_indptr[u], pos_indptr[u + 1]):
            i = pos_indices[p]
            if flag[i] == 0:
                flag[i] = 1
        n_pos = 0
        for p in range(pos_indptr[u], pos_indptr[u + 1]):
            if flag[pos_indices[p]] == 1:
                n_pos += 1
        pos_s = np.empty(n_pos, dtype=np.float64)
        c = 0
        for p in range(pos_indptr[u], pos_indptr[u + 1]):
            i = pos_indices[p]
            if flag[i] == 1:
                flag[i] = 3  # counted once even if the CSR row repeats it
                pos_s[c] = scores[u, i]
                c += 1
        n_pos = c
        pos_s = np.sort(pos_s[:c])
        # each negative: positives scored above it count 1, tied positives 1/2
        n_neg = 0
        wins = 0.0
        for i in range(m):
            if flag[i] != 0:
                continue
            n_neg += 1
            v = scores[u, i]
            lo = 0  # first positive >= v
            hi = n_pos
            while lo < hi:
                mid = (lo + hi) >> 1
                if pos_s[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
            above = lo  # first positive > v
            hi = n_pos
            while above < hi:
                mid = (above + hi) >> 1
                if pos_s[mid] <= v:
                    above = mid + 1
                else:
                    hi = mid
            wins += (n_pos - above) + 0.5 * (above - lo)
        if n_pos == 0 or n_neg == 0:
            out_auc[u] = np.nan
        else:
            out_auc[u] = wins / (n_pos * float(n_neg))


def auc_rows_reference(
    scores: np.ndarray,
    pos_indptr: np.ndarray,
    pos_indices: np.ndarray,
    excl_indptr: np.ndarray,
    excl_indices: np.ndarray,
) -> np.ndarray:
    """Slow NumPy reference of :func:`auc_rows` by explicit pair counting."""
    n, m = scores.shape
    out = np.full(n, np.nan, dtype=np.float64)
    for u in range(n):
        excluded = np.zeros(m, dtype=bool)
        excluded[excl_indices[excl_indptr[u] : excl_indptr[u + 1]]] = True
        positive = np.zeros(m, dtype=bool)
        positive[pos_indices[pos_indptr[u] : pos_indptr[u + 1]]] = True
        positive &= ~excluded
        negative = ~positive & ~excluded
        if not positive.any() or not negative.any():
            continue
        sp_ = scores[u, positive].astype(np.float64)[:, None]
        sn = scores[u, negative].astype(np.float64)[None, :]
        out[u] = ((sp_ > sn).sum() + 0.5 * (sp_ == sn).sum()) / (sp_.size * sn.size)
    return out


# --------------------------------------------------------------------------- diversity
@njit(cache=True, nogil=True, parallel=True)
def pair_sum_block(
    pos: np.ndarray, sim: np.ndarray, start: int, stop: int, out_sum: np.ndarray
) -> None:
    """Add to ``out_sum[u]`` the similarities of the pairs of row ``u`` whose first item is in
    the block of rows ``start..stop-1`` of the similarity matrix.

    ``pos`` is ``(n_rows, k)`` int32: each list entry's row/column in the similarity matrix of
    the distinct listed items, ``-1`` for padding. ``sim`` is the dense ``(stop - start, n_u)``
    float64 block of that matrix. A pair ``(a, b)``, ``a < b`` in list order, is assigned to the
    block holding ``pos[u, a]``, so running every block once counts every pair once.
    """
    n, k = pos.shape
    for u in prange(n):
        acc = 0.0
        for a in range(k):
            pa = pos[u, a]
            if pa < start or pa >= stop:
                continue
            row = pa - start
            for b in range(a + 1, k):
                pb = pos[u, b]
                if pb >= 0:
                    acc += sim[row, pb]
        out_sum[u] += acc


def pair_sum_block_reference(pos: np.ndarray, sim: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Slow NumPy reference of :func:`pair_sum_block`; returns the per-row additions."""
    n, k = pos.shape
    out = np.zeros(n, dtype=np.float64)
    for u in range(n):
        for a in range(k):
            if not start <= pos[u, a] < stop:
                continue
            for b in range(a + 1, k):
                if pos[u, b] >= 0:
                    out[u] += sim[pos[u, a] - start, pos[u, b]]
    return out


@njit(cache=True, nogil=True, parallel=True)
def pairwise_cosine_sum(
    recs: np.ndarray,
    k: int,
    f_indptr: np.ndarray,
    f_indices: np.ndarray,
    f_data: np.ndarray,
    norms: np.ndarray,
    out_sum: np.ndarray,
    out_pairs: np.ndarray,
) -> None:
    """Sum of cosine similarities over the pairs of valid items in each row's top ``k``.

    Item vectors are the rows of the CSR ``(f_indptr, f_indices, f_data)`` with sorted indices;
    an item with a zero vector has similarity 0 to everything. ``out_pairs[u]`` receives the
    number of pairs (padding excluded).
    """
    n = recs.shape[0]
    width = min(k, recs.shape[1])
    for u in prange(n):
        total = 0.0
        pairs = 0
        for a in range(width):
            i = recs[u, a]
            if i < 0:
                continue
            for b in range(a + 1, width):
                j = recs[u, b]
                if j < 0:
                    continue
                pairs += 1
                if norms[i] == 0.0 or norms[j] == 0.0:
                    continue
                if i == j:
                    total += 1.0
                    continue
                p = f_indptr[i]
                pe = f_indptr[i + 1]
                q = f_indptr[j]
                qe = f_indptr[j + 1]
                dot = 0.0
                while p < pe and q < qe:
                    ci = f_indices[p]
                    cj = f_indices[q]
                    if ci == cj:
                        dot += f_data[p] * f_data[q]
                        p += 1
                        q += 1
                    elif ci < cj:
                        p += 1
                    else:
                        q += 1
                total += dot / (norms[i] * norms[j])
        out_sum[u] = total
        out_pairs[u] = pairs


def pairwise_cosine_sum_reference(
    recs: np.ndarray, k: int, features: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Slow NumPy reference of :func:`pairwise_cosine_sum` from a dense feature matrix."""
    norms = np.linalg.norm(features, axis=1)
    n = recs.shape[0]
    total = np.zeros(n, dtype=np.float64)
    pairs = np.zeros(n, dtype=np.int64)
    for u in range(n):
        row = [int(x) for x in recs[u, :k] if x >= 0]
        for a in range(len(row)):
            for b in range(a + 1, len(row)):
                pairs[u] += 1
                i, j = row[a], row[b]
                if norms[i] == 0 or norms[j] == 0:
                    continue
                total[u] += float(features[i] @ features[j]) / (norms[i] * norms[j])
    return total, pairs
