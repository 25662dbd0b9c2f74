"""schemas.clock: UTC days and the watermark rule, defined once."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from schemas.clock import DAY, DayCloser, EventClock, date_of, day_of, day_start

MIDNIGHT = datetime(2026, 10, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("ts", "day"),
    [
        pytest.param(MIDNIGHT, 20727, id="midnight-starts-its-day"),
        pytest.param(MIDNIGHT - 0.001, 20726, id="a-millisecond-before-is-the-day-before"),
        pytest.param(-1.0, -1, id="before-the-epoch-floors-down"),
    ],
)
def test_day_of(ts: float, day: int) -> None:
    assert day_of(ts) == day
    assert day_start(day) <= ts < day_start(day) + DAY


def test_date_of_names_the_calendar_day() -> None:
    assert date_of(day_of(MIDNIGHT + 3600)) == date(2026, 10, 1)


def test_watermark_is_newest_minus_lateness() -> None:
    assert EventClock(3600.0).watermark(MIDNIGHT) == MIDNIGHT - 3600.0


@pytest.mark.parametrize(
    ("newest_after_midnight", "closed"),
    [
        pytest.param(3599.0, date(2026, 9, 29), id="within-lateness-yesterday-stays-open"),
        pytest.param(3600.0, date(2026, 9, 30), id="lateness-passed-yesterday-closes"),
    ],
)
def test_a_day_closes_once_the_watermark_passes_its_end(
    newest_after_midnight: float, closed: date
) -> None:
    clock = EventClock(3600.0)
    assert date_of(clock.last_closed_day(MIDNIGHT + newest_after_midnight)) == closed


def test_a_day_closer_starts_on_its_first_event_and_closes_each_day_once() -> None:
    closer = DayCloser(EventClock(3600.0))
    yesterday = day_of(MIDNIGHT) - 1
    assert not closer.observe(MIDNIGHT + 7200.0)  # the first event only starts the clock
    assert closer.closed == yesterday
    assert not closer.observe(MIDNIGHT + DAY + 3599.0)  # within the lateness: still open
    assert list(closer.observe(MIDNIGHT + DAY + 3600.0)) == [yesterday + 1]
    assert not closer.observe(MIDNIGHT + DAY + 4000.0)  # closed once
    assert not closer.observe(MIDNIGHT)  # an older event closes nothing
    # a jump closes every day it passes, oldest first
    assert list(closer.observe(MIDNIGHT + 4 * DAY + 3600.0)) == [yesterday + 2, yesterday + 3,
                                                                yesterday + 4]
    # resumed from its state, it goes on where it was
    resumed = DayCloser(EventClock(3600.0), closer.closed)
    assert resumed.next_at == closer.next_at
    assert list(resumed.observe(MIDNIGHT + 5 * DAY + 3600.0)) == [yesterday + 5]


def test_a_jump_over_more_than_a_year_closes_only_the_newest_days() -> None:
    closer = DayCloser(EventClock(0.0))
    closer.observe(MIDNIGHT)
    closed = closer.observe(MIDNIGHT + 1000 * DAY)
    assert len(closed) == DayCloser.MOST_AT_ONCE and closed[-1] == day_of(MIDNIGHT) + 999
