"""The production loop through the service: listing, added items, exclusion, version retries."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recforge.exceptions import ModelFormatError
from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.serving.app import LoadFailure, check_for_new_version, create_app
from recforge.serving.settings import ServiceSettings

from .conftest import catalog_dataset, content_model

WRITE = "write-key-0123456789"
W = {"X-API-Key": WRITE}


def make_settings(tmp_path: Path, registry: ModelRegistry, **kw: object) -> ServiceSettings:
    base: dict[str, object] = {
        "registry": registry.root,
        "db": f"sqlite:///{tmp_path / 'events.db'}",
        "write_keys": [WRITE],
        "poll_interval_s": 0.05,
        "sync_interval_s": 0.05,
    }
    base.update(kw)
    return ServiceSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path, registry: ModelRegistry) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path, registry), background=False)
    with TestClient(app) as c:
        yield c


def _damage_arrays(path: Path) -> None:
    raw = bytearray((path / "arrays.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (path / "arrays.npz").write_bytes(bytes(raw))


# ------------------------------------------------------------------ GET /models
def test_listing_versions_reads_metadata_only(client, registry):
    """Arrays are neither hashed nor decompressed to list versions (issue 11, defect 7)."""
    extra = registry.publish(MostPopular().fit(catalog_dataset()), metrics={"ndcg@10": 0.2})
    _damage_arrays(extra.path)  # a listing that read the arrays could not show this version
    r = client.get("/models")
    assert r.status_code == 200
    listed = {v["version"]: v for v in r.json()}
    assert listed[extra.version]["metrics"] == {"ndcg@10": 0.2}
    assert listed["v000001"]["active"] is True
    with pytest.raises(ModelFormatError, match="checksum"):
        registry.load(extra.version)  # loading still verifies everything


def test_listing_skips_versions_whose_metadata_is_damaged(registry):
    extra = registry.publish(MostPopular().fit(catalog_dataset()))
    (extra.path / "model.json").write_text("{}")
    assert [v.version for v in registry.list(verify=False)] == ["v000001"]


# ------------------------------------------------------------------ versions that failed
def test_a_version_that_failed_to_load_is_retried_once_repaired(tmp_path, registry):
    """Issue 11, defect 13: a rejected version was never tried again, even once repaired."""
    app = create_app(make_settings(tmp_path, registry), background=False)
    with TestClient(app) as c:
        state = c.app.state.recforge
        failed: dict[str, LoadFailure] = {}
        v2 = registry.publish(MostPopular().fit(catalog_dataset()), promote=True)
        npz = v2.path / "arrays.npz"
        good = npz.read_bytes()
        npz.write_bytes(good[:200])  # damaged after promotion (e.g. a partial copy)
        assert not check_for_new_version(state, failed)
        assert v2.version in failed
        assert not check_for_new_version(state, failed)  # unchanged files: backing off
        assert c.get("/model").json()["version"] == "v000001"
        npz.write_bytes(good)  # repaired
        assert check_for_new_version(state, failed)
        assert c.get("/model").json()["version"] == v2.version
        assert c.get("/model").json()["last_load_error"] is None
        assert failed == {}


def test_an_unchanged_failed_version_is_retried_after_a_back_off(tmp_path, registry):
    app = create_app(make_settings(tmp_path, registry), background=False)
    with TestClient(app) as c:
        state = c.app.state.recforge
        failed: dict[str, LoadFailure] = {}
        v2 = registry.publish(MostPopular().fit(catalog_dataset()), promote=True)
        (v2.path / "arrays.npz").write_bytes(b"not an archive")
        assert not check_for_new_version(state, failed)
        first = failed[v2.version]
        assert first.attempts == 1
        assert first.retry_at > time.monotonic()
        failed[v2.version] = dataclasses.replace(first, retry_at=time.monotonic() - 1)
        assert not check_for_new_version(state, failed)  # tried again, and failed again
        second = failed[v2.version]
        assert second.attempts == 2
        assert second.retry_at - time.monotonic() > first.retry_at - time.monotonic() - 0.5


# ------------------------------------------------------------------ seen items
def _post(c: TestClient, user: str, items: list[str], start: int) -> None:
    events = [
        {"event_id": f"{user}-{start + j}", "user": user, "item": item}
        for j, item in enumerate(items)
    ]
    r = c.post("/events/batch", json={"events": events}, headers=W)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(items)


def _recommended(c: TestClient, user: str) -> set[str]:
    r = c.get(f"/recommendations/{user}", params={"k": 24})
    assert r.status_code == 200, r.text
    return {it["item"] for it in r.json()["items"]}


def test_items_beyond_the_online_history_are_never_recommended_back(client):
    """Issue 11, defect 12: the oldest of more than ONLINE_HISTORY events came back."""
    limit = client.app.state.recforge.settings.online_history
    first = [str(i) for i in range(1, 11)]  # items the model knows, posted first
    _post(client, "u0", first, 0)
    _post(client, "u0", [f"other-{j}" for j in range(limit)], len(first))  # pushes them out
    online = client.app.state.recforge.holder.current.online
    assert not set(first) & {i for i, _ in online.recent("u0")}  # dropped from the state
    assert not set(first) & _recommended(client, "u0")
    fresh = [str(i) for i in range(11, 25)]
    _post(client, "new-user", fresh[:2], 0)
    assert not set(fresh[:2]) & _recommended(client, "new-user")


def test_users_dropped_from_the_online_state_keep_their_exclusions(tmp_path, registry):
    settings = make_settings(tmp_path, registry, online_users=1)
    with TestClient(create_app(settings, background=False)) as c:
        _post(c, "u1", ["1", "2", "3"], 0)
        _post(c, "u2", ["4"], 0)  # u1 is dropped as the least recently active user
        online = c.app.state.recforge.holder.current.online
        assert online.n_users == 1
        assert online.recent("u1") == []
        assert not {"1", "2", "3"} & _recommended(c, "u1")
        _post(c, "anon", ["5", "6"], 0)  # an unknown user dropped as well: popularity path
        _post(c, "u3", ["7"], 0)
        assert not {"5", "6"} & _recommended(c, "anon")


def test_exclusion_after_restart_covers_the_whole_store(tmp_path, registry):
    settings = make_settings(tmp_path, registry, online_history=3)
    with TestClient(create_app(settings, background=False)) as c:
        _post(c, "u5", [str(i) for i in range(1, 9)], 0)
    with TestClient(create_app(settings, background=False)) as c:  # rebuilt from the store
        assert not {str(i) for i in range(1, 9)} & _recommended(c, "u5")


def test_an_events_table_from_before_the_log_gets_its_txid_column(tmp_path):
    import sqlite3

    from recforge.serving.store import Cursor, Event, EventStore

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE recforge_events (seq INTEGER PRIMARY KEY, event_id VARCHAR(256) NOT NULL "
        "UNIQUE, user_id VARCHAR(256) NOT NULL, item_id VARCHAR(256) NOT NULL, "
        "type VARCHAR(16) NOT NULL, value FLOAT NOT NULL, ts BIGINT NOT NULL)"
    )
    con.execute("INSERT INTO recforge_events VALUES (1, 'old', 'u', 'i', 'view', 1.0, 0)")
    con.commit()
    con.close()
    store = EventStore(f"sqlite:///{path}")
    store.add_events([Event("new", "u", "j")])
    assert [(e.event_id, e.txid) for e in store.events_since(Cursor())] == [
        ("old", 0),
        ("new", 0),
    ]
    assert store.cursor() == Cursor(0, 2)
    assert [e.event_id for e in store.events_since(Cursor.after_seq(1))] == ["new"]


# ------------------------------------------------------------------ PUT /items
def _put_item(c: TestClient, item: str, genre: str) -> dict[str, object]:
    body = {"items": [{"id": item, "attributes": {"title": f"New {genre}", "genres": genre}}]}
    r = c.put("/items", json=body, headers=W)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _recommendable(c: TestClient, item: str) -> bool:
    r = c.get("/recommendations/u0", params={"k": 50, "require": [item]})
    assert r.status_code == 200, r.text
    return item in {it["item"] for it in r.json()["items"]}


def test_items_added_with_put_survive_restarts_and_hot_swaps(tmp_path, registry):
    """Issue 11, defect 6: an added item was recommendable before a restart, 404 after."""
    settings = make_settings(tmp_path, registry)
    with TestClient(create_app(settings, background=False)) as c:
        assert _put_item(c, "500", "Comedy")["recommendable_now"] is True
        assert _recommendable(c, "500")
    with TestClient(create_app(settings, background=False)) as c:  # restart
        assert _recommendable(c, "500")
        assert c.get("/items/500/similar", params={"k": 3}).status_code == 200
        state = c.app.state.recforge
        registry.publish(content_model(catalog_dataset()), promote=True)  # trained without it
        assert check_for_new_version(state, {})
        assert c.get("/model").json()["version"] == "v000002"
        assert _recommendable(c, "500")
        _put_item(c, "501", "Horror")
        registry.publish(content_model(catalog_dataset()), promote=True)
        assert check_for_new_version(state, {})
        assert _recommendable(c, "500")
        assert _recommendable(c, "501")


def test_a_stored_item_a_model_cannot_take_never_stops_loading(tmp_path, registry):
    settings = make_settings(tmp_path, registry)
    with TestClient(create_app(settings, background=False)) as c:
        _put_item(c, "600", "Drama")
        c.app.state.recforge.store.upsert_items({"not-an-int": {"genres": "Drama"}})
    with TestClient(create_app(settings, background=False)) as c:
        assert c.get("/model").status_code == 200
        assert _recommendable(c, "600")


def test_models_that_cannot_take_items_still_serve(tmp_path, popular_registry):
    settings = make_settings(tmp_path, popular_registry)
    with TestClient(create_app(settings, background=False)) as c:
        assert _put_item(c, "700", "Drama")["recommendable_now"] is False
    with TestClient(create_app(settings, background=False)) as c:
        assert c.get("/recommendations/u0").status_code == 200
