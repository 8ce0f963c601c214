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

The SVD kernels take ``ratings = (user, item, value)``, ``params = (user_bias, item_bias, P,
Q)`` and ``rates = (lr_bu, lr_bi, lr_p, lr_q, reg_bu, reg_bi, reg_p, reg_q)``; the SVD++ ones
``csr = (indptr, indices, values)``, ``params = (user_bias, item_bias, P, Q, Y)`` and ``rates =
(lr_b, lr_f, lr_y, reg_b, reg_f, reg_y)`` (biases, factors, implicit factors). Every epoch
kernel returns the sum of squared training errors seen during the epoch (float64).

:func:`svd_epoch_strata` runs the blocks of a stratified order (:mod:`recforge._kernels.strata`)
in parallel: the blocks of one stratum share no user and no item, so no update is lost or
raced, and the result is bit-identical to :func:`svd_epoch` on the same order whatever the
number of threads. SVD++ moves the implicit factors of every item a user rated, which spans all
item blocks, so its epoch stays sequential (deterministic, one thread).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from recforge._kernels.strata import run_parallel

_F32 = np.float32
Ratings = tuple[np.ndarray, np.ndarray, np.ndarray]
SvdParams = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
SvdppParams = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Rates = tuple[float, ...]
#: fast-math flags: reassociation lets LLVM vectorise the float32 dot products
_FAST = {"reassoc", "contract", "nsz", "arcp"}

__all__ = [
    "svd_epoch",
    "svd_epoch_reference",
    "svd_epoch_strata",
    "svdpp_epoch",
    "svdpp_epoch_reference",
    "svdpp_implicit_sums",
]


@njit(cache=True, nogil=True, inline="always", fastmath=_FAST)
def _svd_range(
    lo: int,
    hi: int,
    ratings: Ratings,
    order: np.ndarray,
    mu: float,
    params: SvdParams,
    rates: Rates,
) -> float:
    """SGD steps on the ratings ``order[lo:hi]``; float32 throughout.

    The dot product is reassociated (SIMD), so results match the reference to rounding, not
    bit for bit.
    """
    user, item, value = ratings
    bu, bi, P, Q = params
    f = P.shape[1]
    m32 = _F32(mu)
    a_bu, a_bi, a_p, a_q = _F32(rates[0]), _F32(rates[1]), _F32(rates[2]), _F32(rates[3])
    g_bu, g_bi, g_p, g_q = _F32(rates[4]), _F32(rates[5]), _F32(rates[6]), _F32(rates[7])
    sse = 0.0
    for t in range(lo, hi):
        n = order[t]
        u = user[n]
        i = item[n]
        pu = P[u]
        qi = Q[i]
        dot = _F32(0.0)
        for k in range(f):
            dot += pu[k] * qi[k]
        err = value[n] - (m32 + bu[u] + bi[i] + dot)
        bu[u] += a_bu * (err - g_bu * bu[u])
        bi[i] += a_bi * (err - g_bi * bi[i])
        for k in range(f):
            puf = pu[k]
            qif = qi[k]
            pu[k] = puf + a_p * (err * qif - g_p * puf)
            qi[k] = qif + a_q * (err * puf - g_q * qif)
        sse += float(err) * float(err)
    return sse


@njit(cache=True, nogil=True, fastmath=_FAST)
def svd_epoch(
    ratings: Ratings, order: np.ndarray, mu: float, params: SvdParams, rates: Rates
) -> float:
    """One sequential SGD epoch of biased MF in ``order``, Surprise's update rule."""
    return _svd_range(0, order.shape[0], ratings, order, mu, params, rates)


@njit(cache=True, nogil=True, fastmath=_FAST)
def _svd_segments_serial(
    ratings: Ratings, order: np.ndarray, bounds: np.ndarray, mu: float, params: SvdParams,
    rates: Rates, partial: np.ndarray,
) -> None:  # fmt: skip
    for g in range(partial.shape[0]):
        partial[g] = _svd_range(bounds[g], bounds[g + 1], ratings, order, mu, params, rates)


@njit(cache=True, nogil=True, parallel=True, fastmath=_FAST)
def _svd_segments_parallel(
    ratings: Ratings, order: np.ndarray, bounds: np.ndarray, mu: float, params: SvdParams,
    rates: Rates, partial: np.ndarray,
) -> None:  # fmt: skip
    n_blocks = round(math.sqrt(partial.shape[0]))
    for s in range(n_blocks):
        for r in prange(n_blocks):
            g = s * n_blocks + r
            partial[g] = _svd_range(bounds[g], bounds[g + 1], ratings, order, mu, params, rates)


def svd_epoch_strata(
    ratings: Ratings, order: np.ndarray, bounds: np.ndarray, mu: float, params: SvdParams,
    rates: Rates,
) -> float:  # fmt: skip
    """One deterministic SGD epoch over a stratified ``order`` (DSGD), parallel where it pays.

    ``bounds`` (``(B * B + 1,)``) delimits the segments of ``order`` (see
    :func:`recforge._kernels.strata.stratified_order`); the ``B`` blocks of a stratum run in
    parallel, the strata in turn, or, with one block or one thread, all in turn. Same
    arithmetic as :func:`svd_epoch` on ``order``, whatever the path.
    """
    partial = np.zeros(bounds.shape[0] - 1, dtype=np.float64)
    parallel = run_parallel(partial.shape[0])
    kernel = _svd_segments_parallel if parallel else _svd_segments_serial
    kernel(ratings, order, bounds, mu, params, rates, partial)
    return float(partial.sum())


def svd_epoch_reference(
    ratings: Ratings, order: np.ndarray, mu: float, params: SvdParams, rates: Rates
) -> float:
    """Slow NumPy reference of :func:`svd_epoch` (same order, same float32 updates, in place)."""
    user, item, value = ratings
    bu, bi, P, Q = params
    f32 = np.float32
    mu32 = f32(mu)
    a_bu, a_bi, a_p, a_q, g_bu, g_bi, g_p, g_q = (f32(x) for x in rates)
    sse = 0.0
    for n in order:
        u, i = int(user[n]), int(item[n])
        pu = P[u].copy()
        qi = Q[i].copy()
        err = f32(value[n]) - (mu32 + bu[u] + bi[i] + f32(pu @ qi))
        bu[u] = bu[u] + a_bu * (err - g_bu * bu[u])
        bi[i] = bi[i] + a_bi * (err - g_bi * bi[i])
        P[u] = pu + a_p * (err * qi - g_p * pu)
        Q[i] = qi + a_q * (err * pu - g_q * qi)
        sse += float(err) * float(err)
    return sse


# --------------------------------------------------------------------------- SVD++
@njit(cache=True, nogil=True, inline="always", fastmath=_FAST)
def _svdpp_user(
    u: int, csr: Ratings, mu: float, params: SvdppParams, z: np.ndarray, gz: np.ndarray,
    rates: Rates,
) -> float:  # fmt: skip
    """Surprise's SVD++ updates for every rating of user ``u``; ``z``, ``gz``: (f,) scratch."""
    indptr, indices, values = csr
    bu, bi, P, Q, Y = params
    f = P.shape[1]
    lo = indptr[u]
    hi = indptr[u + 1]
    n_u = hi - lo
    if n_u == 0:
        return 0.0
    norm = _F32(1.0 / math.sqrt(n_u))
    m32 = _F32(mu)
    a_b, a_f, a_y = _F32(rates[0]), _F32(rates[1]), _F32(rates[2])
    g_b, g_f, g_y = _F32(rates[3]), _F32(rates[4]), _F32(rates[5])
    decay = _F32(1.0) - a_y * g_y
    step_g = a_y * norm
    pu = P[u]
    # z = |N(u)|^-1/2 Σ y_j and the part of the y_j updates shared by all j of N(u)
    for k in range(f):
        z[k] = 0.0
        gz[k] = 0.0
    for p in range(lo, hi):
        yj = Y[indices[p]]
        for k in range(f):
            z[k] += yj[k]
    for k in range(f):
        z[k] *= norm
    sse = 0.0
    for p in range(lo, hi):
        i = indices[p]
        qi = Q[i]
        dot = _F32(0.0)
        for k in range(f):
            dot += qi[k] * (pu[k] + z[k])
        err = values[p] - (m32 + bu[u] + bi[i] + dot)
        sse += float(err) * float(err)
        bu[u] += a_b * (err - g_b * bu[u])
        bi[i] += a_b * (err - g_b * bi[i])
        for k in range(f):
            puf = pu[k]
            qif = qi[k]
            pu[k] = puf + a_f * (err * qif - g_f * puf)
            qi[k] = qif + a_f * (err * (puf + z[k]) - g_f * qif)
            # every y_j gets y_j <- decay y_j + lr_y err q_i / sqrt|N(u)|, hence
            # z <- decay z + lr_y err q_i, and the shared term accumulates with decay
            z[k] = decay * z[k] + a_y * err * qif
            gz[k] = decay * gz[k] + step_g * err * qif
    # apply the n_u per-rating updates to each y_j at once: y_j <- decay^n_u y_j + shared
    total_decay = decay**n_u
    for p in range(lo, hi):
        yj = Y[indices[p]]
        for k in range(f):
            yj[k] = total_decay * yj[k] + gz[k]
    return sse


@njit(cache=True, nogil=True, fastmath=_FAST)
def svdpp_epoch(
    user_order: np.ndarray, csr: Ratings, mu: float, params: SvdppParams, rates: Rates
) -> float:
    """One sequential SVD++ epoch visiting users in ``user_order`` (deterministic).

    ``rates`` is ``(lr_b, lr_f, lr_y, reg_b, reg_f, reg_y)`` (biases, factors, implicit
    factors).

    Computes exactly Surprise's per-rating SVD++ updates (Koren 2008, eq. 15) with the
    ratings grouped by user, in ``O(f)`` per rating instead of ``O(|N(u)| f)``: after a rating
    every ``y_j`` of ``N(u)`` moves by ``y_j <- d y_j + lr_y e q_i / sqrt|N(u)|`` with
    ``d = 1 - lr_y reg_y``, so the implicit sum follows ``z <- d z + lr_y e q_i`` and the
    ``y_j`` themselves are brought up to date once per user with ``y_j <- d^n y_j + s``, where
    ``s`` accumulates the shared term with the same decay.
    """
    f = params[2].shape[1]
    z = np.empty(f, dtype=np.float32)
    gz = np.empty(f, dtype=np.float32)
    sse = 0.0
    for t in range(user_order.shape[0]):
        sse += _svdpp_user(user_order[t], csr, mu, params, z, gz, rates)
    return sse


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
    user_order: np.ndarray, csr: Ratings, mu: float, params: SvdppParams, rates: Rates
) -> float:
    """Slow NumPy reference of :func:`svdpp_epoch`: Surprise's literal per-rating updates.

    Recomputes the implicit sum from the current ``y_j`` for every rating and updates every
    ``y_j`` of ``N(u)`` after every rating (``O(|N(u)| f)`` per rating), in float32.
    """
    indptr, indices, values = csr
    bu, bi, P, Q, Y = params
    f32 = np.float32
    mu32 = f32(mu)
    a_b, a_f, a_y, g_b, g_f, g_y = (f32(x) for x in rates)
    sse = 0.0
    for u in user_order:
        lo, hi = int(indptr[u]), int(indptr[u + 1])
        if hi == lo:
            continue
        items = indices[lo:hi]
        norm = f32(1.0 / np.sqrt(hi - lo))
        for p in range(lo, hi):
            i = int(indices[p])
            z = Y[items].sum(axis=0, dtype=np.float32) * norm
            pu = P[u].copy()
            qi = Q[i].copy()
            err = f32(values[p]) - (mu32 + bu[u] + bi[i] + f32(qi @ (pu + z)))
            sse += float(err) * float(err)
            bu[u] = bu[u] + a_b * (err - g_b * bu[u])
            bi[i] = bi[i] + a_b * (err - g_b * bi[i])
            P[u] = pu + a_f * (err * qi - g_f * pu)
            Q[i] = qi + a_f * (err * (pu + z) - g_f * qi)
            Y[items] = Y[items] + a_y * (err * qi * norm - g_y * Y[items])
    return sse
