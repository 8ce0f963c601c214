"""Beyond-accuracy metrics: hand-computed values, formula identities and errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.exceptions import ConfigError, DataError
from recforge.metrics import (
    ItemVectors,
    average_popularity,
    catalog_coverage,
    diversity_from_vectors,
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


@st.composite
def _lists(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n_users = draw(st.integers(1, 5))
    n_items = draw(st.integers(1, 9))
    length = draw(st.integers(1, 6))
    cell = st.integers(-1, n_items - 1)
    row = st.lists(cell, min_size=length, max_size=length)
    recs = np.array(draw(st.lists(row, min_size=n_users, max_size=n_users)), dtype=np.int32)
    rel = st.lists(st.booleans(), min_size=n_items, max_size=n_items)
    truth = np.array(draw(st.lists(rel, min_size=n_users, max_size=n_users)), dtype=np.float64)
    feat_row = st.lists(st.integers(0, 2), min_size=3, max_size=3)
    feats = np.array(draw(st.lists(feat_row, min_size=n_items, max_size=n_items)), float)
    return recs, truth, feats, draw(st.integers(1, 7))


@settings(max_examples=60, deadline=None)
@given(_lists())
def test_beyond_invariants(case: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
    recs, truth, feats, k = case
    n_items = truth.shape[1]
    cov = catalog_coverage(recs, n_items, k)
    assert 0.0 <= cov <= 1.0
    gini = gini_index(recs, n_items, k)
    assert np.isnan(gini) or 0.0 <= gini <= 1.0 - 1.0 / n_items + 1e-12
    pop = np.arange(n_items, dtype=np.float64)
    nov = novelty(recs, pop, max(n_items, 1), k)
    valid = (recs[:, :k] >= 0).any(axis=1)
    assert (nov[valid] >= 0).all()
    assert np.isnan(nov[~valid]).all()
    ild = intra_list_diversity(recs, k, item_features=sp.csr_array(feats))
    defined = ~np.isnan(ild)
    assert ((ild[defined] >= -1e-12) & (ild[defined] <= 1 + 1e-12)).all()
    np.testing.assert_array_equal(defined, (recs[:, :k] >= 0).sum(axis=1) >= 2)
    ser = serendipity(recs, sp.csr_array(truth), k, np.zeros(n_items, dtype=bool) | (pop < 2))
    prec = precision(recs, sp.csr_array(truth), k)
    both = ~np.isnan(prec)
    np.testing.assert_array_equal(np.isnan(ser), ~both)
    assert (ser[both] <= prec[both] + 1e-12).all()


def test_prebuilt_item_vectors_give_the_same_diversity() -> None:
    feats = sp.csr_array(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [2.0, 1.0]]))
    vectors = ItemVectors.build(item_features=feats)
    assert vectors.n_items == 5
    for k in (2, 3):
        np.testing.assert_array_equal(
            diversity_from_vectors(RECS, k, vectors),
            intra_list_diversity(RECS, k, item_features=feats),
        )


def _ild_reference(recs: np.ndarray, k: int, features: np.ndarray) -> np.ndarray:
    """Mean pairwise (1 - cosine) by explicit loops over each list's pairs."""
    norms = np.linalg.norm(features, axis=1)
    out = np.full(recs.shape[0], np.nan)
    for u in range(recs.shape[0]):
        row = [int(x) for x in recs[u, :k] if x >= 0]
        sims = []
        for a in range(len(row)):
            for b in range(a + 1, len(row)):
                i, j = row[a], row[b]
                den = norms[i] * norms[j]
                sims.append(0.0 if den == 0 else float(features[i] @ features[j]) / den)
        if sims:
            out[u] = 1.0 - float(np.mean(sims))
    return out


@pytest.mark.parametrize(
    ("method", "block_bytes"), [("auto", 64 * 2**20), ("gram", 64 * 2**20), ("gram", 8 * 7 * 30)]
)
def test_diversity_matches_loop_reference(
    method: str, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recforge.metrics.beyond as beyond_module

    monkeypatch.setattr(beyond_module, "_BLOCK_BYTES", block_bytes)  # 64 MiB or 7 rows
    rng = np.random.default_rng(0)
    n_items = 30
    dense = (rng.random((n_items, 9)) < 0.3) * rng.random((n_items, 9))
    dense[4] = 0.0  # an item without features
    recs = rng.integers(-1, n_items, size=(60, 8)).astype(np.int32)  # padding and repeats
    recs[:, 0] = 4
    feats = ItemVectors.build(item_features=sp.csr_array(dense))
    for k in (1, 2, 5, 8):
        got = diversity_from_vectors(recs, k, feats, method=method)  # type: ignore[arg-type]
        np.testing.assert_allclose(got, _ild_reference(recs, k, dense), rtol=0, atol=1e-12)
        merge = diversity_from_vectors(recs, k, feats, method="merge")
        np.testing.assert_allclose(got, merge, rtol=0, atol=1e-12)
    train = (rng.random((40, n_items)) < 0.2).astype(np.float64)
    cooc = ItemVectors.build(cooccurrence=sp.csr_array(train * 3.0))
    got = diversity_from_vectors(recs, 6, cooc, method=method)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, _ild_reference(recs, 6, train.T), rtol=0, atol=1e-12)


def test_diversity_method_is_checked() -> None:
    vectors = ItemVectors.build(item_features=sp.csr_array(np.eye(5)))
    with pytest.raises(ConfigError, match="'method'"):
        diversity_from_vectors(RECS, 2, vectors, method="fast")  # type: ignore[arg-type]
