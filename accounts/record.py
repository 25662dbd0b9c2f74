"""The accounts table's side of the kernel: an account's batch of events as one record.

:func:`account_record` folds one account's fresh events of a batch into an
:class:`~schemas.account.AccountRecord`: the first and last event times, the traits
(``account.traits_changed``: which trait means company name, plan, MRR, renewal
date and owner is :class:`AccountTraits`, a setting), and the lifecycle changes
(cancelled, reactivated, renewed: the status; a plan change: the plan, as the
decisions read it, see ``detectors.lifecycle``; their MRR and renewal date
attributes, under the same names as the traits). :func:`score_record` is a
published primary score as a record. Pure: no clock, no I/O; per event, one set
lookup and two comparisons unless the event is one of those types.

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


def account_record(
    events: Sequence[Event], traits: AccountTraits,
    lifecycle: Mapping[str, ChangeKind] = DEFAULT_LIFECYCLE,
    held: AccountRecord | None = None,
) -> AccountRecord | None:
    """One account's fresh events of a batch (in its order) as one record; None for none.
    Each field is the newest setting in event time (the later event at a tie).
    ``lifecycle``: which event types mean which change (the definitions file's
    lifecycle section, :class:`~detectors.lifecycle.LifecycleRules`).

    ``held``: the account's record already awaiting its write; the result is then
    ``held.merge(<the events' record>)``, built once (``held`` itself when the events
    move nothing). Made apart and then merged, that was two records per account and
    batch (1.4 us each; the merge about 2 % of the shards' samples in a native profile
    of the 7-day benchmark's shape, where nearly every batch moves an account's last
    event time).
    """
    if not events:
        return held
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
    get = found.get
    if held is None:
        return AccountRecord(
            events[0].tenant_id, events[0].account_id, first, last,
            company_name=get("company_name"), plan=get("plan"), mrr=get("mrr"),
            renewal_date=get("renewal_date"), owner=get("owner"), status=get("status"),
        )
    held_first, held_last = held.first_seen, held.last_event_at
    if not found and held_first is not None and held_last is not None and (
            held_first <= first and last <= held_last):
        return held  # nothing moves
    return AccountRecord(  # as held.merge(record), in one step
        held.tenant_id, held.account_id,
        earliest_time(held_first, first),
        latest_time(held_last, last),
        later_fact(held.company_name, get("company_name")),
        later_fact(held.plan, get("plan")),
        later_fact(held.mrr, get("mrr")),
        later_fact(held.renewal_date, get("renewal_date")),
        later_fact(held.owner, get("owner")),
        later_fact(held.status, get("status")),
        held.score,
    )


def score_record(score: RiskScore, held: AccountRecord | None = None) -> AccountRecord:
    """A published primary score as a record (its latest risk and tier). ``held``: the
    account's record awaiting its write; the result is then ``held.merge(<the score's
    record>)``, built once (``held`` itself when its score is newer)."""
    latest = LatestScore(
        score.score_id, score.risk, str(score.tier), score.reasons, score.model_version,
        score.score_time, score.expires_at,
    )
    if held is None:
        return AccountRecord(score.tenant_id, score.account_id, score=latest)
    if held.score is not None and not latest.newer_than(held.score):
        return held
    return AccountRecord(
        held.tenant_id, held.account_id, held.first_seen, held.last_event_at,
        held.company_name, held.plan, held.mrr, held.renewal_date, held.owner, held.status,
        latest,
    )
