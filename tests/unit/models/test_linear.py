"""EASE and SLIM: contract, the closed form, column fits against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import ElasticNet

from recforge.exceptions import ConfigError
from recforge.models.linear import EASE, SLIM
from recforge.testing import RecommenderContract
from recforge.testing._contract import toy_dataset


class TestEASE(RecommenderContract):
    model = EASE
    configs = [{"reg": 20.0}, {"reg": 5.0, "binary": True, "precision": "float32"}]


class TestSLIM(RecommenderContract):
    model = SLIM
    configs = [{"reg": 0.01, "l1_ratio": 0.2, "n_neighbors": 10, "max_iter": 300, "n_threads": 2}]


@pytest.mark.parametrize("reg", [1.0, 50.0])
def test_ease_matches_dense_formula(reg: float) -> None:
    ds = toy_dataset(explicit=False)
    m = EASE(reg=reg).fit(ds)
    x = ds.matrix().toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + reg * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))
    np.testing.assert_allclose(np.diag(m.weights_), 0.0)
    np.testing.assert_allclose(m.weights_, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.score(["u4"])[0], x[ds.users.codes(["u4"])[0]] @ b, atol=1e-5)


def test_ease_fold_in_equals_fitted_user() -> None:
    ds = toy_dataset(explicit=True)
    m = EASE(reg=10.0).fit(ds)
    frame = ds.to_frame()
    hist = frame[frame["user"] == "u11"]
    fold = m.recommend_for_history(hist["item"].tolist(), hist["value"].tolist(), k=10)
    fitted = m.recommend(["u11"], k=10)
    np.testing.assert_array_equal(fold.items, fitted.items)
    np.testing.assert_allclose(fold.scores, fitted.scores, rtol=1e-5)


def test_slim_columns_match_sklearn_elastic_net() -> None:
    ds = toy_dataset(explicit=False)
    reg, l1, keep = 0.005, 0.3, 1000
    m = SLIM(reg=reg, l1_ratio=l1, n_neighbors=keep, max_iter=2000, tol=1e-8).fit(ds)
    x = ds.matrix().toarray().astype(np.float64)
    w = m.weights_.toarray()
    for j in (0, 7, 23):
        xj = x.copy()
        xj[:, j] = 0.0
        ref = ElasticNet(
            alpha=reg, l1_ratio=l1, positive=True, fit_intercept=False, max_iter=2000, tol=1e-8
        ).fit(xj, x[:, j])
        np.testing.assert_allclose(w[:, j], ref.coef_, atol=1e-5)
        assert w[j, j] == 0.0
    assert np.all(w >= 0)
    assert m.n_not_converged_ == 0


def test_slim_pruning_and_thread_independence() -> None:
    ds = toy_dataset(explicit=False)
    one = SLIM(reg=0.002, l1_ratio=0.1, n_neighbors=3, n_threads=1).fit(ds)
    two = SLIM(reg=0.002, l1_ratio=0.1, n_neighbors=3, n_threads=2).fit(ds)
    per_column = np.diff(sp.csc_array(one.weights_).indptr)
    assert per_column.max() <= 3
    np.testing.assert_array_equal(one.weights_.toarray(), two.weights_.toarray())


def test_parameter_errors() -> None:
    with pytest.raises(ConfigError, match="'reg' parameter of EASE"):
        EASE(reg=0.0)
    with pytest.raises(ConfigError, match="'l1_ratio' parameter of SLIM"):
        SLIM(l1_ratio=1.5)


def test_ease_refuses_a_catalogue_that_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    from recforge.exceptions import InsufficientMemoryError
    from recforge.models import linear

    ds = toy_dataset()
    need = linear.ease_memory_bytes(ds.n_items, np.float64)
    assert need == ds.n_items**2 * 12
    monkeypatch.setattr(linear, "available_memory_bytes", lambda: need - 1)
    with pytest.raises(InsufficientMemoryError, match=r"EASE on .* items needs about .*float32"):
        EASE().fit(ds)
    EASE(precision="float32").fit(ds)  # 4 bytes a cell fits where 12 did not
    monkeypatch.setattr(linear, "available_memory_bytes", lambda: None)
    EASE().fit(ds)  # unknown memory: no refusal


def test_ease_weights_match_the_closed_form() -> None:
    from recforge.models.linear import ease_weights

    rng = np.random.default_rng(0)
    x = sp.csr_array((rng.random((30, 12)) < 0.3).astype(np.float32))
    g = (x.T @ x).toarray().astype(np.float64) + 5.0 * np.eye(12)
    p = np.linalg.inv(g)
    want = np.eye(12) - p / np.diag(p)[None, :]
    np.fill_diagonal(want, 0.0)
    np.testing.assert_allclose(ease_weights(x, 5.0), want, atol=1e-5)
