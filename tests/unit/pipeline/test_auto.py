"""AutoRec: rule-based plan (split, families, budget) and an end-to-end run within budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.exceptions import ConfigError
from recforge.pipeline._probe import FitEstimate, fit_seconds
from recforge.pipeline.auto import RESERVE, auto, plan
from recforge.testing import toy_dataset


def _without_time(ds: Dataset) -> Dataset:
    return ds.with_interactions(ds.user, ds.item, ds.value, None)


def test_plan_explicit_with_time() -> None:
    ds = toy_dataset(explicit=True)
    p = plan(ds, 600)
    assert p.split["method"] == "temporal"
    assert "svd" in p.families
    assert "bpr" not in p.families
    assert "ease" in p.families
    assert p.families[0] == "popular"
    assert "popular" not in p.budgets
    # what the fit-time probes took comes out of the tuning pool
    assert 600 * (1 - RESERVE) - 60 < sum(p.budgets.values()) <= 600 * (1 - RESERVE)
    assert any(d.startswith("Fit time per family, measured") for d in p.decisions)
    assert p.budgets["als"] > p.budgets["itemknn"]  # weighted shares
    assert any("timestamps" in d for d in p.decisions)


def test_plan_implicit_without_time() -> None:
    ds = _without_time(toy_dataset(explicit=False))
    p = plan(ds, 60)
    assert p.split["method"] == "user_random"
    assert "bpr" in p.families
    assert "svd" not in p.families
    assert any("implicit" in d for d in p.decisions)


def test_plan_skips_families_whose_measured_fit_exceeds_half_their_share() -> None:
    ds = toy_dataset(explicit=False)
    probes: list[tuple[str, float]] = []

    def estimate(family: str, share: float) -> FitEstimate:
        probes.append((family, share))
        return FitEstimate(20.0 if family == "ease" else 0.1, probe_seconds=0.5)

    small = plan(ds, 60, estimate=estimate)
    assert "ease" not in small.families
    assert "ease" not in small.budgets
    assert any(
        d.startswith("EASE skipped: one fit would take about 20.0 s") for d in small.decisions
    )
    n_probed = len(probes)
    assert {f for f, _ in probes} == {"itemknn", "rp3beta", "als", "ease", "bpr"}
    # the probes' time comes out of the tuning pool
    assert sum(small.budgets.values()) == pytest.approx(60 * (1 - RESERVE) - 0.5 * n_probed)
    assert "ease" in plan(ds, 3600, estimate=estimate).families


def test_plan_leaves_out_a_family_that_cannot_fit_in_memory() -> None:
    def estimate(family: str, share: float) -> FitEstimate:
        if family == "ease":
            return FitEstimate(float("inf"), 0.0, "EASE needs 40.0 GiB for 100,000 items")
        return FitEstimate(0.1, 0.0)

    p = plan(toy_dataset(explicit=False), 3600, estimate=estimate)
    assert "ease" not in p.families
    assert "EASE skipped: EASE needs 40.0 GiB for 100,000 items." in p.decisions


def test_measured_fit_time_grows_with_the_data() -> None:
    ds = toy_dataset(explicit=False, n_users=400, n_items=60)
    small = fit_seconds("als", ds, fixed={"iterations": 2})
    assert 0 < small.seconds < 60
    assert small.probe_seconds > 0
    # a constant cost (EASE's items x items solve) is not scaled by the users
    ease = fit_seconds("ease", ds)
    assert ease.seconds < 60 * max(ease.probe_seconds, 1e-3)


def test_counts_are_not_ratings_and_their_weighting_is_searched() -> None:
    gen = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(
        {
            "user": gen.integers(0, 80, n),
            "item": gen.integers(0, 120, n),
            "plays": gen.zipf(1.6, n).astype(float),
        }
    )
    ds = Dataset.from_frame(frame, value="plays")
    assert ds.feedback.kind == "counts"
    p = plan(ds, 120, estimate=lambda family, share: FitEstimate(0.01, 0.0))
    assert "svd" not in p.families
    assert "bpr" in p.families
    assert any(d.startswith("Feedback: counts (whole numbers from 1") for d in p.decisions)
    assert p.spaces["als"] == {"weighting": {"choices": ["linear", "log", "bm25"]}}
    assert p.spaces["itemknn"] == {"binary": {"choices": [True, False]}}
    ratings = toy_dataset(explicit=True)
    assert ratings.feedback.kind == "ratings"
    assert plan(ratings, 120, estimate=lambda family, share: FitEstimate(0.01, 0.0)).spaces == {}


def test_auto_end_to_end_within_budget(tmp_path: Path) -> None:
    ds = toy_dataset(explicit=True)
    messages: list[str] = []
    budget = 8.0
    t0 = time.perf_counter()
    result = auto(ds, budget, output=tmp_path / "auto", progress=False, echo=messages.append)
    elapsed = time.perf_counter() - t0
    # the search itself keeps to the budget; final fits, evaluation and the report come on
    # top (a fixed cost of some seconds, more on a busy machine)
    assert elapsed < budget + 90.0
    doc = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    decisions = doc["notes"]["decisions"]
    assert any(d.startswith("Split:") for d in decisions)
    assert any(d.startswith("Budget:") for d in decisions)
    assert messages[-1].startswith("Winner: ")
    assert result.best in messages[-1]
    searched = 0.0
    for fam, info in doc["models"].items():
        if fam != "popular":
            assert info["tuning"]["n_complete"] >= 1
            assert info["tuning"]["wall_s"] < info["tuning"]["budget"]["timeout_s"] + 5
            searched += info["tuning"]["budget"]["timeout_s"]
    # the tuning pool (less the fit-time probes), each family given at least one second
    n_tuned = sum(1 for fam in doc["models"] if fam != "popular")
    assert searched <= budget * (1 - RESERVE) + n_tuned
    html = (tmp_path / "auto" / "report.html").read_text(encoding="utf-8")
    assert "Split:" in html
    assert np.isfinite(doc["models"][result.best]["test_score"])


def test_auto_reads_a_file_and_guesses_columns(tmp_path: Path) -> None:
    frame = toy_dataset(n_users=30, n_items=20).to_frame()
    frame = frame.rename(columns={"user": "user_id", "item": "item_id", "value": "rating"})
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, index=False)
    messages: list[str] = []
    auto(path, 4.0, output=tmp_path / "run", progress=False, echo=messages.append)
    assert "user: column 'user_id' (by its name)" in messages[0]
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["data"]["columns"]["value"] == "rating"


def test_auto_names_the_data_sets_when_the_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data file not found: .*movielens-small"):
        auto(tmp_path / "nope.csv", 10.0, output=tmp_path / "run")


def test_plan_considers_sasrec_for_timed_data_and_large_budgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recforge.pipeline import auto as auto_module

    ds = toy_dataset(explicit=False)
    monkeypatch.setattr(auto_module, "_torch_installed", lambda: True)
    big = plan(ds, auto_module.SEQUENTIAL_MIN_BUDGET_S)
    assert "sasrec" in big.families
    assert big.budgets["sasrec"] > big.budgets["itemknn"]
    small = plan(ds, 600)
    assert "sasrec" not in small.families
    assert any("SASRec skipped" in d and "budget" in d for d in small.decisions)
    assert "sasrec" not in plan(_without_time(ds), 3600).families
    monkeypatch.setattr(auto_module, "_torch_installed", lambda: False)
    no_torch = plan(ds, 3600)
    assert "sasrec" not in no_torch.families
    assert any("recforge[deep]" in d for d in no_torch.decisions)
