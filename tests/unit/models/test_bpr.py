"""BPR: contract, AUC improvement, determinism, fold-in, callbacks."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from recforge.data import Dataset
from recforge.models import Recommender, model_class
from recforge.models.bpr import BPR
from recforge.testing import RecommenderContract, toy_dataset


class TestBPR(RecommenderContract):
    model = BPR
    configs = [
        {"factors": 6, "epochs": 5, "rng": 0},
        {"factors": 4, "epochs": 3, "neg_sampling": "popularity", "rng": 1},
    ]


@pytest.fixture(scope="module")
def data() -> Dataset:
    return toy_dataset(n_users=120, n_items=60, explicit=False)


def _auc(model: Recommender, data: Dataset) -> float:
    """Mean per-user AUC of training positives against all other items."""
    scores = model.score(data.users.ids)
    seen = data.matrix(binary=True).toarray() > 0
    aucs = []
    for u in range(scores.shape[0]):
        pos, neg = scores[u, seen[u]], scores[u, ~seen[u]]
        aucs.append(float((pos[:, None] > neg[None, :]).mean()))
    return float(np.mean(aucs))


def test_registered() -> None:
    assert model_class("bpr") is BPR


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_training_increases_auc(data: Dataset, sampling: str) -> None:
    untrained = BPR(factors=8, epochs=0, rng=0).fit(data)
    trained = BPR(factors=8, epochs=40, neg_sampling=sampling, rng=0).fit(data)
    before, after = _auc(untrained, data), _auc(trained, data)
    assert before < 0.6
    assert after > 0.85
    assert trained.train_accuracy_[-1] > trained.train_accuracy_[0]


def test_recommends_within_cluster(data: Dataset) -> None:
    m = BPR(factors=8, epochs=40, rng=0).fit(data)
    users = data.users.ids
    recs = m.recommend(users, k=5).items
    codes = data.users.codes(users)
    even = np.array([int(str(u)[1:]) % 2 == 0 for u in users])
    in_cluster = np.where(even[:, None], recs < 130, recs >= 130)
    assert codes.size == len(users)
    assert in_cluster.mean() > 0.7


def test_deterministic_whatever_the_thread_count(data: Dataset) -> None:
    a = BPR(factors=4, epochs=3, rng=3).fit(data)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = BPR(factors=4, epochs=3, rng=3).fit(data)
    finally:
        numba.set_num_threads(before)
    assert before > 1  # the suite runs numba on two threads (tests/conftest.py)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_bias_, b.item_bias_)
    c = BPR(factors=4, epochs=3, rng=4).fit(data)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


def test_fold_in_deterministic_and_close_to_user(data: Dataset) -> None:
    m = BPR(factors=8, epochs=40, rng=0, fold_in_epochs=40).fit(data)
    frame = data.to_frame()
    hist = frame[frame["user"] == "u2"]["item"].tolist()
    r1 = m.recommend_for_history(hist, k=10)
    r2 = m.recommend_for_history(hist, k=10)
    np.testing.assert_array_equal(r1.item_codes, r2.item_codes)
    fitted = m.recommend(["u2"], k=10)
    assert len(set(r1.items[0]) & set(fitted.items[0])) >= 5


def test_callback(data: Dataset) -> None:
    epochs: list[int] = []

    def cb(epoch: int, model: Recommender) -> bool:
        epochs.append(epoch)
        return epoch == 3

    m = BPR(factors=4, epochs=10, rng=0).fit(data, callback=cb)
    assert epochs == [0, 1, 2, 3]
    assert len(m.train_accuracy_) == 4


def test_explanation_parts_add_up_to_the_score(data: Dataset) -> None:
    m = BPR(factors=8, epochs=3, rng=0).fit(data)
    item = m.recommend(["u0"], k=1).items[0, 0]
    e = m.explain("u0", item)
    assert e.kind == "features"
    assert sum(w for _, w in e.contributions) == pytest.approx(e.score, rel=1e-5)
    code = m.items_.codes([item])[0]
    assert e.score == pytest.approx(float(m.score(["u0"])[0, code]), rel=1e-5)
