"""Bounded state and fast restart at scale: memory and disk per account, restart after kill -9.

Run it from the repository root::

    .venv/bin/python -m benchmarks.bench_state [--accounts 1000000 --events-per-account 2
        --partitions 8 --processes 1]

On one embedded :class:`~churnwatch.localstack.LocalStack` (Kafka-protocol
broker, Redis, PostgreSQL on loopback), with churnwatch's default settings
(scoring, decisions and recovery on; each run with its own topics, schema,
Redis key prefix and recovery directory):

1. **baseline**: ``churnwatch run`` tailing an empty topic; its peak RSS is what
   the process costs with no account state;
2. **workload** (untimed): ``--accounts`` distinct accounts with
   ``--events-per-account`` valid events each (logins and feature uses; every
   account's first event, then every account's second ...), generated directly
   rather than simulated, produced to a fresh topic of ``--partitions``;
3. **load**: ``churnwatch run`` tailing that topic, its RSS and ``/metrics``
   sampled, until it has read every message and a committed snapshot epoch
   holds them all (its input offsets are the topic's end). Reported: peak RSS,
   RSS per account (peak minus the baseline, over the accounts; also from the
   settled RSS before the kill), the recovery directory's size on disk and the
   bytes of its live snapshots (the newest row of each state key, by step) per
   account, and Redis memory per account;
4. **restart**: SIGKILL to every process of the run, then the same command again
   with the same recovery directory, and at once one decisive event
   (``billing.payment_failed``) for an existing account. Reported, from the
   restart: ``/readyz`` 200; the event's tier-1 alert on the alerts topic (the
   first output, the figure the restart target is about); its row in
   PostgreSQL (after the account's restored state ran it); the RSS back to 90 %
   of its level before the kill.

It prints a table with the targets (<= 2 KiB of RSS per account, restart <= 10 s,
both at 1M accounts) and writes a JSON result (default
``benchmarks/results/state.json``). Small sizes (``--accounts 20000``) make a
smoke test. The work itself is in :mod:`benchmarks.harness.state_runs`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness.state_runs import DEFAULT_OUT, StateOptions, run_state_benchmark


def parse_args(argv: Sequence[str] | None = None) -> StateOptions:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000,
                        help="distinct accounts (default 1,000,000)")
    parser.add_argument("--events-per-account", type=int, default=2,
                        help="valid events per account (default 2)")
    parser.add_argument("--partitions", type=int, default=8, help="of the events topic")
    parser.add_argument("--processes", type=int, default=1,
                        help="processes of `churnwatch run` (default 1)")
    parser.add_argument("--sample-interval", type=float, default=1.0,
                        help="seconds between RSS and /metrics samples while loading")
    parser.add_argument("--read-timeout", type=float, default=3600.0,
                        help="seconds the load run may take to read every message")
    parser.add_argument("--restart-timeout", type=float, default=600.0,
                        help="seconds the restart is watched at most")
    parser.add_argument("--env", action="append", default=[], metavar="CHURNWATCH_X=VALUE",
                        help="diagnostics: override a churnwatch setting in every run "
                             "(repeatable; the figures are then not the defaults')")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="the JSON result (default benchmarks/results/state.json)")
    parser.add_argument("--keep-state", action="store_true",
                        help="keep the temporary directory (stack data, logs) at the end")
    args = parser.parse_args(argv)
    for name in ("accounts", "events_per_account", "partitions", "processes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("sample_interval", "read_timeout", "restart_timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    for item in args.env:
        if not item.startswith("CHURNWATCH_") or "=" not in item:
            parser.error(f"--env {item!r}: expected CHURNWATCH_NAME=VALUE")
    return StateOptions(accounts=args.accounts, events_per_account=args.events_per_account,
                        partitions=args.partitions, processes=args.processes,
                        sample_interval=args.sample_interval, read_timeout=args.read_timeout,
                        restart_timeout=args.restart_timeout, env=tuple(args.env),
                        out=args.out, keep_state=args.keep_state)


def main(argv: Sequence[str] | None = None) -> int:
    return run_state_benchmark(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
