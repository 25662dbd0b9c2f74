"""Wall time per phase, on a clock the test turns."""

from __future__ import annotations

import pytest

from benchmarks.harness.phases import OTHER, PhaseTimes


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_repeated_phases_add_up_and_the_rest_is_other() -> None:
    clock = FakeClock()
    phases = PhaseTimes(clock)
    clock.now += 1  # outside every phase
    for seconds in (10, 5):
        with phases.phase("full"):
            clock.now += seconds
        with phases.phase("floor"):
            clock.now += 2
    clock.now += 3
    assert phases.seconds("full") == 15
    assert phases.seconds("latency") == 0
    assert phases.figures() == {"phases_s": {"full": 15, "floor": 4, OTHER: 4}, "total_s": 23}


def test_a_phase_that_raises_is_still_counted() -> None:
    clock = FakeClock()
    phases = PhaseTimes(clock)
    with pytest.raises(RuntimeError), phases.phase("full"):
        clock.now += 7
        raise RuntimeError
    assert phases.seconds("full") == 7
