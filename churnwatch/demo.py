"""``churnwatch demo``: the whole pipeline on the embedded local stack, in one go.

Starts the stack, creates topics, produces a simulated stream, runs the
dataflow until the stream is drained, prints the alerts, the usage signals
against the simulator's ground truth, the decisions and workflow triggers, a
sample of the online features and the counts, and stops everything. Each run
starts from empty state. With ``--serve`` it keeps the stack up instead and serves the
REST API and its console over the results until Ctrl-C.

Either simulated product: the B2B SaaS (``saas``, the shipped definitions, policy and
model) or the consumer social app (``social``: ``simulate --product social`` with the
definitions, policy and model of ``examples/social``).
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from churnwatch.errors import ChurnwatchError
from churnwatch.localstack import LocalStack
from churnwatch.settings import Settings
from churnwatch.simulator import AccountTruth, Simulation
from dataflows.metrics import PipelineMetrics
from featurestore.definitions import load_definitions
from featurestore.redis_store import RedisFeatureStore
from schemas.event import format_time
from sinks.postgres import connect

TIER1_ROWS = 12
TIER2_ROWS = 16
# examples/ sits beside the packages in the repository (the demo runs from a checkout).
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True, slots=True)
class DemoProduct:
    """A simulated product the demo can run: its stream, its files, and how to read its
    ground truth."""

    name: str
    # (accounts, days, seed, start or None for the default) -> the stream
    simulate: Callable[[int, int, int, datetime | None], Simulation]
    # None: the settings' own (the shipped default)
    definitions: Path | None
    policy: Path | None
    model: Path | None
    profiles: tuple[str, ...]  # in the order the truth table shows them
    # The churners the signals and scores should foresee, and what to call them.
    foreseeable: Callable[[AccountTruth], bool]
    foreseeable_label: str
    sample_profiles: tuple[str, ...]  # one account of each, to show its online features
    shown_features: tuple[str, ...]
    # Whether the truth column adds "cancelled" (a profile that does not say it already).
    marks_cancelled: bool = False
    # The run's size unless given: enough churners to read the tables by.
    default_accounts: int = 300
    default_days: int = 30

    def truth(self, account: AccountTruth) -> str:
        """What the truth column says of an account."""
        if self.marks_cancelled and account.churned_at is not None:
            return f"{account.profile}, cancelled"
        return str(account.profile)


def _simulate_saas(accounts: int, days: int, seed: int, start: datetime | None) -> Simulation:
    from churnwatch.simulator import simulate

    if start is None:
        return simulate(accounts=accounts, days=days, seed=seed, opt_out_rate=0.05, traits=True)
    return simulate(accounts=accounts, days=days, seed=seed, opt_out_rate=0.05, start=start,
                    traits=True)


def _simulate_social(accounts: int, days: int, seed: int, start: datetime | None) -> Simulation:
    from churnwatch.simulator_social import simulate_social

    if start is None:
        return simulate_social(accounts=accounts, days=days, seed=seed)
    return simulate_social(accounts=accounts, days=days, seed=seed, start=start)


PRODUCTS = {
    "saas": DemoProduct(
        name="saas",
        simulate=_simulate_saas,
        definitions=None,
        policy=None,
        model=None,
        profiles=("disengaging", "involuntary", "downgrader", "steady"),
        foreseeable=lambda a: str(a.profile) == "disengaging" and a.churned_at is not None,
        foreseeable_label="disengaging accounts that cancelled",
        sample_profiles=("steady", "disengaging"),
        shown_features=("logins_7d", "logins_baseline_28d", "login_trend", "active_users_7d",
                        "key_feature_events_7d", "days_since_last_activity", "seats"),
    ),
    "social": DemoProduct(
        name="social",
        simulate=_simulate_social,
        definitions=EXAMPLES / "social" / "definitions.yaml",
        policy=EXAMPLES / "social" / "policy.yaml",
        model=EXAMPLES / "social" / "model",
        profiles=("creator", "connector", "viewer"),
        foreseeable=lambda a: a.churn_reason not in (None, "payment_failed"),
        foreseeable_label="subscribers who cancelled at a renewal",
        sample_profiles=("connector", "viewer"),
        shown_features=("opens_7d", "opens_28d", "social_actions_28d", "passive_actions_28d",
                        "social_to_passive_28d", "days_to_renewal", "months_subscribed"),
        marks_cancelled=True,
        # ~2.5 % a month: a thousand subscribers over six weeks give some 30 cancellations.
        default_accounts=1000,
        default_days=45,
    ),
}


class DemoError(ChurnwatchError):
    """The demo cannot run as asked (a product's example files are missing)."""


def product_settings(settings: Settings, product: DemoProduct) -> Settings:
    """``settings`` with the product's definitions, policy and model (those it names)."""
    missing = [str(p) for p in (product.definitions, product.policy, product.model)
               if p is not None and not p.exists()]
    if missing:
        msg = (f"the {product.name} demo needs {', '.join(missing)} (run it from a "
               "churnwatch checkout; 'make social-model' builds the model)")
        raise DemoError(msg)
    changes: dict[str, object] = {}
    if product.definitions is not None:
        changes["feature_definitions"] = product.definitions
    if product.policy is not None:
        changes["policy_file"] = product.policy
    if product.model is not None:
        changes["model_dir"] = product.model
    return settings.replace(**changes) if changes else settings


def run_demo(
    settings: Settings, *, accounts: int | None = None, days: int | None = None, seed: int = 7,
    serve_port: int | None = None, serve_host: str = "127.0.0.1", product: str = "saas",
) -> int:
    """Run the demo of ``product`` (``saas`` or ``social``; ``accounts`` and ``days``
    default to the product's); with ``serve_port``, then keep the stack up and serve the
    API and the console over its results until Ctrl-C (``churnwatch demo --serve``)."""
    from churnwatch.app import prepare, run_pipeline
    from churnwatch.simulator import produce

    started = time.monotonic()
    chosen = PRODUCTS[product]
    accounts = chosen.default_accounts if accounts is None else accounts
    days = chosen.default_days if days is None else days
    settings = product_settings(settings, chosen)
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
            simulation = chosen.simulate(accounts, days, seed, None)
        else:  # served, the history ends today: its alerts are recent, not read as expired
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            simulation = chosen.simulate(accounts, days, seed, today - timedelta(days=days))
        prepare(running)
        produced = produce(simulation, running.kafka_bootstrap or "", running.topics.events,
                           config=running.kafka_config.properties)
        print(
            f"produced {produced:,} messages ({accounts} accounts, {days} days, seed {seed}) "
            f"to {running.topics.events}"
        )
        if chosen.definitions is not None:
            print(f"product {chosen.name}: definitions {_shown_path(chosen.definitions)}, "
                  f"policy {_shown_path(chosen.policy or '-')}, "
                  f"model {_shown_path(chosen.model or '-')}")
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
                ("the model alone", f"ml_score >= {_model_high_at(running)}"),
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
        account_rows = _query(
            running,
            "SELECT status, count(*), count(mrr), coalesce(sum(mrr), 0),"
            " coalesce(sum(mrr) FILTER (WHERE latest_tier = 'high'), 0),"
            " count(*) FILTER (WHERE latest_tier = 'high')"
            " FROM accounts GROUP BY status ORDER BY status",
        )
        show_features = _feature_sample(running, simulation, chosen)
        _print_alerts(alerts)
        _print_signals(signals, simulation, chosen)
        _print_scores(scores, first_high, simulation, chosen)
        _print_accounts(account_rows)
        _print_decisions(decisions, examples, triggers, first_triggers, workflow_signals,
                         ledger, chosen.policy or "decisions/policies/default.yaml")
        show_features()
        _print_counts(metrics, len(alerts), cancellations, produced, flow_seconds)
        if serve_port is not None:
            _serve_console(running, serve_host, serve_port)
    print(f"\ndemo finished in {time.monotonic() - started:.1f}s; local stack stopped")
    return 0


def _model_high_at(settings: Settings) -> float:
    """Where the live model's high tier begins: its own tiers (set by training) unless
    the settings fix them."""
    from churnwatch.wiring import risk_policy
    from scoring.model import read_metadata

    policy = risk_policy(settings)
    if settings.model_dir is None or not policy.tiers_from_model:
        return policy.high_at
    tiers = read_metadata(settings.model_dir).tiers
    return policy.high_at if tiers is None else tiers.high_at


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


def _print_signals(rows: list[tuple], simulation: Simulation, product: DemoProduct) -> None:
    profiles = {(a.tenant_id, a.account_id): product.truth(a) for a in simulation.accounts}
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
    churned_on = {(a.tenant_id, a.account_id): a.churned_at.date()
                  for a in simulation.accounts if a.churned_at}
    first_signal: dict[tuple[str, str], object] = {}
    for t, a, _, day, _, _ in rows:
        if (t, a) not in churned_on or day <= churned_on[(t, a)]:  # a warning, not an echo
            first_signal.setdefault((t, a), day)
    print("\nagainst the simulator's ground truth:")
    for profile in product.profiles:
        members = [(a.tenant_id, a.account_id) for a in simulation.accounts
                   if str(a.profile) == profile]
        hit = [k for k in members if k in flagged]
        print(f"  {profile:<12} {len(hit):>4} of {len(members):>4} accounts flagged")
    if product.marks_cancelled:
        churned = [(a.tenant_id, a.account_id) for a in simulation.accounts if a.churned_at]
        hit = [k for k in churned if k in flagged]
        print(f"  {'cancelled':<12} {len(hit):>4} of {len(churned):>4} accounts flagged")
    leads = [
        (a.churned_at.date() - first_signal[(a.tenant_id, a.account_id)]).days  # type: ignore[operator]
        for a in simulation.accounts
        if product.foreseeable(a) and a.churned_at
        and (a.tenant_id, a.account_id) in first_signal
    ]
    if leads:
        print(f"  {product.foreseeable_label}: first usage signal a median "
              f"{statistics.median(leads):g} day(s) before the cancellation "
              f"(range {min(leads)}..{max(leads)})")


def _print_scores(
    latest: list[tuple], first_high: dict[str, list[tuple]], simulation: Simulation,
    product: DemoProduct,
) -> None:
    profiles = {(a.tenant_id, a.account_id): product.truth(a) for a in simulation.accounts}
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
    # cancelled without a decisive event to warn of it.
    churners = [a for a in simulation.accounts if product.foreseeable(a) and a.churned_at]
    for source, found in first_high.items():
        high_at = {(t, a): when for t, a, when in found}
        leads = [
            (a.churned_at - high_at[(a.tenant_id, a.account_id)]).total_seconds() / 86_400
            for a in churners
            if (a.tenant_id, a.account_id) in high_at
            and a.churned_at and high_at[(a.tenant_id, a.account_id)] < a.churned_at
        ]
        median = f"{statistics.median(leads):.1f}" if leads else "n/a"
        print(f"{product.foreseeable_label}: {len(leads)} of {len(churners)} reached "
              f"high risk ({source}) before cancelling, a median {median} day(s) ahead")


def _print_accounts(rows: list[tuple]) -> None:
    """The accounts table by status, with the MRR at risk (high tier, still active)."""
    print("\naccounts (table accounts, from traits, lifecycle events and scores):")
    _table(
        ("status", "accounts", "with MRR", "MRR", "high tier", "MRR at risk"),
        [(status, n, with_mrr, f"{float(mrr):,.2f}", high, f"{float(at_risk):,.2f}"
          if status == "active" else "-")
         for status, n, with_mrr, mrr, at_risk, high in rows],
    )


def _print_decisions(
    decisions: list[tuple], examples: list[tuple], triggers: list[tuple],
    first_triggers: list[tuple], signals: list[tuple], ledger: list[tuple],
    policy: Path | str,
) -> None:
    total = sum(n for _, _, n in decisions)
    print(f"\ndecisions (table decisions, policy {_shown_path(policy)}): {total}, "
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


def _shown_path(path: Path | str) -> str:
    """A path relative to the checkout when it is in it (shorter to read)."""
    try:
        return str(Path(path).resolve().relative_to(EXAMPLES.parent))
    except ValueError:
        return str(path)


def _feature_sample(
    settings: Settings, simulation: Simulation, product: DemoProduct
) -> Callable[[], None]:
    """Read two accounts' vectors while Redis runs; return the printer for later."""
    assert settings.redis_url
    feature_set = load_definitions(settings.feature_definitions)
    store = RedisFeatureStore(
        redis.Redis.from_url(settings.redis_url), feature_set.names, feature_set.version,
        settings.feature_ttl, prefix=settings.redis_key_prefix,
    )
    picks = [
        found
        for profile in product.sample_profiles
        if (found := next((a for a in simulation.accounts if str(a.profile) == profile), None))
    ]
    shown = tuple(n for n in product.shown_features if n in feature_set.names)
    rows = []
    for account in picks:
        vector = store.get(account.tenant_id, account.account_id)
        if vector is not None:
            rows.append((f"{account.tenant_id}:{account.account_id}", product.truth(account),
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
