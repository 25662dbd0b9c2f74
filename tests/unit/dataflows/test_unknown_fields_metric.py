"""Unknown top-level fields: accepted by the parse step and counted by name, in a
bounded label set (``churnwatch_ingest_unknown_fields_total``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage
from prometheus_client import CollectorRegistry

from dataflows.metrics import MAX_FIELD_LABELS, FieldLabels, PipelineMetrics
from dataflows.parse import MessageParser
from schemas.event import Event, EventLimits
from tests.builders import event_bytes

NOW = datetime(2026, 10, 2, tzinfo=UTC)
METRIC = "churnwatch_ingest_unknown_fields_total"


def parse(values: list[bytes]) -> tuple[list[Event], PipelineMetrics]:
    metrics = PipelineMetrics.create(CollectorRegistry())
    parser = MessageParser(EventLimits(), lambda: NOW, metrics)
    batch: list[Any] = [
        KafkaSourceMessage(key=None, value=value, topic="t", partition=0, offset=i)
        for i, value in enumerate(values)
    ]
    events = [event for item in parser.parse_batch(batch) if type(item) is tuple
              for event in item[1] if isinstance(event, Event)]
    return events, metrics


def count(metrics: PipelineMetrics, field: str) -> float | None:
    return metrics.registry.get_sample_value(METRIC, {"field": field})


def test_events_with_unknown_fields_are_kept_and_counted_by_name() -> None:
    events, metrics = parse([
        event_bytes(event_id="e1", trace_id="t1"),
        event_bytes(event_id="e2", trace_id="t2", context={"ip": "10.0.0.1"}),
        event_bytes(event_id="e3"),
    ])
    assert [e.event_id for e in events] == ["e1", "e2", "e3"]
    assert [e.unknown_fields for e in events] == [("trace_id",), ("trace_id", "context"), ()]
    assert count(metrics, "trace_id") == 2.0
    assert count(metrics, "context") == 1.0
    assert metrics.summary()["dead_letters"] == 0


def test_a_batch_without_unknown_fields_leaves_the_metric_alone() -> None:
    _, metrics = parse([event_bytes(event_id="e1")])
    assert metrics.total(metrics.unknown_fields) == 0.0


def test_field_labels_are_bounded() -> None:
    labels = FieldLabels()
    names = [f"field_{n}" for n in range(MAX_FIELD_LABELS + 5)]
    assert [labels(name) for name in names] == names[:MAX_FIELD_LABELS] + ["other"] * 5
    assert labels("field_0") == "field_0"  # a name seen keeps its label


def test_odd_field_names_count_as_other() -> None:
    labels = FieldLabels()
    for name in ["", "a" * 65, "has space", "ünïcode", "new\nline", 'quote"']:
        assert labels(name) == "other"
    assert labels("a" * 64) == "a" * 64
