"""Fixtures of the CLI tests: a runner and small interaction files."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recforge.testing import toy_dataset


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Toy ratings with MovieLens-style column names (userId, movieId, rating, timestamp)."""
    frame = toy_dataset().to_frame()
    frame = frame.rename(
        columns={"user": "userId", "item": "movieId", "value": "rating", "time": "timestamp"}
    )
    path = tmp_path_factory.mktemp("cli") / "ratings.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def untimed_tsv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Toy implicit interactions without timestamps, tab separated, custom column names."""
    frame = (
        toy_dataset().to_frame()[["user", "item"]].rename(columns={"user": "who", "item": "what"})
    )
    path = tmp_path_factory.mktemp("cli") / "clicks.tsv"
    frame.to_csv(path, index=False, sep="\t")
    return path
