"""Lifecycle records: account changes the decisions need, and cancellations.

:class:`AccountChange` (consent, cancellation, payment, renewal, plan, usage
back) feeds the decision engine and, for consent, ``contact_preferences``;
:class:`Cancellation` is a row of ``cancellation_reasons``. The detectors that
produce them live in ``detectors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ChangeKind(StrEnum):
    CONSENT = "consent_changed"
    CANCELLED = "cancelled"
    REACTIVATED = "reactivated"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    RENEWED = "renewed"
    USAGE_RECOVERED = "usage_recovered"
    PLAN = "plan_changed"


@dataclass(frozen=True, slots=True)
class AccountChange:
    """One change in an account's standing, in event time."""

    tenant_id: str
    account_id: str
    kind: ChangeKind
    event_time: datetime
    source_id: str  # the event id (or usage signal id) that says so
    contact_allowed: bool | None = None  # consent changes only
    plan: str | None = None  # when the event names the plan
    ingested_at: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class Cancellation:
    """A churn that happened, kept for churn-cause reporting and training labels."""

    cancellation_id: str
    tenant_id: str
    account_id: str
    event_id: str
    cancelled_at: datetime
    reason_code: str | None
