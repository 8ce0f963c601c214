"""Recommendations for users and anonymous histories, and similar items."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from recforge.exceptions import UnknownIdError, UnsupportedCapabilityError
from recforge.serving.deps import ModelDep, ServiceState, StateDep, authorize
from recforge.serving.online import (
    ServingModel,
    model_ids,
    recommend_attributes,
    recommend_history,
    recommend_user,
    similar,
)
from recforge.serving.schemas import (
    HistoryIn,
    Id,
    RecommendationsOut,
    RecommendedItem,
    SimilarOut,
)

router = APIRouter(tags=["recommendations"])

IdPath = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
IdList = Annotated[list[Id], Query(max_length=1000)]


def check_k(state: ServiceState, k: int) -> None:
    """422 when ``k`` exceeds the configured maximum."""
    if k > state.settings.max_k:
        raise HTTPException(422, detail=f"k must be between 1 and {state.settings.max_k}, got {k}")


def check_explain(request: Request, state: ServiceState, k: int) -> None:
    """Explanations show a user's history: a read key when user data needs one, and a bounded
    ``k`` (each item costs an explanation)."""
    authorize(request, state, "read")
    if k > state.settings.max_explain_k:
        raise HTTPException(
            422,
            detail=f"k must be at most {state.settings.max_explain_k} with explain=true, got {k}",
        )


def build_items(
    state: ServiceState,
    bundle: ServingModel,
    pairs: list[tuple[str, float]],
    *,
    details: bool = False,
    explain_user: str | None = None,
) -> list[RecommendedItem]:
    """Response items, optionally with stored attributes and explanations."""
    attrs = state.store.get_items([i for i, _ in pairs]) if details else {}
    model = bundle.model
    can_explain = explain_user is not None and model.supports_explain
    conv_user = model_ids(model.users_, [explain_user]) if can_explain and explain_user else []
    out = []
    for rank, (item, score) in enumerate(pairs, start=1):
        a = attrs.get(item)
        explanation = None
        if can_explain and conv_user:
            explanation = _explain(bundle, conv_user[0], item)
        out.append(
            RecommendedItem(
                item=item,
                score=score if score == score and abs(score) != float("inf") else None,
                rank=rank,
                title=str(a["title"]) if a and "title" in a else None,
                attributes=a,
                explanation=explanation,
            )
        )
    return out


def diversify(
    bundle: ServingModel, pairs: list[tuple[str, float]], k: int, diversity: float
) -> list[tuple[str, float]]:
    """Re-rank candidates with MMR (``lambda = 1 - diversity``) on the model's item vectors."""
    import numpy as np

    from recforge.models.rerank import mmr

    model = bundle.model
    if not model.supports_item_vectors:
        raise HTTPException(
            422,
            detail=f"the served model ({bundle.info.get('model')}) has no item vectors "
            "for diversity re-ranking",
        )
    if not pairs:
        return pairs
    vectors = model.item_vectors()
    codes = model.items_.codes(model_ids(model.items_, [i for i, _ in pairs]), missing="negative")
    scores = np.asarray([s for _, s in pairs], dtype=np.float32)
    picked, picked_scores = mmr(codes[None, :], scores[None, :], vectors, k, 1.0 - diversity)
    valid = picked[0] >= 0
    ids = model.items_.ids_of(picked[0][valid])
    return [
        (str(i.item() if hasattr(i, "item") else i), float(sc))
        for i, sc in zip(ids, picked_scores[0][valid], strict=True)
    ]


def _explain(bundle: ServingModel, user: Any, item: str) -> list[dict[str, Any]] | None:
    model = bundle.model
    conv = model_ids(model.items_, [item])
    if not conv:
        return None
    try:
        exp = model.explain(user, conv[0])
    except (UnknownIdError, UnsupportedCapabilityError):
        return None
    doc = exp.to_dict()
    contrib = doc.get("similar_history") or doc.get("contributions") or []
    positive = [c for c in contrib if float(c["weight"]) > 0]
    return [{"id": str(c["id"]), "weight": float(c["weight"])} for c in positive[:3]] or None


@router.get(
    "/recommendations/{user_id:id}",
    response_model=RecommendationsOut,
    summary="Top-k items for a user",
    responses={
        401: {"description": "explain=true without a valid key, when user data needs one"},
        403: {"description": "key too weak"},
        422: {"description": "invalid id, k or filter"},
    },
)
def get_recommendations(
    user_id: IdPath,
    request: Request,
    state: StateDep,
    bundle: ModelDep,
    k: Annotated[int, Query(ge=1)] = 10,
    exclude: IdList = [],  # noqa: B006 - FastAPI copies defaults
    # a plain array, not "array or null": a query string cannot send an empty list, so absent
    # means no restriction (with "or null", a fuzzer's require=false, meant as neither, is a
    # valid one-item list once written in a query string)
    require: IdList = [],  # noqa: B006 - FastAPI copies defaults
    exclude_seen: bool = True,
    details: bool = False,
    explain: bool = False,
    diversity: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
) -> RecommendationsOut:
    """Recommend for a user; their events since training count at once.

    Unknown users get the most popular items, and ``reason`` says so. ``diversity`` in
    ``(0, 1]`` re-ranks ``3k`` candidates with maximal marginal relevance on the model's item
    vectors (0 keeps the model's order).
    """
    check_k(state, k)
    if explain:
        check_explain(request, state, k)
    pool = k if diversity == 0 else min(3 * k, state.settings.max_k)
    pairs, reason = recommend_user(
        bundle,
        bundle.online,
        user_id,
        pool,
        exclude=exclude,
        require=require or None,
        exclude_seen=exclude_seen,
    )
    if diversity > 0:
        pairs = diversify(bundle, pairs, k, diversity)
        reason += f"; diversified (MMR, diversity {diversity:g})"
    items = build_items(
        state, bundle, pairs, details=details or explain, explain_user=user_id if explain else None
    )
    return RecommendationsOut(
        user=user_id, model_version=bundle.version, reason=reason, items=items
    )


@router.post(
    "/recommendations",
    response_model=RecommendationsOut,
    summary="Top-k items for an anonymous history",
)
def post_recommendations(
    body: HistoryIn, state: StateDep, bundle: ModelDep, details: bool = False
) -> RecommendationsOut:
    """Recommend from a list of items (fold-in) or, with no items, from the user's attributes.

    Nothing is stored and no account is needed.
    """
    check_k(state, body.k)
    if body.values is not None and len(body.values) != len(body.items):
        raise HTTPException(422, detail="values must have one entry per item")
    if not body.items and body.attributes is not None:
        pairs, reason = recommend_attributes(
            bundle, body.attributes, body.k, exclude=body.exclude, require=body.require
        )
    else:
        pairs, reason = recommend_history(
            bundle, body.items, body.values, body.k, exclude=body.exclude, require=body.require
        )
    return RecommendationsOut(
        user=None,
        model_version=bundle.version,
        reason=reason,
        items=build_items(state, bundle, pairs, details=details),
    )


@router.get(
    "/items/{item_id:id}/similar",
    response_model=SimilarOut,
    summary="Items similar to an item",
    responses={404: {"description": "unknown item"}, 501: {"description": "not supported"}},
)
def get_similar(
    item_id: IdPath,
    state: StateDep,
    bundle: ModelDep,
    k: Annotated[int, Query(ge=1)] = 10,
    details: bool = False,
) -> SimilarOut:
    """The ``k`` items most similar to ``item_id`` according to the served model."""
    check_k(state, k)
    try:
        pairs = similar(bundle, item_id, k)
    except UnknownIdError as exc:
        raise HTTPException(404, detail=f"unknown item {item_id!r}") from exc
    except UnsupportedCapabilityError as exc:
        raise HTTPException(
            501, detail=f"the served model ({bundle.info.get('model')}) has no item similarity"
        ) from exc
    return SimilarOut(
        item=item_id,
        model_version=bundle.version,
        items=build_items(state, bundle, pairs, details=details),
    )
