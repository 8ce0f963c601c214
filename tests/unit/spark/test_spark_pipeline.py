"""``engine: {type: spark}`` writes the run a local run writes (CLI and Python)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from recforge.cli import app
from recforge.exceptions import ConfigError
from recforge.pipeline.config import load_config
from recforge.pipeline.runner import run_config
from recforge.testing import toy_dataset

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CONFIG = """\
name: toy
seed: 3
data:
  source: csv
  path: ratings.csv
  columns: {user: userId, item: movieId, value: rating, time: timestamp}
prepare:
  - {step: deduplicate, policy: last}
  - {step: k_core, k: 2}
split: {method: temporal, per_user_last: 2}
models:
  popular: {}
  bias: {}
evaluation:
  metrics: [ndcg, recall, coverage]
  k: [5]
  bootstrap: 0
output:
  dir: runs/toy
"""


def _write(tmp_path: Path, text: str) -> Path:
    frame = (
        toy_dataset(explicit=True)
        .to_frame()
        .rename(
            columns={"user": "userId", "item": "movieId", "value": "rating", "time": "timestamp"}
        )
    )
    frame.to_csv(tmp_path / "ratings.csv", index=False)
    path = tmp_path / "recforge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_spark_engine_run_equals_local_run(spark: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, CONFIG)
    res = CliRunner().invoke(
        app, ["run", str(path), "-o", str(tmp_path / "spark"), "--no-progress", "--engine", "spark"]
    )
    assert res.exit_code == 0, res.output
    local = run_config(load_config(path), run_dir=tmp_path / "local", progress=False, report=False)
    s_data = json.loads((tmp_path / "spark" / "data.json").read_text())
    l_data = json.loads((local.run_dir / "data.json").read_text())
    assert s_data["engine"]["type"] == "spark"
    assert l_data["engine"]["type"] == "local"
    for key in ("fingerprint", "summary", "prepare"):
        assert s_data[key] == l_data[key], key
    assert s_data["prepare"][1]["step"] == "k_core"
    for part in ("train", "test"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "spark" / "split" / f"{part}.parquet"),
            pd.read_parquet(local.run_dir / "split" / f"{part}.parquet"),
        )
    s_metrics = pd.read_csv(tmp_path / "spark" / "metrics.csv")
    l_metrics = pd.read_csv(local.run_dir / "metrics.csv")
    cols = ["model", "group", "metric", "k", "value"]
    pd.testing.assert_frame_equal(s_metrics[cols], l_metrics[cols])
    assert (tmp_path / "spark" / "report.html").is_file()

    cfg = load_config(
        _write(tmp_path, CONFIG.replace("method: temporal, per_user_last: 2", "method: cold_users"))
    )
    cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"type": "spark"})})
    with pytest.raises(ConfigError, match="no Spark version"):
        run_config(cfg, run_dir=tmp_path / "bad", progress=False, report=False)
    bad = CliRunner().invoke(app, ["run", str(path), "--engine", "hadoop"])
    assert bad.exit_code == 2
    assert "must be 'local' or 'spark'" in bad.output
