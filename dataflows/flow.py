"""The churnwatch dataflow: Kafka events to alerts, signals, features, scores and decisions.

This package is the only one that imports Bytewax. It wires the pure pieces
(``schemas`` parsing, :class:`~accounts.processor.AccountProcessor`,
:class:`~detectors.inactivity.InactivityTracker`, the scoring and decision
engines, the ``sinks``) into operators::

    kafka-in → parse-events → split-dead-letters ─► dead-letters-out (Kafka DLQ)
                    │
                    ├─► activity per partition → key-by-partition → track-inactivity ─┐
                    │                                                                 │
          key-by-account → process-account ─┬─► features-redis-out (one hash write per account)
                                            ├─► late-events-out (Kafka)
                                            ├─► cancellations-postgres-out
                                            ├─► usage signals, alerts ◄───────────────────────┘
                                            │     ├─► usage-signals-postgres-out
                                            │     └─► alerts-kafka-out, alerts-postgres-out
                                            ├─► score requests → score-accounts (one ONNX call)
                                            └─► lifecycle changes (consent, payment, renewal ...)
          (one ordered feed) scores + usage alerts + changes, and inactivity alerts
              → key-risk-by-account → track-risk-and-decide
              ├─► risk-scores-postgres-out, scores-kafka-out; tier rises → the alerts above
              ├─► workflows-kafka-out (workflow triggers and signals)
              └─► decisions-postgres-out (decisions, triggers + ledger, signals,
                                          assignments, consent: one transaction per batch)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from accounts.config import AccountConfig
from accounts.debounce import ScoreRequest
from accounts.processor import AccountProcessor, AccountSnapshot
from dataflows.logic import AccountLogic, AccountRiskLogic, InactivityLogic, RiskInput
from dataflows.metrics import PipelineMetrics
from dataflows.outputs import utc_now
from dataflows.parse import MessageParser
from decisions.engine import DecisionEngine
from detectors.inactivity import ActivityBatch, InactivityTracker, TrackerSnapshot
from detectors.usage import InactivityRule
from featurestore.redis_store import FeatureUpdate
from schemas.alert import Alert, AlertTier
from schemas.dead_letter import LateEvent
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
        config.limits, clock, metrics, activity.matches, config.inactivity.days * 86_400.0
    )
    lateness = config.account.allowed_lateness_seconds

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
                config.inactivity, lateness, config.feature_version, snapshot=snapshot
            ),
            metrics,
        )

    flow = Dataflow(flow_id)
    messages = op.input("kafka-in", flow, source)
    parsed = op.flat_map_batch("parse-events", messages, parser.parse_batch)
    activity_batches, parsed = _split("split-activity", parsed, ActivityBatch)
    split = op.branch("split-dead-letters", parsed, _is_event)
    op.output("dead-letters-out", split.falses, sinks.dead_letters)
    keyed = op.key_on("key-by-account", split.trues, _subject)
    processed = op.stateful_batch("process-account", keyed, build_account)
    outputs = op.map("drop-account-key", processed, _value)

    features, rest = _split("split-features", outputs, FeatureUpdate)
    op.output("features-redis-out", features, sinks.features)
    late, rest = _split("split-late", rest, LateEvent)
    op.output("late-events-out", late, sinks.late_events)
    scoring = config.scoring
    if scoring is not None:
        # ONE stream carries what the decisions need from process-account
        # (score requests, lifecycle changes, usage alerts), so an account's
        # items keep the order they were produced in: two merged streams would
        # not. Requests are scored in place.
        decision_feed = op.filter("decision-feed", rest, _feeds_decisions)
        rest = op.filter("drop-decision-only", rest, _not_decision_only)
        scored = op.flat_map_batch("score-accounts", decision_feed, scoring.score)
    cancellations, rest = _split("split-cancellations", rest, Cancellation)
    op.inspect("count-cancellations", cancellations, lambda _s, _c: metrics.cancellations.inc())
    op.output("cancellations-postgres-out", cancellations, sinks.cancellations)
    account_signals, account_alerts = _split("split-signals", rest, UsageSignal)

    # One tracker per input partition, fed in the partition's read order.
    by_partition = op.key_on("key-by-partition", activity_batches, _partition_key)
    idle_signals = op.map(
        "drop-partition-key",
        op.stateful_batch("track-inactivity", by_partition, build_tracker),
        _value,
    )
    idle_alerts = op.map("inactivity-alerts", idle_signals, _to_alert)

    signals = op.merge("all-signals", account_signals, idle_signals)
    alerts = op.merge("all-alerts", account_alerts, idle_alerts)
    if scoring is not None:
        # Tier-1 alerts reach the decisions inside the score they made due (so
        # the decision sees the risk the event caused); usage alerts directly.
        inputs = op.merge("risk-inputs", scored, idle_alerts)
        engine = scoring.decisions
        risk = op.map(
            "drop-risk-key",
            op.stateful_batch(
                "track-risk-and-decide",
                op.key_on("key-risk-by-account", inputs, _input_subject),
                lambda state: AccountRiskLogic(state, engine, clock, scoring.policy.ttl, metrics),
            ),
            _value,
        )
        risk_scores, risk = _split("split-risk-scores", risk, RiskScore)
        tier_alerts, decided = _split("split-tier-alerts", risk, Alert)
        op.inspect(
            "count-scores",
            risk_scores,
            lambda _s, score: metrics.scores.labels(
                tier=str(score.tier), shadow=str(score.shadow).lower()
            ).inc(),
        )
        if sinks.risk_scores is not None:
            op.output("risk-scores-postgres-out", risk_scores, sinks.risk_scores)
        if sinks.scores_kafka is not None:
            op.output("scores-kafka-out", risk_scores, sinks.scores_kafka)
        if engine is not None:
            if sinks.workflows_kafka is not None:
                workflows = op.filter("workflow-messages", decided, _is_workflow_message)
                op.output("workflows-kafka-out", workflows, sinks.workflows_kafka)
            if sinks.decisions is not None:
                consents = op.filter("consent-changes", decision_feed, _is_consent_change)
                records = op.merge("decision-records", decided, consents)
                op.output("decisions-postgres-out", records, sinks.decisions)
        alerts = op.merge("all-alerts-and-tiers", alerts, tier_alerts)
    op.inspect("count-alerts", alerts, lambda _step, alert: _count_alert(metrics, alert))
    op.inspect(
        "count-signals",
        signals,
        lambda _s, signal: metrics.usage_signals.labels(signal_type=str(signal.signal_type)).inc(),
    )
    op.output("usage-signals-postgres-out", signals, sinks.usage_signals)
    op.output("alerts-kafka-out", alerts, sinks.alerts_kafka)
    op.output("alerts-postgres-out", alerts, sinks.alerts_postgres)
    return flow


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
