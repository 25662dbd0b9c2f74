"""schemas.clock: UTC days and the watermark rule, defined once."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from schemas.clock import DAY, EventClock, date_of, day_of, day_start

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
