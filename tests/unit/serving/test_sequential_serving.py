"""A served SASRec reads the user's events in time order as its sequence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recforge.data import Dataset
from recforge.registry import ModelRegistry
from recforge.serving.app import create_app

from .test_app import W, make_settings

pytest.importorskip("torch")

N_ITEMS = 12


def _cycle_dataset() -> Dataset:
    """Each user walks the cycle 1, 2, ..., 12, 1, ... from some start: the next item is known."""
    gen = np.random.default_rng(0)
    start = gen.integers(0, N_ITEMS, 60)
    items = (start[:, None] + np.arange(8)[None, :]) % N_ITEMS + 1
    frame = pd.DataFrame(
        {
            "user": np.repeat([f"u{i}" for i in range(60)], 8),
            "item": items.ravel(),
            "time": np.tile(np.arange(8), 60),
        }
    )
    return Dataset.from_frame(frame, time="time")


def _cycle(item: int) -> int:
    return (item - 1) % N_ITEMS + 1


@pytest.fixture(scope="module")
def sasrec() -> object:
    from recforge.models.sequential import SASRec

    model = SASRec(embedding_size=16, max_length=8, epochs=80, learning_rate=5e-3, rng=0)
    return model.set_params(threads=1).fit(_cycle_dataset())


@pytest.fixture
def client(tmp_path: Path, sasrec: object) -> Iterator[TestClient]:
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(sasrec, promote=True)  # type: ignore[arg-type]
    app = create_app(make_settings(tmp_path, reg), background=False)
    with TestClient(app) as c:
        yield c


def _items(resp: object) -> list[str]:
    assert resp.status_code == 200, resp.text  # type: ignore[attr-defined]
    return [it["item"] for it in resp.json()["items"]]  # type: ignore[attr-defined]


def test_one_event_moves_the_session_on(client: TestClient, sasrec: object) -> None:
    ds = _cycle_dataset()
    # a user whose walk wraps around 12 -> 1, so time order differs from item-id order
    seqs = [ds.items.ids_of(sasrec.user_sequence(c)) for c in range(ds.n_users)]  # type: ignore[attr-defined]
    code = next(c for c, seq in enumerate(seqs) if np.any(np.diff(seq) < 0))
    user = str(ds.users.ids_of([code])[0])
    last = int(seqs[code][-1])
    before = _items(client.get(f"/recommendations/{user}", params={"k": 1}))
    assert before == [str(_cycle(last + 1))]  # the next item of the cycle
    # the user skips one item (both unseen): the next item follows the new event
    jump = _cycle(last + 2)
    event = {"event_id": "e1", "user": user, "item": str(jump)}
    assert client.post("/events/batch", json={"events": [event]}, headers=W).status_code < 300
    r = client.get(f"/recommendations/{user}", params={"k": 1})
    after = _items(r)
    assert after != before
    assert after == [str(_cycle(last + 3))]
    assert "fold-in" in r.json()["reason"]
    # exactly the session "training items in time order, then the event"
    session = sasrec.recommend_for_history([*seqs[code].tolist(), jump], k=1)  # type: ignore[attr-defined]
    assert r.json()["items"][0]["score"] == pytest.approx(float(session.scores[0, 0]), abs=1e-4)


def test_posted_history_is_a_session_in_order(client: TestClient) -> None:
    forward = _items(client.post("/recommendations", json={"items": ["3", "4", "5"], "k": 1}))
    assert forward == ["6"]
    # the same items in the other order continue from the other end
    assert _items(client.post("/recommendations", json={"items": ["3", "5"], "k": 1})) == ["6"]
    assert _items(client.post("/recommendations", json={"items": ["5", "3"], "k": 1})) == ["4"]


def test_served_history_is_in_time_order(tmp_path: Path) -> None:
    from recforge.models.sequential import SASRec
    from recforge.testing import toy_dataset

    ds = toy_dataset(explicit=False)  # times increase in row order, items in random order
    model = SASRec(embedding_size=16, max_length=20, epochs=2, threads=1, rng=0).fit(ds)
    reg = ModelRegistry(tmp_path / "registry")
    reg.publish(model, promote=True)
    app = create_app(make_settings(tmp_path, reg), background=False)
    # a user whose time order differs from the item-code order of the training matrix
    code = next(c for c in range(ds.n_users) if np.any(np.diff(model.user_sequence(c)) < 0))
    user = str(ds.users.ids_of([code])[0])
    timed = ds.items.ids_of(model.user_sequence(code)).tolist()
    by_code = ds.items.ids_of(model.user_history(code)[0]).tolist()
    fresh = next(i for i in ds.items.ids.tolist() if i not in timed)
    with TestClient(app) as c:
        event = {"event_id": "t1", "user": user, "item": str(fresh)}
        c.post("/events/batch", json={"events": [event]}, headers=W)
        served = c.get(f"/recommendations/{user}", params={"k": 1}).json()["items"][0]
    in_time = model.recommend_for_history([*timed, fresh], k=1)
    by_id = model.recommend_for_history([*by_code, fresh], k=1)
    assert served["score"] == pytest.approx(float(in_time.scores[0, 0]), abs=1e-5)
    assert float(in_time.scores[0, 0]) != pytest.approx(float(by_id.scores[0, 0]), abs=1e-5)
