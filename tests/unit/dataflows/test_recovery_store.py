"""dataflows.run: a recovery directory that cannot be written, or a restart missing a
shard log file, is a clear error, exit 74.

The disk itself is filled in tests/integration/test_disk_full.py; here, the
errors Bytewax and the OS raise are classified, and the CLI's exit status checked.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic
from bytewax.testing import TestingSink, TestingSource

from churnwatch import cli
from dataflows import run
from dataflows.run import (
    EXIT_RECOVERY_STORE,
    RecoveryStoreError,
    recovery_config,
    recovery_store_error,
    run_dataflow,
)
from dataflows.shard_log import ShardLogMissing
from dataflows.state_codec import StateDictionaryMissing

# What Bytewax 0.21.1's cli_main raises when its recovery writer panics on a full disk.
BYTEWAX_DISK_FULL = (
    "(src/run.rs:167:13) called `Result::unwrap()` on an `Err` value: SqliteFailure(Error { "
    'code: DiskFull, extended_code: 13 }, Some("database or disk is full"))'
)


def test_bytewax_reporting_sqlite_full_is_the_directory_full(tmp_path: Path) -> None:
    error = recovery_store_error(RuntimeError(BYTEWAX_DISK_FULL), tmp_path)
    assert error is not None and error.full
    assert str(error).startswith(
        f"recovery directory full: {tmp_path} (SQLite DiskFull (13): database or disk is full; "
    )
    assert "resumes from the last complete snapshot" in str(error)
    assert error.exit_code == EXIT_RECOVERY_STORE == 74
    assert error.free_bytes is not None


def test_another_sqlite_failure_cannot_be_written_but_is_not_full(tmp_path: Path) -> None:
    text = BYTEWAX_DISK_FULL.replace("DiskFull, extended_code: 13", "ReadOnly, extended_code: 8")
    error = recovery_store_error(RuntimeError(text.replace("database or disk is full",
                                                           "attempt to write a readonly database")),
                                 tmp_path)
    assert error is not None and not error.full
    assert str(error).startswith(f"recovery directory cannot be written: {tmp_path} (SQLite "
                                 "ReadOnly (8): attempt to write a readonly database")


def test_an_io_failure_with_no_space_left_is_full(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite reports ENOSPC on its shared-memory file as an I/O error.
    monkeypatch.setattr(run, "_free_bytes", lambda _directory: 4096)
    text = BYTEWAX_DISK_FULL.replace("DiskFull, extended_code: 13",
                                     "SystemIoFailure, extended_code: 4874")
    error = recovery_store_error(RuntimeError(text), tmp_path)
    assert error is not None and error.full


def test_an_os_error_on_its_files_in_the_cause_chain_is_classified(tmp_path: Path) -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "marker"))
        except OSError as inner:
            raise RuntimeError("while writing the marker") from inner
    except RuntimeError as outer:
        error = recovery_store_error(outer, tmp_path)
    assert error is not None and error.full
    assert "No space left on device (errno 28)" in str(error)


def test_other_errors_are_not_the_recovery_store(tmp_path: Path) -> None:
    assert recovery_store_error(RuntimeError("a defect in a sink"), tmp_path) is None
    assert recovery_store_error(OSError(errno.ECONNREFUSED, "refused"), tmp_path) is None
    # No space for another file (a sink's, say) is not the recovery directory's problem.
    elsewhere = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/var/tmp/other")
    assert recovery_store_error(elsewhere, tmp_path / "recovery") is None
    assert recovery_store_error(OSError(errno.ENOSPC, "no file named"), tmp_path) is None


def test_no_space_to_create_the_partitions_is_the_same_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(directory: Path, _count: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / "part-0.sqlite3"))

    monkeypatch.setattr(run, "init_db_dir", no_space)
    with pytest.raises(RecoveryStoreError) as info:
        recovery_config(tmp_path / "recovery", 2, shards=8)
    assert info.value.full and info.value.directory == tmp_path / "recovery"


def test_a_failing_run_raises_the_clear_error_and_logs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def panics(*_args: object, **_kw: object) -> None:
        raise RuntimeError(BYTEWAX_DISK_FULL)

    monkeypatch.setattr(run, "cli_main", panics)
    monkeypatch.setattr(run, "tune_process", lambda: None)
    flow = Dataflow("disk-full")
    op.output("out", op.input("in", flow, TestingSource([1])), TestingSink([]))
    with pytest.raises(RecoveryStoreError):
        run_dataflow(flow, epoch_interval=timedelta(seconds=1), recovery_dir=tmp_path / "r",
                     recovery_partitions=1)
    assert f"recovery directory full: {tmp_path / 'r'}" in caplog.text


def test_a_defect_is_raised_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(*_args: object, **_kw: object) -> None:
        raise RuntimeError("a defect")

    monkeypatch.setattr(run, "cli_main", fails)
    monkeypatch.setattr(run, "tune_process", lambda: None)
    flow = Dataflow("defect")
    op.output("out", op.input("in", flow, TestingSource([1])), TestingSink([]))
    with pytest.raises(RuntimeError, match="a defect"):
        run_dataflow(flow, epoch_interval=timedelta(seconds=1), recovery_dir=tmp_path / "r",
                     recovery_partitions=1)


def test_the_cli_exits_74_when_the_recovery_directory_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(_args: object) -> int:
        raise RecoveryStoreError(tmp_path, "SQLite DiskFull (13): database or disk is full",
                                 full=True, free_bytes=0)

    monkeypatch.setattr(cli, "cmd_run", full)
    assert cli.main(["run"]) == 74
    assert f"churnwatch: recovery directory full: {tmp_path}" in capsys.readouterr().err


def test_partitions_are_created_all_or_none(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # A disk filling after the first partition: a restart must not find a partial set
    # (it would take the directory for initialised, and Bytewax refuse it).
    def half(directory: Path, _count: int) -> None:
        (directory / "part-0.sqlite3").write_bytes(b"SQLite format 3\0")
        raise RuntimeError(BYTEWAX_DISK_FULL)

    monkeypatch.setattr(run, "init_db_dir", half)
    directory = tmp_path / "recovery"
    with pytest.raises(RecoveryStoreError):
        recovery_config(directory, 2, shards=8)
    assert sorted(p.name for p in directory.iterdir()) == ["churnwatch-shards"]
    monkeypatch.undo()
    assert recovery_config(directory, 2, shards=8) is not None
    assert sorted(p.name for p in directory.glob("part-*")) == ["part-0.sqlite3",
                                                                "part-1.sqlite3"]


def test_an_empty_shard_marker_is_a_first_start_that_could_not_write_it(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "recovery"
    directory.mkdir()
    (directory / "churnwatch-shards").write_text("")
    assert recovery_config(directory, 1, shards=16) is not None
    assert (directory / "churnwatch-shards").read_text() == "16\n"


class _Counter(StatefulLogic):
    """A running sum whose restore reads a file, as a shard reads its log's."""

    def __init__(self, total: int) -> None:
        self.total = total

    def on_item(self, value: int) -> tuple[list[int], bool]:
        self.total += value
        return [self.total], False

    def snapshot(self) -> int:
        return self.total


@pytest.mark.parametrize(("lost_name", "missing_error", "message"), [
    ("0000/1-ab.entries", ShardLogMissing, "a recovery snapshot names {lost}"),
    ("dictionaries/0000beef.zdict", partial(StateDictionaryMissing, 0xbeef),
     "an account state was packed with dictionary 48879: {lost}, which is missing"),
])
def test_a_restart_missing_a_log_file_or_dictionary_stops_with_the_error_and_exit_74(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, lost_name: str,
    missing_error: Callable[[Path], ShardLogMissing | StateDictionaryMissing], message: str,
) -> None:
    """A shard log file, or a dictionary its states were packed with, gone."""
    monkeypatch.setattr(run, "tune_process", lambda: None)
    directory = tmp_path / "r"
    lost = directory / "shard-log" / lost_name

    def build(resume: int | None) -> _Counter:
        if resume is not None:  # the snapshot names a file that is gone
            raise missing_error(lost)
        return _Counter(0)

    def flow() -> Dataflow:
        built = Dataflow("missing")
        items = op.input("in", built, TestingSource([("k", 1), ("k", 2)]))
        op.output("out", op.stateful("sum", items, build), TestingSink([]))
        return built

    run_dataflow(flow(), epoch_interval=timedelta(0), recovery_dir=directory,
                 recovery_partitions=1)
    with pytest.raises((ShardLogMissing, StateDictionaryMissing)) as missing:  # not the panic
        run_dataflow(flow(), epoch_interval=timedelta(0), recovery_dir=directory,
                     recovery_partitions=1)
    assert missing.value.path == lost and str(lost) in caplog.text
    assert missing.value.exit_code == EXIT_RECOVERY_STORE

    def restart(_args: object) -> int:
        run_dataflow(flow(), epoch_interval=timedelta(0), recovery_dir=directory,
                     recovery_partitions=1)
        return 0

    monkeypatch.setattr(cli, "cmd_run", restart)
    assert cli.main(["run"]) == 74
    assert f"churnwatch: {message.format(lost=lost)}" in capsys.readouterr().err
