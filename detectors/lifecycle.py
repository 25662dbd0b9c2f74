"""Account lifecycle changes the decision engine needs: consent, cancellation, recovery, plan.

Pure: an event (or a recovered usage signal) in, an :class:`AccountChange` or
None out. Which event types mean which change is data: the definitions file's
``lifecycle`` section (compiled into :class:`LifecycleRules`), so the per-event
cost is one dictionary lookup.

Two event types belong to churnwatch's event contract rather than to a product,
and always mean their change: ``account.consent_changed`` carries
``attributes.contact_allowed`` (a boolean; the event validator dead-letters one
without it, reason ``schema``, so a consent change is never silently misread),
and ``account.traits_changed`` (a customer data platform's identify or group
call, its attributes the traits) is a plan change when it carries a text
``plan`` trait, so a policy's ``when: {plan: [...]}`` works for Segment and
CloudEvents sources too; traits without one change nothing here (features read
the others). Another event type mapped to ``consent_changed`` counts only when it
carries a boolean ``contact_allowed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.event import CONSENT_EVENT_TYPE, TRAITS_EVENT_TYPE, Event
from schemas.lifecycle import AccountChange, ChangeKind

# The event contract's own lifecycle types (see the module docstring).
CONTRACT_KINDS: Mapping[str, ChangeKind] = {
    CONSENT_EVENT_TYPE: ChangeKind.CONSENT,
    TRAITS_EVENT_TYPE: ChangeKind.PLAN,
}

# What the shipped definitions file declares (a test holds them equal).
DEFAULT_LIFECYCLE: Mapping[str, ChangeKind] = {
    CONSENT_EVENT_TYPE: ChangeKind.CONSENT,
    "subscription.cancelled": ChangeKind.CANCELLED,
    "subscription.reactivated": ChangeKind.REACTIVATED,
    "billing.payment_succeeded": ChangeKind.PAYMENT_SUCCEEDED,
    "subscription.renewed": ChangeKind.RENEWED,
    "billing.downgraded": ChangeKind.PLAN,
    "billing.upgraded": ChangeKind.PLAN,
    TRAITS_EVENT_TYPE: ChangeKind.PLAN,
}
_KINDS = DEFAULT_LIFECYCLE


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    """Event type -> the change it means (the contract's types always included)."""

    kinds: Mapping[str, ChangeKind] = field(default_factory=lambda: dict(DEFAULT_LIFECYCLE))
    # The event types that are cancellations (a cancellation record each).
    cancelled: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", {**self.kinds, **CONTRACT_KINDS})
        cancelled = frozenset(t for t, k in self.kinds.items() if k is ChangeKind.CANCELLED)
        object.__setattr__(self, "cancelled", cancelled)


def detect_change(
    event: Event, kinds: Mapping[str, ChangeKind] = DEFAULT_LIFECYCLE
) -> AccountChange | None:
    """The change an event stands for, if its type is one of the lifecycle types."""
    kind = kinds.get(event.event_type)
    if kind is None:
        return None
    attributes = event.attributes
    if event.event_type == TRAITS_EVENT_TYPE:
        return _plan_trait(event)
    plan = attributes.get("to_plan", attributes.get("plan"))
    allowed = attributes.get("contact_allowed")
    if kind is ChangeKind.CONSENT and not isinstance(allowed, bool):
        return None  # only the contract's consent type is checked by the validator
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
