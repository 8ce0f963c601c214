"""``rerank:`` in recforge.yaml: each setting evaluated by the one engine, shown in the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from recforge.evaluation import EvaluationProtocol, evaluate_model
from recforge.exceptions import ConfigError
from recforge.models.base import Recommender
from recforge.models.rerank import RerankSpec
from recforge.pipeline.config import load_config
from recforge.pipeline.runner import run

CONFIG = """\
name: rerank
seed: 3
data:
  source: csv
  path: ratings.csv
  columns: {user: userId, item: movieId, value: rating, time: timestamp}
split: {method: user_random, test_size: 0.25}
models:
  popular: {}
  itemknn:
    n_neighbors: 20
    rerank:
      - {name: strong mmr, mmr: {lambda: 0.2, similarity: vectors}}
rerank:
  - {mmr: {lambda: 0.5, similarity: cooccurrence}}
  - {mmr: 0.9}
evaluation:
  metrics: [ndcg, recall]
  k: [5]
  bootstrap: 0
tuning: {metric: ndcg, k: 5}
output: {dir: runs/rerank}
"""


def test_run_reports_the_tradeoff_of_each_setting(write_config: Callable[[str], Path]) -> None:
    path = write_config(CONFIG)
    result = run(path, progress=False)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    popular = doc["models"]["popular"]["rerank"]
    itemknn = doc["models"]["itemknn"]["rerank"]
    # the run's settings for popular; itemknn's own replace them
    assert [r["setting"] for r in popular] == [
        "none",
        "mmr λ=0.5 on cooccurrence",
        "mmr λ=0.9 on auto",
    ]
    assert [r["setting"] for r in itemknn] == ["none", "strong mmr"]
    assert all(r["k"] == 5 for r in popular + itemknn)
    # the same numbers as the one engine gives for the saved model with the setting
    cfg = load_config(path)
    from recforge.pipeline.runner import load_data
    from recforge.split import splits_by_name

    split = splits_by_name(load_data(cfg), cfg.split.to_spec())[0]
    model = Recommender.load(result.run_dir / "models" / "popular" / "model")
    protocol = EvaluationProtocol(metrics=("ndcg", "diversity", "coverage"), ks=(5,), seed=3)
    spec = RerankSpec.from_dict({"mmr": {"lambda": 0.5, "similarity": "cooccurrence"}})
    ev = evaluate_model(model, split.train, split.test, protocol, reranker=spec.reranker(None))
    assert popular[1]["ndcg"] == pytest.approx(ev.value("ndcg", 5))
    assert popular[1]["diversity"] == pytest.approx(ev.value("diversity", 5))
    # MMR on the popularity list makes it more diverse, and changes accuracy
    assert popular[1]["diversity"] > popular[0]["diversity"]
    assert itemknn[1]["diversity"] > itemknn[0]["diversity"]
    html = result.report.read_text(encoding="utf-8") if result.report else ""
    assert "Re-ranking: accuracy versus diversity" in html
    assert "strong mmr" in html
    assert "mmr λ=0.5 on cooccurrence" in html


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("{mmr: {lambda: 2}}", "mmr.lambda must be a number in"),
        ("{mmr: {lambda: 0.5, similarity: colours}}", "'similarity' must be one of"),
        ("{mmr: 0.5, calibrate: 0.5}", "mmr or calibrate, not both"),
        ("{diversify: 0.5}", "unknown rerank setting keys"),
        ("{rules: {filters: [{column: year, op: '~', value: 1}]}}", "op must be one of"),
    ],
)
def test_bad_rerank_settings_name_the_field(
    write_config: Callable[[str], Path], setting: str, message: str
) -> None:
    text = CONFIG.replace("  - {mmr: 0.9}", f"  - {setting}")
    with pytest.raises(ConfigError, match="rerank") as err:
        load_config(write_config(text))
    assert message in str(err.value)


def test_a_setting_the_data_cannot_serve_fails_before_fitting(
    write_config: Callable[[str], Path],
) -> None:
    text = CONFIG.replace("  - {mmr: 0.9}", "  - {name: calib, calibrate: 0.5}")
    path = write_config(text)
    with pytest.raises(ConfigError, match="model 'popular', rerank setting 'calib'") as err:
        run(path, progress=False)
    assert "needs item attributes" in str(err.value)
    assert not (path.parent / "runs" / "rerank" / "models").exists()
