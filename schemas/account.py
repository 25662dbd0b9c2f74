"""Account record: what one batch learnt about one account (a row of ``accounts``).

The stream folds an account's events of a batch (first and last event time, traits,
lifecycle changes) and its published primary scores into one :class:`AccountRecord`;
the accounts sink merges the records of a batch per account and upserts them. Every
field carries the event time that set it (:class:`Fact`), so merging is order-safe:
a field only moves forward in event time, and at one instant the later record wins.
A replay or a duplicate batch therefore leaves the row as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple

from mypy_extensions import mypyc_attr


class AccountStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


class Fact(NamedTuple):
    """A field's value and the event time that set it; ``value`` None clears the field
    (a trait sent as null)."""

    value: str | float | date | AccountStatus | None
    at: datetime


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(frozen=True, slots=True)
class LatestScore:
    """The account's newest published primary score, as the accounts row keeps it."""

    score_id: str
    risk: float
    tier: str
    reasons: tuple[str, ...]
    model_version: str
    score_time: datetime
    expires_at: datetime

    def newer_than(self, other: LatestScore) -> bool:
        """Newest by (score time, score id): the order the API read scores in."""
        return (self.score_time, self.score_id) > (other.score_time, other.score_id)


def later_fact(earlier: Fact | None, later: Fact | None) -> Fact | None:
    """``later`` unless it is None or older in event time than ``earlier``."""
    if later is None:
        return earlier
    if earlier is None or later.at >= earlier.at:
        return later
    return earlier


def earliest_time(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two times, either unknown (None)."""
    return b if a is None else a if b is None else min(a, b)


def latest_time(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two times, either unknown (None)."""
    return b if a is None else a if b is None else max(a, b)


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(frozen=True, slots=True)
class AccountRecord:
    """What is known of one account from a batch; None: nothing new about that field."""

    tenant_id: str
    account_id: str
    first_seen: datetime | None = None
    last_event_at: datetime | None = None
    company_name: Fact | None = None
    plan: Fact | None = None
    mrr: Fact | None = None
    renewal_date: Fact | None = None
    owner: Fact | None = None
    status: Fact | None = None
    score: LatestScore | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.tenant_id, self.account_id

    def merge(self, later: AccountRecord) -> AccountRecord:
        """The two records as one (same account; ``later`` was produced after ``self``):
        each field the newer in event time, the later at a tie."""
        score = self.score
        if later.score is not None and (score is None or later.score.newer_than(score)):
            score = later.score
        return AccountRecord(
            self.tenant_id,
            self.account_id,
            earliest_time(self.first_seen, later.first_seen),
            latest_time(self.last_event_at, later.last_event_at),
            later_fact(self.company_name, later.company_name),
            later_fact(self.plan, later.plan),
            later_fact(self.mrr, later.mrr),
            later_fact(self.renewal_date, later.renewal_date),
            later_fact(self.owner, later.owner),
            later_fact(self.status, later.status),
            score,
        )


def coalesce_records(records: list[AccountRecord]) -> list[AccountRecord]:
    """One record per account, merged in the order given (a batch's upsert may not
    touch a row twice)."""
    merged: dict[tuple[str, str], AccountRecord] = {}
    for record in records:
        key = record.key
        current = merged.get(key)
        merged[key] = record if current is None else current.merge(record)
    return list(merged.values())
