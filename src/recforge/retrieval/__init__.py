"""Approximate retrieval for large catalogues: candidate generation, then exact re-scoring.

Factor models (``supports_inner_product``) build an index over their item vectors with
:meth:`recforge.models.Recommender.build_index`; ``recommend``, ``recommend_for_history``,
``similar_items``, batch scoring and the service then fetch candidates from it and re-score
them exactly, applying seen-item exclusion, candidate subsets, exclusions and filters
exactly. faiss (``pip install 'recforge[ann]'``) provides HNSW and IVF indexes; the exact
index needs nothing.
"""

from recforge.retrieval._index import (
    ExactIndex,
    FaissIndex,
    VectorIndex,
    build_index,
    index_from_array,
)
from recforge.retrieval._search import Exclusions, retrieve_top_k
from recforge.retrieval._spec import IndexSpec

__all__ = [
    "ExactIndex",
    "Exclusions",
    "FaissIndex",
    "IndexSpec",
    "VectorIndex",
    "build_index",
    "index_from_array",
    "retrieve_top_k",
]
