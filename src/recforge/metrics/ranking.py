"""Top-K ranking metrics, one value per user.

Inputs shared by every metric
-----------------------------
recs
    ``(n_users, L)`` int array of item codes ranked best-first, padded with ``-1``. Only the
    first ``k`` columns count; a list shorter than ``k`` (``L < k`` or padding) is treated as
    padded, so precision still divides by ``k``. A repeated item counts at its first position.
truth
    ``scipy.sparse.csr_array`` ``(n_users, n_items)`` whose stored entries are the relevant items
    of each user (same rows as ``recs``) with their relevance grade ``> 0``. Stored entries that are
    not ``> 0`` are ignored.

Users with no relevant item get NaN for every metric; aggregations (means, significance tests)
skip NaN values. Evaluation only passes users with at least one relevant item.

Conventions (cross-checked against ``ranx`` to 1e-9 in the tests)
-----------------------------------------------------------------
* ``precision@k = hits / k``; ``recall@k = hits / n_relevant``; ``hit_rate@k = [hits > 0]``.
* ``reciprocal_rank@k = 1 / rank of the first relevant item`` (0 when none in the top ``k``).
* ``average_precision@k = sum over relevant ranks r <= k of precision@r / N`` with
  ``N = min(k, n_relevant)`` by default (the usual top-K recommender convention: a perfect
  list scores 1 even when the user has more than ``k`` relevant items); ``normalizer="relevant"``
  uses ``N = n_relevant``, which is what ``ranx``/``trec_eval`` call ``map@k``.
* ``ndcg@k = DCG@k / IDCG@k`` with the log2 discount ``1 / log2(rank + 1)`` of Järvelin &
  Kekäläinen (2002). Binary by default (gain 1 per relevant item); ``graded=True`` uses the
  stored grades as linear gains, exactly ranx's ``ndcg`` (Järvelin formulation); with
  ``gain="exponential"`` the gains are ``2**grade - 1`` (Burges et al., 2005; ranx's
  ``ndcg_burges``). The ideal DCG sorts the user's own relevant items by gain.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recforge._kernels import metrics as _k
from recforge.exceptions import ConfigError, DataError
from recforge.metrics._checks import check_k, check_recs, check_truth, csr_parts

__all__ = [
    "RankingState",
    "auc",
    "average_precision",
    "hit_rate",
    "ndcg",
    "precision",
    "recall",
    "reciprocal_rank",
]

Gain = Literal["linear", "exponential"]


class RankingState:
    """Hit matrix of a batch of lists computed once and shared by every ranking metric and cutoff.

    Parameters
    ----------
    recs
        ``(n_users, L)`` item codes ranked best-first, ``-1`` padded.
    truth
        ``(n_users, n_items)`` CSR of relevance grades ``> 0``.
    k_max
        Largest cutoff that will be asked for.

    Attributes
    ----------
    grades
        ``(n_users, k_max)`` float64: grade of the item at each rank, 0 when not relevant.
    hits
        ``(n_users, k_max)`` bool: ``grades > 0``.
    n_relevant
        ``(n_users,)`` int64: number of relevant items of each user.
    """

    def __init__(self, recs: Any, truth: Any, k_max: int) -> None:
        self.k_max = check_k(k_max, "k_max")
        r = check_recs(recs)
        t = check_truth(truth, r.shape[0])
        if r.size and int(r.max()) >= t.shape[1]:
            check_recs(r, t.shape[1])  # raises with the offending row
        self.recs = r
        self.truth = t
        indptr, indices, data = csr_parts(t)
        self._indptr = indptr
        self._data = data
        self.grades = np.empty((r.shape[0], self.k_max), dtype=np.float64)
        _k.hit_gains(r, self.k_max, indptr, indices, data, self.grades)
        self.hits = self.grades > 0
        self._hits_t = np.ascontiguousarray(self.hits.T)
        self.n_relevant = np.diff(indptr)
        self._no_truth = self.n_relevant == 0
        self._idcg: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ helpers
    def _cut(self, k: int) -> int:
        k = check_k(k)
        if k > self.k_max:
            raise ConfigError(
                f"cutoff k={k} exceeds the k_max={self.k_max} this state was built for"
            )
        return k

    def _nan_empty(self, values: np.ndarray) -> np.ndarray:
        values = values.astype(np.float64, copy=False)
        values[self._no_truth] = np.nan
        return values

    def hit_count(self, k: int) -> np.ndarray:
        """Number of relevant items in the top ``k`` of each list (int64, no NaN)."""
        return self.hits[:, : self._cut(k)].sum(axis=1, dtype=np.int64)

    # ------------------------------------------------------------------ metrics
    def precision(self, k: int) -> np.ndarray:
        """Precision@k per user."""
        k = self._cut(k)
        return self._nan_empty(self.hit_count(k) / float(k))

    def recall(self, k: int) -> np.ndarray:
        """Recall@k per user."""
        k = self._cut(k)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._nan_empty(self.hit_count(k) / self.n_relevant)

    def hit_rate(self, k: int) -> np.ndarray:
        """1.0 if any of the top ``k`` items is relevant, else 0.0."""
        k = self._cut(k)
        return self._nan_empty((self.hit_count(k) > 0).astype(np.float64))

    def reciprocal_rank(self, k: int) -> np.ndarray:
        """Reciprocal rank of the first relevant item within the top ``k`` (0 if none)."""
        k = self._cut(k)
        h = self.hits[:, :k]
        first = np.argmax(h, axis=1)
        rr = np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0)
        return self._nan_empty(rr)

    def average_precision(
        self, k: int, normalizer: Literal["min", "relevant"] = "min"
    ) -> np.ndarray:
        """Average precision@k per user; see the module docstring for ``normalizer``."""
        k = self._cut(k)
        # sum over relevant ranks r of hits@r / r, one rank at a time (numpy's cumsum along
        # short rows is slow; k is small, the work per step is vectorised over users)
        hits_t = self._hits_t[:k]
        running = np.zeros(hits_t.shape[1], dtype=np.float64)
        total = np.zeros(hits_t.shape[1], dtype=np.float64)
        for r in range(k):
            running += hits_t[r]
            total += np.where(hits_t[r], running / (r + 1.0), 0.0)
        if normalizer == "min":
            denom = np.minimum(self.n_relevant, k)
        elif normalizer == "relevant":
            denom = self.n_relevant
        else:
            raise ConfigError(
                f"The 'normalizer' parameter of average_precision must be one of "
                f"('min', 'relevant'). Got {normalizer!r} instead."
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._nan_empty(total / denom)

    def ndcg(self, k: int, graded: bool = False, gain: Gain = "linear") -> np.ndarray:
        """Normalised DCG@k per user; see the module docstring for ``graded`` and ``gain``."""
        k = self._cut(k)
        disc = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
        if not graded:
            dcg = self.hits[:, :k] @ disc
            ideal_cum = np.cumsum(disc)
            n = np.minimum(self.n_relevant, k)
            idcg = np.where(n > 0, ideal_cum[np.maximum(n - 1, 0)], np.nan)
        else:
            if gain == "linear":
                g = self.grades[:, :k]
            elif gain == "exponential":
                g = np.exp2(self.grades[:, :k]) - 1.0
            else:
                raise ConfigError(
                    f"The 'gain' parameter of ndcg must be one of ('linear', 'exponential'). "
                    f"Got {gain!r} instead."
                )
            dcg = g @ disc
            idcg = self._ideal(gain)[:, k - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._nan_empty(dcg / idcg)

    def _ideal(self, gain: Gain) -> np.ndarray:
        if gain not in self._idcg:
            data = self._data if gain == "linear" else np.exp2(self._data) - 1.0
            out = np.empty((self._indptr.size - 1, self.k_max), dtype=np.float64)
            _k.ideal_dcg(self._indptr, np.ascontiguousarray(data), self.k_max, out)
            self._idcg[gain] = out
        return self._idcg[gain]


# --------------------------------------------------------------------------- public functions
def _state(recs: Any, truth: Any, k: int) -> RankingState:
    return RankingState(recs, truth, check_k(k))


def precision(recs: Any, truth: Any, k: int) -> np.ndarray:
    """Precision@k: share of the top ``k`` slots that hold a relevant item.

    .. math:: P@k(u) = |\\mathrm{top}_k(u) \\cap R_u| / k

    Parameters
    ----------
    recs
        ``(n_users, L)`` int item codes ranked best-first, ``-1`` padded.
    truth
        ``(n_users, n_items)`` CSR array of relevance grades ``> 0``.
    k
        Cutoff, ``>= 1``.

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64 in ``[0, 1]``; NaN for users without relevant items.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> truth = sp.csr_array(np.array([[1.0, 0, 1, 0]]))
    >>> precision(np.array([[2, 1, 3]]), truth, k=2)
    array([0.5])
    """
    return _state(recs, truth, k).precision(k)


def recall(recs: Any, truth: Any, k: int) -> np.ndarray:
    """Recall@k: share of the user's relevant items found in the top ``k``.

    .. math:: R@k(u) = |\\mathrm{top}_k(u) \\cap R_u| / |R_u|

    Parameters and return value as in :func:`precision`.
    """
    return _state(recs, truth, k).recall(k)


def hit_rate(recs: Any, truth: Any, k: int) -> np.ndarray:
    """Hit rate@k: 1 if at least one relevant item is in the top ``k``, else 0.

    Parameters and return value as in :func:`precision`.
    """
    return _state(recs, truth, k).hit_rate(k)


def reciprocal_rank(recs: Any, truth: Any, k: int) -> np.ndarray:
    """Reciprocal rank@k (MRR@k once averaged): ``1 / rank`` of the first relevant item.

    0 when no relevant item is in the top ``k``. Parameters and return value as in
    :func:`precision`.
    """
    return _state(recs, truth, k).reciprocal_rank(k)


def average_precision(
    recs: Any, truth: Any, k: int, *, normalizer: Literal["min", "relevant"] = "min"
) -> np.ndarray:
    """Average precision@k (MAP@k once averaged).

    .. math:: AP@k(u) = \\frac{1}{N} \\sum_{r=1}^{k} P@r(u)\\, \\mathrm{rel}_u(r)

    Parameters
    ----------
    recs, truth, k
        As in :func:`precision`.
    normalizer
        ``"min"`` (default): ``N = min(k, |R_u|)``, so a perfect top-``k`` list scores 1 (the
        convention of most recommender toolkits). ``"relevant"``: ``N = |R_u|``, the
        ``trec_eval`` / ``ranx`` ``map@k`` convention. The two differ only for users with more
        than ``k`` relevant items.

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64 in ``[0, 1]``; NaN for users without relevant items.
    """
    return _state(recs, truth, k).average_precision(k, normalizer)


def ndcg(
    recs: Any, truth: Any, k: int, *, graded: bool = False, gain: Gain = "linear"
) -> np.ndarray:
    """Normalised discounted cumulative gain@k (Järvelin & Kekäläinen, 2002).

    .. math:: nDCG@k(u) = \\frac{\\sum_{r=1}^{k} g_u(r) / \\log_2(r+1)}
              {\\sum_{r=1}^{\\min(k, |R_u|)} g^*_u(r) / \\log_2(r+1)}

    where ``g_u(r)`` is the gain of the item at rank ``r`` and ``g*`` the user's relevant gains
    sorted descending (ideal list).

    Parameters
    ----------
    recs, truth, k
        As in :func:`precision`.
    graded
        ``False``: gain 1 for every relevant item. ``True``: the stored grade is the gain.
    gain
        With ``graded=True``: ``"linear"`` uses the grade itself (ranx ``ndcg``),
        ``"exponential"`` uses ``2**grade - 1`` (ranx ``ndcg_burges``).

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64 in ``[0, 1]``; NaN for users without relevant items.
    """
    return _state(recs, truth, k).ndcg(k, graded=graded, gain=gain)


# --------------------------------------------------------------------------- AUC
def auc(scores: Any, truth: Any, exclude: Any = None) -> np.ndarray:
    """Per-user ROC AUC of dense scores: the chance a relevant item outranks an irrelevant one.

    Computed over all items except the user's ``exclude`` items (typically the training items);
    relevant items are the stored entries of ``truth`` (grade ``> 0``), all other eligible items
    are negatives. Ties count one half (Mann-Whitney U with average ranks), matching
    :func:`sklearn.metrics.roc_auc_score`.

    Parameters
    ----------
    scores
        ``(n_users, n_items)`` float scores; higher is better. NaN is not allowed.
    truth
        ``(n_users, n_items)`` CSR array of relevant items.
    exclude
        ``(n_users, n_items)`` CSR array of items to leave out per user, or ``None``.

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64 in ``[0, 1]``; NaN for users without an eligible relevant or
        irrelevant item.

    Raises
    ------
    DataError
        If shapes disagree or ``scores`` contains NaN.
    """
    s = np.asarray(scores)
    if s.ndim != 2 or not np.issubdtype(s.dtype, np.floating):
        raise DataError(
            f"scores must be a 2-D float array (n_users, n_items), got {s.dtype} {s.shape}"
        )
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    s = np.ascontiguousarray(s)
    nan_rows = np.isnan(s).any(axis=1)
    if nan_rows.any():
        raise DataError(f"scores row {int(np.argmax(nan_rows))} contains NaN")
    t = check_truth(truth, s.shape[0])
    if t.shape[1] != s.shape[1]:
        raise DataError(f"truth has {t.shape[1]} item columns but scores has {s.shape[1]}")
    pos_indptr, pos_indices, _ = csr_parts(t)
    if exclude is None:
        ex_indptr = np.zeros(s.shape[0] + 1, dtype=np.int64)
        ex_indices = np.zeros(0, dtype=np.int32)
    else:
        if not sp.issparse(exclude) or exclude.shape != s.shape:
            raise DataError(
                f"exclude must be a sparse matrix of shape {s.shape}, got "
                f"{getattr(exclude, 'shape', type(exclude).__name__)}"
            )
        ex = sp.csr_array(exclude)
        ex_indptr = np.ascontiguousarray(ex.indptr, dtype=np.int64)
        ex_indices = np.ascontiguousarray(ex.indices, dtype=np.int32)
    out = np.empty(s.shape[0], dtype=np.float64)
    _k.auc_rows(s, pos_indptr, pos_indices, ex_indptr, ex_indices, out)
    return out
