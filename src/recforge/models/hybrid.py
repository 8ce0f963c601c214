"""Hybrid models: :class:`HybridMF` (LightFM-style factorisation) and :class:`Blend` (ensemble).

HybridMF
--------
Kula (2015), "Metadata Embeddings for User and Item Cold-start Recommendations": an item is
represented by the sum of the embeddings of its features, ``q_i = Σ_f F[i, f] E[f]`` and
``b_i = Σ_f F[i, f] c[f]``, where the features are the item's own identity (for items seen in
training) plus its attribute features from :class:`~recforge.features.ItemFeatures`; each row
of ``F`` sums to one. Users are embeddings ``p_u`` and the score is ``p_u · q_i + b_i``. Training
is SGD with Adagrad on BPR (Rendle et al. 2009) or WARP (Weston et al. 2011) ranking losses
(numba kernel in :mod:`recforge._kernels.hybrid`). A cold item -- attributes but no
interactions, or one added later with :meth:`HybridMF.add_items` -- is represented by its
attribute features alone, so it can be recommended without retraining.

Blend
-----
A weighted sum of the normalised scores of several member models, with the weights chosen on
a validation holdout (coordinate search on NDCG@k), plus switching rules for users with short
histories and for items without interactions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge._kernels.hybrid import LOSS_BPR, LOSS_WARP, run_epoch
from recforge.data import Dataset
from recforge.exceptions import ConfigError, DataError, ModelFormatError
from recforge.features import ItemFeatures
from recforge.models._shared import with_unit_column
from recforge.models.base import Recommender, TrainingOptions, check_state_shape, param
from recforge.models.content import (
    _csr_from_state,
    _csr_state,
    _pad_rows,
    _replace_rows,
    feature_blocks,
)

__all__ = ["Blend", "HybridMF"]

_BPR_TRIES = 4
_IDENTITY = "item identity"


def _l1_rows(x: sp.csr_array) -> sp.csr_array:
    x = sp.csr_array(x, dtype=np.float32, copy=True)
    sums = np.asarray(np.abs(x).sum(axis=1)).ravel().astype(np.float32)
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    x.data *= np.repeat(inv, np.diff(x.indptr))
    return x


class HybridMF(Recommender):
    """LightFM-style hybrid matrix factorisation with item metadata (BPR or WARP loss).

    Attributes
    ----------
    user_feat_emb_ : numpy.ndarray of float32, ``(n_user_identity + n_user_features, factors)``
        Embeddings of the user identities (users with training positives) and user features.
    user_feature_matrix_ : scipy.sparse.csr_array
        ``G`` (users x user features), rows summing to one; a user's representation is
        ``G[u] @ user_feat_emb_`` (:attr:`user_repr_`).
    feat_emb_ : numpy.ndarray of float32, ``(n_identity + n_features, factors)``
    feat_bias_ : numpy.ndarray of float32
    item_feature_matrix_ : scipy.sparse.csr_array
        ``F`` with rows summing to one; the first ``n_identity_`` columns are identities.
    features_ : ItemFeatures or None

    Examples
    --------
    >>> import pandas as pd
    >>> from recforge.data import Dataset
    >>> frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": ["a", "b", "b", "c"]})
    >>> attrs = pd.DataFrame({"genres": ["x", "x|y", "y", "x"]}, index=["a", "b", "c", "d"])
    >>> ds = Dataset.from_frame(frame, item_attributes=attrs)
    >>> model = HybridMF(factors=4, epochs=5, n_threads=1,
    ...                  features=[{"kind": "categories", "column": "genres"}]).fit(ds)
    >>> model.item_feature_matrix_.shape  # 3 warm identities + 2 genres; "d" is cold
    (4, 5)
    >>> model.explain(1, "d").contributions[0][0]
    'genres=x'
    """

    name = "hybridmf"
    supports_history = True
    supports_similar_items = True
    supports_explain = True
    supports_user_attributes = True
    supports_item_vectors = True
    supports_new_items = True
    supports_epochs = True
    supports_inner_product = True
    similar_items_by_vector_cosine = True
    explain_top: ClassVar[int] = 10

    factors: int = param(
        default=32,
        low=1,
        doc="Embedding width.",
        search={"low": 16, "high": 128, "log": True},
    )
    epochs: int = param(
        default=20,
        low=0,
        doc="Passes over the positive interactions.",
        search={"low": 5, "high": 60, "log": True},
    )
    learning_rate: float = param(
        default=0.05,
        low=0.0,
        low_open=True,
        doc="Adagrad step size.",
        search={"low": 0.01, "high": 0.1, "log": True},
    )
    reg: float = param(
        default=1e-5,
        low=0.0,
        doc="L2 penalty on every updated embedding and bias.",
        search={"low": 1e-6, "high": 1e-2, "log": True},
    )
    loss: str = param(default="warp", options=("bpr", "warp"), doc='``"bpr"`` or ``"warp"``.')
    max_sampled: int = param(
        default=10, low=1, doc="WARP: negatives tried per positive before giving up."
    )
    features: Sequence[Mapping[str, Any]] | None = param(
        default=None,
        convert=feature_blocks,
        doc="Item feature declaration (:meth:`ItemFeatures.to_config`), ``None`` to guess it "
        "from the attribute table, or ``[]`` for identity features only (plain BPR/WARP MF). "
        "Without item attributes the model degrades to plain MF.",
    )
    user_features: Sequence[Mapping[str, Any]] | None = param(
        default=None,
        convert=feature_blocks,
        doc="Declaration of user attribute features (same format, applied to the dataset's "
        "``user_attributes``, e.g. age bins, gender, occupation); ``None``: identities only. "
        "Users without training interactions are then represented by their attributes.",
    )
    positive_threshold: float | None = param(
        default=None,
        doc="Interactions with a value below this are not used as positives (e.g. ``3.5`` for "
        "star ratings); ``None`` uses every interaction.",
    )
    fold_in_epochs: int = param(
        default=20,
        low=1,
        doc="SGD passes over a history in :meth:`recommend_for_history` (item side frozen).",
    )
    n_threads: int | None = param(
        default=None,
        low=1,
        doc="Hogwild chunks trained in parallel (opt-in). ``None`` (default) or ``1`` trains on "
        "one thread and is reproducible under ``rng`` on any machine; more chunks are faster but "
        "vary slightly from run to run (item features shared by many items rule out a "
        "race-free split into blocks).",
    )
    rng: int = param(default=0, low=0, doc="Seed of initialisation and sampling.")

    # ------------------------------------------------------------------ fitting
    def _feature_block(self, dataset: Dataset) -> tuple[ItemFeatures | None, sp.csr_array]:
        attrs = dataset.item_attributes
        if self.features is not None and len(self.features) == 0:
            return None, sp.csr_array((dataset.n_items, 0), dtype=np.float32)
        if attrs is None or attrs.shape[1] == 0:
            if self.features:
                raise DataError(
                    f"dataset {dataset.name!r} has no item attributes but HybridMF was given "
                    "features; pass features=[] for identity-only factorisation"
                )
            return None, sp.csr_array((dataset.n_items, 0), dtype=np.float32)
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
                f"dataset {dataset.name!r} has no user attributes but HybridMF was given "
                "user_features"
            )
        builder = ItemFeatures.from_config(self.user_features).fit(attrs)
        return builder, builder.transform_index(attrs, dataset.users)

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        self.features_, xfeat = self._feature_block(dataset)
        self.user_features_, ufeat = self._user_block(dataset)
        keep = np.ones(dataset.n_interactions, dtype=bool)
        if self.positive_threshold is not None:
            keep = dataset.value >= self.positive_threshold
        users = np.ascontiguousarray(dataset.user[keep], dtype=np.int32)
        items = np.ascontiguousarray(dataset.item[keep], dtype=np.int32)
        warm = np.bincount(items, minlength=dataset.n_items) > 0
        n_items = dataset.n_items
        ident = sp.csr_array(
            (np.ones(int(warm.sum()), np.float32), (np.flatnonzero(warm), np.arange(warm.sum()))),
            shape=(n_items, int(warm.sum())),
        )
        self.n_identity_ = int(warm.sum())
        self.identity_items_ = np.flatnonzero(warm).astype(np.int32)
        f = _l1_rows(sp.hstack([ident, xfeat], format="csr"))
        f.sort_indices()
        self.item_feature_matrix_ = f
        warm_u = np.bincount(users, minlength=dataset.n_users) > 0
        n_uid = int(warm_u.sum())
        uident = sp.csr_array(
            (np.ones(n_uid, np.float32), (np.flatnonzero(warm_u), np.arange(n_uid))),
            shape=(dataset.n_users, n_uid),
        )
        self.n_user_identity_ = n_uid
        g = _l1_rows(sp.hstack([uident, ufeat], format="csr"))
        g.sort_indices()
        self.user_feature_matrix_ = g
        n_feat = f.shape[1]
        gen = np.random.default_rng(self.rng)
        d = self.factors
        self.user_feat_emb_ = ((gen.random((g.shape[1], d)) - 0.5) / d).astype(np.float32)
        self.feat_emb_ = ((gen.random((n_feat, d)) - 0.5) / d).astype(np.float32)
        self.feat_bias_ = np.zeros(n_feat, dtype=np.float32)
        user_acc = np.ones_like(self.user_feat_emb_)
        feat_acc = np.ones_like(self.feat_emb_)
        bias_acc = np.ones_like(self.feat_bias_)
        pos = sp.csr_array(
            (np.ones(users.size, np.float32), (users, items)), shape=(dataset.n_users, n_items)
        )
        pos.sum_duplicates()
        pos.sort_indices()
        seen = (pos.indptr.astype(np.int64), pos.indices.astype(np.int32))
        warm_items = self.identity_items_
        n_neg = self.max_sampled if self.loss == "warp" else _BPR_TRIES
        loss_code = LOSS_WARP if self.loss == "warp" else LOSS_BPR
        chunks = self.n_threads or 1  # None: one chunk, deterministic (Hogwild is opt-in)
        self.loss_history_: list[float] = []
        fmat = (f.indptr.astype(np.int64), f.indices.astype(np.int32), f.data)
        gmat = (g.indptr.astype(np.int64), g.indices.astype(np.int32), g.data)
        for epoch in options.epochs(self.epochs, "HybridMF"):
            if users.size == 0:
                break
            order = gen.permutation(users.size).astype(np.int64)
            neg = warm_items[gen.integers(0, warm_items.size, (users.size, n_neg))]
            total = run_epoch(
                users,
                items,
                np.ascontiguousarray(neg, dtype=np.int32),
                order,
                gmat,
                self.user_feat_emb_,
                user_acc,
                fmat,
                self.feat_emb_,
                feat_acc,
                self.feat_bias_,
                bias_acc,
                seen,
                lr=self.learning_rate,
                reg=self.reg,
                loss=loss_code,
                n_catalog=int(warm_items.size),
                n_chunks=chunks,
            )
            self.loss_history_.append(total / users.size)
            if options.callback is not None:
                self._refresh_items()  # the callback sees a model that can score
                self._refresh_users()
                if options.after_epoch(epoch, self):
                    break
        self._refresh_items()
        self._refresh_users()

    def _refresh_users(self) -> None:
        g = self.user_feature_matrix_
        self.user_repr_ = np.asarray(g @ self.user_feat_emb_, dtype=np.float32)

    def _refresh_items(self) -> None:
        f = self.item_feature_matrix_
        self.item_repr_ = np.asarray(f @ self.feat_emb_, dtype=np.float32)
        self.item_bias_ = np.asarray(f @ self.feat_bias_, dtype=np.float32)

    # ------------------------------------------------------------------ scoring
    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        out = self.user_repr_[user_idx] @ self.item_repr_.T
        out += self.item_bias_[None, :]
        return np.asarray(out, dtype=np.float32)

    def _fold_in(self, item_idx: np.ndarray) -> np.ndarray:
        d = self.factors
        gen = np.random.default_rng([self.rng, *item_idx[:8].tolist(), item_idx.size])
        emb = ((gen.random((1, d)) - 0.5) / d).astype(np.float32)
        acc = np.ones_like(emb)
        f = self.item_feature_matrix_
        items = np.unique(item_idx).astype(np.int32)
        users = np.zeros(items.size, dtype=np.int32)
        seen = (np.array([0, items.size], dtype=np.int64), items.copy())
        pool = self.identity_items_ if self.identity_items_.size else np.arange(f.shape[0])
        n_neg = self.max_sampled if self.loss == "warp" else _BPR_TRIES
        loss_code = LOSS_WARP if self.loss == "warp" else LOSS_BPR
        fmat = (f.indptr.astype(np.int64), f.indices.astype(np.int32), f.data)
        gmat = (
            np.array([0, 1], dtype=np.int64),
            np.zeros(1, dtype=np.int32),
            np.ones(1, dtype=np.float32),
        )
        for _ in range(self.fold_in_epochs):
            neg = pool[gen.integers(0, pool.size, (items.size, n_neg))].astype(np.int32)
            run_epoch(
                users,
                items,
                neg,
                gen.permutation(items.size).astype(np.int64),
                gmat,
                emb,
                acc,
                fmat,
                self.feat_emb_,
                np.ones_like(self.feat_emb_),
                self.feat_bias_,
                np.ones_like(self.feat_bias_),
                seen,
                lr=self.learning_rate,
                reg=self.reg,
                loss=loss_code,
                n_catalog=int(pool.size),
                update_items=False,
                n_chunks=1,
            )
        return emb[0]

    def _user_attribute_columns(self) -> list[str]:
        if self.user_features_ is None:
            raise DataError(
                "HybridMF was fitted without user_features, so it cannot represent a user by "
                "attributes; declare user_features (e.g. categories of age and occupation)"
            )
        return list(self.user_features_.columns)

    def _score_user_attributes(self, attributes: pd.DataFrame) -> np.ndarray:
        assert self.user_features_ is not None
        x = _l1_rows(self.user_features_.transform(attributes))
        reprs = np.asarray(x @ self.user_feat_emb_[self.n_user_identity_ :], dtype=np.float32)
        out = reprs @ self.item_repr_.T
        out += self.item_bias_[None, :]
        return np.asarray(out, dtype=np.float32)

    def _query_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        return with_unit_column(self.user_repr_[user_idx])

    def _key_vectors(self) -> np.ndarray:
        return np.column_stack([self.item_repr_, self.item_bias_])

    def _history_query(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        if self.positive_threshold is not None:
            good = item_idx[values >= self.positive_threshold]
            item_idx = good if good.size else item_idx
        return np.append(self._fold_in(item_idx), np.float32(1.0)), 0.0

    def _similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        q = self.item_repr_
        norms = np.linalg.norm(q, axis=1)
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        qn = q * inv[:, None]
        return np.asarray(qn[item_idx] @ qn.T, dtype=np.float32)

    # ------------------------------------------------------------------ explanations
    def feature_names(self) -> list[str]:
        """Name of every column of ``F``: identities (``"item identity"``) then features."""
        self._check_fitted("feature_names")
        names = [_IDENTITY] * self.n_identity_
        if self.features_ is not None:
            names.extend(self.features_.feature_names_)
        return names

    def _explain(self, user_idx: int, item_idx: int) -> tuple[float, str, list[tuple[Any, float]]]:
        row = self.item_feature_matrix_[[item_idx]]
        feats, w = row.indices, row.data
        pu = self.user_repr_[user_idx]
        contrib = w * (self.feat_emb_[feats] @ pu + self.feat_bias_[feats])
        score = float(pu @ self.item_repr_[item_idx])
        score += float(self.item_bias_[item_idx])
        names = self.feature_names()
        order = np.argsort(-np.abs(contrib), kind="stable")[: self.explain_top]
        return score, "features", [(names[feats[o]], float(contrib[o])) for o in order]

    # ------------------------------------------------------------------ new items
    def add_items(self, attributes: pd.DataFrame) -> HybridMF:
        """Represent new (or updated) items by their attribute features; no retraining.

        New ids are appended to ``items_``; known ids get their feature part replaced (their
        identity embedding, if any, is kept). See :meth:`Recommender.add_items`.

        Raises
        ------
        DataError
            If the model was fitted without item features, or on bad attributes.
        """
        if self.is_fitted and self.features_ is None:
            raise DataError("HybridMF was fitted without item features; cannot add items")
        return super().add_items(attributes)

    def _add_items(self, codes: np.ndarray, attributes: pd.DataFrame, n_items: int) -> None:
        assert self.features_ is not None
        x = self.features_.transform(attributes)
        n_id = self.n_identity_
        padded = _pad_rows(self.item_feature_matrix_, n_items)
        # rows of the given items are rebuilt: identity flag (if trained) + new features
        has_id = np.asarray(padded[codes][:, :n_id].sum(axis=1)).ravel() > 0
        id_col = np.zeros(codes.size, dtype=np.int64)
        rows_with = np.flatnonzero(has_id)
        if rows_with.size:
            sub = sp.csr_array(padded[codes[rows_with]][:, :n_id])
            id_col[rows_with] = sub.indices[sub.indptr[:-1]]
        ident = sp.csr_array(
            (np.ones(rows_with.size, np.float32), (rows_with, id_col[rows_with])),
            shape=(codes.size, n_id),
        )
        fresh = _l1_rows(sp.hstack([ident, x], format="csr"))
        self.item_feature_matrix_ = _replace_rows(padded, codes, fresh)
        self._refresh_items()

    def _item_vectors(self) -> np.ndarray:
        return self.item_repr_

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "user_feat_emb": self.user_feat_emb_,
            "feat_emb": self.feat_emb_,
            "feat_bias": self.feat_bias_,
            "identity_items": self.identity_items_,
        }
        out.update(_csr_state("item_feature_matrix", self.item_feature_matrix_))
        out.update(_csr_state("user_feature_matrix", self.user_feature_matrix_))
        if self.user_features_ is not None:
            out.update(self.user_features_.get_state(prefix="user_features."))
        if self.features_ is not None:
            out.update(self.features_.get_state(prefix="features."))
        return out

    def _get_meta(self) -> dict[str, Any]:
        return {
            "features": None if self.features_ is None else self.features_.to_config(),
            "n_identity": self.n_identity_,
            "user_features": None
            if self.user_features_ is None
            else self.user_features_.to_config(),
            "n_user_identity": self.n_user_identity_,
        }

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        cfg = meta.get("features")
        if cfg is None:
            self.features_ = None
            n_attr = 0
        else:
            try:
                self.features_ = ItemFeatures.from_config(cfg).set_state(state, "features.")
            except (ConfigError, DataError) as exc:
                raise ModelFormatError(f"invalid feature state ({exc})") from exc
            n_attr = self.features_.n_features_
        self.n_identity_ = int(meta["n_identity"])
        n_feat = self.n_identity_ + n_attr
        d = self.factors
        ucfg = meta.get("user_features")
        n_uattr = 0
        self.user_features_ = None
        if ucfg is not None:
            try:
                self.user_features_ = ItemFeatures.from_config(ucfg).set_state(
                    state, "user_features."
                )
            except (ConfigError, DataError) as exc:
                raise ModelFormatError(f"invalid user feature state ({exc})") from exc
            n_uattr = self.user_features_.n_features_
        self.n_user_identity_ = int(meta["n_user_identity"])
        n_ucols = self.n_user_identity_ + n_uattr
        self.user_feat_emb_ = check_state_shape(state, "user_feat_emb", (n_ucols, d), np.float32)
        gm = _csr_from_state(state, "user_feature_matrix")
        if gm.shape != (len(self.users_), n_ucols):
            raise ModelFormatError(
                f"user_feature_matrix has shape {gm.shape}, "
                f"expected ({len(self.users_)}, {n_ucols})"
            )
        self.user_feature_matrix_ = gm
        self.feat_emb_ = check_state_shape(state, "feat_emb", (n_feat, d), np.float32)
        self.feat_bias_ = check_state_shape(state, "feat_bias", (n_feat,), np.float32)
        self.identity_items_ = check_state_shape(
            state, "identity_items", (self.n_identity_,), np.int32
        )
        f = _csr_from_state(state, "item_feature_matrix")
        if f.shape != (len(self.items_), n_feat):
            raise ModelFormatError(
                f"item_feature_matrix has shape {f.shape}, expected ({len(self.items_)}, {n_feat})"
            )
        self.item_feature_matrix_ = f
        self._refresh_items()
        self._refresh_users()


# =========================================================================== Blend
_NORMS = ("minmax", "zscore")


def _normalise(scores: np.ndarray, how: str) -> np.ndarray:
    """Per-row normalisation over finite entries; -inf/NaN entries become 0."""
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    cnt = finite.sum(axis=1, keepdims=True)
    vals = np.where(finite, s, 0.0)
    if how == "minmax":
        lo = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
        hi = np.where(finite, s, -np.inf).max(axis=1, keepdims=True)
        span = np.where(cnt > 0, hi - lo, 0.0)
        lo = np.where(cnt > 0, lo, 0.0)
        out = np.where(span > 0, (vals - lo) / np.where(span > 0, span, 1.0), 0.0)
    else:
        mu = vals.sum(axis=1, keepdims=True) / np.maximum(cnt, 1)
        var = (np.where(finite, s - mu, 0.0) ** 2).sum(axis=1, keepdims=True) / np.maximum(cnt, 1)
        sd = np.sqrt(var)
        out = np.where(sd > 0, (vals - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    return np.where(finite, out, 0.0).astype(np.float32)


def _ndcg_at_k(scores: np.ndarray, truth: sp.csr_array, k: int) -> float:
    """Mean NDCG@k of full-catalogue score rows (``-inf``: excluded) against ``truth`` rows.

    Ranked by the shared top-K kernel and scored by :func:`recforge.metrics.compute_metrics`,
    the same two steps every reported ranking metric goes through.
    """
    from recforge._kernels.topk import topk
    from recforge.metrics import MetricContext, compute_metrics

    n_items = scores.shape[1]
    codes, _ = topk(np.ascontiguousarray(scores, dtype=np.float32), min(k, n_items))
    context = MetricContext(
        n_items=n_items, item_popularity=np.zeros(n_items), n_users_train=max(1, len(codes))
    )
    per_user = compute_metrics(codes, truth, [k], ["ndcg"], context)[("ndcg", k)]
    assert isinstance(per_user, np.ndarray)
    return float(np.nanmean(per_user)) if np.isfinite(per_user).any() else 0.0


def blend_members(value: Any) -> list[dict[str, Any]]:
    """Blend's ``members`` as plain ``{"model", "params"}`` dicts, each member validated.

    Raises
    ------
    ValueError
        If ``value`` is not a non-empty list of such dicts, names an unknown model or a
        Blend, or a member's parameters are invalid.
    """
    from recforge.models import model_class

    if isinstance(value, str | Mapping) or not isinstance(value, Sequence) or not len(value):
        raise ValueError(
            "expected a non-empty list of {'model': name, 'params': {...}} dicts, "
            f"got {value!r}"
        )
    out = []
    for pos, m in enumerate(value):
        if not isinstance(m, Mapping) or "model" not in m:
            raise ValueError(f"Blend member {pos} must be a dict with a 'model' key, got {m!r}")
        extra = set(m) - {"model", "params"}
        if extra:
            raise ValueError(f"Blend member {pos} has unknown keys {sorted(extra)}")
        params = dict(m.get("params") or {})
        try:
            cls = model_class(str(m["model"]))
        except KeyError as exc:
            raise ValueError(f"Blend member {pos}: {exc.args[0]}") from exc
        if cls.name == "blend":
            raise ValueError(f"Blend member {pos} cannot itself be a Blend")
        try:
            cls(**params)
        except (ConfigError, TypeError) as exc:
            raise ValueError(f"Blend member {pos}: {exc}") from exc
        out.append({"model": str(m["model"]), "params": params})
    return out


def _finite_floats(value: Any) -> list[float]:
    """A sequence of finite numbers as floats (Blend's ``weights``)."""
    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        raise ValueError(f"expected a list of finite numbers, got {value!r}")
    ok = all(
        isinstance(w, int | float | np.integer | np.floating)
        and not isinstance(w, bool)
        and math.isfinite(w)
        for w in value
    )
    if not ok:
        raise ValueError(f"Blend weights must be finite numbers, got {list(value)!r}")
    return [float(w) for w in value]


class Blend(Recommender):
    """Weighted ensemble of recommenders with switching rules for cold users and items.

    ``score(u, i) = Σ_m w_m · norm_m(u, i)`` where ``norm_m`` is member ``m``'s score row,
    min-max or z-normalised per user. With ``weights=None`` the weights are learned: a
    per-user holdout of ``valid_fraction`` of the training interactions is set aside, members
    are fitted on the rest, and a coordinate search over a weight grid, starting from the best
    single member, maximises NDCG@``k`` of the validation users; members are then refitted on
    all the data.

    Switching rules: a user with fewer than ``min_user_interactions`` training interactions is
    scored by the ``fallback`` member alone; for an item without training interactions (cold)
    the other members' scores mean nothing, so they are replaced by their average normalised
    score of that user and only the ``cold_item_member`` (e.g. a content model) discriminates:
    ``w_c · norm_c(u, i) + Σ_{m≠c} w_m · mean_j norm_m(u, j)`` (``w_c = 1 / n_members`` when
    its weight is 0). Cold items thus enter a list only when the content score is high, and
    rank among themselves by content.

    Attributes
    ----------
    members_ : list of Recommender
        Fitted members.
    weights_ : numpy.ndarray of float64
    validation_ndcg_ : float or None
        NDCG@k of the learned weights on the holdout.

    Examples
    --------
    >>> from recforge.testing import toy_dataset
    >>> blend = Blend(
    ...     members=[{"model": "popular"}, {"model": "bias"}], weights=[0.5, 0.5]
    ... ).fit(toy_dataset())
    >>> blend.recommend(["u0"], k=3).lengths.tolist()
    [3]
    """

    name = "blend"
    supports_history = True

    members: Sequence[Mapping[str, Any]] = param(
        default=({"model": "popular", "params": {}}, {"model": "content", "params": {}}),
        convert=blend_members,
        doc='Member models as JSON: ``[{"model": "content", "params": {...}}, ...]`` '
        "(registered short names, see :data:`recforge.models.MODELS`); each member's "
        "parameters are validated by its class.",
    )
    weights: Sequence[float] | None = param(
        default=None,
        convert=_finite_floats,
        doc="Fixed weights (one per member) or ``None`` to learn them.",
    )
    normalization: str = param(
        default="minmax", options=_NORMS, doc='``"minmax"`` or ``"zscore"``.'
    )
    min_user_interactions: int = param(
        default=0,
        low=0,
        doc="Users with fewer training interactions are switched to ``fallback``.",
    )
    fallback: int | None = param(
        default=None,
        low=0,
        doc="Index of the member used for short-history users (``None``: no switching).",
    )
    cold_item_member: int | None = param(
        default=None,
        low=0,
        doc="Index of the member scoring cold items (``None``: cold items keep the blended "
        "score, in which the members that cannot score them pull them down).",
    )
    k: int = param(default=10, low=1, doc="Cut-off of the validation NDCG.")
    valid_fraction: float = param(
        default=0.2,
        low=0.0,
        high=0.9,
        low_open=True,
        doc="Share of each user's interactions held out to learn the weights.",
    )
    min_gain: float = param(
        default=0.005,
        low=0.0,
        doc="Relative validation-NDCG gain a weight change must bring to be kept (guards "
        "against fitting the noise of a small holdout).",
    )
    rng: int = param(default=0, low=0, doc="Seed of the holdout.")

    @classmethod
    def _check_combination(cls, values: Mapping[str, Any]) -> None:
        n = len(values["members"])
        weights = values["weights"]
        if weights is not None and len(weights) != n:
            raise ConfigError(
                f"The 'weights' parameter of Blend must have one weight per member ({n}). "
                f"Got {list(weights)!r} instead."
            )
        for name in ("fallback", "cold_item_member"):
            idx = values[name]
            if idx is not None and idx >= n:
                raise ConfigError(
                    f"The {name!r} parameter of Blend must index a member (0..{n - 1}). "
                    f"Got {idx!r} instead."
                )

    def _new_members(self) -> list[Recommender]:
        from recforge.models import model_class

        return [model_class(m["model"])(**m["params"]) for m in self.members]

    # ------------------------------------------------------------------ fitting
    def _holdout(self, dataset: Dataset) -> tuple[Dataset, sp.csr_array]:
        gen = np.random.default_rng(self.rng)
        n = dataset.n_interactions
        key = gen.random(n)
        order = np.lexsort((key, dataset.user))
        counts = np.bincount(dataset.user, minlength=dataset.n_users)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - np.repeat(starts, counts)
        n_valid = np.floor(counts * self.valid_fraction).astype(np.int64)
        valid = rank < n_valid[dataset.user]
        train = dataset.subset(~valid)
        truth = sp.csr_array(
            (np.ones(int(valid.sum()), np.float32), (dataset.user[valid], dataset.item[valid])),
            shape=(dataset.n_users, dataset.n_items),
        )
        truth.sum_duplicates()
        return train, truth

    def _learn_weights(self, dataset: Dataset) -> tuple[np.ndarray, float | None]:
        m = len(self.members)
        if m == 1:
            return np.ones(1), None
        train, truth = self._holdout(dataset)
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
        if users.size == 0 or train.n_interactions == 0:
            return np.full(m, 1.0 / m), None
        gen = np.random.default_rng(self.rng)
        if users.size > 2000:
            users = np.sort(gen.choice(users, 2000, replace=False))
        fitted = [mm.fit(train) for mm in self._new_members()]
        seen = train.matrix(binary=True)[users]
        norm = []
        for mm in fitted:
            norm.append(_normalise(mm.score_users(users), self.normalization))
        mask = seen.toarray() > 0
        sub_truth = truth[users]

        def objective(w: np.ndarray) -> float:
            total = sum(wi * s for wi, s in zip(w, norm, strict=True))
            total = np.where(mask, -np.inf, total)
            return _ndcg_at_k(total, sub_truth, self.k)

        # start from the best single member (its weight stays 1: the scale is arbitrary),
        # then add the others one coordinate at a time while validation NDCG improves
        singles = [objective(np.eye(m)[j]) for j in range(m)]
        anchor = int(np.argmax(singles))
        w = np.eye(m)[anchor]
        best = singles[anchor]
        grid = np.array([0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0])
        for _ in range(3):
            improved = False
            for j in range(m):
                if j == anchor:
                    continue
                for g in grid:
                    cand = w.copy()
                    cand[j] = g
                    val = objective(cand)
                    if val > best * (1.0 + self.min_gain) + 1e-12:
                        best, w, improved = val, cand, True
            if not improved:
                break
        return w / w.sum(), best

    def _fit(self, dataset: Dataset, options: TrainingOptions) -> None:
        if self.weights is None:
            self.weights_, self.validation_ndcg_ = self._learn_weights(dataset)
        else:
            self.weights_, self.validation_ndcg_ = np.asarray(self.weights, np.float64), None
        self.members_ = [mm.fit(dataset) for mm in self._new_members()]
        self.user_counts_ = np.bincount(dataset.user, minlength=dataset.n_users).astype(np.int64)
        self.cold_items_ = np.flatnonzero(self.item_popularity_ == 0).astype(np.int32)

    # ------------------------------------------------------------------ scoring
    def _combine(self, rows: list[np.ndarray]) -> np.ndarray:
        norm = [_normalise(r, self.normalization) for r in rows]
        total = np.zeros_like(norm[0])
        for w, s in zip(self.weights_, norm, strict=True):
            if w:
                total += np.float32(w) * s
        if self.cold_item_member is not None and self.cold_items_.size:
            c = self.cold_item_member
            w_c = float(self.weights_[c]) or 1.0 / len(norm)
            cold = self.cold_items_
            neutral = np.zeros((total.shape[0], 1), dtype=np.float32)
            for j, (w, s) in enumerate(zip(self.weights_, norm, strict=True)):
                if j != c and w:
                    neutral += np.float32(w) * s.mean(axis=1, keepdims=True)
            total[:, cold] = np.float32(w_c) * norm[c][:, cold] + neutral
        return total

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        rows = [m.score_users(user_idx) for m in self.members_]
        total = self._combine(rows)
        if self.fallback is not None and self.min_user_interactions > 0:
            short = self.user_counts_[user_idx] < self.min_user_interactions
            if short.any():
                total[short] = _normalise(rows[self.fallback][short], self.normalization)
        return total

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        rows = [
            (m.score_history(item_idx, values) if m.supports_history else m.fallback_scores())[
                None, :
            ]
            for m in self.members_
        ]
        if self.fallback is not None and item_idx.size < self.min_user_interactions:
            return _normalise(rows[self.fallback], self.normalization)[0]
        return self._combine(rows)[0]

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "weights": np.asarray(self.weights_, dtype=np.float64),
            "user_counts": self.user_counts_,
            "cold_items": self.cold_items_,
        }
        for pos, m in enumerate(self.members_):
            for key, arr in m._get_state().items():
                out[f"m{pos}.{key}"] = arr
        return out

    def _get_meta(self) -> dict[str, Any]:
        return {
            "members": [m._get_meta() for m in self.members_],
            "validation_ndcg": self.validation_ndcg_,
        }

    def _set_state(self, state: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        n = len(self.members)
        self.weights_ = check_state_shape(state, "weights", (n,), np.float64)
        self.user_counts_ = check_state_shape(state, "user_counts", (len(self.users_),), np.int64)
        self.cold_items_ = check_state_shape(state, "cold_items", (None,), np.int32)
        metas = meta.get("members")
        if not isinstance(metas, list) or len(metas) != n:
            raise ModelFormatError("Blend meta does not list one entry per member")
        val = meta.get("validation_ndcg")
        self.validation_ndcg_ = None if val is None else float(val)
        members = self._new_members()
        for pos, (m, mmeta) in enumerate(zip(members, metas, strict=True)):
            prefix = f"m{pos}."
            sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            m.users_ = self.users_
            m.items_ = self.items_
            m.seen_ = self.seen_
            m.item_popularity_ = self.item_popularity_
            try:
                m._set_state(sub, mmeta)
            except ModelFormatError as exc:
                raise ModelFormatError(
                    f"Blend member {pos} ({self.members[pos]['model']}): {exc}"
                ) from exc
        self.members_ = members
