"""``recforge run`` is reproducible: one config run twice in fresh folders, same summary.

The config is written by ``recforge init`` from a slice of MovieLens latest-small, then its
model list is replaced by the SGD and ALS models (and the starter's others) at fixed, small
hyperparameters: tuning with a time budget could run a different number of trials, which is
not what is tested. The second run uses one numba thread instead of two, since fits promise
not to depend on the thread count.
"""

from __future__ import annotations

import json
from pathlib import Path

import numba
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from recforge.cli import app

runner = CliRunner()

#: SGD models (parallel kernels) and ALS at sizes that keep the test short
MODELS = {
    "svd": {"factors": 16, "epochs": 6},
    "svdpp": {"factors": 8, "epochs": 3},
    "bpr": {"factors": 16, "epochs": 6},
    "hybridmf": {"factors": 16, "epochs": 3},
    "als": {"factors": 16, "iterations": 4},
    "popular": {},
    "itemknn": {"n_neighbors": 50},
}


@pytest.fixture(scope="module")
def small_config(ml_small_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``recforge init`` config over the first 250 users of ml-latest-small."""
    root = tmp_path_factory.mktemp("repro")
    ratings = pd.read_csv(ml_small_dir / "ratings.csv")
    ratings[ratings["userId"] <= 250].to_csv(root / "ratings.csv", index=False)
    res = runner.invoke(app, ["init", str(root / "ratings.csv"), "-o", str(root / "rf.yaml")])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((root / "rf.yaml").read_text(encoding="utf-8"))
    cfg["models"] = MODELS
    cfg["evaluation"]["metrics"] = ["ndcg", "recall", "map", "coverage", "rmse"]
    (root / "rf.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return root / "rf.yaml"


def _summary(config: Path, out: Path, threads: int) -> list[dict]:
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        res = runner.invoke(app, ["run", str(config), "-o", str(out), "--no-progress"])
    finally:
        numba.set_num_threads(before)
    assert res.exit_code == 0, res.output
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))["summary"]


def test_same_config_twice_gives_identical_summaries(small_config: Path) -> None:
    assert numba.config.NUMBA_NUM_THREADS > 1  # two threads in tests (tests/conftest.py)
    first = _summary(small_config, small_config.parent / "run-a", threads=2)
    second = _summary(small_config, small_config.parent / "run-b", threads=1)
    assert {r["model"] for r in first} == set(MODELS)
    assert len(first) == len(second)
    pairs = zip(first, second, strict=True)
    differ = [(a["model"], a["metric"], a["k"]) for a, b in pairs if a != b]
    models = sorted({m for m, _, _ in differ})
    assert not differ, f"{len(differ)} of {len(first)} summary rows differ, models {models}"
