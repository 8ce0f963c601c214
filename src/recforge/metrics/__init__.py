"""Evaluation metrics: rating accuracy, top-K ranking, beyond-accuracy and significance tests.

Per-user metrics return float64 arrays with NaN for users where the metric is undefined (for
ranking metrics: users without relevant items); aggregations skip NaN values.
"""

from recforge.metrics._compute import (
    BEYOND_METRICS,
    RANKING_METRICS,
    MetricContext,
    compute_metrics,
)
from recforge.metrics.accuracy import mae, mae_per_user, rmse, rmse_per_user
from recforge.metrics.beyond import (
    ItemVectors,
    average_popularity,
    catalog_coverage,
    diversity_from_vectors,
    gini_index,
    intra_list_diversity,
    novelty,
    serendipity,
)
from recforge.metrics.ranking import (
    RankingState,
    auc,
    average_precision,
    hit_rate,
    ndcg,
    precision,
    recall,
    reciprocal_rank,
)
from recforge.metrics.significance import (
    SignificanceResult,
    bootstrap_ci,
    compare_to_best,
    holm_correction,
    paired_t_test,
    wilcoxon_test,
)

__all__ = [
    "BEYOND_METRICS",
    "ItemVectors",
    "MetricContext",
    "RANKING_METRICS",
    "RankingState",
    "SignificanceResult",
    "auc",
    "average_popularity",
    "average_precision",
    "bootstrap_ci",
    "catalog_coverage",
    "compare_to_best",
    "compute_metrics",
    "diversity_from_vectors",
    "gini_index",
    "hit_rate",
    "holm_correction",
    "intra_list_diversity",
    "mae",
    "mae_per_user",
    "ndcg",
    "novelty",
    "paired_t_test",
    "precision",
    "recall",
    "reciprocal_rank",
    "rmse",
    "rmse_per_user",
    "serendipity",
    "wilcoxon_test",
]
