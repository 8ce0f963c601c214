"""Connection-level limits uvicorn's HTTP/1.1 protocols lack: a header deadline and a cap.

Uvicorn closes *idle* keep-alive connections, but a client that opens a connection and sends
its request head a byte at a time is never timed out, and nothing bounds how many such
connections are open. The request-level admission control (at most ``max_concurrency``
requests in the application) never sees them, because no request is complete. A subclass of
uvicorn's protocol (httptools' C parser when installed, else h11) adds the two limits a
production front end (nginx's ``client_header_timeout``, HAProxy's ``timeout http-request``)
would:

* **Header deadline**: from the first byte of a request (or the opening of the connection)
  the whole head must arrive within ``header_timeout_s``; otherwise the connection is closed.
* **Head size**: a request head larger than ``max_header_bytes`` is answered ``431`` and the
  connection is closed, so a huge head that never finishes costs at most that much memory.
* **Connection cap**: beyond ``max_connections`` open connections, a new connection's request
  is answered ``503`` with ``Retry-After`` and the connection is closed, so slow or idle
  clients cannot exhaust file descriptors or memory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from recforge.exceptions import ConfigError

__all__ = ["guarded_http_protocol", "http_protocol_base"]


def http_protocol_base(kind: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol class: ``"httptools"`` (C parser), ``"h11"`` (pure
    Python), or ``"auto"``: httptools when installed, else h11.

    Raises
    ------
    ConfigError
        For an unknown kind, or ``"httptools"`` when it is not installed.
    """
    if kind not in ("auto", "h11", "httptools"):
        raise ConfigError(f"http must be 'auto', 'h11' or 'httptools', got {kind!r}")
    if kind != "h11":
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        except ImportError as exc:
            if kind == "httptools":
                raise ConfigError(
                    "http='httptools' needs the httptools package: pip install 'recforge[serve]'"
                ) from exc
        else:
            return HttpToolsProtocol
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


def _busy_app(retry_after_s: int, on_reject: Callable[[], None] | None) -> Any:
    body = json.dumps({"detail": "too many open connections, retry later"}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after_s).encode()),
        (b"connection", b"close"),
    ]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if on_reject is not None:
            on_reject()
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


_TOO_LARGE_BODY = json.dumps({"detail": "request head too large"}).encode()
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: "
    + str(len(_TOO_LARGE_BODY)).encode()
    + b"\r\nconnection: close\r\n\r\n"
    + _TOO_LARGE_BODY
)


def guarded_http_protocol(
    header_timeout_s: float,
    max_connections: int,
    retry_after_s: int = 1,
    on_reject: Callable[[str], None] | None = None,
    base: type[asyncio.Protocol] | None = None,
    max_header_bytes: int = 64 * 1024,
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with a header deadline and a connection cap, for
    ``uvicorn.run(..., http=...)``.

    Parameters
    ----------
    header_timeout_s
        Seconds a request head may take from its first byte (or from the connection's
        opening) to its last.
    max_connections
        Open connections beyond which new ones are answered 503 with ``Retry-After``.
    retry_after_s
        Value of the ``Retry-After`` header.
    on_reject
        Called with ``"header_timeout"``, ``"header_too_large"`` or ``"connections"`` for
        each refusal (metrics).
    base
        uvicorn protocol class to extend (default: :func:`http_protocol_base`); both of
        uvicorn's HTTP/1.1 protocols keep ``connections``, ``cycle``, ``app`` and ``loop``.
    max_header_bytes
        Largest request head; a larger one is answered 431 and the connection closed.
    """
    report: Callable[[str], None] = on_reject or (lambda reason: None)
    busy = _busy_app(retry_after_s, lambda: report("connections"))

    parent: Any = base or http_protocol_base()

    class GuardedHTTPProtocol(parent):  # type: ignore[misc,valid-type]
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self.app = busy  # answer this connection's request 503, then close
            self._arm_head_timer()

        def data_received(self, data: bytes) -> None:
            if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm_head_timer()  # the next request's head starts on a kept-alive connection
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:  # a whole request head was parsed
                self._disarm_head_timer()
            elif self._head_timer is not None:  # the head goes on: count what it took so far
                self._head_bytes += len(data)
                if self._head_bytes > max_header_bytes:
                    self._head_too_large()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

        def _head_too_large(self) -> None:
            self._disarm_head_timer()
            if not self.transport.is_closing():
                report("header_too_large")
                self.transport.write(_TOO_LARGE)
                self.transport.close()

        def _arm_head_timer(self) -> None:
            self._disarm_head_timer()
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_timed_out)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                report("header_timeout")
                self.transport.close()

    return GuardedHTTPProtocol
