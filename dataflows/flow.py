"""The churnwatch dataflow: Kafka events to alerts, signals, features, scores and decisions.

This package is the only one that imports Bytewax. It wires the pure pieces
(``schemas`` parsing, :class:`~dataflows.account.AccountProcessor`,
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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition

from dataflows.account import AccountConfig, AccountProcessor, AccountSnapshot, Output
from dataflows.metrics import PipelineMetrics
from dataflows.parse import MessageParser
from detectors.inactivity import ActivityBatch, InactivityTracker, TrackerSnapshot
from detectors.lifecycle import AccountChange
from detectors.tier1 import Cancellation
from detectors.usage import InactivityRule, UsageSignal
from featurestore.redis_store import FeatureUpdate
from schemas.alert import Alert, AlertTier
from schemas.dead_letter import LateEvent
from schemas.event import Event, EventLimits, subject_key
from schemas.workflow import WorkflowSignal, WorkflowTrigger
from scoring.decision import (
    AccountDecisions,
    DecisionEngine,
    DecisionOutput,
    DecisionRecord,
)
from scoring.model import RiskModel
from scoring.risk import (
    RiskPolicy,
    RiskScore,
    RiskTier,
    RiskTierTracker,
    ScoreRequest,
    score_batch,
)

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class BatchWriter(Protocol):
    """The contract every churnwatch sink meets (see ``sinks``)."""

    def write_batch(self, items: Sequence[Any]) -> Any: ...

    def close(self) -> None: ...


class _WriterPartition(StatelessSinkPartition[Any]):
    def __init__(
        self,
        writer: BatchWriter,
        name: str,
        metrics: PipelineMetrics,
        on_written: Callable[[list[Any]], None] | None,
    ) -> None:
        self._writer = writer
        self._name = name
        self._written = metrics.sink_writes.labels(sink=name)
        self._errors = metrics.sink_errors.labels(sink=name)
        self._seconds = metrics.sink_seconds.labels(sink=name)
        self._on_written = on_written

    def write_batch(self, items: list[Any]) -> None:
        started = time.perf_counter()
        try:
            self._writer.write_batch(items)
        except Exception:
            self._errors.inc()
            log.exception("sink %s failed to write a batch of %d", self._name, len(items))
            raise  # the dataflow stops; a restart resumes from the last snapshot
        self._seconds.observe(time.perf_counter() - started)
        self._written.inc(len(items))
        if self._on_written is not None:
            self._on_written(items)

    def close(self) -> None:
        self._writer.close()


class WriterSink(DynamicSink[Any]):
    """A Bytewax sink over any :class:`BatchWriter`: one writer per worker.

    Times and counts every batch; ``on_written`` sees each batch once the
    writer has confirmed it (alert latency is measured there).
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[], BatchWriter],
        metrics: PipelineMetrics,
        on_written: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self._name = name
        self._factory = factory
        self._metrics = metrics
        self._on_written = on_written

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WriterPartition:
        return _WriterPartition(self._factory(), self._name, self._metrics, self._on_written)


def alert_latency_observer(
    metrics: PipelineMetrics, clock: Callable[[], float] = time.time
) -> Callable[[list[Alert]], None]:
    """Observes ingest→emission and event-time→emission latency, and logs the ids."""

    def observe(alerts: list[Alert]) -> None:
        now = clock()
        for alert in alerts:
            tier = str(int(alert.tier))
            if alert.ingested_at:
                metrics.alert_latency.labels(tier=tier, since="ingest").observe(
                    max(0.0, now - alert.ingested_at)
                )
            metrics.alert_latency.labels(tier=tier, since="event").observe(
                max(0.0, now - alert.event_time.timestamp())
            )
            log.info(
                "alert emitted",
                extra={
                    "alert_id": alert.alert_id,
                    "event_id": alert.trigger_event_id,
                    "tier": int(alert.tier),
                    "rule": alert.rule,
                },
            )

    return observe


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


class AccountLogic(StatefulBatchLogic[Event, Output, AccountSnapshot]):
    """Bytewax adapter around one account's :class:`AccountProcessor`."""

    def __init__(
        self,
        processor: AccountProcessor,
        metrics: PipelineMetrics,
        clock: Callable[[], datetime],
        idle_ttl: timedelta,
        flush_interval: timedelta,
        *,
        restored: bool = False,
    ) -> None:
        self._processor = processor
        self._metrics = metrics
        self._clock = clock
        self._idle_ttl = idle_ttl
        self._flush_interval = flush_interval
        self._last_active = clock()
        # Per-key calls are too many for a histogram each: accumulate busy time.
        self._busy = metrics.stage_busy.labels(stage="process-account")
        # When the pending feature write is due; after a restore, write once
        # (the crash may have lost the last write).
        self._flush_due: datetime | None = self._last_active if restored else None

    def on_batch(self, values: list[Event]) -> tuple[list[Output], bool]:
        started = time.perf_counter()
        result = self._processor.process(values)
        self._last_active = self._clock()
        if result.features_moved and self._flush_due is None:
            self._flush_due = self._last_active + self._flush_interval
        metrics = self._metrics
        if result.duplicates:
            metrics.duplicates.inc(result.duplicates)
        if result.late:
            metrics.late.inc(result.late)
        dedupe = self._processor.dedupe
        if dedupe.evicted_early:
            metrics.dedupe_evicted_early.inc(dedupe.evicted_early)
            dedupe.evicted_early = 0
        self._busy.inc(time.perf_counter() - started)
        return result.outputs, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime:
        idle_at = self._last_active + self._idle_ttl
        return idle_at if self._flush_due is None else min(idle_at, self._flush_due)

    def on_notify(self) -> tuple[list[Output], bool]:
        now = self._clock()
        outputs = self._flush() if self._flush_due is not None and now >= self._flush_due else []
        if now >= self._last_active + self._idle_ttl:
            return outputs, StatefulBatchLogic.DISCARD
        return outputs, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Output], bool]:
        return self._flush(), StatefulBatchLogic.RETAIN

    def _flush(self) -> list[Output]:
        self._flush_due = None
        update = self._processor.feature_update()
        return [] if update is None else [update]

    def snapshot(self) -> AccountSnapshot:
        return self._processor.snapshot()


RiskInput = RiskScore | Alert | AccountChange
# How long (wall clock, without news) a cancelled or opted-out account's decision
# state is kept: a final invoice's payment_failed must not start dunning.
REMEMBER_REFUSALS = timedelta(days=90)
RiskOutput = RiskScore | Alert | DecisionOutput
RiskSnapshot = tuple[tuple[str, float], tuple[object, ...] | None]


class AccountRiskLogic(StatefulBatchLogic[RiskInput, RiskOutput, RiskSnapshot]):
    """One account's risk tier (:class:`RiskTierTracker`) and decisions
    (:class:`AccountDecisions`): scores, usage alerts and lifecycle changes in;
    scores, tier-rise alerts, decision records, workflow triggers and signals out."""

    def __init__(
        self,
        snapshot: RiskSnapshot | None,
        engine: DecisionEngine | None,
        clock: Callable[[], datetime],
        score_ttl: timedelta,
        metrics: PipelineMetrics,
    ) -> None:
        tier_state, decision_state = snapshot or (None, None)
        self._tracker = RiskTierTracker(tier_state)
        self._engine = engine
        self._decisions = None if engine is None else AccountDecisions(engine, decision_state)
        self._clock = clock
        self._score_ttl = score_ttl
        self._metrics = metrics
        self._busy = metrics.stage_busy.labels(stage="track-risk-and-decide")
        self._touched = clock()

    def notify_at(self) -> datetime:
        return self._touched + self._idle_ttl()

    def _idle_ttl(self) -> timedelta:
        """After this long without news (wall clock), nothing is left to remember:
        the tier has lapsed and every window of the live policy has passed. A
        cancellation or an opt-out is kept longer (REMEMBER_REFUSALS)."""
        ttl = self._score_ttl
        decisions, engine = self._decisions, self._engine
        if decisions is not None and engine is not None:
            ttl = max(ttl, timedelta(seconds=engine.policy.longest_memory_seconds))
            if decisions.cancelled or (decisions.consent and not decisions.consent[0]):
                ttl = max(ttl, REMEMBER_REFUSALS)
        return ttl

    def on_notify(self) -> tuple[list[RiskOutput], bool]:
        return [], StatefulBatchLogic.DISCARD

    def on_batch(self, values: list[RiskInput]) -> tuple[list[RiskOutput], bool]:
        started = time.perf_counter()
        self._touched = self._clock()
        decisions = self._decisions
        out: list[RiskOutput] = []
        # In arrival order: an account's scores, usage alerts and changes share
        # one path from process-account (only inactivity alerts come another way).
        for item in values:
            if isinstance(item, RiskScore):
                out.append(item)
                tier_alert = self._tracker.update(item)
                if decisions is not None:
                    out += decisions.observe_score(item)
                if tier_alert is not None:
                    out.append(tier_alert)
                    if decisions is not None:
                        out += decisions.decide(tier_alert)
            elif decisions is None:
                continue
            elif isinstance(item, Alert):
                out += decisions.decide(item)
            else:
                out += decisions.observe_change(item)
        if decisions is not None:
            self._count(out)
        # A low tier with nothing to remember is the default state: drop it.
        done = self._tracker.tier is RiskTier.LOW and (decisions is None or decisions.forgettable())
        self._busy.inc(time.perf_counter() - started)
        return out, done

    def _count(self, outputs: list[RiskOutput]) -> None:
        metrics = self._metrics
        for item in outputs:
            if isinstance(item, DecisionRecord):
                metrics.decisions.labels(
                    decision=str(item.decision), reason=str(item.reasons[0])
                ).inc()
            elif isinstance(item, WorkflowTrigger):
                metrics.workflow_triggers.labels(
                    workflow=item.workflow_key, action=str(item.action)
                ).inc()
            elif isinstance(item, WorkflowSignal):
                metrics.workflow_signals.labels(signal=str(item.signal)).inc()

    def snapshot(self) -> RiskSnapshot:
        decisions = self._decisions
        return self._tracker.raw(), None if decisions is None else decisions.raw()


class InactivityLogic(StatefulBatchLogic[ActivityBatch, UsageSignal, TrackerSnapshot]):
    """Bytewax adapter around one partition's :class:`InactivityTracker`."""

    def __init__(self, tracker: InactivityTracker, metrics: PipelineMetrics) -> None:
        self._tracker = tracker
        self._seconds = metrics.stage_seconds.labels(stage="track-inactivity")

    def on_batch(self, values: list[ActivityBatch]) -> tuple[list[UsageSignal], bool]:
        started = time.perf_counter()
        signals = self._tracker.observe(values)
        self._seconds.observe(time.perf_counter() - started)
        return signals, StatefulBatchLogic.RETAIN

    def snapshot(self) -> TrackerSnapshot:
        return self._tracker.snapshot()


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
