"""What an approximate index is: its kind, metric and search settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from recforge.exceptions import ConfigError

IndexKind = Literal["exact", "hnsw", "ivf"]
IndexMetric = Literal["ip", "cosine"]

_KINDS = ("exact", "hnsw", "ivf")
_METRICS = ("ip", "cosine")


@dataclass(frozen=True)
class IndexSpec:
    """Settings of a vector index over a model's item vectors.

    Parameters
    ----------
    kind
        ``"hnsw"`` (graph, the default: best recall per query time on one CPU), ``"ivf"``
        (inverted lists over k-means cells: faster to build, good for large batches) or
        ``"exact"`` (brute-force inner products through BLAS, always available).
    metric
        ``"ip"`` (inner product: what factor models score with) or ``"cosine"``.
    m
        HNSW: neighbours per node (graph degree); more is more recall and memory.
    ef_construction
        HNSW: candidate list size while building.
    ef_search
        HNSW: candidate list size while searching (raised to the number of candidates
        asked for when that is larger).
    nlist
        IVF: number of cells; ``None`` chooses ``4 * sqrt(n_items)``.
    nprobe
        IVF: cells visited per query.
    min_items
        Below this catalogue size exact scoring is faster than the index, so
        ``recommend`` keeps scoring exactly even when an index is built.
    oversample
        Candidates fetched per requested item (at least ``k * oversample``, plus the
        items a user has already seen) before exact re-scoring.
    seed
        Seed of the IVF k-means (HNSW construction is deterministic with one thread).
    """

    kind: IndexKind = "hnsw"
    metric: IndexMetric = "ip"
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    nlist: int | None = None
    nprobe: int = 32
    min_items: int = 20_000
    oversample: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"index kind must be one of {_KINDS}, got {self.kind!r}")
        if self.metric not in _METRICS:
            raise ConfigError(f"index metric must be one of {_METRICS}, got {self.metric!r}")
        for name in ("m", "ef_construction", "ef_search", "nprobe", "oversample"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"index setting {name!r} must be an int >= 1, got {value!r}")
        for name in ("min_items", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"index setting {name!r} must be an int >= 0, got {value!r}")
        if self.nlist is not None and (
            not isinstance(self.nlist, int) or isinstance(self.nlist, bool) or self.nlist < 1
        ):
            raise ConfigError(f"index setting 'nlist' must be an int >= 1, got {self.nlist!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (what a saved model records)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> IndexSpec:
        """Settings from :meth:`to_dict` (or a config file), naming an unknown key."""
        if not isinstance(doc, dict):
            raise ConfigError(f"index settings must be a mapping, got {type(doc).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ConfigError(
                f"unknown index setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        return cls(**doc)

    @classmethod
    def coerce(cls, spec: IndexSpec | str | dict[str, Any], **options: Any) -> IndexSpec:
        """An :class:`IndexSpec` from a spec, a kind name or a mapping, plus overrides."""
        if isinstance(spec, IndexSpec):
            base = spec.to_dict()
        elif isinstance(spec, str):
            base = {"kind": spec}
        else:
            base = dict(spec)
        base.update(options)
        return cls.from_dict(base)
