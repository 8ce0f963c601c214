"""Variational and denoising autoencoders for implicit feedback: :class:`MultVAE` (PyTorch).

torch is imported only when a model is built or used; constructing a model without it
raises :class:`~recforge.exceptions.MissingDependencyError` naming
``pip install 'recforge[deep]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.data import Dataset
from recforge.exceptions import ConfigError
from recforge.models._shared import TORCH_THREADS, CosineSimilarItems, make_rng
from recforge.models._torch import (
    load_state_arrays,
    require_torch,
    seeded,
    state_arrays,
    threads_of,
)
from recforge.models.base import Recommender, TrainingOptions, param

__all__ = ["MultVAE"]

_SCORE_BATCH = 1024


class _MultVAEState:
    """Learned arrays the Mult-VAE code reads (for type checkers)."""

    item_factors_: np.ndarray


class MultVAE(_MultVAEState, CosineSimilarItems, Recommender):
    """Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman & Jebara 2018).

    A user is the binary vector ``x`` of their training items. The encoder maps the
    L2-normalised ``x`` (with input dropout) through tanh layers ``hidden`` to a latent
    Gaussian ``N(μ, σ²)`` of size ``latent``; the mirrored decoder maps a latent sample to
    logits ``f(z)`` whose softmax ``π`` is a multinomial over items. Training maximises the
    annealed ELBO ``Σ_i x_i log π_i - β KL(q(z|x) || N(0, I))`` with
    ``β = min(beta_cap, step / anneal_steps)`` (Adam). ``variant="dae"`` is Mult-DAE: a
    deterministic latent and no KL term. Scores of a user (and of a new history, fold-in
    without retraining) are the decoder logits of the encoder mean. Interaction values
    are ignored: presence counts.

    Attributes
    ----------
    item_factors_ : numpy.ndarray of float32
        ``(n_items, hidden)`` rows of the decoder's output layer (``similar_items``).
    loss_ : list of float
        Mean training loss (negative annealed ELBO) of each epoch.
    beta_ : float
        KL weight reached at the end of training (0 for the DAE).
    """

    name = "multvae"

    variant: str = param(default="vae", options=("vae", "dae"), doc='``"vae"`` or ``"dae"``.')
    hidden: int = param(
        default=600,
        low=0,
        doc="Width of the hidden layer between the items and the latent code (``0``: none).",
        search={"choices": [200, 600]},
    )
    latent: int = param(
        default=200, low=1, doc="Size of the latent code.", search={"choices": [64, 200]}
    )
    dropout: float = param(
        default=0.5,
        low=0.0,
        high=0.95,
        doc="Dropout rate on the input.",
        search={"low": 0.2, "high": 0.7},
    )
    beta_cap: float = param(
        default=0.2,
        low=0.0,
        doc="Largest KL weight ``β`` (it grows linearly over ``anneal_steps`` updates).",
        search={"low": 0.05, "high": 1.0, "log": True},
    )
    anneal_steps: int = param(
        default=200_000, low=1, doc="Updates over which ``β`` grows to ``beta_cap``."
    )
    epochs: int = param(default=100, low=0, doc="Passes over the users.")
    batch_size: int = param(default=500, low=1, doc="Users per update.")
    learning_rate: float = param(
        default=1e-3,
        low=0.0,
        low_open=True,
        doc="Adam step size.",
        search={"low": 1e-4, "high": 1e-2, "log": True},
    )
    reg: float = param(default=0.0, low=0.0, doc="Adam weight decay.")
    threads: int | None = TORCH_THREADS
    rng: int | None = param(
        default=None, low=0, doc="Seed of initialisation, batches, dropout and latent samples."
    )

    supports_similar_items = True
    supports_history = True
    supports_explain = True
    supports_epochs = True

    @classmethod
    def _check_combination(cls, values: Mapping[str, Any]) -> None:
        require_torch(cls.__name__)

    def _build_net(self, n_items: int) -> Any:
        from recforge.models._vae_net import MultVAENet

        dims = [n_items, *([self.hidden] if self.hidden else []), self.latent]
        return MultVAENet(dims, self.dropout, self.variant == "vae")

    # ------------------------------------------------------------------ fitting
    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        x = self.seen_
        users = np.flatnonzero(np.diff(x.indptr) > 0)
        if users.size == 0:
            raise ConfigError("MultVAE needs at least one user with interactions")
        gen = make_rng(self.rng)
        with seeded(int(gen.integers(2**31)), self.threads):
            self.__dict__["_net"] = net = self._build_net(dataset.n_items)
            self.item_factors_ = self._item_factors()
            self.loss_: list[float] = []
            self._train(net, x, users, gen, options)

    def _train(
        self,
        net: Any,
        x: sp.csr_array,
        users: np.ndarray,
        gen: np.random.Generator,
        options: TrainingOptions,
    ) -> None:
        import torch

        from recforge.models._vae_net import kl_divergence, multinomial_nll

        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.reg)
        step = 0
        for epoch in options.epochs(self.epochs, "MultVAE"):
            net.train()
            total, batches = 0.0, 0
            order = gen.permutation(users)
            for start in range(0, order.size, self.batch_size):
                batch = torch.from_numpy(_dense(x, order[start : start + self.batch_size]))
                logits, mu, logvar = net(batch)
                loss = multinomial_nll(logits, batch)
                if logvar is not None:
                    beta = min(self.beta_cap, step / self.anneal_steps)
                    loss = loss + beta * kl_divergence(mu, logvar)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                total += float(loss.detach())
                batches += 1
            net.eval()
            self.loss_.append(total / max(batches, 1))
            self.beta_ = min(self.beta_cap, step / self.anneal_steps) if net.variational else 0.0
            self.item_factors_ = self._item_factors()
            if options.after_epoch(epoch, self):
                break

    # ------------------------------------------------------------------ scoring
    def _item_factors(self) -> np.ndarray:
        net = self.__dict__["_net"]
        weight = net.decoder[-1].weight.detach().numpy()
        return np.ascontiguousarray(weight, dtype=np.float32)

    def _logits(self, rows: np.ndarray) -> np.ndarray:
        """Decoder logits of the encoder mean for dense binary rows ``(n, n_items)``."""
        import torch

        net = self.__dict__["_net"]
        net.eval()
        out = np.empty(rows.shape, dtype=np.float32)
        with threads_of(self.threads), torch.inference_mode():
            for start in range(0, rows.shape[0], _SCORE_BATCH):
                block = torch.from_numpy(rows[start : start + _SCORE_BATCH])
                out[start : start + block.shape[0]] = net(block)[0].numpy()
        return out

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._logits(_dense(self.seen_, user_idx))

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        row = np.zeros((1, self.n_items), dtype=np.float32)
        row[0, item_idx] = 1.0
        return self._logits(row)[0]

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """Leave-one-out on the history: score drop when each training item is removed."""
        items, _ = self.user_history(user_idx)
        row = np.zeros((items.size + 1, self.n_items), dtype=np.float32)
        row[:, items] = 1.0
        row[np.arange(1, items.size + 1), items] = 0.0  # row j + 1 lacks the j-th item
        logits = self._logits(row)[:, item_idx]
        drops = logits[0] - logits[1:]
        order = np.argsort(-np.abs(drops), kind="stable")
        ids = self.items_.ids_of(items[order])
        return (
            float(logits[0]),
            "items",
            [(ids[j], float(drops[order[j]])) for j in range(ids.size)],
        )

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        return state_arrays(self.__dict__["_net"], "net.")

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        net = self._build_net(len(self.items_))
        load_state_arrays(net, state, "net.")
        net.eval()
        self.__dict__["_net"] = net
        self.item_factors_ = self._item_factors()


def _dense(x: sp.csr_array, rows: np.ndarray) -> np.ndarray:
    """Binary dense float32 rows of a CSR matrix (presence of each stored entry)."""
    sub = x[np.asarray(rows)]
    out = np.zeros(sub.shape, dtype=np.float32)
    out[np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr)), sub.indices] = 1.0
    return out
