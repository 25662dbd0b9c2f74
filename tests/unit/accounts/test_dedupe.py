"""Dedupe by event_id: the window in event time and the per-account bound."""

from __future__ import annotations

import pickle

import pytest

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



@pytest.mark.parametrize(
    "times",
    [
        pytest.param([10.0, 20.0, 150.0, 160.0, 200.0], id="in-order-leading-expired"),
        pytest.param([150.0, 160.0, 200.0], id="nothing-expired"),
        pytest.param([10.0, 20.0, 30.0], id="everything-expired"),
        pytest.param([], id="empty"),
        pytest.param([10.0, 150.0, 20.0, 200.0, 99.0], id="restored-out-of-order"),
        pytest.param([150.0, 10.0, 160.0], id="expired-after-kept"),
        pytest.param([100.0, 100.0, 99.999], id="at-the-horizon"),
    ],
)
def test_a_sweep_keeps_exactly_the_ids_within_the_window_in_their_order(
    times: list[float],
) -> None:
    """Whatever the order of the remembered times (in order as the state keeps them, or
    restored from elsewhere), a sweep keeps the ids at or after the horizon, in order."""
    seen = {f"e{i}": t for i, t in enumerate(times)}
    state = DedupeState(window_seconds=100.0, max_ids=1_000)
    state.restore_raw((dict(seen), 200.0))
    state._sweep()
    kept, _ = state.raw()
    assert list(kept.items()) == [(k, t) for k, t in seen.items() if t >= 100.0]
