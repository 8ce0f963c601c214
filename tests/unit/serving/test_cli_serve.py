"""CLI commands of deployment: models list/promote/rollback, keys, retrain, serve checks."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from recforge.cli._serve import register
from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.serving.store import EventStore, hash_api_key

app = typer.Typer()
register(app)
runner = CliRunner()


def test_models_list_promote_rollback(tmp_path, dataset):
    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(MostPopular().fit(dataset), metrics={"ndcg@10": 0.1}, promote=True)
    reg.publish(MostPopular().fit(dataset))
    r = runner.invoke(app, ["models", "list", "--registry", str(reg.root)])
    assert r.exit_code == 0, r.output
    assert "* v000001" in r.output
    assert "ndcg@10=0.1000" in r.output
    assert (
        runner.invoke(app, ["models", "promote", "v000002", "--registry", str(reg.root)]).exit_code
        == 0
    )
    assert reg.active_version() == "v000002"
    rows = json.loads(
        runner.invoke(app, ["models", "list", "--registry", str(reg.root), "--json"]).output
    )
    assert [r["active"] for r in rows] == [False, True]
    r = runner.invoke(app, ["models", "rollback", "--registry", str(reg.root)])
    assert r.output.strip() == "active: v000001"
    r = runner.invoke(app, ["models", "rollback", "--registry", str(reg.root)])
    assert r.exit_code == 1
    r = runner.invoke(app, ["models", "promote", "v000009", "--registry", str(reg.root)])
    assert r.exit_code == 1
    assert "does not exist" in r.output


def test_keys_create_stores_only_the_hash(tmp_path):
    db = f"sqlite:///{tmp_path / 'e.db'}"
    r = runner.invoke(app, ["keys", "create", "--name", "ops", "--scope", "admin", "--db", db])
    key = r.output.strip()
    assert key.startswith("rf_")
    assert EventStore(db).api_key_scopes() == {hash_api_key(key): "admin"}
    assert "revoked 1" in runner.invoke(app, ["keys", "revoke", "--name", "ops", "--db", db]).output


def test_retrain_command_records_decision(tmp_path, dataset):
    reg = ModelRegistry(tmp_path / "reg")
    csv = tmp_path / "data.csv"
    dataset.to_frame().to_csv(csv, index=False)
    db = f"sqlite:///{tmp_path / 'e.db'}"
    EventStore(db)
    r = runner.invoke(
        app,
        [
            "retrain",
            "--registry",
            str(reg.root),
            "--db",
            db,
            "--data",
            str(csv),
            "--model",
            "popular",
            "--param",
            "half_life_days=30",
            "--metric",
            "ndcg@5",
            "--holdout",
            "0.2",
        ],
    )
    assert r.exit_code == 0, r.output
    decision = json.loads(r.output)
    assert decision["promoted"] is True
    assert reg.active_version() == decision["new_version"]
    assert reg.info(decision["new_version"]).params == {"half_life_days": 30.0}
    r = runner.invoke(app, ["retrain", "--registry", str(reg.root), "--db", db, "--metric", "auc"])
    assert r.exit_code == 1
    assert "metric" in r.output


def test_serve_refuses_public_host_without_keys(tmp_path, registry, monkeypatch):
    monkeypatch.delenv("RECFORGE_WRITE_KEYS", raising=False)
    monkeypatch.delenv("RECFORGE_ADMIN_KEYS", raising=False)
    r = runner.invoke(
        app,
        [
            "serve",
            "--registry",
            str(registry.root),
            "--db",
            f"sqlite:///{tmp_path / 'e.db'}",
            "--host",
            "0.0.0.0",
        ],
    )
    assert r.exit_code == 2
    assert "without an API key" in r.output
    r = runner.invoke(app, ["serve"])
    assert r.exit_code != 0


def test_serve_options_not_given_come_from_the_environment(tmp_path, registry, monkeypatch):
    """Command-line defaults must not mask RECFORGE_* variables (they used to)."""
    import recforge.serving.app as service

    got = {}
    monkeypatch.setattr(service, "serve", lambda settings, log_level: got.update(s=settings))
    monkeypatch.setenv("RECFORGE_MAX_CONCURRENCY", "5")
    monkeypatch.setenv("RECFORGE_DB", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("RECFORGE_REGISTRY", str(registry.root))
    assert runner.invoke(app, ["serve", "--port", "8123"]).exit_code == 0
    s = got["s"]
    assert (s.max_concurrency, s.port, s.registry) == (5, 8123, registry.root)
    assert s.db.endswith("env.db")
    assert runner.invoke(app, ["serve", "--max-concurrency", "3"]).exit_code == 0
    assert got["s"].max_concurrency == 3
    monkeypatch.delenv("RECFORGE_REGISTRY")
    r = runner.invoke(app, ["serve"])
    assert r.exit_code == 2
    assert "exactly one of --registry or --model-dir" in r.output
