"""Kafka writers for alerts and dead letters.

A thin wrapper over ``confluent_kafka.Producer`` that follows the rules in
DESIGN.md: ``acks=all`` and idempotence on, ``poll(0)`` after each produce so
delivery callbacks run, and a ``flush`` with a timeout at the end of every
batch that turns anything undelivered into a :class:`KafkaDeliveryError`. The
flush per batch is what makes the output at-least-once: the dataflow does not
close an epoch (and so does not commit input offsets) before its outputs are
acknowledged. Duplicates after a crash carry the same ids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
from confluent_kafka import KafkaError, Message, Producer

from schemas.alert import Alert
from schemas.dead_letter import DeadLetter, LateEvent
from schemas.score import RiskScore
from schemas.workflow import WorkflowSignal, WorkflowTrigger
from sinks.errors import KafkaDeliveryError

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, str | int | bool] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "compression.type": "lz4",
}


class KafkaWriter:
    """Produces keyed messages and confirms their delivery per batch."""

    def __init__(
        self, bootstrap: str, *, client_id: str = "churnwatch", flush_timeout_s: float = 30.0
    ) -> None:
        config = dict(PRODUCER_DEFAULTS)
        config.update({"bootstrap.servers": bootstrap, "client.id": client_id})
        self._producer = Producer(config)
        self._flush_timeout_s = flush_timeout_s
        self._errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery
                )
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                self._producer.poll(0.1)
        self._producer.poll(0)

    def flush(self) -> None:
        """Wait for every produced message; raise if any was not delivered."""
        remaining = self._producer.flush(self._flush_timeout_s)
        if remaining or self._errors:
            first = self._errors[0] if self._errors else "flush timed out"
            undelivered = remaining + len(self._errors)
            self._errors.clear()
            raise KafkaDeliveryError(undelivered, first)

    def close(self) -> None:
        self.flush()


class KafkaAlertSink:
    """Alert v1 to ``churn.alerts``: key ``tenant:account``, ``alert_id`` header."""

    def __init__(self, writer: KafkaWriter, topic: str) -> None:
        self._writer = writer
        self._topic = topic

    def write_batch(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            self._writer.produce(
                self._topic,
                alert.subject.encode(),
                alert.to_json(),
                [("alert_id", alert.alert_id.encode()), ("schema_version", b"1")],
            )
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class KafkaDeadLetterSink:
    """Rejected input to ``churn.events.dlq``, keyed by the original key."""

    def __init__(self, writer: KafkaWriter, topic: str) -> None:
        self._writer = writer
        self._topic = topic

    def write_batch(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self._writer.produce(
                self._topic, letter.key, letter.to_json(), [("reason", str(letter.reason).encode())]
            )
        self._writer.flush()
        if letters:
            log.info("sent %d message(s) to the dead-letter topic %s", len(letters), self._topic)

    def close(self) -> None:
        self._writer.close()


__all__ = ["KafkaAlertSink", "KafkaDeadLetterSink", "KafkaWriter"]


class KafkaLateEventSink:
    """Events past the allowed lateness to ``churn.events.late``, keyed by account."""

    def __init__(self, writer: KafkaWriter, topic: str) -> None:
        self._writer = writer
        self._topic = topic

    def write_batch(self, late: Sequence[LateEvent]) -> None:
        for item in late:
            self._writer.produce(self._topic, item.event.account_id.encode(), item.to_json())
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class KafkaScoreSink:
    """Risk scores to ``churn.scores``: key ``tenant:account``, ``score_id`` header."""

    def __init__(self, writer: KafkaWriter, topic: str) -> None:
        self._writer = writer
        self._topic = topic

    def write_batch(self, scores: Sequence[RiskScore]) -> None:
        for score in scores:
            self._writer.produce(
                self._topic,
                f"{score.tenant_id}:{score.account_id}".encode(),
                orjson.dumps(score.to_document()),
                [("score_id", score.score_id.encode()), ("schema_version", b"1")],
            )
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class KafkaWorkflowSink:
    """Workflow triggers and signals to ``churn.workflow-triggers``.

    Key ``tenant:account`` (an account's trigger and its signals share a
    partition, so they arrive in order); headers ``message_id`` (the trigger's
    or signal's id: consumers drop copies by it) and ``message_type``.
    """

    def __init__(self, writer: KafkaWriter, topic: str) -> None:
        self._writer = writer
        self._topic = topic

    def write_batch(self, items: Sequence[WorkflowTrigger | WorkflowSignal]) -> None:
        for item in items:
            if isinstance(item, WorkflowTrigger):
                message_id, message_type = item.trigger_id, b"trigger"
            else:
                message_id, message_type = item.signal_id, b"signal"
            self._writer.produce(
                self._topic,
                item.subject.encode(),
                item.to_json(),
                [("message_id", message_id.encode()), ("message_type", message_type),
                 ("schema_version", b"1")],
            )
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
