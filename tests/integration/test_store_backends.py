"""Event store against SQLite (WAL + synchronous=FULL) and a real PostgreSQL server.

PostgreSQL tests run when RECFORGE_TEST_POSTGRES_URL is set, e.g.
``RECFORGE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test``; each run uses
its own table prefix and drops its tables afterwards.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from recforge.exceptions import ConfigError
from recforge.serving.store import Event, EventStore, hash_api_key

PG_ENV = "RECFORGE_TEST_POSTGRES_URL"


def _pg_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests disabled: set {PG_ENV}="
            "postgresql+psycopg://postgres@127.0.0.1:5432/test to run them"
        )
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        s = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
        yield s
        s.close()
        return
    url = _pg_url()
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    try:
        s = EventStore(url, table_prefix=prefix)
    except Exception as exc:  # server down or unreachable
        pytest.skip(f"PostgreSQL at {PG_ENV} is unreachable ({type(exc).__name__}); start it")
    try:
        yield s
    finally:
        s.drop()


def test_sqlite_runs_in_wal_mode_with_synchronous_full(tmp_path):
    s = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    assert s.pragma("journal_mode") == "wal"
    assert s.pragma("synchronous") == 2  # FULL
    s.add_events([Event("a", "u", "i")])
    assert (tmp_path / "e.db-wal").exists()
    s.close()


def test_ingestion_is_idempotent_and_exact(store):
    first = store.add_events([Event("e1", "u1", "i1"), Event("e2", "u1", "i2")])
    assert first.accepted == ["e1", "e2"]
    assert first.duplicates == []
    again = store.add_events(
        [Event("e2", "u1", "i2"), Event("e3", "u2", "i1"), Event("e3", "u2", "i1")]
    )
    assert again.accepted == ["e3"]
    assert sorted(again.duplicates) == ["e2", "e3"]
    assert store.count_events() == 3
    assert sorted(store.event_ids()) == ["e1", "e2", "e3"]


def test_events_round_trip_in_order(store):
    evs = [
        Event(f"e{i}", "alice", f"item{i % 3}", "rating", 4.5, 1_700_000_000 + i) for i in range(5)
    ]
    store.add_events(evs)
    hist = store.user_events("alice", limit=3)
    assert [e.event_id for e in hist] == ["e2", "e3", "e4"]
    assert hist[0].type == "rating"
    assert hist[0].value == 4.5
    assert hist[0].timestamp == 1_700_000_002
    seqs = [e.seq for e in store.events_after(0)]
    assert seqs == sorted(seqs)
    assert len(store.events_after(seqs[2])) == 2
    assert store.max_seq() == seqs[-1]
    frame = store.events_frame()
    assert list(frame.columns) == ["seq", "event_id", "user", "item", "type", "value", "time"]
    assert len(frame) == 5


def test_hostile_strings_are_stored_verbatim(store):
    nasty = ["'; DROP TABLE x; --", 'a"b', "' OR 1=1 --", "ü🎬\u202e", "100%_like\\"]
    store.add_events([Event(f"ev{i}", s, s) for i, s in enumerate(nasty)])
    store.upsert_items({s: {"title": s} for s in nasty})
    assert sorted(e.user for e in store.events_after(0)) == sorted(nasty)
    assert store.get_items(nasty) == {s: {"title": s} for s in nasty}
    assert list(store.search_items("100%_")) == ["100%_like\\"]
    assert store.search_users("100%") == ["100%_like\\"]
    assert store.count_events() == len(nasty)


def test_items_upsert_and_search(store):
    store.upsert_items({"1": {"title": "Toy Story (1995)", "genres": "Animation"}})
    store.upsert_items(
        {"1": {"title": "Toy Story (1995)", "genres": "Children"}, "2": {"title": "Heat"}}
    )
    assert store.count_items() == 2
    assert store.get_items(["1", "missing"]) == {
        "1": {"title": "Toy Story (1995)", "genres": "Children"}
    }
    assert list(store.search_items("toy")) == ["1"]


def test_api_keys_are_stored_hashed(store):
    key = store.create_api_key("ops", "admin")
    scopes = store.api_key_scopes()
    assert scopes == {hash_api_key(key): "admin"}
    assert key not in scopes
    assert store.revoke_api_key("ops") == 1
    assert store.api_key_scopes() == {}
    with pytest.raises(ConfigError, match="scope"):
        store.create_api_key("x", "root")  # type: ignore[arg-type]


def test_batch_throughput_at_least_10k_per_second(store):
    n = 20_000
    evs = [
        Event(f"b{i}", f"u{i % 500}", f"i{i % 900}", "click", 1.0, 1_700_000_000) for i in range(n)
    ]
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        res = store.add_events(evs[start : start + 5000])
        assert len(res.accepted) == 5000
    rate = n / (time.perf_counter() - t0)
    assert store.count_events() == n
    assert rate >= 10_000, f"{rate:.0f} events/s"


def test_concurrent_writers_lose_nothing(store):
    def writer(w: int) -> None:
        for b in range(10):
            store.add_events([Event(f"w{w}-{b}-{i}", f"u{w}", f"i{i}") for i in range(50)])
            store.add_events([Event(f"w{w}-{b}-0", f"u{w}", "i0")])  # retry of a stored id

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = store.event_ids()
    assert len(ids) == len(set(ids)) == 4 * 10 * 50


def test_invalid_prefix_and_dialect_rejected(tmp_path):
    with pytest.raises(ConfigError, match="table_prefix"):
        EventStore(f"sqlite:///{tmp_path / 'x.db'}", table_prefix="x; drop")
    with pytest.raises(ConfigError, match="unsupported database"):
        EventStore("mysql://u@h/db")
