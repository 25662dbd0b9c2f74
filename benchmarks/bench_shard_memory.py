"""Where a shard's memory goes over epochs: RSS per account, and CPython's small-object
allocator (pymalloc) split into blocks in use and blocks freed but held.

Run it from the repository root::

    .venv/bin/python -m benchmarks.bench_shard_memory [--accounts 100000 --epochs 12]

In this process, without Kafka or servers: ``--shards`` account shards with the
shipped definitions, scoring, decisions, the warm cap's share of each and a shard
log in a temporary folder (as ``churnwatch run`` with recovery). The first two
epochs give every account a login; each later one gives a login to a random fifth
of them (a live stream, where most accounts are cold). After each epoch every
shard snapshots and flushes. It prints RSS growth per account after each epoch
(and the packed states' bytes in it),
then pymalloc's statistics (``sys._debugmallocstats``): bytes in allocated blocks
(objects alive), in available blocks (freed, held in arenas still in use), and the
arenas' total; and the C allocator's (glibc's ``mallinfo2``): its heap, the bytes
in use and free in it, and the bytes in blocks mapped apart. The allocator is
tuned as a run tunes it (:func:`dataflows.run.tune_allocator`), unless
``--default-allocator``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from churnwatch.settings import Settings
from churnwatch.wiring import flow_config
from dataflows.run import tune_allocator
from dataflows.shard import AccountShard, ShardConfig, ShardItem, shard_of
from dataflows.shard_log import ShardLog
from dataflows.state_codec import DICTIONARY_FOLDER, SUFFIX
from schemas.event import Event

START = datetime(2026, 10, 1, tzinfo=UTC)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pymalloc_figures() -> dict[str, int]:
    """pymalloc's totals, read from ``sys._debugmallocstats`` (it writes to fd 2)."""
    with tempfile.TemporaryFile(mode="w+") as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read()
    figures = {}
    for name, label in (("allocated", "bytes in allocated blocks"),
                        ("available", "bytes in available blocks"),
                        ("arenas", "arenas allocated current")):
        found = re.search(rf"# {label}\s*=\s*([\d,]+)", text)
        figures[name] = int(found.group(1).replace(",", "")) if found else 0
    return figures


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def glibc_figures() -> dict[str, int] | None:
    """glibc's totals (``mallinfo2``, glibc 2.33 and later), or None elsewhere."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {"heap": info.arena, "in_use": info.uordblks, "free": info.fordblks,
            "mapped": info.hblkhd}


def login(account: int, number: int, epoch: int) -> Event:
    return Event(
        event_id=f"e{number}", tenant_id="acme", account_id=f"acct-{account}",
        user_id=f"u-{account}", event_type="user.login",
        event_time=START + timedelta(minutes=30 * epoch + account % 7), source="bench",
        attributes={},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--shards", type=int, default=16, help="shards in this process")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's allocator as it starts (no tune_allocator)")
    args = parser.parse_args(argv)
    if not args.default_allocator:
        tune_allocator()
    settings = Settings()
    flow = flow_config(settings)
    assert flow.scoring is not None
    now = [datetime.now(UTC)]
    folder = Path(tempfile.mkdtemp(prefix="shard-memory-"))
    config = ShardConfig(
        flow.account, idle_ttl=flow.idle_state_ttl, flush_interval=timedelta(seconds=5),
        score=flow.scoring.score, decisions=flow.scoring.decisions,
        policy=flow.scoring.policy, shards=args.shards,
        warm_accounts=max(1, settings.warm_accounts // settings.shards),
        log=ShardLog(folder, timedelta(0)),
    )
    shards = [AccountShard(config, lambda: now[0]) for _ in range(args.shards)]
    gc.collect()
    start = rss_bytes()
    chosen = random.Random(1)
    number = 0
    print(f"{args.accounts:,} accounts in {args.shards} shards; warm cap "
          f"{config.warm_accounts} per shard")
    for epoch in range(args.epochs):
        accounts = (range(args.accounts) if epoch < 2
                    else chosen.sample(range(args.accounts), args.accounts // 5))
        for first in range(0, len(accounts), 5_000):
            by_shard: dict[int, list[ShardItem]] = {}
            for account in accounts[first:first + 5_000]:
                number += 1
                event = login(account, number, epoch)
                by_shard.setdefault(shard_of(event.subject, args.shards), []).append(event)
            for index, events in by_shard.items():
                shards[index].process([events])
        now[0] += timedelta(seconds=10)
        for shard in shards:
            shard.snapshot()
            shard.on_notify()
        gc.collect()
        print(f"epoch {epoch:2d}: RSS +{(rss_bytes() - start) / args.accounts:,.0f} B per "
              f"account; live accounts {sum(shard.warm for shard in shards):,}; packed "
              f"states {sum(shard.state_bytes for shard in shards) / args.accounts:,.0f} B "
              "per account")
    assert config.log is not None
    trained = len(list((folder / DICTIONARY_FOLDER).glob(f"*{SUFFIX}")))
    print(f"states packed with zstd dictionary {config.log.codec.dictionary_id} "
          f"(0: none), the last of {trained} trained (dataflows.state_codec)")
    figures = pymalloc_figures()
    glibc = glibc_figures()
    shutil.rmtree(folder, ignore_errors=True)
    print(f"pymalloc: {figures['arenas']} arenas; blocks in use "
          f"{figures['allocated'] / args.accounts:,.0f} B per account; freed but held "
          f"{figures['available'] / args.accounts:,.0f} B per account")
    if glibc is not None:
        per = {name: value / args.accounts for name, value in glibc.items()}
        print(f"glibc: heap {per['heap']:,.0f} B per account, in use {per['in_use']:,.0f}, "
              f"free {per['free']:,.0f}; mapped apart {per['mapped']:,.0f} B per account")
    return 0


if __name__ == "__main__":
    sys.exit(main())
