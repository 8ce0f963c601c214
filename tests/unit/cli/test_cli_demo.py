"""Tests of ``recforge demo`` on the shipped MovieLens sample."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from recforge.cli import app
from recforge.cli._demo import DEMO_MODELS, demo_models


def test_demo_without_serving(runner: CliRunner) -> None:
    args = ["demo", "--no-serve", "-m", "popular", "-m", "bias", "--users", "2", "--k", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "known test users, top 5" in out
    assert "Best model by nDCG@5 on known users: popular" in out
    # sample lists show movie titles (with their year), not ids
    assert out.count("popular for user") == 2
    assert len(re.findall(r" \((?:19|20)\d\d\) ", out)) >= 10


def test_demo_rejects_unknown_model(runner: CliRunner) -> None:
    result = runner.invoke(app, ["demo", "--no-serve", "-m", "slim"])
    assert result.exit_code == 2
    assert "not a demo model" in result.stderr


def test_demo_models_respect_settings() -> None:
    models = demo_models()
    assert list(models)[:3] == ["popular", "random", "bias"]
    assert set(models) <= set(DEMO_MODELS)
    for name, model in models.items():
        params = model.get_params()
        for key, value in DEMO_MODELS[name].items():
            if key in params:
                assert params[key] == value
