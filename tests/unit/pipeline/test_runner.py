"""The run pipeline: run directory, determinism, resume after an interruption, statistics."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.models.base import Recommender
from recforge.pipeline.runner import run


def test_run_writes_a_complete_run_directory(write_config: Callable[[str], Path]) -> None:
    result = run(write_config(), progress=False)
    out = result.run_dir
    for name in (
        "config.yaml",
        "config.json",
        "environment.json",
        "data.json",
        "split/train.parquet",
        "split/valid.parquet",
        "split/test.parquet",
        "tuning/bias/trials.csv",
        "tuning/bias/journal.log",
        "metrics.json",
        "metrics.csv",
        "per_user.parquet",
        "significance.csv",
        "report.html",
        "run.log",
    ):
        assert (out / name).is_file(), name
    for label in ("popular", "random", "bias"):
        assert (out / "models" / label / "result.json").is_file()
        model = Recommender.load(out / "models" / label / "model")
        assert model.recommend([next(iter(model.users_.ids))], k=3).lengths[0] == 3
    trials = pd.read_csv(out / "tuning/bias/trials.csv")
    assert len(trials) == 4
    assert {"fit_s", "eval_s", "overhead_s", "param_reg_user"} <= set(trials.columns)
    data = json.loads((out / "data.json").read_text())
    assert len(data["fingerprint"]) == 64
    assert data["summary"]["n_users"] == 60
    assert data["prepare"][0]["step"] == "deduplicate"
    env = json.loads((out / "environment.json").read_text())
    assert env["libraries"]["numpy"] == np.__version__
    # the split saved with external ids covers every interaction exactly once
    parts = [pd.read_parquet(out / f"split/{p}.parquet") for p in ("train", "valid", "test")]
    assert sum(len(p) for p in parts) == pd.read_csv(write_config().parent / "ratings.csv").shape[0]
    # fitted bias uses the best tuned parameters
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["models"]["bias"]["params"]["reg_user"] == pytest.approx(
        trials.loc[trials["value"].idxmax(), "param_reg_user"]
    )


def test_same_config_and_seed_give_same_numbers(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    cfg = write_config()
    a = run(cfg, run_dir=tmp_path / "a", progress=False, report=False)
    b = run(cfg, run_dir=tmp_path / "b", progress=False, report=False)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    pd.testing.assert_frame_equal(a.significance, b.significance)
    ta = pd.read_csv(tmp_path / "a/tuning/bias/trials.csv")
    tb = pd.read_csv(tmp_path / "b/tuning/bias/trials.csv")
    pd.testing.assert_series_equal(ta["param_reg_user"], tb["param_reg_user"])
    pd.testing.assert_series_equal(ta["value"], tb["value"])


def test_interrupted_run_resumes_without_refitting(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    cfg = write_config()
    out = tmp_path / "resumable"

    def interrupt_after_first(label: str) -> None:
        raise KeyboardInterrupt(f"stopped after {label}")

    with pytest.raises(KeyboardInterrupt):
        run(cfg, run_dir=out, progress=False, on_model_done=interrupt_after_first)
    marker = out / "models" / "popular" / "result.json"
    assert marker.is_file()
    assert not (out / "models" / "random" / "result.json").exists()
    assert not (out / "metrics.json").exists()
    stamp = marker.stat().st_mtime_ns
    model_stamp = (out / "models/popular/model/arrays.npz").stat().st_mtime_ns

    result = run(cfg, run_dir=out, progress=False)
    assert result.refitted == ["random", "bias"]
    assert marker.stat().st_mtime_ns == stamp
    assert (out / "models/popular/model/arrays.npz").stat().st_mtime_ns == model_stamp
    fresh = run(cfg, run_dir=tmp_path / "fresh", progress=False, report=False)
    pd.testing.assert_frame_equal(result.summary, fresh.summary)

    again = run(cfg, run_dir=out, progress=False, report=False)
    assert again.refitted == []


def test_changed_model_config_invalidates_only_that_model(
    write_config: Callable[[str], Path], base_config: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    run(write_config(), run_dir=out, progress=False, report=False)
    changed = write_config(base_config.replace("  random: {}", "  random: {rng: 5}"))
    result = run(changed, run_dir=out, progress=False, report=False)
    assert result.refitted == ["random"]


def test_statistics_wiring(write_config: Callable[[str], Path]) -> None:
    result = run(write_config(), progress=False, report=False)
    s = result.summary
    assert set(s.columns) == {
        "model",
        "metric",
        "k",
        "value",
        "ci_low",
        "ci_high",
        "n_users",
        "group",
    }
    per_user = s[(s["group"] == "known") & (s["metric"] != "coverage")]
    assert (per_user["ci_low"] <= per_user["value"] + 1e-12).all()
    assert (per_user["ci_high"] >= per_user["value"] - 1e-12).all()
    assert {"light", "regular", "heavy"} <= set(s["group"])
    # segment sizes add up to all test users
    ndcg = s[(s["metric"] == "ndcg") & (s["k"] == 5) & (s["model"] == "popular")]
    total = ndcg.loc[ndcg["group"] == "known", "n_users"].iloc[0]
    assert ndcg.loc[ndcg["group"] != "known", "n_users"].sum() == total
    sig = result.significance
    assert len(sig) == 2 * 2  # two other models x (t-test, wilcoxon)
    assert set(sig["test"]) == {"t-test", "wilcoxon"}
    assert result.best not in set(sig["model"])
    assert (sig["p_adjusted"] >= sig["p_value"] - 1e-15).all()
    assert (sig["diff"] >= 0).all()
    assert (sig["significant"] == (sig["p_adjusted"] < 0.05)).all()
    assert result.best in result.reason
    per_user_frame = pd.read_parquet(result.run_dir / "per_user.parquet")
    best_mean = per_user_frame[
        (per_user_frame["model"] == result.best)
        & (per_user_frame["metric"] == "ndcg")
        & (per_user_frame["k"] == 5)
    ]["value"].mean()
    row = s[(s["model"] == result.best) & (s["metric"] == "ndcg") & (s["k"] == 5)]
    assert row[row["group"] == "known"]["value"].iloc[0] == pytest.approx(best_mean)


def test_registry_publishes_the_winner(
    write_config: Callable[[str], Path], base_config: str, tmp_path: Path
) -> None:
    from recforge.registry import ModelRegistry

    cfg = write_config(base_config + "registry: registry\n")
    result = run(cfg, progress=False, report=False)
    model, info = ModelRegistry(cfg.parent / "registry").load_active()
    winner = Recommender.load(result.run_dir / "models" / result.best / "model")
    assert type(model) is type(winner)
    assert info.metrics["ndcg@5"] == pytest.approx(
        json.loads((result.run_dir / "metrics.json").read_text())["models"][result.best][
            "test_score"
        ]
    )
    # the published model is the winner's recipe refitted on train and test together
    parts = [
        pd.read_parquet(result.run_dir / f"split/{p}.parquet") for p in ("train", "valid", "test")
    ]
    assert model.seen_matrix().nnz == len(pd.concat(parts).drop_duplicates(["user", "item"]))
    assert model.get_params() == winner.get_params()
    assert winner.seen_matrix().nnz < model.seen_matrix().nnz
    # a resumed run with the same winner and data publishes nothing new
    run(cfg, progress=False, report=False)
    assert [v.version for v in ModelRegistry(cfg.parent / "registry").list()] == [info.version]


def test_mlflow_enabled_but_missing_says_how_to_install(
    write_config: Callable[[str], Path], base_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    from recforge.exceptions import MissingDependencyError

    real_import = builtins.__import__

    def no_mlflow(name: str, *args: object, **kwargs: object) -> object:
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("No module named 'mlflow'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    cfg = write_config(base_config + "mlflow: {enabled: true}\n")
    with pytest.raises(MissingDependencyError, match=r"pip install 'recforge\[mlflow\]'"):
        run(cfg, progress=False, report=False)


# MLflow's own SQL store trips SQLAlchemy 2.1 deprecations; they are not ours to fix.
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")
@pytest.mark.filterwarnings("ignore::FutureWarning:mlflow.*")
def test_mlflow_logs_params_metrics_and_artifacts_to_a_local_store(
    write_config: Callable[[str], Path],
    base_config: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts under ./mlruns of the working directory
    store = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    cfg = write_config(
        base_config + f"mlflow: {{enabled: true, tracking_uri: '{store}', experiment: toy}}\n"
    )
    result = run(cfg, progress=False, report=False)
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("toy")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = [r for r in runs if r.data.tags.get("best_model") == result.best]
    assert len(parent) == 1
    children = {r.info.run_name: r for r in runs if r is not parent[0]}
    assert set(children) == {"popular", "random", "bias"}
    assert "reg_user" in children["bias"].data.params
    assert children["popular"].data.metrics["ndcg_at_5"] == pytest.approx(
        float(
            result.summary.query(
                "model == 'popular' and metric == 'ndcg' and k == 5 and group == 'known'"
            )["value"].iloc[0]
        )
    )
    artifacts = {a.path for a in client.list_artifacts(parent[0].info.run_id)}
    assert {"metrics.json", "metrics.csv", "config.json"} <= artifacts


def test_run_leaves_the_logging_configuration_alone(
    write_config: Callable[[str], Path],
) -> None:
    import logging

    lib = logging.getLogger("recforge.pipeline")
    before = (lib.level, list(lib.handlers), logging.getLogger().level)
    result = run(write_config(), progress=False, report=False)
    assert (lib.level, list(lib.handlers), logging.getLogger().level) == before
    assert "winner:" in (result.run_dir / "run.log").read_text(encoding="utf-8")
