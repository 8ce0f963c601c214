"""Row normalisation, the one helper behind features, RP3beta and the re-rankers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.weighting import normalize_rows


def _matrix() -> sp.csr_array:
    return sp.csr_array(np.array([[3.0, 0.0, -4.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))


def test_l2_rows_have_unit_length_and_zero_rows_stay_zero() -> None:
    out = normalize_rows(_matrix())
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.toarray(), [[0.6, 0, -0.8], [0, 0, 0], [0, 1, 0]], rtol=1e-6)


def test_l1_in_float64_matches_the_reference() -> None:
    x = _matrix()
    out = normalize_rows(x, "l1", dtype=np.float64)
    dense = x.toarray()
    sums = np.abs(dense).sum(axis=1, keepdims=True)
    ref = np.divide(dense, sums, out=np.zeros_like(dense), where=sums > 0)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.toarray(), ref)


def test_input_is_not_changed_and_unknown_norm_is_refused() -> None:
    x = _matrix()
    before = x.toarray().copy()
    normalize_rows(x)
    np.testing.assert_array_equal(x.toarray(), before)
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        normalize_rows(x, "max")  # type: ignore[arg-type]
