"""SVD and SVD++: contract, accuracy on synthetic low-rank ratings, determinism, fold-in."""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.exceptions import ConfigError, ModelFormatError
from recforge.models import Recommender, model_class
from recforge.models.bias import BiasedBaseline
from recforge.models.mf import SVD, SVDpp
from recforge.testing import RecommenderContract


class TestSVD(RecommenderContract):
    model = SVD
    configs = [{"factors": 8, "epochs": 5, "rng": 1}]


class TestSVDpp(RecommenderContract):
    model = SVDpp
    configs = [{"factors": 6, "epochs": 4, "rng": 1}]


def _low_rank(seed: int = 0) -> tuple[Dataset, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n_users, n_items, rank = 200, 120, 3
    pu = rng.normal(0, 0.8, (n_users, rank))
    qi = rng.normal(0, 0.8, (n_items, rank))
    bu = rng.normal(0, 0.3, n_users)
    bi = rng.normal(0, 0.3, n_items)
    full = 3.0 + bu[:, None] + bi[None, :] + pu @ qi.T
    u, i = np.nonzero(rng.random((n_users, n_items)) < 0.3)
    r = full[u, i] + rng.normal(0, 0.1, u.size)
    frame = pd.DataFrame({"user": u, "item": i, "r": r})
    test = rng.random(len(frame)) < 0.2
    train = frame[~test]
    return Dataset.from_frame(train, value="r"), frame[test & frame.user.isin(train.user)]


def _rmse(model: Recommender, test: pd.DataFrame) -> float:
    est = model.predict(test.user.to_numpy(), test.item.to_numpy())
    return float(np.sqrt(np.mean((est - test.r.to_numpy()) ** 2)))


def test_registered() -> None:
    assert model_class("svd") is SVD
    assert model_class("svdpp") is SVDpp


def test_svd_beats_baseline_on_low_rank_ratings() -> None:
    train, test = _low_rank()
    base = _rmse(BiasedBaseline(reg_user=1.0, reg_item=1.0).fit(train), test)
    svd = SVD(factors=6, epochs=60, learning_rate=0.02, reg=0.02, clip=False, rng=0).fit(train)
    rmse = _rmse(svd, test)
    assert rmse < 0.8 * base, (rmse, base)
    assert svd.train_rmse_[-1] < svd.train_rmse_[0]


def test_svdpp_beats_baseline_on_low_rank_ratings() -> None:
    train, test = _low_rank(1)
    base = _rmse(BiasedBaseline(reg_user=1.0, reg_item=1.0).fit(train), test)
    m = SVDpp(factors=6, epochs=60, learning_rate=0.02, clip=False, rng=0).fit(train)
    assert _rmse(m, test) < 0.8 * base


@pytest.mark.parametrize("cls", [SVD, SVDpp])
def test_deterministic_whatever_the_thread_count(cls: type[Recommender]) -> None:
    train, _ = _low_rank(2)
    a = cls(factors=4, epochs=3, rng=5).fit(train)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = cls(factors=4, epochs=3, rng=5).fit(train)
    finally:
        numba.set_num_threads(before)
    assert before > 1  # the suite runs numba on two threads (tests/conftest.py)
    np.testing.assert_array_equal(a.score([0, 1, 2]), b.score([0, 1, 2]))
    c = cls(factors=4, epochs=3, rng=6).fit(train)
    assert not np.array_equal(a.score([0]), c.score([0]))


def test_predict_unknown_drops_terms_and_clips() -> None:
    train, _ = _low_rank(3)
    m = SVD(factors=4, epochs=3, rng=0).fit(train)
    mu = m.global_mean_
    est = m.predict([0, 10_000, 10_000, 0], [5, 5, 10_000, 10_000])
    i5 = train.items.codes([5])[0]
    u0 = train.users.codes([0])[0]
    assert est[1] == pytest.approx(mu + m.item_bias_[i5], rel=1e-6)
    assert est[2] == pytest.approx(mu)
    assert est[3] == pytest.approx(mu + m.user_bias_[u0], rel=1e-6)
    lo, hi = m.rating_range_
    assert np.all((est >= lo) & (est <= hi))
    direct = mu + m.user_bias_[u0] + m.item_bias_[i5] + m.user_factors_[u0] @ m.item_factors_[i5]
    assert est[0] == pytest.approx(np.clip(direct, lo, hi), rel=1e-5)
    np.testing.assert_allclose(m.score([0])[0, i5], direct, rtol=1e-5)


def test_fold_in_of_training_history_is_close_to_fit() -> None:
    train, _ = _low_rank(4)
    m = SVD(factors=4, epochs=40, learning_rate=0.02, clip=False, rng=0).fit(train)
    frame = train.to_frame()
    mine = frame[frame["user"] == 3]
    recs = m.recommend_for_history(mine["item"].tolist(), mine["value"].tolist(), k=5)
    fitted = m.recommend([3], k=20)
    # the fold-in ignores the user bias, which does not change the ranking
    assert len(set(recs.items[0]) & set(fitted.items[0])) >= 3


def test_svdpp_history_uses_implicit_factors_and_the_ratings() -> None:
    train, _ = _low_rank(5)
    m = SVDpp(factors=4, epochs=5, rng=0).fit(train)
    code = m.items_.codes([7, 8])
    ratings = np.array([5.0, 1.0], np.float32)
    z = m.implicit_factors_[code].astype(np.float64).sum(0) / np.sqrt(2)
    q = m.item_factors_[code].astype(np.float64)
    resid = ratings - m.global_mean_ - m.item_bias_[code] - q @ z
    p = np.linalg.solve(q.T @ q + m.reg * 2 * np.eye(4), q.T @ resid)
    expected = m.global_mean_ + m.item_bias_ + m.item_factors_ @ (z + p)
    np.testing.assert_allclose(m.score_history(code, ratings), expected, rtol=1e-4, atol=1e-5)
    # the ratings are not ignored: liking 7 and disliking 8 is not the reverse
    flipped = m.score_history(code, ratings[::-1].copy())
    assert not np.allclose(flipped, m.score_history(code, ratings))


def test_svdpp_fold_in_of_training_history_is_close_to_fit() -> None:
    train, _ = _low_rank(4)
    m = SVDpp(factors=4, epochs=30, learning_rate=0.02, clip=False, rng=0).fit(train)
    frame = train.to_frame()
    mine = frame[frame["user"] == 3]
    recs = m.recommend_for_history(mine["item"].tolist(), mine["value"].tolist(), k=5)
    fitted = m.recommend([3], k=20)
    assert len(set(recs.items[0]) & set(fitted.items[0])) >= 3


def test_params_validated() -> None:
    with pytest.raises(ConfigError, match="'factors' parameter of SVD"):
        SVD(factors=0)
    with pytest.raises(ConfigError, match="learning_rate"):
        SVDpp(learning_rate=0.0)


def test_load_rejects_wrong_shapes(tmp_path: Path) -> None:
    train, _ = _low_rank(6)
    m = SVD(factors=4, epochs=1, rng=0).fit(train)
    m.save(tmp_path / "m")
    arrays = dict(np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False))
    key = next(k for k in arrays if k.endswith("item_factors"))
    arrays[key] = arrays[key][:, :3]
    np.savez(tmp_path / "m" / "arrays.npz", **arrays)
    with pytest.raises(ModelFormatError, match="item_factors"):
        Recommender.load(tmp_path / "m")


def test_callback_stops_early() -> None:
    train, _ = _low_rank(7)
    seen: list[int] = []

    def cb(epoch: int, model: SVD) -> bool:
        seen.append(epoch)
        assert model.score([0]).shape[1] == len(train.items)
        return epoch == 2

    m = SVD(factors=3, epochs=10, rng=0).fit(train, callback=cb)
    assert seen == [0, 1, 2]
    assert len(m.train_rmse_) == 3


def test_svd_kernel_reproduces_surprise_svd() -> None:
    """Same initial factors and rating order as Surprise's SVD give the same model."""
    surprise = pytest.importorskip("surprise")
    from recforge._kernels.sgd import svd_epoch

    train, _ = _low_rank(8)
    frame = train.to_frame()[["user", "item", "value"]]
    trainset = surprise.Dataset.load_from_df(
        frame, surprise.Reader(rating_scale=(0, 10))
    ).build_full_trainset()
    algo = surprise.SVD(n_factors=5, n_epochs=3, random_state=0).fit(trainset)
    rs = np.random.RandomState(0)
    P = rs.normal(0, 0.1, (trainset.n_users, 5)).astype(np.float32)
    Q = rs.normal(0, 0.1, (trainset.n_items, 5)).astype(np.float32)
    bu = np.zeros(trainset.n_users, np.float32)
    bi = np.zeros(trainset.n_items, np.float32)
    triples = np.array(list(trainset.all_ratings()))
    u, i = triples[:, 0].astype(np.int32), triples[:, 1].astype(np.int32)
    r = triples[:, 2].astype(np.float32)
    order = np.arange(u.size, dtype=np.int64)
    for _ in range(3):
        rates = (0.005,) * 4 + (0.02,) * 4
        svd_epoch((u, i, r), order, trainset.global_mean, (bu, bi, P, Q), rates)
    np.testing.assert_allclose(P, algo.pu, atol=1e-5)
    np.testing.assert_allclose(Q, algo.qi, atol=1e-5)
    np.testing.assert_allclose(bu, algo.bu, atol=1e-5)
    np.testing.assert_allclose(bi, algo.bi, atol=1e-5)


def test_svdpp_kernel_reproduces_surprise_svdpp() -> None:
    """The O(f)-per-rating SVD++ epoch equals Surprise's O(|N(u)| f) per-rating updates."""
    surprise = pytest.importorskip("surprise")
    from recforge._kernels.sgd import svdpp_epoch

    train, _ = _low_rank(9)
    frame = train.to_frame()[["user", "item", "value"]].iloc[:1500]
    trainset = surprise.Dataset.load_from_df(
        frame, surprise.Reader(rating_scale=(0, 10))
    ).build_full_trainset()
    algo = surprise.SVDpp(n_factors=4, n_epochs=2, random_state=0).fit(trainset)
    rs = np.random.RandomState(0)
    f = 4
    P = rs.normal(0, 0.1, (trainset.n_users, f)).astype(np.float32)
    Q = rs.normal(0, 0.1, (trainset.n_items, f)).astype(np.float32)
    Y = rs.normal(0, 0.1, (trainset.n_items, f)).astype(np.float32)
    bu = np.zeros(trainset.n_users, np.float32)
    bi = np.zeros(trainset.n_items, np.float32)
    rows = [trainset.ur[u] for u in range(trainset.n_users)]
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    indices = np.array([j for r in rows for j, _ in r], dtype=np.int32)
    values = np.array([v for r in rows for _, v in r], dtype=np.float32)
    order = np.arange(trainset.n_users, dtype=np.int64)
    for _ in range(2):
        svdpp_epoch(
            order, (indptr, indices, values), trainset.global_mean, (bu, bi, P, Q, Y),
            (0.007, 0.007, 0.007, 0.02, 0.02, 0.02),
        )  # fmt: skip
    np.testing.assert_allclose(bu, algo.bu, atol=1e-4)
    np.testing.assert_allclose(P, algo.pu, atol=1e-4)
    np.testing.assert_allclose(Q, algo.qi, atol=1e-4)
    np.testing.assert_allclose(Y, algo.yj, atol=1e-4)


@pytest.mark.parametrize("cls", [SVD, SVDpp])
def test_explanation_parts_add_up_to_the_score(cls) -> None:  # type: ignore[no-untyped-def]
    train, _ = _low_rank(6)
    m = cls(factors=4, epochs=3, rng=0).fit(train)
    user = m.users_.ids[2]
    item = m.recommend([user], k=1).items[0, 0]
    e = m.explain(user, item)
    assert e.kind == "features"
    assert [c for c, _ in e.contributions][:3] == ["global mean", "user bias", "item bias"]
    assert sum(w for _, w in e.contributions) == pytest.approx(e.score, rel=1e-5)
    assert e.score == pytest.approx(float(m.score([user])[0, m.items_.codes([item])[0]]))
