"""Vector indexes: exact inner products, and faiss HNSW / IVF (the ``ann`` extra).

An index holds ``n`` item vectors of dimension ``d`` and answers "the ``n_candidates``
largest inner products (or cosines) for each query row". It never decides what a user may
see: exclusion, filters and the final order are applied by exact re-scoring afterwards
(:mod:`recforge.retrieval._search`). Indexes serialise to a ``uint8`` array (faiss writes
its own binary format to bytes), so they travel inside a model's ``arrays.npz`` without
pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recforge.exceptions import MissingDependencyError, ModelFormatError
from recforge.retrieval._spec import IndexSpec

_INSTALL = "pip install 'recforge[ann]'"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"approximate retrieval needs faiss; install it with: {_INSTALL}"
        ) from exc
    return faiss


def _normalised(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


class VectorIndex:
    """Top inner-product (or cosine) search over a fixed set of item vectors.

    Build one with :func:`build_index`; restore a saved one with :func:`index_from_array`.

    Attributes
    ----------
    spec : IndexSpec
    n : int
        Number of indexed vectors (item codes ``0 .. n - 1``).
    d : int
        Their dimension.
    """

    def __init__(self, spec: IndexSpec, n: int, d: int) -> None:
        self.spec = spec
        self.n = n
        self.d = d

    def prepare_queries(self, queries: np.ndarray) -> np.ndarray:
        """Queries as the index compares them (unit length for cosine)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.d:
            raise ValueError(f"queries have dimension {q.shape[1]}, the index {self.d}")
        return _normalised(q) if self.spec.metric == "cosine" else q

    def search(self, queries: np.ndarray, n_candidates: int) -> np.ndarray:
        """Codes of the ``n_candidates`` best vectors per query row.

        Returns
        -------
        numpy.ndarray of int64, shape ``(n_queries, min(n_candidates, n))``
            ``-1`` where the index found fewer.
        """
        raise NotImplementedError

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors for new item codes ``n .. n + len(vectors) - 1``."""
        raise NotImplementedError

    def to_array(self) -> np.ndarray:
        """The index as a ``uint8`` array (what a saved model stores)."""
        raise NotImplementedError


class ExactIndex(VectorIndex):
    """Brute-force search: the index is the vectors themselves."""

    def __init__(self, spec: IndexSpec, vectors: np.ndarray) -> None:
        vec = np.ascontiguousarray(vectors, dtype=np.float32)
        super().__init__(spec, vec.shape[0], vec.shape[1])
        self._vectors = _normalised(vec) if spec.metric == "cosine" else vec

    def search(self, queries: np.ndarray, n_candidates: int) -> np.ndarray:
        q = self.prepare_queries(queries)
        c = int(min(n_candidates, self.n))
        scores = q @ self._vectors.T
        part = np.argpartition(-scores, c - 1, axis=1)[:, :c] if c < self.n else None
        if part is None:
            part = np.broadcast_to(np.arange(self.n), scores.shape).copy()
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1).astype(np.int64)

    def add(self, vectors: np.ndarray) -> None:
        vec = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.spec.metric == "cosine":
            vec = _normalised(vec)
        self._vectors = np.concatenate([self._vectors, vec])
        self.n = self._vectors.shape[0]

    def to_array(self) -> np.ndarray:
        return np.frombuffer(self._vectors.tobytes(), dtype=np.uint8).copy()

    @classmethod
    def from_array(cls, spec: IndexSpec, blob: np.ndarray, d: int) -> ExactIndex:
        """Restore from :meth:`to_array` output."""
        raw = np.ascontiguousarray(blob, dtype=np.uint8)
        if d < 1 or raw.size % (4 * d):
            raise ModelFormatError(f"exact index of {raw.size} bytes is not a multiple of d={d}")
        out = cls.__new__(cls)
        vec = np.frombuffer(raw.tobytes(), dtype=np.float32).reshape(-1, d).copy()
        VectorIndex.__init__(out, spec, vec.shape[0], d)
        out._vectors = vec
        return out


class FaissIndex(VectorIndex):
    """faiss ``IndexHNSWFlat`` or ``IndexIVFFlat`` with the native inner-product metric.

    Cosine indexes store unit vectors; no norm-augmentation transform is used (it
    collapses graph-index recall on factors whose norms vary).
    """

    def __init__(self, spec: IndexSpec, index: Any, n: int, d: int) -> None:
        super().__init__(spec, n, d)
        self._index = index
        self._configure()

    @classmethod
    def build(cls, spec: IndexSpec, vectors: np.ndarray) -> FaissIndex:
        """Train (IVF) and fill a new index with ``vectors``."""
        faiss = _faiss()
        vec = np.ascontiguousarray(vectors, dtype=np.float32)
        if spec.metric == "cosine":
            vec = _normalised(vec)
        n, d = vec.shape
        metric = faiss.METRIC_INNER_PRODUCT
        if spec.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, spec.m, metric)
            index.hnsw.efConstruction = spec.ef_construction
        else:
            nlist = int(spec.nlist or max(1, min(n // 39, int(4 * np.sqrt(n)))))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, metric)
            index.cp.seed = spec.seed
            index.train(vec)
        index.add(vec)
        return cls(spec, index, n, d)

    def _configure(self, n_candidates: int = 0) -> None:
        if self.spec.kind == "hnsw":
            self._index.hnsw.efSearch = max(self.spec.ef_search, n_candidates)
        else:
            self._index.nprobe = self.spec.nprobe

    def search(self, queries: np.ndarray, n_candidates: int) -> np.ndarray:
        q = self.prepare_queries(queries)
        c = int(min(n_candidates, self.n))
        self._configure(c)
        _, labels = self._index.search(q, c)
        return np.asarray(labels, dtype=np.int64)

    def add(self, vectors: np.ndarray) -> None:
        vec = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.spec.metric == "cosine":
            vec = _normalised(vec)
        self._index.add(vec)
        self.n += vec.shape[0]

    def to_array(self) -> np.ndarray:
        return np.asarray(_faiss().serialize_index(self._index), dtype=np.uint8)

    @classmethod
    def from_array(cls, spec: IndexSpec, blob: np.ndarray, d: int) -> FaissIndex:
        """Restore from :meth:`to_array` output."""
        faiss = _faiss()
        try:
            index = faiss.deserialize_index(np.ascontiguousarray(blob, dtype=np.uint8))
        except RuntimeError as exc:
            raise ModelFormatError(f"unreadable {spec.kind} index ({exc})") from exc
        if index.d != d:
            raise ModelFormatError(f"index has dimension {index.d}, the model's vectors {d}")
        return cls(spec, index, int(index.ntotal), d)


def build_index(spec: IndexSpec, vectors: np.ndarray) -> VectorIndex:
    """A new index of ``spec.kind`` over ``vectors`` (``(n, d)``, float32)."""
    vec = np.asarray(vectors)
    if vec.ndim != 2 or vec.shape[0] == 0 or vec.shape[1] == 0:
        raise ValueError(f"an index needs a non-empty (n, d) array, got shape {vec.shape}")
    if spec.kind == "exact":
        return ExactIndex(spec, vec)
    return FaissIndex.build(spec, vec)


def index_from_array(spec: IndexSpec, blob: np.ndarray, d: int) -> VectorIndex:
    """Restore an index saved with :meth:`VectorIndex.to_array`."""
    if spec.kind == "exact":
        return ExactIndex.from_array(spec, blob, d)
    return FaissIndex.from_array(spec, blob, d)
