"""dataflows.outputs: every sink rides out a dependency outage; a defect still stops it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from dataflows.metrics import PipelineMetrics
from dataflows.outputs import RetryPolicy, WriterSink
from featurestore.errors import FeatureStoreUnavailable
from sinks.errors import DatabaseUnavailable, KafkaUnavailable


class FlakyWriter:
    """Fails with the given errors, in order, then writes."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = list(errors)
        self.written: list[list[Any]] = []
        self.attempts = 0

    def write_batch(self, items: Sequence[Any]) -> None:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        self.written.append(list(items))

    def close(self) -> None:
        pass


def build(
    writer: FlakyWriter, slept: list[float], seen: list[list[Any]]
) -> tuple[Any, PipelineMetrics]:
    metrics = PipelineMetrics.create(CollectorRegistry())
    sink = WriterSink(
        "postgres-alerts", lambda: writer, metrics, on_written=seen.append,
        retry=RetryPolicy(first_backoff_s=0.1, max_backoff_s=0.3, sleep=slept.append),
    )
    return sink.build("out", 0, 1), metrics


def test_a_write_waits_out_every_kind_of_outage_then_succeeds() -> None:
    writer = FlakyWriter([
        DatabaseUnavailable("connection refused"),
        FeatureStoreUnavailable("connection reset"),
        KafkaUnavailable(3, "flush timed out"),
        DatabaseUnavailable("still down"),
    ])
    slept: list[float] = []
    seen: list[list[Any]] = []
    partition, metrics = build(writer, slept, seen)
    partition.write_batch(["a", "b"])
    assert writer.written == [["a", "b"]] and seen == [["a", "b"]]
    assert slept == [0.1, 0.2, 0.3, 0.3]  # doubling, capped
    sample = metrics.registry.get_sample_value
    assert sample("churnwatch_sink_retries_total",
                  {"sink": "postgres-alerts", "dependency": "postgres"}) == 2
    assert sample("churnwatch_sink_retries_total",
                  {"sink": "postgres-alerts", "dependency": "redis"}) == 1
    assert sample("churnwatch_sink_retries_total",
                  {"sink": "postgres-alerts", "dependency": "kafka"}) == 1
    assert sample("churnwatch_dependency_waiting", {"dependency": "postgres"}) == 0
    assert sample("churnwatch_sink_errors_total", {"sink": "postgres-alerts"}) == 0


def test_a_defect_is_not_retried_and_stops_the_sink() -> None:
    writer = FlakyWriter([ValueError("a row the database refuses")])
    slept: list[float] = []
    partition, metrics = build(writer, slept, [])
    with pytest.raises(ValueError, match="refuses"):
        partition.write_batch(["a"])
    assert writer.attempts == 1 and slept == []
    assert metrics.registry.get_sample_value(
        "churnwatch_sink_errors_total", {"sink": "postgres-alerts"}
    ) == 1


def test_waiting_shows_while_the_dependency_is_down() -> None:
    shown: list[float | None] = []
    metrics_box: list[PipelineMetrics] = []

    def sleep(_seconds: float) -> None:
        shown.append(metrics_box[0].registry.get_sample_value(
            "churnwatch_dependency_waiting", {"dependency": "kafka"}
        ))

    writer = FlakyWriter([KafkaUnavailable(1, "broker down")])
    metrics = PipelineMetrics.create(CollectorRegistry())
    metrics_box.append(metrics)
    sink = WriterSink("kafka-alerts", lambda: writer, metrics, retry=RetryPolicy(sleep=sleep))
    sink.build("out", 0, 1).write_batch(["x"])
    assert shown == [1.0]
    assert metrics.registry.get_sample_value(
        "churnwatch_dependency_waiting", {"dependency": "kafka"}
    ) == 0
