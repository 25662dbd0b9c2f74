"""Run a dataflow in this process, with Bytewax recovery.

Recovery snapshots state and input offsets every epoch into a directory of
SQLite partitions; after a crash, a restart resumes from the last snapshot.
"""

from __future__ import annotations

import gc
import logging
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

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


SHARDS_FILE = "churnwatch-shards"

# Allocations between two young-generation collections (CPython's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Collect cycles less often, and never look at what start-up loaded again.

    The data plane allocates a few objects per event and keeps long-lived state
    (dedupe ids, buckets) per account; with CPython's default thresholds the
    collector ran every 700 allocations and re-scanned that state, 6 % of the
    workers' CPU in a profile of the full pipeline. Reference counting frees
    almost all of it anyway: the state holds no reference cycles.
    """
    gc.collect()
    gc.freeze()  # code, models, policy: loaded once, never garbage
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


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
    directory.mkdir(parents=True, exist_ok=True)
    if shards is not None:
        marker = directory / SHARDS_FILE
        if marker.exists():
            recorded = int(marker.read_text().strip())
            if recorded != shards:
                raise RecoveryLayoutError(directory, recorded, shards)
        else:
            marker.write_text(f"{shards}\n")
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
    shards: int | None = None,
    workers_per_process: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> None:
    """Run ``flow`` in this process until its input ends (or forever when tailing).

    ``epoch_interval``: how often state and input offsets are snapshot;
    ``recovery_dir`` ``None``: no recovery.
    """
    tune_garbage_collector()
    cli_main(
        flow,
        workers_per_process=workers_per_process,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=epoch_interval,
        recovery_config=recovery_config(recovery_dir, recovery_partitions, shards=shards),
    )
