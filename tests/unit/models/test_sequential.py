"""SASRec: contract, losses against direct formulas, causality, determinism, early stopping."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from recforge.data import Dataset  # noqa: E402
from recforge.exceptions import ConfigError, DataError  # noqa: E402
from recforge.models import Recommender, model_class  # noqa: E402
from recforge.models._sasrec_net import (  # noqa: E402
    SASRecNet,
    gbce_beta,
    gbce_loss,
    sampled_softmax_loss,
    softmax_loss,
)
from recforge.models.sequential import SASRec, padded_tails  # noqa: E402
from recforge.testing import RecommenderContract  # noqa: E402

SMALL = {"embedding_size": 16, "max_length": 12, "epochs": 2, "threads": 1, "rng": 0}


class TestSASRec(RecommenderContract):
    model = SASRec
    configs = [
        SMALL,
        {**SMALL, "loss": "gbce", "n_negatives": 8, "early_stopping": False},
        {**SMALL, "loss": "sampled", "n_negatives": 8, "n_heads": 2},
    ]
    atol = 1e-4


def _cycle_data(n_users: int = 80, n_items: int = 12, length: int = 10) -> Dataset:
    """Each user walks the item cycle 0, 1, 2, ... from a random start: the next item is known."""
    gen = np.random.default_rng(0)
    start = gen.integers(0, n_items, n_users)
    items = (start[:, None] + np.arange(length)[None, :]) % n_items
    frame = pd.DataFrame(
        {
            "user": np.repeat(np.arange(n_users), length),
            "item": items.ravel(),
            "time": np.tile(np.arange(length), n_users),
        }
    )
    return Dataset.from_frame(frame, time="time")


def test_registered() -> None:
    assert model_class("sasrec") is SASRec


def test_learns_the_next_item_of_a_cycle() -> None:
    ds = _cycle_data()
    m = SASRec(embedding_size=16, max_length=10, epochs=60, learning_rate=5e-3, rng=0, threads=1)
    m.fit(ds)
    recs = m.recommend_for_history([3, 4, 5], k=1, exclude_seen=False)
    assert recs.items[0, 0] == 6
    # the order matters: the same items in another order predict another next item
    assert m.recommend_for_history([5, 4, 3], k=1, exclude_seen=False).items[0, 0] != 6
    assert m.valid_scores_[m.best_epoch_] == max(m.valid_scores_)
    assert m.valid_scores_[m.best_epoch_] > 0.8


def test_two_fits_with_one_thread_are_identical() -> None:
    ds = _cycle_data()
    a = SASRec(**{**SMALL, "epochs": 3}).fit(ds)
    b = SASRec(**{**SMALL, "epochs": 3}).fit(ds)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_array_equal(a.score_users(np.arange(5)), b.score_users(np.arange(5)))
    assert a.loss_ == b.loss_


def test_causal_no_future_leakage() -> None:
    torch.manual_seed(0)
    net = SASRecNet(20, 16, 2, 2, 0.0, 8).eval()
    seq = torch.tensor([[0, 0, 3, 7, 1, 9, 4, 2]])
    changed = seq.clone()
    changed[0, 6] = 15
    with torch.no_grad():
        a, b = net(seq), net(changed)
    torch.testing.assert_close(a[0, :6], b[0, :6])
    assert not torch.allclose(a[0, 6:], b[0, 6:])


def _net_and_batch() -> tuple[SASRecNet, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    net = SASRecNet(10, 8, 1, 1, 0.0, 4).requires_grad_(False)
    h = torch.randn(2, 3, 8)
    target = torch.tensor([[0, 4, 2], [5, 1, 10]])
    negatives = torch.tensor([[4, 7, 9], [3, 3, 6]])  # 4 is an accidental hit of row 0
    return net, h, target, negatives


def test_softmax_loss_is_full_cross_entropy() -> None:
    net, h, target, _ = _net_and_batch()
    mask = target > 0
    e = net.item_emb.weight.detach()
    expected = []
    for vec, t in zip(h[mask], target[mask], strict=True):
        logits = [float(vec @ e[j]) for j in range(1, 11)]
        expected.append(math.log(sum(math.exp(x) for x in logits)) - logits[int(t) - 1])
    got = softmax_loss(net, h[mask], target[mask]).item()
    assert got == pytest.approx(np.mean(expected), rel=1e-5)


def test_sampled_softmax_with_logq_matches_direct_formula() -> None:
    net, h, target, negatives = _net_and_batch()
    log_q = torch.log(torch.linspace(0.01, 0.2, 11))
    e = net.item_emb.weight.detach()
    expected = []
    for b in range(2):
        for pos in range(3):
            t = int(target[b, pos])
            if t == 0:
                continue
            s = float(h[b, pos] @ e[t]) - float(log_q[t])
            negs = [
                float(h[b, pos] @ e[j]) - float(log_q[j]) for j in negatives[b].tolist() if j != t
            ]
            expected.append(-(s - math.log(math.exp(s) + sum(math.exp(x) for x in negs))))
    got = sampled_softmax_loss(net, h, target, negatives, log_q).item()
    assert got == pytest.approx(np.mean(expected), rel=1e-5)


def test_gbce_matches_direct_formula() -> None:
    net, h, target, negatives = _net_and_batch()
    beta = gbce_beta(3, 10, 0.75)
    alpha = 3 / 9
    assert beta == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))
    e = net.item_emb.weight.detach()

    def sig(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    expected = []
    for b in range(2):
        for pos in range(3):
            t = int(target[b, pos])
            if t == 0:
                continue
            term = math.log(sig(float(h[b, pos] @ e[t])) ** beta)
            term += sum(
                math.log(1 - sig(float(h[b, pos] @ e[j]))) for j in negatives[b].tolist() if j != t
            )
            expected.append(-term / 4)
    got = gbce_loss(net, h, target, negatives, beta).item()
    assert got == pytest.approx(np.mean(expected), rel=1e-5)
    # t = 0 gives beta = 1 (plain binary cross-entropy), t = 1 gives beta = alpha
    assert gbce_beta(3, 10, 0.0) == pytest.approx(1.0)
    assert gbce_beta(3, 10, 1.0) == pytest.approx(alpha)


def test_padded_tails() -> None:
    indptr = np.array([0, 3, 3, 8])
    items = np.arange(8, dtype=np.int32)
    out = padded_tails(indptr, items, np.array([0, 1, 2]), 4)
    np.testing.assert_array_equal(out, [[0, 1, 2, 3], [0, 0, 0, 0], [5, 6, 7, 8]])


def test_early_stopping_keeps_the_best_epoch_and_stops() -> None:
    ds = _cycle_data()
    # a huge learning rate makes validation fall after the first epochs
    m = SASRec(**{**SMALL, "epochs": 30, "patience": 2, "learning_rate": 0.3}).fit(ds)
    assert len(m.valid_scores_) <= 30
    best = m.best_epoch_
    assert m.valid_scores_[best] == max(m.valid_scores_)
    if len(m.valid_scores_) < 30:
        assert len(m.valid_scores_) == best + 3  # stopped after `patience` worse epochs


def test_explicit_valid_and_its_checks() -> None:
    from recforge.split import leave_one_out

    ds = _cycle_data()
    split = leave_one_out(ds, by="time", valid=True)
    assert split.valid is not None
    m = SASRec(**SMALL).fit(split.train, valid=split.valid)
    assert len(m.valid_scores_) == 2
    other = _cycle_data(n_items=13)
    with pytest.raises(DataError, match="share the id indices"):
        SASRec(**SMALL).fit(split.train, valid=other)


def test_explain_is_leave_one_out_on_the_history() -> None:
    ds = _cycle_data()
    m = SASRec(**SMALL).fit(ds)
    e = m.explain(0, 5)
    seq = m.sequence_items_[m.sequence_indptr_[0] : m.sequence_indptr_[1]]
    assert sorted(c for c, _ in e.contributions) == sorted(ds.items.ids_of(seq).tolist())
    # the weight of the first item is the score drop when it is removed
    first = ds.items.ids_of(seq[:1])[0]
    without = m.score_history(seq[1:])[ds.items.codes([5])[0]]
    weight = dict(e.contributions)[first]
    assert weight == pytest.approx(e.score - without, abs=1e-4)


def test_bad_params() -> None:
    with pytest.raises(ConfigError, match="n_heads"):
        SASRec(embedding_size=10, n_heads=3)
    with pytest.raises(ConfigError, match="loss"):
        SASRec(loss="bpr")


def test_save_load_keeps_sequences(tmp_path: object) -> None:
    ds = _cycle_data()
    m = SASRec(**SMALL).fit(ds)
    path = m.save(tmp_path / "m")  # type: ignore[operator]
    loaded = Recommender.load(path)
    assert isinstance(loaded, SASRec)
    np.testing.assert_array_equal(loaded.sequence_items_, m.sequence_items_)
    np.testing.assert_allclose(loaded.score_history([1, 2, 3]), m.score_history([1, 2, 3]))


def test_user_sequence_is_time_ordered_and_others_keep_code_order() -> None:
    from recforge.models.popular import MostPopular

    frame = pd.DataFrame({"user": [1, 1, 1], "item": [7, 8, 9], "time": [30, 10, 20]})
    ds = Dataset.from_frame(frame, time="time")
    m = SASRec(**SMALL).fit(ds)
    assert m.sequential
    assert ds.items.ids_of(m.user_sequence(0)).tolist() == [8, 9, 7]
    pop = MostPopular().fit(ds)
    assert not pop.sequential
    np.testing.assert_array_equal(pop.user_sequence(0), pop.user_history(0)[0])
