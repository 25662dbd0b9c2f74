"""Throughput, CPU and memory of the real churnwatch dataflow on the embedded stack.

Run it as a script from the repository root::

    .venv/bin/python benchmarks/features.py --accounts 10000 --days 3 [--profile] [--json out.json]

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
malformed messages, feature hashes vs accounts).
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# Run as a script, this folder comes first on sys.path, where benchmarks/scoring.py
# would shadow the `scoring` package.
_HERE = _Path(__file__).resolve().parent
_sys.path[:] = [p for p in _sys.path if _Path(p or ".").resolve() != _HERE]

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import psycopg
import redis

from churnwatch.app import prepare, run_pipeline
from churnwatch.localstack import LocalStack
from churnwatch.settings import Settings, Topics
from churnwatch.simulator import MessageKind, Simulation, produce, simulate
from dataflows.metrics import PipelineMetrics
from featurestore.redis_store import feature_key

MEMORY_SAMPLE = 200
PROFILE_TOP = 25
_CLK_TCK = os.sysconf("SC_CLK_TCK")

Figures = dict[str, Any]


# --- arguments and settings -------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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


def run_settings(base: Settings, tag: str, state_dir: Path, batch_size: int) -> Settings:
    """Settings of one run: its own topics, schema, key prefix and recovery directory."""
    name = f"bench_{tag}_{uuid.uuid4().hex[:6]}"
    return base.replace(
        topics=Topics(
            events=f"{name}.events",
            dead_letters=f"{name}.dlq",
            alerts=f"{name}.alerts",
            late=f"{name}.late",
        ),
        database_schema=name,
        redis_key_prefix=name,
        recovery_dir=state_dir / name / "recovery",
        input_batch_size=batch_size,
    )


# --- process and server measurements ----------------------------------------------------


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` figure in KiB (VmRSS, VmHWM), None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS, so the next peak is the pipeline's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def _proc_cpu_seconds(pid: int, children: bool) -> tuple[float, int]:
    """(utime+stime [+cutime+cstime]) of ``pid`` in seconds, and its parent pid."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK, int(fields[1])


def server_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each server, with its (live and reaped) children.

    PostgreSQL serves each connection in a child of the postmaster: live ones are
    summed, finished ones are already in the postmaster's cutime/cstime.
    """
    result: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            result[name] = _proc_cpu_seconds(pid, children=True)[0]
        except (OSError, ValueError, IndexError):
            continue
    wanted = set(pids.values())
    by_pid = {pid: name for name, pid in pids.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            seconds, parent = _proc_cpu_seconds(int(entry.name), children=True)
            if parent in wanted:
                result[by_pid[parent]] = result.get(by_pid[parent], 0.0) + seconds
    return result


# --- Redis and PostgreSQL ---------------------------------------------------------------


def redis_used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def redis_figures(
    client: redis.Redis, prefix: str, used_before: int, expected: set[str]
) -> Figures:
    """Feature hashes under ``prefix``: count, memory per hash, shape of one hash."""
    used_after = redis_used_memory(client)
    pattern = feature_key("*", "*", prefix)
    keys = [k.decode() for k in client.scan_iter(match=pattern, count=10_000)]
    figures: Figures = {
        "redis_hashes": len(keys),
        "redis_used_memory_before": used_before,
        "redis_used_memory_after": used_after,
        "redis_bytes_per_hash_info": (used_after - used_before) / len(keys) if keys else None,
        "redis_hashes_missing": len(expected - set(keys)),
        "redis_hashes_unexpected": len(set(keys) - expected),
    }
    if keys:
        sample = random.Random(0).sample(keys, min(MEMORY_SAMPLE, len(keys)))
        pipe = client.pipeline(transaction=False)
        for key in sample:
            pipe.memory_usage(key, samples=0)
        usages = [int(u) for u in pipe.execute() if u is not None]
        figures["redis_memory_usage_sampled"] = len(usages)
        figures["redis_memory_usage_mean"] = statistics.fmean(usages) if usages else None
        figures["redis_fields_per_hash"] = int(client.hlen(sample[0]))
        figures["redis_hash_encoding"] = client.object("encoding", sample[0]).decode()
        figures["redis_ttl_s"] = int(client.ttl(sample[0]))
    return figures


def postgres_rows(settings: Settings) -> Figures:
    assert settings.database_url
    schema = settings.database_schema
    counts: Figures = {}
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for table in ("alerts", "cancellation_reasons", "usage_signals"):
            row = conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()
            counts[f"pg_{table}"] = int(row[0]) if row else 0
    return counts


def drop_schema(settings: Settings) -> None:
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {settings.database_schema} CASCADE")


def sink_writes(metrics: PipelineMetrics) -> dict[str, int]:
    return {
        sample.labels["sink"]: int(sample.value)
        for metric in metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "churnwatch_sink_records_written_total"
    }


# --- one run ----------------------------------------------------------------------------


def timed_pipeline(
    settings: Settings, pids: dict[str, int], profiler: cProfile.Profile | None = None
) -> tuple[PipelineMetrics, Figures]:
    """Run the dataflow until the topic is drained; wall, CPU, RSS and server CPU."""
    rss_before = _status_kib("VmRSS")
    peak_reset = _reset_peak_rss()
    servers_before = server_cpu(pids)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    try:
        metrics = run_pipeline(settings, tail=False)
    finally:
        if profiler is not None:
            profiler.disable()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    servers_after = server_cpu(pids)
    figures: Figures = {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before_mib": _mib(rss_before),
        "rss_peak_run_mib": _mib(_status_kib("VmHWM")) if peak_reset else None,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for name in pids:
        if name in servers_before and name in servers_after:
            figures[f"{name}_cpu_s"] = servers_after[name] - servers_before[name]
    return metrics, figures


def measured_run(
    base: Settings,
    tag: str,
    args: argparse.Namespace,
    state_dir: Path,
    sim: Simulation,
    expected_keys: Callable[[str], set[str]],
    pids: dict[str, int],
    profiler: cProfile.Profile | None = None,
) -> Figures:
    settings = run_settings(base, tag, state_dir, args.batch_size)
    assert settings.kafka_bootstrap and settings.redis_url
    prepare(settings)  # topics and schema exist before producing; idempotent in the run
    produce_started = time.perf_counter()
    produced = produce(sim, settings.kafka_bootstrap, settings.topics.events)
    produce_s = time.perf_counter() - produce_started

    client = redis.Redis.from_url(settings.redis_url)
    try:
        used_before = redis_used_memory(client)
        metrics, figures = timed_pipeline(settings, pids, profiler)
        summary = metrics.summary()
        figures = {
            "produced": produced,
            "produce_s": produce_s,
            **summary,
            **figures,
            **redis_figures(
                client,
                settings.redis_key_prefix,
                used_before,
                expected_keys(settings.redis_key_prefix),
            ),
            **postgres_rows(settings),
            "sink_writes": sink_writes(metrics),
        }
    finally:
        client.close()
    drop_schema(settings)
    return figures


def startup_run(base: Settings, args: argparse.Namespace, state_dir: Path) -> Figures:
    """The pipeline over an empty topic: Bytewax start-up and shutdown alone."""
    settings = run_settings(base, "empty", state_dir, args.batch_size)
    prepare(settings)
    metrics, figures = timed_pipeline(settings, {})
    drop_schema(settings)
    return {"messages": metrics.summary()["messages"], **figures}


def derive(run: Figures, startup: Figures, accounts: int) -> None:
    """Rates from the raw figures (in place)."""
    events, messages = run["events"], run["messages"]
    wall, cpu = run["wall_s"], run["cpu_s"]
    net_wall = wall - startup["wall_s"]
    net_cpu = cpu - startup["cpu_s"]
    run["accounts"] = accounts
    run["net_wall_s"] = net_wall
    run["events_per_s"] = events / wall if wall > 0 else None
    run["messages_per_s"] = messages / wall if wall > 0 else None
    run["events_per_s_excl_startup"] = events / net_wall if net_wall > 0 else None
    run["cpu_us_per_event"] = cpu / events * 1e6 if events else None
    run["cpu_us_per_event_excl_startup"] = net_cpu / events * 1e6 if events else None
    run["cpu_share_of_wall"] = cpu / wall if wall > 0 else None
    before, peak = run.get("rss_before_mib"), run.get("rss_peak_run_mib")
    run["rss_growth_run_mib"] = peak - before if before is not None and peak is not None else None


def checks(run: Figures, expected: dict[str, int], accounts: int) -> list[str]:
    """Count mismatches worth a look (an empty list: everything adds up)."""
    problems = []

    def same(label: str, got: int, want: int) -> None:
        if got != want:
            problems.append(f"{label}: {got:,} (expected {want:,})")

    same("messages read vs produced", run["messages"], run["produced"])
    # churnwatch_ingest_events_total counts valid events read, copies included
    same("valid events + dead letters vs messages", run["events"] + run["dead_letters"],
         run["messages"])
    same("valid events - duplicates vs simulated valid", run["events"] - run["duplicates"],
         expected["valid"])
    same("duplicates vs simulated duplicates", run["duplicates"], expected["duplicate"])
    same("dead letters vs simulated malformed", run["dead_letters"], expected["malformed"])
    same("feature hashes vs accounts with events", run["redis_hashes"], accounts)
    same("accounts without a hash", run["redis_hashes_missing"], 0)
    same("hashes of unknown accounts", run["redis_hashes_unexpected"], 0)
    same("alerts in Postgres vs alerts emitted", run["pg_alerts"], run["alerts"])
    same(
        "cancellations in Postgres vs recorded",
        run["pg_cancellation_reasons"],
        run["cancellations"],
    )
    return problems


# --- output -----------------------------------------------------------------------------

# (label, key, format); None as key: a section heading.
ROWS: list[tuple[str, str | None, str]] = [
    ("input", None, ""),
    ("messages read", "messages", "{:,.0f}"),
    ("valid events (copies incl.)", "events", "{:,.0f}"),
    ("duplicates dropped", "duplicates", "{:,.0f}"),
    ("dead letters", "dead_letters", "{:,.0f}"),
    ("late events (of valid)", "late", "{:,.0f}"),
    ("accounts with events", "accounts", "{:,.0f}"),
    ("produce (not timed), s", "produce_s", "{:.2f}"),
    ("dataflow", None, ""),
    ("wall, s (startup incl.)", "wall_s", "{:.2f}"),
    ("wall excl. startup, s", "net_wall_s", "{:.2f}"),
    ("events/s (wall)", "events_per_s", "{:,.0f}"),
    ("events/s (excl. startup)", "events_per_s_excl_startup", "{:,.0f}"),
    ("messages/s (wall)", "messages_per_s", "{:,.0f}"),
    ("process CPU, s", "cpu_s", "{:.2f}"),
    ("CPU / wall", "cpu_share_of_wall", "{:.2f}"),
    ("CPU µs/event", "cpu_us_per_event", "{:.1f}"),
    ("CPU µs/event excl. startup", "cpu_us_per_event_excl_startup", "{:.1f}"),
    ("broker CPU during run, s", "kafka_cpu_s", "{:.2f}"),
    ("redis CPU during run, s", "redis_cpu_s", "{:.2f}"),
    ("postgres CPU during run, s", "postgres_cpu_s", "{:.2f}"),
    ("memory (this process)", None, ""),
    ("RSS before run, MiB", "rss_before_mib", "{:,.0f}"),
    ("peak RSS during run, MiB", "rss_peak_run_mib", "{:,.0f}"),
    ("peak growth during run, MiB", "rss_growth_run_mib", "{:,.0f}"),
    ("peak RSS ru_maxrss, MiB", "ru_maxrss_mib", "{:,.0f}"),
    ("redis", None, ""),
    ("feature hashes (SCAN)", "redis_hashes", "{:,.0f}"),
    ("fields per hash", "redis_fields_per_hash", "{:,.0f}"),
    ("hash encoding", "redis_hash_encoding", "{}"),
    ("used_memory delta / hash, B", "redis_bytes_per_hash_info", "{:,.0f}"),
    ("MEMORY USAGE mean, B", "redis_memory_usage_mean", "{:,.0f}"),
    ("  (keys sampled)", "redis_memory_usage_sampled", "{:,.0f}"),
    ("postgres / outputs", None, ""),
    ("alerts emitted", "alerts", "{:,.0f}"),
    ("alerts rows", "pg_alerts", "{:,.0f}"),
    ("cancellation rows", "pg_cancellation_reasons", "{:,.0f}"),
    ("usage_signals rows", "pg_usage_signals", "{:,.0f}"),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def median_run(runs: list[Figures]) -> Figures:
    merged: Figures = {}
    for key, value in runs[0].items():
        values = [run.get(key) for run in runs]
        if isinstance(value, int | float) and not isinstance(value, bool):
            numbers = [v for v in values if isinstance(v, int | float)]
            merged[key] = statistics.median(numbers) if numbers else None
        else:
            merged[key] = value
    return merged


def print_table(runs: list[Figures]) -> None:
    columns = [f"run {i + 1}" for i in range(len(runs))]
    shown = list(runs)
    if len(runs) > 1:
        columns.append("median")
        shown.append(median_run(runs))
    body: list[list[str]] = []
    for label, key, fmt in ROWS:
        if key is None:
            body.append([label])
        else:
            body.append([f"  {label}", *(_cell(run.get(key), fmt) for run in shown)])
    label_width = max(len(row[0]) for row in body)
    widths = [
        max(len(columns[i]), *(len(row[i + 1]) for row in body if len(row) > 1))
        for i in range(len(columns))
    ]
    header = "".join(f"  {c:>{w}}" for c, w in zip(columns, widths, strict=True))
    print("".ljust(label_width) + header)
    for row in body:
        if len(row) == 1:
            print(row[0])
        else:
            cells = "".join(f"  {c:>{w}}" for c, w in zip(row[1:], widths, strict=True))
            print(row[0].ljust(label_width) + cells)


def print_profile(profiler: cProfile.Profile, wall: float) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(PROFILE_TOP)
    text = out.getvalue()
    print()
    print(f"profile of one more run (under cProfile: {wall:.2f}s wall, slower than unprofiled);")
    print(f"top {PROFILE_TOP} by tottime:")
    print(text.strip("\n"))
    return text


# --- main -------------------------------------------------------------------------------


def environment() -> Figures:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "bytewax": version("bytewax"),
        "confluent_kafka": version("confluent-kafka"),
        "redis_py": version("redis"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    created_state_dir = args.state_dir is None
    state_dir = Path(tempfile.mkdtemp(prefix="cw-bench-")) if created_state_dir else args.state_dir
    state_dir = state_dir.resolve()
    env = environment()
    print(
        f"python {env['python']} ({env['implementation']}), {env['cpu_count']} CPU(s) "
        f"({env['cpus_usable']} usable), bytewax {env['bytewax']}, "
        f"confluent-kafka {env['confluent_kafka']}"
    )

    started = time.perf_counter()
    sim = simulate(accounts=args.accounts, days=args.days, seed=args.seed)
    simulate_s = time.perf_counter() - started
    expected = sim.counts()
    subjects = {
        (doc["tenant_id"], doc["account_id"])
        for doc in (orjson.loads(m.value) for m in sim.messages if m.kind == MessageKind.VALID)
    }
    print(
        f"simulated {len(sim.messages):,} messages ({args.accounts:,} accounts, {args.days} "
        f"day(s), seed {args.seed}) in {simulate_s:.2f}s: {expected}; "
        f"{len(subjects):,} accounts with events"
    )

    def expected_keys(prefix: str) -> set[str]:
        return {feature_key(tenant, account, prefix) for tenant, account in subjects}

    report: Figures = {
        "environment": env,
        "arguments": {
            "accounts": args.accounts,
            "days": args.days,
            "seed": args.seed,
            "repeat": args.repeat,
            "batch_size": args.batch_size,
        },
        "simulation": {"seconds": simulate_s, "messages": len(sim.messages), **expected},
    }
    try:
        stack = LocalStack(Settings(), state_dir / "stack")
        with stack as base:
            pids = stack.pids
            print(f"local stack up: {pids}; state in {state_dir}")

            startup = startup_run(base, args, state_dir)
            print(
                f"startup (same pipeline over an empty topic, subtracted below): "
                f"{startup['wall_s']:.2f}s wall, {startup['cpu_s']:.2f}s CPU"
            )
            report["startup"] = startup

            runs: list[Figures] = []
            for index in range(args.repeat):
                run = measured_run(base, f"r{index}", args, state_dir, sim, expected_keys, pids)
                derive(run, startup, len(subjects))
                run["checks"] = checks(run, expected, len(subjects))
                runs.append(run)
                print(
                    f"run {index + 1}/{args.repeat}: {run['events']:,} events in "
                    f"{run['wall_s']:.2f}s (produce took {run['produce_s']:.2f}s, not timed)"
                )
            report["runs"] = runs
            if len(runs) > 1:
                report["median"] = median_run(runs)

            if args.profile:
                profiler = cProfile.Profile()
                profiled = measured_run(
                    base, "prof", args, state_dir, sim, expected_keys, pids, profiler
                )
                report["profile"] = {"wall_s": profiled["wall_s"], "profiler": profiler}
    finally:
        if created_state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)

    print()
    print(
        "wall and CPU are around run_pipeline(tail=False) only: simulation and produce are "
        "outside the clock; 'excl. startup' subtracts the empty-topic run."
    )
    print(
        "RSS before the run includes the simulated stream held in memory; "
        "'peak growth' is what the dataflow added."
    )
    print_table(runs)
    for index, run in enumerate(runs):
        print(f"sink writes, run {index + 1}: {run['sink_writes']}")
    print()
    problems = [(i, p) for i, run in enumerate(runs) for p in run["checks"]]
    if problems:
        print("checks: counts that do not add up")
        for index, problem in problems:
            print(f"  run {index + 1}: {problem}")
    else:
        print("checks: all counts add up (messages, events, duplicates, dead letters, hashes)")

    if "profile" in report:
        profile = report["profile"]
        profile["top"] = print_profile(profile.pop("profiler"), profile["wall_s"])

    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
