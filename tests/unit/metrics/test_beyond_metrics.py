"""Beyond-accuracy metrics: hand-computed values, formula identities and errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.exceptions import ConfigError, DataError
from recforge.metrics import (
    average_popularity,
    catalog_coverage,
    gini_index,
    intra_list_diversity,
    novelty,
    precision,
    serendipity,
)

RECS = np.array([[0, 1, 2], [1, 3, -1], [-1, -1, -1]], dtype=np.int32)
POP = np.array([4.0, 2.0, 1.0, 0.0, 8.0])


def test_catalog_coverage() -> None:
    assert catalog_coverage(RECS, 5, 2) == pytest.approx(3 / 5)  # items {0, 1, 3}
    assert catalog_coverage(RECS, 5, 3) == pytest.approx(4 / 5)
    assert catalog_coverage(np.full((2, 3), -1), 5, 3) == 0.0


def test_gini_index_hand_computed() -> None:
    # exposure at k=2: item0 1, item1 2, item2 0, item3 1, item4 0 -> sorted [0, 0, 1, 1, 2]
    # sum (2i - n - 1) c_(i) = 2*1 + 4*2 = 10; / (n * total) = 10 / 20
    assert gini_index(RECS, 5, 2) == pytest.approx(0.5)
    assert gini_index(np.array([[0, 1], [2, 3]]), 4, 2) == pytest.approx(0.0)
    assert gini_index(np.array([[0], [0]]), 4, 1) == pytest.approx(0.75)  # 1 - 1/n
    assert np.isnan(gini_index(np.full((1, 2), -1), 4, 2))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-1, 7), min_size=1, max_size=30))
def test_gini_equals_mean_absolute_difference_form(codes: list[int]) -> None:
    recs = np.array(codes, dtype=np.int32)[:, None]
    counts = np.bincount(recs[recs >= 0], minlength=8).astype(float)
    got = gini_index(recs, 8, 1)
    if counts.sum() == 0:
        assert np.isnan(got)
        return
    mad = np.abs(counts[:, None] - counts[None, :]).sum() / (2 * 8 * 8 * counts.mean())
    assert got == pytest.approx(mad, abs=1e-12)


def test_novelty_and_average_popularity_hand_computed() -> None:
    # user 0: -log2(4/8) = 1, -log2(2/8) = 2; user 1: 2 and item 3 (pop 0 counts as 1) 3
    np.testing.assert_allclose(novelty(RECS, POP, 8, 2), [1.5, 2.5, np.nan])
    np.testing.assert_allclose(average_popularity(RECS, POP, 2), [3.0, 1.0, np.nan])
    np.testing.assert_allclose(average_popularity(RECS, POP, 3), [7 / 3, 1.0, np.nan])


def test_intra_list_diversity_from_features() -> None:
    feats = sp.csr_array(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]))
    recs = np.array([[0, 1, 2], [0, 3, -1], [0, -1, -1]], dtype=np.int32)
    # pairs of user 0: (0,1) 1/sqrt2, (0,2) 0, (1,2) 1/sqrt2; item 3 has no features
    np.testing.assert_allclose(
        intra_list_diversity(recs, 3, item_features=feats), [1 - np.sqrt(2) / 3, 1.0, np.nan]
    )
    np.testing.assert_allclose(
        intra_list_diversity(recs, 2, item_features=feats.toarray()),
        [1 - 1 / np.sqrt(2), 1.0, np.nan],
    )


def test_intra_list_diversity_from_cooccurrence() -> None:
    # training users: u0 {0, 1}, u1 {0, 1, 2}, u2 {2}; stored ratings are binarised
    train = sp.csr_array(np.array([[5.0, 3.0, 0.0], [1.0, 2.0, 4.0], [0.0, 0.0, 2.5]]))
    # sim(0,1) = 2/sqrt(2*2) = 1, sim(0,2) = sim(1,2) = 1/2
    got = intra_list_diversity(np.array([[0, 1, 2], [0, 1, -1]]), 3, cooccurrence=train)
    np.testing.assert_allclose(got, [1 - 2 / 3, 0.0], atol=1e-12)


def test_intra_list_diversity_needs_exactly_one_source() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        intra_list_diversity(RECS, 2)
    eye = sp.csr_array(np.eye(5))
    with pytest.raises(ConfigError, match="exactly one"):
        intra_list_diversity(RECS, 2, item_features=eye, cooccurrence=eye)
    with pytest.raises(DataError, match="only 3 items"):
        intra_list_diversity(RECS, 2, item_features=sp.csr_array(np.eye(3)))


def test_serendipity_hand_computed_all_expected_forms() -> None:
    truth = sp.csr_array(np.array([[1, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]], float))
    mask = np.array([True, False, False, False, False])
    expected = [1 / 3, 1 / 3, np.nan]  # u0: relevant {0, 2}, 0 expected; u1: 3 unexpected
    np.testing.assert_allclose(serendipity(RECS, truth, 3, mask), expected)
    np.testing.assert_allclose(serendipity(RECS, truth, 3, np.array([0])), expected)
    per_user = np.array([[2, -1], [3, 1], [0, 0]])
    np.testing.assert_allclose(serendipity(RECS, truth, 3, per_user), [1 / 3, 0.0, np.nan])
    # nothing expected: serendipity equals precision
    nothing = np.zeros(5, dtype=bool)
    np.testing.assert_allclose(serendipity(RECS, truth, 3, nothing), precision(RECS, truth, 3))


def test_serendipity_errors() -> None:
    truth = sp.csr_array(np.eye(3, 5))
    with pytest.raises(DataError, match="expected mask has 4"):
        serendipity(RECS, truth, 2, np.zeros(4, dtype=bool))
    with pytest.raises(DataError, match="2 rows"):
        serendipity(RECS, truth, 2, np.zeros((2, 2), dtype=int))
    with pytest.raises(DataError, match="expected must be"):
        serendipity(RECS, truth, 2, np.zeros(5, dtype=float))


def test_shared_input_checks() -> None:
    with pytest.raises(ConfigError, match="n_items"):
        catalog_coverage(RECS, 0, 2)
    with pytest.raises(DataError, match="only 3 items"):
        gini_index(RECS, 3, 3)
    with pytest.raises(DataError, match="non-negative"):
        novelty(RECS, -POP, 8, 2)
    with pytest.raises(ConfigError, match="n_users_train"):
        novelty(RECS, POP, 0, 2)
    with pytest.raises(ConfigError, match="'k' cutoff"):
        average_popularity(RECS, POP, 0)
