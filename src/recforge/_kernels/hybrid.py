"""SGD epochs of a LightFM-style hybrid factorisation (BPR and WARP losses, Adagrad).

Model (Kula 2015, "Metadata Embeddings for User and Item Cold-start Recommendations"): an item
is a weighted sum of feature embeddings, ``q_i = Σ_f F[i, f] E[f]`` with bias
``b_i = Σ_f F[i, f] c[f]``; a user likewise, ``p_u = Σ_g G[u, g] U[g]``; the score is
``p_u · q_i + b_i``.

Shapes and dtypes
-----------------
users, items : (n,) int32 -- positive (user, item) pairs
negatives : (n, s) int32 -- candidate negative items per pair, pre-sampled by the caller
order : (n,) int64 -- visiting order of the pairs
g_indptr : (n_users + 1,) int64; g_indices : (nnz,) int32; g_data : (nnz,) float32 -- CSR G
user_emb : (n_user_feat, d) float32; user_acc : same shape (Adagrad accumulators)
f_indptr : (n_items + 1,) int64; f_indices : (nnz,) int32; f_data : (nnz,) float32 -- CSR F
feat_emb : (n_feat, d) float32; feat_acc : (n_feat, d) float32
feat_bias : (n_feat,) float32; bias_acc : (n_feat,) float32
seen_indptr : (n_users + 1,) int64; seen_indices : (nnz,) int32, sorted per row -- positives
n_catalog : number of items negatives are drawn from (WARP rank estimate)

Parallelism and determinism
---------------------------
The pairs are cut into ``n_chunks`` contiguous slices of ``order`` processed in parallel
without locks (Hogwild, Recht et al. 2011). Sampling is done by the caller, so every chunk's
randomness is fixed in advance; with ``n_chunks=1`` (the model's default) the result is
deterministic, with more chunks concurrent updates of shared embeddings make it vary slightly
between runs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from recforge._kernels.csr import row_contains

LOSS_BPR = 0
LOSS_WARP = 1


@njit(cache=True, nogil=True)
def _represent(
    item: int,
    fm: tuple[np.ndarray, np.ndarray, np.ndarray],
    feat_emb: np.ndarray,
    feat_bias: np.ndarray,
    out: np.ndarray,
) -> float:
    f_indptr, f_indices, f_data = fm
    out[:] = 0.0
    bias = np.float32(0.0)
    for p in range(f_indptr[item], f_indptr[item + 1]):
        f = f_indices[p]
        w = f_data[p]
        bias += w * feat_bias[f]
        for k in range(out.shape[0]):
            out[k] += w * feat_emb[f, k]
    return float(bias)


@njit(cache=True, nogil=True)
def _update_item(
    item: int,
    sign: float,
    delta: float,
    pu: np.ndarray,
    fm: tuple[np.ndarray, np.ndarray, np.ndarray],
    item_side: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    lr: float,
    reg: float,
) -> None:
    f_indptr, f_indices, f_data = fm
    feat_emb, feat_acc, feat_bias, bias_acc = item_side
    for p in range(f_indptr[item], f_indptr[item + 1]):
        f = f_indices[p]
        w = f_data[p]
        gb = sign * delta * w - reg * feat_bias[f]
        bias_acc[f] += gb * gb
        feat_bias[f] += lr * gb / math.sqrt(bias_acc[f])
        for k in range(pu.shape[0]):
            g = sign * delta * w * pu[k] - reg * feat_emb[f, k]
            feat_acc[f, k] += g * g
            feat_emb[f, k] += lr * g / math.sqrt(feat_acc[f, k])


@njit(cache=True, nogil=True)
def _run_chunk(
    lo: int,
    hi: int,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    gm: tuple[np.ndarray, np.ndarray, np.ndarray],
    user_emb: np.ndarray,
    user_acc: np.ndarray,
    fm: tuple[np.ndarray, np.ndarray, np.ndarray],
    item_side: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    seen: tuple[np.ndarray, np.ndarray],
    lr: float,
    reg: float,
    loss: int,
    n_catalog: int,
    update_items: bool,
) -> float:
    users, items, negatives, order = pairs
    g_indptr, g_indices, g_data = gm
    seen_indptr, seen_indices = seen
    d = user_emb.shape[1]
    qi = np.empty(d, dtype=np.float32)
    qj = np.empty(d, dtype=np.float32)
    pu = np.empty(d, dtype=np.float32)
    total = 0.0
    n_neg = negatives.shape[1]
    for pos in range(lo, hi):
        s = order[pos]
        u = users[s]
        i = items[s]
        pu[:] = 0.0
        for p in range(g_indptr[u], g_indptr[u + 1]):
            for k in range(d):
                pu[k] += g_data[p] * user_emb[g_indices[p], k]
        bi = _represent(i, fm, item_side[0], item_side[2], qi)
        xi = bi
        for k in range(d):
            xi += pu[k] * qi[k]
        chosen = -1
        delta = 0.0
        for t in range(n_neg):
            j = negatives[s, t]
            if row_contains(seen_indices, seen_indptr[u], seen_indptr[u + 1], j):
                continue
            bj = _represent(j, fm, item_side[0], item_side[2], qj)
            xj = bj
            for k in range(d):
                xj += pu[k] * qj[k]
            x = xi - xj
            if loss == LOSS_BPR:
                chosen = j
                delta = 1.0 / (1.0 + math.exp(min(x, 35.0)))
                total += math.log1p(math.exp(-max(x, -35.0)))
                break
            if x < 1.0:  # WARP: first violating negative, rank estimated from trials
                chosen = j
                delta = math.log(max(1.0, math.floor((n_catalog - 1) / (t + 1))))
                total += delta * (1.0 - x)
                break
        if chosen < 0:
            continue
        for p in range(g_indptr[u], g_indptr[u + 1]):
            f = g_indices[p]
            w = g_data[p]
            for k in range(d):
                g = delta * w * (qi[k] - qj[k]) - reg * user_emb[f, k]
                user_acc[f, k] += g * g
                user_emb[f, k] += lr * g / math.sqrt(user_acc[f, k])
        if update_items:
            _update_item(i, 1.0, delta, pu, fm, item_side, lr, reg)
            _update_item(chosen, -1.0, delta, pu, fm, item_side, lr, reg)
    return total


@njit(cache=True, nogil=True, parallel=True)
def hybrid_epoch(
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    gm: tuple[np.ndarray, np.ndarray, np.ndarray],
    user_emb: np.ndarray,
    user_acc: np.ndarray,
    fm: tuple[np.ndarray, np.ndarray, np.ndarray],
    item_side: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    seen: tuple[np.ndarray, np.ndarray],
    lr: float,
    reg: float,
    loss: int,
    n_catalog: int,
    update_items: bool,
    n_chunks: int,
) -> float:
    """One pass over the pairs in ``order``; updates the arrays in place, returns the loss.

    ``pairs`` is ``(users, items, negatives, order)``, ``gm`` / ``fm`` the CSR arrays of G / F,
    ``item_side`` ``(feat_emb, feat_acc, feat_bias, bias_acc)`` and ``seen`` the positives' CSR.
    """
    n = pairs[3].shape[0]
    parts = np.zeros(n_chunks, dtype=np.float64)
    for c in prange(n_chunks):
        lo = (n * c) // n_chunks
        hi = (n * (c + 1)) // n_chunks
        parts[c] = _run_chunk(
            lo, hi, pairs, gm, user_emb, user_acc, fm, item_side, seen,
            lr, reg, loss, n_catalog, update_items,
        )  # fmt: skip
    return float(parts.sum())


def hybrid_epoch_reference(
    users: np.ndarray,
    items: np.ndarray,
    negatives: np.ndarray,
    order: np.ndarray,
    g: tuple[np.ndarray, np.ndarray, np.ndarray],
    user_emb: np.ndarray,
    user_acc: np.ndarray,
    f: tuple[np.ndarray, np.ndarray, np.ndarray],
    feat_emb: np.ndarray,
    feat_acc: np.ndarray,
    feat_bias: np.ndarray,
    bias_acc: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    lr: float,
    reg: float,
    loss: int,
    n_catalog: int,
    update_items: bool = True,
) -> float:
    """Slow NumPy reference of :func:`hybrid_epoch` with ``n_chunks=1`` (same arithmetic)."""
    s_indptr, s_indices = seen
    f32 = np.float32

    def rows(csr: tuple[np.ndarray, np.ndarray, np.ndarray], r: int) -> tuple[np.ndarray, ...]:
        sl = slice(csr[0][r], csr[0][r + 1])
        return csr[1][sl], csr[2][sl]

    def rep(item: int) -> tuple[np.ndarray, np.float32]:
        feats, w = rows(f, item)
        return (w[:, None] * feat_emb[feats]).sum(axis=0), f32((w * feat_bias[feats]).sum())

    def update(item: int, sign: float, delta: float, pu: np.ndarray) -> None:
        feats, w = rows(f, item)
        for ft, wf in zip(feats, w, strict=True):
            gb = f32(sign * delta * wf - reg * feat_bias[ft])
            bias_acc[ft] += gb * gb
            feat_bias[ft] += f32(lr * gb / np.sqrt(bias_acc[ft]))
            grad = (sign * delta * wf * pu - reg * feat_emb[ft]).astype(f32)
            feat_acc[ft] += grad * grad
            feat_emb[ft] += (lr * grad / np.sqrt(feat_acc[ft])).astype(f32)

    total = 0.0
    for s in order:
        u, i = int(users[s]), int(items[s])
        ufeats, uw = rows(g, u)
        pu = (uw[:, None] * user_emb[ufeats]).sum(axis=0).astype(f32)
        qi, bi = rep(i)
        xi = float(bi + pu @ qi)
        chosen, delta, qj = -1, 0.0, np.zeros_like(qi)
        positives = set(s_indices[s_indptr[u] : s_indptr[u + 1]].tolist())
        for t, j in enumerate(negatives[s]):
            if int(j) in positives:
                continue
            qj, bj = rep(int(j))
            x = xi - float(bj + pu @ qj)
            if loss == LOSS_BPR:
                chosen, delta = int(j), 1.0 / (1.0 + np.exp(min(x, 35.0)))
                total += float(np.log1p(np.exp(-max(x, -35.0))))
                break
            if x < 1.0:
                chosen = int(j)
                delta = float(np.log(max(1.0, np.floor((n_catalog - 1) / (t + 1)))))
                total += delta * (1.0 - x)
                break
        if chosen < 0:
            continue
        for ft, w in zip(ufeats, uw, strict=True):
            grad = (delta * w * (qi - qj) - reg * user_emb[ft]).astype(f32)
            user_acc[ft] += grad * grad
            user_emb[ft] += (lr * grad / np.sqrt(user_acc[ft])).astype(f32)
        if update_items:
            update(i, 1.0, delta, pu)
            update(chosen, -1.0, delta, pu)
    return total


def run_epoch(
    users: np.ndarray,
    items: np.ndarray,
    negatives: np.ndarray,
    order: np.ndarray,
    g: tuple[np.ndarray, np.ndarray, np.ndarray],
    user_emb: np.ndarray,
    user_acc: np.ndarray,
    f: tuple[np.ndarray, np.ndarray, np.ndarray],
    feat_emb: np.ndarray,
    feat_acc: np.ndarray,
    feat_bias: np.ndarray,
    bias_acc: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    *,
    lr: float,
    reg: float,
    loss: int,
    n_catalog: int,
    update_items: bool = True,
    n_chunks: int = 1,
) -> float:
    """Checked wrapper of :func:`hybrid_epoch`: validates dtypes, contiguity and shapes."""
    d = user_emb.shape[1]
    checks = [
        ("users", users, np.int32, 1),
        ("items", items, np.int32, 1),
        ("negatives", negatives, np.int32, 2),
        ("order", order, np.int64, 1),
        ("g_indptr", g[0], np.int64, 1),
        ("g_indices", g[1], np.int32, 1),
        ("g_data", g[2], np.float32, 1),
        ("user_emb", user_emb, np.float32, 2),
        ("user_acc", user_acc, np.float32, 2),
        ("f_indptr", f[0], np.int64, 1),
        ("f_indices", f[1], np.int32, 1),
        ("f_data", f[2], np.float32, 1),
        ("feat_emb", feat_emb, np.float32, 2),
        ("feat_acc", feat_acc, np.float32, 2),
        ("feat_bias", feat_bias, np.float32, 1),
        ("bias_acc", bias_acc, np.float32, 1),
        ("seen_indptr", seen[0], np.int64, 1),
        ("seen_indices", seen[1], np.int32, 1),
    ]
    for name, arr, dtype, ndim in checks:
        if arr.dtype != dtype or arr.ndim != ndim or not arr.flags.c_contiguous:
            raise ValueError(
                f"{name} must be a C-contiguous {ndim}-D {np.dtype(dtype).name} array, "
                f"got {arr.ndim}-D {arr.dtype}"
            )
    if users.shape != items.shape or negatives.shape[0] != users.shape[0]:
        raise ValueError("users, items and negatives must have the same number of rows")
    if feat_emb.shape[1] != d or user_acc.shape != user_emb.shape:
        raise ValueError("embedding widths differ")
    if feat_acc.shape != feat_emb.shape or feat_bias.shape[0] != feat_emb.shape[0]:
        raise ValueError("feature accumulator/bias shapes do not match feat_emb")
    if g[1].size and (g[1].min() < 0 or g[1].max() >= user_emb.shape[0]):
        raise ValueError("user feature indices out of range of user_emb")
    if f[1].size and (f[1].min() < 0 or f[1].max() >= feat_emb.shape[0]):
        raise ValueError("item feature indices out of range of feat_emb")
    if n_chunks < 1:
        raise ValueError(f"n_chunks must be >= 1, got {n_chunks}")
    total = hybrid_epoch(
        (users, items, negatives, order), g, user_emb, user_acc, f,
        (feat_emb, feat_acc, feat_bias, bias_acc), seen,
        float(lr), float(reg), int(loss), int(n_catalog), bool(update_items), int(n_chunks),
    )  # fmt: skip
    return float(total)
