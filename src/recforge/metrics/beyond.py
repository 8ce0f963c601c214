"""Beyond-accuracy metrics: coverage, concentration, novelty, diversity, serendipity, popularity.

``recs`` is always an ``(n_users, L)`` int array of item codes ranked best-first and padded with
``-1``; only its first ``k`` columns count and padding is ignored. Per-user metrics return NaN
for a user whose value is undefined (e.g. an empty list); aggregations skip NaN values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recforge._kernels import metrics as _k
from recforge.exceptions import ConfigError, DataError
from recforge.metrics._checks import check_k, check_recs, check_truth, csr_parts

__all__ = [
    "ItemVectors",
    "average_popularity",
    "catalog_coverage",
    "diversity_from_vectors",
    "gini_index",
    "intra_list_diversity",
    "novelty",
    "serendipity",
]


def _top(recs: Any, k: int, n_items: int | None) -> tuple[np.ndarray, np.ndarray]:
    """First ``k`` columns of ``recs`` and the mask of valid (non-padding) entries."""
    k = check_k(k)
    r = check_recs(recs, n_items)[:, :k]
    return r, r >= 0


def _popularity(item_popularity: Any) -> np.ndarray:
    pop = np.asarray(item_popularity, dtype=np.float64).ravel()
    if pop.size and (not np.isfinite(pop).all() or pop.min() < 0):
        raise DataError("item_popularity must hold finite, non-negative counts per item")
    return pop


def _list_mean(per_item: np.ndarray, recs: Any, k: int) -> np.ndarray:
    """Mean of ``per_item`` over the valid items of each top-``k`` list; NaN for empty lists."""
    r, valid = _top(recs, k, per_item.size)
    if per_item.size:
        vals = np.where(valid, per_item[np.where(valid, r, 0)], 0.0)
    else:
        vals = np.zeros(r.shape)
    n = valid.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, vals.sum(axis=1) / n, np.nan)


def catalog_coverage(recs: Any, n_items: int, k: int) -> float:
    """Catalog coverage@k: share of the catalog recommended to at least one user.

    .. math:: \\mathrm{Cov}@k = |\\bigcup_u \\mathrm{top}_k(u)| / |I|

    (Ge, Delgado-Battenfeld & Jannach, 2010, "prediction coverage").

    Parameters
    ----------
    recs
        ``(n_users, L)`` item codes, ``-1`` padded.
    n_items
        Catalog size ``|I|``.
    k
        Cutoff.

    Returns
    -------
    float
        In ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> catalog_coverage(np.array([[0, 1], [1, -1]]), n_items=4, k=2)
    0.5
    """
    if n_items < 1:
        raise ConfigError(f"n_items must be >= 1. Got {n_items!r} instead.")
    r, valid = _top(recs, k, n_items)
    seen = np.zeros(n_items, dtype=bool)
    seen[r[valid]] = True
    return float(seen.sum() / n_items)


def gini_index(recs: Any, n_items: int, k: int) -> float:
    """Gini index of item exposure in the top ``k`` lists, over the whole catalog.

    With the exposure counts ``c_(1) <= ... <= c_(n)`` of all ``n = |I|`` items (never
    recommended items count 0),

    .. math:: G = \\frac{\\sum_{i=1}^{n} (2i - n - 1)\\, c_{(i)}}{n \\sum_i c_{(i)}}

    0 means every item is recommended equally often, values near 1 mean a few items take all
    exposure (Fleder & Hosanagar, 2009; Adomavicius & Kwon, 2012).

    Parameters
    ----------
    recs, n_items, k
        As in :func:`catalog_coverage`.

    Returns
    -------
    float
        In ``[0, 1 - 1/n]``; NaN when no item is recommended at all.
    """
    if n_items < 1:
        raise ConfigError(f"n_items must be >= 1. Got {n_items!r} instead.")
    r, valid = _top(recs, k, n_items)
    counts = np.sort(np.bincount(r[valid], minlength=n_items)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    i = np.arange(1, n_items + 1, dtype=np.float64)
    return float(((2.0 * i - n_items - 1.0) * counts).sum() / (n_items * total))


def novelty(recs: Any, item_popularity: Any, n_users_train: int, k: int) -> np.ndarray:
    """Mean self-information of the recommended items (Zhou et al., 2010, PNAS).

    .. math::
        \\mathrm{Nov}@k(u) = \\frac{1}{|L_u|} \\sum_{i \\in L_u} -\\log_2 \\frac{\\max(pop_i, 1)}{N}

    where ``pop_i`` is the number of training users who interacted with item ``i``, ``N`` the
    number of training users and ``L_u`` the valid items of the user's top ``k``. Items never
    seen in training count as seen once, so the value stays finite.

    Parameters
    ----------
    recs
        ``(n_users, L)`` item codes, ``-1`` padded.
    item_popularity
        ``(n_items,)`` training interaction counts per item.
    n_users_train
        Number of users in the training data.
    k
        Cutoff.

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64 bits, ``>= 0``; NaN for empty lists.
    """
    if n_users_train < 1:
        raise ConfigError(f"n_users_train must be >= 1. Got {n_users_train!r} instead.")
    pop = _popularity(item_popularity)
    return _list_mean(-np.log2(np.maximum(pop, 1.0) / float(n_users_train)), recs, k)


def average_popularity(recs: Any, item_popularity: Any, k: int) -> np.ndarray:
    """Average recommendation popularity, ARP (Abdollahpouri, Burke & Mobasher, 2019).

    .. math:: \\mathrm{ARP}@k(u) = \\frac{1}{|L_u|} \\sum_{i \\in L_u} pop_i

    ``recs``, ``item_popularity`` and ``k`` as in :func:`novelty`.

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64; NaN for empty lists.
    """
    return _list_mean(_popularity(item_popularity), recs, k)


def intra_list_diversity(
    recs: Any, k: int, item_features: Any = None, cooccurrence: Any = None
) -> np.ndarray:
    """Intra-list diversity: mean pairwise dissimilarity of each top-``k`` list.

    .. math::
        \\mathrm{ILD}@k(u) = \\frac{2}{|L_u|(|L_u|-1)} \\sum_{i<j \\in L_u} (1 - \\mathrm{sim}_{ij})

    (Smyth & McClave, 2001; Ziegler et al., 2005). Exactly one similarity source is given:

    * ``item_features``: ``(n_items, n_features)`` sparse (or dense) matrix; ``sim`` is the
      cosine of the two item rows.
    * ``cooccurrence``: the ``(n_users_train, n_items)`` training interaction matrix; ``sim`` is
      the cosine of the binarised item columns, i.e. ``|U_i ∩ U_j| / sqrt(|U_i| |U_j|)``.

    An item with no features (or no training user) has similarity 0 to every other item.

    Parameters
    ----------
    recs
        ``(n_users, L)`` item codes, ``-1`` padded.
    k
        Cutoff.
    item_features, cooccurrence
        The similarity source, see above.

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64 (in ``[0, 1]`` for non-negative features); NaN for lists with
        fewer than two valid items.

    Raises
    ------
    ConfigError
        If neither or both similarity sources are given.
    """
    return diversity_from_vectors(recs, k, ItemVectors.build(item_features, cooccurrence))


@dataclass(frozen=True)
class ItemVectors:
    """Item vectors, one CSR row per item, for cosine similarities between items.

    Built once by :meth:`build` and reusable across cutoffs (``compute_metrics`` does so).
    """

    matrix: sp.csr_array
    """``(n_items, n_dims)`` float64 item vectors."""
    norms: np.ndarray
    """``(n_items,)`` Euclidean norms of the rows."""

    @property
    def n_items(self) -> int:
        """Number of items (rows)."""
        return int(self.matrix.shape[0])

    @classmethod
    def build(cls, item_features: Any = None, cooccurrence: Any = None) -> ItemVectors:
        """Item rows from ``item_features`` or binarised item columns of ``cooccurrence``.

        See :func:`intra_list_diversity` for the meaning of the two sources.
        """
        if (item_features is None) == (cooccurrence is None):
            raise ConfigError(
                "intra_list_diversity needs exactly one of 'item_features' or 'cooccurrence'"
            )
        if item_features is not None:
            feats = sp.csr_array(item_features, dtype=np.float64)
        else:
            if not sp.issparse(cooccurrence):
                raise DataError(
                    "cooccurrence must be the sparse (n_users, n_items) training matrix"
                )
            csc = sp.csc_array(cooccurrence)
            csc.sum_duplicates()
            # columns of the training matrix as item rows, binarised (stored non-zeros count 1)
            feats = sp.csr_array(
                ((csc.data != 0).astype(np.float64), csc.indices, csc.indptr),
                shape=(csc.shape[1], csc.shape[0]),
            )
        feats.sum_duplicates()
        norms = np.sqrt(np.asarray(feats.multiply(feats).sum(axis=1), dtype=np.float64)).ravel()
        return cls(feats, norms)


#: Upper bound on the dense similarity block held at once (bytes).
_BLOCK_BYTES = 64 * 2**20


def diversity_from_vectors(
    recs: Any, k: int, vectors: ItemVectors, *, method: Literal["auto", "gram", "merge"] = "auto"
) -> np.ndarray:
    """:func:`intra_list_diversity` with prebuilt :class:`ItemVectors`.

    Two exact strategies, chosen by estimated cost with ``method="auto"``:

    * ``"gram"``: cosine similarities between the distinct listed items by sparse products in
      row blocks of at most 64 MiB, then summed over each list's pairs by a kernel. Best when
      few distinct items are listed or item vectors are long (co-occurrence of popular items).
    * ``"merge"``: one sparse dot product per listed pair (merging the two sorted rows). Best
      for short item vectors (e.g. genres) and many distinct items.
    """
    if method not in ("auto", "gram", "merge"):
        raise ConfigError(
            f"The 'method' parameter of diversity_from_vectors must be one of "
            f"('auto', 'gram', 'merge'). Got {method!r} instead."
        )
    k = check_k(k)
    r = np.ascontiguousarray(check_recs(recs, vectors.n_items, name="recs")[:, :k])
    valid = r >= 0
    m = valid.sum(axis=1)
    pairs = m * (m - 1) // 2
    listed = r[valid]
    distinct, inverse = np.unique(listed, return_inverse=True)
    n_u = distinct.size
    mat = vectors.matrix
    if method == "auto":
        row_nnz = np.diff(mat.indptr)
        cost_merge = 2.0 * float(pairs.sum()) * (float(row_nnz[listed].mean()) if n_u else 0.0)
        n_blocks = -(-n_u // max(1, _BLOCK_BYTES // (8 * max(n_u, 1))))
        cost_gram = float(n_blocks) * r.size * k / 2.0 + float(n_u) * n_u
        method = "merge" if cost_merge < cost_gram else "gram"
    total = np.zeros(r.shape[0], dtype=np.float64)
    if method == "merge":
        srt = mat if mat.has_sorted_indices else mat.sorted_indices()
        indptr, indices, data = csr_parts(sp.csr_array(srt))
        counted = np.empty(r.shape[0], dtype=np.int64)
        _k.pairwise_cosine_sum(r, k, indptr, indices, data, vectors.norms, total, counted)
    elif n_u:
        pos = np.full(r.shape, -1, dtype=np.int32)
        pos[valid] = inverse
        norms = vectors.norms[distinct]
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        unit = sp.csr_array(sp.diags_array(scale) @ mat[distinct])
        unit_t = sp.csr_array(unit.T)
        step = max(1, _BLOCK_BYTES // (8 * n_u))
        for start in range(0, n_u, step):
            stop = min(start + step, n_u)
            block = np.ascontiguousarray((unit[start:stop] @ unit_t).toarray(), dtype=np.float64)
            _k.pair_sum_block(pos, block, start, stop, total)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, 1.0 - total / pairs, np.nan)


def _expected_flags(expected: Any, r: np.ndarray, n_items: int) -> np.ndarray:
    """Boolean ``r.shape`` matrix: is each recommended item expected for its user?"""
    e = np.asarray(expected)
    if e.ndim == 1 and e.dtype == np.bool_:
        if e.size != n_items:
            raise DataError(f"expected mask has {e.size} entries but there are {n_items} items")
        mask = e
    elif e.ndim == 1 and np.issubdtype(e.dtype, np.integer):
        mask = np.zeros(n_items, dtype=bool)
        codes = e[e >= 0]
        if codes.size and int(codes.max()) >= n_items:
            raise DataError(f"expected holds item code {int(codes.max())} >= n_items={n_items}")
        mask[codes] = True
    elif e.ndim == 2 and np.issubdtype(e.dtype, np.integer):
        if e.shape[0] != r.shape[0]:
            raise DataError(
                f"expected has {e.shape[0]} rows (per-user lists) but recs has {r.shape[0]}"
            )
        ex = check_recs(e, n_items, name="expected")
        rows = np.repeat(np.arange(ex.shape[0]), ex.shape[1])
        cols = ex.ravel()
        keep = cols >= 0
        mat = sp.csr_array(
            (np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(ex.shape[0], n_items)
        )
        mat.sum_duplicates()
        mat.data[:] = 1.0
        indptr, indices, data = csr_parts(mat)
        flags = np.empty(r.shape, dtype=np.float64)
        _k.hit_gains(r, r.shape[1], indptr, indices, data, flags)
        # a repeated item is flagged at its first position only; relevance (also from
        # hit_gains) likewise counts there only, so repeats never add serendipity
        return flags > 0
    else:
        raise DataError(
            "expected must be a boolean item mask (n_items,), an int array of item codes, or an "
            f"(n_users, m) int array of per-user item codes; got {e.dtype} {e.shape}"
        )
    return np.where(r >= 0, mask[np.where(r >= 0, r, 0)], False)


def serendipity(recs: Any, truth: Any, k: int, expected: Any) -> np.ndarray:
    """Serendipity@k: share of the top ``k`` slots holding an item that is relevant AND unexpected.

    .. math:: \\mathrm{Ser}@k(u) = |\\mathrm{top}_k(u) \\cap R_u \\setminus E_u| / k

    Following Ge, Delgado-Battenfeld & Jannach (2010), the expected set ``E_u`` is what a
    primitive recommender (typically most-popular) would suggest; Kaminskas & Bridge (2016,
    ACM TiiS) survey this "unexpected and useful" definition. Dividing by ``k`` makes it
    comparable with precision (``serendipity <= precision``).

    Parameters
    ----------
    recs
        ``(n_users, L)`` item codes, ``-1`` padded.
    truth
        ``(n_users, n_items)`` CSR array of relevant items (grade ``> 0``).
    k
        Cutoff.
    expected
        Expected items: a boolean mask ``(n_items,)``, an int array of item codes shared by all
        users, or an ``(n_users, m)`` int array of per-user codes (``-1`` padded).

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64 in ``[0, 1]``; NaN for users without relevant items.
    """
    k = check_k(k)
    r = check_recs(recs)
    t = check_truth(truth, r.shape[0])
    r = check_recs(r, t.shape[1])
    indptr, indices, data = csr_parts(t)
    grades = np.empty((r.shape[0], k), dtype=np.float64)
    _k.hit_gains(r, k, indptr, indices, data, grades)
    width = min(k, r.shape[1])
    exp = _expected_flags(expected, r[:, :width], t.shape[1])
    hits = grades[:, :width] > 0
    val = (hits & ~exp).sum(axis=1) / float(k)
    return np.where(np.diff(indptr) > 0, val, np.nan)
