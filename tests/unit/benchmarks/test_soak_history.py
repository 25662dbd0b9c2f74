"""The soak benchmark's months: where each month ends in the stream and what it holds by then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from benchmarks.harness.soak_history import (
    LineFacts,
    MonthMark,
    line_facts,
    month_ends,
    month_marks,
)

JAN = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86_400.0


def at(day: float) -> float:
    """Epoch seconds ``day`` days after 2025-01-01."""
    return JAN.timestamp() + day * DAY


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (JAN, 365, [datetime(2025, m, 1, tzinfo=UTC) for m in range(2, 13)]
         + [datetime(2026, 1, 1, tzinfo=UTC)]),
        (JAN, 45, [datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 2, 15, tzinfo=UTC)]),
        (JAN, 10, [datetime(2025, 1, 11, tzinfo=UTC)]),
        (datetime(2025, 12, 20, tzinfo=UTC), 20,
         [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 9, tzinfo=UTC)]),
    ],
    ids=["a-year-is-twelve-months", "a-partial-last-month", "less-than-a-month",
         "over-new-year"],
)
def test_month_ends(start: datetime, days: int, expected: list[datetime]) -> None:
    assert month_ends(start, days) == expected


def test_month_marks_cut_where_the_newest_time_reaches_each_end() -> None:
    ends = [datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC),
            datetime(2025, 4, 1, tzinfo=UTC)]
    lines: list[LineFacts] = [
        (at(1), "t:a", True),
        (at(2), "t:b", True),
        (None, None, False),          # malformed: counted as a line, nothing else
        (at(2), "t:b", False),        # a duplicate: seen, not a new valid event
        (at(31.5), "t:a", True),      # February: January ends before this line
        (at(31.4), "t:c", True),      # a few seconds late: still read in February
        (at(59.5), "t:c", True),      # March
    ]
    marks = month_marks(lines, ends, timedelta(days=40))
    assert marks == [
        MonthMark(1, ends[0], line=4, valid_events=2, ever_seen=2, active=2),
        # b was last seen on day 2, more than 40 days before March
        MonthMark(2, ends[1], line=6, valid_events=4, ever_seen=3, active=2),
        # the end of the stream closes the last month; only c was seen after day 50
        MonthMark(3, ends[2], line=7, valid_events=5, ever_seen=3, active=1),
    ]


def test_a_month_without_events_ends_where_the_next_event_is() -> None:
    ends = [datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC),
            datetime(2025, 4, 1, tzinfo=UTC)]
    lines: list[LineFacts] = [(at(1), "t:a", True), (at(70), "t:a", True)]
    marks = month_marks(lines, ends, timedelta(days=40))
    assert [mark.line for mark in marks] == [1, 1, 2]
    assert [mark.active for mark in marks] == [1, 0, 1]  # a: day 1, then day 70


def test_line_facts() -> None:
    document = {"event_time": "2025-01-02T01:00:00.000+01:00", "tenant_id": "acme",
                "account_id": "acct-00001"}
    assert line_facts("valid", orjson.dumps(document)) == (at(1), "acme:acct-00001", True)
    assert line_facts("duplicate", orjson.dumps(document)) == (at(1), "acme:acct-00001", False)
    # a malformed message is not read at all (it may be anything, a time in 2999 too)
    assert line_facts("malformed", b"{not json") == (None, None, False)
