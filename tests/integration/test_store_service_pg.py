"""The service end to end on a real PostgreSQL store (TestClient), skipped without a server.

Enable with RECFORGE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import os
import uuid

import pytest

from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.testing import toy_dataset

pytestmark = pytest.mark.postgres
PG_ENV = "RECFORGE_TEST_POSTGRES_URL"
KEY = "pg-write-key"


@pytest.fixture
def pg_store():
    from recforge.serving.store import EventStore

    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests disabled: set {PG_ENV}="
            "postgresql+psycopg://postgres@127.0.0.1:5432/test to run them"
        )
    try:
        store = EventStore(url, table_prefix=f"t{uuid.uuid4().hex[:10]}_")
    except Exception as exc:
        pytest.skip(f"PostgreSQL at {PG_ENV} is unreachable ({type(exc).__name__}); start it")
    yield store
    store.drop()


def test_service_on_postgres_two_replicas(tmp_path, pg_store):
    from fastapi.testclient import TestClient

    from recforge.serving.app import create_app
    from recforge.serving.settings import ServiceSettings

    ds = toy_dataset()
    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(MostPopular().fit(ds), promote=True)
    settings = ServiceSettings(
        registry=reg.root, db=pg_store.url, table_prefix=pg_store.prefix, write_keys=[KEY]
    )
    from recforge.serving.store import EventStore

    other = EventStore(pg_store.url, table_prefix=pg_store.prefix)
    with (
        TestClient(create_app(settings, store=pg_store, background=False)) as a,
        TestClient(create_app(settings, store=other, background=False)) as b,
    ):
        top = a.get("/recommendations/u1", params={"k": 3}).json()["items"][0]["item"]
        ev = {"event_id": "pg-1", "user": "u1", "item": top}
        assert a.post("/events", json=ev, headers={"X-API-Key": KEY}).json()["accepted"] == 1
        assert b.post("/events", json=ev, headers={"X-API-Key": KEY}).json()["duplicates"] == 1
        assert top not in [i["item"] for i in a.get("/recommendations/u1").json()["items"]]
        # replica b learns about a's event from the database (what its sync thread does)
        b.app.state.recforge.holder.current.online.sync(other)
        assert top not in [i["item"] for i in b.get("/recommendations/u1").json()["items"]]
        assert a.get("/readyz").json()["database"] is True
    other.close()
    assert pg_store.count_events() == 1


def test_locked_table_on_postgres_fails_fast_with_503(tmp_path, pg_store):
    """A writer blocked by another transaction's lock gets 503 + Retry-After after the
    store's lock timeout, not after the database's own (unbounded) wait."""
    import time

    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from recforge.serving.app import create_app
    from recforge.serving.settings import ServiceSettings
    from recforge.serving.store import EventStore

    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(MostPopular().fit(toy_dataset()), promote=True)
    settings = ServiceSettings(
        registry=reg.root, db=pg_store.url, table_prefix=pg_store.prefix, write_keys=[KEY],
        db_timeout_s=0.3,
    )  # fmt: skip
    store = EventStore(pg_store.url, table_prefix=pg_store.prefix, busy_timeout_s=0.3)
    ev = {"event_id": "pg-lock", "user": "u1", "item": "104"}
    with TestClient(create_app(settings, store=store, background=False)) as c:
        with pg_store.engine.connect() as other:
            trans = other.begin()
            other.execute(sa.text(f"LOCK TABLE {pg_store.events.name} IN EXCLUSIVE MODE"))
            t0 = time.monotonic()
            r = c.post("/events", json=ev, headers={"X-API-Key": KEY})
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1"
            assert time.monotonic() - t0 < 3.0
            assert c.get("/recommendations/u1").status_code == 200  # reads go on
            trans.rollback()
        assert c.post("/events", json=ev, headers={"X-API-Key": KEY}).json()["accepted"] == 1
    store.close()
