"""The ``retrieval`` section of recforge.yaml indexes the published winner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from recforge.exceptions import ConfigError
from recforge.pipeline.config import load_config
from recforge.pipeline.runner import run
from recforge.registry import ModelRegistry

pytest.importorskip("faiss", reason="faiss-cpu (the 'ann' extra) is not installed")


def test_yaml_retrieval_section_indexes_the_published_winner(
    write_config: Callable[[str], Path],
) -> None:
    text = """\
name: toy
seed: 3
data:
  source: csv
  path: ratings.csv
  columns: {user: userId, item: movieId, value: rating, time: timestamp}
split: {method: user_random, test_size: 0.25}
models:
  als: {factors: 8, iterations: 2}
evaluation: {metrics: [ndcg], k: [5], bootstrap: 0}
output: {dir: runs/idx}
registry: registry
retrieval: {kind: hnsw, ef_search: 96, min_items: 0}
"""
    cfg = write_config(text)
    run(cfg, progress=False, report=False)
    model, _ = ModelRegistry(cfg.parent / "registry").load_active()
    assert model.index_spec is not None
    assert model.index_spec.ef_search == 96
    bad = write_config(text.replace("ef_search: 96", "efsearch: 96"), name="bad.yaml")
    with pytest.raises(ConfigError, match="efsearch"):
        load_config(bad)
