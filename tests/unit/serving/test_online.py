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


def test_events_in_memory_are_bounded_in_all():
    state = OnlineState(max_history=4, max_users=1000, max_events=10)
    for u in range(6):
        state.apply(_events([(f"u{u}", str(j)) for j in range(4)], start=1 + 4 * u))
    assert state.n_events <= 10
    assert state.n_users == 2  # the two most recently active users, four events each
    assert [i for i, _ in state.recent("u5")] == ["0", "1", "2", "3"]


def test_default_bounds_keep_the_state_near_its_documented_size():
    """Issue 11, defect 13: the defaults allowed 100,000 users x 200 events (about 8 GiB)."""
    import tracemalloc

    from recforge.serving.online import EVENT_BYTES, USER_BYTES
    from recforge.serving.settings import ServiceSettings

    s = ServiceSettings()
    assert s.online_events * EVENT_BYTES + s.online_users * USER_BYTES <= 300 * 1024**2
    for n_users, per_user in ((100, 200), (20_000, 1)):  # long histories; one event each
        state = OnlineState(items=IdIndex(np.arange(1000)))
        n = n_users * per_user
        events = [
            Event(f"event-{j:08d}", f"user-{j % n_users:06d}", str(j % 997), "view", 1.0, 0, j + 1)
            for j in range(n)
        ]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        state.apply(events)
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert used < n * EVENT_BYTES + n_users * USER_BYTES


def test_truncated_and_dropped_users_read_their_seen_items_from_the_store(tmp_path):
    from recforge.serving.store import EventStore

    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.add_events([Event(f"e{j}", "a", f"i{j}") for j in range(5)])
    store.add_events([Event("f0", "b", "x"), Event("g0", "c", "y")])
    state = OnlineState(max_history=2, max_users=2, store=store)
    state.sync(store)
    assert [i for i, _ in state.recent("a")] == []  # dropped (least recently active)
    assert sorted(state.seen_items("a") or []) == [f"i{j}" for j in range(5)]
    assert state.seen_items("c") is None  # complete in memory: no store read
    assert state.seen_items("never-seen") in (None, [])  # a hash collision reads nothing
    more = OnlineState(max_history=2, store=store)
    more.sync(store)
    assert len(more.recent("a")) == 2
    assert sorted(more.seen_items("a") or []) == [f"i{j}" for j in range(5)]


def test_event_values_keep_the_training_meaning():
    from recforge.serving.online import EventValues

    ratings = EventValues(explicit=True, typical=4.0, low=1.0, high=5.0)
    assert ratings.fold_value("rating", 4.5) == 4.5
    assert ratings.fold_value("rating", 9.0) == 5.0
    assert np.isnan(ratings.fold_value("view", 1.0))  # not a rating: excluded, not folded in
    implicit = EventValues(explicit=False, typical=4.0, low=1.0, high=5.0)
    assert implicit.fold_value("view", 1.0) == 4.0  # one typical interaction
    assert implicit.fold_value("rating", 3.0) == 3.0
