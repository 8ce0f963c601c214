"""Shared helpers of the benchmark scripts: data, splits, full-ranking metrics, timing, memory.

Every benchmark runs recforge and its peers side by side on the same data and the same split
in one process, so the figures are comparable. Conventions:

* Data come from the MovieLens copies beside the project (``../shared/data`` relative to the
  repository root); :func:`load_ratings` returns a frame with columns ``user, item, rating,
  timestamp`` whose ``user``/``item`` are already contiguous codes ``0..n-1`` (so external ids
  and internal codes coincide for every library).
* :func:`per_user_split` holds out a random 20 % of each user's interactions for the test and,
  inside the remaining 80 %, another fraction for validation (tuning); final models are fitted
  on ``train_full`` (= ``train`` + ``valid``) and evaluated on ``test``.
* :func:`ranking_metrics` scores top-K lists produced over the full catalog (training items
  excluded) against the held-out items.
* :func:`measure` times a callable several times and reports the median and the peak resident
  memory increase.

This module is imported by the scripts in ``benchmarks/``; it is not part of the package.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "DATA_DIR",
    "HoldoutSplit",
    "Measurement",
    "binarize",
    "csr_from_frame",
    "environment",
    "grid_search",
    "kfold",
    "load_ratings",
    "markdown_table",
    "measure",
    "per_user_split",
    "ranking_metrics",
    "rating_metrics",
    "to_dataset",
    "topk_from_scores",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: MovieLens copies beside the repository (``../shared/data`` from the repository root).
DATA_DIR = REPO_ROOT / ".." / "shared" / "data"

_FILES = {
    "ml-100k": ("ml-100k/ratings.csv", "user_id", "item_id", "rating", "timestamp"),
    "ml-latest-small": ("ml-latest-small/ratings.csv", "userId", "movieId", "rating", "timestamp"),
}


# --------------------------------------------------------------------------- data
def load_ratings(name: str) -> pd.DataFrame:
    """Load a MovieLens ratings file as ``user, item, rating, timestamp`` with contiguous codes.

    Parameters
    ----------
    name
        ``"ml-100k"`` or ``"ml-latest-small"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``user`` (int32 code), ``item`` (int32 code), ``rating`` (float32),
        ``timestamp`` (int64), plus ``user_id`` / ``item_id`` with the original ids. Codes are
        assigned in sorted order of the original ids.

    Raises
    ------
    FileNotFoundError
        If the file is not beside the project; the message names the path.
    """
    if name not in _FILES:
        raise ValueError(f"unknown data set {name!r} (known: {', '.join(_FILES)})")
    rel, ucol, icol, rcol, tcol = _FILES[name]
    path = DATA_DIR / rel
    if not path.exists():
        raise FileNotFoundError(f"{name} ratings not found at {path}")
    raw = pd.read_csv(path)
    missing = [c for c in (ucol, icol, rcol, tcol) if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column {missing[0]!r} (columns: {list(raw.columns)})")
    ucodes, uids = pd.factorize(raw[ucol], sort=True)
    icodes, iids = pd.factorize(raw[icol], sort=True)
    return pd.DataFrame(
        {
            "user": ucodes.astype(np.int32),
            "item": icodes.astype(np.int32),
            "rating": raw[rcol].to_numpy(dtype=np.float32),
            "timestamp": raw[tcol].to_numpy(dtype=np.int64),
            "user_id": np.asarray(uids)[ucodes],
            "item_id": np.asarray(iids)[icodes],
        }
    )


def binarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Implicit copy: every interaction gets ``rating = 1.0``."""
    out = frame.copy()
    out["rating"] = np.float32(1.0)
    return out


def csr_from_frame(
    frame: pd.DataFrame, n_users: int, n_items: int, *, binary: bool = False
) -> sp.csr_matrix:
    """User x item ``scipy.sparse.csr_matrix`` (float32, duplicates summed) of a coded frame."""
    vals = (
        np.ones(len(frame), dtype=np.float32)
        if binary
        else frame["rating"].to_numpy(dtype=np.float32)
    )
    m = sp.csr_matrix(
        (vals, (frame["user"].to_numpy(), frame["item"].to_numpy())),
        shape=(n_users, n_items),
        dtype=np.float32,
    )
    m.sum_duplicates()
    m.sort_indices()
    return m


def to_dataset(frame: pd.DataFrame, n_users: int, n_items: int, *, implicit: bool = False) -> Any:
    """recforge ``Dataset`` whose codes equal the frame's ``user``/``item`` codes.

    Every user ``0..n_users-1`` and item ``0..n_items-1`` is in the index (also those with no
    interaction in ``frame``), so score matrices of all libraries line up column by column.
    """
    from recforge.data import Dataset, IdIndex

    users = IdIndex(np.arange(n_users, dtype=np.int64))
    items = IdIndex(np.arange(n_items, dtype=np.int64))
    return Dataset.from_frame(
        frame[["user", "item", "rating", "timestamp"]],
        user="user",
        item="item",
        value=None if implicit else "rating",
        time="timestamp",
        users=users,
        items=items,
        name="bench",
    )


# --------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class HoldoutSplit:
    """A per-user holdout split with a validation carve-out.

    Attributes
    ----------
    train_full : pandas.DataFrame
        Everything not in ``test`` (fit final models on this).
    train : pandas.DataFrame
        ``train_full`` minus ``valid`` (fit tuning candidates on this).
    valid : pandas.DataFrame
        Validation interactions (score tuning candidates on this).
    test : pandas.DataFrame
        Held-out interactions.
    n_users, n_items : int
        Sizes of the code spaces.
    """

    train_full: pd.DataFrame
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    n_users: int
    n_items: int


def _per_user_mask(
    users: np.ndarray, fraction: float, rng: np.random.Generator, min_keep: int = 1
) -> np.ndarray:
    """Boolean mask selecting round(fraction * n_u) random interactions of each user.

    At least ``min_keep`` interactions of each user stay unselected; users with fewer than
    ``min_keep + 1`` interactions contribute nothing.
    """
    n = users.shape[0]
    order = np.lexsort((rng.random(n), users))  # shuffled within each user
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, n])
    take = np.floor(counts * fraction + 0.5).astype(np.int64)
    take = np.minimum(take, np.maximum(counts - min_keep, 0))
    rank = np.arange(n) - np.repeat(starts, counts)
    selected = rank < np.repeat(take, counts)
    mask = np.zeros(n, dtype=bool)
    mask[order[selected]] = True
    return mask


def per_user_split(
    frame: pd.DataFrame,
    *,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.2,
    seed: int = 42,
) -> HoldoutSplit:
    """Per-user random holdout: ``test_fraction`` of each user's interactions go to the test.

    Of the remaining interactions, ``valid_fraction`` of each user's go to ``valid``. Every
    user keeps at least one training interaction.

    Parameters
    ----------
    frame
        Output of :func:`load_ratings` (possibly binarised).
    test_fraction, valid_fraction
        Per-user fractions.
    seed
        Seed of the shuffles; the same seed gives the same split.
    """
    rng = np.random.default_rng(seed)
    users = frame["user"].to_numpy()
    test_mask = _per_user_mask(users, test_fraction, rng)
    train_full = frame[~test_mask].reset_index(drop=True)
    test = frame[test_mask].reset_index(drop=True)
    valid_mask = _per_user_mask(train_full["user"].to_numpy(), valid_fraction, rng)
    return HoldoutSplit(
        train_full=train_full,
        train=train_full[~valid_mask].reset_index(drop=True),
        valid=train_full[valid_mask].reset_index(drop=True),
        test=test,
        n_users=int(frame["user"].max()) + 1,
        n_items=int(frame["item"].max()) + 1,
    )


def kfold(
    frame: pd.DataFrame, n_folds: int = 5, seed: int = 42
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Random k-fold split of the rows, as ``surprise.model_selection.KFold`` does.

    Rows are shuffled once with ``seed`` and cut into ``n_folds`` near-equal parts; fold ``f``
    tests on part ``f`` and trains on the rest. Returns ``[(train, test), ...]``.
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(frame))
    bounds = np.linspace(0, len(frame), n_folds + 1).round().astype(np.int64)
    folds = []
    for f in range(n_folds):
        test_rows = perm[bounds[f] : bounds[f + 1]]
        mask = np.zeros(len(frame), dtype=bool)
        mask[test_rows] = True
        folds.append((frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)))
    return folds


# --------------------------------------------------------------------------- metrics
def grid_search(
    grid: Iterable[dict[str, Any]], score: Callable[[dict[str, Any]], float]
) -> tuple[dict[str, Any], float]:
    """The setting of ``grid`` with the highest ``score`` (the first on ties) and that score.

    Parameters
    ----------
    grid
        Hyperparameter settings, tried in order.
    score
        Validation score of one setting (higher is better), e.g. NDCG@10 on the valid part.

    Returns
    -------
    tuple of (dict, float)
        Best setting and its score.
    """
    best: tuple[dict[str, Any], float] | None = None
    for params in grid:
        value = score(params)
        if best is None or value > best[1]:
            best = (params, value)
    if best is None:
        raise ValueError("grid_search: the grid of settings is empty")
    return best


def topk_from_scores(
    scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None, rows: np.ndarray | None = None
) -> np.ndarray:
    """Top-``k`` column indices of each row of a dense score matrix (best first).

    ``exclude`` (users x items CSR) masks the entries of ``rows`` (default ``0..n-1``) before
    ranking; ties go to the lower index.
    """
    s = np.array(scores, dtype=np.float32, copy=True)
    if exclude is not None:
        r = np.arange(s.shape[0]) if rows is None else rows
        sub = exclude[r]
        ri = np.repeat(np.arange(s.shape[0]), np.diff(sub.indptr))
        s[ri, sub.indices] = -np.inf
    part = np.argpartition(-s, kth=min(k, s.shape[1] - 1), axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(s, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def ranking_metrics(
    top: np.ndarray,
    users: np.ndarray,
    truth: pd.DataFrame,
    n_items: int,
    *,
    ndcg_k: int = 10,
    recall_k: int = 20,
    map_k: int = 10,
    coverage_k: int = 10,
) -> dict[str, float]:
    """Full-ranking top-N metrics averaged over ``users``.

    Parameters
    ----------
    top
        ``(len(users), K)`` item codes ranked best first, ``K >= max(cutoffs)``; ``-1`` pads.
    users
        User codes of the rows of ``top``.
    truth
        Held-out interactions (``user``, ``item`` columns); every listed user should have at
        least one.
    n_items
        Catalog size (for coverage).

    Returns
    -------
    dict
        ``ndcg@10`` (binary relevance, ideal DCG over ``min(|T_u|, 10)`` hits),
        ``recall@20`` (hits / ``|T_u|``), ``map@10`` (AP with denominator
        ``min(|T_u|, 10)``), ``coverage@10`` (distinct items in the top-10 lists / catalog).
    """
    kmax = max(ndcg_k, recall_k, map_k, coverage_k)
    if top.shape[1] < kmax:
        raise ValueError(f"top has {top.shape[1]} columns, need {kmax}")
    t = sp.csr_matrix(
        (np.ones(len(truth), dtype=np.float32), (truth["user"], truth["item"])),
        shape=(int(max(users.max(), truth["user"].max())) + 1, n_items),
    )
    t.sum_duplicates()
    t.data[:] = 1.0
    t = t[users]
    n_rel = np.diff(t.indptr).astype(np.float64)
    safe = np.where(top >= 0, top, 0)
    hit = np.asarray(t[np.arange(len(users))[:, None], safe[:, :kmax]].todense()) > 0
    hit &= top[:, :kmax] >= 0
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))
    dcg = (hit[:, :ndcg_k] * disc[:ndcg_k]).sum(axis=1)
    ideal_n = np.minimum(n_rel, ndcg_k).astype(np.int64)
    idcg = np.cumsum(disc[:ndcg_k])[np.maximum(ideal_n - 1, 0)]
    ndcg = np.where(n_rel > 0, dcg / idcg, 0.0)
    recall = np.where(n_rel > 0, hit[:, :recall_k].sum(axis=1) / np.maximum(n_rel, 1), 0.0)
    hm = hit[:, :map_k]
    prec_at = np.cumsum(hm, axis=1) / np.arange(1, map_k + 1)
    ap = (prec_at * hm).sum(axis=1) / np.maximum(np.minimum(n_rel, map_k), 1)
    cov_items = np.unique(top[:, :coverage_k])
    cov_items = cov_items[cov_items >= 0]
    valid = n_rel > 0
    return {
        f"ndcg@{ndcg_k}": float(ndcg[valid].mean()),
        f"recall@{recall_k}": float(recall[valid].mean()),
        f"map@{map_k}": float(ap[valid].mean()),
        f"coverage@{coverage_k}": float(cov_items.size / n_items),
    }


def rating_metrics(estimates: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of rating estimates."""
    err = np.asarray(estimates, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


# --------------------------------------------------------------------------- timing / memory
@dataclass
class Measurement:
    """Result of :func:`measure`.

    Attributes
    ----------
    median_s : float
        Median wall time over the runs.
    times_s : list of float
        Every run's wall time.
    peak_mb : float
        Largest increase of resident memory over the baseline seen during any run (MiB);
        ``nan`` when psutil is missing.
    result : Any
        Return value of the last run.
    """

    median_s: float
    times_s: list[float] = field(default_factory=list)
    peak_mb: float = float("nan")
    result: Any = None


class _RssSampler:
    """Samples the process's resident set size in a thread; records the peak."""

    def __init__(self, interval: float = 0.005) -> None:
        import psutil

        self._proc = psutil.Process(os.getpid())
        self._interval = interval
        self._stop = threading.Event()
        self.baseline = self._proc.memory_info().rss
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def measure(fn: Callable[[], Any], repeats: int = 3, warmup: int = 0) -> Measurement:
    """Run ``fn`` ``warmup`` + ``repeats`` times; median wall time and peak RSS increase.

    Use ``warmup=1`` for code that JIT-compiles on first use when compile time should not
    count (and report it separately if it matters).
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    peak = float("nan")
    result: Any = None
    for _ in range(repeats):
        gc.collect()
        try:
            sampler: _RssSampler | None = _RssSampler()
        except ImportError:
            sampler = None
        if sampler is not None:
            with sampler:
                t0 = time.perf_counter()
                result = fn()
                times.append(time.perf_counter() - t0)
            delta = (sampler.peak - sampler.baseline) / 2**20
            peak = delta if np.isnan(peak) else max(peak, delta)
        else:
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
    return Measurement(statistics.median(times), times, peak, result)


# --------------------------------------------------------------------------- reporting
def markdown_table(rows: Sequence[dict[str, Any]], floatfmt: str = ".4f") -> str:
    """GitHub-flavoured Markdown table of homogeneous dict rows (column order of the first)."""
    if not rows:
        return ""
    cols = list(rows[0])
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]

    def fmt(v: Any) -> str:
        if isinstance(v, float | np.floating):
            return "nan" if np.isnan(v) else format(float(v), floatfmt)
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def environment() -> str:
    """One line describing the machine and library versions, for RESULTS.md."""
    import numba
    import scipy

    parts = [
        f"python {platform.python_version()}",
        f"numpy {np.__version__}",
        f"scipy {scipy.__version__}",
        f"numba {numba.__version__}",
        f"{os.cpu_count()} CPUs",
        f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}",
    ]
    for mod in ("implicit", "surprise", "lenskit"):
        try:
            m = __import__(mod)
            parts.append(f"{mod} {getattr(m, '__version__', '?')}")
        except ImportError:
            continue
    return ", ".join(parts)
