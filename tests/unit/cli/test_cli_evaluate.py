"""Tests of ``recforge evaluate`` and of model spec parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recforge.cli import app
from recforge.cli._common import build_model, parse_model_spec, parse_value
from recforge.exceptions import ConfigError
from recforge.models.bias import BiasedBaseline
from recforge.models.popular import MostPopular


# --------------------------------------------------------------------------- model specs
@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("3", int, 3),
        ("3.0", int, 3),
        ("0.5", float, 0.5),
        ("True", bool, True),
        ("no", bool, False),
        ("cosine", str, "cosine"),
        ("none", float, None),
        ("7", None, 7),
        ("0.25", None, 0.25),
        ("false", None, False),
        ("bm25", None, "bm25"),
    ],
)
def test_parse_value(text: str, kind: type | None, expected: object) -> None:
    got = parse_value(text, kind, nullable=True)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(("text", "kind"), [("2.5", int), ("maybe", bool), ("inf", float)])
def test_parse_value_rejects(text: str, kind: type) -> None:
    with pytest.raises(ValueError):
        parse_value(text, kind)


def test_parse_model_spec() -> None:
    name, cls, params = parse_model_spec("Bias:reg_user=5, iterations=3")
    assert (name, cls, params) == ("bias", BiasedBaseline, {"reg_user": 5.0, "iterations": 3})
    assert isinstance(params["reg_user"], float)
    label, model = build_model("popular:half_life_days=none")
    assert isinstance(model, MostPopular)
    assert model.half_life_days is None
    assert label == "popular(half_life_days=None)"
    assert build_model("popular")[0] == "popular"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no model name"),
        ("popularr", "did you mean 'popular'"),
        ("bias:reg_usr=5", "no parameter 'reg_usr'; did you mean 'reg_user'"),
        ("bias:reg_user", "expected key=val"),
        ("bias:iterations=2.5", "parameter 'iterations' must be an int"),
        ("bias:iterations=0", "'iterations' parameter of BiasedBaseline"),
    ],
)
def test_bad_model_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(spec)


# --------------------------------------------------------------------------- command
def test_evaluate_writes_json(runner: CliRunner, ratings_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "results.json"
    args = ["evaluate", "-d", str(ratings_csv), "-m", "popular", "-m", "bias:reg_user=5"]
    args += ["--split", "user-random", "--k", "5", "--k", "10", "--metric", "ndcg"]
    args += ["--metric", "rmse", "--bootstrap", "50", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "known test users, top 5" in result.stdout
    assert "bias(reg_user=5.0)" in result.stdout
    assert "Timings" in result.stdout
    data = json.loads(out.read_text())
    assert data["ks"] == [5, 10]
    models = {r["model"] for r in data["summary"]}
    assert models == {"popular", "bias(reg_user=5.0)"}
    rmse = [r for r in data["summary"] if r["metric"] == "rmse"]
    assert {r["model"] for r in rmse} == {"bias(reg_user=5.0)"}


@pytest.mark.parametrize("split", ["temporal", "random", "loo", "cold-users", "cold-items"])
def test_evaluate_every_split(runner: CliRunner, ratings_csv: Path, split: str) -> None:
    args = ["evaluate", "-d", str(ratings_csv), "-m", "popular", "--split", split]
    threshold = ["--threshold", "4"] if split == "random" else []
    result = runner.invoke(app, [*args, "--k", "5", "--bootstrap", "0", *threshold])
    assert result.exit_code == 0, result.output
    assert "popular" in result.stdout
    if split == "cold-users":
        assert "cold test users" in result.stdout


def test_evaluate_loo_without_time(runner: CliRunner, untimed_tsv: Path) -> None:
    args = ["evaluate", "-d", str(untimed_tsv), "--user", "who", "--item", "what", "--sep", "\t"]
    result = runner.invoke(app, [*args, "-m", "popular", "--split", "loo", "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert "leave_one_out(by='random')" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-m", "nosuch"], "unknown model 'nosuch'"),
        (["-m", "bias:reg_usr=1"], "no parameter 'reg_usr'"),
        (["-m", "popular", "--metric", "ndgc"], "did you mean 'ndcg'"),
        (["-m", "popular", "--test-size", "1.5"], "--test-size must be in (0, 1)"),
        (["-m", "popular", "-m", "popular"], "the same --model is given twice"),
        (["-m", "popular", "--threshold", "99"], "no relevant test interaction"),
    ],
)
def test_evaluate_bad_inputs(
    runner: CliRunner, ratings_csv: Path, extra: list[str], message: str
) -> None:
    result = runner.invoke(app, ["evaluate", "-d", str(ratings_csv), *extra, "--bootstrap", "0"])
    assert result.exit_code == 2
    assert message in result.stderr


def test_evaluate_temporal_needs_time(runner: CliRunner, untimed_tsv: Path) -> None:
    args = ["evaluate", "-d", str(untimed_tsv), "--user", "who", "--item", "what", "--sep", "\t"]
    result = runner.invoke(app, [*args, "-m", "popular"])
    assert result.exit_code == 2
    assert "no time column" in result.stderr


def test_evaluate_usage_errors(runner: CliRunner, ratings_csv: Path) -> None:
    no_model = runner.invoke(app, ["evaluate", "-d", str(ratings_csv)])
    assert no_model.exit_code == 2
    assert "--model" in no_model.output
    bad_split = runner.invoke(app, ["evaluate", "-d", str(ratings_csv), "-m", "popular", "-s", "x"])
    assert bad_split.exit_code == 2
    assert "--split" in bad_split.output


def test_metric_help_lists_every_metric(runner: CliRunner) -> None:
    from recforge.evaluation import DEFAULT_METRICS, RATING_METRICS, SCORE_METRICS
    from recforge.metrics import BEYOND_METRICS, RANKING_METRICS

    result = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in [*RANKING_METRICS, *BEYOND_METRICS, *RATING_METRICS, *SCORE_METRICS]:
        assert name in text
    assert "Default: " + ", ".join(DEFAULT_METRICS) in text


def test_evaluate_with_rerank_flags(runner: CliRunner, ratings_csv: Path, tmp_path: Path) -> None:
    def diversity(extra: list[str]) -> float:
        out = tmp_path / f"r{len(extra)}.json"
        args = ["evaluate", "-d", str(ratings_csv), "-m", "popular", "--split", "user-random"]
        args += ["--k", "5", "--metric", "ndcg", "--metric", "diversity", "--bootstrap", "0"]
        result = runner.invoke(app, [*args, "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        rows = json.loads(out.read_text())["summary"]
        return next(
            r["value"] for r in rows if r["metric"] == "diversity" and r["group"] == "known"
        )

    plain = diversity([])
    assert diversity(["--mmr", "0.0", "--similarity", "cooccurrence"]) > plain
    bad = runner.invoke(
        app, ["evaluate", "-d", str(ratings_csv), "-m", "popular", "--filter", "nope"]
    )
    assert bad.exit_code == 2
    assert "is not COLUMN OP VALUE" in bad.output
