"""Synthetic generator: kernel vs reference, determinism, structure and learnability."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from recforge._kernels.synthetic import sample_interactions, sample_interactions_reference
from recforge.data import synthetic, synthetic_data
from recforge.exceptions import ConfigError


def _inputs(n_users: int, n_items: int, counts: list[int], seed: int = 3) -> tuple:
    rng = np.random.default_rng(seed)
    f = 4
    uf = (rng.standard_normal((n_users, f)) * f**-0.25).astype(np.float32)
    vf = (rng.standard_normal((n_items, f)) * f**-0.25).astype(np.float32)
    log_pop = -1.2 * np.log(rng.permutation(n_items) + 1.0)
    cdf = np.cumsum(np.exp(log_pop))
    c = np.asarray(counts, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64)
    bound = np.full(n_users, 3.0)
    return c, offsets, uf, vf, cdf, log_pop, 1.5, bound


@pytest.mark.parametrize(
    ("n_items", "counts", "noise"),
    [
        (50, [3, 0, 7, 12, 1], 0.0),  # sparse users: rejection sampling
        (20, [15, 20, 2], 0.3),  # dense users: Gumbel top-k, plus noise
        (400, [99, 5], 0.0),  # skewed popularity: rejection hits its limit, falls back
    ],
)
def test_kernel_matches_reference(n_items: int, counts: list[int], noise: float) -> None:
    args = _inputs(len(counts), n_items, counts)
    nnz = sum(counts)
    outs = [
        (np.empty(nnz, np.int32), np.empty(nnz, np.float32), np.empty(nnz, np.int64))
        for _ in range(2)
    ]
    sample_interactions(*args, 12345, noise, 1000, 86400, *outs[0])
    sample_interactions_reference(*args, 12345, noise, 1000, 86400, *outs[1])
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(outs[0][2], outs[1][2])
    # each user's items are distinct
    for u, (lo, n) in enumerate(zip(args[1], counts, strict=True)):
        assert len(set(outs[0][0][lo : lo + n].tolist())) == n, u


def test_deterministic_and_thread_independent() -> None:
    a = synthetic(300, 120, 4000, rng=11)
    b = synthetic(300, 120, 4000, rng=11)
    assert a.fingerprint() == b.fingerprint()
    assert synthetic(300, 120, 4000, rng=12).fingerprint() != a.fingerprint()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        c = synthetic(300, 120, 4000, rng=11)
    finally:
        numba.set_num_threads(before)
    assert c.fingerprint() == a.fingerprint()
    gen = np.random.default_rng(11)
    assert synthetic(300, 120, 4000, rng=gen).fingerprint() == a.fingerprint()


def test_shape_and_no_duplicates() -> None:
    ds = synthetic(500, 200, 10_000, rng=1, implicit=False)
    assert ds.n_interactions == 10_000
    assert (ds.n_users, ds.n_items) == (500, 200)
    keys = ds.user.astype(np.int64) * ds.n_items + ds.item
    assert np.unique(keys).size == keys.size
    assert np.all(np.diff(ds.user) >= 0)  # sorted by user
    assert set(np.unique(ds.value).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ds.time is not None
    assert ds.time.min() >= 1_577_836_800
    assert ds.time.max() < 1_577_836_800 + 365 * 86400
    assert synthetic(50, 40, 300, rng=1).is_implicit


def test_full_matrix_possible() -> None:
    ds = synthetic(6, 5, 30, rng=0)
    assert ds.matrix(binary=True).toarray().sum() == 30


def test_popularity_and_activity_skew() -> None:
    flat = synthetic(400, 2000, 12_000, zipf_a=0.0, user_skew=0.0, signal=0.0, rng=2)
    skew = synthetic(400, 2000, 12_000, zipf_a=1.2, user_skew=1.2, signal=0.0, rng=2)
    top = 200  # 10% of the items

    def top_share(ds) -> float:  # type: ignore[no-untyped-def]
        c = np.sort(ds.item_counts())[::-1]
        return float(c[:top].sum() / c.sum())

    assert top_share(flat) < 0.2  # about 0.1 plus sampling noise
    assert top_share(skew) > 0.55
    assert flat.user_counts().std() < 0.3 * flat.user_counts().mean()
    assert skew.user_counts().std() > 1.0 * skew.user_counts().mean()


def test_structure_is_learnable() -> None:
    truth = synthetic_data(600, 300, 18_000, factors=8, signal=2.0, rng=5)
    ds = truth.dataset
    rng = np.random.default_rng(0)
    # hold out one interaction per user with at least 5
    counts = ds.user_counts()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    users = np.flatnonzero(counts >= 5)
    held = starts[users] + rng.integers(0, counts[users])
    train = np.ones(ds.n_interactions, dtype=bool)
    train[held] = False
    seen = np.zeros((ds.n_users, ds.n_items), dtype=bool)
    seen[ds.user[train], ds.item[train]] = True
    popularity = np.bincount(ds.item[train], minlength=ds.n_items).astype(np.float64)

    def hit_rate(scores: np.ndarray) -> float:
        scores = np.where(seen[users], -np.inf, scores)
        top = np.argsort(-scores, axis=1)[:, :10]
        return float(np.mean((top == ds.item[held][:, None]).any(axis=1)))

    pop_hr = hit_rate(np.broadcast_to(popularity, (users.size, ds.n_items)))
    true_hr = hit_rate(truth.true_scores(users))
    assert true_hr > pop_hr + 0.15, (true_hr, pop_hr)  # about 0.58 vs 0.30


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "'n_users' parameter of synthetic must be an int >= 1"),
        ({"n_interactions": 10_001}, "exceeds n_users \\* n_items = 10000"),
        ({"zipf_a": -1.0}, "'zipf_a' parameter of synthetic must be a number >= 0"),
        ({"factors": 2.5}, "'factors' parameter of synthetic must be an int"),
        ({"signal": float("nan")}, "'signal' parameter"),
    ],
)
def test_bad_parameters(kwargs: dict, message: str) -> None:
    args = {"n_users": 100, "n_items": 100, "n_interactions": 500} | kwargs
    with pytest.raises(ConfigError, match=message):
        synthetic(**args)
