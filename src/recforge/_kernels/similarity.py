"""Sparse top-n neighbour similarities, computed blockwise without a dense n x n matrix.

The entities compared (items for item-kNN, users for user-kNN) are the rows of a CSR matrix
``M`` (entities x features); ``T`` is the same matrix transposed (features x entities, CSR).
For a target entity ``x`` the kernel walks ``x``'s features ``f`` and, through ``T``, every
entity ``y`` sharing ``f``, accumulating per ``y`` the co-occurrence statistics over the
common support (count ``n``, ``Σ x·y``, and when needed ``Σ x²``, ``Σ y²``, ``Σ x``, ``Σ y``)
in dense per-thread accumulators of length ``n_entities``. Targets are processed in blocks of
rows in parallel; each block keeps only the best ``n_keep`` neighbours per target, so memory is
``O(n_entities · n_keep)`` plus one accumulator set per thread.

Similarity modes (``mode``)
---------------------------
0 ``cosine``        ``Σxy / sqrt(ssq_x · ssq_y)``
1 ``pearson``       ``(nΣxy - ΣxΣy) / sqrt((nΣx² - (Σx)²)(nΣy² - (Σy)²))`` over the common
                    support (0 when the denominator is 0), as Surprise computes it
2 ``jaccard``       ``n / (cnt_x + cnt_y - n)`` (values ignored)
3 ``asymmetric``    ``Σxy / (ssq_y^alpha · ssq_x^(1-alpha))`` (Aiolli 2013; target ``x``,
                    neighbour ``y``; alpha = 0.5 is cosine)
4 ``dot-scaled``    ``Σxy · scale_y`` (graph random-walk products such as RP3beta)

With ``common_norms`` the squared norms ``ssq`` of modes 0 and 3 are taken over the common
support (``Σx²``, ``Σy²`` accumulated per pair, as Surprise's cosine); otherwise ``ssq`` is
the entity's full squared norm (argument ``ssq``).

Then: ``sim = 0`` when ``n < min_support``; shrinkage ``sim *= n / (n + shrink)``; an entry is
kept when ``y != x`` and ``sim > min_sim``; the best ``n_keep`` are kept, sorted by decreasing
similarity, ties towards the lower index.

Shapes and dtypes
-----------------
m_indptr (n_entities + 1,) int64; m_indices (nnz,) int32; m_data (nnz,) float32
t_indptr (n_features + 1,) int64; t_indices (nnz,) int32; t_data (nnz,) float32
rows (n_rows,) int64: the target entities to compute
ssq (n_entities,) float64: squared norms (or the column scale of mode 4)
counts (n_entities,) float64: non-zeros per entity (Jaccard)
n_workers: parallel tasks (blocks are dealt to them cyclically)
out_idx (n_rows, n_keep) int32, -1 padded; out_val (n_rows, n_keep) float32; out_len (n_rows,)
int64
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import get_num_threads, njit, prange

from recforge._kernels.topk import _push, _sift_down

__all__ = [
    "MODES",
    "neighbours",
    "neighbours_reference",
    "topn_similarity",
]

MODES = {"cosine": 0, "pearson": 1, "jaccard": 2, "asymmetric": 3, "dot_scaled": 4}


@njit(cache=True, nogil=True, inline="always")
def _pair_similarity(
    mode: int,
    common_norms: bool,
    x: int,
    y: int,
    n: float,
    sxy: float,
    sxx: float,
    syy: float,
    sx: float,
    sy: float,
    ssq: np.ndarray,
    counts: np.ndarray,
    alpha: float,
) -> float:
    if mode == 0:
        nx = sxx if common_norms else ssq[x]
        ny = syy if common_norms else ssq[y]
        den = np.sqrt(nx * ny)
        return sxy / den if den > 0.0 else 0.0
    if mode == 1:
        num = n * sxy - sx * sy
        d = (n * sxx - sx * sx) * (n * syy - sy * sy)
        return num / np.sqrt(d) if d > 0.0 else 0.0
    if mode == 2:
        den = counts[x] + counts[y] - n
        return n / den if den > 0.0 else 0.0
    if mode == 3:
        nx = sxx if common_norms else ssq[x]
        ny = syy if common_norms else ssq[y]
        den = ny**alpha * nx ** (1.0 - alpha)
        return sxy / den if den > 0.0 else 0.0
    return sxy * ssq[y]


@njit(cache=True, nogil=True)
def _finish_heap(hs: np.ndarray, hi: np.ndarray, size: int, k: int) -> None:
    # heapify (when never full) then heap-sort: best first in hs[:size]
    if size < k:
        for p in range(size // 2 - 1, -1, -1):
            _sift_down(hs, hi, p, size)
    end = size - 1
    while end > 0:
        hs[0], hs[end] = hs[end], hs[0]
        hi[0], hi[end] = hi[end], hi[0]
        _sift_down(hs, hi, 0, end)
        end -= 1


@njit(cache=True, nogil=True)
def _neighbours_block(
    m_indptr: np.ndarray,
    m_indices: np.ndarray,
    m_data: np.ndarray,
    t_indptr: np.ndarray,
    t_indices: np.ndarray,
    t_data: np.ndarray,
    rows: np.ndarray,
    start: int,
    stop: int,
    n_entities: int,
    ssq: np.ndarray,
    counts: np.ndarray,
    mode: int,
    common_norms: bool,
    stats: bool,
    alpha: float,
    shrink: float,
    min_support: int,
    min_sim: float,
    n_keep: int,
    factorised: bool,
    fx: np.ndarray,
    fy: np.ndarray,
    out_idx: np.ndarray,
    out_val: np.ndarray,
    out_len: np.ndarray,
) -> None:
    # serial body of one block of targets (kept out of the parallel loop so that LLVM
    # optimises it as a plain function)
    cnt = np.zeros(n_entities, dtype=np.int32)
    seen = np.full(n_entities, -1, dtype=np.int64)  # last target that touched y
    acc = np.zeros(n_entities, dtype=np.float64)
    need_count = stats or not factorised or shrink > 0.0 or min_support > 1
    nst = n_entities if stats else 1
    axx = np.zeros(nst, dtype=np.float64)
    ayy = np.zeros(nst, dtype=np.float64)
    ax = np.zeros(nst, dtype=np.float64)
    ay = np.zeros(nst, dtype=np.float64)
    touched = np.empty(n_entities, dtype=np.int32)
    hs = np.empty(max(n_keep, 1), dtype=np.float32)
    hi = np.empty(max(n_keep, 1), dtype=np.int32)
    for r in range(start, stop):
        x = rows[r]
        n_touch = 0
        for p in range(m_indptr[x], m_indptr[x + 1]):
            f = m_indices[p]
            vx = np.float64(m_data[p])
            if stats:
                for q in range(t_indptr[f], t_indptr[f + 1]):
                    y = t_indices[q]
                    vy = np.float64(t_data[q])
                    if seen[y] != r:
                        seen[y] = r
                        touched[n_touch] = y
                        n_touch += 1
                    cnt[y] += 1
                    acc[y] += vx * vy
                    axx[y] += vx * vx
                    ayy[y] += vy * vy
                    ax[y] += vx
                    ay[y] += vy
            elif need_count:
                for q in range(t_indptr[f], t_indptr[f + 1]):
                    y = t_indices[q]
                    if seen[y] != r:
                        seen[y] = r
                        touched[n_touch] = y
                        n_touch += 1
                    cnt[y] += 1
                    acc[y] += vx * np.float64(t_data[q])
            else:
                for q in range(t_indptr[f], t_indptr[f + 1]):
                    y = t_indices[q]
                    if seen[y] != r:
                        seen[y] = r
                        touched[n_touch] = y
                        n_touch += 1
                    acc[y] += vx * np.float64(t_data[q])
        size = 0
        gx = fx[x]
        if factorised and not need_count and n_keep > 0:  # fast path: scaled dot products
            root = np.float32(np.inf)  # worst kept similarity once the heap is full
            for t in range(n_touch):
                y = touched[t]
                sim = acc[y] * gx * fy[y]
                acc[y] = 0.0
                if y == x or not sim > min_sim:
                    continue
                s32 = np.float32(sim)
                if size == n_keep and s32 < root:
                    continue
                size = _push(hs, hi, size, n_keep, s32, y)
                if size == n_keep:
                    root = hs[0]
            n_touch = 0
        for t in range(n_touch):
            y = touched[t]
            n = np.float64(cnt[y])
            if factorised:
                sim = acc[y] * gx * fy[y]
            elif stats:
                sim = _pair_similarity(
                    mode, common_norms, x, y, n, acc[y], axx[y], ayy[y], ax[y], ay[y],
                    ssq, counts, alpha,
                )  # fmt: skip
                axx[y] = 0.0
                ayy[y] = 0.0
                ax[y] = 0.0
                ay[y] = 0.0
            else:
                sim = _pair_similarity(
                    mode, common_norms, x, y, n, acc[y], 0.0, 0.0, 0.0, 0.0,
                    ssq, counts, alpha,
                )  # fmt: skip
            cnt[y] = 0
            acc[y] = 0.0
            if need_count and n < min_support:
                sim = 0.0
            if shrink > 0.0:
                sim *= n / (n + shrink)
            if y == x or not sim > min_sim or n_keep == 0:
                continue
            size = _push(hs, hi, size, n_keep, np.float32(sim), y)
        _finish_heap(hs, hi, size, n_keep)
        for j in range(size):
            out_idx[r, j] = hi[j]
            out_val[r, j] = hs[j]
        for j in range(size, n_keep):
            out_idx[r, j] = -1
            out_val[r, j] = 0.0
        out_len[r] = size


@njit(cache=True, nogil=True, parallel=True)
def neighbours(
    m_indptr: np.ndarray,
    m_indices: np.ndarray,
    m_data: np.ndarray,
    t_indptr: np.ndarray,
    t_indices: np.ndarray,
    t_data: np.ndarray,
    rows: np.ndarray,
    n_entities: int,
    ssq: np.ndarray,
    counts: np.ndarray,
    mode: int,
    common_norms: bool,
    alpha: float,
    shrink: float,
    min_support: int,
    min_sim: float,
    n_keep: int,
    block: int,
    n_workers: int,
    out_idx: np.ndarray,
    out_val: np.ndarray,
    out_len: np.ndarray,
) -> None:
    """Top-``n_keep`` neighbours of each target in ``rows`` (see the module docstring)."""
    n_rows = rows.shape[0]
    n_blocks = (n_rows + block - 1) // block
    stats = mode == 1 or (common_norms and (mode == 0 or mode == 3))
    # cosine / asymmetric cosine with full norms and dot_scaled factorise as
    # acc · fx[x] · fy[y]: no per-pair powers or square roots
    factorised = mode == 4 or (not common_norms and (mode == 0 or mode == 3))
    fx = np.ones(ssq.shape[0], dtype=np.float64)
    fy = np.ones(ssq.shape[0], dtype=np.float64)
    if factorised:
        for e in range(ssq.shape[0]):
            v = ssq[e]
            if mode == 4:
                fy[e] = v
            elif v > 0.0:
                ex = 0.5 if mode == 0 else 1.0 - alpha
                ey = 0.5 if mode == 0 else alpha
                fx[e] = v**-ex
                fy[e] = v**-ey
            else:
                fx[e] = 0.0
                fy[e] = 0.0
    # blocks are dealt out cyclically: neighbouring rows (e.g. items of similar age and
    # popularity) cost alike, so contiguous chunks would leave one thread with most work
    n_work = max(1, min(n_workers, n_blocks))
    for w in prange(n_work):
        for b in range(w, n_blocks, n_work):
            _neighbours_block(
                m_indptr, m_indices, m_data, t_indptr, t_indices, t_data, rows,
                b * block, min((b + 1) * block, n_rows), n_entities, ssq, counts, mode,
                common_norms, stats, alpha, shrink, min_support, min_sim, n_keep,
                factorised, fx, fy, out_idx, out_val, out_len,
            )  # fmt: skip


def neighbours_reference(
    m: np.ndarray,
    mode: str,
    *,
    common_norms: bool = False,
    alpha: float = 0.5,
    shrink: float = 0.0,
    min_support: int = 1,
    min_sim: float = 0.0,
    n_keep: int = 10,
    scale: np.ndarray | None = None,
    present: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Slow dense NumPy reference of :func:`neighbours` (tests only).

    Parameters
    ----------
    m
        Dense ``(n_entities, n_features)`` values.
    present
        Boolean mask of stored entries (default ``m != 0``); stored zeros count as support.

    Returns
    -------
    idx, val
        ``(n_entities, n_keep)`` neighbour indices (-1 padded) and similarities.
    """
    m = m.astype(np.float64)
    b = (m != 0) if present is None else present.astype(bool)
    bf = b.astype(np.float64)
    n = bf @ bf.T
    sxy = m @ m.T
    sxx = (m * m) @ bf.T  # Σ over common support of x²  (row x, col y)
    syy = sxx.T
    sx = m @ bf.T
    sy = sx.T
    full = (m * m).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == "cosine":
            nx, ny = (sxx, syy) if common_norms else (full[:, None], full[None, :])
            den = np.sqrt(nx * ny)
            sim = np.where(den > 0, sxy / den, 0.0)
        elif mode == "pearson":
            num = n * sxy - sx * sy
            d = (n * sxx - sx**2) * (n * syy - sy**2)
            sim = np.where(d > 0, num / np.sqrt(d), 0.0)
        elif mode == "jaccard":
            c = bf.sum(axis=1)
            den = c[:, None] + c[None, :] - n
            sim = np.where(den > 0, n / den, 0.0)
        elif mode == "asymmetric":
            nx, ny = (sxx, syy) if common_norms else (full[:, None], full[None, :])
            den = ny**alpha * nx ** (1 - alpha)
            sim = np.where(den > 0, sxy / den, 0.0)
        elif mode == "dot_scaled":
            assert scale is not None
            sim = sxy * scale[None, :]
        else:
            raise ValueError(mode)
    sim = np.where(n < min_support, 0.0, sim)
    if shrink > 0:
        sim = sim * n / (n + shrink)
    sim = sim.astype(np.float32)
    ne = m.shape[0]
    idx = np.full((ne, n_keep), -1, dtype=np.int32)
    val = np.zeros((ne, n_keep), dtype=np.float32)
    for x in range(ne):
        cand = [y for y in range(ne) if y != x and n[x, y] > 0 and sim[x, y] > min_sim]
        cand.sort(key=lambda y: (-sim[x, y], y))
        cand = cand[:n_keep]
        idx[x, : len(cand)] = cand
        val[x, : len(cand)] = sim[x, cand]
    return idx, val


def topn_similarity(
    m: sp.csr_array | sp.csr_matrix,
    mode: str,
    n_keep: int,
    *,
    common_norms: bool = False,
    alpha: float = 0.5,
    shrink: float = 0.0,
    min_support: int = 1,
    min_sim: float = 0.0,
    scale: np.ndarray | None = None,
    t: sp.csr_array | sp.csr_matrix | None = None,
    rows: np.ndarray | None = None,
    block: int = 64,
) -> sp.csr_array:
    """Sparse top-``n_keep`` similarity of the rows of ``m`` (checked wrapper of the kernel).

    Parameters
    ----------
    m
        ``(n_entities, n_features)`` CSR; its rows are compared.
    mode
        One of :data:`MODES`.
    n_keep
        Neighbours kept per target row (capped at ``n_entities - 1``).
    common_norms, alpha, shrink, min_support, min_sim
        See the module docstring.
    scale
        Per-entity column scale of ``"dot_scaled"`` (required there).
    t
        The right-hand ``(n_features, n_entities)`` CSR; default ``m.T`` (similarity). Give
        another matrix for products such as ``P_iu @ P_ui``.
    rows
        Target rows to compute (default all); the result has one row per target.
    block
        Targets per parallel task.

    Returns
    -------
    scipy.sparse.csr_array of float32
        ``(len(rows), n_entities)``; each row holds its neighbours sorted by decreasing
        similarity (column indices are therefore not sorted).
    """
    if mode not in MODES:
        raise ValueError(f"unknown similarity mode {mode!r} (modes: {', '.join(MODES)})")
    m = sp.csr_array(m)
    n_entities, n_features = m.shape
    tt = sp.csr_array(m.T) if t is None else sp.csr_array(t)
    if tt.shape[0] != n_features:
        raise ValueError(f"t has {tt.shape[0]} rows, expected {n_features} (features of m)")
    n_cols = tt.shape[1]
    mf = m.astype(np.float32)
    mf.sum_duplicates()
    tt = tt.astype(np.float32)
    tt.sum_duplicates()
    if mode == "dot_scaled":
        if scale is None or np.shape(scale) != (n_cols,):
            raise ValueError(f"mode 'dot_scaled' needs scale of shape ({n_cols},)")
        if n_cols != n_entities:
            raise ValueError(
                f"mode 'dot_scaled' needs a square product: m has {n_entities} rows, "
                f"t has {n_cols} columns"
            )
        ssq = np.ascontiguousarray(scale, dtype=np.float64)
    else:
        if n_cols != n_entities:
            raise ValueError("t must have one column per row of m for a similarity")
        ssq = np.asarray(mf.multiply(mf).sum(axis=1), dtype=np.float64).ravel()
    counts = np.diff(mf.indptr).astype(np.float64) if mode == "jaccard" else ssq
    target = (
        np.arange(m.shape[0], dtype=np.int64)
        if rows is None
        else np.ascontiguousarray(rows, dtype=np.int64)
    )
    k = int(max(0, min(n_keep, n_cols - 1 if n_cols > 1 else 0)))
    n_rows = target.shape[0]
    out_idx = np.empty((n_rows, max(k, 1)), dtype=np.int32)
    out_val = np.empty((n_rows, max(k, 1)), dtype=np.float32)
    out_len = np.zeros(n_rows, dtype=np.int64)
    neighbours(
        mf.indptr.astype(np.int64),
        mf.indices.astype(np.int32),
        mf.data,
        tt.indptr.astype(np.int64),
        tt.indices.astype(np.int32),
        tt.data,
        target,
        int(n_cols),
        ssq,
        counts,
        MODES[mode],
        bool(common_norms),
        float(alpha),
        float(shrink),
        int(min_support),
        float(min_sim),
        k,
        int(block),
        int(get_num_threads()),
        out_idx,
        out_val,
        out_len,
    )
    keep = np.arange(out_idx.shape[1])[None, :] < out_len[:, None]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(out_len, out=indptr[1:])
    return sp.csr_array(
        (out_val[keep], out_idx[keep], indptr), shape=(n_rows, int(n_cols)), dtype=np.float32
    )
