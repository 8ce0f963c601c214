"""Named and synthetic data sets.

>>> from recforge import datasets
>>> ds = datasets.load("movielens-small")
>>> ds.n_interactions
100004

See :mod:`recforge.data.datasets` for the catalogue, the cache and the item attributes, and
:mod:`recforge.data.synthetic` for the generator.
"""

from recforge.data.datasets import REGISTRY, DatasetInfo, cache_dir, fetch, list_datasets, load
from recforge.data.synthetic import SyntheticData, synthetic, synthetic_data

__all__ = [
    "REGISTRY",
    "DatasetInfo",
    "SyntheticData",
    "cache_dir",
    "fetch",
    "list_datasets",
    "load",
    "synthetic",
    "synthetic_data",
]
