"""Dedupe by event_id: the window in event time and the per-account bound."""

from __future__ import annotations

import pickle

from accounts.dedupe import DedupeState

DAY = 86_400.0


def test_same_id_within_window_is_duplicate() -> None:
    state = DedupeState(window_seconds=DAY, max_ids=100)
    assert state.is_duplicate("a", 1_000.0) is False
    assert state.is_duplicate("a", 1_000.0) is True
    state.is_duplicate("b", 1_000.0 + DAY - 1)
    assert state.is_duplicate("a", 1_000.0) is True


def test_same_id_after_window_is_accepted_again() -> None:
    state = DedupeState(window_seconds=DAY, max_ids=100)
    state.is_duplicate("a", 0.0)
    state.is_duplicate("b", DAY + 1)  # account time moves past a's window
    assert state.is_duplicate("a", 0.0) is False
    assert state.is_duplicate("a", 0.0) is True  # and is remembered anew


def test_old_ids_are_swept_so_memory_follows_the_window() -> None:
    state = DedupeState(window_seconds=100.0, max_ids=1_000_000)
    for second in range(10_000):
        state.is_duplicate(f"e{second}", float(second))
    # at most one window plus the quarter-window sweep slack is remembered
    assert len(state) <= 125 + 1


def test_count_bound_is_respected_and_counted() -> None:
    state = DedupeState(window_seconds=DAY, max_ids=50)
    for i in range(200):
        state.is_duplicate(f"e{i}", 10.0)
    assert len(state) == 50
    assert state.evicted_early == 150
    assert state.is_duplicate("e199", 10.0) is True  # newest kept
    assert state.is_duplicate("e0", 10.0) is False  # oldest forgotten


def test_snapshot_round_trips_through_pickle() -> None:
    state = DedupeState(window_seconds=DAY, max_ids=100)
    state.is_duplicate("a", 5.0)
    restored = DedupeState(DAY, 100, pickle.loads(pickle.dumps(state.snapshot())))
    assert restored.is_duplicate("a", 5.0) is True
    assert restored.is_duplicate("b", 5.0) is False


def test_snapshot_is_not_mutated_by_later_events() -> None:
    state = DedupeState(window_seconds=DAY, max_ids=100)
    state.is_duplicate("a", 5.0)
    snap = state.snapshot()
    state.is_duplicate("b", 6.0)
    assert [k for k, _ in snap.seen] == ["a"]
