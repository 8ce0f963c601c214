"""Shared state of the service and the ``Annotated`` dependencies of the routes."""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request

from recforge.registry import ModelRegistry
from recforge.serving.online import ModelHolder, ServingModel
from recforge.serving.settings import ServiceSettings
from recforge.serving.store import EventStore, hash_api_key

__all__ = [
    "AdminDep",
    "Metrics",
    "ModelDep",
    "ServiceState",
    "StateDep",
    "WriteDep",
    "get_state",
]


class Metrics:
    """Prometheus collectors of one app (own registry, so several apps can coexist)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "recforge_request_duration_seconds",
            "Request latency by route",
            ["route", "method", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=self.registry,
        )
        self.events = Counter(
            "recforge_events_ingested_total", "Events stored", registry=self.registry
        )
        self.duplicates = Counter(
            "recforge_events_duplicate_total",
            "Events ignored because their event_id was already stored",
            registry=self.registry,
        )
        self.rejected = Counter(
            "recforge_requests_rejected_total",
            "Requests refused before reaching a handler",
            ["reason"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "recforge_model_info",
            "Model version being served",
            ["version", "model"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "recforge_model_swaps_total", "Model hot swaps", registry=self.registry
        )
        self.load_failures = Counter(
            "recforge_model_load_failures_total",
            "Model versions rejected at load or warm-up",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "recforge_requests_in_flight", "Requests being handled", registry=self.registry
        )

    def set_model(self, bundle: ServingModel) -> None:
        """Expose the served version (one labelled gauge set to 1)."""
        self.model_info.clear()
        self.model_info.labels(bundle.version, str(bundle.info.get("model", "?"))).set(1)


@dataclass
class ServiceState:
    """Everything the routes share: settings, store, registry, model holder, keys, metrics."""

    settings: ServiceSettings
    store: EventStore
    registry: ModelRegistry | None
    holder: ModelHolder = field(default_factory=ModelHolder)
    metrics: Metrics = field(default_factory=Metrics)
    key_scopes: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def load_keys(self) -> None:
        """Digests of the configured keys plus those stored in the database."""
        scopes: dict[str, str] = {}
        for raw, scope in [(k, "write") for k in self.settings.write_keys] + [
            (k, "admin") for k in self.settings.admin_keys
        ]:
            digest = raw[7:] if raw.startswith("sha256:") else hash_api_key(raw)
            scopes[digest.lower()] = scope
        scopes.update(self.store.api_key_scopes())
        self.key_scopes = scopes

    def scope_of(self, key: str | None) -> str | None:
        """Scope of a presented key (constant-time comparison of digests), or ``None``."""
        if not key:
            return None
        digest = hash_api_key(key)
        found: str | None = None
        for known, scope in self.key_scopes.items():
            if hmac.compare_digest(known, digest):
                found = scope
        return found


def get_state(request: Request) -> ServiceState:
    """The service state stored on the app."""
    state: ServiceState = request.app.state.recforge
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def current_model(state: StateDep) -> ServingModel:
    """The bundle for this request, or 503 while no model is loaded."""
    bundle = state.holder.current
    if bundle is None:
        raise HTTPException(
            503,
            detail="no model loaded yet"
            + (f": {state.holder.last_load_error}" if state.holder.last_load_error else ""),
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    return bundle


ModelDep = Annotated[ServingModel, Depends(current_model)]


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def _authorize(request: Request, state: ServiceState, need: Literal["write", "admin"]) -> Any:
    if not state.key_scopes:
        return None  # no key configured: the server only listens on loopback (see settings)
    key = _presented_key(request)
    if key is None:
        raise HTTPException(
            401,
            detail="API key required (X-API-Key or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scope = state.scope_of(key)
    if scope is None:
        raise HTTPException(401, detail="invalid API key", headers={"WWW-Authenticate": "Bearer"})
    if need == "admin" and scope != "admin":
        raise HTTPException(403, detail="this route needs an admin key")
    return scope


def require_write(request: Request, state: StateDep) -> None:
    """Dependency of write routes (events, items)."""
    _authorize(request, state, "write")


def require_admin(request: Request, state: StateDep) -> None:
    """Dependency of admin routes (promote, rollback, metrics)."""
    _authorize(request, state, "admin")


WriteDep = Depends(require_write)
AdminDep = Depends(require_admin)
