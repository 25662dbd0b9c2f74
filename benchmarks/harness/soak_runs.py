"""The soak benchmark: does state stay flat over a year of event time?

:func:`run_soak_benchmark` does what ``python -m benchmarks.bench_soak``
describes: it simulates the period once (:mod:`~benchmarks.harness.soak_history`),
then runs the dataflow over it in a child process per configuration
(:mod:`~benchmarks.harness.soak_worker`), one after the other:

* **eviction**: churnwatch's defaults: an account silent for the idle TTL (40
  days) starts afresh, and the shards forget it at their event-time watermark;
* **control**: the same with ``CHURNWATCH_FEATURE_TTL_SECONDS`` at a hundred
  years, which is what the idle TTL follows (it is the longer of the feature TTL
  and two dedupe windows): no account is ever idle long enough to be forgotten,
  in event time or on the wall clock. Risk states keep their own TTLs (the
  score TTL, the decision policy's memory) and the inactivity trackers theirs
  (35 days after a signal), so the control differs in the accounts alone.

The functions below :func:`run_soak_benchmark` turn the months' figures into
the printed tables and the verdict; they are pure.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from benchmarks.harness.code_version import REPOSITORY, code_state, same_code
from benchmarks.harness.figures import Figures
from benchmarks.harness.processes import ChildProcesses, tail_text
from benchmarks.harness.report import environment, json_argument, number, write_result
from benchmarks.harness.soak_history import History, MonthMark, write_history

if TYPE_CHECKING:
    from churnwatch.settings import Settings

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "soak.json"
START = datetime(2025, 1, 1, tzinfo=UTC)  # a past year: the validator refuses future times
# The control's idle TTL: longer than any simulated period.
NO_IDLE_EXPIRY = f"CHURNWATCH_FEATURE_TTL_SECONDS={100 * 365 * 86_400}"
# The verdict compares this month with the last, once the windows are full (the
# idle TTL's 40 days); a second verdict from SECOND_HALF_MONTH, once the longest memory
# (a cold risk state's 90 days) has filled too, tells filling from growing.
FROM_MONTH = 3
SECOND_HALF_MONTH = 6
# "Flat": RSS, accounts held and snapshot bytes grow by at most this factor between
# FROM_MONTH and the last month.
FLAT_RATIO = 1.2
# What the verdict compares: (row key, label).
GROWTH_FIGURES = (("rss_bytes", "RSS"), ("accounts_held", "accounts held"),
                  ("snapshot_bytes", "snapshot bytes"))


@dataclass(frozen=True)
class SoakOptions:
    """The benchmark's command line (field order: the JSON's ``arguments`` order).

    ``env`` are CHURNWATCH_NAME=VALUE overrides for both runs (the control's own
    override comes after them)."""

    accounts: int = 5_000
    days: int = 365
    mean_lifetime_days: float = 30.0
    seed: int = 7
    snapshot_interval: float = 2.0
    control: bool = True
    tracemalloc: bool = False
    run_timeout: float = 3_600.0
    env: tuple[str, ...] = ()
    out: Path = DEFAULT_OUT
    keep_state: bool = False


@dataclass(frozen=True)
class SoakRun:
    """One configuration: its name, title and CHURNWATCH_* overrides."""

    name: str
    title: str
    overrides: tuple[str, ...]


def soak_runs(options: SoakOptions) -> list[SoakRun]:
    runs = [SoakRun("eviction", "event-time eviction (the defaults)", options.env)]
    if options.control:
        runs.append(SoakRun("control", f"control, no idle expiry ({NO_IDLE_EXPIRY})",
                            (*options.env, NO_IDLE_EXPIRY)))
    return runs


def run_soak_benchmark(options: SoakOptions) -> int:
    """Simulate, run every configuration, print the tables and verdicts, write the JSON."""
    from benchmarks.harness.churnwatch_runs import child_env
    from churnwatch.settings import Settings
    from churnwatch.wiring import idle_state_ttl

    started = time.perf_counter()
    code_at_start = code_state()
    base = Settings().replace(snapshot_interval=timedelta(seconds=options.snapshot_interval),
                              metrics_port=0)
    window = idle_state_ttl(Settings.from_env(child_env(base, options.env)))
    workdir = Path(tempfile.mkdtemp(prefix="churnwatch-soak-"))
    children = ChildProcesses()
    report: Figures = {
        "arguments": {f.name: json_argument(getattr(options, f.name)) for f in fields(options)},
        "environment": environment(),
    }
    try:
        print(f"simulating {options.days} days from {START:%Y-%m-%d}: {options.accounts:,} "
              f"sign-ups, mean lifetime {options.mean_lifetime_days:g} days ...", flush=True)
        history = write_history(
            workdir / "history.jsonl", accounts=options.accounts, days=options.days,
            mean_lifetime_days=options.mean_lifetime_days, seed=options.seed, start=START,
            window=window,
        )
        print(f"  {history.messages:,} messages, {history.marks[-1].valid_events:,} valid "
              f"events, {len(history.marks)} months ({time.perf_counter() - started:.0f} s)\n",
              flush=True)
        report["workload"] = {"messages": history.messages, "accounts": history.accounts,
                              "start": START.isoformat(), "active_window_days": window.days}
        report["runs"] = {}
        for run in soak_runs(options):
            run_started = time.perf_counter()
            months = run_worker(children, run, history, base, workdir / run.name, options)
            rows = soak_rows(history.marks, months)
            result = verdict(rows)
            second_half = verdict(rows, SECOND_HALF_MONTH)
            print(f"{run.title}: {time.perf_counter() - run_started:.0f} s")
            for line in table_lines(rows):
                print("  " + line)
            print("  " + verdict_line(result))
            if second_half["flat"] is not None:
                print("  " + verdict_line(second_half))
            if not result["flat"] and len(rows) > FROM_MONTH:
                for line in structure_lines(months[FROM_MONTH - 1], months[-1]):
                    print("    " + line)
            if options.tracemalloc and len(months) > FROM_MONTH:
                for line in allocation_lines(months[FROM_MONTH - 1], months[-1]):
                    print("    " + line)
            print(flush=True)
            report["runs"][run.name] = {"title": run.title, "overrides": list(run.overrides),
                                        "seconds": round(time.perf_counter() - run_started, 1),
                                        "verdict": result, "second_half": second_half,
                                        "months": months}
    finally:
        children.stop_all()
        if options.keep_state:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    code_at_end = code_state()
    report["code"] = {"start": code_at_start, "end": code_at_end,
                      "unchanged": same_code(code_at_start, code_at_end)}
    report["seconds"] = round(time.perf_counter() - started, 1)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(report, options.out)
    print(f"duration {report['seconds']:.0f} s; wrote {options.out}")
    if report["code"]["unchanged"] is False:
        print("note: the working tree changed during the benchmark; runs may have measured "
              "different code")
    return 0


def run_worker(children: ChildProcesses, run: SoakRun, history: History, base: Settings,
               directory: Path, options: SoakOptions) -> list[Figures]:
    """One configuration in a child process; its months' figures, in order."""
    from benchmarks.harness.churnwatch_runs import child_env

    directory.mkdir(parents=True)
    settings = base.replace(recovery_dir=directory / "recovery")
    results = directory / "months.jsonl"
    spec = directory / "spec.json"
    spec.write_bytes(orjson.dumps({
        "history": str(history.path),
        "stops": [mark.line for mark in history.marks],
        "results": str(results),
        "outputs": str(directory / "outputs"),
        "tracemalloc": options.tracemalloc,
    }))
    log = directory / "worker.log"
    argv = [sys.executable, "-m", "benchmarks.bench_soak", "--soak-worker", str(spec)]
    proc = children.start(argv, env=child_env(settings, run.overrides), cwd=REPOSITORY,
                          stdout=log, stderr=log)
    try:
        code = proc.wait(options.run_timeout)
    except subprocess.TimeoutExpired:
        children.stop(proc)
        msg = f"{run.name}: no end within {options.run_timeout:.0f} s:\n{tail_text(log)}"
        raise RuntimeError(msg) from None
    if code != 0:
        msg = f"{run.name}: the worker exited with {code}:\n{tail_text(log)}"
        raise RuntimeError(msg)
    months = [orjson.loads(line) for line in results.read_bytes().splitlines() if line]
    if len(months) != len(history.marks):
        msg = f"{run.name}: {len(months)} months measured, {len(history.marks)} expected"
        raise RuntimeError(msg)
    return months


# --- what the figures say ----------------------------------------------------------------


def soak_rows(marks: Sequence[MonthMark], months: Sequence[Figures]) -> list[Figures]:
    """One row per month: what the stream held (``marks``) beside what the run held."""
    return [
        {
            "month": mark.month,
            "end": mark.end.date().isoformat(),
            "events": mark.valid_events,
            "ever_seen": mark.ever_seen,
            "active": mark.active,
            "accounts_held": month["accounts_held"],
            "risk_states": month["risk_states"],
            "state_bytes": month.get("state_bytes"),  # runs before session 12: none
            "tracker_accounts": month["tracker_accounts"],
            "rss_bytes": month["rss_bytes"],
            "snapshot_bytes": month["snapshot_bytes"],
        }
        for mark, month in zip(marks, months, strict=True)
    ]


def ratio(first: float | None, last: float | None) -> float | None:
    """``last / first``; None when either is unknown or ``first`` is not positive."""
    if first is None or last is None or first <= 0:
        return None
    return last / first


def verdict(rows: Sequence[Figures], from_month: int = FROM_MONTH,
            flat_ratio: float = FLAT_RATIO) -> Figures:
    """Growth from ``from_month`` to the last month of RSS, accounts held and snapshot
    bytes, and of accounts ever seen; ``flat`` when each of the three grew by at most
    ``flat_ratio`` (None when the period is too short to tell)."""
    if len(rows) <= from_month:
        return {"from_month": from_month, "to_month": len(rows), "flat": None}
    first, last = rows[from_month - 1], rows[-1]
    growth = {key: ratio(first[key], last[key]) for key, _ in GROWTH_FIGURES}
    return {
        "from_month": from_month,
        "to_month": last["month"],
        **growth,
        "ever_seen": ratio(first["ever_seen"], last["ever_seen"]),
        "flat": all(value is not None and value <= flat_ratio for value in growth.values()),
    }


def verdict_line(result: Figures) -> str:
    """The verdict in one line."""
    if result["flat"] is None:
        return f"too short for a verdict (month {result['from_month']} to the last)"
    growth = ", ".join(f"{label} x{number(result[key], '{:.2f}')}"
                       for key, label in GROWTH_FIGURES)
    held = "flat" if result["flat"] else f"NOT flat (more than x{FLAT_RATIO:g})"
    return (f"month {result['from_month']} -> {result['to_month']}: {growth}, while accounts "
            f"ever seen x{number(result['ever_seen'], '{:.2f}')}: {held}")


TABLE_COLUMNS = (
    # (heading, row key, format)
    ("month", "month", "{}"),
    ("ends", "end", "{}"),
    ("events", "events", "{:,}"),
    ("seen", "ever_seen", "{:,}"),
    ("active 40d", "active", "{:,}"),
    ("held", "accounts_held", "{:,}"),
    ("risk", "risk_states", "{:,}"),
    ("state B", "state_bytes", "{:,}"),
    ("tracked", "tracker_accounts", "{:,}"),
    ("RSS MB", "rss_bytes", "{:,.1f}"),
    ("snapshot B", "snapshot_bytes", "{:,}"),
)


def table_lines(rows: Sequence[Figures]) -> list[str]:
    """The rows as a right-aligned text table (RSS in MB)."""
    def cell(row: Figures, key: str, fmt: str) -> str:
        value = row[key]
        if key == "rss_bytes" and value is not None:
            value = value / 1e6
        return "-" if value is None else fmt.format(value)

    cells = [[heading for heading, _, _ in TABLE_COLUMNS]]
    cells += [[cell(row, key, fmt) for _, key, fmt in TABLE_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE_COLUMNS))]
    return ["  ".join(text.rjust(width) for text, width in zip(line, widths, strict=True))
            for line in cells]


def structure_lines(first: Figures, last: Figures, limit: int = 8) -> list[str]:
    """The collections of the shards and trackers that grew most between two months
    (by how much), to say which structure holds the growth."""
    before, after = first["structures"], last["structures"]
    grown = sorted(((after.get(name, 0) - before.get(name, 0), name) for name in after),
                   reverse=True)
    lines = [f"grew most from month {first['month']} to {last['month']}:"]
    lines += [f"{name}: {before.get(name, 0):,} -> {after[name]:,}"
              for change, name in grown[:limit] if change > 0]
    return lines


def allocation_lines(first: Figures, last: Figures, limit: int = 10) -> list[str]:
    """The traced allocation sites that grew most between two months (tracemalloc)."""
    before = {site["where"]: site["bytes"] for site in first.get("top_allocations", [])}
    after = {site["where"]: site["bytes"] for site in last.get("top_allocations", [])}
    grown = sorted(((size - before.get(where, 0), where) for where, size in after.items()),
                   reverse=True)
    lines = [f"allocation sites that grew most from month {first['month']} to "
             f"{last['month']} (tracemalloc):"]
    lines += [f"{where}: {before.get(where, 0):,} -> {after[where]:,} B"
              for change, where in grown[:limit] if change > 0]
    return lines
