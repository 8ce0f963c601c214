"""``recforge recommend`` and ``recforge explain``: lists and their reasons from a saved model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import pandas as pd

    from recforge.data import IdIndex
    from recforge.models import Recommender
    from recforge.models.rerank import AttributeFilter, RerankSpec

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
    """The model's own reason for having no explanation, and the models that have one."""
    from recforge.models import available_models, model_class

    explaining = [n for n in available_models() if model_class(n).supports_explain]
    reason = model.explain_unavailable() or ""
    return f"{reason} (models that explain: {', '.join(explaining)})"


_FILTER = re.compile(r"^\s*([^=!<>]+?)\s*(==|=|!=|>=|<=|>|<)\s*(.*?)\s*$")


def _filter_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def parse_filter(text: str) -> AttributeFilter:
    """``--filter`` text (``year>=2000``, ``genre=Drama``) as an attribute filter."""
    from recforge.exceptions import ConfigError
    from recforge.models.rerank import AttributeFilter

    match = _FILTER.match(text)
    if match is None or not match.group(1) or not match.group(3):
        raise ConfigError(
            f"--filter {text!r} is not COLUMN OP VALUE (OP one of =, !=, <, <=, >, >=), "
            "e.g. --filter year>=2000"
        )
    col, op, value = match.groups()
    return AttributeFilter(col, "==" if op == "=" else op, _filter_value(value))


def rerank_spec(
    mmr: float | None,
    similarity: str,
    calibrate: float | None,
    category_column: str,
    exclude_categories: list[str],
    filters: list[str],
    candidates: int,
) -> RerankSpec | None:
    """The re-ranking setting of the command-line flags (``None`` when none is given)."""
    from recforge.models.rerank import BusinessRules, RerankSpec

    rules = None
    if exclude_categories or filters:
        rules = BusinessRules(
            exclude_categories=list(exclude_categories),
            filters=[parse_filter(f) for f in filters],
            category_column=category_column,
        )
    if mmr is None and calibrate is None and rules is None:
        return None
    return RerankSpec(
        mmr=mmr,
        on=similarity,
        calibrate=calibrate,
        rules=rules,
        category_column=category_column,
        candidates=candidates,
    )


def read_item_attributes(path: Path | None, key: str | None) -> pd.DataFrame | None:
    """The ``--items`` attribute table (CSV or Parquet) indexed by its ``key`` column."""
    if path is None:
        return None
    from recforge.data import read_attributes

    return read_attributes(path, what="item", key=key)


MmrOpt = Annotated[
    float | None,
    typer.Option(
        "--mmr",
        min=0.0,
        max=1.0,
        help="Re-rank by maximal marginal relevance with this relevance weight λ "
        "(1 keeps the model's order, 0 only diversifies).",
    ),
]
SimilarityOpt = Annotated[
    str,
    typer.Option(
        "--similarity",
        help="Item similarity of --mmr: auto, vectors (the model's), features (--items "
        "categories) or cooccurrence (the model's training data).",
    ),
]
CalibrateOpt = Annotated[
    float | None,
    typer.Option(
        "--calibrate",
        min=0.0,
        max=1.0,
        help="Calibrate lists to each user's category mix with this λ (needs --items).",
    ),
]
ExcludeCategoryOpt = Annotated[
    list[str],
    typer.Option("--exclude-category", help="Never recommend items of this category."),
]
FilterOpt = Annotated[
    list[str],
    typer.Option("--filter", help="Keep items whose attribute passes, e.g. year>=2000."),
]
ItemsOpt = Annotated[
    Path | None,
    typer.Option("--items", help="Item attribute table (CSV/Parquet) for rules and features."),
]
ItemKeyOpt = Annotated[
    str | None, typer.Option("--item-key", help="Item id column of --items (default: item).")
]
CategoryOpt = Annotated[
    str, typer.Option("--category-column", help="Multi-valued category column of --items.")
]
CandidatesOpt = Annotated[
    int, typer.Option("--candidates", min=1, help="Re-rank candidates·k items.")
]


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
    mmr: MmrOpt = None,
    similarity: SimilarityOpt = "auto",
    calibrate: CalibrateOpt = None,
    exclude_category: ExcludeCategoryOpt = [],  # noqa: B006 - typer copies defaults
    filters: FilterOpt = [],  # noqa: B006 - typer copies defaults
    items: ItemsOpt = None,
    item_key: ItemKeyOpt = None,
    category_column: CategoryOpt = "genres",
    candidates: CandidatesOpt = 5,
) -> None:
    """Top-K items for users from a saved or registered model (unknown users get popular
    items, with the reason), optionally re-ranked (--mmr, --calibrate, --exclude-category,
    --filter) by the same re-ranking as recforge.yaml and the service, or for new users
    from their attributes (--user-attributes, --attribute)."""
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
    spec = rerank_spec(
        mmr, similarity, calibrate, category_column, exclude_category, filters, candidates
    )
    if spec is None:
        recs = m.recommend(ids, k=k, on_unknown="popular")
    else:
        attrs = read_item_attributes(items, item_key)
        recs = spec.reranker(attrs).rerank(m, ids, k=k, on_unknown="popular")
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
        return f"no explanation: {m.explain_unavailable()}"
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
    for label, part in exp.parts:
        if isinstance(part, str):
            console().print(f"{label}: {part}")
            continue
        top = ", ".join(f"{c} ({w:+.3f})" for c, w in part.contributions[:3])
        console().print(f"{label}: score {part.score:.4f} ({part.kind}) {top}")


def register(app: typer.Typer) -> None:
    """Add ``recommend`` and ``explain`` to the root command."""
    app.command("recommend")(recommend)
    app.command("explain")(explain)
