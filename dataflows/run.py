"""Run a dataflow in this process, with Bytewax recovery.

Recovery snapshots state and input offsets every epoch into a directory of
SQLite partitions; after a crash, a restart resumes from the last snapshot.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

log = logging.getLogger(__name__)


def recovery_config(directory: Path | None, partitions: int) -> RecoveryConfig | None:
    """Recovery over ``directory``, creating its partitions on first use."""
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob("part-*.sqlite3")):
        init_db_dir(directory, partitions)
        log.info("created %d recovery partition(s) in %s", partitions, directory)
    return RecoveryConfig(directory)


def run_dataflow(
    flow: Dataflow,
    *,
    epoch_interval: timedelta,
    recovery_dir: Path | None,
    recovery_partitions: int,
    workers_per_process: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> None:
    """Run ``flow`` in this process until its input ends (or forever when tailing).

    ``epoch_interval``: how often state and input offsets are snapshot;
    ``recovery_dir`` ``None``: no recovery.
    """
    cli_main(
        flow,
        workers_per_process=workers_per_process,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=epoch_interval,
        recovery_config=recovery_config(recovery_dir, recovery_partitions),
    )
