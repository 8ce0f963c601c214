"""Implicit-feedback ALS half-steps (Hu, Koren & Volinsky 2008) with Cholesky or CG solvers.

For every row ``u`` of a CSR matrix ``C`` holding the confidence *minus one* ``c'_ui``
(``c_ui = 1 + c'_ui``; the preference is 1 where an entry is stored, 0 elsewhere), the
factors ``x_u`` minimise ``Σ_i c_ui (p_ui - x_u·y_i)² + reg ‖x_u‖²``, the solution of::

    (YᵀY + Σ_{i in u} c'_ui y_i y_iᵀ + reg I) x_u = Σ_{i in u} (1 + c'_ui) y_i

Shapes and dtypes
-----------------
indptr : (n_rows + 1,) int64; indices : (nnz,) int32; conf : (nnz,) float32 (c' >= 0)
Y : (n_cols, f) float32, the fixed side; YtY : (f, f) float64, ``YᵀY`` (without ``reg``)
X : (n_rows, f) float32, overwritten with the solution (read as the warm start by CG)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: fast-math flags: reassociation lets LLVM vectorise the dot products
_FAST = {"reassoc", "contract", "nsz", "arcp"}

__all__ = [
    "als_loss",
    "als_loss_reference",
    "als_solve_reference",
    "als_update_cg",
    "als_update_cholesky",
]


@njit(cache=True, nogil=True, fastmath=_FAST)
def _cholesky_solve(A: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Solve ``A x = b`` for symmetric positive definite ``A`` (overwritten by its factor)."""
    f = A.shape[0]
    for j in range(f):
        s = A[j, j]
        for k in range(j):
            s -= A[j, k] * A[j, k]
        if s <= 0.0:
            s = 1e-12
        d = math.sqrt(s)
        A[j, j] = d
        for i in range(j + 1, f):
            t = A[i, j]
            for k in range(j):
                t -= A[i, k] * A[j, k]
            A[i, j] = t / d
    # forward: L z = b
    for i in range(f):
        t = b[i]
        for k in range(i):
            t -= A[i, k] * b[k]
        b[i] = t / A[i, i]
    # backward: Lᵀ x = z
    for i in range(f - 1, -1, -1):
        t = b[i]
        for k in range(i + 1, f):
            t -= A[k, i] * b[k]
        b[i] = t / A[i, i]
    for i in range(f):
        out[i] = b[i]


@njit(cache=True, nogil=True, inline="always", fastmath=_FAST)
def _gram_matvec32(G: np.ndarray, v: np.ndarray, reg: np.float32, out: np.ndarray) -> None:
    f = v.shape[0]
    for a in range(f):
        s = reg * v[a]
        g = G[a]
        for k in range(f):
            s += g[k] * v[k]
        out[a] = s


@njit(cache=True, nogil=True, parallel=True, fastmath=_FAST)
def als_update_cholesky(
    indptr: np.ndarray,
    indices: np.ndarray,
    conf: np.ndarray,
    Y: np.ndarray,
    YtY: np.ndarray,
    X: np.ndarray,
    reg: float,
) -> None:
    """Exact least-squares update of every row of ``X`` (normal equations, Cholesky)."""
    n = indptr.shape[0] - 1
    f = Y.shape[1]
    for u in prange(n):
        A = YtY.copy()
        for k in range(f):
            A[k, k] += reg
        b = np.zeros(f, dtype=np.float64)
        for p in range(indptr[u], indptr[u + 1]):
            i = indices[p]
            c = float(conf[p])
            for a in range(f):
                ya = float(Y[i, a])
                b[a] += (1.0 + c) * ya
                cya = c * ya
                for k in range(a + 1):
                    A[a, k] += cya * Y[i, k]
        for a in range(f):
            for k in range(a + 1, f):
                A[a, k] = A[k, a]
        x = np.empty(f, dtype=np.float64)
        _cholesky_solve(A, b, x)
        for k in range(f):
            X[u, k] = x[k]


@njit(cache=True, nogil=True, parallel=True, fastmath=_FAST)
def als_update_cg(
    indptr: np.ndarray,
    indices: np.ndarray,
    conf: np.ndarray,
    Y: np.ndarray,
    YtY: np.ndarray,
    X: np.ndarray,
    reg: float,
    cg_steps: int,
) -> None:
    """Approximate update of every row of ``X`` by ``cg_steps`` conjugate-gradient steps.

    Warm-started from the current ``X`` (Takács et al. 2011; the approach of ``implicit``):
    a few steps per sweep are enough because successive sweeps change the factors little.
    Vectors are float32 (``YtY`` is cast once); dot products accumulate in float32.
    """
    n = indptr.shape[0] - 1
    f = Y.shape[1]
    G = YtY.astype(np.float32)
    reg32 = np.float32(reg)
    one = np.float32(1.0)
    for u in prange(n):
        x = X[u].copy()
        r = np.empty(f, dtype=np.float32)
        # r = b - A x
        _gram_matvec32(G, x, reg32, r)
        for k in range(f):
            r[k] = -r[k]
        for p in range(indptr[u], indptr[u + 1]):
            yi = Y[indices[p]]
            c = conf[p]
            yx = np.float32(0.0)
            for k in range(f):
                yx += yi[k] * x[k]
            w = one + c - c * yx
            for k in range(f):
                r[k] += w * yi[k]
        pdir = r.copy()
        rs_old = np.float32(0.0)
        for k in range(f):
            rs_old += r[k] * r[k]
        if rs_old < 1e-20:
            continue
        Ap = np.empty(f, dtype=np.float32)
        for _ in range(cg_steps):
            _gram_matvec32(G, pdir, reg32, Ap)
            for p in range(indptr[u], indptr[u + 1]):
                yi = Y[indices[p]]
                yp = np.float32(0.0)
                for k in range(f):
                    yp += yi[k] * pdir[k]
                w = conf[p] * yp
                for k in range(f):
                    Ap[k] += w * yi[k]
            pap = np.float32(0.0)
            for k in range(f):
                pap += pdir[k] * Ap[k]
            if pap <= 0.0:
                break
            step = rs_old / pap
            rs_new = np.float32(0.0)
            for k in range(f):
                x[k] += step * pdir[k]
                r[k] -= step * Ap[k]
                rs_new += r[k] * r[k]
            if rs_new < 1e-20:
                break
            beta = rs_new / rs_old
            for k in range(f):
                pdir[k] = r[k] + beta * pdir[k]
            rs_old = rs_new
        X[u] = x


def als_solve_reference(
    indptr: np.ndarray,
    indices: np.ndarray,
    conf: np.ndarray,
    Y: np.ndarray,
    reg: float,
) -> np.ndarray:
    """Slow NumPy reference: solve every row's dense normal equations with ``linalg.solve``."""
    n = indptr.shape[0] - 1
    n_cols, f = Y.shape
    Yd = Y.astype(np.float64)
    out = np.zeros((n, f), dtype=np.float64)
    for u in range(n):
        c = np.zeros(n_cols)
        pref = np.zeros(n_cols)
        cols = indices[indptr[u] : indptr[u + 1]]
        c[cols] = conf[indptr[u] : indptr[u + 1]]
        pref[cols] = 1.0
        cu = 1.0 + c
        A = Yd.T @ (cu[:, None] * Yd) + reg * np.eye(f)
        b = Yd.T @ (cu * pref)
        out[u] = np.linalg.solve(A, b)
    return out


@njit(cache=True, nogil=True, parallel=True)
def _observed_loss(
    indptr: np.ndarray, indices: np.ndarray, conf: np.ndarray, X: np.ndarray, Y: np.ndarray
) -> float:
    n = indptr.shape[0] - 1
    f = X.shape[1]
    partial = np.zeros(n, dtype=np.float64)
    for u in prange(n):
        s = 0.0
        for p in range(indptr[u], indptr[u + 1]):
            i = indices[p]
            xy = 0.0
            for k in range(f):
                xy += float(X[u, k]) * float(Y[i, k])
            c = 1.0 + float(conf[p])
            # replace the unobserved term xy² (counted in the dense part) by c (1 - xy)²
            s += c * (1.0 - xy) * (1.0 - xy) - xy * xy
        partial[u] = s
    return partial.sum()


def als_loss(
    indptr: np.ndarray,
    indices: np.ndarray,
    conf: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    reg: float,
) -> float:
    """Full objective ``Σ_ui c_ui (p_ui - x_u·y_i)² + reg (‖X‖² + ‖Y‖²)`` without densifying.

    The sum over all pairs of ``(x_u·y_i)²`` is ``trace(XᵀX YᵀY)``; observed pairs correct it.
    """
    Xd = X.astype(np.float64)
    Yd = Y.astype(np.float64)
    dense = float(np.sum((Xd.T @ Xd) * (Yd.T @ Yd)))
    obs = float(_observed_loss(indptr, indices, conf, X, Y))
    return dense + obs + reg * (float(np.sum(Xd * Xd)) + float(np.sum(Yd * Yd)))


def als_loss_reference(
    indptr: np.ndarray,
    indices: np.ndarray,
    conf: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    reg: float,
) -> float:
    """Slow dense reference of :func:`als_loss`."""
    n, m = X.shape[0], Y.shape[0]
    C = np.zeros((n, m))
    P = np.zeros((n, m))
    for u in range(n):
        cols = indices[indptr[u] : indptr[u + 1]]
        C[u, cols] = conf[indptr[u] : indptr[u + 1]]
        P[u, cols] = 1.0
    S = X.astype(np.float64) @ Y.astype(np.float64).T
    return float(
        np.sum((1.0 + C) * (P - S) ** 2)
        + reg * (np.sum(X.astype(np.float64) ** 2) + np.sum(Y.astype(np.float64) ** 2))
    )
