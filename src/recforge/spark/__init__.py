"""recforge on Apache Spark: the same preparation, splits, scoring and metrics at scale.

Every function here gives the same result as its local counterpart on the same data (rows,
codes and values for preparation and splits, lists and scores for batch scoring, metrics to
floating-point precision), so a pipeline can move between one machine and a cluster.

Needs the ``spark`` extra (``pip install 'recforge[spark]'``) and a Java runtime.
"""

from recforge.exceptions import MissingDependencyError

try:
    import pyspark  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        "recforge.spark needs pyspark, which is not installed. "
        "Install it with: pip install 'recforge[spark]'"
    ) from exc

from recforge.spark._als import fit_als
from recforge.spark._dataset import (
    SparkDataset,
    from_dataset,
    from_spark,
    read_csv,
    read_parquet,
    read_table,
)
from recforge.spark._evaluate import SparkEvaluation, evaluate
from recforge.spark._prepare import (
    STEPS,
    apply_steps,
    deduplicate,
    filter_min_counts,
    k_core,
    to_implicit,
    weight,
)
from recforge.spark._score import model_bytes, predict, recommend
from recforge.spark._session import java_available, spark_session
from recforge.spark._split import (
    SPARK_SPLIT_METHODS,
    SparkSplit,
    leave_one_out,
    random_split,
    split_by_name,
    temporal_split,
)

__all__ = [
    "SPARK_SPLIT_METHODS",
    "STEPS",
    "SparkDataset",
    "SparkEvaluation",
    "SparkSplit",
    "apply_steps",
    "deduplicate",
    "evaluate",
    "filter_min_counts",
    "fit_als",
    "from_dataset",
    "from_spark",
    "java_available",
    "k_core",
    "leave_one_out",
    "model_bytes",
    "predict",
    "read_csv",
    "read_parquet",
    "random_split",
    "read_table",
    "recommend",
    "spark_session",
    "split_by_name",
    "temporal_split",
    "to_implicit",
    "weight",
]
