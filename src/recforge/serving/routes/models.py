"""Model information and registry administration."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from recforge.exceptions import ConfigError, ModelFormatError
from recforge.serving.deps import AdminDep, ModelDep, ServiceState, StateDep
from recforge.serving.schemas import ModelInfoOut, VersionOut

router = APIRouter(tags=["models"])


def _registry(state: ServiceState) -> Any:
    if state.registry is None:
        raise HTTPException(404, detail="the service runs a single model, not a registry")
    return state.registry


@router.get("/model", response_model=ModelInfoOut, summary="The model being served")
def model_info(state: StateDep, bundle: ModelDep) -> ModelInfoOut:
    """Version, hyperparameters, metrics and capabilities of the served model."""
    m = bundle.model
    return ModelInfoOut(
        version=bundle.version,
        model=str(bundle.info.get("model", type(m).__name__)),
        params={k: v for k, v in m.get_params().items() if _jsonable(v)},
        metrics=dict(bundle.info.get("metrics", {})),
        n_users=len(m.users_),
        n_items=len(m.items_),
        capabilities={
            "similar_items": m.supports_similar_items,
            "history": m.supports_history,
            "explain": m.supports_explain,
            "new_items": m.supports_new_items,
            "item_vectors": m.supports_item_vectors,
        },
        loaded_at=bundle.loaded_at,
        last_load_error=state.public_error(),
    )


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


@router.get("/models", response_model=list[VersionOut], summary="Registry versions")
def list_versions(state: StateDep) -> list[VersionOut]:
    """All complete versions, newest first, with their metrics (metadata only: arrays are
    verified when a version is loaded or promoted, so listing is cheap for any model size)."""
    reg = _registry(state)
    active = reg.active_version()
    out = []
    for v in reversed(reg.list(verify=False)):
        d = v.to_dict()
        out.append(
            VersionOut(**d, active=v.version == active, report=bool(reg.report_path(v.version)))
        )
    return out


@router.get(
    "/models/{version}/report",
    summary="HTML report of a version",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
        404: {"description": "no registry, or no report for this version"},
    },
)
def version_report(version: str, state: StateDep) -> FileResponse:
    """The evaluation report saved beside a version, when there is one."""
    path = _registry(state).report_path(version)
    if path is None:
        raise HTTPException(404, detail=f"no report for version {version!r}")
    return FileResponse(path, media_type="text/html")


@router.post(
    "/models/{version}/promote",
    dependencies=[AdminDep],
    response_model=VersionOut,
    summary="Make a version active",
    responses={401: {}, 403: {}, 422: {"description": "broken version"}},
)
def promote(version: str, state: StateDep) -> VersionOut:
    """Verify and activate a version; the service swaps to it on its next poll."""
    reg = _registry(state)
    try:
        info = reg.promote(version)
    except ModelFormatError as exc:
        raise HTTPException(422, detail=str(exc).replace(str(reg.root), "<registry>")) from exc
    return VersionOut(**info.to_dict(), active=True, report=bool(reg.report_path(version)))


@router.post(
    "/models/rollback",
    dependencies=[AdminDep],
    response_model=VersionOut,
    summary="Return to the previously active version",
    responses={401: {}, 403: {}, 409: {"description": "nothing to roll back to"}},
)
def rollback(state: StateDep) -> VersionOut:
    """Re-activate the previous version."""
    reg = _registry(state)
    try:
        info = reg.rollback()
    except ConfigError as exc:
        raise HTTPException(409, detail="no previous active version to roll back to") from exc
    return VersionOut(**info.to_dict(), active=True, report=bool(reg.report_path(info.version)))
