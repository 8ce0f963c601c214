"""recforge: from raw interaction data to a recommender system in production."""

from recforge.data import Dataset, IdIndex

__version__ = "0.1.0"

__all__ = ["Dataset", "IdIndex", "__version__"]
