"""CLI commands of the automation layer: ``init``, ``run``, ``tune``, ``auto`` and ``report``.

The root application adds them with :func:`register`; each command is thin glue over
:mod:`recforge.pipeline`. The root group turns :class:`~recforge.exceptions.RecforgeError` into
one red line and exit status 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]


@contextmanager
def _config_errors() -> Iterator[None]:
    """Show configuration errors with one problem per line (the root handler joins lines)."""
    from recforge.exceptions import ConfigError

    try:
        yield
    except ConfigError as exc:
        if "\n" not in str(exc):
            raise
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None


def init(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file of interactions.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Config file to write.")] = Path(
        "recforge.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing config file.")] = False,
) -> None:
    """Write a commented starter recforge.yaml by inspecting a data file."""
    from recforge.pipeline.config import starter_config

    if output.exists() and not force:
        from recforge.exceptions import ConfigError

        raise ConfigError(f"{output} exists (use --force to overwrite)")
    text, notes = starter_config(data, config_dir=output.resolve().parent)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"Wrote {output}. Guessed columns:")
    for note in notes:
        typer.echo(f"  - {note}")
    typer.echo(f"Check them, then run: recforge run {output}")


def run(
    config: Annotated[Path, typer.Argument(help="The recforge.yaml to execute.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run directory (default: output.dir).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    engine: Annotated[
        str | None,
        typer.Option(help="Read, prepare and split on 'local' or 'spark' (overrides engine.type)."),
    ] = None,
) -> None:
    """Run a configuration: load, prepare, split, tune, fit, evaluate, test and report.

    Re-running resumes: models already finished in the run directory are not fitted again.
    """
    from recforge.pipeline.runner import run as run_pipeline
    from recforge.pipeline.runner import run_config

    if engine is not None and engine not in ("local", "spark"):
        raise typer.BadParameter(
            f"must be 'local' or 'spark', got {engine!r}", param_hint="--engine"
        )
    with _config_errors():
        if engine is None:
            result = run_pipeline(config, run_dir=output, progress=progress)
        else:
            from recforge.pipeline.config import load_config

            cfg = load_config(config)
            cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"type": engine})})
            text = config.read_text(encoding="utf-8") if config.is_file() else None
            result = run_config(cfg, run_dir=output, progress=progress, source_text=text)
    _print_result(result)


def _print_result(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = result.summary
    table = Table(title="Leaderboard", title_justify="left")
    sig = result.significance
    import json

    from recforge.evaluation import direction
    from recforge.pipeline.runner import headline

    meta = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))
    metric, k = meta["main_metric"]["metric"], meta["main_metric"]["k"]
    group = meta["main_metric"].get("group", "known")
    rows = headline(summary, metric, k, group)
    if rows.empty:
        return
    rows = rows.sort_values("value", ascending=direction(metric) == "minimize")
    table.add_column("model")
    table.add_column(metric if k is None else f"{metric}@{k}", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("vs best")
    for r in rows.to_dict("records"):
        tests = sig[sig["model"] == r["model"]] if len(sig) else sig
        if r["model"] == result.best:
            mark = "★ best"
        elif len(tests) and bool(tests["significant"].all()):
            mark = "worse (significant)"
        else:
            mark = "tie (not significant)"
        table.add_row(
            str(r["model"]),
            f"{r['value']:.4f}",
            f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]",
            mark,
        )
    console.print(table)
    console.print(f"[bold]Winner:[/bold] {result.reason}")
    if result.report is not None:
        console.print(f"Report: {result.report}")
    console.print(f"Run directory: {result.run_dir}")


def tune(
    config: Annotated[Path, typer.Argument(help="The recforge.yaml whose models to tune.")],
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Tune only these model labels.")
    ] = None,
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", help="Override tuning.n_trials.")
    ] = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Override tuning.timeout, e.g. 10m.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Directory for trials and journal.")
    ] = None,
) -> None:
    """Tune the searched hyperparameters of a config's models and print the best values."""
    from recforge.exceptions import ConfigError
    from recforge.pipeline.config import load_config, parse_duration
    from recforge.pipeline.runner import load_data
    from recforge.pipeline.tuning import tune as run_tune
    from recforge.split import split_by_name

    with _config_errors():
        cfg = load_config(config)
    update: dict[str, Any] = {}
    if n_trials is not None:
        update["n_trials"] = n_trials
    if timeout is not None:
        try:
            update["timeout"] = parse_duration(timeout)
        except ValueError as exc:
            raise ConfigError(f"--timeout: {exc}") from None
    tuning = cfg.tuning.model_copy(update=update)
    labels = model or [label for label, mc in cfg.models.items() if mc.tuned]
    for label in labels:
        if label not in cfg.models:
            raise ConfigError(
                f"--model {label!r} is not in {config} (models: {', '.join(cfg.models)})"
            )
        if not cfg.models[label].tuned:
            raise ConfigError(f"model {label!r} has no search space to tune")
    if not labels:
        raise ConfigError(f"{config}: no model has a search space")
    ds = load_data(cfg)
    if cfg.prepare:
        from recforge.data.prepare import apply_steps

        ds, _ = apply_steps(ds, cfg.prepare)
    split = split_by_name(ds, cfg.split.to_spec())
    out = output or cfg.resolve(cfg.output.dir) / "tuning"
    for label in labels:
        result = run_tune(
            cfg.models[label],
            tuning,
            split.train,
            split.valid,
            seed=cfg.seed,
            storage_path=out / label / "journal.log",
            study_name=label,
        )
        (out / label).mkdir(parents=True, exist_ok=True)
        result.trials.to_csv(out / label / "trials.csv", index=False)
        typer.echo(
            f"{label}: best validation {tuning.metric}@{tuning.k} = {result.best_value:.4f} "
            f"after {len(result.trials)} trials in {result.wall_s:.1f} s "
            f"(overhead {result.overhead_per_trial_s * 1000:.1f} ms/trial)"
        )
        for key, value in result.best_params.items():
            typer.echo(f"    {key}: {value!r}")
    typer.echo(f"Trials and journals: {out}")


def auto(
    data: Annotated[
        Path, typer.Argument(help="CSV or Parquet file of interactions, or a data set name.")
    ],
    budget: Annotated[str, typer.Option(help="Wall-time budget, e.g. 15m, 1h, 900.")] = "15m",
    output: Annotated[Path, typer.Option("--output", "-o", help="Run directory.")] = Path(
        "runs/auto"
    ),
    seed: Annotated[int, typer.Option(help="Seed of split, samplers and models.")] = 42,
    metric: Annotated[str, typer.Option(help="Metric to optimise.")] = "ndcg",
    k: Annotated[int, typer.Option(help="Cut-off of that metric.")] = 10,
    user: Annotated[str | None, typer.Option(help="User column (default: guessed).")] = None,
    item: Annotated[str | None, typer.Option(help="Item column (default: guessed).")] = None,
    value: Annotated[str | None, typer.Option(help="Value column (default: guessed).")] = None,
    time: Annotated[str | None, typer.Option(help="Time column (default: guessed).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Choose a split and model families, tune them within BUDGET, and report the winner."""
    from recforge.exceptions import ConfigError
    from recforge.pipeline.auto import auto as run_auto
    from recforge.pipeline.config import parse_duration

    try:
        seconds = parse_duration(budget)
    except ValueError as exc:
        raise ConfigError(f"--budget: {exc}") from None
    assert seconds is not None
    columns = {"user": user, "item": item, "value": value, "time": time}
    result = run_auto(
        data,
        seconds,
        output=output,
        seed=seed,
        columns=columns,
        metric=metric,
        k=k,
        progress=progress,
        echo=typer.echo,
    )
    _print_result(result)


def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file (default RUN_DIR/report.html).")
    ] = None,
) -> None:
    """Rebuild the self-contained HTML report of a run directory."""
    from recforge.pipeline.report import build_report

    path = build_report(run_dir, output)
    typer.echo(f"Wrote {path}")


COMMANDS: dict[str, Callable[..., None]] = {
    "init": init,
    "run": run,
    "tune": tune,
    "auto": auto,
    "report": report,
}


def register(app: typer.Typer) -> None:
    """Add the automation commands to a Typer application."""
    for name, func in COMMANDS.items():
        app.command(name)(func)
