"""Optuna tuning: budgets honoured, journal resume, pruning through fit callbacks, overhead."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from recforge.data import Dataset
from recforge.exceptions import ConfigError
from recforge.models import MODELS
from recforge.pipeline.config import ModelConfig, SearchSpace, TuningConfig
from recforge.pipeline.tuning import default_search_space, tune
from recforge.split import random_split
from recforge.testing import toy_dataset


@pytest.fixture(scope="module")
def parts() -> tuple[Dataset, Dataset]:
    split = random_split(toy_dataset(), 0.2, per_user=True, valid_size=0.2, rng=0)
    assert split.valid is not None
    return split.train, split.valid


def _bias_space() -> ModelConfig:
    space = SearchSpace(type="float", low=0.5, high=30.0, log=True)
    return ModelConfig(model="bias", space={"reg_user": space, "reg_item": space})


def test_n_trials_is_honoured_and_best_is_reported(parts: tuple[Dataset, Dataset]) -> None:
    train, valid = parts
    result = tune(_bias_space(), TuningConfig(n_trials=5, k=5), train, valid, seed=1)
    assert len(result.trials) == 5
    assert (result.trials["state"] == "COMPLETE").all()
    assert result.best_value == pytest.approx(result.trials["value"].max())
    assert set(result.best_params) == {"reg_user", "reg_item"}
    assert 0.5 <= result.best_params["reg_user"] <= 30.0


def test_same_seed_same_trials(parts: tuple[Dataset, Dataset]) -> None:
    train, valid = parts
    a = tune(_bias_space(), TuningConfig(n_trials=4), train, valid, seed=7)
    b = tune(_bias_space(), TuningConfig(n_trials=4), train, valid, seed=7)
    np.testing.assert_array_equal(a.trials["param_reg_user"], b.trials["param_reg_user"])
    np.testing.assert_array_equal(a.trials["value"], b.trials["value"])


def test_timeout_is_honoured(parts: tuple[Dataset, Dataset]) -> None:
    train, valid = parts
    t0 = time.perf_counter()
    result = tune(_bias_space(), TuningConfig(n_trials=None, timeout=1.5), train, valid, seed=0)
    elapsed = time.perf_counter() - t0
    slowest = float(result.trials["duration_s"].max())
    assert len(result.trials) >= 2
    assert elapsed < 1.5 + slowest + 1.0  # stops starting trials once the budget is spent


def test_journal_resumes_the_study(parts: tuple[Dataset, Dataset], tmp_path: Path) -> None:
    train, valid = parts
    journal = tmp_path / "journal.log"
    first = tune(_bias_space(), TuningConfig(n_trials=3), train, valid, storage_path=journal)
    assert len(first.trials) == 3
    again = tune(_bias_space(), TuningConfig(n_trials=3), train, valid, storage_path=journal)
    assert len(again.trials) == 3  # the finished trials count toward the budget
    more = tune(_bias_space(), TuningConfig(n_trials=5), train, valid, storage_path=journal)
    assert len(more.trials) == 5
    assert journal.stat().st_size > 0


def test_pruning_uses_the_fit_callback(parts: tuple[Dataset, Dataset]) -> None:
    train, valid = parts
    mc = ModelConfig(
        model="als",
        fixed={"iterations": 8, "factors": 8},
        space={
            "alpha": SearchSpace(choices=[0.01, 50.0]),
            "rng": SearchSpace(type="int", low=0, high=1000),
        },
    )
    result = tune(mc, TuningConfig(n_trials=10, sampler="random"), train, valid, seed=0)
    trials = result.trials
    assert len(trials) == 10
    # intermediate scores are reported after iterations 1, 2, 4 and 8 (0-based 0, 1, 3, 7)
    assert set(trials["last_step"].astype(int)) <= {0, 1, 3, 7}
    pruned = trials[trials["state"] == "PRUNED"]
    assert len(pruned) >= 1
    assert (pruned["last_step"] < 7).all()
    assert (trials.loc[trials["state"] == "COMPLETE", "last_step"] == 7).all()


def test_overhead_per_trial_is_small(parts: tuple[Dataset, Dataset]) -> None:
    train, valid = parts
    result = tune(_bias_space(), TuningConfig(n_trials=10), train, valid, seed=0)
    assert result.overhead_per_trial_s < 0.05
    assert (result.trials["fit_s"] > 0).all()
    assert (result.trials["eval_s"] > 0).all()


def test_parallel_trials(parts: tuple[Dataset, Dataset]) -> None:
    train, valid = parts
    result = tune(_bias_space(), TuningConfig(n_trials=6, n_jobs=2), train, valid, seed=0)
    assert len(result.trials) == 6


def test_cross_validation_without_valid(parts: tuple[Dataset, Dataset]) -> None:
    train, _ = parts
    result = tune(_bias_space(), TuningConfig(n_trials=2, cv_folds=3), train, None, seed=0)
    assert len(result.trials) == 2
    with pytest.raises(ConfigError, match="needs validation data"):
        tune(_bias_space(), TuningConfig(n_trials=2), train, None)


def test_non_ranking_metric_rejected(parts: tuple[Dataset, Dataset]) -> None:
    train, valid = parts
    with pytest.raises(ConfigError, match=r"tuning.metric must be one of"):
        tune(_bias_space(), TuningConfig(n_trials=1, metric="coverage"), train, valid)


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"random", "content", "blend"}))
def test_default_spaces_fit_the_models(name: str) -> None:
    from recforge.models import model_class

    cls = model_class(name)
    space = default_search_space(name)
    assert space, f"no declared parameter of {cls.__name__} is tuned by default"
    names = cls.param_names()
    for key, spec in space.items():
        assert key in names
        param = cls.params.get(key)
        if param is None:
            continue
        probes = spec["choices"] if "choices" in spec else [spec["low"], spec["high"]]
        for value in probes:
            param.check(cls.__name__, key, int(value) if spec.get("type") == "int" else value)


def test_grid_sampler_covers_the_grid(parts: tuple[Dataset, Dataset]) -> None:
    train, valid = parts
    mc = ModelConfig(
        model="bias",
        space={
            "reg_user": SearchSpace(choices=[1.0, 10.0]),
            "iterations": SearchSpace(type="int", low=1, high=3),
        },
    )
    result = tune(mc, TuningConfig(n_trials=20, sampler="grid"), train, valid, seed=0)
    assert len(result.trials) == 6  # the grid is exhausted before the trial budget
    pairs = set(
        zip(result.trials["param_reg_user"], result.trials["param_iterations"], strict=True)
    )
    assert pairs == {(r, i) for r in (1.0, 10.0) for i in (1, 2, 3)}
    with pytest.raises(ConfigError, match="grid sampler needs 'choices'"):
        tune(_bias_space(), TuningConfig(n_trials=2, sampler="grid"), train, valid)
