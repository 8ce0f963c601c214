"""The pipeline commands through the real ``recforge`` Typer app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from recforge.cli import app

runner = CliRunner()


def test_init_writes_config_and_says_what_it_guessed(ratings_csv: Path) -> None:
    target = ratings_csv.parent / "generated.yaml"
    res = runner.invoke(app, ["init", str(ratings_csv), "-o", str(target)])
    assert res.exit_code == 0, res.output
    assert "user: column 'userId' (by its name)" in res.output
    assert "time: column 'timestamp' (by its name)" in res.output
    assert target.is_file()
    again = runner.invoke(app, ["init", str(ratings_csv), "-o", str(target)])
    assert again.exit_code == 2
    assert "exists (use --force to overwrite)" in again.output


def test_run_then_report(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    out = tmp_path / "cli-run"
    res = runner.invoke(app, ["run", str(write_config()), "-o", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Leaderboard" in res.output
    assert "Winner:" in res.output
    (out / "report.html").unlink()
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").is_file()


def test_run_bad_config_exits_2_with_line(
    write_config: Callable[[str], Path], base_config: str
) -> None:
    path = write_config(base_config.replace("  n_trials: 4", "  n_trails: 4"))
    res = runner.invoke(app, ["run", str(path), "--no-progress"])
    assert res.exit_code == 2
    assert "recforge.yaml:" in res.output
    assert "did you mean 'n_trials'?" in res.output
    two = write_config(
        base_config.replace("  n_trials: 4", "  n_trails: 4").replace("k: 5", "k: 0")
    )
    res = runner.invoke(app, ["run", str(two), "--no-progress"])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if "recforge.yaml:" in line]
    assert len(lines) == 2  # one problem per line


def test_tune_prints_best_params(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    out = tmp_path / "tuning"
    res = runner.invoke(app, ["tune", str(write_config()), "--n-trials", "3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "bias: best validation ndcg@5" in res.output
    assert "reg_user:" in res.output
    assert len(pd.read_csv(out / "bias" / "trials.csv")) == 3
    res = runner.invoke(app, ["tune", str(write_config()), "--model", "popular"])
    assert res.exit_code == 2
    assert "has no search space" in res.output


def test_auto_rejects_bad_budget(ratings_csv: Path) -> None:
    res = runner.invoke(app, ["auto", str(ratings_csv), "--budget", "soon"])
    assert res.exit_code == 2
    assert "--budget" in res.output


def test_report_of_missing_run(tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a finished recforge run directory" in res.output
