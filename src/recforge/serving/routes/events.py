"""Event ingestion: acknowledged only after the events are committed."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError

from recforge.serving.deps import ServiceState, StateDep, WriteDep
from recforge.serving.schemas import EventBatchIn, EventIn, IngestOut
from recforge.serving.store import Event

router = APIRouter(tags=["events"])


def check_not_future(events: list[EventIn], limit: int, batch: bool) -> None:
    """422 naming the first event stamped after ``limit`` (now plus the allowed skew)."""
    for i, e in enumerate(events):
        if e.timestamp is not None and e.timestamp > limit:
            loc = ("body", "events", i, "timestamp") if batch else ("body", "timestamp")
            msg = f"timestamp {e.timestamp} is in the future (more than the allowed clock skew)"
            raise RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])


def ingest(state: ServiceState, events: list[EventIn], batch: bool = False) -> IngestOut:
    """Store events in one transaction, then update the online state."""
    if len(events) > state.settings.max_batch:
        raise HTTPException(
            422, detail=f"at most {state.settings.max_batch} events per request, got {len(events)}"
        )
    now = int(time.time())
    check_not_future(events, now + state.settings.max_future_skew_s, batch)
    result = state.store.add_events(
        [Event(e.event_id, e.user, e.item, e.type, e.value, e.timestamp or now) for e in events]
    )
    state.metrics.events.inc(len(result.accepted))
    state.metrics.duplicates.inc(len(result.duplicates))
    bundle = state.holder.current
    if bundle is not None and bundle.online is not None and result.accepted:
        bundle.online.sync(state.store)
    return IngestOut(
        accepted=len(result.accepted),
        duplicates=len(result.duplicates),
        duplicate_ids=result.duplicates[:1000],
    )


@router.post(
    "/events",
    response_model=IngestOut,
    dependencies=[WriteDep],
    summary="Record one event",
    responses={401: {"description": "missing or invalid key"}, 413: {"description": "too large"}},
)
def post_event(event: EventIn, state: StateDep) -> IngestOut:
    """Store one event; a repeated ``event_id`` is reported as a duplicate, not stored twice."""
    return ingest(state, [event])


@router.post(
    "/events/batch",
    response_model=IngestOut,
    dependencies=[WriteDep],
    summary="Record a batch of events",
    responses={401: {"description": "missing or invalid key"}, 413: {"description": "too large"}},
)
def post_events(batch: EventBatchIn, state: StateDep) -> IngestOut:
    """Store up to ``max_batch`` events in one transaction."""
    return ingest(state, batch.events, batch=True)
