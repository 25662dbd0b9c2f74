"""What the in-process dataflow benchmark prints: a column per run, checks, a profile."""

from __future__ import annotations

import cProfile
import io
import pstats
from typing import Any

from benchmarks.harness.figures import Figures
from benchmarks.harness.quantiles import median_of_numbers

PROFILE_TOP = 25

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


def print_run_table(runs: list[Figures]) -> None:
    """:data:`ROWS` down, one column per run, and a median column for several runs."""
    columns = [f"run {i + 1}" for i in range(len(runs))]
    shown = list(runs)
    if len(runs) > 1:
        columns.append("median")
        shown.append(median_of_numbers(runs))
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


def print_summary(runs: list[Figures]) -> None:
    """What the figures cover, the table, sink writes and the count checks of every run."""
    print()
    print(
        "wall and CPU are around run_pipeline(tail=False) only: simulation and produce are "
        "outside the clock; 'excl. startup' subtracts the empty-topic run."
    )
    print(
        "RSS before the run includes the simulated stream held in memory; "
        "'peak growth' is what the dataflow added."
    )
    print_run_table(runs)
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


def print_profile(profiler: cProfile.Profile, wall: float) -> str:
    """Print the top :data:`PROFILE_TOP` functions by own time; returns that text."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(PROFILE_TOP)
    text = out.getvalue()
    print()
    print(f"profile of one more run (under cProfile: {wall:.2f}s wall, slower than unprofiled);")
    print(f"top {PROFILE_TOP} by tottime:")
    print(text.strip("\n"))
    return text
