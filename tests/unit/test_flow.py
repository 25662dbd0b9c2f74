"""The dataflow wiring over a testing source and sinks (no broker), 1 and 2 workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from prometheus_client import CollectorRegistry

from dataflows.account import AccountConfig
from dataflows.flow import FlowConfig, FlowSinks, build_dataflow
from dataflows.metrics import PipelineMetrics
from detectors.tier1 import DEFAULT_TIER1_RULES, Cancellation
from detectors.usage import InactivityRule
from featurestore.aggregation import CompiledFeatures
from featurestore.definitions import load_definitions
from schemas.alert import Alert
from schemas.dead_letter import DeadLetter
from schemas.event import EventLimits, RejectReason
from tests.builders import event_bytes

NOW = datetime(2026, 10, 2, tzinfo=UTC)


def message(value: bytes | None, offset: int, partition: int = 0) -> KafkaSourceMessage:
    return KafkaSourceMessage(
        key=b"acct", value=value, topic="churn.events", partition=partition, offset=offset
    )


def run_flow(messages: list[Any], workers: int = 1) -> tuple[dict[str, list[Any]], PipelineMetrics]:
    out: dict[str, list[Any]] = {
        name: [] for name in ("dlq", "kafka", "pg", "cancel", "late", "features", "signals")
    }
    sinks = FlowSinks(
        dead_letters=TestingSink(out["dlq"]),
        alerts_kafka=TestingSink(out["kafka"]),
        alerts_postgres=TestingSink(out["pg"]),
        cancellations=TestingSink(out["cancel"]),
        late_events=TestingSink(out["late"]),
        features=TestingSink(out["features"]),
        usage_signals=TestingSink(out["signals"]),
    )
    config = FlowConfig(
        limits=EventLimits(),
        account=AccountConfig(
            86_400.0, 1_000, DEFAULT_TIER1_RULES, CompiledFeatures(load_definitions())
        ),
        idle_state_ttl=timedelta(days=40),
        inactivity=InactivityRule(),
    )
    metrics = PipelineMetrics.create(CollectorRegistry())
    flow = build_dataflow(
        TestingSource(messages, batch_size=4), sinks, config, metrics, clock=lambda: NOW
    )
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return out, metrics


STREAM = [
    message(event_bytes(event_id="e1", event_type="app.login"), 0),
    message(event_bytes(event_id="e2", event_type="billing.payment_failed"), 1),
    message(event_bytes(event_id="e2", event_type="billing.payment_failed"), 2),  # duplicate
    message(b"{nope", 3),
    message(
        event_bytes(
            event_id="e3",
            account_id="acct-2",
            event_type="billing.downgraded",
            event_time="2026-10-01T08:00:00-04:00",
        ),
        4,
    ),
    message(
        event_bytes(
            event_id="e4", event_type="subscription.cancelled", attributes={"reason_code": "price"}
        ),
        5,
    ),
    message(event_bytes(event_id="e5", event_time="2027-01-01T00:00:00Z"), 6),
    message(None, 7),
]


@pytest.mark.parametrize("workers", [1, 2])
def test_flow_routes_every_message(workers: int) -> None:
    out, metrics = run_flow(STREAM, workers)
    assert sorted((a.account_id, a.rule) for a in out["kafka"]) == [
        ("acct-1", "payment_failed"),
        ("acct-2", "downgraded"),
    ]
    assert all(isinstance(a, Alert) for a in out["kafka"])
    assert sorted(a.alert_id for a in out["pg"]) == sorted(a.alert_id for a in out["kafka"])
    assert [(c.account_id, c.reason_code) for c in out["cancel"]] == [("acct-1", "price")]
    assert all(isinstance(c, Cancellation) for c in out["cancel"])
    dead = sorted(out["dlq"], key=lambda d: d.offset)
    assert all(isinstance(d, DeadLetter) for d in dead)
    assert [(d.offset, d.reason) for d in dead] == [
        (3, RejectReason.NOT_JSON),
        (6, RejectReason.FUTURE_TIME),
        (7, RejectReason.NOT_JSON),
    ]
    assert metrics.total(metrics.messages) == 8
    assert metrics.total(metrics.duplicates) == 1
    assert metrics.total(metrics.events) == 5  # valid events read, the copy included


def test_dead_letter_keeps_original_bytes_and_source() -> None:
    out, _ = run_flow([message(b"\xff\xfe binary", 41, partition=3)])
    (letter,) = out["dlq"]
    assert (letter.partition, letter.offset, letter.value) == (3, 41, b"\xff\xfe binary")
    import base64

    import orjson

    doc = orjson.loads(letter.to_json())
    assert doc["reason"] == "not_json" and doc["original_encoding"] == "base64"
    assert base64.b64decode(doc["original"]) == b"\xff\xfe binary"
    assert doc["source"] == {"topic": "churn.events", "partition": 3, "offset": 41}
