"""REST routes through TestClient: auth, limits, fallback, freshness, idempotency, hot swap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.serving.app import check_for_new_version, create_app
from recforge.serving.settings import ServiceSettings
from recforge.serving.store import EventStore

from .conftest import catalog_dataset, content_model

WRITE = "write-key-0123456789"
ADMIN = "admin-key-0123456789"
W = {"X-API-Key": WRITE}
A = {"Authorization": f"Bearer {ADMIN}"}


def make_settings(tmp_path: Path, registry: ModelRegistry, **kw) -> ServiceSettings:
    base = {
        "registry": registry.root,
        "db": f"sqlite:///{tmp_path / 'events.db'}",
        "write_keys": [WRITE],
        "admin_keys": [ADMIN],
        "poll_interval_s": 0.05,
        "sync_interval_s": 0.05,
    }
    base.update(kw)
    return ServiceSettings(**base)


@pytest.fixture
def client(tmp_path, registry) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path, registry), background=False)
    with TestClient(app) as c:
        yield c


def _items(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [it["item"] for it in resp.json()["items"]]


# ------------------------------------------------------------------ reads
def test_recommendations_for_known_user(client):
    r = client.get("/recommendations/u0", params={"k": 5})
    body = r.json()
    assert r.status_code == 200
    assert body["reason"] == "personalised"
    assert body["model_version"] == "v000001"
    assert len(body["items"]) == 5
    assert [it["rank"] for it in body["items"]] == [1, 2, 3, 4, 5]
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_unknown_user_falls_back_to_popularity_with_reason(client, dataset):
    r = client.get("/recommendations/nobody", params={"k": 3})
    assert r.status_code == 200
    assert r.json()["reason"] == "unknown user: most popular items"
    counts = {str(i): c for i, c in zip(dataset.items.ids, dataset.item_counts(), strict=True)}
    scores = [it["score"] for it in r.json()["items"]]
    assert scores == sorted(counts.values(), reverse=True)[:3]
    assert all(counts[i] == s for i, s in zip(_items(r), scores, strict=True))


def test_popularity_fallback_counts_new_events(client, dataset):
    before = _items(client.get("/recommendations/stranger", params={"k": 1}))
    rare = str(dataset.items.ids[int(dataset.item_counts().argmin())])
    assert before != [rare]
    events = [{"event_id": f"p{i}", "user": f"fan{i}", "item": rare} for i in range(30)]
    client.post("/events/batch", json={"events": events}, headers=W)
    r = client.get("/recommendations/stranger", params={"k": 1})
    assert _items(r) == [rare]
    assert r.json()["reason"] == "unknown user: most popular items"


def test_filters_exclude_require_and_seen(client, dataset):
    full = _items(client.get("/recommendations/u0", params={"k": 5}))
    r = client.get("/recommendations/u0", params={"k": 5, "exclude": full[:2]})
    assert not set(_items(r)) & set(full[:2])
    req = ["1", "2", "3", "4"]
    r = client.get("/recommendations/u0", params={"k": 10, "require": req, "exclude_seen": False})
    assert set(_items(r)) <= set(req)
    seen = {str(i) for i in dataset.items.ids_of(dataset.item[dataset.user == 0])}
    assert not seen & set(_items(client.get("/recommendations/u0", params={"k": 20})))


def test_diversity_reranks_with_mmr(client):
    def genres(body):
        return {it["attributes"]["genres"] for it in body["items"] if it["attributes"]}

    client.put(
        "/items",
        json={
            "items": [
                {"id": str(i), "attributes": {"genres": g}}
                for i, g in (
                    (i, ["Comedy", "Drama", "Horror", "Animation"][(i - 1) % 4])
                    for i in range(1, 25)
                )
            ]
        },
        headers=W,
    )
    plain = client.get("/recommendations/u0", params={"k": 6, "details": True}).json()
    diverse = client.get(
        "/recommendations/u0", params={"k": 6, "details": True, "diversity": 0.9}
    ).json()
    assert "diversified" in diverse["reason"]
    assert len(diverse["items"]) == 6
    assert len(genres(diverse)) > len(genres(plain))
    assert client.get("/recommendations/u0", params={"diversity": 1.5}).status_code == 422


def test_details_and_explanations(client):
    r = client.get("/recommendations/u0", params={"k": 3, "explain": True})
    items = r.json()["items"]
    assert all(it["title"] is None for it in items)  # no attributes stored yet
    client.put(
        "/items",
        json={
            "items": [{"id": it["item"], "attributes": {"title": f"T{it['item']}"}} for it in items]
        },
        headers=W,
    )
    r = client.get("/recommendations/u0", params={"k": 3, "explain": True})
    got = r.json()["items"]
    assert [g["title"] for g in got] == [f"T{it['item']}" for it in items]
    assert all(g["explanation"] for g in got)


def test_anonymous_history(client):
    r = client.post("/recommendations", json={"items": ["1", "5"], "k": 4})
    assert r.status_code == 200
    items = _items(r)
    assert "1" not in items
    assert "5" not in items
    assert len(items) == 4
    r = client.post("/recommendations", json={"items": ["1"], "values": [1.0, 2.0]})
    assert r.status_code == 422


def test_similar_items(client):
    r = client.get("/items/1/similar", params={"k": 3})
    assert r.status_code == 200
    assert r.json()["item"] == "1"
    assert len(_items(r)) == 3
    assert "1" not in _items(r)
    assert client.get("/items/99999/similar").status_code == 404
    assert client.get("/items/not-an-int/similar").status_code == 404


def test_similar_items_unsupported_is_501(tmp_path, popular_registry):
    app = create_app(make_settings(tmp_path, popular_registry), background=False)
    with TestClient(app) as c:
        assert c.get("/items/1/similar").status_code == 501


def test_model_info_and_registry_listing(client):
    info = client.get("/model").json()
    assert info["version"] == "v000001"
    assert info["model"] == "content"
    assert info["capabilities"]["similar_items"] is True
    versions = client.get("/models").json()
    assert versions[0]["version"] == "v000001"
    assert versions[0]["active"] is True
    assert versions[0]["metrics"] == {"ndcg@10": 0.3}


def test_version_report_is_served_when_present(client, registry):
    assert client.get("/models/v000001/report").status_code == 404
    (registry.versions_dir / "v000001" / "report.html").write_text("<h1>report</h1>")
    r = client.get("/models/v000001/report")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert client.get("/models").json()[0]["report"] is True


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {
        "status": "ok",
        "model_version": None,
        "database": None,
        "detail": None,
    }
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["model_version"] == "v000001"


def test_not_ready_without_model(tmp_path):
    reg = ModelRegistry(tmp_path / "empty")
    app = create_app(make_settings(tmp_path, reg), background=False)
    with TestClient(app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "no active model" in r.json()["detail"]
        r = c.get("/recommendations/u0")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"


def test_openapi_published(client):
    spec = client.get("/openapi.json").json()
    assert "/recommendations/{user_id}" in spec["paths"]
    assert "/events/batch" in spec["paths"]


# ------------------------------------------------------------------ auth
WRITE_ROUTES = [
    ("post", "/events", {"event_id": "a", "user": "u", "item": "1"}),
    ("post", "/events/batch", {"events": [{"event_id": "a", "user": "u", "item": "1"}]}),
    ("put", "/items", {"items": [{"id": "1", "attributes": {}}]}),
]
ADMIN_ROUTES = [
    ("post", "/models/v000001/promote", None),
    ("post", "/models/rollback", None),
    ("get", "/metrics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITE_ROUTES + ADMIN_ROUTES)
def test_protected_routes_need_a_key(client, method, path, body):
    r = client.request(method, path, json=body)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.request(method, path, json=body, headers={"X-API-Key": "wrong"})
    assert r.status_code == 401
    assert "wrong" not in r.text


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_routes_reject_write_keys(client, method, path, body):
    assert client.request(method, path, json=body, headers=W).status_code == 403


@pytest.mark.parametrize(("method", "path", "body"), WRITE_ROUTES)
def test_write_routes_accept_write_and_admin_keys(client, method, path, body):
    assert client.request(method, path, json=body, headers=W).status_code == 200
    assert client.request(method, path, json=body, headers=A).status_code == 200


def test_keys_from_the_store_work_and_are_hashed(tmp_path, registry):
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    key = store.create_api_key("ci", "admin")
    app = create_app(make_settings(tmp_path, registry, write_keys=[], admin_keys=[]), store=store)
    with TestClient(app) as c:
        assert c.get("/metrics", headers={"X-API-Key": key}).status_code == 200
        assert c.get("/metrics").status_code == 401


def test_settings_keys_may_be_digests(tmp_path, registry):
    from recforge.serving.store import hash_api_key

    s = make_settings(
        tmp_path, registry, write_keys=[], admin_keys=["sha256:" + hash_api_key("s3")]
    )
    with TestClient(create_app(s, background=False)) as c:
        assert c.get("/metrics", headers={"X-API-Key": "s3"}).status_code == 200


def test_refuses_public_bind_without_keys(tmp_path, registry):
    from recforge.exceptions import ConfigError

    s = make_settings(tmp_path, registry, write_keys=[], admin_keys=[], host="0.0.0.0")
    with pytest.raises(ConfigError, match="without an API key"):
        s.check_bind()
    make_settings(tmp_path, registry, host="0.0.0.0").check_bind()  # keys configured: fine
    make_settings(tmp_path, registry, write_keys=[], admin_keys=[]).check_bind()  # loopback


def test_metrics_exposes_latency_events_and_version(client):
    client.get("/recommendations/u0")
    client.post("/events", json={"event_id": "m1", "user": "u0", "item": "2"}, headers=W)
    text = client.get("/metrics", headers=A).text
    assert (
        'recforge_request_duration_seconds_bucket{le="0.01",method="GET",route="get_recommendations",status="200"}'
        in text
    )
    assert "recforge_events_ingested_total 1.0" in text
    assert 'recforge_model_info{model="content",version="v000001"} 1.0' in text
    assert ADMIN not in text
    assert WRITE not in text


# ------------------------------------------------------------------ validation limits
@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"k": 0}, 422),
        ({"k": -1}, 422),
        ({"k": 1001}, 422),
        ({"k": "abc"}, 422),
        ({"k": 1000}, 200),
    ],
)
def test_k_limits(client, params, status):
    assert client.get("/recommendations/u0", params=params).status_code == status


@pytest.mark.parametrize(
    "event",
    [
        {"event_id": "x" * 257, "user": "u", "item": "1"},
        {"event_id": "e", "user": "", "item": "1"},
        {"event_id": "e", "user": "a\x00b", "item": "1"},
        {"event_id": "e", "user": "u", "item": "1", "type": "like"},
        {"event_id": "e", "user": "u", "item": "1", "timestamp": int(time.time()) + 86400},
        {"event_id": "e", "user": "u", "item": "1", "timestamp": 12},
        {"event_id": "e", "user": "u", "item": "1", "extra": 1},
        {"event_id": "e", "user": "u", "item": "1", "value": "high"},
    ],
)
def test_invalid_events_rejected(client, event):
    assert client.post("/events", json=event, headers=W).status_code == 422


def test_nan_and_infinity_rejected(client):
    for raw in (
        '{"event_id":"e","user":"u","item":"1","value":NaN}',
        '{"event_id":"e","user":"u","item":"1","value":Infinity}',
    ):
        r = client.post("/events", content=raw, headers={**W, "content-type": "application/json"})
        assert r.status_code == 422
    assert client.get("/model").json()["n_items"] == 24


def test_batch_limit_and_body_limit(tmp_path, registry):
    s = make_settings(tmp_path, registry, max_batch=5, max_body_bytes=2048)
    with TestClient(create_app(s, background=False)) as c:
        ev = [{"event_id": f"e{i}", "user": "u", "item": "1"} for i in range(6)]
        r = c.post("/events/batch", json={"events": ev}, headers=W)
        assert r.status_code == 422
        assert "at most 5" in r.text
        assert c.post("/events/batch", json={"events": []}, headers=W).status_code == 422
        big = [{"event_id": f"e{i}" * 10, "user": "u", "item": "1"} for i in range(5)] * 10
        r = c.post("/events/batch", json={"events": big}, headers=W)
        assert r.status_code == 413


def test_chunked_body_over_limit_is_413(tmp_path, registry):
    s = make_settings(tmp_path, registry, max_body_bytes=1024)
    with TestClient(create_app(s, background=False)) as c:

        def gen():
            yield b'{"events": ['
            for i in range(100):
                yield b'{"event_id": "e%d", "user": "u", "item": "1"},' % i
            yield b'{"event_id": "last", "user": "u", "item": "1"}]}'

        r = c.post(
            "/events/batch", content=gen(), headers={**W, "content-type": "application/json"}
        )
        assert r.status_code == 413
        assert c.app.state.recforge.store.count_events() == 0


def test_too_long_id_in_path_is_422(client):
    assert client.get("/recommendations/" + "u" * 257).status_code == 422


# ------------------------------------------------------------------ events
def test_ingestion_is_idempotent(client):
    ev = {"event_id": "evt-1", "user": "u0", "item": "3", "type": "click"}
    r1 = client.post("/events", json=ev, headers=W).json()
    r2 = client.post("/events", json=ev, headers=W).json()
    assert r1 == {"accepted": 1, "duplicates": 0, "duplicate_ids": []}
    assert r2 == {"accepted": 0, "duplicates": 1, "duplicate_ids": ["evt-1"]}
    batch = {"events": [ev, {**ev, "event_id": "evt-2"}, {**ev, "event_id": "evt-2"}]}
    r3 = client.post("/events/batch", json=batch, headers=W).json()
    assert r3["accepted"] == 1
    assert r3["duplicates"] == 2
    assert client.app.state.recforge.store.count_events() == 2


def test_fresh_event_excludes_item_at_once(client):
    for _ in range(3):
        top = _items(client.get("/recommendations/u0", params={"k": 5}))[0]
        ev = {"event_id": f"f-{top}", "user": "u0", "item": top, "type": "view"}
        assert client.post("/events", json=ev, headers=W).status_code == 200
        r = client.get("/recommendations/u0", params={"k": 24})
        assert top not in _items(r)
        assert "online fold-in" in r.json()["reason"]


def test_new_user_events_personalise_via_fold_in(client):
    r = client.get("/recommendations/newbie", params={"k": 3})
    assert r.json()["reason"] == "unknown user: most popular items"
    horror = ["3", "7", "11"]  # items 3, 7, 11 are Horror in the fixture catalog
    client.post(
        "/events/batch",
        json={"events": [{"event_id": f"n{i}", "user": "newbie", "item": i} for i in horror]},
        headers=W,
    )
    r = client.get("/recommendations/newbie", params={"k": 3, "details": True})
    assert r.json()["reason"].startswith("new user: online fold-in")
    assert all(
        "Horror" in (it["attributes"] or {}).get("genres", "Horror") for it in r.json()["items"]
    )
    got = _items(r)
    assert not set(got) & set(horror)
    assert set(got) <= {"15", "19", "23"}


def test_event_on_one_replica_reaches_another_within_a_second(tmp_path, registry):
    s = make_settings(tmp_path, registry)
    with (
        TestClient(create_app(s, background=False)) as a,
        TestClient(create_app(s, background=True)) as b,
    ):
        top = _items(b.get("/recommendations/u7", params={"k": 3}))[0]
        a.post("/events", json={"event_id": "rep-1", "user": "u7", "item": top}, headers=W)
        t0 = time.monotonic()
        while top in _items(b.get("/recommendations/u7", params={"k": 3})):
            assert time.monotonic() - t0 < 1.0, "replica b still recommends the item after 1 s"
            time.sleep(0.02)


def test_user_history_and_search(client):
    client.post("/events", json={"event_id": "h1", "user": "u1", "item": "24"}, headers=W)
    h = client.get("/users/u1/history").json()
    assert h["known"] is True
    assert h["items"][0]["item"] == "24"
    assert "u1" in client.get("/users", params={"q": "u1"}).json()


def test_new_item_recommendable_at_once_with_content_model(client):
    r = client.put(
        "/items",
        json={"items": [{"id": "500", "attributes": {"title": "New comedy", "genres": "Comedy"}}]},
        headers=W,
    )
    assert r.json() == {"written": 1, "recommendable_now": True}
    assert client.get("/items/500").json()["attributes"]["title"] == "New comedy"
    assert "500" in _items(client.get("/recommendations/u0", params={"k": 24}))
    assert "500" in _items(client.get("/items/1/similar", params={"k": 30}))
    assert client.get("/items", params={"q": "new com"}).json()[0]["id"] == "500"


def test_events_on_an_item_added_after_loading_are_folded_in(client):
    """The online state coded its events against the old index; the new item must still count."""
    client.put(
        "/items",
        json={"items": [{"id": "501", "attributes": {"title": "New horror", "genres": "Horror"}}]},
        headers=W,
    )
    client.post("/events", json={"event_id": "late-1", "user": "late", "item": "501"}, headers=W)
    r = client.get("/recommendations/late", params={"k": 5, "details": True})
    assert r.json()["reason"] == "new user: online fold-in of 1 new events"
    assert "501" not in _items(r)
    assert all(int(i) % 4 == 3 for i in _items(r))  # the Horror items of the fixture catalog


# ------------------------------------------------------------------ hot swap
def test_hot_swap_and_corrupt_version_keeps_old_model(tmp_path, registry, dataset):
    app = create_app(make_settings(tmp_path, registry), background=False)
    with TestClient(app) as c:
        state = c.app.state.recforge
        failed: dict[str, str] = {}
        v2 = registry.publish(MostPopular().fit(dataset))
        registry.promote(v2.version)
        assert check_for_new_version(state, failed)
        assert c.get("/model").json()["version"] == v2.version
        # a corrupt v3 gets promoted behind the registry's back (e.g. disk damage)
        v3 = registry.publish(content_model(dataset))
        registry.promote(v3.version)
        npz = v3.path / "arrays.npz"
        npz.write_bytes(npz.read_bytes()[:200])
        assert not check_for_new_version(state, failed)
        info = c.get("/model").json()
        assert info["version"] == v2.version
        assert "v000003 rejected" in info["last_load_error"]
        assert c.get("/recommendations/u0").status_code == 200
        metrics = c.get("/metrics", headers=A).text
        assert "recforge_model_load_failures_total 1.0" in metrics


def test_swap_under_load_fails_no_request(tmp_path, registry, dataset):
    app = create_app(make_settings(tmp_path, registry, max_concurrency=1000), background=True)
    statuses: list[int] = []
    stop = threading.Event()
    with TestClient(app) as c:

        def hammer() -> None:
            while not stop.is_set():
                statuses.append(c.get("/recommendations/u3", params={"k": 5}).status_code)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        for model in (
            MostPopular().fit(dataset),
            content_model(dataset),
            MostPopular().fit(dataset),
        ):
            registry.publish(model, promote=True)
            deadline = time.monotonic() + 10
            want = registry.active_version()
            while c.get("/model").json()["version"] != want and time.monotonic() < deadline:
                time.sleep(0.02)
            assert c.get("/model").json()["version"] == want
        stop.set()
        for t in threads:
            t.join()
    assert statuses
    assert set(statuses) == {200}


def test_promote_and_rollback_routes(client, registry, dataset):
    v2 = registry.publish(MostPopular().fit(dataset))
    r = client.post(f"/models/{v2.version}/promote", headers=A)
    assert r.status_code == 200
    assert registry.active_version() == v2.version
    r = client.post("/models/rollback", headers=A)
    assert r.json()["version"] == "v000001"
    assert client.post("/models/rollback", headers=A).status_code == 409
    assert client.post("/models/v000077/promote", headers=A).status_code == 422


def test_admission_control_answers_503_with_retry_after(tmp_path, registry):
    s = make_settings(tmp_path, registry, max_concurrency=1, max_queue=0)
    app = create_app(s, background=False)
    with TestClient(app) as c:
        guard = c.app.middleware_stack
        while not hasattr(guard, "admission"):
            guard = guard.app
        guard.admission.in_flight = 1  # one request is being handled
        r = c.get("/recommendations/u0")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert c.get("/healthz").status_code == 200  # health checks are never refused
        guard.admission.in_flight = 0
        assert c.get("/recommendations/u0").status_code == 200
        assert guard.admission.in_flight == 0


def test_online_state_rebuilt_from_store_after_restart(tmp_path, registry):
    s = make_settings(tmp_path, registry)
    with TestClient(create_app(s, background=False)) as c:
        top = _items(c.get("/recommendations/u5", params={"k": 3}))[0]
        c.post("/events", json={"event_id": "r1", "user": "u5", "item": top}, headers=W)
        before = _items(c.get("/recommendations/u5", params={"k": 5}))
    with TestClient(create_app(s, background=False)) as c:
        after = _items(c.get("/recommendations/u5", params={"k": 5}))
    assert top not in after
    assert before == after


def test_catalog_dataset_is_deterministic():
    a, b = catalog_dataset(), catalog_dataset()
    assert a.fingerprint() == b.fingerprint()
