"""``recforge evaluate``: split data, fit models and compare their top-K metrics."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recforge.cli._common import build_model, console, err_console, frame_table, load_data
from recforge.cli._data import ItemOpt, SepOpt, TimeOpt, UserOpt, ValueOpt
from recforge.cli._recommend import (
    CalibrateOpt,
    CandidatesOpt,
    CategoryOpt,
    ExcludeCategoryOpt,
    FilterOpt,
    MmrOpt,
    SimilarityOpt,
    rerank_spec,
)
from recforge.exceptions import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

    from recforge.data import Dataset
    from recforge.evaluation import EvaluationResult
    from recforge.split import Split

__all__ = ["SplitMethod", "make_split", "print_result", "register"]


class SplitMethod(StrEnum):
    """Split protocols offered on the command line."""

    temporal = "temporal"
    random = "random"
    loo = "loo"
    user_random = "user-random"
    cold_users = "cold-users"
    cold_items = "cold-items"


def make_split(ds: Dataset, method: SplitMethod, test_size: float, seed: int) -> Split:
    """Split ``ds`` by a command-line protocol.

    ``temporal`` is a global cut leaving the newest ``test_size`` share in test (it needs
    timestamps); ``loo`` holds out each user's newest pair (a random one without timestamps);
    ``cold-users``/``cold-items`` hold out a ``test_size`` share of the users/items entirely.
    """
    from recforge import split as S

    if method is SplitMethod.temporal:
        return S.temporal_split(ds, quantile=1.0 - test_size)
    if method is SplitMethod.random:
        return S.random_split(ds, test_size, rng=seed)
    if method is SplitMethod.user_random:
        return S.random_split(ds, test_size, per_user=True, rng=seed)
    if method is SplitMethod.loo:
        return S.leave_one_out(ds, by="time" if ds.has_time else "random", valid=False, rng=seed)
    if method is SplitMethod.cold_users:
        return S.cold_start_split(ds, entity="user", test_size=test_size, rng=seed)
    return S.cold_start_split(ds, entity="item", test_size=test_size, rng=seed)


def _tables(result: EvaluationResult, group: str, title: str) -> list[Table]:
    """One table per cutoff (rows: models, columns: metrics); cutoff-free metrics go first."""
    tables = []
    for pos, k in enumerate(result.ks):
        wide = result.table(k=k, group=group)
        suffix = f"@{k}"
        keep = [c for c in wide.columns if c.endswith(suffix) or (pos == 0 and "@" not in c)]
        if not keep:
            continue
        shown = wide[keep].rename(columns={c: c.removesuffix(suffix) for c in keep})
        tables.append(frame_table(shown, title=f"{title}, top {k}"))
    return tables


def print_result(result: EvaluationResult, *, show_cold: bool = True) -> None:
    """Print the metric tables (known users, then cold users) and the timings."""
    out = console()
    n_known = int(result.settings.get("n_test_users", 0)) - int(
        result.settings.get("n_cold_users", 0)
    )
    for table in _tables(result, "known", f"{n_known} known test users"):
        out.print(table)
    n_cold = int(result.settings.get("n_cold_users", 0))
    if show_cold and n_cold:
        title = f"{n_cold} cold test users (no training data: popular items)"
        for table in _tables(result, "cold", title):
            out.print(table)
    import pandas as pd

    timings = pd.DataFrame(result.timings).T.rename_axis("model")
    timings.columns = [c.replace("_seconds", " (s)") for c in timings.columns]
    out.print(frame_table(timings, title="Timings", digits=3))


def evaluate_cmd(
    data: Annotated[
        str, typer.Option("--data", "-d", help="Data set name or CSV/TSV/Parquet file.")
    ],
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            help="Model as NAME[:key=val,key=val], e.g. als:factors=32,reg=0.05. Repeatable.",
        ),
    ],
    split: Annotated[
        SplitMethod, typer.Option("--split", "-s", help="Split protocol.")
    ] = SplitMethod.temporal,
    test_size: Annotated[
        float, typer.Option("--test-size", help="Share of interactions (or entities) in test.")
    ] = 0.2,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help=(
                "Metric (repeatable): precision, recall, ndcg, ndcg_graded, map, mrr, hit_rate, "
                "auc, coverage, gini, novelty, diversity, serendipity, popularity, rmse, mae. "
                "Default: precision, recall, ndcg, map, mrr, hit_rate, coverage, novelty."
            ),
        ),
    ] = None,
    k: Annotated[list[int] | None, typer.Option("--k", help="Cutoff (repeatable).")] = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Only test values >= this count as relevant."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the results as JSON here.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and bootstrap.")] = 0,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Bootstrap resamples for the intervals (0: none).")
    ] = 1000,
    per_user: Annotated[
        bool, typer.Option("--per-user", help="Include every user's values in the JSON output.")
    ] = False,
    user: UserOpt = None,
    item: ItemOpt = None,
    value: ValueOpt = None,
    time: TimeOpt = None,
    sep: SepOpt = ",",
    mmr: MmrOpt = None,
    similarity: SimilarityOpt = "auto",
    calibrate: CalibrateOpt = None,
    exclude_category: ExcludeCategoryOpt = [],  # noqa: B006 - typer copies defaults
    filters: FilterOpt = [],  # noqa: B006 - typer copies defaults
    category_column: CategoryOpt = "genres",
    candidates: CandidatesOpt = 5,
) -> None:
    """Split the data, fit each model on the training part and compare top-K metrics.

    Test users without training data are reported separately (they get popular items).
    With re-ranking flags (--mmr, --calibrate, --exclude-category, --filter) every model's
    lists are re-ranked, with the data's item attributes, before they are measured.
    """
    from recforge.evaluation import DEFAULT_METRICS, evaluate

    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"--test-size must be in (0, 1), got {test_size!r}")
    models = dict(build_model(spec) for spec in model)  # check specs before loading data
    if len(models) < len(model):
        raise ConfigError("the same --model is given twice")
    rerank = rerank_spec(
        mmr, similarity, calibrate, category_column, exclude_category, filters, candidates
    )
    ds = load_data(data, user=user, item=item, value=value, time=time, sep=sep)
    reranker = None if rerank is None else rerank.reranker(ds.item_attributes)
    parts = make_split(ds, split, test_size, seed)
    err_console().print(
        f"{ds.name}: {ds.n_interactions:,} interactions; {parts.name}: "
        f"train {len(parts.train):,}, test {len(parts.test):,}"
    )
    result = evaluate(
        models,
        parts,
        metrics=metric or DEFAULT_METRICS,
        k=k or [10],
        relevance_threshold=threshold,
        n_bootstrap=bootstrap,
        rng=seed,
        progress=True,
        reranker=reranker,
    )
    print_result(result)
    if result.settings.get("n_cold_users"):
        err_console().print(
            f"{result.settings['n_cold_users']} test users have no training data: each model "
            "gives them its fallback list (most popular items), reported as group 'cold'"
        )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        result.to_json(str(output), per_user=per_user)
        err_console().print(f"results written to {output}")


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the root app."""
    app.command("evaluate")(evaluate_cmd)
