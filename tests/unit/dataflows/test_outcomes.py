"""Workflow outcome events (workflow.*) through the dataflow: recorded once, bad ones
dead-lettered with a reason, and nothing else in the flow moved by them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage

from dataflows.metrics import PipelineMetrics
from schemas.event import RejectReason
from schemas.workflow import OutcomeKind, WorkflowOutcome
from tests.builders import event_bytes
from tests.unit.dataflows.test_flow import run_flow as flow_run

NOW = datetime(2026, 10, 20, tzinfo=UTC)
TRIGGER = "25431320-0335-5fc5-8e29-aad518ef8563"
OTHER_TRIGGER = "7b0e5c55-3c2c-5f0a-9b3e-0d1b2a3c4d5e"


def message(value: bytes | None, offset: int) -> KafkaSourceMessage:
    return KafkaSourceMessage(key=b"acct", value=value, topic="churn.events", partition=0,
                              offset=offset)


def run_flow(values: list[bytes], workers: int = 1) -> tuple[dict[str, list[Any]],
                                                            PipelineMetrics]:
    """The flow of ``test_flow`` over ``values``, features flushed at once."""
    messages = [message(value, offset) for offset, value in enumerate(values)]
    return flow_run(messages, workers, batch_size=3, feature_flush_interval=timedelta(0),
                    now=NOW)


def outcome(event_id: str, kind: str, time: str, **attributes: Any) -> bytes:
    return event_bytes(event_id=event_id, event_type=f"workflow.{kind}", event_time=time,
                       source="crm", user_id=None, attributes=attributes)


# An account's own behaviour over a few days (logins, a failed payment).
BEHAVIOUR = [
    event_bytes(event_id=f"login-{day}", event_type="app.login",
                event_time=f"2026-10-{day:02d}T09:00:00Z")
    for day in range(1, 15)
] + [event_bytes(event_id="pay", event_type="billing.payment_failed",
                 event_time="2026-10-15T10:00:00Z")]

OUTCOMES = [
    outcome("o-delivered", "delivered", "2026-10-03T10:00:00Z", trigger_id=TRIGGER),
    outcome("o-engaged", "engaged", "2026-10-05T10:00:00Z", trigger_id=TRIGGER,
            step="call_scheduled", note="asked for a call on Friday"),
    outcome("o-engaged", "engaged", "2026-10-05T10:00:00Z", trigger_id=TRIGGER,
            step="call_scheduled", note="asked for a call on Friday"),  # a copy
    outcome("o-saved", "saved", "2026-10-16T10:00:00Z", trigger_id=TRIGGER.upper()),
]

BAD_OUTCOMES = [
    # (the message, what its dead letter's detail names)
    (outcome("b-none", "saved", "2026-10-06T10:00:00Z"), "trigger_id"),
    (outcome("b-text", "lost", "2026-10-06T10:00:00Z", trigger_id="not-a-uuid"), "trigger_id"),
    (outcome("b-int", "delivered", "2026-10-06T10:00:00Z", trigger_id=42), "trigger_id"),
    (event_bytes(event_id="b-noattr", event_type="workflow.engaged", attributes=None),
     "attributes"),
    (outcome("b-step", "engaged", "2026-10-06T10:00:00Z", trigger_id=TRIGGER, step=7),
     "attributes.step"),
    (outcome("b-note", "engaged", "2026-10-06T10:00:00Z", trigger_id=TRIGGER, note="x" * 2001),
     "attributes.note"),
]


@pytest.mark.parametrize("workers", [1, 2])
def test_outcomes_are_recorded_once_and_move_nothing_else(workers: int) -> None:
    # The outcomes interleaved with the account's behaviour, as they would arrive.
    mixed = [*BEHAVIOUR[:3], OUTCOMES[0], *BEHAVIOUR[3:5], *OUTCOMES[1:3], *BEHAVIOUR[5:],
             OUTCOMES[3]]
    with_outcomes, metrics = run_flow(mixed, workers)
    without, _ = run_flow(BEHAVIOUR, workers)

    recorded = sorted(with_outcomes["outcomes"], key=lambda o: o.occurred_at)
    assert all(isinstance(o, WorkflowOutcome) for o in recorded)
    assert [(o.event_id, o.outcome, o.trigger_id, o.step, o.note) for o in recorded] == [
        ("o-delivered", OutcomeKind.DELIVERED, TRIGGER, None, None),
        ("o-engaged", OutcomeKind.ENGAGED, TRIGGER, "call_scheduled",
         "asked for a call on Friday"),
        ("o-saved", OutcomeKind.SAVED, TRIGGER, None, None),  # the UUID in lower case
    ]
    assert {o.source for o in recorded} == {"crm"}
    assert metrics.total(metrics.duplicates) == 1
    assert metrics.total(metrics.workflow_outcomes) == 3
    assert with_outcomes["dlq"] == []
    # Alerts, signals and late events exactly as without the outcomes, and the account's
    # features end the same (when they are flushed depends on the batches).
    for name in ("kafka", "pg", "signals", "late", "cancel"):
        assert with_outcomes[name] == without[name], name
    assert with_outcomes["features"][-1] == without["features"][-1]
    assert with_outcomes["kafka"]  # the failed payment's alert: the account was seen


def test_bad_outcomes_are_dead_lettered_with_a_reason() -> None:
    values = [value for value, _ in BAD_OUTCOMES] + [OUTCOMES[0]]
    out, metrics = run_flow(values)
    letters = sorted(out["dlq"], key=lambda letter: letter.offset)
    assert [letter.offset for letter in letters] == list(range(len(BAD_OUTCOMES)))
    for letter, (value, named) in zip(letters, BAD_OUTCOMES, strict=True):
        assert letter.reason is RejectReason.SCHEMA
        assert named in letter.detail
        assert letter.value == value  # the original bytes, for a replay once fixed
    assert [o.event_id for o in out["outcomes"]] == ["o-delivered"]
    assert metrics.total(metrics.rejected) == len(BAD_OUTCOMES)


def test_an_unknown_workflow_event_type_is_an_ordinary_event() -> None:
    # Only the four outcome types are outcomes; another workflow.* type is accepted and
    # counted like any unknown type, its attributes unchecked.
    out, _ = run_flow([event_bytes(event_id="w", event_type="workflow.paused")])
    assert out["dlq"] == [] and out["outcomes"] == []
