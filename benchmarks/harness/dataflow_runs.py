"""The in-process benchmark: the production dataflow run in this process until drained.

:func:`run_dataflow_benchmark` does what ``python -m benchmarks.bench_features``
describes: one run over an empty topic (Bytewax start-up and shutdown alone),
then ``repeat`` timed runs of ``run_pipeline(settings, tail=False)`` over a
produced simulation, each with settings of its own, and optionally one more
under cProfile.
"""

from __future__ import annotations

import cProfile
import json
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from benchmarks.harness.churnwatch_runs import isolated_settings
from benchmarks.harness.dataflow_report import print_profile, print_summary
from benchmarks.harness.figures import Figures
from benchmarks.harness.prometheus import counter_by_label
from benchmarks.harness.quantiles import median_of_numbers
from benchmarks.harness.redis_memory import feature_hash_figures, used_memory
from benchmarks.harness.report import environment
from benchmarks.harness.sampling import own_status_kib, reset_own_peak_rss, server_cpu_seconds

if TYPE_CHECKING:
    from churnwatch.settings import Settings
    from churnwatch.simulator import Simulation
    from dataflows.metrics import PipelineMetrics


@dataclass(frozen=True)
class DataflowOptions:
    """The benchmark's command line.

    ``state_dir`` None: a fresh temporary directory, removed at the end;
    ``json``: also write the figures there.
    """

    accounts: int
    days: int
    seed: int
    repeat: int
    batch_size: int
    state_dir: Path | None
    json: Path | None
    profile: bool


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def postgres_rows(settings: Settings) -> Figures:
    """Rows the run wrote to its own schema, by table."""
    import psycopg

    assert settings.database_url
    schema = settings.database_schema
    counts: Figures = {}
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for table in ("alerts", "cancellation_reasons", "usage_signals"):
            row = conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()
            counts[f"pg_{table}"] = int(row[0]) if row else 0
    return counts


def drop_schema(settings: Settings) -> None:
    """Drop the run's schema, so repeats do not fill the embedded PostgreSQL."""
    import psycopg

    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {settings.database_schema} CASCADE")


def timed_pipeline(
    settings: Settings, pids: dict[str, int], profiler: cProfile.Profile | None = None
) -> tuple[PipelineMetrics, Figures]:
    """Run the dataflow until the topic is drained; wall, CPU, RSS and server CPU."""
    from churnwatch.app import run_pipeline

    rss_before = own_status_kib("VmRSS")
    peak_reset = reset_own_peak_rss()
    servers_before = server_cpu_seconds(pids)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    try:
        metrics = run_pipeline(settings, tail=False)
    finally:
        if profiler is not None:
            profiler.disable()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    servers_after = server_cpu_seconds(pids)
    figures: Figures = {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before_mib": _mib(rss_before),
        "rss_peak_run_mib": _mib(own_status_kib("VmHWM")) if peak_reset else None,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for name in pids:
        if name in servers_before and name in servers_after:
            figures[f"{name}_cpu_s"] = servers_after[name] - servers_before[name]
    return metrics, figures


def measured_run(
    base: Settings,
    tag: str,
    batch_size: int,
    state_dir: Path,
    sim: Simulation,
    expected_keys: Callable[[str], set[str]],
    pids: dict[str, int],
    profiler: cProfile.Profile | None = None,
) -> Figures:
    """Produce ``sim`` to a fresh topic (untimed), then one timed run over it."""
    import redis

    from churnwatch.app import prepare
    from churnwatch.simulator import produce

    settings = isolated_settings(base, tag, state_dir, batch_size=batch_size)
    assert settings.kafka_bootstrap and settings.redis_url
    prepare(settings)  # topics and schema exist before producing; idempotent in the run
    produce_started = time.perf_counter()
    produced = produce(sim, settings.kafka_bootstrap, settings.topics.events)
    produce_s = time.perf_counter() - produce_started

    client = redis.Redis.from_url(settings.redis_url)
    try:
        used_before = used_memory(client)
        metrics, figures = timed_pipeline(settings, pids, profiler)
        summary = metrics.summary()
        figures = {
            "produced": produced,
            "produce_s": produce_s,
            **summary,
            **figures,
            **feature_hash_figures(
                client,
                settings.redis_key_prefix,
                used_before,
                expected_keys(settings.redis_key_prefix),
            ),
            **postgres_rows(settings),
            "sink_writes": counter_by_label(
                metrics.registry, "churnwatch_sink_records_written_total", "sink"
            ),
        }
    finally:
        client.close()
    drop_schema(settings)
    return figures


def startup_run(base: Settings, batch_size: int, state_dir: Path) -> Figures:
    """The pipeline over an empty topic: Bytewax start-up and shutdown alone."""
    from churnwatch.app import prepare

    settings = isolated_settings(base, "empty", state_dir, batch_size=batch_size)
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


def run_dataflow_benchmark(options: DataflowOptions) -> int:
    """Start the stack, run and measure, print the figures (and write them); 0 when done."""
    from churnwatch.localstack import LocalStack
    from churnwatch.settings import Settings
    from churnwatch.simulator import MessageKind, simulate
    from featurestore.redis_store import feature_key

    created_state_dir = options.state_dir is None
    state_dir = (Path(tempfile.mkdtemp(prefix="cw-bench-")) if options.state_dir is None
                 else options.state_dir)
    state_dir = state_dir.resolve()
    env = environment(detailed=True)
    print(
        f"python {env['python']} ({env['implementation']}), {env['cpu_count']} CPU(s) "
        f"({env['cpus_usable']} usable), bytewax {env['bytewax']}, "
        f"confluent-kafka {env['confluent_kafka']}"
    )

    started = time.perf_counter()
    sim = simulate(accounts=options.accounts, days=options.days, seed=options.seed)
    simulate_s = time.perf_counter() - started
    expected = sim.counts()
    subjects = {
        (doc["tenant_id"], doc["account_id"])
        for doc in (orjson.loads(m.value) for m in sim.messages if m.kind == MessageKind.VALID)
    }
    print(
        f"simulated {len(sim.messages):,} messages ({options.accounts:,} accounts, "
        f"{options.days} day(s), seed {options.seed}) in {simulate_s:.2f}s: {expected}; "
        f"{len(subjects):,} accounts with events"
    )

    def expected_keys(prefix: str) -> set[str]:
        return {feature_key(tenant, account, prefix) for tenant, account in subjects}

    report: Figures = {
        "environment": env,
        "arguments": {
            "accounts": options.accounts,
            "days": options.days,
            "seed": options.seed,
            "repeat": options.repeat,
            "batch_size": options.batch_size,
        },
        "simulation": {"seconds": simulate_s, "messages": len(sim.messages), **expected},
    }
    try:
        stack = LocalStack(Settings(), state_dir / "stack")
        with stack as base:
            pids = stack.pids
            print(f"local stack up: {pids}; state in {state_dir}")

            startup = startup_run(base, options.batch_size, state_dir)
            print(
                f"startup (same pipeline over an empty topic, subtracted below): "
                f"{startup['wall_s']:.2f}s wall, {startup['cpu_s']:.2f}s CPU"
            )
            report["startup"] = startup

            runs: list[Figures] = []
            for index in range(options.repeat):
                run = measured_run(base, f"r{index}", options.batch_size, state_dir, sim,
                                   expected_keys, pids)
                derive(run, startup, len(subjects))
                run["checks"] = checks(run, expected, len(subjects))
                runs.append(run)
                print(
                    f"run {index + 1}/{options.repeat}: {run['events']:,} events in "
                    f"{run['wall_s']:.2f}s (produce took {run['produce_s']:.2f}s, not timed)"
                )
            report["runs"] = runs
            if len(runs) > 1:
                report["median"] = median_of_numbers(runs)

            if options.profile:
                profiler = cProfile.Profile()
                profiled = measured_run(base, "prof", options.batch_size, state_dir, sim,
                                        expected_keys, pids, profiler)
                report["profile"] = {"wall_s": profiled["wall_s"], "profiler": profiler}
    finally:
        if created_state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)

    print_summary(runs)
    if "profile" in report:
        profile = report["profile"]
        profile["top"] = print_profile(profile.pop("profiler"), profile["wall_s"])

    if options.json:
        options.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"figures written to {options.json}")
    return 0
