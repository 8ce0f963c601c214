"""Request and response models of the REST API (validated, documented in OpenAPI).

Limits (documented answers): ids are 1-256 printable characters (422 otherwise); ``k`` is
1..``max_k`` (422); a batch holds 1..``max_batch`` events (422); bodies larger than the
configured limit get 413; non-finite numbers (NaN, Infinity) and timestamps too far in the
future get 422.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

__all__ = [
    "Id",
    "EventIn",
    "EventBatchIn",
    "IngestOut",
    "ItemIn",
    "ItemsIn",
    "HistoryIn",
    "RecommendedItem",
    "RecommendationsOut",
    "SimilarOut",
    "ModelInfoOut",
    "VersionOut",
    "HealthOut",
    "UserHistoryOut",
    "ErrorOut",
]

MAX_ID_LENGTH = 256
#: Oldest accepted event time (2000-01-01); older stamps are almost certainly unit mistakes.
MIN_TIMESTAMP = 946_684_800

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
"""External id: 1-256 characters, no control characters."""

#: Set by the app from its settings; events stamped after now + this are rejected.
FUTURE_SKEW_S = {"value": 300}


class _Strict(BaseModel):
    # strict: JSON types as declared (``true`` or ``"5"`` is not a number; schema fuzzing
    # found ``"value": false`` stored as 0.0 before)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class EventIn(_Strict):
    """One interaction. ``event_id`` makes retries safe: a repeated id is stored once."""

    event_id: Id
    user: Id
    item: Id
    type: Literal["view", "click", "purchase", "rating"] = "view"
    value: float = Field(1.0, ge=-1e6, le=1e6)
    timestamp: int | None = Field(
        None, description="Epoch seconds; defaults to the time the server receives the event."
    )

    @field_validator("timestamp")
    @classmethod
    def _not_far_future(cls, v: int | None) -> int | None:
        if v is None:
            return v
        limit = time.time() + FUTURE_SKEW_S["value"]
        if v > limit:
            raise ValueError(f"timestamp {v} is in the future (more than the allowed clock skew)")
        if v < MIN_TIMESTAMP:
            raise ValueError(f"timestamp {v} is before 2000-01-01; send epoch seconds")
        return v


class EventBatchIn(_Strict):
    """A batch of events, stored in one transaction."""

    events: list[EventIn] = Field(min_length=1)


class IngestOut(BaseModel):
    """Exact outcome of an ingestion, returned only after the events are committed."""

    accepted: int
    duplicates: int
    duplicate_ids: list[str] = Field(default_factory=list)


class ItemIn(_Strict):
    """An item and its attributes (``title`` and ``genres`` are shown on the web page)."""

    id: Id
    attributes: dict[str, str | float | int | bool | list[str] | None] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _limit(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(v) > 64:
            raise ValueError("at most 64 attributes per item")
        for key, val in v.items():
            if len(key) > 64:
                raise ValueError(f"attribute name {key[:20]!r}... is longer than 64 characters")
            if isinstance(val, str) and len(val) > 4096:
                raise ValueError(f"attribute {key!r} is longer than 4096 characters")
            if isinstance(val, float) and not math.isfinite(val):
                raise ValueError(f"attribute {key!r} must be finite")
        return v


class ItemsIn(_Strict):
    """Items to add or update."""

    items: list[ItemIn] = Field(min_length=1, max_length=10000)


class HistoryIn(_Strict):
    """An anonymous user's history, for recommendations without an account."""

    items: list[Id] = Field(max_length=10000)
    values: list[float] | None = None
    k: int = Field(10, ge=1)
    exclude: list[Id] = Field(default_factory=list, max_length=10000)
    require: list[Id] | None = Field(None, max_length=10000)


class RecommendedItem(BaseModel):
    """One recommended item."""

    item: str
    score: float | None
    rank: int
    title: str | None = None
    attributes: dict[str, Any] | None = None
    explanation: list[dict[str, Any]] | None = None


class RecommendationsOut(BaseModel):
    """A ranked list, the model version that produced it and why (fallbacks say so)."""

    user: str | None
    model_version: str
    reason: str
    items: list[RecommendedItem]


class SimilarOut(BaseModel):
    """Items similar to ``item``."""

    item: str
    model_version: str
    items: list[RecommendedItem]


class VersionOut(BaseModel):
    """A registry version."""

    version: str
    model: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    data_fingerprint: str | None
    parent: str | None
    created: float
    active: bool
    report: bool


class ModelInfoOut(BaseModel):
    """The model being served."""

    version: str
    model: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    n_users: int
    n_items: int
    capabilities: dict[str, bool]
    loaded_at: float
    last_load_error: str | None


class HealthOut(BaseModel):
    """Health or readiness status."""

    status: str
    model_version: str | None = None
    database: bool | None = None
    detail: str | None = None


class UserHistoryOut(BaseModel):
    """A user's training history and recent events."""

    user: str
    known: bool
    items: list[RecommendedItem]


class ErrorOut(BaseModel):
    """Error body."""

    detail: Any
