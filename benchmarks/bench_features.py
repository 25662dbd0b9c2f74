"""Throughput, CPU and memory of the real churnwatch dataflow on the embedded stack.

Run it from the repository root::

    .venv/bin/python -m benchmarks.bench_features --accounts 10000 --days 3 [--profile]
        [--json out.json]

It starts a :class:`~churnwatch.localstack.LocalStack` (Kafka-protocol broker,
Redis, PostgreSQL on loopback), simulates a stream, produces it to a fresh
topic, and only then starts the clock around ``run_pipeline(settings,
tail=False)``: parse, validate, dedupe, windows/features, Redis feature writes,
and the dead-letter, late, alert and Postgres outputs of the production flow,
until the topic is drained. Every run (repeat) gets its own topics, database
schema, Redis key prefix and recovery directory, so runs never see each
other's state.

The measured time includes Bytewax's startup and shutdown. To show it, the
same pipeline first runs once over an empty topic; its wall and CPU time are
reported as "startup" and subtracted in the "excl. startup" rows.

It prints figures; it asserts nothing about speed. The consistency checks at
the end only compare counts (messages read vs produced, dead letters vs
malformed messages, feature hashes vs accounts). The work itself is in
:mod:`benchmarks.harness.dataflow_runs`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness import DataflowOptions, run_dataflow_benchmark
from benchmarks.harness.dataflow_report import PROFILE_TOP


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (default 1)")
    parser.add_argument(
        "--batch-size", type=int, default=5_000, help="Kafka input batch size (default 5000)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the stack and recovery data go (default: a fresh temporary directory, "
        "removed at the end)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"after the timed runs, run once more under cProfile and print the top "
        f"{PROFILE_TOP} functions by tottime",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.accounts < 1 or args.days < 1 or args.batch_size < 1:
        parser.error("--accounts, --days, --repeat and --batch-size must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_dataflow_benchmark(DataflowOptions(**vars(parse_args(argv))))


if __name__ == "__main__":
    sys.exit(main())
