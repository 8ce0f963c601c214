"""Bayesian Personalised Ranking (Rendle et al. 2009) SGD on sampled (u, i, j) triples.

Each sample draws a stored interaction ``(u, i)`` uniformly (so users are visited in
proportion to their activity, as in ``implicit``) and a negative item ``j`` the user did not
interact with, either uniformly or from a popularity distribution given as a cumulative table.
The update ascends ``ln σ(x_uij) - reg ‖θ‖²`` with ``x_uij = b_i - b_j + p_u·(q_i - q_j)``.

Random numbers come from a per-block xorshift64* generator whose states are passed in, so a
run is reproducible for a fixed number of blocks when blocks run one after the other (one
thread). With several threads, blocks run concurrently without locks (Hogwild!), which is not
bit-deterministic.

Shapes and dtypes
-----------------
row_of : (nnz,) int32, the user of each stored interaction; indptr : (n_users + 1,) int64;
indices : (nnz,) int32, sorted within each row
P : (n_users, f) float32; Q : (n_items, f) float32; bias : (n_items,) float32, all in place
cdf : (n_items,) float64 cumulative negative-sampling probabilities (last entry 1), or an
empty array for uniform sampling
states : (n_blocks,) uint64 non-zero generator states, advanced in place
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.core import config as _numba_config

__all__ = [
    "bpr_epoch",
    "bpr_fold_in",
    "bpr_step_reference",
    "negative_cdf",
    "sample_items",
    "seed_states",
]

_MULT = np.uint64(2685821657736338717)
_S12 = np.uint64(12)
_S25 = np.uint64(25)
_S27 = np.uint64(27)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_TWO53 = 1.0 / 9007199254740992.0
_MAX_TRIES = 16
_F32 = np.float32
#: fast-math flags: reassociation lets LLVM vectorise the float32 dot products
_FAST = {"reassoc", "contract", "nsz", "arcp"}


# pure-Python mode (NUMBA_DISABLE_JIT=1, coverage runs): wrap around without warnings
if getattr(_numba_config, "DISABLE_JIT", False):

    def _wrapmul(a: np.uint64, b: np.uint64) -> np.uint64:
        with np.errstate(over="ignore"):
            return a * b

else:

    @njit(cache=True, nogil=True, inline="always")
    def _wrapmul(a: np.uint64, b: np.uint64) -> np.uint64:
        return a * b


@njit(cache=True, nogil=True, inline="always")
def _next(states: np.ndarray, b: int) -> np.uint64:
    x = states[b]
    x ^= x >> _S12
    x ^= x << _S25
    x ^= x >> _S27
    states[b] = x
    return _wrapmul(x, _MULT)


@njit(cache=True, nogil=True, inline="always")
def _randint(states: np.ndarray, b: int, n: int) -> np.int64:
    # Lemire's multiply-shift reduction of the high 32 bits: no division (n < 2**31)
    return np.int64(((_next(states, b) >> _S32) * np.uint64(n)) >> _S32)


@njit(cache=True, nogil=True, inline="always")
def _uniform(states: np.ndarray, b: int) -> float:
    return float(_next(states, b) >> _S11) * _TWO53


@njit(cache=True, nogil=True, inline="always")
def _sample_item(states: np.ndarray, b: int, cdf: np.ndarray, n_items: int) -> np.int64:
    if cdf.shape[0] == 0:
        return _randint(states, b, n_items)
    x = _uniform(states, b)
    lo = np.int64(0)
    hi = np.int64(cdf.shape[0] - 1)
    while lo < hi:  # first position with cdf > x
        mid = (lo + hi) // np.int64(2)
        if cdf[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True, nogil=True, inline="always")
def _contains(indices: np.ndarray, lo: int, hi: int, j: int | np.int64) -> bool:
    while lo < hi:
        mid = (lo + hi) // 2
        v = indices[mid]
        if v == j:
            return True
        if v < j:
            lo = mid + 1
        else:
            hi = mid
    return False


@njit(cache=True, nogil=True)
def sample_items(cdf: np.ndarray, n_items: int, n: int, states: np.ndarray) -> np.ndarray:
    """``n`` negative-candidate items drawn by the epoch's sampler (for tests), block 0."""
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        out[t] = _sample_item(states, 0, cdf, n_items)
    return out


@njit(cache=True, nogil=True, parallel=True, fastmath=_FAST)
def bpr_epoch(
    row_of: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    bias: np.ndarray,
    learning_rate: float,
    reg: float,
    n_samples: int,
    cdf: np.ndarray,
    states: np.ndarray,
) -> np.ndarray:
    """``n_samples`` SGD steps split over ``len(states)`` blocks run by ``prange``.

    Returns
    -------
    numpy.ndarray of float64, shape (3,)
        ``[samples used, samples with x_uij > 0 before the update, samples skipped]`` (a
        sample is skipped when no negative was found in a few tries).
    """
    n_blocks = states.shape[0]
    nnz = row_of.shape[0]
    n_items = Q.shape[0]
    f = P.shape[1]
    step = (n_samples + n_blocks - 1) // n_blocks
    stats = np.zeros((n_blocks, 3), dtype=np.float64)
    lr = _F32(learning_rate)
    rg = _F32(reg)
    for b in prange(n_blocks):
        todo = min(step, max(0, n_samples - b * step))
        # block-local generator state and counters: no false sharing between threads
        st = np.empty(1, dtype=np.uint64)
        st[0] = states[b]
        used = 0.0
        correct = 0.0
        skipped = 0.0
        for _ in range(todo):
            p = _randint(st, 0, nnz)
            u = row_of[p]
            i = indices[p]
            lo = indptr[u]
            hi = indptr[u + 1]
            j = np.int64(-1)
            for _t in range(_MAX_TRIES):
                c = _sample_item(st, 0, cdf, n_items)
                if not _contains(indices, lo, hi, c):
                    j = c
                    break
            if j < 0:
                skipped += 1.0
                continue
            pu = P[u]
            qi = Q[i]
            qj = Q[j]
            x = bias[i] - bias[j]
            for k in range(f):
                x += pu[k] * (qi[k] - qj[k])
            if x > 0.0:
                correct += 1.0
            used += 1.0
            # σ(-x) = d ln σ(x) / dx
            z = _F32(1.0 / (1.0 + math.exp(x))) if x > -30.0 else _F32(1.0)
            bias[i] += lr * (z - rg * bias[i])
            bias[j] += lr * (-z - rg * bias[j])
            for k in range(f):
                a = pu[k]
                bi_ = qi[k]
                bj_ = qj[k]
                pu[k] = a + lr * (z * (bi_ - bj_) - rg * a)
                qi[k] = bi_ + lr * (z * a - rg * bi_)
                qj[k] = bj_ + lr * (-z * a - rg * bj_)
        states[b] = st[0]
        stats[b, 0] = used
        stats[b, 1] = correct
        stats[b, 2] = skipped
    out = np.zeros(3, dtype=np.float64)
    for b in range(n_blocks):
        for col in range(3):
            out[col] += stats[b, col]
    return out


@njit(cache=True, nogil=True)
def bpr_fold_in(
    items: np.ndarray,
    Q: np.ndarray,
    bias: np.ndarray,
    epochs: int,
    learning_rate: float,
    reg: float,
    cdf: np.ndarray,
    states: np.ndarray,
) -> np.ndarray:
    """Learn a new user's vector against fixed item factors by BPR SGD.

    ``items`` are the user's item codes, sorted and unique. Each epoch takes ``len(items)``
    samples. Returns the ``(f,)`` float32 user vector, starting from zero.
    """
    f = Q.shape[1]
    n_items = Q.shape[0]
    n = items.shape[0]
    p = np.zeros(f, dtype=np.float64)
    if n == 0 or n >= n_items:
        return p.astype(np.float32)
    for _e in range(epochs):
        for _s in range(n):
            i = items[_randint(states, 0, n)]
            j = np.int64(-1)
            for _t in range(_MAX_TRIES):
                c = _sample_item(states, 0, cdf, n_items)
                if not _contains(items, 0, n, c):
                    j = c
                    break
            if j < 0:
                continue
            x = float(bias[i]) - float(bias[j])
            for k in range(f):
                x += p[k] * (float(Q[i, k]) - float(Q[j, k]))
            z = 1.0 / (1.0 + math.exp(x)) if x > -30.0 else 1.0
            for k in range(f):
                p[k] += learning_rate * (z * (float(Q[i, k]) - float(Q[j, k])) - reg * p[k])
    return p.astype(np.float32)


def bpr_step_reference(
    u: int,
    i: int,
    j: int,
    P: np.ndarray,
    Q: np.ndarray,
    bias: np.ndarray,
    learning_rate: float,
    reg: float,
) -> None:
    """Slow NumPy reference of one BPR update (in place, float32 like the kernel)."""
    f32 = np.float32
    lr, rg = f32(learning_rate), f32(reg)
    pu, qi, qj = P[u].copy(), Q[i].copy(), Q[j].copy()
    x = float(bias[i] - bias[j] + f32(pu @ (qi - qj)))
    z = f32(1.0 / (1.0 + np.exp(x))) if x > -30.0 else f32(1.0)
    bi, bj = bias[i], bias[j]
    bias[i] = bi + lr * (z - rg * bi)
    bias[j] = bj + lr * (-z - rg * bj)
    P[u] = pu + lr * (z * (qi - qj) - rg * pu)
    Q[i] = qi + lr * (z * pu - rg * qi)
    Q[j] = qj + lr * (-z * pu - rg * qj)


def negative_cdf(item_counts: np.ndarray, beta: float) -> np.ndarray:
    """Cumulative table of ``count^beta`` (normalised) for popularity negative sampling."""
    w = np.power(np.maximum(item_counts.astype(np.float64), 0.0), beta)
    w[item_counts <= 0] = 0.0
    total = w.sum()
    if total <= 0:
        w = np.ones_like(w)
        total = w.sum()
    cdf = np.cumsum(w / total)
    cdf[-1] = 1.0
    return cdf


def seed_states(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` non-zero xorshift states drawn from ``rng``."""
    return rng.integers(1, np.iinfo(np.int64).max, size=n, dtype=np.int64).astype(np.uint64)
