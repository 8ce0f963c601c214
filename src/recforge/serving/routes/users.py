"""Users: search and history (user data: a read key when ``user_data_needs_key``)."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query

from recforge.serving.deps import ModelDep, ReadDep, StateDep
from recforge.serving.online import model_ids
from recforge.serving.routes.recommend import IdPath, build_items
from recforge.serving.schemas import UserHistoryOut

router = APIRouter(tags=["users"])


_KEY: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid key"},
    403: {"description": "key too weak"},
}


@router.get("/users", dependencies=[ReadDep], summary="Find users by id prefix", responses=_KEY)
def search_users(
    state: StateDep,
    bundle: ModelDep,
    q: Annotated[str, Query(max_length=256)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[str]:
    """Users known to the model or seen in events whose id starts with ``q``."""
    ids = bundle.model.users_.ids
    as_str = ids.astype(str) if ids.dtype != object else ids.astype("U")
    hits = np.flatnonzero(np.char.startswith(as_str, q))[:limit]
    found: list[str] = [str(x) for x in as_str[hits]]
    if len(found) < limit:
        for s in state.store.search_users(q, limit):
            if s not in found:
                found.append(s)
    return found[:limit]


@router.get(
    "/users/{user_id:id}/history",
    dependencies=[ReadDep],
    response_model=UserHistoryOut,
    summary="A user's items",
    responses=_KEY,
)
def user_history(
    user_id: IdPath,
    state: StateDep,
    bundle: ModelDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> UserHistoryOut:
    """Events since training (newest first), then the training items."""
    model = bundle.model
    pairs: list[tuple[str, float]] = []
    if bundle.online is not None:
        pairs = [(i, v) for i, v in bundle.online.recent(user_id)][::-1]
    conv = model_ids(model.users_, [user_id])
    code = int(model.users_.codes(conv, missing="negative")[0]) if conv else -1
    if code >= 0:
        row, values = model.user_history(code)
        for i, v in zip(model.items_.ids_of(row[::-1]), values[::-1], strict=True):
            pairs.append((str(i.item() if hasattr(i, "item") else i), float(v)))
    seen: set[str] = set()
    uniq = []
    for item, v in pairs:
        if item not in seen:
            seen.add(item)
            uniq.append((item, v))
    items = build_items(state, bundle, uniq[:limit], details=True)
    return UserHistoryOut(user=user_id, known=code >= 0, items=items)
