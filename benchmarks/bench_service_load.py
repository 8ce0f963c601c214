"""Open-loop load test of the REST service on loopback (never run by pytest).

    .venv/bin/python benchmarks/bench_service_load.py [--duration 8] [--runs 3]
        [--catalog-items 100000] [--skip-probe] [--skip-ingest]

What it does, all against a real ``recforge serve`` process (uvicorn, one worker):

1. Fits ALS(factors=64) and MostPopular on MovieLens latest-small (../shared/data, or the
   shipped copy), publishes them in two registries and starts one server per model.
2. Constant-rate open-loop load from a separate process (``recforge.testing.open_loop``: raw
   keep-alive HTTP/1.1 over asyncio): request ``i`` is due at ``t0 + i / rate`` whether or not
   earlier ones finished, and its latency is measured from that intended send time (no
   coordinated omission). A request that finds its idle keep-alive connection closed by the
   server is resent on a new connection, as HTTP clients do, and counted in ``notes``. 300 req/s of recommendations and
   of similar items, ``--runs`` times each; medians of p50/p99 are reported with the ratio to
   the popularity baseline served the same way.
3. Batch ingestion rate (4 clients posting 1,000-event batches).
4. Capacity probe: the highest rate whose p99 <= 25 ms with 0 errors.
5. Overload at 1,500 req/s while ``--slow-clients`` connections drip their request heads one
   byte at a time: share of 200 vs 503, Retry-After present, p99 of admitted requests, and
   how soon the server cut the slow connections (its header deadline, 10 s by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"


def load_data() -> Any:
    from recforge.data import Dataset

    shared = ROOT.parent / "shared" / "data" / "ml-latest-small"
    if (shared / "ratings.csv").is_file():
        import pandas as pd

        ratings = pd.read_csv(shared / "ratings.csv")
        movies = pd.read_csv(shared / "movies.csv").set_index("movieId")
        return Dataset.from_frame(
            ratings,
            user="userId",
            item="movieId",
            value="rating",
            time="timestamp",
            item_attributes=movies[["title", "genres"]],
        )
    from recforge.data import datasets

    return datasets.load("movielens-small")


def start_server(
    registry: Path, db: str, log: Path, max_concurrency: int
) -> tuple[subprocess.Popen[bytes], int]:
    """A single-threaded ``recforge serve`` with the write key and admission limit."""
    from recforge.testing import start_server as start

    env = {"RECFORGE_WRITE_KEYS": f'["{KEY}"]'}
    return start(
        registry, db, log, env=env, args=["--max-concurrency", str(max_concurrency)], timeout=120
    )


def open_loop(base: str, paths: list[str], rate: float, duration: float) -> dict[str, Any]:
    """Open-loop load from a separate process; summary with latencies in ms."""
    from recforge.testing import open_loop as run

    return {"offered_rps": rate, **run(base, paths, rate, duration).summary()}


class SlowHeaderClients:
    """``n`` connections that send a request head one byte every 0.5 s (slowloris), in a thread.

    A connection the server cuts is replaced at once, so the pressure stays constant; the
    summary says how many were cut and how long each had lived.
    """

    def __init__(self, port: int, n: int) -> None:
        import threading

        self.port, self.n = port, n
        self.cut_after_s: list[float] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowHeaderClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _open(self) -> tuple[Any, float] | None:
        import socket

        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.sendall(b"GET /recommendations/1 HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
            return sock, time.monotonic()
        except OSError:
            self.refused += 1
            return None

    def _run(self) -> None:
        conns = [c for c in (self._open() for _ in range(self.n)) if c is not None]
        while not self._stop.wait(0.5):
            alive = []
            for sock, opened in conns:
                try:
                    if sock.recv(4096) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    try:
                        sock.send(b"X")
                        alive.append((sock, opened))
                        continue
                    except OSError:
                        pass
                except OSError:
                    pass
                self.cut_after_s.append(time.monotonic() - opened)
                sock.close()
                new = self._open()
                if new is not None:
                    alive.append(new)
            conns = alive
        for sock, _ in conns:
            sock.close()

    def summary(self) -> dict[str, Any]:
        cut = np.asarray(self.cut_after_s)
        return {
            "clients": self.n,
            "cut_by_server": int(cut.size),
            "cut_after_s_median": float(np.median(cut)) if cut.size else None,
            "cut_after_s_max": float(cut.max()) if cut.size else None,
            "connect_failures": self.refused,
        }


def _merge_notes(notes: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in notes:
        for key, value in n.items():
            out[key] = out.get(key, 0) + value
    return out


def ingest_rate(base: str, seconds: float, clients: int = 4, batch: int = 1000) -> float:
    import httpx

    async def run() -> int:
        accepted = 0
        stop = time.monotonic() + seconds

        async def worker(w: int) -> None:
            nonlocal accepted
            async with httpx.AsyncClient(
                base_url=base, timeout=30, headers={"X-API-Key": KEY}
            ) as c:
                b = 0
                while time.monotonic() < stop:
                    events = [
                        {
                            "event_id": f"bench-{w}-{b}-{i}",
                            "user": str(1 + i % 600),
                            "item": str(1 + (i * 7) % 9000),
                            "type": "view",
                        }
                        for i in range(batch)
                    ]
                    r = await c.post("/events/batch", json={"events": events})
                    accepted += r.json()["accepted"]
                    b += 1

        await asyncio.gather(*(worker(w) for w in range(clients)))
        return accepted

    t0 = time.perf_counter()
    n = asyncio.run(run())
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per load phase")
    ap.add_argument("--runs", type=int, default=3, help="repetitions of the 300 req/s phases")
    ap.add_argument("--max-concurrency", type=int, default=8)
    ap.add_argument(
        "--catalog-items",
        type=int,
        default=0,
        help="serve a synthetic catalog of this many items (20,000 users, 1M interactions) "
        "instead of MovieLens latest-small",
    )
    ap.add_argument("--skip-probe", action="store_true", help="no capacity probe / overload")
    ap.add_argument(
        "--slow-clients",
        type=int,
        default=200,
        help="slow-header (slowloris) connections held open during the overload phase",
    )
    ap.add_argument(
        "--skip-ingest",
        action="store_true",
        help="no ingestion phase (the probe then sees a server without an event backlog)",
    )
    args = ap.parse_args()

    from recforge.models.als import ALS
    from recforge.models.popular import MostPopular
    from recforge.registry import ModelRegistry
    from recforge.serving.store import EventStore

    if args.catalog_items:
        from recforge.data.synthetic import synthetic

        ds = synthetic(20_000, args.catalog_items, 1_000_000, rng=0)
    else:
        ds = load_data()
    tmp = Path(tempfile.mkdtemp(prefix="recforge-bench-"))
    t = time.perf_counter()
    als = ALS(factors=64, rng=0).fit(ds)
    print(
        f"data: {ds.n_users} users, {ds.n_items} items, {ds.n_interactions} ratings; ALS fit {time.perf_counter() - t:.1f} s"
    )
    servers = {}
    procs = []
    for name, model in (("als64", als), ("popular", MostPopular().fit(ds))):
        reg = ModelRegistry(tmp / name)
        reg.publish(model, promote=True)
        db = f"sqlite:///{tmp / (name + '.db')}"
        store = EventStore(db)
        attrs = ds.item_attributes
        if attrs is not None and "title" in attrs:
            store.upsert_items(
                {
                    str(i): {"title": str(r.title), "genres": str(r.genres)}
                    for i, r in attrs.iterrows()
                }
            )
        store.close()
        proc, port = start_server(reg.root, db, tmp / f"{name}.log", args.max_concurrency)
        procs.append(proc)
        servers[name] = f"http://127.0.0.1:{port}"
    rng = np.random.default_rng(0)
    users = [str(u) for u in rng.choice(ds.users.ids, 2000)]
    items = [str(i) for i in rng.choice(ds.items.ids[np.argsort(-ds.item_counts())[:3000]], 2000)]
    rec_paths = [f"/recommendations/{u}?k=10" for u in users]
    sim_paths = [f"/items/{i}/similar?k=10" for i in items]
    results: dict[str, Any] = {"duration_s": args.duration, "runs": args.runs}
    try:
        for label, server, paths in (
            ("als64 recommendations", "als64", rec_paths),
            ("als64 similar items", "als64", sim_paths),
            ("popular recommendations", "popular", rec_paths),
        ):
            runs = [open_loop(servers[server], paths, 300, args.duration) for _ in range(args.runs)]
            results[label] = {
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "errors": sum(r["errors"] + r["shed"] for r in runs),
                "requests": sum(r["n"] for r in runs),
                "notes": _merge_notes(r["notes"] for r in runs),
            }
            print(
                f"{label:<26} 300 req/s: p50 {results[label]['p50_ms']:.2f} ms  p99 {results[label]['p99_ms']:.2f} ms  "
                f"errors {results[label]['errors']}/{results[label]['requests']}  "
                f"{results[label]['notes'] or ''}"
            )
        base = results["popular recommendations"]
        for label in ("als64 recommendations", "als64 similar items"):
            print(
                f"ratio {label} / popular: p50 x{results[label]['p50_ms'] / base['p50_ms']:.2f}, "
                f"p99 x{results[label]['p99_ms'] / base['p99_ms']:.2f}"
            )
        if not args.skip_ingest:
            rate = ingest_rate(servers["als64"], args.duration)
            results["ingest_events_per_s"] = rate
            print(
                "batch ingestion (4 clients x 1000-event batches, SQLite WAL+FULL): "
                f"{rate:,.0f} events/s"
            )
        best = 0
        probe = []
        for r in () if args.skip_probe else (100, 150, 200, 300, 450, 600, 800, 1000):
            s = open_loop(servers["als64"], rec_paths, r, max(3.0, args.duration / 2))
            probe.append(s)
            ok = s["p99_ms"] <= 25 and s["errors"] == 0 and s["shed"] == 0
            print(
                f"  probe {r:>5} req/s: p99 {s['p99_ms']:.1f} ms, shed {s['shed']}, errors {s['errors']} "
                f"{s['notes'] or ''} -> {'ok' if ok else 'over'}"
            )
            if not ok:
                break
            best = r
        results["capacity_rps_p99_le_25ms"] = best
        print(f"highest rate with p99 <= 25 ms and 0 errors: {best} req/s")
        if not args.skip_probe:
            port = int(servers["als64"].rsplit(":", 1)[1])
            with SlowHeaderClients(port, args.slow_clients) as slow:
                s = open_loop(servers["als64"], rec_paths, 1500, args.duration)
            results["overload_1500"] = s
            results["overload_slow_header_clients"] = slow.summary()
            print(
                f"overload 1500 req/s: ok {s['ok']}, shed (503/429) {s['shed']} of which with Retry-After "
                f"{s['shed_with_retry_after']}, errors {s['errors']}, admitted p99 {s['p99_ms']:.1f} ms, "
                f"shed p99 {s['shed_p99_ms']:.1f} ms {s['notes'] or ''}"
            )
            print(f"  with {args.slow_clients} slow-header clients: {slow.summary()}")
        alive = all(p.poll() is None for p in procs)
        results["servers_alive_after"] = alive
        print(f"servers alive after overload: {alive}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    (tmp / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {tmp / 'results.json'}")


if __name__ == "__main__":
    main()
