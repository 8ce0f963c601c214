"""CLI commands for deployment: ``serve``, ``models list|promote|rollback``, ``retrain``, ``keys``.

Register them on the root Typer app with :func:`register`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]

models_app = typer.Typer(help="List, promote and roll back registered model versions.")
keys_app = typer.Typer(help="Create and revoke API keys (stored hashed in the event store).")

RegistryOpt = Annotated[Path, typer.Option("--registry", help="Model registry directory.")]
DbOpt = Annotated[
    str,
    typer.Option("--db", help="Event store URL (sqlite:///file.db or postgresql+psycopg://...)."),
]


def serve(
    registry: Annotated[
        Path | None,
        typer.Option("--registry", help="Registry directory (hot-swaps the active version)."),
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="A single saved model to serve.")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Event store URL (default: RECFORGE_DB or sqlite:///recforge-events.db).",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: 8000).")] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(
            help="Requests handled at once by the whole service; more get 503 + Retry-After "
            "(default: 8)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes behind the port, sharing one memory-mapped copy of the "
            "model (default: 1; about one per core, see docs/deployment.md).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the REST service and web page.

    Options not given on the command line come from ``RECFORGE_*`` environment variables
    (e.g. ``RECFORGE_WRITE_KEYS``, ``RECFORGE_ADMIN_KEYS``, ``RECFORGE_MAX_CONNECTIONS``), then
    from the defaults.
    """
    from recforge.exceptions import ConfigError
    from recforge.serving.app import serve as run
    from recforge.serving.settings import ServiceSettings

    given: dict[str, Any] = {
        "registry": registry,
        "model_dir": model_dir,
        "db": db,
        "host": host,
        "port": port,
        "max_concurrency": max_concurrency,
        "workers": workers,
    }
    try:
        settings = ServiceSettings(**{k: v for k, v in given.items() if v is not None})
        if (settings.registry is None) == (settings.model_dir is None):
            raise typer.BadParameter(
                "give exactly one of --registry or --model-dir "
                "(or RECFORGE_REGISTRY / RECFORGE_MODEL_DIR)"
            )
        status = run(settings, log_level=log_level)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if status:
        raise typer.Exit(status)


@models_app.command("list")
def models_list(
    registry: RegistryOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the registry's versions, their metrics and which one is active."""
    from recforge.registry import ModelRegistry

    reg = ModelRegistry(registry)
    active = reg.active_version()
    rows = [dict(v.to_dict(), active=v.version == active) for v in reg.list()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no versions")
        return
    for r in rows:
        mark = "*" if r["active"] else " "
        metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in r["metrics"].items())
        typer.echo(f"{mark} {r['version']}  {r['model']:<10} parent={r['parent']}  {metrics}")


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="Version to activate, e.g. v000003.")],
    registry: RegistryOpt,
) -> None:
    """Verify a version and make it active (running services swap to it)."""
    from recforge.exceptions import ModelFormatError
    from recforge.registry import ModelRegistry

    try:
        info = ModelRegistry(registry).promote(version)
    except ModelFormatError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"active: {info.version}")


@models_app.command("rollback")
def models_rollback(registry: RegistryOpt) -> None:
    """Re-activate the previously active version."""
    from recforge.exceptions import ConfigError
    from recforge.registry import ModelRegistry

    try:
        info = ModelRegistry(registry).rollback()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"active: {info.version}")


def retrain(
    registry: RegistryOpt,
    db: DbOpt = "sqlite:///recforge-events.db",
    data: Annotated[
        str | None,
        typer.Option(help="Original data: a dataset name (movielens-small) or a CSV/Parquet file."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Challenger model name; default: same as the active one.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Challenger hyperparameter NAME=JSON_VALUE.")
    ] = None,
    metric: Annotated[str, typer.Option(help="ndcg@K, recall@K, map@K, ...")] = "ndcg@10",
    margin: Annotated[
        float, typer.Option(help="Required improvement over the active model.")
    ] = 0.0,
    holdout: Annotated[float, typer.Option(help="Newest fraction held out.")] = 0.1,
    min_users: Annotated[
        int, typer.Option(help="Fewest held-out users compared before any promotion.")
    ] = 20,
) -> None:
    """Train a challenger on the original data plus stored events; promote only if better.

    The incumbent's recipe is refitted on the same older data as the challenger and both are
    scored on the newest interactions, paired by user; a promotion needs at least
    ``--min-users`` users and a paired-difference interval above zero.
    """
    from recforge.exceptions import RecforgeError
    from recforge.models import model_class
    from recforge.registry import ModelRegistry
    from recforge.serving.retrain import retrain as run
    from recforge.serving.store import EventStore

    challenger = None
    try:
        if model is not None:
            params = {}
            for p in param or []:
                name, sep, raw = p.partition("=")
                if not sep:
                    raise typer.BadParameter(f"--param must be NAME=VALUE, got {p!r}")
                try:
                    params[name] = json.loads(raw)
                except json.JSONDecodeError:
                    params[name] = raw
            challenger = model_class(model)(**params)
        base = _load_data(data) if data else None
        decision = run(
            ModelRegistry(registry),
            EventStore(db),
            base=base,
            challenger=challenger,
            metric=metric,
            margin=margin,
            holdout=holdout,
            min_users=min_users,
        )
    except (RecforgeError, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(decision.to_dict(), indent=2))


def _load_data(spec: str) -> Any:
    from recforge.data import Dataset

    path = Path(spec)
    if path.suffix.lower() == ".csv":
        return Dataset.from_csv(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return Dataset.from_parquet(path)
    from recforge.data import datasets

    return datasets.load(spec)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Label of the key (for revoking).")],
    db: DbOpt = "sqlite:///recforge-events.db",
    scope: Annotated[str, typer.Option(help="read (user data), write or admin.")] = "write",
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from recforge.serving.store import EventStore

    typer.echo(EventStore(db).create_api_key(name, scope))  # type: ignore[arg-type]


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Option(help="Label of the keys to delete.")],
    db: DbOpt = "sqlite:///recforge-events.db",
) -> None:
    """Delete the keys with this label."""
    from recforge.serving.store import EventStore

    typer.echo(f"revoked {EventStore(db).revoke_api_key(name)} key(s)")


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``retrain``, ``models`` and ``keys`` to the root CLI app."""
    app.command("serve")(serve)
    app.command("retrain")(retrain)
    app.add_typer(models_app, name="models")
    app.add_typer(keys_app, name="keys")
