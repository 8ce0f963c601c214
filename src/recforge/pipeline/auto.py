"""``recforge auto DATA --budget 15m``: pick a split and model families, tune, report the winner.

The decisions are rules a person could check, and every one is written down (printed, stored
in ``metrics.json`` and shown in the report):

* **Split**: a per-user temporal split (each user's newest 20 % is the test set) when the data
  has timestamps, else a per-user random split; 10 % of the rest validates the search.
* **Feedback**: what the values mean (:attr:`Dataset.feedback`): ratings on a scale, counts
  (plays, purchases), other weights, or bare presence. Only ratings count as explicit (SVD is
  then a candidate); with counts or weights the search also chooses how they are weighted
  (ALS: linear, log or BM25 confidence; the item-item models: values or presence).
* **Families**: a popularity baseline always; item neighbourhoods (ItemKNN), the graph walk
  RP3beta, implicit ALS and EASE; BPR for implicit feedback; SVD for explicit ratings; the
  content model when item attributes are given, and the two-tower model too when PyTorch is
  installed; the sequential SASRec when the data has
  timestamps, PyTorch is installed and the budget is at least :data:`SEQUENTIAL_MIN_BUDGET_S`.
* **Fit time, measured**: each tuned family is fitted on 5 % and 10 % of the users
  (:func:`recforge.pipeline._probe.fit_seconds`) and its full fit extrapolated; a family whose
  one fit would take more than half of its share of the budget (fewer than two trials) is
  left out, with the estimate, and so is one that would not fit in memory.
* **Budget**: about 15 % is held back for the final fits and the test evaluation; the rest,
  less the probes' time, is shared among the tuned families in proportion to a weight
  reflecting how much each gains from tuning and how long one of its trials takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recforge.data import Dataset
from recforge.data.datasets import REGISTRY, load
from recforge.exceptions import ConfigError
from recforge.models import available_models, model_class
from recforge.pipeline._probe import FitEstimate, fit_seconds
from recforge.pipeline.config import RunConfig, guess_columns, validate_config
from recforge.pipeline.runner import RunResult, run_config
from recforge.pipeline.tuning import default_search_space

__all__ = ["AutoPlan", "auto", "plan"]

#: Relative share of the tuning budget per family (cost of a trial x value of tuning).
FAMILY_WEIGHTS: dict[str, float] = {
    "itemknn": 1.0,
    "rp3beta": 1.0,
    "ease": 0.6,
    "als": 1.6,
    "bpr": 1.4,
    "svd": 0.5,  # a rating model: rarely the best ranker, so a smaller share
    "content": 0.5,
    "sasrec": 2.0,  # one trial trains a Transformer for many epochs
    "twotower": 1.5,  # one trial trains two towers for some epochs
}
#: Smallest budget for which auto also tunes the sequential SASRec (its trials are slow).
SEQUENTIAL_MIN_BUDGET_S = 1800.0
#: A family is tuned only if one fit takes at most this share of its budget (two trials).
MAX_FIT_SHARE = 0.5
#: Families whose fit time is not probed (their trials train for many epochs; SASRec has its
#: own budget rule).
UNPROBED = frozenset({"sasrec"})
#: Fixed parameters of families in auto mode (speed settings).
FIXED: dict[str, dict[str, Any]] = {
    "ease": {"precision": "float32"},
    "sasrec": {"epochs": 50},
    "twotower": {"epochs": 20},
}
#: Share of the budget kept for final fits and evaluation.
RESERVE = 0.15


@dataclass
class AutoPlan:
    """What :func:`auto` will do, and why.

    Attributes
    ----------
    split : dict
        Split specification for :func:`recforge.split.split_by_name`.
    families : list of str
        Models to compare (short names); ``popular`` is not tuned.
    budgets : dict
        Tuning seconds per tuned family.
    decisions : list of str
        One sentence per decision.
    spaces : dict
        Search spaces added to a family's default one (e.g. the weighting of counts).
    fit_seconds : dict
        Estimated seconds of one fit per probed family.
    """

    split: dict[str, Any]
    families: list[str]
    budgets: dict[str, float]
    decisions: list[str]
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    fit_seconds: dict[str, float] = field(default_factory=dict)


def plan(
    ds: Dataset,
    budget_s: float,
    *,
    seed: int = 0,
    estimate: Callable[[str, float], FitEstimate] | None = None,
) -> AutoPlan:
    """Choose the split, the families and the budget split for a dataset.

    Parameters
    ----------
    ds
        The interactions.
    budget_s
        Total wall-time budget in seconds.
    seed
        Seed of the fit-time probes.
    estimate
        ``estimate(family, share_s)``: the fit-time estimate of a family given its budget
        share; by default measured with :func:`recforge.pipeline._probe.fit_seconds`.
    """
    decisions = [_split_decision(ds)]
    split = _split_of(ds)
    feedback = ds.feedback
    families, why = _candidates(ds, budget_s, decisions)
    available = set(available_models())
    missing = [f for f in families if f not in available]
    families = [f for f in families if f in available]
    decisions.append(
        f"Feedback: {feedback.kind} ({feedback.reason}); {ds.n_users:,} users, "
        f"{ds.n_items:,} items, {ds.n_interactions:,} interactions. Families: "
        + "; ".join(w for w in why if w.split(" ")[0] in families)
        + "."
    )
    if missing:
        decisions.append(f"Not installed, skipped: {', '.join(missing)}.")
    spaces = _weighting_spaces(families) if feedback.kind in ("counts", "weights") else {}
    if spaces:
        decisions.append(
            f"Weighting searched with each model (the values are {feedback.kind}): "
            + "; ".join(f"{f} {', '.join(sp)}" for f, sp in spaces.items())
            + "."
        )
    pool = budget_s * (1.0 - RESERVE)
    measure = estimate or (
        lambda fam, share: fit_seconds(
            fam, ds, fixed=FIXED.get(fam), seed=seed, limit_s=MAX_FIT_SHARE * share
        )
    )
    families, pool, seconds = _probe_families(families, pool, measure, decisions)
    tuned = [f for f in families if f != "popular" and default_search_space(f)]
    budgets = _shares(tuned, pool)
    decisions.append(
        f"Budget: {budget_s:.0f} s in all, {RESERVE:.0%} kept for final fits and evaluation; "
        "tuning time per family: " + ", ".join(f"{f} {s:.0f} s" for f, s in budgets.items()) + "."
    )
    return AutoPlan(split, families, budgets, decisions, spaces, seconds)


def _split_of(ds: Dataset) -> dict[str, Any]:
    if ds.has_time:
        return {"method": "temporal", "per_user_last": 0.2, "valid_size": 0.1}
    return {"method": "user_random", "test_size": 0.2, "valid_size": 0.1}


def _split_decision(ds: Dataset) -> str:
    if ds.has_time:
        return (
            "Split: the data has timestamps, so each user's newest 20% of items form the test "
            "set (and the newest 10% of the rest validates the search): models are judged on "
            "predicting the future, as in production."
        )
    return (
        "Split: no timestamps, so 20% of each user's items, drawn at random, form the test "
        "set and 10% of the rest validates the search."
    )


def _candidates(ds: Dataset, budget_s: float, decisions: list[str]) -> tuple[list[str], list[str]]:
    families = ["popular", "itemknn", "rp3beta", "als", "ease"]
    why = [
        "popular (the baseline every model must beat)",
        "itemknn and rp3beta (neighbourhood and graph models: strong on sparse data)",
        "als (implicit matrix factorisation)",
        "ease (a linear item model, strong on dense catalogues)",
    ]
    if ds.feedback.explicit:
        families.append("svd")
        why.append("svd (the data has explicit ratings)")
    else:
        families.append("bpr")
        why.append("bpr (pairwise ranking loss for implicit feedback)")
    if ds.item_attributes is not None and len(ds.item_attributes.columns):
        families.append("content")
        why.append("content (item attributes are available)")
        families += _two_tower(why, decisions)
    families += _sequential(ds, budget_s, why, decisions)
    return families, why


def _weighting_spaces(families: list[str]) -> dict[str, dict[str, Any]]:
    """Searched weightings of counts: ALS's confidence and the item models' use of values."""
    out: dict[str, dict[str, Any]] = {}
    for fam in families:
        names = model_class(fam).param_names()
        if "weighting" in names and fam == "als":
            out[fam] = {"weighting": {"choices": ["linear", "log", "bm25"]}}
        elif "binary" in names:
            out[fam] = {"binary": {"choices": [True, False]}}
    return out


def _shares(tuned: list[str], pool: float) -> dict[str, float]:
    total_w = sum(FAMILY_WEIGHTS.get(f, 1.0) for f in tuned) or 1.0
    return {f: pool * FAMILY_WEIGHTS.get(f, 1.0) / total_w for f in tuned}


def _probe_families(
    families: list[str],
    pool: float,
    measure: Callable[[str, float], FitEstimate],
    decisions: list[str],
) -> tuple[list[str], float, dict[str, float]]:
    """Drop families too slow for their share; ``(families, pool left, seconds per family)``."""
    probed = [f for f in families if f != "popular" and f not in UNPROBED]
    shares = _shares([f for f in families if f != "popular" and default_search_space(f)], pool)
    seconds: dict[str, float] = {}
    spent = 0.0
    dropped: list[str] = []
    for fam in probed:
        share = shares.get(fam, pool)
        found = measure(fam, share)
        spent += found.probe_seconds
        seconds[fam] = found.seconds
        if found.seconds > MAX_FIT_SHARE * share:
            dropped.append(fam)
            why = found.note or (
                f"one fit would take about {found.seconds:.1f} s, more than half of its "
                f"{share:.0f} s share of the budget"
            )
            decisions.append(f"{_label(fam)} skipped: {why}.")
    if seconds:
        decisions.append(
            "Fit time per family, measured on 5% and 10% of the users and extrapolated: "
            + ", ".join(f"{f} {s:.2g} s" for f, s in seconds.items() if np.isfinite(s))
            + f" (the probes took {spent:.1f} s of the budget)."
        )
    kept = [f for f in families if f not in dropped]
    return kept, max(pool - spent, 0.0), seconds


def _label(family: str) -> str:
    return {"ease": "EASE", "als": "ALS", "bpr": "BPR", "svd": "SVD"}.get(family, family)


def _torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _two_tower(why: list[str], decisions: list[str]) -> list[str]:
    """``["twotower"]`` (the data has item attributes) when torch is installed."""
    if not _torch_installed():
        decisions.append(
            "TwoTower skipped: PyTorch is not installed (pip install 'recforge[deep]')."
        )
        return []
    why.append("twotower (item attributes feed its item tower: cold items are served too)")
    return ["twotower"]


def _sequential(ds: Dataset, budget_s: float, why: list[str], decisions: list[str]) -> list[str]:
    """``["sasrec"]`` when the data is ordered in time, torch is there and the budget allows."""
    if not ds.has_time:
        return []
    if not _torch_installed():
        decisions.append("SASRec skipped: PyTorch is not installed (pip install 'recforge[deep]').")
        return []
    if budget_s < SEQUENTIAL_MIN_BUDGET_S:
        decisions.append(
            f"SASRec skipped: a {budget_s:.0f} s budget is below the "
            f"{SEQUENTIAL_MIN_BUDGET_S:.0f} s its slow trials need."
        )
        return []
    why.append("sasrec (the data has timestamps: a sequential model reads each user in order)")
    return ["sasrec"]


def _read(
    path: Path, columns: dict[str, str | None] | None
) -> tuple[Dataset, dict[str, Any], list[str]]:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        sample = pd.read_parquet(path).head(20_000)
    else:
        sample = pd.read_csv(path, nrows=20_000)
    guessed, notes = guess_columns(sample)
    if columns:
        guessed.update({k: v for k, v in columns.items() if v is not None})
    kw = {k: guessed[k] for k in ("user", "item", "value", "time")}
    source = {
        "source": "parquet" if suffix in (".parquet", ".pq") else "csv",
        "path": str(path.resolve()),
        "columns": kw,
    }
    if suffix in (".parquet", ".pq"):
        return Dataset.from_parquet(path, **kw), source, notes
    return Dataset.from_csv(path, **kw), source, notes


def _dataset(
    data: str | Path | Dataset, columns: dict[str, str | None] | None
) -> tuple[Dataset, dict[str, Any], list[str]]:
    """``(dataset, data section of the config, notes on guessed columns)`` of ``auto``'s input."""
    if isinstance(data, Dataset):
        # an in-memory dataset: recorded by name; the run directory keeps its fingerprint
        return data, {"source": "builtin", "name": data.name}, []
    if not Path(data).is_file() and str(data) in REGISTRY:
        return load(str(data)), {"source": "builtin", "name": str(data)}, []
    path = Path(data)
    if not path.is_file():
        raise ConfigError(f"data file not found: {path} (named data sets: {', '.join(REGISTRY)})")
    return _read(path, columns)


def _model_section(the_plan: AutoPlan) -> dict[str, Any]:
    """The ``models`` section: fixed settings, plus a default search for the tuned families."""
    models: dict[str, Any] = {}
    for fam in the_plan.families:
        if fam not in the_plan.budgets:
            models[fam] = dict(FIXED.get(fam, {}))
        else:
            models[fam] = {
                **FIXED.get(fam, {}),
                **the_plan.spaces.get(fam, {}),
                "search": "default",
                "budget": max(1.0, the_plan.budgets[fam]),
                "n_trials": 200,
            }
    return models


def auto(
    data: str | Path | Dataset,
    budget_s: float,
    *,
    output: str | Path = "runs/auto",
    seed: int = 42,
    columns: dict[str, str | None] | None = None,
    metric: str = "ndcg",
    k: int = 10,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> RunResult:
    """Pick, tune and compare models for a dataset within a wall-time budget.

    Parameters
    ----------
    data
        CSV/Parquet interaction file (columns are guessed, see
        :func:`recforge.pipeline.config.guess_columns`), the name of a data set of
        :mod:`recforge.datasets` (``"movielens-small"``) or a :class:`Dataset`.
    budget_s
        Wall-time budget in seconds for the whole search.
    output
        Run directory.
    seed
        Seed of the split, the samplers and the models.
    columns
        Override guessed columns (``{"user": "uid", ...}``).
    metric, k
        Metric to optimise and compare on.
    progress
        Show progress bars.
    echo
        Receives each decision as it is made (e.g. ``print``).

    Returns
    -------
    RunResult
        Whose ``reason`` explains the winner, preceded by the decisions taken.
    """
    if budget_s <= 0:
        raise ConfigError(f"budget must be positive, got {budget_s!r} seconds")
    say = echo or (lambda _text: None)
    ds, source, notes = _dataset(data, columns)
    if notes:
        say("Columns: " + "; ".join(notes))
    the_plan = plan(ds, budget_s, seed=seed)
    for line in the_plan.decisions:
        say(line)
    raw = {
        "name": f"auto · {ds.name}",
        "seed": seed,
        "data": source,
        "split": the_plan.split,
        "models": _model_section(the_plan),
        "tuning": {"n_trials": 200, "metric": metric, "k": k, "pruning": True},
        "evaluation": {"k": sorted({5, k, 20}), "bootstrap": 1000},
        "output": {"dir": str(output)},
    }
    cfg: RunConfig = validate_config(raw, source="recforge auto", check_files=False)
    result = run_config(
        cfg,
        run_dir=output,
        progress=progress,
        dataset=ds,
        extra_notes={
            "decisions": [*(["Columns: " + "; ".join(notes)] if notes else []), *the_plan.decisions]
        },
    )
    say(f"Winner: {result.reason}")
    return result
