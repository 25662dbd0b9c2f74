"""The Kafka input: every partition of the events topic, one item per poll.

Bytewax's own Kafka source turns every message into an item of the dataflow
(a ``KafkaSourceMessage`` built per message, then carried through the input
operator one by one): 11 % of the workers' CPU in a profile of the full
pipeline, more than the JSON parse. This source hands the parse step the
consumer's own messages as they came, one :class:`MessageBatch` per poll, and
the parse step reads each message's fields once. A batch never leaves its
worker (the parse step is stateless, so Bytewax does not move its input), so
nothing of it is pickled.

Offsets live in Bytewax's recovery store, not in a consumer group
(bytewax#377), so the recovery directory *is* the consumer position: keep it
with the deployment, and start a new one if the topic is recreated. The
partition's snapshot is the offset of the next message to read; with
``tail=False`` the partition ends at its end of log (fetch EOF, not the
watermark, which lags on some brokers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE, _list_parts
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import Gauge

# librdkafka's default fetch.queue.backoff.ms (1000 ms) stalls a consumer that
# is slower than the broker for a second at a time (DESIGN.md, costs table).
# fetch.wait.max.ms (500 by default) is how long the broker may hold a fetch that
# found nothing new. On the embedded broker the default added a few hundred ms to
# alerts (whether it holds a fetch past new messages was not checked): 20 ms took
# the tier-1 p50 at 10,000 events/s from 303 to 176 ms, for ~0.1 core more on the
# broker.
CONSUMER_CONFIG: dict[str, str | int | bool] = {
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 20,
    "statistics.interval.ms": 5000,
    # A recovered offset the log no longer has (retention deleted it, or the topic was
    # recreated): read from the oldest message kept. librdkafka's default, the end of
    # the log, would skip all that is still there without a word; what is re-read is
    # deduplicated by event id.
    "auto.offset.reset": "earliest",
    # How far each partition's consumer reads ahead of the dataflow (librdkafka's
    # defaults: 100,000 messages or 64 MB per partition, which a backlog fills: over
    # half a GB for 8 partitions). Two input batches ahead keep it fed.
    "queued.min.messages": 10_000,
    "queued.max.messages.kbytes": 8_192,
}
# How long a poll waits for messages when none are buffered, as Bytewax's source.
POLL_TIMEOUT_S = 0.001


class MessageBatch:
    """The messages of one poll of one partition, as the consumer gave them
    (``confluent_kafka.Message``: read with ``value()``, ``offset()``, ...; an
    ``error()`` other than end-of-partition is a consumer error)."""

    __slots__ = ("messages",)

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"MessageBatch({len(self.messages)} messages)"


class _EventsPartition(StatefulSourcePartition[MessageBatch, int]):
    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        partition: int,
        offset: int,
        batch_size: int,
        heartbeat: Callable[[], None] | None,
        report_lag: bool = True,
    ) -> None:
        self._offset = offset
        self._topic = topic
        self._partition = partition
        self._lag = BYTEWAX_CONSUMER_LAG_GAUGE.labels(
            step_id="kafka-in", topic=topic, partition=partition
        )
        self._consumer = Consumer(
            {**config, "stats_cb": self._stats} if report_lag
            else {**config, "statistics.interval.ms": 0}
        )
        # assign(), not subscribe(): no consumer group, the offset is ours
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._batch_size = batch_size
        self._heartbeat = heartbeat
        self._eof = False

    def next_batch(self) -> list[MessageBatch]:
        if self._eof:
            raise StopIteration
        if self._heartbeat is not None:
            self._heartbeat()
        messages = self._consumer.consume(self._batch_size, POLL_TIMEOUT_S)
        if not messages:
            return []
        for index, message in enumerate(messages):
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                # The end of a finite input: keep what came before, end at the next call.
                self._eof = True
                messages = messages[:index]
                break
        for message in reversed(messages):
            offset = message.offset()
            if message.error() is None and offset is not None:
                self._offset = offset + 1  # resume after it
                break
        return [MessageBatch(messages)] if messages else []

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()

    def _stats(self, stats: str) -> None:
        """librdkafka's statistics (every ``statistics.interval.ms``): the lag gauge,
        under Bytewax's own metric name, which the dashboards and alerts read."""
        topics = orjson.loads(stats).get("topics", {})
        partition = topics.get(self._topic, {}).get("partitions", {}).get(str(self._partition))
        if partition is not None and self._offset > 0:
            self._lag.set(partition["ls_offset"] - self._offset)


class EventsSource(FixedPartitionedSource[MessageBatch, int]):
    """Every partition of ``topic``, read from the beginning (or the recovered offset).

    ``tail=False`` ends each partition at its end of log (replays, benchmarks,
    tests); ``config`` adds librdkafka consumer properties (e.g. security
    settings). Every poll sets ``heartbeat`` (the
    ``churnwatch_input_last_poll_timestamp_seconds`` gauge), which ``/readyz``
    and the "stalled" alert read.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        tail: bool,
        batch_size: int,
        heartbeat: Gauge | None = None,
        config: Mapping[str, str | int | bool] | None = None,
        report_lag: bool = True,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._tail = tail
        self._batch_size = batch_size
        self._heartbeat = heartbeat
        self._config = dict(config or {})
        self._report_lag = report_lag

    def for_lane(self) -> EventsSource:
        """The same partitions for a second reader (the tier-1 lane's): it sets neither
        the heartbeat nor the lag gauge, which say how far the worker's reader got."""
        return EventsSource(self._bootstrap, self._topic, tail=self._tail,
                            batch_size=self._batch_size, config=self._config,
                            report_lag=False)

    def list_parts(self) -> list[str]:
        client = AdminClient({**self._config, "bootstrap.servers": self._bootstrap})
        return list(_list_parts(client, [self._topic]))

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _EventsPartition:
        index, topic = for_part.split("-", 1)
        if topic != self._topic:
            msg = (
                f"the recovery directory holds offsets of topic {topic!r}, not {self._topic!r}:"
                " start a new recovery directory for a new topic"
            )
            raise ValueError(msg)
        config = {
            **CONSUMER_CONFIG,
            **self._config,
            "bootstrap.servers": self._bootstrap,
            # The offsets are kept by Bytewax's recovery, not by a consumer group.
            "group.id": "churnwatch-unused",
            "enable.auto.commit": False,
            "enable.partition.eof": not self._tail,
        }
        heartbeat = None if self._heartbeat is None else self._heartbeat.set_to_current_time
        return _EventsPartition(
            config,
            topic,
            int(index),
            OFFSET_BEGINNING if resume_state is None else resume_state,
            self._batch_size,
            heartbeat,
            self._report_lag,
        )
