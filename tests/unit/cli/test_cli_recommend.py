"""``recforge recommend`` and ``recforge explain`` on saved and registered models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recforge.cli import app
from recforge.models import Recommender, model_class
from recforge.registry import ModelRegistry
from recforge.testing._contract import toy_dataset


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    ds = toy_dataset()
    return {name: model_class(name)().fit(ds).save(root / name) for name in ("itemknn", "random")}


def test_recommend_prints_lists_with_reasons(saved: dict[str, Path]) -> None:
    res = CliRunner().invoke(
        app, ["recommend", "u0", "stranger", "--model", str(saved["itemknn"]), "-k", "3", "--json"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    model = Recommender.load(saved["itemknn"])
    want = model.recommend(["u0"], k=3).for_user(0)
    assert [(r["item"], r["score"]) for r in rows if r["user"] == "u0"] == [
        (i, pytest.approx(s)) for i, s in want
    ]
    assert {r["reason"] for r in rows if r["user"] == "stranger"} == {
        "unknown user: most popular items"
    }


def test_recommend_explains_or_says_why_not(saved: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        app, ["recommend", "u0", "--model", str(saved["itemknn"]), "-k", "2", "--explain", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert all(r["because"].startswith("items:") for r in json.loads(res.output))
    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(Recommender.load(saved["random"]), promote=True)
    res = runner.invoke(
        app, ["recommend", "u0", "--registry", str(tmp_path / "reg"), "--explain", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert "does not explain" not in res.output
    assert all("no explanation" in r["because"] for r in json.loads(res.output))


def test_explain_a_pair(saved: dict[str, Path]) -> None:
    runner = CliRunner()
    model = Recommender.load(saved["itemknn"])
    item = model.recommend(["u0"], k=1).items[0, 0]
    res = runner.invoke(
        app, ["explain", "u0", str(item), "--model", str(saved["itemknn"]), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc == model.explain("u0", item).to_dict()
    res = runner.invoke(app, ["explain", "u0", str(item), "--model", str(saved["random"])])
    assert res.exit_code == 2
    assert "Random does not explain its scores" in res.output
    assert "itemknn" in res.output
    res = runner.invoke(app, ["explain", "u0", "0101", "--model", str(saved["itemknn"])])
    assert res.exit_code == 2
    assert "item '0101' is not an id of this model" in res.output


def test_recommend_for_new_users_from_attributes(tmp_path: Path) -> None:
    import pandas as pd

    from recforge.data import Dataset

    ds = toy_dataset(explicit=False)
    users = ds.users.ids.tolist()
    side = pd.DataFrame({"side": [f"s{int(u[1:]) % 2}" for u in users]}, index=users)
    ds = Dataset.from_frame(ds.to_frame(), time="time", user_attributes=side)
    feats = [{"kind": "categories", "column": "side", "sep": None}]
    model = model_class("hybridmf")(factors=8, epochs=10, user_features=feats).fit(ds)
    path = model.save(tmp_path / "hybrid")
    table = tmp_path / "visitors.csv"
    table.write_text("user,side\nv1,s0\nv2,s1\n")
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["recommend", "--model", str(path), "--user-attributes", str(table), "-k", "3", "--json"],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    frame = pd.DataFrame({"side": ["s0", "s1"]}, index=["v1", "v2"])
    want = model.recommend_for_user_attributes(frame, k=3)
    for pos, user in enumerate(["v1", "v2"]):
        got = [(r["item"], r["score"]) for r in rows if r["user"] == user]
        assert got == [(i, pytest.approx(s, abs=1e-5)) for i, s in want.for_user(pos)]
    one = runner.invoke(
        app, ["recommend", "--model", str(path), "--attribute", "side=s1", "-k", "3", "--json"]
    )
    assert one.exit_code == 0, one.output
    assert [r["item"] for r in json.loads(one.output)] == want.items[1].tolist()
    bad = runner.invoke(app, ["recommend", "--model", str(path), "--attribute", "side"])
    assert bad.exit_code != 0
    assert "expected NAME=VALUE" in bad.output
    table.write_text("user,age\nv1,30\n")
    missing = runner.invoke(
        app, ["recommend", "--model", str(path), "--user-attributes", str(table)]
    )
    assert missing.exit_code != 0
    assert "missing column 'side'" in missing.output
