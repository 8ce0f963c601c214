"""Evidence that an event is acknowledged only after its commit is durable (never run by pytest).

    .venv/bin/python benchmarks/bench_service_ack.py [--events 200]

Starts ``recforge serve`` with a SQLite store (WAL, ``synchronous=FULL``), attaches
``strace -f -tt -yy -e trace=pwrite64,fsync,fdatasync,write,sendto,sendmsg`` to the server
process and posts ``--events`` single events one after another (each with a new ``event_id``).
Then it reads the trace and checks, for every ``HTTP/1.1 200`` response to ``POST /events``,
that since the previous response the server wrote the WAL (``pwrite64`` on ``*.db-wal``) and
synced it (``fsync``/``fdatasync`` on ``*.db-wal``) *before* the first byte of the response
went to the socket. Prints the counts, the ordering verdict and a trimmed excerpt of one
request's syscalls; needs strace (``apt-get install strace``) and permission to ptrace.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

KEY = "bench-ack-key-0123456789"
LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\d\d:\d\d:\d\d\.\d+)\s+(\w+)\((.*)$")


def start(root: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """Publish a small ALS model and start the service over a fresh SQLite store."""
    from recforge.models.als import ALS
    from recforge.registry import ModelRegistry
    from recforge.testing import start_server, toy_dataset

    reg = ModelRegistry(root / "registry")
    reg.publish(ALS(factors=16, iterations=5).fit(toy_dataset()), promote=True)
    db = root / "events.db"
    env = {"RECFORGE_WRITE_KEYS": f'["{KEY}"]', "RECFORGE_WEB": "false"}
    proc, port = start_server(reg.root, f"sqlite:///{db}", root / "server.log", env=env)
    return proc, f"http://127.0.0.1:{port}", str(db)


def parse(trace: Path) -> list[dict[str, Any]]:
    """Syscalls of interest as ``{pid, t, call, args}`` in trace order."""
    out = []
    for raw in trace.read_text(errors="replace").splitlines():
        m = LINE.match(raw.strip())
        if m:
            out.append({"pid": m[1], "t": m[2], "call": m[3], "args": m[4], "raw": raw})
    return out


def check(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """For every 200 response: WAL write and WAL sync happened after the previous response
    and before this one's first byte. Returns counts and the syscalls of one request."""
    responses = 0
    ordered = 0
    violations: list[str] = []
    wal_writes = wal_syncs = 0
    window: list[dict[str, Any]] = []
    example: list[dict[str, Any]] = []
    for c in calls:
        is_wal = "-wal>" in c["args"]
        if c["call"] == "pwrite64" and is_wal:
            wal_writes += 1
            window.append(c)
        elif c["call"] in ("fsync", "fdatasync") and is_wal:
            wal_syncs += 1
            window.append(c)
        elif c["call"] in ("write", "sendto", "sendmsg") and "HTTP/1.1 200" in c["args"]:
            responses += 1
            writes = [k for k, w in enumerate(window) if w["call"] == "pwrite64"]
            syncs = [k for k, w in enumerate(window) if w["call"] != "pwrite64"]
            # the last WAL write (the commit frame) must be followed by a sync of the WAL
            if writes and syncs and syncs[-1] > writes[-1]:
                ordered += 1
                if not example:
                    example = _trim([*window, c])
            else:
                violations.append(c["raw"][:200])
            window = []
    return {
        "responses_200": responses,
        "wal_write_then_sync_before_response": ordered,
        "violations": violations[:5],
        "wal_pwrite64": wal_writes,
        "wal_syncs": wal_syncs,
        "example": [e["raw"][:160] for e in example],
    }


def _trim(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """First and last WAL write, a count of those between, then the syncs and the response."""
    writes = [c for c in calls if c["call"] == "pwrite64"]
    if len(writes) <= 2:
        return calls
    middle = {
        "raw": f"  ... {len(writes) - 2} more pwrite64 of WAL frames on the same fd ...",
    }
    rest = [c for c in calls if c["call"] != "pwrite64"]
    return [writes[0], middle, writes[-1], *rest]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=200)
    args = ap.parse_args()
    import httpx

    strace = shutil.which("strace")
    if strace is None:
        raise SystemExit("strace not found: apt-get install -y strace")
    root = Path(tempfile.mkdtemp(prefix="recforge-ack-"))
    proc, base, db = start(root)
    trace = root / "strace.txt"
    tracer = subprocess.Popen(
        [
            strace,
            "-f",
            "-tt",
            "-yy",
            "-s",
            "64",
            "-o",
            str(trace),
            "-e",
            "trace=pwrite64,fsync,fdatasync,write,sendto,sendmsg",
            "-p",
            str(proc.pid),
        ],
        stderr=subprocess.PIPE,
    )
    time.sleep(2.0)  # let strace attach to every thread
    acked = 0
    try:
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}) as client:
            for i in range(args.events):
                ev = {"event_id": str(uuid.uuid4()), "user": f"ack{i % 17}", "item": str(i % 40)}
                r = client.post("/events", json=ev)
                acked += r.status_code == 200 and r.json()["accepted"] == 1
        time.sleep(0.5)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=20)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    import sqlite3

    with sqlite3.connect(db) as con:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    result = check(parse(trace))
    print(f"events posted {args.events}, acknowledged (200, accepted=1) {acked}; journal {mode}")
    print(
        f"200 responses in trace {result['responses_200']}; with a WAL pwrite64 followed by a "
        f"WAL fsync/fdatasync before the response's first byte: "
        f"{result['wal_write_then_sync_before_response']}; WAL writes {result['wal_pwrite64']}, "
        f"WAL syncs {result['wal_syncs']}"
    )
    if result["violations"]:
        print("responses without a preceding WAL write+sync:")
        for v in result["violations"]:
            print("  " + v)
    ok = result["wal_write_then_sync_before_response"] == result["responses_200"] == acked
    print(f"every acknowledgement preceded by its WAL commit and sync: {ok}")
    print("excerpt (one request):")
    for line in result["example"]:
        print("  " + line)
    print(f"trace: {trace}")


if __name__ == "__main__":
    main()
