"""The churnwatch dataflow: Kafka events to alerts, signals, features, scores and decisions.

This package is the only one that imports Bytewax. :func:`build_dataflow`
composes a few named composite operators (Bytewax ``@operator``; their step
ids nest, e.g. ``process-accounts.process-account``), each wiring engine-free
kernels (``accounts``, ``detectors``, ``scoring``, ``decisions``) through the
adapters of :mod:`dataflows.logic` into operators::

    kafka-in → parse-messages ─┬─► dead-letters-out (Kafka DLQ)
                               ├─► track-inactivity (one tracker per input partition) ─┐
                               ▼                                                       │
                         process-accounts (dedupe, tier 1, lateness, features,         │
                               │            usage detectors at day close)              │
                               ├─► features-redis-out, late-events-out,                │
                               │   cancellations-postgres-out                          │
                               ├─► usage signals, alerts ◄─────────────────────────────┘
                               └─► decision feed (score requests, lifecycle changes,
                                   usage alerts, in the account's order)
                                         ▼
                               score-and-decide (one ONNX call per batch; risk tier;
                                   decisions) ──► write-decisions (risk_scores,
                                   churn.scores, decisions + triggers + ledger,
                                   churn.workflow-triggers); tier rises → alerts
    alerts of every tier + usage signals ──► write-alerts-and-signals (Kafka, Postgres)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import Source
from bytewax.outputs import Sink

from accounts.config import AccountConfig
from accounts.debounce import ScoreRequest
from accounts.processor import AccountProcessor, AccountSnapshot
from dataflows.logic import (
    AccountLogic,
    AccountRiskLogic,
    InactivityLogic,
    RiskInput,
    RiskSnapshot,
)
from dataflows.metrics import PipelineMetrics
from dataflows.outputs import utc_now
from dataflows.parse import MessageParser
from decisions.engine import DecisionEngine
from detectors.inactivity import ActivityBatch, InactivityTracker, TrackerSnapshot
from detectors.usage import InactivityRule
from featurestore.redis_store import FeatureUpdate
from schemas.alert import Alert, AlertTier
from schemas.clock import DAY
from schemas.dead_letter import DeadLetter, LateEvent
from schemas.event import Event, EventLimits, subject_key
from schemas.lifecycle import AccountChange, Cancellation
from schemas.score import RiskScore
from schemas.signal import UsageSignal
from schemas.workflow import WorkflowSignal, WorkflowTrigger
from scoring.model import RiskModel
from scoring.risk import RiskPolicy, score_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FlowSinks:
    """Where the dataflow's outputs go (Bytewax sinks)."""

    dead_letters: Sink[Any]
    alerts_kafka: Sink[Any]
    alerts_postgres: Sink[Any]
    cancellations: Sink[Any]
    late_events: Sink[Any]
    features: Sink[Any]
    usage_signals: Sink[Any]
    risk_scores: Sink[Any] | None = None  # Postgres risk_scores (when a model is loaded)
    scores_kafka: Sink[Any] | None = None  # churn.scores
    # Decisions, triggers, signals, assignments, consent (Postgres, one transaction per batch)
    decisions: Sink[Any] | None = None
    workflows_kafka: Sink[Any] | None = None  # churn.workflow-triggers


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """What the dataflow needs from settings."""

    limits: EventLimits
    account: AccountConfig
    # Wall-clock idle time after which an account's in-memory state is dropped;
    # longer than any window, so only state that expired in event time goes.
    idle_state_ttl: timedelta
    inactivity: InactivityRule
    # How long an account's changed features may wait before their Redis write.
    feature_flush_interval: timedelta = timedelta(seconds=5)
    scoring: ScoringStage | None = None

    @property
    def feature_version(self) -> str:
        return self.account.features.feature_set.version


@dataclass(frozen=True)
class ScoringStage:
    """The loaded models and the risk policy (one call per model per batch)."""

    model: RiskModel
    policy: RiskPolicy
    shadow: RiskModel | None = None
    decisions: DecisionEngine | None = None  # None: scores and tiers, no decisions

    def score(self, items: list[Any]) -> list[Any]:
        """Score the batch's requests with one call per model; keep every item's place.

        Each request is replaced by its score (then its shadow's); other items
        (lifecycle changes, usage alerts) pass through where they were, so an
        account's inputs reach its decisions in the order they were produced.
        """
        requests = [item for item in items if isinstance(item, ScoreRequest)]
        if not requests:
            return items
        scores = iter(score_batch(requests, self.model, self.policy))
        shadows = iter(
            score_batch(requests, self.shadow, self.policy, shadow=True)
            if self.shadow is not None
            else ()
        )
        out: list[Any] = []
        for item in items:
            if isinstance(item, ScoreRequest):
                out.append(next(scores))
                if self.shadow is not None:
                    out.append(next(shadows))
            else:
                out.append(item)
        return out


@dataclass(frozen=True)
class ParsedMessages:
    """What :func:`parse_messages` splits the input into."""

    events: Stream[Event]
    dead_letters: Stream[DeadLetter]
    activity: Stream[ActivityBatch]  # one summary per input partition per batch


@operator
def parse_messages(
    step_id: str, messages: Stream[Any], parser: MessageParser
) -> ParsedMessages:
    """Kafka messages to valid events, dead letters and per-partition activity summaries
    (one Python call per input batch)."""
    parsed = op.flat_map_batch("parse-events", messages, parser.parse_batch)
    activity, parsed = _split("split-activity", parsed, ActivityBatch)
    split = op.branch("split-dead-letters", parsed, _is_event)
    # what is neither an activity summary nor an event is a dead letter
    return ParsedMessages(split.trues, cast(Stream[DeadLetter], split.falses), activity)


@dataclass(frozen=True)
class AccountOutputs:
    """What :func:`process_accounts` produces, by destination."""

    features: Stream[FeatureUpdate]
    late: Stream[LateEvent]
    dead_letters: Stream[DeadLetter]  # events whose handling raised (processing_error)
    cancellations: Stream[Cancellation]
    signals: Stream[UsageSignal]
    alerts: Stream[Alert]  # tier 1 and the account's own usage signals
    # Score requests, lifecycle changes and usage alerts, in the order the account
    # produced them (what the decisions need); None without scoring.
    decision_feed: Stream[Any] | None


@operator
def process_accounts(
    step_id: str,
    events: Stream[Event],
    build_logic: Callable[[AccountSnapshot | None], AccountLogic],
    *,
    scoring: bool,
) -> AccountOutputs:
    """Each account's events through its :class:`~accounts.processor.AccountProcessor`
    (dedupe, tier-1 detectors, lateness, features, usage detectors at day close)."""
    keyed = op.key_on("key-by-account", events, _subject)
    processed = op.stateful_batch("process-account", keyed, build_logic)
    outputs = op.map("drop-account-key", processed, _value)
    features, rest = _split("split-features", outputs, FeatureUpdate)
    late, rest = _split("split-late", rest, LateEvent)
    dead_letters, rest = _split("split-dead-letters", rest, DeadLetter)
    decision_feed = None
    if scoring:
        # ONE stream carries what the decisions need from process-account
        # (score requests, lifecycle changes, usage alerts), so an account's
        # items keep the order they were produced in: two merged streams would not.
        decision_feed = op.filter("decision-feed", rest, _feeds_decisions)
        rest = op.filter("drop-decision-only", rest, _not_decision_only)
    cancellations, rest = _split("split-cancellations", rest, Cancellation)
    signals, alerts = _split("split-signals", rest, UsageSignal)
    return AccountOutputs(
        features, late, dead_letters, cancellations, signals, alerts, decision_feed
    )


@operator
def track_inactivity(
    step_id: str,
    activity: Stream[ActivityBatch],
    build_logic: Callable[[TrackerSnapshot | None], InactivityLogic],
) -> Stream[UsageSignal]:
    """Inactivity signals: one tracker per input partition, fed in the partition's read
    order and judged on its watermark (a silent account sends nothing to react to)."""
    by_partition = op.key_on("key-by-partition", activity, _partition_key)
    return op.map(
        "drop-partition-key", op.stateful_batch("track", by_partition, build_logic), _value
    )


@dataclass(frozen=True)
class RiskOutputs:
    """What :func:`score_and_decide` produces."""

    scores: Stream[RiskScore]
    tier_alerts: Stream[Alert]
    decided: Stream[Any]  # decision records, triggers, signals, assignments


@operator
def score_and_decide(
    step_id: str,
    decision_feed: Stream[Any],
    idle_alerts: Stream[Alert],
    scoring: ScoringStage,
    build_logic: Callable[[RiskSnapshot | None], AccountRiskLogic],
) -> RiskOutputs:
    """Score due accounts (one model call per batch), track each account's risk tier
    and decide on every alert under the policy."""
    scored = op.flat_map_batch("score-accounts", decision_feed, scoring.score)
    # Tier-1 alerts reach the decisions inside the score they made due (so the
    # decision sees the risk the event caused); usage alerts directly.
    inputs = op.merge("risk-inputs", scored, idle_alerts)
    keyed = op.key_on("key-risk-by-account", inputs, _input_subject)
    risk = op.map(
        "drop-risk-key", op.stateful_batch("track-risk-and-decide", keyed, build_logic), _value
    )
    scores, risk = _split("split-risk-scores", risk, RiskScore)
    tier_alerts, decided = _split("split-tier-alerts", risk, Alert)
    return RiskOutputs(scores, tier_alerts, decided)


def build_dataflow(
    source: Source[Any],
    sinks: FlowSinks,
    config: FlowConfig,
    metrics: PipelineMetrics,
    *,
    clock: Callable[[], datetime] = utc_now,
    flow_id: str = "churnwatch",
) -> Dataflow:
    """Wire the churnwatch dataflow over ``source`` (Kafka messages)."""
    activity = config.account.features.feature_set[config.inactivity.feature]
    parser = MessageParser(
        config.limits, clock, metrics, activity.matches, config.inactivity.days * DAY
    )

    def build_account(snapshot: AccountSnapshot | None) -> AccountLogic:
        return AccountLogic(
            AccountProcessor(config.account, snapshot),
            metrics,
            clock,
            config.idle_state_ttl,
            config.feature_flush_interval,
            restored=snapshot is not None,
        )

    def build_tracker(snapshot: TrackerSnapshot | None) -> InactivityLogic:
        return InactivityLogic(
            InactivityTracker(
                config.inactivity,
                config.account.allowed_lateness_seconds,
                config.feature_version,
                snapshot=snapshot,
            ),
            metrics,
        )

    scoring = config.scoring
    flow = Dataflow(flow_id)
    messages = op.input("kafka-in", flow, source)
    parsed = parse_messages("parse-messages", messages, parser)
    accounts = process_accounts(
        "process-accounts", parsed.events, build_account, scoring=scoring is not None
    )
    dead_letters = op.merge("all-dead-letters", parsed.dead_letters, accounts.dead_letters)
    op.output("dead-letters-out", dead_letters, sinks.dead_letters)
    op.output("features-redis-out", accounts.features, sinks.features)
    op.output("late-events-out", accounts.late, sinks.late_events)
    op.inspect(
        "count-cancellations", accounts.cancellations, lambda _s, _c: metrics.cancellations.inc()
    )
    op.output("cancellations-postgres-out", accounts.cancellations, sinks.cancellations)

    idle_signals = track_inactivity("track-inactivity", parsed.activity, build_tracker)
    idle_alerts = op.map("inactivity-alerts", idle_signals, _to_alert)
    signals = op.merge("all-signals", accounts.signals, idle_signals)
    alerts = op.merge("all-alerts", accounts.alerts, idle_alerts)
    if scoring is not None and accounts.decision_feed is not None:
        engine = scoring.decisions

        def build_risk(snapshot: RiskSnapshot | None) -> AccountRiskLogic:
            return AccountRiskLogic(snapshot, engine, clock, scoring.policy.ttl, metrics)

        risk = score_and_decide(
            "score-and-decide", accounts.decision_feed, idle_alerts, scoring, build_risk
        )
        consents = op.filter("consent-changes", accounts.decision_feed, _is_consent_change)
        write_decisions(
            "write-decisions",
            risk.scores,
            risk.decided,
            consents,
            sinks,
            metrics,
            decide=engine is not None,
        )
        alerts = op.merge("all-alerts-and-tiers", alerts, risk.tier_alerts)
    write_alerts_and_signals("write-alerts-and-signals", alerts, signals, sinks, metrics)
    return flow


@operator
def write_decisions(
    step_id: str,
    scores: Stream[RiskScore],
    decided: Stream[Any],
    consents: Stream[AccountChange],
    sinks: FlowSinks,
    metrics: PipelineMetrics,
    *,
    decide: bool,
) -> None:
    """Scores to Postgres and Kafka; decision records, workflow triggers and signals,
    assignments and consent changes to Postgres (one transaction per batch), triggers
    and signals to Kafka."""
    op.inspect(
        "count-scores",
        scores,
        lambda _s, score: metrics.scores.labels(
            tier=str(score.tier), shadow=str(score.shadow).lower()
        ).inc(),
    )
    if sinks.risk_scores is not None:
        op.output("risk-scores-postgres-out", scores, sinks.risk_scores)
    if sinks.scores_kafka is not None:
        op.output("scores-kafka-out", scores, sinks.scores_kafka)
    if not decide:
        return
    if sinks.workflows_kafka is not None:
        workflows = op.filter("workflow-messages", decided, _is_workflow_message)
        op.output("workflows-kafka-out", workflows, sinks.workflows_kafka)
    if sinks.decisions is not None:
        records = op.merge("decision-records", decided, consents)
        op.output("decisions-postgres-out", records, sinks.decisions)


@operator
def write_alerts_and_signals(
    step_id: str,
    alerts: Stream[Alert],
    signals: Stream[UsageSignal],
    sinks: FlowSinks,
    metrics: PipelineMetrics,
) -> None:
    """Alerts of every tier to Kafka and Postgres; usage signals to Postgres; both counted."""
    op.inspect("count-alerts", alerts, lambda _step, alert: _count_alert(metrics, alert))
    op.inspect(
        "count-signals",
        signals,
        lambda _s, signal: metrics.usage_signals.labels(signal_type=str(signal.signal_type)).inc(),
    )
    op.output("usage-signals-postgres-out", signals, sinks.usage_signals)
    op.output("alerts-kafka-out", alerts, sinks.alerts_kafka)
    op.output("alerts-postgres-out", alerts, sinks.alerts_postgres)


def _split(step_id: str, stream: Stream[Any], kind: type) -> tuple[Stream[Any], Stream[Any]]:
    """(items of ``kind``, everything else)."""
    out = op.branch(step_id, stream, lambda item: isinstance(item, kind))
    return out.trues, out.falses


def _count_alert(metrics: PipelineMetrics, alert: Alert) -> None:
    metrics.alerts.labels(tier=str(int(alert.tier)), severity=str(alert.severity)).inc()


def _to_alert(signal: UsageSignal) -> Alert:
    return signal.to_alert()


def _input_subject(item: RiskInput) -> str:
    return subject_key(item.tenant_id, item.account_id)


def _feeds_decisions(item: object) -> bool:
    if isinstance(item, Alert):
        return item.tier is AlertTier.USAGE_SIGNAL  # tier-1 alerts ride in their score
    return isinstance(item, ScoreRequest | AccountChange)


def _not_decision_only(item: object) -> bool:
    return not isinstance(item, ScoreRequest | AccountChange)


def _is_workflow_message(item: object) -> bool:
    return isinstance(item, WorkflowTrigger | WorkflowSignal)


def _is_consent_change(item: object) -> bool:
    return isinstance(item, AccountChange) and item.contact_allowed is not None


def _partition_key(batch: ActivityBatch) -> str:
    return f"partition-{batch.partition}"


def _is_event(item: object) -> TypeGuard[Event]:
    return isinstance(item, Event)


def _subject(event: Event) -> str:
    return event.subject


def _value(pair: tuple[str, Any]) -> Any:
    return pair[1]
