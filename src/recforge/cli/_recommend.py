"""``recforge recommend`` and ``recforge explain``: lists and their reasons from a saved model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import pandas as pd

    from recforge.data import IdIndex
    from recforge.models import Recommender

__all__ = ["register"]

ModelArg = Annotated[Path | None, typer.Option("--model", help="Saved model (directory or .zip).")]
RegistryArg = Annotated[
    Path | None, typer.Option("--registry", help="Model registry (uses its active version).")
]
VersionArg = Annotated[
    str | None, typer.Option("--version", help="Registered version (default: the active one).")
]
JsonArg = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _ids(index: IdIndex, texts: list[str], what: str) -> list[Any]:
    """External ids from command-line text, by the one id rule; names a text that is no id."""
    from recforge.exceptions import ConfigError

    ids = index.ids_from_text(texts)
    if len(ids) != len(texts):
        parsed = {str(i) for i in ids}
        bad = next(t for t in texts if t not in parsed)
        raise ConfigError(f"{what} {bad!r} is not an id of this model (its ids are integers)")
    return ids


def _why_not(model: Recommender) -> str:
    from recforge.models import available_models, model_class

    explaining = [n for n in available_models() if model_class(n).supports_explain]
    return (
        f"{type(model).__name__} does not explain its scores: it has no per-item evidence "
        f"(models that explain: {', '.join(explaining)})"
    )


def recommend(
    users: Annotated[list[str] | None, typer.Argument(help="User ids.")] = None,
    model: ModelArg = None,
    registry: RegistryArg = None,
    version: VersionArg = None,
    k: Annotated[int, typer.Option("-k", help="List length.", min=1)] = 10,
    user_attributes: Annotated[
        Path | None,
        typer.Option(
            "--user-attributes",
            help="New users' attribute table (.csv/.parquet, first column or 'user' = id): "
            "lists from attributes alone (models that read user attributes).",
        ),
    ] = None,
    attribute: Annotated[
        list[str] | None,
        typer.Option(
            "--attribute",
            help="One new user's attribute as NAME=VALUE (repeat for several).",
        ),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show the evidence behind each item.")
    ] = False,
    as_json: JsonArg = False,
) -> None:
    """Top-K items for users from a saved or registered model (unknown users get popular
    items, with the reason), or for new users from their attributes."""
    from recforge.cli._common import console, load_model_source
    from recforge.exceptions import ConfigError

    m, _ = load_model_source(model, registry, version)
    given = sum(bool(x) for x in (users, user_attributes, attribute))
    if given != 1:
        raise ConfigError("give user ids, --user-attributes FILE or --attribute NAME=VALUE")
    if not users:
        rows = _attribute_rows(m, _attribute_table(user_attributes, attribute or []), k)
        if as_json:
            typer.echo(json.dumps(rows, default=str))
        else:
            _print_rows(console(), rows)
        return
    ids = _ids(m.users_, users, "user")
    recs = m.recommend(ids, k=k, on_unknown="popular")
    rows = []
    for pos, user in enumerate(ids):
        reason = None if recs.reasons is None else recs.reasons[pos]
        for rank, (item, score) in enumerate(recs.for_user(pos), start=1):
            row: dict[str, Any] = {"user": user, "rank": rank, "item": item, "score": score}
            if reason:
                row["reason"] = reason
            if explain:
                row["because"] = _because(m, user, item, reason)
            rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    _print_rows(console(), rows)


def _attribute_table(path: Path | None, pairs: list[str]) -> pd.DataFrame:
    """New users' attributes from a file, or one user's from ``NAME=VALUE`` options."""
    import pandas as pd

    from recforge.data import read_attributes
    from recforge.exceptions import ConfigError

    if path is not None:
        return read_attributes(path, what="user")
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--attribute {pair!r}: expected NAME=VALUE")
        values[name.strip()] = _scalar(text)
    return pd.DataFrame([values], index=pd.Index(["new user"], name="user"))


def _scalar(text: str) -> Any:
    """A command-line value as a number when it reads as one (ages, counts), else text."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def _attribute_rows(m: Recommender, table: pd.DataFrame, k: int) -> list[dict[str, Any]]:
    from recforge.exceptions import UnsupportedCapabilityError

    if not m.supports_user_attributes:
        raise UnsupportedCapabilityError(
            f"{type(m).__name__} cannot recommend from user attributes (HybridMF with "
            "user_features can)"
        )
    recs = m.recommend_for_user_attributes(table, k=k)
    return [
        {"user": user, "rank": rank, "item": item, "score": score}
        for pos, user in enumerate(table.index)
        for rank, (item, score) in enumerate(recs.for_user(pos), start=1)
    ]


def _because(m: Recommender, user: Any, item: Any, reason: str | None) -> str:
    if reason:
        return reason
    if not m.supports_explain:
        return "no explanation: " + _why_not(m).split(": ", 1)[1]
    exp = m.explain(user, item)
    top = [f"{c} ({w:+.3f})" for c, w in exp.contributions[:3]]
    return f"{exp.kind}: " + ", ".join(top) if top else "no evidence above zero"


def _print_rows(out: Any, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    for col in columns:
        table.add_column(col, justify="right" if col in ("rank", "score") else "left")
    for row in rows:
        cells = [row.get(c, "") for c in columns]
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in cells])
    out.print(table)


def explain(
    user: Annotated[str, typer.Argument(help="User id.")],
    item: Annotated[str, typer.Argument(help="Item id.")],
    model: ModelArg = None,
    registry: RegistryArg = None,
    version: VersionArg = None,
    as_json: JsonArg = False,
) -> None:
    """Why a model scores ITEM as it does for USER: the history items or features behind it."""
    from recforge.cli._common import console, load_model_source
    from recforge.exceptions import UnsupportedCapabilityError

    m, _ = load_model_source(model, registry, version)
    if not m.supports_explain:
        raise UnsupportedCapabilityError(_why_not(m))
    exp = m.explain(_ids(m.users_, [user], "user")[0], _ids(m.items_, [item], "item")[0])
    if as_json:
        typer.echo(json.dumps(exp.to_dict(), default=str))
        return
    rows = [{"evidence": c, "weight": float(w)} for c, w in exp.contributions]
    console().print(f"score {exp.score:.4f} for item {exp.item} and user {exp.user} ({exp.kind})")
    _print_rows(console(), rows)


def register(app: typer.Typer) -> None:
    """Add ``recommend`` and ``explain`` to the root command."""
    app.command("recommend")(recommend)
    app.command("explain")(explain)
