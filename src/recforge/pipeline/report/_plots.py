"""Plots of the report as inline SVG strings (matplotlib, Agg backend, text kept as text)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PALETTE",
    "accuracy_vs_beyond",
    "metric_curves",
    "popularity_bias",
    "replay_windows",
    "segments",
    "tuning_history",
    "value_histogram",
]

#: Colour-blind friendly palette (Okabe–Ito, reordered); the winner always gets the first.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
#: figure widths (inches) of full-width and half-width cards at their natural size
FULL_W = 10.6
HALF_W = 4.9


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "font.family": "sans-serif",
            "font.sans-serif": ["Inter", "Helvetica Neue", "Arial", "DejaVu Sans"],
            "font.size": 10,
            "axes.edgecolor": GRID,
            "axes.labelcolor": INK,
            "axes.titlesize": 11,
            "axes.titleweight": "bold",
            "axes.titlecolor": INK,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": GRID,
            "grid.linewidth": 0.8,
            "xtick.color": MUTED,
            "ytick.color": MUTED,
            "legend.frameon": False,
            "svg.hashsalt": "recforge",  # stable ids: same run -> same file
        }
    )
    return plt


def colors(models: Sequence[str]) -> dict[str, str]:
    """Stable colour per model (in the given order; the winner should come first)."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def to_svg(fig: Any) -> str:
    """Serialise a figure as a responsive inline ``<svg>`` element and close it."""
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    return svg.replace("<svg", '<svg role="img" class="plot"', 1)


def metric_curves(
    summary: pd.DataFrame, metrics: Sequence[str], order: Sequence[str], best: str
) -> str:
    """Metric@K lines, one panel per metric, one line per model."""
    plt = _plt()
    allm = summary
    metrics = [m for m in metrics if m in set(allm["metric"])] or list(allm["metric"].unique())[:1]
    col = colors(order)
    fig, axes = plt.subplots(1, len(metrics), figsize=(FULL_W, 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for model in order:
            part = allm[(allm["metric"] == metric) & (allm["model"] == model)].sort_values("k")
            if part.empty:
                continue
            lw = 2.6 if model == best else 1.5
            ax.plot(
                part["k"], part["value"], marker="o", ms=4, lw=lw, color=col[model], label=model
            )
            if part["ci_low"].notna().all():
                ax.fill_between(
                    part["k"], part["ci_low"], part["ci_high"], color=col[model], alpha=0.12, lw=0
                )
        ax.set_title(f"{metric}@K")
        ax.set_xlabel("K")
        ax.set_xticks(sorted(allm["k"].unique()))
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return to_svg(fig)


def accuracy_vs_beyond(
    summary: pd.DataFrame, metric: str, k: int, order: Sequence[str], best: str
) -> str:
    """Scatter of the main accuracy metric against coverage, novelty and popularity."""
    plt = _plt()
    allm = summary[summary["k"] == k]
    wide = allm.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    others = [m for m in ("coverage", "diversity", "novelty", "popularity") if m in wide.columns]
    if metric not in wide.columns or not others:
        return ""
    col = colors(order)
    fig, axes = plt.subplots(1, len(others), figsize=(FULL_W, 3.4), squeeze=False)
    nice = {
        "coverage": "catalog coverage →",
        "diversity": "intra-list diversity →",
        "novelty": "novelty (bits) →",
        "popularity": "← mean popularity of recs",
    }
    for ax, other in zip(axes[0], others, strict=True):
        for model in wide.index:
            x, y = wide.loc[model, other], wide.loc[model, metric]
            ax.scatter(
                [x],
                [y],
                s=90 if model == best else 50,
                color=col.get(model, MUTED),
                edgecolor="white",
                linewidth=1.2,
                zorder=3,
            )
            ax.annotate(
                str(model),
                (x, y),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=8.5,
                color=INK,
            )
        if other == "popularity":
            ax.invert_xaxis()
        ax.set_xlabel(nice[other])
        ax.set_ylabel(f"{metric}@{k}")
    fig.tight_layout()
    return to_svg(fig)


def popularity_bias(
    catalog_pop: np.ndarray, rec_pop: Mapping[str, np.ndarray], order: Sequence[str], best: str
) -> str:
    """Distribution of recommended items' training popularity against the catalog's."""
    plt = _plt()
    col = colors(order)
    fig, ax = plt.subplots(figsize=(HALF_W, 3.4))
    hi = max(
        [float(catalog_pop.max(initial=1.0))]
        + [float(v.max(initial=1.0)) for v in rec_pop.values()]
    )
    bins = np.unique(np.concatenate([[0.0], np.geomspace(1.0, hi + 1.0, 30)]))
    weights = np.full(catalog_pop.size, 1.0 / max(catalog_pop.size, 1))
    ax.hist(
        catalog_pop,
        bins=bins,
        weights=weights,
        color="#cbd2d9",
        label="catalog (items)",
        histtype="stepfilled",
    )
    for model in order:
        vals = rec_pop.get(model)
        if vals is None or vals.size == 0:
            continue
        w = np.full(vals.size, 1.0 / vals.size)
        ax.hist(
            vals,
            bins=bins,
            weights=w,
            histtype="step",
            lw=2.4 if model == best else 1.4,
            color=col[model],
            label=model,
        )
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("training interactions of the item (log scale)")
    ax.set_ylabel("share")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8.5)
    fig.tight_layout()
    return to_svg(fig)


def segments(summary: pd.DataFrame, metric: str, k: int, order: Sequence[str]) -> str:
    """Grouped bars of ``metric@k`` by user segment, with CI whiskers."""
    plt = _plt()
    part = summary[(summary["metric"] == metric) & (summary["k"] == k)]
    groups = [g for g in ("light", "regular", "heavy") if g in set(part["group"])]
    if not groups:
        return ""
    col = colors(order)
    fig, ax = plt.subplots(figsize=(HALF_W, 3.4))
    width = 0.8 / max(len(order), 1)
    for i, model in enumerate(order):
        rows = part[part["model"] == model].set_index("group").reindex(groups)
        x = np.arange(len(groups)) + (i - (len(order) - 1) / 2) * width
        err = np.vstack([rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]])
        ax.bar(
            x,
            rows["value"],
            width * 0.92,
            color=col[model],
            label=model,
            yerr=np.nan_to_num(err),
            error_kw={"ecolor": MUTED, "elinewidth": 1, "capsize": 2},
        )
    n_users = part.groupby("group")["n_users"].max().reindex(groups)
    ax.set_xticks(np.arange(len(groups)), [f"{g}\n({int(n)} users)" for g, n in n_users.items()])
    ax.set_ylabel(f"{metric}@{k}")
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, fontsize=8.5)
    fig.tight_layout()
    return to_svg(fig)


def tuning_history(trials: Mapping[str, pd.DataFrame], order: Sequence[str], metric: str) -> str:
    """Trial values over wall time with the running best, per tuned model."""
    if not trials:
        return ""
    plt = _plt()
    col = colors(order)
    fig, ax = plt.subplots(figsize=(FULL_W, 3.2))
    for model in order:
        t = trials.get(model)
        if t is None or t.empty:
            continue
        t = t.sort_values("number")
        x = (t["start_s"] + t["duration_s"].fillna(0)).to_numpy(dtype=float)
        if not np.isfinite(x).all():
            x = t["number"].to_numpy(dtype=float)
        v = pd.to_numeric(t["value"], errors="coerce").to_numpy(dtype=float)
        ok = t["state"].to_numpy() == "COMPLETE"
        ax.scatter(x[ok], v[ok], s=14, color=col[model], alpha=0.55, lw=0)
        pruned = ~ok
        if pruned.any():
            ax.scatter(
                x[pruned],
                np.full(pruned.sum(), np.nanmin(v[ok]) if ok.any() else 0.0),
                marker="x",
                s=14,
                color=col[model],
                alpha=0.5,
                lw=1,
            )
        best = np.fmax.accumulate(np.where(ok, v, np.nan))
        ax.step(x, best, where="post", color=col[model], lw=1.8, label=model)
    ax.set_xlabel("seconds since the search began (× pruned)")
    ax.set_ylabel(f"validation {metric}")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return to_svg(fig)


def value_histogram(values: Mapping[str, int], activity: Mapping[str, float] | None = None) -> str:
    """Bar chart of rating values (explicit data)."""
    if not values:
        return ""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(HALF_W, 2.6))
    keys = list(values)
    ax.bar(keys, [values[k] for k in keys], color=PALETTE[0], width=0.7)
    ax.set_xlabel("rating value")
    ax.set_ylabel("interactions")
    ax.grid(axis="x", visible=False)
    fig.tight_layout()
    return to_svg(fig)


def replay_windows(windows: pd.DataFrame) -> str:
    """Hit rate and NDCG per window of a replay, one line per arm, intervals shaded."""
    plt = _plt()
    arms = list(dict.fromkeys(windows["arm"])) if len(windows) else []
    col = colors(arms)
    fig, axes = plt.subplots(1, 2, figsize=(FULL_W, 3.2), squeeze=False)
    for ax, (metric, label) in zip(
        axes[0], (("hit_rate", "hit rate"), ("ndcg", "NDCG")), strict=True
    ):
        for arm in arms:
            part = windows[windows["arm"] == arm].sort_values("window")
            x = part["window"].to_numpy() + 1
            ax.plot(x, part[metric], marker="o", ms=4, lw=1.8, color=col[arm], label=arm)
            low = pd.to_numeric(part[f"{metric}_low"], errors="coerce")
            high = pd.to_numeric(part[f"{metric}_high"], errors="coerce")
            ax.fill_between(x, low, high, color=col[arm], alpha=0.12, lw=0)
        ax.set_title(label)
        ax.set_xlabel("window of consecutive events")
    if arms:
        axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return to_svg(fig)
