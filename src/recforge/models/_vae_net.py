"""The Mult-VAE / Mult-DAE network (imports torch: loaded only by :mod:`.vae`)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultVAENet", "kl_divergence", "multinomial_nll"]


class MultVAENet(nn.Module):
    """Encoder ``items -> hidden... -> (mu, logvar)`` and a mirrored decoder, tanh between.

    ``dims`` is ``[n_items, *hidden, latent]``; the DAE variant has no ``logvar`` head and
    decodes ``mu`` directly.
    """

    def __init__(self, dims: list[int], dropout: float, variational: bool) -> None:
        super().__init__()
        self.variational = variational
        enc = list(dims)
        enc[-1] = 2 * dims[-1] if variational else dims[-1]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(enc))
        dec = dims[::-1]
        self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dec))
        self.drop = nn.Dropout(dropout)
        self.latent = dims[-1]
        for layer in [*self.encoder, *self.decoder]:
            nn.init.xavier_normal_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mu, logvar)`` of L2-normalised, dropped-out input rows (``logvar`` None: DAE)."""
        h = self.drop(F.normalize(x, dim=1))
        for i, layer in enumerate(self.encoder):
            h = layer(h)
            if i < len(self.encoder) - 1:
                h = torch.tanh(h)
        if not self.variational:
            return h, None
        return h[:, : self.latent], h[:, self.latent :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-probabilities ``(n, n_items)`` of the latent rows."""
        h = z
        for i, layer in enumerate(self.decoder):
            h = layer(h)
            if i < len(self.decoder) - 1:
                h = torch.tanh(h)
        return h

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(logits, mu, logvar)``; samples ``z`` in training mode, uses ``mu`` otherwise."""
        mu, logvar = self.encode(x)
        z = mu
        if self.training and logvar is not None:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


def multinomial_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-Σ_i x_i log softmax(logits)_i`` per row, averaged over rows."""
    return -(F.log_softmax(logits, dim=1) * x).sum(dim=1).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per row, averaged over rows."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
