"""Paired tests against the best model and the tidy summary, on values with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recforge.evaluation import summarise
from recforge.pipeline._stats import fold_summary, paired_tests


def _long(values: dict[str, np.ndarray], metric: str = "ndcg", k: int = 10) -> pd.DataFrame:
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "model": m,
                    "group": "known",
                    "user": np.arange(v.size),
                    "metric": metric,
                    "k": k,
                    "value": v,
                }
            )
            for m, v in values.items()
        ],
        ignore_index=True,
    )


def test_clear_winner_and_tie() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(200)
    values = {
        "strong": base + 0.2,
        "twin": base + 0.2 + rng.normal(0, 0.01, 200),  # indistinguishable from strong
        "weak": base + rng.normal(0, 0.05, 200),
    }
    best, table = paired_tests(_long(values), metric="ndcg", k=10)
    assert best in {"strong", "twin"}
    other_twin = "twin" if best == "strong" else "strong"
    weak = table[table["model"] == "weak"]
    assert weak["significant"].all()
    assert table[table["model"] == other_twin]["significant"].sum() == 0
    t_row = table[(table["model"] == "weak") & (table["test"] == "t-test")].iloc[0]
    expected = stats.ttest_rel(values[best], values["weak"]).pvalue
    assert t_row["p_value"] == pytest.approx(expected, rel=1e-6)
    # Holm over the family of two comparisons: the smaller p doubles, the larger is kept
    t_rows = table[table["test"] == "t-test"].sort_values("p_value")
    assert t_rows["p_adjusted"].iloc[0] == pytest.approx(min(1.0, 2 * t_rows["p_value"].iloc[0]))
    assert t_rows["p_adjusted"].iloc[1] == pytest.approx(
        max(t_rows["p_adjusted"].iloc[0], t_rows["p_value"].iloc[1])
    )


def test_no_correction_keeps_raw_p() -> None:
    rng = np.random.default_rng(1)
    values = {"a": rng.random(50) + 0.1, "b": rng.random(50), "c": rng.random(50)}
    _, table = paired_tests(_long(values), metric="ndcg", k=10, correction="none")
    np.testing.assert_allclose(table["p_adjusted"], table["p_value"])


def test_identical_models_are_not_significant() -> None:
    v = np.linspace(0, 1, 30)
    _, table = paired_tests(_long({"a": v, "b": v.copy()}), metric="ndcg", k=10)
    assert (table["p_value"] == 1.0).all()
    assert not table["significant"].any()


def test_summarise_ci_and_segments() -> None:
    rng = np.random.default_rng(2)
    v = rng.random(100)
    per_user = _long({"m": v})
    segments = pd.Series(np.where(np.arange(100) < 30, "light", "heavy"), index=np.arange(100))
    aggregates = pd.DataFrame(
        [
            {
                "model": "m",
                "group": "known",
                "metric": "coverage",
                "k": 10,
                "value": 0.3,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n_users": 100,
            }
        ]
    )
    out = summarise(per_user, aggregates, segments=segments, n_bootstrap=500, rng=0)
    row = out[(out["group"] == "known") & (out["metric"] == "ndcg")].iloc[0]
    assert row["value"] == pytest.approx(v.mean())
    assert row["ci_low"] < v.mean() < row["ci_high"]
    se = v.std(ddof=1) / np.sqrt(v.size)
    assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.25)
    light = out[out["group"] == "light"].iloc[0]
    assert light["n_users"] == 30
    assert light["value"] == pytest.approx(v[:30].mean())
    cov = out[out["metric"] == "coverage"].iloc[0]
    assert cov["value"] == 0.3


def test_fold_summary_mean_and_t_interval_over_folds() -> None:
    fold_means = np.array([0.20, 0.25, 0.22, 0.27, 0.21])
    frames = []
    for f, mean in enumerate(fold_means):
        frame = _long({"m": np.array([mean - 0.05, mean + 0.05])})
        frames.append(frame.assign(fold=f))
    per_user = pd.concat(frames, ignore_index=True)
    aggregates = pd.DataFrame(
        columns=["model", "group", "metric", "k", "value", "ci_low", "ci_high", "n_users", "fold"]
    )
    out = fold_summary(per_user, aggregates, alpha=0.05)
    row = out.iloc[0]
    assert row["value"] == pytest.approx(fold_means.mean())
    half = stats.t.ppf(0.975, 4) * fold_means.std(ddof=1) / np.sqrt(5)
    assert row["ci_low"] == pytest.approx(fold_means.mean() - half)
    assert row["ci_high"] == pytest.approx(fold_means.mean() + half)
    assert row["n_folds"] == 5
    assert row["n_users"] == 10
