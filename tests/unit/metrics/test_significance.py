"""Paired tests against scipy, Holm against a hand/loop computation, bootstrap, compare_to_best."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recforge.exceptions import ConfigError, DataError
from recforge.metrics import (
    bootstrap_ci,
    compare_to_best,
    holm_correction,
    paired_t_test,
    wilcoxon_test,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_t_test_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.random(80)
    b = a + rng.normal(0.02 * seed, 0.1, 80)
    got = paired_t_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert got.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert got.pvalue == pytest.approx(ref.pvalue, rel=1e-9)


def test_paired_t_test_edge_cases() -> None:
    a = np.array([0.1, 0.5, 0.3])
    assert paired_t_test(a, a) == (0.0, 1.0)
    assert paired_t_test(a + 1, a) == (np.inf, 0.0)
    assert paired_t_test(a - 1, a) == (-np.inf, 0.0)
    assert all(np.isnan(paired_t_test([1.0], [2.0])))
    # NaN pairs are dropped
    x = np.array([0.1, np.nan, 0.4, 0.9, 0.2])
    y = np.array([0.2, 0.3, np.nan, 0.5, 0.1])
    ref = stats.ttest_rel([0.1, 0.9, 0.2], [0.2, 0.5, 0.1])
    assert paired_t_test(x, y).pvalue == pytest.approx(ref.pvalue, rel=1e-10)
    with pytest.raises(DataError, match="a has 2 values, b has 3"):
        paired_t_test([1.0, 2.0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize(("seed", "n"), [(0, 20), (1, 40), (2, 300)])
def test_wilcoxon_matches_scipy(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.random(n)
    b = a + rng.normal(0.03, 0.2, n)
    if n > 100:  # per-user metrics: many ties and zero differences
        a = np.round(a, 1)
        b = np.round(b, 1)
    got = wilcoxon_test(a, b)
    ref = stats.wilcoxon(a, b)
    assert got.statistic == pytest.approx(ref.statistic)
    assert got.pvalue == pytest.approx(ref.pvalue, rel=1e-10)


def test_wilcoxon_all_zero_differences_and_nan() -> None:
    a = np.array([0.0, 0.5, 1.0, 0.25])
    assert wilcoxon_test(a, a) == (0.0, 1.0)
    assert all(np.isnan(wilcoxon_test([np.nan], [1.0])))
    shift = np.array([0.1, -0.2, 0.3, 0.4])
    got = wilcoxon_test(np.append(a, np.nan), np.append(a + shift, 1.0))
    ref = stats.wilcoxon(a, a + shift)
    assert got.pvalue == pytest.approx(ref.pvalue)


def _holm_loop(p: np.ndarray) -> np.ndarray:
    """Holm as statsmodels' multipletests(method='holm') computes it, written as a loop."""
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def test_holm_hand_computed() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04*1, 0.06) = 0.06
    got = holm_correction([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_correction([np.nan, 0.5, 0.6]), [np.nan, 1.0, 1.0])
    assert holm_correction([]).size == 0
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        holm_correction([0.5, 1.5])


def test_holm_matches_loop_reference_and_is_monotone() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(25) ** 3
    got = holm_correction(p)
    np.testing.assert_allclose(got, _holm_loop(p))
    assert (got >= p).all()
    order = np.argsort(p)
    assert (np.diff(got[order]) >= 0).all()


def test_bootstrap_is_deterministic_per_seed() -> None:
    values = np.random.default_rng(1).normal(size=300)
    first = bootstrap_ci(values, rng=7)
    assert bootstrap_ci(values, rng=7) == first
    assert bootstrap_ci(values, rng=8) != first
    assert bootstrap_ci(values, rng=np.random.default_rng(7)) == first
    low, high = first
    assert low < values.mean() < high


def test_bootstrap_coverage_on_normal_samples() -> None:
    rng = np.random.default_rng(0)
    trials, n = 300, 60
    covered = 0
    for _ in range(trials):
        sample = rng.normal(loc=2.0, scale=1.5, size=n)
        low, high = bootstrap_ci(sample, n_resamples=400, rng=rng)
        covered += low <= 2.0 <= high
    # percentile bootstrap of the mean covers close to the nominal 95% (slightly less at n=60)
    assert 0.89 <= covered / trials <= 0.99


def test_bootstrap_width_matches_normal_theory_and_chunking() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=40_000)  # several resampling blocks
    low, high = bootstrap_ci(values, confidence=0.9, n_resamples=400, rng=0)
    half = stats.norm.ppf(0.95) * values.std(ddof=1) / np.sqrt(values.size)
    assert (high - low) / 2 == pytest.approx(half, rel=0.12)
    assert (low + high) / 2 == pytest.approx(values.mean(), abs=half * 0.2)


def test_bootstrap_errors_and_empty() -> None:
    assert all(np.isnan(bootstrap_ci([np.nan, np.nan])))
    with pytest.raises(ConfigError, match="confidence"):
        bootstrap_ci([1.0], confidence=1.0)
    with pytest.raises(ConfigError, match="n_resamples"):
        bootstrap_ci([1.0], n_resamples=0)


def test_compare_to_best() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(400)
    per_user = {
        "weak": base - 0.2 + rng.normal(0, 0.05, 400),
        "best": base,
        "close": base - 0.001 + rng.normal(0, 0.05, 400),
    }
    frame = compare_to_best(per_user)
    expected_columns = [
        "model",
        "mean",
        "diff_vs_best",
        "t_p",
        "wilcoxon_p",
        "t_p_holm",
        "wilcoxon_p_holm",
        "significant",
    ]
    assert list(frame.columns) == expected_columns
    assert list(frame["model"]) == ["best", "close", "weak"]
    best = frame.iloc[0]
    assert best["diff_vs_best"] == 0.0
    assert np.isnan(best["t_p"])
    assert np.isnan(best["wilcoxon_p_holm"])
    assert not best["significant"]
    weak = frame.set_index("model").loc["weak"]
    assert weak["diff_vs_best"] == pytest.approx(per_user["weak"].mean() - base.mean())
    assert weak["t_p"] == pytest.approx(stats.ttest_rel(per_user["weak"], base).pvalue)
    assert weak["significant"]
    assert not frame.set_index("model").loc["close", "significant"]
    np.testing.assert_allclose(
        frame["t_p_holm"].to_numpy()[1:], holm_correction(frame["t_p"].to_numpy()[1:])
    )
    # lower is better (e.g. RMSE): the weak model is now the best
    flipped = compare_to_best(per_user, higher_is_better=False, test="wilcoxon")
    assert flipped["model"].iloc[0] == "weak"
    assert flipped["significant"].iloc[1:].all()


def test_compare_to_best_errors() -> None:
    with pytest.raises(DataError, match="at least one model"):
        compare_to_best({})
    with pytest.raises(DataError, match="a: 2, b: 3"):
        compare_to_best({"a": [1.0, 2.0], "b": [1.0, 2.0, 3.0]})
    with pytest.raises(ConfigError, match="test"):
        compare_to_best({"a": [1.0]}, test="z")  # type: ignore[arg-type]
