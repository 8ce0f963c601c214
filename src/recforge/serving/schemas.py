"""Request and response models of the REST API (validated, documented in OpenAPI).

Limits (documented answers): ids are 1-256 printable characters (422 otherwise); ``k`` is
1..``max_k`` (422); a batch holds 1..``max_batch`` events (422); bodies larger than the
configured limit get 413; non-finite numbers (NaN, Infinity), values out of their bounds
(:data:`~recforge.serving.store.MAX_STRENGTH`, :data:`~recforge.serving.store.MAX_VALUE`) and
timestamps before 2000 get 422. Timestamps too far in the future depend on a setting
(``max_future_skew_s``), so the events route checks them (also 422, naming the field).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from recforge.serving.store import MAX_STRENGTH, MAX_VALUE

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


class _Strict(BaseModel):
    # strict: JSON types as declared (``true`` or ``"5"`` is not a number; schema fuzzing
    # found ``"value": false`` stored as 0.0 before)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class EventIn(_Strict):
    """One interaction. ``event_id`` makes retries safe: a repeated id is stored once.

    ``value`` is a strength in ``[0, MAX_STRENGTH]`` (1.0: one interaction) for ``view``,
    ``click`` and ``purchase``, and a rating in ``[-MAX_VALUE, MAX_VALUE]`` for ``rating``.
    """

    event_id: Id
    user: Id
    item: Id
    type: Literal["view", "click", "purchase", "rating"] = "view"
    value: float = Field(1.0, ge=-MAX_VALUE, le=MAX_VALUE)
    timestamp: int | None = Field(
        None,
        ge=MIN_TIMESTAMP,
        description="Epoch seconds (from 2000-01-01, at most max_future_skew_s ahead); "
        "defaults to the time the server receives the event.",
    )

    @field_validator("value")
    @classmethod
    def _strength(cls, v: float, info: ValidationInfo) -> float:
        kind = info.data.get("type", "view")
        if kind != "rating" and not 0.0 <= v <= MAX_STRENGTH:
            raise ValueError(
                f"value of a {kind} event is a strength in [0, {MAX_STRENGTH:g}], got {v:g}"
            )
        return v


class EventBatchIn(_Strict):
    """A batch of events, stored in one transaction."""

    events: list[EventIn] = Field(min_length=1)


class IngestOut(BaseModel):
    """Exact outcome of an ingestion, returned only after the events are committed."""

    accepted: int
    duplicates: int
    duplicate_ids: list[str] = Field(default_factory=list)


AttributeValue = str | float | int | bool | list[str] | None


def bounded_attributes(v: dict[str, Any], owner: str) -> dict[str, Any]:
    """Check an attribute mapping's size: 64 names of 64 characters, finite values, 4 KiB text."""
    if len(v) > 64:
        raise ValueError(f"at most 64 attributes per {owner}")
    for key, val in v.items():
        if len(key) > 64:
            raise ValueError(f"attribute name {key[:20]!r}... is longer than 64 characters")
        if isinstance(val, str) and len(val) > 4096:
            raise ValueError(f"attribute {key!r} is longer than 4096 characters")
        if isinstance(val, float) and not math.isfinite(val):
            raise ValueError(f"attribute {key!r} must be finite")
    return v


class ItemIn(_Strict):
    """An item and its attributes (``title`` and ``genres`` are shown on the web page)."""

    id: Id
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _limit(cls, v: dict[str, Any]) -> dict[str, Any]:
        return bounded_attributes(v, "item")


class ItemsIn(_Strict):
    """Items to add or update."""

    items: list[ItemIn] = Field(min_length=1, max_length=10000)


class HistoryIn(_Strict):
    """A new or anonymous user: their history, or (with no items) their attributes.

    ``attributes`` (e.g. ``{"age": 25, "occupation": "writer"}``) are used by models that
    represent users by attributes when ``items`` is empty; others answer the most popular items.
    """

    items: list[Id] = Field(max_length=10000)
    attributes: dict[str, AttributeValue] | None = None
    values: list[Annotated[float, Field(ge=-MAX_VALUE, le=MAX_VALUE)]] | None = Field(
        None, max_length=10000
    )
    k: int = Field(10, ge=1)
    exclude: list[Id] = Field(default_factory=list, max_length=10000)
    require: list[Id] | None = Field(None, max_length=10000)

    @field_validator("attributes")
    @classmethod
    def _limit(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else bounded_attributes(v, "user")


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
