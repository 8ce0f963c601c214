"""Tests of ``recforge demo`` on the shipped MovieLens sample."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recforge.cli import app
from recforge.cli._demo import DEMO_MODELS, demo_config
from recforge.pipeline.config import validate_config


@pytest.mark.slow
def test_demo_without_serving(runner: CliRunner, tmp_path: Path) -> None:
    args = ["demo", "--no-serve", "--workdir", str(tmp_path), "--trials", "2", "--k", "5"]
    args += ["-m", "popular", "-m", "itemknn", "-m", "content", "--users", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Test metrics at k=5" in out
    assert re.search(r"Winner: \w+", out)
    report = tmp_path / "run" / "report.html"
    assert f"Report: {report}" in out.replace("\n", "")
    assert report.is_file()
    # titled lists (movie titles carry their year), and explained content recommendations
    assert len(re.findall(r" \((?:19|20)\d\d\) ", out)) >= 10
    assert "content: why user" in out
    assert "features: genres=" in out
    # the winner is the registry's active version, with the report beside it
    active = json.loads((tmp_path / "registry" / "active.json").read_text())
    version_dir = tmp_path / "registry" / "versions" / active["version"]
    assert (version_dir / "report.html").is_file()
    assert (version_dir / "model.json").is_file()


def test_demo_rejects_unknown_model(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--no-serve", "-m", "slim", "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a demo model" in result.stderr


def test_demo_config_is_a_valid_run_config() -> None:
    cfg = validate_config(demo_config(None, 10, 3), source="demo")
    assert list(cfg.models) == list(DEMO_MODELS)
    assert cfg.models["itemknn"].tuned
    assert not cfg.models["ease"].tuned
    assert cfg.tuning.n_trials == 3
    assert 10 in cfg.evaluation.k


def test_demo_store_has_titles_and_a_write_key(tmp_path: Path) -> None:
    from recforge.cli._demo import prepare_store
    from recforge.data.datasets import load
    from recforge.serving.store import EventStore, hash_api_key

    ds = load("movielens-small")
    db = f"sqlite:///{(tmp_path / 'events.db').as_posix()}"
    n_items, key = prepare_store(db, ds)
    assert n_items == ds.n_items
    store = EventStore(db)
    try:
        toy_story = store.get_items(["1"])["1"]
        assert store.api_key_scopes()[hash_api_key(key)] == "write"
    finally:
        store.close()
    assert key.startswith("rf_")
    assert toy_story["title"] == "Toy Story (1995)"
    assert "Animation" in toy_story["genres"]
