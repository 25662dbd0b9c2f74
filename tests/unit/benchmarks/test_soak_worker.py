"""The soak worker's pieces that need no dataflow: the pausing source, collection sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.harness.soak_worker import MonthlyLinesSource, collection_sizes


class Probe:
    """Says "not yet" ``waits`` times at each stop, then "measured"; records the calls."""

    def __init__(self, waits: int = 1) -> None:
        self.waits = waits
        self.calls: list[tuple[int, int]] = []

    def __call__(self, index: int, line: int) -> bool:
        self.calls.append((index, line))
        return self.calls.count((index, line)) > self.waits


def read_all(path: Path, stops: list[int], probe: Probe, *, batch_size: int = 4,
             resume_at: int | None = None) -> list[list[int | None]]:
    """The offsets of every batch until the end (an empty batch: paused)."""
    part = MonthlyLinesSource(path, stops, probe, batch_size).build_part("in", "0", resume_at)
    batches = []
    try:
        for _ in range(100):
            batches.append([message.offset for message in part.next_batch()])
    except StopIteration:
        return batches
    finally:
        part.close()
    raise AssertionError("no end")


@pytest.fixture
def ten_lines(tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(10)))
    return path


def test_batches_stop_at_each_stop_until_it_is_measured(ten_lines: Path) -> None:
    probe = Probe()
    batches = read_all(ten_lines, [3, 3, 10], probe)
    assert batches == [[0, 1, 2], [], [], [3, 4, 5, 6], [7, 8, 9], []]
    # two months may end on one line: each is measured; the last one at the end
    assert probe.calls == [(0, 3), (0, 3), (1, 3), (1, 3), (2, 10), (2, 10)]


def test_values_and_offsets_are_the_lines(ten_lines: Path) -> None:
    part = MonthlyLinesSource(ten_lines, [10], Probe(0), 5_000).build_part("in", "0", None)
    batch = part.next_batch()
    assert [m.value for m in batch] == [b'{"n": %d}' % n for n in range(10)]
    assert part.snapshot() == 10
    part.close()


def test_a_resumed_partition_skips_the_stops_it_passed(ten_lines: Path) -> None:
    probe = Probe(0)
    assert read_all(ten_lines, [3, 6, 10], probe, resume_at=6) == [[6, 7, 8, 9]]
    assert probe.calls == [(1, 6), (2, 10)]


def test_a_stop_past_the_end_is_an_error(ten_lines: Path) -> None:
    with pytest.raises(ValueError, match="before the stop at line 12"):
        read_all(ten_lines, [12], Probe(0), batch_size=100)


class Holder:
    def __init__(self, frozen: dict[str, bytes], live: dict[str, object]) -> None:
        self._frozen = frozen
        self._live = live
        self._pending: set[str] = {"x"}
        self._count = 3  # not a collection


def test_collection_sizes_sum_by_class_and_attribute() -> None:
    holders = [Holder({"a": b"12345", "b": b"1"}, {"a": object()}), Holder({}, {})]
    assert collection_sizes(holders) == {
        "Holder._frozen": 2,
        "Holder._frozen bytes": 6,
        "Holder._live": 1,
        "Holder._pending": 2,
    }


def test_collection_sizes_see_a_compiled_shard_and_its_columns() -> None:
    # AccountShard is compiled (no __dict__; its attributes named in __mypyc_attrs__)
    # when the native modules are built, as the suite runs them
    from datetime import UTC, datetime, timedelta

    from accounts.config import AccountConfig
    from dataflows.shard import AccountShard, ShardConfig
    from detectors.tier1 import DEFAULT_TIER1_RULES
    from featurestore.aggregation import CompiledFeatures
    from featurestore.definitions import load_definitions
    from tests.builders import make_event

    config = ShardConfig(
        AccountConfig(86_400.0, 1_000, DEFAULT_TIER1_RULES, CompiledFeatures(load_definitions())),
        idle_ttl=timedelta(days=40), flush_interval=timedelta(seconds=5))
    shard = AccountShard(config, lambda: datetime(2026, 10, 2, tzinfo=UTC))
    shard.process([[make_event(event_id="e1", account_id="a"),
                    make_event(event_id="e2", account_id="b")]])
    sizes = collection_sizes([shard])
    assert sizes["AccountShard._accounts"] == 2  # the live processors
    assert sizes["AccountShard._last_active"] == 2  # a column of the table
    assert sizes["AccountShard._frozen"] == 0  # nothing packed before a snapshot
