"""``recforge demo``: the whole path on the shipped MovieLens sample, in small steps.

1. run a short experiment through the pipeline (per-user temporal split, a small tuning
   budget, every quick model family, significance tests and the HTML report);
2. print the leaderboard and the report's path;
3. show the winner's recommendations with movie titles for a few users;
4. show content-based and hybrid recommendations with their explanations;
5. publish the winner to a model registry and (unless ``--no-serve``) serve it with the web page.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recforge.cli._common import console, err_console, frame_table

if TYPE_CHECKING:
    from recforge.data import Dataset
    from recforge.models.base import Recommender
    from recforge.pipeline.runner import RunResult

__all__ = ["DEMO_DATA", "DEMO_MODELS", "demo_config", "register"]

DEMO_DATA = "movielens-small"

#: Models of the demo, as ``recforge.yaml`` model entries, with settings that train in seconds
#: on the MovieLens sample. ``itemknn`` is tuned (a few trials) to show the search; the rest use
#: fixed values. Add new quick models here.
DEMO_MODELS: dict[str, dict[str, Any]] = {
    "popular": {},
    "random": {"rng": 0},
    "bias": {},
    "itemknn": {
        "n_neighbors": {"type": "int", "low": 20, "high": 400, "log": True},
        "shrink": {"type": "float", "low": 0.0, "high": 50.0},
    },
    "rp3beta": {"n_neighbors": 100},
    "ease": {"reg": 300.0, "precision": "float32"},
    "als": {"factors": 32, "iterations": 8, "rng": 0},
    "bpr": {"factors": 32, "epochs": 10, "rng": 0},
    "svd": {"factors": 32, "epochs": 10, "rng": 0},
    "content": {},
    "hybridmf": {"factors": 32, "epochs": 10, "rng": 0},
}
DEMO_METRICS = ["ndcg", "recall", "precision", "map", "coverage", "novelty", "diversity"]
#: Models whose explanations the demo prints.
EXPLAINED = ("content", "hybridmf")


def demo_config(models: list[str] | None, k: int, trials: int) -> dict[str, Any]:
    """The demo's ``recforge.yaml`` as a dict."""
    chosen = {
        name: dict(spec) for name, spec in DEMO_MODELS.items() if models is None or name in models
    }
    ks = sorted({5, k, 20} if k <= 20 else {5, 10, k})
    return {
        "name": "demo",
        "seed": 0,
        "data": {"source": "builtin", "name": DEMO_DATA},
        "split": {"method": "temporal", "per_user_last": 0.2, "valid_size": 0.1},
        "models": chosen,
        "tuning": {"n_trials": trials, "metric": "ndcg", "k": k},
        "evaluation": {"metrics": DEMO_METRICS, "k": ks, "bootstrap": 300},
    }


def run_experiment(models: list[str] | None, k: int, trials: int, workdir: Path) -> RunResult:
    """Run the demo configuration into ``workdir/run`` and return its result."""
    from recforge.pipeline.config import validate_config
    from recforge.pipeline.runner import run_config

    cfg = validate_config(demo_config(models, k, trials), source="demo", base_dir=workdir)
    return run_config(cfg, run_dir=workdir / "run", progress=True)


def print_leaderboard(result: RunResult, k: int) -> None:
    """Known test users' metrics at ``k`` with confidence intervals, best first."""
    import pandas as pd

    s = result.summary
    known = s[(s["k"] == k) & (s["group"] == "known")]
    table = known.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    table = table.reindex(columns=[m for m in DEMO_METRICS if m in table.columns])
    if "ndcg" in table.columns:
        table = table.sort_values("ndcg", ascending=False)
    table.columns = pd.Index([f"{c}@{k}" for c in table.columns])
    console().print(frame_table(table, title=f"Test metrics at k={k} (per-user temporal split)"))


def titles(ds: Dataset, items: Any) -> list[str]:
    """Titles of items (their ids when the data has no ``title`` attribute)."""
    attrs = ds.item_attributes
    if attrs is None or "title" not in attrs.columns:
        return [str(i) for i in items]
    col = attrs["title"]
    return [str(col.get(i, i)) for i in items]


def sample_users(ds: Dataset, n: int) -> list[Any]:
    """``n`` users with a moderate history (easy to read), deterministic."""
    import numpy as np

    counts = ds.user_counts()
    order = np.argsort(np.abs(counts - 40), kind="stable")
    return [ds.users.ids_of([u])[0].item() for u in order[:n]]


def load_model(result: RunResult, label: str) -> Recommender:
    """A model fitted by the run (on train + validation)."""
    from recforge.models.base import Recommender

    return Recommender.load(result.run_dir / "models" / label / "model")


def show_recommendations(
    label: str, model: Recommender, ds: Dataset, users: list[Any], k: int
) -> None:
    """Top-``k`` lists with titles for ``users``."""
    import pandas as pd

    recs = model.recommend(users, k=k, on_unknown="popular")
    for pos, user in enumerate(users):
        pairs = recs.for_user(pos)
        items = [item for item, _ in pairs]
        table = pd.DataFrame(
            {"title": titles(ds, items), "score": [score for _, score in pairs]},
            index=pd.RangeIndex(1, len(items) + 1, name="rank"),
        )
        n_hist = int(ds.user_counts()[ds.users.codes([user])[0]])
        console().print(
            frame_table(table, title=f"{label} for user {user} ({n_hist} ratings)", digits=3)
        )


def show_explanations(label: str, model: Recommender, ds: Dataset, user: Any, n: int) -> None:
    """The top ``n`` items for ``user`` with what the model says made them score."""
    from rich.table import Table

    recs = model.recommend([user], k=n, on_unknown="popular")
    table = Table(title=f"{label}: why user {user} gets these", show_lines=True)
    table.add_column("recommended")
    table.add_column("because of")
    for item, _ in recs.for_user(0):
        exp = model.explain(user, item)
        reasons = []
        history = getattr(exp, "similar_history", None) or []
        if history:
            reasons.append("liked " + "; ".join(titles(ds, [h for h, _ in history[:2]])))
        feats = [str(c) for c, w in exp.contributions[:3] if w > 0]
        if feats:
            key = "features" if exp.kind == "features" else "items"
            shown = feats if key == "features" else titles(ds, feats)
            reasons.append(f"{key}: " + ", ".join(shown))
        table.add_row(titles(ds, [item])[0], "\n".join(reasons) or f"score {exp.score:.3f}")
    console().print(table)


def publish(result: RunResult, workdir: Path) -> tuple[Path, str]:
    """Put the winner in ``workdir/registry`` (active, with the report).

    Returns
    -------
    root, version
    """
    import shutil

    import pandas as pd

    from recforge.registry import ModelRegistry

    root = workdir / "registry"
    registry = ModelRegistry(root)
    model = load_model(result, result.best)
    s = result.summary
    rows = s[(s["model"] == result.best) & (s["group"] == "known")]
    metrics = {
        (m if pd.isna(k) else f"{m}@{k}"): float(v)
        for m, k, v in zip(rows["metric"], rows["k"], rows["value"], strict=True)
    }
    info = registry.publish(model, metrics=metrics, promote=True)
    if result.report is not None:
        shutil.copyfile(result.report, root / "versions" / info.version / "report.html")
    return root, info.version


def prepare_store(db: str, ds: Dataset) -> tuple[int, str]:
    """Write the movies' title, year and genres into the event store's item table (so the
    service and its web page show titles) and create a write key for the page's clicks.

    Returns
    -------
    n_items, api_key
    """
    import pandas as pd

    from recforge.serving.store import EventStore

    attrs = ds.item_attributes
    if attrs is None:
        attrs = pd.DataFrame(index=pd.Index(ds.items.ids))
    cols = [c for c in ("title", "year", "genres") if c in attrs.columns]
    frame = attrs[cols].astype(object).where(attrs[cols].notna(), None)
    records = frame.to_dict("records")
    items = {
        str(i): {str(k): v for k, v in row.items()}
        for i, row in zip(frame.index, records, strict=True)
    }
    store = EventStore(db)
    try:
        return store.upsert_items(items), store.create_api_key("demo-page", "write")
    finally:
        store.close()


def serve_registry(root: Path, workdir: Path, port: int, ds: Dataset) -> None:
    """Serve the registry's active model on ``127.0.0.1:port`` until Ctrl-C."""
    from recforge.exceptions import require

    require("fastapi", "serve")
    require("uvicorn", "serve")
    from recforge.serving.app import serve
    from recforge.serving.settings import ServiceSettings

    db = f"sqlite:///{(workdir / 'events.db').as_posix()}"
    _, key = prepare_store(db, ds)
    settings = ServiceSettings(registry=root, db=db, port=port)
    console().print(
        f"[bold green]Serving the winner at http://127.0.0.1:{port}/[/bold green] "
        "(API docs at /docs); Ctrl-C stops."
    )
    console().print(f"API key for sending events from the page: {key}")
    serve(settings, log_level="warning")


def demo(
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after the report and the samples.")
    ] = False,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="List length.")] = 10,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Only these demo models (repeatable)."),
    ] = None,
    users: Annotated[int, typer.Option("--users", min=0, help="Users to show lists for.")] = 3,
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Tuning trials of each searched model.")
    ] = 6,
    port: Annotated[int, typer.Option("--port", help="Port of the demo service.")] = 8000,
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the run, registry and events are kept.")
    ] = Path("recforge-demo"),
) -> None:
    """Run a short experiment on MovieLens, write its report, show explained recommendations
    and serve the winner."""
    from recforge.data.datasets import load
    from recforge.exceptions import ConfigError

    if model:
        unknown = [m for m in model if m not in DEMO_MODELS]
        if unknown:
            raise ConfigError(
                f"--model {unknown[0]!r} is not a demo model (demo models: "
                f"{', '.join(DEMO_MODELS)})"
            )
    ds = load(DEMO_DATA)
    err_console().print(
        f"{ds.name}: {ds.n_interactions:,} ratings of {ds.n_items:,} movies by {ds.n_users:,} users"
    )
    workdir = workdir.resolve()
    result = run_experiment(model, k, trials, workdir)
    print_leaderboard(result, k)
    out = console()
    out.print(f"Winner: [bold]{result.best}[/bold]. {result.reason}")
    if result.report is not None:
        out.print(f"Report: {result.report}")
    chosen = sample_users(ds, users)
    if chosen:
        show_recommendations(result.best, load_model(result, result.best), ds, chosen, k)
        for label in EXPLAINED:
            if label in (model or DEMO_MODELS) and label in DEMO_MODELS:
                show_explanations(label, load_model(result, label), ds, chosen[0], 3)
    root, version = publish(result, workdir)
    out.print(f"Registry: {root} (active: {version}, {result.best})")
    if not no_serve:
        serve_registry(root, workdir, port, ds)


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    app.command("demo")(demo)
