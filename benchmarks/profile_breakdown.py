"""Where the workers' CPU goes: a py-spy profile of a benchmark run, summed by stage.

Record a run with py-spy (``pip install py-spy``; it samples every process of
the run, native frames included), then summarise the churnwatch worker
processes' samples::

    py-spy record --subprocesses --native --rate 50 --format raw -o profile.txt -- \\
        .venv/bin/python -m benchmarks.bench_pipeline --skip-latency
    .venv/bin/python -m benchmarks.profile_breakdown profile.txt

Each sample (one stack of one thread) goes to the first stage, in
:data:`STAGES` order, that one of its frames matches; samples of threads that
were idle (waiting in the Kafka client, sleeping) are counted apart, so the
shares are of the time the workers were busy. Only processes whose command
line contains the ``--process`` text (default ``churnwatch run``) count.

The compiled modules' functions are matched by their C names (``CPyDef_shard___...``),
so a ``--native`` profile of the compiled code sums as one of the sources does. A
thread waiting for the interpreter lock shows, under ``--native``, a libc address
py-spy cannot name below the lock's frame: it counts as idle (:data:`LOCK_WAITS`).
py-spy 0.4 crashed at ``--rate 100`` on a 2-process run here (session 20); 40 to 50
worked.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

# (stage, frame patterns): a frame matches when a pattern occurs in it. Order
# matters: a Redis write inside a shard's flush is a sink, not account logic.
# A compiled module's functions (churnwatch.native) appear in a --native profile as
# CPyDef_<module>___<Class>___<method> (and CPyPy_ for their Python entry points), in
# __native_native.c: matched by "_<module>___" whatever the prefix.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("snapshots (pickling shard state)", ("snapshot (dataflows/", "snapshot (accounts/",
                                          "snapshot (scoring/", "snapshot (decisions/",
                                          "snapshot (detectors/", "snapshot (featurestore/",
                                          "___snapshot (")),
    ("sinks: PostgreSQL", ("sinks/postgres.py", "sinks/decision_store.py", "psycopg")),
    ("sinks: Kafka", ("sinks/kafka.py",)),
    ("sinks: Redis", ("featurestore/redis_store.py", "redis/")),
    ("scoring (model, risk, publication)", ("scoring/", "onnxruntime", "_risk___",
                                            "_reasons___")),
    ("decisions", ("decisions/", "_engine___")),
    ("account kernels (dedupe, buckets, features, detectors)",
     ("accounts/", "featurestore/", "detectors/", "dataflows/shard.py", "_shard___",
      "_state_codec___", "_account_table___", "_processor___", "_dedupe___", "_debounce___",
      "_record___", "_aggregation___", "_tier1___", "_usage___", "_lifecycle___",
      "_inactivity___")),
    # before parse: the compiled input partitions (dataflows.parse) call the reads
    ("Kafka input", ("dataflows/kafka_input.py", "bytewax/connectors/kafka")),
    ("parse and validate", ("dataflows/parse.py", "schemas/event.py", "_parse___",
                            "_event___", "_files___")),
    ("metrics", ("prometheus_client", "dataflows/metrics.py")),
    ("other churnwatch Python (routing, operators' functions)",
     ("dataflows/", "schemas/", "churnwatch/")),
    ("Bytewax Python (operators, sinks)", ("bytewax/",)),
)
# Leaf frames of a thread that waits rather than works.
IDLE = ("epoll_wait", "poll (", "select (", "sleep", "pthread_cond", "futex", "nanosleep",
        "cnd_timedwait", "sem_wait", "__GI___poll", "wait (threading.py")
# A thread waiting for the interpreter lock (or another lock) under --native: its leaf
# is an address in libc py-spy cannot name, below one of these frames. Counted busy, it
# was about a fifth of the samples of a 2-process run.
LOCK_WAITS = ("GILGuard::acquire", "take_gil", "PyThread_acquire_lock", "PyEval_RestoreThread",
              "cnd_timedwait", "pthread_cond")
_UNNAMED_LIBC = re.compile(r"^0x[0-9a-f]+ \(libc\.so")
OTHER = "Bytewax engine and interpreter (native, outside any Python frame above)"
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def breakdown(lines: Iterable[str], process_filter: str) -> tuple[Counter[str], int]:
    """Busy samples per stage, and idle samples, of the matching processes."""
    stages: Counter[str] = Counter()
    idle = 0
    for line in lines:
        match = _LINE.match(line.rstrip("\n"))
        if match is None:
            continue
        frames = match["stack"].split(";")
        # py-spy --subprocesses roots each stack in its process (and its parents')
        processes = 0
        while processes < len(frames) and frames[processes].startswith("process "):
            processes += 1
        if not processes or process_filter not in frames[processes - 1]:
            continue
        count = int(match["count"])
        leaf = frames[-1]
        if any(marker in leaf for marker in IDLE) or (
            _UNNAMED_LIBC.match(leaf)
            and any(wait in frame for frame in frames[-4:-1] for wait in LOCK_WAITS)
        ):
            idle += count
            continue
        stages[_stage(frames[processes:])] += count
    return stages, idle


def _stage(frames: Sequence[str]) -> str:
    for stage, patterns in STAGES:
        for frame in frames:
            if any(pattern in frame for pattern in patterns):
                return stage
    return OTHER


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    parser.add_argument("--process", default="churnwatch run",
                        help="count only processes whose command line contains this")
    args = parser.parse_args(argv)
    with args.profile.open() as lines:
        stages, idle = breakdown(lines, args.process)
    busy = sum(stages.values())
    if not busy:
        print(f"no busy samples of processes matching {args.process!r}", file=sys.stderr)
        return 1
    print(f"{busy:,} busy samples ({idle:,} idle) of processes matching {args.process!r}")
    for stage, count in stages.most_common():
        print(f"{100 * count / busy:5.1f} %  {stage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
