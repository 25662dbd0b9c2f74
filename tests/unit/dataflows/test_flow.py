"""The dataflow wiring over a testing source and sinks (no broker), 1 and 2 workers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from confluent_kafka import KafkaError, Message
from prometheus_client import CollectorRegistry

from accounts.config import AccountConfig
from dataflows.flow import FlowConfig, FlowSinks, build_dataflow
from dataflows.kafka_input import MessageBatch
from dataflows.metrics import PipelineMetrics
from detectors.tier1 import DEFAULT_TIER1_RULES, Tier1Rule
from detectors.usage import InactivityRule
from featurestore.aggregation import CompiledFeatures
from featurestore.definitions import load_definitions
from schemas.alert import Alert
from schemas.dead_letter import DeadLetter
from schemas.event import EventLimits, RejectReason
from schemas.lifecycle import Cancellation
from tests.builders import event_bytes

NOW = datetime(2026, 10, 2, tzinfo=UTC)


def message(value: bytes | None, offset: int, partition: int = 0) -> KafkaSourceMessage:
    return KafkaSourceMessage(
        key=b"acct", value=value, topic="churn.events", partition=partition, offset=offset
    )


def run_flow(
    messages: list[Any], workers: int = 1, *, batch_size: int = 4,
    feature_flush_interval: timedelta = timedelta(seconds=5), now: datetime = NOW,
    tier1_rules: Mapping[str, Tier1Rule] = DEFAULT_TIER1_RULES,
) -> tuple[dict[str, list[Any]], PipelineMetrics]:
    names = ("dlq", "kafka", "pg", "cancel", "late", "features", "signals", "outcomes")
    out: dict[str, list[Any]] = {name: [] for name in names}
    sinks = FlowSinks(
        dead_letters=TestingSink(out["dlq"]),
        alerts_kafka=TestingSink(out["kafka"]),
        alerts_postgres=TestingSink(out["pg"]),
        cancellations=TestingSink(out["cancel"]),
        late_events=TestingSink(out["late"]),
        features=TestingSink(out["features"]),
        usage_signals=TestingSink(out["signals"]),
        outcomes=TestingSink(out["outcomes"]),
    )
    config = FlowConfig(
        limits=EventLimits(),
        account=AccountConfig(
            86_400.0, 1_000, tier1_rules, CompiledFeatures(load_definitions())
        ),
        idle_state_ttl=timedelta(days=40),
        absences=(InactivityRule(),),
        feature_flush_interval=feature_flush_interval,
    )
    metrics = PipelineMetrics.create(CollectorRegistry())
    flow = build_dataflow(
        TestingSource(messages, batch_size=batch_size), sinks, config, metrics, clock=lambda: now
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

    doc = orjson.loads(letter.to_json())
    assert doc["reason"] == "not_json" and doc["original_encoding"] == "base64"
    assert base64.b64decode(doc["original"]) == b"\xff\xfe binary"
    assert doc["source"] == {"topic": "churn.events", "partition": 3, "offset": 41}


def test_a_consumer_error_in_a_kafka_batch_is_dead_lettered_and_the_rest_goes_on() -> None:
    # The Kafka input hands over a poll's messages as the consumer gave them; one with an
    # error() (other than end of partition) is librdkafka's, not a producer's. On the
    # embedded broker no honest way was found to make the consumer yield one (an offset
    # past the end, an assigned partition or topic that does not exist, a broker killed
    # mid-poll: Tansu and librdkafka answer with nothing, and deleting the topic crashed
    # librdkafka), so the error is a real confluent_kafka Message built here.
    batch = MessageBatch([
        Message(topic="churn.events", partition=2, offset=10, key=b"acct",
                value=event_bytes(event_id="k1", event_type="billing.payment_failed")),
        Message(topic="churn.events", partition=2, offset=11,
                error=KafkaError(KafkaError._AUTO_OFFSET_RESET, "offset 11 out of range")),
        Message(topic="churn.events", partition=2, offset=12, key=b"acct-2",
                value=event_bytes(event_id="k2", account_id="acct-2",
                                  event_type="billing.downgraded")),
    ])
    out, metrics = run_flow([batch])

    (letter,) = out["dlq"]
    assert (letter.reason, letter.topic, letter.partition, letter.offset, letter.value) == (
        RejectReason.CONSUMER_ERROR, "churn.events", 2, 11, None
    )
    assert letter.detail == "offset 11 out of range"
    record = orjson.loads(letter.to_json())
    assert (record["reason"], record["original"]) == ("consumer_error", None)
    assert record["source"] == {"topic": "churn.events", "partition": 2, "offset": 11}
    # The messages around it are events as usual.
    assert sorted(a.rule for a in out["kafka"]) == ["downgraded", "payment_failed"]
    assert metrics.registry.get_sample_value(
        "churnwatch_ingest_rejected_total", {"reason": "consumer_error"}
    ) == 1


# --- scoring and decisions -------------------------------------------------------


def run_decisions(messages: list[Any], workers: int) -> dict[str, list[Any]]:
    from accounts.config import ScoringConfig
    from churnwatch.settings import DEFAULT_MODEL_DIR, DEFAULT_POLICY
    from dataflows.flow import ScoringStage
    from decisions.engine import DecisionEngine
    from decisions.policy import load_policy, vocabulary_for
    from scoring.model import load_model
    from scoring.risk import RiskPolicy

    feature_set = load_definitions()
    out: dict[str, list[Any]] = {name: [] for name in ("alerts", "decisions", "workflows")}
    discard: list[Any] = []
    sinks = FlowSinks(
        dead_letters=TestingSink(discard),
        alerts_kafka=TestingSink(out["alerts"]),
        alerts_postgres=TestingSink(discard),
        cancellations=TestingSink(discard),
        late_events=TestingSink(discard),
        features=TestingSink(discard),
        usage_signals=TestingSink(discard),
        risk_scores=TestingSink(discard),
        decisions=TestingSink(out["decisions"]),
        workflows_kafka=TestingSink(out["workflows"]),
    )
    rules = [r.rule for r in DEFAULT_TIER1_RULES.values()]
    policy = load_policy(DEFAULT_POLICY, vocabulary_for(rules, feature_set.names))
    stage = ScoringStage(
        load_model(DEFAULT_MODEL_DIR, feature_set.version, feature_set.names),
        RiskPolicy(),
        decisions=DecisionEngine(policy, feature_set.names),
    )
    config = FlowConfig(
        limits=EventLimits(),
        account=AccountConfig(
            86_400.0, 1_000, DEFAULT_TIER1_RULES, CompiledFeatures(feature_set),
            scoring=ScoringConfig(),
        ),
        idle_state_ttl=timedelta(days=40),
        absences=(InactivityRule(),),
        scoring=stage,
    )
    metrics = PipelineMetrics.create(CollectorRegistry())
    flow = build_dataflow(
        TestingSource(messages, batch_size=3), sinks, config, metrics, clock=lambda: NOW
    )
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return out


DECISION_STREAM = [
    message(event_bytes(event_id="d1", event_type="billing.payment_failed",
                        event_time="2026-10-01T08:00:00Z"), 0),
    message(event_bytes(event_id="d2", account_id="acct-3", event_type="account.consent_changed",
                        attributes={"contact_allowed": False},
                        event_time="2026-10-01T07:00:00Z"), 1),
    message(event_bytes(event_id="d3", account_id="acct-3", event_type="billing.payment_failed",
                        event_time="2026-10-01T09:00:00Z"), 2),
    message(event_bytes(event_id="d4", event_type="billing.payment_succeeded",
                        event_time="2026-10-01T20:00:00Z"), 3),
    message(event_bytes(event_id="d5", account_id="acct-2", event_type="billing.downgraded",
                        event_time="2026-10-01T10:00:00Z"), 4),
]


@pytest.mark.parametrize("workers", [1, 2])
def test_flow_decides_every_alert_and_emits_triggers_and_signals(workers: int) -> None:
    from schemas.decision import DecisionRecord
    from schemas.lifecycle import AccountChange
    from schemas.workflow import SignalKind, WorkflowSignal, WorkflowTrigger

    out = run_decisions(DECISION_STREAM, workers)
    records = {(d.account_id, d.trigger): d for d in out["decisions"]
               if isinstance(d, DecisionRecord)}
    # One decision per alert, tier-1 and tier-3 (risk tier rises) alike.
    assert sorted(a.alert_id for a in out["alerts"]) == sorted(d.alert_id for d in records.values())
    assert str(records[("acct-1", "payment_failed")].decision) == "start_workflow"
    assert str(records[("acct-3", "payment_failed")].reasons[0]) == "not_eligible_do_not_contact"
    assert str(records[("acct-2", "downgraded")].decision) == "ignore"
    (trigger,) = [w for w in out["workflows"] if isinstance(w, WorkflowTrigger)]
    assert (trigger.account_id, trigger.workflow_key) == ("acct-1", "dunning")
    assert trigger.decision_id == records[("acct-1", "payment_failed")].decision_id
    (signal,) = [w for w in out["workflows"] if isinstance(w, WorkflowSignal)]
    assert (signal.trigger_id, signal.signal, signal.cause) == (
        trigger.trigger_id, SignalKind.RECOVERED, "payment_succeeded")
    # Triggers and signals also reach the Postgres sink, with the consent change.
    assert trigger in out["decisions"] and signal in out["decisions"]
    consents = [c for c in out["decisions"] if isinstance(c, AccountChange)]
    assert [(c.account_id, c.contact_allowed) for c in consents] == [("acct-3", False)]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_event_whose_handling_raises_is_dead_lettered_and_the_flow_goes_on(
    workers: int
) -> None:
    # A defect that only one event's content meets: without containment, the
    # dataflow would stop, and stop again on every restart (recovery resumes at
    # the same offset). The defect is in the tier-1 rules the kernel reads (a
    # mapping that raises for one event type), not a patched function: the kernel
    # may be compiled (churnwatch.native), and compiled calls are bound early.
    class FlawedRules(dict[str, Tier1Rule]):
        def get(self, key: Any, default: Any = None) -> Any:
            if key == "billing.boom":
                msg = "a defect met on this event"
                raise ZeroDivisionError(msg)
            return super().get(key, default)

    stream = [
        message(event_bytes(event_id="boom", event_type="billing.boom"), 0),
        message(event_bytes(event_id="after", event_type="billing.payment_failed",
                            event_time="2026-10-01T12:05:00Z"), 1),
    ]
    out, metrics = run_flow(stream, workers, tier1_rules=FlawedRules(DEFAULT_TIER1_RULES))
    [letter] = out["dlq"]
    assert isinstance(letter, DeadLetter)
    assert letter.reason is RejectReason.PROCESSING_ERROR
    assert letter.detail == "ZeroDivisionError: a defect met on this event"
    assert (letter.partition, letter.offset, letter.key) == (0, 0, b"acme:acct-1")
    assert b'"event_id":"boom"' in (letter.value or b"")
    assert [a.trigger_event_id for a in out["kafka"]] == ["after"]
    assert metrics.registry.get_sample_value(
        "churnwatch_ingest_rejected_total", {"reason": "processing_error"}
    ) == 1.0


def test_the_future_time_check_reads_the_injected_clock() -> None:
    # run_flow's clock says NOW (2026-10-02T00:00Z), whatever the wall clock says.
    ahead = [
        message(event_bytes(event_id="soon", event_time="2026-10-02T00:59:59Z"), 0),
        message(event_bytes(event_id="later", event_time="2026-10-02T01:00:01Z"), 1),
    ]
    out, _ = run_flow(ahead)
    assert [(d.offset, d.reason) for d in out["dlq"]] == [(1, RejectReason.FUTURE_TIME)]
