"""Reusable test harness: the model contract, tiny data sets, a real server process and load."""

from recforge.testing._contract import RecommenderContract, toy_dataset
from recforge.testing._ids import ADVERSARIAL_IDS, adversarial_id
from recforge.testing._load import LoadResult, OpenLoopLoad, open_loop
from recforge.testing._server import free_port, start_server

__all__ = [
    "ADVERSARIAL_IDS",
    "LoadResult",
    "OpenLoopLoad",
    "RecommenderContract",
    "adversarial_id",
    "free_port",
    "open_loop",
    "start_server",
    "toy_dataset",
]
