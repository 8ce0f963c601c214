"""Two-tower retrieval model over identities and attributes: :class:`TwoTower` (PyTorch).

torch is imported only when a model is built or used; constructing a model without it
raises :class:`~recforge.exceptions.MissingDependencyError` naming
``pip install 'recforge[deep]'``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge._io import csr_from_state, csr_state
from recforge.data import Dataset
from recforge.exceptions import ConfigError, DataError, ModelFormatError
from recforge.features import ItemFeatures
from recforge.models._shared import TORCH_THREADS, CosineSimilarItems, make_rng
from recforge.models._torch import (
    load_state_arrays,
    require_torch,
    seeded,
    state_arrays,
    threads_of,
)
from recforge.models.base import Recommender, TrainingOptions, check_state_shape, param
from recforge.models.content import _pad_rows, _replace_rows, feature_blocks

__all__ = ["TwoTower"]

#: Validation users scored after each epoch at most (a random subset beyond this).
_MAX_VALID_USERS = 2000
#: Rows per forward pass when computing tower outputs outside training.
_TOWER_BATCH = 4096
#: Validation users scored per block (bounded memory).
_VALID_BLOCK = 512


class _TwoTowerState:
    """Learned arrays the two-tower code reads (for type checkers)."""

    item_factors_: np.ndarray
    user_factors_: np.ndarray
    item_feature_matrix_: sp.csr_array
    user_feature_matrix_: sp.csr_array
    positives_: sp.csr_array
    item_identity_: np.ndarray
    n_identity_: int
    features_: ItemFeatures | None
    user_features_: ItemFeatures | None


class TwoTower(_TwoTowerState, CosineSimilarItems, Recommender):
    """Two-tower model: user and item towers over ids and attributes (PyTorch).

    Item tower: ``v_i = g(E[i] + X_i W)`` where ``E[i]`` is the item's identity embedding
    (items with training positives only: an item without interactions, or one added later
    with :meth:`add_items`, has none, so its attributes carry it), ``X_i`` its row of the
    :class:`~recforge.features.ItemFeatures` matrix and ``g`` an optional residual MLP
    followed, with ``normalize``, by L2 normalisation.

    User tower: ``q_u = h(mean_{j in H(u)} B[j] + G_u U)``: the mean of the *user-side item
    embeddings* ``B`` of the user's positives ``H(u)`` (the id part of a user is what they
    interacted with, as in YouTube's candidate generator) plus the user's attribute features
    ``G_u`` times ``U``. A training pair ``(u, i)`` leaves ``i`` out of ``H(u)`` (the tower
    must not see the answer). Because the user tower is a function of a history and
    attributes, a new user is served by exactly the function that was trained:
    :meth:`recommend_for_history` takes the mean over the given items (fold-in without any
    optimisation), and users known only by attributes are scored from ``G_u`` alone
    (``_score_user_attributes``). The score is the inner product ``q_u · v_i`` (a cosine
    with ``normalize``), so the item vectors feed retrieval indexes.

    Training: Adam on the in-batch sampled softmax: in a batch of positive pairs each
    user's target is their item against every other item of the batch, the logits
    ``q_u · v_j / temperature - log p_j`` corrected by the log of each item's sampling
    probability ``p_j`` (its share of the positives; logQ correction, Yi et al. 2019), with
    the same item or the same user elsewhere in the batch left out of the normaliser. The
    identity embedding of a training item is dropped with probability ``id_dropout``, so
    the attribute part learns to stand for the item alone (cold items). Interactions count
    by presence (those below ``positive_threshold`` are not positives).

    With ``early_stopping`` each epoch ends with NDCG@10 on validation items: the ``valid``
    data passed to :meth:`fit` (each user's first item there), or otherwise one random
    positive of each user with at least three, held out of training. The weights of the best
    epoch are kept and training stops after ``patience`` epochs without improvement. Scores
    of a user always read their whole training history. With ``threads=1`` and a seed, fits
    are bit-identical.

    Attributes
    ----------
    item_factors_ : numpy.ndarray of float32
        ``(n_items, embedding_size)`` item tower outputs (keys; ``similar_items`` uses their
        cosine).
    user_factors_ : numpy.ndarray of float32
        ``(n_users, embedding_size)`` user tower outputs of the training users.
    item_feature_matrix_, user_feature_matrix_ : scipy.sparse.csr_array
        Attribute features of the items and the users (zero columns without features).
    positives_ : scipy.sparse.csr_array
        Binary user x item matrix of the training positives (the users' histories).
    item_identity_ : numpy.ndarray of bool
        Whether an item has a trained identity (it had training positives).
    valid_scores_ : list of float
        Validation NDCG@10 after each epoch (empty without early stopping).
    best_epoch_ : int
        Epoch (0-based) whose weights were kept.
    loss_ : list of float
        Mean training loss of each epoch.

    Examples
    --------
    >>> import pandas as pd
    >>> from recforge.data import Dataset
    >>> frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": ["a", "b", "b", "c"]})
    >>> attrs = pd.DataFrame({"genres": ["x", "x|y", "y", "x"]}, index=["a", "b", "c", "d"])
    >>> ds = Dataset.from_frame(frame, item_attributes=attrs)
    >>> model = TwoTower(embedding_size=8, epochs=2, threads=1, rng=0,
    ...                  features=[{"kind": "categories", "column": "genres"}]).fit(ds)
    >>> model.item_factors_.shape
    (4, 8)
    """

    name = "twotower"

    embedding_size: int = param(
        default=64,
        low=1,
        doc="Width of both towers' outputs.",
        search={"choices": [32, 64, 128]},
    )
    hidden: int = param(
        default=0,
        low=0,
        doc="Width of the residual MLP on top of each tower (``0``: none, linear towers).",
        search={"choices": [0, 128]},
    )
    normalize: bool = param(
        default=True,
        doc="L2-normalise both towers (scores are cosines; ``temperature`` scales the logits).",
    )
    temperature: float = param(
        default=0.1,
        low=0.0,
        low_open=True,
        doc="Softmax temperature: the training logits are the scores divided by it.",
        search={"low": 0.03, "high": 0.5, "log": True},
    )
    id_dropout: float = param(
        default=0.3,
        low=0.0,
        high=1.0,
        doc="Probability of dropping an item's identity embedding in a training step, so "
        "its attribute part learns to carry it (``1``: attributes only).",
        search={"low": 0.0, "high": 0.7},
    )
    logq_correction: bool = param(
        default=True, doc="Subtract the log sampling probability of each in-batch item."
    )
    epochs: int = param(default=30, low=0, doc="Most passes over the positive pairs.")
    batch_size: int = param(
        default=512,
        low=2,
        doc="Positive pairs per step (each one's negatives are the batch's other items).",
        search={"choices": [256, 512, 1024]},
    )
    learning_rate: float = param(
        default=3e-3,
        low=0.0,
        low_open=True,
        doc="Adam step size.",
        search={"low": 3e-4, "high": 1e-2, "log": True},
    )
    reg: float = param(
        default=0.0,
        low=0.0,
        doc="Adam weight decay.",
        search={"low": 1e-8, "high": 1e-3, "log": True},
    )
    features: Sequence[Mapping[str, Any]] | None = param(
        default=None,
        convert=feature_blocks,
        doc="Item feature declaration (:meth:`ItemFeatures.to_config`), ``None`` to guess it "
        "from the attribute table (none without one), or ``[]`` for identities only.",
    )
    user_features: Sequence[Mapping[str, Any]] | None = param(
        default=None,
        convert=feature_blocks,
        doc="Declaration of user attribute features (same format, applied to the dataset's "
        "``user_attributes``); ``None``: none. Users without training interactions are then "
        "represented by their attributes.",
    )
    positive_threshold: float | None = param(
        default=None,
        doc="Interactions with a value below this are not positives (e.g. ``3.5`` for star "
        "ratings); ``None`` uses every interaction.",
    )
    early_stopping: bool = param(
        default=True, doc="Validate after each epoch and keep the best epoch (see above)."
    )
    patience: int = param(
        default=3, low=1, doc="Epochs without a better validation score before training stops."
    )
    threads: int | None = TORCH_THREADS
    rng: int | None = param(
        default=None, low=0, doc="Seed of initialisation, batches, holdout and id dropout."
    )

    supports_similar_items = True
    supports_history = True
    supports_explain = True
    supports_new_items = True
    supports_epochs = True
    supports_inner_product = True
    similar_items_by_vector_cosine = True
    supports_user_attributes = True
    #: contributions listed by ``explain`` at most
    explain_top: ClassVar[int] = 20

    @classmethod
    def _check_combination(cls, values: Mapping[str, Any]) -> None:
        require_torch(cls.__name__)

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Dataset, *, valid: Dataset | None = None, **options: Any) -> Self:
        """Learn from interactions; see :meth:`Recommender.fit`.

        Parameters
        ----------
        dataset
            Training interactions (explicit or implicit; presence counts).
        valid
            Validation interactions with the same id indices; each user's first one is
            the item to predict. Default: hold out one positive per user (with
            ``early_stopping``).
        **options
            ``callback``, ``progress``, ``track_loss`` as in :meth:`Recommender.fit`.
        """
        if valid is not None and (valid.items != dataset.items or valid.users != dataset.users):
            raise DataError("TwoTower.fit: valid must share the id indices of the training data")
        self.__dict__["_valid"] = valid
        try:
            return super().fit(dataset, **options)
        finally:
            self.__dict__.pop("_valid", None)

    def _item_block(self, dataset: Dataset) -> tuple[ItemFeatures | None, sp.csr_array]:
        attrs = dataset.item_attributes
        none = sp.csr_array((dataset.n_items, 0), dtype=np.float32)
        if self.features is not None and len(self.features) == 0:
            return None, none
        if attrs is None or attrs.shape[1] == 0:
            if self.features:
                raise DataError(
                    f"dataset {dataset.name!r} has no item attributes but TwoTower was given "
                    "features; pass features=[] for identities only"
                )
            return None, none
        builder = (
            ItemFeatures.auto(attrs)
            if self.features is None
            else ItemFeatures.from_config(self.features)
        )
        return builder, builder.fit_dataset(dataset)

    def _user_block(self, dataset: Dataset) -> tuple[ItemFeatures | None, sp.csr_array]:
        if not self.user_features:
            return None, sp.csr_array((dataset.n_users, 0), dtype=np.float32)
        attrs = dataset.user_attributes
        if attrs is None or attrs.shape[1] == 0:
            raise DataError(
                f"dataset {dataset.name!r} has no user attributes but TwoTower was given "
                "user_features"
            )
        builder = ItemFeatures.from_config(self.user_features).fit(attrs)
        return builder, builder.transform_index(attrs, dataset.users)

    def _build_net(self, n_identity: int, n_item_features: int, n_user_features: int) -> Any:
        from recforge.models._twotower_net import TwoTowerNet

        return TwoTowerNet(
            n_identity,
            n_item_features,
            n_user_features,
            self.embedding_size,
            self.hidden,
            self.normalize,
        )

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        self.features_, xfeat = self._item_block(dataset)
        self.user_features_, ufeat = self._user_block(dataset)
        self.item_feature_matrix_ = _sorted(xfeat)
        self.user_feature_matrix_ = _sorted(ufeat)
        keep = np.ones(dataset.n_interactions, dtype=bool)
        if self.positive_threshold is not None:
            keep = dataset.value >= self.positive_threshold
        pos = sp.csr_array(
            (np.ones(int(keep.sum()), np.float32), (dataset.user[keep], dataset.item[keep])),
            shape=(dataset.n_users, dataset.n_items),
        )
        if pos.nnz == 0:
            raise DataError(
                f"TwoTower: no interaction of dataset {dataset.name!r} reaches "
                f"positive_threshold={self.positive_threshold}"
            )
        pos.sum_duplicates()
        pos.data[:] = 1.0
        pos.sort_indices()
        self.positives_ = pos
        gen = make_rng(self.rng)
        train, valid_rows, valid_target = self._holdout(pos, gen)
        self.n_identity_ = dataset.n_items
        self.item_identity_ = np.bincount(train.indices, minlength=dataset.n_items) > 0
        self.loss_: list[float] = []
        self.valid_scores_: list[float] = []
        self.best_epoch_ = 0
        with seeded(int(gen.integers(2**31)), self.threads):
            net = self._build_net(dataset.n_items, xfeat.shape[1], ufeat.shape[1])
            self.__dict__["_net"] = net
            self._refresh()
            if self.epochs > 0 and train.nnz > 0:
                self._train(net, train, valid_rows, valid_target, gen, options)

    def _holdout(
        self, pos: sp.csr_array, gen: np.random.Generator
    ) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
        """Training positives and validation ``(user rows, target item codes)``."""
        none = np.zeros(0, dtype=np.int64)
        if not self.early_stopping:
            return pos, none, none
        valid = self.__dict__.get("_valid")
        counts = np.diff(pos.indptr)
        if valid is not None:
            first = np.unique(valid.user, return_index=True)
            rows = first[0].astype(np.int64)
            target = valid.item[first[1]].astype(np.int64)
            ok = counts[rows] > 0
            rows, target, train = rows[ok], target[ok], pos
        else:
            rows = np.flatnonzero(counts >= 3).astype(np.int64)
            pick = pos.indptr[rows] + (gen.random(rows.size) * counts[rows]).astype(np.int64)
            target = pos.indices[pick].astype(np.int64)
            mask = np.ones(pos.nnz, dtype=bool)
            mask[pick] = False
            user_of = np.repeat(np.arange(pos.shape[0]), counts)
            train = sp.csr_array(
                (pos.data[mask], (user_of[mask], pos.indices[mask])), shape=pos.shape
            )
            train.sort_indices()
        if rows.size > _MAX_VALID_USERS:
            keep = np.sort(gen.choice(rows.size, _MAX_VALID_USERS, replace=False))
            rows, target = rows[keep], target[keep]
        return train, rows, target

    def _train(
        self,
        net: Any,
        train: sp.csr_array,
        valid_rows: np.ndarray,
        valid_target: np.ndarray,
        gen: np.random.Generator,
        options: TrainingOptions,
    ) -> None:
        import torch

        from recforge.models._twotower_net import in_batch_softmax_loss

        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.reg)
        counts = np.diff(train.indptr)
        users = np.repeat(np.arange(train.shape[0], dtype=np.int64), counts)
        items = train.indices.astype(np.int64)
        share = np.bincount(items, minlength=train.shape[1]).astype(np.float64) / items.size
        log_p = np.log(np.maximum(share, 1e-12)).astype(np.float32)
        if not self.logq_correction:
            log_p[:] = 0.0
        identity = torch.from_numpy(self.item_identity_.astype(np.float32))
        history_counts = torch.from_numpy(counts.astype(np.float32))
        best, best_state, stale = -np.inf, None, 0
        for epoch in options.epochs(self.epochs, "TwoTower"):
            net.train()
            order = gen.permutation(users.size)
            total, batches = 0.0, 0
            for start in range(0, order.size, self.batch_size):
                pick = order[start : start + self.batch_size]
                if pick.size < 2:
                    continue
                u, i = users[pick], items[pick]
                queries = self._pair_queries(net, train, u, i, history_counts)
                i_t = torch.from_numpy(i)
                keep = identity[i_t] * (torch.rand(i.size) >= self.id_dropout).float()
                keys = net.items(i_t, keep, _bag(self.item_feature_matrix_, i))
                same = (u[:, None] == u[None, :]) | (i[:, None] == i[None, :])
                np.fill_diagonal(same, False)
                loss = in_batch_softmax_loss(
                    queries,
                    keys,
                    torch.from_numpy(log_p[i]),
                    torch.from_numpy(same),
                    self.temperature,
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach())
                batches += 1
            net.eval()
            self.loss_.append(total / max(batches, 1))
            self._refresh()
            if valid_rows.size:
                score = self._valid_score(train, valid_rows, valid_target)
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
            self._refresh()

    def _pair_queries(
        self, net: Any, train: sp.csr_array, u: np.ndarray, i: np.ndarray, counts: Any
    ) -> Any:
        """User tower of each training pair: the history mean without the pair's item."""
        import torch

        uniq, inv = np.unique(u, return_inverse=True)
        sums = net.history_sums(_bag(train, uniq), uniq.size)
        inv_t = torch.from_numpy(inv)
        own = net.history[torch.from_numpy(i)]
        pair_sums = sums[inv_t] - own
        pair_counts = counts[torch.from_numpy(u)] - 1.0
        feats = _bag(self.user_feature_matrix_, u)
        return net.users(pair_sums, pair_counts, feats)

    def _valid_score(self, train: sp.csr_array, rows: np.ndarray, target: np.ndarray) -> float:
        """NDCG@10 of the held-out items, each user's training positives excluded."""
        gains = np.zeros(rows.size)
        for start in range(0, rows.size, _VALID_BLOCK):
            r = rows[start : start + _VALID_BLOCK]
            t = target[start : start + _VALID_BLOCK]
            q = self._user_queries(train, self.user_feature_matrix_, r)
            scores = q @ self.item_factors_.T
            sub = train[r]
            row_of = np.repeat(np.arange(r.size), np.diff(sub.indptr))
            own = sub.indices != t[row_of]
            scores[row_of[own], sub.indices[own]] = -np.inf
            mine = scores[np.arange(r.size), t]
            rank = (scores > mine[:, None]).sum(axis=1)
            gains[start : start + r.size] = np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0)
        return float(gains.mean()) if gains.size else 0.0

    # ------------------------------------------------------------------ towers
    def _network(self) -> Any:
        return self.__dict__["_net"]

    def _item_towers(self, codes: np.ndarray, features: sp.csr_array) -> np.ndarray:
        """Item tower outputs of ``codes`` (identities where trained) with feature rows."""
        import torch

        net = self._network()
        n_id = self.n_identity_
        codes = np.asarray(codes, dtype=np.int64)
        has_id = (codes < n_id) & self.item_identity_[np.minimum(codes, n_id - 1)]
        out = np.empty((codes.size, self.embedding_size), dtype=np.float32)
        with threads_of(self.threads), torch.inference_mode():
            for start in range(0, codes.size, _TOWER_BATCH):
                c = codes[start : start + _TOWER_BATCH]
                keep = torch.from_numpy(has_id[start : start + _TOWER_BATCH].astype(np.float32))
                rows = np.arange(start, start + c.size)
                v = net.items(torch.from_numpy(np.minimum(c, n_id - 1)), keep, _bag(features, rows))
                out[start : start + c.size] = v.numpy()
        return out

    def _user_queries(
        self, histories: sp.csr_array, features: sp.csr_array, rows: np.ndarray
    ) -> np.ndarray:
        """User tower outputs of ``rows`` of a history matrix and a user feature matrix."""
        import torch

        net = self._network()
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.embedding_size), dtype=np.float32)
        with threads_of(self.threads), torch.inference_mode():
            for start in range(0, rows.size, _TOWER_BATCH):
                r = rows[start : start + _TOWER_BATCH]
                sums = net.history_sums(_bag(histories, r), r.size)
                counts = torch.from_numpy(np.diff(histories[r].indptr).astype(np.float32))
                q = net.users(sums, counts, _bag(features, r))
                out[start : start + r.size] = q.numpy()
        return out

    def _refresh(self) -> None:
        """Recompute the item and user tower outputs from the network."""
        n = self.item_feature_matrix_.shape[0]
        self.item_factors_ = self._item_towers(np.arange(n), self.item_feature_matrix_)
        self.user_factors_ = self._user_queries(
            self.positives_, self.user_feature_matrix_, np.arange(self.positives_.shape[0])
        )

    def _history_matrix(self, item_idx: np.ndarray) -> sp.csr_array:
        """One-row history of the given items that have a trained user-side embedding."""
        codes = np.unique(np.asarray(item_idx, dtype=np.int64))
        codes = codes[codes < self.n_identity_]
        codes = codes[self.item_identity_[codes]]
        return sp.csr_array(
            (np.ones(codes.size, np.float32), (np.zeros(codes.size, np.int64), codes)),
            shape=(1, self.n_identity_),
        )

    # ------------------------------------------------------------------ scoring
    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors_[user_idx] @ self.item_factors_.T, dtype=np.float32)

    def _query_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors_[user_idx]

    def _key_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _history_query(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        """The user tower of the history: mean of its items' user-side embeddings (items
        without training positives, e.g. added later, carry none and are skipped)."""
        empty = sp.csr_array((1, self.user_feature_matrix_.shape[1]), dtype=np.float32)
        hist = self._history_matrix(item_idx)
        return self._user_queries(hist, empty, np.zeros(1, dtype=np.int64))[0], 0.0

    def _user_attribute_columns(self) -> list[str]:
        if self.user_features_ is None:
            raise DataError(
                "TwoTower was fitted without user_features, so it cannot represent a user by "
                "attributes; declare user_features (e.g. categories of age and occupation)"
            )
        return list(self.user_features_.columns)

    def _score_user_attributes(self, attributes: pd.DataFrame) -> np.ndarray:
        """The user tower without a history: its ``user_features`` part alone."""
        assert self.user_features_ is not None
        g = _sorted(self.user_features_.transform(attributes))
        none = sp.csr_array((len(attributes), self.n_identity_), dtype=np.float32)
        q = self._user_queries(none, g, np.arange(len(attributes)))
        return np.asarray(q @ self.item_factors_.T, dtype=np.float32)

    # ------------------------------------------------------------------ explanations
    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        """Leave-one-out: the score drop when each history item (or, for a user without
        history, each of the item's attribute features) is removed."""
        key = self.item_factors_[item_idx]
        full = float(self.user_factors_[user_idx] @ key)
        hist = self.positives_[[user_idx]].indices.astype(np.int64)
        hist = hist[self.item_identity_[hist]]
        if hist.size:
            n = hist.size
            rows = np.repeat(np.arange(n), n - 1)
            cols = np.tile(hist, n).reshape(n, n)[~np.eye(n, dtype=bool)]
            without = sp.csr_array(
                (np.ones(rows.size, np.float32), (rows, cols)), shape=(n, self.n_identity_)
            )
            feats = self.user_feature_matrix_[np.full(n, user_idx)]
            drops = full - self._user_queries(without, _sorted(feats), np.arange(n)) @ key
            names = self.items_.ids_of(hist.astype(np.int32))
            kind = "items"
        else:
            row = self.item_feature_matrix_[[item_idx]]
            n = row.nnz
            if n == 0:
                return full, "features", []
            base = sp.csr_array(row[np.zeros(n, dtype=np.int64)])
            base.data[np.arange(n) * n + np.arange(n)] = 0.0
            base.eliminate_zeros()
            v = self._item_towers(np.full(n, item_idx), _sorted(base))
            drops = full - v @ self.user_factors_[user_idx]
            assert self.features_ is not None
            names = np.asarray(self.features_.feature_names_, dtype=object)[row.indices]
            kind = "features"
        order = np.argsort(-np.abs(drops), kind="stable")[: self.explain_top]
        return full, kind, [(names[o], float(drops[o])) for o in order]

    # ------------------------------------------------------------------ new items
    def add_items(self, attributes: pd.DataFrame) -> Self:
        """Represent new (or updated) items by their attributes; no retraining.

        New ids are appended to ``items_`` with no identity embedding, so their item tower
        is the attribute part alone; known ids get their attribute part rebuilt (a trained
        identity is kept). See :meth:`Recommender.add_items`.

        Raises
        ------
        DataError
            If the model was fitted without item features, or on bad attributes.
        """
        if self.is_fitted and self.features_ is None:
            raise DataError("TwoTower was fitted without item features; cannot add items")
        return super().add_items(attributes)

    def _add_items(self, codes: np.ndarray, attributes: pd.DataFrame, n_items: int) -> None:
        assert self.features_ is not None
        fresh = _sorted(self.features_.transform(attributes))
        matrix = _replace_rows(_pad_rows(self.item_feature_matrix_, n_items), codes, fresh)
        self.item_feature_matrix_ = matrix
        identity = np.zeros(n_items, dtype=bool)
        identity[: self.item_identity_.size] = self.item_identity_
        self.item_identity_ = identity
        vectors = np.zeros((n_items, self.embedding_size), dtype=np.float32)
        vectors[: self.item_factors_.shape[0]] = self.item_factors_
        vectors[codes] = self._item_towers(codes, fresh)
        self.item_factors_ = vectors
        self.positives_ = sp.csr_array(
            (self.positives_.data, self.positives_.indices, self.positives_.indptr),
            shape=(self.positives_.shape[0], n_items),
        )

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            **state_arrays(self._network(), "net."),
            "item_factors": self.item_factors_,
            "user_factors": self.user_factors_,
            "item_identity": self.item_identity_.astype(np.int8),
        }
        out.update(csr_state("item_feature_matrix", self.item_feature_matrix_))
        out.update(csr_state("user_feature_matrix", self.user_feature_matrix_))
        out.update(csr_state("positives", self.positives_))
        if self.features_ is not None:
            out.update(self.features_.get_state(prefix="features."))
        if self.user_features_ is not None:
            out.update(self.user_features_.get_state(prefix="user_features."))
        return out

    def _get_meta(self) -> dict[str, Any]:
        return {
            "features": None if self.features_ is None else self.features_.to_config(),
            "user_features": None
            if self.user_features_ is None
            else self.user_features_.to_config(),
            "n_identity": self.n_identity_,
            "best_epoch": int(self.best_epoch_),
        }

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        nu, ni, d = len(self.users_), len(self.items_), self.embedding_size
        self.features_ = _builder(meta.get("features"), state, "features.")
        self.user_features_ = _builder(meta.get("user_features"), state, "user_features.")
        n_id = meta.get("n_identity")
        if not isinstance(n_id, int) or not 0 < n_id <= ni:
            raise ModelFormatError(f"TwoTower meta has an invalid n_identity {n_id!r}")
        self.n_identity_ = n_id
        n_if = 0 if self.features_ is None else self.features_.n_features_
        n_uf = 0 if self.user_features_ is None else self.user_features_.n_features_
        self.item_feature_matrix_ = csr_from_state(state, "item_feature_matrix", (ni, n_if))
        self.user_feature_matrix_ = csr_from_state(state, "user_feature_matrix", (nu, n_uf))
        self.positives_ = csr_from_state(state, "positives", (nu, ni))
        identity = check_state_shape(state, "item_identity", (ni,), np.int8)
        self.item_identity_ = identity.astype(bool)
        self.item_factors_ = check_state_shape(state, "item_factors", (ni, d), np.float32)
        self.user_factors_ = check_state_shape(state, "user_factors", (nu, d), np.float32)
        net = self._build_net(n_id, n_if, n_uf)
        load_state_arrays(net, state, "net.")
        net.eval()
        self.__dict__["_net"] = net
        self.best_epoch_ = int(meta.get("best_epoch", 0))


def _sorted(x: Any) -> sp.csr_array:
    """float32 CSR copy with sorted indices."""
    out = sp.csr_array(x, dtype=np.float32, copy=True)
    out.sort_indices()
    return out


def _bag(x: sp.csr_array, rows: np.ndarray) -> Any:
    """The selected CSR rows as an ``embedding_bag`` input ``(indices, offsets, weights)``."""
    import torch

    sub = x[np.asarray(rows, dtype=np.int64)]
    return (
        torch.from_numpy(np.asarray(sub.indices, dtype=np.int64)),
        torch.from_numpy(np.asarray(sub.indptr[:-1], dtype=np.int64)),
        torch.from_numpy(np.asarray(sub.data, dtype=np.float32)),
    )


def _builder(config: Any, state: Mapping[str, np.ndarray], prefix: str) -> ItemFeatures | None:
    """A fitted feature builder restored from its saved declaration and arrays."""
    if config is None:
        return None
    try:
        return ItemFeatures.from_config(config).set_state(state, prefix)
    except (ConfigError, DataError) as exc:
        raise ModelFormatError(f"invalid feature state under {prefix!r} ({exc})") from exc
