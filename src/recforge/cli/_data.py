"""``recforge datasets ...`` and ``recforge data ...`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recforge.cli._common import console, frame_table, load_data

__all__ = ["data_app", "datasets_app", "register"]

datasets_app = typer.Typer(
    help="Named data sets: the shipped MovieLens sample and verified downloads.",
    no_args_is_help=True,
)
data_app = typer.Typer(help="Inspect interaction data.", no_args_is_help=True)

UserOpt = Annotated[str | None, typer.Option("--user", help="Column of user ids.")]
ItemOpt = Annotated[str | None, typer.Option("--item", help="Column of item ids.")]
ValueOpt = Annotated[
    str | None, typer.Option("--value", help="Column of values (ratings, counts); none: implicit.")
]
TimeOpt = Annotated[str | None, typer.Option("--time", help="Column of timestamps.")]
SepOpt = Annotated[str, typer.Option("--sep", help="Field separator of text files.")]


@datasets_app.command("list")
def datasets_list(
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Download cache to look in.")
    ] = None,
) -> None:
    """List the named data sets, whether they are available and their licence."""
    from recforge.data.datasets import list_datasets

    frame = list_datasets(cache)
    shown = frame[["description", "interactions", "size", "available"]].copy()
    shown["interactions"] = [f"{n:,}" for n in shown["interactions"]]
    shown["available"] = ["yes" if a else "download" for a in shown["available"]]
    console().print(frame_table(shown, title="Data sets"))


@data_app.command("describe")
def data_describe(
    source: Annotated[str, typer.Argument(help="Data set name or CSV/TSV/Parquet file.")],
    user: UserOpt = None,
    item: ItemOpt = None,
    value: ValueOpt = None,
    time: TimeOpt = None,
    sep: SepOpt = ",",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Summary statistics of interaction data: sizes, density, values, activity, time range."""
    ds = load_data(source, user=user, item=item, value=value, time=time, sep=sep)
    summary = ds.describe()
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        console().print(summary.to_table())


def register(app: typer.Typer) -> None:
    """Add the ``datasets`` and ``data`` groups to the root app."""
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(data_app, name="data")
