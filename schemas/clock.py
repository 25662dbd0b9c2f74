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
