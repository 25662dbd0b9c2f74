"""Bounded growth over time: RSS, state and snapshot size over a year of event time.

Run it from the repository root::

    .venv/bin/python -m benchmarks.bench_soak [--accounts 5000 --days 365
        --mean-lifetime-days 30]

It simulates ``--days`` days (from 2025-01-01) of a business whose
``--accounts`` accounts sign up at random over the whole period and each stay
an exponentially distributed lifetime (mean ``--mean-lifetime-days``) before
going silent for good, some after cancelling: after the first months about as
many accounts are active in any 40 days as in any other, while the count of
accounts ever seen keeps growing. Then it replays that history through the
production dataflow (scoring, decisions and recovery on; the outputs to files,
as ``churnwatch replay`` writes them) in one long-lived child process per
configuration, which stops at the end of every calendar month of event time
until the month's effects are in a committed snapshot, and measures there: the
process's RSS, the accounts and risk states the shards hold, the accounts the
inactivity trackers hold, and the bytes of the live snapshots in the recovery
directory. The configurations:

* **eviction**, churnwatch's defaults: idle accounts are forgotten after 40
  days of silence in event time (and on the wall clock);
* **control** (unless ``--skip-control``): ``CHURNWATCH_FEATURE_TTL_SECONDS``
  at a hundred years, so no account is ever forgotten.

It prints, per configuration, a table by month (events so far, accounts ever
seen, accounts active in the last 40 days, accounts held, risk states held,
accounts the inactivity trackers hold, RSS, snapshot bytes) and a verdict: the
growth of RSS, accounts held and snapshot bytes from month 3 to the last month,
as ratios ("flat": each at most 1.2 while the accounts ever seen grow). When
not flat, the shards' and trackers' collections that grew most follow
(``--tracemalloc`` adds the allocation sites that grew most, and slows the
runs). A JSON result goes to ``--out`` (default ``benchmarks/results/soak.json``).
The work itself is in :mod:`benchmarks.harness.soak_runs`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness.soak_runs import DEFAULT_OUT, SoakOptions, run_soak_benchmark


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = SoakOptions()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=defaults.accounts,
                        help=f"sign-ups over the period (default {defaults.accounts:,})")
    parser.add_argument("--days", type=int, default=defaults.days,
                        help=f"days of event time (default {defaults.days})")
    parser.add_argument("--mean-lifetime-days", type=float,
                        default=defaults.mean_lifetime_days,
                        help="mean days an account stays before going silent for good "
                             f"(default {defaults.mean_lifetime_days:g})")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--snapshot-interval", type=float, default=defaults.snapshot_interval,
                        help="seconds per epoch (CHURNWATCH_SNAPSHOT_INTERVAL_SECONDS; default "
                             f"{defaults.snapshot_interval:g}: each month's end waits for one)")
    parser.add_argument("--skip-control", action="store_true",
                        help="no control run without idle expiry")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="diagnostics: trace allocations in the runs and print the sites "
                             "that grew most (slower)")
    parser.add_argument("--run-timeout", type=float, default=defaults.run_timeout,
                        help="seconds a run may take (default 3600)")
    parser.add_argument("--env", action="append", default=[], metavar="CHURNWATCH_X=VALUE",
                        help="diagnostics: override a churnwatch setting in every run "
                             "(repeatable; the figures are then not the defaults')")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="the JSON result (default benchmarks/results/soak.json)")
    parser.add_argument("--keep-state", action="store_true",
                        help="keep the temporary directory (history, recovery, outputs, logs)")
    # Internal: one run (see benchmarks.harness.soak_worker).
    parser.add_argument("--soak-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.soak_worker is not None:
        return args
    for name in ("accounts", "days"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")
    for name in ("mean_lifetime_days", "snapshot_interval", "run_timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    for item in args.env:
        if not item.startswith("CHURNWATCH_") or "=" not in item:
            parser.error(f"--env {item!r}: expected CHURNWATCH_NAME=VALUE")
    return args


def options_from(args: argparse.Namespace) -> SoakOptions:
    return SoakOptions(
        accounts=args.accounts, days=args.days, mean_lifetime_days=args.mean_lifetime_days,
        seed=args.seed, snapshot_interval=args.snapshot_interval,
        control=not args.skip_control, tracemalloc=args.tracemalloc,
        run_timeout=args.run_timeout, env=tuple(args.env), out=args.out,
        keep_state=args.keep_state,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.soak_worker is not None:
        from benchmarks.harness.soak_worker import soak_worker

        return soak_worker(args.soak_worker)
    return run_soak_benchmark(options_from(args))


if __name__ == "__main__":
    sys.exit(main())
