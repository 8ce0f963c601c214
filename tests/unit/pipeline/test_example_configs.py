"""Every example configuration in configs/ validates against the schema and the models."""

from __future__ import annotations

from pathlib import Path

import pytest

from recforge.pipeline.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_is_valid(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.models
    assert any(mc.tuned for mc in cfg.models.values())
