"""Read and write test topics over a real broker connection.

Reads use ``assign()`` and partition EOF rather than a consumer group: group
joins take ~20 s on Tansu, and EOF is exact where watermarks lag.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


def produce_all(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors: list[str] = []
    count = 0
    for key, value in messages:
        producer.produce(
            topic,
            value=value,
            key=key,
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
        producer.poll(0)
        count += 1
    left = producer.flush(30)
    assert left == 0 and not errors, (left, errors[:3])
    return count


def read_all(
    bootstrap: str, topic: str, timeout_s: float = 30.0, *, since: Mapping[int, int] | None = None
) -> list[tuple[bytes | None, bytes, list]]:
    """Every message of every partition of ``topic``, as (key, value, headers); with
    ``since`` (partition -> offset, from :func:`ends`), only those written after."""
    return [(key, value, headers) for _, _, key, value, headers in
            _read(bootstrap, topic, timeout_s, since or {})]


def ends(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """Each partition's next offset: what :func:`read_all` ``since`` skips. (Messages
    of several partitions arrive interleaved in no fixed order, so a count of them
    says nothing about which are new.)"""
    found: dict[int, int] = {}
    for partition, offset, *_ in _read(bootstrap, topic, timeout_s, {}):
        found[partition] = max(found.get(partition, 0), offset + 1)
    return found


def _read(
    bootstrap: str, topic: str, timeout_s: float, since: Mapping[int, int]
) -> list[tuple[int, int, bytes | None, bytes, list]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "churnwatch-tests",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = list(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, since.get(p, 0)) for p in partitions])
        pending = set(partitions)
        out: list[tuple[int, int, bytes | None, bytes, list]] = []
        deadline = time.monotonic() + timeout_s
        while pending:
            assert time.monotonic() < deadline, f"timed out reading {topic}; at EOF: {pending}"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                raise AssertionError(str(msg.error()))
            out.append((msg.partition(), msg.offset(), msg.key(), msg.value(),
                        msg.headers() or []))
        return out
    finally:
        consumer.close()
