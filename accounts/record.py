"""The accounts table's side of the kernel: an account's batch of events as one record.

:func:`account_record` folds one account's fresh events of a batch into an
:class:`~schemas.account.AccountRecord`: the first and last event times, the traits
(``account.traits_changed``: which trait means company name, plan, MRR, renewal
date and owner is :class:`AccountTraits`, a setting), and the lifecycle changes
(cancelled, reactivated, renewed: the status; a plan change: the plan, as the
decisions read it, see ``detectors.lifecycle``; their MRR and renewal date
attributes, under the same names as the traits). :func:`score_record` is a
published primary score as a record. A shard folds both into a
:class:`PendingRecord` per account, in place, until its next flush writes the
records. Pure: no clock, no I/O; per event, one set lookup and two comparisons
unless the event is one of those types.

A trait whose value has the wrong type (an MRR that is not a number, a renewal date
that is not a date) changes nothing, as a ``latest`` feature ignores one; a trait
sent as null clears the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

from detectors.lifecycle import DEFAULT_LIFECYCLE, detect_change
from schemas.account import (
    AccountRecord,
    AccountStatus,
    Fact,
    LatestScore,
    earliest_time,
    later_fact,
    latest_time,
)
from schemas.event import TRAITS_EVENT_TYPE, Event
from schemas.lifecycle import ChangeKind
from schemas.score import RiskScore

_STATUS = {
    ChangeKind.CANCELLED: AccountStatus.CANCELLED,
    ChangeKind.REACTIVATED: AccountStatus.ACTIVE,
    ChangeKind.RENEWED: AccountStatus.ACTIVE,
}
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_TEXT = 256  # longer text traits are cut


@dataclass(frozen=True, slots=True)
class AccountTraits:
    """Which trait (attribute) names each accounts field; the first one an event carries
    counts. An empty tuple: the field is not read."""

    company_name: tuple[str, ...] = ("company_name", "company", "name")
    plan: tuple[str, ...] = ("plan",)
    mrr: tuple[str, ...] = ("mrr",)
    renewal_date: tuple[str, ...] = ("renewal_date",)
    owner: tuple[str, ...] = ("owner",)

    def to_document(self) -> dict[str, list[str]]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}


def parse_account_traits(document: object, default: AccountTraits) -> AccountTraits:
    """``{"mrr": ["arr_monthly"], "owner": []}`` over ``default``; ValueError for an
    unknown field or a name list that is not a list of non-empty strings."""
    if not isinstance(document, Mapping):
        msg = "expected a JSON object such as {\"mrr\": [\"mrr\"]}"
        raise ValueError(msg)
    known = {f.name for f in fields(AccountTraits)}
    values = default.to_document()
    for name, names in document.items():
        if name not in known:
            msg = f"unknown field {name!r} (one of {', '.join(sorted(known))})"
            raise ValueError(msg)
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            msg = f"{name}: expected a list of trait names"
            raise ValueError(msg)
        values[name] = names
    return AccountTraits(**{k: tuple(v) for k, v in values.items()})


def _first(attributes: Mapping[str, object], names: Sequence[str]) -> tuple[bool, object]:
    for name in names:
        if name in attributes:
            return True, attributes[name]
    return False, None


def _text(raw: object) -> tuple[bool, str | None]:
    if raw is None:
        return True, None
    if isinstance(raw, str) and raw.strip():
        return True, raw.strip()[:MAX_TEXT]
    return False, None


def _money(raw: object) -> tuple[bool, float | None]:
    if raw is None:
        return True, None
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            return False, None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return False, None
    value = float(raw)
    return (True, value) if math.isfinite(value) and value >= 0 else (False, None)


def _date(raw: object) -> tuple[bool, date | None]:
    """A calendar date, or an RFC 3339 time with an offset (its date in UTC)."""
    if raw is None:
        return True, None
    if not isinstance(raw, str):
        return False, None
    try:
        if _DATE_RE.fullmatch(raw):
            return True, date.fromisoformat(raw)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return False, None
    if moment.tzinfo is None:
        return False, None
    return True, moment.astimezone(UTC).date()


_READERS = {
    "company_name": _text, "plan": _text, "owner": _text, "mrr": _money, "renewal_date": _date,
}


def _set(found: dict[str, Fact], name: str, fact: Fact) -> None:
    """Keep the newer in event time; at a tie, the later event."""
    current = found.get(name)
    if current is None or fact.at >= current.at:
        found[name] = fact


def _traits(
    event: Event, traits: AccountTraits, names: Iterable[str], found: dict[str, Fact]
) -> None:
    attributes = event.attributes
    for name in names:
        present, raw = _first(attributes, getattr(traits, name))
        if not present:
            continue
        ok, value = _READERS[name](raw)
        if ok:
            _set(found, name, Fact(value, event.event_time))


_ALL_TRAITS = ("company_name", "plan", "mrr", "renewal_date", "owner")
_LIFECYCLE_TRAITS = ("mrr", "renewal_date")


# The lifecycle changes the accounts table follows: status, and the plan.
_FOLLOWED = frozenset((*_STATUS, ChangeKind.PLAN))


class PendingRecord:
    """One account's record awaiting its write (a shard's, until its next flush),
    folded in place: each batch's fresh events (:meth:`add_events`) and each published
    primary score (:meth:`add_score`) move its fields as :meth:`AccountRecord.merge`
    would, and :meth:`record` makes the record once, at the flush or a snapshot.

    A frozen record rebuilt per account and batch, with its merge's helpers
    interpreted, cost about 13 Python-level calls per account and batch: 6.8 % of the
    shards' instructions in ``bench_shards`` (benchmarks/HISTORY.md, session 18).
    Compiled, this is a few attribute stores.
    """

    __slots__ = ("account_id", "company_name", "first_seen", "last_event_at", "mrr", "owner",
                 "plan", "renewal_date", "score", "status", "tenant_id")

    def __init__(self, tenant_id: str, account_id: str) -> None:
        self.tenant_id = tenant_id
        self.account_id = account_id
        self.first_seen: datetime | None = None
        self.last_event_at: datetime | None = None
        self.company_name: Fact | None = None
        self.plan: Fact | None = None
        self.mrr: Fact | None = None
        self.renewal_date: Fact | None = None
        self.owner: Fact | None = None
        self.status: Fact | None = None
        self.score: LatestScore | None = None

    @staticmethod
    def of(record: AccountRecord) -> PendingRecord:
        """``record`` (a snapshot's) as a pending record."""
        pending = PendingRecord(record.tenant_id, record.account_id)
        pending.first_seen, pending.last_event_at = record.first_seen, record.last_event_at
        pending.company_name, pending.plan, pending.mrr = (
            record.company_name, record.plan, record.mrr)
        pending.renewal_date, pending.owner, pending.status = (
            record.renewal_date, record.owner, record.status)
        pending.score = record.score
        return pending

    def record(self) -> AccountRecord:
        return AccountRecord(
            self.tenant_id, self.account_id, self.first_seen, self.last_event_at,
            self.company_name, self.plan, self.mrr, self.renewal_date, self.owner,
            self.status, self.score,
        )

    def add_events(
        self, events: Sequence[Event], traits: AccountTraits,
        lifecycle: Mapping[str, ChangeKind] = DEFAULT_LIFECYCLE,
    ) -> None:
        """Fold in one batch of the account's fresh events, in its order: the first and
        last event times, and each field the newest setting in event time (the later
        event at a tie). ``lifecycle``: which event types mean which change (the
        definitions file's lifecycle section, :class:`~detectors.lifecycle.LifecycleRules`).
        """
        if not events:
            return
        first = last = events[0].event_time
        found: dict[str, Fact] = {}
        for event in events:
            at = event.event_time
            if at < first:
                first = at
            elif at > last:
                last = at
            event_type = event.event_type
            if event_type == TRAITS_EVENT_TYPE:
                _traits(event, traits, _ALL_TRAITS, found)
            elif lifecycle.get(event_type) in _FOLLOWED:
                _traits(event, traits, _LIFECYCLE_TRAITS, found)
                change = detect_change(event, lifecycle)
                if change is None:
                    continue
                status = _STATUS.get(change.kind)
                if status is not None:
                    _set(found, "status", Fact(status, at))
                if change.plan:
                    _set(found, "plan", Fact(change.plan, at))
        self.first_seen = earliest_time(self.first_seen, first)
        self.last_event_at = latest_time(self.last_event_at, last)
        if found:
            get = found.get
            self.company_name = later_fact(self.company_name, get("company_name"))
            self.plan = later_fact(self.plan, get("plan"))
            self.mrr = later_fact(self.mrr, get("mrr"))
            self.renewal_date = later_fact(self.renewal_date, get("renewal_date"))
            self.owner = later_fact(self.owner, get("owner"))
            self.status = later_fact(self.status, get("status"))

    def add_score(self, score: RiskScore) -> None:
        """Fold in a published primary score: the record keeps the newest (by score time,
        then score id: :meth:`LatestScore.newer_than`)."""
        latest = LatestScore(
            score.score_id, score.risk, str(score.tier), score.reasons, score.model_version,
            score.score_time, score.expires_at,
        )
        held = self.score
        if held is None or latest.newer_than(held):
            self.score = latest


def account_record(
    events: Sequence[Event], traits: AccountTraits,
    lifecycle: Mapping[str, ChangeKind] = DEFAULT_LIFECYCLE,
) -> AccountRecord | None:
    """One account's fresh events of a batch (in its order) as one record; None for none
    (see :meth:`PendingRecord.add_events`)."""
    if not events:
        return None
    pending = PendingRecord(events[0].tenant_id, events[0].account_id)
    pending.add_events(events, traits, lifecycle)
    return pending.record()


def score_record(score: RiskScore) -> AccountRecord:
    """A published primary score as a record (its latest risk and tier)."""
    pending = PendingRecord(score.tenant_id, score.account_id)
    pending.add_score(score)
    return pending.record()
