"""The soak benchmark's input: a simulated period of sign-ups and departures, cut in months.

:func:`write_history` simulates the period with
:func:`churnwatch.simulator.simulate` (``mean_lifetime_days``: accounts sign up
over the whole period and go silent for good after their lifetime) and writes
it as a JSONL history. :func:`month_marks` says, for the end of each calendar
month, where the stream reaches it (the line the replay pauses at) and what the
stream holds by then: messages, accounts ever seen, accounts active within the
idle TTL. Everything but :func:`write_history` is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson


@dataclass(frozen=True, slots=True)
class MonthMark:
    """The end of one simulated month and what the stream holds before it."""

    month: int  # 1 for the first
    end: datetime  # exclusive
    line: int  # lines (messages) before the month's end: the replay pauses there
    valid_events: int  # valid events among them (duplicates and malformed messages aside)
    ever_seen: int  # accounts with an event so far
    active: int  # accounts with an event within ``window`` before ``end``


def month_ends(start: datetime, days: int) -> list[datetime]:
    """The ends of the calendar months of ``days`` days from ``start``: each first of a
    month after ``start``, and the period's own end if it falls between two."""
    end = start + timedelta(days=days)
    ends = []
    year, month = start.year, start.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        first = datetime(year, month, 1, tzinfo=start.tzinfo)
        if first >= end:
            break
        ends.append(first)
    ends.append(end)
    return ends


LineFacts = tuple[float | None, str | None, bool]
"""What one line of the history is: the event time (epoch s) and subject
(``tenant:account``) of an event, and whether it is a valid event rather than a
duplicate; ``(None, None, False)`` for a malformed message."""


def month_marks(
    lines: Iterable[LineFacts], ends: Sequence[datetime], window: timedelta
) -> list[MonthMark]:
    """One :class:`MonthMark` per month end, from the stream's lines in order.

    A month ends at the first line whose event time reaches its end (the few
    later lines of that month, seconds out of order, count in the next)."""
    stops = [end.timestamp() for end in ends]
    marks: list[MonthMark] = []
    last_seen: dict[str, float] = {}
    newest = float("-inf")
    line = valid = 0

    def close(index: int) -> None:
        active_from = stops[index] - window.total_seconds()
        active = sum(1 for seen in last_seen.values() if seen >= active_from)
        marks.append(MonthMark(index + 1, ends[index], line, valid, len(last_seen), active))

    for time, subject, is_valid in lines:
        if time is None or subject is None:
            line += 1
            continue
        newest = max(newest, time)
        while len(marks) < len(stops) and newest >= stops[len(marks)]:
            close(len(marks))
        line += 1
        valid += is_valid
        if time > last_seen.get(subject, float("-inf")):
            last_seen[subject] = time
    while len(marks) < len(stops):
        close(len(marks))
    return marks


def line_facts(kind: str, value: bytes) -> LineFacts:
    """The :data:`LineFacts` of a simulated message of ``kind`` (``valid``,
    ``duplicate`` or ``malformed``, :class:`churnwatch.simulator.MessageKind`)."""
    if kind == "malformed":  # refused by the validator: nothing seen, no time passes
        return None, None, False
    document = orjson.loads(value)
    moment = datetime.fromisoformat(document["event_time"]).astimezone(UTC)
    subject = f"{document['tenant_id']}:{document['account_id']}"
    return moment.timestamp(), subject, kind == "valid"


@dataclass(frozen=True, slots=True)
class History:
    """A written history file and its months."""

    path: Path
    messages: int
    accounts: int  # sign-ups over the period
    marks: tuple[MonthMark, ...]


def write_history(
    path: Path,
    *,
    accounts: int,
    days: int,
    mean_lifetime_days: float,
    seed: int,
    start: datetime,
    window: timedelta,
) -> History:
    """Simulate the period, write it to ``path`` (JSONL) and cut it in months."""
    from churnwatch.simulator import simulate, write_jsonl

    simulation = simulate(accounts=accounts, days=days, seed=seed, start=start,
                          mean_lifetime_days=mean_lifetime_days)
    written = write_jsonl(simulation, path)
    marks = month_marks((line_facts(m.kind, m.value) for m in simulation.messages),
                        month_ends(start, days), window)
    return History(path, written, accounts, tuple(marks))
