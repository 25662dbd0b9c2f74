"""The edge of the dataflow: Kafka messages in, events or dead letters out.

Runs once per input batch: the clock is read once per batch, counters move
once per batch, and each message costs one ``orjson.loads`` plus validation.
The Kafka source hands over whole polls (:class:`~dataflows.kafka_input.MessageBatch`);
the JSONL file source and tests hand over messages one by one.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from dataflows.kafka_input import MessageBatch
from dataflows.metrics import PipelineMetrics, event_type_label
from dataflows.shard import shard_key, shard_of
from detectors.inactivity import ActivityBatch, summarize_activity
from schemas.dead_letter import DeadLetter
from schemas.event import Event, EventLimits, Rejection, RejectReason, parse_event

# What the input gives the parse step: the Kafka source's batches, or messages one by
# one (the JSONL file source, tests).
InputItem = (
    MessageBatch
    | KafkaSourceMessage[bytes | None, bytes | None]
    | KafkaError[bytes | None, bytes | None]
)


class MessageParser:
    """Turns a batch of Kafka messages into events by shard, dead letters and activity
    summaries.

    The valid events of a batch come out as one ``(shard key, events)`` pair per
    shard they belong to (each account's events in read order), so what crosses
    to the shard's worker is one item per shard, not one per event; besides, one
    :class:`ActivityBatch` per input partition in the batch (the inactivity
    tracker of that partition reads them in order, see ``detectors.inactivity``),
    and one dead letter per rejected message.
    """

    def __init__(
        self,
        limits: EventLimits,
        clock: Callable[[], datetime],
        metrics: PipelineMetrics,
        is_activity: Callable[[str], bool] = lambda _event_type: False,
        idle_after_seconds: float = 7 * 86_400.0,
        *,
        shards: int = 64,
    ) -> None:
        self._shards = shards
        self._limits = limits
        self._clock = clock
        self._metrics = metrics
        self._is_activity = is_activity
        self._idle_after = idle_after_seconds
        self._seconds = metrics.stage_seconds.labels(stage="parse-events")

    def parse_batch(
        self, messages: Sequence[InputItem]
    ) -> list[tuple[str, list[Event]] | DeadLetter | ActivityBatch]:
        started = time.perf_counter()
        now = self._clock()
        limits = self._limits
        out: list[tuple[str, list[Event]] | DeadLetter | ActivityBatch] = []
        by_partition: dict[int, list[Event]] = {}
        by_shard: dict[int, list[Event]] = {}
        shards = self._shards
        rejected: Tally[str] = Tally()
        kinds: Tally[tuple[str, str]] = Tally()
        read = 0
        for value, key, topic, partition, offset, timestamp, error in _raw(messages):
            if error is None:
                result: Event | Rejection = parse_event(
                    value, now, limits, partition=partition, offset=offset,
                    ingested_at=_broker_time(timestamp),
                )
            else:
                result = Rejection(RejectReason.CONSUMER_ERROR, error)
            read += 1
            if isinstance(result, Rejection):
                rejected[result.reason] += 1
                out.append(
                    DeadLetter(
                        reason=result.reason,
                        detail=result.detail,
                        topic=topic or "",
                        partition=partition if partition is not None else -1,
                        offset=offset if offset is not None else -1,
                        key=key,
                        value=value,
                    )
                )
            else:
                by_shard.setdefault(shard_of(result.subject, shards), []).append(result)
                by_partition.setdefault(result.partition, []).append(result)
                kinds[(result.tenant_id, result.event_type)] += 1
        out.extend((shard_key(shard), events) for shard, events in by_shard.items())
        for partition, events in by_partition.items():
            summary = summarize_activity(partition, events, self._is_activity, self._idle_after)
            if summary is not None:
                out.append(summary)
        self._metrics.messages.inc(read)
        for reason, count in rejected.items():
            self._metrics.rejected.labels(reason=str(reason)).inc(count)
        tenant_label = self._metrics.tenant_label
        for (tenant, event_type), count in kinds.items():
            self._metrics.events.labels(
                tenant=tenant_label(tenant), event_type=event_type_label(event_type)
            ).inc(count)
        self._seconds.observe(time.perf_counter() - started)
        return out


# One message's fields: value, key, topic, partition, offset, (timestamp type, ms), and
# the consumer's error text (None: a message to parse).
_Fields = tuple[bytes | None, bytes | None, str | None, int | None, int | None,
                tuple[int, int] | None, str | None]


def _raw(items: Iterable[InputItem]) -> Iterator[_Fields]:
    """Every message of the input items, whatever their form, field by field."""
    for item in items:
        if isinstance(item, MessageBatch):
            for msg in item.messages:
                error = msg.error()
                yield (msg.value(), msg.key(), msg.topic(), msg.partition(), msg.offset(),
                       msg.timestamp(), None if error is None else str(error.str()))
        elif isinstance(item, KafkaError):
            failed = item.msg
            yield (failed.value, failed.key, failed.topic, failed.partition, failed.offset,
                   failed.timestamp, str(item.err.str()))
        else:
            yield (item.value, item.key, item.topic, item.partition, item.offset,
                   item.timestamp, None)


def _broker_time(timestamp: tuple[int, int] | None) -> float:
    """Kafka's (type, epoch ms) timestamp in epoch seconds; 0.0 if not available."""
    if not timestamp or timestamp[0] == TIMESTAMP_NOT_AVAILABLE:
        return 0.0
    return timestamp[1] / 1000.0
