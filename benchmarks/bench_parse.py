"""The input validator's cost per message: ``parse_event`` on simulated messages.

Run it from the repository root::

    .venv/bin/python -m benchmarks.bench_parse [--messages 50000] [--repeat 5]
        [--accounts 2000] [--days 10] [--seed 7]

It simulates a stream with :func:`churnwatch.simulator.simulate`, then times
:func:`schemas.event.parse_event` over

- its valid messages (duplicates included: they are valid events), the first
  ``--messages`` of them, the stream repeated if it is shorter;
- its malformed ones;
- the same valid messages as Python's ``json.dumps`` writes them (a space
  after each separator: not the bytes orjson writes, so the duplicate-key
  check cannot take its cheapest way);

and ``orjson.loads`` alone over the valid messages: the floor no validator can
go under. Each figure is the median of ``--repeat`` passes, in microseconds per
message; the loops are interleaved so drift hits them alike.

It also prints a digest of every verdict (the event, or the rejection's reason
and detail): two versions of the validator that print the same digest judged
every message alike. It prints figures; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import cycle, islice

import orjson

from churnwatch.simulator import MessageKind, simulate
from schemas.event import Event, EventLimits, Rejection, parse_event

# Enough malformed messages to time (the simulator's default rate, 0.2 %, gives a
# few dozen per 10k); the valid ones are timed apart, so the mix does not matter.
MALFORMED_RATE = 0.02


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--messages", type=int, default=50_000, help="valid messages timed (default 50000)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed passes (default 5)")
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if min(args.messages, args.repeat, args.accounts, args.days) < 1:
        parser.error("--messages, --repeat, --accounts and --days must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    simulation = simulate(
        accounts=args.accounts, days=args.days, seed=args.seed, malformed_rate=MALFORMED_RATE
    )
    valid_stream = [m.value for m in simulation.messages if m.kind != MessageKind.MALFORMED]
    valid = list(islice(cycle(valid_stream), args.messages))
    malformed = [m.value for m in simulation.messages if m.kind == MessageKind.MALFORMED]
    spaced = [json.dumps(orjson.loads(raw)).encode() for raw in valid]
    # After the simulated window, as a replay would read it: no valid event is in the future.
    now = simulation.start + timedelta(days=simulation.days, hours=1)
    limits = EventLimits()

    def parse_all(values: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            for raw in values:
                parse_event(raw, now, limits)

        return run

    def decode_all() -> None:
        loads = orjson.loads
        for raw in valid:
            loads(raw)

    loops = {
        "parse_event, valid": (parse_all(valid), len(valid)),
        "parse_event, malformed": (parse_all(malformed), len(malformed)),
        "parse_event, json.dumps-written": (parse_all(spaced), len(spaced)),
        "orjson.loads alone (floor)": (decode_all, len(valid)),
    }
    timings: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.repeat):
        for name, (loop, count) in loops.items():
            started = time.perf_counter()
            loop()
            timings[name].append((time.perf_counter() - started) / max(count, 1) * 1e6)

    print(
        f"{len(valid)} valid and {len(malformed)} malformed messages "
        f"({args.accounts} accounts, {args.days} days, seed {args.seed}), "
        f"median of {args.repeat} passes"
    )
    for name, samples in timings.items():
        spread = f"{min(samples):.2f}-{max(samples):.2f}"
        print(f"  {name:<34} {statistics.median(samples):6.2f} us/message  (range {spread})")
    spaced_stream = [json.dumps(orjson.loads(raw)).encode() for raw in valid_stream]
    events, rejections, digest = _verdicts(valid_stream + malformed + spaced_stream, now, limits)
    print(f"verdicts: {events} events, {rejections} rejections, sha256 {digest}")
    return 0


def _verdicts(values: list[bytes], now: datetime, limits: EventLimits) -> tuple[int, int, str]:
    """How many events and rejections, and a digest of every verdict in order."""
    digest = hashlib.sha256()
    events = rejections = 0
    for raw in values:
        result = parse_event(raw, now, limits)
        if isinstance(result, Event):
            events += 1
        elif isinstance(result, Rejection):
            rejections += 1
        digest.update(repr(result).encode())
        digest.update(b"\n")
    return events, rejections, digest.hexdigest()[:16]


if __name__ == "__main__":
    sys.exit(main())
