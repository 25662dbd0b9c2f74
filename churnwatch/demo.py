"""``churnwatch demo``: the whole pipeline on the embedded local stack, in one go.

Starts the stack, creates topics, produces a simulated stream, runs the
dataflow until the stream is drained, prints the alerts, the usage signals
against the simulator's ground truth, the decisions and workflow triggers, a
sample of the online features and the counts, and stops everything. Each run
starts from empty state. With ``--serve`` it keeps the stack up instead and serves the
REST API and its console over the results until Ctrl-C.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import redis

from churnwatch.localstack import LocalStack
from churnwatch.settings import Settings
from churnwatch.simulator import Simulation
from dataflows.metrics import PipelineMetrics
from featurestore.definitions import load_definitions
from featurestore.redis_store import RedisFeatureStore
from schemas.event import format_time
from sinks.postgres import connect

TIER1_ROWS = 12
TIER2_ROWS = 16


def run_demo(
    settings: Settings, *, accounts: int, days: int, seed: int, serve_port: int | None = None,
    serve_host: str = "127.0.0.1",
) -> int:
    """Run the demo; with ``serve_port``, then keep the stack up and serve the API and the
    console over its results until Ctrl-C (``churnwatch demo --serve``)."""
    from churnwatch.app import prepare, run_pipeline
    from churnwatch.simulator import produce, simulate

    started = time.monotonic()
    demo_dir = settings.state_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)  # fresh broker, fresh state, fresh recovery
    # Its own recovery state, and no metrics port: the demo is not a service.
    settings = settings.replace(recovery_dir=demo_dir / "recovery", metrics_port=0)
    with LocalStack(settings, demo_dir / "stack") as running:
        print(
            f"local stack up in {time.monotonic() - started:.1f}s: "
            f"kafka {running.kafka_bootstrap}, redis {running.redis_url}, "
            f"postgres {running.database_url}"
        )
        if serve_port is None:
            simulation = simulate(accounts=accounts, days=days, seed=seed, opt_out_rate=0.05)
        else:  # served, the history ends today: its alerts are recent, not read as expired
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            simulation = simulate(accounts=accounts, days=days, seed=seed, opt_out_rate=0.05,
                                  start=today - timedelta(days=days))
        prepare(running)
        produced = produce(simulation, running.kafka_bootstrap or "", running.topics.events,
                           config=running.kafka_config.properties)
        print(
            f"produced {produced:,} messages ({accounts} accounts, {days} days, seed {seed}) "
            f"to {running.topics.events}"
        )
        flow_started = time.monotonic()
        metrics = run_pipeline(running, tail=False)
        flow_seconds = time.monotonic() - flow_started
        alerts = _query(running, "SELECT tenant_id, account_id, tier, rule, severity, event_time"
                                 " FROM alerts ORDER BY event_time, tenant_id, account_id, rule")
        signals = _query(running, "SELECT tenant_id, account_id, signal_type, signal_date,"
                                  " usage_count, baseline_count FROM usage_signals"
                                  " ORDER BY signal_date, tenant_id, account_id, signal_type")
        cancellations = _query(running, "SELECT count(*) FROM cancellation_reasons")[0][0]
        scores = _query(
            running,
            "SELECT DISTINCT ON (tenant_id, account_id) tenant_id, account_id, score, tier,"
            " reasons, score_time FROM risk_scores WHERE NOT shadow"
            " ORDER BY tenant_id, account_id, score_time DESC",
        )
        first_high = {
            source: _query(
                running,
                "SELECT tenant_id, account_id, min(score_time) FROM risk_scores"
                f" WHERE NOT shadow AND {condition} GROUP BY tenant_id, account_id",
            )
            for source, condition in (
                ("the model alone", "ml_score >= 0.7"),
                ("model or decisive events", "tier = 'high'"),
            )
        }
        decisions = _query(running, "SELECT decision, reasons->>0, count(*) FROM decisions"
                                    " GROUP BY 1, 2 ORDER BY 1, 2")
        examples = _query(
            running,
            "SELECT DISTINCT ON (reasons->>0) reasons->>0, tenant_id, account_id, trigger,"
            " workflow_key, detail, decided_at FROM decisions"
            " ORDER BY reasons->>0, decided_at, tenant_id, account_id",
        )
        triggers = _query(running, "SELECT workflow_key, action, variant, count(*)"
                                   " FROM workflow_triggers GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
        first_triggers = _query(
            running,
            "SELECT tenant_id, account_id, workflow_key, action, trigger, variant, triggered_at"
            " FROM workflow_triggers ORDER BY triggered_at, tenant_id, account_id LIMIT 8",
        )
        workflow_signals = _query(running, "SELECT signal, cause, count(*) FROM workflow_signals"
                                           " GROUP BY 1, 2 ORDER BY 1, 2")
        ledger = _query(running, "SELECT channel, count(*) FROM contact_ledger GROUP BY 1"
                                 " ORDER BY 1")
        show_features = _feature_sample(running, simulation)
        _print_alerts(alerts)
        _print_signals(signals, simulation)
        _print_scores(scores, first_high, simulation)
        _print_decisions(decisions, examples, triggers, first_triggers, workflow_signals,
                         ledger)
        show_features()
        _print_counts(metrics, len(alerts), cancellations, produced, flow_seconds)
        if serve_port is not None:
            _serve_console(running, serve_host, serve_port)
    print(f"\ndemo finished in {time.monotonic() - started:.1f}s; local stack stopped")
    return 0


def _serve_console(settings: Settings, host: str, port: int) -> None:
    """The API and its console over the demo's tables: an admin per tenant (its token
    printed once), the console's URL, then uvicorn until Ctrl-C."""
    from api import add_user
    from churnwatch.api_server import migrate_schema, serve

    assert settings.database_url
    migrate_schema(settings)
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        tenants = [row[0] for row in conn.execute(
            "SELECT DISTINCT tenant_id FROM risk_scores ORDER BY 1")]
        tokens = {tenant: add_user(conn, tenant, "demo-admin", "admin")[1] for tenant in tenants}
    print("\nconsole: an admin user demo-admin per tenant; log in with its token:")
    for tenant, token in tokens.items():
        print(f"  tenant {tenant}: {token}")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"console at http://{shown}:{port}/console (API docs at /docs); Ctrl-C stops the"
          " console and the local stack", flush=True)
    serve(settings, host, port)


def _query(settings: Settings, sql: str) -> list[tuple]:
    assert settings.database_url
    with connect(settings.database_url, settings.database_schema) as conn:
        return list(conn.execute(sql.encode()))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def _time(moment: datetime) -> str:
    return format_time(moment.replace(microsecond=0))


def _print_alerts(rows: list[tuple]) -> None:
    tier1 = [r for r in rows if r[2] == 1]
    tier2 = [r for r in rows if r[2] == 2]
    tier3 = [r for r in rows if r[2] == 3]
    print(f"\nalerts: {len(rows)} in Postgres table alerts and topic churn.alerts "
          f"(tier 1, decisive events: {len(tier1)}; tier 2, usage signals: {len(tier2)}; "
          f"tier 3, risk tier rose: {len(tier3)})")
    print(f"\ntier 1, first {min(TIER1_ROWS, len(tier1))} of {len(tier1)}:")
    _table(
        ("tenant", "account", "rule", "severity", "event time (UTC)"),
        [(t, a, rule, sev, _time(when)) for t, a, _, rule, sev, when in tier1[:TIER1_ROWS]],
    )
    by_rule = Counter((tier, rule, sev) for _, _, tier, rule, sev, _ in rows)
    print("by rule: " + ", ".join(
        f"{rule} ({sev}): {n}" for (_, rule, sev), n in sorted(by_rule.items())))


def _print_signals(rows: list[tuple], simulation: Simulation) -> None:
    profiles = {(a.tenant_id, a.account_id): str(a.profile) for a in simulation.accounts}
    print(f"\ntier 2, usage signals (table usage_signals), first {min(TIER2_ROWS, len(rows))}"
          f" of {len(rows)}:")
    _table(
        ("tenant", "account", "signal", "date", "usage 7d", "baseline", "truth"),
        [
            (t, a, kind, day.isoformat(), f"{usage:g}", f"{base:.1f}", profiles.get((t, a), "?"))
            for t, a, kind, day, usage, base in rows[:TIER2_ROWS]
        ],
    )
    flagged = {(r[0], r[1]) for r in rows}
    first_signal: dict[tuple[str, str], object] = {}
    for t, a, _, day, _, _ in rows:
        first_signal.setdefault((t, a), day)
    print("\nagainst the simulator's ground truth:")
    for profile in ("disengaging", "involuntary", "downgrader", "steady"):
        members = [k for k, p in profiles.items() if p == profile]
        hit = [k for k in members if k in flagged]
        print(f"  {profile:<12} {len(hit):>4} of {len(members):>4} accounts flagged")
    leads = [
        (a.churned_at.date() - first_signal[(a.tenant_id, a.account_id)]).days  # type: ignore[operator]
        for a in simulation.accounts
        if str(a.profile) == "disengaging" and a.churned_at
        and (a.tenant_id, a.account_id) in first_signal
    ]
    if leads:
        print(f"  disengaging accounts that cancelled: first usage signal a median "
              f"{statistics.median(leads):g} day(s) before the cancellation "
              f"(range {min(leads)}..{max(leads)})")


def _print_scores(
    latest: list[tuple], first_high: dict[str, list[tuple]], simulation: Simulation
) -> None:
    profiles = {(a.tenant_id, a.account_id): str(a.profile) for a in simulation.accounts}
    ranked = sorted(latest, key=lambda r: -r[2])
    tiers = Counter(r[3] for r in latest)
    print(f"\nrisk scores (table risk_scores, topic churn.scores): latest per account, "
          f"{dict(sorted(tiers.items()))}; highest 8:")
    _table(
        ("tenant", "account", "risk", "tier", "as of (UTC)", "truth", "top reasons"),
        [
            (t, a, f"{risk:.2f}", tier, _time(when), profiles.get((t, a), "?"),
             "; ".join(reasons))
            for t, a, risk, tier, reasons, when in ranked[:8]
        ],
    )
    # Lead time: first high risk before the cancellation, for the accounts that
    # quietly disengaged and then cancelled.
    churners = [a for a in simulation.accounts
                if str(a.profile) == "disengaging" and a.churned_at]
    for source, found in first_high.items():
        high_at = {(t, a): when for t, a, when in found}
        leads = [
            (a.churned_at - high_at[(a.tenant_id, a.account_id)]).total_seconds() / 86_400
            for a in churners
            if (a.tenant_id, a.account_id) in high_at
            and a.churned_at and high_at[(a.tenant_id, a.account_id)] < a.churned_at
        ]
        median = f"{statistics.median(leads):.1f}" if leads else "n/a"
        print(f"disengaging accounts that cancelled: {len(leads)} of {len(churners)} reached "
              f"high risk ({source}) before cancelling, a median {median} day(s) ahead")


def _print_decisions(
    decisions: list[tuple], examples: list[tuple], triggers: list[tuple],
    first_triggers: list[tuple], signals: list[tuple], ledger: list[tuple],
) -> None:
    total = sum(n for _, _, n in decisions)
    print(f"\ndecisions (table decisions, policy decisions/policies/default.yaml): {total}, "
          "one per alert, each with its reason:")
    _table(("decision", "reason", "count"), [(d, r, n) for d, r, n in decisions])
    print("\none example per reason:")
    _table(
        ("reason", "tenant", "account", "trigger", "workflow", "detail", "decided at (UTC)"),
        [(r, t, a, trig, wf or "-", detail, _time(when))
         for r, t, a, trig, wf, detail, when in examples],
    )
    print(f"\nworkflow triggers (topic churn.workflow-triggers, table workflow_triggers): "
          f"{sum(r[3] for r in triggers)}")
    _table(("workflow", "action", "variant", "count"),
           [(w, a, v or "-", n) for w, a, v, n in triggers])
    print("first 8:")
    _table(
        ("tenant", "account", "workflow", "action", "trigger", "variant", "triggered at (UTC)"),
        [(t, a, w, act, trig, v or "-", _time(when))
         for t, a, w, act, trig, v, when in first_triggers],
    )
    print("workflow signals (early exits): " + (", ".join(
        f"{signal} after {cause}: {n}" for signal, cause, n in signals) or "none"))
    print("contact ledger: " + (", ".join(f"{c}: {n}" for c, n in ledger) or "empty"))


def _feature_sample(settings: Settings, simulation: Simulation) -> Callable[[], None]:
    """Read two accounts' vectors while Redis runs; return the printer for later."""
    assert settings.redis_url
    feature_set = load_definitions(settings.feature_definitions)
    store = RedisFeatureStore(
        redis.Redis.from_url(settings.redis_url), feature_set.names, feature_set.version,
        settings.feature_ttl, prefix=settings.redis_key_prefix,
    )
    sample = [a for a in simulation.accounts if str(a.profile) in ("steady", "disengaging")]
    picks = [next(a for a in sample if str(a.profile) == p) for p in ("steady", "disengaging")]
    shown = ("logins_7d", "logins_baseline_28d", "login_trend", "active_users_7d",
             "key_feature_events_7d", "days_since_last_activity", "seats")
    rows = []
    for account in picks:
        vector = store.get(account.tenant_id, account.account_id)
        if vector is not None:
            rows.append((f"{account.tenant_id}:{account.account_id}", str(account.profile),
                         *(f"{vector.values[n]:.2f}".rstrip("0").rstrip(".") for n in shown)))
    store.close()

    def show() -> None:
        print(f"\nonline features in Redis (feature_version {feature_set.version}):")
        _table(("account", "truth", *shown), rows)

    return show


def _print_counts(
    metrics: PipelineMetrics, alerts: int, cancellations: int, produced: int, seconds: float
) -> None:
    summary = metrics.summary()
    rejected = dict(sorted(
        (s.labels["reason"], int(s.value))
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name == "churnwatch_ingest_rejected_total"
    ))
    messages = summary["messages"]
    print("\ncounts")
    print(f"  messages in          {messages:>9,}  ({messages / seconds:,.0f}/s over "
          f"{seconds:.1f}s, startup included)")
    print(f"  valid events         {summary['events']:>9,}")
    print(f"  duplicates dropped   {summary['duplicates']:>9,}")
    print(f"  late (side output)   {summary['late']:>9,}")
    print(f"  dead-lettered        {sum(rejected.values()):>9,}  {rejected}")
    print(f"  alerts               {alerts:>9,}")
    print(f"  cancellations        {cancellations:>9,}")
    if messages != produced:
        print(f"  WARNING: produced {produced:,} but read {messages:,}")
