"""Keyed requests under slow request bodies without a key (never run by pytest).

    .venv/bin/python benchmarks/bench_service_slow_bodies.py [--rate 200] [--duration 20]
        [--runs 3] [--slow 0,8,32] [--src DIR]

A real ``recforge serve`` (uvicorn, one worker, ALS(factors=64) on MovieLens latest-small,
SQLite store, one write key, default limits: 8 admission slots, 32 anonymous bodies, 30 s
body deadline) gets, for each ``--slow`` count, that many connections that send the head of a
``POST /events`` without a key and then stall in its body (a connection the server closes is
reopened at once), plus open-loop load of ``GET /recommendations/<user>?k=10`` with the write
key at ``--rate`` req/s (``recforge.testing.open_loop``, latency from the intended send time).
Reports the medians over ``--runs`` of p50/p99 of the 200s and the counts of 503s and errors.
``--src`` serves another checkout's ``src`` (to measure the code before a change).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

KEY = "bench-slow-bodies-key"


class SlowBodies:
    """``n`` keyless connections stalled in a ``POST /events`` body, reopened when closed."""

    def __init__(self, port: int, n: int) -> None:
        self.port, self.n = port, n
        self.stop = threading.Event()
        self.reopened = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port))
        head = (
            "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        s.sendall(head.encode() + b'{"event_id": "slow", ')
        s.setblocking(False)
        return s

    def _run(self) -> None:
        socks = [self._open() for _ in range(self.n)]
        while not self.stop.wait(0.2):
            for j, s in enumerate(socks):
                try:
                    closed = s.recv(4096) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    s.close()
                    socks[j] = self._open()
                    self.reopened += 1
        for s in socks:
            s.close()

    def __enter__(self) -> SlowBodies:
        if self.n:
            self.thread.start()
            time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.n:
            self.thread.join()


def start(root: Path, src: str | None) -> tuple[Any, str, list[str]]:
    """Fit ALS(64) on MovieLens latest-small, publish it and start the server."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_service_load import load_data
    from recforge.models.als import ALS
    from recforge.registry import ModelRegistry
    from recforge.testing import start_server

    ds = load_data()
    reg = ModelRegistry(root / "registry")
    reg.publish(ALS(factors=64, iterations=10).fit(ds), promote=True)
    env = {"RECFORGE_WRITE_KEYS": json.dumps([KEY]), "RECFORGE_WEB": "false"}
    if src is not None:
        env["PYTHONPATH"] = src
    db = f"sqlite:///{root / 'events.db'}"
    proc, port = start_server(reg.root, db, root / "server.log", env=env, timeout=120)
    users = [str(u) for u in ds.users.ids[:500]]
    return proc, f"http://127.0.0.1:{port}", [f"/recommendations/{u}?k=10" for u in users]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--slow", default="0,8,32", help="slow-body connections per phase")
    ap.add_argument("--src", default=None, help="PYTHONPATH of the server (another checkout)")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from recforge.testing import open_loop

    root = Path(tempfile.mkdtemp(prefix="recforge-slow-bodies-"))
    proc, base, paths = start(root, args.src)
    port = int(base.rsplit(":", 1)[1])
    results: dict[str, Any] = {"rate": args.rate, "duration_s": args.duration, "phases": []}
    try:
        for n in (int(x) for x in args.slow.split(",")):
            runs = []
            for _ in range(args.runs):
                with SlowBodies(port, n):
                    load = open_loop(
                        base, paths, args.rate, args.duration, headers={"X-API-Key": KEY}
                    )
                s = load.summary()
                runs.append({**s, "status_503": int((load.status == 503).sum())})
            phase = {
                "slow_bodies": n,
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "max_p99_ms": max(r["p99_ms"] for r in runs),
                "requests": sum(r["n"] for r in runs),
                "ok": sum(r["ok"] for r in runs),
                "status_503": sum(r["status_503"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
            }
            results["phases"].append(phase)
            print(json.dumps(phase))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    (root / "slow-bodies.json").write_text(json.dumps(results, indent=2))
    print(f"results: {root / 'slow-bodies.json'}")


if __name__ == "__main__":
    main()
