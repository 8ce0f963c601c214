"""Crash test of event ingestion: kill -9 the real server many times while clients ingest.

    .venv/bin/python benchmarks/bench_service_durability.py [--kills 20] [--db URL]

Each cycle starts ``recforge serve`` (uvicorn), lets 4 clients post 50-event batches with
unique event ids, SIGKILLs the server after a random 0.5-2.5 s, and retries every batch that
was not acknowledged after the restart (as a real client would). At the end every acknowledged
event id must be stored exactly once, and SQLite's ``integrity_check`` must say ``ok``.
Jepsen-style accounting: acknowledged = a 200 response whose counts cover the whole batch.
This covers process crashes; power loss needs a file system that drops un-fsynced writes.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

KEY = "durability-bench-key"


def start(registry: Path, db: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start the server on ``port`` (the same one after every kill)."""
    from recforge.testing import start_server

    env = {"RECFORGE_WRITE_KEYS": f'["{KEY}"]'}
    return start_server(registry, db, log, port=port, env=env)[0]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--db", default=None, help="store URL (default: a fresh SQLite file)")
    ap.add_argument(
        "--table-prefix",
        default=None,
        help="table prefix (default: a fresh one, dropped at the end)",
    )
    args = ap.parse_args()

    from recforge.models.popular import MostPopular
    from recforge.registry import ModelRegistry
    from recforge.serving.store import EventStore
    from recforge.testing import toy_dataset

    tmp = Path(tempfile.mkdtemp(prefix="recforge-durability-"))
    reg = ModelRegistry(tmp / "registry")
    reg.publish(MostPopular().fit(toy_dataset()), promote=True)
    db = args.db or f"sqlite:///{tmp / 'events.db'}"
    prefix = args.table_prefix or f"dur{os.getpid()}_"
    os.environ["RECFORGE_TABLE_PREFIX"] = prefix  # read by the server's settings
    EventStore(db, table_prefix=prefix).close()
    from recforge.testing import free_port

    port = free_port()
    acked: set[str] = set()
    pending: list[list[dict]] = []
    lock = threading.Lock()
    rnd = random.Random(0)
    t_start = time.perf_counter()
    for cycle in range(args.kills):
        proc = start(reg.root, db, port, tmp / "server.log")
        with lock:
            retry, pending[:] = list(pending), []
        for batch in retry:
            r = httpx.post(
                f"http://127.0.0.1:{port}/events/batch",
                json={"events": batch},
                headers={"X-API-Key": KEY},
                timeout=30,
            )
            r.raise_for_status()
            acked.update(e["event_id"] for e in batch)
        stop = threading.Event()

        def client(w: int, cycle: int = cycle, stop: threading.Event = stop) -> None:
            with httpx.Client(timeout=5, headers={"X-API-Key": KEY}) as c:
                b = 0
                while not stop.is_set():
                    batch = [
                        {
                            "event_id": f"k{cycle}-w{w}-b{b}-{i}",
                            "user": f"u{i % 9}",
                            "item": str(100 + i % 40),
                        }
                        for i in range(50)
                    ]
                    b += 1
                    try:
                        r = c.post(f"http://127.0.0.1:{port}/events/batch", json={"events": batch})
                        body = r.json() if r.status_code == 200 else None
                    except (httpx.HTTPError, ValueError):
                        body = None
                    if body and body["accepted"] + body["duplicates"] == len(batch):
                        with lock:
                            acked.update(e["event_id"] for e in batch)
                    else:
                        with lock:
                            pending.append(batch)
                        if body is None:
                            return

        threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.5, 2.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
        print(
            f"kill {cycle + 1:>2}/{args.kills}: {len(acked):>7} acknowledged so far, {len(pending)} batches to retry"
        )
    proc = start(reg.root, db, port, tmp / "server.log")
    for batch in pending:
        httpx.post(
            f"http://127.0.0.1:{port}/events/batch",
            json={"events": batch},
            headers={"X-API-Key": KEY},
            timeout=30,
        ).raise_for_status()
        acked.update(e["event_id"] for e in batch)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    store = EventStore(db, table_prefix=prefix)
    ids = store.event_ids()
    lost = acked - set(ids)
    dup = len(ids) - len(set(ids))
    integrity = store.pragma("integrity_check") if store.dialect == "sqlite" else "n/a"
    print(
        f"{args.kills} kills in {time.perf_counter() - t_start:.0f} s: acknowledged {len(acked)}, "
        f"stored {len(ids)}, lost {len(lost)}, duplicates {dup}, integrity_check {integrity}"
    )
    if store.dialect == "postgresql" and args.table_prefix is None:
        store.drop()
    sys.exit(0 if not lost and not dup and integrity in ("ok", "n/a") else 1)


if __name__ == "__main__":
    main()
