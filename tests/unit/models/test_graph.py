"""RP3beta: contract and the dense reference formula."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.exceptions import ConfigError
from recforge.models.graph import RP3beta
from recforge.testing import RecommenderContract
from recforge.testing._contract import toy_dataset


class TestRP3beta(RecommenderContract):
    model = RP3beta
    configs = [{}, {"alpha": 0.8, "beta": 0.3, "n_neighbors": 10, "normalize": False}]


def _dense_rp3beta(
    x: np.ndarray, alpha: float, beta: float, n_keep: int, normalize: bool
) -> np.ndarray:
    p_ui = x / x.sum(axis=1, keepdims=True)
    xb = (x.T > 0).astype(np.float64)
    pop = xb.sum(axis=1)
    p_iu = xb / pop[:, None]
    w = (p_iu**alpha) @ (p_ui**alpha) / pop[None, :] ** beta
    np.fill_diagonal(w, 0.0)
    out = np.zeros_like(w)
    for i in range(w.shape[0]):
        order = sorted(range(w.shape[1]), key=lambda j: (-w[i, j], j))[:n_keep]
        out[i, order] = w[i, order]
    if normalize:
        out /= out.sum(axis=1, keepdims=True)
    return out


@pytest.mark.parametrize(("alpha", "beta", "normalize"), [(1.0, 0.5, True), (0.7, 0.2, False)])
def test_weights_match_dense_reference(alpha: float, beta: float, normalize: bool) -> None:
    ds = toy_dataset(explicit=True)
    m = RP3beta(alpha=alpha, beta=beta, n_neighbors=12, normalize=normalize).fit(ds)
    ref = _dense_rp3beta(ds.matrix().toarray().astype(np.float64), alpha, beta, 12, normalize)
    np.testing.assert_allclose(m.weights_.toarray(), ref, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(
        m.score(["u2"])[0], ds.matrix().toarray()[ds.users.codes(["u2"])[0]] @ ref, rtol=1e-4
    )


def test_beta_penalises_popular_items() -> None:
    ds = toy_dataset(explicit=False)
    pop = ds.item_counts()
    plain = RP3beta(beta=0.0).fit(ds).recommend(["u1"], k=5)
    penal = RP3beta(beta=1.0).fit(ds).recommend(["u1"], k=5)
    assert np.mean(pop[penal.item_codes[0]]) <= np.mean(pop[plain.item_codes[0]])


def test_fold_in_equals_fitted_user_and_determinism() -> None:
    ds = toy_dataset(explicit=False)
    m = RP3beta(n_neighbors=15).fit(ds)
    frame = ds.to_frame()
    hist = frame[frame["user"] == "u9"]["item"].tolist()
    fold = m.recommend_for_history(hist, k=8)
    np.testing.assert_array_equal(fold.items, m.recommend(["u9"], k=8).items)
    again = RP3beta(n_neighbors=15).fit(ds)
    np.testing.assert_array_equal(again.weights_.toarray(), m.weights_.toarray())


def test_parameter_error() -> None:
    with pytest.raises(ConfigError, match="'alpha' parameter of RP3beta"):
        RP3beta(alpha=0.0)
