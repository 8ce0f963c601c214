"""ItemKNN / UserKNN: contract, Surprise prediction rules by hand, fold-in, weighting, state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.data import Dataset
from recforge.data.weighting import bm25
from recforge.exceptions import ConfigError, ModelFormatError
from recforge.models.bias import fit_biases
from recforge.models.knn import ItemKNN, UserKNN
from recforge.testing import RecommenderContract
from recforge.testing._contract import toy_dataset


class TestItemKNN(RecommenderContract):
    model = ItemKNN
    configs = [
        {"n_neighbors": 10},
        {"similarity": "pearson", "prediction": "mean_centered", "shrink": 5.0},
        {
            "similarity": "asymmetric_cosine",
            "alpha": 0.3,
            "weighting": "bm25",
            "binary": True,
            "prediction": "baseline",
        },
        {"similarity": "jaccard", "norms": "common", "min_support": 2},
        {"similarity": "adjusted_cosine", "weighting": "tfidf", "n_neighbors": 20},
    ]
    invalid_combinations = [{"min_k": 5, "max_k": 2}]


class TestUserKNN(RecommenderContract):
    model = UserKNN
    configs = [
        {"n_neighbors": 15},
        {"similarity": "pearson", "prediction": "baseline", "max_k": 10, "min_k": 2},
        {"similarity": "cosine", "norms": "common", "weighting": "bm25", "binary": True},
    ]
    invalid_combinations = [{"min_k": 50}]


# A tiny rating matrix (users u1..u4 x items a, b, c); "-" = not rated:
#        a  b  c
#   u1   5  3  4
#   u2   4  2  -
#   u3   1  -  2
#   u4   -  4  5
TINY = pd.DataFrame(
    {
        "user": ["u1", "u1", "u1", "u2", "u2", "u3", "u3", "u4", "u4"],
        "item": ["a", "b", "c", "a", "b", "a", "c", "b", "c"],
        "r": [5.0, 3.0, 4.0, 4.0, 2.0, 1.0, 2.0, 4.0, 5.0],
    }
)
COL = {
    "a": np.array([5.0, 4.0, 1.0, 0.0]),
    "b": np.array([3.0, 2.0, 0.0, 4.0]),
    "c": np.array([4.0, 0.0, 2.0, 5.0]),
}
MU = 30.0 / 9.0


def _cos(x: np.ndarray, y: np.ndarray) -> float:
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return Dataset.from_frame(TINY, value="r")


def test_item_plain_matches_hand_computation(tiny: Dataset) -> None:
    s_ca, s_cb = _cos(COL["c"], COL["a"]), _cos(COL["c"], COL["b"])
    assert s_ca == pytest.approx(22 / np.sqrt(45 * 42))
    m = ItemKNN(prediction="plain").fit(tiny)
    expected = (s_ca * 4 + s_cb * 2) / (s_ca + s_cb)  # u2 rated a=4, b=2
    assert m.predict(["u2"], ["c"])[0] == pytest.approx(expected, rel=1e-5)
    # max_k=1: only the most similar rated neighbour (b) is used
    m1 = ItemKNN(prediction="plain", max_k=1).fit(tiny)
    assert m1.predict(["u2"], ["c"])[0] == pytest.approx(2.0)
    # min_k=3 cannot be met: KNNBasic's "impossible" prediction is the global mean
    m3 = ItemKNN(prediction="plain", max_k=5, min_k=3).fit(tiny)
    assert m3.predict(["u2"], ["c"])[0] == pytest.approx(MU)


def test_item_mean_centered_matches_hand_computation(tiny: Dataset) -> None:
    s_ca, s_cb = _cos(COL["c"], COL["a"]), _cos(COL["c"], COL["b"])
    mean_a, mean_b, mean_c = 10 / 3, 9 / 3, 11 / 3
    m = ItemKNN(prediction="mean_centered").fit(tiny)
    expected = mean_c + (s_ca * (4 - mean_a) + s_cb * (2 - mean_b)) / (s_ca + s_cb)
    assert m.predict(["u2"], ["c"])[0] == pytest.approx(expected, rel=1e-5)
    few = ItemKNN(prediction="mean_centered", max_k=5, min_k=3).fit(tiny)
    assert few.predict(["u2"], ["c"])[0] == pytest.approx(mean_c)


def test_item_baseline_matches_hand_computation(tiny: Dataset) -> None:
    mu, bu, bi = fit_biases(
        tiny.user, tiny.item, tiny.value, tiny.n_users, tiny.n_items, 15.0, 10.0
    )
    u = int(tiny.users.codes(["u2"])[0])
    a, b, c = (int(x) for x in tiny.items.codes(["a", "b", "c"]))
    s_ca, s_cb = _cos(COL["c"], COL["a"]), _cos(COL["c"], COL["b"])
    dev = s_ca * (4 - (mu + bi[a] + bu[u])) + s_cb * (2 - (mu + bi[b] + bu[u]))
    expected = mu + bu[u] + bi[c] + dev / (s_ca + s_cb)
    m = ItemKNN(prediction="baseline").fit(tiny)
    assert m.predict(["u2"], ["c"])[0] == pytest.approx(expected, rel=1e-5)
    # unknown item: mu + user bias; unknown user: mu + item bias
    est = m.predict(["u2", "nobody"], ["zzz", "c"])
    assert est[0] == pytest.approx(mu + bu[u], rel=1e-5)
    assert est[1] == pytest.approx(mu + bi[c], rel=1e-5)


def test_user_plain_matches_hand_computation(tiny: Dataset) -> None:
    rows = {"u1": np.array([5.0, 3, 4]), "u2": np.array([4.0, 2, 0])}
    rows["u3"], rows["u4"] = np.array([1.0, 0, 2]), np.array([0.0, 4, 5])
    sims = {v: _cos(rows["u2"], rows[v]) for v in ("u1", "u3", "u4")}
    rating_c = {"u1": 4.0, "u3": 2.0, "u4": 5.0}
    expected = sum(sims[v] * rating_c[v] for v in sims) / sum(sims.values())
    m = UserKNN(prediction="plain").fit(tiny)
    assert m.predict(["u2"], ["c"])[0] == pytest.approx(expected, rel=1e-5)
    two = UserKNN(prediction="plain", max_k=2).fit(tiny)  # u1 and u3 are the closest
    e2 = (sims["u1"] * 4 + sims["u3"] * 2) / (sims["u1"] + sims["u3"])
    assert two.predict(["u2"], ["c"])[0] == pytest.approx(e2, rel=1e-5)


def test_predictions_clipped_and_unknown_fall_back(tiny: Dataset) -> None:
    m = ItemKNN(prediction="mean_centered").fit(tiny)
    est = m.predict(["u1", "nobody", "u1"], ["a", "a", "zzz"])
    assert np.all((est >= 1.0) & (est <= 5.0))
    assert est[1] == pytest.approx(MU)
    assert est[2] == pytest.approx(MU)


def test_topn_scores_are_history_times_similarity() -> None:
    ds = toy_dataset(explicit=True)
    m = ItemKNN(n_neighbors=8).fit(ds)
    x = ds.matrix().toarray()
    s = m.similarity_.toarray()  # row j = neighbours of j
    np.testing.assert_allclose(m.score(["u3"])[0], x[ds.users.codes(["u3"])[0]] @ s.T, rtol=1e-5)
    assert np.all(np.diff(m.similarity_.indptr) <= 8)


def test_item_fold_in_equals_fitted_user() -> None:
    ds = toy_dataset(explicit=True)
    m = ItemKNN(n_neighbors=15, similarity="pearson").fit(ds)
    frame = ds.to_frame()
    hist = frame[frame["user"] == "u7"]
    fold = m.recommend_for_history(hist["item"].tolist(), hist["value"].tolist(), k=10)
    fitted = m.recommend(["u7"], k=10)
    np.testing.assert_array_equal(fold.items, fitted.items)
    np.testing.assert_allclose(fold.scores, fitted.scores, rtol=1e-6)


def test_user_fold_in_matches_brute_force() -> None:
    ds = toy_dataset(explicit=False)
    m = UserKNN(n_neighbors=5).fit(ds)
    x = ds.matrix().toarray()
    hist = [100, 101, 102, 103, 104]
    h = np.zeros(ds.n_items)
    h[ds.items.codes(hist)] = 1.0
    sims = (x @ h) / np.sqrt((x * x).sum(axis=1) * (h @ h))
    top = np.argsort(-sims, kind="stable")[:5]
    expected = sims[top] @ x[top]
    got = m._score_history(ds.items.codes(hist), np.ones(5, dtype=np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bm25_weighting_changes_similarity_as_specified() -> None:
    ds = toy_dataset(explicit=False)
    plain = ItemKNN(n_neighbors=39).fit(ds)
    weighted = ItemKNN(n_neighbors=39, weighting="bm25").fit(ds)
    w = bm25(sp.csr_array(ds.matrix().T)).toarray().astype(np.float64)
    norms = np.linalg.norm(w, axis=1)
    dense = (w @ w.T) / np.outer(norms, norms)
    np.fill_diagonal(dense, 0.0)
    np.testing.assert_allclose(weighted.similarity_.toarray(), dense, rtol=1e-4, atol=1e-6)
    assert not np.allclose(plain.similarity_.toarray(), weighted.similarity_.toarray())


def test_explain_lists_contributions() -> None:
    ds = toy_dataset(explicit=True)
    m = ItemKNN(n_neighbors=10).fit(ds)
    exp = m.explain("u0", 130)
    assert exp.kind == "items"
    assert exp.score == pytest.approx(float(m.score(["u0"])[0, ds.items.codes([130])[0]]), 1e-5)
    assert sum(w for _, w in exp.contributions) == pytest.approx(exp.score, rel=1e-5)
    weights = [abs(w) for _, w in exp.contributions]
    assert weights == sorted(weights, reverse=True)


def test_similar_items_are_nearest_neighbours() -> None:
    ds = toy_dataset(explicit=False)
    m = ItemKNN(n_neighbors=5).fit(ds)
    sim = m.similar_items([105], k=3)
    code = ds.items.codes([105])[0]
    row = m.similarity_[[code]]
    assert sim.items[0].tolist() == ds.items.ids_of(row.indices[:3]).tolist()


def test_parameter_errors() -> None:
    with pytest.raises(ConfigError, match="'similarity' parameter of ItemKNN"):
        ItemKNN(similarity="euclid")
    with pytest.raises(ConfigError, match="'n_neighbors' parameter of UserKNN"):
        UserKNN(n_neighbors=0)
    with pytest.raises(ConfigError, match="'min_k'"):
        ItemKNN(min_k=5, max_k=2).fit(toy_dataset())


def test_set_state_rejects_bad_shapes() -> None:
    ds = toy_dataset()
    m = ItemKNN(n_neighbors=5).fit(ds)
    state = m._get_state()
    state["similarity_indptr"] = state["similarity_indptr"][:-1]
    fresh = ItemKNN(n_neighbors=5).fit(ds)
    with pytest.raises(ModelFormatError, match="similarity_indptr"):
        fresh._set_state(state, m._get_meta())
    state = m._get_state()
    state["base_other"] = state["base_other"][:3]
    with pytest.raises(ModelFormatError, match="base_other"):
        fresh._set_state(state, m._get_meta())


def test_large_catalog_stays_sparse() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, nnz = 2000, 20000, 60000
    frame = pd.DataFrame(
        {"user": rng.integers(0, n_users, nnz), "item": rng.integers(0, n_items, nnz)}
    )
    ds = Dataset.from_frame(frame.drop_duplicates())
    m = ItemKNN(n_neighbors=10).fit(ds)
    assert m.similarity_.nnz <= ds.n_items * 10
    assert m.recommend([int(ds.users.ids[0])], k=5).lengths[0] == 5
