"""Synchronous and asynchronous clients of the recforge REST service, on httpx.

Both clients build the same requests and parse the same answers (:class:`_Api`); they differ
only in how a request is sent and waited for. Every operation they offer is safe to repeat:
reads change nothing, ``PUT /items`` is an upsert, and events carry ids the service stores
once, so a request whose answer was lost (timeout, dropped connection, 503) is simply sent
again.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from recforge.client._types import (
    Event,
    IngestResult,
    ModelInfo,
    Recommendations,
    SimilarItems,
    UserHistory,
    new_event_id,
)
from recforge.exceptions import (
    ConfigError,
    ServiceAuthError,
    ServiceConnectionError,
    ServiceError,
    ServiceNotFoundError,
    ServiceRequestError,
    ServiceUnavailableError,
)

__all__ = ["AsyncClient", "Client", "RetryPolicy"]

T = TypeVar("T")

#: Answers that mean "busy or briefly unavailable, try again" (the service sends 503 with
#: ``Retry-After`` when shedding load or before a model is loaded).
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request that got no usable answer.

    Attributes
    ----------
    retries : int
        Further attempts after the first (0: never retry).
    backoff_s : float
        Base of the exponential back-off: attempt ``n`` waits ``backoff_s * 2**n`` seconds
        (times a random factor in ``[0.5, 1]``, so many clients do not retry in step) when the
        service gave no ``Retry-After``.
    max_backoff_s : float
        Longest single wait, ``Retry-After`` included.
    """

    retries: int = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 10.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if not self.backoff_s >= 0 or not self.max_backoff_s >= 0:
            raise ConfigError("backoff_s and max_backoff_s must be >= 0")

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``Retry-After`` wins when given)."""
        given = parse_retry_after(retry_after)
        if given is not None:
            return min(given, self.max_backoff_s)
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (delta seconds or an HTTP date), else ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds else None


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One API operation: the request to send and how to read a 2xx answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None


def _seg(value: str | int) -> str:
    """An id as one path segment (``/`` and every reserved character percent-encoded)."""
    return quote(str(value), safe="")


def _error(response: httpx.Response) -> ServiceError:
    try:
        detail: Any = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text[:500] or None
    status = response.status_code
    req = response.request
    text = detail if isinstance(detail, str) else _describe(detail)
    message = f"{req.method} {req.url.path} answered {status}" + (f": {text}" if text else "")
    cls: type[ServiceError] = ServiceError
    if status in (401, 403):
        cls = ServiceAuthError
    elif status == 404:
        cls = ServiceNotFoundError
    elif status in (400, 408, 413, 422):
        cls = ServiceRequestError
    elif status in RETRY_STATUSES:
        cls = ServiceUnavailableError
    return cls(message, status=status, detail=detail, method=req.method, url=str(req.url))


def _describe(detail: Any) -> str:
    if isinstance(detail, list):  # pydantic field errors: location and message
        parts = []
        for e in detail[:5]:
            if isinstance(e, Mapping):
                loc = ".".join(str(x) for x in e.get("loc", ()))
                parts.append(f"{loc}: {e.get('msg', '')}")
        return "; ".join(parts)
    return "" if detail is None else str(detail)


def _ingest_parser(ids: tuple[str, ...]) -> Callable[[Any], IngestResult]:
    def parse(doc: Any) -> IngestResult:
        return IngestResult.from_json(doc, ids)

    return parse


class _Api:
    """The requests of every operation (shared by the sync and async clients)."""

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    @staticmethod
    def recommend(
        user: str | int,
        k: int,
        exclude: Sequence[str | int],
        require: Sequence[str | int],
        exclude_seen: bool,
        details: bool,
        explain: bool,
        diversity: float,
    ) -> _Call[Recommendations]:
        params: dict[str, Any] = {"k": k}
        if exclude:
            params["exclude"] = [str(x) for x in exclude]
        if require:
            params["require"] = [str(x) for x in require]
        if not exclude_seen:
            params["exclude_seen"] = "false"
        if details:
            params["details"] = "true"
        if explain:
            params["explain"] = "true"
        if diversity:
            params["diversity"] = diversity
        return _Call(
            "GET", f"/recommendations/{_seg(user)}", Recommendations.from_json, params=params
        )

    @staticmethod
    def recommend_history(
        items: Sequence[str | int],
        values: Sequence[float] | None,
        k: int,
        exclude: Sequence[str | int],
        require: Sequence[str | int] | None,
        details: bool,
    ) -> _Call[Recommendations]:
        body: dict[str, Any] = {"items": [str(x) for x in items], "k": k}
        if values is not None:
            body["values"] = [float(v) for v in values]
        if exclude:
            body["exclude"] = [str(x) for x in exclude]
        if require is not None:
            body["require"] = [str(x) for x in require]
        params = {"details": "true"} if details else None
        return _Call("POST", "/recommendations", Recommendations.from_json, params, body)

    @staticmethod
    def similar_items(item: str | int, k: int, details: bool) -> _Call[SimilarItems]:
        params: dict[str, Any] = {"k": k}
        if details:
            params["details"] = "true"
        return _Call("GET", f"/items/{_seg(item)}/similar", SimilarItems.from_json, params)

    def event_batches(
        self, events: Iterable[Event | Mapping[str, Any]]
    ) -> list[_Call[IngestResult]]:
        """Requests of ``POST /events/batch``, ``batch_size`` events each, ids filled in."""
        calls: list[_Call[IngestResult]] = []
        bodies: list[dict[str, Any]] = []
        for e in events:
            ev = e if isinstance(e, Event) else Event(**e)
            bodies.append(ev.to_json(ev.event_id or new_event_id()))
        for start in range(0, len(bodies), self.batch_size):
            chunk = bodies[start : start + self.batch_size]
            ids = tuple(b["event_id"] for b in chunk)
            calls.append(
                _Call("POST", "/events/batch", _ingest_parser(ids), json={"events": chunk})
            )
        return calls

    @staticmethod
    def event(event: Event) -> _Call[IngestResult]:
        event_id = event.event_id or new_event_id()
        return _Call("POST", "/events", _ingest_parser((event_id,)), json=event.to_json(event_id))

    @staticmethod
    def put_items(items: Mapping[str | int, Mapping[str, Any]]) -> _Call[dict[str, Any]]:
        body = {"items": [{"id": str(i), "attributes": dict(a)} for i, a in items.items()]}
        return _Call("PUT", "/items", dict, json=body)

    @staticmethod
    def get_item(item: str | int) -> _Call[dict[str, Any]]:
        return _Call("GET", f"/items/{_seg(item)}", lambda d: dict(d["attributes"]))

    @staticmethod
    def search_items(q: str, limit: int) -> _Call[list[dict[str, Any]]]:
        return _Call("GET", "/items", list, {"q": q, "limit": limit})

    @staticmethod
    def user_history(user: str | int, limit: int) -> _Call[UserHistory]:
        return _Call("GET", f"/users/{_seg(user)}/history", UserHistory.from_json, {"limit": limit})

    @staticmethod
    def model_info() -> _Call[ModelInfo]:
        return _Call("GET", "/model", ModelInfo.from_json)

    @staticmethod
    def versions() -> _Call[list[dict[str, Any]]]:
        return _Call("GET", "/models", list)

    @staticmethod
    def ready() -> _Call[dict[str, Any]]:
        return _Call("GET", "/readyz", dict)


def _headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"user-agent": "recforge-client", "accept": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    headers.update(extra or {})
    return headers


def _timeout(timeout: float | httpx.Timeout) -> httpx.Timeout:
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


def _gave_up(call: _Call[Any], base: str, attempts: int, exc: Exception) -> ServiceError:
    if isinstance(exc, ServiceError):
        exc.args = (f"{exc.args[0]} (after {attempts} attempts)",)
        return exc
    return ServiceConnectionError(
        f"{call.method} {call.path}: no answer from {base} after {attempts} attempts: "
        f"{type(exc).__name__}: {exc}",
        method=call.method,
        url=base + call.path,
    )


def _retry_wait(
    call: _Call[Any],
    base: str,
    retry: RetryPolicy,
    attempt: int,
    failure: httpx.Response | httpx.TransportError,
) -> float:
    """Seconds to wait before retrying ``call`` after a failed (0-based) ``attempt``.

    Raises the :class:`ServiceError` instead when the answer is not retryable or no
    attempt is left. Shared by the request loops of :class:`Client` and :class:`AsyncClient`.
    """
    attempts = retry.retries + 1
    if isinstance(failure, httpx.TransportError):
        if attempt + 1 == attempts:
            raise _gave_up(call, base, attempts, failure) from failure
        return retry.delay(attempt, None)
    err = _error(failure)
    if failure.status_code not in RETRY_STATUSES:
        raise err
    if attempt + 1 == attempts:
        raise _gave_up(call, base, attempts, err)
    return retry.delay(attempt, failure.headers.get("retry-after"))


class Client:
    """Synchronous client of a recforge service.

    Parameters
    ----------
    base_url
        E.g. ``"http://127.0.0.1:8000"``.
    api_key
        Sent as ``X-API-Key``; needed for events and items when the service has keys.
    timeout
        Seconds (or an :class:`httpx.Timeout`) for connecting, sending and reading.
    retry
        Retry policy for answers in ``RETRY_STATUSES`` (429, 502, 503, 504, honouring
        ``Retry-After``) and for requests that got no answer (connection refused or reset,
        timeouts). Every operation is idempotent, so retrying never stores anything twice.
    batch_size
        Events per ``POST /events/batch`` request in :meth:`send_events` (at most the
        service's ``MAX_BATCH``).
    headers
        Extra headers of every request.
    transport
        An httpx transport (tests; e.g. ``httpx.MockTransport``).

    Raises
    ------
    ServiceError
        From every operation: :class:`~recforge.exceptions.ServiceAuthError` (401/403),
        :class:`~recforge.exceptions.ServiceNotFoundError` (404),
        :class:`~recforge.exceptions.ServiceRequestError` (400/408/413/422),
        :class:`~recforge.exceptions.ServiceUnavailableError` (still busy after the retries),
        :class:`~recforge.exceptions.ServiceConnectionError` (no answer after the retries).

    Examples
    --------
    >>> from recforge.client import Client
    >>> with Client("http://127.0.0.1:8000", api_key="...") as rf:  # doctest: +SKIP
    ...     recs = rf.recommend("42", k=5)
    ...     rf.send_event("42", recs.ids[0], type="click")
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 5.0,
        retry: RetryPolicy | None = None,
        batch_size: int = 1000,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._api = _Api(batch_size)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_headers(api_key, headers),
            timeout=_timeout(timeout),
            transport=transport,
        )
        self._sleep: Callable[[float], None] = time.sleep

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _run(self, call: _Call[T]) -> T:
        for attempt in range(self.retry.retries + 1):
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, json=call.json
                )
            except httpx.TransportError as exc:
                self._sleep(_retry_wait(call, self.base_url, self.retry, attempt, exc))
                continue
            if response.is_success:
                return call.parse(response.json())
            self._sleep(_retry_wait(call, self.base_url, self.retry, attempt, response))
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ reads
    def recommend(
        self,
        user: str | int,
        k: int = 10,
        *,
        exclude: Sequence[str | int] = (),
        require: Sequence[str | int] = (),
        exclude_seen: bool = True,
        details: bool = False,
        explain: bool = False,
        diversity: float = 0.0,
    ) -> Recommendations:
        """Top-``k`` items for a user (``GET /recommendations/{user}``).

        Parameters
        ----------
        user
            External user id; unknown users get popular items (``reason`` says so).
        k
            List length (1..the service's ``MAX_K``).
        exclude, require
            Items never to recommend / the only items that may be recommended.
        exclude_seen
            Leave out the user's training items and events.
        details, explain
            Include stored attributes / the evidence behind each item.
        diversity
            In ``[0, 1]``: MMR re-ranking strength (0 keeps the model's order).
        """
        return self._run(
            self._api.recommend(
                user, k, exclude, require, exclude_seen, details, explain, diversity
            )
        )

    def recommend_history(
        self,
        items: Sequence[str | int],
        values: Sequence[float] | None = None,
        k: int = 10,
        *,
        exclude: Sequence[str | int] = (),
        require: Sequence[str | int] | None = None,
        details: bool = False,
    ) -> Recommendations:
        """Top-``k`` items for an anonymous history (``POST /recommendations``; nothing stored)."""
        return self._run(self._api.recommend_history(items, values, k, exclude, require, details))

    def similar_items(self, item: str | int, k: int = 10, *, details: bool = False) -> SimilarItems:
        """Items similar to ``item`` (``GET /items/{item}/similar``)."""
        return self._run(self._api.similar_items(item, k, details))

    def get_item(self, item: str | int) -> dict[str, Any]:
        """Stored attributes of an item (``GET /items/{item}``)."""
        return self._run(self._api.get_item(item))

    def search_items(self, q: str = "", limit: int = 20) -> list[dict[str, Any]]:
        """Items whose id or attributes contain ``q`` (``GET /items?q=``)."""
        return self._run(self._api.search_items(q, limit))

    def user_history(self, user: str | int, limit: int = 50) -> UserHistory:
        """A user's events since training, newest first, then their training items."""
        return self._run(self._api.user_history(user, limit))

    def model_info(self) -> ModelInfo:
        """The model being served (``GET /model``)."""
        return self._run(self._api.model_info())

    def versions(self) -> list[dict[str, Any]]:
        """Registry versions, newest first (``GET /models``)."""
        return self._run(self._api.versions())

    def ready(self) -> bool:
        """Whether the service is ready (``GET /readyz`` answered 200), without retrying."""
        try:
            response = self._http.get("/readyz")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    # ------------------------------------------------------------------ writes
    def send_event(
        self,
        user: str | int,
        item: str | int,
        *,
        type: str = "view",
        value: float = 1.0,
        timestamp: int | None = None,
        event_id: str | None = None,
    ) -> IngestResult:
        """Record one event (``POST /events``); retried safely under its event id."""
        event = Event(user, item, type, value, timestamp, event_id)  # type: ignore[arg-type]
        return self._run(self._api.event(event))

    def send_events(self, events: Iterable[Event | Mapping[str, Any]]) -> IngestResult:
        """Record events in batches of ``batch_size`` (``POST /events/batch``).

        Each batch is one transaction; a batch retried after a lost answer reports the events
        the first attempt stored as duplicates. Mappings take :class:`Event`'s field names.
        """
        total = IngestResult(0, 0)
        for call in self._api.event_batches(events):
            total = total + self._run(call)
        return total

    def put_items(self, items: Mapping[str | int, Mapping[str, Any]]) -> dict[str, Any]:
        """Add or update item attributes (``PUT /items``): ``{item_id: {name: value}}``."""
        return self._run(self._api.put_items(items))


class AsyncClient:
    """Asynchronous client of a recforge service; the same operations as :class:`Client`.

    Parameters are those of :class:`Client` (``transport`` is an async httpx transport,
    e.g. ``httpx.ASGITransport(app)`` to call an app in-process).

    Examples
    --------
    >>> async with AsyncClient("http://127.0.0.1:8000") as rf:  # doctest: +SKIP
    ...     recs = await rf.recommend("42")
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 5.0,
        retry: RetryPolicy | None = None,
        batch_size: int = 1000,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._api = _Api(batch_size)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_headers(api_key, headers),
            timeout=_timeout(timeout),
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _run(self, call: _Call[T]) -> T:
        for attempt in range(self.retry.retries + 1):
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json
                )
            except httpx.TransportError as exc:
                await asyncio.sleep(_retry_wait(call, self.base_url, self.retry, attempt, exc))
                continue
            if response.is_success:
                return call.parse(response.json())
            await asyncio.sleep(_retry_wait(call, self.base_url, self.retry, attempt, response))
        raise AssertionError("unreachable")  # pragma: no cover

    async def recommend(
        self,
        user: str | int,
        k: int = 10,
        *,
        exclude: Sequence[str | int] = (),
        require: Sequence[str | int] = (),
        exclude_seen: bool = True,
        details: bool = False,
        explain: bool = False,
        diversity: float = 0.0,
    ) -> Recommendations:
        """Top-``k`` items for a user (see :meth:`Client.recommend`)."""
        return await self._run(
            self._api.recommend(
                user, k, exclude, require, exclude_seen, details, explain, diversity
            )
        )

    async def recommend_history(
        self,
        items: Sequence[str | int],
        values: Sequence[float] | None = None,
        k: int = 10,
        *,
        exclude: Sequence[str | int] = (),
        require: Sequence[str | int] | None = None,
        details: bool = False,
    ) -> Recommendations:
        """Top-``k`` items for an anonymous history (see :meth:`Client.recommend_history`)."""
        return await self._run(
            self._api.recommend_history(items, values, k, exclude, require, details)
        )

    async def similar_items(
        self, item: str | int, k: int = 10, *, details: bool = False
    ) -> SimilarItems:
        """Items similar to ``item``."""
        return await self._run(self._api.similar_items(item, k, details))

    async def get_item(self, item: str | int) -> dict[str, Any]:
        """Stored attributes of an item."""
        return await self._run(self._api.get_item(item))

    async def search_items(self, q: str = "", limit: int = 20) -> list[dict[str, Any]]:
        """Items whose id or attributes contain ``q``."""
        return await self._run(self._api.search_items(q, limit))

    async def user_history(self, user: str | int, limit: int = 50) -> UserHistory:
        """A user's events since training, then their training items."""
        return await self._run(self._api.user_history(user, limit))

    async def model_info(self) -> ModelInfo:
        """The model being served."""
        return await self._run(self._api.model_info())

    async def versions(self) -> list[dict[str, Any]]:
        """Registry versions, newest first."""
        return await self._run(self._api.versions())

    async def ready(self) -> bool:
        """Whether ``GET /readyz`` answers 200 (no retries)."""
        try:
            response = await self._http.get("/readyz")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    async def send_event(
        self,
        user: str | int,
        item: str | int,
        *,
        type: str = "view",
        value: float = 1.0,
        timestamp: int | None = None,
        event_id: str | None = None,
    ) -> IngestResult:
        """Record one event; retried safely under its event id."""
        event = Event(user, item, type, value, timestamp, event_id)  # type: ignore[arg-type]
        return await self._run(self._api.event(event))

    async def send_events(self, events: Iterable[Event | Mapping[str, Any]]) -> IngestResult:
        """Record events in batches of ``batch_size`` (see :meth:`Client.send_events`)."""
        total = IngestResult(0, 0)
        for call in self._api.event_batches(events):
            total = total + await self._run(call)
        return total

    async def put_items(self, items: Mapping[str | int, Mapping[str, Any]]) -> dict[str, Any]:
        """Add or update item attributes."""
        return await self._run(self._api.put_items(items))
