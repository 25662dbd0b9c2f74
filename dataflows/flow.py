"""The churnwatch dataflow: Kafka events to alerts, dead letters and records.

This package is the only one that imports Bytewax. It wires the pure pieces
(``schemas`` parsing, :class:`~dataflows.account.AccountProcessor`, the
``sinks``) into operators::

    kafka-in → parse-events → split-dead-letters ─► dead-letters-out (Kafka DLQ)
                    │
          key-by-account → dedupe-and-detect → split-alerts
                                                 ├─► alerts-kafka-out, alerts-postgres-out
                                                 └─► cancellations-postgres-out
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition

from dataflows.account import AccountConfig, AccountProcessor, AccountSnapshot
from dataflows.metrics import PipelineMetrics, event_type_label
from dataflows.parse import MessageParser
from detectors.tier1 import Cancellation
from schemas.alert import Alert
from schemas.event import Event, EventLimits


def utc_now() -> datetime:
    return datetime.now(UTC)


class BatchWriter(Protocol):
    """The contract every churnwatch sink meets (see ``sinks``)."""

    def write_batch(self, items: Sequence[Any]) -> None: ...

    def close(self) -> None: ...


class _WriterPartition(StatelessSinkPartition[Any]):
    def __init__(self, writer: BatchWriter, name: str, metrics: PipelineMetrics) -> None:
        self._writer = writer
        self._counter = metrics.sink_writes.labels(sink=name)

    def write_batch(self, items: list[Any]) -> None:
        self._writer.write_batch(items)
        self._counter.inc(len(items))

    def close(self) -> None:
        self._writer.close()


class WriterSink(DynamicSink[Any]):
    """A Bytewax sink over any :class:`BatchWriter`: one writer per worker."""

    def __init__(
        self, name: str, factory: Callable[[], BatchWriter], metrics: PipelineMetrics
    ) -> None:
        self._name = name
        self._factory = factory
        self._metrics = metrics

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WriterPartition:
        return _WriterPartition(self._factory(), self._name, self._metrics)


@dataclass(frozen=True, slots=True)
class FlowSinks:
    """Where the dataflow's outputs go (Bytewax sinks)."""

    dead_letters: Sink[Any]
    alerts_kafka: Sink[Any]
    alerts_postgres: Sink[Any]
    cancellations: Sink[Any]


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """What the dataflow needs from settings."""

    limits: EventLimits
    account: AccountConfig
    # Wall-clock idle time after which an account's in-memory state is dropped.
    # It is longer than the dedupe window, so only ids that expired anyway go.
    idle_state_ttl: timedelta


class AccountLogic(StatefulBatchLogic[Event, Alert | Cancellation, AccountSnapshot]):
    """Bytewax adapter around one account's :class:`AccountProcessor`."""

    def __init__(
        self,
        processor: AccountProcessor,
        metrics: PipelineMetrics,
        clock: Callable[[], datetime],
        idle_ttl: timedelta,
    ) -> None:
        self._processor = processor
        self._metrics = metrics
        self._clock = clock
        self._idle_ttl = idle_ttl
        self._last_active = clock()

    def on_batch(self, values: list[Event]) -> tuple[list[Alert | Cancellation], bool]:
        result = self._processor.process(values)
        self._last_active = self._clock()
        metrics = self._metrics
        if result.duplicates:
            metrics.duplicates.inc(result.duplicates)
        evicted = self._processor.dedupe.evicted_early
        if evicted:
            metrics.dedupe_evicted_early.inc(evicted)
            self._processor.dedupe.evicted_early = 0
        for event_type, count in Tally(e.event_type for e in result.events).items():
            metrics.events.labels(event_type=event_type_label(event_type)).inc(count)
        for item in result.outputs:
            if isinstance(item, Alert):
                metrics.alerts.labels(tier=str(int(item.tier)), severity=str(item.severity)).inc()
            else:
                metrics.cancellations.inc()
        return result.outputs, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime:
        return self._last_active + self._idle_ttl

    def on_notify(self) -> tuple[list[Alert | Cancellation], bool]:
        return [], StatefulBatchLogic.DISCARD

    def snapshot(self) -> AccountSnapshot:
        return self._processor.snapshot()


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
    parser = MessageParser(config.limits, clock, metrics)

    def build_account(snapshot: AccountSnapshot | None) -> AccountLogic:
        return AccountLogic(
            AccountProcessor(config.account, snapshot), metrics, clock, config.idle_state_ttl
        )

    flow = Dataflow(flow_id)
    messages = op.input("kafka-in", flow, source)
    parsed = op.flat_map_batch("parse-events", messages, parser.parse_batch)
    split = op.branch("split-dead-letters", parsed, _is_event)
    op.output("dead-letters-out", split.falses, sinks.dead_letters)
    keyed = op.key_on("key-by-account", split.trues, _subject)
    outputs = op.stateful_batch("dedupe-and-detect", keyed, build_account)
    records = op.map("drop-key", outputs, _value)
    by_kind = op.branch("split-alerts", records, _is_alert)
    op.output("alerts-kafka-out", by_kind.trues, sinks.alerts_kafka)
    op.output("alerts-postgres-out", by_kind.trues, sinks.alerts_postgres)
    op.output("cancellations-postgres-out", by_kind.falses, sinks.cancellations)
    return flow


def _is_event(item: object) -> TypeGuard[Event]:
    return isinstance(item, Event)


def _is_alert(item: object) -> TypeGuard[Alert]:
    return isinstance(item, Alert)


def _subject(event: Event) -> str:
    return event.subject


def _value(pair: tuple[str, Any]) -> Any:
    return pair[1]
