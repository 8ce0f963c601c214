"""Sequential recommendation with self-attention: :class:`SASRec` (PyTorch, optional extra).

torch is imported only when a model is built or used, so ``import recforge.models`` works
without it; constructing a model without torch raises
:class:`~recforge.exceptions.MissingDependencyError` naming ``pip install 'recforge[deep]'``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from recforge.data import Dataset
from recforge.exceptions import DataError
from recforge.models._shared import TORCH_THREADS, CosineSimilarItems, make_rng
from recforge.models._torch import (
    load_state_arrays,
    require_torch,
    seeded,
    state_arrays,
    threads_of,
)
from recforge.models.base import Recommender, TrainingOptions, check_state_shape, param

__all__ = ["SASRec"]

#: Validation users scored after each epoch at most (a random subset beyond this).
_MAX_VALID_USERS = 10_000
#: Users per forward pass when scoring.
_SCORE_BATCH = 256


def padded_tails(indptr: np.ndarray, items: np.ndarray, rows: np.ndarray, width: int) -> np.ndarray:
    """The last ``width`` items of each selected sequence, 1-based and left-padded with 0.

    Parameters
    ----------
    indptr, items
        Sequences in CSR layout (item codes, oldest first).
    rows
        Which sequences.
    width
        Columns of the result.

    Returns
    -------
    numpy.ndarray of int64, shape ``(len(rows), width)``
    """
    start, end = indptr[rows], indptr[rows + 1]
    pos = end[:, None] - width + np.arange(width, dtype=np.int64)[None, :]
    valid = pos >= start[:, None]
    out = np.where(valid, items[np.where(valid, pos, 0)].astype(np.int64) + 1, 0)
    return np.ascontiguousarray(out)


def _row_positions(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(row number, position in items)`` of every item of the selected CSR rows."""
    start = indptr[rows]
    lengths = indptr[rows + 1] - start
    r = np.repeat(np.arange(rows.size), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return r, np.repeat(start, lengths) + offsets


def _ndcg_at_10(scores: np.ndarray, target: np.ndarray) -> float:
    """Mean NDCG@10 of one held-out item per row (``scores`` already exclude seen items)."""
    rank = (scores > scores[np.arange(target.size), target][:, None]).sum(axis=1)
    gain = np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0)
    return float(gain.mean()) if gain.size else 0.0


class _SASRecState:
    """Learned arrays the SASRec code reads (for type checkers)."""

    item_factors_: np.ndarray
    sequence_indptr_: np.ndarray
    sequence_items_: np.ndarray


class SASRec(_SASRecState, CosineSimilarItems, Recommender):
    """Self-attentive sequential recommendation (Kang & McAuley 2018).

    A user is their training items in time order (ties: row order), the last
    ``max_length`` of them. Item embeddings ``E`` plus learned positional embeddings pass
    ``n_blocks`` causal Transformer blocks (``scaled_dot_product_attention`` with
    ``is_causal``); the hidden state ``h_t`` after item ``t`` scores the next item ``i`` as
    ``h_t·E_i`` (embeddings tied to the output). Every position of every sequence is a
    training example for its next item, with one of three losses:

    * ``"softmax"``: cross-entropy over the whole catalogue (SASRec+, Klenitskiy &
      Vasilev 2023), the most accurate;
    * ``"sampled"``: softmax over the target and ``n_negatives`` items drawn per sequence
      by popularity, each logit corrected by ``-log q_j`` (logQ correction);
    * ``"gbce"``: gSASRec's generalised BCE (Petrov & Macdonald 2023) with ``n_negatives``
      uniform negatives per sequence and the positive's probability raised to
      ``β = α(t(1 - 1/α) + 1/α)``, ``α = n_negatives / (n_items - 1)``.

    Training uses Adam. With ``early_stopping`` each epoch ends with NDCG@10 on
    validation items: the ``valid`` data passed to :meth:`fit` (each user's first item
    there), or otherwise each user's last training item, held out of training (users with
    at least three items). The weights of the best epoch are kept and training stops after
    ``patience`` epochs without improvement. Scores of a user always read their whole
    training sequence. With ``threads=1`` and a seed, fits are bit-identical.

    Attributes
    ----------
    item_factors_ : numpy.ndarray of float32
        ``(n_items, d)`` output item embeddings (``similar_items`` uses their cosine).
    sequence_indptr_, sequence_items_ : numpy.ndarray
        Each user's last ``max_length`` training items in time order (CSR layout).
    valid_scores_ : list of float
        Validation NDCG@10 after each epoch (empty without early stopping).
    best_epoch_ : int
        Epoch (0-based) whose weights were kept.
    loss_ : list of float
        Mean training loss of each epoch.
    """

    name = "sasrec"

    embedding_size: int = param(
        default=64,
        low=1,
        doc="Width ``d`` of the embeddings and hidden states.",
        search={"choices": [32, 64, 128]},
    )
    n_blocks: int = param(default=2, low=1, doc="Transformer blocks.", search={"low": 1, "high": 3})
    n_heads: int = param(default=1, low=1, doc="Attention heads (must divide ``embedding_size``).")
    dropout: float = param(
        default=0.1,
        low=0.0,
        high=0.9,
        doc="Dropout rate of embeddings, attention and feed-forward layers.",
        search={"low": 0.0, "high": 0.5},
    )
    max_length: int = param(
        default=200,
        low=1,
        doc="Items of a sequence the model reads (the most recent).",
        search={"choices": [50, 100, 200]},
    )
    loss: str = param(
        default="softmax",
        options=("softmax", "sampled", "gbce"),
        doc='``"softmax"``, ``"sampled"`` or ``"gbce"``.',
    )
    n_negatives: int = param(
        default=256, low=1, doc='Negatives per sequence for ``"sampled"`` and ``"gbce"``.'
    )
    gbce_t: float = param(
        default=0.75,
        low=0.0,
        high=1.0,
        doc="Calibration ``t`` of gBCE (0: plain BCE, 1: fully calibrated).",
    )
    epochs: int = param(default=200, low=0, doc="Most training epochs.")
    batch_size: int = param(default=128, low=1, doc="Sequences per step.")
    learning_rate: float = param(
        default=1e-3,
        low=0.0,
        low_open=True,
        doc="Adam step size.",
        search={"low": 1e-4, "high": 1e-2, "log": True},
    )
    reg: float = param(default=0.0, low=0.0, doc="Adam weight decay.")
    early_stopping: bool = param(
        default=True, doc="Validate after each epoch and keep the best epoch (see above)."
    )
    patience: int = param(
        default=5, low=1, doc="Epochs without a better validation score before training stops."
    )
    threads: int | None = TORCH_THREADS
    rng: int | None = param(
        default=None, low=0, doc="Seed of initialisation, batches, negatives and dropout."
    )

    supports_similar_items = True
    supports_history = True
    supports_explain = True
    supports_epochs = True
    supports_inner_product = True
    similar_items_by_vector_cosine = True
    sequential = True

    @classmethod
    def _check_combination(cls, values: Mapping[str, Any]) -> None:
        from recforge.exceptions import ConfigError

        require_torch(cls.__name__)
        if values["embedding_size"] % values["n_heads"]:
            raise ConfigError(
                f"The 'n_heads' parameter of SASRec must divide embedding_size "
                f"({values['embedding_size']}). Got {values['n_heads']} instead."
            )

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Dataset, *, valid: Dataset | None = None, **options: Any) -> Self:
        """Learn from interactions; see :meth:`Recommender.fit`.

        Parameters
        ----------
        dataset
            Training interactions, ordered by their time (or row order without time).
        valid
            Validation interactions with the same id indices; each user's first one is
            the item to predict after their training sequence. Default: hold out each
            user's last training item (with ``early_stopping``).
        **options
            ``callback``, ``progress``, ``track_loss`` as in :meth:`Recommender.fit`.
        """
        if valid is not None and (valid.items != dataset.items or valid.users != dataset.users):
            raise DataError("SASRec.fit: valid must share the id indices of the training data")
        self.__dict__["_valid"] = valid
        try:
            return super().fit(dataset, **options)
        finally:
            self.__dict__.pop("_valid", None)

    def _build_net(self, n_items: int) -> Any:
        from recforge.models._sasrec_net import SASRecNet

        return SASRecNet(
            n_items,
            self.embedding_size,
            self.n_blocks,
            self.n_heads,
            self.dropout,
            self.max_length,
        )

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        indptr, items = dataset.sequences()
        self._keep_sequences(indptr, items)
        gen = make_rng(self.rng)
        train_indptr, train_items, valid_rows, valid_target = self._holdout(
            dataset, indptr, items, gen
        )
        with seeded(int(gen.integers(2**31)), self.threads):
            self.__dict__["_net"] = net = self._build_net(dataset.n_items)
            self.item_factors_ = self._item_factors()
            self.loss_: list[float] = []
            self.valid_scores_: list[float] = []
            self.best_epoch_ = 0
            if self.epochs > 0:
                self._train(net, train_indptr, train_items, valid_rows, valid_target, gen, options)

    def _keep_sequences(self, indptr: np.ndarray, items: np.ndarray) -> None:
        """Store each user's last ``max_length`` items (what scoring reads)."""
        lengths = np.minimum(np.diff(indptr), self.max_length)
        new_ptr = np.zeros_like(indptr)
        np.cumsum(lengths, out=new_ptr[1:])
        keep = np.repeat(indptr[1:] - new_ptr[1:], lengths) + np.arange(int(new_ptr[-1]))
        self.sequence_indptr_ = new_ptr
        self.sequence_items_ = np.ascontiguousarray(items[keep], dtype=np.int32)

    def _holdout(
        self, dataset: Dataset, indptr: np.ndarray, items: np.ndarray, gen: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training sequences and validation ``(user rows, target item codes)``."""
        none = np.zeros(0, dtype=np.int64)
        if not self.early_stopping:
            return indptr, items, none, none
        valid = self.__dict__.get("_valid")
        lengths = np.diff(indptr)
        if valid is not None:
            v_indptr, v_items = valid.sequences()
            rows = np.flatnonzero((np.diff(v_indptr) > 0) & (lengths > 0))
            target = v_items[v_indptr[rows]].astype(np.int64)
            train_indptr, train_items = indptr, items
        else:
            rows = np.flatnonzero(lengths >= 3)
            last = indptr[rows + 1] - 1
            target = items[last].astype(np.int64)
            dropped = np.zeros(dataset.n_users, dtype=np.int64)
            dropped[rows] = 1
            train_indptr = indptr - np.concatenate([[0], np.cumsum(dropped)])
            train_items = np.delete(items, last)
        if rows.size > _MAX_VALID_USERS:
            pick = np.sort(gen.choice(rows.size, _MAX_VALID_USERS, replace=False))
            rows, target = rows[pick], target[pick]
        return train_indptr, train_items, rows, target

    def _train(
        self,
        net: Any,
        indptr: np.ndarray,
        items: np.ndarray,
        valid_rows: np.ndarray,
        valid_target: np.ndarray,
        gen: np.random.Generator,
        options: TrainingOptions,
    ) -> None:
        import torch

        from recforge.models._sasrec_net import gbce_beta

        users = np.flatnonzero(np.diff(indptr) >= 2)
        if users.size == 0:
            raise DataError("SASRec needs at least one user with two or more training items")
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.reg)
        n_items = self.item_factors_.shape[0]
        counts = np.bincount(items, minlength=n_items).astype(np.float64) + 1.0
        log_q = torch.from_numpy(np.log(np.r_[1.0, counts / counts.sum()])).float()
        beta = gbce_beta(self.n_negatives, n_items, self.gbce_t)
        best, best_state, stale = -np.inf, None, 0
        for epoch in options.epochs(self.epochs, "SASRec"):
            net.train()
            self.loss_.append(self._epoch(net, opt, indptr, items, users, gen, log_q, beta))
            net.eval()
            self.item_factors_ = self._item_factors()
            if valid_rows.size:
                score = self._valid_score(indptr, items, valid_rows, valid_target)
                self.valid_scores_.append(score)
                if score > best:
                    best, best_state, stale = score, copy.deepcopy(net.state_dict()), 0
                    self.best_epoch_ = epoch
                else:
                    stale += 1
            else:
                self.best_epoch_ = epoch
            if options.after_epoch(epoch, self) or stale >= self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
            self.item_factors_ = self._item_factors()

    def _epoch(
        self,
        net: Any,
        opt: Any,
        indptr: np.ndarray,
        items: np.ndarray,
        users: np.ndarray,
        gen: np.random.Generator,
        log_q: Any,
        beta: float,
    ) -> float:
        """One pass over the training users in random order; returns the mean loss."""
        import torch

        from recforge.models._sasrec_net import gbce_loss, sampled_softmax_loss, softmax_loss

        n_items = self.item_factors_.shape[0]
        q = np.exp(log_q.numpy()[1:].astype(np.float64))
        q /= q.sum()
        order = gen.permutation(users)
        total, batches = 0.0, 0
        for start in range(0, order.size, self.batch_size):
            rows = order[start : start + self.batch_size]
            seq = torch.from_numpy(padded_tails(indptr, items, rows, self.max_length + 1))
            inp, target = seq[:, :-1], seq[:, 1:] * (seq[:, :-1] > 0)
            h = net(inp)
            if self.loss == "softmax":
                mask = target > 0
                loss = softmax_loss(net, h[mask], target[mask])
            else:
                shape = (rows.size, self.n_negatives)
                if self.loss == "sampled":
                    neg = gen.choice(n_items, size=shape, p=q) + 1
                    loss = sampled_softmax_loss(net, h, target, torch.from_numpy(neg), log_q)
                else:
                    neg = gen.integers(1, n_items + 1, size=shape)
                    loss = gbce_loss(net, h, target, torch.from_numpy(neg), beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            batches += 1
        return total / max(batches, 1)

    def _valid_score(
        self, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray, target: np.ndarray
    ) -> float:
        """NDCG@10 of the held-out items after the training sequences, seen items excluded."""
        scores = self._score_sequences(indptr, items, rows)
        r, pos = _row_positions(indptr, rows)
        seen = items[pos]
        keep = seen != target[r]
        scores[r[keep], seen[keep]] = -np.inf
        return _ndcg_at_10(scores, target)

    # ------------------------------------------------------------------ scoring
    def _item_factors(self) -> np.ndarray:
        net = self.__dict__["_net"]
        return np.ascontiguousarray(net.item_weights().detach().numpy(), dtype=np.float32)

    def _hidden(self, padded: np.ndarray) -> np.ndarray:
        """Last hidden state ``(n, d)`` of left-padded 1-based sequences, in eval mode."""
        import torch

        net = self.__dict__["_net"]
        net.eval()
        out = np.empty((padded.shape[0], self.embedding_size), dtype=np.float32)
        with threads_of(self.threads), torch.inference_mode():
            for start in range(0, padded.shape[0], _SCORE_BATCH):
                block = torch.from_numpy(padded[start : start + _SCORE_BATCH])
                out[start : start + block.shape[0]] = net(block)[:, -1].numpy()
        return out

    def _score_sequences(
        self, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        h = self._hidden(padded_tails(indptr, items, np.asarray(rows), self.max_length))
        return np.asarray(h @ self.item_factors_.T, dtype=np.float32)

    def _query_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        rows = np.asarray(user_idx, dtype=np.int64)
        return self._hidden(
            padded_tails(self.sequence_indptr_, self.sequence_items_, rows, self.max_length)
        )

    def _key_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _history_query(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        codes = np.asarray(item_idx, dtype=np.int32)
        indptr = np.array([0, codes.size], dtype=np.int64)
        tails = padded_tails(indptr, codes, np.zeros(1, dtype=np.int64), self.max_length)
        return self._hidden(tails)[0], 0.0

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._score_sequences(
            self.sequence_indptr_, self.sequence_items_, user_idx.astype(np.int64)
        )

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        codes = np.asarray(item_idx, dtype=np.int32)
        indptr = np.array([0, codes.size], dtype=np.int64)
        return self._score_sequences(indptr, codes, np.zeros(1, dtype=np.int64))[0]

    def _user_sequence(self, user_idx: int) -> np.ndarray:
        lo, hi = self.sequence_indptr_[user_idx], self.sequence_indptr_[user_idx + 1]
        return self.sequence_items_[lo:hi].copy()

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """Leave-one-out on the history: score drop when each read item is removed."""
        lo, hi = self.sequence_indptr_[user_idx], self.sequence_indptr_[user_idx + 1]
        seq = self.sequence_items_[lo:hi]
        n = seq.size
        full = float(self._score_users(np.array([user_idx]))[0, item_idx])
        if n == 0:
            return full, "items", []
        # row j is the sequence without its j-th item
        keep = np.arange(n - 1)[None, :]
        without = seq[keep + (keep >= np.arange(n)[:, None])]
        indptr = np.arange(n + 1, dtype=np.int64) * (n - 1)
        h = self._hidden(padded_tails(indptr, without.ravel(), np.arange(n), self.max_length))
        drops = full - h @ self.item_factors_[item_idx]
        order = np.argsort(-np.abs(drops), kind="stable")
        ids = self.items_.ids_of(seq[order])
        return full, "items", [(ids[j], float(drops[order[j]])) for j in range(n)]

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            **state_arrays(self.__dict__["_net"], "net."),
            "sequence_indptr": self.sequence_indptr_,
            "sequence_items": self.sequence_items_,
        }

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        nu, ni = len(self.users_), len(self.items_)
        indptr = check_state_shape(state, "sequence_indptr", (nu + 1,), np.int64)
        seq = check_state_shape(state, "sequence_items", (int(indptr[-1]),), np.int32)
        if seq.size and (seq.min() < 0 or seq.max() >= ni):
            raise DataError("sequence_items holds item codes out of range")
        net = self._build_net(ni)
        load_state_arrays(net, state, "net.")
        net.eval()
        self.__dict__["_net"] = net
        self.sequence_indptr_, self.sequence_items_ = indptr, seq
        self.item_factors_ = self._item_factors()
        self.best_epoch_ = int(meta.get("best_epoch", 0))

    def _get_meta(self) -> dict[str, Any]:
        return {"best_epoch": int(getattr(self, "best_epoch_", 0))}
