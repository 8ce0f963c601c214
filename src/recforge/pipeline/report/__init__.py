"""The self-contained HTML report of a run (inline CSS, plots as inline SVG, no network).

:func:`build_report` reads a run directory written by :func:`recforge.pipeline.runner.run`
and writes ``report.html`` beside it, so ``recforge report RUN_DIR`` can rebuild it any time.
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd

from recforge._io import atomic_write
from recforge.evaluation import SEGMENTS
from recforge.exceptions import ConfigError
from recforge.pipeline.report import _plots
from recforge.pipeline.report._replay import build_replay_report, render_replay_report

__all__ = ["build_replay_report", "build_report", "render_replay_report", "render_report"]

_ACCURACY_ORDER = ("ndcg", "recall", "precision", "map", "hit_rate", "mrr")
_BEYOND_ORDER = ("coverage", "diversity", "novelty", "popularity")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 4) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _esc(value)
    if not np.isfinite(v):
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def _seconds(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if not np.isfinite(v):
        return "–"
    if v < 1:
        return f"{v * 1000:.0f} ms"
    if v < 120:
        return f"{v:.1f} s"
    return f"{v / 60:.1f} min"


def _read_run(run_dir: Path) -> dict[str, Any]:
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise ConfigError(
            f"{run_dir} is not a finished recforge run directory (no metrics.json); "
            "run 'recforge run CONFIG' first"
        )
    doc = json.loads(metrics_path.read_text(encoding="utf-8"))
    out: dict[str, Any] = {"metrics": doc}
    for name in ("data.json", "environment.json", "config.json"):
        p = run_dir / name
        out[name] = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    summary = pd.DataFrame(doc["summary"])
    for col in ("k", "value", "ci_low", "ci_high", "n_users"):
        if col in summary:  # JSON null (no interval, no cutoff) becomes NaN
            summary[col] = pd.to_numeric(summary[col], errors="coerce")
    out["summary"] = summary
    out["significance"] = pd.DataFrame(doc["significance"])
    trials = {}
    for label in doc["model_order"]:
        p = run_dir / "tuning" / label / "trials.csv"
        if p.is_file():
            trials[label] = pd.read_csv(p)
    out["trials"] = trials
    pop_path = run_dir / "popularity.npz"
    rec_pop: dict[str, np.ndarray] = {}
    catalog = np.zeros(0, dtype=np.float32)
    if pop_path.is_file():
        with np.load(pop_path, allow_pickle=False) as z:
            catalog = z["catalog"]
            for i, label in enumerate(doc["model_order"]):
                if f"model_{i}" in z:
                    rec_pop[label] = z[f"model_{i}"]
    out["catalog_pop"] = catalog
    out["rec_pop"] = rec_pop
    return out


def _board(
    summary: pd.DataFrame, metric: str, k: int | None, group: str
) -> tuple[pd.DataFrame, int]:
    """The headline group's rows, metrics without a cutoff shown at the main cutoff.

    Returns the rows and that cutoff (the run's main one, or the middle evaluated cutoff
    when the main metric has none, e.g. RMSE).
    """
    board = summary[summary["group"] == group].copy()
    ks = sorted({int(v) for v in board["k"].dropna()})
    shown = int(k) if k is not None else (ks[len(ks) // 2] if ks else 10)
    board.loc[board["k"].isna(), "k"] = shown
    return board, shown


def _order(summary: pd.DataFrame, metric: str, k: int, best: str) -> list[str]:
    from recforge.evaluation import direction

    sel = summary[(summary["metric"] == metric) & (summary["k"] == k)]
    lower = direction(metric) == "minimize"
    order = sel.sort_values("value", ascending=lower, kind="stable")["model"].astype(str).tolist()
    if best in order:
        order.remove(best)
        order.insert(0, best)
    return order


def _leaderboard(
    summary: pd.DataFrame,
    sig: pd.DataFrame,
    models: dict[str, Any],
    order: list[str],
    metric: str,
    k: int,
    best: str,
) -> str:
    allm = summary[summary["k"] == k]
    present = set(allm["metric"])
    cols = [m for m in _ACCURACY_ORDER if m in present and m != metric]
    cols += [m for m in _BEYOND_ORDER if m in present]
    main = allm[allm["metric"] == metric].set_index("model")
    top = float(main["ci_high"].max()) if len(main) else 1.0
    top = top if np.isfinite(top) and top > 0 else float(main["value"].max() or 1.0)
    head = (
        f"<tr><th>Model</th><th>{_esc(metric)}@{k} <span class='ci'>95% CI</span></th><th></th>"
        + "".join(f"<th>{_esc(c)}</th>" for c in cols)
        + "<th>fit</th><th class='l'>vs best</th></tr>"
    )
    body = []
    for rank, model in enumerate(order, start=1):
        val = lo = hi = float("nan")
        if model in main.index:
            val, lo, hi = (float(main.at[model, c]) for c in ("value", "ci_low", "ci_high"))  # type: ignore[arg-type]
        width = 100 * val / top if np.isfinite(val) else 0
        ci_html = ""
        if np.isfinite(lo) and np.isfinite(hi):
            ci_html = (
                f"<i style='left:{100 * lo / top:.1f}%;width:{100 * (hi - lo) / top:.1f}%'></i>"
            )
        bar = f"<div class='bar'><span style='width:{width:.1f}%'></span>{ci_html}</div>"
        others = []
        for c in cols:
            cell = allm[(allm["metric"] == c) & (allm["model"] == model)]
            others.append(f"<td>{_fmt(cell['value'].iloc[0]) if len(cell) else '–'}</td>")
        if model == best:
            mark = "<span class='mark best'>★ best</span>"
        else:
            tests = sig[sig["model"] == model] if len(sig) else sig
            if len(tests) and bool(tests["significant"].all()):
                p = float(tests["p_adjusted"].max())
                mark = (
                    "<span class='mark worse' title='worse, all tests significant'>"
                    f"▼ p={p:.2g}</span>"
                )
            elif len(tests):
                p = float(tests["p_adjusted"].min())
                mark = f"<span class='mark tie' title='tie: not significant'>≈ p={p:.2g}</span>"
            else:
                mark = "–"
        fit_s = models.get(model, {}).get("fit_s")
        cls = " class='best'" if model == best else ""
        body.append(
            f"<tr{cls}><td><span class='rank'>{rank}</span>{_esc(model)}</td>"
            f"<td>{_fmt(val)}<span class='ci'>[{_fmt(lo)}, {_fmt(hi)}]</span></td>"
            f"<td style='width:90px'>{bar}</td>{''.join(others)}<td>{_seconds(fit_s)}</td>"
            f"<td class='l'>{mark}</td></tr>"
        )
    return f"<table class='leaderboard'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _significance(sig: pd.DataFrame, alpha: float) -> str:
    if sig.empty:
        return "<p class='note'>Only one model: nothing to compare.</p>"
    head = (
        "<tr><th>Model</th><th class='l'>Test</th><th>mean</th><th>best mean</th>"
        "<th>difference</th>"
        "<th>p</th><th>p (adjusted)</th><th class='l'>verdict</th></tr>"
    )
    rows = []
    for r in sig.to_dict("records"):
        verdict = (
            f"<span class='mark worse'>significant at α={alpha:g}</span>"
            if r["significant"]
            else "<span class='mark tie'>not significant</span>"
        )
        rows.append(
            f"<tr><td>{_esc(r['model'])}</td><td class='l'>{_esc(r['test'])}</td>"
            f"<td>{_fmt(r['mean'])}</td><td>{_fmt(r['best_mean'])}</td><td>{_fmt(r['diff'])}</td>"
            f"<td>{float(r['p_value']):.3g}</td><td>{float(r['p_adjusted']):.3g}</td>"
            f"<td class='l'>{verdict}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _models_table(models: dict[str, Any], order: list[str]) -> str:
    head = (
        "<tr><th>Model</th><th class='l'>Parameters</th><th>trials</th><th>pruned</th>"
        "<th>tuning</th><th>overhead / trial</th><th>fit</th><th>recommend</th></tr>"
    )
    rows = []
    for label in order:
        info = models.get(label, {})
        tun = info.get("tuning") or {}
        params = ", ".join(f"{k}={v!r}" for k, v in (info.get("params") or {}).items())
        rows.append(
            f"<tr><td>{_esc(label)}</td><td class='l mono' style='white-space:normal'>"
            f"{_esc(params) or '–'}</td><td>{tun.get('n_trials', '–')}</td>"
            f"<td>{tun.get('n_pruned', '–')}</td><td>{_seconds(tun.get('wall_s'))}</td>"
            f"<td>{_seconds(tun.get('overhead_per_trial_s'))}</td>"
            f"<td>{_seconds(info.get('fit_s'))}</td><td>{_seconds(info.get('recommend_s'))}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _rerank_table(models: dict[str, Any], order: list[str]) -> str:
    """Accuracy versus diversity of each model without and with each re-ranking setting."""
    rows = []
    k = None
    for label in order:
        settings = models.get(label, {}).get("rerank") or []
        base = settings[0] if settings else {}
        for row in settings:
            k = row.get("k", k)
            delta = row.get("ndcg", math.nan) - base.get("ndcg", math.nan)
            rows.append(
                f"<tr><td>{_esc(label)}</td><td class='l'>{_esc(row.get('setting'))}</td>"
                f"<td>{_fmt(row.get('ndcg'))}</td>"
                f"<td>{'–' if row is base else _fmt(delta)}</td>"
                f"<td>{_fmt(row.get('diversity'))}</td><td>{_fmt(row.get('coverage'))}</td></tr>"
            )
    if not rows:
        return (
            "<p class='note'>No re-ranking setting was evaluated (add <code>rerank:</code> "
            "to the run or to a model).</p>"
        )
    at = f"@{k}" if k is not None else ""
    head = (
        f"<tr><th>Model</th><th class='l'>Re-ranking</th><th>NDCG{at}</th><th>Δ NDCG</th>"
        f"<th>diversity{at}</th><th>coverage{at}</th></tr>"
    )
    return f"<table class='rerank'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _split_table(split: dict[str, Any]) -> str:
    parts = split.get("parts") or []
    if not parts:
        return f"<p class='note'>{_esc(split.get('name', ''))}</p>"
    cols = list(parts[0])
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_esc(_fmt(p[c], 3) if isinstance(p[c], float) else p[c])}</td>" for c in cols
        )
        + "</tr>"
        for p in parts
    )
    return (
        f"<p class='note'>Rule: <span class='mono'>{_esc(split.get('name', ''))}</span></p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _facts(items: list[tuple[str, Any]]) -> str:
    return "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items)


def _blocks(
    trials: dict[str, pd.DataFrame], order: list[str], metric: str, notes: dict[str, Any]
) -> tuple[str, str]:
    """The tuning history figure and the list of automatic decisions (``auto``), as HTML."""
    tuning_svg = _plots.tuning_history(trials, order, f"{metric}")
    tuning_block = (
        f"<figure>{tuning_svg}<figcaption>Every trial's validation score over time; the line "
        "is the best so far. Pruned trials are crosses.</figcaption></figure>"
        if tuning_svg
        else "<p class='note'>No model was tuned in this run.</p>"
    )
    decisions_block = ""
    if notes.get("decisions"):
        items = "".join(f"<li>{_esc(d)}</li>" for d in notes["decisions"])
        decisions_block = (
            "<section class='card' id='decisions'><h2>How the candidates were chosen</h2>"
            f"<ul class='decisions'>{items}</ul></section>"
        )

    return tuning_block, decisions_block


def _data_card(data: dict[str, Any]) -> tuple[str, list[tuple[str, Any]]]:
    """KPI tiles and facts of the data card."""
    ds = data.get("summary", {})
    kpis = [
        ("users", ds.get("n_users")),
        ("items", ds.get("n_items")),
        ("interactions", ds.get("n_interactions")),
        ("density", f"{100 * float(ds.get('density', 0)):.2f}%"),
        ("feedback", str(ds.get("feedback") or ("implicit" if ds.get("implicit") else "explicit"))),
    ]
    kpi_html = "".join(
        f"<div class='kpi'><div class='v'>{_esc(f'{v:,}' if isinstance(v, int) else v)}</div>"
        f"<div class='k'>{_esc(n)}</div></div>"
        for n, v in kpis
    )
    ua = ds.get("user_activity", {})
    ip = ds.get("item_popularity", {})
    facts = [
        ("name", ds.get("name", "")),
        ("fingerprint", str(data.get("fingerprint", ""))[:16]),
        ("time range", " → ".join(ds["time_range"]) if ds.get("time_range") else "no timestamps"),
        (
            "interactions per user",
            f"median {ua.get('median', 0):g}, p90 {ua.get('p90', 0):g}, max {ua.get('max', 0):g}",
        ),
        (
            "interactions per item",
            f"median {ip.get('median', 0):g}, p90 {ip.get('p90', 0):g}, max {ip.get('max', 0):g}",
        ),
        ("item attributes", ", ".join(ds.get("item_attributes", [])) or "none"),
    ]
    for rep in data.get("prepare", []):
        facts.append(("preparation", rep.get("step", rep)))
    return kpi_html, facts


def _environment(env: dict[str, Any]) -> list[tuple[str, Any]]:
    """Python, platform, library versions and thread settings of the run."""
    libs = env.get("libraries", {})
    env_items = [
        ("python", env.get("python")),
        ("platform", env.get("platform")),
        ("CPUs", env.get("cpu_count")),
    ]
    env_items += [(k2, v) for k2, v in libs.items() if v]
    env_items += [(k2, v) for k2, v in (env.get("threads") or {}).items() if v]
    return env_items


def _segments_note(summary: pd.DataFrame, metric: str, k: int) -> str:
    seg_rows = summary[
        summary["group"].isin(SEGMENTS) & (summary["metric"] == metric) & (summary["k"] == k)
    ]
    if not len(seg_rows):
        return "No segment data."
    return (
        "Light: least active quarter of the test users with training data; heavy: most active "
        "tenth. Whiskers: 95% CI."
    )


def render_report(run_dir: str | Path) -> str:
    """HTML text of the report of a finished run directory.

    Raises
    ------
    ConfigError
        If the directory holds no finished run.
    """
    run_dir = Path(run_dir)
    run = _read_run(run_dir)
    doc = run["metrics"]
    summary: pd.DataFrame = run["summary"]
    sig: pd.DataFrame = run["significance"]
    metric = doc["main_metric"]["metric"]
    group = str(doc["main_metric"].get("group", "known"))
    board, k = _board(summary, metric, doc["main_metric"]["k"], group)
    label = metric if doc["main_metric"]["k"] is None else f"{metric}@{k}"
    who = "test users" if group == "known" else f"{group} test users"
    best = str(doc["best"])
    order = _order(board, metric, k, best)
    models = doc.get("models", {})
    main_row = board[(board["metric"] == metric) & (board["k"] == k) & (board["model"] == best)]
    acc_metrics = [m for m in _ACCURACY_ORDER if m in set(board["metric"])]
    curve_metrics = [metric, *[m for m in acc_metrics if m != metric][:2]]
    data = run["data.json"]
    ds = data.get("summary", {})
    tuning_block, decisions_block = _blocks(run["trials"], order, metric, doc.get("notes") or {})
    kpi_html, facts = _data_card(data)
    meta = (
        f"{_esc(ds.get('name', ''))} · {len(order)} models · run time {_seconds(doc.get('wall_s'))}"
    )
    ci_text = (
        f"[{_fmt(main_row['ci_low'].iloc[0])}, {_fmt(main_row['ci_high'].iloc[0])}]"
        if len(main_row)
        else "–"
    )
    from recforge import __version__

    template = Template(
        resources.files("recforge.pipeline.report").joinpath("template.html").read_text("utf-8")
    )
    return template.substitute(
        version=_esc(__version__),
        title=_esc(f"recforge · {doc.get('name', 'run')}"),
        meta=meta,
        best=_esc(best),
        main_metric=_esc(label),
        best_value=_fmt(main_row["value"].iloc[0]) if len(main_row) else "–",
        best_ci=ci_text,
        reason=_esc(doc.get("reason", "")),
        leaderboard=_leaderboard(board, sig, models, order, metric, k, best),
        leaderboard_note=_esc(
            f"ranked by {label} on the {who}; every column at K={k}"
            + (f"; {group} users get each model's fallback list" if group == "cold" else "")
        ),
        marks_note=(
            f"★ best · ▼ significantly worse than the best (all paired tests, Holm-corrected, "
            f"α={float(doc.get('alpha', 0.05)):g}) · ≈ not distinguishable from the best. "
            "Bars show the score with its 95% bootstrap CI."
        ),
        plot_curves=_plots.metric_curves(board, curve_metrics, order, best),
        plot_tradeoffs=_plots.accuracy_vs_beyond(board, metric, k, order, best)
        or "<p class='note'>Add coverage/novelty/popularity to evaluation.metrics.</p>",
        plot_popularity=_plots.popularity_bias(run["catalog_pop"], run["rec_pop"], order, best)
        if run["catalog_pop"].size
        else "<p class='note'>No popularity data.</p>",
        plot_segments=_plots.segments(summary, metric, k, order),
        segments_note=_esc(_segments_note(summary, metric, k)),
        tuning_block=tuning_block,
        decisions_block=decisions_block,
        correction="Holm-corrected",
        significance=_significance(sig, float(doc.get("alpha", 0.05))),
        data_kpis=kpi_html,
        data_facts=_facts(facts),
        plot_values=_plots.value_histogram(ds.get("values", {})),
        models_table=_models_table(models, order),
        rerank_table=_rerank_table(models, order),
        split_table=_split_table(doc.get("split", {})),
        environment=_facts(_environment(run["environment.json"])),
        run_dir_name=_esc(run_dir.name),
    )


def build_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the report of a run directory.

    Parameters
    ----------
    run_dir
        A finished run directory.
    output
        Target file (default ``RUN_DIR/report.html``).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    run_dir = Path(run_dir)
    target = Path(output) if output is not None else run_dir / "report.html"
    text = render_report(run_dir)
    atomic_write(target, text)
    return target
