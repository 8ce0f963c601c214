"""The real server process (uvicorn) is killed with SIGKILL while ingesting; every acknowledged
event must be stored exactly once after restarts. (The 20-kill version is
``benchmarks/bench_service_durability.py``.)"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.serving.store import EventStore
from recforge.testing import free_port, start_server, toy_dataset

KEY = "durability-test-key"
WRITE_KEY_ENV = {"RECFORGE_WRITE_KEYS": f'["{KEY}"]'}


def start(registry: Path, db: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start the server on ``port`` (the same one after every kill)."""
    return start_server(registry, db, log, port=port, env=WRITE_KEY_ENV, timeout=60)[0]


def ingest_until_killed(
    port: int, prefix: str, acked: set[str], unacked: list[list[dict]], stop: threading.Event
) -> None:
    url = f"http://127.0.0.1:{port}/events/batch"
    with httpx.Client(timeout=5, headers={"X-API-Key": KEY}) as client:
        b = 0
        while not stop.is_set():
            batch = [
                {
                    "event_id": f"{prefix}-{b}-{i}",
                    "user": f"u{i % 7}",
                    "item": str(100 + i % 40),
                    "type": "click",
                }
                for i in range(50)
            ]
            b += 1
            try:
                r = client.post(url, json={"events": batch})
            except httpx.HTTPError:
                unacked.append(batch)
                return
            if r.status_code == 200 and r.json()["accepted"] + r.json()["duplicates"] == 50:
                acked.update(e["event_id"] for e in batch)
            else:
                unacked.append(batch)


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_event(tmp_path):
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(MostPopular().fit(toy_dataset()), promote=True)
    db = f"sqlite:///{tmp_path / 'events.db'}"
    EventStore(db).close()
    port = free_port()
    log = tmp_path / "server.log"
    acked: set[str] = set()
    unacked: list[list[dict]] = []
    for cycle in range(3):
        proc = start(reg.root, db, port, log)
        if unacked:  # clients retry what was not acknowledged: idempotent by event_id
            r = httpx.post(
                f"http://127.0.0.1:{port}/events/batch",
                json={"events": [e for batch in unacked for e in batch]},
                headers={"X-API-Key": KEY},
                timeout=30,
            )
            assert r.status_code == 200
            acked.update(e["event_id"] for batch in unacked for e in batch)
            unacked.clear()
        stop = threading.Event()
        workers = [
            threading.Thread(
                target=ingest_until_killed, args=(port, f"c{cycle}w{w}", acked, unacked, stop)
            )
            for w in range(3)
        ]
        for t in workers:
            t.start()
        time.sleep(1.0 + 0.3 * cycle)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        for t in workers:
            t.join(timeout=10)
    store = EventStore(db)
    ids = store.event_ids()
    assert len(ids) == len(set(ids)), "an event was stored twice"
    missing = acked - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    assert len(acked) >= 1000
    assert store.pragma("integrity_check") == "ok"
    # a final restart serves the stored events (online state rebuilt from the store): every
    # item of a user's acknowledged events is in their history and out of their lists
    stored = store.events_frame()
    acked_items = stored[stored["event_id"].isin(acked)].groupby("user")["item"].agg(set)
    proc = start(reg.root, db, port, log)
    try:
        base = f"http://127.0.0.1:{port}"
        for user, items in acked_items.items():
            r = httpx.get(f"{base}/users/{user}/history", params={"limit": 1000}, timeout=5)
            assert r.status_code == 200
            assert items <= {it["item"] for it in r.json()["items"]}, user
            r = httpx.get(f"{base}/recommendations/{user}", params={"k": 100}, timeout=5)
            assert r.status_code == 200
            assert not items & {it["item"] for it in r.json()["items"]}, user
            assert "new events" in r.json()["reason"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
