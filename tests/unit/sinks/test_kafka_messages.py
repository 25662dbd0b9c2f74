"""sinks.kafka encoders: the exact key, value and headers of every output message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from schemas.alert import Alert, AlertTier, Severity, alert_id
from schemas.dead_letter import DeadLetter, LateEvent
from schemas.event import RejectReason
from schemas.score import RiskScore, RiskTier
from sinks.kafka import (
    alert_message,
    dead_letter_message,
    late_event_message,
    score_message,
)
from tests.builders import T0, make_event


def test_alert_is_keyed_by_subject_and_carries_its_id() -> None:
    alert = Alert(
        alert_id=alert_id("acme", "acct-1", "payment_failed", "evt-1"),
        tenant_id="acme",
        account_id="acct-1",
        tier=AlertTier.EVENT_RULE,
        rule="payment_failed",
        severity=Severity.HIGH,
        trigger_event_id="evt-1",
        trigger_event_type="billing.payment_failed",
        event_time=T0,
        reasons=("a payment failed",),
    )
    message = alert_message(alert)
    assert message.key == b"acme:acct-1"
    assert message.value == alert.to_json()
    assert message.headers == [("alert_id", alert.alert_id.encode()), ("schema_version", b"1")]


def test_late_event_is_keyed_tenant_account_like_every_other_topic() -> None:
    event = make_event(tenant_id="globex", account_id="acct-9", event_id="evt-late")
    late = LateEvent(event, T0.timestamp() + 7200)
    message = late_event_message(late)
    assert message.key == b"globex:acct-9"
    assert message.headers == [("event_id", b"evt-late")]
    document = orjson.loads(message.value)
    assert document["late_by_seconds"] == 7200.0
    assert document["event"]["event_id"] == "evt-late"


def test_dead_letter_keeps_the_original_key_and_names_its_reason() -> None:
    letter = DeadLetter(RejectReason.NOT_JSON, "bad", "churn.events", 3, 41, b"k-1", b"{")
    message = dead_letter_message(letter)
    assert message.key == b"k-1"
    assert message.headers == [("reason", b"not_json")]
    assert orjson.loads(message.value)["source"] == {
        "topic": "churn.events", "partition": 3, "offset": 41
    }


def test_score_is_keyed_by_subject_and_carries_its_id() -> None:
    at = datetime(2026, 10, 1, tzinfo=UTC)
    score = RiskScore(
        score_id="s-1", tenant_id="acme", account_id="acct-2", model_version="m1",
        feature_version="f1", ml_risk=0.5, rule_risk=0.0, risk=0.5, tier=RiskTier.MEDIUM,
        reasons=("r",), score_time=at, expires_at=at + timedelta(days=7),
        trigger_event_id="evt-2",
    )
    message = score_message(score)
    assert message.key == b"acme:acct-2"
    assert message.headers == [("score_id", b"s-1"), ("schema_version", b"1")]
    assert orjson.loads(message.value)["tier"] == "medium"
