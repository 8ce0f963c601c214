"""PostgreSQL: events that commit out of sequence order are never skipped (issue 11, defect 8).

A sequence value is taken when a row is inserted, not when its transaction commits, so an event
with a lower ``seq`` can become visible after one with a higher ``seq``. These tests hold such a
transaction open for real while other events commit, then check the running service's sync and
retrain's watermark. Enable with
RECFORGE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from recforge.serving.online import OnlineState
from recforge.serving.store import Event, EventStore

pytestmark = pytest.mark.postgres
PG_ENV = "RECFORGE_TEST_POSTGRES_URL"
KEY = "pg-write-key"


@pytest.fixture
def pg_store() -> Iterator[EventStore]:
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


def _open_insert(store: EventStore, event_id: str, user: str, item: str) -> tuple[Any, Any, int]:
    """Insert one event in a transaction left open; returns (connection, transaction, seq)."""
    conn = store.engine.connect()
    tx = conn.begin()
    seq = conn.execute(
        store.events.insert()
        .values(event_id=event_id, user_id=user, item_id=item, type="view", value=1.0, ts=0)
        .returning(store.events.c.seq)
    ).scalar_one()
    return conn, tx, int(seq)


def test_sync_applies_an_event_that_commits_after_a_later_sequence_number(pg_store):
    state = OnlineState(store=pg_store)
    pg_store.add_events([Event("e0", "u", "i0")])
    assert state.sync(pg_store) == 1
    conn, tx, slow_seq = _open_insert(pg_store, "slow", "u", "i-slow")
    try:
        pg_store.add_events([Event("fast", "u", "i-fast")])  # takes a larger seq, commits first
        state.sync(pg_store)
        assert "i-slow" not in [i for i, _ in state.recent("u")]
        tx.commit()
    finally:
        conn.close()
    state.sync(pg_store)
    items = [i for i, _ in state.recent("u")]
    assert {"i0", "i-slow", "i-fast"} == set(items)
    assert max(e.seq for e in pg_store.events_after(0)) > slow_seq
    assert state.sync(pg_store) == 0  # nothing applied twice


def test_a_rolled_back_sequence_number_does_not_hold_the_log_back(pg_store):
    state = OnlineState(store=pg_store)
    conn, tx, _ = _open_insert(pg_store, "never", "u", "i-never")
    pg_store.add_events([Event("after", "u", "i-after")])
    tx.rollback()
    conn.close()
    state.sync(pg_store)
    assert [i for i, _ in state.recent("u")] == ["i-after"]


def test_retrain_watermark_leaves_open_transactions_to_the_online_state(pg_store):
    pg_store.add_events([Event("e0", "u", "i0")])
    conn, tx, _ = _open_insert(pg_store, "slow", "u", "i-slow")
    try:
        pg_store.add_events([Event("fast", "u", "i-fast")])
        cursor = pg_store.cursor()  # what a retrain records as the model's last event
        trained = set(pg_store.events_frame(until=cursor)["event_id"])
        tx.commit()
    finally:
        conn.close()
    online = OnlineState(cursor, store=pg_store)
    online.sync(pg_store)
    applied = {i for i, _ in online.recent("u")}
    assert trained == {"e0"}
    assert applied == {"i-slow", "i-fast"}  # every event exactly once: model or online state


def test_running_service_excludes_an_event_committed_out_of_order(tmp_path, pg_store):
    from fastapi.testclient import TestClient

    from recforge.models.popular import MostPopular
    from recforge.registry import ModelRegistry
    from recforge.serving.app import create_app
    from recforge.serving.settings import ServiceSettings
    from recforge.testing import toy_dataset

    ds = toy_dataset()
    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(MostPopular().fit(ds), promote=True)
    settings = ServiceSettings(
        registry=reg.root, db=pg_store.url, table_prefix=pg_store.prefix, write_keys=[KEY]
    )
    with TestClient(create_app(settings, store=pg_store, background=False)) as c:
        top = [it["item"] for it in c.get("/recommendations/u1", params={"k": 3}).json()["items"]]
        conn, tx, _ = _open_insert(pg_store, "slow", "u1", top[0])  # another replica's write
        try:
            ev = {"event_id": "fast", "user": "u1", "item": top[1]}
            assert c.post("/events", json=ev, headers={"X-API-Key": KEY}).status_code == 200
            tx.commit()
        finally:
            conn.close()
        c.app.state.recforge.holder.current.online.sync(pg_store)  # the sync thread's step
        items = [it["item"] for it in c.get("/recommendations/u1", params={"k": 3}).json()["items"]]
        assert top[0] not in items
        assert top[1] not in items
