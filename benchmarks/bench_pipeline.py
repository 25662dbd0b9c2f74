"""End-to-end benchmark of churnwatch: throughput, scaling, rows written, alert latency, memory.

Run it from the repository root (``make bench`` runs it with the defaults)::

    .venv/bin/python -m benchmarks.bench_pipeline [--events 1000000 --accounts 20000
        --partitions 8 --processes 2 --rate 10000 --latency-seconds 30]

On one embedded :class:`~churnwatch.localstack.LocalStack` (Kafka-protocol
broker, Redis, PostgreSQL on loopback) it simulates about ``--events`` valid
events once and produces them once to an events topic of ``--partitions``
partitions (both outside the clock), then measures, in this order:

1. **floor**: a minimal Bytewax flow over the same topic with the same Kafka
   input as production (``EventsSource``: same consumer config, batch size,
   ``tail=False``) that only reads, ``orjson.loads`` every value and counts.
   It runs as a cluster of ``--processes`` processes (this script in
   ``--floor-worker`` mode) and once more with one process;
2. **reference** (unless ``--skip-reference``): the practical ceiling, a
   minimal hand-written confluent-kafka loop doing churnwatch's core job over
   the same topic (this script in ``--reference-worker`` mode, see
   :mod:`benchmarks.harness.reference`): ``assign()`` and ``consume()`` batches
   to partition EOF, churnwatch's own validator with the production limits,
   dead letters to a DLQ topic, dedupe by ``event_id`` and daily counts per
   event type per account, one coalesced Redis HSET per touched account every
   second in one pipeline, tier-1 alerts to an alerts topic. It runs as
   ``--processes`` processes (partition p to process p % P) and once more with
   one process, with output topics and a Redis key prefix of its own;
3. **full**: ``churnwatch run --until-drained --processes P`` over the same
   topic, with its own output topics, schema, Redis key prefix and recovery
   directory. Its ``/metrics`` (one port per process) and the RSS/CPU of its
   processes are sampled every ``--sample-interval`` seconds. Once it has
   exited, the rows of its ``risk_scores``, ``decisions`` and ``alerts`` tables
   are counted, also per 1,000 valid events (duplicates included, as
   churnwatch counts them);
4. **full, 1 process** (when P > 1, unless ``--skip-one-process``): the same
   with ``--processes 1``, for the scaling "full, P processes / 1 process";
5. **scoring off** (unless ``--skip-scoring-off``): the same with P processes
   and ``CHURNWATCH_MODEL_DIR=off CHURNWATCH_POLICY=off`` (after any
   ``--env``): no scoring, hence no decisions, everything else as in production;
6. **latency** (unless ``--skip-latency``): ``churnwatch run --processes P``
   tailing a new topic; once every process answers ``/readyz``, a fresh
   simulation is produced at ``--rate`` events/s for ``--latency-seconds``, and
   the ``churnwatch_alert_latency_seconds{since="ingest"}`` histograms (broker
   timestamp of the triggering event to the alert's acknowledged write on
   ``churn.alerts``) give p50/p99 per tier, interpolated linearly within the
   histogram buckets;
7. **replay** (unless ``--skip-replay``): ``churnwatch simulate`` writes a long,
   busy history to a file (``--replay-accounts`` 5,000 over ``--replay-days``
   182 from 2026-05-01, about 6.2M messages; untimed), and ``churnwatch replay
   --events F --out D --processes P`` replays it, timed from start to exit
   (:mod:`benchmarks.harness.replay_run`). Its score rows per 1,000 events are
   those of the history the scores-on-change target was set on.

Throughput figures count input *messages* per second (every message read,
parsed and validated: valid events plus the ~1 % duplicates and ~0.2 %
malformed messages of the simulation), the same unit for the floor, the
reference and the full pipeline, so their ratios ("full / floor", "full /
reference", both from the same run) hold on a noisy machine. "Sustained" is
the rate between the first and the last observed progress (start-up and
shutdown excluded); "wall" divides by the whole run, process start to exit
included. With ``--repeat N`` phases 1 to 5 alternate N times and the medians
are reported. The targets (sustained rates): full pipeline >= 50,000 events/s;
scoring and decisions off >= 100,000 events/s; full, 2 processes / 1 process
>= 1.7; score rows per 1,000 events <= 70 (printed for the 7-day topic and for
the replayed history); tier-1 p99 <= 250 ms at 10,000 events/s; the replay
<= 2 minutes; full pipeline / hand-written reference >= 50 %.

It prints a table (with the wall time of each phase, summed over the repeats),
and writes ``result.json`` and ``chart.png`` (throughput
over the full run; tier-1/tier-2 p99 over the latency phase) to ``--out-dir``.
The work itself is in :mod:`benchmarks.harness.pipeline`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness import (
    DEFAULT_OUT_DIR,
    TARGET_TIER1_RATE,
    PipelineOptions,
    floor_worker,
    reference_worker,
    run_pipeline_benchmark,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="valid events to simulate, about (default 1,000,000)")
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=8, help="of the events topic")
    parser.add_argument("--processes", type=int, default=2,
                        help="Bytewax processes, floor, reference and full alike (default 2)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=int, default=TARGET_TIER1_RATE,
                        help="events/s produced during the latency phase (default 10000)")
    parser.add_argument("--latency-seconds", type=float, default=30.0,
                        help="how long the latency phase produces (default 30)")
    parser.add_argument("--skip-latency", action="store_true",
                        help="no latency phase (and no tier-1 p99 row)")
    parser.add_argument("--skip-reference", action="store_true",
                        help="no hand-written reference run (and no full/reference ratio)")
    parser.add_argument("--skip-one-process", action="store_true",
                        help="no full run with 1 process (and no P / 1 process scaling); "
                             "there is none when --processes is 1")
    parser.add_argument("--skip-scoring-off", action="store_true",
                        help="no full run with scoring and decisions off "
                             "(CHURNWATCH_MODEL_DIR=off CHURNWATCH_POLICY=off)")
    parser.add_argument("--skip-replay", action="store_true",
                        help="no replay of a long history from a file (and no replay rows)")
    parser.add_argument("--replay-accounts", type=int, default=5_000,
                        help="accounts of the replayed history (default 5000)")
    parser.add_argument("--replay-days", type=int, default=182,
                        help="days of the replayed history, from 2026-05-01 (default 182)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="floor, reference and full runs, alternating; medians are "
                             "reported when > 1")
    parser.add_argument("--batch-size", type=int, default=5_000,
                        help="Kafka input batch size, floor and full (default 5000)")
    parser.add_argument("--sample-interval", type=float, default=1.0,
                        help="seconds between /metrics and RSS samples (default 1)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="where result.json and chart.png go (default benchmarks/results)")
    parser.add_argument("--env", action="append", default=[], metavar="CHURNWATCH_X=VALUE",
                        help="diagnostics: override a churnwatch setting in the full and "
                             "latency runs (repeatable; the figures are then not the defaults; "
                             "the scoring-off run turns scoring off after them)")
    parser.add_argument("--keep-state", action="store_true",
                        help="keep the temporary directory (stack data, logs) at the end")
    # Internal: one process of the floor cluster (see benchmarks.harness.floor).
    parser.add_argument("--floor-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--addresses", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--topic", default=None, help=argparse.SUPPRESS)
    # Internal: one process of the reference (see benchmarks.harness.reference); its
    # settings come from CHURNWATCH_* variables, with --process-id and --processes.
    parser.add_argument("--reference-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_worker:
        if args.processes < 1 or not 0 <= (args.process_id or 0) < args.processes:
            parser.error("--reference-worker needs 0 <= --process-id < --processes")
        return args
    if args.floor_worker:
        if not (args.bootstrap and args.topic):
            parser.error("--floor-worker needs --bootstrap and --topic")
        return args
    positive = ("events", "accounts", "partitions", "processes", "rate", "repeat", "batch_size",
                "replay_accounts", "replay_days")
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.latency_seconds <= 0 or args.sample_interval <= 0:
        parser.error("--latency-seconds and --sample-interval must be positive")
    for item in args.env:
        if not item.startswith("CHURNWATCH_") or "=" not in item:
            parser.error(f"--env {item!r}: expected CHURNWATCH_NAME=VALUE")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reference_worker:
        import os

        from churnwatch.settings import Settings

        reference_worker(Settings.from_env(os.environ), args.process_id or 0, args.processes)
        return 0
    if args.floor_worker:
        return floor_worker(args.bootstrap, args.topic, args.batch_size, args.process_id,
                            args.addresses)
    fields = dataclasses.fields(PipelineOptions)
    return run_pipeline_benchmark(PipelineOptions(**{f.name: getattr(args, f.name)
                                                     for f in fields}))


if __name__ == "__main__":
    sys.exit(main())
