"""TwoTower: contract, loss against a direct formula, learning, cold items and users, fold-in."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from test_content import GENRES  # noqa: E402

from recforge.data import Dataset  # noqa: E402
from recforge.exceptions import ConfigError, DataError  # noqa: E402
from recforge.models import Recommender, model_class  # noqa: E402
from recforge.models._twotower_net import in_batch_softmax_loss  # noqa: E402
from recforge.models.twotower import TwoTower  # noqa: E402
from recforge.testing import RecommenderContract, toy_dataset  # noqa: E402

SMALL = {"embedding_size": 8, "epochs": 3, "batch_size": 64, "threads": 1, "rng": 0}
USER_FEATURES = [{"kind": "categories", "column": "side", "sep": None}]
LEARN = {
    **SMALL,
    "embedding_size": 16,
    "epochs": 20,
    "learning_rate": 0.01,
    "early_stopping": False,
}


class TestTwoTower(RecommenderContract):
    model = TwoTower
    configs = [
        {**SMALL, "features": GENRES, "user_features": USER_FEATURES},
        {**SMALL, "features": GENRES, "hidden": 8, "normalize": False, "temperature": 1.0},
        {**SMALL, "features": [], "early_stopping": False, "logq_correction": False},
    ]
    atol = 1e-4
    invalid_params = {
        "features": [{"kind": "no-such-kind"}],
        "user_features": [{"kind": "categories", "column": "side", "bogus": 1}],
    }

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> Dataset:
        return _clustered(n_users=60, side=True)


class TestTwoTowerWithoutAttributes(RecommenderContract):
    """Identities only on data without attributes (explicit ratings: presence counts)."""

    model = TwoTower
    configs = [{**SMALL, "positive_threshold": 3.0}]
    atol = 1e-4
    invalid_params = {"features": "genres", "user_features": [5]}

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> Dataset:
        return toy_dataset(explicit=True)


def test_registered() -> None:
    assert model_class("twotower") is TwoTower


def test_loss_matches_the_direct_formula() -> None:
    gen = np.random.default_rng(0)
    q = gen.normal(size=(4, 3))
    k = gen.normal(size=(4, 3))
    log_p = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 2] = mask[2, 0] = True  # e.g. the same user in rows 0 and 2
    tau = 0.5
    expected = []
    for r in range(4):
        logits = [q[r] @ k[c] / tau - log_p[c] for c in range(4) if not mask[r, c]]
        own = q[r] @ k[r] / tau - log_p[r]
        expected.append(-(own - math.log(sum(math.exp(v) for v in logits))))
    got = in_batch_softmax_loss(
        torch.tensor(q, dtype=torch.float64),
        torch.tensor(k, dtype=torch.float64),
        torch.tensor(log_p, dtype=torch.float64),
        torch.tensor(mask),
        tau,
    )
    assert got.item() == pytest.approx(float(np.mean(expected)), rel=1e-9)


def _clustered(n_users: int = 240, cold: tuple[int, ...] = (), side: bool = False) -> Dataset:
    """The toy clusters with more users (in-batch negatives need some data), genres ``A``
    (items 100..119, liked by even users) or ``B`` plus a group genre, optionally items
    ``cold`` without interactions and a user attribute ``side`` (the cluster) with two
    users ``new_even`` and ``new_odd`` that have no interactions."""
    base = toy_dataset(n_users=n_users, explicit=False)
    ids = base.items.ids
    genres = [("A" if i < 120 else "B") + f"|G{(i - 100) // 5}" for i in ids.tolist()]
    frame = base.to_frame()
    frame = frame[~frame["item"].isin(cold)]
    users = None
    if side:
        names = [*base.users.ids.tolist(), "new_even", "new_odd"]
        sides = ["even" if int(u[1:]) % 2 == 0 else "odd" for u in names[:-2]] + ["even", "odd"]
        users = pd.DataFrame({"side": sides}, index=names)
    return Dataset.from_frame(
        frame,
        time="time",
        item_attributes=pd.DataFrame({"genres": genres}, index=ids),
        user_attributes=users,
        name="clusters",
    )


@pytest.fixture(scope="module")
def data() -> Dataset:
    return _clustered()


@pytest.fixture(scope="module")
def learned(data: Dataset) -> TwoTower:
    return TwoTower(**LEARN, features=GENRES).fit(data)


def test_training_learns_the_clusters(learned: TwoTower) -> None:
    assert learned.loss_[-1] < learned.loss_[0]
    users = [f"u{j}" for j in range(20)]
    recs = learned.recommend(users, k=5).items
    in_cluster = np.where(np.arange(20)[:, None] % 2 == 0, recs < 120, recs >= 120)
    assert in_cluster.mean() >= 0.8
    # fold-in: a history of first-half items recommends first-half items
    hist = learned.recommend_for_history([100, 101, 102, 103, 104], k=5)
    assert (hist.items[0] < 120).mean() >= 0.8


def test_fold_in_is_the_user_tower(learned: TwoTower, data: Dataset) -> None:
    """A training user's own history, folded in, gives that user's scores exactly."""
    for user in (0, 5, 11):
        codes, _ = learned.user_history(user)
        np.testing.assert_allclose(
            learned.score_history(codes), learned.score_users(np.array([user]))[0], atol=1e-5
        )
    # values and order do not matter: the mean of the items' user-side embeddings
    codes, _ = learned.user_history(3)
    np.testing.assert_allclose(
        learned.score_history(codes[::-1], np.full(codes.size, 5.0)),
        learned.score_history(codes),
        atol=1e-6,
    )


def test_two_fits_with_one_thread_are_identical(data: Dataset) -> None:
    a = TwoTower(**SMALL, features=GENRES).fit(data)
    b = TwoTower(**SMALL, features=GENRES).fit(data)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    assert a.loss_ == b.loss_
    c = TwoTower(**{**SMALL, "rng": 1}, features=GENRES).fit(data)
    assert not np.array_equal(a.item_factors_, c.item_factors_)


def test_cold_items_are_scored_from_attributes() -> None:
    cold = [118, 119, 138, 139]
    ds = _clustered(cold=tuple(cold))
    m = TwoTower(**LEARN, features=GENRES).fit(ds)
    codes = ds.items.codes(cold)
    assert not m.item_identity_[codes].any()
    assert m.item_identity_.sum() == ds.n_items - len(cold)
    s = m.score(["u0", "u1"])
    a_cold, b_cold = codes[:2], codes[2:]
    assert s[0, a_cold].mean() > s[0, b_cold].mean()
    assert s[1, b_cold].mean() > s[1, a_cold].mean()


def test_add_items_from_attributes(learned: TwoTower, data: Dataset, tmp_path: Path) -> None:
    m = TwoTower(**LEARN, features=GENRES).fit(data)
    before = m.item_factors_.copy()
    m.add_items(pd.DataFrame({"genres": ["A|G1", "B|G5"]}, index=[700, 701]))
    assert m.n_items == data.n_items + 2
    np.testing.assert_allclose(m.item_factors_[: data.n_items], before, atol=1e-6)
    assert not m.item_identity_[-2:].any()
    s = m.score(["u0", "u1"])
    a, b = m.items_.codes([700, 701])
    assert s[0, a] > s[0, b]
    assert s[1, b] > s[1, a]
    # re-adding a known item keeps its identity and rebuilds the attribute part
    m.add_items(pd.DataFrame({"genres": ["B|G5"]}, index=[100]))
    assert m.item_identity_[m.items_.codes([100])[0]]
    loaded = Recommender.load(m.save(tmp_path / "grown"))
    np.testing.assert_allclose(loaded.score(["u0"]), m.score(["u0"]), atol=1e-6)
    with pytest.raises(DataError, match="without item features"):
        TwoTower(**SMALL, features=[]).fit(data).add_items(
            pd.DataFrame({"genres": ["A"]}, index=[1])
        )


def test_cold_users_from_attributes(tmp_path: Path) -> None:
    ds, new = _clustered(side=True), ["new_even", "new_odd"]
    m = TwoTower(**LEARN, features=GENRES, user_features=USER_FEATURES).fit(ds)
    assert m.user_feature_matrix_.shape == (ds.n_users, 2)
    assert ds.n_users == 242
    # users in the data without interactions: their attributes alone
    even, odd = m.recommend(new, k=5).items
    assert (even < 120).mean() >= 0.8
    assert (odd >= 120).mean() >= 0.8
    # users never seen at all, by attributes only (rows in the frame's order)
    frame = pd.DataFrame({"side": ["odd", "even", "odd"]}, index=["x", "y", "z"])
    scores = m.score_user_attributes(frame)
    assert scores.shape == (3, m.n_items)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores[0], scores[2])
    np.testing.assert_allclose(scores[1], m.score([new[0]])[0], atol=1e-5)
    a_items = m.items_.codes(np.arange(100, 120))
    b_items = m.items_.codes(np.arange(120, 140))
    assert scores[0, a_items].mean() < scores[0, b_items].mean()
    loaded = Recommender.load(m.save(tmp_path / "users"))
    assert isinstance(loaded, TwoTower)
    np.testing.assert_allclose(loaded.score_user_attributes(frame), scores, atol=1e-6)
    with pytest.raises(DataError, match="missing column 'side'"):
        m.score_user_attributes(pd.DataFrame({"age": [3]}, index=["x"]))
    plain = TwoTower(**SMALL, features=GENRES).fit(ds)
    with pytest.raises(DataError, match="without user_features"):
        plain.score_user_attributes(frame)
    recs = m.recommend_for_user_attributes({"side": "even"}, k=5)
    assert (recs.items[0] < 120).mean() >= 0.8
    with pytest.raises(DataError, match="no user attributes"):
        TwoTower(**SMALL, user_features=USER_FEATURES).fit(toy_dataset())


def test_early_stopping_keeps_the_best_epoch(data: Dataset) -> None:
    m = TwoTower(**{**SMALL, "epochs": 40, "patience": 2}, features=GENRES).fit(data)
    assert m.valid_scores_
    assert m.best_epoch_ == int(np.argmax(m.valid_scores_))
    assert len(m.valid_scores_) <= m.best_epoch_ + 1 + 2
    # an explicit validation set: each user's first item there is the target
    frame = data.to_frame()
    last = frame.groupby("user").tail(1)
    train = data.subset(~frame.index.isin(last.index))
    valid = data.subset(frame.index.isin(last.index))
    v = TwoTower(**SMALL, features=GENRES).fit(train, valid=valid)
    assert len(v.valid_scores_) == len(v.loss_)
    with pytest.raises(DataError, match="share the id indices"):
        TwoTower(**SMALL).fit(train, valid=toy_dataset(n_users=30, explicit=False))


def test_epoch_callback_stops_training(data: Dataset) -> None:
    seen: list[int] = []

    def stop_after_two(epoch: int, model: Recommender) -> bool:
        seen.append(epoch)
        return epoch == 1

    m = TwoTower(**{**SMALL, "epochs": 10, "early_stopping": False}).fit(
        data, callback=stop_after_two
    )
    assert seen == [0, 1]
    assert len(m.loss_) == 2


def test_explain_is_leave_one_out(learned: TwoTower) -> None:
    e = learned.explain("u0", 110)
    assert e.kind == "items"
    codes, _ = learned.user_history(0)
    ids = learned.items_.ids_of(codes)
    assert sorted(c for c, _ in e.contributions) == sorted(ids.tolist())
    item = learned.items_.codes([110])[0]
    assert e.score == pytest.approx(float(learned.score_users(np.array([0]))[0, item]), abs=1e-5)
    without = learned.score_history(codes[1:])[item]
    assert dict(e.contributions)[ids[0]] == pytest.approx(e.score - without, abs=1e-4)


def test_explain_a_user_without_history_by_item_features() -> None:
    ds, new = _clustered(side=True), ["new_even", "new_odd"]
    m = TwoTower(**SMALL, features=GENRES, user_features=USER_FEATURES).fit(ds)
    e = m.explain(new[0], 105)
    assert e.kind == "features"
    assert {name for name, _ in e.contributions} == {"genres=A", "genres=G1"}


def test_errors() -> None:
    with pytest.raises(ConfigError, match="'temperature' parameter of TwoTower"):
        TwoTower(temperature=0.0)
    with pytest.raises(DataError, match="has no item attributes but TwoTower was given"):
        TwoTower(**SMALL, features=GENRES).fit(toy_dataset())
    with pytest.raises(DataError, match="reaches positive_threshold=9"):
        TwoTower(**SMALL, positive_threshold=9.0).fit(toy_dataset())
