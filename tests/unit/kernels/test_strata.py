"""The DSGD schedule: balanced blocks, strata of disjoint blocks, stable regrouping."""

from __future__ import annotations

import numpy as np

from recforge._kernels.strata import (
    MIN_STRATUM,
    N_BLOCKS,
    Strata,
    balanced_blocks,
    n_blocks_for,
    stratified_order,
)


def test_balanced_blocks_split_weight_evenly() -> None:
    gen = np.random.default_rng(0)
    w = gen.integers(1, 20, 2000).astype(np.float64)
    block = balanced_blocks(w, 8, gen)
    per = np.bincount(block, weights=w, minlength=8)
    assert block.min() == 0
    assert block.max() == 7
    assert per.max() - per.min() <= 2 * w.max()  # each cut is off by less than one row


def test_balanced_blocks_are_seeded() -> None:
    w = np.arange(1, 101, dtype=np.float64)
    a = balanced_blocks(w, 4, np.random.default_rng(5))
    b = balanced_blocks(w, 4, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, balanced_blocks(w, 4, np.random.default_rng(6)))


def test_blocks_of_a_stratum_share_no_row_and_no_column() -> None:
    gen = np.random.default_rng(1)
    rows = gen.integers(0, 50, 3000)
    cols = gen.integers(0, 40, 3000)
    n_blocks = 5
    strata = Strata(rows, cols, 50, 40, gen, n_blocks=n_blocks)
    order, bounds = strata.order(gen)
    assert np.array_equal(np.sort(order), np.arange(3000))
    for s in range(n_blocks):
        seen_rows: set[int] = set()
        seen_cols: set[int] = set()
        for r in range(n_blocks):
            g = s * n_blocks + r
            seg = order[bounds[g] : bounds[g + 1]]
            assert set(strata.row_block[rows[seg]]) <= {r}
            assert set(strata.col_block[cols[seg]]) <= {(r + s) % n_blocks}
            assert seen_rows.isdisjoint(rows[seg])
            assert seen_cols.isdisjoint(cols[seg])
            seen_rows |= set(rows[seg].tolist())
            seen_cols |= set(cols[seg].tolist())


def test_stratified_order_keeps_the_random_order_inside_each_segment() -> None:
    keys = np.array([2, 0, 1, 0, 2, 1, 0], dtype=np.uint16)
    order = np.array([6, 5, 4, 3, 2, 1, 0], dtype=np.int64)
    grouped, bounds = stratified_order(keys, order, 2)  # 4 segments, key 3 empty
    np.testing.assert_array_equal(grouped, [6, 3, 1, 5, 2, 4, 0])
    np.testing.assert_array_equal(bounds, [0, 3, 5, 7, 7])


def test_equal_cols_gives_blocks_of_equal_size() -> None:
    gen = np.random.default_rng(2)
    cols = np.concatenate([np.zeros(500, np.int64), gen.integers(0, 64, 500)])
    strata = Strata(gen.integers(0, 30, 1000), cols, 30, 64, gen, equal_cols=True, n_blocks=4)
    np.testing.assert_array_equal(np.bincount(strata.col_block, minlength=4), [16, 16, 16, 16])


def test_block_count_grows_with_the_updates_only() -> None:
    assert n_blocks_for(0) == 1
    assert n_blocks_for(2 * MIN_STRATUM - 1) == 1
    assert n_blocks_for(5 * MIN_STRATUM) == 5
    assert n_blocks_for(10**9) == N_BLOCKS
    gen = np.random.default_rng(0)
    rows = gen.integers(0, 500, 3 * MIN_STRATUM)
    assert Strata(rows, rows % 97, 500, 97, gen).n_blocks == 3


def test_one_block_order_is_the_plain_permutation() -> None:
    rows = np.arange(50) % 7
    strata = Strata(rows, rows, 7, 7, np.random.default_rng(0), n_blocks=1)
    order, bounds = strata.order(np.random.default_rng(4))
    np.testing.assert_array_equal(order, np.random.default_rng(4).permutation(50))
    np.testing.assert_array_equal(bounds, [0, 50])
    grouped, _ = stratified_order(strata.keys, order, 1)
    np.testing.assert_array_equal(grouped, order)
