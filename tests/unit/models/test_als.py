"""Implicit ALS: contract, exact half-steps, objective, fold-in, callbacks."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from recforge._kernels.als import als_loss_reference, als_solve_reference
from recforge.data.weighting import bm25
from recforge.models import Recommender, model_class
from recforge.models.als import ALS
from recforge.testing import RecommenderContract, toy_dataset


class TestALS(RecommenderContract):
    model = ALS
    configs = [
        {"factors": 6, "iterations": 3, "rng": 0},
        {"factors": 5, "iterations": 2, "solver": "cholesky", "weighting": "bm25", "rng": 1},
        {"factors": 4, "iterations": 2, "weighting": "log", "alpha": 3.0, "rng": 2},
    ]


@pytest.fixture(scope="module")
def data():
    return toy_dataset(explicit=False)


def test_registered() -> None:
    assert model_class("als") is ALS


def test_user_factors_solve_normal_equations_exactly(data) -> None:
    m = ALS(factors=5, iterations=2, solver="cholesky", alpha=4.0, reg=0.1, rng=0).fit(data)
    conf = data.matrix()
    conf.data = (4.0 * conf.data).astype(np.float32)
    expected = als_solve_reference(
        conf.indptr.astype(np.int64), conf.indices, conf.data, m.item_factors_, 0.1
    )
    np.testing.assert_allclose(m.user_factors_, expected, rtol=1e-3, atol=1e-5)


def test_cg_with_many_steps_matches_cholesky(data) -> None:
    a = ALS(factors=4, iterations=4, solver="cholesky", rng=3).fit(data)
    b = ALS(factors=4, iterations=4, solver="cg", cg_steps=12, rng=3).fit(data)
    np.testing.assert_allclose(a.user_factors_, b.user_factors_, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_objective_decreases(data, solver: str) -> None:
    m = ALS(factors=6, iterations=6, solver=solver, alpha=5.0, reg=0.05, rng=4)
    m.fit(data, track_loss=True)
    loss = np.array(m.loss_)
    assert loss.shape == (6,)
    assert np.all(np.diff(loss) <= 1e-6 * loss[:-1])
    conf = data.matrix()
    conf.data = (5.0 * conf.data).astype(np.float32)
    ref = als_loss_reference(
        conf.indptr, conf.indices, conf.data, m.user_factors_, m.item_factors_, 0.05
    )
    assert loss[-1] == pytest.approx(ref, rel=1e-5)


def test_fold_in_reproduces_training_user(data) -> None:
    m = ALS(factors=6, iterations=3, solver="cholesky", rng=0).fit(data)
    frame = data.to_frame()
    for user in ("u0", "u7"):
        hist = frame[frame["user"] == user]
        codes = data.items.codes(hist["item"].to_numpy())
        x = m.fold_in(codes, hist["value"].to_numpy(np.float32))
        code = data.users.codes([user])[0]
        np.testing.assert_allclose(x, m.user_factors_[code], rtol=1e-4, atol=1e-6)
        scores = m._score_history(codes, hist["value"].to_numpy(np.float32))
        np.testing.assert_allclose(scores, m.score([user])[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("weighting", ["linear", "bm25"])
def test_explanation_terms_add_up_to_the_score(data, weighting: str) -> None:
    m = ALS(factors=6, iterations=3, solver="cholesky", weighting=weighting, rng=0).fit(data)
    frame = data.to_frame()
    for user in ("u0", "u7"):
        item = m.recommend([user], k=1).items[0, 0]
        e = m.explain(user, item)
        assert e.kind == "items"
        assert {c for c, _ in e.contributions} == set(frame[frame["user"] == user]["item"])
        assert sum(w for _, w in e.contributions) == pytest.approx(e.score, rel=1e-4)
        weights = [abs(w) for _, w in e.contributions]
        assert weights == sorted(weights, reverse=True)


def test_bm25_fold_in_weights_match_training_weights(data) -> None:
    m = ALS(factors=4, iterations=1, weighting="bm25", alpha=2.0, rng=0).fit(data)
    x = data.matrix()
    w = bm25(x)
    row = 5
    cols = x.indices[x.indptr[row] : x.indptr[row + 1]]
    got = m._history_weights(cols, x.data[x.indptr[row] : x.indptr[row + 1]])
    np.testing.assert_allclose(got, 2.0 * w.data[w.indptr[row] : w.indptr[row + 1]], rtol=1e-5)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_deterministic_under_rng_whatever_the_thread_count(data, solver: str) -> None:
    # rows are solved independently, one per prange iteration: no shared accumulator
    a = ALS(factors=4, iterations=2, solver=solver, rng=9).fit(data)
    b = ALS(factors=4, iterations=2, solver=solver, rng=9).fit(data)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        c = ALS(factors=4, iterations=2, solver=solver, rng=9).fit(data)
    finally:
        numba.set_num_threads(before)
    assert before > 1  # the suite runs numba on two threads (tests/conftest.py)
    for other in (b, c):
        np.testing.assert_array_equal(a.user_factors_, other.user_factors_)
        np.testing.assert_array_equal(a.item_factors_, other.item_factors_)


def test_callback_sees_iterations_and_can_stop(data) -> None:
    calls: list[tuple[int, float]] = []

    def cb(it: int, model: Recommender) -> bool:
        calls.append((it, float(model.score(["u0"]).sum())))
        return it == 1

    ALS(factors=4, iterations=5, rng=0).fit(data, callback=cb)
    assert [c[0] for c in calls] == [0, 1]

    def prune(it: int, model: Recommender) -> None:
        raise RuntimeError("pruned")

    with pytest.raises(RuntimeError, match="pruned"):
        ALS(factors=4, iterations=5, rng=0).fit(data, callback=prune)


def test_progress_bar_runs(data) -> None:
    m = ALS(factors=3, iterations=2, rng=0).fit(data, progress=True)
    assert m.is_fitted


def test_learns_cluster_structure(data) -> None:
    m = ALS(factors=3, iterations=8, alpha=5.0, reg=0.5, rng=0).fit(data)
    recs = m.recommend([f"u{u}" for u in range(60)], k=5).items
    # toy clusters: even users like items 100..119, odd users 120..139 (random: 0.5)
    in_cluster = np.where(np.arange(60)[:, None] % 2 == 0, recs < 120, recs >= 120)
    assert in_cluster.mean() >= 0.75
    sim = m.similar_items([100], k=5)
    assert np.mean(sim.items[0] < 120) >= 0.6


def test_similar_items_norm_cache_follows_refit() -> None:
    """Regression: cached factor norms must not survive a refit on other data."""
    from recforge.testing import toy_dataset

    first, second = toy_dataset(seed=1), toy_dataset(seed=2)
    model = ALS(factors=4, iterations=3, rng=0).fit(first)
    model.similar_items([100], k=5)  # fills the cache
    model.fit(second)
    fresh = ALS(factors=4, iterations=3, rng=0).fit(second)
    np.testing.assert_array_equal(
        model.similar_items([100], k=5).item_codes, fresh.similar_items([100], k=5).item_codes
    )
