"""Exact alert latencies, as a consumer of ``churn.alerts`` sees them.

The pipeline's latency histogram has coarse buckets (a p99 between 1 s and 2.5 s
is interpolated inside that bucket) and ends at the producer's acknowledgement,
so the benchmark also measures every alert of a tier exactly, from where a CRM
stands: :class:`AlertTail` consumes ``churn.alerts`` during the latency phase
(fetch wait 10 ms) and notes when each alert arrived; its latency is that
moment minus the time its trigger event was appended to the events topic (that
message's timestamp, the pipeline's ``ingested_at``). Each latency is kept with
the moment (seconds since producing started) its event arrived, so a slow
start-up is told apart from a slow steady state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from benchmarks.harness.figures import Figures

# Latencies of events ingested in the first seconds of the phase (new consumers,
# producers and accounts) are reported apart as well.
WARM_UP_S = 5.0


def _messages(
    bootstrap: str, topic: str, timeout_s: float = 120.0
) -> Iterator[tuple[bytes, float]]:
    """Every message of ``topic`` as (value, timestamp in epoch s), to the end of log."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "churnwatch-bench-latency",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        pending = set(partitions)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                    continue
                value = message.value()
                if value:
                    yield value, message.timestamp()[1] / 1000.0
    finally:
        consumer.close()


class AlertTail:
    """Consumes ``topic`` from its start until :meth:`stop`, noting when each alert of
    ``tier`` arrived (epoch s), by its trigger event's id (the first copy)."""

    def __init__(self, bootstrap: str, topic: str, tier: int) -> None:
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": "churnwatch-bench-alert-tail",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "fetch.queue.backoff.ms": 10,
        })
        self._topic, self._tier = topic, tier
        self._stop = threading.Event()
        self.arrived: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="alert tail", daemon=True)

    def start(self) -> AlertTail:
        # assign(), not subscribe(): no group to join (a join took seconds on the broker)
        topic = self._consumer.list_topics(self._topic, timeout=10).topics[self._topic]
        self._consumer.assign([TopicPartition(self._topic, p, 0) for p in topic.partitions])
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(1_000, 0.05):
                now = time.time()
                value = message.value()
                if message.error() is not None or not value:
                    continue
                alert = orjson.loads(value)
                event_id = (alert.get("trigger") or {}).get("event_id")
                if alert.get("tier") == self._tier and event_id:
                    self.arrived.setdefault(event_id, now)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()
        return self.arrived


def _quantile(values: list[float], q: float) -> float | None:
    """The nearest-rank quantile of ``values`` (sorted)."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, int(q * len(values) + 0.5) - 1))]


def exact_latencies(bootstrap: str, events_topic: str, arrived: dict[str, float],
                    produce_from: float) -> Figures:
    """Latencies of the alerts an :class:`AlertTail` saw arrive (``arrived``: trigger
    event id → epoch s) since their events' append times on ``events_topic``: count,
    p50, p99, max, the same after :data:`WARM_UP_S`, and the slowest five as (seconds
    since ``produce_from`` (epoch s), latency s)."""
    arrivals: list[tuple[float, float]] = []
    needles = {event_id.encode(): event_id for event_id in arrived}
    for value, stamp in _messages(bootstrap, events_topic):
        if not needles:
            break
        start = value.find(b'"event_id":"')
        if start < 0:
            continue
        end = value.find(b'"', start + 12)
        event_id = needles.pop(value[start + 12:end], None)
        if event_id is not None:
            arrivals.append((stamp - produce_from, max(0.0, arrived[event_id] - stamp)))
    latencies = sorted(latency for _, latency in arrivals)
    steady = sorted(latency for t, latency in arrivals if t >= WARM_UP_S)
    slowest = sorted(arrivals, key=lambda row: row[1], reverse=True)[:5]
    return {
        "alerts": len(latencies),
        "p50_s": _quantile(latencies, 0.5),
        "p99_s": _quantile(latencies, 0.99),
        "max_s": latencies[-1] if latencies else None,
        "share_le_250ms": (sum(1 for v in latencies if v <= 0.25) / len(latencies)
                           if latencies else None),
        "steady_p99_s": _quantile(steady, 0.99),
        "steady_alerts": len(steady),
        "slowest": [[round(t, 2), round(latency, 3)] for t, latency in slowest],
    }
