"""``churnwatch demo``: the whole pipeline on the embedded local stack, in one go.

Starts the stack, creates topics, produces a simulated stream, runs the
dataflow until the stream is drained, prints the alerts and the counts, and
stops everything. Each run starts from empty state.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from datetime import datetime

from churnwatch.localstack import LocalStack
from churnwatch.settings import Settings
from dataflows.metrics import PipelineMetrics
from schemas.event import format_time
from sinks.postgres import connect

MAX_ROWS = 40


def run_demo(settings: Settings, *, accounts: int, days: int, seed: int) -> int:
    from churnwatch.app import run_pipeline
    from churnwatch.simulator import produce, simulate

    started = time.monotonic()
    demo_dir = settings.state_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)  # fresh broker, fresh state, fresh recovery
    settings = settings.replace(recovery_dir=demo_dir / "recovery")
    with LocalStack(settings, demo_dir / "stack") as running:
        print(
            f"local stack up in {time.monotonic() - started:.1f}s: "
            f"kafka {running.kafka_bootstrap}, redis {running.redis_url}, "
            f"postgres {running.database_url}"
        )
        simulation = simulate(accounts=accounts, days=days, seed=seed)
        from churnwatch.app import prepare

        prepare(running)
        produced = produce(simulation, running.kafka_bootstrap or "", running.topics.events)
        print(
            f"produced {produced:,} messages ({accounts} accounts, {days} days, seed {seed}) "
            f"to {running.topics.events}"
        )
        flow_started = time.monotonic()
        metrics = run_pipeline(running, tail=False)
        flow_seconds = time.monotonic() - flow_started
        rows = _fetch_alerts(running)
        cancellations = _count_cancellations(running)
    _print_alerts(rows)
    _print_counts(metrics, len(rows), cancellations, produced, flow_seconds)
    truth = Counter(str(a.profile) for a in simulation.accounts)
    churned = sum(1 for a in simulation.accounts if a.churned_at is not None)
    print(f"ground truth: {dict(truth)}; {churned} account(s) cancelled")
    print(f"demo finished in {time.monotonic() - started:.1f}s; local stack stopped")
    return 0


def _fetch_alerts(settings: Settings) -> list[tuple[str, str, str, str, datetime]]:
    assert settings.database_url
    with connect(settings.database_url, settings.database_schema) as conn:
        return list(
            conn.execute(
                "SELECT tenant_id, account_id, rule, severity, event_time FROM alerts"
                " ORDER BY event_time, tenant_id, account_id, rule"
            )
        )


def _count_cancellations(settings: Settings) -> int:
    assert settings.database_url
    with connect(settings.database_url, settings.database_schema) as conn:
        row = conn.execute("SELECT count(*) FROM cancellation_reasons").fetchone()
    return int(row[0]) if row else 0


def _print_alerts(rows: list[tuple[str, str, str, str, datetime]]) -> None:
    header = ("tenant", "account", "rule", "severity", "event time (UTC)")
    shown = rows if len(rows) <= MAX_ROWS else rows[: MAX_ROWS // 2] + rows[-MAX_ROWS // 2 :]
    table = [header] + [
        (t, a, r, s, format_time(e.replace(microsecond=0))) for t, a, r, s, e in shown
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print()
    print(f"alerts ({len(rows)} in Postgres table alerts and topic churn.alerts)")
    for index, row in enumerate(table):
        if index == MAX_ROWS // 2 + 1 and len(rows) > MAX_ROWS:
            print(f"  ... {len(rows) - MAX_ROWS} more ...")
        print("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if index == 0:
            print("  " + "  ".join("-" * w for w in widths))
    by_rule = Counter((r, s) for _, _, r, s, _ in rows)
    print("by rule: " + ", ".join(f"{r} ({s}): {n}" for (r, s), n in sorted(by_rule.items())))


def _print_counts(
    metrics: PipelineMetrics, alerts: int, cancellations: int, produced: int, seconds: float
) -> None:
    messages = metrics.total(metrics.messages)
    rejected = dict(
        sorted(
            {
                s.labels["reason"]: int(s.value)
                for m in metrics.registry.collect()
                for s in m.samples
                if s.name == "churnwatch_ingest_rejected_total"
            }.items()
        )
    )
    print()
    print("counts")
    print(
        f"  messages in          {int(messages):>9,}  ({messages / seconds:,.0f}/s over "
        f"{seconds:.1f}s, startup included)"
    )
    print(f"  valid unique events  {int(metrics.total(metrics.events)):>9,}")
    print(f"  duplicates dropped   {int(metrics.total(metrics.duplicates)):>9,}")
    print(f"  dead-lettered        {sum(rejected.values()):>9,}  {rejected}")
    print(f"  alerts               {alerts:>9,}")
    print(f"  cancellations        {cancellations:>9,}")
    if int(messages) != produced:
        print(f"  WARNING: produced {produced:,} but read {int(messages):,}")
