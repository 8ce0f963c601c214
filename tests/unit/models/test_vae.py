"""MultVAE / Mult-DAE: contract, loss terms against direct formulas, learning, fold-in."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recforge.data import Dataset  # noqa: E402
from recforge.models import Recommender, model_class  # noqa: E402
from recforge.models._vae_net import MultVAENet, kl_divergence, multinomial_nll  # noqa: E402
from recforge.models.vae import MultVAE  # noqa: E402
from recforge.testing import RecommenderContract, toy_dataset  # noqa: E402

SMALL = {"hidden": 16, "latent": 8, "epochs": 2, "batch_size": 16, "threads": 1, "rng": 0}


class TestMultVAE(RecommenderContract):
    model = MultVAE
    configs = [SMALL, {**SMALL, "variant": "dae", "hidden": 0}]
    atol = 1e-4


@pytest.fixture(scope="module")
def data() -> Dataset:
    return toy_dataset(n_users=120, n_items=60, explicit=False)


def test_registered() -> None:
    assert model_class("multvae") is MultVAE


def test_loss_terms_match_direct_formulas() -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    expected = []
    for row_l, row_x in zip(logits.tolist(), x.tolist(), strict=True):
        lse = math.log(sum(math.exp(v) for v in row_l))
        expected.append(-sum(xi * (li - lse) for li, xi in zip(row_l, row_x, strict=True)))
    assert multinomial_nll(logits, x).item() == pytest.approx(np.mean(expected), rel=1e-6)
    mu = torch.tensor([[0.5, -0.2]])
    logvar = torch.tensor([[0.1, -0.3]])
    kl = sum(
        0.5 * (math.exp(lv) + m**2 - 1 - lv)
        for m, lv in zip(mu[0].tolist(), logvar[0].tolist(), strict=True)
    )
    assert kl_divergence(mu, logvar).item() == pytest.approx(kl, rel=1e-6)


def test_dae_has_no_variance_and_eval_is_deterministic() -> None:
    torch.manual_seed(0)
    vae = MultVAENet([10, 6, 3], 0.5, True).eval()
    dae = MultVAENet([10, 6, 3], 0.5, False).eval()
    x = torch.ones(2, 10)
    assert vae(x)[2] is not None
    assert dae(x)[2] is None
    torch.testing.assert_close(vae(x)[0], vae(x)[0])


def _auc(model: Recommender, data: Dataset) -> float:
    scores = model.score(data.users.ids)
    seen = data.matrix(binary=True).toarray() > 0
    return float(
        np.mean(
            [
                (scores[u, seen[u]][:, None] > scores[u, ~seen[u]][None, :]).mean()
                for u in range(scores.shape[0])
            ]
        )
    )


@pytest.mark.parametrize("variant", ["vae", "dae"])
def test_training_learns_the_clusters(data: Dataset, variant: str) -> None:
    m = MultVAE(
        variant=variant, hidden=32, latent=8, epochs=40, batch_size=32, anneal_steps=50,
        learning_rate=5e-3, threads=1, rng=0,
    ).fit(data)  # fmt: skip
    assert m.loss_[-1] < m.loss_[0]
    assert _auc(m, data) > 0.8
    # fold-in: a history in the first half recommends first-half items
    recs = m.recommend_for_history([100, 101, 102, 103, 104], k=5)
    assert (recs.items[0] < 130).mean() >= 0.8


def test_two_fits_with_one_thread_are_identical(data: Dataset) -> None:
    a = MultVAE(**SMALL).fit(data)
    b = MultVAE(**SMALL).fit(data)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert a.loss_ == b.loss_


def test_explain_is_leave_one_out(data: Dataset) -> None:
    m = MultVAE(**SMALL).fit(data)
    e = m.explain("u0", 110)
    codes, _ = m.user_history(0)
    assert sorted(c for c, _ in e.contributions) == sorted(data.items.ids_of(codes).tolist())
    first = data.items.ids_of(codes[:1])[0]
    without = m.score_history(codes[1:])[data.items.codes([110])[0]]
    assert dict(e.contributions)[first] == pytest.approx(e.score - without, abs=1e-4)


def test_kl_weight_is_annealed_to_the_cap(data: Dataset) -> None:
    # 120 users in batches of 16: 8 updates per epoch
    m = MultVAE(**{**SMALL, "epochs": 3, "anneal_steps": 48, "beta_cap": 0.9}).fit(data)
    assert m.beta_ == pytest.approx(24 / 48)
    m = MultVAE(**{**SMALL, "epochs": 3, "anneal_steps": 8, "beta_cap": 0.2}).fit(data)
    assert m.beta_ == pytest.approx(0.2)
    assert MultVAE(**{**SMALL, "variant": "dae"}).fit(data).beta_ == 0.0
