"""The FastAPI application: lifespan, admission control, body limit, metrics, hot swap.

Build it with :func:`create_app` (tests use ``fastapi.testclient.TestClient``) or run it with
:func:`serve` (``recforge serve``). See ``docs/deployment.md`` for configuration.

Hot swap
--------
A background thread polls the registry's ``active`` pointer. A new version is loaded, verified
(checksums, format, shapes), warmed with test requests and given its own online state rebuilt
from the store; only then is the single bundle reference replaced. A version that fails any step
is rejected (counted in ``recforge_model_load_failures_total``, shown in ``/model`` and
``/readyz``) and the old model keeps serving. A rejected version is tried again as soon as its
files change (a repaired or re-copied version), and otherwise after an exponential back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from recforge.exceptions import ConfigError, ModelFormatError, RecforgeError
from recforge.registry import ModelRegistry
from recforge.serving._admission import Admission
from recforge.serving.deps import ServiceState, presented_key
from recforge.serving.online import (
    EventValues,
    OnlineState,
    ServingModel,
    warm_up,
    with_stored_items,
)
from recforge.serving.settings import ServiceSettings
from recforge.serving.store import Cursor, EventStore

if TYPE_CHECKING:
    from recforge.serving._workers import PeerWrites

__all__ = [
    "MAX_RETRY_BACKOFF_S",
    "LoadFailure",
    "check_for_new_version",
    "create_app",
    "document_limits",
    "load_bundle",
    "serve",
    "single_blas_thread",
    "uvicorn_config",
]

log = logging.getLogger("recforge.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_EXEMPT = {"/healthz", "/readyz"}
_WRITES = ("POST", "PUT", "PATCH", "DELETE")
_READ_CHUNK = 256 * 1024  # most bytes asyncio hands a protocol at once
WEB_DIR = Path(__file__).parent / "web"


# --------------------------------------------------------------------------- middleware
class GuardMiddleware:
    """Origin checks, body reading, admission control and latency metrics in one ASGI layer.

    In order, for each HTTP request:

    * In no-key mode (loopback only, see :attr:`ServiceState.auth_required`) a request naming
      another ``Host`` gets 400 (DNS rebinding) and a write from another ``Origin`` gets 403
      (a cross-site page cannot post events, promote or roll back).
    * The body is read *before* the request takes a slot, within ``body_timeout_s`` (else
      408) and ``max_body_bytes`` (else 413, checked on ``Content-Length`` and while
      reading). Bodies of requests without a valid key share a pool of
      ``max_anonymous_bodies`` (beyond it: 503 with ``Retry-After``), so slow clients hold
      neither the slots nor the keyed clients' bodies.
    * At most ``max_concurrency`` requests are handled at once; up to ``max_queue`` more wait
      at most ``queue_timeout_s`` for a slot (newest first, see :class:`Admission`), and the
      rest get 503 with ``Retry-After`` at once (nothing queues without bound). Health checks
      are exempt.
    * With several workers (``peers``), an acknowledged write of events or items is counted
      before its answer is sent, and a request that finds another worker's count ahead first
      reads the store (events into the online state, items into the model), so it sees every
      write acknowledged before it arrived, whichever worker took it.
    """

    def __init__(self, app: ASGIApp, state: ServiceState, peers: PeerWrites | None = None) -> None:
        self.app = app
        self.state = state
        self.peers = peers
        self.caught_up: tuple[int, ...] = (0, 0)
        """Totals of the workers' write counts (events, items) this worker has read after."""
        self._catching_up: asyncio.Lock | None = None
        s = state.settings
        self.admission = Admission(s.max_concurrency, s.max_queue, s.queue_timeout_s)
        self.anonymous_bodies = 0
        """Bodies of requests without a valid key being read now."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st = self.state
        st.metrics.in_flight.inc()
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                if self.peers is not None:
                    kind = _shared_write(scope, status["code"])
                    if kind is not None:
                        self.peers.wrote(kind)  # before the client can ask another worker
            await send(message)

        try:
            await self._guarded(scope, receive, send_wrapper)
        finally:
            endpoint = scope.get("endpoint")
            route = getattr(endpoint, "__name__", "unmatched") if endpoint else "unmatched"
            st.metrics.latency.labels(route, scope.get("method", ""), str(status["code"])).observe(
                time.perf_counter() - start
            )
            st.metrics.in_flight.dec()

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self.state
        refusal = origin_refusal(st, scope)
        if refusal is not None:
            st.metrics.rejected.labels("origin").inc()
            await _send_json(send, refusal[0], {"detail": refusal[1]})
            return
        replay = await self._body(scope, receive, send)
        if replay is None:
            return
        exempt = scope.get("path", "") in _EXEMPT
        if not exempt and not await self.admission.acquire():
            await self._busy(send, "overload")
            return
        try:
            if self.peers is not None and not exempt:
                await self._catch_up()
            await self.app(scope, replay, send)
        finally:
            if not exempt:
                self.admission.release()

    async def _catch_up(self) -> None:
        """Read the store when another worker acknowledged writes since the last read."""
        assert self.peers is not None
        totals = self.peers.totals()
        if all(t <= d for t, d in zip(totals, self.caught_up, strict=True)):
            return
        if self._catching_up is None:
            self._catching_up = asyncio.Lock()
        async with self._catching_up:  # one read of the store for every waiting request
            done = self.caught_up
            events, items = (t > d for t, d in zip(totals, done, strict=True))
            if not (events or items):
                return
            import anyio.to_thread

            await anyio.to_thread.run_sync(catch_up_with_store, self.state, events, items)
            self.caught_up = tuple(max(t, d) for t, d in zip(totals, done, strict=True))

    async def _busy(self, send: Send, reason: str) -> None:
        self.state.metrics.rejected.labels(reason).inc()
        retry = str(self.state.settings.retry_after_s).encode()
        await _send_json(
            send, 503, {"detail": "server busy, retry later"}, [(b"retry-after", retry)]
        )

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """``receive`` replaying the whole body, or ``None`` when the request was answered."""
        st = self.state
        limit = st.settings.max_body_bytes
        length = _header(scope, b"content-length")
        if length is not None and (
            _CONTENT_LENGTH.fullmatch(length) is None or int(length) > limit
        ):
            await self._too_large(send)
            return None
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return receive
        keyed = st.scope_of(presented_key(Headers(scope=scope))) is not None
        if keyed:
            body = await self._read(receive, send)
        elif self.anonymous_bodies >= st.settings.max_anonymous_bodies:
            await self._busy(send, "anonymous_bodies")
            return None
        else:
            self.anonymous_bodies += 1
            try:
                body = await self._read(receive, send)
            finally:
                self.anonymous_bodies -= 1
        return None if body is None else _replay(body, receive)

    async def _read(self, receive: Receive, send: Send) -> bytes | None:
        """The body, read within the deadline and the size limit (else answered, ``None``)."""
        s = self.state.settings
        try:
            body, too_large = await asyncio.wait_for(
                _read_body(receive, s.max_body_bytes), s.body_timeout_s
            )
        except TimeoutError:
            self.state.metrics.rejected.labels("body_timeout").inc()
            detail = f"request body not received within {s.body_timeout_s:g} s"
            await _send_json(send, 408, {"detail": detail}, [(b"connection", b"close")])
            return None
        if too_large:
            await self._too_large(send)
            return None
        return body

    async def _too_large(self, send: Send) -> None:
        self.state.metrics.rejected.labels("body_too_large").inc()
        limit = self.state.settings.max_body_bytes
        await _send_json(send, 413, {"detail": f"request body exceeds {limit} bytes"})


def _shared_write(scope: Scope, status: int) -> int | None:
    """Index in ``WRITE_KINDS`` of an acknowledged write other workers must read back."""
    from recforge.serving._workers import WRITE_KINDS

    if scope.get("method") not in _WRITES or status >= 300:
        return None
    path = str(scope.get("path", ""))
    for kind, prefix in enumerate(WRITE_KINDS):
        if path == prefix or path.startswith(prefix + "/"):
            return kind
    return None


def catch_up_with_store(state: ServiceState, events: bool = True, items: bool = True) -> None:
    """Apply what other processes stored: new ``events`` to the online state, new or updated
    ``items`` to the served model (a new bundle, published under the holder's lock)."""
    bundle = state.holder.current
    if bundle is None:
        return
    if events and bundle.online is not None:
        bundle.online.sync(state.store)
    if items and bundle.model.supports_new_items:
        with state.holder.lock:
            current = state.holder.current
            if current is None:
                return
            new = _stored_items(state, current, current.items_mark)
            if new is not current:
                state.holder._current = new  # under the holder's lock, as PUT /items


_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _host_name(authority: str) -> str:
    """The host name of ``host[:port]`` (``[v6]:port`` included), lower-cased."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def origin_refusal(state: ServiceState, scope: Scope) -> tuple[int, str] | None:
    """``(status, reason)`` refusing a request in no-key mode, or ``None`` to let it pass.

    Without keys anyone who can reach the port may write, which loopback binding restricts to
    local processes; a web page in a local browser could still reach it. So a request must
    name a local ``Host`` (or one of ``allowed_hosts``): 400 otherwise, against DNS
    rebinding; and a write (any method but GET, HEAD, OPTIONS) that carries an ``Origin``
    must come from such a host too: 403 otherwise (``Origin: null`` included).
    """
    if state.auth_required:
        return None
    allowed = _LOCAL_HOSTS | {h.lower() for h in state.settings.allowed_hosts}
    headers = Headers(scope=scope)
    host = headers.get("host")
    if host is not None and _host_name(host) not in allowed:
        return 400, (
            f"unexpected Host header {host[:100]!r}: without API keys the service only answers "
            "requests addressed to localhost (see allowed_hosts)"
        )
    if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return None
    origin = headers.get("origin")
    if origin is None:
        return None
    parsed = urlsplit(origin) if "://" in origin else None
    if parsed is None or (parsed.hostname or "") not in allowed:
        return 403, (
            f"cross-origin write refused: Origin {origin[:100]!r} is not local, and the "
            "service runs without API keys"
        )
    return None


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """Read the whole body (at most ``limit`` bytes); ``(body, too_large)``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = {"done": False}

    async def replay() -> Message:
        if not sent["done"]:
            sent["done"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return str(v.decode("latin-1"))
    return None


async def _send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


# --------------------------------------------------------------------------- model loading
def load_bundle(state: ServiceState, version: str | None = None) -> ServingModel:
    """Load, verify and warm a model with a fresh online state; does not publish it.

    Parameters
    ----------
    state
        Service state (settings, registry, store).
    version
        Registry version; ``None`` loads the active one (or ``model_dir``).

    Raises
    ------
    ModelFormatError, ConfigError
        When the model cannot be loaded or fails warm-up.
    """
    from recforge.models._io import load_model, read_metadata

    s = state.settings
    if state.registry is not None:
        if version is None:
            version = state.registry.active_version()
            if version is None:
                raise ConfigError(
                    f"registry {state.registry.root} has no active model; promote a version"
                )
        model, info = state.registry.load(version, mapped=s.mapped_arrays)
        meta = info.to_dict()
        name = info.version
    elif s.model_dir is not None:
        model = load_model(s.model_dir, mapped=s.mapped_arrays)
        doc = read_metadata(s.model_dir)
        reg = (doc.get("metadata") or {}).get("registry") or {}
        meta = {
            "model": doc.get("model"),
            "metrics": reg.get("metrics", {}),
            "extra": reg.get("extra", {}),
        }
        name = str(reg.get("version") or "local")
    else:
        raise ConfigError("set registry or model_dir to serve a model")
    cursor = Cursor.from_dict(meta.get("extra") or {})
    online = OnlineState(
        cursor,
        s.online_history,
        s.online_users,
        items=model.items_,
        max_events=s.online_events,
        store=state.store,
        values=EventValues.of(model),
    )
    online.sync(state.store)
    bundle = ServingModel(model, name, meta, cursor.seq or cursor.floor, time.time(), online)
    bundle = _stored_items(state, bundle, None)
    warm_up(bundle)
    return bundle


def _stored_items(state: ServiceState, bundle: ServingModel, since: int | None) -> ServingModel:
    """``bundle`` with the items added through ``PUT /items`` (see ``with_stored_items``)."""
    bundle, _, problems = with_stored_items(bundle, state.store, since)
    for problem in problems:
        log.warning("stored item not applied to version %s: %s", bundle.version, problem)
    return bundle


def _publish(state: ServiceState, bundle: ServingModel) -> None:
    # items written while the bundle was loading are applied under the holder's lock, which
    # PUT /items holds too: none is lost between the load and the swap
    bundle = state.holder.swap(bundle, lambda b: _stored_items(state, b, b.items_mark))
    state.holder.last_load_error = None
    state.metrics.set_model(bundle)


@dataclass
class LoadFailure:
    """A version that failed to load: when to try it again.

    Attributes
    ----------
    stamp : str
        The version's file stamp (:meth:`ModelRegistry.stamp`) when it failed; a different
        stamp (the files were repaired or replaced) is retried at the next poll.
    attempts : int
        Consecutive failures with this stamp.
    retry_at : float
        ``time.monotonic()`` after which the same files are tried again (exponential back-off
        from ``poll_interval_s`` up to :data:`MAX_RETRY_BACKOFF_S`, for transient errors).
    error : str
        The last error.
    """

    stamp: str
    attempts: int
    retry_at: float
    error: str


MAX_RETRY_BACKOFF_S = 300.0
"""Longest wait before an unchanged version that failed to load is tried again."""


def check_for_new_version(state: ServiceState, failed: dict[str, LoadFailure]) -> bool:
    """Swap to the registry's active version if it changed; returns whether it swapped.

    A version that fails to load is not tried on every poll: it is retried as soon as its
    files change (repaired or republished), and otherwise after an exponential back-off.
    """
    if state.registry is None:
        return False
    try:
        active = state.registry.active_version()
    except ModelFormatError as exc:
        state.holder.last_load_error = str(exc)
        return False
    current = state.holder.current
    if active is None or (current is not None and current.version == active):
        return False
    try:
        stamp = state.registry.stamp(active)
    except ModelFormatError as exc:
        state.holder.last_load_error = f"version {active} rejected: {exc}"
        return False
    previous = failed.get(active)
    if previous is not None and previous.stamp == stamp and time.monotonic() < previous.retry_at:
        return False
    try:
        bundle = load_bundle(state, active)
    except (RecforgeError, OSError) as exc:
        attempts = previous.attempts + 1 if previous is not None and previous.stamp == stamp else 1
        backoff = min(MAX_RETRY_BACKOFF_S, state.settings.poll_interval_s * 2.0**attempts)
        failed[active] = LoadFailure(stamp, attempts, time.monotonic() + backoff, str(exc))
        state.holder.last_load_error = f"version {active} rejected: {exc}"
        if attempts == 1:  # the same files failing again are not another rejected version
            state.metrics.load_failures.inc()
            log.error("model version %s rejected; keeping %s", active, current and current.version)
        return False
    failed.pop(active, None)
    _publish(state, bundle)
    state.metrics.swaps.inc()
    log.info("now serving model version %s", bundle.version)
    return True


def _background(state: ServiceState) -> None:
    failed: dict[str, LoadFailure] = {}
    s = state.settings
    next_poll = 0.0
    next_keys = 0.0
    while not state.stop.is_set():
        now = time.monotonic()
        try:
            bundle = state.holder.current
            if bundle is not None and bundle.online is not None:
                bundle.online.sync(state.store)
            if now >= next_poll:
                next_poll = now + s.poll_interval_s
                check_for_new_version(state, failed)
            if now >= next_keys:
                next_keys = now + 10.0
                state.load_keys()
        except Exception:  # keep the loop alive; the error is logged and retried
            log.exception("background refresh failed")
        state.stop.wait(min(s.sync_interval_s, s.poll_interval_s))


# --------------------------------------------------------------------------- app
def create_app(
    settings: ServiceSettings | None = None,
    *,
    store: EventStore | None = None,
    background: bool = True,
    peers: PeerWrites | None = None,
) -> Any:
    """Build the FastAPI app.

    The steps are named functions: the service state (:func:`_make_state`), the lifespan
    that loads the model and starts the background thread, the error answers, the routes
    (after the ``id`` path converter is registered) and the OpenAPI document with the
    configured limits. Every setting lives on the app's state; nothing is kept in modules.

    Parameters
    ----------
    settings
        Service settings (default: from ``RECFORGE_*`` environment variables).
    store
        Event store to use (default: opened from ``settings.db``).
    background
        Start the thread that syncs other replicas' events and polls the registry.
    peers
        The write counters shared with the other workers of a multi-worker service (see
        :mod:`recforge.serving._workers`); ``None`` for one process.

    Returns
    -------
    fastapi.FastAPI
    """
    from fastapi import FastAPI

    state = _make_state(settings or ServiceSettings(), store)
    app = FastAPI(
        title="recforge",
        version=_version(),
        summary="Recommendations, events and model management",
        lifespan=_lifespan(state, background),
    )
    app.state.recforge = state
    _add_error_answers(app, state)
    _add_routes(app, state.settings)
    app.add_middleware(GuardMiddleware, state=state, peers=peers)  # type: ignore[arg-type]
    _document(app, state.settings)
    return app


def _make_state(settings: ServiceSettings, store: EventStore | None) -> ServiceState:
    store = store or EventStore(
        settings.db, table_prefix=settings.table_prefix, busy_timeout_s=settings.db_timeout_s
    )
    registry = ModelRegistry(settings.registry) if settings.registry is not None else None
    state = ServiceState(settings=settings, store=store, registry=registry)
    state.load_keys()
    return state


def _lifespan(state: ServiceState, background: bool) -> Callable[[Any], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            _publish(state, load_bundle(state))
        except (RecforgeError, OSError) as exc:
            state.holder.last_load_error = str(exc)
            log.error("no model loaded at startup: %s", exc)
        if background:
            t = threading.Thread(target=_background, args=(state,), daemon=True, name="recforge-bg")
            t.start()
            state.threads.append(t)
        yield
        state.stop.set()
        for t in state.threads:
            t.join(timeout=5)

    return lifespan


def _add_error_answers(app: Any, state: ServiceState) -> None:
    """Exception handlers: unknown ids 404, unsupported 501, invalid input 422, a database
    that cannot commit now 503 with ``Retry-After``."""
    import sqlalchemy as sa
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from recforge.exceptions import UnknownIdError, UnsupportedCapabilityError

    @app.exception_handler(UnknownIdError)
    async def _unknown(request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=404)

    @app.exception_handler(UnsupportedCapabilityError)
    async def _unsupported(request: Request, exc: UnsupportedCapabilityError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=501)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # echo location and message only: inputs may be non-finite or sensitive
        errors = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        state.metrics.rejected.labels("database").inc()
        return JSONResponse(
            {"detail": "the database cannot commit now (locked, full or unreachable); retry"},
            status_code=503,
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )

    app.add_exception_handler(sa.exc.OperationalError, _database)
    app.add_exception_handler(sa.exc.TimeoutError, _database)  # no pooled connection in time


def _add_routes(app: Any, settings: ServiceSettings) -> None:
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    from recforge.serving._paths import register_id_convertor

    register_id_convertor()  # before the route modules compile their paths
    from recforge.serving.routes import events, items, models, ops, recommend, users

    for module in (recommend, events, items, users, models, ops):
        app.include_router(module.router)
    if settings.web and WEB_DIR.is_dir():
        app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html", media_type="text/html")


def _document(app: Any, settings: ServiceSettings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            app.openapi_schema = document_limits(doc, settings)
        return app.openapi_schema  # type: ignore[no-any-return]

    app.openapi = openapi


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
            ]
        }
    },
    "required": ["detail"],
}


def document_limits(doc: dict[str, Any], settings: ServiceSettings) -> dict[str, Any]:
    """Write the configured limits and the middleware's answers into the OpenAPI document.

    ``k`` gets ``maximum: max_k``, a batch ``maxItems: max_batch``; every guarded operation
    documents 503 (busy or no model yet, with ``Retry-After``), every body-carrying one 400
    (malformed JSON) and 413, and 422 bodies are either pydantic's error list or one message.
    The limits are settings, so they are filled in per app rather than fixed in the schemas.
    """
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if param.get("name") == "k" and param.get("in") == "query":
                    param.setdefault("schema", {})["maximum"] = settings.max_k
            responses = op.setdefault("responses", {})
            if "422" in responses or op.get("parameters") or "requestBody" in op:
                # pydantic's error list, or one message for checks across fields (k, values)
                responses["422"] = {
                    "description": "invalid input: a list of field errors or one message",
                    "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                }
            if path not in _EXEMPT:
                responses.setdefault(
                    "503", {"description": "busy or no model loaded yet (see Retry-After)"}
                )
            if "requestBody" in op:
                responses.setdefault("400", {"description": "body is not valid JSON"})
            if method in ("post", "put", "patch"):
                responses.setdefault(
                    "413", {"description": f"body larger than {settings.max_body_bytes} bytes"}
                )
    schemas = doc.get("components", {}).get("schemas", {})
    hist_k = schemas.get("HistoryIn", {}).get("properties", {}).get("k")
    if hist_k is not None:
        hist_k["maximum"] = settings.max_k
    events = schemas.get("EventBatchIn", {}).get("properties", {}).get("events")
    if events is not None:
        events["maxItems"] = settings.max_batch
    return doc


def _version() -> str:
    from recforge import __version__

    return str(__version__)


def single_blas_thread() -> None:
    """One BLAS thread per serving process: requests are small, and threads oversubscribe."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return
    threadpool_limits(1, user_api="blas")


def uvicorn_config(app: Any, settings: ServiceSettings, log_level: str) -> Any:
    """The ``uvicorn.Config`` of the service: the guarded protocol (header deadline, head
    size, connection cap) with refusals counted in the app's metrics."""
    import uvicorn

    from recforge.serving._protocol import guarded_http_protocol, http_protocol_base

    rejected = app.state.recforge.metrics.rejected
    protocol = guarded_http_protocol(
        settings.header_timeout_s,
        settings.max_connections,
        settings.retry_after_s,
        max_header_bytes=settings.max_header_bytes,
        on_reject=lambda reason: rejected.labels(reason).inc(),
        base=http_protocol_base(settings.http),
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        http=protocol,
        timeout_keep_alive=5,
        access_log=False,
        # h11 refuses an incomplete head beyond its own limit (400): above the guard's, so
        # every parser answers an oversized head the same way (431)
        h11_max_incomplete_event_size=settings.max_header_bytes + _READ_CHUNK,
    )


def serve(settings: ServiceSettings, *, log_level: str = "info") -> int:
    """Run the service with uvicorn (refuses non-loopback hosts when no key exists).

    With ``settings.workers`` above 1, a supervisor runs that many worker processes behind
    the port (:func:`recforge.serving._workers.supervise`).

    Returns
    -------
    int
        Exit status (0 after a normal shutdown).

    Raises
    ------
    ConfigError
        When listening beyond localhost without any API key.
    """
    import uvicorn

    if settings.workers > 1:
        from recforge.serving._workers import supervise

        return supervise(settings, settings.workers, log_level=log_level)
    single_blas_thread()
    store = EventStore(
        settings.db, table_prefix=settings.table_prefix, busy_timeout_s=settings.db_timeout_s
    )
    settings.check_bind(store_has_keys=bool(store.api_key_scopes()))
    app = create_app(settings, store=store)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level))
    server.run()
    return 0 if server.started else 3  # uvicorn's status for a failed start-up
