"""The replay page: prequential hit rate and NDCG over time, per arm, with intervals.

:func:`build_replay_report` reads the ``replay.json`` that ``recforge replay`` writes (it
never imports the service) and writes ``replay.html`` beside it, in the style of the run
report (its stylesheet is reused), with the plots as inline SVG.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from recforge._io import atomic_write
from recforge.exceptions import ConfigError
from recforge.pipeline.report import _plots

__all__ = ["build_replay_report", "render_replay_report"]

_ARM_TEXT = {
    "static": "the initial model, no event posted",
    "online": "every event posted; the service's online updates only",
    "periodic": "online updates plus periodic retraining and hot swap",
}


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _esc(value)
    return f"{v:.{digits}f}" if v == v else "–"


def _interval(row: dict[str, Any], name: str) -> str:
    return (
        f"{_num(row.get(name))}<span class='ci'>[{_num(row.get(name + '_low'))}, "
        f"{_num(row.get(name + '_high'))}]</span>"
    )


def _style() -> str:
    text = resources.files("recforge.pipeline.report").joinpath("template.html").read_text("utf-8")
    found = re.search(r"<style>.*?</style>", text, flags=re.S)
    return found.group(0) if found else ""


def _overall_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th class='l'>arm</th><th class='l'>what changes</th><th>events</th><th>users</th>"
        "<th>hit rate</th><th>NDCG</th></tr>"
    )
    body = "".join(
        f"<tr><td class='l'><b>{_esc(r['arm'])}</b></td>"
        f"<td class='l'>{_esc(_ARM_TEXT.get(str(r['arm']), ''))}</td>"
        f"<td>{int(r['n_events'])}</td><td>{int(r['n_users'])}</td>"
        f"<td>{_interval(r, 'hit_rate')}</td><td>{_interval(r, 'ndcg')}</td></tr>"
        for r in rows
    )
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def _differences_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>One arm only: no paired comparison.</p>"
    head = "<tr><th class='l'>comparison</th><th class='l'>metric</th><th>difference</th></tr>"
    body = ""
    for r in rows:
        low, high = r.get("low"), r.get("high")
        sure = low is not None and high is not None and (low > 0 or high < 0)
        mark = " <span class='mark best'>CI excludes 0</span>" if sure else ""
        body += (
            f"<tr><td class='l'>{_esc(r['comparison'])}</td><td class='l'>{_esc(r['metric'])}</td>"
            f"<td>{_num(r['difference'])}<span class='ci'>[{_num(low)}, {_num(high)}]</span>"
            f"{mark}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def _retrains(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>No retrain in this replay.</p>"
    items = "".join(
        f"<li>before event {int(r['before_event'])}: "
        f"<b>{'promoted ' + _esc(r['new_version']) if r['promoted'] else 'kept'}</b> "
        f"({_num(r['seconds'], 1)} s) — {_esc(r['reason'])}</li>"
        for r in rows
    )
    return f"<ul class='decisions'>{items}</ul>"


def _facts(settings: dict[str, Any], timings: dict[str, Any]) -> str:
    facts = [
        ("data", settings.get("data")),
        ("model", f"{settings.get('model')} {settings.get('params')}"),
        (
            "initial model",
            f"first {settings.get('initial_fraction')} of the events by time "
            f"({settings.get('n_initial')} interactions)",
        ),
        ("replayed events", settings.get("n_events")),
        ("k", settings.get("k")),
        ("periodic retrain", _periodic(settings)),
        ("intervals", settings.get("interval")),
        (
            "users of the stream unknown to the initial model",
            _num(settings.get("stream_users_unknown_to_initial_model"), 3),
        ),
        (
            "items of the stream unknown to the initial model",
            _num(settings.get("stream_items_unknown_to_initial_model"), 3),
        ),
        ("time shift applied to the events (s)", settings.get("time_offset_s")),
        ("seed", settings.get("seed")),
        (
            "wall time per arm",
            ", ".join(
                f"{a}: {v['seconds']:.1f} s / {v['requests']} requests"
                for a, v in timings.items()
                if isinstance(v, dict)
            ),
        ),
    ]
    return "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts)


def _periodic(settings: dict[str, Any]) -> str:
    if "periodic" not in settings.get("arms", []):
        return "not replayed"
    every = settings.get("retrain_every")
    when = f"every {every} events" if every else f"every {settings.get('retrain_period_s')} s"
    return f"{when}, mode {settings.get('periodic_mode')} (gate: {settings.get('gate')})"


def render_replay_report(replay_dir: str | Path) -> str:
    """HTML text of the replay page of a ``recforge replay`` output directory.

    Raises
    ------
    ConfigError
        If the directory holds no ``replay.json``.
    """
    path = Path(replay_dir) / "replay.json"
    if not path.is_file():
        raise ConfigError(f"{path.parent} holds no replay.json; run 'recforge replay' first")
    doc = json.loads(path.read_text(encoding="utf-8"))
    windows = pd.DataFrame(doc["windows"])
    s = doc["settings"]
    from recforge import __version__

    title = f"recforge replay · {s.get('model')} on {s.get('data')}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="recforge {_esc(__version__)}">
<title>{_esc(title)}</title>
{_style()}
</head>
<body>
<main>
<header class="top"><h1>{_esc(title)}</h1>
<div class="meta">{int(s.get("n_events", 0))} events replayed through the service ·
k={s.get("k")}</div>
</header>
<section class="card" id="replay-overall">
  <h2>Prequential accuracy <small>ask, score, then post each event, in time order</small></h2>
  <div class="scroll">{_overall_table(doc["overall"])}</div>
  <p class="note">Hit rate: share of events whose item was in the top {s.get("k")} the service
  returned just before the event. NDCG: 1/log2(rank+1) of that item (0 when absent). Brackets:
  {_esc(s.get("interval"))}.</p>
</section>
<section class="card" id="replay-windows">
  <h2>Over time <small>windows of consecutive events; shaded: interval</small></h2>
  <figure>{_plots.replay_windows(windows)}</figure>
</section>
<section class="card" id="replay-differences">
  <h2>Paired differences <small>same events, resampled by user</small></h2>
  <div class="scroll">{_differences_table(doc["differences"])}</div>
</section>
<section class="card" id="replay-retrains">
  <h2>Retrains of the periodic arm</h2>
  {_retrains(doc["retrains"])}
</section>
<section class="card" id="replay-settings">
  <h2>Settings</h2>
  <dl class="facts">{_facts(s, doc.get("timings", {}))}</dl>
</section>
<footer>Generated by recforge {_esc(__version__)}. Per-event outcomes:
<span class="mono">replay_events.parquet</span>.</footer>
</main>
</body>
</html>
"""


def build_replay_report(replay_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write ``replay.html`` (or ``output``) for a ``recforge replay`` output directory.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    target = Path(output) if output is not None else Path(replay_dir) / "replay.html"
    atomic_write(target, render_replay_report(replay_dir))
    return target
