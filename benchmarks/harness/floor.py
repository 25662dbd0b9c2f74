"""The floor: a minimal Bytewax flow that only reads the events topic, parses and counts.

It uses the production Kafka input (``EventsSource``: same consumer config,
batch size, ``tail=False``), so the full pipeline's throughput divided by the
floor's is the share left after churnwatch's own work.

:func:`run_floor` starts a cluster of floor workers and sums what they print;
each worker is ``python -m benchmarks.bench_pipeline --floor-worker``, which
calls :func:`floor_worker`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.harness.figures import Figures
from benchmarks.harness.processes import (
    ChildProcesses,
    children_cpu_s,
    parse_counts,
    wait_all,
)

# The worker's last line of output, which the parent reads back.
FLOOR_LINE = "floor: "

# Workers re-enter through the pipeline script's hidden --floor-worker mode; `-m` run
# from the repository root finds the package without touching sys.path.
WORKER_MODULE = "benchmarks.bench_pipeline"
REPO = Path(__file__).resolve().parents[2]


def floor_worker(bootstrap: str, topic: str, batch_size: int, process_id: int | None = None,
                 addresses: str | None = None) -> int:
    """One process of the floor flow; prints its counts and active span at the end.

    ``addresses`` (``host:port;host:port``) makes it process ``process_id`` of a
    cluster; without it, a single process.
    """
    # Imported here, so that the parent (and --help) never loads Bytewax.
    from bytewax import operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.run import cli_main

    from dataflows.kafka_input import EventsSource

    counts = {"messages": 0, "parsed": 0, "errors": 0}
    span = {"first": 0.0, "last": 0.0}

    def parse(batch: list[Any]) -> list[int]:
        if not span["first"]:
            span["first"] = time.time()
        parsed = errors = read = 0
        for item in batch:  # one MessageBatch per poll
            for message in item.messages:
                read += 1
                if message.error() is not None:
                    errors += 1
                    continue
                try:
                    orjson.loads(message.value())
                    parsed += 1
                except (orjson.JSONDecodeError, TypeError):
                    errors += 1
        counts["messages"] += read
        counts["parsed"] += parsed
        counts["errors"] += errors
        span["last"] = time.time()
        return []

    flow = Dataflow("churnwatch_floor")
    source = EventsSource(bootstrap, topic, tail=False, batch_size=batch_size)
    messages = op.input("kafka-in", flow, source)
    parsed = op.flat_map_batch("parse-count", messages, parse)
    op.inspect("discard", parsed, lambda _step, _item: None)
    cluster = addresses.split(";") if addresses else None
    cli_main(
        flow,
        workers_per_process=1,
        process_id=process_id if cluster else None,
        addresses=cluster,
    )
    figures = " ".join(f"{k}={v}" for k, v in counts.items())
    print(f"{FLOOR_LINE}{figures} first={span['first']!r} last={span['last']!r}", flush=True)
    return 0


def run_floor(children: ChildProcesses, bootstrap: str, topic: str, processes: int,
              batch_size: int, logs: Path, tag: str) -> Figures:
    """The floor over ``topic`` with ``processes`` workers: messages, wall, CPU and rates.

    "Sustained" divides by the span between the first and the last batch of any
    worker; "wall" by the whole run, process start to exit included.
    """
    from churnwatch.localstack import free_port

    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    outs = [logs / f"{tag}-p{i}.out" for i in range(processes)]
    errs = [logs / f"{tag}-p{i}.err" for i in range(processes)]
    cpu_before = children_cpu_s()
    started = time.perf_counter()
    procs = []
    for i in range(processes):
        argv = [sys.executable, "-m", WORKER_MODULE, "--floor-worker",
                "--bootstrap", bootstrap, "--topic", topic, "--batch-size", str(batch_size)]
        if processes > 1:
            argv += ["--process-id", str(i), "--addresses", addresses]
        procs.append(children.start(argv, env=None, cwd=REPO, stdout=outs[i], stderr=errs[i]))
    wait_all(children, procs, errs, "floor")
    wall = time.perf_counter() - started
    cpu = children_cpu_s() - cpu_before
    totals: dict[str, float] = {}
    firsts, lasts = [], []
    for out in outs:
        for line in out.read_text().splitlines():
            if line.startswith(FLOOR_LINE):
                counts = parse_counts(line, FLOOR_LINE)
                for key in ("messages", "parsed", "errors"):
                    totals[key] = totals.get(key, 0.0) + counts.get(key, 0.0)
                if counts.get("first"):
                    firsts.append(counts["first"])
                    lasts.append(counts["last"])
    messages = int(totals.get("messages", 0))
    active = max(lasts) - min(firsts) if firsts else 0.0
    return {
        "processes": processes,
        "messages": messages,
        "parsed": int(totals.get("parsed", 0)),
        "errors": int(totals.get("errors", 0)),
        "wall_s": wall,
        "active_s": active,
        "cpu_s": cpu,
        "events_per_s_wall": messages / wall if wall > 0 else None,
        "events_per_s_sustained": messages / active if active > 0 else None,
    }
