"""The two-tower network (imports torch: loaded only by :mod:`.twotower`).

Both towers map a sum of embeddings to a ``d``-vector: the item tower the item's identity
embedding plus its attribute features times a weight matrix, the user tower the mean of
the user-side embeddings of their history items plus their attribute features times
another weight matrix. An optional residual MLP follows, then (optionally) L2
normalisation. Sparse feature rows enter as ``embedding_bag`` sums (CSR indices, offsets
and values), so no dense feature matrix is ever built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Bag", "TwoTowerNet", "in_batch_softmax_loss"]

Bag = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""``(indices int64, offsets int64, weights float32)`` of CSR rows (one bag per row)."""

_INIT_STD = 0.1


def _bag_sum(weight: torch.Tensor, bag: Bag, n: int) -> torch.Tensor:
    """``(n, d)`` weighted sums of the rows of ``weight`` named by each bag (zeros if empty)."""
    idx, offsets, values = bag
    if weight.shape[0] == 0 or idx.numel() == 0:
        return weight.new_zeros((n, weight.shape[1]))
    return F.embedding_bag(idx, weight, offsets, mode="sum", per_sample_weights=values)


class _Residual(nn.Module):
    """``x + W2 relu(W1 x)``: a residual MLP block (identity at ``hidden=0``)."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.inner = nn.Linear(d, hidden)
        self.outer = nn.Linear(hidden, d)
        nn.init.xavier_normal_(self.inner.weight)
        nn.init.zeros_(self.inner.bias)
        nn.init.zeros_(self.outer.weight)  # starts as the identity
        nn.init.zeros_(self.outer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.outer(torch.relu(self.inner(x)))


class TwoTowerNet(nn.Module):
    """User and item towers over identities and attribute features.

    Parameters
    ----------
    n_items
        Items with an identity (and a user-side history) embedding: the training catalogue.
    n_item_features, n_user_features
        Columns of the item and user attribute feature matrices (0: none).
    d
        Output width of both towers.
    hidden
        Width of each tower's residual MLP (0: none, the towers stay linear).
    normalize
        L2-normalise both towers' outputs (scores are then cosines).
    """

    def __init__(
        self,
        n_items: int,
        n_item_features: int,
        n_user_features: int,
        d: int,
        hidden: int,
        normalize: bool,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.item_id = nn.Parameter(torch.randn(n_items, d) * _INIT_STD)
        self.history = nn.Parameter(torch.randn(n_items, d) * _INIT_STD)
        self.item_features = nn.Parameter(torch.randn(n_item_features, d) * _INIT_STD)
        self.user_features = nn.Parameter(torch.randn(n_user_features, d) * _INIT_STD)
        self.item_mlp = _Residual(d, hidden) if hidden else None
        self.user_mlp = _Residual(d, hidden) if hidden else None

    def _finish(self, x: torch.Tensor, mlp: nn.Module | None) -> torch.Tensor:
        if mlp is not None:
            x = mlp(x)
        return F.normalize(x, dim=1) if self.normalize else x

    def items(self, codes: torch.Tensor, keep_id: torch.Tensor, features: Bag) -> torch.Tensor:
        """Item tower of ``codes`` (int64; an identity enters where ``keep_id`` is 1)."""
        x = self.item_id[codes.clamp(0, max(self.item_id.shape[0] - 1, 0))] * keep_id[:, None]
        x = x + _bag_sum(self.item_features, features, codes.shape[0])
        return self._finish(x, self.item_mlp)

    def history_sums(self, bag: Bag, n: int) -> torch.Tensor:
        """``(n, d)`` sums of the user-side embeddings of each bag of history items."""
        return _bag_sum(self.history, bag, n)

    def users(self, sums: torch.Tensor, counts: torch.Tensor, features: Bag) -> torch.Tensor:
        """User tower: mean history embedding (``sums / counts``; 0 items: zero) plus features."""
        x = sums / counts.clamp(min=1.0)[:, None]
        x = x + _bag_sum(self.user_features, features, sums.shape[0])
        return self._finish(x, self.user_mlp)


def in_batch_softmax_loss(
    queries: torch.Tensor,
    keys: torch.Tensor,
    log_q: torch.Tensor,
    false_negatives: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Sampled softmax over the batch's positives with logQ correction (Yi et al. 2019).

    Row ``r`` scores every key of the batch; its own key (the diagonal) is the target. Each
    column's logit is ``q_r · k_c / temperature - log_q[c]`` (``log_q``: log of the column
    item's sampling probability, its share of the positives; zeros switch the correction
    off), and ``false_negatives[r, c]`` (the same item or the same user elsewhere in the
    batch) are left out of the normaliser.
    """
    logits = queries @ keys.T / temperature - log_q[None, :]
    logits = logits.masked_fill(false_negatives, float("-inf"))
    target = torch.arange(queries.shape[0], device=queries.device)
    return F.cross_entropy(logits, target)
