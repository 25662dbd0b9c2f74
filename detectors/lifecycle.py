"""Account lifecycle changes the decision engine needs: consent, cancellation, recovery, plan.

Pure: an event (or a recovered usage signal) in, an :class:`AccountChange` or
None out. Only the few event types below produce one, so the per-event cost is
one dictionary lookup.

``account.consent_changed`` carries ``attributes.contact_allowed`` (a boolean);
the event validator dead-letters one without it (reason ``schema``), so a
consent change is never silently misread.
"""

from __future__ import annotations

from schemas.event import CONSENT_EVENT_TYPE, Event
from schemas.lifecycle import AccountChange, ChangeKind

_KINDS = {
    CONSENT_EVENT_TYPE: ChangeKind.CONSENT,
    "subscription.cancelled": ChangeKind.CANCELLED,
    "subscription.reactivated": ChangeKind.REACTIVATED,
    "billing.payment_succeeded": ChangeKind.PAYMENT_SUCCEEDED,
    "subscription.renewed": ChangeKind.RENEWED,
    "billing.downgraded": ChangeKind.PLAN,
    "billing.upgraded": ChangeKind.PLAN,
}


def detect_change(event: Event) -> AccountChange | None:
    """The change an event stands for, if it is one of the lifecycle types."""
    kind = _KINDS.get(event.event_type)
    if kind is None:
        return None
    attributes = event.attributes
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

