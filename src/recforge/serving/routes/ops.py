"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from recforge.serving.deps import StateDep, require_admin
from recforge.serving.schemas import HealthOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness")
def healthz() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=HealthOut,
    summary="Readiness",
    responses={503: {"model": HealthOut, "description": "not ready"}},
)
def readyz(state: StateDep) -> JSONResponse:
    """Ready when a model is loaded and warmed and a write to the database commits."""
    bundle = state.holder.current
    db = state.store.can_write()
    ok = bundle is not None and db
    detail = None
    if bundle is None:
        detail = state.public_error() or "model not loaded"
    elif not db:
        detail = "the database does not accept writes (locked, full, read-only or unreachable)"
    body = HealthOut(
        status="ready" if ok else "not ready",
        model_version=bundle.version if bundle else None,
        database=db,
        detail=detail,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: {"description": "missing or invalid key"},
        403: {"description": "not an admin key"},
    },
)
def metrics(request: Request, state: StateDep) -> Response:
    """Prometheus text format; needs an admin key unless ``metrics_public`` is set."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if not state.settings.metrics_public:
        require_admin(request, state)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


__all__ = ["HTTPException", "router"]
