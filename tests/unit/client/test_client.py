"""recforge.client against a real service on a loopback port (uvicorn in a thread).

The retry tests put a recording transport between the client and the real server: it
forwards every request and, where a test asks, drops the server's answer after the server
has processed the request (a lost response), so idempotency is checked end to end.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recforge.client import AsyncClient, Client, Event, RetryPolicy, parse_retry_after
from recforge.exceptions import (
    ConfigError,
    ServiceAuthError,
    ServiceConnectionError,
    ServiceNotFoundError,
    ServiceRequestError,
    ServiceUnavailableError,
)
from recforge.registry import ModelRegistry
from recforge.serving._thread import serve_in_thread
from recforge.serving.settings import ServiceSettings
from recforge.serving.store import EventStore

_CONFTEST = Path(__file__).parents[1] / "serving" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_client_catalog", _CONFTEST)
assert _spec is not None
assert _spec.loader is not None
_catalog = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_catalog)

KEY = "client-write-key-0123456789"


class Recording(httpx.HTTPTransport):
    """A real HTTP transport that logs each exchange and can lose chosen answers."""

    def __init__(self, drop_answers: int = 0) -> None:
        super().__init__()
        self.drop_answers = drop_answers
        self.log: list[tuple[float, str, str, int | None, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        response = super().handle_request(request)
        response.read()
        entry = (time.monotonic(), request.method, request.url.path, response.status_code, body)
        if self.drop_answers > 0:
            self.drop_answers -= 1
            self.log.append((*entry[:3], None, body))
            raise httpx.ReadTimeout("answer lost", request=request)
        self.log.append(entry)
        return response


def _settings(tmp_path: Path, registry: Path, **kw: object) -> ServiceSettings:
    base: dict[str, object] = {
        "registry": registry,
        "db": f"sqlite:///{tmp_path / 'events.db'}",
        "write_keys": [KEY],
        "poll_interval_s": 0.05,
        "sync_interval_s": 0.05,
    }
    base.update(kw)
    return ServiceSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, EventStore]]:
    ds = _catalog.catalog_dataset()
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(_catalog.content_model(ds), metrics={"ndcg@10": 0.3}, promote=True)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    store.upsert_items({"1": {"title": "Movie 1 (Comedy)", "genres": "Comedy"}})
    with serve_in_thread(_settings(tmp_path, reg.root), store) as url:
        yield url, store


def test_reads_parse_into_typed_results(service: tuple[str, EventStore]) -> None:
    url, _ = service
    with Client(url) as rf:
        info = rf.model_info()
        assert info.version == "v000001"
        assert info.capabilities["history"] is True
        assert info.n_items == 24
        recs = rf.recommend("u0", k=5, details=True)
        assert recs.user == "u0"
        assert recs.model_version == "v000001"
        assert len(recs.ids) == 5
        assert [it.rank for it in recs.items] == [1, 2, 3, 4, 5]
        assert rf.recommend("u0", k=5, exclude=recs.ids[:2]).ids[:3] == recs.ids[2:5]
        required = rf.recommend("u0", k=3, require=["1", "2", "3", "4"], exclude_seen=False)
        assert set(required.ids) <= {"1", "2", "3", "4"}
        assert len(required.ids) == 3
        assert "unknown user" in rf.recommend("nobody").reason
        anon = rf.recommend_history(["1", "5"], k=4)
        assert anon.user is None
        assert len(anon.ids) == 4
        assert not {"1", "5"} & set(anon.ids)
        similar = rf.similar_items("1", k=3)
        assert similar.item == "1"
        assert len(similar.ids) == 3
        assert rf.get_item("1")["title"] == "Movie 1 (Comedy)"
        assert rf.search_items("comedy")[0]["id"] == "1"
        history = rf.user_history("u0")
        assert history.known
        assert len(history.ids) == 4
        assert rf.versions()[0]["version"] == "v000001"
        assert rf.ready()


def test_ids_with_reserved_characters_travel_as_one_path_segment(
    service: tuple[str, EventStore],
) -> None:
    url, _ = service
    with Client(url, api_key=KEY) as rf:
        user = "a/b?c#d e%"
        rf.send_event(user, "3", type="click")
        assert rf.user_history(user).ids == ["3"]
        assert "3" not in rf.recommend(user).ids


def test_errors_are_typed_and_name_the_request(service: tuple[str, EventStore]) -> None:
    url, _ = service
    with Client(url) as rf:
        with pytest.raises(ServiceAuthError, match=r"POST /events answered 401"):
            rf.send_event("u0", "1")
        with pytest.raises(ServiceNotFoundError, match="404") as nf:
            rf.similar_items("no-such-item")
        assert nf.value.status == 404
        with pytest.raises(ServiceRequestError, match="k") as bad:
            rf.recommend("u0", k=0)
        assert bad.value.status == 422
        assert isinstance(bad.value.detail, list)
    with Client(url, api_key="wrong-key") as rf, pytest.raises(ServiceAuthError):
        rf.put_items({"99": {"title": "x"}})


def test_events_single_and_batched_with_generated_ids(service: tuple[str, EventStore]) -> None:
    url, store = service
    with Client(url, api_key=KEY, batch_size=3) as rf:
        one = rf.send_event("u1", "2", type="purchase", value=2.0)
        assert one.accepted == 1
        assert len(one.event_ids) == 1
        assert len(one.event_ids[0]) == 32
        events = [Event("u2", str(i), "view") for i in range(1, 8)]
        events.append(Event("u2", "9", event_id="fixed-id"))
        result = rf.send_events(events)
        assert result.accepted == 8
        assert result.duplicates == 0
        assert len(set(result.event_ids)) == 8
        assert "fixed-id" in result.event_ids
        again = rf.send_events([{"user": "u2", "item": "9", "event_id": "fixed-id"}])
        assert (again.accepted, again.duplicates, again.duplicate_ids) == (0, 1, ("fixed-id",))
    frame = store.events_frame()
    assert len(frame) == 9
    assert sorted(frame["event_id"]) == sorted([*one.event_ids, *result.event_ids])


def test_lost_answer_is_retried_with_the_same_event_id(service: tuple[str, EventStore]) -> None:
    url, store = service
    transport = Recording(drop_answers=1)
    with Client(url, api_key=KEY, transport=transport, retry=RetryPolicy(2, 0.01)) as rf:
        result = rf.send_event("u3", "4")
    assert [(m, p, s) for _, m, p, s, _ in transport.log] == [
        ("POST", "/events", None),  # the server stored it; the answer was lost
        ("POST", "/events", 200),
    ]
    assert transport.log[0][4] == transport.log[1][4]  # the same body, the same event id
    assert (result.accepted, result.duplicates) == (0, 1)
    assert result.duplicate_ids == result.event_ids
    assert len(store.events_frame()) == 1  # stored once


def test_lost_batch_answer_reports_stored_events_as_duplicates(
    service: tuple[str, EventStore],
) -> None:
    url, store = service
    transport = Recording(drop_answers=1)
    with Client(url, api_key=KEY, transport=transport, retry=RetryPolicy(2, 0.01)) as rf:
        result = rf.send_events([Event("u4", str(i)) for i in range(1, 6)])
    assert (result.accepted, result.duplicates) == (0, 5)
    assert len(store.events_frame()) == 5


def test_503_with_retry_after_is_waited_out(tmp_path: Path) -> None:
    """No model yet: the real app answers 503 + Retry-After until one is promoted."""
    ds = _catalog.catalog_dataset()
    reg = ModelRegistry(tmp_path / "registry")
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    settings = _settings(tmp_path, reg.root, retry_after_s=1)
    with serve_in_thread(settings, store) as url:
        transport = Recording()
        # 1 s Retry-After, then the model is there: one or two 503s, then 200
        timer = threading.Timer(0.3, lambda: reg.publish(_catalog.content_model(ds), promote=True))
        timer.start()
        with Client(url, transport=transport, retry=RetryPolicy(5, 0.01, 5.0)) as rf:
            recs = rf.recommend("u0", k=3)
        timer.join()
        assert len(recs.ids) == 3
        statuses = [s for _, _, _, s, _ in transport.log]
        assert statuses[0] == 503
        assert statuses[-1] == 200
        assert set(statuses) == {200, 503}
        gaps = [b[0] - a[0] for a, b in zip(transport.log, transport.log[1:], strict=False)]
        assert min(gaps) >= 0.9  # Retry-After: 1 honoured, not the 0.01 s back-off

        with (
            Client(url, transport=Recording(), retry=RetryPolicy(1, 0.01, 0.05)) as rf,
            pytest.raises(ServiceNotFoundError),
        ):
            rf.similar_items("nope")  # 404 is final: never retried


def test_gives_up_with_unavailable_after_the_retries(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "registry")  # never gets a model
    with serve_in_thread(_settings(tmp_path, reg.root, retry_after_s=1)) as url:
        transport = Recording()
        retry = RetryPolicy(retries=2, backoff_s=0.01, max_backoff_s=0.05)
        with Client(url, transport=transport, retry=retry) as rf:
            with pytest.raises(ServiceUnavailableError, match="after 3 attempts") as exc:
                rf.recommend("u0")
            assert exc.value.status == 503
            assert "no model loaded" in str(exc.value.detail)
            assert not rf.ready()
        assert [(p, s) for _, _, p, s, _ in transport.log] == [("/recommendations/u0", 503)] * 3 + [
            ("/readyz", 503)
        ]
        log = transport.log[:3]
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(log)]
        assert max(gaps) < 0.5  # Retry-After capped by max_backoff_s


def test_no_server_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        with (
            Client(url, retry=RetryPolicy(1, 0.01), timeout=1.0) as rf,
            pytest.raises(ServiceConnectionError, match=r"no answer .* after 2 attempts"),
        ):
            rf.model_info()


def test_async_client_same_operations(service: tuple[str, EventStore]) -> None:
    url, store = service

    async def run() -> tuple[list[str], int, str]:
        async with AsyncClient(url, api_key=KEY) as rf:
            before = await rf.recommend("u5", k=4)
            sent = await rf.send_events([Event("u5", before.ids[0], "click")])
            after = await rf.recommend("u5", k=4)
            info = await rf.model_info()
            assert before.ids[0] not in after.ids
            assert "online fold-in" in after.reason
            return after.ids, sent.accepted, info.version

    ids, accepted, version = asyncio.run(run())
    assert len(ids) == 4
    assert accepted == 1
    assert version == "v000001"
    assert len(store.events_frame()) == 1


def test_retry_after_parsing_and_policy_validation() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert RetryPolicy(3, 0.1, 2.0).delay(0, "7") == 2.0
    assert 0.05 <= RetryPolicy(3, 0.1, 2.0).delay(0, None) <= 0.1
    with pytest.raises(ConfigError, match="retries"):
        RetryPolicy(retries=-1)
    with pytest.raises(ConfigError, match="batch_size"):
        Client("http://127.0.0.1:1", batch_size=0)
