"""TwoTower from a config file and the CLI (tuned on its default space), and in auto's plan."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recforge.models.base import Recommender
from recforge.pipeline.auto import plan
from recforge.pipeline.tuning import default_search_space
from recforge.testing import toy_dataset

pytest.importorskip("torch")

CONFIG = """\
name: towers
seed: 1
data:
  source: csv
  path: ratings.csv
  columns: {user: userId, item: movieId, time: timestamp}
  item_attributes: {path: items.csv, key: movieId}
  user_attributes: {path: users.csv, key: userId}
split:
  method: user_random
  test_size: 0.2
  valid_size: 0.1
models:
  popular: {}
  twotower:
    search: default
    epochs: 2
    threads: 1
    features: [{kind: categories, column: genres, sep: "|"}]
    user_features: [{kind: categories, column: side, sep: null}]
tuning:
  n_trials: 2
  metric: ndcg
  k: 5
evaluation:
  metrics: [ndcg]
  k: [5]
  bootstrap: 0
output:
  dir: runs/towers
"""


def _files(tmp_path: Path) -> Path:
    ds = toy_dataset(explicit=False)
    frame = ds.to_frame().rename(columns={"user": "userId", "item": "movieId", "time": "timestamp"})
    frame.drop(columns="value").to_csv(tmp_path / "ratings.csv", index=False)
    ids = ds.items.ids
    genres = [("A" if i < 120 else "B") + f"|G{(i - 100) // 5}" for i in ids.tolist()]
    pd.DataFrame({"movieId": ids, "genres": genres}).to_csv(tmp_path / "items.csv", index=False)
    users = ds.users.ids.tolist()
    side = ["even" if int(u[1:]) % 2 == 0 else "odd" for u in users]
    pd.DataFrame({"userId": users, "side": side}).to_csv(tmp_path / "users.csv", index=False)
    cfg = tmp_path / "recforge.yaml"
    cfg.write_text(CONFIG)
    return cfg


def test_default_search_space() -> None:
    space = default_search_space("twotower")
    assert {"embedding_size", "temperature", "learning_rate", "id_dropout"} <= set(space)
    assert "epochs" not in space


def test_cli_run_tunes_and_saves_twotower(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recforge.cli import app

    cfg = _files(tmp_path)
    res = CliRunner().invoke(app, ["run", str(cfg), "--no-progress"])
    assert res.exit_code == 0, res.output
    trials = list((tmp_path / "runs" / "towers").glob("**/tuning/twotower/trials.csv"))
    assert trials
    assert len(pd.read_csv(trials[0])) == 2
    path = next((tmp_path / "runs" / "towers").glob("**/models/twotower/model"))
    model = Recommender.load(path)
    assert type(model).__name__ == "TwoTower"
    assert model.recommend_for_user_attributes({"side": "odd"}, k=3).lengths[0] == 3
    # the saved model also answers on the command line
    new = tmp_path / "new_users.csv"
    pd.DataFrame({"userId": ["n1"], "side": ["even"]}).to_csv(new, index=False)
    out = CliRunner().invoke(
        app, ["recommend", "--model", str(path), "--user-attributes", str(new), "-k", "3"]
    )
    assert out.exit_code == 0, out.output
    assert "n1" in out.output


def test_auto_considers_twotower_with_item_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    from recforge.data import Dataset
    from recforge.pipeline import auto as auto_module

    ds = toy_dataset(explicit=False)
    attrs = pd.DataFrame({"genres": ["A|B"] * ds.n_items}, index=ds.items.ids)
    with_attrs = Dataset.from_frame(ds.to_frame(), time="time", item_attributes=attrs)
    monkeypatch.setattr(auto_module, "_torch_installed", lambda: True)
    p = plan(with_attrs, 600)
    assert "twotower" in p.families
    assert p.budgets["twotower"] > p.budgets["itemknn"]
    assert "twotower" not in plan(ds, 600).families  # no item attributes
    monkeypatch.setattr(auto_module, "_torch_installed", lambda: False)
    no_torch = plan(with_attrs, 600)
    assert "twotower" not in no_torch.families
    assert any("TwoTower skipped" in d for d in no_torch.decisions)
