"""A shard's accounts kept as a log of files beside the recovery partitions.

Bytewax snapshots a state key whole at the end of every epoch that touched it, and
a shard's state is every account of the shard: written whole, a stream that
touches every shard every epoch rewrote all of its state every epoch (at 1M
accounts, about 750 MB per epoch, pickled, routed to its recovery partition and
written, with its copy in memory meanwhile). Here a shard's snapshot names files
instead (:class:`LogRef`), and an epoch writes one file of the entries of the
accounts it changed; once those files hold as many entries as the last full one,
the next epoch writes all of the shard's accounts into one full file again
(compaction), so a restart reads at most about twice the shard.

Files are never changed once written (a name is never reused, even by an epoch
run again after a crash), and each is on disk (fsync) before the snapshot that
names it reaches Bytewax. A file no longer named by the shard's newest snapshot
is deleted ``retain`` after it was replaced: until Bytewax has committed a newer
snapshot, a restart may resume from an older one. Files of a run that crashed
(an epoch never committed) go once they are ``retain`` old.

An entry is an account's (processor state, risk state, newest event time, risk
state's expiry in event time, input partition), each ``None`` when the shard holds
none; all ``None``: the account is gone (evicted or erased). The states are packed
by the log's :attr:`ShardLog.codec` (:mod:`dataflows.state_codec`), whose zstd
dictionaries are kept in the log's folder (:data:`~dataflows.state_codec.DICTIONARY_FOLDER`).
"""

from __future__ import annotations

import pickle
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from dataflows.durable import write_file
from dataflows.state_codec import DICTIONARY_FOLDER, StateCodec
from schemas.errors import ChurnwatchError

Entry = tuple[bytes | None, bytes | None, float | None, float | None, int | None]
GONE: Entry = (None, None, None, None, None)

# A write that would make the delta files hold more entries than the full file, or
# more files than this, is a full one. (Until session 12 the deltas could also reach
# 1,000 entries before that: a shard of a few accounts then kept up to 64 files of
# them, 13 times its state in the year-long soak benchmark.)
MAX_FILES = 64
SUFFIX = ".entries"
# The shard log's folder in a recovery directory: one folder per shard in it. And the
# input partitions' absence log's (dataflows.absence_log): one folder per partition.
SHARD_LOG_FOLDER = "shard-log"
ABSENCE_LOG_FOLDER = "absence-log"


class ShardLogMissing(ChurnwatchError):
    """A snapshot names a file of a log (the shard log, an absence log) that is not
    there: the restart stops (``churnwatch run`` prints this and exits 74, as when the
    recovery directory cannot be written: it needs an operator either way)."""

    exit_code = 74  # sysexits.h EX_IOERR, dataflows.run.EXIT_RECOVERY_STORE

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"a recovery snapshot names {path}, which is missing: the recovery directory"
            f" was copied or cleaned without its {SHARD_LOG_FOLDER}/ and"
            f" {ABSENCE_LOG_FOLDER}/ folders."
            " Restore them, or start a fresh recovery directory (the input"
            " is then read again from the start)"
        )
        self.path = path


@dataclass(frozen=True, slots=True)
class LogRef:
    """The files that hold a shard's accounts, oldest first: a full one, then deltas."""

    shard: int
    files: tuple[str, ...]
    full_entries: int  # accounts in the full file
    since_full: int  # entries in the files after it

    def due_full(self, entries: int) -> bool:
        """Whether ``entries`` more would make the deltas outweigh the full file."""
        return len(self.files) >= MAX_FILES or self.since_full + entries > self.full_entries


class ShardLog:
    """The shard log files of one recovery directory (one per process; each shard is
    written by the one worker that owns it)."""

    def __init__(self, directory: Path, retain: timedelta,
                 codec: StateCodec | None = None) -> None:
        self.directory = directory
        self._retain = retain.total_seconds()
        self._retired: dict[int, dict[str, float]] = {}  # shard -> file -> when replaced
        self._swept: set[int] = set()  # shards whose folder was looked through since start
        self.bytes_written = 0
        # How the shards writing here pack their accounts' states (by default, trained on
        # their first states): its dictionaries in this folder, found by every process
        # restarting from it.
        self.codec = StateCodec(directory / DICTIONARY_FOLDER) if codec is None else codec

    def append(self, ref: LogRef | None, shard: int, entries: Mapping[Any, tuple[Any, ...]],
               full: bool) -> LogRef:
        """Write ``entries`` as the shard's next file: a full one (then the files
        ``ref`` named are replaced) or a delta after ``ref``'s."""
        name = self._write(shard, entries)
        if full or ref is None:
            if ref is not None:
                now = time.time()
                self._retired.setdefault(shard, {}).update(dict.fromkeys(ref.files, now))
            new = LogRef(shard, (name,), len(entries), 0)
        else:
            new = LogRef(shard, (*ref.files, name), ref.full_entries,
                         ref.since_full + len(entries))
        self._sweep(shard, new.files)
        return new

    def read(self, ref: LogRef) -> dict[Any, Any]:
        """Every account's entry as of ``ref``: the full file, then each delta over it
        (a shard's entries are :data:`Entry`; the log reads any tuples it was given)."""
        accounts: dict[Any, Any] = {}
        for index, name in enumerate(ref.files):
            path = self._folder(ref.shard) / name
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise ShardLogMissing(path) from None
            if index == 0:  # the full file, which holds no tombstone: taken as it is
                accounts = pickle.loads(data)
                continue
            for subject, entry in pickle.loads(data).items():
                if entry == GONE:
                    accounts.pop(subject, None)
                else:
                    accounts[subject] = entry
        return accounts

    def _folder(self, shard: int) -> Path:
        return self.directory / f"{shard:04d}"

    def _write(self, shard: int, entries: Mapping[Any, tuple[Any, ...]]) -> str:
        folder = self._folder(shard)
        folder.mkdir(parents=True, exist_ok=True)
        # time first (files sort in order of writing), then a random part: an epoch run
        # again after a crash never overwrites a file an older snapshot names.
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}{SUFFIX}"
        data = pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)
        write_file(folder / name, data)
        self.bytes_written += len(data)
        return name

    def _sweep(self, shard: int, live: tuple[str, ...]) -> None:
        """Delete the shard's files replaced ``retain`` ago; the first time since start,
        also those of earlier runs that no snapshot may name any more (named by no
        live file and ``retain`` old: replaced before a restart, or written by an
        epoch that was never committed)."""
        now = time.time()
        retired = self._retired.get(shard, {})
        for name in [n for n, at in retired.items() if now - at >= self._retain]:
            (self._folder(shard) / name).unlink(missing_ok=True)
            del retired[name]
        if shard in self._swept:
            return
        self._swept.add(shard)
        for path in self._folder(shard).iterdir():
            if path.name in live or path.name in retired:
                continue
            try:
                if now - path.stat().st_mtime >= self._retain:
                    path.unlink()
            except FileNotFoundError:
                continue
