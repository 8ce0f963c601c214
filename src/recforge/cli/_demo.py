"""``recforge demo``: the whole path on the shipped MovieLens sample, in small steps.

Steps (each a function, so the demo can grow): load the data, split each user's ratings by
time, evaluate the baselines and every other quick registered model, print the metrics, show
sample recommendations with movie titles, then (unless ``--no-serve``) save the best model and
serve it over HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recforge.cli._common import console, err_console, frame_table

if TYPE_CHECKING:
    from recforge.data import Dataset
    from recforge.evaluation import EvaluationResult
    from recforge.models.base import Recommender
    from recforge.split import Split

__all__ = ["DEMO_DATA", "DEMO_MODELS", "register"]

DEMO_DATA = "movielens-small"

#: Models of the demo with settings that train in seconds on the MovieLens sample. A model is
#: used when it is registered and importable; keys it does not accept are dropped. Add new
#: quick models here.
DEMO_MODELS: dict[str, dict[str, Any]] = {
    "popular": {},
    "random": {"rng": 0},
    "bias": {},
    "itemknn": {"n_neighbors": 50},
    "userknn": {"n_neighbors": 50},
    "rp3beta": {"n_neighbors": 100},
    "als": {"factors": 32, "iterations": 8, "rng": 0},
    "bpr": {"factors": 32, "epochs": 10, "rng": 0},
    "svd": {"factors": 32, "epochs": 10, "rng": 0},
    "content": {},
}
DEMO_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage", "novelty")


def load_demo_data() -> Dataset:
    """The shipped MovieLens latest-small ratings with titles."""
    from recforge.data.datasets import load

    return load(DEMO_DATA)


def split_demo_data(ds: Dataset, test_size: float = 0.2) -> Split:
    """Per-user temporal split: each user's newest ``test_size`` share of ratings is test.

    (A global cut by date leaves most MovieLens test users without any training history.)
    """
    from recforge.split import temporal_split

    return temporal_split(ds, per_user_last=test_size)


def demo_models(names: list[str] | None = None) -> dict[str, Recommender]:
    """Instances of the demo models available in this installation, in ``DEMO_MODELS`` order."""
    from recforge.models import MODELS, model_class

    out: dict[str, Recommender] = {}
    for name, settings in DEMO_MODELS.items():
        if name not in MODELS or (names is not None and name not in names):
            continue
        try:
            cls = model_class(name)
        except KeyError:
            continue
        accepted = set(cls._param_names())
        out[name] = cls(**{k: v for k, v in settings.items() if k in accepted})
    return out


def run_evaluation(models: dict[str, Recommender], split: Split, k: int) -> EvaluationResult:
    """Fit every model on the training part and evaluate it with a progress bar."""
    from recforge.evaluation import evaluate

    return evaluate(models, split, metrics=DEMO_METRICS, k=k, n_bootstrap=200, progress=True)


def best_model(result: EvaluationResult, k: int) -> str:
    """Name of the model with the highest nDCG@k on known test users."""
    table = result.table(k=k)
    return str(table[f"ndcg@{k}"].idxmax())


def sample_users(split: Split, n: int) -> list[Any]:
    """``n`` known test users (with training history), the most active in test first."""
    import numpy as np

    test_counts = np.bincount(split.test.user, minlength=split.test.n_users)
    known = split.train.user_counts() > 0
    test_counts[~known] = 0
    order = np.lexsort((np.arange(test_counts.size), -test_counts))
    chosen = [int(u) for u in order[:n] if test_counts[u] > 0]
    return [split.train.users.ids_of([u])[0].item() for u in chosen]


def titles(ds: Dataset, items: Any) -> list[str]:
    """Titles of items (their ids when the data has no ``title`` attribute)."""
    attrs = ds.item_attributes
    if attrs is None or "title" not in attrs.columns:
        return [str(i) for i in items]
    col = attrs["title"]
    return [str(col.get(i, i)) for i in items]


def show_samples(model_name: str, model: Recommender, split: Split, n_users: int, k: int) -> None:
    """Top-``k`` lists with movie titles for a few users; hits in their test data are marked."""
    import pandas as pd

    users = sample_users(split, n_users)
    if not users:
        return
    recs = model.recommend(users, k=k)
    test = split.test.to_frame()
    out = console()
    for pos, user in enumerate(users):
        pairs = recs.for_user(pos)
        watched = set(test.loc[test["user"] == user, "item"].tolist())
        items = [item for item, _ in pairs]
        table = pd.DataFrame(
            {
                "title": titles(split.train, items),
                "score": [score for _, score in pairs],
                "in test": ["yes" if i in watched else "" for i in items],
            },
            index=pd.RangeIndex(1, len(items) + 1, name="rank"),
        )
        n_train = int(split.train.user_counts()[split.train.users.codes([user])[0]])
        title = f"{model_name} for user {user} ({n_train} training ratings, {len(watched)} in test)"
        out.print(frame_table(table, title=title, digits=3))


def serve_model(model_name: str, model: Recommender, workdir: Path, port: int) -> None:
    """Save ``model`` under ``workdir`` and serve it on ``127.0.0.1:port`` until Ctrl-C."""
    from recforge.exceptions import require

    require("fastapi", "serve")
    require("uvicorn", "serve")
    from recforge.serving.app import serve
    from recforge.serving.settings import ServiceSettings

    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = model.save(workdir / f"model-{model_name}")
    settings = ServiceSettings(
        model_dir=model_dir, db=f"sqlite:///{(workdir / 'events.db').as_posix()}", port=port
    )
    err_console().print(
        f"serving {model_name} at http://127.0.0.1:{port}/ (API docs at /docs); Ctrl-C stops"
    )
    serve(settings, log_level="warning")


def demo(
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after the evaluation and samples.")
    ] = False,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="List length.")] = 10,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Only these demo models (repeatable)."),
    ] = None,
    users: Annotated[int, typer.Option("--users", min=0, help="Users to show lists for.")] = 3,
    port: Annotated[int, typer.Option("--port", help="Port of the demo service.")] = 8000,
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the served model and events are kept.")
    ] = Path("recforge-demo"),
) -> None:
    """Evaluate the models on MovieLens (temporal split) and show recommendations with titles."""
    from recforge.exceptions import ConfigError

    if model:
        unknown = [m for m in model if m not in DEMO_MODELS]
        if unknown:
            raise ConfigError(
                f"--model {unknown[0]!r} is not a demo model (demo models: "
                f"{', '.join(DEMO_MODELS)})"
            )
    ds = load_demo_data()
    split = split_demo_data(ds)
    err = err_console()
    err.print(f"{ds.name}: {ds.n_interactions:,} ratings; {split.name}")
    models = demo_models(model)
    result = run_evaluation(models, split, k)
    from recforge.cli._evaluate import print_result

    print_result(result)
    best = best_model(result, k)
    console().print(f"Best model by nDCG@{k} on known users: [bold]{best}[/bold]")
    show_samples(best, models[best], split, users, k)
    if not no_serve:
        serve_model(best, models[best], workdir, port)


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    app.command("demo")(demo)
