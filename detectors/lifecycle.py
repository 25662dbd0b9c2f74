"""Account lifecycle changes the decision engine needs: consent, cancellation, recovery, plan.

Pure: an event (or a recovered usage signal) in, an :class:`AccountChange` or
None out. Only the few event types below produce one, so the per-event cost is
one dictionary lookup.

``account.consent_changed`` carries ``attributes.contact_allowed`` (a boolean);
the event validator dead-letters one without it (reason ``schema``), so a
consent change is never silently misread.

``account.traits_changed`` (a customer data platform's identify or group call,
its attributes the traits) is a plan change when it carries a text ``plan``
trait, so a policy's ``when: {plan: [...]}`` works for Segment and CloudEvents
sources too; traits without one change nothing here (features read the others).
"""

from __future__ import annotations

from schemas.event import CONSENT_EVENT_TYPE, TRAITS_EVENT_TYPE, Event
from schemas.lifecycle import AccountChange, ChangeKind

_KINDS = {
    CONSENT_EVENT_TYPE: ChangeKind.CONSENT,
    "subscription.cancelled": ChangeKind.CANCELLED,
    "subscription.reactivated": ChangeKind.REACTIVATED,
    "billing.payment_succeeded": ChangeKind.PAYMENT_SUCCEEDED,
    "subscription.renewed": ChangeKind.RENEWED,
    "billing.downgraded": ChangeKind.PLAN,
    "billing.upgraded": ChangeKind.PLAN,
    TRAITS_EVENT_TYPE: ChangeKind.PLAN,
}


def detect_change(event: Event) -> AccountChange | None:
    """The change an event stands for, if it is one of the lifecycle types."""
    kind = _KINDS.get(event.event_type)
    if kind is None:
        return None
    attributes = event.attributes
    if event.event_type == TRAITS_EVENT_TYPE:
        return _plan_trait(event)
    plan = attributes.get("to_plan", attributes.get("plan"))
    allowed = attributes.get("contact_allowed")
    return AccountChange(
        event.tenant_id,
        event.account_id,
        kind,
        event.event_time,
        event.event_id,
        contact_allowed=allowed if isinstance(allowed, bool) else None,
        plan=plan if isinstance(plan, str) else None,
        ingested_at=event.ingested_at,
    )


def _plan_trait(event: Event) -> AccountChange | None:
    """A traits event that names the account's plan: a plan change, and only that (a
    ``contact_allowed`` trait is no consent: that is ``account.consent_changed``'s,
    whose flag the validator checks)."""
    plan = event.attributes.get("plan")
    if not isinstance(plan, str) or not plan:
        return None  # traits without a plan: no change the decisions follow
    return AccountChange(
        event.tenant_id,
        event.account_id,
        ChangeKind.PLAN,
        event.event_time,
        event.event_id,
        plan=plan,
        ingested_at=event.ingested_at,
    )
