"""Item catalog: add/update attributes, look up and search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from recforge.exceptions import DataError
from recforge.serving.deps import StateDep, WriteDep
from recforge.serving.online import attribute_frame, with_new_items
from recforge.serving.routes.recommend import IdPath
from recforge.serving.schemas import ItemsIn

router = APIRouter(tags=["items"])


@router.put(
    "/items",
    dependencies=[WriteDep],
    summary="Add or update items",
    responses={401: {"description": "missing or invalid key"}},
)
def put_items(body: ItemsIn, state: StateDep) -> dict[str, Any]:
    """Store item attributes; content models make new items recommendable at once.

    The items are stored durably and re-applied to every model version loaded later (at a
    restart or a hot swap) that can take new items.
    """
    items = {it.id: it.attributes for it in body.items}
    written = state.store.upsert_items(items)
    recommendable = False
    note = None
    with state.holder.lock:
        bundle = state.holder.current
        if bundle is not None and bundle.model.supports_new_items:
            try:
                new = with_new_items(bundle, attribute_frame(bundle.model, items))
            except (DataError, KeyError, ValueError) as exc:
                new = None
                note = f"stored; the model cannot use them before the next retrain: {exc}"
            if new is not None:
                state.holder._current = new  # under the holder's lock
                recommendable = True
    out: dict[str, Any] = {"written": written, "recommendable_now": recommendable}
    if note:
        out["note"] = note
    return out


@router.get("/items/{item_id:id}", summary="One item's attributes", responses={404: {}})
def get_item(item_id: IdPath, state: StateDep) -> dict[str, Any]:
    """Stored attributes of an item."""
    found = state.store.get_items([item_id])
    if item_id not in found:
        raise HTTPException(404, detail=f"unknown item {item_id!r}")
    return {"id": item_id, "attributes": found[item_id]}


@router.get("/items", summary="Search items by id or attribute text")
def search_items(
    state: StateDep,
    q: Annotated[str, Query(max_length=256)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[dict[str, Any]]:
    """Items whose id or attributes contain ``q`` (case-insensitive)."""
    return [{"id": k, "attributes": v} for k, v in state.store.search_items(q, limit).items()]
