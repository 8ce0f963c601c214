"""``recforge index``: an approximate-retrieval index built into a saved or registered model."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recforge.cli import app
from recforge.data.synthetic import synthetic_data
from recforge.models import Recommender, model_class
from recforge.registry import ModelRegistry

pytest.importorskip("faiss", reason="faiss-cpu (the 'ann' extra) is not installed")


@pytest.fixture(scope="module")
def als() -> Recommender:
    return model_class("als")(factors=8, iterations=2).fit(
        synthetic_data(200, 800, 6000, rng=1).dataset
    )


def test_index_a_saved_model(als: Recommender, tmp_path: Path) -> None:
    path = als.save(tmp_path / "als")
    out = tmp_path / "indexed"
    res = CliRunner().invoke(
        app, ["index", str(path), "--out", str(out), "--kind", "hnsw", "--min-items", "0"]
    )
    assert res.exit_code == 0, res.output
    assert "hnsw index over 800 items" in res.output
    loaded = Recommender.load(out)
    assert loaded.index_spec is not None
    assert loaded.index_spec.min_items == 0
    assert Recommender.load(path).index_spec is None  # the source is left as it was


def test_index_a_registered_version(als: Recommender, tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    first = reg.publish(als, metrics={"ndcg@10": 0.1}, promote=True)
    res = CliRunner().invoke(
        app, ["index", "--registry", str(tmp_path / "reg"), "--kind", "ivf", "--promote"]
    )
    assert res.exit_code == 0, res.output
    model, info = reg.load_active()
    assert info.parent == first.version
    assert info.metrics == {"ndcg@10": 0.1}
    assert model.index_spec is not None
    assert model.index_spec.kind == "ivf"


def test_index_refuses_bad_input(als: Recommender, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["index"])
    assert res.exit_code == 2
    assert "give either" in res.output
    path = als.save(tmp_path / "als")
    res = runner.invoke(app, ["index", str(path), "--kind", "annoy"])
    assert res.exit_code == 2
    assert "index kind" in res.output
    ease = model_class("ease")().fit(synthetic_data(50, 80, 600, rng=2).dataset)
    res = runner.invoke(app, ["index", str(ease.save(tmp_path / "ease"))])
    assert res.exit_code == 2
    assert "does not support build_index" in res.output
