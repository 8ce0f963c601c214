"""Deterministic parallel SGD schedule: a seed-fixed stratification of (row, column) updates.

DSGD (Gemulla et al. 2011, "Large-scale matrix factorization with distributed stochastic
gradient descent"): rows (users) and columns (items) are cut into ``B`` blocks each, and block
``(r, c)`` holds the updates whose row is in row block ``r`` and column in column block ``c``.
Stratum ``s`` is the ``B`` blocks ``(r, (r + s) mod B)``: they touch pairwise disjoint rows and
columns, so a kernel runs them in parallel without locks *and without races*, and runs the
strata one after the other. The result equals running the ``B * B`` blocks one after the other
in stratum-major order, so it depends on neither thread timing nor the number of threads,
only on the seed that drew the blocks and the visiting order.

``B`` depends on the number of updates only (:func:`n_blocks_for`), never on the thread count,
so a fit gives the same bits on a laptop and on a 64-core server. Strata end in a barrier
where every thread waits for the slowest, so ``B`` grows with the data: below
``2 * MIN_STRATUM`` updates an epoch is one block (sequential), and it reaches
:data:`N_BLOCKS` from ``N_BLOCKS * MIN_STRATUM`` updates on.

Segment ``s * B + r`` of a stratified order is block ``(r, (r + s) mod B)``; ``bounds``
(``(B * B + 1,)`` int64) holds the segment offsets.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MIN_STRATUM",
    "N_BLOCKS",
    "Strata",
    "balanced_blocks",
    "block_keys",
    "n_blocks_for",
    "run_parallel",
    "stratified_order",
]

#: Most blocks per side: 16 strata of 16 blocks keep 16 threads busy.
N_BLOCKS = 16
#: Fewest updates per stratum (about 5 ms of SGD at 100 factors), which amortises its barrier
#: even where threads are descheduled on a busy machine.
MIN_STRATUM = 50_000


def n_blocks_for(n_updates: int) -> int:
    """``B`` for an epoch of ``n_updates``: ``n_updates // MIN_STRATUM`` in ``[1, N_BLOCKS]``."""
    return int(min(N_BLOCKS, max(1, n_updates // MIN_STRATUM)))


def run_parallel(n_segments: int) -> bool:
    """Whether to run the strata's blocks on threads: several blocks and several threads.

    Otherwise the kernels' serial twin visits the segments in stratum-major order, which gives
    the same bits (the blocks of a stratum are independent) without waking any thread.
    """
    import numba

    return n_segments > 1 and numba.get_num_threads() > 1


def balanced_blocks(weights: np.ndarray, n_blocks: int, gen: np.random.Generator) -> np.ndarray:
    """Block of each row: a random permutation cut into ``n_blocks`` runs of equal weight.

    Parameters
    ----------
    weights
        ``(n,)`` non-negative weight of each row (its number of updates for load balance, or
        ones for blocks of equal size).
    n_blocks
        Number of blocks.
    gen
        Generator the permutation is drawn from (the model's seeded one).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Block in ``[0, n_blocks)`` of each row.
    """
    w = np.asarray(weights, dtype=np.float64)
    perm = gen.permutation(w.shape[0])
    total = float(w.sum())
    start = np.cumsum(w[perm]) - w[perm]
    scale = n_blocks / total if total > 0 else 0.0
    block = np.empty(w.shape[0], dtype=np.int64)
    block[perm] = np.minimum((start * scale).astype(np.int64), n_blocks - 1)
    return block


def block_keys(
    rows: np.ndarray,
    cols: np.ndarray,
    row_block: np.ndarray,
    col_block: np.ndarray,
    n_blocks: int,
) -> np.ndarray:
    """Segment ``s * B + r`` of every update ``(rows[n], cols[n])`` (uint16, ``B <= 256``)."""
    r = row_block[rows]
    s = (col_block[cols] - r) % n_blocks
    return (s * n_blocks + r).astype(np.uint16)


def stratified_order(
    keys: np.ndarray, order: np.ndarray, n_blocks: int
) -> tuple[np.ndarray, np.ndarray]:
    """``order`` regrouped by segment (stable, so each block keeps its random order).

    Parameters
    ----------
    keys
        ``(nnz,)`` segment of each update, from :func:`block_keys`.
    order
        ``(nnz,)`` int64 visiting order of the updates (a permutation, drawn per epoch).
    n_blocks
        ``B``.

    Returns
    -------
    order : numpy.ndarray of int64, shape (nnz,)
    bounds : numpy.ndarray of int64, shape (B * B + 1,)
        Segment ``g`` is ``order[bounds[g]:bounds[g + 1]]``.
    """
    k = keys[order]
    grouped = order[np.argsort(k, kind="stable")]  # radix sort of uint16 keys: linear
    bounds = np.zeros(n_blocks * n_blocks + 1, dtype=np.int64)
    np.cumsum(np.bincount(k, minlength=n_blocks * n_blocks), out=bounds[1:])
    return np.ascontiguousarray(grouped, dtype=np.int64), bounds


class Strata:
    """The fixed blocks of one fit: draws them once, then stratifies each epoch's order.

    Parameters
    ----------
    rows, cols
        ``(nnz,)`` row (user) and column (item) code of every update.
    n_rows, n_cols
        Number of rows and columns.
    gen
        The model's seeded generator (the blocks are drawn from it first).
    equal_cols
        Cut the columns into blocks of equal size instead of equal update counts (BPR draws
        negatives inside a column block, which must then be a uniform sample of the items).
    n_blocks
        ``B`` (default: :func:`n_blocks_for` the number of updates).
    """

    def __init__(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        n_rows: int,
        n_cols: int,
        gen: np.random.Generator,
        *,
        equal_cols: bool = False,
        n_blocks: int | None = None,
    ) -> None:
        if n_blocks is None:
            n_blocks = n_blocks_for(rows.shape[0])
        col_w = np.ones(n_cols) if equal_cols else np.bincount(cols, minlength=n_cols)
        self.n_blocks = n_blocks
        self.row_block = balanced_blocks(np.bincount(rows, minlength=n_rows), n_blocks, gen)
        self.col_block = balanced_blocks(col_w, n_blocks, gen)
        self.keys = block_keys(rows, cols, self.row_block, self.col_block, n_blocks)

    def order(self, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A fresh random visiting order, stratified: ``(order, bounds)``."""
        perm = gen.permutation(self.keys.shape[0]).astype(np.int64)
        if self.n_blocks == 1:  # one segment: nothing to regroup
            return perm, np.array([0, perm.shape[0]], dtype=np.int64)
        return stratified_order(self.keys, perm, self.n_blocks)

    def grouped(self) -> tuple[np.ndarray, np.ndarray]:
        """The updates grouped by segment in their stored order: ``(positions, bounds)``."""
        return stratified_order(self.keys, np.arange(self.keys.shape[0]), self.n_blocks)

    def col_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """The columns grouped by block: ``(int32 columns, (B + 1,) int64 bounds)``."""
        cols = np.argsort(self.col_block, kind="stable").astype(np.int32)
        bounds = np.zeros(self.n_blocks + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.col_block, minlength=self.n_blocks), out=bounds[1:])
        return cols, bounds
