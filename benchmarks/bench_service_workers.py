"""Throughput of ``recforge serve --workers N`` on loopback, 1 vs 2 workers (never run by pytest).

    .venv/bin/python benchmarks/bench_service_workers.py [--duration 10] [--runs 3]
        [--connections 8] [--workers 1 2]

ALS(factors=64) on MovieLens latest-small (../shared/data, else the shipped copy: ~9.7k items)
is published in one registry; one ``recforge serve`` per worker count serves it (each with
the default limits, which are for the whole service). The load generator is ``wrk`` (C, one
thread, closed loop: ``--connections`` keep-alive connections each sending its next request
when the previous one is answered) over user recommendation paths (k=10), so it costs little
CPU beside the servers. The worker counts are measured in turn, ``--runs`` times each, and
medians of throughput and p99 are reported with the ratio to one worker.

Then, on the server with the most workers: a hot swap under the same load (a new version
promoted mid-run) must lose no request (no non-2xx answer, no socket error), and the memory of
each worker is read from ``/proc/<pid>/smaps_rollup`` (anonymous vs file-backed: the mapped
model arrays are file pages, shared by the workers).

Without ``wrk`` (``apt-get install wrk``) the script falls back to the open-loop generator of
``bench_service_load.py`` at ``--rate`` req/s.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_LUA = """
local users = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/recommendations/" .. users[(i %% #users) + 1] .. "?k=10")
end
"""


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if m is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(base: str, script: Path, connections: int, duration: float) -> dict[str, Any]:
    """One wrk run: requests/s, p50/p99 ms, non-2xx answers and socket errors."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(lat["50"]),
        "p99_ms": _ms(lat["99"]),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def run_open_loop(base: str, paths: list[str], rate: float, duration: float) -> dict[str, Any]:
    from recforge.testing import open_loop

    s = open_loop(base, paths, rate, duration).summary()
    return {
        "rps": s["ok"] / duration,
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "non_2xx": s["shed"] + s["errors"],
        "socket_errors": 0,
    }


def memory(pid: int) -> dict[str, int]:
    """Resident memory of a process in KiB: anonymous, file-backed, proportional share."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    fields = dict(re.findall(r"^(\w+):\s+(\d+) kB$", text, re.M))
    return {k: int(fields[k]) for k in ("Rss", "Pss", "Anonymous", "Pss_File") if k in fields}


def children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    ap.add_argument("--runs", type=int, default=3, help="runs per worker count")
    ap.add_argument("--connections", type=int, default=8, help="wrk keep-alive connections")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rate", type=float, default=1000.0, help="open-loop rate without wrk")
    args = ap.parse_args()

    from bench_service_load import load_data
    from recforge.models.als import ALS
    from recforge.models.popular import MostPopular
    from recforge.registry import ModelRegistry
    from recforge.testing import start_server

    ds = load_data()
    tmp = Path(tempfile.mkdtemp(prefix="recforge-bench-workers-"))
    als = ALS(factors=64, rng=0).fit(ds)
    reg = ModelRegistry(tmp / "reg")
    reg.publish(als, promote=True)
    users = [str(u) for u in als.users_.ids_of(range(min(500, len(als.users_))))]
    paths = [f"/recommendations/{u}?k=10" for u in users]
    script = tmp / "users.lua"
    script.write_text(_LUA % ", ".join(json.dumps(u) for u in users))
    use_wrk = shutil.which("wrk") is not None
    print(
        f"data: {ds.n_users} users, {ds.n_items} items; load: "
        + (f"wrk -t1 -c{args.connections}" if use_wrk else f"open loop {args.rate:g} req/s")
    )
    servers = {}
    for n in args.workers:
        db = f"sqlite:///{tmp / f'w{n}.db'}"
        env = {"RECFORGE_POLL_INTERVAL_S": "1"}
        servers[n] = start_server(
            reg.root, db, tmp / f"w{n}.log", env=env, args=["--workers", str(n)], timeout=180
        )
    time.sleep(3)  # every worker up (readiness answers with the first)

    def measure(n: int) -> dict[str, Any]:
        base = f"http://127.0.0.1:{servers[n][1]}"
        if use_wrk:
            return run_wrk(base, script, args.connections, args.duration)
        return run_open_loop(base, paths, args.rate, args.duration)

    results: dict[int, list[dict[str, Any]]] = {n: [] for n in args.workers}
    try:
        for n in args.workers:
            measure(n)  # warm-up run, not counted
        for r in range(args.runs):
            for n in args.workers:
                res = measure(n)
                results[n].append(res)
                print(f"run {r + 1}, {n} worker(s): {res}")
        base_rps = statistics.median(x["rps"] for x in results[args.workers[0]])
        print("\n| workers | req/s (median) | p50 ms | p99 ms | non-2xx | x req/s of 1 |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n in args.workers:
            rs = results[n]
            rps = statistics.median(x["rps"] for x in rs)
            print(
                f"| {n} | {rps:,.0f} | {statistics.median(x['p50_ms'] for x in rs):.2f} | "
                f"{statistics.median(x['p99_ms'] for x in rs):.2f} | "
                f"{sum(x['non_2xx'] + x['socket_errors'] for x in rs)} | {rps / base_rps:.2f} |"
            )
        # hot swap under load on the largest service
        n = max(args.workers)
        proc = servers[n][0]
        v2 = reg.publish(MostPopular().fit(ds))
        timer = threading.Timer(args.duration / 2, reg.promote, (v2.version,))
        timer.start()
        res = measure(n)
        timer.join()
        print(f"\nhot swap to {v2.version} mid-run, {n} workers: {res}")
        for pid in children(proc.pid):
            print(f"worker pid {pid} memory KiB: {memory(pid)}")
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
