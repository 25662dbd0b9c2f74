"""Reading a recovery directory: live snapshots (newest per key), kept ones, commit epochs.

The partitions are SQLite files with Bytewax 0.21's ``snaps`` and ``commits``
tables, written here by hand.
"""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

from benchmarks.harness.recovery_store import (
    commit_epochs,
    committed_offsets,
    directory_size,
    input_offset,
    input_partition,
    merge_steps,
    newest_commit,
    snapshot_figures,
)

SCHEMA = """
CREATE TABLE snaps (step_id TEXT NOT NULL, state_key TEXT NOT NULL,
                    snap_epoch INTEGER NOT NULL, ser_change BLOB,
                    PRIMARY KEY (step_id, state_key, snap_epoch)) STRICT;
CREATE TABLE commits (part_index INTEGER PRIMARY KEY NOT NULL,
                      commit_epoch INTEGER NOT NULL) STRICT;
"""


def _partition(directory: Path, index: int, snaps: list[tuple[str, str, int, bytes | None]],
               commit: int | None) -> None:
    conn = sqlite3.connect(directory / f"part-{index}.sqlite3")
    with conn:
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO snaps VALUES (?, ?, ?, ?)", snaps)
        if commit is not None:
            conn.execute("INSERT INTO commits VALUES (?, ?)", (index, commit))
    conn.close()


def test_live_bytes_count_the_newest_row_of_each_key_and_kept_bytes_every_row(
    tmp_path: Path,
) -> None:
    _partition(tmp_path, 0, [
        ("shard", "0", 1, b"x" * 100),
        ("shard", "0", 2, b"x" * 150),  # newer: the live one
        ("shard", "1", 1, b"x" * 70),   # untouched since epoch 1: still live
        ("input", "p0", 2, b"x" * 8),
    ], commit=2)
    _partition(tmp_path, 1, [
        ("shard", "2", 1, b"x" * 40),
        ("shard", "2", 3, None),        # discarded at epoch 3
    ], commit=3)

    figures = snapshot_figures(tmp_path)

    assert figures["live_by_step"] == {
        "input": {"keys": 1, "bytes": 8, "discarded": 0},
        "shard": {"keys": 3, "bytes": 220, "discarded": 1},
    }
    assert figures["live_bytes"] == 228
    assert figures["kept_by_step"]["shard"] == {"rows": 5, "bytes": 360, "keys": 3}
    assert figures["kept_bytes"] == 368
    assert (figures["oldest_snap_epoch"], figures["newest_snap_epoch"]) == (1, 3)
    assert figures["partitions"] == 2


def test_commit_epochs_per_partition_none_before_the_first(tmp_path: Path) -> None:
    _partition(tmp_path, 0, [], commit=4)
    _partition(tmp_path, 1, [], commit=None)
    epochs = commit_epochs(tmp_path)
    assert epochs == [4, None]
    assert newest_commit(epochs) == 4
    assert newest_commit([None, None]) is None


def test_reading_leaves_the_partitions_as_they_were(tmp_path: Path) -> None:
    _partition(tmp_path, 0, [("shard", "0", 1, b"abc")], commit=1)
    before = (tmp_path / "part-0.sqlite3").read_bytes()
    snapshot_figures(tmp_path)
    commit_epochs(tmp_path)
    assert (tmp_path / "part-0.sqlite3").read_bytes() == before


def test_directory_size_counts_every_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"x" * 24)
    size = directory_size(tmp_path)
    assert (size["files"], size["apparent_bytes"]) == (2, 1024)
    assert size["allocated_bytes"] >= 1024


def test_merge_steps_adds_partitions_up_by_step() -> None:
    rows = [("b", 1, 10, 0), ("a", 2, 20, 1), ("b", 3, 30, 2)]
    assert merge_steps(rows, ("keys", "bytes", "discarded")) == {
        "a": {"keys": 2, "bytes": 20, "discarded": 1},
        "b": {"keys": 4, "bytes": 40, "discarded": 2},
    }


def _input_snap(offset: int) -> bytes:
    return pickle.dumps((offset, ("alert-1",)))


def test_committed_offsets_are_the_input_state_as_of_the_oldest_commit(tmp_path: Path) -> None:
    step = "churnwatch.kafka-in"
    _partition(tmp_path, 0, [
        (step, "0-events", 1, _input_snap(10)),
        (step, "0-events", 2, _input_snap(25)),
        (step, "0-events", 3, _input_snap(40)),  # not committed everywhere yet
        ("churnwatch.process-shards.process-shard", "7", 3, b"state"),
    ], commit=3)
    _partition(tmp_path, 1, [(step, "1-events", 1, pickle.dumps(7))], commit=2)
    assert committed_offsets(tmp_path) == {0: 25, 1: 7}


def test_no_committed_offsets_until_every_partition_committed(tmp_path: Path) -> None:
    _partition(tmp_path, 0, [("churnwatch.kafka-in", "0-events", 1, _input_snap(3))], commit=1)
    _partition(tmp_path, 1, [], commit=None)
    assert committed_offsets(tmp_path) == {}


def test_input_state_keys_and_snapshots() -> None:
    assert input_partition("5-churn.events") == 5
    assert input_partition("12-bench-state-1.events") == 12
    assert input_offset(_input_snap(500)) == 500
    assert input_offset(pickle.dumps(42)) == 42


def test_live_bytes_count_the_log_files_the_live_rows_name(tmp_path: Path) -> None:
    """A shard's snapshot names files of the shard log, an input partition's those of
    its absence log: the live bytes count those, the logs' total every file kept."""
    from dataflows.absence_log import ABSENCE_LOG_FOLDER, LoggedTracking
    from dataflows.shard import LoggedShard
    from dataflows.shard_log import SHARD_LOG_FOLDER, LogRef

    shard_folder = tmp_path / SHARD_LOG_FOLDER / "0007"
    absence_folder = tmp_path / ABSENCE_LOG_FOLDER / "0-events" / "inactivity" / "0000"
    for folder, names in ((shard_folder, ("a.entries", "b.entries", "old.entries")),
                          (absence_folder, ("c.entries", "replaced.entries"))):
        folder.mkdir(parents=True)
        for size, name in enumerate(names, start=1):
            (folder / name).write_bytes(b"x" * 100 * size)
    shard = LoggedShard(LogRef(7, ("a.entries", "b.entries"), 1, 1), (), 0.0, (), {})
    tracking = LoggedTracking({"inactivity": LogRef(0, ("c.entries",), 1, 0)},
                              {"inactivity": (0.0, 1)})
    _partition(tmp_path, 0, [
        ("churnwatch.process-shards.process-shard", "7", 1, pickle.dumps(shard)),
        ("churnwatch.kafka-in", "0-events", 1, pickle.dumps((5, (), (), tracking, None))),
    ], commit=1)
    figures = snapshot_figures(tmp_path)
    assert figures["shard_log_live_bytes"] == 100 + 200 + 100  # a, b; c
    assert figures["shard_log_bytes"] == 100 + 200 + 300 + 100 + 200
