"""What a Bytewax recovery directory holds: its size on disk, its snapshots, its epochs.

Bytewax 0.21 keeps one SQLite database per recovery partition
(``part-<i>.sqlite3``, in WAL mode). Table ``snaps`` has one row per
(``step_id``, ``state_key``, ``snap_epoch``): the pickled state of one key as of
the end of that epoch, ``NULL`` once the key was discarded. Snapshots of older
epochs stay until garbage collection drops those no resume can need; SQLite
reuses the freed pages but never shrinks the file, so the files' size is a
high-water mark. Table ``commits`` has one row per partition with the epoch its
snapshots are complete up to. The input step's state (:data:`INPUT_STEP`) is, per
Kafka partition, the offset of the next message to read: once the committed one
is a topic's end, a restart resumes with the effect of every message restored.

With a shard log (``dataflows.shard_log``, a run with recovery), a shard's row
names files of the ``shard-log`` folder that hold its accounts: the live bytes
count the files the live rows name.

Everything here only reads, through read-only connections.
"""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from benchmarks.harness.figures import Figures
from dataflows.absence_log import ABSENCE_LOG_FOLDER, LoggedTracking, folder_name
from dataflows.shard import LoggedShard
from dataflows.shard_log import SHARD_LOG_FOLDER

# The recovery directory's folders of log files (a shard's accounts, a partition's trackers)
LOG_FOLDERS = (SHARD_LOG_FOLDER, ABSENCE_LOG_FOLDER)

PARTITION_GLOB = "part-*.sqlite3"
BUSY_TIMEOUT_S = 10.0
INPUT_STEP = "churnwatch.kafka-in"  # its state: per Kafka partition, the next offset to read

# The newest row of each key: the state a resume would load (PRIMARY KEY
# (step_id, state_key, snap_epoch) makes the inner MAX an index lookup).
_LIVE_BY_STEP = """
SELECT s.step_id, COUNT(*), COALESCE(SUM(LENGTH(s.ser_change)), 0),
       SUM(s.ser_change IS NULL)
FROM snaps AS s
WHERE s.snap_epoch = (SELECT MAX(t.snap_epoch) FROM snaps AS t
                      WHERE t.step_id = s.step_id AND t.state_key = s.state_key)
GROUP BY s.step_id
"""
# The newest row of each key of one step as of an epoch.
_STEP_AS_OF = """
SELECT s.state_key, s.ser_change
FROM snaps AS s
WHERE s.step_id = ?
  AND s.snap_epoch = (SELECT MAX(t.snap_epoch) FROM snaps AS t
                      WHERE t.step_id = s.step_id AND t.state_key = s.state_key
                        AND t.snap_epoch <= ?)
"""
# The newest row of each key, whole.
_LIVE_ROWS = """
SELECT s.state_key, s.ser_change
FROM snaps AS s
WHERE s.snap_epoch = (SELECT MAX(t.snap_epoch) FROM snaps AS t
                      WHERE t.step_id = s.step_id AND t.state_key = s.state_key)
  AND s.ser_change IS NOT NULL
"""
# Every row kept, whatever its epoch.
_KEPT_BY_STEP = """
SELECT step_id, COUNT(*), COALESCE(SUM(LENGTH(ser_change)), 0),
       COUNT(DISTINCT state_key)
FROM snaps
GROUP BY step_id
"""


def partitions(directory: Path) -> list[Path]:
    """The recovery partitions of ``directory``, in name order."""
    return sorted(directory.glob(PARTITION_GLOB))


def directory_size(directory: Path) -> Figures:
    """Bytes of every file under ``directory`` (the SQLite WAL and shared-memory
    files included): ``apparent`` (file sizes) and ``allocated`` (disk blocks)."""
    apparent = allocated = files = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            stat = path.stat()
            if path.is_file():
                files += 1
                apparent += stat.st_size
                allocated += stat.st_blocks * 512
    return {"files": files, "apparent_bytes": apparent, "allocated_bytes": allocated}


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                           timeout=BUSY_TIMEOUT_S)
    try:
        yield conn
    finally:
        conn.close()


def commit_epochs(directory: Path) -> list[int | None]:
    """Each partition's newest commit epoch (None: none yet, or unreadable now)."""
    epochs: list[int | None] = []
    for path in partitions(directory):
        try:
            with _read_only(path) as conn:
                row = conn.execute("SELECT MAX(commit_epoch) FROM commits").fetchone()
        except sqlite3.Error:
            epochs.append(None)
            continue
        epochs.append(None if row is None or row[0] is None else int(row[0]))
    return epochs


def newest_commit(epochs: Iterable[int | None]) -> int | None:
    """The newest epoch any partition has committed; None if none has."""
    known = [e for e in epochs if e is not None]
    return max(known) if known else None


def input_partition(state_key: str) -> int:
    """The Kafka partition of an input state key (``"5-churn.events"`` -> 5)."""
    return int(state_key.split("-", 1)[0])


def input_offset(ser_change: bytes) -> int:
    """The next offset to read, from an input partition's snapshot: a pickled offset,
    or a tuple that starts with it (churnwatch's parsing source adds the alert ids
    its fast lane sent)."""
    state = pickle.loads(ser_change)  # our own run's snapshot, not foreign input
    return int(state[0] if isinstance(state, tuple) else state)


def committed_offsets(directory: Path, step_id: str = INPUT_STEP) -> dict[int, int]:
    """Kafka partition -> next offset to read, as of the newest epoch every recovery
    partition has committed: what a restart resumes from. Empty before the first
    commit of every partition."""
    epochs = commit_epochs(directory)
    if not epochs or any(epoch is None for epoch in epochs):
        return {}
    upto = min(epoch for epoch in epochs if epoch is not None)
    offsets: dict[int, int] = {}
    for path in partitions(directory):
        with _read_only(path) as conn:
            rows = conn.execute(_STEP_AS_OF, (step_id, upto)).fetchall()
        for key, ser_change in rows:
            if ser_change is not None:
                offsets[input_partition(key)] = input_offset(ser_change)
    return dict(sorted(offsets.items()))


def merge_steps(rows: Iterable[tuple[str, int, int, int]],
                names: tuple[str, str, str]) -> dict[str, dict[str, int]]:
    """Per-partition ``(step_id, a, b, c)`` rows summed by step, each as
    ``{names[0]: a, names[1]: b, names[2]: c}``; steps in name order."""
    merged: dict[str, dict[str, int]] = {}
    for step, *values in rows:
        into = merged.setdefault(step, dict.fromkeys(names, 0))
        for name, value in zip(names, values, strict=True):
            into[name] += int(value or 0)
    return dict(sorted(merged.items()))


def snapshot_figures(directory: Path) -> Figures:
    """Snapshot bytes by step: ``live`` (the newest row of each key, what a resume
    loads: ``keys``, ``bytes``, ``discarded`` keys) and ``kept`` (every row still
    stored: ``rows``, ``bytes``, ``keys``), with their totals and the range of
    epochs kept.

    A key lives in one partition, so counts add up across partitions."""
    live_rows: list[tuple[str, int, int, int]] = []
    kept_rows: list[tuple[str, int, int, int]] = []
    epochs: list[tuple[int | None, int | None]] = []
    log_files: list[Path] = []
    logged = any((directory / folder).is_dir() for folder in LOG_FOLDERS)  # else none named
    for path in partitions(directory):
        with _read_only(path) as conn:
            live_rows += conn.execute(_LIVE_BY_STEP).fetchall()
            kept_rows += conn.execute(_KEPT_BY_STEP).fetchall()
            row = conn.execute("SELECT MIN(snap_epoch), MAX(snap_epoch) FROM snaps").fetchone()
            epochs.append((row[0], row[1]) if row else (None, None))
            if logged:
                log_files += _named_log_files(conn, directory)
    live = merge_steps(live_rows, ("keys", "bytes", "discarded"))
    log_live, log_all = log_file_bytes(directory, log_files)
    kept = merge_steps(kept_rows, ("rows", "bytes", "keys"))
    lows = [low for low, _ in epochs if low is not None]
    highs = [high for _, high in epochs if high is not None]
    return {
        "partitions": len(epochs),
        "live_bytes": sum(step["bytes"] for step in live.values()) + log_live,
        "shard_log_live_bytes": log_live,
        "shard_log_bytes": log_all,
        "kept_bytes": sum(step["bytes"] for step in kept.values()),
        "oldest_snap_epoch": min(lows) if lows else None,
        "newest_snap_epoch": max(highs) if highs else None,
        "live_by_step": live,
        "kept_by_step": kept,
    }


def _named_log_files(conn: sqlite3.Connection, directory: Path) -> list[Path]:
    """The log files each live row names: a shard's in the shard log, an input
    partition's (its absence trackers) in the absence log."""
    named: list[Path] = []
    for key, blob in conn.execute(_LIVE_ROWS):
        state = pickle.loads(blob)  # our own run's snapshot, not foreign input
        if isinstance(state, LoggedShard) and state.ref is not None:
            folder = directory / SHARD_LOG_FOLDER / f"{state.ref.shard:04d}"
            named += [folder / name for name in state.ref.files]
        elif isinstance(state, tuple) and len(state) > 3 and isinstance(state[3], LoggedTracking):
            partition = directory / ABSENCE_LOG_FOLDER / folder_name(key)
            for signal, ref in state[3].refs.items():
                folder = partition / folder_name(signal) / f"{ref.shard:04d}"
                named += [folder / name for name in ref.files]
    return named


def log_file_bytes(directory: Path, named: Iterable[Path]) -> tuple[int, int]:
    """The bytes of the log files that ``named`` names (the live rows'), and of all the
    logs' files (those replaced and kept a while, see ``dataflows.shard_log``): the
    shard log's and the absence log's."""
    every = sum(path.stat().st_size for folder in LOG_FOLDERS
                if (directory / folder).is_dir()
                for path in (directory / folder).rglob("*") if path.is_file())
    return sum(path.stat().st_size for path in named), every
