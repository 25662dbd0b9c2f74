"""The account shards' CPU per event, in process, in the 7-day benchmark's shape.

Run it from the repository root::

    .venv/bin/python -m benchmarks.bench_shards [--accounts 6000] [--days 7] [--repeat 3]

``make bench`` measures the whole pipeline: its figures move with the servers
and the other process sharing the two cores, by several percent from run to
run, more than most single changes to the kernel are worth. Here no Kafka,
Bytewax dataflow or server runs: a simulated history's valid events, parsed as
the parse step does, go through the dataflow's shards (64 by default, each an
:class:`~dataflows.shard.AccountShard` configured by
:func:`~dataflows.flow.shard_config_of` as ``churnwatch run`` with an accounts
table and recovery, the shard log in a temporary folder; the environment's
``CHURNWATCH_*`` settings apply, e.g. ``CHURNWATCH_SHARDS``), batch by batch, with
the input partition's day closes where the parse step puts them (the rescoring
of silent accounts), and the flushes and the epochs' snapshots at the
benchmark's pace (no inactivity signals: they come from the input partitions'
trackers, outside the shards). The shape follows the 7-day benchmark's, scaled
to ``--accounts``: it reads 5,000 messages per poll with 20,000 accounts (a
batch is a quarter of the accounts), an epoch of 10 s holds about 7.5 events
per account and a flush of 5 s about 4. ``--epoch-events`` sets the events per
account per epoch (the flush half an epoch): below one, most events find their
account untouched since the last epoch, as on a live stream of many accounts.

It prints microseconds per event of processing (kernels, scoring and
decisions), flushing and snapshotting, each the median of ``--repeat`` passes
with their range, the outputs' counts, a digest of the published scores, and a
digest of every output (each item's repr: feature writes, account records,
alerts, decisions, scores, ...): two versions of the kernel that print the same
digests produced the same scores and the same outputs. It prints figures; it
asserts nothing about speed. For where the time goes, count instructions with
callgrind (README, Speed) or see the compiled functions in ``py-spy record
--native`` of it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from churnwatch.settings import Settings
from churnwatch.simulator import MessageKind, simulate
from churnwatch.wiring import FlowConfig, flow_config
from dataflows.collector import settle, unsettle
from dataflows.flow import shard_config_of
from dataflows.run import tune_process
from dataflows.shard import (
    AccountShard,
    DayClosed,
    ShardItem,
    ShardOutputs,
    shard_of,
)
from dataflows.shard_log import ShardLog
from schemas.clock import DayCloser
from schemas.event import Event, EventLimits, parse_event

START = datetime(2026, 11, 1, tzinfo=UTC)
# The 7-day benchmark's pace, per account: a poll reads 5,000 of 20,000 accounts'
# messages, an epoch (10 s at about 16,000 events/s) about 7.5 events per account, a
# flush (5 s) about half as many.
BATCH_PER_ACCOUNT = 0.25
EPOCH_PER_ACCOUNT = 7.5
FLUSH_PER_EPOCH = 0.53
STAGES = ("process", "flush", "snapshot")
# Every list of outputs a shard hands on: their digest (each item's repr, sorted) says
# two versions produced the same outputs, not only the same scores.
OUTPUT_LISTS = tuple(f.name for f in fields(ShardOutputs) if f.default_factory is list)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=6_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (default 3)")
    parser.add_argument(
        "--epoch-events", type=float, default=EPOCH_PER_ACCOUNT,
        help="events per account per epoch (default 7.5, the 7-day benchmark's pace; "
             "below 1, a live stream's, where most events find their account untouched "
             "since the last epoch)")
    args = parser.parse_args(argv)
    if min(args.accounts, args.days, args.repeat) < 1 or args.epoch_events <= 0:
        parser.error("--accounts, --days, --repeat and --epoch-events must be positive")
    return args


def history(flow: FlowConfig, accounts: int, days: int, seed: int) -> list[Event | DayClosed]:
    """The simulated history's valid events as the parse step makes them, one input
    partition's, with its day closes before the events that close them."""
    simulation = simulate(accounts=accounts, days=days, seed=seed, start=START)
    now = START + timedelta(days=days, hours=1)  # a replay's clock: nothing in the future
    limits = EventLimits()
    closer = DayCloser(flow.account.clock)
    items: list[Event | DayClosed] = []
    for message in simulation.messages:
        if message.kind == MessageKind.VALID:
            event = parse_event(message.value, now, limits, partition=0)
            if isinstance(event, Event):
                items.extend(DayClosed(0, day) for day in
                             closer.observe(event.event_time.timestamp()))
                items.append(event)
    return items


def one_pass(flow: FlowConfig, stream: list[Event | DayClosed], accounts: int,
             folder: Path, epoch_events: float = EPOCH_PER_ACCOUNT,
             ) -> tuple[dict[str, float], Counter[str], str]:
    """The stream through fresh shards, configured as the dataflow's: seconds per stage,
    output counts, scores' digest."""
    assert flow.scoring is not None
    clock = [START + timedelta(days=30)]
    config = shard_config_of(flow, accounts_table=True, log=ShardLog(folder, timedelta(0)))
    held = [AccountShard(config, lambda: clock[0]) for _ in range(config.shards)]
    batch = max(1, round(accounts * BATCH_PER_ACCOUNT))
    epoch = max(1, round(accounts * epoch_events / batch))  # in batches
    flush = max(1, round(accounts * epoch_events * FLUSH_PER_EPOCH / batch))
    seconds = dict.fromkeys(STAGES, 0.0)
    counts: Counter[str] = Counter()
    digest = hashlib.sha256()
    outputs: list[str] = []

    def count(out: ShardOutputs) -> None:
        counts["scores"] += len(out.scores)
        counts["feature writes"] += len(out.features)
        counts["account rows"] += len(out.accounts)
        counts["alerts"] += len(out.alerts)
        counts["decisions"] += len(out.decided)
        for score in out.scores:
            digest.update(f"{score.score_id} {score.risk!r} {score.tier}\n".encode())
        for name in OUTPUT_LISTS:
            outputs.extend(f"{name} {item!r}\n" for item in getattr(out, name))

    for number, first in enumerate(range(0, len(stream), batch), 1):
        # as the parse step groups a poll: a day close goes to every shard, in its place
        by_shard: list[list[ShardItem]] = [[] for _ in held]
        for item in stream[first:first + batch]:
            if isinstance(item, DayClosed):
                for items in by_shard:
                    items.append(item)
            else:
                by_shard[shard_of(item.subject, config.shards)].append(item)
        started = time.perf_counter()
        outs = []
        for index, items in enumerate(by_shard):
            if items:
                outs.append(held[index].process([items]))
                settle()  # as ShardLogic.on_batch does
        seconds["process"] += time.perf_counter() - started
        if number % flush == 0:
            clock[0] += config.flush_interval + timedelta(seconds=1)
            started = time.perf_counter()
            outs += [shard.on_notify() for shard in held]
            seconds["flush"] += time.perf_counter() - started
        for out in outs:
            count(out)
        if number % epoch == 0:
            started = time.perf_counter()
            for shard in held:
                shard.snapshot()
            seconds["snapshot"] += time.perf_counter() - started
    # sorted: a flush writes its accounts' features in the order of a set of strings,
    # which differs from process to process (hash randomisation)
    everything = hashlib.sha256("".join(sorted(outputs)).encode()).hexdigest()[:16]
    return seconds, counts, f"{digest.hexdigest()[:16]}; outputs sha256 {everything}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tune_process()
    flow = flow_config(Settings.from_env(os.environ))  # CHURNWATCH_SHARDS, ... apply
    stream = history(flow, args.accounts, args.days, args.seed)
    events = sum(1 for item in stream if type(item) is not DayClosed)
    timings: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
    outputs: set[tuple[tuple[tuple[str, int], ...], str]] = set()
    for _ in range(args.repeat):  # every pass tuned and settling alike (unsettle stops it)
        folder = Path(tempfile.mkdtemp(prefix="bench-shards-"))
        try:
            seconds, counts, digest = one_pass(flow, stream, args.accounts, folder,
                                               args.epoch_events)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        for stage, spent in seconds.items():
            timings[stage].append(spent / events * 1e6)
        timings["total"].append(sum(seconds.values()) / events * 1e6)
        outputs.add((tuple(sorted(counts.items())), digest))
    unsettle()
    print(f"{events:,} events of {args.accounts:,} accounts over {args.days} days "
          f"(seed {args.seed}), {flow.shards} shards, {args.epoch_events:g} events per "
          f"account per epoch; median of {args.repeat} passes")
    for stage, samples in timings.items():
        spread = f"{min(samples):.2f}-{max(samples):.2f}"
        print(f"  {stage:<10} {statistics.median(samples):7.2f} us/event  (range {spread})")
    for counted, digest in sorted(outputs):
        figures = ", ".join(f"{name} {value:,}" for name, value in counted)
        print(f"outputs: {figures}; scores sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
