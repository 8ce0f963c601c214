"""Open-loop HTTP load from a separate process (end-to-end tests and benchmarks).

Requests are sent at a constant rate whatever the server's speed, and each latency is measured
from the request's *intended* send time, so a stalled server shows up as latency instead of
silently lowering the offered rate (no coordinated omission). The client speaks raw keep-alive
HTTP/1.1 over asyncio streams: far cheaper per request than a general client, so on a small
machine it takes less CPU from the server it measures.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LoadResult", "OpenLoopLoad", "open_loop"]

_VERSION = re.compile(rb'"model_version":"([^"]{1,64})"')


@dataclass
class LoadResult:
    """Outcome of one open-loop run.

    Attributes
    ----------
    status : numpy.ndarray
        HTTP status per request in send order; ``-1`` for a client-side failure (timeout,
        connection refused or reset mid-response).
    latency_ms : numpy.ndarray
        Milliseconds from the intended send time to the end of the response.
    retry_after : numpy.ndarray
        Whether the response carried a ``Retry-After`` header.
    versions : collections.Counter
        ``model_version`` of the 200 responses that have one, with counts.
    notes : dict
        Counts of noteworthy client events: ``error_<Exception>`` per failure kind and
        ``stale_keepalive_resent`` (an idle keep-alive connection the server had closed; the
        request was resent on a new connection, as HTTP clients do, and its latency includes
        that).
    """

    status: np.ndarray
    latency_ms: np.ndarray
    retry_after: np.ndarray
    versions: Counter[str] = field(default_factory=Counter)
    notes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts and percentiles: ``n, ok, shed, shed_with_retry_after, errors, p50_ms,
        p99_ms, shed_p99_ms, notes`` (latency percentiles over the 200 / shed responses)."""
        ok = self.status == 200
        shed = (self.status == 503) | (self.status == 429)
        lat = self.latency_ms

        def pct(mask: np.ndarray, q: float) -> float:
            return float(np.percentile(lat[mask], q)) if mask.any() else float("nan")

        return {
            "n": int(self.status.size),
            "ok": int(ok.sum()),
            "shed": int(shed.sum()),
            "shed_with_retry_after": int((shed & self.retry_after).sum()),
            "errors": int((~ok & ~shed).sum()),
            "p50_ms": pct(ok, 50),
            "p99_ms": pct(ok, 99),
            "shed_p99_ms": pct(shed, 99),
            "notes": dict(self.notes),
        }


class _Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, request: bytes) -> tuple[int, bool, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        retry = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "retry-after":
                retry = True
        body = await self.reader.readexactly(length) if length else b""
        return status, retry, body


async def _run(
    host: str,
    port: int,
    paths: Sequence[str],
    rate: float,
    duration: float,
    headers: Mapping[str, str],
    timeout: float,
    stop: Any = None,
) -> tuple[list[tuple[int, float, bool, str]], dict[str, int]]:
    loop = asyncio.get_running_loop()
    out: list[tuple[int, float, bool, str]] = []
    notes: Counter[str] = Counter()
    idle: list[_Conn] = []
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode() for p in paths]

    async def one(slot: int, request: bytes, intended: float) -> None:
        conn = idle.pop() if idle else None
        reused = conn is not None
        try:
            while True:
                if conn is None:
                    conn = _Conn(*await asyncio.open_connection(host, port))
                try:
                    status, retry, body = await asyncio.wait_for(conn.get(request), timeout)
                    break
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                    if not reused or partial:
                        raise
                    # the server closed this idle keep-alive connection before the request
                    # reached it: resend on a new connection (latency keeps counting)
                    notes["stale_keepalive_resent"] += 1
                    conn.writer.close()
                    conn, reused = None, False
            match = _VERSION.search(body) if status == 200 else None
            version = match.group(1).decode() if match else ""
            out[slot] = (status, loop.time() - intended, retry, version)
            idle.append(conn)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            notes[f"error_{type(exc).__name__}"] += 1
            out[slot] = (-1, loop.time() - intended, False, "")
            if conn is not None:
                conn.writer.close()

    for _ in range(16):  # open a few connections before the clock starts
        out.append((0, 0.0, False, ""))
        await one(0, requests[0], loop.time())
    out.clear()
    notes.clear()
    n = int(rate * duration)
    out.extend([(-1, 0.0, False, "")] * n)
    t0 = loop.time() + 0.1
    tasks = []
    for i in range(n):
        intended = t0 + i / rate
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if stop is not None and stop.is_set():
            del out[i:]  # stopped early: only the requests sent count
            break
        tasks.append(asyncio.create_task(one(i, requests[i % len(requests)], intended)))
    await asyncio.gather(*tasks)
    for c in idle:
        c.writer.close()
    return out, dict(notes)


def _child(args: tuple[Any, ...], queue: Any) -> None:
    queue.put(asyncio.run(_run(*args)))


class OpenLoopLoad:
    """Open-loop GET load in a separate process; starts at once, :meth:`result` waits.

    Parameters
    ----------
    base
        ``http://127.0.0.1:PORT``.
    paths
        Request paths (with query strings), used round-robin.
    rate
        Requests per second.
    duration
        Seconds of sending at most (:meth:`stop` ends it earlier).
    headers
        Extra request headers (e.g. an API key).
    timeout
        Seconds before a request counts as a client-side failure.

    Examples
    --------
    >>> load = OpenLoopLoad("http://127.0.0.1:8000", ["/healthz"], 100, 5)  # doctest: +SKIP
    >>> load.result().summary()["p99_ms"]  # doctest: +SKIP
    """

    def __init__(
        self,
        base: str,
        paths: Sequence[str],
        rate: float,
        duration: float,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if rate <= 0 or duration <= 0 or not paths:
            raise ValueError("rate and duration must be positive and paths non-empty")
        host, _, port = base.removeprefix("http://").rstrip("/").partition(":")
        self.duration = float(duration)
        ctx = mp.get_context("spawn")  # no inherited threads, locks or event loops
        self._queue = ctx.Queue()
        self._stop = ctx.Event()
        args = (
            host,
            int(port or 80),
            list(paths),
            float(rate),
            self.duration,
            dict(headers or {}),
            float(timeout),
            self._stop,
        )
        self._proc = ctx.Process(target=_child, args=(args, self._queue), daemon=True)
        self._proc.start()

    def stop(self) -> None:
        """Send no more requests (those in flight finish); :meth:`result` has the ones sent."""
        self._stop.set()

    def result(self, timeout: float | None = None) -> LoadResult:
        """Wait for the run to finish (default: its duration plus two minutes)."""
        wait = self.duration + 120.0 if timeout is None else timeout
        rows, notes = self._queue.get(timeout=wait)
        self._proc.join()
        versions = Counter(r[3] for r in rows if r[0] == 200 and r[3])
        return LoadResult(
            status=np.array([r[0] for r in rows], dtype=np.int64),
            latency_ms=np.array([r[1] for r in rows], dtype=np.float64) * 1000.0,
            retry_after=np.array([r[2] for r in rows], dtype=bool),
            versions=versions,
            notes=notes,
        )


def open_loop(
    base: str,
    paths: Sequence[str],
    rate: float,
    duration: float,
    *,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Run :class:`OpenLoopLoad` to the end and return its result."""
    return OpenLoopLoad(base, paths, rate, duration, headers=headers).result()
