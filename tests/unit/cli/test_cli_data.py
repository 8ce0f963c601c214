"""Tests of ``recforge datasets list`` and ``recforge data describe``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from recforge.cli import app


def test_datasets_list(runner: CliRunner) -> None:
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0, result.output
    assert "movielens-small" in result.output
    assert "movielens-1m" in result.output
    assert "shipped" in result.output


def test_describe_named_data_set(runner: CliRunner) -> None:
    result = runner.invoke(app, ["data", "describe", "movielens-small"])
    assert result.exit_code == 0, result.output
    assert "100,004" in result.output
    assert "ratings:" in result.output


def test_describe_csv_guesses_columns(runner: CliRunner, ratings_csv: Path) -> None:
    result = runner.invoke(app, ["data", "describe", str(ratings_csv), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_users"] == 60
    assert summary["implicit"] is False
    assert summary["time_min"] is not None


def test_describe_with_mapping_and_sep(runner: CliRunner, untimed_tsv: Path) -> None:
    args = ["data", "describe", str(untimed_tsv), "--user", "who", "--item", "what", "--sep", "\t"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["implicit"] is True
    assert summary["time_min"] is None
    table = runner.invoke(app, args)
    assert table.exit_code == 0
    assert "binary: every value is 1" in table.output


def test_describe_bad_inputs(runner: CliRunner, ratings_csv: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["data", "describe", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2
    assert "neither a file nor a known data set" in missing.stderr

    typo = runner.invoke(app, ["data", "describe", "movielens-smal"])
    assert typo.exit_code == 2
    assert "did you mean 'movielens-small'" in typo.stderr

    column = runner.invoke(app, ["data", "describe", str(ratings_csv), "--value", "stars"])
    assert column.exit_code == 2
    assert "--value 'stars': no such column" in column.stderr
    assert "rating" in column.stderr

    unguessable = tmp_path / "odd.csv"
    unguessable.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["data", "describe", str(unguessable)])
    assert result.exit_code == 2
    assert "which column holds the user ids" in result.stderr

    bad_value = tmp_path / "bad.csv"
    bad_value.write_text("user,item,rating\n1,2,4\n1,3,x\n")
    result = runner.invoke(app, ["data", "describe", str(bad_value)])
    assert result.exit_code == 2
    assert "'x'" in result.stderr
    assert "line 3" in result.stderr

    mapped = runner.invoke(app, ["data", "describe", "movielens-small", "--user", "u"])
    assert mapped.exit_code == 2
    assert "column options apply to files only" in mapped.stderr

    directory = runner.invoke(app, ["data", "describe", str(tmp_path)])
    assert directory.exit_code == 2
    assert "is a directory" in directory.stderr
