"""Tier-1 detectors, rule parsing and alert ids."""

from __future__ import annotations

import json

import jsonschema
import pytest

from detectors.tier1 import (
    DEFAULT_TIER1_RULES,
    detect_cancellation,
    detect_tier1,
    parse_tier1_rules,
)
from schemas import SCHEMA_DIR
from schemas.alert import AlertTier, Severity, alert_id
from tests.builders import make_event


@pytest.mark.parametrize(
    ("event_type", "rule", "severity"),
    [
        pytest.param(
            "billing.payment_failed", "payment_failed", Severity.HIGH, id="payment-failed"
        ),
        pytest.param("subscription.cancel_intent", "cancel_intent", Severity.HIGH, id="cancel"),
        pytest.param("billing.downgraded", "downgraded", Severity.MEDIUM, id="downgraded"),
    ],
)
def test_decisive_events_raise_tier1_alerts(event_type: str, rule: str, severity: Severity) -> None:
    alert = detect_tier1(make_event(event_type=event_type), DEFAULT_TIER1_RULES)
    assert alert is not None
    assert (alert.rule, alert.severity, alert.tier) == (rule, severity, AlertTier.EVENT_RULE)
    assert alert.trigger_event_id == "evt-1"


@pytest.mark.parametrize(
    "event_type",
    ["app.login", "billing.payment_succeeded", "subscription.cancelled", "crm.unknown"],
)
def test_other_events_raise_nothing(event_type: str) -> None:
    assert detect_tier1(make_event(event_type=event_type), DEFAULT_TIER1_RULES) is None


def test_cancellation_records_reason_code() -> None:
    record = detect_cancellation(
        make_event(event_type="subscription.cancelled", attributes={"reason_code": "too_expensive"})
    )
    assert record is not None and record.reason_code == "too_expensive"
    no_reason = detect_cancellation(make_event(event_type="subscription.cancelled"))
    assert no_reason is not None and no_reason.reason_code is None
    assert detect_cancellation(make_event(event_type="app.login")) is None


def test_alert_id_is_deterministic_and_input_sensitive() -> None:
    first = alert_id("acme", "a1", "payment_failed", "evt-1")
    assert first == alert_id("acme", "a1", "payment_failed", "evt-1")
    others = {
        alert_id("acme", "a1", "payment_failed", "evt-2"),
        alert_id("acme", "a2", "payment_failed", "evt-1"),
        alert_id("globex", "a1", "payment_failed", "evt-1"),
        alert_id("acme", "a1", "cancel_intent", "evt-1"),
        alert_id("acme:a1", "", "payment_failed", "evt-1"),
    }
    assert first not in others and len(others) == 5


def test_same_event_gives_same_alert_document() -> None:
    event = make_event(event_type="billing.payment_failed")
    one = detect_tier1(event, DEFAULT_TIER1_RULES)
    two = detect_tier1(event, DEFAULT_TIER1_RULES)
    assert one is not None and two is not None and one.to_json() == two.to_json()


def test_alert_documents_match_the_published_schema() -> None:
    schema = json.loads((SCHEMA_DIR / "alert.v1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    alert = detect_tier1(make_event(event_type="billing.downgraded"), DEFAULT_TIER1_RULES)
    assert alert is not None
    validator.validate(alert.to_document())
    example = json.loads((SCHEMA_DIR / "examples" / "alert.v1.json").read_text())
    validator.validate(example)


def test_rules_from_settings_json() -> None:
    rules = parse_tier1_rules({"support.escalated": {"rule": "escalation", "severity": "medium"}})
    alert = detect_tier1(make_event(event_type="support.escalated"), rules)
    assert alert is not None and alert.severity is Severity.MEDIUM
    assert detect_tier1(make_event(event_type="billing.payment_failed"), rules) is None


@pytest.mark.parametrize(
    "document",
    [[], {"x.y": "high"}, {"x.y": {"rule": "r", "severity": "critical"}}],
    ids=["not-object", "not-spec", "bad-severity"],
)
def test_bad_rules_are_refused(document: object) -> None:
    with pytest.raises(ValueError):
        parse_tier1_rules(document)
