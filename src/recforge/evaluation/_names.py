"""Names the evaluation engine understands: metrics, their kinds and directions, user groups.

Every metric name a user can write (in ``evaluate()``, ``recforge evaluate``, ``recforge.yaml``,
``tune``, ``auto`` or the retrain gate) is validated here, and only here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Literal

from recforge.exceptions import ConfigError

__all__ = [
    "DEFAULT_METRICS",
    "GROUPS",
    "LIST_METRICS",
    "RATING_METRICS",
    "SCORE_METRICS",
    "SEGMENTS",
    "check_metrics",
    "direction",
    "is_per_user",
    "metric_kind",
    "parse_metric",
]

#: Metrics computed when none are named: accuracy of the lists and two beyond-accuracy views.
DEFAULT_METRICS: tuple[str, ...] = (
    "precision",
    "recall",
    "ndcg",
    "map",
    "mrr",
    "hit_rate",
    "coverage",
    "novelty",
)
#: Metrics of rating prediction (models with ``supports_predict`` on explicit data); no cutoff.
RATING_METRICS: tuple[str, ...] = ("rmse", "mae")
#: Metrics of the full score rows rather than top-K lists; no cutoff.
SCORE_METRICS: tuple[str, ...] = ("auc",)
#: Metrics of one list for the whole batch of users (no per-user values).
LIST_METRICS: tuple[str, ...] = ("coverage", "gini")
#: User groups: ``known`` test users have training interactions, ``cold`` users have none.
GROUPS: tuple[str, ...] = ("known", "cold")
#: Activity segments of known users: the least active quarter, the most active tenth, the rest.
SEGMENTS: tuple[str, ...] = ("light", "regular", "heavy")

MetricKind = Literal["ranking", "beyond", "score", "rating"]
_LOWER_IS_BETTER = frozenset(RATING_METRICS)
_METRIC_AT = re.compile(r"^\s*([A-Za-z_\-]+)\s*(?:@\s*(\d{1,5}))?\s*$")


def _known() -> dict[str, MetricKind]:
    from recforge.metrics import BEYOND_METRICS, RANKING_METRICS

    kinds: dict[str, MetricKind] = {name: "ranking" for name in RANKING_METRICS}
    kinds.update({name: "beyond" for name in BEYOND_METRICS})
    kinds.update({name: "score" for name in SCORE_METRICS})
    kinds.update({name: "rating" for name in RATING_METRICS})
    return kinds


def _normalise(name: object) -> str:
    return str(name).strip().lower().replace("-", "_")


def metric_kind(name: str) -> MetricKind:
    """``"ranking"``, ``"beyond"``, ``"score"`` or ``"rating"``; raises on unknown names."""
    return _known()[check_metrics([name])[0]]


def check_metrics(
    names: str | Iterable[str], *, kinds: Iterable[MetricKind] | None = None, what: str = "metric"
) -> list[str]:
    """Validated, normalised metric names (lower case, ``-`` as ``_``), duplicates dropped.

    Parameters
    ----------
    names
        One name or several.
    kinds
        Allowed kinds (default: all).
    what
        How the caller calls the setting in messages (e.g. ``"tuning.metric"``).

    Raises
    ------
    ConfigError
        Naming the unknown metric, the nearest known one and every valid name.
    """
    values = [names] if isinstance(names, str) else list(names)
    if not values:
        raise ConfigError(f"{what} is empty: name at least one metric")
    known = _known()
    allowed = set(kinds) if kinds is not None else set(known.values())
    valid = [n for n, kind in known.items() if kind in allowed]
    out: list[str] = []
    for name in values:
        key = _normalise(name)
        if key not in valid:
            if key in known:
                raise ConfigError(
                    f"{what} {name!r} is a {known[key]} metric, not usable here; {what} must "
                    f"be one of {', '.join(valid)}"
                )
            near = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"unknown {what} {name!r}{hint} (metrics: {', '.join(valid)})")
        if key not in out:
            out.append(key)
    return out


def parse_metric(
    text: str, *, default_k: int | None = None, what: str = "metric"
) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``"rmse"`` -> ``("rmse", None)``.

    Metrics with a cutoff need one (``@k`` or ``default_k``); ``rmse``, ``mae`` and ``auc``
    take none.

    Raises
    ------
    ConfigError
        On a malformed text, an unknown metric, a missing or superfluous cutoff.
    """
    m = _METRIC_AT.match(str(text))
    if not m:
        raise ConfigError(f"{what} must look like 'ndcg@10' or 'rmse', got {text!r}")
    name = check_metrics([m.group(1)], what=what)[0]
    k = int(m.group(2)) if m.group(2) is not None else None
    needs_k = name not in RATING_METRICS and name not in SCORE_METRICS
    if needs_k:
        k = k if k is not None else default_k
        if k is None or k < 1:
            raise ConfigError(f"{what} {text!r} needs a positive cutoff, e.g. '{name}@10'")
    elif k is not None:
        raise ConfigError(f"{what} {text!r}: {name} takes no cutoff")
    return name, k


def direction(name: str) -> Literal["maximize", "minimize"]:
    """Whether a larger value of ``name`` is better (``"maximize"``) or worse."""
    return "minimize" if check_metrics([name])[0] in _LOWER_IS_BETTER else "maximize"


def is_per_user(name: str) -> bool:
    """Whether ``name`` has one value per user (everything but the list-level metrics)."""
    return check_metrics([name])[0] not in LIST_METRICS
