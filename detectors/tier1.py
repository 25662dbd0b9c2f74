"""Tier-1 detectors: single decisive events that say an account is at risk.

Pure functions: an :class:`~schemas.event.Event` and the rules in, an alert or
a record out. The event-type → (rule, severity) mapping is data (the
definitions file's ``tier1`` section, or ``CHURNWATCH_TIER1_RULES``), so a
tenant with its own taxonomy changes configuration, not code.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from schemas.alert import Alert, AlertTier, Severity, alert_id, deterministic_id
from schemas.event import Event
from schemas.lifecycle import Cancellation

CANCELLED_EVENT_TYPE = "subscription.cancelled"
DEFAULT_CANCELLED = frozenset({CANCELLED_EVENT_TYPE})


@dataclass(frozen=True, slots=True)
class Tier1Rule:
    """What one decisive event type means."""

    rule: str
    severity: Severity
    reason: str


# What the shipped definitions file declares (a test holds them equal).
DEFAULT_TIER1_RULES: Mapping[str, Tier1Rule] = {
    "billing.payment_failed": Tier1Rule(
        "payment_failed", Severity.HIGH, "a payment failed: involuntary churn risk"
    ),
    "subscription.cancel_intent": Tier1Rule(
        "cancel_intent", Severity.HIGH, "the customer started to cancel"
    ),
    "billing.downgraded": Tier1Rule(
        "downgraded", Severity.MEDIUM, "the customer moved to a cheaper plan"
    ),
}


def parse_tier1_rules(document: object) -> Mapping[str, Tier1Rule]:
    """Rules from JSON: ``{"billing.payment_failed": {"rule": ..., "severity": ...}}``.

    Raises ``ValueError`` naming the first bad entry.
    """
    if not isinstance(document, dict):
        msg = "tier-1 rules must be a JSON object keyed by event_type"
        raise ValueError(msg)
    rules: dict[str, Tier1Rule] = {}
    for event_type, spec in document.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("rule"), str):
            msg = f"{event_type}: expected an object with a string 'rule'"
            raise ValueError(msg)
        try:
            severity = Severity(spec.get("severity", "high"))
        except ValueError:
            msg = f"{event_type}: severity must be one of {[s.value for s in Severity]}"
            raise ValueError(msg) from None
        reason = spec.get("reason", f"{event_type} received")
        rules[event_type] = Tier1Rule(spec["rule"], severity, str(reason))
    return rules


def detect_tier1(event: Event, rules: Mapping[str, Tier1Rule]) -> Alert | None:
    """The tier-1 alert this event raises, if its type is a decisive one."""
    rule = rules.get(event.event_type)
    if rule is None:
        return None
    return Alert(
        alert_id=alert_id(event.tenant_id, event.account_id, rule.rule, event.event_id),
        tenant_id=event.tenant_id,
        account_id=event.account_id,
        tier=AlertTier.EVENT_RULE,
        rule=rule.rule,
        severity=rule.severity,
        trigger_event_id=event.event_id,
        trigger_event_type=event.event_type,
        event_time=event.event_time,
        reasons=(rule.reason,),
        ingested_at=event.ingested_at,
    )


def detect_cancellation(
    event: Event, cancelled: Container[str] = DEFAULT_CANCELLED
) -> Cancellation | None:
    """A cancellation record for the event types that mean one (the lifecycle
    mapping's ``cancelled``)."""
    if event.event_type not in cancelled:
        return None
    reason = event.attributes.get("reason_code")
    return Cancellation(
        cancellation_id=deterministic_id(
            "cancellation", "v1", event.tenant_id, event.account_id, event.event_id
        ),
        tenant_id=event.tenant_id,
        account_id=event.account_id,
        event_id=event.event_id,
        cancelled_at=event.event_time,
        reason_code=str(reason)[:128] if reason is not None else None,
    )
