"""Slow and idle clients against a real ``recforge serve`` process: request heads that never
finish are cut at the header deadline, bodies that trickle get 408, connections beyond the cap
get 503 with Retry-After, and ordinary requests stay fast throughout."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest

from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.testing import start_server, toy_dataset

WRITE = "slow-clients-write-key"


def _closed_by_server(sock: socket.socket, deadline: float) -> float | None:
    """Seconds until the server closed ``sock`` (recv returns b'' or resets), or None."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionError:
            return time.monotonic() - start
    return None


@pytest.fixture(params=["h11", "httptools"])
def server(request, tmp_path):
    if request.param == "httptools":
        pytest.importorskip("httptools")
    registry = ModelRegistry(tmp_path / "registry")
    registry.publish(MostPopular().fit(toy_dataset()), promote=True)
    env = {
        "RECFORGE_WRITE_KEYS": json.dumps([WRITE]),
        "RECFORGE_HEADER_TIMEOUT_S": "1.0",
        "RECFORGE_BODY_TIMEOUT_S": "1.0",
        "RECFORGE_MAX_CONNECTIONS": "40",
        "RECFORGE_METRICS_PUBLIC": "true",
        "RECFORGE_HTTP": request.param,
    }
    proc, port = start_server(
        registry.root, f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "server.log", env=env
    )
    yield port
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_slow_heads_are_cut_and_ordinary_requests_stay_fast(server):
    port = server
    slow = []
    for _ in range(20):  # each sends a partial head, then one byte every 0.2 s
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /recommendations/u1 HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    latencies = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        t_end = time.monotonic() + 1.6
        while time.monotonic() < t_end:
            for s in slow:
                with contextlib.suppress(OSError):  # already cut
                    s.sendall(b"X")
            t0 = time.perf_counter()
            assert client.get("/recommendations/u1", params={"k": 5}).status_code == 200
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.2)
        closed = [_closed_by_server(s, time.monotonic() + 3.0) for s in slow]
        metrics = client.get("/metrics").text
    for s in slow:
        s.close()
    assert all(c is not None for c in closed), "a slow request head was never cut"
    assert max(latencies) < 0.5
    assert 'recforge_requests_rejected_total{reason="header_timeout"} 20.0' in metrics


@pytest.mark.slow
def test_connections_beyond_the_cap_get_503_with_retry_after(server):
    port = server
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(45)]
    try:
        time.sleep(0.2)
        r = httpx.get(f"http://127.0.0.1:{port}/recommendations/u1", timeout=5)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert "too many open connections" in r.json()["detail"]
        # idle connections never send a head: the deadline frees their slots
        assert all(_closed_by_server(s, time.monotonic() + 3.0) is not None for s in idle)
        r = httpx.get(f"http://127.0.0.1:{port}/recommendations/u1", timeout=5)
        assert r.status_code == 200
    finally:
        for s in idle:
            s.close()


@pytest.mark.slow
def test_trickling_body_gets_408_and_frees_its_slot(server):
    port = server
    s = socket.create_connection(("127.0.0.1", port))
    head = (
        "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {WRITE}\r\nContent-Length: 1000\r\n\r\n"
    )
    s.sendall(head.encode() + b'{"event_id": "e1", ')
    s.settimeout(5)
    t0 = time.monotonic()
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert 0.8 < time.monotonic() - t0 < 4
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        event = {"event_id": "e2", "user": "u1", "item": "101"}
        ok = client.post("/events", json=event, headers={"X-API-Key": WRITE})
        assert ok.status_code == 200
        text = client.get("/metrics").text
    assert 'recforge_requests_rejected_total{reason="body_timeout"} 1.0' in text


def _slow_bodies(port: int, n: int, path: str = "/events") -> list[socket.socket]:
    """``n`` connections that send a request head without a key and then stall in the body."""
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        s.sendall(head.encode() + b'{"event_id": "slow-%d", ' % i)
        socks.append(s)
    return socks


@pytest.mark.slow
def test_slow_bodies_without_a_key_lock_nobody_out(server):
    """Sixteen bodies stalled past the admission limit (8): keyed writes, reads and health
    checks are answered at once, since bodies are read before a request takes a slot."""
    port = server
    slow = _slow_bodies(port, 16)
    try:
        time.sleep(0.2)
        statuses, latencies = [], []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for i in range(20):
                t0 = time.perf_counter()
                event = {"event_id": f"keyed-{i}", "user": "u1", "item": "101"}
                statuses.append(
                    client.post("/events", json=event, headers={"X-API-Key": WRITE}).status_code
                )
                statuses.append(client.get("/recommendations/u1", params={"k": 5}).status_code)
                latencies.append(time.perf_counter() - t0)
            assert client.get("/readyz").status_code == 200
        assert set(statuses) == {200}, statuses
        assert max(latencies) < 0.5
    finally:
        for s in slow:
            s.close()


@pytest.mark.slow
def test_request_head_larger_than_the_limit_gets_431(server):
    port = server
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(b"GET /recommendations/u1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
    reply = b""
    try:
        for _ in range(200):  # 200 x 4 KiB = 800 KiB of a header that never ends
            s.sendall(b"a" * 4096)
    except OSError:
        pass  # the server closed the connection
    with contextlib.suppress(OSError):
        while chunk := s.recv(4096):
            reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert 'recforge_requests_rejected_total{reason="header_too_large"} 1.0' in r.text
