"""Registries, MetricContext and compute_metrics; package exports and doctests."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import scipy.sparse as sp

import recforge.metrics as metrics
from recforge.exceptions import ConfigError, DataError
from recforge.metrics import (
    BEYOND_METRICS,
    RANKING_METRICS,
    MetricContext,
    compute_metrics,
)


def _case(seed: int = 0) -> tuple[np.ndarray, sp.csr_array, MetricContext]:
    rng = np.random.default_rng(seed)
    n_users, n_items, n_train = 80, 30, 50
    recs = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :10].astype(np.int32)
    recs[:5, 7:] = -1
    truth = sp.csr_array(
        (rng.random((n_users, n_items)) < 0.15) * rng.integers(1, 6, (n_users, n_items)),
        dtype=np.float64,
    )
    train = sp.csr_array((rng.random((n_train, n_items)) < 0.2).astype(np.float64))
    feats = sp.csr_array((rng.random((n_items, 6)) < 0.4).astype(np.float64))
    context = MetricContext(
        n_items=n_items,
        item_popularity=np.asarray(train.sum(axis=0)).ravel(),
        n_users_train=n_train,
        item_features=feats,
        train_matrix=train,
    )
    return recs, truth, context


def test_registry_names() -> None:
    assert set(RANKING_METRICS) == {
        "precision",
        "recall",
        "ndcg",
        "ndcg_graded",
        "map",
        "mrr",
        "hit_rate",
    }
    assert set(BEYOND_METRICS) == {
        "coverage",
        "gini",
        "novelty",
        "diversity",
        "serendipity",
        "popularity",
    }


def test_compute_metrics_equals_individual_calls() -> None:
    recs, truth, ctx = _case()
    names = [*RANKING_METRICS, *BEYOND_METRICS]
    ks = [1, 5, 10]
    out = compute_metrics(recs, truth, ks, names, ctx)
    assert set(out) == {(n, k) for n in names for k in ks}
    for k in ks:
        for name, fn in RANKING_METRICS.items():
            np.testing.assert_array_equal(out[(name, k)], fn(recs, truth, k))
        assert out[("coverage", k)] == metrics.catalog_coverage(recs, ctx.n_items, k)
        assert out[("gini", k)] == metrics.gini_index(recs, ctx.n_items, k)
        assert isinstance(out[("coverage", k)], float)
        np.testing.assert_array_equal(
            out[("novelty", k)],
            metrics.novelty(recs, ctx.item_popularity, ctx.n_users_train, k),
        )
        np.testing.assert_array_equal(
            out[("diversity", k)],
            metrics.intra_list_diversity(recs, k, item_features=ctx.item_features),
        )
        top = np.argsort(-ctx.item_popularity, kind="stable")[:k]
        np.testing.assert_array_equal(
            out[("serendipity", k)], metrics.serendipity(recs, truth, k, top)
        )
        np.testing.assert_array_equal(
            out[("popularity", k)], metrics.average_popularity(recs, ctx.item_popularity, k)
        )
    graded = out[("ndcg_graded", 10)]
    np.testing.assert_array_equal(graded, metrics.ndcg(recs, truth, 10, graded=True))
    assert not np.array_equal(graded, out[("ndcg", 10)], equal_nan=True)


def test_diversity_falls_back_to_cooccurrence_and_needs_a_source() -> None:
    recs, truth, ctx = _case()
    ctx.item_features = None
    out = compute_metrics(recs, truth, [5], ["diversity"], ctx)
    expected = metrics.intra_list_diversity(recs, 5, cooccurrence=ctx.train_matrix)
    np.testing.assert_array_equal(out[("diversity", 5)], expected)
    ctx.train_matrix = None
    with pytest.raises(ConfigError, match=r"item_features or MetricContext\.train_matrix"):
        compute_metrics(recs, truth, [5], ["diversity"], ctx)


def test_explicit_expected_items_for_serendipity() -> None:
    recs, truth, ctx = _case()
    ctx.expected = np.zeros(ctx.n_items, dtype=bool)
    out = compute_metrics(recs, truth, [5], ["serendipity", "precision"], ctx)
    np.testing.assert_array_equal(out[("serendipity", 5)], out[("precision", 5)])


def test_unknown_metric_suggests_and_lists() -> None:
    recs, truth, ctx = _case()
    with pytest.raises(ConfigError, match=r"Unknown metric 'ndgc'\. Did you mean 'ndcg'") as info:
        compute_metrics(recs, truth, [5], ["precision", "ndgc"], ctx)
    assert "coverage, diversity, gini, hit_rate, map, mrr, ndcg" in str(info.value)


def test_bad_inputs() -> None:
    recs, truth, ctx = _case()
    with pytest.raises(ConfigError, match="at least one cutoff"):
        compute_metrics(recs, truth, [], ["precision"], ctx)
    with pytest.raises(ConfigError, match="'k' cutoff"):
        compute_metrics(recs, truth, [0], ["precision"], ctx)
    with pytest.raises(DataError, match="31 item columns"):
        compute_metrics(recs, sp.csr_array((recs.shape[0], 31)), [5], ["precision"], ctx)


def test_most_popular_ties_go_to_lower_codes() -> None:
    ctx = MetricContext(n_items=4, item_popularity=np.array([1.0, 3.0, 3.0, 0.0]), n_users_train=3)
    np.testing.assert_array_equal(ctx.most_popular(3), [1, 2, 0])
    np.testing.assert_array_equal(ctx.most_popular(9), [1, 2, 0, 3])


def test_exports_are_sorted_and_importable() -> None:
    assert metrics.__all__ == sorted(metrics.__all__)
    for name in metrics.__all__:
        assert getattr(metrics, name) is not None


@pytest.mark.parametrize("module", ["ranking", "accuracy", "beyond", "significance", "_compute"])
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"recforge.metrics.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_context_is_validated() -> None:
    pop = np.ones(4)
    with pytest.raises(DataError, match=r"item_popularity must have one count per item"):
        MetricContext(n_items=5, item_popularity=pop, n_users_train=3)
    with pytest.raises(ConfigError, match="n_items must be >= 1"):
        MetricContext(n_items=0, item_popularity=np.ones(0), n_users_train=3)
    with pytest.raises(ConfigError, match="n_users_train"):
        MetricContext(n_items=4, item_popularity=pop, n_users_train=-1)
    with pytest.raises(DataError, match="item_features has shape"):
        MetricContext(
            n_items=4, item_popularity=pop, n_users_train=3, item_features=sp.csr_array((3, 2))
        )
    with pytest.raises(DataError, match=r"train_matrix must be a scipy\.sparse"):
        MetricContext(n_items=4, item_popularity=pop, n_users_train=3, train_matrix=np.ones(4))
    ctx = MetricContext(n_items=4, item_popularity=[1, 2, 3, 4], n_users_train=3)
    assert ctx.item_popularity.dtype == np.float64
