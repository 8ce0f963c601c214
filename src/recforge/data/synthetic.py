"""Synthetic interaction data with known structure, from tiny test sets to 100M+ interactions.

The generator draws

* item popularity from a Zipf law, ``pop_i ∝ rank_i ** -zipf_a`` (ranks randomly permuted
  over the item ids);
* user activity from a log-normal law with shape ``user_skew``, scaled so the counts add up to
  ``n_interactions`` (no user can have more than ``n_items``);
* user and item factors ``U``, ``V`` with i.i.d. ``N(0, 1/sqrt(factors))`` entries, so the
  preference ``s_ui = U_u . V_i`` has unit variance on average;

and then samples each user's items without replacement with probability proportional to
``pop_i * exp(signal * s_ui)`` (the exponent clipped at 2 standard deviations of the user's
scores). No (user, item) pair repeats. Implicit data have value 1; explicit data get ratings
``clip(round(3 + 1.2 * (s_ui + noise)), 1, 5)``. Times are uniform over one year from
2020-01-01 UTC.

Sampling runs in a parallel numba kernel that writes straight into the output arrays, with
O(n_users * factors + n_items * factors) working memory besides them: 100M interactions take
20 bytes each (user, item, value, time) and nothing more per interaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recforge.data._dataset import Dataset
from recforge.data._idindex import IdIndex
from recforge.exceptions import ConfigError

__all__ = ["SyntheticData", "synthetic", "synthetic_data"]

_T_START = 1_577_836_800  # 2020-01-01T00:00:00Z
_T_SPAN = 365 * 86_400
_CLIP_SD = 2.0


@dataclass(frozen=True)
class SyntheticData:
    """A synthetic dataset with the ground truth it was sampled from.

    Attributes
    ----------
    dataset : Dataset
        The interactions; user and item ids are ``0 .. n - 1``.
    user_factors, item_factors : numpy.ndarray of float32
        True latent factors, rows in id order.
    item_log_popularity : numpy.ndarray of float64
        ``log pop_i`` (unnormalised) per item id.
    signal : float
        Weight of the latent preference in the sampling logits.
    """

    dataset: Dataset
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_log_popularity: np.ndarray
    signal: float

    def true_scores(self, users: np.ndarray) -> np.ndarray:
        """Sampling logits ``log pop_i + signal * s_ui`` of the given user ids, ``(n, n_items)``."""
        u = np.asarray(users, dtype=np.int64)
        s = self.user_factors[u].astype(np.float64) @ self.item_factors.T.astype(np.float64)
        return self.item_log_popularity[None, :] + self.signal * s


def _check(name: str, value: object, minimum: float, integer: bool) -> None:
    ok_type = (
        isinstance(value, int | np.integer)
        if integer
        else isinstance(value, int | float | np.integer | np.floating)
    )
    if isinstance(value, bool) or not ok_type or not value >= minimum:  # type: ignore[operator]
        kind = "an int" if integer else "a number"
        raise ConfigError(
            f"The {name!r} parameter of synthetic must be {kind} >= {minimum}. "
            f"Got {value!r} instead."
        )


def _allocate(total: int, weights: np.ndarray, cap: int, gen: np.random.Generator) -> np.ndarray:
    """Integer counts summing to ``total``, roughly proportional to ``weights``, each <= cap."""
    p = weights / weights.sum()
    counts = gen.multinomial(total, p).astype(np.int64)
    while True:
        over = counts > cap
        if not over.any():
            return counts
        excess = int((counts[over] - cap).sum())
        counts[over] = cap
        free = counts < cap
        q = p * free
        counts += gen.multinomial(excess, q / q.sum()).astype(np.int64)


def synthetic_data(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    factors: int = 16,
    zipf_a: float = 1.0,
    user_skew: float = 1.0,
    signal: float = 1.5,
    noise: float = 0.5,
    rng: int | np.random.Generator | None = 0,
    implicit: bool = True,
    name: str = "synthetic",
) -> SyntheticData:
    """Generate synthetic interactions and return them with their ground truth.

    Parameters are those of :func:`synthetic`.

    Returns
    -------
    SyntheticData
    """
    _check_sizes(n_users, n_items, n_interactions, factors)
    for pname, fval in (
        ("zipf_a", zipf_a),
        ("user_skew", user_skew),
        ("signal", signal),
        ("noise", noise),
    ):
        _check(pname, fval, 0, integer=False)
    gen = np.random.default_rng(rng)
    ranks = gen.permutation(n_items).astype(np.float64) + 1.0
    log_pop = -float(zipf_a) * np.log(ranks)
    activity = gen.lognormal(0.0, float(user_skew), size=n_users)
    counts = _allocate(int(n_interactions), activity, n_items, gen)
    scale = float(factors) ** -0.25
    user_factors = _factors(gen, n_users, factors, scale)
    item_factors = _factors(gen, n_items, factors, scale)
    seed = int(gen.integers(0, 2**63 - 1))
    items, values, times = _sample(
        counts, user_factors, item_factors, log_pop, float(signal), scale, seed,
        0.0 if implicit else float(noise),
    )  # fmt: skip
    _to_values(values, implicit)
    ds = Dataset(
        user=np.repeat(np.arange(n_users, dtype=np.int32), counts),
        item=items,
        value=values,
        time=times,
        users=IdIndex(np.arange(n_users, dtype=np.int64)),
        items=IdIndex(np.arange(n_items, dtype=np.int64)),
        name=name,
    )
    return SyntheticData(ds, user_factors, item_factors, log_pop, float(signal))


def _check_sizes(n_users: int, n_items: int, n_interactions: int, factors: int) -> None:
    for pname, val in (
        ("n_users", n_users),
        ("n_items", n_items),
        ("n_interactions", n_interactions),
        ("factors", factors),
    ):
        _check(pname, val, 1, integer=True)
    if n_interactions > n_users * n_items:
        raise ConfigError(
            f"synthetic: n_interactions={n_interactions} exceeds n_users * n_items = "
            f"{n_users * n_items}, but (user, item) pairs never repeat"
        )


def _factors(gen: np.random.Generator, n: int, factors: int, scale: float) -> np.ndarray:
    """``(n, factors)`` float32 Gaussian factors with standard deviation ``scale``."""
    return (gen.standard_normal((n, factors), dtype=np.float32) * scale).astype(np.float32)


def _sample(
    counts: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    log_pop: np.ndarray,
    signal: float,
    scale: float,
    seed: int,
    noise: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(items, raw values, times)`` of every user's interactions, drawn by the kernel."""
    from recforge._kernels.synthetic import sample_interactions

    pop = np.exp(log_pop - log_pop.max())
    user_sd = np.linalg.norm(user_factors.astype(np.float64), axis=1) * scale
    bound = np.maximum(signal * _CLIP_SD * user_sd, 1e-6)
    nnz = int(counts.sum())
    offsets = np.zeros(counts.size, dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    items = np.empty(nnz, dtype=np.int32)
    values = np.empty(nnz, dtype=np.float32)
    times = np.empty(nnz, dtype=np.int64)
    sample_interactions(
        counts, offsets, user_factors, item_factors, np.cumsum(pop), log_pop, signal, bound,
        seed, noise, _T_START, _T_SPAN, items, values, times,
    )  # fmt: skip
    return items, values, times


def _to_values(values: np.ndarray, implicit: bool) -> None:
    """Raw preferences to 1 (implicit) or to ratings 1-5 in steps of 1, in place."""
    if implicit:
        values.fill(1.0)
        return
    values *= np.float32(1.2)
    values += np.float32(3.0)
    np.rint(values, out=values)
    np.clip(values, 1.0, 5.0, out=values)


def synthetic(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    factors: int = 16,
    zipf_a: float = 1.0,
    user_skew: float = 1.0,
    signal: float = 1.5,
    noise: float = 0.5,
    rng: int | np.random.Generator | None = 0,
    implicit: bool = True,
    name: str = "synthetic",
) -> Dataset:
    """Generate a synthetic dataset with popularity skew and learnable low-rank preferences.

    Parameters
    ----------
    n_users, n_items
        Sizes of the user and item indices (ids ``0 .. n - 1``); users drawn with no
        interactions stay in the index.
    n_interactions
        Exact number of interactions (distinct (user, item) pairs).
    factors
        Rank of the true preference structure.
    zipf_a
        Exponent of the Zipf item popularity (0: uniform; 1: classic long tail).
    user_skew
        Shape (sigma) of the log-normal user activity (0: every user equally active).
    signal
        Weight of the latent preference against popularity (0: popularity only).
    noise
        Standard deviation of the noise added to the preference before explicit ratings are
        rounded; unused for implicit data.
    rng
        Seed or :class:`numpy.random.Generator`; equal seeds give equal data whatever the
        number of threads.
    implicit
        Values 1 (implicit feedback) or ratings 1-5.
    name
        Name of the dataset.

    Returns
    -------
    Dataset
        Sorted by user, with timestamps; see :func:`synthetic_data` for the ground truth.

    Raises
    ------
    ConfigError
        On a parameter out of range or more interactions than ``n_users * n_items``.

    Examples
    --------
    >>> ds = synthetic(100, 50, 1_000, rng=1)
    >>> ds.n_interactions, ds.n_users, ds.n_items
    (1000, 100, 50)
    """
    return synthetic_data(
        n_users,
        n_items,
        n_interactions,
        factors=factors,
        zipf_a=zipf_a,
        user_skew=user_skew,
        signal=signal,
        noise=noise,
        rng=rng,
        implicit=implicit,
        name=name,
    ).dataset
