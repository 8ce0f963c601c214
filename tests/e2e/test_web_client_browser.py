"""The JavaScript client (/web/recforge-client.js) in headless chromium against a real service.

Two patterns: a page on the service's own origin with a write key (private pages), and a
public shop page whose backend keeps the write key: the page sends events to the backend's
``/track``, which checks the visitor's session and forwards them with ``recforge.client``.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from recforge.client import Client
from recforge.serving.app import WEB_DIR

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

KEY = "js-client-write-key-0123456789"


def _catalog() -> Any:
    path = Path(__file__).parents[1] / "unit" / "serving" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_js_catalog", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shop_backend(service_url: str) -> Any:
    """The integrator's own backend: serves the page, forwards reads and signed-in events."""
    shop = FastAPI()
    recforge = Client(service_url, api_key=KEY)  # the key lives here, never in the page

    @shop.get("/shop")
    def page() -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>shop</title><p>shop</p>")

    @shop.get("/recforge-client.js")
    def module() -> FileResponse:
        return FileResponse(WEB_DIR / "recforge-client.js", media_type="text/javascript")

    @shop.get("/recommendations/{user}")
    def recommendations(user: str, request: Request) -> JSONResponse:
        r = httpx.get(f"{service_url}/recommendations/{user}", params=request.query_params)
        return JSONResponse(r.json(), status_code=r.status_code)

    @shop.post("/track")
    async def track(request: Request) -> dict[str, Any]:
        body = await request.json()
        if body.get("user") != request.cookies.get("session"):
            raise HTTPException(403, detail="events only for the signed-in visitor")
        result = recforge.send_event(
            body["user"], body["item"], type=body.get("type", "view"),
            value=float(body.get("value", 1.0)), event_id=body["event_id"],
        )  # fmt: skip
        return {"accepted": result.accepted, "duplicates": result.duplicates}

    return shop


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    import uvicorn

    from recforge.registry import ModelRegistry
    from recforge.serving._thread import _free_port, serve_in_thread
    from recforge.serving.settings import ServiceSettings
    from recforge.serving.store import EventStore

    cat = _catalog()
    ds = cat.catalog_dataset()
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(cat.content_model(ds), promote=True)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    attrs = ds.item_attributes
    store.upsert_items(
        {str(i): {"title": r.title, "genres": r.genres} for i, r in attrs.iterrows()}
    )
    settings = ServiceSettings(
        registry=reg.root, db=store.url, write_keys=[KEY], sync_interval_s=0.1
    )
    with serve_in_thread(settings, store) as url:
        port = _free_port()
        srv = uvicorn.Server(
            uvicorn.Config(_shop_backend(url), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not srv.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield url, f"http://127.0.0.1:{port}", store
        srv.should_exit = True
        thread.join(timeout=10)


def test_private_page_on_the_service_origin(
    servers: tuple[str, str, Any], browser: Browser
) -> None:
    url, _, store = servers
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    out = page.evaluate(
        """async (key) => {
        const { RecforgeClient } = await import("/web/recforge-client.js");
        const anonymous = new RecforgeClient();
        let refused = null;
        try { await anonymous.sendEvent({ user: "u0", item: "1" }); }
        catch (e) { refused = { name: e.name, status: e.status, message: e.message }; }
        const rf = new RecforgeClient({ apiKey: key });
        const before = await rf.recommend("u0", { k: 5, details: true });
        const first = before.items[0].item;
        const sent = await rf.sendEvent({ user: "u0", item: first, type: "click" });
        const again = await rf.sendEvent({ user: "u0", item: first, eventId: sent.event_id });
        const after = await rf.recommend("u0", { k: 5 });
        const batch = await rf.sendEvents([{ user: "u9", item: "2" }, { user: "u9", item: "3" }]);
        const similar = await rf.similarItems("1", { k: 3 });
        const anon = await rf.recommendHistory(["1", "5"], { k: 4 });
        return { refused, first, before, sent, again, after, batch, similar, anon };
    }""",
        KEY,
    )
    assert out["refused"]["name"] == "RecforgeError"
    assert out["refused"]["status"] == 401
    assert "answered 401" in out["refused"]["message"]
    assert out["before"]["items"][0]["title"].startswith("Movie")
    assert out["sent"]["accepted"] == 1
    assert len(out["sent"]["event_id"]) == 32
    assert (out["again"]["accepted"], out["again"]["duplicates"]) == (0, 1)
    assert out["first"] not in [it["item"] for it in out["after"]["items"]]
    assert "online fold-in" in out["after"]["reason"]
    assert out["batch"]["accepted"] == 2
    assert len(out["similar"]["items"]) == 3
    assert out["anon"]["user"] is None
    frame = store.events_frame()
    assert len(frame) == 3
    assert out["sent"]["event_id"] in set(frame["event_id"])
    assert not errors


def test_public_page_sends_events_through_its_backend(
    servers: tuple[str, str, Any], browser: Browser
) -> None:
    _, shop, store = servers
    context = browser.new_context()
    context.add_cookies([{"name": "session", "value": "u0", "url": shop}])
    page = context.new_page()
    page.goto(shop + "/shop")
    out = page.evaluate(
        """async () => {
        const { RecforgeClient } = await import("/recforge-client.js");
        const rf = new RecforgeClient({ eventsUrl: "/track", retries: 0 });
        const before = await rf.recommend("u0", { k: 5 });
        const first = before.items[0].item;
        const sent = await rf.sendEvent({ user: "u0", item: first, type: "purchase" });
        let other = null;
        try { await rf.sendEvent({ user: "u1", item: first }); }
        catch (e) { other = e.status; }
        const after = await rf.recommend("u0", { k: 5 });
        return { first, sent, other, after, html: document.documentElement.outerHTML };
    }"""
    )
    assert out["sent"]["accepted"] == 1
    assert out["other"] == 403  # the backend only forwards the signed-in visitor's events
    assert out["first"] not in [it["item"] for it in out["after"]["items"]]
    assert KEY not in out["html"]
    frame = store.events_frame()
    assert frame["user"].tolist() == ["u0"]
    assert frame["event_id"].tolist() == [out["sent"]["event_id"]]
    context.close()
