"""Preparation steps: deduplication, activity filters, k-core, implicit conversion, weighting.

Every step takes a :class:`~recforge.data.Dataset` and returns ``(new_dataset, report)``: the
input is never changed, and the :class:`PrepareReport` says what was removed and why.
:func:`apply_steps` runs a list of named steps from configuration dictionaries, e.g. those of
``recforge.yaml``::

    steps = [{"step": "deduplicate", "policy": "last"}, {"step": "k_core", "k": 5}]
    dataset, reports = apply_steps(dataset, steps)

Users and items that *lose* all their interactions in a filtering step are dropped from the id
indices (and attribute tables), so models do not score entities with no data left; entities that
had no interactions to begin with (known from attribute tables only) are kept. A filtering step
that removes every interaction warns with :class:`~recforge.exceptions.DataWarning`.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from recforge.data import weighting
from recforge.data._dataset import Dataset
from recforge.data._idindex import IdIndex
from recforge.exceptions import ConfigError, DataError, DataWarning

__all__ = [
    "STEPS",
    "PrepareReport",
    "apply_steps",
    "deduplicate",
    "filter_min_counts",
    "k_core",
    "to_implicit",
    "validate_steps",
    "weight",
]

DedupPolicy = Literal["first", "last", "sum", "max", "mean"]
_POLICIES: tuple[str, ...] = ("first", "last", "sum", "max", "mean")


@dataclass(frozen=True)
class PrepareReport:
    """What one preparation step did.

    Attributes
    ----------
    step : str
        Name of the step (as used in :func:`apply_steps`).
    params : dict
        The parameters it ran with.
    n_before, n_after : int
        Interactions before and after.
    removed : dict of str to int
        Removed interactions per reason (empty when nothing was removed).
    users_dropped, items_dropped : int
        Users / items that lost all their interactions and were dropped from the index.
    values_changed : int
        Interactions kept whose value changed (implicit conversion, weighting, aggregation).
    """

    step: str
    params: dict[str, Any]
    n_before: int
    n_after: int
    removed: dict[str, int] = field(default_factory=dict)
    users_dropped: int = 0
    items_dropped: int = 0
    values_changed: int = 0

    @property
    def n_removed(self) -> int:
        """Number of interactions removed."""
        return self.n_before - self.n_after

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary."""
        return {
            "step": self.step,
            "params": dict(self.params),
            "n_before": self.n_before,
            "n_after": self.n_after,
            "removed": dict(self.removed),
            "users_dropped": self.users_dropped,
            "items_dropped": self.items_dropped,
            "values_changed": self.values_changed,
        }

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        text = f"{self.step}({args}): {self.n_before:,} -> {self.n_after:,} interactions"
        if self.removed:
            reasons = "; ".join(f"{r}: {c:,}" for r, c in self.removed.items())
            text += f" (removed {self.n_removed:,}: {reasons})"
        if self.users_dropped or self.items_dropped:
            text += (
                f"; dropped {self.users_dropped:,} users and {self.items_dropped:,} items "
                "left without interactions"
            )
        if self.values_changed:
            text += f"; {self.values_changed:,} values changed"
        return text


def _check_int(name: str, step: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(
            f"The {name!r} parameter of {step} must be an int >= {minimum}. Got {value!r} instead."
        )
    return int(value)


def _keep_rows(ds: Dataset, keep: np.ndarray) -> tuple[Dataset, int, int]:
    """Dataset with rows ``keep`` (bool mask); drops users/items that lost all interactions.

    Returns the dataset and the numbers of users and items dropped.
    """
    had_u = np.bincount(ds.user, minlength=ds.n_users) > 0
    had_i = np.bincount(ds.item, minlength=ds.n_items) > 0
    user, item = ds.user[keep], ds.item[keep]
    has_u = np.bincount(user, minlength=ds.n_users) > 0
    has_i = np.bincount(item, minlength=ds.n_items) > 0
    keep_u = has_u | ~had_u
    keep_i = has_i | ~had_i
    users, items = ds.users, ds.items
    uattr, iattr = ds.user_attributes, ds.item_attributes
    if not keep_u.all():
        user = (np.cumsum(keep_u) - 1).astype(np.int32)[user]
        users = IdIndex(ds.users.ids[keep_u])
        if uattr is not None:
            uattr = uattr.loc[uattr.index.isin(users.ids)]
    if not keep_i.all():
        item = (np.cumsum(keep_i) - 1).astype(np.int32)[item]
        items = IdIndex(ds.items.ids[keep_i])
        if iattr is not None:
            iattr = iattr.loc[iattr.index.isin(items.ids)]
    out = Dataset(
        user=np.ascontiguousarray(user, dtype=np.int32),
        item=np.ascontiguousarray(item, dtype=np.int32),
        value=ds.value[keep].copy(),
        time=None if ds.time is None else ds.time[keep].copy(),
        users=users,
        items=items,
        item_attributes=iattr,
        user_attributes=uattr,
        name=ds.name,
    )
    return out, int((~keep_u).sum()), int((~keep_i).sum())


def _filter_rows(
    ds: Dataset, keep: np.ndarray, step: str, params: dict[str, Any], removed: dict[str, int]
) -> tuple[Dataset, PrepareReport]:
    """Rows ``keep`` of ``ds`` (see :func:`_keep_rows`) and the report of the filtering ``step``.

    ``removed`` maps reasons to counts; reasons with a zero count are left out. Warns with
    :class:`DataWarning` when the step removed every interaction.
    """
    out, du, di = _keep_rows(ds, keep)
    if ds.n_interactions and not out.n_interactions:
        warnings.warn(
            f"{step} removed all {ds.n_interactions} interactions of {ds.name!r}",
            DataWarning,
            stacklevel=3,
        )
    report = PrepareReport(
        step=step,
        params=params,
        n_before=ds.n_interactions,
        n_after=out.n_interactions,
        removed={reason: n for reason, n in removed.items() if n},
        users_dropped=du,
        items_dropped=di,
    )
    return out, report


def _pair_keys(ds: Dataset) -> np.ndarray:
    return ds.user.astype(np.int64) * max(ds.n_items, 1) + ds.item.astype(np.int64)


def deduplicate(ds: Dataset, policy: DedupPolicy = "first") -> tuple[Dataset, PrepareReport]:
    """Keep one interaction per (user, item) pair.

    Parameters
    ----------
    ds
        Input dataset.
    policy
        ``"first"`` / ``"last"`` keep the earliest / latest interaction (by time when the
        dataset has times, ties and time-less data by row order); ``"sum"``, ``"max"`` and
        ``"mean"`` aggregate the values of the pair and keep the latest time.

    Returns
    -------
    dataset, report
        Rows stay in their original order (an aggregated pair sits where its latest
        interaction was).

    Raises
    ------
    ConfigError
        On an unknown policy.

    Examples
    --------
    >>> import pandas as pd
    >>> ds = Dataset.from_frame(
    ...     pd.DataFrame({"user": [1, 1, 2], "item": [5, 5, 5], "r": [1.0, 3.0, 2.0]}), value="r"
    ... )
    >>> out, report = deduplicate(ds, "sum")
    >>> out.value.tolist(), report.n_removed
    ([4.0, 2.0], 1)
    """
    if policy not in _POLICIES:
        raise ConfigError(
            f"The 'policy' parameter of deduplicate must be one of {', '.join(_POLICIES)}. "
            f"Got {policy!r} instead."
        )
    n = ds.n_interactions
    key = _pair_keys(ds)
    pos = np.arange(n, dtype=np.int64)
    order = (
        np.lexsort((pos, ds.time, key)) if ds.time is not None else np.argsort(key, kind="stable")
    )
    sk = key[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]]) if n else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], n] - 1 if n else np.zeros(0, np.int64)
    rep = order[starts] if policy == "first" else order[ends]
    if policy in ("first", "last"):
        value = ds.value[rep]
    else:
        sv = ds.value[order].astype(np.float64)
        if policy == "max":
            agg = np.maximum.reduceat(sv, starts) if n else sv
        else:
            agg = np.add.reduceat(sv, starts) if n else sv
            if policy == "mean":
                agg = agg / (ends - starts + 1)
        value = agg.astype(np.float32)
    o = np.argsort(rep, kind="stable")
    rows, value = rep[o], value[o]
    changed = int(np.count_nonzero(value != ds.value[rows]))
    out = ds.with_interactions(
        ds.user[rows], ds.item[rows], value, None if ds.time is None else ds.time[rows]
    )
    removed = n - rows.size
    report = PrepareReport(
        step="deduplicate",
        params={"policy": policy},
        n_before=n,
        n_after=int(rows.size),
        removed={"duplicate (user, item) pair": removed} if removed else {},
        values_changed=changed,
    )
    return out, report


def filter_min_counts(
    ds: Dataset, min_user: int = 1, min_item: int = 1
) -> tuple[Dataset, PrepareReport]:
    """Remove interactions of users and items with too few interactions (one pass).

    Counts are taken once on the input (rows, so duplicates count; deduplicate first to count
    distinct items). Removing rare items can leave users below ``min_user``; use
    :func:`k_core` to iterate until every count holds.

    Parameters
    ----------
    ds
        Input dataset.
    min_user, min_item
        Minimum number of interactions of a user / an item for its interactions to be kept.

    Returns
    -------
    dataset, report
    """
    min_user = _check_int("min_user", "filter_min_counts", min_user)
    min_item = _check_int("min_item", "filter_min_counts", min_item)
    uc = np.bincount(ds.user, minlength=ds.n_users)
    ic = np.bincount(ds.item, minlength=ds.n_items)
    bad_u = uc[ds.user] < min_user
    bad_i = (ic[ds.item] < min_item) & ~bad_u
    return _filter_rows(
        ds,
        ~(bad_u | bad_i),
        "filter_min_counts",
        {"min_user": min_user, "min_item": min_item},
        {
            f"user has fewer than {min_user} interactions": int(bad_u.sum()),
            f"item has fewer than {min_item} interactions": int(bad_i.sum()),
        },
    )


def _first_given(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def k_core(
    ds: Dataset,
    k_user: int | None = None,
    k_item: int | None = None,
    *,
    k: int | None = None,
) -> tuple[Dataset, PrepareReport]:
    """Iteratively remove users and items with fewer than ``k`` interactions until stable.

    After the call every remaining user has at least ``k_user`` and every remaining item at
    least ``k_item`` interactions (rows; deduplicate first to count distinct pairs). Each
    round is one vectorised pass, so the cost is a few passes over the arrays.

    Parameters
    ----------
    ds
        Input dataset.
    k_user, k_item
        Minimum interactions per user / item. One not given defaults to ``k``, or else to
        the other (``k_core(ds, 5)`` is the symmetric 5-core; pass ``k_item=0`` to filter
        users only).
    k
        Shorthand for both.

    Returns
    -------
    dataset, report

    Raises
    ------
    ConfigError
        If neither ``k`` nor ``k_user`` / ``k_item`` is given, or one is negative.
    """
    if k is None and k_user is None and k_item is None:
        raise ConfigError("k_core needs 'k' or 'k_user'/'k_item' (minimum interactions)")
    ku = _check_int("k_user", "k_core", _first_given(k_user, k, k_item))
    ki = _check_int("k_item", "k_core", _first_given(k_item, k, k_user))
    keep = np.ones(ds.n_interactions, dtype=bool)
    user, item = ds.user, ds.item
    n_user_rows = n_item_rows = 0
    rounds = 0
    while True:
        uc = np.bincount(user[keep], minlength=ds.n_users)
        ic = np.bincount(item[keep], minlength=ds.n_items)
        bad_u = keep & (uc[user] < ku)
        bad_i = keep & (ic[item] < ki) & ~bad_u
        if not (bad_u.any() or bad_i.any()):
            break
        n_user_rows += int(bad_u.sum())
        n_item_rows += int(bad_i.sum())
        keep &= ~(bad_u | bad_i)
        rounds += 1
    return _filter_rows(
        ds,
        keep,
        "k_core",
        {"k_user": ku, "k_item": ki},
        {
            f"user below {ku} interactions": n_user_rows,
            f"item below {ki} interactions": n_item_rows,
        },
    )


def to_implicit(ds: Dataset, threshold: float | None = None) -> tuple[Dataset, PrepareReport]:
    """Convert to implicit feedback: keep interactions with ``value >= threshold``, set to 1.

    Parameters
    ----------
    ds
        Input dataset.
    threshold
        Minimum value kept (e.g. 4.0 to keep "liked" ratings); ``None`` keeps every
        interaction.

    Returns
    -------
    dataset, report
    """
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
            raise ConfigError(
                f"The 'threshold' parameter of to_implicit must be a number or None. "
                f"Got {threshold!r} instead."
            )
        if not np.isfinite(threshold):
            raise ConfigError(
                f"The 'threshold' parameter of to_implicit must be finite. Got {threshold!r}."
            )
        keep = ds.value >= np.float32(threshold)
    else:
        keep = np.ones(ds.n_interactions, dtype=bool)
    removed = {} if threshold is None else {f"value below {threshold:g}": int((~keep).sum())}
    out, report = _filter_rows(ds, keep, "to_implicit", {"threshold": threshold}, removed)
    changed = int(np.count_nonzero(out.value != 1.0))
    out = out.with_interactions(
        out.user, out.item, np.ones(out.n_interactions, dtype=np.float32), out.time
    )
    return out, replace(report, values_changed=changed)


def _scheme_params(scheme: str) -> list[str]:
    funcs: dict[str, Callable[..., Any]] = {
        "linear": weighting.linear_confidence,
        "log": weighting.log_confidence,
        "bm25": weighting.bm25,
        "tfidf": weighting.tfidf,
    }
    if scheme == "none":
        return []
    return list(inspect.signature(funcs[scheme]).parameters)[1:]


def weight(ds: Dataset, scheme: str = "bm25", **kwargs: float) -> tuple[Dataset, PrepareReport]:
    """Re-weight interaction values with a scheme of :mod:`recforge.data.weighting`.

    Parameters
    ----------
    ds
        Input dataset without duplicate (user, item) pairs.
    scheme
        ``"linear"`` (``alpha * r``), ``"log"`` (``alpha * log(1 + r / eps)``), ``"bm25"``
        (``k1``, ``b``), ``"tfidf"`` or ``"none"``.
    **kwargs
        Parameters of the scheme (``alpha``, ``eps``, ``k1``, ``b``).

    Returns
    -------
    dataset, report
        Rows (and times) are unchanged; only values change.

    Raises
    ------
    ConfigError
        On an unknown scheme or parameter.
    DataError
        If the dataset has duplicate (user, item) pairs (weights are per pair; run
        :func:`deduplicate` first).
    """
    if scheme not in weighting.SCHEMES:
        raise ConfigError(
            f"The 'scheme' parameter of weight must be one of {', '.join(weighting.SCHEMES)}. "
            f"Got {scheme!r} instead."
        )
    allowed = _scheme_params(scheme)
    for name, val in kwargs.items():
        if name not in allowed:
            raise ConfigError(
                f"weight(scheme={scheme!r}) has no parameter {name!r} "
                f"(parameters: {', '.join(allowed) or 'none'})"
            )
        if isinstance(val, bool) or not isinstance(val, int | float | np.number):
            raise ConfigError(
                f"The {name!r} parameter of weight must be a number. Got {val!r} instead."
            )
    key = _pair_keys(ds)
    n_pairs = int(np.unique(key).size)
    if n_pairs != ds.n_interactions:
        raise DataError(
            f"weight: dataset {ds.name!r} has {ds.n_interactions - n_pairs} duplicate "
            "(user, item) pairs; weights are per pair, run deduplicate first"
        )
    m = ds.matrix()
    w = weighting.weight_matrix(m, scheme, **kwargs)
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    csr_key = rows * max(ds.n_items, 1) + m.indices.astype(np.int64)
    pos = np.searchsorted(csr_key, key)
    pos = np.minimum(pos, max(csr_key.size - 1, 0))
    found = csr_key[pos] == key if csr_key.size else np.zeros(key.size, dtype=bool)
    value = np.where(found, w.data[pos] if csr_key.size else 0.0, 0.0).astype(np.float32)
    out = ds.with_interactions(ds.user, ds.item, value, ds.time)
    report = PrepareReport(
        step="weight",
        params={"scheme": scheme, **kwargs},
        n_before=ds.n_interactions,
        n_after=out.n_interactions,
        values_changed=int(np.count_nonzero(value != ds.value)),
    )
    return out, report


#: Steps available to :func:`apply_steps`, by name.
STEPS: dict[str, Callable[..., tuple[Dataset, PrepareReport]]] = {
    "deduplicate": deduplicate,
    "filter_min_counts": filter_min_counts,
    "k_core": k_core,
    "to_implicit": to_implicit,
    "weight": weight,
}


def validate_steps(steps: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Check step specifications (as :func:`apply_steps` takes them) without running them.

    Returns
    -------
    list of (name, parameters)

    Raises
    ------
    ConfigError
        As :func:`apply_steps` does, naming the step's position.
    """
    if isinstance(steps, Mapping | str) or not isinstance(steps, Sequence):
        raise ConfigError(f"steps must be a list of mappings, got {type(steps).__name__}")
    plan: list[tuple[str, dict[str, Any]]] = []
    for i, spec in enumerate(steps):
        if not isinstance(spec, Mapping):
            raise ConfigError(f"steps[{i}] must be a mapping, got {type(spec).__name__}")
        if "step" not in spec:
            raise ConfigError(
                f"steps[{i}] has no 'step' key naming the step (steps: {', '.join(STEPS)})"
            )
        name = spec["step"]
        if name not in STEPS:
            raise ConfigError(f"steps[{i}]: unknown step {name!r} (steps: {', '.join(STEPS)})")
        params = {k: v for k, v in spec.items() if k != "step"}
        sig = inspect.signature(STEPS[name])
        allowed = [p for p in sig.parameters if p not in ("ds", "kwargs")]
        if name == "weight":
            scheme = params.get("scheme", "bm25")
            if scheme in weighting.SCHEMES:
                allowed = ["scheme", *_scheme_params(scheme)]
        for key in params:
            if key not in allowed:
                raise ConfigError(
                    f"steps[{i}] ({name}): unknown parameter {key!r} "
                    f"(parameters: {', '.join(allowed)})"
                )
        plan.append((name, params))
    return plan


def apply_steps(
    ds: Dataset, steps: Sequence[Mapping[str, Any]]
) -> tuple[Dataset, list[PrepareReport]]:
    """Run named preparation steps from configuration dictionaries, in order.

    Parameters
    ----------
    ds
        Input dataset.
    steps
        One mapping per step: ``{"step": <name>, **parameters}`` with a name of
        :data:`STEPS`, e.g. ``[{"step": "deduplicate", "policy": "last"},
        {"step": "k_core", "k": 5}]``.

    Returns
    -------
    dataset, reports
        The prepared dataset and one report per step.

    Raises
    ------
    ConfigError
        On a step that is not a mapping, lacks ``"step"``, names an unknown step or passes an
        unknown or invalid parameter; the message gives the step's position.
    """
    # Validate everything before running anything, so a typo in the last step fails fast.
    plan = validate_steps(steps)
    reports: list[PrepareReport] = []
    for i, (name, params) in enumerate(plan):
        try:
            ds, report = STEPS[name](ds, **params)
        except ConfigError as exc:
            raise ConfigError(f"steps[{i}] ({name}): {exc}") from exc
        reports.append(report)
    return ds, reports
