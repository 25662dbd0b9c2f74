"""The online feature store's cost per account write, on a real Redis.

Run it from the repository root::

    .venv/bin/python -m benchmarks.bench_feature_store [--accounts 1000] [--batches 20]
        [--repeat 5] [--redis-url URL]

The dataflow's Redis sink hands :meth:`~featurestore.redis_store.RedisFeatureStore.write_batch`
one update per account that moved since the last flush: on the 7-day benchmark
about 0.17 per event, and the sink took about a tenth of the workers' CPU there
(``make bench``'s stage table). Here updates of the shipped feature set's
vectors (counts and real values, as the simulator's accounts give them) are
written ``--accounts`` per batch, each batch newer than the last, through the
store's guarded write, to an embedded Redis (or ``--redis-url``'s; the keys are
under a prefix of their own and removed afterwards).

It prints, per account written, the client's CPU time (this process:
building the commands, redis-py, reading the replies) and the wall time (with
Redis's own work and the round trips), each the median of ``--repeat`` passes
with their range; and a digest of every hash as Redis holds it after the
passes: two versions of the store that print the same digest stored the same
fields and values. It prints figures; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import redis

from churnwatch.localstack import LocalStack
from churnwatch.settings import Settings
from featurestore.definitions import load_definitions
from featurestore.redis_store import FeatureUpdate, RedisFeatureStore


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000, help="accounts per batch")
    parser.add_argument("--batches", type=int, default=20, help="batches per pass")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes (default 5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis-url", default=None, help="default: an embedded Redis")
    args = parser.parse_args(argv)
    if min(args.accounts, args.batches, args.repeat) < 1:
        parser.error("--accounts, --batches and --repeat must be positive")
    return args


def updates(names: Sequence[str], accounts: int, batches: int, seed: int
            ) -> list[list[FeatureUpdate]]:
    """``batches`` batches of one update per account, each batch an hour newer: most
    values small counts (whole numbers), some real (rates, amounts), some zero."""
    rng = random.Random(seed)

    def value() -> float:
        kind = rng.random()
        if kind < 0.35:
            return 0.0
        if kind < 0.8:
            return float(rng.randint(1, 40))
        return rng.random() * rng.choice((1.0, 30.0, 500.0))

    start = 1_790_000_000.0
    return [
        [FeatureUpdate("bench", f"acct-{account}", tuple(value() for _ in names),
                       start + batch * 3600.0)
         for account in range(accounts)]
        for batch in range(batches)
    ]


def one_pass(store: RedisFeatureStore, batches: list[list[FeatureUpdate]]
             ) -> tuple[float, float]:
    """Seconds of this process's CPU and of wall time to write every batch."""
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        store.write_batch(batch)
    return time.process_time() - cpu, time.perf_counter() - wall


def digest(client: redis.Redis, prefix: str) -> tuple[int, str]:
    """How many hashes there are under ``prefix``, and a digest of their fields."""
    keys = sorted(client.scan_iter(match=f"{prefix}:*", count=1_000))
    sha = hashlib.sha256()
    for key in keys:
        fields: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]
        own = key.removeprefix(prefix.encode())  # the prefix is this run's own
        sha.update(own + b"\n" + b"\n".join(k + b"=" + v for k, v in sorted(fields.items())))
    return len(keys), sha.hexdigest()[:16]


def delete_keys(client: redis.Redis, prefix: str) -> None:
    """Every hash under ``prefix``."""
    for key in client.scan_iter(match=f"{prefix}:*", count=1_000):
        client.delete(key)


def measure(url: str, args: argparse.Namespace) -> None:
    feature_set = load_definitions()
    client = redis.Redis.from_url(url)
    prefix = f"cwbench{uuid.uuid4().hex[:8]}"
    store = RedisFeatureStore(client, feature_set.names, feature_set.version,
                              timedelta(days=1), prefix=prefix)
    batches = updates(feature_set.names, args.accounts, args.batches, args.seed)
    writes = args.accounts * args.batches
    try:
        one_pass(store, batches[:2])  # the script loaded, the connection made
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(args.repeat):
            delete_keys(client, prefix)
            spent, elapsed = one_pass(store, batches)
            cpu.append(spent / writes * 1e6)
            wall.append(elapsed / writes * 1e6)
        hashes, sha = digest(client, prefix)
    finally:
        delete_keys(client, prefix)
        client.close()
    print(f"{writes:,} account writes of {len(feature_set.names)} features "
          f"({args.accounts:,} per batch); median of {args.repeat} passes")
    for name, samples in (("client CPU", cpu), ("wall", wall)):
        spread = f"{min(samples):.1f}-{max(samples):.1f}"
        print(f"  {name:<11} {statistics.median(samples):6.1f} us per account write "
              f"(range {spread})")
    print(f"stored: {hashes:,} hashes, sha256 {sha}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.redis_url:
        measure(args.redis_url, args)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-feature-store-") as folder:
        # Only Redis is started: the other two are given (and never used here).
        given = Settings(kafka_bootstrap="unused:9092", database_url="postgresql://unused")
        with LocalStack(given, Path(folder)) as settings:
            assert settings.redis_url
            measure(settings.redis_url, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
