"""Bayesian Personalised Ranking (Rendle et al. 2009) SGD on sampled (u, i, j) triples.

Each sample draws a stored interaction ``(u, i)`` uniformly (so users are visited in
proportion to their activity, as in ``implicit``) and a negative item ``j`` the user did not
interact with, either uniformly or from a popularity distribution given as a cumulative table.
The update ascends ``ln σ(x_uij) - reg ‖θ‖²`` with ``x_uij = b_i - b_j + p_u·(q_i - q_j)``.

The epoch is parallel and deterministic (DSGD, see :mod:`recforge._kernels.strata`): users are
cut into ``B`` blocks of equal activity and items into ``B`` random blocks of equal size.
Block ``(r, c)`` draws as many samples as it holds interactions, its positives among them and
its negatives among the items of item block ``c`` (uniformly or by popularity within the
block, an unbiased sample of the catalogue's distribution since the block is a random subset).
The blocks of a stratum share no user and no item, so they run in parallel without races;
each block owns an xorshift64* generator state. A fit is therefore bit-identical under the
seed whatever the number of threads.

Shapes and dtypes
-----------------
row_of : (nnz,) int32, the user of each stored interaction; indptr : (n_users + 1,) int64;
indices : (nnz,) int32, sorted within each row
P : (n_users, f) float32; Q : (n_items, f) float32; bias : (n_items,) float32, all in place
positions : (nnz,) int64 interaction positions grouped by block; bounds : (B * B + 1,) int64
block_items : (n_items,) int32 items grouped by item block; item_bounds : (B + 1,) int64
cdf : float64 cumulative negative-sampling probabilities, restarting at each item block of
``block_items`` (each block's last entry 1), or an empty array for uniform sampling
states : (B * B,) uint64 non-zero generator states, one per block, advanced in place
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
from numba import njit, prange
from numba.core import config as _numba_config

from recforge._kernels.csr import row_contains
from recforge._kernels.strata import run_parallel

__all__ = [
    "block_negative_cdf",
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
Arrays = tuple[np.ndarray, ...]
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
def _sample_in(states: np.ndarray, b: int, cdf: np.ndarray, lo: int, hi: int) -> np.int64:
    """A position in ``[lo, hi)``: uniform, or by the cumulative table ``cdf[lo:hi]``."""
    if cdf.shape[0] == 0:
        return np.int64(lo) + _randint(states, b, hi - lo)
    x = _uniform(states, b)
    a = np.int64(lo)
    z = np.int64(hi - 1)
    while a < z:  # first position with cdf > x
        mid = (a + z) // np.int64(2)
        if cdf[mid] > x:
            z = mid
        else:
            a = mid + 1
    return a


@njit(cache=True, nogil=True)
def sample_items(cdf: np.ndarray, n_items: int, n: int, states: np.ndarray) -> np.ndarray:
    """``n`` negative-candidate items drawn by the epoch's sampler (for tests), block 0."""
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        out[t] = _sample_in(states, 0, cdf, 0, n_items)
    return out


@njit(cache=True, nogil=True, inline="always", fastmath=_FAST)
def _bpr_step(
    u: int,
    i: int,
    j: int | np.int64,
    P: np.ndarray,
    Q: np.ndarray,
    bias: np.ndarray,
    lr: np.float32,
    rg: np.float32,
) -> bool:
    """One ascent step on ``ln σ(x_uij)``; returns whether ``x_uij > 0`` before it."""
    f = P.shape[1]
    pu = P[u]
    qi = Q[i]
    qj = Q[j]
    x = bias[i] - bias[j]
    for k in range(f):
        x += pu[k] * (qi[k] - qj[k])
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
    return x > 0.0


@njit(cache=True, nogil=True, inline="always", fastmath=_FAST)
def _bpr_segment(
    g: int,
    csr: Arrays, P: np.ndarray, Q: np.ndarray, bias: np.ndarray, rates: tuple[float, float],
    blocks: Arrays, cdf: np.ndarray, states: np.ndarray, stats: np.ndarray,
) -> None:  # fmt: skip
    """The samples of segment ``g`` (block ``(r, (r + s) mod B)`` for ``g = s B + r``)."""
    row_of, indptr, indices = csr
    positions, bounds, block_items, item_bounds = blocks
    n_blocks = item_bounds.shape[0] - 1
    c = (g % n_blocks + g // n_blocks) % n_blocks
    lo = bounds[g]
    n = bounds[g + 1] - lo
    lr = _F32(rates[0])
    rg = _F32(rates[1])
    # block-local generator state and counters: no false sharing between threads
    st = np.empty(1, dtype=np.uint64)
    st[0] = states[g]
    used = 0.0
    correct = 0.0
    for _ in range(n):
        p = positions[lo + _randint(st, 0, n)]
        u = row_of[p]
        j = np.int64(-1)
        for _t in range(_MAX_TRIES):
            cand = block_items[_sample_in(st, 0, cdf, item_bounds[c], item_bounds[c + 1])]
            if not row_contains(indices, indptr[u], indptr[u + 1], cand):
                j = cand
                break
        if j >= 0:
            used += 1.0
            correct += _bpr_step(u, indices[p], j, P, Q, bias, lr, rg)
    states[g] = st[0]
    stats[g, 0] = used
    stats[g, 1] = correct
    stats[g, 2] = n - used


@njit(cache=True, nogil=True, fastmath=_FAST)
def _bpr_segments_serial(
    csr: Arrays, P: np.ndarray, Q: np.ndarray, bias: np.ndarray, rates: tuple[float, float],
    blocks: Arrays, cdf: np.ndarray, states: np.ndarray, stats: np.ndarray,
) -> None:  # fmt: skip
    for g in range(stats.shape[0]):
        _bpr_segment(g, csr, P, Q, bias, rates, blocks, cdf, states, stats)


@njit(cache=True, nogil=True, parallel=True, fastmath=_FAST)
def _bpr_segments_parallel(
    csr: Arrays, P: np.ndarray, Q: np.ndarray, bias: np.ndarray, rates: tuple[float, float],
    blocks: Arrays, cdf: np.ndarray, states: np.ndarray, stats: np.ndarray,
) -> None:  # fmt: skip
    n_blocks = blocks[3].shape[0] - 1
    for s in range(n_blocks):
        for r in prange(n_blocks):
            _bpr_segment(s * n_blocks + r, csr, P, Q, bias, rates, blocks, cdf, states, stats)


def bpr_epoch(
    row_of: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    bias: np.ndarray,
    learning_rate: float,
    reg: float,
    positions: np.ndarray,
    bounds: np.ndarray,
    block_items: np.ndarray,
    item_bounds: np.ndarray,
    cdf: np.ndarray,
    states: np.ndarray,
) -> np.ndarray:
    """One epoch of ``nnz`` SGD steps, the blocks of each stratum in parallel (deterministic).

    With one block or one thread the segments run in turn (same bits, no thread woken).

    Returns
    -------
    numpy.ndarray of float64, shape (3,)
        ``[samples used, samples with x_uij > 0 before the update, samples skipped]`` (a
        sample is skipped when no negative was found in a few tries).
    """
    n_segments = (item_bounds.shape[0] - 1) ** 2
    if states.shape[0] != n_segments or bounds.shape[0] != n_segments + 1:
        raise ValueError(
            f"{n_segments} blocks need {n_segments} generator states and {n_segments + 1} "
            f"bounds, got {states.shape[0]} and {bounds.shape[0]}"
        )
    stats = np.zeros((n_segments, 3), dtype=np.float64)
    kernel = _bpr_segments_parallel if run_parallel(n_segments) else _bpr_segments_serial
    blocks = (positions, bounds, block_items, item_bounds)
    rates = (float(learning_rate), float(reg))
    kernel((row_of, indptr, indices), P, Q, bias, rates, blocks, cdf, states, stats)
    return np.asarray(stats.sum(axis=0), dtype=np.float64)


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
                c = _sample_in(states, 0, cdf, 0, n_items)
                if not row_contains(items, 0, n, c):
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


def block_negative_cdf(
    item_counts: np.ndarray, beta: float, block_items: np.ndarray, item_bounds: np.ndarray
) -> np.ndarray:
    """:func:`negative_cdf` within each item block of ``block_items`` (the epoch's table)."""
    counts = item_counts[block_items]
    parts = [
        negative_cdf(counts[lo:hi], beta) for lo, hi in pairwise(item_bounds.tolist()) if hi > lo
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)


def seed_states(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` non-zero xorshift states drawn from ``rng``."""
    return rng.integers(1, np.iinfo(np.int64).max, size=n, dtype=np.int64).astype(np.uint64)
