"""The churnwatch dataflow: Kafka events to alerts, signals, features, scores and decisions.

This package is the only one that imports Bytewax. :func:`build_dataflow`
composes a few named composite operators (Bytewax ``@operator``; their step
ids nest, e.g. ``process-shards.process-shard``), each wiring engine-free
kernels (``accounts``, ``detectors``, ``scoring``, ``decisions``) through the
adapters of :mod:`dataflows.logic` into operators::

    kafka-in: each input partition reads, parses, and tracks inactivity and day
      │       closes on its own watermark (the tier-1 fast lane ──► churn.alerts)
      → parse-messages ──┬─► dead-letters-out (Kafka DLQ)
                         ├─► inactivity signals ───────────────────────────────┐
                         ▼ (shard key, events; erasures, inactivity alerts,     │
                         │  day closes)                                         │
                   process-shards: per shard, one call per batch: the account   │
                         kernels (dedupe, tier 1, lateness, features, usage     │
                         detectors at day close; silent accounts rescored at a  │
                         day close), then scores (one ONNX call per model),     │
                         risk tiers and decisions                               │
                         ▼                                                      │
                   route-outputs (one step per destination per bundle)          │
                         ├─► features-redis-out, late-events-out,               │
                         │   cancellations-postgres-out, outcomes-postgres-out, │
                         │   accounts-postgres-out, erasures-out                │
                         ├─► write-decisions (risk_scores, churn.scores,        │
                         │   decisions + triggers + ledger, churn.workflow-triggers)
                         └─► usage signals, alerts ◄────────────────────────────┘
    alerts of every tier + usage signals ──► write-alerts-and-signals (Kafka, Postgres;
                                             tier 1 to Kafka by the fast lane, if on)

An inactivity alert reaches its account's shard in the same stream as the
account's events, after the events its partition read before it, so its
decision sees the same history whatever the number of processes.

The input partitions parse what they read (:class:`~dataflows.parse.ParsingSource`),
so the tier-1 fast lane (:mod:`dataflows.fast_lane`) sends a decisive event's
alert to Kafka before the batch moves on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import KeyedStream
from bytewax.outputs import Sink

from accounts.config import AccountConfig
from accounts.debounce import ScoreRequest
from accounts.record import AccountTraits
from dataflows.absence_log import TrackingLog
from dataflows.collector import paused
from dataflows.fast_lane import Tier1Lane
from dataflows.kafka_input import EventsSource
from dataflows.logic import ShardLogic
from dataflows.metrics import PipelineMetrics
from dataflows.outputs import utc_now
from dataflows.parse import MessageParser, Parsed, ParsingSource
from dataflows.shard import (
    AccountShard,
    ShardConfig,
    ShardOutputs,
    ShardSnapshot,
)
from dataflows.shard_log import ShardLog
from dataflows.state_codec import DICTIONARY_FOLDER, SAMPLES, StateCodec
from decisions.engine import DecisionEngine
from detectors.inactivity import AbsenceTracking, TrackingSnapshot
from detectors.usage import InactivityRule
from featurestore.redis_store import FeatureUpdate
from schemas.account import AccountRecord
from schemas.alert import Alert, AlertTier
from schemas.dead_letter import DeadLetter, LateEvent
from schemas.erasure import ErasedEvents, Erasure
from schemas.event import Event, EventLimits
from schemas.formats.decode import Decoder
from schemas.lifecycle import Cancellation
from schemas.score import RiskScore
from schemas.signal import UsageSignal
from schemas.workflow import WorkflowOutcome, WorkflowSignal, WorkflowTrigger
from scoring.model import RiskModel
from scoring.reload import ModelHolder, live_model
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
    # The tier-1 fast lane (one per worker): tier-1 alerts reach Kafka from the input
    # partitions; alerts_kafka then takes the other tiers only.
    fast_lane: Callable[[], Tier1Lane] | None = None
    # Erasures read from the input: what was written of the subject meanwhile goes
    # (Postgres rows, the Redis hash), and the erasure's receipt is confirmed.
    erasures: Sink[Any] | None = None
    # Workflow outcomes (workflow.* events: what became of a trigger) into Postgres.
    outcomes: Sink[Any] | None = None
    # Account records (schemas.account) into the accounts table; None: none are made.
    accounts: Sink[Any] | None = None


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """What the dataflow needs from settings."""

    limits: EventLimits
    account: AccountConfig
    # Wall-clock idle time after which an account's in-memory state is dropped;
    # longer than any window, so only state that expired in event time goes.
    idle_state_ttl: timedelta
    # The absence signals, each judged on the input partitions' watermarks (none: none).
    absences: tuple[InactivityRule, ...]
    # How long an account's changed features may wait before their Redis write.
    feature_flush_interval: timedelta = timedelta(seconds=5)
    scoring: ScoringStage | None = None
    # The state key: accounts are grouped in this many shards (see dataflows.shard).
    shards: int = 64
    # An erased subject's later events: refused (dead-lettered) or kept (schemas.erasure).
    erased_events: ErasedEvents = ErasedEvents.REFUSE
    # Reads Segment or CloudEvents messages (schemas.formats); None: native events only.
    decoder: Decoder | None = None
    # Which traits mean company name, plan, MRR, renewal date, owner (accounts table).
    account_traits: AccountTraits = field(default_factory=AccountTraits)
    # Accounts kept as live objects at most, across all shards (each keeps its share);
    # the others are held as their snapshot bytes. None: cooled at snapshots only.
    warm_accounts: int | None = None
    # Account states each process trains its zstd dictionary on; 0: none (see
    # dataflows.state_codec).
    state_dictionary_samples: int = SAMPLES
    # Where the shards' snapshots put their accounts (dataflows.shard_log): a folder of
    # the recovery directory; None (no recovery), in the snapshots themselves. And how
    # long a replaced file is kept (a restart may resume from an older snapshot).
    shard_log_dir: Path | None = None
    shard_log_retain: timedelta = timedelta(minutes=10)
    # Where the input partitions' snapshots put their absence trackers
    # (dataflows.absence_log): a folder of the recovery directory, a folder per
    # partition in it; None, in the snapshots themselves. Files kept as the shard log's.
    absence_log_dir: Path | None = None

    @property
    def feature_version(self) -> str:
        return self.account.features.feature_set.version


@dataclass(frozen=True)
class ScoringStage:
    """The models and the risk policy (one call per model per batch).

    A model is fixed, or a :class:`~scoring.reload.ModelHolder` that swaps in a
    changed model directory: each batch asks for the live one once, so a swap
    falls between batches."""

    model: RiskModel | ModelHolder
    policy: RiskPolicy
    shadow: RiskModel | ModelHolder | None = None
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
        scores = iter(score_batch(requests, live_model(self.model), self.policy))
        shadow = None if self.shadow is None else live_model(self.shadow)
        shadows = iter(
            score_batch(requests, shadow, self.policy, shadow=True)
            if shadow is not None
            else ()
        )
        out: list[Any] = []
        for item in items:
            if isinstance(item, ScoreRequest):
                out.append(next(scores))
                if shadow is not None:
                    out.append(next(shadows))
            else:
                out.append(item)
        return out


@dataclass(frozen=True)
class ParsedMessages:
    """What :func:`parse_messages` splits the input into."""

    # (shard key, its events; erasures and, with decisions, inactivity alerts among them)
    events: Stream[tuple[str, list[Event | Erasure | Alert]]]
    dead_letters: Stream[DeadLetter]
    inactivity: Stream[UsageSignal]  # from each input partition's tracker


@operator
def parse_messages(step_id: str, parsed: Stream[Parsed]) -> ParsedMessages:
    """The parsed input (parsed in the input partitions, one item per shard a batch
    touches) split into the items of each shard, dead letters and inactivity signals."""
    inactivity, parsed = _split("split-inactivity", parsed, UsageSignal)
    split = op.branch("split-dead-letters", parsed, _is_shard_events)
    # what is neither an inactivity signal nor a shard's items is a dead letter
    return ParsedMessages(
        cast(Stream[tuple[str, list[Event | Erasure | Alert]]], split.trues),
        cast(Stream[DeadLetter], split.falses),
        inactivity,
    )


@operator
def process_shards(
    step_id: str,
    events: KeyedStream[Any],
    build_logic: Callable[[ShardSnapshot | None], ShardLogic],
) -> Stream[ShardOutputs]:
    """Each shard's batch through its :class:`~dataflows.shard.AccountShard`: the account
    kernels, and with scoring the model, risk tiers and decisions; one bundle out."""
    return op.map(
        "drop-shard-key", op.stateful_batch("process-shard", events, build_logic), _value
    )


@dataclass(frozen=True)
class RoutedOutputs:
    """The bundles' outputs, one stream per destination."""

    features: Stream[FeatureUpdate]
    late: Stream[LateEvent]
    dead_letters: Stream[DeadLetter]
    cancellations: Stream[Cancellation]
    signals: Stream[UsageSignal]
    alerts: Stream[Alert]
    scores: Stream[RiskScore]
    decided: Stream[Any]
    erasures: Stream[Erasure]
    outcomes: Stream[WorkflowOutcome]
    accounts: Stream[AccountRecord]


@operator
def route_outputs(step_id: str, bundles: Stream[ShardOutputs]) -> RoutedOutputs:
    """One step per destination per bundle, not one per item."""
    return RoutedOutputs(
        op.flat_map("features", bundles, _features),
        op.flat_map("late", bundles, _late),
        op.flat_map("dead-letters", bundles, _dead_letters),
        op.flat_map("cancellations", bundles, _cancellations),
        op.flat_map("signals", bundles, _signals),
        op.flat_map("alerts", bundles, _alerts),
        op.flat_map("scores", bundles, _scores),
        op.flat_map("decided", bundles, _decided),
        op.flat_map("erasures", bundles, _erasures),
        op.flat_map("outcomes", bundles, _outcomes),
        op.flat_map("accounts", bundles, _accounts),
    )


def shard_config_of(
    config: FlowConfig, *, accounts_table: bool, log: ShardLog | None
) -> ShardConfig:
    """What each of the dataflow's shards runs with: the account records only with an
    accounts table to write them to, ``log`` where snapshots put the accounts (None:
    in the snapshot itself). The in-process benchmarks build their shards with it."""
    scoring = config.scoring
    return ShardConfig(
        account=config.account,
        idle_ttl=config.idle_state_ttl,
        flush_interval=config.feature_flush_interval,
        score=None if scoring is None else scoring.score,
        decisions=None if scoring is None else scoring.decisions,
        policy=None if scoring is None else scoring.policy,
        account_traits=config.account_traits if accounts_table else None,
        warm_accounts=None if config.warm_accounts is None
        else max(1, -(-config.warm_accounts // config.shards)),
        log=log,
        shards=config.shards,
        codec=StateCodec(samples=config.state_dictionary_samples) if log is None
        else log.codec,
    )


def build_dataflow(
    source: FixedPartitionedSource[Any, Any],
    sinks: FlowSinks,
    config: FlowConfig,
    metrics: PipelineMetrics,
    *,
    clock: Callable[[], datetime] = utc_now,
    flow_id: str = "churnwatch",
) -> Dataflow:
    """Wire the churnwatch dataflow over ``source`` (Kafka messages)."""
    absences = config.absences
    scoring = config.scoring
    parser = MessageParser(
        config.limits, clock, metrics,
        shards=config.shards, shards_score=scoring is not None, decoder=config.decoder,
    )
    shard_config = shard_config_of(
        config, accounts_table=sinks.accounts is not None,
        log=None if config.shard_log_dir is None
        else ShardLog(config.shard_log_dir, config.shard_log_retain, StateCodec(
            config.shard_log_dir / DICTIONARY_FOLDER, samples=config.state_dictionary_samples)),
    )

    def build_shard(snapshot: ShardSnapshot | None) -> ShardLogic:
        with paused():  # a restored shard's accounts built at once: see dataflows.collector
            shard = AccountShard(shard_config, clock, snapshot)
        return ShardLogic(shard, metrics)

    feature_set = config.account.features.feature_set

    def build_tracking(snapshot: TrackingSnapshot) -> AbsenceTracking:
        """One per input partition, fed in its read order (see detectors.inactivity): a
        tracker per absence signal, whose activity is its feature's event types."""
        return AbsenceTracking(
            [(rule, feature_set[rule.feature].matches) for rule in absences],
            config.account.allowed_lateness_seconds,
            config.feature_version,
            snapshot,
        )

    flow = Dataflow(flow_id)
    parsed_input = op.input("kafka-in", flow, ParsingSource(
        source, parser, sinks.fast_lane, config.erased_events,
        absences=build_tracking if absences else None,
        lane_inner=source.for_lane() if isinstance(source, EventsSource) else None,
        day_closes=None if scoring is None else config.account.clock,
        absence_log=None if config.absence_log_dir is None
        else functools.partial(TrackingLog.for_partition, config.absence_log_dir,
                               config.shard_log_retain,
                               tuple(str(rule.signal_type) for rule in absences)),
    ))
    parsed = parse_messages("parse-messages", parsed_input)
    idle_signals = parsed.inactivity
    idle_alerts = op.map("inactivity-alerts", idle_signals, _to_alert)
    bundles = process_shards("process-shards", parsed.events, build_shard)
    routed = route_outputs("route-outputs", bundles)

    dead_letters = op.merge("all-dead-letters", parsed.dead_letters, routed.dead_letters)
    op.output("dead-letters-out", dead_letters, sinks.dead_letters)
    op.output("features-redis-out", routed.features, sinks.features)
    op.output("late-events-out", routed.late, sinks.late_events)
    op.inspect(
        "count-cancellations", routed.cancellations, lambda _s, _c: metrics.cancellations.inc()
    )
    op.output("cancellations-postgres-out", routed.cancellations, sinks.cancellations)
    if sinks.erasures is not None:
        op.output("erasures-out", routed.erasures, sinks.erasures)
    if sinks.outcomes is not None:
        op.output("outcomes-postgres-out", routed.outcomes, sinks.outcomes)
    if sinks.accounts is not None:
        op.output("accounts-postgres-out", routed.accounts, sinks.accounts)
    signals = op.merge("all-signals", routed.signals, idle_signals)
    alerts = op.merge("all-alerts", routed.alerts, idle_alerts)
    if scoring is not None:
        write_decisions(
            "write-decisions",
            routed.scores,
            routed.decided,
            sinks,
            decide=scoring.decisions is not None,
        )
    write_alerts_and_signals(
        "write-alerts-and-signals", alerts, signals, sinks, metrics,
        fast_lane=sinks.fast_lane is not None,
    )
    return flow


@operator
def write_decisions(
    step_id: str,
    scores: Stream[RiskScore],
    decided: Stream[Any],
    sinks: FlowSinks,
    *,
    decide: bool,
) -> None:
    """Scores to Postgres and Kafka; decision records, workflow triggers and signals,
    assignments and consent changes to Postgres (one transaction per batch), triggers
    and signals to Kafka. (The shards' logic counts the scores, a bundle at a time.)"""
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
        op.output("decisions-postgres-out", decided, sinks.decisions)


@operator
def write_alerts_and_signals(
    step_id: str,
    alerts: Stream[Alert],
    signals: Stream[UsageSignal],
    sinks: FlowSinks,
    metrics: PipelineMetrics,
    *,
    fast_lane: bool = False,
) -> None:
    """Alerts of every tier to Kafka and Postgres; usage signals to Postgres; both counted.
    With the ``fast_lane``, tier-1 alerts reached Kafka from the input already."""
    op.inspect("count-alerts", alerts, lambda _step, alert: _count_alert(metrics, alert))
    op.inspect(
        "count-signals",
        signals,
        lambda _s, signal: metrics.usage_signals.labels(signal_type=str(signal.signal_type)).inc(),
    )
    op.output("usage-signals-postgres-out", signals, sinks.usage_signals)
    to_kafka = op.filter("not-fast-lane", alerts, _not_tier1) if fast_lane else alerts
    op.output("alerts-kafka-out", to_kafka, sinks.alerts_kafka)
    op.output("alerts-postgres-out", alerts, sinks.alerts_postgres)


def _split(step_id: str, stream: Stream[Any], kind: type) -> tuple[Stream[Any], Stream[Any]]:
    """(items of ``kind``, everything else)."""
    out = op.branch(step_id, stream, lambda item: isinstance(item, kind))
    return out.trues, out.falses


def _not_tier1(alert: Alert) -> bool:
    return alert.tier is not AlertTier.EVENT_RULE


def _count_alert(metrics: PipelineMetrics, alert: Alert) -> None:
    metrics.alerts.labels(tier=str(int(alert.tier)), severity=str(alert.severity)).inc()


def _to_alert(signal: UsageSignal) -> Alert:
    return signal.to_alert()


def _is_workflow_message(item: object) -> bool:
    return isinstance(item, WorkflowTrigger | WorkflowSignal)


def _is_shard_events(item: object) -> bool:
    return type(item) is tuple


def _value(pair: tuple[str, Any]) -> Any:
    return pair[1]


def _features(bundle: ShardOutputs) -> list[FeatureUpdate]:
    return bundle.features


def _late(bundle: ShardOutputs) -> list[LateEvent]:
    return bundle.late


def _dead_letters(bundle: ShardOutputs) -> list[DeadLetter]:
    return bundle.dead_letters


def _cancellations(bundle: ShardOutputs) -> list[Cancellation]:
    return bundle.cancellations


def _signals(bundle: ShardOutputs) -> list[UsageSignal]:
    return bundle.signals


def _alerts(bundle: ShardOutputs) -> list[Alert]:
    return bundle.alerts


def _scores(bundle: ShardOutputs) -> list[RiskScore]:
    return bundle.scores


def _decided(bundle: ShardOutputs) -> list[Any]:
    return bundle.decided


def _erasures(bundle: ShardOutputs) -> list[Erasure]:
    return bundle.erasures


def _outcomes(bundle: ShardOutputs) -> list[WorkflowOutcome]:
    return bundle.outcomes


def _accounts(bundle: ShardOutputs) -> list[AccountRecord]:
    return bundle.accounts
