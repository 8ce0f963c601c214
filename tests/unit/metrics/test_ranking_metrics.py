"""Ranking metrics: hand-computed cases, cross-check against ranx, invariants, input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.exceptions import ConfigError, DataError
from recforge.metrics import (
    RankingState,
    average_precision,
    hit_rate,
    ndcg,
    precision,
    recall,
    reciprocal_rank,
)

LOG3 = np.log2(3.0)


def _hand_case() -> tuple[np.ndarray, sp.csr_array]:
    recs = np.array(
        [
            [1, 2, 3, 4],  # truth {1: 3, 3: 1, 5: 2}
            [2, 0, -1, -1],  # truth {0: 1}
            [0, 1, 2, 3],  # no truth
            [4, 6, 7, 8],  # truth {4, 6, 7, 8, 9}, grade 1
        ],
        dtype=np.int32,
    )
    dense = np.zeros((4, 10))
    dense[0, [1, 3, 5]] = [3.0, 1.0, 2.0]
    dense[1, 0] = 1.0
    dense[3, [4, 6, 7, 8, 9]] = 1.0
    return recs, sp.csr_array(dense)


def _close(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, np.array(expected, dtype=np.float64), rtol=0, atol=1e-12)


def test_hand_computed_precision_recall_hit_rate_mrr() -> None:
    recs, truth = _hand_case()
    nan = np.nan
    _close(precision(recs, truth, 3), [2 / 3, 1 / 3, nan, 1.0])
    _close(recall(recs, truth, 3), [2 / 3, 1.0, nan, 3 / 5])
    _close(hit_rate(recs, truth, 3), [1.0, 1.0, nan, 1.0])
    _close(reciprocal_rank(recs, truth, 3), [1.0, 0.5, nan, 1.0])
    _close(hit_rate(recs, truth, 1), [1.0, 0.0, nan, 1.0])
    _close(reciprocal_rank(recs, truth, 1), [1.0, 0.0, nan, 1.0])


def test_hand_computed_average_precision_both_normalisers() -> None:
    recs, truth = _hand_case()
    nan = np.nan
    # user 0: hits at ranks 1 and 3 -> (1/1 + 2/3) / min(3, 3)
    _close(average_precision(recs, truth, 3), [(1 + 2 / 3) / 3, 0.5, nan, 1.0])
    _close(
        average_precision(recs, truth, 3, normalizer="relevant"),
        [(1 + 2 / 3) / 3, 0.5, nan, 3 / 5],
    )


def test_hand_computed_ndcg_binary_graded_exponential() -> None:
    recs, truth = _hand_case()
    nan = np.nan
    binary_u0 = (1 + 1 / 2) / (1 + 1 / LOG3 + 1 / 2)
    _close(ndcg(recs, truth, 3), [binary_u0, 1 / LOG3, nan, 1.0])
    graded_u0 = (3 + 1 / 2) / (3 + 2 / LOG3 + 1 / 2)
    _close(ndcg(recs, truth, 3, graded=True), [graded_u0, 1 / LOG3, nan, 1.0])
    expo_u0 = (7 + 1 / 2) / (7 + 3 / LOG3 + 1 / 2)
    _close(ndcg(recs, truth, 3, graded=True, gain="exponential"), [expo_u0, 1 / LOG3, nan, 1.0])


def test_short_lists_are_padded_and_repeats_count_once() -> None:
    truth = sp.csr_array(np.array([[1.0, 1.0, 0.0, 0.0]]))
    recs = np.array([[0, 0, 1]], dtype=np.int32)
    # the repeated item 0 is a hit only at rank 1; item 1 is a hit at rank 3
    _close(precision(recs, truth, 3), [2 / 3])
    _close(average_precision(recs, truth, 3), [(1 + 2 / 3) / 2])
    # L=3 < k=5: precision still divides by k
    _close(precision(recs, truth, 5), [2 / 5])
    _close(recall(recs, truth, 5), [1.0])


def test_non_positive_truth_entries_are_not_relevant() -> None:
    data = np.array([2.0, 0.0, -1.0])
    truth = sp.csr_array((data, (np.zeros(3, dtype=int), np.array([0, 1, 2]))), shape=(1, 4))
    recs = np.array([[1, 2, 0]], dtype=np.int32)
    _close(precision(recs, truth, 3), [1 / 3])
    _close(recall(recs, truth, 3), [1.0])
    _close(reciprocal_rank(recs, truth, 3), [1 / 3])


def test_unsorted_truth_indices_are_handled() -> None:
    truth = sp.csr_array(
        (np.array([1.0, 2.0, 3.0]), np.array([5, 1, 3]), np.array([0, 3])), shape=(1, 6)
    )
    assert not truth.has_sorted_indices
    recs = np.array([[3, 5, 1]], dtype=np.int32)
    _close(ndcg(recs, truth, 3, graded=True), [(3 + 1 / LOG3 + 2 / 2) / (3 + 2 / LOG3 + 1 / 2)])


def test_input_errors_name_the_problem() -> None:
    recs, truth = _hand_case()
    with pytest.raises(ConfigError, match="'k' cutoff"):
        precision(recs, truth, 0)
    with pytest.raises(DataError, match="4 rows but the recommendations have 3"):
        precision(recs[:3], truth, 2)
    with pytest.raises(DataError, match="only 10 items"):
        precision(np.array([[0, 12], [0, 1], [0, 1], [0, 1]]), truth, 2)
    with pytest.raises(DataError, match="2-D"):
        precision(np.array([0, 1]), truth, 1)
    with pytest.raises(DataError, match="sparse"):
        precision(recs, truth.toarray(), 1)
    with pytest.raises(ConfigError, match="normalizer"):
        average_precision(recs, truth, 2, normalizer="max")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="gain"):
        ndcg(recs, truth, 2, graded=True, gain="cubic")  # type: ignore[arg-type]
    dup = sp.csr_array((np.ones(2), np.array([1, 1]), np.array([0, 2, 2, 2, 2])), shape=(4, 10))
    with pytest.raises(DataError, match="more than once"):
        precision(recs, dup, 2)


def test_state_rejects_cutoff_beyond_k_max() -> None:
    recs, truth = _hand_case()
    state = RankingState(recs, truth, 3)
    with pytest.raises(ConfigError, match="k_max=3"):
        state.precision(4)


# --------------------------------------------------------------------------- ranx cross-check
def _random_case(
    seed: int, n_users: int = 150, n_items: int = 40, length: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    recs = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :length].astype(np.int32)
    cut = rng.integers(0, length + 1, size=n_users)  # some lists end early (padding)
    cut[: n_users // 2] = length
    recs[np.arange(length)[None, :] >= cut[:, None]] = -1
    grades = (rng.random((n_users, n_items)) < rng.uniform(0.02, 0.4, (n_users, 1))) * rng.integers(
        1, 4, (n_users, n_items)
    )
    empty = grades.sum(axis=1) == 0
    grades[empty, rng.integers(0, n_items, int(empty.sum()))] = 1
    # make sure some users have many relevant items and some recs are perfect
    grades[0, :] = 1
    return recs, grades.astype(np.float64)


def _ranx(recs: np.ndarray, grades: np.ndarray, metrics: list[str]) -> dict[str, np.ndarray]:
    from ranx import Qrels, Run, evaluate

    qrels = {
        f"q{u:05d}": {f"d{i}": int(grades[u, i]) for i in np.flatnonzero(grades[u])}
        for u in range(grades.shape[0])
    }
    run = {}
    for u in range(recs.shape[0]):
        docs = {f"d{i}": float(recs.shape[1] - j) for j, i in enumerate(recs[u]) if i >= 0}
        run[f"q{u:05d}"] = docs or {"none": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ranx's numba kernels emit type-safety warnings
        out = evaluate(Qrels(qrels), Run(run), metrics, return_mean=False, threads=1)
    if isinstance(out, np.ndarray):
        return {metrics[0]: out}
    return {m: np.asarray(v) for m, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 3, 10, 12])
def test_matches_ranx(seed: int, k: int) -> None:
    recs, grades = _random_case(seed)
    truth = sp.csr_array(grades)
    names = ["precision", "recall", "hit_rate", "mrr", "map", "ndcg", "ndcg_burges"]
    ref = _ranx(recs, grades, [f"{m}@{k}" for m in names])
    ref_binary = _ranx(recs, (grades > 0).astype(np.float64), [f"ndcg@{k}"])[f"ndcg@{k}"]
    state = RankingState(recs, truth, k)
    tol = {"rtol": 0, "atol": 1e-9}
    np.testing.assert_allclose(state.precision(k), ref[f"precision@{k}"], **tol)
    np.testing.assert_allclose(state.recall(k), ref[f"recall@{k}"], **tol)
    np.testing.assert_allclose(state.hit_rate(k), ref[f"hit_rate@{k}"], **tol)
    np.testing.assert_allclose(state.reciprocal_rank(k), ref[f"mrr@{k}"], **tol)
    np.testing.assert_allclose(state.ndcg(k, graded=True), ref[f"ndcg@{k}"], **tol)
    np.testing.assert_allclose(
        state.ndcg(k, graded=True, gain="exponential"), ref[f"ndcg_burges@{k}"], **tol
    )
    np.testing.assert_allclose(state.ndcg(k), ref_binary, **tol)
    # ranx's map@k divides by |R_u|; the default divides by min(k, |R_u|)
    np.testing.assert_allclose(state.average_precision(k, "relevant"), ref[f"map@{k}"], **tol)
    n_rel = (grades > 0).sum(axis=1)
    rescaled = ref[f"map@{k}"] * n_rel / np.minimum(n_rel, k)
    np.testing.assert_allclose(state.average_precision(k), rescaled, **tol)
    # the public one-shot functions agree with the shared state
    np.testing.assert_array_equal(precision(recs, truth, k), state.precision(k))
    np.testing.assert_array_equal(ndcg(recs, truth, k, graded=True), state.ndcg(k, graded=True))


def test_average_precision_conventions_differ_only_beyond_k() -> None:
    recs, grades = _random_case(3)
    truth = sp.csr_array(grades)
    k = 5
    a = average_precision(recs, truth, k)
    b = average_precision(recs, truth, k, normalizer="relevant")
    few = (grades > 0).sum(axis=1) <= k
    np.testing.assert_array_equal(a[few], b[few])
    assert (a[~few] >= b[~few]).all()
    assert (a[~few] > b[~few]).any()


# --------------------------------------------------------------------------- invariants
@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 12))
    length = draw(st.integers(1, 8))
    k = draw(st.integers(1, 10))
    recs = np.array(
        draw(
            st.lists(
                st.lists(st.integers(-1, n_items - 1), min_size=length, max_size=length),
                min_size=n_users,
                max_size=n_users,
            )
        ),
        dtype=np.int32,
    )
    grades = np.array(
        draw(
            st.lists(
                st.lists(st.integers(0, 3), min_size=n_items, max_size=n_items),
                min_size=n_users,
                max_size=n_users,
            )
        ),
        dtype=np.float64,
    )
    return recs, grades, k


@settings(max_examples=60, deadline=None)
@given(_cases())
def test_invariants(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    recs, grades, k = case
    truth = sp.csr_array(grades)
    state = RankingState(recs, truth, k)
    has = (grades > 0).any(axis=1)
    # naive hit count: distinct relevant items among the first k valid entries
    hits = np.array(
        [
            len({int(i) for i in recs[u, :k] if i >= 0 and grades[u, i] > 0})
            for u in range(recs.shape[0])
        ]
    )
    values = {
        "precision": state.precision(k),
        "recall": state.recall(k),
        "hit_rate": state.hit_rate(k),
        "mrr": state.reciprocal_rank(k),
        "map": state.average_precision(k),
        "map_rel": state.average_precision(k, "relevant"),
        "ndcg": state.ndcg(k),
        "ndcg_graded": state.ndcg(k, graded=True),
    }
    for name, v in values.items():
        assert np.isnan(v[~has]).all(), name
        assert ((v[has] >= -1e-12) & (v[has] <= 1 + 1e-12)).all(), name
    np.testing.assert_allclose(values["precision"][has] * k, hits[has], atol=1e-9)
    np.testing.assert_array_equal(values["hit_rate"][has], (hits[has] > 0).astype(float))
    assert (values["mrr"][has] <= values["hit_rate"][has]).all()
    assert (values["map_rel"][has] <= values["map"][has] + 1e-12).all()
    zero = has & (hits == 0)
    for v in values.values():
        assert (v[zero] == 0).all()


@settings(max_examples=40, deadline=None)
@given(_cases())
def test_perfect_lists_score_one(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    _, grades, k = case
    grades[:, 0] = np.maximum(grades[:, 0], 1.0)  # every user has a relevant item
    n_items = grades.shape[1]
    order = np.argsort(-grades, axis=1, kind="stable")
    recs = np.where(np.take_along_axis(grades, order, axis=1) > 0, order, -1).astype(np.int32)
    recs = recs[:, : max(k, 1)] if n_items >= k else recs
    truth = sp.csr_array(grades)
    state = RankingState(recs, truth, k)
    for v in (
        state.ndcg(k),
        state.ndcg(k, graded=True),
        state.average_precision(k),
        state.reciprocal_rank(k),
        state.hit_rate(k),
    ):
        np.testing.assert_allclose(v, 1.0, atol=1e-12)
