"""Reusable test harness: the model contract, tiny data sets and a real server process."""

from recforge.testing._contract import RecommenderContract, toy_dataset
from recforge.testing._server import free_port, start_server

__all__ = ["RecommenderContract", "free_port", "start_server", "toy_dataset"]
