"""Event time: the day, and the watermark, defined once.

Event time drives windows, day closing, lateness, debounce, dedupe and
decisions, so a replay of a file gives the same outputs every time.
Processing (wall-clock) time is injected where it is needed (latency,
idle-state eviction) and never decides an output.

Days are UTC days numbered from the epoch (``floor(epoch_seconds / DAY)``).
The watermark of a stream of events (an account's, or an input partition's)
is its newest event time minus the allowed lateness: an event older than the
watermark is late; a day is *closed* once the watermark has passed its end,
and only then judged, so a straggler within the lateness still counts for its
day. Like Bytewax's ``EventClock``, :class:`EventClock` holds the rule; the
newest time seen is the caller's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import ClassVar

DAY = 86_400.0
"""Seconds in a (UTC) day."""


def day_of(ts: float) -> int:
    """The UTC day number of epoch second ``ts``."""
    return math.floor(ts / DAY)


def day_start(day: int) -> float:
    """The first epoch second of day number ``day``."""
    return day * DAY


def date_of(day: int) -> date:
    """The calendar date of day number ``day``."""
    return datetime.fromtimestamp(day * DAY, UTC).date()


@dataclass(frozen=True, slots=True)
class EventClock:
    """The watermark rule: how far behind the newest event time an event may come."""

    allowed_lateness_seconds: float

    def watermark(self, newest: float) -> float:
        """The watermark when the newest event time seen is ``newest`` (epoch s)."""
        return newest - self.allowed_lateness_seconds

    def last_closed_day(self, newest: float) -> int:
        """The newest day whose end the watermark has passed."""
        return day_of(newest - self.allowed_lateness_seconds) - 1


class DayCloser:
    """Which days a stream's watermark closes as its events arrive, in their order.

    The stream's state is the newest day closed; the first event only starts the
    clock (what closed before it is unknown). :meth:`observe` is called per event,
    so its common case is one comparison (``ts < next_at``).
    """

    __slots__ = ("_lateness", "closed", "next_at")

    # A jump over more days than this (a stream silent for over a year) closes only
    # the newest of them: older days would be judged on nothing new.
    MOST_AT_ONCE: ClassVar[int] = 366

    def __init__(self, clock: EventClock, closed: int | None = None) -> None:
        self._lateness = clock.allowed_lateness_seconds
        self.closed = closed
        # The event time at which the next day closes (-inf: the clock has not started).
        self.next_at = -math.inf if closed is None else self._closes_at(closed + 1)

    def _closes_at(self, day: int) -> float:
        return (day + 1) * DAY + self._lateness

    def observe(self, ts: float) -> range:
        """The days an event at ``ts`` (epoch s) closes, oldest first: usually none or
        one; all the days of a jump, so each is closed as it would be in a stream with
        an event every day."""
        if ts < self.next_at:
            return range(0)
        day = day_of(ts - self._lateness) - 1
        previous = self.closed
        self.closed = day
        self.next_at = self._closes_at(day + 1)
        if previous is None:
            return range(0)
        return range(max(previous + 1, day + 1 - self.MOST_AT_ONCE), day + 1)
