"""Fixtures of the pipeline tests: a small interaction file and a config writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from recforge.testing import toy_dataset


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    """Toy explicit ratings with timestamps (60 users, 40 items), as a CSV file."""
    frame = toy_dataset(explicit=True).to_frame()
    frame = frame.rename(
        columns={"user": "userId", "item": "movieId", "value": "rating", "time": "timestamp"}
    )
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, index=False)
    return path


BASE_CONFIG = """\
name: toy
seed: 3
data:
  source: csv
  path: ratings.csv
  columns: {user: userId, item: movieId, value: rating, time: timestamp}
prepare:
  - {step: deduplicate, policy: last}
split:
  method: user_random
  test_size: 0.25
  valid_size: 0.15
models:
  popular: {}
  random: {}
  bias:
    reg_user: {type: float, low: 0.5, high: 20.0, log: true}
    reg_item: {type: float, low: 0.5, high: 20.0, log: true}
tuning:
  n_trials: 4
  metric: ndcg
  k: 5
evaluation:
  metrics: [ndcg, recall, precision, coverage, diversity, novelty, popularity]
  k: [3, 5, 10]
  bootstrap: 200
output:
  dir: runs/toy
"""


@pytest.fixture(scope="session")
def base_config_text() -> str:
    """The text of a small valid configuration (session scope)."""
    return BASE_CONFIG


@pytest.fixture
def base_config() -> str:
    """The text of a small valid configuration (3 models, one tuned)."""
    return BASE_CONFIG


@pytest.fixture
def write_config(ratings_csv: Path) -> Callable[[str], Path]:
    """Write YAML text as ``recforge.yaml`` next to the ratings file; returns its path."""

    def write(text: str = BASE_CONFIG, name: str = "recforge.yaml") -> Path:
        path = ratings_csv.parent / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
