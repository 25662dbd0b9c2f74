"""Kafka output: one producer wrapper, one topic sink, and how each record becomes a message.

A thin wrapper over ``confluent_kafka.Producer`` that follows the rules in
DESIGN.md: ``acks=all`` and idempotence on, ``poll(0)`` after each produce so
delivery callbacks run, and a ``flush`` with a timeout at the end of every
batch that turns anything undelivered into a :class:`KafkaDeliveryError`. The
flush per batch is what makes the output at-least-once: the dataflow does not
close an epoch (and so does not commit input offsets) before its outputs are
acknowledged. Duplicates after a crash carry the same ids.

Every output topic is a :class:`KafkaTopicSink` with an encoder: a pure
function from a record to its :class:`KafkaMessage` (key, value, headers).
Every message is keyed ``tenant:account`` (so an account's messages share a
partition and arrive in order) except dead letters, which keep the original
key; every message carries its record's id in a header so consumers can drop
the copies at-least-once delivery may bring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson
from confluent_kafka import KafkaError, Message, Producer

from schemas.alert import Alert
from schemas.dead_letter import DeadLetter, LateEvent
from schemas.score import RiskScore
from schemas.workflow import WorkflowSignal, WorkflowTrigger
from sinks.errors import KafkaDeliveryError, KafkaUnavailable

log = logging.getLogger(__name__)

Header = tuple[str, str | bytes | None]

PRODUCER_DEFAULTS: dict[str, str | int | bool] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "compression.type": "lz4",
}


# Delivery errors that say "not now" rather than "never": retried by the caller.
_TRANSIENT_CODES = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


class KafkaWriter:
    """Produces keyed messages and confirms their delivery per batch.

    A flush that times out, or delivery errors that are all retriable, raise
    :class:`KafkaUnavailable` (transient: the caller produces the batch again;
    copies carry the same ids); any other delivery error raises
    :class:`KafkaDeliveryError`. After a fatal error (the idempotent producer
    can no longer guarantee order) the next produce starts a new producer.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "churnwatch",
        flush_timeout_s: float = 30.0,
        config: Mapping[str, str | int | bool] | None = None,
    ) -> None:
        self._config: dict[str, str | int | bool] = {**PRODUCER_DEFAULTS, "client.id": client_id}
        # librdkafka properties, e.g. security settings; a client.id given there wins
        self._config.update(config or {})
        self._config["bootstrap.servers"] = bootstrap
        # None once closed: the librdkafka handle (its threads and connections) goes
        # with the object; a later produce starts a new one.
        self._producer: Producer | None = Producer(self._config)
        self._flush_timeout_s = flush_timeout_s
        self._errors: list[str] = []
        self._permanent = False  # a delivery error a retry would only repeat
        self._fatal = False

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        self._failed(err, msg)

    def _failed(self, err: KafkaError, msg: Message) -> None:
        self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")
        if err.fatal():
            self._fatal = True
        elif not (err.retriable() or err.code() in _TRANSIENT_CODES):
            self._permanent = True

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[Header] | None = None,
        *,
        on_delivered: Callable[[float], None] | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one message (without waiting for it; :meth:`flush` does).
        ``on_delivered`` is called at the poll that serves the delivery report, with
        the seconds from this call to that poll (librdkafka's ``latency()`` counts to
        the moment it is read, not to the acknowledgement: call :meth:`serve_reports`
        often for it to be close to the acknowledgement); ``partition``: that
        partition rather than the key's."""
        report = self._on_delivery
        if on_delivered is not None:
            def report(err: KafkaError | None, msg: Message) -> None:
                if err is None:
                    on_delivered(msg.latency() or 0.0)
                else:
                    self._failed(err, msg)
        if self._fatal:
            log.warning("the Kafka producer met a fatal error: starting a new one")
            self._producer = None
            self._fatal = False
        producer = self._live()
        while True:
            try:
                if partition is None:
                    producer.produce(
                        topic, value=value, key=key, headers=headers, on_delivery=report
                    )
                else:
                    producer.produce(
                        topic, value=value, key=key, headers=headers, on_delivery=report,
                        partition=partition,
                    )
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                producer.poll(0.1)
        producer.poll(0)

    def serve_reports(self) -> None:
        """Serve the delivery reports that have arrived, without waiting."""
        if self._producer is not None:
            self._producer.poll(0)

    def _live(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self._config)
        return self._producer

    def flush(self) -> None:
        """Wait for every produced message; raise if any was not delivered."""
        producer = self._producer
        remaining = 0 if producer is None else producer.flush(self._flush_timeout_s)
        if remaining or self._errors:
            first = self._errors[0] if self._errors else "flush timed out"
            undelivered = remaining + len(self._errors)
            permanent = self._permanent
            self._errors.clear()
            self._permanent = False
            if permanent:
                raise KafkaDeliveryError(undelivered, first)
            raise KafkaUnavailable(undelivered, first)

    def partitions(self, topic: str, timeout_s: float = 10.0) -> int:
        """How many partitions ``topic`` has (0 if it does not exist)."""
        metadata = self._live().list_topics(topic, timeout=timeout_s).topics.get(topic)
        return 0 if metadata is None or metadata.error is not None else len(metadata.partitions)

    def close(self) -> None:
        """Flush, then let the producer go: no connection is left behind to log its
        broker's going away (the embedded stack stops right after a demo)."""
        self.flush()
        self._producer = None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KafkaMessage:
    """One message as produced: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: list[Header]


class KafkaTopicSink(Generic[T]):
    """Records of one kind to one topic: ``encode`` makes each record's message.

    Meets the sink contract (:class:`~sinks.base.BatchWriter`): a batch is
    produced, then flushed; anything undelivered raises
    :class:`~sinks.errors.KafkaDeliveryError`.
    """

    def __init__(
        self,
        writer: KafkaWriter,
        topic: str,
        encode: Callable[[T], KafkaMessage],
        *,
        log_batches: bool = False,
    ) -> None:
        self._writer = writer
        self._topic = topic
        self._encode = encode
        self._log_batches = log_batches

    def write_batch(self, items: Sequence[T]) -> None:
        produce, topic, encode = self._writer.produce, self._topic, self._encode
        for item in items:
            message = encode(item)
            produce(topic, message.key, message.value, message.headers)
        self._writer.flush()
        if self._log_batches and items:
            log.info("sent %d message(s) to %s", len(items), topic)

    def close(self) -> None:
        self._writer.close()


_V1 = ("schema_version", b"1")


def alert_message(alert: Alert) -> KafkaMessage:
    """Alert v1 on ``churn.alerts``: key ``tenant:account``, header ``alert_id``."""
    return KafkaMessage(
        alert.subject.encode(), alert.to_json(), [("alert_id", alert.alert_id.encode()), _V1]
    )


def dead_letter_message(letter: DeadLetter) -> KafkaMessage:
    """A rejected message on the dead-letter topic: the original key, header ``reason``."""
    return KafkaMessage(
        letter.message_key, letter.to_json(), [("reason", str(letter.reason).encode())]
    )


def late_event_message(late: LateEvent) -> KafkaMessage:
    """An event past the allowed lateness on ``churn.events.late``: key ``tenant:account``."""
    event = late.event
    return KafkaMessage(
        event.subject.encode(), late.to_json(), [("event_id", event.event_id.encode())]
    )


def score_message(score: RiskScore) -> KafkaMessage:
    """A risk score on ``churn.scores``: key ``tenant:account``, header ``score_id``."""
    return KafkaMessage(
        f"{score.tenant_id}:{score.account_id}".encode(),
        orjson.dumps(score.to_document()),
        [("score_id", score.score_id.encode()), _V1],
    )


def workflow_message(item: WorkflowTrigger | WorkflowSignal) -> KafkaMessage:
    """A workflow trigger or signal on ``churn.workflow-triggers``.

    Key ``tenant:account`` (an account's trigger and its signals share a
    partition, so they arrive in order); headers ``message_id`` (the trigger's
    or signal's id: consumers drop copies by it) and ``message_type``.
    """
    if isinstance(item, WorkflowTrigger):
        message_id, message_type = item.trigger_id, b"trigger"
    else:
        message_id, message_type = item.signal_id, b"signal"
    return KafkaMessage(
        item.subject.encode(),
        item.to_json(),
        [("message_id", message_id.encode()), ("message_type", message_type), _V1],
    )
