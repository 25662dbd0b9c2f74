"""What recovery costs per account held, in process: restoring the shards, and the input
partitions' absence trackers each epoch and at a restart.

Run it from the repository root::

    .venv/bin/python -m benchmarks.bench_recovery_state [--accounts 1000000]

Without Kafka or servers, with the shipped definitions:

* **shards**: ``--accounts`` accounts, one event each, in ``--shards`` account shards
  (scoring, decisions, the warm cap's share of each, a shard log in a temporary
  folder, as ``churnwatch run`` with recovery); every shard snapshots, then a new
  shard is built from each snapshot, as a restart does. It prints the restore's
  time, and of it the time reading the shard log's files.
* **absence trackers**: the same accounts' activity over ``--partitions`` input
  partitions' trackers, then an epoch in which ``--changed`` of the accounts are
  active again. It prints what an epoch's snapshot of the trackers costs written
  whole into the partition's snapshot (a run without recovery, and every run
  before session 13) and written to the absence log (only what changed), and the
  restart from each.

Figures are wall-clock seconds of this process; read them as ratios (this
machine's speed moves between runs).
"""

from __future__ import annotations

import argparse
import functools
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_shard_memory import login
from churnwatch.settings import Settings
from churnwatch.wiring import FlowConfig, flow_config
from dataflows.absence_log import TrackingLog
from dataflows.collector import paused
from dataflows.run import tune_process
from dataflows.shard import AccountShard, LoggedShard, ShardConfig, ShardItem, shard_of
from dataflows.shard_log import ShardLog
from detectors.inactivity import AbsenceTracking

BATCH = 5_000


def shards(flow: FlowConfig, settings: Settings, accounts: int, count: int,
           folder: Path) -> None:
    assert flow.scoring is not None
    now = datetime.now(UTC)
    config = ShardConfig(
        flow.account, idle_ttl=flow.idle_state_ttl, flush_interval=timedelta(seconds=5),
        score=flow.scoring.score, decisions=flow.scoring.decisions,
        policy=flow.scoring.policy, shards=count,
        warm_accounts=max(1, settings.warm_accounts // count),
        log=ShardLog(folder, timedelta(0)),
    )
    held = [AccountShard(config, lambda: now) for _ in range(count)]
    started = time.perf_counter()
    for first in range(0, accounts, BATCH):
        by_shard: dict[int, list[ShardItem]] = {}
        for account in range(first, min(accounts, first + BATCH)):
            event = login(account, account, 0)
            by_shard.setdefault(shard_of(event.subject, count), []).append(event)
        for index, events in by_shard.items():
            held[index].process([events])
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    snapshots = [shard.snapshot() for shard in held]
    snapshotted = time.perf_counter() - started
    del held
    started = time.perf_counter()
    restored = []
    for snapshot in snapshots:
        with paused():  # as the dataflow restores a shard (dataflows.flow)
            restored.append(AccountShard(config, lambda: now, snapshot))
    restore = time.perf_counter() - started
    assert config.log is not None
    started = time.perf_counter()
    for snapshot in snapshots:
        if isinstance(snapshot, LoggedShard) and snapshot.ref is not None:
            config.log.read(snapshot.ref)
    read = time.perf_counter() - started
    print(f"shards: {sum(len(shard) for shard in restored):,} accounts in {count} shards "
          f"(loaded in {loaded:.1f} s, snapshotted in {snapshotted:.1f} s)")
    print(f"  restore: {restore:.2f} s, of it reading the shard log's files {read:.2f} s")


def trackers(flow: FlowConfig, accounts: int, partitions: int, changed: int,
             folder: Path) -> None:
    feature_set = flow.account.features.feature_set
    rules = [(rule, feature_set[rule.feature].matches) for rule in flow.absences]
    args = (rules, flow.account.allowed_lateness_seconds, flow.feature_version)
    signals = [str(rule.signal_type) for rule in flow.absences]
    held = [AbsenceTracking(*args) for _ in range(partitions)]

    def active(chosen: range, epoch: int) -> None:
        by_partition: dict[int, list[object]] = {}
        for account in chosen:  # an app.* event: the shipped inactivity's activity
            event = login(account, account, epoch)._replace(event_type="app.session")
            by_partition.setdefault(account % partitions, []).append(event)
        for index, events in by_partition.items():
            for first in range(0, len(events), BATCH):
                held[index].track(events[first:first + BATCH])  # type: ignore[arg-type]

    active(range(accounts), 0)
    logs = [TrackingLog(folder / str(index), timedelta(0), signals) for index in range(partitions)]
    started = time.perf_counter()
    for log, tracking in zip(logs, held, strict=True):
        log.snapshot(tracking)
    first = time.perf_counter() - started
    active(range(0, accounts, max(1, accounts // changed)), 1)
    started = time.perf_counter()
    whole = [pickle.dumps(tracking.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)
             for tracking in held]
    whole_s = time.perf_counter() - started
    started = time.perf_counter()
    logged = [pickle.dumps(log.snapshot(tracking), protocol=pickle.HIGHEST_PROTOCOL)
              for log, tracking in zip(logs, held, strict=True)]
    logged_s = time.perf_counter() - started

    def read_logged(index: int, blob: bytes) -> Any:
        return TrackingLog(folder / str(index), timedelta(0), signals).restore(
            pickle.loads(blob))

    def build(read: Any) -> None:
        AbsenceTracking(*args, read)

    whole_parts = _restart_parts([functools.partial(pickle.loads, blob) for blob in whole],
                                 build)
    logged_parts = _restart_parts(
        [functools.partial(read_logged, index, blob) for index, blob in enumerate(logged)],
        build)
    whole_restart, logged_restart = sum(whole_parts), sum(logged_parts)
    print(f"absence trackers: {accounts:,} accounts over {partitions} partitions; "
          f"the first snapshot to the absence log (all of them) {first:.2f} s")
    print(f"  an epoch changing {changed:,}: written whole {whole_s:.2f} s "
          f"({sum(map(len, whole)) / 2**20:.1f} MiB in the snapshots); to the absence log "
          f"{logged_s:.3f} s ({sum(map(len, logged)) / 1024:.1f} KiB in the snapshots)")
    print(f"  restart: from the whole snapshots {whole_restart:.2f} s; from the absence "
          f"log {logged_restart:.2f} s")
    for label, parts in (("whole snapshots", whole_parts), ("absence log", logged_parts)):
        print(f"    {label}: reading {parts[0]:.2f} s, building the trackers {parts[1]:.2f} s, "
              f"freeing what was read {parts[2]:.2f} s")


def _restart_parts(reads: Sequence[Callable[[], Any]], build: Callable[[Any], None]
                   ) -> list[float]:
    """Seconds, summed over the partitions, of reading (each of ``reads``: unpickling a
    snapshot, and the log's files), building the trackers from it, and freeing it."""
    parts = [0.0, 0.0, 0.0]
    for read_one in reads:
        with paused():  # as the dataflow restores a partition's trackers (dataflows.parse)
            started = time.perf_counter()
            read = read_one()
            built = time.perf_counter()
            build(read)
            freed = time.perf_counter()
        del read
        parts = [parts[0] + built - started, parts[1] + freed - built,
                 parts[2] + time.perf_counter() - freed]
    return parts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--changed", type=int, default=20_000,
                        help="accounts active in the trackers' measured epoch")
    parser.add_argument("--skip-shards", action="store_true")
    args = parser.parse_args(argv)
    tune_process()
    settings = Settings()
    flow = flow_config(settings)
    folder = Path(tempfile.mkdtemp(prefix="recovery-state-"))
    try:
        if not args.skip_shards:
            shards(flow, settings, args.accounts, args.shards, folder / "shard-log")
        trackers(flow, args.accounts, args.partitions, min(args.changed, args.accounts),
                 folder / "absence-log")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
