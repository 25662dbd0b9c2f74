"""The tier-1 fast lane: decisive events reach ``churn.alerts`` as soon as they are read.

On the main path a tier-1 alert leaves with its batch's other outputs: after
the batch crossed to its shard's worker, after every account of the batch ran
through its kernel, after scoring and decisions, and behind every sink written
before it; a slow PostgreSQL write or an epoch snapshot holds it back with the
rest. Here the input partition itself, right after parsing a poll, produces the
tier-1 alert of each decisive event (payment failed, cancel intent, ...) to
``churn.alerts``; librdkafka delivers it from its own thread while the worker
goes on, so nothing the worker does afterwards delays it.

Guarantees, the same as the main path's:

* **The same alerts, under the same ids.** :func:`~detectors.tier1.detect_tier1`
  builds them, with their deterministic ``alert_id``. The main path still
  writes every tier-1 alert to PostgreSQL and feeds it to scores and
  decisions; only its Kafka copy is left to the lane.
* **At-least-once.** An input partition's offset is snapshot only after every
  alert produced for the messages before it was acknowledged
  (:meth:`Tier1Lane.confirm`, called by the partition's ``snapshot``): a crash
  can re-send an alert (the same ``alert_id``), never lose one. A broker outage
  is waited out, as the sinks do (``dataflows.outputs``).
* **Copies of an event are sent once.** The lane runs before the account's
  dedupe, so each partition remembers the alert ids it sent (the newest
  :data:`REMEMBERED`, kept in its snapshot); a copy that comes later than
  that, or through another partition, may be sent again under the same id,
  which consumers drop (README, Reliability).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from dataflows.metrics import PipelineMetrics
from dataflows.outputs import RetryPolicy, alert_emitted
from detectors.tier1 import Tier1Rule, detect_tier1
from schemas.alert import Alert
from schemas.errors import DependencyUnavailable
from schemas.event import Event
from sinks.kafka import KafkaWriter, alert_message

log = logging.getLogger(__name__)

# Alert ids each input partition remembers, to send an event's copies once.
REMEMBERED = 10_000


class Tier1Lane:
    """One worker's lane: a producer for ``churn.alerts`` and the tier-1 rules.

    :meth:`send` produces without waiting; :meth:`confirm` waits for every
    alert sent so far, producing again those a broker outage kept back.
    """

    def __init__(
        self,
        writer: KafkaWriter,
        topic: str,
        rules: Mapping[str, Tier1Rule],
        metrics: PipelineMetrics,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._writer = writer
        self._topic = topic
        self._rules = rules
        self._metrics = metrics
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._pending: list[Alert] = []  # sent, not yet confirmed
        # send and confirm come from the partitions' reader threads and the worker
        self._lock = threading.Lock()
        self._partitions = 0  # the worker's partitions reading with this lane

    def attach(self) -> None:
        """A partition reads with this lane, until it detaches."""
        with self._lock:
            self._partitions += 1

    def detach(self) -> None:
        """A partition closes: its alerts are confirmed; the last one closes the producer
        (a partition built later opens a new one)."""
        with self._lock:
            self._confirm()
            self._partitions -= 1
            if self._partitions <= 0:
                self._partitions = 0
                self._writer.close()

    @property
    def event_types(self) -> tuple[str, ...]:
        """The decisive event types (those of the tier-1 rules)."""
        return tuple(self._rules)

    def send(self, events: Iterable[Event], sent: dict[str, None]) -> int:
        """Produce the tier-1 alert of every decisive event whose alert is not in
        ``sent`` (the partition's memory, updated here); the number produced."""
        with self._lock:
            return self._send(events, sent)

    def serve_reports(self) -> None:
        """Serve the delivery reports of alerts sent, so their latency is measured when
        they are acknowledged rather than at the next confirm (readers call it after
        every poll of their partition; nothing to do while nothing is pending)."""
        if self._pending:
            self._writer.serve_reports()

    def confirm(self, sent: dict[str, None] | None = None) -> tuple[str, ...]:
        """Return once every alert sent is acknowledged (a broker outage is waited out),
        with a copy of ``sent`` taken meanwhile: every id in it was acknowledged."""
        with self._lock:
            self._confirm()
            return () if sent is None else tuple(sent)

    def _send(self, events: Iterable[Event], sent: dict[str, None]) -> int:
        rules = self._rules
        produced = 0
        for event in events:
            if event.event_type not in rules:
                continue
            try:
                alert = detect_tier1(event, rules)
            except Exception:  # the account's kernel dead-letters this event
                log.exception("fast lane: no alert for event %s", event.event_id)
                continue
            if alert is None or alert.alert_id in sent:
                continue
            sent[alert.alert_id] = None
            if len(sent) > REMEMBERED:
                del sent[next(iter(sent))]  # the oldest
            self._produce(alert)
            self._pending.append(alert)
            produced += 1
        return produced

    def _confirm(self) -> None:
        if not self._pending:
            return
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                self._writer.flush()
                break
            except DependencyUnavailable as exc:
                self._metrics.sink_retries.labels(
                    sink="kafka-alerts-fast-lane", dependency=exc.dependency
                ).inc()
                log.warning("fast lane: %s; producing %d alert(s) again (attempt %d)",
                            exc, len(self._pending), attempt)
                self._retry.sleep(self._retry.backoff(attempt))
                for alert in self._pending:  # copies carry the same ids
                    self._produce(alert)
        self._metrics.sink_seconds.labels(sink="kafka-alerts-fast-lane").observe(
            time.perf_counter() - started
        )
        self._pending = []

    def _produce(self, alert: Alert) -> None:
        message = alert_message(alert)
        produced_at = self._clock()
        self._writer.produce(
            self._topic, message.key, message.value, message.headers,
            on_delivered=lambda latency_s: self._delivered(alert, produced_at + latency_s),
        )

    def _delivered(self, alert: Alert, acked_at: float) -> None:
        """Count the alert, observe its latency to the broker's acknowledgement (the
        delivery report, served at a later poll, says how long it took) and log it."""
        self._metrics.sink_writes.labels(sink="kafka-alerts-fast-lane").inc()
        alert_emitted(self._metrics, alert, acked_at)
