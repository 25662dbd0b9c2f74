"""The Kafka input: Bytewax's Kafka source over every partition of the events topic.

Its offsets live in Bytewax's recovery store, not in a consumer group
(bytewax#377), so the recovery directory *is* the consumer position: keep it
with the deployment, and start a new one if the topic is recreated.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bytewax.connectors.kafka import KafkaSource, _list_parts
from bytewax.inputs import StatefulSourcePartition
from confluent_kafka.admin import AdminClient
from prometheus_client import Gauge

# librdkafka's default fetch.queue.backoff.ms (1000 ms) stalls a consumer that
# is slower than the broker for a second at a time (DESIGN.md, costs table).
CONSUMER_CONFIG = {"fetch.queue.backoff.ms": "10", "statistics.interval.ms": "5000"}


class _HeartbeatPartition(StatefulSourcePartition[Any, Any]):
    """Delegates to Bytewax's Kafka partition and records each poll (the heartbeat)."""

    def __init__(self, inner: StatefulSourcePartition[Any, Any], beat: Callable[[], None]):
        self._inner = inner
        self._beat = beat

    def next_batch(self) -> list[Any]:
        self._beat()
        return list(self._inner.next_batch())

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class EventsSource(KafkaSource):
    """Bytewax's Kafka source, with its own partition listing and a heartbeat.

    The stock ``list_parts`` hands the consumer-only settings above to an admin
    client, which logs a CONFWARN for each; this lists with the bootstrap only.
    Every poll sets ``churnwatch_input_last_poll_timestamp_seconds``, which
    ``/readyz`` and the "stalled" alert read.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        tail: bool,
        batch_size: int,
        heartbeat: Gauge | None = None,
    ) -> None:
        super().__init__(
            [bootstrap],
            [topic],
            tail=tail,
            batch_size=batch_size,
            add_config=CONSUMER_CONFIG,
            raise_on_errors=False,
        )
        self._bootstrap = bootstrap
        self._topic = topic
        self._heartbeat = heartbeat

    def list_parts(self) -> list[str]:
        client = AdminClient({"bootstrap.servers": self._bootstrap})
        return list(_list_parts(client, [self._topic]))

    def build_part(  # type: ignore[override]  # a wrapper, not Bytewax's own partition
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> StatefulSourcePartition[Any, Any]:
        inner = super().build_part(step_id, for_part, resume_state)
        if self._heartbeat is None:
            return inner
        return _HeartbeatPartition(inner, self._heartbeat.set_to_current_time)
