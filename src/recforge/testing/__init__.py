"""Reusable test harness for recforge models (``RecommenderContract``) and tiny data sets."""

from recforge.testing._contract import RecommenderContract, toy_dataset

__all__ = ["RecommenderContract", "toy_dataset"]
