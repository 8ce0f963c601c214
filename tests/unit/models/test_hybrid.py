"""HybridMF (kernel vs reference, contract, cold items, explanations) and Blend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_content import GENRES, toy_with_attributes

from recforge._kernels.hybrid import LOSS_BPR, LOSS_WARP, hybrid_epoch_reference, run_epoch
from recforge.data import Dataset
from recforge.exceptions import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.models.hybrid import Blend, HybridMF, _ndcg_at_k, _normalise
from recforge.testing import RecommenderContract, toy_dataset

HYBRID = {"factors": 8, "epochs": 10, "n_threads": 1, "learning_rate": 0.1}
SIDE = {"kind": "categories", "column": "side", "sep": None}


class TestHybridMF(RecommenderContract):
    model = HybridMF
    configs = [
        {**HYBRID, "features": GENRES},
        {**HYBRID, "features": GENRES, "loss": "bpr", "positive_threshold": 3.5},
        {**HYBRID, "features": []},
        {**HYBRID, "features": GENRES, "user_features": [SIDE]},
    ]
    atol = 1e-4
    invalid_params = {
        "features": [{"kind": "no-such-kind"}],
        "user_features": [{"kind": "categories", "column": "occupation", "bogus": 1}],
    }

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> Dataset:
        ds = toy_with_attributes()
        users = ds.users.ids.tolist()
        side = pd.DataFrame({"side": [f"s{int(u[1:]) % 2}" for u in users]}, index=users)
        return Dataset.from_frame(
            ds.to_frame(),
            value="value",
            time="time",
            item_attributes=ds.item_attributes,
            user_attributes=side,
        )


class TestHybridMFWithoutAttributes(RecommenderContract):
    """Degrades to plain WARP matrix factorisation on data without attributes."""

    model = HybridMF
    configs = [HYBRID]
    atol = 1e-4
    invalid_params = {"features": "genres", "user_features": [5]}


class TestBlend(RecommenderContract):
    model = Blend
    invalid_params = {
        "members": [{"model": "popular", "params": {"half_life_days": -1.0}}],
        "weights": [1.0, float("nan")],
    }
    invalid_combinations = [{"weights": [1.0, 2.0, 3.0]}, {"fallback": 2}]
    configs = [
        {
            "members": [
                {"model": "popular", "params": {}},
                {"model": "content", "params": {"features": GENRES}},
            ],
            "min_user_interactions": 5,
            "fallback": 0,
            "cold_item_member": 1,
        },
        {
            "members": [
                {"model": "bias", "params": {}},
                {"model": "hybridmf", "params": {**HYBRID, "features": GENRES}},
            ],
            "weights": [0.2, 0.8],
            "normalization": "zscore",
        },
    ]
    atol = 1e-4

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> Dataset:
        return toy_with_attributes()


# ---------------------------------------------------------------------------- kernel
def _kernel_inputs(seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    n_users, n_items, n_feat, n_ufeat, d = 6, 9, 12, 8, 4
    f = sp.random(n_items, n_feat, density=0.3, random_state=seed, dtype=np.float32, format="csr")
    f = sp.csr_array(f + sp.eye(n_items, n_feat, dtype=np.float32, format="csr"))
    f.sort_indices()
    g = sp.random(n_users, n_ufeat, density=0.3, random_state=seed + 2, dtype=np.float32)
    g = sp.csr_array(g + sp.eye(n_users, n_ufeat, dtype=np.float32), dtype=np.float32)
    g.sort_indices()
    seen = sp.csr_array(sp.random(n_users, n_items, density=0.4, random_state=seed + 1) > 0)
    seen = sp.csr_array(seen, dtype=np.float32)
    seen.sort_indices()
    users, items = (a.astype(np.int32) for a in seen.nonzero())
    return {
        "users": users,
        "items": items,
        "negatives": rng.integers(0, n_items, (users.size, 5)).astype(np.int32),
        "order": rng.permutation(users.size).astype(np.int64),
        "g": (g.indptr.astype(np.int64), g.indices.astype(np.int32), g.data.astype(np.float32)),
        "user_emb": rng.normal(0, 0.3, (n_ufeat, d)).astype(np.float32),
        "user_acc": np.ones((n_ufeat, d), np.float32),
        "f": (f.indptr.astype(np.int64), f.indices.astype(np.int32), f.data.astype(np.float32)),
        "feat_emb": rng.normal(0, 0.3, (n_feat, d)).astype(np.float32),
        "feat_acc": np.ones((n_feat, d), np.float32),
        "feat_bias": rng.normal(0, 0.1, n_feat).astype(np.float32),
        "bias_acc": np.ones(n_feat, np.float32),
        "seen": (seen.indptr.astype(np.int64), seen.indices.astype(np.int32)),
    }


@pytest.mark.parametrize("loss", [LOSS_BPR, LOSS_WARP])
@pytest.mark.parametrize("update_items", [True, False])
def test_kernel_matches_reference(loss: int, update_items: bool) -> None:
    a = _kernel_inputs(3)
    b = {
        k: (tuple(x.copy() for x in v) if isinstance(v, tuple) else v.copy()) for k, v in a.items()
    }  # type: ignore[union-attr]
    la = run_epoch(
        **a, lr=0.1, reg=0.01, loss=loss, n_catalog=9, update_items=update_items, n_chunks=1
    )  # type: ignore[arg-type]
    lb = hybrid_epoch_reference(
        **b, lr=0.1, reg=0.01, loss=loss, n_catalog=9, update_items=update_items
    )  # type: ignore[arg-type]
    assert la == pytest.approx(lb, rel=1e-4)
    for key in ("user_emb", "feat_emb", "feat_bias", "user_acc"):
        np.testing.assert_allclose(a[key], b[key], atol=2e-5, err_msg=key)  # type: ignore[arg-type]
    if not update_items:
        np.testing.assert_array_equal(a["feat_emb"], _kernel_inputs(3)["feat_emb"])  # type: ignore[arg-type]


def test_kernel_rejects_bad_dtype() -> None:
    a = _kernel_inputs(0)
    a["user_emb"] = np.asarray(a["user_emb"], dtype=np.float64)
    with pytest.raises(ValueError, match="user_emb must be a C-contiguous 2-D float32"):
        run_epoch(**a, lr=0.1, reg=0.0, loss=LOSS_BPR, n_catalog=9)  # type: ignore[arg-type]
    b = _kernel_inputs(0)
    b["g"] = (b["g"][0], b["g"][1] + 50, b["g"][2])  # type: ignore[index]
    with pytest.raises(ValueError, match="user feature indices out of range"):
        run_epoch(**b, lr=0.1, reg=0.0, loss=LOSS_BPR, n_catalog=9)  # type: ignore[arg-type]


def test_kernel_parallel_chunks_train() -> None:
    a = _kernel_inputs(5)
    before = np.array(a["user_emb"], copy=True)
    run_epoch(**a, lr=0.1, reg=0.0, loss=LOSS_WARP, n_catalog=9, n_chunks=3)  # type: ignore[arg-type]
    assert not np.allclose(before, a["user_emb"])
    assert np.all(np.isfinite(a["feat_emb"]))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- HybridMF
def _cold_dataset() -> tuple[Dataset, list[int]]:
    """Toy data whose items 118, 119, 138, 139 have attributes but no interactions."""
    ds = toy_with_attributes(explicit=False)
    frame = ds.to_frame()
    cold = [118, 119, 138, 139]
    frame = frame[~frame["item"].isin(cold)]
    return Dataset.from_frame(frame, time="time", item_attributes=ds.item_attributes), cold


def test_loss_decreases_and_learns_clusters() -> None:
    ds = toy_with_attributes(explicit=False)
    m = HybridMF(
        factors=8, epochs=30, features=GENRES, n_threads=1, loss="bpr", learning_rate=0.3
    ).fit(ds)
    assert m.loss_history_[-1] < m.loss_history_[0]
    recs = m.recommend(["u0", "u1"], k=5)
    assert all(100 <= i < 120 for i in recs.items[0].tolist())
    assert all(120 <= i < 140 for i in recs.items[1].tolist())


def test_cold_items_scored_from_features() -> None:
    ds, cold = _cold_dataset()
    m = HybridMF(factors=8, epochs=20, features=GENRES, n_threads=1).fit(ds)
    codes = ds.items.codes(cold)
    # cold items have no identity column: their rows hold only attribute features
    names = m.feature_names()
    for c in codes:
        row = m.item_feature_matrix_[[int(c)]]
        assert all(names[f] != "item identity" for f in row.indices)
        assert row.data.sum() == pytest.approx(1.0)
    s = m.score(["u0", "u1"])
    a_cold, b_cold = codes[:2], codes[2:]
    assert s[0, a_cold].mean() > s[0, b_cold].mean()
    assert s[1, b_cold].mean() > s[1, a_cold].mean()


def test_add_items_hybrid(tmp_path: Path) -> None:
    ds = toy_with_attributes(explicit=False)
    m = HybridMF(factors=8, epochs=15, features=GENRES, n_threads=1).fit(ds)
    before = m.item_repr_.copy()
    m.add_items(pd.DataFrame({"genres": ["A|G1", "B|G5"]}, index=[700, 701]))
    assert len(m.items_) == ds.n_items + 2
    np.testing.assert_allclose(m.item_repr_[: ds.n_items], before, atol=1e-6)
    s = m.score(["u0"])[0]
    a_code, b_code = m.items_.codes([700, 701])
    assert s[a_code] > s[b_code]
    m.save(tmp_path / "h")
    loaded = Recommender.load(tmp_path / "h")
    np.testing.assert_allclose(loaded.score(["u0"]), m.score(["u0"]), atol=1e-5)
    with pytest.raises(DataError, match="without item features"):
        HybridMF(factors=4, epochs=1, features=[], n_threads=1).fit(ds).add_items(
            pd.DataFrame({"genres": ["A"]}, index=[1])
        )


def test_explain_sums_to_score_and_names_features() -> None:
    ds = toy_with_attributes(explicit=False)
    m = HybridMF(factors=8, epochs=10, features=GENRES, n_threads=1).fit(ds)
    m.explain_top = 100
    ex = m.explain("u0", 105)
    code = int(ds.items.codes([105])[0])
    assert ex.score == pytest.approx(float(m.score(["u0"])[0, code]), abs=1e-5)
    assert sum(w for _, w in ex.contributions) == pytest.approx(ex.score, abs=1e-5)
    names = {n for n, _ in ex.contributions}
    assert names == {"item identity", "genres=A", "genres=G1"}


def test_history_fold_in_follows_cluster() -> None:
    ds = toy_with_attributes(explicit=False)
    m = HybridMF(factors=8, epochs=15, features=GENRES, n_threads=1).fit(ds)
    recs = m.recommend_for_history([100, 101, 102, 105, 110], k=5)
    assert sum(100 <= i < 120 for i in recs.items[0].tolist()) >= 4
    again = m.recommend_for_history([100, 101, 102, 105, 110], k=5)
    np.testing.assert_array_equal(recs.items, again.items)


def _with_user_attributes() -> tuple[Dataset, list[str]]:
    """Toy data plus a user attribute ``side`` (the taste cluster) and two users without
    interactions, one per cluster."""
    ds = toy_with_attributes(explicit=False)
    users = ds.users.ids.tolist()
    new = ["new_even", "new_odd"]
    side = ["even" if int(u[1:]) % 2 == 0 else "odd" for u in users] + ["even", "odd"]
    uattrs = pd.DataFrame({"side": side}, index=users + new)
    out = Dataset.from_frame(
        ds.to_frame(), time="time", item_attributes=ds.item_attributes, user_attributes=uattrs
    )
    return out, new


def test_user_features_represent_users_without_interactions(tmp_path: Path) -> None:
    ds, new = _with_user_attributes()
    ufeats = [{"kind": "categories", "column": "side", "sep": None}]
    m = HybridMF(
        factors=8,
        epochs=20,
        features=GENRES,
        user_features=ufeats,
        n_threads=1,
        loss="bpr",
        learning_rate=0.2,
    ).fit(ds)
    assert m.user_feature_matrix_.shape == (ds.n_users, m.n_user_identity_ + 2)
    even = m.recommend([new[0]], k=5).items[0].tolist()
    odd = m.recommend([new[1]], k=5).items[0].tolist()
    assert sum(100 <= i < 120 for i in even) >= 4
    assert sum(120 <= i < 140 for i in odd) >= 4
    m.save(tmp_path / "u")
    loaded = Recommender.load(tmp_path / "u")
    np.testing.assert_allclose(loaded.score(new), m.score(new), atol=1e-5)
    # without user features those users have an empty representation: item biases only
    plain = HybridMF(factors=8, epochs=5, features=GENRES, n_threads=1).fit(ds)
    s = plain.score(new)
    np.testing.assert_allclose(s[0], s[1])
    with pytest.raises(DataError, match="no user attributes"):
        HybridMF(epochs=1, user_features=ufeats).fit(toy_dataset())


def test_hybrid_errors() -> None:
    with pytest.raises(ConfigError, match="'loss' parameter of HybridMF"):
        HybridMF(loss="hinge")
    with pytest.raises(DataError, match="has no item attributes but HybridMF was given"):
        HybridMF(features=GENRES, epochs=1).fit(toy_dataset())


# ---------------------------------------------------------------------------- Blend
def test_normalise_reference() -> None:
    s = np.array([[1.0, 3.0, -np.inf, 2.0], [5.0, 5.0, 5.0, 5.0]], dtype=np.float32)
    mm = _normalise(s, "minmax")
    np.testing.assert_allclose(mm, [[0.0, 1.0, 0.0, 0.5], [0, 0, 0, 0]])
    z = _normalise(s, "zscore")
    np.testing.assert_allclose(z[0, [0, 1, 3]], [-np.sqrt(1.5), np.sqrt(1.5), 0.0], rtol=1e-5)


def test_ndcg_reference() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.7]])
    truth = sp.csr_array(np.array([[0, 1, 0, 1]], dtype=np.float32))
    dcg = 1 / np.log2(3) + 1 / np.log2(4)
    idcg = 1 + 1 / np.log2(3)
    assert _ndcg_at_k(scores, truth, 3) == pytest.approx(dcg / idcg)


def test_blend_learns_weight_of_useful_member() -> None:
    ds = toy_with_attributes()
    b = Blend(
        members=[
            {"model": "random", "params": {"rng": 1}},
            {"model": "content", "params": {"features": GENRES}},
        ]
    ).fit(ds)
    assert b.weights_[1] > b.weights_[0]
    assert b.validation_ndcg_ is not None
    assert b.weights_.sum() == pytest.approx(1.0)


def test_blend_switching_rules() -> None:
    ds, cold = _cold_dataset()
    members = [
        {"model": "popular", "params": {}},
        {"model": "content", "params": {"features": GENRES}},
    ]
    b = Blend(members=members, weights=[1.0, 0.0], min_user_interactions=1000, fallback=1).fit(ds)
    content = b.members_[1]
    # every user is "short": scores equal the normalised content scores
    np.testing.assert_allclose(
        b.score(["u0"]), _normalise(content.score(["u0"]), "minmax"), atol=1e-6
    )
    c = Blend(members=members, weights=[0.5, 0.5], cold_item_member=1).fit(ds)
    codes = ds.items.codes(cold)
    pop_norm = _normalise(c.members_[0].score(["u0"]), "minmax")
    expected = 0.5 * _normalise(content.score(["u0"]), "minmax")[0, codes] + 0.5 * pop_norm.mean()
    np.testing.assert_allclose(c.score(["u0"])[0, codes], expected, atol=1e-5)
    # popularity alone ranks cold items last; with the rule, A-cold items reach u0's list
    recs = c.recommend(["u0"], k=20).items[0].tolist()
    assert {118, 119} <= set(recs)
    assert not {138, 139} & set(recs)
    plain = Blend(members=members, weights=[0.5, 0.5]).fit(ds)
    assert not {118, 119} & set(plain.recommend(["u0"], k=20).items[0].tolist())
    # a zero weight for the cold member still lets content order the cold items
    z = Blend(members=members, weights=[1.0, 0.0], cold_item_member=1).fit(ds)
    s_z = z.score(["u0"])[0, codes]
    assert s_z[:2].min() > s_z[2:].max()


def test_blend_config_errors() -> None:
    with pytest.raises(ConfigError, match="non-empty list"):
        Blend(members=[])
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        Blend(members=[{"model": "nope"}])
    with pytest.raises(ConfigError, match="one weight per member"):
        Blend(members=[{"model": "popular"}], weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="'fallback' parameter of Blend must index"):
        Blend(members=[{"model": "popular"}], fallback=3)
    with pytest.raises(ConfigError, match="'factors' parameter of HybridMF"):
        Blend(members=[{"model": "hybridmf", "params": {"factors": 0}}])


def test_default_fit_is_reproducible_whatever_the_thread_count() -> None:
    import numba

    ds = toy_with_attributes()
    a = HybridMF(factors=8, epochs=4, features=GENRES).fit(ds)  # n_threads=None
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = HybridMF(factors=8, epochs=4, features=GENRES).fit(ds)
    finally:
        numba.set_num_threads(before)
    assert before > 1  # the suite runs numba on two threads (tests/conftest.py)
    np.testing.assert_array_equal(a.feat_emb_, b.feat_emb_)
    np.testing.assert_array_equal(a.user_feat_emb_, b.user_feat_emb_)


def test_user_attributes_score_a_user_outside_the_training_data() -> None:
    ds, new = _with_user_attributes()
    m = HybridMF(
        factors=8,
        epochs=20,
        features=GENRES,
        user_features=[SIDE],
        n_threads=1,
        loss="bpr",
        learning_rate=0.2,
    ).fit(ds)
    assert m.user_attribute_columns() == ["side"]
    frame = pd.DataFrame({"side": ["even", "odd"]}, index=["visitor_a", "visitor_b"])
    # a user known only by attributes is represented exactly like a training user who has
    # those attributes and no interactions
    np.testing.assert_allclose(m.score_user_attributes(frame), m.score(new), atol=1e-5)
    recs = m.recommend_for_user_attributes(frame, k=5)
    assert recs.users.tolist() == ["visitor_a", "visitor_b"]
    assert sum(100 <= i < 120 for i in recs.items[0].tolist()) >= 4
    assert sum(120 <= i < 140 for i in recs.items[1].tolist()) >= 4
    one = m.recommend_for_user_attributes({"side": "odd"}, k=5, exclude=[recs.items[1][0]])
    assert one.items[0].tolist() == [*recs.items[1][1:].tolist(), one.items[0][-1]]
    with pytest.raises(DataError, match="missing column 'side'"):
        m.score_user_attributes(pd.DataFrame({"age": [3]}))
    plain = HybridMF(factors=4, epochs=1, features=GENRES, n_threads=1).fit(ds)
    with pytest.raises(DataError, match="without user_features"):
        plain.recommend_for_user_attributes({"side": "odd"})
