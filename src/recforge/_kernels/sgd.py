"""SGD epochs of biased matrix factorisation (SVD) and SVD++ on explicit ratings.

Shapes and dtypes
-----------------
user, item : (nnz,) int32 codes of each rating; value : (nnz,) float32 ratings
order : (nnz,) int64, the visiting order of the ratings in this epoch
user_bias : (n_users,) float32; item_bias : (n_items,) float32, updated in place
P : (n_users, f) float32 user factors; Q : (n_items, f) float32 item factors, in place
indptr : (n_users + 1,) int64, indices : (nnz,) int32, values : (nnz,) float32 -- the ratings
grouped by user (CSR rows), used by SVD++
Y : (n_items, f) float32 implicit item factors of SVD++, in place

Every epoch kernel returns the sum of squared training errors seen during the epoch (float64).

The ``*_hogwild`` kernels split the visiting order into ``n_blocks`` contiguous blocks run by
``prange`` without locks (Hogwild!, Recht et al. 2011): updates of different threads may
overwrite each other, so results are not bit-identical across thread counts or runs. The
sequential kernels are deterministic; with ``n_blocks == 1`` both do the same arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "svd_epoch",
    "svd_epoch_hogwild",
    "svd_epoch_reference",
    "svdpp_epoch",
    "svdpp_epoch_hogwild",
    "svdpp_epoch_reference",
    "svdpp_implicit_sums",
]


@njit(cache=True, nogil=True, inline="always")
def _svd_step(
    u: int,
    i: int,
    r: float,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    lr_bu: float,
    lr_bi: float,
    lr_p: float,
    lr_q: float,
    reg_bu: float,
    reg_bi: float,
    reg_p: float,
    reg_q: float,
) -> float:
    f = P.shape[1]
    dot = 0.0
    for k in range(f):
        dot += float(P[u, k]) * float(Q[i, k])
    err = r - (mu + bu[u] + bi[i] + dot)
    bu[u] += lr_bu * (err - reg_bu * bu[u])
    bi[i] += lr_bi * (err - reg_bi * bi[i])
    for k in range(f):
        puf = float(P[u, k])
        qif = float(Q[i, k])
        P[u, k] = puf + lr_p * (err * qif - reg_p * puf)
        Q[i, k] = qif + lr_q * (err * puf - reg_q * qif)
    return err * err


@njit(cache=True, nogil=True)
def svd_epoch(
    user: np.ndarray,
    item: np.ndarray,
    value: np.ndarray,
    order: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    lr_bu: float,
    lr_bi: float,
    lr_p: float,
    lr_q: float,
    reg_bu: float,
    reg_bi: float,
    reg_p: float,
    reg_q: float,
) -> float:
    """One sequential (deterministic) SGD epoch of biased MF, Surprise's update rule."""
    sse = 0.0
    for t in range(order.shape[0]):
        n = order[t]
        sse += _svd_step(
            user[n], item[n], value[n], mu, bu, bi, P, Q,
            lr_bu, lr_bi, lr_p, lr_q, reg_bu, reg_bi, reg_p, reg_q,
        )  # fmt: skip
    return sse


@njit(cache=True, nogil=True, parallel=True)
def svd_epoch_hogwild(
    user: np.ndarray,
    item: np.ndarray,
    value: np.ndarray,
    order: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    lr_bu: float,
    lr_bi: float,
    lr_p: float,
    lr_q: float,
    reg_bu: float,
    reg_bi: float,
    reg_p: float,
    reg_q: float,
    n_blocks: int,
) -> float:
    """One lock-free parallel SGD epoch over ``n_blocks`` blocks of ``order``."""
    nnz = order.shape[0]
    step = (nnz + n_blocks - 1) // n_blocks
    partial = np.zeros(n_blocks, dtype=np.float64)
    for b in prange(n_blocks):
        lo = b * step
        hi = min(nnz, lo + step)
        s = 0.0
        for t in range(lo, hi):
            n = order[t]
            s += _svd_step(
                user[n], item[n], value[n], mu, bu, bi, P, Q,
                lr_bu, lr_bi, lr_p, lr_q, reg_bu, reg_bi, reg_p, reg_q,
            )  # fmt: skip
        partial[b] = s
    return partial.sum()


def svd_epoch_reference(
    user: np.ndarray,
    item: np.ndarray,
    value: np.ndarray,
    order: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    lr_bu: float,
    lr_bi: float,
    lr_p: float,
    lr_q: float,
    reg_bu: float,
    reg_bi: float,
    reg_p: float,
    reg_q: float,
) -> float:
    """Slow NumPy reference of :func:`svd_epoch` (same order, same updates, in place)."""
    sse = 0.0
    for n in order:
        u, i, r = int(user[n]), int(item[n]), float(value[n])
        pu = P[u].astype(np.float64)
        qi = Q[i].astype(np.float64)
        err = r - (mu + float(bu[u]) + float(bi[i]) + float(pu @ qi))
        bu[u] = float(bu[u]) + lr_bu * (err - reg_bu * float(bu[u]))
        bi[i] = float(bi[i]) + lr_bi * (err - reg_bi * float(bi[i]))
        P[u] = pu + lr_p * (err * qi - reg_p * pu)
        Q[i] = qi + lr_q * (err * pu - reg_q * qi)
        sse += err * err
    return sse


# --------------------------------------------------------------------------- SVD++
@njit(cache=True, nogil=True, inline="always")
def _svdpp_user(
    u: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    Y: np.ndarray,
    z: np.ndarray,
    gz: np.ndarray,
    lr_b: float,
    lr_f: float,
    lr_y: float,
    reg_b: float,
    reg_f: float,
    reg_y: float,
) -> float:
    f = P.shape[1]
    lo = indptr[u]
    hi = indptr[u + 1]
    n_u = hi - lo
    if n_u == 0:
        return 0.0
    norm = 1.0 / math.sqrt(n_u)
    # implicit term z = |N(u)|^-1/2 Σ y_j, cached for all of the user's ratings
    for k in range(f):
        z[k] = 0.0
        gz[k] = 0.0
    for p in range(lo, hi):
        j = indices[p]
        for k in range(f):
            z[k] += Y[j, k]
    for k in range(f):
        z[k] *= norm
    sse = 0.0
    for p in range(lo, hi):
        i = indices[p]
        dot = 0.0
        for k in range(f):
            dot += float(Q[i, k]) * (float(P[u, k]) + z[k])
        err = values[p] - (mu + bu[u] + bi[i] + dot)
        sse += err * err
        bu[u] += lr_b * (err - reg_b * bu[u])
        bi[i] += lr_b * (err - reg_b * bi[i])
        for k in range(f):
            puf = float(P[u, k])
            qif = float(Q[i, k])
            P[u, k] = puf + lr_f * (err * qif - reg_f * puf)
            Q[i, k] = qif + lr_f * (err * (puf + z[k]) - reg_f * qif)
            gz[k] += err * qif
    # one update of every y_j of N(u) with the gradient accumulated over the user's ratings
    # (equivalent to n_u per-rating updates with z held fixed)
    shrink = lr_y * reg_y * n_u
    for p in range(lo, hi):
        j = indices[p]
        for k in range(f):
            yjk = float(Y[j, k])
            Y[j, k] = yjk + (lr_y * gz[k] * norm - shrink * yjk)
    return sse


@njit(cache=True, nogil=True)
def svdpp_epoch(
    user_order: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    Y: np.ndarray,
    lr_b: float,
    lr_f: float,
    lr_y: float,
    reg_b: float,
    reg_f: float,
    reg_y: float,
) -> float:
    """One sequential SVD++ epoch visiting users in ``user_order`` (deterministic).

    For each user the implicit sum ``z_u`` is computed once, the user's ratings are visited in
    row order updating biases, ``p_u`` and ``q_i`` (Koren 2008, eq. 15, Surprise's rule) while
    the gradient of ``z_u`` accumulates, and every ``y_j`` of the user is updated once at the
    end: ``y_j += lr_y (g / sqrt|N(u)| - |N(u)| reg_y y_j)``.
    """
    f = P.shape[1]
    z = np.empty(f, dtype=np.float64)
    gz = np.empty(f, dtype=np.float64)
    sse = 0.0
    for t in range(user_order.shape[0]):
        sse += _svdpp_user(
            user_order[t], indptr, indices, values, mu, bu, bi, P, Q, Y, z, gz,
            lr_b, lr_f, lr_y, reg_b, reg_f, reg_y,
        )  # fmt: skip
    return sse


@njit(cache=True, nogil=True, parallel=True)
def svdpp_epoch_hogwild(
    user_order: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    Y: np.ndarray,
    lr_b: float,
    lr_f: float,
    lr_y: float,
    reg_b: float,
    reg_f: float,
    reg_y: float,
    n_blocks: int,
) -> float:
    """:func:`svdpp_epoch` with users split into ``n_blocks`` lock-free parallel blocks."""
    f = P.shape[1]
    n = user_order.shape[0]
    step = (n + n_blocks - 1) // n_blocks
    partial = np.zeros(n_blocks, dtype=np.float64)
    for b in prange(n_blocks):
        z = np.empty(f, dtype=np.float64)
        gz = np.empty(f, dtype=np.float64)
        s = 0.0
        for t in range(b * step, min(n, (b + 1) * step)):
            s += _svdpp_user(
                user_order[t], indptr, indices, values, mu, bu, bi, P, Q, Y, z, gz,
                lr_b, lr_f, lr_y, reg_b, reg_f, reg_y,
            )  # fmt: skip
        partial[b] = s
    return partial.sum()


@njit(cache=True, nogil=True, parallel=True)
def svdpp_implicit_sums(indptr: np.ndarray, indices: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``(n_rows, f)`` float32 matrix of ``|N(u)|^-1/2 Σ_{j in N(u)} y_j`` per CSR row."""
    n = indptr.shape[0] - 1
    f = Y.shape[1]
    out = np.zeros((n, f), dtype=np.float32)
    for u in prange(n):
        lo = indptr[u]
        hi = indptr[u + 1]
        if hi == lo:
            continue
        acc = np.zeros(f, dtype=np.float64)
        for p in range(lo, hi):
            j = indices[p]
            for k in range(f):
                acc[k] += Y[j, k]
        norm = 1.0 / math.sqrt(hi - lo)
        for k in range(f):
            out[u, k] = acc[k] * norm
    return out


def svdpp_epoch_reference(
    user_order: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    Y: np.ndarray,
    lr_b: float,
    lr_f: float,
    lr_y: float,
    reg_b: float,
    reg_f: float,
    reg_y: float,
) -> float:
    """Slow NumPy reference of :func:`svdpp_epoch` (same order, same updates, in place)."""
    sse = 0.0
    for u in user_order:
        lo, hi = int(indptr[u]), int(indptr[u + 1])
        if hi == lo:
            continue
        items = indices[lo:hi]
        norm = 1.0 / np.sqrt(hi - lo)
        z = Y[items].astype(np.float64).sum(axis=0) * norm
        gz = np.zeros_like(z)
        for p in range(lo, hi):
            i = int(indices[p])
            pu = P[u].astype(np.float64)
            qi = Q[i].astype(np.float64)
            err = float(values[p]) - (mu + float(bu[u]) + float(bi[i]) + float(qi @ (pu + z)))
            sse += err * err
            bu[u] = float(bu[u]) + lr_b * (err - reg_b * float(bu[u]))
            bi[i] = float(bi[i]) + lr_b * (err - reg_b * float(bi[i]))
            P[u] = pu + lr_f * (err * qi - reg_f * pu)
            Q[i] = qi + lr_f * (err * (pu + z) - reg_f * qi)
            gz += err * qi
        for j in items:
            yj = Y[j].astype(np.float64)
            Y[j] = yj + (lr_y * gz * norm - lr_y * reg_y * (hi - lo) * yj)
    return sse
