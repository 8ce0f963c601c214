"""Security and robustness of the service: ids, keys, user data, databases, limits, origins."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recforge.models.als import ALS
from recforge.registry import ModelRegistry
from recforge.serving.app import check_for_new_version, create_app
from recforge.serving.store import Event, EventStore

from .conftest import catalog_dataset, content_model
from .test_app import ADMIN, WRITE, W, make_settings

READ = "read-key-0123456789"
R = {"X-API-Key": READ}
#: texts ``str.isdigit`` (or ``int()``) takes for a number but that are not integer ids
NOT_INT_IDS = ["--1", "²", "①", "١", "01", " 1", "1_0", "+1", "-0", "1 "]


@pytest.fixture
def als_registry(tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry-als")
    reg.publish(ALS(factors=4, iterations=2).fit(catalog_dataset()), promote=True)
    return reg


@pytest.fixture
def client(tmp_path, registry) -> Iterator[TestClient]:
    with _open(tmp_path, registry) as c:
        yield c


def _open(tmp_path: Path, registry: ModelRegistry, **kw) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, registry, **kw), background=False))


def _items(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [it["item"] for it in resp.json()["items"]]


# ------------------------------------------------------------------ 1: ids from HTTP
@pytest.mark.parametrize("item", NOT_INT_IDS)
def test_event_with_a_number_looking_item_never_breaks_the_service(tmp_path, als_registry, item):
    with _open(tmp_path, als_registry) as c:
        ev = {"event_id": "bad", "user": "u1", "item": item}
        assert c.post("/events", json=ev, headers=W).status_code == 200
        assert c.get("/recommendations/u1").status_code == 200
        good = {"event_id": "good", "user": "u2", "item": "3"}
        assert c.post("/events", json=good, headers=W).status_code == 200
        r = c.get("/recommendations/u2", params={"k": 24})
        assert "3" not in _items(r)
        assert "online fold-in of 1 new events" in r.json()["reason"]
        # the text is not item 1: u1's list is the training list, one event excluded
        assert "fold-in" not in c.get("/recommendations/u1").json()["reason"]


def test_stored_bad_events_never_stop_startup_or_hot_swap(tmp_path, als_registry):
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    bad = [
        Event(f"b{i}", "u1", text, "view", 1.0, 1_700_000_000) for i, text in enumerate(NOT_INT_IDS)
    ]
    bad.append(Event("huge", "u1", "4", "view", 1e300, 1_700_000_000))
    store.add_events([*bad, Event("ok", "u1", "3", "view", 1.0, 1_700_000_001)])
    with _open(tmp_path, als_registry) as c:
        assert c.get("/readyz").status_code == 200
        r = c.get("/recommendations/u1", params={"k": 24})
        assert "3" not in _items(r)
        state = c.app.state.recforge
        als_registry.publish(ALS(factors=4, iterations=3).fit(catalog_dataset()), promote=True)
        assert check_for_new_version(state, {})
        assert c.get("/model").json()["version"] == "v000002"
        assert "3" not in _items(c.get("/recommendations/u1", params={"k": 24}))


@pytest.mark.parametrize("text", ["١", "01", " 1", "1_0"])
def test_put_items_uses_the_one_id_rule(tmp_path, registry, text):
    with _open(tmp_path, registry) as c:
        r = c.put(
            "/items", json={"items": [{"id": text, "attributes": {"genres": "Comedy"}}]}, headers=W
        )
        assert r.status_code == 200
        assert r.json()["recommendable_now"] is False
        assert "integer" in r.json()["note"]
        assert c.get("/model").json()["n_items"] == 24


def test_one_strict_rule_for_integer_ids():
    from recforge.data import IdIndex

    values, ok = IdIndex.parse_int_ids([*NOT_INT_IDS, "1", "-7", "0", "9223372036854775807"])
    assert ok.tolist() == [False] * len(NOT_INT_IDS) + [True] * 4
    assert values[ok].tolist() == [1, -7, 0, 9223372036854775807]


@pytest.fixture
def int_user_registry(tmp_path: Path) -> ModelRegistry:
    """ALS over the catalog with integer user ids 1..40."""
    from recforge.data import Dataset

    frame = catalog_dataset().to_frame()
    frame["user"] = frame["user"].str[1:].astype(int) + 1
    data = Dataset.from_frame(frame, value="value")
    reg = ModelRegistry(tmp_path / "registry-int-users")
    reg.publish(ALS(factors=4, iterations=2).fit(data), promote=True)
    return reg


@pytest.mark.parametrize("text", ["01", " 1", "١", "1_0", "+1"])
def test_user_ids_do_not_alias(tmp_path, int_user_registry, text):
    from urllib.parse import quote

    with _open(tmp_path, int_user_registry) as c:
        assert c.get("/recommendations/1").json()["reason"] == "personalised"
        r = c.get(f"/recommendations/{quote(text)}")
        assert r.json()["reason"] == "unknown user: most popular items", text
        assert c.get(f"/users/{quote(text)}/history").json()["known"] is False


# ------------------------------------------------------------------ 3: fail closed
def test_revoking_the_last_stored_key_locks_the_service(tmp_path, registry):
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    key = store.create_api_key("only", "admin")
    app = create_app(
        make_settings(tmp_path, registry, write_keys=[], admin_keys=[]),
        store=store,
        background=False,
    )
    with TestClient(app) as c:
        state = c.app.state.recforge
        assert c.get("/metrics", headers={"X-API-Key": key}).status_code == 200
        store.revoke_api_key("only")
        state.load_keys()
        ev = {"event_id": "e", "user": "u", "item": "1"}
        assert c.post("/events", json=ev).status_code == 401
        assert c.post("/models/rollback").status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": key}).status_code == 401
        new = store.create_api_key("next", "admin")  # rotation: revoke, then create
        state.load_keys()
        assert c.get("/metrics", headers={"X-API-Key": new}).status_code == 200
        assert c.get("/metrics").status_code == 401


def test_public_bind_needs_keys_at_runtime(tmp_path, registry):
    s = make_settings(tmp_path, registry, write_keys=[], admin_keys=[], host="0.0.0.0")
    with TestClient(create_app(s, background=False), base_url="http://10.0.0.5") as c:
        assert (
            c.post("/events", json={"event_id": "e", "user": "u", "item": "1"}).status_code == 401
        )
        assert c.get("/metrics").status_code == 401


# ------------------------------------------------------------------ 11: user data
def test_user_data_needs_a_read_key_when_required(tmp_path, registry):
    with _open(tmp_path, registry, read_keys=[READ], require_read_key=True) as c:
        for path in ("/users/u1/history", "/users?q=u", "/recommendations/u1?explain=true"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"X-API-Key": "nope"}).status_code == 401, path
            for key in (READ, WRITE, ADMIN):
                assert c.get(path, headers={"X-API-Key": key}).status_code == 200, (path, key)
        assert c.get("/recommendations/u1").status_code == 200  # lists stay public
        # a read key writes nothing
        ev = {"event_id": "e", "user": "u", "item": "1"}
        assert c.post("/events", json=ev, headers=R).status_code == 403


def test_read_keys_are_required_by_default_on_a_public_bind(tmp_path, registry):
    s = make_settings(tmp_path, registry, host="0.0.0.0", read_keys=[READ])
    assert s.user_data_needs_key
    assert not make_settings(tmp_path, registry).user_data_needs_key
    with TestClient(create_app(s, background=False)) as c:
        assert c.get("/users/u1/history").status_code == 401
        assert c.get("/users/u1/history", headers=R).status_code == 200


def test_stored_read_keys(tmp_path, registry):
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    key = store.create_api_key("reader", "read")
    s = make_settings(tmp_path, registry, require_read_key=True)
    with TestClient(create_app(s, store=store, background=False)) as c:
        assert c.get("/users/u1/history", headers={"X-API-Key": key}).status_code == 200
        assert c.get("/metrics", headers={"X-API-Key": key}).status_code == 403


# ------------------------------------------------------------------ 9: database trouble
@pytest.fixture
def locked(tmp_path) -> Iterator[sqlite3.Connection]:
    """Another process' write transaction holding the SQLite database."""
    conn = sqlite3.connect(tmp_path / "events.db", timeout=0, isolation_level=None)
    yield conn
    conn.close()


def test_locked_database_fails_fast_with_retry_after_and_not_ready(tmp_path, registry, locked):
    with _open(tmp_path, registry, db_timeout_s=0.2) as c:
        assert c.get("/readyz").status_code == 200
        locked.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        r = c.post("/events", json={"event_id": "e", "user": "u1", "item": "2"}, headers=W)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert "database" in r.json()["detail"]
        assert time.monotonic() - t0 < 2.0
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"] is False
        assert c.get("/recommendations/u1").status_code == 200  # reads go on
        locked.execute("ROLLBACK")
        assert c.get("/readyz").status_code == 200
        r = c.post("/events", json={"event_id": "e", "user": "u1", "item": "2"}, headers=W)
        assert r.json()["accepted"] == 1


# ------------------------------------------------------------------ 13: smaller
def test_public_answers_show_no_file_paths(tmp_path, registry, dataset):
    with _open(tmp_path, registry) as c:
        v2 = registry.publish(content_model(dataset))
        registry.promote(v2.version)
        npz = v2.path / "arrays.npz"
        npz.write_bytes(npz.read_bytes()[:200])
        assert not check_for_new_version(c.app.state.recforge, {})
        text = c.get("/model").text
        assert "rejected" in text
        assert str(tmp_path) not in text, text
    empty = ModelRegistry(tmp_path / "nothing")
    with _open(tmp_path, empty) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert str(tmp_path) not in r.text
        assert str(tmp_path) not in c.get("/recommendations/u1").text


def test_explain_k_is_bounded(tmp_path, registry):
    with _open(tmp_path, registry, max_explain_k=5) as c:
        r = c.get("/recommendations/u1", params={"k": 6, "explain": True})
        assert r.status_code == 422
        assert "explain" in r.text
        assert c.get("/recommendations/u1", params={"k": 5, "explain": True}).status_code == 200
        assert c.get("/recommendations/u1", params={"k": 6}).status_code == 200


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "view", "value": 1e6}, "value"),
        ({"type": "view", "value": -1.0}, "value"),
        ({"type": "click", "value": 101.0}, "value"),
        ({"type": "rating", "value": 1e5}, "value"),
    ],
)
def test_event_values_are_bounded(client, event, field):
    r = client.post("/events", json={"event_id": "e", "user": "u", "item": "1", **event}, headers=W)
    assert r.status_code == 422, r.text
    assert field in r.text


def test_history_values_are_bounded(client):
    r = client.post("/recommendations", json={"items": ["1"], "values": [1e300]})
    assert r.status_code == 422
    assert "values" in r.text
    ok = client.post("/recommendations", json={"items": ["1", "5"], "values": [100.0, 3.0]})
    assert len(_items(ok)) == 10


def test_history_extreme_values_still_give_a_list(tmp_path, als_registry):
    with _open(tmp_path, als_registry) as c:
        r = c.post("/recommendations", json={"items": ["1", "5"], "values": [1000.0, -1000.0]})
        assert len(_items(r)) == 10


def test_future_skew_is_per_app(tmp_path, registry):
    future = int(time.time()) + 3600
    ev = {"event_id": "f", "user": "u", "item": "1", "timestamp": future}
    strict = create_app(make_settings(tmp_path, registry, max_future_skew_s=60), background=False)
    lenient = create_app(
        make_settings(tmp_path, registry, max_future_skew_s=7200), background=False
    )
    with TestClient(strict) as a, TestClient(lenient) as b:
        r = a.post("/events", json=ev, headers=W)
        assert r.status_code == 422
        assert "timestamp" in r.text
        assert b.post("/events", json=ev, headers=W).status_code == 200


# ------------------------------------------------------------------ no-key mode: origins
@pytest.fixture
def open_client(tmp_path, registry) -> Iterator[TestClient]:
    with TestClient(
        create_app(
            make_settings(tmp_path, registry, write_keys=[], admin_keys=[]), background=False
        ),
        base_url="http://127.0.0.1:8000",
    ) as c:
        yield c


def test_no_key_mode_rejects_cross_origin_writes(open_client):
    ev = {"event_id": "e", "user": "u", "item": "1"}
    r = open_client.post("/models/rollback", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert "origin" in r.json()["detail"].lower()
    r = open_client.post("/events", json=ev, headers={"Origin": "null"})
    assert r.status_code == 403
    ok = open_client.post("/events", json=ev, headers={"Origin": "http://127.0.0.1:8000"})
    assert ok.status_code == 200
    assert open_client.post("/events", json={**ev, "event_id": "e2"}).status_code == 200
    # reads from any page stay possible
    assert (
        open_client.get("/recommendations/u1", headers={"Origin": "https://x.example"}).status_code
        == 200
    )


def test_no_key_mode_rejects_unexpected_host(open_client):
    r = open_client.get("/recommendations/u1", headers={"Host": "attacker.example"})
    assert r.status_code == 400
    assert "host" in r.json()["detail"].lower()
    assert (
        open_client.get("/recommendations/u1", headers={"Host": "localhost:8000"}).status_code
        == 200
    )
    assert open_client.get("/recommendations/u1", headers={"Host": "[::1]:8000"}).status_code == 200


def test_keyed_mode_does_not_check_origin(client):
    ev = {"event_id": "e", "user": "u", "item": "1"}
    r = client.post("/events", json=ev, headers={**W, "Origin": "https://shop.example"})
    assert r.status_code == 200


# ------------------------------------------------------------------ 2: bodies before slots
def _guard(client: TestClient):
    guard = client.app.middleware_stack
    while not hasattr(guard, "admission"):
        guard = guard.app
    return guard


def test_slow_bodies_hold_no_admission_slot(tmp_path, registry):
    """Bodies are read before a slot is taken: requests stuck in their body do not count."""
    app = create_app(
        make_settings(tmp_path, registry, max_concurrency=1, max_queue=0), background=False
    )
    with TestClient(app) as c:
        guard = _guard(c)

        async def run() -> list[int]:
            stalled = asyncio.Event()
            sent: list[dict] = []

            async def slow_receive():
                stalled.set()
                await asyncio.sleep(3600)

            async def send(message):
                sent.append(message)

            scope = {
                "type": "http",
                "method": "POST",
                "path": "/events",
                "headers": [(b"content-type", b"application/json"), (b"host", b"testserver")],
                "query_string": b"",
            }
            slow = [asyncio.create_task(guard(scope, slow_receive, send)) for _ in range(8)]
            await stalled.wait()
            await asyncio.sleep(0.05)
            in_flight = guard.admission.in_flight
            for task in slow:
                task.cancel()
            return [in_flight]

        assert asyncio.run(run()) == [0]


def test_anonymous_bodies_have_their_own_bounded_pool(tmp_path, registry):
    app = create_app(make_settings(tmp_path, registry, max_anonymous_bodies=2), background=False)
    with TestClient(app) as c:
        guard = _guard(c)

        async def run() -> tuple[list[int], int]:
            statuses: list[int] = []

            async def slow_receive():
                await asyncio.sleep(3600)

            async def send(message):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            def scope(headers):
                return {
                    "type": "http",
                    "method": "POST",
                    "path": "/recommendations",
                    "headers": [(b"host", b"testserver"), *headers],
                    "query_string": b"",
                }

            slow = [asyncio.create_task(guard(scope([]), slow_receive, send)) for _ in range(2)]
            await asyncio.sleep(0.05)
            await guard(scope([]), slow_receive, send)  # a third anonymous body: refused
            keyed = asyncio.create_task(
                guard(scope([(b"x-api-key", WRITE.encode())]), slow_receive, send)
            )
            await asyncio.sleep(0.05)
            waiting = int(not keyed.done())
            for task in [*slow, keyed]:
                task.cancel()
            return statuses, waiting

        statuses, keyed_waiting = asyncio.run(run())
        assert statuses == [503]
        assert keyed_waiting == 1  # a keyed body is read whatever anonymous ones do
