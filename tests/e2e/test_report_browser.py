"""Render a run's HTML report in headless Debian chromium and check what a person would see."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from recforge.pipeline.runner import run
from recforge.testing import toy_dataset

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

CONFIG = """\
name: browser check
seed: 5
data:
  source: csv
  path: ratings.csv
  columns: {user: user, item: item, value: value, time: time}
split: {method: user_random, test_size: 0.25, valid_size: 0.15}
models:
  popular: {}
  random: {}
  bias:
    reg_user: {type: float, low: 0.5, high: 20.0, log: true}
tuning: {n_trials: 4, k: 5}
evaluation: {k: [3, 5, 10], bootstrap: 200}
output: {dir: run}
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    toy_dataset().to_frame().to_csv(root / "ratings.csv", index=False)
    (root / "recforge.yaml").write_text(CONFIG, encoding="utf-8")
    result = run(root / "recforge.yaml", progress=False)
    assert result.report is not None
    return result.report


def test_report_renders_leaderboard_and_plots(report: Path, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(report.as_uri())
    winner = page.locator("#winner .name")
    assert winner.is_visible()
    box = winner.bounding_box()
    assert box is not None
    assert box["width"] > 0
    assert box["height"] > 0
    rows = page.locator("table.leaderboard tbody tr")
    assert rows.count() == 3
    board = page.locator("table.leaderboard").bounding_box()
    assert board is not None
    assert board["width"] > 400
    assert board["height"] > 60
    plots = page.locator("svg.plot")
    assert plots.count() >= 5
    for i in range(plots.count()):
        plot_box = plots.nth(i).bounding_box()
        assert plot_box is not None, f"plot {i} is not laid out"
        assert plot_box["width"] > 150
        assert plot_box["height"] > 80
    # the leaderboard fits its card: nothing is cut off at 1280 px
    overflow = page.evaluate(
        "() => { const s = document.querySelector('#leaderboard .scroll');"
        " return s.scrollWidth - s.clientWidth; }"
    )
    assert overflow <= 1
    assert failed == []  # self-contained: no request leaves the file
    page.screenshot(path=str(report.with_name("report.png")), full_page=True)
    assert report.with_name("report.png").stat().st_size > 10_000
