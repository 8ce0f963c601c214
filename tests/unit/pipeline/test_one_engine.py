"""One model on one split gives one number: evaluate(), recforge evaluate, recforge run, the gate.

Also: rating and AUC metrics as the selection and tuning metric, k-fold evaluation and
cold-start splits in ``recforge run``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from recforge.data import Dataset
from recforge.evaluation import evaluate
from recforge.models.knn import ItemKNN
from recforge.pipeline.runner import run
from recforge.serving.retrain import ranking_metric
from recforge.split import split_by_name


def _config(base: str, tmp: Path, **changes: object) -> Path:
    doc = yaml.safe_load(base)
    doc.update(changes)
    path = tmp / "recforge.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _engine_values(per_user: pd.DataFrame, model: str, metric: str, k: int) -> pd.Series:
    sel = per_user[
        (per_user["model"] == model)
        & (per_user["group"] == "known")
        & (per_user["metric"] == metric)
        & (per_user["k"] == k)
    ]
    return sel.set_index("user")["value"].sort_index()


def test_evaluate_run_cli_and_gate_agree_per_user(
    ratings_csv: Path, base_config_text: str, tmp_path: Path
) -> None:
    path = _config(
        base_config_text,
        tmp_path,
        prepare=[],
        split={"method": "user_random", "test_size": 0.25, "rng": 3},
        models={"itemknn": {"n_neighbors": 10}},
        tuning={"n_trials": 1, "metric": "ndcg", "k": 5},
        evaluation={"metrics": ["ndcg", "recall"], "k": [5], "bootstrap": 0},
    )
    result = run(path, progress=False, report=False)
    in_run = _engine_values(
        pd.read_parquet(result.run_dir / "per_user.parquet"), "itemknn", "ndcg", 5
    )

    frame = pd.read_csv(ratings_csv)
    ds = Dataset.from_frame(
        frame, user="userId", item="movieId", value="rating", time="timestamp", name="ratings.csv"
    )
    split = split_by_name(ds, {"method": "user_random", "test_size": 0.25, "rng": 3})
    saved = pd.read_parquet(result.run_dir / "split" / "test.parquet")
    assert len(saved) == split.test.n_interactions  # the same split as the run's
    direct = evaluate({"itemknn": ItemKNN(n_neighbors=10)}, split, metrics=["ndcg"], k=5)
    pd.testing.assert_series_equal(
        _engine_values(direct.per_user, "itemknn", "ndcg", 5), in_run, check_names=False
    )

    model = ItemKNN(n_neighbors=10).fit(split.train)
    _, _, gate = ranking_metric(model, split.train, split.test, "ndcg@5")
    pd.testing.assert_series_equal(gate.sort_index(), in_run, check_names=False)

    from recforge.cli import app

    out = tmp_path / "cli.json"
    cli = CliRunner().invoke(
        app,
        [
            "evaluate", "--data", str(ratings_csv), "--user", "userId", "--item", "movieId",
            "--value", "rating", "--time", "timestamp", "--model", "itemknn:n_neighbors=10",
            "--split", "user-random", "--test-size", "0.25", "--seed", "3", "--metric", "ndcg",
            "--k", "5", "--output", str(out), "--per-user", "--bootstrap", "0",
        ],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    doc = json.loads(out.read_text())
    rows = pd.DataFrame(doc["per_user"])
    pd.testing.assert_series_equal(
        _engine_values(rows, rows["model"].iloc[0], "ndcg", 5).astype(float),
        in_run,
        check_names=False,
        check_index_type=False,
    )


@pytest.mark.parametrize(("metric", "best_is_low"), [("rmse", True), ("auc", False)])
def test_rating_and_auc_metrics_select_and_tune(
    base_config_text: str, ratings_csv: Path, tmp_path: Path, metric: str, best_is_low: bool
) -> None:
    path = _config(
        base_config_text,
        tmp_path,
        models={
            "bias": {"reg_user": {"type": "float", "low": 0.5, "high": 20.0, "log": True}},
            "svd": {"factors": 4, "epochs": 5},
        },
        tuning={"n_trials": 3, "metric": metric, "k": 5},
        evaluation={"metrics": ["ndcg", metric], "k": [5], "bootstrap": 0},
    )
    result = run(path, progress=False, report=True)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    assert doc["main_metric"] == {"metric": metric, "k": None, "group": "known"}
    s = result.summary
    rows = s[(s["metric"] == metric) & (s["group"] == "known")].set_index("model")["value"]
    assert rows.notna().all()
    best = rows.idxmin() if best_is_low else rows.idxmax()
    assert result.best == best
    assert doc["models"]["bias"]["tuning"]["metric"] == metric
    trials = pd.read_csv(result.run_dir / "tuning/bias/trials.csv")
    chosen = trials["value"].idxmin() if best_is_low else trials["value"].idxmax()
    assert doc["models"]["bias"]["params"]["reg_user"] == pytest.approx(
        trials.loc[chosen, "param_reg_user"]
    )
    assert metric in (result.run_dir / "report.html").read_text(encoding="utf-8")


def test_kfold_evaluation_by_name(base_config_text: str, ratings_csv: Path, tmp_path: Path) -> None:
    path = _config(
        base_config_text,
        tmp_path,
        split={"method": "kfold", "n_folds": 3, "rng": 1},
        models={"popular": {}, "itemknn": {"n_neighbors": 10}},
        tuning={"n_trials": 1, "metric": "ndcg", "k": 5},
        evaluation={"metrics": ["ndcg"], "k": [5], "bootstrap": 0},
    )
    result = run(path, progress=False, report=True)
    s = result.summary
    row = s[(s["model"] == "itemknn") & (s["metric"] == "ndcg") & (s["group"] == "known")]
    assert int(row["n_folds"].iloc[0]) == 3
    per_user = pd.read_parquet(result.run_dir / "per_user.parquet")
    assert sorted(per_user["fold"].unique()) == [0, 1, 2]
    fold_means = (
        per_user[(per_user["model"] == "itemknn") & (per_user["metric"] == "ndcg")]
        .groupby("fold")["value"]
        .mean()
    )
    assert row["value"].iloc[0] == pytest.approx(fold_means.mean())
    assert row["ci_low"].iloc[0] < fold_means.mean() < row["ci_high"].iloc[0]
    for f in range(3):
        assert (result.run_dir / "split" / f"fold{f}" / "test.parquet").is_file()


def test_cold_user_split_runs_and_says_how_lists_were_made(
    base_config_text: str, ratings_csv: Path, tmp_path: Path
) -> None:
    path = _config(
        base_config_text,
        tmp_path,
        prepare=[],
        split={"method": "cold_users", "test_size": 0.3, "rng": 0},
        models={"popular": {}, "itemknn": {"n_neighbors": 10}},
        tuning={"n_trials": 1, "metric": "ndcg", "k": 5},
        evaluation={"metrics": ["ndcg"], "k": [5], "bootstrap": 0},
    )
    result = run(path, progress=False, report=True)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    assert doc["main_metric"]["group"] == "cold"
    note = doc["models"]["itemknn"]["notes"]["cold"]
    assert "fallback" in note
    s = result.summary
    assert set(s["group"]) == {"cold"}
    assert "cold test users" in result.reason


def test_cold_item_split_runs(base_config_text: str, ratings_csv: Path, tmp_path: Path) -> None:
    path = _config(
        base_config_text,
        tmp_path,
        prepare=[],
        split={"method": "cold_items", "test_size": 0.2, "rng": 0},
        models={"popular": {}, "itemknn": {"n_neighbors": 10}},
        tuning={"n_trials": 1, "metric": "ndcg", "k": 5},
        evaluation={"metrics": ["ndcg"], "k": [5], "bootstrap": 0},
    )
    result = run(path, progress=False, report=False)
    s = result.summary
    known = s[(s["group"] == "known") & (s["metric"] == "ndcg")]
    assert len(known) == 2
    assert np.isfinite(known["value"]).all()
