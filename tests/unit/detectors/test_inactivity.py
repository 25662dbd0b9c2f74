"""Inactivity: per-batch activity summaries and the per-partition InactivityTracker.

Day 0 is 2026-10-01; with a 7-day rule an account last active on day 0 is due on
day 7 (2026-10-08). Every tracker here stands for one input partition: it is fed
that partition's batches, in read order, as ``summarize_activity`` builds them
from real events.
"""

from __future__ import annotations

import io
import pickle
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any, NamedTuple

import pytest

from detectors.inactivity import (
    AccountActivity,
    ActivityBatch,
    InactivityTracker,
    TrackerSnapshot,
    summarize_activity,
)
from detectors.usage import InactivityRule
from featurestore.definitions import load_definitions
from schemas.alert import Severity
from schemas.event import Event
from schemas.signal import SignalType, UsageSignal
from tests.builders import make_event

HOUR = 3_600.0
DAY = 86_400.0
LATENESS = HOUR
IDLE_DAYS = 7
IDLE = IDLE_DAYS * DAY
D0 = datetime(2026, 10, 1, tzinfo=UTC)  # the start of day 0


def at(day: float, hour: float = 0.0) -> float:
    """Epoch seconds of ``hour`` o'clock on day ``day``."""
    return (D0 + timedelta(days=day, hours=hour)).timestamp()


def day_date(day: int) -> date:
    return (D0 + timedelta(days=day)).date()


def event(
    account: str, day: float, hour: float = 0.0, kind: str = "app.login", *,
    tenant: str = "acme", partition: int = 0,
) -> Event:
    when = D0 + timedelta(days=day, hours=hour)
    return make_event(
        event_id=f"{tenant}-{account}-{kind}-{when:%Y%m%dT%H%M%S.%f}",
        tenant_id=tenant,
        account_id=account,
        event_type=kind,
        event_time=when,
        partition=partition,
    )


def is_app_event(event_type: str) -> bool:
    return event_type.startswith("app.")


def summarize(events: Iterable[Event], partition: int = 0) -> ActivityBatch | None:
    return summarize_activity(partition, events, is_app_event, IDLE)


def batch(*events: Event, partition: int = 0) -> ActivityBatch:
    summary = summarize(events, partition)
    assert summary is not None
    return summary


def new_tracker(forget_after_days: float = 35.0) -> InactivityTracker:
    return InactivityTracker(
        InactivityRule(days=IDLE_DAYS), LATENESS, "v1", forget_after_days=forget_after_days
    )


def feed(tracker: InactivityTracker, *events: Event) -> list[UsageSignal]:
    """Feed ``events`` to ``tracker`` as one input batch."""
    return tracker.observe([batch(*events)])


def feed_each(
    tracker: InactivityTracker, events: Iterable[Event]
) -> list[tuple[datetime, UsageSignal]]:
    """Feed one event per batch; every signal emitted, with the time of the event that did."""
    return [(e.event_time, s) for e in events for s in feed(tracker, e)]


def dated(signals: Iterable[UsageSignal]) -> list[tuple[str, date]]:
    return [(s.account_id, s.signal_date) for s in signals]


def hourly(account: str, first_day: int, last_day: int, kind: str = "app.login") -> list[Event]:
    """One event an hour for ``account``, from day ``first_day`` 00:00 to ``last_day`` 23:00."""
    return [
        event(account, day, hour, kind)
        for day in range(first_day, last_day + 1)
        for hour in range(24)
    ]


# --- summarize_activity ----------------------------------------------------------


def test_summary_holds_first_and_last_activity_per_account_and_the_newest_event_time() -> None:
    summary = summarize(
        [
            event("a", 0, 12),
            event("b", 0, 13),
            event("a", 1, 9),
            event("a", 0, 20),  # read last, but neither a's first nor its last
            event("c", 2, 6, "billing.payment_succeeded"),  # the newest event: not activity
            event("b", 0, 8),  # read after b's 13:00: b's first nonetheless
        ],
        partition=3,
    )
    assert summary is not None
    assert (summary.partition, summary.seen_until) == (3, at(2, 6))
    assert sorted(summary.accounts, key=lambda a: a.account_id) == [
        AccountActivity("acme", "a", at(0, 12), at(1, 9), ()),
        AccountActivity("acme", "b", at(0, 8), at(0, 13), ()),
    ]


def test_summary_keeps_tenants_apart() -> None:
    summary = summarize([event("a", 0, 12), event("a", 9, 12, tenant="globex")])
    assert summary is not None
    assert sorted(summary.accounts, key=lambda a: a.tenant_id) == [
        AccountActivity("acme", "a", at(0, 12), at(0, 12), ()),
        AccountActivity("globex", "a", at(9, 12), at(9, 12), ()),
    ]


@pytest.mark.parametrize(
    ("times", "gaps"),
    [
        pytest.param([(0, 12)], (), id="one-activity"),
        pytest.param([(0, 12), (7, 12 - 1 / 3600)], (), id="one-second-under-7d-no-gap"),
        pytest.param([(0, 12), (7, 12)], ((at(0, 12), at(7, 12)),), id="exactly-7d-gap"),
        pytest.param([(0, 12), (12, 8)], ((at(0, 12), at(12, 8)),), id="11d-20h-gap"),
        pytest.param([(0, 12), (5, 0), (11, 23)], (), id="two-silences-under-7d"),
        pytest.param(
            [(0, 12), (8, 0), (9, 0), (20, 0)],
            ((at(0, 12), at(8)), (at(9), at(20))),
            id="two-gaps-in-one-batch",
        ),
        pytest.param(
            [(10, 0), (0, 12)], ((at(0, 12), at(10)),), id="gap-by-event-time-not-read-order"
        ),
        pytest.param([(0, 12), (9, 0), (4, 0)], (), id="older-activity-read-later-splits-it"),
    ],
)
def test_summary_reports_silences_of_n_days_or_more_inside_the_batch(
    times: list[tuple[float, float]], gaps: tuple[tuple[float, float], ...]
) -> None:
    summary = summarize([event("a", day, hour) for day, hour in times])
    assert summary is not None
    (activity,) = summary.accounts
    stamps = [at(day, hour) for day, hour in times]
    assert (activity.first, activity.last) == (min(stamps), max(stamps))
    assert activity.gaps == gaps


def test_a_batch_without_activity_advances_seen_until_only() -> None:
    summary = summarize(
        [
            event("a", 3, 9, "billing.payment_succeeded"),
            event("b", 4, 10, "support.ticket_opened"),
            event("a", 2, 0, "subscription.renewed"),
        ],
        partition=5,
    )
    assert summary == ActivityBatch(5, at(4, 10), ())


def test_an_empty_batch_has_no_summary() -> None:
    assert summarize([]) is None


@pytest.mark.parametrize(
    ("is_activity", "expected"),
    [
        pytest.param(
            is_app_event,
            [AccountActivity("acme", "a", at(0, 12), at(9, 12), ((at(0, 12), at(9, 12)),))],
            id="app-events",
        ),
        pytest.param(
            lambda kind: kind == "support.ticket_opened",
            [AccountActivity("acme", "a", at(4), at(4), ())],
            id="tickets-only",
        ),
        pytest.param(lambda kind: False, [], id="nothing-is-activity"),
    ],
)
def test_summary_honours_the_activity_predicate(
    is_activity: Callable[[str], bool], expected: list[AccountActivity]
) -> None:
    events = [event("a", 0, 12), event("a", 4, 0, "support.ticket_opened"), event("a", 9, 12)]
    summary = summarize_activity(0, events, is_activity, IDLE)
    assert summary == ActivityBatch(0, at(9, 12), tuple(expected))


# What ends a silence under the shipped definitions (the inactivity feature's events).
SHIPPED_ACTIVITY = load_definitions()[InactivityRule().feature].matches


@pytest.mark.parametrize(
    ("next_event", "last", "gaps"),
    [
        pytest.param(
            event("a", 7, 11.9), at(7, 11.9), (), id="login-6d-23h54m-later-no-gap"
        ),
        pytest.param(
            event("a", 7, 12), at(7, 12), ((at(0, 12), at(7, 12)),),
            id="login-exactly-7d-later-gap",
        ),
        pytest.param(
            event("a", 12, 8), at(12, 8), ((at(0, 12), at(12, 8)),), id="login-12d-later-gap"
        ),
        pytest.param(
            event("a", 9, 0, "app.feature_used"), at(9), ((at(0, 12), at(9)),),
            id="any-app-event-ends-the-silence",
        ),
        pytest.param(
            event("a", 9, 12, "support.ticket_opened"), at(0, 12), (), id="non-app-event-no-gap"
        ),
        pytest.param(
            event("a", 9, 12, "billing.payment_succeeded"), at(0, 12), (),
            id="billing-event-no-gap",
        ),
    ],
)
def test_shipped_definitions_count_app_events_as_activity(
    next_event: Event, last: float, gaps: tuple[tuple[float, float], ...]
) -> None:
    summary = summarize_activity(2, [event("a", 0, 12), next_event], SHIPPED_ACTIVITY, IDLE)
    assert summary == ActivityBatch(
        2, next_event.event_time.timestamp(), (AccountActivity("acme", "a", at(0, 12), last, gaps),)
    )


# --- the silence path: the partition's watermark -----------------------------------


@pytest.mark.parametrize("kind", ["app.login", "billing.payment_succeeded"])
@pytest.mark.parametrize(
    ("busy_day", "busy_hour", "expected"),
    [
        # quiet was last active on day 0 at 12:00: due on day 7 at 12:00
        pytest.param(7, 13, [], id="watermark-at-due-moment-but-day-judged-at-00h"),
        pytest.param(7, 23, [], id="watermark-late-in-due-day"),
        pytest.param(8, 1 - 1 / 3600, [], id="watermark-one-second-before-next-day"),
        pytest.param(8, 1, [("quiet", day_date(7))], id="watermark-enters-next-day"),
        pytest.param(30, 0, [("quiet", day_date(7))], id="watermark-far-past-due"),
    ],
)
def test_silent_account_is_signalled_once_the_watermark_enters_a_day_past_due(
    busy_day: int, busy_hour: float, expected: list[tuple[str, date]], kind: str
) -> None:
    tracker = new_tracker()
    assert feed(tracker, event("quiet", 0, 12)) == []
    # any event of another account moves the partition's watermark, activity or not
    assert dated(feed(tracker, event("busy", busy_day, busy_hour, kind))) == expected
    assert tracker.watermark == at(busy_day, busy_hour) - LATENESS


def test_only_other_accounts_drive_the_signal_and_it_comes_once() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))
    emitted = feed_each(tracker, hourly("busy", 1, 14))  # "quiet" sends nothing
    assert [when for when, _ in emitted] == [D0 + timedelta(days=8, hours=1)]  # watermark day 8
    ((_, signal),) = emitted
    assert (signal.tenant_id, signal.account_id, signal.signal_type) == (
        "acme", "quiet", SignalType.INACTIVITY
    )
    assert signal.signal_date == day_date(7)  # the due day, not the day it was seen
    assert (signal.usage_count, signal.baseline_count, signal.feature_version) == (0.0, 7.0, "v1")
    assert signal.severity is Severity.HIGH


def test_idleness_is_judged_at_the_start_of_the_day_the_watermark_entered() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 18))  # due on day 7 at 18:00
    # the watermark (day 7, 19:00) is past the due moment, but day 7 is judged at 00:00
    assert feed(tracker, event("busy", 7, 20)) == []
    assert feed(tracker, event("busy", 7, 23)) == []
    assert dated(feed(tracker, event("busy", 8, 1))) == [("quiet", day_date(7))]


def test_the_watermark_is_the_newest_event_time_seen_and_never_moves_back() -> None:
    tracker = new_tracker()
    assert tracker.watermark == float("-inf")
    feed(tracker, event("quiet", 0, 12))
    feed(tracker, event("busy", 7, 12), event("busy", 7, 11.5))
    assert tracker.watermark == at(7, 11)
    feed(tracker, event("late", 3, 0))  # a batch of older events only
    assert tracker.watermark == at(7, 11)


def test_each_partition_tracker_moves_on_its_own_events_only() -> None:
    ahead, behind = new_tracker(), new_tracker()
    behind.observe([batch(event("quiet", 0, 12, partition=1), partition=1)])
    ahead_events = [event("busy", day, 6) for day in range(1, 14)]
    assert [s for e in ahead_events for s in ahead.observe([batch(e)])] == []
    assert behind.watermark == at(0, 11)  # partition 1 has read nothing since
    caught_up = behind.observe([batch(event("other", 13, 5, partition=1), partition=1)])
    assert dated(caught_up) == [("quiet", day_date(7))]


# --- the finished-silence path: an account comes back -------------------------------
#
# A return after N days or more ends a silence (start = the last activity before it, end =
# the return). It is final once the partition's watermark (seen_until - lateness) reaches
# its due moment (start + N days): an on-time straggler is never older than the watermark,
# so until then it may still shorten the silence below N days, and after that it can only
# split it into pieces with the same start (the same due day, the same signal id). It is
# signalled by the first observe() after which the watermark has reached the due moment,
# dated by its due day as always: at or before the watermark passes the return, and by
# the batch that reads the return when the watermark is already past the due moment.


def watermark_signal(account: str, day: float, hour: float) -> UsageSignal:
    """The signal of ``account``'s silence from ``day`` at ``hour`` on the watermark path."""
    tracker = new_tracker()
    feed(tracker, event(account, day, hour))
    (signal,) = feed(tracker, event("busy", day + IDLE_DAYS + 60, 0))
    return signal


@pytest.mark.parametrize(
    ("back_day", "back_hour"),
    [
        pytest.param(7, 12, id="back-exactly-at-due"),
        pytest.param(7, 12.5, id="back-30-minutes-after-due"),
        pytest.param(7, 13 - 1 / 3600, id="back-one-second-short-of-due-plus-lateness"),
    ],
)
def test_a_finished_silence_is_signalled_when_the_watermark_reaches_its_due_moment_and_only_once(
    back_day: int, back_hour: float
) -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))  # due on day 7 at 12:00
    back = event("quiet", back_day, back_hour)
    # the return is read, but the watermark (an hour behind it) is short of the due moment
    assert feed(tracker, back) == []
    assert tracker.watermark == at(back_day, back_hour - 1) < at(7, 12)
    assert feed(tracker, back) == []  # read again while pending: still nothing
    # other activity of the partition: the watermark one second short of the due moment
    assert feed(tracker, event("busy", 7, 13 - 1 / 3600)) == []
    # ... and at it: final now, though the watermark may not have passed the return yet
    signals = feed(tracker, event("busy", 7, 13))
    assert tracker.watermark == at(7, 12) <= back.event_time.timestamp()
    assert dated(signals) == [("quiet", day_date(7))]
    # the same episode, dated and identified as the watermark path does
    assert signals[0].signal_id == watermark_signal("quiet", 0, 12).signal_id
    # the watermark passes the return, then later checks past the old due day: nothing
    later = [event("busy", back_day + d, back_hour + 1) for d in range(0, 7)]
    assert feed_each(tracker, later) == []
    # the same return read again (a replayed batch): nothing
    assert feed(tracker, back) == []
    assert feed(tracker, event("busy", back_day + 6, back_hour + 2)) == []


@pytest.mark.parametrize(
    ("back_day", "back_hour"),
    [
        pytest.param(7, 13, id="back-at-due-plus-lateness"),
        pytest.param(10, 12, id="back-after-10-days"),
        pytest.param(30, 0, id="back-after-30-days"),
    ],
)
def test_a_return_read_when_the_watermark_is_past_the_due_moment_is_signalled_with_it(
    back_day: int, back_hour: float
) -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))  # due on day 7 at 12:00; nothing else moves it
    back = event("quiet", back_day, back_hour)
    # reading the return moves the watermark to the due moment or past it: final at once
    signals = feed(tracker, back)
    assert tracker.watermark == at(back_day, back_hour - 1) >= at(7, 12)
    assert dated(signals) == [("quiet", day_date(7))]
    assert signals[0].signal_id == watermark_signal("quiet", 0, 12).signal_id
    assert feed(tracker, back) == []  # replayed
    later = [event("busy", back_day + d, back_hour) for d in range(0, 7)]
    assert feed_each(tracker, later) == []
    assert feed(tracker, event("quiet", 0, 12), back) == []  # both replayed in one batch


def test_a_return_one_second_short_of_n_days_is_never_signalled() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))
    assert feed(tracker, event("quiet", 7, 12 - 1 / 3600)) == []
    # the watermark reaches the moment it would have been due, and passes the return
    assert feed(tracker, event("busy", 7, 13)) == []
    # quiet is silent again from day 7 at 11:59:59: due on day 14, judged when day 15 begins
    assert feed_each(tracker, [event("busy", day, 1) for day in range(8, 15)]) == []
    assert dated(feed(tracker, event("busy", 15, 1))) == [("quiet", day_date(14))]


def test_a_return_at_the_due_moment_is_signalled_when_the_watermark_reaches_it() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))
    # the watermark (day 7, 11:00) has not reached the return, the due moment: pending
    assert feed(tracker, event("quiet", 7, 12)) == []
    assert tracker.watermark == at(7, 11)
    assert feed(tracker, event("busy", 7, 13 - 1 / 3600)) == []
    # the watermark reaches the due moment on day 7 at 12:00: signalled then, long before
    # the ongoing-silence check could (it judges day 7 when day 8 begins)
    assert dated(feed(tracker, event("busy", 7, 13))) == [("quiet", day_date(7))]
    assert tracker.watermark == at(7, 12)
    assert feed_each(tracker, [event("busy", 8, 1), event("busy", 9, 1)]) == []


def test_a_silence_inside_one_batch_is_signalled_even_for_an_account_never_seen() -> None:
    tracker = new_tracker()
    # due on day 7 at 12:00; the batch's watermark (11:30) is short of it: pending
    both = (event("quiet", 0, 12), event("quiet", 7, 12.5))
    assert feed(tracker, *both) == []
    assert feed(tracker, *both) == []  # replayed
    assert feed(tracker, event("busy", 7, 13 - 1 / 3600)) == []  # one second short
    signals = feed(tracker, event("busy", 7, 13))  # the watermark reaches the due moment
    assert dated(signals) == [("quiet", day_date(7))]
    assert signals[0].signal_id == watermark_signal("quiet", 0, 12).signal_id
    assert feed(tracker, *both) == []  # replayed
    assert feed_each(tracker, [event("busy", 7, 14), event("busy", 8, 1)]) == []


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(
            [event("quiet", 0, 12), event("quiet", 9, 12)], id="its-own-return-moves-it"
        ),
        pytest.param(
            [event("quiet", 0, 12), event("quiet", 7, 12.5), event("busy", 7, 13)],
            id="another-account-moves-it",
        ),
    ],
)
def test_a_batch_that_moves_the_watermark_past_its_own_silence_signals_it(
    events: list[Event],
) -> None:
    tracker = new_tracker()
    signals = feed(tracker, *events)
    assert dated(signals) == [("quiet", day_date(7))]
    assert signals[0].signal_id == watermark_signal("quiet", 0, 12).signal_id
    assert feed(tracker, *events) == []  # replayed
    assert feed_each(tracker, [event("busy", 9, 14), event("busy", 10, 1)]) == []


def test_every_silence_a_batch_ends_is_signalled() -> None:
    tracker = new_tracker()
    feed(tracker, event("a", 0, 12))
    signals = feed(
        tracker,
        event("b", 1, 0),
        event("a", 10, 12),  # ends a's silence since the previous batch
        event("b", 9, 12),
        event("a", 20, 12),
        event("b", 15, 0),
        event("a", 21, 0),
        event("b", 25, 0),
        # 7 days 30 minutes after a's previous activity: the batch's newest event, so its
        # watermark (day 27, 23:30) stays short of that silence's due moment (day 28, 00:00)
        event("a", 28, 0.5),
    )
    # every silence whose due moment the watermark has reached; not a's last
    assert sorted(dated(signals)) == [
        ("a", day_date(7)),
        ("a", day_date(17)),
        ("b", day_date(8)),
        ("b", day_date(22)),
    ]
    assert feed(tracker, event("busy", 28, 1 - 1 / 3600)) == []
    last = feed(tracker, event("busy", 28, 1))  # the watermark reaches day 28, 00:00
    assert dated(last) == [("a", day_date(28))]
    assert len({s.signal_id for s in signals + last}) == 5
    # the watermark passes a's return, then enters later days: nothing new until b's and
    # a's current silences are due (day 32 00:00, day 35 00:30), each judged at the start
    # of the day the watermark enters (days 32 and 36)
    ticks = [event("busy", 28, 2), *(event("busy", day, 1) for day in range(29, 37))]
    rest = feed_each(tracker, ticks)
    assert [(when.date(), s.account_id, s.signal_date) for when, s in rest] == [
        (day_date(32), "b", day_date(32)),
        (day_date(36), "a", day_date(35)),
    ]


def test_a_silence_signalled_by_the_watermark_is_not_signalled_again_on_return() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))
    first = feed(tracker, event("busy", 8, 1))
    assert dated(first) == [("quiet", day_date(7))]
    assert feed(tracker, event("quiet", 8, 2)) == []
    assert feed(tracker, event("busy", 8, 3)) == []  # the watermark passes the return
    # both batches read again (a replay from an earlier offset): nothing
    assert feed(tracker, event("quiet", 0, 12)) == []
    assert feed(tracker, event("busy", 8, 1)) == []
    # a redelivered copy of the old activity read with a return: the same silence
    assert feed(tracker, event("quiet", 0, 12), event("quiet", 8, 3)) == []
    assert feed(tracker, event("busy", 8, 5)) == []


# quiet is due on day 7 at 12:00; busy's event at 01:00 moves the watermark into day 8,
# at whose start quiet had been silent 7 days 12 hours; quiet comes back at 02:00. Read in
# one batch with busy's event, the return hides the silence from the ongoing-silence check
# (it judges by the newest activity read), but the finished silence is due already.
DAY_ENTRY = [event("quiet", 0, 12), event("busy", 8, 1), event("quiet", 8, 2)]


@pytest.mark.parametrize("one_call", [False, True], ids=["observe-each", "one-observe"])
@pytest.mark.parametrize(
    "sizes", [[1, 1, 1], [1, 2], [2, 1], [3]], ids=lambda s: "-".join(map(str, s))
)
def test_the_watermark_entering_a_day_signals_a_silence_returned_after_it(
    sizes: list[int], one_call: bool
) -> None:
    signals = run_in_batches(DAY_ENTRY, sizes, one_call=one_call)
    assert dated(signals) == [("quiet", day_date(7))]
    assert signals[0].signal_id == watermark_signal("quiet", 0, 12).signal_id


@pytest.mark.parametrize(
    "sizes", [[1, 1, 1, 1], [1, 2, 1], [1, 3], [3, 1], [4]], ids=lambda s: "-".join(map(str, s))
)
def test_a_silence_returned_after_the_day_entered_is_signalled_once_in_any_batching(
    sizes: list[int],
) -> None:
    events = [*DAY_ENTRY, event("busy", 8, 3)]  # the watermark passes quiet's return
    assert dated(run_in_batches(events, sizes)) == [("quiet", day_date(7))]


def test_signal_re_arms_after_activity() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))
    first = feed(tracker, event("busy", 9, 1))
    assert feed(tracker, event("quiet", 9, 12)) == []
    second = feed_each(tracker, [event("busy", day, 1) for day in range(10, 20)])
    # active again on day 9 at 12:00: due day 16 at 12:00, judged when day 17 begins
    assert [when for when, _ in second] == [D0 + timedelta(days=17, hours=1)]
    assert dated(first) == [("quiet", day_date(7))]
    assert second[0][1].signal_date == day_date(16)
    assert second[0][1].signal_id != first[0].signal_id


# --- batch boundaries ------------------------------------------------------------


def run_in_batches(
    events: Sequence[Event], sizes: Iterable[int], *, one_call: bool = False
) -> list[UsageSignal]:
    """Summarise ``events`` in consecutive batches of ``sizes`` and feed one tracker.

    ``one_call`` hands all batches to a single ``observe`` call, as a worker does
    with several batches pending.
    """
    batches: list[ActivityBatch] = []
    start = 0
    for size in sizes:
        if start >= len(events):
            break
        summary = summarize(events[start : start + size])
        if summary is not None:
            batches.append(summary)
        start += size
    assert start >= len(events)
    tracker = new_tracker()
    if one_call:
        return tracker.observe(batches)
    return [s for b in batches for s in tracker.observe([b])]


@pytest.mark.parametrize(
    "sizes", [[4], [1, 1, 1, 1], [2, 2], [1, 3], [3, 1]], ids=lambda s: "-".join(map(str, s))
)
def test_a_return_read_after_the_watermark_passed_its_due_moment_that_day(
    sizes: list[int],
) -> None:
    # quiet is due on day 7 at 18:00 and comes back at 17:30, but that activity is read
    # after busy's at 20:00: the watermark (19:00) is past the due moment, yet day 7 is
    # judged at 00:00, so no batching signals it
    events = [
        event("quiet", 0, 18),
        event("busy", 7, 20),
        event("quiet", 7, 17.5),
        event("busy", 9, 1),
    ]
    assert run_in_batches(events, sizes) == []


def history(seed: int) -> list[Event]:
    """One partition's events in read order (which is event-time order).

    A steady account keeps the partition moving; a dozen others are active with
    random silences, some just under or over a week, and between their activity
    send events that are not activity (billing, support), which must not end a
    silence.
    """
    rng = random.Random(seed)
    rows: list[tuple[float, int, Event]] = []

    def add(account: str, ts: float, kind: str) -> None:
        rows.append((ts, len(rows), event(account, (ts - at(0)) / DAY, 0, kind)))

    for day in range(60):
        add("steady", at(day, 3), "app.login")
    for n in range(12):
        account = f"a{n}"
        t = at(rng.randrange(3), rng.uniform(0, 24))
        while t < at(58):
            add(account, t, rng.choice(["app.login", "app.feature_used"]))
            # mostly short gaps; sometimes one just under or over a week
            step = rng.choice([0.3, 0.7, 1.5, 3.0, 6.9, 7.0, 7.2, 9.5, 12.0, 45.0])
            step = (step + rng.uniform(-0.2, 0.2)) * DAY
            for _ in range(rng.randrange(3)):  # not activity: does not end the silence
                add(account, t + rng.uniform(0, step), rng.choice(
                    ["billing.payment_succeeded", "support.ticket_opened"]
                ))
            t += step
    rows.sort(key=lambda row: row[:2])
    return [e for _, _, e in rows]


def with_stragglers(events: Sequence[Event], rng: random.Random) -> list[Event]:
    """``events`` read in another order: each at most the allowed lateness older than the
    newest event read before it (on-time stragglers)."""
    rows = [
        (e.event_time.timestamp() + rng.uniform(0, LATENESS), n, e)
        for n, e in enumerate(events)
    ]
    rows.sort(key=lambda row: row[:2])
    return [e for _, _, e in rows]


class Expected(NamedTuple):
    """What a partition's events should have signalled by the end of their reading."""

    episodes: set[tuple[str, date]]  # (account, due day) of every silence signalled
    ended: int  # ended silences signalled
    still_open: int  # open silences signalled
    # due moments of the ended silences not signalled yet: the watermark has not reached them
    pending: list[float]
    # ended silences signalled though the watermark has not passed their return yet
    before_return: int


def expected_episodes(events: Sequence[Event]) -> Expected:
    """Every silence of 7+ days signalled by the end of ``events``, dated by its due day.

    An ended silence is signalled once the final watermark has reached its due moment
    (its start + 7 days), whether or not it has passed its end (the return); until then
    it is pending: an on-time straggler may still shorten it. An open one is signalled
    once the final watermark has entered a day at whose start it had lasted 7 days. Read
    order does not matter (at most the lateness out of order).
    """
    stamps: dict[str, list[float]] = {}
    for e in events:
        if is_app_event(e.event_type):
            stamps.setdefault(e.account_id, []).append(e.event_time.timestamp())
    final_watermark = max(e.event_time.timestamp() for e in events) - LATENESS
    judged_at = (final_watermark // DAY) * DAY
    episodes: set[tuple[str, date]] = set()
    pending: list[float] = []
    ended = still_open = before_return = 0
    for account, times in stamps.items():
        times.sort()
        for earlier, later in pairwise(times):
            if later - earlier < IDLE:
                continue
            if earlier + IDLE <= final_watermark:
                episodes.add((account, _day(earlier + IDLE)))
                ended += 1
                before_return += later > final_watermark
            else:
                pending.append(earlier + IDLE)
        if times[-1] + IDLE <= judged_at:
            episodes.add((account, _day(times[-1] + IDLE)))
            still_open += 1
    return Expected(episodes, ended, still_open, sorted(pending), before_return)


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def cut_after_a_return(events: Sequence[Event]) -> list[Event]:
    """``events`` up to the latest return after 7 days or more whose silence is pending.

    Its watermark (the return's time - the lateness, or a little more) is short of the
    silence's due moment: the return came back less than the lateness after it.
    """
    last: dict[str, float] = {}
    returns: list[int] = []
    for n, e in enumerate(events):
        if is_app_event(e.event_type):
            ts = e.event_time.timestamp()
            if e.account_id in last and ts - last[e.account_id] >= IDLE:
                returns.append(n)
            last[e.account_id] = max(last.get(e.account_id, ts), ts)
    for n in reversed(returns):
        if expected_episodes(events[: n + 1]).pending:
            return list(events[: n + 1])
    raise AssertionError("no such cut")


def assert_batching_does_not_matter(events: Sequence[Event], rng: random.Random) -> Expected:
    """Run ``events`` in several batchings and check each against the expected episodes."""
    sizes = [rng.randint(1, 40) for _ in events]
    runs = {
        "one-batch": run_in_batches(events, [len(events)]),
        "single-events": run_in_batches(events, [1] * len(events)),
        "chunks": run_in_batches(events, sizes),
        "chunks-in-one-observe": run_in_batches(events, sizes, one_call=True),
    }
    expected = expected_episodes(events)
    assert expected.ended >= 3 and expected.still_open >= 1  # both paths are exercised
    for name, signals in runs.items():
        assert set(dated(signals)) == expected.episodes, name
        assert len(signals) == len({s.signal_id for s in signals}), name  # each episode once
    ids = {s.signal_id for s in runs["one-batch"]}
    assert all({s.signal_id for s in signals} == ids for signals in runs.values())
    return expected


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_signals_do_not_depend_on_batch_boundaries(seed: int) -> None:
    assert_batching_does_not_matter(history(seed), random.Random(seed))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_signals_do_not_depend_on_batch_boundaries_with_on_time_stragglers(seed: int) -> None:
    rng = random.Random(seed)
    events = with_stragglers(history(seed), rng)
    newest, lags = float("-inf"), []
    for e in events:
        ts = e.event_time.timestamp()
        lags.append(newest - ts)
        newest = max(newest, ts)
    assert sum(lag > 0 for lag in lags) >= 3 and max(lags) < LATENESS  # stragglers, on time
    assert_batching_does_not_matter(events, rng)


@pytest.mark.parametrize("stragglers", [False, True], ids=["in-order", "on-time-stragglers"])
@pytest.mark.parametrize("seed", [1, 2, 4, 5])  # histories with a return just after its due
def test_a_silence_is_signalled_in_any_batching_exactly_when_the_watermark_reaches_its_due(
    seed: int, stragglers: bool
) -> None:
    rng = random.Random(seed)
    events = history(seed)
    if stragglers:
        events = with_stragglers(events, rng)
    events = cut_after_a_return(events)
    expected = assert_batching_does_not_matter(events, rng)
    assert expected.pending  # not signalled in any batching: the watermark is short of it
    # another account's events move the watermark one second short of the first pending
    # silence's due moment (on time: not older than the watermark), then to it
    due = expected.pending[0]
    short = [*events, event("ticker", (due + LATENESS - 1 - at(0)) / DAY)]
    assert assert_batching_does_not_matter(short, rng).pending[0] == due
    reached = [*short, event("ticker", (due + LATENESS - at(0)) / DAY)]
    now = assert_batching_does_not_matter(reached, rng)
    assert due not in now.pending
    assert now.episodes - expected.episodes  # that silence among them
    assert now.before_return > expected.before_return  # the watermark is short of its return


# On-time stragglers: within one partition an event may be read after newer ones and
# still be within the allowed lateness (the account stage accepts it). A finished silence
# waits for the watermark to reach its due moment, so such a straggler read after the
# return, before then, still shortens it. Each case ends with another account's event that
# moves the watermark past the due moment (to the return): a silence still standing then
# is signalled.


@pytest.mark.parametrize(
    "sizes", [[3], [1, 1, 1], [2, 1], [1, 2]], ids=lambda s: "-".join(map(str, s))
)
def test_a_straggler_read_after_the_return_shortens_the_silence(sizes: list[int]) -> None:
    # active at 12:00 on day 0, then at 11:54 on day 7 (6d 23h 54m later: no episode),
    # but that activity is read after one at 12:30, 36 minutes newer (within lateness),
    # while the watermark (11:30) is short of the due moment (12:00)
    events = [event("quiet", 0, 12), event("quiet", 7, 12.5), event("quiet", 7, 11.9)]
    tick = event("busy", 7, 13.5)  # the watermark reaches 12:30, the return
    assert run_in_batches([*events, tick], [*sizes, 1]) == []


@pytest.mark.parametrize(
    "sizes",
    [[1, 1, 1, 1, 1], [2, 1, 1, 1], [1, 1, 2, 1], [1, 3, 1], [4, 1], [5]],
    ids=lambda s: "-".join(map(str, s)),
)
def test_a_straggler_read_after_other_activity_of_the_partition_shortens_the_silence(
    sizes: list[int],
) -> None:
    events = [
        event("quiet", 0, 12),
        event("quiet", 7, 12.5),  # 7d 0h 30m after 12:00 on day 0
        event("busy", 7, 12.75),  # the watermark (11:45) moves, short of the due moment
        event("quiet", 7, 11.9),  # 51 minutes older than the newest event: on time
        event("busy", 7, 13.5),  # the watermark reaches the return
    ]
    assert run_in_batches(events, sizes) == []


@pytest.mark.parametrize(
    "sizes", [[2, 1], [1, 1, 1], [1, 2], [3]], ids=lambda s: "-".join(map(str, s))
)
def test_without_a_straggler_that_silence_is_signalled_when_the_watermark_reaches_its_due(
    sizes: list[int],
) -> None:
    events = [event("quiet", 0, 12), event("quiet", 7, 12.5)]
    assert run_in_batches(events, [1, 1]) == []  # the return read: pending
    assert run_in_batches(events, [2]) == []
    # the watermark one second short of the due moment (day 7, 12:00): still pending
    assert run_in_batches([*events, event("busy", 7, 13 - 1 / 3600)], sizes) == []
    # at the due moment (half an hour before the return): signalled
    signals = run_in_batches([*events, event("busy", 7, 13)], sizes)
    assert dated(signals) == [("quiet", day_date(7))]
    assert signals[0].signal_id == watermark_signal("quiet", 0, 12).signal_id


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # last active on day 7 at 00:00; the next batch opens with an in-time straggler
        # from day 6 at 23:30, then the return on day 13 at 23:45 (6d 23h 45m of silence)
        pytest.param(
            [event("quiet", 7), event("quiet", 6, 23.5), event("quiet", 13, 23.75)],
            [],
            id="in-time-straggler-silence-under-7d",
        ),
        pytest.param(
            [event("quiet", 7), event("quiet", 6, 23.5), event("quiet", 14)],
            [("quiet", day_date(14))],  # not day 13: the silence began on day 7 at 00:00
            id="in-time-straggler-silence-of-7d",
        ),
        # active on day 5; an activity of day 1 arrives late, with a return on day 9
        pytest.param(
            [event("quiet", 5), event("quiet", 1), event("quiet", 9)],
            [],
            id="late-activity-silence-under-7d",
        ),
    ],
)
@pytest.mark.parametrize(
    "sizes", [[3], [1, 1, 1], [1, 2], [2, 1]], ids=lambda s: "-".join(map(str, s))
)
def test_a_silence_is_measured_from_the_last_activity_seen_in_any_batch(
    sizes: list[int], events: list[Event], expected: list[tuple[str, date]]
) -> None:
    # the watermark (an hour behind the return) has not reached any due moment
    assert run_in_batches(events, sizes) == []
    short = event("busy", 14, 1 - 1 / 3600)  # one second short of day 14 at 00:00
    assert run_in_batches([*events, short], [*sizes, 1]) == []
    tick = event("busy", 14, 1)  # the watermark reaches day 14 at 00:00, past every return
    assert dated(run_in_batches([*events, tick], [*sizes, 1])) == expected


def test_a_late_activity_read_with_a_return_does_not_signal_the_same_day_again() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))
    first = feed(tracker, event("busy", 8, 1))
    assert feed(tracker, event("quiet", 8, 2)) == []
    assert feed(tracker, event("busy", 8, 3)) == []  # the watermark passes the return
    # quiet's activity at 13:00 on day 0 arrives late: its silence was due 1 h later
    # the same day, so the episode signalled (2026-10-08) stands
    again = feed(tracker, event("quiet", 0, 13), event("quiet", 8, 3))
    again += feed(tracker, event("busy", 8, 5))
    assert {s.signal_id for s in again} - {s.signal_id for s in first} == set()
    assert again == []


@pytest.mark.parametrize(
    ("signalled_by", "late"),
    [
        # signalled as an ongoing silence; the late activity alone is quiet's newest, so
        # the ongoing-silence check judges a silence due on day 7 at 23:00 as day 10 begins
        pytest.param(event("busy", 10), [event("quiet", 0, 23)], id="ongoing-then-late-alone"),
        # signalled with the return; the late activity read with another return
        pytest.param(
            event("quiet", 10), [event("quiet", 0, 23), event("quiet", 10, 6)],
            id="finished-then-late-with-a-return",
        ),
    ],
)
def test_a_late_activity_moving_a_silence_within_its_signalled_due_day_signals_nothing_more(
    signalled_by: Event, late: list[Event]
) -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))
    first = feed(tracker, signalled_by)  # the watermark (day 9, 23:00) past the due moment
    assert dated(first) == [("quiet", day_date(7))]
    # an activity later on day 0 arrives long after the allowed lateness: the silence it
    # leaves is due later on day 7, the day of the episode already signalled
    assert feed(tracker, *late) == []
    assert feed_each(tracker, [event("busy", 10, 8), event("busy", 11, 1)]) == []




def test_a_late_activity_within_the_signalled_due_day_does_not_keep_the_account_forever() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))
    assert dated(feed(tracker, event("busy", 8, 1))) == [("quiet", day_date(7))]
    # quiet's activity at 13:00 on day 0 arrives late: the same episode, due 1 h later
    assert feed(tracker, event("quiet", 0, 13), event("busy", 8, 2)) == []
    sizes: dict[int, int] = {}
    for day in range(9, 50):
        assert feed(tracker, event("busy", day, 1)) == []
        sizes[day] = len(tracker)
    # silent since day 0 at 13:00, due day 7 at 13:00: 35 days past it when day 43 begins
    assert (sizes[42], sizes[43], sizes[49]) == (2, 1, 1)


# --- bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quiet_hour", "forget_after_days", "last_day_remembered"),
    [
        # quiet is due on day 7 at quiet_hour; judged at the start of each day
        pytest.param(12, 35.0, 42, id="35-days: day-42-00h-is-34.5-days-past-due"),
        pytest.param(12, 10.0, 17, id="10-days: day-17-00h-is-9.5-days-past-due"),
        pytest.param(0, 10.0, 16, id="10-days: day-17-00h-is-exactly-10-days-past-due"),
    ],
)
def test_a_signalled_account_silent_long_enough_is_forgotten(
    quiet_hour: float, forget_after_days: float, last_day_remembered: int
) -> None:
    tracker = new_tracker(forget_after_days)
    feed(tracker, event("quiet", 0, quiet_hour))
    sizes: dict[int, int] = {}
    emitted: list[UsageSignal] = []
    for day in range(1, 50):
        emitted += feed(tracker, event("busy", day, 1))  # judges the start of each day
        sizes[day] = len(tracker)
    assert dated(emitted) == [("quiet", day_date(7))]
    assert sizes[8] == 2  # signalled when day 8 began, still remembered
    assert sizes[last_day_remembered] == 2
    assert sizes[last_day_remembered + 1] == 1  # forgotten
    assert sizes[49] == 1  # the active account stays


def test_an_account_silent_but_not_yet_signalled_is_not_forgotten() -> None:
    tracker = new_tracker(forget_after_days=1.0)
    feed(tracker, event("quiet", 0, 18))  # due on day 7 at 18:00
    feed(tracker, event("busy", 8, 0.5))  # the watermark is in day 7: not signalled yet
    assert len(tracker) == 2
    assert dated(feed(tracker, event("busy", 8, 1))) == [("quiet", day_date(7))]
    assert len(tracker) == 2  # signalled just now; forgotten only a day later


def test_a_forgotten_account_coming_back_is_not_signalled_again_but_is_tracked_again() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12))
    emitted = feed_each(tracker, [event("busy", day, 1) for day in range(1, 50)])
    assert dated(s for _, s in emitted) == [("quiet", day_date(7))]
    assert len(tracker) == 1  # forgotten
    assert feed(tracker, event("quiet", 50, 2)) == []
    assert len(tracker) == 2
    # a new silence after the return is a new episode, signalled as usual
    later = feed_each(tracker, [event("busy", day, 1) for day in range(51, 60)])
    assert dated(s for _, s in later) == [("quiet", day_date(57))]


# --- recovery --------------------------------------------------------------------


def test_snapshot_round_trip_keeps_behaviour() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12), event("later", 3, 6))
    first = feed(tracker, event("busy", 9, 1))
    assert dated(first) == [("quiet", day_date(7))]

    restored = InactivityTracker(
        InactivityRule(days=IDLE_DAYS), LATENESS, "v1",
        snapshot=pickle.loads(pickle.dumps(tracker.snapshot())),
    )
    assert len(restored) == len(tracker) == 3
    assert restored.watermark == tracker.watermark == at(9)
    rest = [
        # a late activity of an account never seen, due long ago: day 9 was judged
        # before the snapshot, so it waits for day 10 as it would without a restart
        [event("busy", 9, 5), event("old", 1, 0)],
        [event("busy", 9, 7), event("quiet", 9, 6)],  # quiet's return: signalled already
        *[[event("busy", day, 1)] for day in range(10, 20)],
    ]
    original_out = [feed(tracker, *events) for events in rest]
    restored_out = [feed(restored, *events) for events in rest]
    assert restored_out == original_out
    # "later" is due on day 10 at 06:00: signalled when day 11 begins; "quiet" not again;
    # quiet's second silence (from day 9 at 06:00) is due day 16, judged when day 17 begins
    assert [dated(s) for s in restored_out if s] == [
        [("old", day_date(8))],
        [("later", day_date(10))],
        [("quiet", day_date(16))],
    ]
    assert len(restored) == len(tracker)


def test_snapshot_round_trip_keeps_pending_silences() -> None:
    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12), event("back", 0, 11.75))
    # both come back after 7 days or more; the watermark (day 7, 11:30) has reached neither
    # due moment (11:45, 12:00): both silences are pending when the snapshot is taken
    assert feed(tracker, event("back", 7, 12), event("quiet", 7, 12.5)) == []
    snapshot = pickle.loads(pickle.dumps(tracker.snapshot()))
    assert sorted(snapshot.pending) == [
        ("acme", "back", at(0, 11.75), at(7, 12)),
        ("acme", "quiet", at(0, 12), at(7, 12.5)),
    ]
    restored = InactivityTracker(InactivityRule(days=IDLE_DAYS), LATENESS, "v1", snapshot=snapshot)
    assert restored.snapshot() == tracker.snapshot()
    rest = [
        [event("quiet", 7, 11.9)],  # on time: quiet's silence was 6d 23h 54m after all
        [event("busy", 7, 12.75 - 1 / 3600)],  # the watermark one second short of back's due
        [event("busy", 7, 12.75)],  # ... and at it (before back's return): final
        [event("busy", 7, 13.5)],  # the watermark past quiet's old due and return: nothing
        *[[event("busy", day, 1)] for day in range(8, 16)],
    ]
    original_out = [feed(tracker, *events) for events in rest]
    restored_out = [feed(restored, *events) for events in rest]
    assert restored_out == original_out
    assert [sorted(dated(s)) for s in restored_out] == [
        [],
        [],
        [("back", day_date(7))],
        [],
        *[[]] * 7,
        # both silent since day 7 (12:00, 12:30): judged when day 15 begins
        [("back", day_date(14)), ("quiet", day_date(14))],
    ]
    assert restored.snapshot() == tracker.snapshot()
    # without its pending silences, a restored tracker would never signal back's
    dropped = InactivityTracker(
        InactivityRule(days=IDLE_DAYS), LATENESS, "v1", snapshot=replace(snapshot, pending=())
    )
    assert ("back", day_date(7)) not in {
        d for events in rest for d in dated(feed(dropped, *events))
    }


def test_a_snapshot_pickled_before_pending_silences_existed_restores() -> None:
    class PreviousVersionPickler(pickle.Pickler):
        """Pickles a TrackerSnapshot as the previous version did: its first three fields."""

        def reducer_override(self, obj: object) -> Any:
            if type(obj) is not TrackerSnapshot:
                return NotImplemented
            reduced = obj.__reduce_ex__(pickle.DEFAULT_PROTOCOL)
            assert isinstance(reduced, tuple)
            func, args, state, *rest = reduced
            return (func, args, state[:3], *rest)

    tracker = new_tracker()
    feed(tracker, event("quiet", 0, 12), event("busy", 3, 0))
    written = io.BytesIO()
    PreviousVersionPickler(written, pickle.DEFAULT_PROTOCOL).dump(tracker.snapshot())
    snapshot = pickle.loads(written.getvalue())
    assert type(snapshot) is TrackerSnapshot
    restored = InactivityTracker(InactivityRule(days=IDLE_DAYS), LATENESS, "v1", snapshot=snapshot)
    assert (len(restored), restored.watermark, restored.snapshot().pending) == (2, at(2, 23), ())
    assert restored.snapshot() == tracker.snapshot()
    # it goes on as the tracker it was taken from, finished silences included
    rest = [
        [event("quiet", 7, 12.5)],  # quiet's return, 30 min after its due moment: pending
        [event("busy", 7, 13)],  # the watermark reaches it
        *[[event("busy", day, 1)] for day in range(8, 16)],
    ]
    original_out = [dated(feed(tracker, *events)) for events in rest]
    assert [dated(feed(restored, *events)) for events in rest] == original_out
    assert original_out[:2] == [[], [("quiet", day_date(7))]]
    assert restored.snapshot() == tracker.snapshot()


def test_snapshot_of_a_new_tracker_restores_an_empty_one() -> None:
    restored = InactivityTracker(
        InactivityRule(days=IDLE_DAYS), LATENESS, "v1",
        snapshot=pickle.loads(pickle.dumps(new_tracker().snapshot())),
    )
    assert (len(restored), restored.watermark) == (0, float("-inf"))
    feed(restored, event("quiet", 0, 12))
    assert dated(feed(restored, event("busy", 8, 1))) == [("quiet", day_date(7))]


def test_absence_tracking_runs_a_tracker_per_signal_and_restores_an_older_snapshot() -> None:
    from detectors.inactivity import AbsenceTracking
    from tests.builders import make_event

    rules = [(InactivityRule(days=2.0, signal_type="quiet", feature="f"),
              lambda t: t == "app.login"),
             (InactivityRule(days=4.0, signal_type="gone", feature="g"), lambda _t: True)]
    tracking = AbsenceTracking(rules, 0.0, "v1")
    start = datetime(2026, 10, 1, 9, tzinfo=UTC)
    login = make_event(event_id="l", account_id="a", event_time=start)
    visit = make_event(event_id="v", account_id="a", event_type="app.visit",
                       event_time=start + timedelta(days=1))
    other = make_event(event_id="o", account_id="b", event_time=start + timedelta(days=6))
    signals = tracking.track([login, visit]) + tracking.track([other])
    # quiet: no login since day 0 (due day 2); gone: nothing since day 1 (due day 5)
    assert [(s.signal_type, s.signal_date.day) for s in signals] == [("quiet", 3), ("gone", 6)]
    snapshot = tracking.snapshot()
    assert set(snapshot) == {"quiet", "gone"}
    # a partition snapshot of one tracker (before several): it is the first signal's
    older = AbsenceTracking(rules, 0.0, "v1", snapshot["quiet"])
    assert older.snapshot()["quiet"] == snapshot["quiet"]
    assert older.snapshot()["gone"].accounts == ()


def test_tracking_that_has_read_nothing_takes_an_erasure_and_an_end_of_input() -> None:
    """An erasure as a partition's first message, or the end of an empty input, reach
    trackers that have no watermark yet: nothing to signal, and no error."""
    from detectors.inactivity import AbsenceTracking

    tracking = AbsenceTracking([(InactivityRule(days=2.0), lambda _t: True)], 3600.0, "v1")
    assert tracking.track([], [("acme", "a")], finalise=False) == []
    assert tracking.track([]) == []  # the end of the input: finalise what is pending
    assert tracking.trackers[0].watermark == float("-inf")


def test_finished_silences_wait_for_a_call_that_finalises() -> None:
    """``finalise=False`` (a batch's end with day closes on) keeps a finished silence
    whose due moment the watermark passed; the next call that finalises signals it."""
    from detectors.inactivity import AbsenceTracking
    from tests.builders import make_event

    tracking = AbsenceTracking([(InactivityRule(days=2.0), lambda _t: True)], 0.0, "v1")
    start = datetime(2026, 10, 1, 9, tzinfo=UTC)
    first = make_event(event_id="1", account_id="a", event_time=start)
    # back after 2 days 3 hours, before the next day's start: a finished silence only
    back = make_event(event_id="2", account_id="a", event_time=start + timedelta(hours=51))
    assert tracking.track([first, back], finalise=False) == []
    signals = tracking.track([])
    assert [(s.account_id, s.signal_date.day) for s in signals] == [("a", 3)]
    assert tracking.track([]) == []  # once
