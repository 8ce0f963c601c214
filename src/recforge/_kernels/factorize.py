"""Factorization of integer ids in a dense range, in order of first appearance.

Shapes and dtypes
-----------------
values : (n,) int64, every value in ``[lo, lo + span)``
out_codes : (n,) int32, code of each value (codes count up in order of first appearance)
out_uniques : (span,) int64, the first ``k`` entries receive the distinct values
returns ``k``, the number of distinct values

One sequential pass with a lookup table of ``span`` entries: several times faster than a hash
table when the ids are (nearly) contiguous, as database keys usually are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit


@njit(cache=True, nogil=True)
def factorize_dense(
    values: np.ndarray, lo: int, span: int, out_codes: np.ndarray, out_uniques: np.ndarray
) -> int:
    """Fill ``out_codes`` / ``out_uniques`` (see module docs) and return the distinct count."""
    table = np.full(span, -1, dtype=np.int32)
    k = 0
    for i in range(values.shape[0]):
        j = values[i] - lo
        c = table[j]
        if c < 0:
            c = k
            table[j] = k
            out_uniques[k] = values[i]
            k += 1
        out_codes[i] = c
    return k


def factorize_dense_reference(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NumPy/pandas reference: ``(codes int32, uniques int64)`` in order of first appearance."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=np.int64), sort=False)
    return codes.astype(np.int32), np.asarray(uniques, dtype=np.int64)
