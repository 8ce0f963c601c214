"""The SASRec network and its losses (imports torch: loaded only by :mod:`.sequential`).

Items are numbered ``1 .. n_items`` inside the network (code + 1); ``0`` is padding.
Sequences are left-padded to ``max_length`` so the newest item is always the last position.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SASRecNet", "gbce_beta", "gbce_loss", "sampled_softmax_loss", "softmax_loss"]


class _Block(nn.Module):
    """Pre-norm Transformer block: causal self-attention, then a point-wise feed-forward."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(
            nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, d), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, d // self.heads).unbind(2)
        att = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=True,
        )
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, length, d)))
        return x + self.ff(self.norm2(x))


class SASRecNet(nn.Module):
    """Causal self-attention over item sequences (Kang & McAuley 2018).

    Item embeddings ``E`` (row 0: padding) plus learned positional embeddings feed
    ``n_blocks`` causal blocks; the output at position ``t`` scores item ``i`` by
    ``h_t · E_i`` (the embedding matrix is tied to the output layer).
    """

    def __init__(
        self, n_items: int, d: int, n_blocks: int, heads: int, dropout: float, max_length: int
    ) -> None:
        super().__init__()
        self.d = d
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(max_length, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(d, heads, dropout) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(d)
        nn.init.normal_(self.item_emb.weight, std=d**-0.5)
        nn.init.normal_(self.pos_emb.weight, std=d**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(batch, length, d)`` of left-padded ``(batch, length)`` sequences."""
        length = seq.shape[1]
        pad = (seq > 0).unsqueeze(-1).to(self.item_emb.weight.dtype)
        pos = self.pos_emb.weight[-length:]
        x = self.drop(self.item_emb(seq) * math.sqrt(self.d) + pos) * pad
        for block in self.blocks:
            x = block(x) * pad
        out: torch.Tensor = self.norm(x)
        return out

    def item_weights(self) -> torch.Tensor:
        """Output embeddings of the real items, ``(n_items, d)`` (padding row dropped)."""
        return self.item_emb.weight[1:]


def softmax_loss(net: SASRecNet, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the whole catalogue ("SASRec+"); ``h (n, d)``, ``target (n,)`` 1-based."""
    logits = h @ net.item_weights().T
    return F.cross_entropy(logits, target - 1)


def sampled_softmax_loss(
    net: SASRecNet,
    h: torch.Tensor,
    target: torch.Tensor,
    negatives: torch.Tensor,
    log_q: torch.Tensor,
) -> torch.Tensor:
    """Sampled softmax with the logQ correction of the sampling distribution.

    Parameters
    ----------
    h, target
        ``(b, l, d)`` hidden states and ``(b, l)`` 1-based targets (0: not a training position).
    negatives
        ``(b, k)`` 1-based items drawn from ``q`` for each sequence (shared by its positions).
    log_q
        ``(n_items + 1,)`` log sampling probability of each item.

    The logit of each candidate ``j`` is ``h·E_j - log q_j``; negatives equal to the target
    (accidental hits) are masked out.
    """
    pos = (h * net.item_emb(target)).sum(-1) - log_q[target]
    neg = torch.bmm(h, net.item_emb(negatives).transpose(1, 2)) - log_q[negatives][:, None, :]
    neg = neg.masked_fill(negatives[:, None, :] == target[:, :, None], float("-inf"))
    logits = torch.cat([pos[..., None], neg], dim=-1)
    mask = target > 0
    return -F.log_softmax(logits[mask], dim=-1)[:, 0].mean()


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
    """gSASRec's exponent: ``β = α (t (1 - 1/α) + 1/α)`` with ``α = k / (n_items - 1)``."""
    alpha = n_negatives / max(n_items - 1, 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce_loss(
    net: SASRecNet, h: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor, beta: float
) -> torch.Tensor:
    """Generalised binary cross-entropy of gSASRec (Petrov & Macdonald 2023).

    ``-(β log σ(s⁺) + Σ_j log(1 - σ(s⁻_j))) / (1 + k)`` per training position, averaged:
    the positive's probability is raised to ``β`` to undo the overconfidence that negative
    sampling causes. Shapes as in :func:`sampled_softmax_loss`; accidental hits are dropped.
    """
    pos = (h * net.item_emb(target)).sum(-1)
    neg = torch.bmm(h, net.item_emb(negatives).transpose(1, 2))
    hit = negatives[:, None, :] == target[:, :, None]
    neg_term = F.logsigmoid(-neg).masked_fill(hit, 0.0).sum(-1)
    per_position = -(beta * F.logsigmoid(pos) + neg_term) / (1 + negatives.shape[1])
    return per_position[target > 0].mean()
