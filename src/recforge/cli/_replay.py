"""``recforge replay``: prequential evaluation of the feedback loop through the real service."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recforge.cli._common import build_model, console, err_console, load_data
from recforge.cli._data import ItemOpt, SepOpt, TimeOpt, UserOpt, ValueOpt
from recforge.exceptions import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

    from recforge.serving.replay import ReplayResult

__all__ = ["parse_interval", "register", "replay_tables"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_interval(text: str) -> tuple[int | None, int | None]:
    """``"500"`` -> every 500 events; ``"1d"``, ``"12h"``, ``"90m"`` -> every period of event time.

    Returns
    -------
    (events, seconds)
        Exactly one is set.

    Raises
    ------
    ConfigError
        On anything else.
    """
    found = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text.lower())
    if not found or int(found.group(1)) < 1:
        raise ConfigError(
            f"--retrain-every must be a number of events (500) or a period of event time "
            f"(1d, 12h, 90m, 3600s); got {text!r}"
        )
    n, unit = int(found.group(1)), found.group(2)
    return (n, None) if not unit else (None, n * _UNITS[unit])


def _cell(row: Any, name: str) -> str:
    v, lo, hi = row[name], row[f"{name}_low"], row[f"{name}_high"]
    if lo != lo:  # no interval (one user)
        return f"{v:.4f}"
    return f"{v:.4f} [{lo:.4f}, {hi:.4f}]"


def replay_tables(result: ReplayResult) -> list[Table]:
    """Rich tables: each metric per window and arm, then the paired differences."""
    from rich.table import Table

    arms = list(result.overall["arm"])
    tables = []
    for name, label in (("hit_rate", "hit rate"), ("ndcg", "NDCG")):
        k = result.settings["k"]
        table = Table(title=f"{label}@{k} per window ({result.settings['interval']})")
        table.add_column("window", style="bold")
        table.add_column("events", justify="right")
        for arm in arms:
            table.add_column(arm, justify="right")
        w = result.windows
        for window in sorted(w["window"].unique()):
            part = w[w["window"] == window].set_index("arm")
            cells = [_cell(part.loc[a], name) if a in part.index else "-" for a in arms]
            table.add_row(str(int(window) + 1), str(int(part["n_events"].iloc[0])), *cells)
        ov = result.overall.set_index("arm")
        table.add_section()
        table.add_row(
            "all",
            str(int(ov["n_events"].iloc[0])),
            *[_cell(ov.loc[a], name) for a in arms],
            style="bold",
        )
        tables.append(table)
    if len(result.differences):
        table = Table(title="paired differences (same events, resampled by user)")
        for col in ("comparison", "metric", "difference", "interval"):
            table.add_column(col, justify="right" if col != "comparison" else "left")
        for r in result.differences.to_dict(orient="records"):
            low, high = float(r["low"]), float(r["high"])
            sure = low == low and (low > 0 or high < 0)
            table.add_row(
                str(r["comparison"]),
                str(r["metric"]),
                f"{float(r['difference']):+.4f}",
                f"[{low:+.4f}, {high:+.4f}]" + (" *" if sure else ""),
            )
        tables.append(table)
    return tables


def replay(
    data: Annotated[
        str, typer.Argument(help="Data set name or CSV/TSV/Parquet file (with times).")
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model spec NAME[:key=val,...], e.g. ease:reg=500.")
    ] = "ease",
    initial_fraction: Annotated[
        float, typer.Option(help="Share of the events, oldest first, the initial model sees.")
    ] = 0.8,
    k: Annotated[int, typer.Option("-k", help="List length scored.")] = 10,
    events: Annotated[
        int | None, typer.Option("--events", "-n", help="Events replayed (default: all).")
    ] = 3000,
    arms: Annotated[
        str, typer.Option(help="Comma-separated arms: static, online, periodic.")
    ] = "static,online,periodic",
    retrain_every: Annotated[
        str,
        typer.Option(help="Periodic arm: every N events (500) or period of event time (1d)."),
    ] = "1d",
    periodic_mode: Annotated[
        str,
        typer.Option(
            help="gate: recforge.serving.retrain with its promotion gate; refresh: "
            "refit the served recipe on all data and promote it."
        ),
    ] = "gate",
    gate_min_users: Annotated[int, typer.Option(help="Gate: fewest users compared.")] = 20,
    gate_holdout: Annotated[float, typer.Option(help="Gate: newest share held out.")] = 0.1,
    windows: Annotated[int, typer.Option(help="Windows of consecutive events.")] = 10,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and of the model.")] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("replay"),
    user: UserOpt = None,
    item: ItemOpt = None,
    value: ValueOpt = None,
    time: TimeOpt = None,
    sep: SepOpt = ",",
) -> None:
    """Replay events in time order through the service: ask, score the hit, post the event.

    Compares the initial model left as it is (static), the service's online updates (online)
    and online updates plus periodic retraining with hot swap (periodic), on the same events.
    Writes replay.json, replay_events.parquet and replay.html into --out.
    """
    from recforge.pipeline.report import build_replay_report
    from recforge.serving.replay import replay as run

    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; give a new directory")
    every, period = parse_interval(retrain_every)
    if periodic_mode not in ("gate", "refresh"):
        raise ConfigError(f"--periodic-mode must be gate or refresh, got {periodic_mode!r}")
    ds = load_data(data, user=user, item=item, value=value, time=time, sep=sep)
    label, recommender = build_model(model)
    err = err_console()

    def progress(arm: str, done: int, total: int) -> None:
        if done % 500 == 0 or done == total:
            err.print(f"[dim]{arm}: {done}/{total} events[/dim]")

    result = run(
        ds,
        recommender,
        out / "work",
        k=k,
        initial_fraction=initial_fraction,
        n_events=events,
        arms=[a.strip() for a in arms.split(",") if a.strip()],
        retrain_every=every,
        retrain_period_s=period,
        periodic_mode=periodic_mode,  # type: ignore[arg-type]
        gate_holdout=gate_holdout,
        gate_min_users=gate_min_users,
        windows=windows,
        n_boot=bootstrap,
        seed=seed,
        progress=progress,
    )
    paths = result.save(out)
    page = build_replay_report(out)
    _print_result(f"[bold]{label}[/bold] on {ds.name}", result)
    console().print(f"wrote {paths['json']}, {paths['events']}, {page}")


def _print_result(title: str, result: ReplayResult) -> None:
    """Print the events per arm, the comparison tables and each retrain's outcome."""
    con = console()
    con.print(f"{title}: {len(result.events) // len(result.overall)} events replayed per arm")
    for table in replay_tables(result):
        con.print(table)
    for r in result.retrains:
        state = f"promoted {r.new_version}" if r.promoted else "kept"
        con.print(f"retrain before event {r.before_event}: {state} ({r.seconds:.1f} s): {r.reason}")


def register(app: typer.Typer) -> None:
    """Add ``replay`` to the root CLI app."""
    app.command("replay")(replay)
