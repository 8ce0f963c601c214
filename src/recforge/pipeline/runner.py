"""``recforge run``: execute a ``recforge.yaml`` end to end and write a run directory.

Layout of a run directory::

    run/
      config.yaml, config.json   the file as given and the resolved configuration
      environment.json           Python, library versions, CPU and thread settings
      data.json                  data fingerprint, summary and preparation reports
      split/{train,valid,test}.parquet   the split, with external ids
      tuning/<model>/trials.csv, journal.log   every Optuna trial and the study journal
      models/<model>/model/      the fitted model (safe format: JSON + npz, no pickle)
      models/<model>/result.json completion marker, written last (atomically)
      metrics.json, metrics.csv  summary with bootstrap CIs, per segment
      per_user.parquet           per-user metric values
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
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.data import Dataset
from recforge.evaluation import _jsonable
from recforge.exceptions import require
from recforge.models.base import Recommender
from recforge.pipeline._evaluate import check_metrics, evaluate_models, user_segments
from recforge.pipeline._stats import paired_tests, summarise
from recforge.pipeline.config import ModelConfig, RunConfig, load_config
from recforge.pipeline.tuning import make_model, tune

__all__ = ["RunResult", "load_data", "run", "run_config"]

log = logging.getLogger("recforge.pipeline")

ModelHook = Callable[[str], None]


# --------------------------------------------------------------------------- small helpers
def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file so that readers see either the old or the complete new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = data if isinstance(data, bytes) else data.encode("utf-8")
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, doc: Any) -> None:
    """Atomic, indented JSON (NaN written as null)."""
    atomic_write(path, json.dumps(_jsonable(doc), indent=2, sort_keys=False) + "\n")


def _hash(doc: Any) -> str:
    return hashlib.sha256(json.dumps(_jsonable(doc), sort_keys=True).encode()).hexdigest()[:16]


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


def _save_split_part(ds: Dataset, path: Path) -> None:
    frame = ds.to_frame()
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


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
        }
    )


def main_metric(cfg: RunConfig) -> tuple[str, int]:
    """Metric and cut-off that decide the winner."""
    metric = (cfg.significance.metric or cfg.tuning.metric).lower()
    ks = cfg.evaluation.k
    k = cfg.tuning.k if cfg.tuning.k in ks else ks[len(ks) // 2]
    return metric, k


def explain_winner(summary: pd.DataFrame, sig: pd.DataFrame, best: str, metric: str, k: int) -> str:
    """One paragraph saying why ``best`` won (value, CI, margins, significance)."""
    allm = summary[
        (summary["group"] == "all") & (summary["metric"] == metric) & (summary["k"] == k)
    ]
    row = allm[allm["model"] == best].iloc[0]
    text = (
        f"{best} has the highest {metric}@{k}: {row['value']:.4f} "
        f"(95% CI {row['ci_low']:.4f}–{row['ci_high']:.4f}, {int(row['n_users'])} test users)."
    )
    if len(allm) < 2:
        return text
    runner_up = allm[allm["model"] != best].sort_values("value", ascending=False).iloc[0]
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
    handler = logging.FileHandler(out / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return _run(cfg, out, progress, on_model_done, source_text, report, dataset, extra_notes)
    finally:
        log.removeHandler(handler)
        handler.close()


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
    from recforge.split import split_by_name

    t_run = time.perf_counter()
    metrics = check_metrics(cfg.evaluation.metrics)
    metric, k_main = main_metric(cfg)
    check_metrics([metric])
    if cfg.mlflow.enabled:
        require("mlflow", "mlflow")
    log.info("run %s started in %s", cfg.name, out)
    if source_text is not None:
        atomic_write(out / "config.yaml", source_text)
    write_json(out / "config.json", cfg.to_dict())
    write_json(out / "environment.json", environment())

    ds = dataset if dataset is not None else load_data(cfg)
    reports: list[Any] = []
    if cfg.prepare:
        from recforge.data.prepare import apply_steps

        ds, reports = apply_steps(ds, cfg.prepare)
    fingerprint = ds.fingerprint()
    write_json(
        out / "data.json",
        {
            "fingerprint": fingerprint,
            "summary": data_summary(ds),
            "prepare": [r.to_dict() for r in reports],
        },
    )
    log.info("data %s: fingerprint %s", ds, fingerprint)

    split = split_by_name(ds, cfg.split.to_spec())
    for part, pds in split.parts.items():
        _save_split_part(pds, out / "split" / f"{part}.parquet")
    full_train = split.train if split.valid is None else split.train.concat(split.valid)
    log.info("split %s", split.name)

    bar = _Progress(show)
    per_user_frames: list[pd.DataFrame] = []
    catalog_frames: list[pd.DataFrame] = []
    rec_pop: dict[str, np.ndarray] = {}
    model_info: dict[str, dict[str, Any]] = {}
    refitted: list[str] = []
    with bar.running():
        overall = bar.add("models", len(cfg.models))
        for label, mc in cfg.models.items():
            mdir = out / "models" / label
            key = _model_key(label, mc, cfg, fingerprint, split.name)
            done = _load_done(mdir, key)
            if done is None:
                info = _fit_one(
                    cfg,
                    label,
                    mc,
                    split.train,
                    split.valid,
                    full_train,
                    split.test,
                    metrics,
                    out,
                    bar,
                )
                info["key"] = key
                write_json(mdir / "result.json", info)  # completion marker, written last
                refitted.append(label)
                done = _load_done(mdir, key)
                assert done is not None
            else:
                log.info("%s: resumed from %s", label, mdir)
            info, pu, cat, pop = done
            model_info[label] = info
            per_user_frames.append(pu)
            catalog_frames.append(cat)
            rec_pop[label] = pop
            bar.advance(overall, description=f"models (last: {label})")
            if on_model_done is not None:
                on_model_done(label)

    per_user = pd.concat(per_user_frames, ignore_index=True)
    catalog = pd.concat(catalog_frames, ignore_index=True)
    users = np.unique(per_user["user"].to_numpy())
    segments = pd.Series(user_segments(full_train, users), index=users)
    summary = summarise(
        per_user,
        catalog,
        segments,
        segment_metric=(metric, k_main),
        n_boot=cfg.evaluation.bootstrap,
        seed=cfg.seed,
    )
    best, sig = paired_tests(
        per_user,
        metric=metric,
        k=k_main,
        tests=cfg.significance.tests,
        alpha=cfg.significance.alpha,
        correction=cfg.significance.correction,
    )
    reason = explain_winner(summary, sig, best, metric, k_main)
    atomic_write(out / "metrics.csv", summary.to_csv(index=False))
    atomic_write(out / "significance.csv", sig.to_csv(index=False))
    tmp = out / ".per_user.parquet.tmp"
    per_user.to_parquet(tmp, index=False)
    os.replace(tmp, out / "per_user.parquet")
    arrays: dict[str, np.ndarray] = {"catalog": full_train.item_counts().astype(np.float32)}
    arrays.update({f"model_{i}": rec_pop[label] for i, label in enumerate(cfg.models)})
    with open(out / ".popularity.npz.tmp", "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    os.replace(out / ".popularity.npz.tmp", out / "popularity.npz")
    doc = {
        "name": cfg.name,
        "main_metric": {"metric": metric, "k": k_main},
        "best": best,
        "reason": reason,
        "models": model_info,
        "model_order": list(cfg.models),
        "summary": summary.to_dict("records"),
        "significance": sig.to_dict("records"),
        "split": {"name": split.name, "parts": split.describe().reset_index().to_dict("records")},
        "alpha": cfg.significance.alpha,
        "wall_s": time.perf_counter() - t_run,
        "notes": dict(extra_notes or {}),
    }
    write_json(out / "metrics.json", doc)
    if cfg.registry:
        from recforge.registry import ModelRegistry

        reg_root = cfg.resolve(Path(cfg.registry))
        model = Recommender.load(out / "models" / best / "model")
        version = ModelRegistry(reg_root).publish(
            model,
            metrics={f"{metric}@{k_main}": model_info[best]["test_score"]},
            data_fingerprint=full_train.fingerprint(),
            promote=True,
        )
        log.info("registered %s as %s in %s", best, version.version, reg_root)
    if cfg.mlflow.enabled:
        _log_mlflow(cfg, out, summary, model_info, best)
    report_path = None
    if report:
        from recforge.pipeline.report import build_report

        report_path = build_report(out)
    log.info("winner: %s", reason)
    return RunResult(out, summary, sig, best, reason, refitted, report_path)


def _load_done(
    mdir: Path, key: str
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, np.ndarray] | None:
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
        cat = pd.read_csv(mdir / "catalog.csv")
        with np.load(mdir / "recommended_popularity.npz", allow_pickle=False) as z:
            pop = z["popularity"]
    except (OSError, ValueError, KeyError):
        return None
    return info, pu, cat, pop


def _fit_one(
    cfg: RunConfig,
    label: str,
    mc: ModelConfig,
    train: Dataset,
    valid: Dataset | None,
    full_train: Dataset,
    test: Dataset,
    metrics: list[str],
    out: Path,
    bar: _Progress,
) -> dict[str, Any]:
    mdir = out / "models" / label
    mdir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"model": mc.model, "tuned": mc.tuned}
    params = dict(mc.fixed)
    if mc.tuned:
        tdir = out / "tuning" / label
        tuning = cfg.tuning
        if mc.n_trials is not None or mc.budget is not None:
            tuning = tuning.model_copy(
                update={
                    "n_trials": mc.n_trials if mc.n_trials is not None else tuning.n_trials,
                    "timeout": mc.budget if mc.budget is not None else tuning.timeout,
                }
            )
        task = bar.add(f"tune {label}", tuning.n_trials)
        log.info("%s: tuning %s", label, sorted(mc.space))
        result = tune(
            mc,
            tuning,
            train,
            valid,
            seed=cfg.seed,
            storage_path=tdir / "journal.log",
            study_name=label,
            on_trial=lambda n, v: bar.advance(task),
        )
        atomic_write(tdir / "trials.csv", result.trials.to_csv(index=False))
        params = result.best_params
        info["tuning"] = {
            "best_value": result.best_value,
            "n_trials": len(result.trials),
            "n_complete": int((result.trials["state"] == "COMPLETE").sum()),
            "n_pruned": int((result.trials["state"] == "PRUNED").sum()),
            "wall_s": result.wall_s,
            "overhead_per_trial_s": result.overhead_per_trial_s,
            "metric": f"{tuning.metric}@{tuning.k}",
            "budget": {"n_trials": tuning.n_trials, "timeout_s": tuning.timeout},
        }
    task = bar.add(f"fit {label}", 2)
    model = make_model(mc.model, params, cfg.seed)
    t0 = time.perf_counter()
    model.fit(full_train)
    fit_s = time.perf_counter() - t0
    bar.advance(task)
    ev = evaluate_models(
        {label: model},
        full_train,
        test,
        metrics=metrics,
        ks=cfg.evaluation.k,
        max_users=cfg.evaluation.max_users,
        seed=cfg.seed,
    )
    bar.advance(task)
    if cfg.output.save_models:
        model.save(
            mdir / "model",
            metadata={"data_fingerprint": full_train.fingerprint(), "run": cfg.name},
        )
    tmp = mdir / ".per_user.parquet.tmp"
    ev.per_user.to_parquet(tmp, index=False)
    os.replace(tmp, mdir / "per_user.parquet")
    atomic_write(mdir / "catalog.csv", ev.catalog.to_csv(index=False))
    with open(mdir / ".pop.npz.tmp", "wb") as fh:
        np.savez(fh, popularity=ev.recommended_popularity[label])
    os.replace(mdir / ".pop.npz.tmp", mdir / "recommended_popularity.npz")
    metric, k_main = main_metric(cfg)
    sel = ev.per_user[(ev.per_user["metric"] == metric) & (ev.per_user["k"] == k_main)]
    info.update(
        {
            "params": model.get_params(),
            "fit_s": fit_s,
            "recommend_s": float(ev.timings["recommend_s"].iloc[0]),
            "test_score": float(sel["value"].mean()) if len(sel) else float("nan"),
        }
    )
    log.info("%s: fitted in %.2fs, %s@%d = %.4f", label, fit_s, metric, k_main, info["test_score"])
    return info


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
    allm = summary[summary["group"] == "all"]
    with mlflow.start_run(run_name=cfg.name):
        mlflow.set_tag("best_model", best)
        for label, info in model_info.items():
            with mlflow.start_run(run_name=label, nested=True):
                mlflow.log_params({str(k): v for k, v in dict(info.get("params", {})).items()})
                rows = allm[allm["model"] == label]
                mlflow.log_metrics(
                    {
                        f"{r['metric']}_at_{r['k']}": float(r["value"])
                        for r in rows.to_dict("records")
                    }
                )
        for name in ("metrics.json", "metrics.csv", "significance.csv", "config.json"):
            mlflow.log_artifact(str(out / name))
