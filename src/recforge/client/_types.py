"""Typed results and inputs of the service client (plain frozen dataclasses)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Event",
    "EventType",
    "IngestResult",
    "ModelInfo",
    "RecommendedItem",
    "Recommendations",
    "SimilarItems",
    "UserHistory",
    "new_event_id",
]

EventType = Literal["view", "click", "purchase", "rating"]


def new_event_id() -> str:
    """A fresh random event id (32 hex digits); the service stores each id once."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Event:
    """One interaction to send.

    Attributes
    ----------
    user, item : str
        External ids (integers are sent as their decimal text).
    type : {"view", "click", "purchase", "rating"}
        Kind of interaction.
    value : float
        Strength or rating.
    timestamp : int or None
        Epoch seconds; ``None`` lets the service stamp the time it received the event.
    event_id : str or None
        Idempotency key. The client fills in a random one when it is ``None``, once, before
        the first attempt, so every retry of the same event carries the same id.
    """

    user: str | int
    item: str | int
    type: EventType = "view"
    value: float = 1.0
    timestamp: int | None = None
    event_id: str | None = None

    def to_json(self, event_id: str) -> dict[str, Any]:
        """The request body of this event with ``event_id`` filled in."""
        body: dict[str, Any] = {
            "event_id": event_id,
            "user": str(self.user),
            "item": str(self.item),
            "type": self.type,
            "value": float(self.value),
        }
        if self.timestamp is not None:
            body["timestamp"] = int(self.timestamp)
        return body


@dataclass(frozen=True)
class RecommendedItem:
    """One item of a ranked list (``score`` is ``None`` when the service had no finite one)."""

    item: str
    score: float | None
    rank: int
    title: str | None = None
    attributes: Mapping[str, Any] | None = None
    explanation: tuple[Mapping[str, Any], ...] | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RecommendedItem:
        """Parse one entry of a ``RecommendationsOut`` / ``SimilarOut`` list."""
        expl = doc.get("explanation")
        return cls(
            item=str(doc["item"]),
            score=None if doc.get("score") is None else float(doc["score"]),
            rank=int(doc["rank"]),
            title=doc.get("title"),
            attributes=doc.get("attributes"),
            explanation=tuple(expl) if expl is not None else None,
        )


@dataclass(frozen=True)
class Recommendations:
    """A ranked list for a user (or an anonymous history) and how it was made.

    Attributes
    ----------
    user : str or None
        The user, ``None`` for an anonymous history.
    model_version : str
        Registry version that produced the list.
    reason : str
        E.g. ``"personalised"``, ``"known user: online fold-in of 3 new events"`` or
        ``"unknown user: most popular items"``.
    items : tuple of RecommendedItem
        Best first.
    explanation_unavailable : str or None
        With ``explain=True``: why the items carry no explanation (the model cannot explain,
        or the user has no training history).
    """

    user: str | None
    model_version: str
    reason: str
    items: tuple[RecommendedItem, ...]
    explanation_unavailable: str | None = None

    @property
    def ids(self) -> list[str]:
        """The recommended item ids, best first."""
        return [it.item for it in self.items]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Recommendations:
        """Parse a ``RecommendationsOut`` body."""
        return cls(
            user=doc.get("user"),
            model_version=str(doc["model_version"]),
            reason=str(doc["reason"]),
            items=tuple(RecommendedItem.from_json(d) for d in doc["items"]),
            explanation_unavailable=doc.get("explanation_unavailable"),
        )


@dataclass(frozen=True)
class SimilarItems:
    """Items similar to ``item`` according to the served model."""

    item: str
    model_version: str
    items: tuple[RecommendedItem, ...]

    @property
    def ids(self) -> list[str]:
        """The similar item ids, most similar first."""
        return [it.item for it in self.items]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SimilarItems:
        """Parse a ``SimilarOut`` body."""
        return cls(
            item=str(doc["item"]),
            model_version=str(doc["model_version"]),
            items=tuple(RecommendedItem.from_json(d) for d in doc["items"]),
        )


@dataclass(frozen=True)
class IngestResult:
    """Outcome of sending events: what was stored and which ids were already stored.

    A duplicate is not an error: it means an earlier attempt (or another sender) already
    stored that event id, so retrying was harmless.
    """

    accepted: int
    duplicates: int
    duplicate_ids: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = field(default=(), compare=False)
    """The ids sent, in order (generated ones included)."""

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            self.accepted + other.accepted,
            self.duplicates + other.duplicates,
            self.duplicate_ids + other.duplicate_ids,
            self.event_ids + other.event_ids,
        )

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], event_ids: tuple[str, ...]) -> IngestResult:
        """Parse an ``IngestOut`` body."""
        return cls(
            accepted=int(doc["accepted"]),
            duplicates=int(doc["duplicates"]),
            duplicate_ids=tuple(str(x) for x in doc.get("duplicate_ids", ())),
            event_ids=event_ids,
        )


@dataclass(frozen=True)
class ModelInfo:
    """The model a service is serving (``GET /model``)."""

    version: str
    model: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]
    n_users: int
    n_items: int
    capabilities: Mapping[str, bool]
    loaded_at: float
    last_load_error: str | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ModelInfo:
        """Parse a ``ModelInfoOut`` body."""
        return cls(
            version=str(doc["version"]),
            model=str(doc["model"]),
            params=dict(doc.get("params", {})),
            metrics=dict(doc.get("metrics", {})),
            n_users=int(doc["n_users"]),
            n_items=int(doc["n_items"]),
            capabilities=dict(doc.get("capabilities", {})),
            loaded_at=float(doc["loaded_at"]),
            last_load_error=doc.get("last_load_error"),
        )


@dataclass(frozen=True)
class UserHistory:
    """A user's events since training (newest first), then their training items."""

    user: str
    known: bool
    items: tuple[RecommendedItem, ...]

    @property
    def ids(self) -> list[str]:
        """The item ids, newest events first."""
        return [it.item for it in self.items]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> UserHistory:
        """Parse a ``UserHistoryOut`` body."""
        return cls(
            user=str(doc["user"]),
            known=bool(doc["known"]),
            items=tuple(RecommendedItem.from_json(d) for d in doc["items"]),
        )
