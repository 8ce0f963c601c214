"""A run from a sequence file: ``data: {source: sequences}``, leave-one-out, deep models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recforge.exceptions import ConfigError
from recforge.models.base import Recommender
from recforge.pipeline.config import load_config
from recforge.pipeline.runner import run

pytest.importorskip("torch")

CONFIG = """\
name: seq
seed: 1
data:
  source: sequences
  path: sequences.txt
split:
  method: leave_one_out
  by: time
  valid: true
models:
  popular: {}
  sasrec: {embedding_size: 16, max_length: 10, epochs: 2, threads: 1}
  multvae: {hidden: 16, latent: 8, epochs: 2, threads: 1}
evaluation:
  metrics: [ndcg, hit_rate]
  k: [10]
  bootstrap: 0
output:
  dir: runs/seq
"""


def _sequences(tmp_path: Path) -> Path:
    gen = np.random.default_rng(0)
    lines = []
    for _ in range(50):
        start = int(gen.integers(0, 20))
        lines.append(" ".join(str((start + j) % 20 + 1) for j in range(8)))
    path = tmp_path / "sequences.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_run_from_a_sequence_file(tmp_path: Path) -> None:
    _sequences(tmp_path)
    cfg = tmp_path / "recforge.yaml"
    cfg.write_text(CONFIG)
    result = run(cfg, progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert "sasrec" in json.dumps(metrics)
    assert "multvae" in json.dumps(metrics)
    model = Recommender.load(result.run_dir / "models" / "sasrec" / "model")
    assert type(model).__name__ == "SASRec"
    assert model.recommend_for_history([3, 4, 5], k=3).lengths[0] == 3


def test_sequences_source_needs_a_path(tmp_path: Path) -> None:
    cfg = tmp_path / "recforge.yaml"
    cfg.write_text(CONFIG.replace("  path: sequences.txt\n", ""))
    with pytest.raises(ConfigError, match="needs the field 'path'"):
        load_config(cfg)


def test_cli_run_from_a_sequence_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recforge.cli import app

    _sequences(tmp_path)
    cfg = tmp_path / "recforge.yaml"
    multvae = "  multvae: {hidden: 16, latent: 8, epochs: 2, threads: 1}\n"
    cfg.write_text(CONFIG.replace(multvae, ""))
    res = CliRunner().invoke(app, ["run", str(cfg), "--no-progress"])
    assert res.exit_code == 0, res.output
    runs = list((tmp_path / "runs" / "seq").glob("**/models/sasrec/model"))
    assert runs, res.output
