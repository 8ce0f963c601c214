"""``recforge run``: execute a ``recforge.yaml`` end to end and write a run directory.

Layout of a run directory::

    run/
      config.yaml, config.json   the file as given and the resolved configuration
      environment.json           Python, library versions, CPU and thread settings
      data.json                  data fingerprint, summary and preparation reports
      split/{train,valid,test}.parquet   the split, with external ids (split/fold<i>/ for
                                 k-fold evaluation)
      tuning/<model>/trials.csv, journal.log   every Optuna trial and the study journal
      models/<model>/model/      the fitted model (safe format: JSON + npz, no pickle)
      models/<model>/result.json completion marker, written last (atomically)
      metrics.json, metrics.csv  summary with confidence intervals, per user group and segment
      per_user.parquet           per-user metric values (from the evaluation engine)
      significance.csv           paired tests against the best model (Holm-corrected)
      report.html                the self-contained report
      run.log

Re-running the same configuration resumes: a model whose ``result.json`` matches the current
configuration, data and split is neither tuned nor fitted again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge._io import atomic_open, atomic_write, jsonable
from recforge.data import Dataset
from recforge.evaluation import (
    RATING_METRICS,
    SCORE_METRICS,
    EvaluationProtocol,
    check_metrics,
    direction,
    evaluate_model,
    summarise,
    user_segments,
)
from recforge.exceptions import ConfigError, require
from recforge.models.base import Recommender
from recforge.pipeline._stats import fold_summary, paired_tests
from recforge.pipeline.config import ModelConfig, RunConfig, load_config
from recforge.pipeline.tuning import make_model, tune, tuning_metric
from recforge.split import Split

__all__ = ["RunResult", "load_data", "run", "run_config"]

log = logging.getLogger("recforge.pipeline")
_RUN_LOG: ContextVar[logging.Logger | None] = ContextVar("recforge_run_log", default=None)


def _note(message: str, *args: Any) -> None:
    """Log to ``recforge.pipeline`` (the application's handlers) and to the run's run.log."""
    log.info(message, *args)
    run_log = _RUN_LOG.get()
    if run_log is not None:
        run_log.info(message, *args)


ModelHook = Callable[[str], None]


# --------------------------------------------------------------------------- small helpers
def write_json(path: Path, doc: Any) -> None:
    """Atomic, indented JSON (NaN written as null)."""
    atomic_write(path, json.dumps(jsonable(doc), indent=2, sort_keys=False) + "\n")


def _hash(doc: Any) -> str:
    return hashlib.sha256(json.dumps(jsonable(doc), sort_keys=True).encode()).hexdigest()[:16]


def environment() -> dict[str, Any]:
    """Python, platform, library versions and thread settings of this process."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for lib in ("recforge", "numpy", "scipy", "pandas", "numba", "optuna", "scikit-learn"):
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    threads = {
        var: os.environ.get(var)
        for var in (
            "NUMBA_NUM_THREADS",
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
        )
    }
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "libraries": versions,
    }


# --------------------------------------------------------------------------- data
def load_data(cfg: RunConfig) -> Dataset:
    """Read the data source of a configuration (attribute tables included).

    Raises
    ------
    ConfigError, DataError
        On unreadable sources; messages name the file and column.
    """
    d = cfg.data
    cols = d.columns
    mapping: dict[str, Any] = {
        "user": cols.user,
        "item": cols.item,
        "value": cols.value,
        "time": cols.time,
    }
    for what in ("item", "user"):
        attr = getattr(d, f"{what}_attributes")
        if attr is not None:
            mapping[f"{what}_attributes"] = str(cfg.resolve(attr.path))
            mapping[f"{what}_key"] = attr.key
    if d.source == "builtin":
        from recforge.data.datasets import load

        assert d.name is not None
        return load(d.name)
    if d.source == "sql":
        assert d.url is not None
        assert d.query is not None
        return Dataset.from_sql(d.url, d.query, **mapping)
    assert d.path is not None
    path = cfg.resolve(d.path)
    if d.source == "sequences":
        from recforge.data import read_sequences

        return read_sequences(path)
    if d.source == "parquet":
        return Dataset.from_parquet(path, **mapping)
    return Dataset.from_csv(path, **mapping)


def data_summary(ds: Dataset) -> dict[str, Any]:
    """Numbers shown in the report's data card."""
    uc = ds.user_counts()
    ic = ds.item_counts()
    out: dict[str, Any] = {
        "name": ds.name,
        "n_users": ds.n_users,
        "n_items": ds.n_items,
        "n_interactions": ds.n_interactions,
        "density": ds.n_interactions / max(ds.n_users * ds.n_items, 1),
        "implicit": ds.is_implicit,
        "feedback": ds.feedback.kind,
        "feedback_reason": ds.feedback.reason,
        "has_time": ds.has_time,
        "user_activity": {q: float(np.quantile(uc, p)) for q, p in _QUANTS.items()},
        "item_popularity": {q: float(np.quantile(ic, p)) for q, p in _QUANTS.items()},
        "item_attributes": (
            list(map(str, ds.item_attributes.columns)) if ds.item_attributes is not None else []
        ),
    }
    if not ds.is_implicit:
        vals, counts = np.unique(ds.value, return_counts=True)
        if vals.size <= 20:
            out["values"] = {f"{v:g}": int(c) for v, c in zip(vals, counts, strict=True)}
    if ds.time is not None:
        out["time_range"] = [
            pd.Timestamp(int(ds.time.min()), unit="s").isoformat(),
            pd.Timestamp(int(ds.time.max()), unit="s").isoformat(),
        ]
    return out


_QUANTS = {"min": 0.0, "median": 0.5, "p90": 0.9, "max": 1.0}


# --------------------------------------------------------------------------- progress
class _Progress:
    """Rich progress bars on stderr, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )

    @contextmanager
    def running(self) -> Iterator[None]:
        if self._bar is None:
            yield
            return
        with self._bar:
            yield

    def add(self, description: str, total: float | None) -> Any:
        if self._bar is None:
            return None
        return self._bar.add_task(description, total=total)

    def advance(self, task: Any, by: float = 1.0, description: str | None = None) -> None:
        if self._bar is not None and task is not None:
            kw = {"description": description} if description else {}
            self._bar.update(task, advance=by, **kw)


# --------------------------------------------------------------------------- results
@dataclass
class RunResult:
    """What :func:`run_config` produced.

    Attributes
    ----------
    run_dir : pathlib.Path
        The run directory.
    summary : pandas.DataFrame
        ``model, metric, k, value, ci_low, ci_high, n_users, group``.
    significance : pandas.DataFrame
        Paired tests of every model against :attr:`best`.
    best : str
        Label of the winning model.
    reason : str
        Why it won, in one paragraph.
    refitted : list of str
        Models tuned/fitted in this invocation (the others were resumed).
    report : pathlib.Path or None
        The HTML report, when one was written.
    """

    run_dir: Path
    summary: pd.DataFrame
    significance: pd.DataFrame
    best: str
    reason: str
    refitted: list[str] = field(default_factory=list)
    report: Path | None = None


def _model_key(
    label: str, mc: ModelConfig, cfg: RunConfig, fingerprint: str, split_name: str
) -> str:
    return _hash(
        {
            "label": label,
            "model": mc.model_dump(mode="json"),
            "seed": cfg.seed,
            "data": fingerprint,
            "split": split_name,
            "split_spec": cfg.split.to_spec(),
            "tuning": cfg.tuning.model_dump(mode="json") if mc.tuned else None,
            "evaluation": cfg.evaluation.model_dump(mode="json"),
            "rerank": rerank_settings(cfg, mc),
        }
    )


def rerank_settings(cfg: RunConfig, mc: ModelConfig) -> list[dict[str, Any]]:
    """The re-ranking settings evaluated for a model: its own, else the run's."""
    return list(mc.rerank if mc.rerank is not None else cfg.rerank or [])


#: metrics of the re-ranking trade-off table: accuracy, intra-list diversity, coverage
TRADEOFF_METRICS = ("ndcg", "diversity", "coverage")


def _rerank_tradeoff(
    cfg: RunConfig,
    mc: ModelConfig,
    model: Recommender,
    train: Dataset,
    test: Dataset,
) -> list[dict[str, Any]]:
    """Accuracy and diversity of the model without and with each re-ranking setting.

    Every number comes from :func:`~recforge.evaluation.evaluate_model` (the one engine),
    known users, at the run's main cut-off.
    """
    from recforge.models.rerank import RerankSpec

    docs = rerank_settings(cfg, mc)
    if not docs:
        return []
    k = main_metric(cfg)[1] or cfg.evaluation.k[-1]
    protocol = EvaluationProtocol(
        metrics=TRADEOFF_METRICS, ks=(k,), max_users=cfg.evaluation.max_users, seed=cfg.seed
    )
    rows = []
    specs: list[RerankSpec | None] = [None, *(RerankSpec.from_dict(d) for d in docs)]
    for spec in specs:
        reranker = None if spec is None else spec.reranker(train.item_attributes)
        ev = evaluate_model(model, train, test, protocol, label="rerank", reranker=reranker)
        row: dict[str, Any] = {
            "setting": "none" if spec is None else spec.label,
            "spec": None if spec is None else spec.to_dict(),
            "k": k,
        }
        row.update({m: ev.value(m, k) for m in TRADEOFF_METRICS})
        rows.append(row)
    return rows


def check_rerank(cfg: RunConfig, dataset: Dataset) -> None:
    """Build every model's re-ranking settings against the data before anything is fitted.

    Raises
    ------
    ConfigError
        Naming the model and the setting, e.g. calibration without item attributes.
    """
    from recforge.models.rerank import RerankSpec

    attrs = dataset.item_attributes
    for label, mc in cfg.models.items():
        for doc in rerank_settings(cfg, mc):
            spec = RerankSpec.from_dict(doc)
            try:
                spec.reranker(attrs)
                uses_column = spec.calibrate is not None or spec.on == "features"
                if uses_column and attrs is not None and spec.category_column not in attrs:
                    raise ConfigError(
                        f"item attributes have no column {spec.category_column!r} "
                        f"(columns: {', '.join(map(str, attrs.columns))})"
                    )
            except ConfigError as exc:
                raise ConfigError(
                    f"model {label!r}, rerank setting {spec.label!r}: {exc}"
                ) from None


def _mean_rows(folds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Trade-off rows averaged over folds (same settings in the same order)."""
    if not folds:
        return []
    out = []
    for pos, row in enumerate(folds[0]):
        mean = dict(row)
        for m in TRADEOFF_METRICS:
            mean[m] = float(np.mean([f[pos][m] for f in folds]))
        mean["folds"] = len(folds)
        out.append(mean)
    return out


def main_metric(cfg: RunConfig) -> tuple[str, int | None]:
    """Metric and cut-off that decide the winner (no cut-off for ``rmse``, ``mae``, ``auc``)."""
    metric = check_metrics(
        [cfg.significance.metric or cfg.tuning.metric],
        kinds=("ranking", "score", "rating"),
        what="significance.metric",
    )[0]
    if metric in RATING_METRICS or metric in SCORE_METRICS:
        return metric, None
    ks = cfg.evaluation.k
    k = cfg.tuning.k if cfg.tuning.k in ks else ks[len(ks) // 2]
    return metric, k


def headline(summary: pd.DataFrame, metric: str, k: int | None, group: str) -> pd.DataFrame:
    """Rows of ``metric@k`` for ``group`` (one per model)."""
    sel = (summary["group"] == group) & (summary["metric"] == metric)
    sel &= summary["k"].isna() if k is None else summary["k"] == k
    return summary[sel]


def _label(metric: str, k: int | None) -> str:
    return metric if k is None else f"{metric}@{k}"


def explain_winner(
    summary: pd.DataFrame,
    sig: pd.DataFrame,
    best: str,
    metric: str,
    k: int | None,
    group: str = "known",
) -> str:
    """One paragraph saying why ``best`` won (value, CI, margins, significance)."""
    allm = headline(summary, metric, k, group)
    row = allm[allm["model"] == best].iloc[0]
    lower = direction(metric) == "minimize"
    word = "lowest" if lower else "highest"
    who = "test users" if group == "known" else f"{group} test users"
    text = (
        f"{best} has the {word} {_label(metric, k)}: {row['value']:.4f} "
        f"(95% CI {row['ci_low']:.4f}–{row['ci_high']:.4f}, {int(row['n_users'])} {who})."
    )
    if len(allm) < 2:
        return text
    runner_up = allm[allm["model"] != best].sort_values("value", ascending=lower).iloc[0]
    text += (
        f" The runner-up, {runner_up['model']}, scores {runner_up['value']:.4f} "
        f"({(row['value'] / max(runner_up['value'], 1e-12) - 1) * 100:+.1f}% for {best})."
    )
    if len(sig):
        tests = sig[sig["model"] == runner_up["model"]]
        if len(tests):
            parts = [f"{t['test']} p={t['p_adjusted']:.3g}" for t in tests.to_dict("records")]
            if bool(tests["significant"].all()):
                text += (
                    f" The difference is significant after Holm correction ({', '.join(parts)})."
                )
            else:
                text += (
                    f" The difference is NOT significant after correction ({', '.join(parts)}); "
                    "treat the two as tied and prefer the simpler or faster one."
                )
        n_sig = int(sig.groupby("model")["significant"].all().sum())
        text += f" {best} is significantly better than {n_sig} of {allm.shape[0] - 1} other models."
    return text


# --------------------------------------------------------------------------- run
def run(
    config: str | Path | RunConfig,
    *,
    run_dir: str | Path | None = None,
    progress: bool = True,
    on_model_done: ModelHook | None = None,
    report: bool = True,
) -> RunResult:
    """Execute a configuration file (or validated config) and write the run directory.

    Parameters
    ----------
    config
        Path of ``recforge.yaml`` or a validated :class:`RunConfig`.
    run_dir
        Override of ``output.dir``.
    progress
        Show rich progress bars on stderr.
    on_model_done
        Called with each model label after its result is saved (e.g. for monitoring).
    report
        Write ``report.html``.

    Returns
    -------
    RunResult
    """
    source_text = None
    if not isinstance(config, RunConfig):
        source_text = Path(config).read_text(encoding="utf-8") if Path(config).is_file() else None
        config = load_config(config)
    return run_config(
        config,
        run_dir=run_dir,
        progress=progress,
        on_model_done=on_model_done,
        source_text=source_text,
        report=report,
    )


def run_config(
    cfg: RunConfig,
    *,
    run_dir: str | Path | None = None,
    progress: bool = True,
    on_model_done: ModelHook | None = None,
    source_text: str | None = None,
    report: bool = True,
    dataset: Dataset | None = None,
    extra_notes: Mapping[str, Any] | None = None,
) -> RunResult:
    """Execute a validated configuration; see :func:`run`.

    Parameters
    ----------
    dataset
        Use these interactions instead of reading ``cfg.data`` (e.g. from ``recforge auto``).
    extra_notes
        Additional JSON content stored under ``"notes"`` in ``metrics.json`` (shown in the
        report).
    """
    out = Path(run_dir) if run_dir is not None else cfg.resolve(cfg.output.dir)
    out.mkdir(parents=True, exist_ok=True)
    # run.log belongs to the run, not to the process: a logger outside the logging tree, so
    # the application's logging configuration is neither changed nor bypassed
    run_log = logging.Logger("recforge.run", logging.INFO)
    handler = logging.FileHandler(out / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    run_log.addHandler(handler)
    token = _RUN_LOG.set(run_log)
    try:
        return _run(cfg, out, progress, on_model_done, source_text, report, dataset, extra_notes)
    finally:
        _RUN_LOG.reset(token)
        handler.close()


@dataclass(frozen=True)
class RunDirectory:
    """The files of one run, each written atomically (readers never see a partial file)."""

    root: Path

    def path(self, *parts: str) -> Path:
        """``root / parts``, its parent directory created."""
        out = self.root.joinpath(*parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    def text(self, name: str, text: str) -> None:
        """Write a text file."""
        atomic_write(self.path(name), text)

    def json(self, name: str, doc: Any) -> None:
        """Write indented JSON (NaN as ``null``)."""
        write_json(self.path(name), doc)

    def parquet(self, name: str, frame: pd.DataFrame) -> None:
        """Write a Parquet file."""
        with atomic_open(self.path(name)) as fh:
            frame.to_parquet(fh, index=False)

    def npz(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Write a NumPy archive (no pickled objects)."""
        with atomic_open(self.path(name)) as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]

    def model_dir(self, label: str) -> Path:
        """Directory of one model's results."""
        return self.root / "models" / label


@dataclass
class _ModelRun:
    """One model's results over the folds of a run (loaded from disk when resumed)."""

    info: dict[str, Any]
    per_user: pd.DataFrame
    aggregates: pd.DataFrame
    recommended_popularity: np.ndarray


def _protocol(cfg: RunConfig) -> tuple[EvaluationProtocol, str, int | None]:
    """The evaluation protocol of a run, its main metric and cut-off (all validated)."""
    metric, k_main = main_metric(cfg)
    metrics = check_metrics(cfg.evaluation.metrics, what="evaluation.metrics")
    if metric not in metrics:
        metrics.append(metric)
    protocol = EvaluationProtocol(
        metrics=tuple(metrics),
        ks=tuple(cfg.evaluation.k),
        max_users=cfg.evaluation.max_users,
        seed=cfg.seed,
    )
    return protocol, metric, k_main


def _prepare(cfg: RunConfig, rd: RunDirectory, dataset: Dataset | None) -> tuple[Dataset, str]:
    """Read and prepare the data; write ``data.json``."""
    ds = dataset if dataset is not None else load_data(cfg)
    reports: list[Any] = []
    if cfg.prepare:
        from recforge.data.prepare import apply_steps

        ds, reports = apply_steps(ds, cfg.prepare)
    return ds, _write_data(cfg, rd, ds, reports)


def _write_data(cfg: RunConfig, rd: RunDirectory, ds: Dataset, reports: list[Any]) -> str:
    """Write ``data.json`` (fingerprint, summary, preparation reports, engine)."""
    fingerprint = ds.fingerprint()
    rd.json(
        "data.json",
        {
            "fingerprint": fingerprint,
            "summary": data_summary(ds),
            "prepare": [r.to_dict() for r in reports],
            "engine": cfg.engine.model_dump(mode="json"),
        },
    )
    _note("data %s: fingerprint %s", ds, fingerprint)
    return fingerprint


def _split(cfg: RunConfig, rd: RunDirectory, ds: Dataset) -> list[Split]:
    """The split (or the folds of k-fold evaluation); write its parts."""
    from recforge.split import splits_by_name

    return _write_split(rd, splits_by_name(ds, cfg.split.to_spec()))


def _spark_data(cfg: RunConfig, rd: RunDirectory) -> tuple[Dataset, str, list[Split]]:
    """Read, prepare and split on Spark (``engine.type: spark``); write the same files."""
    from recforge.pipeline._spark import spark_prepare_and_split

    ds, reports, split = spark_prepare_and_split(cfg)
    return ds, _write_data(cfg, rd, ds, reports), _write_split(rd, [split])


def _write_split(rd: RunDirectory, folds: list[Split]) -> list[Split]:
    for i, split in enumerate(folds):
        prefix = ("split",) if len(folds) == 1 else ("split", f"fold{i}")
        for part, pds in split.parts.items():
            rd.parquet("/".join((*prefix, f"{part}.parquet")), pds.to_frame())
    _note("split %s", ", ".join(s.name for s in folds))
    return folds


def _fit_and_evaluate(
    cfg: RunConfig,
    rd: RunDirectory,
    label: str,
    mc: ModelConfig,
    folds: list[Split],
    protocol: EvaluationProtocol,
    bar: _Progress,
) -> dict[str, Any]:
    """Tune (on the first fold), fit and evaluate one model on every fold; save the results."""
    mdir = rd.model_dir(label)
    mdir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"model": mc.model, "tuned": mc.tuned}
    first = folds[0]
    params = dict(mc.fixed)
    if mc.tuned:
        params, info["tuning"] = _tune_one(cfg, rd, label, mc, first, bar)
    per_user, aggregates, rec_pop = [], [], []
    tradeoff: list[list[dict[str, Any]]] = []
    fit_s = recommend_s = 0.0
    notes: dict[str, str] = {}
    n_users: dict[str, int] = {}
    task = bar.add(f"fit {label}", 2 * len(folds))
    model: Recommender | None = None
    for i, split in enumerate(folds):
        full_train = split.train if split.valid is None else split.train.concat(split.valid)
        model = make_model(mc.model, params, cfg.seed)
        t0 = time.perf_counter()
        model.fit(full_train)
        fit_s += time.perf_counter() - t0
        bar.advance(task)
        ev = evaluate_model(model, full_train, split.test, protocol, label=label)
        bar.advance(task)
        tradeoff.append(_rerank_tradeoff(cfg, mc, model, full_train, split.test))
        per_user.append(ev.per_user.assign(fold=i))
        aggregates.append(ev.aggregates.assign(fold=i))
        rec_pop.append(ev.recommended_popularity)
        recommend_s += ev.seconds["recommend"]
        notes.update(ev.notes)
        n_users = {g: n_users.get(g, 0) + n for g, n in ev.n_users.items()}
    assert model is not None
    if cfg.output.save_models:
        model.save(
            mdir / "model",
            metadata={"data_fingerprint": folds[-1].train.fingerprint(), "run": cfg.name},
        )
    sub = RunDirectory(mdir)
    sub.parquet("per_user.parquet", pd.concat(per_user, ignore_index=True))
    sub.parquet("aggregates.parquet", pd.concat(aggregates, ignore_index=True))
    sub.npz("recommended_popularity.npz", {"popularity": np.concatenate(rec_pop)})
    info.update(
        {
            "params": model.get_params(),
            "fit_s": fit_s,
            "recommend_s": recommend_s,
            "n_users": n_users,
            "notes": notes,
        }
    )
    if any(tradeoff):
        info["rerank"] = _mean_rows(tradeoff)
    return info


def _tune_one(
    cfg: RunConfig, rd: RunDirectory, label: str, mc: ModelConfig, split: Split, bar: _Progress
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Search one model's hyperparameters on the split's validation part."""
    tuning = cfg.tuning
    if mc.n_trials is not None or mc.budget is not None:
        tuning = tuning.model_copy(
            update={
                "n_trials": mc.n_trials if mc.n_trials is not None else tuning.n_trials,
                "timeout": mc.budget if mc.budget is not None else tuning.timeout,
            }
        )
    task = bar.add(f"tune {label}", tuning.n_trials)
    _note("%s: tuning %s", label, sorted(mc.space))
    result = tune(
        mc,
        tuning,
        split.train,
        split.valid,
        seed=cfg.seed,
        storage_path=rd.path("tuning", label, "journal.log"),
        study_name=label,
        on_trial=lambda n, v: bar.advance(task),
    )
    rd.text(f"tuning/{label}/trials.csv", result.trials.to_csv(index=False))
    summary = {
        "best_value": result.best_value,
        "n_trials": len(result.trials),
        "n_complete": int((result.trials["state"] == "COMPLETE").sum()),
        "n_pruned": int((result.trials["state"] == "PRUNED").sum()),
        "wall_s": result.wall_s,
        "overhead_per_trial_s": result.overhead_per_trial_s,
        "metric": _label(*tuning_metric(tuning.metric, tuning.k)),
        "budget": {"n_trials": tuning.n_trials, "timeout_s": tuning.timeout},
    }
    return result.best_params, summary


def _load_done(mdir: Path, key: str) -> _ModelRun | None:
    marker = mdir / "result.json"
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if info.get("key") != key:
        return None
    try:
        pu = pd.read_parquet(mdir / "per_user.parquet")
        agg = pd.read_parquet(mdir / "aggregates.parquet")
        with np.load(mdir / "recommended_popularity.npz", allow_pickle=False) as z:
            pop = z["popularity"]
    except (OSError, ValueError, KeyError):
        return None
    return _ModelRun(info, pu, agg, pop)


def _evaluate_all(
    cfg: RunConfig,
    rd: RunDirectory,
    folds: list[Split],
    fingerprint: str,
    protocol: EvaluationProtocol,
    show: bool,
    on_model_done: ModelHook | None,
) -> tuple[dict[str, _ModelRun], list[str]]:
    """Every model's results, fitted now or resumed from a matching earlier run."""
    bar = _Progress(show)
    done: dict[str, _ModelRun] = {}
    refitted: list[str] = []
    split_name = "+".join(s.name for s in folds)
    with bar.running():
        overall = bar.add("models", len(cfg.models))
        for label, mc in cfg.models.items():
            mdir = rd.model_dir(label)
            key = _model_key(label, mc, cfg, fingerprint, split_name)
            result = _load_done(mdir, key)
            if result is None:
                info = _fit_and_evaluate(cfg, rd, label, mc, folds, protocol, bar)
                info["key"] = key
                rd.json(f"models/{label}/result.json", info)  # completion marker, written last
                refitted.append(label)
                result = _load_done(mdir, key)
                assert result is not None
            else:
                _note("%s: resumed from %s", label, mdir)
            done[label] = result
            bar.advance(overall, description=f"models (last: {label})")
            if on_model_done is not None:
                on_model_done(label)
    return done, refitted


def _summary(
    cfg: RunConfig,
    folds: list[Split],
    per_user: pd.DataFrame,
    aggregates: pd.DataFrame,
    metric: str,
    k_main: int | None,
) -> pd.DataFrame:
    """Summary rows: per group and activity segment, or over folds for k-fold evaluation."""
    if len(folds) > 1:
        return fold_summary(per_user, aggregates, alpha=cfg.significance.alpha)
    train = folds[0].train if folds[0].valid is None else folds[0].train.concat(folds[0].valid)
    known = per_user.loc[per_user["group"] == "known", "user"].drop_duplicates().to_numpy()
    codes = train.users.codes(known, missing="negative")
    segments = pd.Series(user_segments(train, codes), index=known)
    return summarise(
        per_user,
        aggregates,
        n_bootstrap=cfg.evaluation.bootstrap,
        confidence=1.0 - cfg.significance.alpha,
        rng=cfg.seed,
        segments=segments,
        segment_metrics=[(metric, k_main)],
    )


def _selection_group(per_user: pd.DataFrame, metric: str) -> str:
    """``known`` users decide the winner; on a cold-user split (none known), ``cold`` users."""
    rows = per_user[per_user["metric"] == metric]
    return "known" if (rows["group"] == "known").any() else "cold"


def _run(
    cfg: RunConfig,
    out: Path,
    show: bool,
    on_model_done: ModelHook | None,
    source_text: str | None,
    report: bool,
    dataset: Dataset | None,
    extra_notes: Mapping[str, Any] | None,
) -> RunResult:
    t_run = time.perf_counter()
    rd = RunDirectory(out)
    protocol, metric, k_main = _protocol(cfg)
    if cfg.mlflow.enabled:
        require("mlflow", "mlflow")
    _note("run %s started in %s", cfg.name, out)
    if source_text is not None:
        rd.text("config.yaml", source_text)
    rd.json("config.json", cfg.to_dict())
    rd.json("environment.json", environment())
    if cfg.engine.type == "spark" and dataset is None:
        ds, fingerprint, folds = _spark_data(cfg, rd)
    else:
        ds, fingerprint = _prepare(cfg, rd, dataset)
        folds = _split(cfg, rd, ds)
    check_rerank(cfg, ds)  # before any model is fitted
    done, refitted = _evaluate_all(cfg, rd, folds, fingerprint, protocol, show, on_model_done)

    per_user = pd.concat([r.per_user for r in done.values()], ignore_index=True)
    aggregates = pd.concat([r.aggregates for r in done.values()], ignore_index=True)
    group = _selection_group(per_user, metric)
    summary = _summary(cfg, folds, per_user, aggregates, metric, k_main)
    pairs = per_user[per_user["group"] == group]
    best, sig = paired_tests(
        pairs,
        metric=metric,
        k=k_main,
        tests=cfg.significance.tests,
        alpha=cfg.significance.alpha,
        correction=cfg.significance.correction,
        maximize=direction(metric) == "maximize",
    )
    if metric in RATING_METRICS:  # decided by the error over interactions, not a user mean
        rows = headline(summary, metric, None, group)
        best = str(rows.sort_values("value", kind="stable")["model"].iloc[0])
    reason = explain_winner(summary, sig, best, metric, k_main, group)
    for label, result in done.items():
        rows = headline(summary, metric, k_main, group)
        match = rows[rows["model"] == label]
        result.info["test_score"] = float(match["value"].iloc[0]) if len(match) else math.nan
    rd.text("metrics.csv", summary.to_csv(index=False))
    rd.text("significance.csv", sig.to_csv(index=False))
    rd.parquet("per_user.parquet", per_user)
    train0 = folds[0].train if folds[0].valid is None else folds[0].train.concat(folds[0].valid)
    arrays: dict[str, np.ndarray] = {"catalog": train0.item_counts().astype(np.float32)}
    arrays.update(
        {f"model_{i}": done[label].recommended_popularity for i, label in enumerate(cfg.models)}
    )
    rd.npz("popularity.npz", arrays)
    rd.json(
        "metrics.json",
        {
            "name": cfg.name,
            "main_metric": {"metric": metric, "k": k_main, "group": group},
            "protocol": {**protocol.to_dict(), "folds": len(folds)},
            "best": best,
            "reason": reason,
            "models": {label: r.info for label, r in done.items()},
            "model_order": list(cfg.models),
            "summary": summary.to_dict("records"),
            "significance": sig.to_dict("records"),
            "split": {
                "name": "+".join(s.name for s in folds),
                "parts": folds[0].describe().reset_index().to_dict("records"),
            },
            "alpha": cfg.significance.alpha,
            "wall_s": time.perf_counter() - t_run,
            "notes": dict(extra_notes or {}),
        },
    )
    if cfg.registry:
        _publish(cfg, out, best, done[best].info, metric, k_main, train0.concat(folds[0].test))
    if cfg.mlflow.enabled:
        _log_mlflow(cfg, out, summary, {label: r.info for label, r in done.items()}, best)
    report_path = None
    if report:
        from recforge.pipeline.report import build_report

        report_path = build_report(out)
    _note("winner: %s", reason)
    return RunResult(out, summary, sig, best, reason, refitted, report_path)


def _publish(
    cfg: RunConfig,
    out: Path,
    best: str,
    info: Mapping[str, Any],
    metric: str,
    k_main: int | None,
    everything: Dataset,
) -> None:
    """Refit the winner's recipe on all the data (train and test) and publish it, once.

    The offline metrics recorded are those of the winner fitted without the test part; the
    published model has seen every interaction, as a deployed model should. A resumed run
    whose winner and data match what it already published publishes nothing new.
    """
    from recforge.registry import ModelRegistry

    if not cfg.output.save_models:
        raise ConfigError("registry needs output.save_models: true (the winner is published)")
    assert cfg.registry is not None
    reg_root = cfg.resolve(Path(cfg.registry))
    marker = out / "published.json"
    fingerprint = everything.fingerprint()
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("model") == best and done.get("data_fingerprint") == fingerprint:
            _note("%s was already published as %s", best, done.get("version"))
            return
    model = Recommender.load(out / "models" / best / "model").clone().fit(everything)
    if cfg.retrieval is not None:
        if model.supports_inner_product:
            model.build_index(cfg.retrieval)
        else:
            _note("%s does not score by inner products: published without an index", best)
    version = ModelRegistry(reg_root).publish(
        model,
        metrics={_label(metric, k_main): info["test_score"]},
        data_fingerprint=fingerprint,
        extra={"fitted_on": "train+test", "run": str(out)},
        promote=True,
    )
    RunDirectory(out).json(
        "published.json",
        {"model": best, "version": version.version, "data_fingerprint": fingerprint},
    )
    _note("registered %s (refitted on all data) as %s in %s", best, version.version, reg_root)


def _log_mlflow(
    cfg: RunConfig,
    out: Path,
    summary: pd.DataFrame,
    model_info: Mapping[str, Mapping[str, Any]],
    best: str,
) -> None:
    import mlflow

    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    mlflow.set_experiment(cfg.mlflow.experiment)
    allm = summary[summary["group"] == "known"]
    with mlflow.start_run(run_name=cfg.name):
        mlflow.set_tag("best_model", best)
        for label, info in model_info.items():
            with mlflow.start_run(run_name=label, nested=True):
                mlflow.log_params({str(k): v for k, v in dict(info.get("params", {})).items()})
                rows = allm[allm["model"] == label]
                mlflow.log_metrics(
                    {
                        (r["metric"] if pd.isna(r["k"]) else f"{r['metric']}_at_{r['k']}"): float(
                            r["value"]
                        )
                        for r in rows.to_dict("records")
                        if np.isfinite(r["value"])
                    }
                )
        for name in ("metrics.json", "metrics.csv", "significance.csv", "config.json"):
            mlflow.log_artifact(str(out / name))
