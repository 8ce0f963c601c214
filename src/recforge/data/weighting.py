"""Re-weighting of a sparse matrix: confidence and term-weighting schemes, row normalisation.

Every function takes a CSR array (users x items, or items x features for
:func:`normalize_rows`) and returns a new one with the same sparsity pattern; only ``data``
changes. They are used by :mod:`recforge.data.prepare` (on Datasets), by models that weight
their input (ALS confidence, kNN BM25/TF-IDF, RP3beta's transition probabilities), by
:mod:`recforge.features` and by the re-rankers (unit-length item vectors).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

__all__ = [
    "SCHEMES",
    "bm25",
    "linear_confidence",
    "log_confidence",
    "normalize_rows",
    "tfidf",
    "weight_matrix",
]


def _copy(x: sp.csr_array | sp.csr_matrix) -> sp.csr_array:
    out = sp.csr_array(x, dtype=np.float32, copy=True)
    out.sum_duplicates()
    return out


def normalize_rows(
    x: sp.csr_array | sp.csr_matrix, norm: Literal["l1", "l2"] = "l2", *, dtype: Any = np.float32
) -> sp.csr_array:
    """Rows scaled to unit norm; rows of norm 0 (empty ones included) stay zero.

    Parameters
    ----------
    x
        Sparse matrix (converted to CSR).
    norm
        ``"l2"`` (Euclidean length) or ``"l1"`` (sum of absolute values: each row of a
        non-negative matrix becomes a probability distribution).
    dtype
        Dtype of the result and of the computation.

    Returns
    -------
    scipy.sparse.csr_array
        A copy with the same sparsity pattern.

    Examples
    --------
    >>> normalize_rows(sp.csr_array([[3.0, 4.0], [0.0, 0.0]])).toarray().tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    out = sp.csr_array(x, dtype=dtype, copy=True)
    if norm == "l2":
        norms = np.sqrt(np.asarray(out.multiply(out).sum(axis=1)).ravel()).astype(dtype)
    elif norm == "l1":
        norms = np.asarray(abs(out).sum(axis=1)).ravel().astype(dtype)
    else:
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    out.data *= np.repeat(scale, np.diff(out.indptr))
    return out


def linear_confidence(x: sp.csr_array, alpha: float = 40.0) -> sp.csr_array:
    """``c = 1 + alpha * r`` (Hu, Koren & Volinsky 2008, eq. 6 without the 1 added here).

    Returns the confidence *minus one*, ``alpha * r``, as implicit-feedback ALS expects
    (the "1 +" is implicit in the solver).
    """
    out = _copy(x)
    out.data = (alpha * out.data).astype(np.float32)
    return out


def log_confidence(x: sp.csr_array, alpha: float = 1.0, eps: float = 1.0) -> sp.csr_array:
    """``alpha * log(1 + r / eps)`` (Hu, Koren & Volinsky 2008, eq. 7, minus one)."""
    out = _copy(x)
    out.data = (alpha * np.log1p(out.data / eps)).astype(np.float32)
    return out


def _idf(x: sp.csr_array) -> np.ndarray:
    n_users = x.shape[0]
    df = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float64)
    return np.log(n_users / np.maximum(df, 1.0)).clip(min=0.0) + 1e-3


def tfidf(x: sp.csr_array) -> sp.csr_array:
    """``sqrt(r) * idf(item)`` with ``idf = log(n_users / df_item)``: damps popular items."""
    out = _copy(x)
    idf = _idf(out)
    out.data = (np.sqrt(np.abs(out.data)) * idf[out.indices]).astype(np.float32)
    return out


def bm25(x: sp.csr_array, k1: float = 1.2, b: float = 0.75) -> sp.csr_array:
    """Okapi BM25 weights with users as documents and items as terms.

    ``w = idf(i) * r (k1 + 1) / (r + k1 (1 - b + b |u| / avg|u|))`` where ``|u|`` is the
    user's total value.
    """
    out = _copy(x)
    idf = _idf(out)
    lengths = np.asarray(out.sum(axis=1)).ravel().astype(np.float64)
    avg = lengths.mean() if lengths.size and lengths.mean() > 0 else 1.0
    row_len = np.repeat(lengths / avg, np.diff(out.indptr))
    r = out.data.astype(np.float64)
    denom = r + k1 * (1.0 - b + b * row_len)
    out.data = (idf[out.indices] * r * (k1 + 1.0) / denom).astype(np.float32)
    return out


SCHEMES = ("none", "linear", "log", "bm25", "tfidf")


def weight_matrix(x: sp.csr_array, scheme: str, **kwargs: float) -> sp.csr_array:
    """Apply a scheme by name (one of :data:`SCHEMES`)."""
    if scheme == "none":
        return _copy(x)
    if scheme == "linear":
        return linear_confidence(x, **kwargs)
    if scheme == "log":
        return log_confidence(x, **kwargs)
    if scheme == "bm25":
        return bm25(x, **kwargs)
    if scheme == "tfidf":
        return tfidf(x)
    raise ValueError(f"unknown weighting scheme {scheme!r} (schemes: {', '.join(SCHEMES)})")
