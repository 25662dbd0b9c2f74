"""Run a dataflow in this process, with Bytewax recovery.

Recovery snapshots state and input offsets every epoch into a directory of
SQLite partitions; after a crash, a restart resumes from the last snapshot.

When the directory cannot be written (full, read-only, failing), Bytewax's
writer panics with SQLite's error and the run stops: :func:`run_dataflow`
turns that into :class:`RecoveryStoreError` (``recovery directory full: ...``,
exit status 74). SQLite writes each epoch's snapshots in a transaction, so the
failed one is rolled back and the directory keeps the last complete snapshot;
once there is space, a restart resumes from it.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from dataflows.collector import tune_garbage_collector, unsettle
from dataflows.durable import write_file
from dataflows.shard_log import ShardLogMissing
from dataflows.state_codec import StateDictionaryMissing
from schemas.errors import ChurnwatchError

log = logging.getLogger(__name__)


class RecoveryLayoutError(ChurnwatchError):
    """A recovery directory was written with another shard count."""

    def __init__(self, directory: Path, recorded: int, requested: int) -> None:
        self.directory = directory
        self.recorded = recorded
        self.requested = requested
        super().__init__(
            f"{directory} holds state for {recorded} shards, not {requested}: keep "
            f"CHURNWATCH_SHARDS={recorded}, or start a fresh recovery directory (the input "
            "is then read again from its earliest offset; outputs repeat under the same ids)"
        )


# The exit status of ``churnwatch run`` when its recovery directory cannot be written
# (sysexits.h EX_IOERR): a supervisor tells it from a defect (1) or a bad setting (2).
EXIT_RECOVERY_STORE = 74


class RecoveryStoreError(ChurnwatchError):
    """The recovery directory cannot be written: full (``full``), read-only or failing.

    No snapshot can be taken, so the run stops rather than go on with nothing to
    resume from; the directory keeps its last complete snapshot (SQLite rolls
    the failed epoch back). ``free_bytes``: free space on its file system then.
    """

    exit_code = EXIT_RECOVERY_STORE

    def __init__(self, directory: Path, problem: str, *, full: bool,
                 free_bytes: int | None) -> None:
        self.directory = directory
        self.problem = problem
        self.full = full
        self.free_bytes = free_bytes
        free = "" if free_bytes is None else f"; {free_bytes} bytes free now"
        what = "recovery directory full" if full else "recovery directory cannot be written"
        fix = "free space on it (or move CHURNWATCH_RECOVERY_DIR)" if full else "fix it"
        super().__init__(
            f"{what}: {directory} ({problem}{free}): no snapshot can be written, so the run "
            f"stops; {fix}, then restart: it resumes from the last complete snapshot"
        )


# How Bytewax's recovery writer reports a SQLite error (rusqlite's Debug form), e.g.
# SqliteFailure(Error { code: DiskFull, extended_code: 13 }, Some("database or disk is full"))
_SQLITE_FAILURE = re.compile(
    r'SqliteFailure\(Error \{ code: (\w+), extended_code: (\d+) \}, (?:Some\("([^"]*)"\)|None)\)'
)
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# Less free than this when SQLite reports an I/O failure or cannot open a file: call it
# full (SQLite reports ENOSPC on its shared-memory file as an I/O error, not SQLITE_FULL).
_NEARLY_FULL_BYTES = 1 << 20
_FULL_WHEN_NEARLY_FULL = frozenset({"SystemIoFailure", "CannotOpen"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def _free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _inside(filename: object, directory: Path) -> bool:
    """Whether an ``OSError``'s file is ``directory`` or in it (a parent it creates too)."""
    if not isinstance(filename, str | bytes | os.PathLike):
        return False
    path, target = Path(os.fsdecode(filename)).absolute(), directory.absolute()
    return path == target or target in path.parents or path in target.parents


def recovery_store_error(exc: BaseException, directory: Path) -> RecoveryStoreError | None:
    """``exc`` as a :class:`RecoveryStoreError` if it is the recovery store failing to
    write (a SQLite failure in Bytewax's recovery, or ``OSError`` ENOSPC, EDQUOT,
    EROFS, EACCES or EIO on a file of ``directory``), else ``None``."""
    free = _free_bytes(directory)
    for cause in _chain(exc):
        if (
            isinstance(cause, OSError)
            and cause.errno in (*_FULL_ERRNOS, errno.EROFS, errno.EACCES, errno.EIO)
            and _inside(cause.filename, directory)
        ):
            return RecoveryStoreError(directory, f"{cause.strerror} (errno {cause.errno})",
                                      full=cause.errno in _FULL_ERRNOS, free_bytes=free)
        found = _SQLITE_FAILURE.search(str(cause))
        if found:
            code, extended, text = found.groups()
            full = code == "DiskFull" or (
                code in _FULL_WHEN_NEARLY_FULL and free is not None and free < _NEARLY_FULL_BYTES
            )
            problem = f"SQLite {code} ({extended}): {text or 'no detail'}"
            return RecoveryStoreError(directory, problem, full=full, free_bytes=free)
    return None


SHARDS_FILE = "churnwatch-shards"

# glibc's mallopt parameter, and the size from which each allocation is a mapping of
# its own (glibc's default start; fixed here, see tune_process).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def tune_process() -> None:
    """Tune the garbage collector (:mod:`dataflows.collector`) and the C allocator
    (below) for a long run."""
    tune_garbage_collector()
    tune_allocator()


def tune_allocator() -> bool:
    """Give every allocation of 128 KiB or more a mapping of its own (glibc; elsewhere
    nothing changes, and False is returned).

    The shards keep their accounts' states in buffers of megabytes that grow and
    are compacted (dataflows.account_table). glibc maps such a block apart only
    while it is larger than the largest one freed so far (its threshold rises with
    each free, up to 32 MiB), so after the first compaction the buffers came from
    the heap, and the holes they left as they grew and moved were held: 555 B per
    account of free memory in the heap with 100,000 accounts
    (``benchmarks.bench_shard_memory``), 53 B with the threshold fixed. A mapped
    block grows in place (mremap) and goes back to the system when freed.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # this process's C library
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def recovery_config(
    directory: Path | None, partitions: int, *, shards: int | None = None
) -> RecoveryConfig | None:
    """Recovery over ``directory``, creating its partitions on first use.

    ``shards``: the dataflow's shard count, recorded on first use and checked
    after: state is keyed by shard, so another count would read every account's
    state under the wrong key. Raises :class:`RecoveryLayoutError` on a mismatch.
    """
    if directory is None:
        return None
    try:
        return _prepare_recovery(directory, partitions, shards)
    except BaseException as exc:  # Bytewax's PanicException is not an Exception
        failure = recovery_store_error(exc, directory)
        if failure is None:
            raise
        raise failure from exc


def _prepare_recovery(directory: Path, partitions: int, shards: int | None) -> RecoveryConfig:
    directory.mkdir(parents=True, exist_ok=True)
    if shards is not None:
        marker = directory / SHARDS_FILE
        # Empty: a first start that could not write it (its disk full), so no state yet.
        recorded = marker.read_text().strip() if marker.exists() else ""
        if not recorded:
            write_file(marker, f"{shards}\n".encode())
        elif int(recorded) != shards:
            raise RecoveryLayoutError(directory, int(recorded), shards)
    if not any(directory.glob("part-*.sqlite3")):
        _create_partitions(directory, partitions)
        log.info("created %d recovery partition(s) in %s", partitions, directory)
    return RecoveryConfig(directory)


def _create_partitions(directory: Path, partitions: int) -> None:
    """Create the partitions all or none: a disk filling half-way through must not leave
    some of them, which a restart would take for an initialised directory."""
    staging = directory / ".creating"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        init_db_dir(staging, partitions)
        for part in sorted(staging.glob("part-*.sqlite3")):
            os.replace(part, directory / part.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_dataflow(
    flow: Dataflow,
    *,
    epoch_interval: timedelta,
    recovery_dir: Path | None,
    recovery_partitions: int,
    shards: int | None = None,
    workers_per_process: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> None:
    """Run ``flow`` in this process until its input ends (or forever when tailing).

    ``epoch_interval``: how often state and input offsets are snapshot;
    ``recovery_dir`` ``None``: no recovery. Raises :class:`RecoveryStoreError`
    when the recovery directory cannot be written, at start or mid-run, and
    :class:`~dataflows.shard_log.ShardLogMissing` (logged; exit 74 as well) when a
    restart's snapshot names a shard log file that is gone, and
    :class:`~dataflows.state_codec.StateDictionaryMissing` (the same) when an
    account's state, read at its next event, names a dictionary that is gone.
    """
    recovery = recovery_config(recovery_dir, recovery_partitions, shards=shards)
    tune_process()
    try:
        cli_main(
            flow,
            workers_per_process=workers_per_process,
            process_id=process_id,
            addresses=addresses,
            epoch_interval=epoch_interval,
            recovery_config=recovery,
        )
    except BaseException as exc:  # Bytewax's PanicException is not an Exception
        missing = next((cause for cause in _chain(exc)
                        if isinstance(cause, ShardLogMissing | StateDictionaryMissing)), None)
        if missing is not None:  # a restart that cannot read its shards' accounts
            log.error(str(missing), extra={"recovery_dir": str(recovery_dir),
                                           "missing": str(missing.path)})
            if missing is exc:
                raise
            raise missing from exc
        failure = None if recovery_dir is None else recovery_store_error(exc, recovery_dir)
        if failure is None:
            raise
        log.error(str(failure), extra={"recovery_dir": str(recovery_dir),
                                       "free_bytes": failure.free_bytes, "full": failure.full})
        raise failure from exc
    finally:
        unsettle()  # a process that goes on (a test) collects as before
