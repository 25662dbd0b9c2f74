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

A log knows the partition's declared signals: a signal taken out of the
definitions is not read back, its files are named by no later snapshot, and its
folder is deleted ``retain`` after that (at once at start if it is that old
already). Until 2026-11-30 its snapshot reference was carried on unread, its
files were never deleted (an erased account's entry among them), and a signal
declared again wrote its changes over them.
"""

from __future__ import annotations

import re
import shutil
import time
import zlib
from collections.abc import Collection, Mapping
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
    """The absence log of one input partition (one worker reads a partition), for its
    declared absence ``signals``."""

    def __init__(self, directory: Path, retain: timedelta, signals: Collection[str]) -> None:
        self._directory = directory
        self._retain = retain
        self._signals = frozenset(signals)
        self._logs: dict[str, ShardLog] = {}
        self._refs: dict[str, LogRef] = {}
        # Folders of signals no longer declared: when they stopped being named (epoch s).
        self._retired: dict[str, float] = {}
        self._swept = False  # whether the folder was looked through since start

    @classmethod
    def for_partition(cls, directory: Path, retain: timedelta, signals: Collection[str],
                      partition: str) -> TrackingLog:
        return cls(directory / folder_name(partition), retain, signals)

    def _log(self, signal: str) -> ShardLog:
        log = self._logs.get(signal)
        if log is None:
            log = self._logs[signal] = ShardLog(self._directory / folder_name(signal),
                                                self._retain)
        return log

    def restore(self, logged: LoggedTracking) -> dict[str, TrackerEntries]:
        """The trackers as of ``logged``, read back from its files; later snapshots
        write after them. A signal no longer declared is not read."""
        self._refs = {signal: ref for signal, ref in logged.refs.items()
                      if signal in self._signals}
        for signal in logged.refs.keys() - self._signals:  # named until now: kept from now
            self._retired[folder_name(signal)] = time.time()
        restored = {}
        for signal, (seen_until, checked_day) in logged.progress.items():
            if signal not in self._signals:
                continue
            ref = self._refs.get(signal)
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
        self._sweep()
        return LoggedTracking(dict(self._refs), {
            tracker.signal_type: tracker.progress for tracker in absences.trackers})

    def _sweep(self) -> None:
        """Delete the folders of signals no longer declared once ``retain`` has passed
        since a snapshot last named them; the first time since start, also those no
        snapshot this run restored named (their newest file tells their age)."""
        now = time.time()
        retain = self._retain.total_seconds()
        if not self._swept:
            self._swept = True
            declared = {folder_name(signal) for signal in self._signals}
            if self._directory.is_dir():
                for folder in self._directory.iterdir():
                    if folder.is_dir() and folder.name not in declared:
                        self._retired.setdefault(folder.name, _newest_mtime(folder))
        for name in [name for name, since in self._retired.items() if now - since >= retain]:
            shutil.rmtree(self._directory / name, ignore_errors=True)
            del self._retired[name]

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


def _newest_mtime(folder: Path) -> float:
    """When the newest file under ``folder`` was written (its own time if empty)."""
    times = [path.stat().st_mtime for path in folder.rglob("*") if path.is_file()]
    return max(times, default=folder.stat().st_mtime)
