"""Building datasets from frames: the dense integer factorization kernel and ownership of arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge._kernels.factorize import factorize_dense, factorize_dense_reference
from recforge.data import Dataset
from recforge.data._dataset import _DENSE_MIN_ROWS


@pytest.mark.parametrize(
    "values",
    [
        np.array([5, 3, 5, 9, 3, 3, 4], dtype=np.int64),
        np.array([-2, 7, -2, 0], dtype=np.int64),
        np.random.default_rng(1).integers(10**12, 10**12 + 500, 5000),
        np.array([42], dtype=np.int64),
    ],
)
def test_factorize_kernel_matches_reference(values: np.ndarray) -> None:
    lo, span = int(values.min()), int(values.max() - values.min() + 1)
    codes = np.empty(values.size, dtype=np.int32)
    uniques = np.empty(span, dtype=np.int64)
    k = factorize_dense(values, lo, span, codes, uniques)
    ref_codes, ref_uniques = factorize_dense_reference(values)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(uniques[:k], ref_uniques)


@pytest.mark.parametrize("spread", [1_000, 10**15])  # dense kernel path / hash-table path
def test_large_integer_frames_keep_first_appearance_order(spread: int) -> None:
    rng = np.random.default_rng(0)
    n = _DENSE_MIN_ROWS + 10
    users = rng.integers(0, spread, n) - spread // 3
    items = rng.integers(0, 300, n).astype(np.int32)
    ds = Dataset.from_frame(pd.DataFrame({"user": users, "item": items}))
    exp_codes, exp_ids = pd.factorize(users, sort=False)
    assert ds.users.ids.tolist() == exp_ids.tolist()
    np.testing.assert_array_equal(ds.user, exp_codes)
    np.testing.assert_array_equal(ds.items.ids_of(ds.item), items)
    assert ds.users.ids.dtype == np.int64


def test_large_frame_extends_existing_index() -> None:
    n = _DENSE_MIN_ROWS + 1
    base = Dataset.from_frame(pd.DataFrame({"user": [7, 3], "item": [1, 1]}))
    users = np.arange(n) % 50
    ds = Dataset.from_frame(pd.DataFrame({"user": users, "item": 1}), users=base.users)
    assert ds.users.ids[:2].tolist() == [7, 3]
    np.testing.assert_array_equal(ds.users.ids_of(ds.user), users)


def test_dataset_owns_its_arrays() -> None:
    frame = pd.DataFrame(
        {
            "user": [1, 2],
            "item": [3, 4],
            "v": np.array([1.0, 2.0], dtype=np.float32),
            "t": np.array([10, 20], dtype=np.int64),
        }
    )
    ds = Dataset.from_frame(frame, value="v", time="t")
    frame.loc[0, "v"] = 9.0
    frame.loc[0, "t"] = 99
    assert ds.value.tolist() == [1.0, 2.0]
    assert ds.time is not None
    assert ds.time.tolist() == [10, 20]


def test_float64_values_beyond_float32_are_rejected() -> None:
    frame = pd.DataFrame({"user": [1, 2], "item": [3, 4], "v": [1.0, 1e300]})
    with pytest.raises(ValueError, match="column 'v' has a non-finite value 1e\\+300 at row 1"):
        Dataset.from_frame(frame, value="v")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_kernel_matches_scipy(dtype: type) -> None:
    from recforge._kernels.csr import coo_to_csr, coo_to_csr_reference

    rng = np.random.default_rng(4)
    rows = rng.integers(0, 40, 3000).astype(np.int32)
    cols = rng.integers(0, 25, 3000).astype(np.int32)  # many duplicate pairs
    vals = rng.standard_normal(3000).astype(dtype)
    vals[:5] = 0.0  # explicit zeros are kept by both
    got = coo_to_csr(rows, cols, vals, 45, 30)  # trailing empty rows and columns
    ref = coo_to_csr_reference(rows, cols, vals, 45, 30)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-5, atol=1e-5)
    assert got[2].dtype == dtype


def test_large_matrix_uses_kernel_and_matches_small_path() -> None:
    from recforge.data._dataset import _FAST_CSR_MIN_NNZ

    rng = np.random.default_rng(2)
    n = _FAST_CSR_MIN_NNZ + 7
    frame = pd.DataFrame(
        {"user": rng.integers(0, 900, n), "item": rng.integers(0, 700, n), "v": rng.random(n)}
    )
    ds = Dataset.from_frame(frame, value="v")
    m = ds.matrix()
    small = ds.subset(np.arange(n - 10))  # below the threshold: scipy path
    ref = small.matrix()
    extra = ds.subset(np.arange(n - 10, n)).matrix()
    np.testing.assert_allclose((m - extra).toarray(), ref.toarray(), atol=1e-5)
    assert m.has_sorted_indices
    binary = ds.matrix(binary=True)
    assert set(np.unique(binary.data).tolist()) == {1.0}
    assert binary.nnz == len(set(zip(frame["user"], frame["item"], strict=True)))
