"""Run the service on a loopback port in a background thread of this process.

The app is :func:`recforge.serving.app.create_app` behind the same uvicorn protocol that
``recforge serve`` uses (header deadline, connection cap), so requests take the real HTTP
path: socket, parser, middleware, routes. ``recforge replay`` and the client tests use it;
``recforge serve`` itself runs uvicorn in the main thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from recforge.exceptions import ConfigError
from recforge.serving.settings import ServiceSettings
from recforge.serving.store import EventStore

__all__ = ["serve_in_thread"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(
    settings: ServiceSettings, store: EventStore | None = None, *, timeout: float = 60.0
) -> Iterator[str]:
    """Serve ``settings`` on ``127.0.0.1`` (a free port unless ``settings.port`` is set).

    Parameters
    ----------
    settings
        Service settings; ``host`` must be a loopback address.
    store
        Event store (default: opened from ``settings.db``).
    timeout
        Seconds to wait for the server to accept connections.

    Yields
    ------
    str
        The base URL, e.g. ``"http://127.0.0.1:51234"``. The server stops on exit.

    Raises
    ------
    ConfigError
        When the host is not loopback or the server does not start in time.
    """
    import uvicorn

    from recforge.serving._protocol import guarded_http_protocol, http_protocol_base
    from recforge.serving.app import create_app

    port = _free_port() if "port" not in settings.model_fields_set else settings.port
    settings = settings.model_copy(update={"port": port})
    settings.check_bind()
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"serve_in_thread listens on loopback only, got {settings.host!r}")
    app = create_app(settings, store=store)
    rejected = app.state.recforge.metrics.rejected
    protocol = guarded_http_protocol(
        settings.header_timeout_s,
        settings.max_connections,
        settings.retry_after_s,
        on_reject=lambda reason: rejected.labels(reason).inc(),
        base=http_protocol_base(settings.http),
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        http=protocol,
        timeout_keep_alive=5,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="recforge-serve")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError(f"the service did not start on 127.0.0.1:{port} in {timeout:g} s")
        time.sleep(0.02)
    try:
        yield f"http://{settings.host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
