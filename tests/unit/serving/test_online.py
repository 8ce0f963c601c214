"""OnlineState: bounded per-user histories coded once, per-item counts, replay by sequence."""

from __future__ import annotations

import numpy as np

from recforge.data import IdIndex
from recforge.serving.online import OnlineState
from recforge.serving.store import Event


def _events(pairs: list[tuple[str, str]], start: int = 1) -> list[Event]:
    return [
        Event(f"e{start + j}", u, i, "view", 1.0 + j, 0, seq=start + j)
        for j, (u, i) in enumerate(pairs)
    ]


def test_recent_coded_matches_the_index_and_marks_unknown_items():
    index = IdIndex(np.array([10, 20, 30]))
    state = OnlineState(items=index)
    state.apply(_events([("a", "20"), ("a", "99"), ("a", "x"), ("b", "10"), ("a", "30")]))
    items, values, codes = state.recent_coded("a")
    assert items == ["20", "99", "x", "30"]
    np.testing.assert_array_equal(codes, [1, -1, -1, 2])
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0, 5.0])
    assert state.recent("a") == [("20", 1.0), ("99", 2.0), ("x", 3.0), ("30", 5.0)]
    np.testing.assert_array_equal(state.counts(), [1.0, 1.0, 1.0])
    items, values, codes = state.recent_coded("nobody")
    assert items == []
    assert values.size == codes.size == 0


def test_history_and_users_are_bounded_and_replay_is_idempotent():
    state = OnlineState(max_history=2, max_users=2, items=IdIndex(np.array([1, 2, 3])))
    events = _events([("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("c", "2")])
    assert state.apply(events) == 5
    assert state.apply(events) == 0  # already applied: sequence numbers are not newer
    assert state.n_users == 2  # "a" was the least recently active
    assert state.recent("a") == []
    assert [i for i, _ in state.recent("c")] == ["2"]
    np.testing.assert_array_equal(state.counts(), [2.0, 2.0, 1.0])


def test_without_an_index_every_event_is_kept_uncoded():
    state = OnlineState()
    state.apply(_events([("a", "1")]))
    assert state.recent_coded("a")[2].tolist() == [-1]
