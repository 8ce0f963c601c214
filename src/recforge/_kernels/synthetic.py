"""Sampling kernel of the synthetic data generator.

Each user draws ``counts[u]`` distinct items with probability proportional to
``pop[i] * exp(min(beta * s_ui, bound[u]))`` where ``s_ui = user_factors[u] . item_factors[i]``,
sampled one after another without replacement:

* sparse users: propose an item from the popularity CDF (guide-table search), accept it with
  probability ``exp(min(0, beta * s_ui - bound[u]))``, reject duplicates through a small
  open-addressing hash set;
* dense users (more than a quarter of the catalogue) and users whose rejection loop runs too
  long (popular items taken, so most proposals are duplicates): Gumbel top-k over the
  remaining items, which samples the same distribution.

Randomness comes from a SplitMix64 stream per user, seeded from ``seed`` and the user's
position, so results do not depend on the number of threads.

Shapes and dtypes
-----------------
counts : (n_users,) int64            items to draw per user
offsets : (n_users,) int64           first output position of each user
user_factors : (n_users, f) float32; item_factors : (n_items, f) float32
cdf : (n_items,) float64             cumulative popularity (last entry = total)
log_pop : (n_items,) float64         log popularity
bound : (n_users,) float64           clip of ``beta * s`` per user (> 0)
out_items : (nnz,) int32; out_scores : (nnz,) float32 (``s_ui`` plus noise)
out_times : (nnz,) int64
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange
from numba.core import config as numba_config

_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1
_INV53 = 1.0 / 9007199254740992.0
#: Proposals tried per requested item before a sparse user switches to Gumbel top-k (which
#: costs about ``n_items`` proposals, so the loop also stops after ``2 * n_items`` of them).
TRIES_PER_ITEM = 64


def _next_ref(state: Any) -> tuple[Any, Any]:
    """SplitMix64 step on Python ints: ``(new state, output)``."""
    state = (state + _GOLDEN) & _MASK
    z = state
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return state, z ^ (z >> 31)


def _unit_ref(z: Any) -> float:
    return (float(z >> 11) + 0.5) * _INV53


def _seed_ref(seed: int, u: int) -> Any:
    return (seed ^ (((u + 1) * _M1) & _MASK)) & _MASK


if getattr(numba_config, "DISABLE_JIT", False):
    # Without the JIT, NumPy uint64 scalars would warn on the intended wrap-around: run the
    # same stream on Python ints instead.
    _next = _next_ref
    _unit = _unit_ref
    _seed = _seed_ref
else:

    @njit(cache=True, nogil=True, inline="always")
    def _next(state: Any) -> tuple[Any, Any]:
        state = state + np.uint64(_GOLDEN)
        z = state
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
        return state, z ^ (z >> np.uint64(31))

    @njit(cache=True, nogil=True, inline="always")
    def _unit(z: Any) -> float:
        # uniform in (0, 1): never 0, so logs are finite
        return (float(z >> np.uint64(11)) + 0.5) * _INV53

    @njit(cache=True, nogil=True, inline="always")
    def _seed(seed: int, u: int) -> Any:
        return np.uint64(seed) ^ (np.uint64(u + 1) * np.uint64(_M1))


@njit(cache=True, nogil=True, inline="always")
def _dot(a: np.ndarray, b: np.ndarray) -> float:
    acc = 0.0
    for k in range(a.shape[0]):
        acc += float(a[k]) * float(b[k])
    return acc


@njit(cache=True, nogil=True)
def _fill_dense(
    u: int,
    start: int,
    n: int,
    off: int,
    state: Any,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    log_pop: np.ndarray,
    beta: float,
    bound: float,
    out_items: np.ndarray,
    out_scores: np.ndarray,
) -> Any:
    n_items = item_factors.shape[0]
    keys = np.empty(n_items, dtype=np.float64)
    for i in range(n_items):
        s = _dot(user_factors[u], item_factors[i])
        state, z = _next(state)
        g = -math.log(-math.log(_unit(z)))
        keys[i] = -(log_pop[i] + min(beta * s, bound) + g)
    for j in range(start):
        keys[out_items[off + j]] = np.inf
    order = np.argsort(keys, kind="mergesort")
    for j in range(start, n):
        i = order[j - start]
        out_items[off + j] = i
        out_scores[off + j] = _dot(user_factors[u], item_factors[i])
    return state


@njit(cache=True, nogil=True, parallel=True)
def sample_interactions(
    counts: np.ndarray,
    offsets: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    cdf: np.ndarray,
    log_pop: np.ndarray,
    beta: float,
    bound: np.ndarray,
    seed: int,
    noise: float,
    t_start: int,
    t_span: int,
    out_items: np.ndarray,
    out_scores: np.ndarray,
    out_times: np.ndarray,
) -> None:
    """Fill ``out_*`` with each user's sampled items, scores and times (see module docs)."""
    n_users = counts.shape[0]
    n_items = item_factors.shape[0]
    total = cdf[n_items - 1]
    # Guide table (Chen & Asau): guide[k] is the first item whose cumulative weight exceeds
    # k / n_items of the total, so a draw starts its search next to the answer (O(1) expected
    # steps instead of a binary search); the result equals searchsorted(cdf, x, "right").
    guide = np.searchsorted(cdf, (np.arange(n_items) / n_items) * total, side="right")
    for u in prange(n_users):
        n = counts[u]
        if n == 0:
            continue
        off = offsets[u]
        state = _seed(seed, u)
        state, _ = _next(state)
        j = 0
        if 4 * n <= n_items:
            cap = 1
            while cap < 2 * n:
                cap *= 2
            table = np.full(cap, -1, dtype=np.int64)
            tries = 0
            limit = min(TRIES_PER_ITEM * n, 2 * n_items) + 1000
            while j < n and tries < limit:
                tries += 1
                state, z = _next(state)
                r = _unit(z)
                x = r * total
                i = guide[min(int(r * n_items), n_items - 1)]
                while i > 0 and cdf[i - 1] > x:
                    i -= 1
                while i < n_items - 1 and cdf[i] <= x:
                    i += 1
                s = _dot(user_factors[u], item_factors[i])
                state, z = _next(state)
                if _unit(z) >= math.exp(min(0.0, beta * s - bound[u])):
                    continue
                h = (i * 2654435761) & (cap - 1)
                dup = False
                while table[h] != -1:
                    if table[h] == i:
                        dup = True
                        break
                    h = (h + 1) & (cap - 1)
                if dup:
                    continue
                table[h] = i
                out_items[off + j] = i
                out_scores[off + j] = s
                j += 1
        if j < n:
            state = _fill_dense(
                u,
                j,
                n,
                off,
                state,
                user_factors,
                item_factors,
                log_pop,
                beta,
                bound[u],
                out_items,
                out_scores,
            )
        for j in range(n):
            state, z = _next(state)
            out_times[off + j] = t_start + np.int64(_unit(z) * t_span)
            if noise > 0.0:
                state, z1 = _next(state)
                state, z2 = _next(state)
                normal = math.sqrt(-2.0 * math.log(_unit(z1))) * math.cos(2.0 * math.pi * _unit(z2))
                out_scores[off + j] = out_scores[off + j] + noise * normal


# ----------------------------------------------------------------------------- reference
def sample_interactions_reference(
    counts: np.ndarray,
    offsets: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    cdf: np.ndarray,
    log_pop: np.ndarray,
    beta: float,
    bound: np.ndarray,
    seed: int,
    noise: float,
    t_start: int,
    t_span: int,
    out_items: np.ndarray,
    out_scores: np.ndarray,
    out_times: np.ndarray,
) -> None:
    """Slow pure-Python/NumPy version of :func:`sample_interactions` (same random stream)."""
    n_items = item_factors.shape[0]
    total = float(cdf[-1])
    uf = user_factors.astype(np.float64)
    vf = item_factors.astype(np.float64)

    def dot(u: int, i: int) -> float:
        acc = 0.0
        for k in range(uf.shape[1]):
            acc += uf[u, k] * vf[i, k]
        return acc

    for u in range(counts.shape[0]):
        n = int(counts[u])
        if n == 0:
            continue
        off = int(offsets[u])
        state = _seed_ref(seed, u)
        state, _ = _next_ref(state)
        chosen: list[int] = []
        scores: list[float] = []
        if 4 * n <= n_items:
            seen: set[int] = set()
            tries = 0
            limit = min(TRIES_PER_ITEM * n, 2 * n_items) + 1000
            while len(chosen) < n and tries < limit:
                tries += 1
                state, z = _next_ref(state)
                i = min(int(np.searchsorted(cdf, _unit_ref(z) * total, side="right")), n_items - 1)
                s = dot(u, i)
                state, z = _next_ref(state)
                if _unit_ref(z) >= math.exp(min(0.0, beta * s - bound[u])):
                    continue
                if i in seen:
                    continue
                seen.add(i)
                chosen.append(i)
                scores.append(s)
        if len(chosen) < n:
            keys = np.empty(n_items)
            for i in range(n_items):
                s = dot(u, i)
                state, z = _next_ref(state)
                keys[i] = -(
                    log_pop[i] + min(beta * s, bound[u]) - math.log(-math.log(_unit_ref(z)))
                )
            keys[chosen] = np.inf
            for i in np.argsort(keys, kind="mergesort")[: n - len(chosen)]:
                chosen.append(int(i))
                scores.append(dot(u, int(i)))
        out_items[off : off + n] = chosen
        out_scores[off : off + n] = scores
        for j in range(n):
            state, z = _next_ref(state)
            out_times[off + j] = t_start + int(_unit_ref(z) * t_span)
            if noise > 0.0:
                state, z1 = _next_ref(state)
                state, z2 = _next_ref(state)
                normal = math.sqrt(-2.0 * math.log(_unit_ref(z1))) * math.cos(
                    2.0 * math.pi * _unit_ref(z2)
                )
                out_scores[off + j] = float(out_scores[off + j]) + noise * normal
