"""The recovery directory's disk fills up mid-stream (issue 12, part 1).

``churnwatch run`` keeps its Bytewax recovery partitions (SQLite) on a small
tmpfs of its own; mid-stream the tmpfs is filled to the last byte. The run
must stop with a clear error (``recovery directory full: <dir> (...)``, exit
status 74) rather than a traceback; a restart while the disk is still full
must stop the same way; and once space is freed, a restart resumes from the
last complete snapshot and ends with exactly the outputs of an uninterrupted
run (every table, the feature hashes, the alert ids on Kafka), no row twice,
and recovery partitions that pass SQLite's integrity check.

Needs root (to mount a tmpfs): skipped, saying so, where mounting is not
permitted.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from churnwatch.settings import Settings
from churnwatch.simulator import produce, simulate
from dataflows.run import EXIT_RECOVERY_STORE
from tests.integration.conftest import create_events_topic
from tests.integration.ops_http import wait_for
from tests.integration.processes import run_churnwatch, start_churnwatch
from tests.integration.test_outages import (
    TABLES,
    alert_count,
    feature_hashes,
    kafka_ids,
    table_ids,
)

pytestmark = pytest.mark.faults

# Room for the resumed run after the fillers go: the shard log keeps every replaced
# file 10 minutes (dataflows.shard_log), 64 small files per 500-ms epoch here, so what
# it needs grows with how long the run takes. Measured without other load: 4.0-4.6 MB
# of files at the end; a CI run under load filled 16 MB.
TMPFS_SIZE = "64m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own, mounted for this test and unmounted after it."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here: cannot give the recovery directory a small disk")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): "
                    f"{mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path, name: str) -> int:
    """Write a file into ``directory`` until its file system has no byte left; its size."""
    path = directory / name
    written = 0
    with path.open("wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            chunk = b"\xa5" * size
            while True:
                try:
                    count = out.write(chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
                written += count or 0
    return written


def integrity(recovery_dir: Path) -> list[str]:
    """SQLite's verdict on every recovery partition ('ok' each, if sound)."""
    verdicts = []
    for part in sorted(recovery_dir.glob("part-*.sqlite3")):
        with contextlib.closing(sqlite3.connect(part)) as conn:
            verdicts.append(f"{part.name}: {conn.execute('PRAGMA integrity_check').fetchone()[0]}")
    return verdicts


def test_a_full_recovery_disk_stops_the_run_clearly_and_a_restart_after_loses_nothing(
    make_settings: Callable[..., Settings], small_disk: Path,
    fault_report: Callable[[str], None],
) -> None:
    tuning = {"input_batch_size": 100, "snapshot_interval": timedelta(milliseconds=500)}
    reference = make_settings("ref", **tuning)
    full = make_settings("full", recovery_dir=small_disk / "recovery", **tuning)
    full = full.replace(topics=replace(full.topics, events=reference.topics.events))
    create_events_topic(reference)
    create_events_topic(full)
    simulation = simulate(accounts=200, days=30, seed=5)
    assert reference.kafka_bootstrap
    produce(simulation, reference.kafka_bootstrap, reference.topics.events)

    run_churnwatch(reference, "run", "--until-drained")
    expected = table_ids(reference)
    assert len(expected["alerts"]) > 40
    assert reference.recovery_dir
    snapshot_bytes = sum(p.stat().st_size for p in reference.recovery_dir.iterdir())

    recovery_dir = full.recovery_dir
    assert recovery_dir is not None
    proc = start_churnwatch(full, "run", "--until-drained")
    try:
        wait_for(lambda: alert_count(full) >= len(expected["alerts"]) // 5,
                 timeout_s=120, what="the run to be a fifth through")
        assert proc.poll() is None, "the run ended before the disk filled"
        filled = fill(small_disk, "filler-1")
        started = time.monotonic()
        output, _ = proc.communicate(timeout=120)
        stopped_s = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_RECOVERY_STORE, output
    # Whichever write meets the full disk first: SQLite's (the offsets, the shards'
    # snapshots) or a shard log file's (the accounts, dataflows.shard_log).
    assert (f"recovery directory full: {recovery_dir} (SQLite DiskFull" in output
            or f"recovery directory full: {recovery_dir} (No space left on device" in output
            ), output
    assert "Traceback" not in output, output
    written_before = len(table_ids(full)["alerts"])
    assert 0 < written_before < len(expected["alerts"]), "the disk must fill mid-stream"

    # Still full (the stopped run's write-ahead log freed some: fill that too): a
    # restart stops the same clear way, and leaves the snapshot as it was.
    fill(small_disk, "filler-2")
    restarted = start_churnwatch(full, "run", "--until-drained")
    again, _ = restarted.communicate(timeout=120)
    assert restarted.returncode == EXIT_RECOVERY_STORE, again
    assert f"recovery directory full: {recovery_dir}" in again, again

    for filler in small_disk.glob("filler-*"):
        filler.unlink()
    resumed = run_churnwatch(full, "run", "--until-drained")
    drained = next(line for line in resumed.splitlines() if line.startswith("drained: "))
    read = int(dict(item.split("=") for item in drained.split()[1:])["messages"])
    assert 0 < read < len(simulation.messages), "it resumed from a snapshot, not the start"

    found = table_ids(full)
    for table, _ in TABLES:
        assert len(found[table]) == len(set(found[table])), f"{table}: a row twice"
        assert set(found[table]) == set(expected[table]), f"{table}: rows lost or added"
    assert feature_hashes(full) == feature_hashes(reference)
    assert set(kafka_ids(full, full.topics.alerts, "alert_id")) == set(expected["alerts"])
    verdicts = integrity(recovery_dir)
    assert verdicts and all(v.endswith(": ok") for v in verdicts), verdicts
    fault_report(f"recovery disk ({TMPFS_SIZE} tmpfs; the uninterrupted run's snapshots took "
          f"{snapshot_bytes / 1e6:.1f} MB) filled with {filled / 1e6:.1f} MB at "
          f"{written_before} of {len(expected['alerts'])} alerts: stopped {stopped_s:.1f} s "
          f"later with exit {EXIT_RECOVERY_STORE}; a restart on the full disk stopped the same "
          f"way; after freeing it, the restart read {read} of {len(simulation.messages)} "
          f"messages and every table equals the uninterrupted run's; partitions sound")
