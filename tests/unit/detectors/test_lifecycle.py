"""Lifecycle changes for the decisions: which events are one, and what they carry."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.lifecycle import detect_change
from schemas.event import TRAITS_EVENT_TYPE
from schemas.lifecycle import AccountChange, ChangeKind
from tests.builders import T0, make_event


def change_of(event_type: str, **attributes: Any) -> AccountChange | None:
    return detect_change(
        make_event(event_id="evt-9", event_type=event_type, attributes=attributes,
                   ingested_at=5.0)
    )


def test_a_traits_event_with_a_plan_is_a_plan_change() -> None:
    change = change_of(TRAITS_EVENT_TYPE, plan="enterprise", mrr=4900.0, seats=40,
                       renewal_date="2026-12-31")
    assert change == AccountChange(
        "acme", "acct-1", ChangeKind.PLAN, T0, "evt-9", contact_allowed=None, plan="enterprise",
    )
    assert change is not None and change.ingested_at == 5.0


@pytest.mark.parametrize(
    "traits",
    [
        pytest.param({"mrr": 490.0, "seats": 12}, id="no-plan"),
        pytest.param({"plan": ""}, id="empty-plan"),
        pytest.param({"plan": 3}, id="plan-a-number"),
        pytest.param({"plan": {"name": "pro"}}, id="plan-an-object"),
        pytest.param({"plan": None}, id="plan-null"),
        pytest.param({"to_plan": "pro"}, id="to-plan-is-a-billing-attribute"),
    ],
)
def test_traits_without_a_text_plan_are_no_change(traits: dict[str, Any]) -> None:
    assert change_of(TRAITS_EVENT_TYPE, **traits) is None


def test_a_contact_allowed_trait_is_no_consent() -> None:
    change = change_of(TRAITS_EVENT_TYPE, plan="pro", contact_allowed=False)
    assert change is not None
    assert (change.kind, change.contact_allowed, change.plan) == (ChangeKind.PLAN, None, "pro")


@pytest.mark.parametrize(
    ("event_type", "attributes", "kind", "plan", "contact_allowed"),
    [
        pytest.param("billing.downgraded", {"to_plan": "starter", "plan": "pro"},
                     ChangeKind.PLAN, "starter", None, id="downgrade-to-plan-first"),
        pytest.param("billing.upgraded", {"plan": "business"}, ChangeKind.PLAN, "business", None,
                     id="upgrade-plan"),
        pytest.param("billing.downgraded", {}, ChangeKind.PLAN, None, None,
                     id="downgrade-without-plan-is-still-one"),
        pytest.param("account.consent_changed", {"contact_allowed": False}, ChangeKind.CONSENT,
                     None, False, id="consent"),
        pytest.param("subscription.cancelled", {}, ChangeKind.CANCELLED, None, None,
                     id="cancelled"),
        pytest.param("subscription.renewed", {"renews_at": "2027-10-01T00:00:00Z"},
                     ChangeKind.RENEWED, None, None, id="renewed"),
        pytest.param("billing.payment_succeeded", {}, ChangeKind.PAYMENT_SUCCEEDED, None, None,
                     id="payment-succeeded"),
    ],
)
def test_other_lifecycle_events_are_read_as_before(
    event_type: str,
    attributes: dict[str, Any],
    kind: ChangeKind,
    plan: str | None,
    contact_allowed: bool | None,
) -> None:
    change = change_of(event_type, **attributes)
    assert change is not None
    assert (change.kind, change.plan, change.contact_allowed) == (kind, plan, contact_allowed)


@pytest.mark.parametrize("event_type", ["app.login", "account.created", "crm.note_added"])
def test_other_events_are_no_change(event_type: str) -> None:
    assert change_of(event_type, plan="pro") is None
