"""Data layer: id maps, the immutable Dataset, readers, summaries, preparation and data sets."""

from recforge.data._dataset import Columns, Dataset
from recforge.data._describe import DatasetSummary, describe
from recforge.data._idindex import IdIndex
from recforge.data._io import read_attributes, read_csv, read_parquet, read_sql
from recforge.data._sequences import read_sequences
from recforge.data.datasets import list_datasets, load
from recforge.data.prepare import (
    PrepareReport,
    apply_steps,
    deduplicate,
    filter_min_counts,
    k_core,
    to_implicit,
    weight,
)
from recforge.data.synthetic import SyntheticData, synthetic, synthetic_data

__all__ = [
    "Columns",
    "Dataset",
    "DatasetSummary",
    "IdIndex",
    "PrepareReport",
    "SyntheticData",
    "apply_steps",
    "deduplicate",
    "describe",
    "filter_min_counts",
    "k_core",
    "list_datasets",
    "load",
    "read_attributes",
    "read_csv",
    "read_parquet",
    "read_sequences",
    "read_sql",
    "synthetic",
    "synthetic_data",
    "to_implicit",
    "weight",
]
