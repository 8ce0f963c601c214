"""The open-loop load generator against a tiny real HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recforge.testing import OpenLoopLoad, free_port, open_loop


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the service answers

    def do_GET(self) -> None:
        if self.path.startswith("/busy"):
            body, status, extra = b'{"detail":"busy"}', 503, [("Retry-After", "1")]
        elif self.path.startswith("/key") and self.headers.get("X-API-Key") != "k":
            body, status, extra = b'{"detail":"no key"}', 401, []
        else:
            version = "v2" if self.path.endswith("2") else "v1"
            body, status, extra = f'{{"model_version":"{version}"}}'.encode(), 200, []
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_counts_statuses_versions_and_retry_after(base):
    result = open_loop(base, ["/r/1", "/r/2", "/busy"], rate=60, duration=1.0)
    s = result.summary()
    assert s["n"] == 60
    assert s["ok"] == 40
    assert s["shed"] == s["shed_with_retry_after"] == 20
    assert s["errors"] == 0
    assert result.versions == {"v1": 20, "v2": 20}
    assert (result.latency_ms > 0).all()
    assert 0 < s["p50_ms"] <= s["p99_ms"]
    assert list(result.status[:3]) == [200, 200, 503]  # send order is kept


def test_sends_headers(base):
    without = open_loop(base, ["/key"], rate=20, duration=0.5).summary()
    with_key = OpenLoopLoad(base, ["/key"], 20, 0.5, headers={"X-API-Key": "k"}).result()
    assert without["errors"] == 10  # 401 is neither ok nor shed
    assert with_key.summary()["ok"] == 10


def test_refused_connections_are_client_errors():
    result = open_loop(f"http://127.0.0.1:{free_port()}", ["/"], rate=20, duration=0.5)
    assert (result.status == -1).all()
    assert result.notes == {"error_ConnectionRefusedError": 10}


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rate and duration"):
        OpenLoopLoad("http://127.0.0.1:1", [], 10, 1)
