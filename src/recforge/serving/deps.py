"""Shared state of the service and the ``Annotated`` dependencies of the routes."""

from __future__ import annotations

import hmac
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
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
    "ReadDep",
    "ServiceState",
    "StateDep",
    "WriteDep",
    "authorize",
    "get_state",
    "key_needed",
    "presented_key",
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
        # multiprocess modes apply with several workers (PROMETHEUS_MULTIPROC_DIR set): one
        # series per live worker (``pid`` label) for the version, the sum for requests
        self.model_info = Gauge(
            "recforge_model_info",
            "Model version being served",
            ["version", "model"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._model_labels: tuple[str, str] | None = None
        self.swaps = Counter(
            "recforge_model_swaps_total", "Model hot swaps", registry=self.registry
        )
        self.load_failures = Counter(
            "recforge_model_load_failures_total",
            "Model versions rejected at load or warm-up",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "recforge_requests_in_flight",
            "Requests being handled",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def set_model(self, bundle: ServingModel) -> None:
        """Expose the served version (one labelled gauge set to 1)."""
        if self._model_labels is not None:
            # a worker's values live in a shared file that clear() does not reach: 0 first
            self.model_info.labels(*self._model_labels).set(0)
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # not implemented across processes
            self.model_info.clear()
        self._model_labels = (bundle.version, str(bundle.info.get("model", "?")))
        self.model_info.labels(*self._model_labels).set(1)


Need = Literal["read", "write", "admin"]
_RANK = {"read": 0, "write": 1, "admin": 2}


@dataclass
class ServiceState:
    """Everything the routes share: settings, store, registry, model holder, keys, metrics.

    Attributes
    ----------
    auth_required : bool
        Whether write and admin routes need a key. True when the service listens beyond
        localhost, and once any key was known: it never goes back to no-key mode, so revoking
        the last stored key (or rotating by revoking first) locks writes instead of opening
        them.
    """

    settings: ServiceSettings
    store: EventStore
    registry: ModelRegistry | None
    holder: ModelHolder = field(default_factory=ModelHolder)
    metrics: Metrics = field(default_factory=Metrics)
    key_scopes: dict[str, str] = field(default_factory=dict)
    auth_required: bool = False
    started: float = field(default_factory=time.time)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.auth_required = self.auth_required or self.settings.public_bind

    def load_keys(self) -> None:
        """Digests of the configured keys plus those stored in the database."""
        scopes: dict[str, str] = {}
        s = self.settings
        for keys, scope in (
            (s.read_keys, "read"),
            (s.write_keys, "write"),
            (s.admin_keys, "admin"),
        ):
            for raw in keys:
                digest = raw[7:] if raw.startswith("sha256:") else hash_api_key(raw)
                scopes[digest.lower()] = scope
        scopes.update(self.store.api_key_scopes())
        self.key_scopes = scopes
        self.auth_required = self.auth_required or bool(scopes)

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

    def public_error(self) -> str | None:
        """The last model-load error as public answers show it: without file paths."""
        error = self.holder.last_load_error
        if error is None:
            return None
        s = self.settings
        for path, name in ((s.registry, "<registry>"), (s.model_dir, "<model>")):
            if path is not None:
                error = error.replace(str(Path(path).resolve()), name).replace(str(path), name)
        return error


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
            + (f": {state.public_error()}" if state.holder.last_load_error else ""),
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    return bundle


ModelDep = Annotated[ServingModel, Depends(current_model)]


def presented_key(headers: Any) -> str | None:
    """The key a request presents (``X-API-Key`` or ``Authorization: Bearer``), if any."""
    key = headers.get("x-api-key")
    if key:
        return str(key)
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return str(auth[7:].strip())
    return None


def key_needed(state: ServiceState, need: Need) -> bool:
    """Whether a route of this kind needs a key now."""
    if need == "read":
        return state.settings.user_data_needs_key
    return state.auth_required


def authorize(request: Request, state: ServiceState, need: Need) -> str | None:
    """The scope of the request's key; 401/403 unless it may do ``need``.

    Raises
    ------
    HTTPException
        401 without a valid key, 403 with a key of a lower scope.
    """
    if not key_needed(state, need):
        return None  # no key configured: the server only listens on loopback (see settings)
    key = presented_key(request.headers)
    if key is None:
        raise HTTPException(
            401,
            detail="API key required (X-API-Key or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scope = state.scope_of(key)
    if scope is None:
        raise HTTPException(401, detail="invalid API key", headers={"WWW-Authenticate": "Bearer"})
    if _RANK[scope] < _RANK[need]:
        raise HTTPException(403, detail=f"this route needs a {need} key")
    return scope


def require_read(request: Request, state: StateDep) -> None:
    """Dependency of routes showing user data (histories, the user list)."""
    authorize(request, state, "read")


def require_write(request: Request, state: StateDep) -> None:
    """Dependency of write routes (events, items)."""
    authorize(request, state, "write")


def require_admin(request: Request, state: StateDep) -> None:
    """Dependency of admin routes (promote, rollback, metrics)."""
    authorize(request, state, "admin")


ReadDep = Depends(require_read)
WriteDep = Depends(require_write)
AdminDep = Depends(require_admin)
