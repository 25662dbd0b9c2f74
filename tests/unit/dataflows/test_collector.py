"""dataflows.collector: once a process is tuned, what survives a shard's batch is frozen
out of the collector's sight (and still freed when it goes); a run's end gives it back."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from dataflows import collector


class State:
    """Stands for an account's state: a container the collector would track."""

    def __init__(self) -> None:
        self.buckets: dict[int, list[int]] = {1: [1]}


@pytest.fixture
def tuned() -> Iterator[None]:
    """This test process tuned as a run tunes its own, and put back afterwards."""
    thresholds = gc.get_threshold()
    collector.tune_garbage_collector()
    try:
        yield
    finally:
        collector.unsettle()
        gc.set_threshold(*thresholds)


def test_settle_freezes_only_once_the_process_is_tuned() -> None:
    collector.unsettle()
    before = gc.get_freeze_count()
    kept = State()
    collector.settle()
    assert gc.get_freeze_count() == before == 0
    assert gc.is_tracked(kept)


@pytest.mark.usefixtures("tuned")
def test_what_survives_a_batch_is_frozen_and_still_freed_when_it_goes() -> None:
    frozen = gc.get_freeze_count()
    kept = State()
    collector.settle()
    assert gc.get_freeze_count() > frozen
    assert not any(obj is kept for obj in gc.get_objects())  # no collection looks at it
    gone: list[bool] = []
    ref = weakref.ref(kept, lambda _ref: gone.append(True))
    del kept  # reference counting frees it, frozen or not
    assert gone == [True] and ref() is None


def test_a_run_s_end_gives_everything_back_to_the_collector(tuned: None) -> None:
    kept = State()
    collector.settle()
    collector.unsettle()
    assert gc.get_freeze_count() == 0
    assert any(obj is kept for obj in gc.get_objects())
    collector.settle()  # no longer freezing
    assert gc.get_freeze_count() == 0


def test_a_restore_runs_with_the_collector_off_and_settles_what_it_built(tuned: None) -> None:
    frozen = gc.get_freeze_count()
    with collector.paused():
        assert not gc.isenabled()
        restored = [State() for _ in range(10)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(restored)  # settled
    gc.disable()  # a collector found off is left off
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_while_restoring_turns_the_collector_back_on() -> None:
    with pytest.raises(ValueError, match="broken"), collector.paused():
        raise ValueError("a broken snapshot")
    assert gc.isenabled()
