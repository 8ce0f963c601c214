"""Hyperparameter search with Optuna.

:func:`tune` runs a seeded study (TPE by default) for one model: every trial fits the model on
the training part and scores the tuning metric on the validation part (or averages it over
k folds of the training data) with the evaluation engine, so a trial's value is the number
``recforge evaluate`` would report. Ranking metrics and AUC are maximised, RMSE and MAE
minimised. The budget is a number of trials and/or a wall time. Models that train in epochs
(``supports_epochs``) report intermediate validation scores so the median pruner can stop
hopeless trials early. The study is kept in an Optuna
journal file and every trial is written to ``trials.csv`` with its fit, evaluation and
overhead times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from recforge.data import Dataset
from recforge.evaluation import (
    RATING_METRICS,
    SCORE_METRICS,
    EvaluationProtocol,
    check_metrics,
    direction,
    evaluate_model,
)
from recforge.exceptions import ConfigError, require
from recforge.models import model_class
from recforge.models.base import Recommender

if TYPE_CHECKING:
    import optuna

    from recforge.pipeline.config import ModelConfig, TuningConfig

__all__ = [
    "DEFAULT_SPACES",
    "TuningResult",
    "default_search_space",
    "make_model",
    "tune",
    "validation_score",
]

#: Tuned default search spaces, keyed by model short name and constructor parameter name.
#: Only the parameters a model class actually declares are used.
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "popular": {"half_life_days": {"choices": [None, 30.0, 180.0, 730.0]}},
    "bias": {
        "reg_user": {"type": "float", "low": 0.1, "high": 50.0, "log": True},
        "reg_item": {"type": "float", "low": 0.1, "high": 50.0, "log": True},
    },
    "itemknn": {
        "n_neighbors": {"type": "int", "low": 10, "high": 500, "log": True},
        "shrink": {"type": "float", "low": 0.0, "high": 100.0},
    },
    "userknn": {
        "n_neighbors": {"type": "int", "low": 10, "high": 500, "log": True},
        "shrink": {"type": "float", "low": 0.0, "high": 100.0},
    },
    "rp3beta": {
        "alpha": {"type": "float", "low": 0.2, "high": 1.5},
        "beta": {"type": "float", "low": 0.0, "high": 1.0},
        "n_neighbors": {"type": "int", "low": 20, "high": 500, "log": True},
    },
    "svd": {
        "factors": {"type": "int", "low": 10, "high": 200, "log": True},
        "epochs": {"type": "int", "low": 10, "high": 60},
        "learning_rate": {"type": "float", "low": 0.002, "high": 0.03, "log": True},
        "reg": {"type": "float", "low": 0.005, "high": 0.2, "log": True},
    },
    "svdpp": {
        "factors": {"type": "int", "low": 5, "high": 50, "log": True},
        "epochs": {"type": "int", "low": 10, "high": 40},
        "learning_rate": {"type": "float", "low": 0.002, "high": 0.02, "log": True},
        "reg": {"type": "float", "low": 0.005, "high": 0.2, "log": True},
    },
    "als": {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "iterations": {"type": "int", "low": 5, "high": 30},
        "reg": {"type": "float", "low": 0.001, "high": 10.0, "log": True},
        "alpha": {"type": "float", "low": 1.0, "high": 100.0, "log": True},
    },
    "bpr": {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "epochs": {"type": "int", "low": 10, "high": 100, "log": True},
        "learning_rate": {"type": "float", "low": 0.005, "high": 0.2, "log": True},
        "reg": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    },
    "ease": {"reg": {"type": "float", "low": 50.0, "high": 5000.0, "log": True}},
    "slim": {
        "reg": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
        "l1_ratio": {"type": "float", "low": 0.01, "high": 0.9, "log": True},
    },
    "sasrec": {
        "embedding_size": {"choices": [32, 64, 128]},
        "n_blocks": {"type": "int", "low": 1, "high": 3},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "max_length": {"choices": [50, 100, 200]},
    },
    "multvae": {
        "hidden": {"choices": [200, 600]},
        "latent": {"choices": [64, 200]},
        "dropout": {"type": "float", "low": 0.2, "high": 0.7},
        "beta_cap": {"type": "float", "low": 0.05, "high": 1.0, "log": True},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    },
    "hybridmf": {
        "factors": {"type": "int", "low": 16, "high": 128, "log": True},
        "epochs": {"type": "int", "low": 5, "high": 60, "log": True},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
        "reg": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    },
}


def default_search_space(name: str) -> dict[str, dict[str, Any]]:
    """Tuned default search space of a registered model (only parameters it declares).

    Raises
    ------
    ConfigError
        If the model is unknown.
    """
    try:
        cls = model_class(name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    declared = set(cls.param_names())
    space = DEFAULT_SPACES.get(name.lower(), {})
    return {key: dict(val) for key, val in space.items() if key in declared}


def make_model(name: str, params: Mapping[str, Any], seed: int) -> Recommender:
    """Instantiate a registered model; a declared ``rng`` parameter defaults to ``seed``."""
    cls = model_class(name)
    kwargs = dict(params)
    if "rng" in cls.param_names() and "rng" not in kwargs:
        kwargs["rng"] = seed
    return cls(**kwargs)


def tuning_metric(metric: str, k: int | None) -> tuple[str, int | None]:
    """The validated tuning metric and its cutoff (``None`` for ``rmse``, ``mae``, ``auc``).

    Ranking metrics (``ndcg``, ``recall``, ...), ``auc`` and the rating metrics ``rmse`` and
    ``mae`` (minimised) can be tuned; list-level and beyond-accuracy metrics cannot.

    Raises
    ------
    ConfigError
        Naming the setting and the metrics it accepts.
    """
    name = check_metrics([metric], kinds=("ranking", "score", "rating"), what="tuning.metric")[0]
    return name, (None if name in RATING_METRICS or name in SCORE_METRICS else k)


def validation_score(
    model: Recommender,
    train: Dataset,
    valid: Dataset,
    metric: str,
    k: int | None,
    *,
    max_users: int,
) -> float:
    """``metric@k`` of a fitted model on validation users, from the evaluation engine.

    Known users decide; on data whose validation users are all cold, the cold group does.
    """
    name, cutoff = tuning_metric(metric, k)
    protocol = EvaluationProtocol(metrics=(name,), ks=(cutoff or 10,), max_users=max_users, seed=0)
    ev = evaluate_model(model, train, valid, protocol)
    group = "known" if ev.n_users.get("known") else "cold"
    return ev.value(name, cutoff, group)


@dataclass
class TuningResult:
    """Outcome of :func:`tune`.

    Attributes
    ----------
    best_params : dict
        Fixed and tuned hyperparameters of the best trial.
    best_value : float
        Its validation score.
    trials : pandas.DataFrame
        One row per trial: number, state, value, params, ``fit_s``, ``eval_s``, ``overhead_s``,
        ``duration_s``, ``start_s`` (seconds since the study began).
    wall_s : float
        Wall time of the search run by this call.
    n_new : int
        Trials run by this call (the others were resumed from the journal).
    work_s : float
        Seconds those trials spent fitting and evaluating.
    """

    best_params: dict[str, Any]
    best_value: float
    trials: pd.DataFrame
    wall_s: float
    n_new: int = 0
    work_s: float = 0.0

    @property
    def overhead_per_trial_s(self) -> float:
        """Search wall time not spent fitting or evaluating, per trial run in this call.

        Covers sampling, pruning decisions, the journal writes and all bookkeeping (with
        ``n_jobs > 1`` trials overlap and this is an upper bound).
        """
        if self.n_new == 0:
            return float("nan")
        return max(0.0, self.wall_s - self.work_s) / self.n_new


def _kfold(train: Dataset, folds: int, seed: int) -> list[tuple[Dataset, Dataset]]:
    rng = np.random.default_rng(seed)
    assign = rng.integers(0, folds, size=train.n_interactions)
    return [(train.subset(assign != f), train.subset(assign == f)) for f in range(folds)]


#: Largest number of values an int range may expand to for the grid sampler.
GRID_MAX_INT_VALUES = 100


def _grid(spaces: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Grid of every parameter: its choices, or every value of a (stepped) int range."""
    grid: dict[str, list[Any]] = {}
    for name, space in spaces.items():
        if space.get("choices") is not None:
            grid[name] = list(space["choices"])
            continue
        if space["type"] == "int" and not space.get("log"):
            values = list(
                range(int(space["low"]), int(space["high"]) + 1, int(space.get("step") or 1))
            )
            if len(values) <= GRID_MAX_INT_VALUES:
                grid[name] = values
                continue
        raise ConfigError(
            f"the grid sampler needs 'choices' (or a short linear int range) for every "
            f"parameter; {name!r} is a {space['type']} range"
        )
    return grid


def _sampler(
    kind: str, seed: int, spaces: Mapping[str, Mapping[str, Any]]
) -> optuna.samplers.BaseSampler:
    import optuna

    if kind == "grid":
        return optuna.samplers.GridSampler(_grid(spaces), seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ConfigError(f"unknown tuning.sampler {kind!r} (samplers: tpe, random, grid, cmaes)")


def _suggest(trial: optuna.Trial, name: str, space: Mapping[str, Any]) -> Any:
    if space.get("choices") is not None:
        return trial.suggest_categorical(name, list(space["choices"]))
    log = bool(space.get("log", False))
    step = space.get("step")
    if space["type"] == "int":
        return trial.suggest_int(
            name, int(space["low"]), int(space["high"]), log=log, step=int(step or 1)
        )
    return trial.suggest_float(name, float(space["low"]), float(space["high"]), log=log, step=step)


def tune(
    model_cfg: ModelConfig,
    tuning: TuningConfig,
    train: Dataset,
    valid: Dataset | None,
    *,
    seed: int = 0,
    storage_path: Path | None = None,
    study_name: str = "study",
    max_eval_users: int = 2000,
    on_trial: Callable[[int, float | None], None] | None = None,
) -> TuningResult:
    """Search hyperparameters of one model.

    Parameters
    ----------
    model_cfg
        Model name, fixed parameters and search space.
    tuning
        Sampler, budget (``n_trials`` and/or ``timeout``), pruning, metric, folds, ``n_jobs``.
    train
        Data the trial models are fitted on.
    valid
        Validation interactions; required unless ``tuning.cv_folds`` is set.
    seed
        Seed of the sampler, the folds and the models' ``rng``.
    storage_path
        Optuna journal file; an existing study of the same name is resumed (finished trials
        count toward the budget).
    study_name
        Name of the study in the journal.
    max_eval_users
        Validation users scored per trial (a seeded sample), bounding the evaluation cost.
    on_trial
        Called after each trial with its number and value (``None`` if pruned or failed).

    Returns
    -------
    TuningResult

    Raises
    ------
    ConfigError
        If there is no validation data, the metric cannot be tuned (or needs a rating model
        on explicit data), or every trial failed.
    """
    require("optuna", "tune")

    metric, k = tuning_metric(tuning.metric, tuning.k)
    if metric in RATING_METRICS:
        cls = model_class(model_cfg.model)
        if not cls.supports_predict or train.is_implicit:
            raise ConfigError(
                f"tuning.metric {metric!r} needs a rating model (one that predicts) on explicit "
                f"data; {model_cfg.model!r} on {'implicit' if train.is_implicit else 'its'} "
                "data cannot be tuned on it"
            )
    folds = _tuning_folds(train, valid, tuning.cv_folds, seed)
    spaces = {name: space.to_dict() for name, space in model_cfg.space.items()}
    study, journal = _studies(tuning, study_name, storage_path, direction(metric), seed, spaces)
    objective = _Objective(
        model_cfg, folds, metric, k, seed, max_eval_users, tuning.pruning, spaces, study
    )
    done = sum(1 for t in study.trials if t.state.is_finished())
    remaining = None if tuning.n_trials is None else max(0, tuning.n_trials - done)
    lock = threading.Lock()

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with lock:
            if journal is not None:
                journal.add_trial(trial)
            if on_trial is not None:
                on_trial(trial.number, trial.value)

    objective.start(tuning.timeout)
    if remaining is None or remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=tuning.timeout,
            n_jobs=tuning.n_jobs,
            callbacks=[after],
            catch=(ArithmeticError, FloatingPointError, np.linalg.LinAlgError),
        )
    return _tuning_result(study, done, time.perf_counter() - objective.t_study, model_cfg, tuning)


def _tuning_result(
    study: optuna.Study, done: int, wall: float, model_cfg: ModelConfig, tuning: TuningConfig
) -> TuningResult:
    """The best trial and the trial table; ``done`` trials were resumed from the journal."""
    import optuna

    trials = _trials_frame(study)
    new = trials[trials["number"] >= done]
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise ConfigError(
            f"tuning of {model_cfg.model!r} finished no trial within the budget "
            f"(n_trials={tuning.n_trials}, timeout={tuning.timeout}); raise the budget"
        )
    best = study.best_trial
    return TuningResult(
        best_params={**model_cfg.fixed, **best.params},
        best_value=float(best.value) if best.value is not None else float("nan"),
        trials=trials,
        wall_s=wall,
        n_new=len(new),
        work_s=float(np.nansum(new["fit_s"]) + np.nansum(new["eval_s"])),
    )


def _tuning_folds(
    train: Dataset, valid: Dataset | None, cv_folds: int | None, seed: int
) -> list[tuple[Dataset, Dataset]]:
    if cv_folds:
        return _kfold(train, cv_folds, seed)
    if valid is not None and valid.n_interactions:
        return [(train, valid)]
    raise ConfigError("tuning needs validation data: set split.valid_size > 0 or tuning.cv_folds")


def _studies(
    tuning: TuningConfig,
    study_name: str,
    storage_path: Path | None,
    goal: Literal["maximize", "minimize"],
    seed: int,
    spaces: Mapping[str, Mapping[str, Any]],
) -> tuple[optuna.Study, optuna.Study | None]:
    """The in-memory study and, with a journal file, the journal study it resumes from.

    The search runs on in-memory storage; each finished trial is appended to the journal
    file as one record (one fsync), instead of one synced write per Optuna operation, which
    would cost tens of milliseconds per trial.
    """
    import optuna

    journal: optuna.Study | None = None
    if storage_path is not None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage_path.parent.mkdir(parents=True, exist_ok=True)
        journal = optuna.create_study(
            study_name=study_name,
            storage=JournalStorage(JournalFileBackend(str(storage_path))),
            load_if_exists=True,
            direction=goal,
        )
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        if tuning.pruning
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=study_name,
        direction=goal,
        sampler=_sampler(tuning.sampler, seed, spaces),
        pruner=pruner,
    )
    if journal is not None:
        study.add_trials([t for t in journal.get_trials(deepcopy=False) if t.state.is_finished()])
    return study, journal


class _Objective:
    """One trial: fit on each fold's training part, score on its validation part, average.

    Models that train in epochs (``supports_epochs``) report the validation score after
    epochs 1, 2, 4, 8, ... of the first fold, so the pruner can stop hopeless trials; a trial
    is also stopped once the time budget has run out and another trial has completed.
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        folds: list[tuple[Dataset, Dataset]],
        metric: str,
        k: int | None,
        seed: int,
        max_users: int,
        pruning: bool,
        spaces: Mapping[str, Mapping[str, Any]],
        study: optuna.Study,
    ) -> None:
        self.model_cfg = model_cfg
        self.folds = folds
        self.metric = metric
        self.k = k
        self.seed = seed
        self.max_users = max_users
        self.pruning = pruning
        self.spaces = spaces
        self.study = study
        self.t_study = time.perf_counter()
        self.deadline: float | None = None

    def start(self, timeout: float | None) -> None:
        """Start the clock of the study (and of its time budget)."""
        self.t_study = time.perf_counter()
        self.deadline = None if timeout is None else self.t_study + timeout

    def __call__(self, trial: optuna.Trial) -> float:
        t_start = time.perf_counter()
        params = dict(self.model_cfg.fixed)
        for name, space in self.spaces.items():
            params[name] = _suggest(trial, name, space)
        times = [0.0, 0.0]  # seconds fitting, seconds evaluating
        try:
            scores = [
                self._fold(trial, params, fold, tr, va, times)
                for fold, (tr, va) in enumerate(self.folds)
            ]
            return float(np.mean(scores))
        finally:  # also for pruned trials, so their fit time is not counted as overhead
            trial.set_user_attr(
                "timing",
                {"fit_s": times[0], "eval_s": times[1], "start_s": t_start - self.t_study},
            )

    def _score(self, model: Recommender, tr: Dataset, va: Dataset) -> float:
        return validation_score(model, tr, va, self.metric, self.k, max_users=self.max_users)

    def _fold(
        self,
        trial: optuna.Trial,
        params: dict[str, Any],
        fold: int,
        tr: Dataset,
        va: Dataset,
        times: list[float],
    ) -> float:
        model = make_model(self.model_cfg.model, params, self.seed)
        t0 = time.perf_counter()
        eval_s = [0.0]
        callback = (
            self._pruning_callback(trial, tr, va, eval_s)
            if self.pruning and fold == 0 and model.supports_epochs
            else None
        )
        try:
            model.fit(tr, callback=callback) if callback is not None else model.fit(tr)
        finally:
            times[0] += time.perf_counter() - t0 - eval_s[0]
            times[1] += eval_s[0]
        t1 = time.perf_counter()
        score = self._score(model, tr, va)
        times[1] += time.perf_counter() - t1
        return score

    def _pruning_callback(
        self, trial: optuna.Trial, tr: Dataset, va: Dataset, eval_s: list[float]
    ) -> Callable[[int, Recommender], None]:
        import optuna

        calls = [0]

        def callback(epoch: int, fitted: Recommender) -> None:
            calls[0] += 1
            if (
                self.deadline is not None
                and time.perf_counter() > self.deadline
                and any(
                    t.state == optuna.trial.TrialState.COMPLETE
                    for t in self.study.get_trials(deepcopy=False)
                )
            ):
                raise optuna.TrialPruned("the time budget ran out")
            if calls[0] & (calls[0] - 1):  # report after epochs 1, 2, 4, 8, ... only
                return
            te = time.perf_counter()
            value = self._score(fitted, tr, va)
            eval_s[0] += time.perf_counter() - te
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at iteration {epoch}")

        return callback


def _trials_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for t in study.trials:
        timing = t.user_attrs.get("timing", {})
        fit_s = float(timing.get("fit_s", np.nan))
        eval_s = float(timing.get("eval_s", np.nan))
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete is not None and t.datetime_start is not None
            else float("nan")
        )
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "duration_s": duration,
            "start_s": timing.get("start_s", float("nan")),
            "fit_s": fit_s,
            "eval_s": eval_s,
            # Optuna's own time (sampling, storage) and ours: the trial's wall time minus
            # the time spent fitting and evaluating (NaN for pruned or failed trials)
            "overhead_s": float(np.maximum(duration - fit_s - eval_s, 0.0)),
            "last_step": t.last_step,
        }
        row.update({f"param_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)
