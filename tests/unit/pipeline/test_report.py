"""The HTML report: self-contained, with the leaderboard, the winner and the plots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recforge.exceptions import ConfigError
from recforge.pipeline.report import build_report, render_report
from recforge.pipeline.runner import RunResult, run


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, base_config_text: str) -> RunResult:
    from recforge.testing import toy_dataset

    root = tmp_path_factory.mktemp("report")
    frame = toy_dataset(explicit=True).to_frame()
    frame.columns = ["userId", "movieId", "rating", "timestamp"]
    frame.to_csv(root / "ratings.csv", index=False)
    (root / "recforge.yaml").write_text(base_config_text, encoding="utf-8")
    return run(root / "recforge.yaml", progress=False)


def test_report_has_leaderboard_winner_and_plots(finished: RunResult) -> None:
    assert finished.report is not None
    html = finished.report.read_text(encoding="utf-8")
    assert "<table class='leaderboard'>" in html
    for model in ("popular", "random", "bias"):
        assert f"</span>{model}</td>" in html
    assert f'<div class="name">{finished.best}</div>' in html
    assert "★ best" in html
    # one SVG per plot: curves, trade-offs, popularity, segments, tuning history, ratings
    assert html.count("<svg") == 6
    for section in (
        "leaderboard",
        "curves",
        "tradeoffs",
        "popularity",
        "segments",
        "tuning",
        "significance",
        "data",
    ):
        assert f'id="{section}"' in html
    assert "Holm" in html


def test_report_is_self_contained(finished: RunResult) -> None:
    assert finished.report is not None
    html = finished.report.read_text(encoding="utf-8")
    assert "<script" not in html
    assert "<link" not in html
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert "@import" not in html


def test_report_rebuilds_identically(finished: RunResult, tmp_path: Path) -> None:
    assert finished.report is not None
    first = finished.report.read_text(encoding="utf-8")
    target = build_report(finished.run_dir, tmp_path / "again.html")
    assert target.read_text(encoding="utf-8") == first


def test_leaderboard_is_ordered_by_main_metric(finished: RunResult) -> None:
    html = render_report(finished.run_dir)
    table = html[html.index("<table class='leaderboard'>") :]
    table = table[: table.index("</table>")]
    order = re.findall(r"<span class='rank'>\d+</span>([^<]+)</td>", table)
    s = finished.summary
    main = s[(s["group"] == "known") & (s["metric"] == "ndcg") & (s["k"] == 5)]
    expected = main.sort_values("value", ascending=False)["model"].tolist()
    assert order == expected


def test_report_of_unfinished_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a finished recforge run directory"):
        build_report(tmp_path)
