"""Data layer: id maps, the immutable Dataset, readers, preparation and data sets."""

from recforge.data._dataset import Columns, Dataset
from recforge.data._idindex import IdIndex

__all__ = ["Columns", "Dataset", "IdIndex"]
