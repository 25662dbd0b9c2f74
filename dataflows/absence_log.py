"""An input partition's absence trackers kept as logs of files, as a shard's accounts are.

An input partition's snapshot held its absence trackers whole (every account the
partition has seen: its last activity, the episode last signalled, the silences
still pending), rebuilt, pickled and written every epoch whatever changed: at 1M
accounts over 8 partitions, 29 MB and about a second of a worker's CPU every
snapshot interval, and the tuples of it meanwhile. With recovery, a partition's
snapshot now names files of a :class:`~dataflows.shard_log.ShardLog` per tracker
(``<recovery dir>/absence-log/<partition>/<signal>/``) instead: each epoch writes
the entries of the accounts it changed, and a tracker whole again once those
outweigh its last full file, or all of them after an erasure (so an erased
account's entry is in no file the newest snapshot names). Files are synced, kept
and deleted as the shard log's are. Runs without recovery keep the whole snapshot.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from dataflows.shard_log import ABSENCE_LOG_FOLDER, GONE, LogRef, ShardLog
from detectors.inactivity import AbsenceTracking, InactivityTracker, TrackerEntries

__all__ = ["ABSENCE_LOG_FOLDER", "LoggedTracking", "TrackingLog", "folder_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class LoggedTracking:
    """An input partition's absence trackers in its snapshot, with an absence log, by
    signal type: the files that hold each one's accounts (a tracker that never held
    one has none) and its (newest event time, day checked)."""

    refs: Mapping[str, LogRef]
    progress: Mapping[str, tuple[float, int]]


def folder_name(name: str) -> str:
    """A folder name for an input partition's name (``3-events`` for partition 3 of
    topic ``events``) or a signal's: the name where it is safe, else made safe and
    told apart."""
    safe = _UNSAFE.sub("_", name)
    return safe if safe == name else f"{safe}-{zlib.crc32(name.encode()):08x}"


class TrackingLog:
    """The absence log of one input partition (one worker reads a partition)."""

    def __init__(self, directory: Path, retain: timedelta) -> None:
        self._directory = directory
        self._retain = retain
        self._logs: dict[str, ShardLog] = {}
        self._refs: dict[str, LogRef] = {}

    @classmethod
    def for_partition(cls, directory: Path, retain: timedelta, partition: str) -> TrackingLog:
        return cls(directory / folder_name(partition), retain)

    def _log(self, signal: str) -> ShardLog:
        log = self._logs.get(signal)
        if log is None:
            log = self._logs[signal] = ShardLog(self._directory / folder_name(signal),
                                                self._retain)
        return log

    def restore(self, logged: LoggedTracking) -> dict[str, TrackerEntries]:
        """The trackers as of ``logged``, read back from its files; later snapshots
        write after them."""
        self._refs = dict(logged.refs)
        restored = {}
        for signal, (seen_until, checked_day) in logged.progress.items():
            ref = logged.refs.get(signal)
            entries = {} if ref is None else self._log(signal).read(ref)
            restored[signal] = TrackerEntries(entries, seen_until, checked_day)
        return restored

    def snapshot(self, absences: AbsenceTracking) -> LoggedTracking:
        """Write what changed since the last snapshot (or everything: see the module
        docstring) and name the files that now hold the trackers' accounts."""
        whole = absences.erased
        for tracker in absences.trackers:
            self._write(tracker, whole)
        absences.erased = False
        return LoggedTracking(dict(self._refs), {
            tracker.signal_type: tracker.progress for tracker in absences.trackers})

    def _write(self, tracker: InactivityTracker, whole: bool) -> None:
        signal = tracker.signal_type
        ref = self._refs.get(signal)
        changed = tracker.changed()
        if ref is None or whole or ref.due_full(changed):
            # (also what a tracker restored from a whole snapshot holds, changed or not)
            entries = tracker.entries()
            if entries or ref is not None:  # a tracker that never held one: nothing
                self._refs[signal] = self._log(signal).append(ref, 0, entries, full=True)
        elif changed:
            delta = {key: GONE if entry is None else entry
                     for key, entry in tracker.take_changes().items()}
            self._refs[signal] = self._log(signal).append(ref, 0, delta, full=False)
