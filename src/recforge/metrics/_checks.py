"""Input checks and conversions shared by the metric modules."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.exceptions import ConfigError, DataError

__all__ = ["check_k", "check_recs", "check_truth", "csr_parts"]


def check_k(k: Any, name: str = "k") -> int:
    """Return ``k`` as an int, raising :class:`ConfigError` unless it is an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or int(k) < 1:
        raise ConfigError(f"The {name!r} cutoff must be an int >= 1. Got {k!r} instead.")
    return int(k)


def check_recs(recs: Any, n_items: int | None = None, name: str = "recs") -> np.ndarray:
    """Return ``recs`` as a C-contiguous int32 matrix of item codes (negative = padding).

    Raises
    ------
    DataError
        If ``recs`` is not 2-D, not integer, or holds a code ``>= n_items``.
    """
    arr = np.asarray(recs)
    if arr.ndim != 2:
        raise DataError(
            f"{name} must be a 2-D (n_users, L) array of item codes, got shape {arr.shape}"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name} must hold integer item codes, got dtype {arr.dtype}")
    if n_items is not None and arr.size:
        top = int(arr.max())
        if top >= n_items:
            row = int(np.argmax((arr >= n_items).any(axis=1)))
            raise DataError(
                f"{name} row {row} holds item code {top}, but there are only {n_items} items"
            )
    return np.ascontiguousarray(arr, dtype=np.int32)


def check_truth(truth: Any, n_rows: int, name: str = "truth") -> sp.csr_array:
    """Return ``truth`` as a canonical CSR array whose stored entries are all > 0.

    Entries that are not > 0 (zeros, negatives, NaN) are dropped: they mark no relevance.

    Raises
    ------
    DataError
        If ``truth`` is not a 2-D sparse matrix with ``n_rows`` rows or has duplicate entries.
    """
    if not sp.issparse(truth) or truth.ndim != 2:
        raise DataError(
            f"{name} must be a scipy.sparse CSR array (n_users, n_items), "
            f"got {type(truth).__name__}"
        )
    if truth.shape[0] != n_rows:
        raise DataError(
            f"{name} has {truth.shape[0]} rows but the recommendations have {n_rows} rows; "
            "they must describe the same users in the same order"
        )
    out = sp.csr_array(truth, copy=False)
    if not out.has_canonical_format:
        out = out.copy()
        nnz = out.nnz
        out.sum_duplicates()
        if out.nnz != nnz:
            raise DataError(f"{name} stores the same (user, item) entry more than once")
    data = np.asarray(out.data, dtype=np.float64)
    good = data > 0
    if not good.all():
        out = out.copy()
        out.data = np.where(good, data, 0.0)
        out.eliminate_zeros()
    return out


def csr_parts(mat: sp.csr_array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr int64, indices int32, data float64)`` of a canonical CSR matrix for the kernels."""
    return (
        np.ascontiguousarray(mat.indptr, dtype=np.int64),
        np.ascontiguousarray(mat.indices, dtype=np.int32),
        np.ascontiguousarray(mat.data, dtype=np.float64),
    )
