"""Drive the web page in headless Debian chromium with Playwright: pick a user, click an item,
watch the recommendations change."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

KEY = "browser-test-key"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load_helpers() -> ModuleType:
    """The catalog fixture of the service unit tests (titles and genres)."""
    path = Path(__file__).parents[1] / "unit" / "serving" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_serving_catalog", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    import uvicorn

    from recforge.registry import ModelRegistry
    from recforge.serving.app import create_app
    from recforge.serving.settings import ServiceSettings
    from recforge.serving.store import EventStore

    helpers = _load_helpers()
    catalog_dataset, content_model = helpers.catalog_dataset, helpers.content_model
    ds = catalog_dataset()
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(content_model(ds), metrics={"ndcg@10": 0.42}, promote=True)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    attrs = ds.item_attributes
    assert attrs is not None
    store.upsert_items(
        {str(i): {"title": r.title, "genres": r.genres} for i, r in attrs.iterrows()}
    )
    settings = ServiceSettings(
        registry=reg.root, db=store.url, write_keys=[KEY], sync_interval_s=0.1, poll_interval_s=0.5
    )
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings, store=store), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_click_item_changes_recommendations(server: str, tmp_path: Path, browser: Browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server + "/")
    expect(page.locator("#model-badge")).to_contain_text("content · v000001")
    page.fill("#user-input", "u0")
    page.click("#load-user")
    recs = page.locator("#recs li")
    expect(recs.first).to_have_attribute("data-item", re.compile(r".+"))
    expect(page.locator("#recs li .title").first).to_contain_text("Movie")
    expect(page.locator("#history li").first).to_contain_text("Movie")
    expect(page.locator("#recs li .why").first).to_contain_text("because of")
    first = recs.first.get_attribute("data-item")
    assert first
    # without a key the event is refused and the page says so
    recs.first.locator("button.watch").click()
    expect(page.locator("#status")).to_contain_text("API key")
    page.fill("#api-key", KEY)
    assert page.evaluate("sessionStorage.getItem('recforge-api-key')") == KEY
    page.locator(f'#recs li[data-item="{first}"] button.watch').click()
    expect(page.locator("#status")).to_contain_text("recorded")
    expect(page.locator(f'#recs li[data-item="{first}"]')).to_have_count(0)
    expect(page.locator("#history li").first).to_have_attribute("data-item", first)
    expect(page.locator("#reason")).to_contain_text("online fold-in")
    # similar items of a clicked title
    page.locator("#recs li .title").first.click()
    expect(page.locator("#similar li .title").first).to_contain_text("Movie")
    shot = tmp_path / "web.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("RECFORGE_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["RECFORGE_SCREENSHOT_DIR"]) / "web.png")
    page.click("#tab-models")
    expect(page.locator("#versions tbody tr")).to_have_count(1)
    expect(page.locator("#versions tbody tr").first).to_contain_text("ndcg@10=0.4200")
    if os.environ.get("RECFORGE_SCREENSHOT_DIR"):
        page.screenshot(path=str(Path(os.environ["RECFORGE_SCREENSHOT_DIR"]) / "models.png"))
    assert not errors
