"""A true event never lowers a known user's expected metric (issue 11, defect 5).

Each test user's interactions after the training cutoff are held out in time order; the first
(the *next true item*) is posted to the online state as an event, and NDCG@10 on the rest is
compared with the list the model gives without it, over every user, for several families. The
fold-in re-enters the user's training history with its stored values and the event with the
training data's meaning (:class:`recforge.serving.online.EventValues`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.models.als import ALS
from recforge.models.base import Recommender
from recforge.models.knn import ItemKNN
from recforge.models.linear import EASE
from recforge.models.mf import SVD
from recforge.serving.online import EventValues, OnlineState, ServingModel, recommend_user
from recforge.serving.store import Event


@pytest.fixture(scope="module")
def held_out(ml100k_dir: Path) -> tuple[Dataset, pd.DataFrame]:
    frame = pd.read_csv(ml100k_dir / "ratings.csv")
    frame.columns = ["user", "item", "value", "time"]
    frame = frame.sort_values(["time", "user", "item"], kind="stable")
    rank = frame.groupby("user").cumcount(ascending=False)
    train = frame[rank >= 3]
    return Dataset.from_frame(train, value="value", time="time"), frame[rank < 3]


def _ndcg(items: list[str], relevant: set[str], k: int = 10) -> float:
    gain = sum(1.0 / np.log2(r + 2) for r, i in enumerate(items[:k]) if i in relevant)
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(len(relevant), k)))
    return gain / ideal


@pytest.mark.parametrize("kind", ["view", "rating"])
@pytest.mark.parametrize(
    "make",
    [EASE, lambda: ALS(factors=32, iterations=10), lambda: SVD(factors=32), ItemKNN],
    ids=["EASE", "ALS", "SVD", "ItemKNN"],
)
def test_a_true_event_never_lowers_the_expected_metric(
    held_out: tuple[Dataset, pd.DataFrame], make: type[Recommender], kind: str
) -> None:
    train, test = held_out
    model = make().fit(train)
    bundle = ServingModel(model, "test")
    values = EventValues.of(model)
    static, online = [], []
    for n, (user, rows) in enumerate(test.groupby("user", sort=True)):
        nxt, rest = rows.iloc[0], {str(i) for i in rows["item"].iloc[1:]}
        state = OnlineState(items=model.items_, values=values)
        before, _ = recommend_user(bundle, state, str(user), 10)
        value = float(nxt["value"]) if kind == "rating" else 1.0
        state.apply([Event(f"e{n}", str(user), str(int(nxt["item"])), kind, value, 0, 1)])
        after, _ = recommend_user(bundle, state, str(user), 10)
        static.append(_ndcg([i for i, _ in before], rest))
        online.append(_ndcg([i for i, _ in after], rest))
    diff = np.asarray(online) - np.asarray(static)
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    assert diff.size > 900
    # no drop: the mean change is not below zero beyond its noise, and never by much
    assert diff.mean() >= -2.0 * se, (diff.mean(), se, np.mean(static))
    assert diff.mean() > -0.002, (diff.mean(), np.mean(static))
