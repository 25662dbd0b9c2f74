"""InactivityTracker: watermark-driven and gap-driven inactivity signals, once per episode."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable
from datetime import UTC, date, datetime

import pytest

from detectors.inactivity import Activity, InactivityTracker
from detectors.usage import InactivityRule, SignalType, UsageSignal

HOUR = 3_600.0
DAY = 86_400.0
LATENESS = HOUR
IDLE_DAYS = 7
D0 = datetime(2026, 10, 1, tzinfo=UTC).timestamp()  # the start of day 0 (T0's day)
T0 = D0 + 12 * HOUR


def at(day: float, hour: float = 0.0) -> float:
    """Epoch seconds of ``hour`` o'clock on day ``day`` (day 0 = 2026-10-01)."""
    return D0 + day * DAY + hour * HOUR


def active(
    account: str,
    last_active: float,
    *,
    partition: int = 0,
    gap_from: float | None = None,
    seen_until: float | None = None,
) -> Activity:
    return Activity(
        "acme",
        account,
        last_active,
        last_active if seen_until is None else seen_until,
        partition,
        () if gap_from is None else (gap_from,),
    )


def new_tracker() -> InactivityTracker:
    return InactivityTracker(InactivityRule(days=IDLE_DAYS), LATENESS, "v1")


def dated(signals: Iterable[UsageSignal]) -> list[tuple[str, date]]:
    return [(s.account_id, s.signal_date) for s in signals]


def drive(tracker: InactivityTracker, account: str, times: Iterable[float], partition: int = 0
          ) -> list[tuple[float, list[UsageSignal]]]:
    """Feed one activity per batch for ``account``; what each batch emitted, by its time."""
    return [(t, tracker.observe([active(account, t, partition=partition)])) for t in times]


# --- the watermark path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("busy_until", "expected"),
    [
        # quiet was last active on day 0 at 12:00: due on day 7 at 12:00 (2026-10-08)
        pytest.param(at(7, 13), [], id="watermark-at-due-moment-but-day-judged-at-00h"),
        pytest.param(at(7, 23), [], id="watermark-late-in-due-day"),
        pytest.param(at(8, 1) - 1, [], id="watermark-one-second-before-next-day"),
        pytest.param(at(8, 1), [("quiet", date(2026, 10, 8))], id="watermark-enters-next-day"),
        pytest.param(at(30), [("quiet", date(2026, 10, 8))], id="watermark-far-past-due"),
    ],
)
def test_silent_account_is_signalled_once_the_watermark_enters_a_day_past_due(
    busy_until: float, expected: list[tuple[str, date]]
) -> None:
    tracker = new_tracker()
    assert tracker.observe([active("quiet", T0)]) == []
    assert dated(tracker.observe([active("busy", busy_until)])) == expected
    assert tracker.watermark == busy_until - LATENESS


def test_only_other_accounts_drive_the_signal_and_it_comes_once() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", T0)])
    hourly = [at(1) + h * HOUR for h in range(24 * 14)]  # days 1..14, "quiet" sends nothing
    emitted = [(t, s) for t, signals in drive(tracker, "busy", hourly) for s in signals]
    assert [t for t, _ in emitted] == [at(8, 1)]  # watermark = 2026-10-09T00:00
    (_, signal), = emitted
    assert (signal.account_id, signal.signal_type) == ("quiet", SignalType.INACTIVITY)
    assert signal.signal_date == date(2026, 10, 8)  # the due day, not the day it was seen
    assert (signal.usage_count, signal.baseline_count, signal.feature_version) == (0.0, 7.0, "v1")


def test_idleness_is_judged_at_the_start_of_the_day_the_watermark_entered() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", at(0, 18))])  # due on day 7 (2026-10-08) at 18:00
    # the watermark (day 7, 19:00) is past the due moment, but day 7 is judged at 00:00
    assert tracker.observe([active("busy", at(7, 20))]) == []
    assert tracker.observe([active("busy", at(7, 23))]) == []
    assert dated(tracker.observe([active("busy", at(8, 1))])) == [("quiet", date(2026, 10, 8))]


def test_a_lagging_partition_holds_the_watermark_back() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", T0, partition=1)])
    ahead = drive(tracker, "busy", [at(d, 6) for d in range(1, 14)], partition=0)
    assert [s for _, signals in ahead for s in signals] == []
    assert tracker.watermark == T0 - LATENESS  # partition 1 is still at T0
    caught_up = tracker.observe([active("other", at(13, 5), partition=1)])
    assert dated(caught_up) == [("quiet", date(2026, 10, 8))]
    assert tracker.watermark == at(13, 4)


def test_a_channel_silent_for_two_periods_stops_holding_the_watermark() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", T0, partition=1)])
    ahead = drive(tracker, "busy", [at(d, 6) for d in range(1, 16)], partition=0)
    # partition 1 fell 14 days behind on day 14: dropped, the watermark moves on
    assert dated([s for _, signals in ahead for s in signals]) == [("quiet", date(2026, 10, 8))]
    assert tracker.watermark == at(15, 6) - LATENESS


def test_channels_are_partition_and_worker() -> None:
    tracker = new_tracker()
    slow = Activity("acme", "quiet", T0, T0, 0, (), "worker-b")
    tracker.observe([slow])
    ahead = [Activity("acme", "busy", at(d, 6), at(d, 6), 0, (), "worker-a") for d in range(1, 10)]
    for activity in ahead:
        assert tracker.observe([activity]) == []  # worker-b's accounts may still be in flight
    assert tracker.watermark == T0 - LATENESS


# --- the gap path ----------------------------------------------------------------


def test_a_finished_gap_is_signalled_at_once_and_only_once() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", T0)])
    back = tracker.observe([active("quiet", T0 + 10 * DAY, gap_from=T0)])
    assert dated(back) == [("quiet", date(2026, 10, 8))]
    # a later watermark check past the old due day: nothing (the account is active again)
    later = drive(tracker, "busy", [at(d, 6) for d in range(11, 17)])
    assert [s for _, signals in later for s in signals] == []
    # the same gap reported again (a replayed batch): nothing
    assert tracker.observe([active("quiet", T0 + 10 * DAY, gap_from=T0)]) == []
    assert tracker.observe([active("quiet", T0 + 11 * DAY, gap_from=T0)]) == []


def test_a_gap_seen_after_the_watermark_signalled_it_is_not_signalled_again() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", T0)])
    first = tracker.observe([active("busy", at(8, 1))])
    assert dated(first) == [("quiet", date(2026, 10, 8))]
    assert tracker.observe([active("quiet", at(8, 2), gap_from=T0)]) == []


def test_a_gap_from_an_account_the_tracker_never_saw_is_signalled() -> None:
    tracker = new_tracker()
    signals = tracker.observe([active("quiet", T0 + 9 * DAY, gap_from=T0)])
    assert dated(signals) == [("quiet", date(2026, 10, 8))]


def test_signal_re_arms_after_activity() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", T0)])
    first = tracker.observe([active("busy", at(9, 1))])
    assert tracker.observe([active("quiet", at(9, 12), gap_from=T0)]) == []
    later = drive(tracker, "busy", [at(d, 1) for d in range(10, 20)])
    second = [(t, s) for t, signals in later for s in signals]
    # active again on day 9 at 12:00: due day 16 at 12:00, judged when day 17 begins
    assert [t for t, _ in second] == [at(17, 1)]
    assert dated(first) == [("quiet", date(2026, 10, 8))]
    assert second[0][1].signal_date == date(2026, 10, 17)
    assert second[0][1].signal_id != first[0].signal_id


# --- batch boundaries ------------------------------------------------------------


def history(seed: int) -> list[Activity]:
    """Activities as the account stage emits them: two partitions, in event-time order.

    Each account's ``gap_from`` is its previous activity when the silence lasted
    7 days or more, exactly as AccountProcessor reports it.
    """
    rng = random.Random(seed)
    rows: list[tuple[float, str, int, float | None]] = []
    for partition in (0, 1):  # one always-active account keeps each partition moving
        rows += [(at(d, 3 + partition), f"steady-{partition}", partition, None) for d in range(60)]
    for n in range(12):
        account, partition = f"a{n}", n % 2
        t = at(rng.randrange(3), rng.uniform(0, 24))
        previous: float | None = None
        while t < at(58):
            gap = previous is not None and t - previous >= IDLE_DAYS * DAY
            rows.append((t, account, partition, previous if gap else None))
            previous = t
            # mostly short gaps; sometimes one just under or over a week
            t += rng.choice([0.3, 0.7, 1.5, 3.0, 6.9, 7.0, 7.2, 9.5, 12.0]) * DAY
            t += rng.uniform(-0.2, 0.2) * DAY
    rows.sort()
    return [active(a, t, partition=p, gap_from=g) for t, a, p, g in rows]


def expected_episodes(activities: list[Activity], final_watermark: float) -> set[tuple[str, date]]:
    """Every silence of 7+ days, dated by its due day: ended ones, and open ones judged due."""
    last: dict[str, float] = {}
    episodes: set[tuple[str, date]] = set()
    judged_at = (final_watermark // DAY) * DAY
    for activity in activities:
        previous = last.get(activity.account_id)
        if previous is not None and activity.last_active - previous >= IDLE_DAYS * DAY:
            episodes.add((activity.account_id, _day(previous + IDLE_DAYS * DAY)))
        last[activity.account_id] = activity.last_active
    for account, previous in last.items():
        if previous + IDLE_DAYS * DAY <= judged_at:
            episodes.add((account, _day(previous + IDLE_DAYS * DAY)))
    return episodes


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def run_in_batches(activities: list[Activity], sizes: Iterable[int]) -> list[UsageSignal]:
    tracker = new_tracker()
    signals: list[UsageSignal] = []
    start = 0
    for size in sizes:
        if start >= len(activities):
            break
        signals += tracker.observe(activities[start : start + size])
        start += size
    assert start >= len(activities)
    return signals


@pytest.mark.parametrize(
    "sizes", [[4], [1, 1, 1, 1], [2, 2], [1, 3], [3, 1]], ids=lambda s: "-".join(map(str, s))
)
def test_a_return_read_after_the_watermark_passed_its_due_moment_that_day(
    sizes: list[int],
) -> None:
    # quiet is due on day 7 at 18:00 and comes back at 17:30, but that activity is read
    # after busy's at 20:00 (within the partition's lateness): the watermark (19:00) is
    # past the due moment, yet day 7 is judged at 00:00, so no batching signals it
    activities = [
        active("quiet", at(0, 18)),
        active("busy", at(7, 20)),
        active("quiet", at(7, 17.5)),
        active("busy", at(9, 1)),
    ]
    assert run_in_batches(activities, sizes) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_signals_do_not_depend_on_batch_boundaries(seed: int) -> None:
    activities = history(seed)
    rng = random.Random(seed)
    one_batch = run_in_batches(activities, [len(activities)])
    single = run_in_batches(activities, [1] * len(activities))
    chunks = run_in_batches(activities, (rng.randint(1, 40) for _ in range(len(activities))))

    ids = {s.signal_id for s in one_batch}
    assert len(ids) >= 5  # the history has episodes of both kinds to compare
    assert {s.signal_id for s in single} == ids
    assert {s.signal_id for s in chunks} == ids
    for run in (one_batch, single, chunks):
        assert len(run) == len({s.signal_id for s in run})  # each episode once

    final_watermark = min(at(59, 3), at(59, 4)) - LATENESS
    assert set(dated(one_batch)) == expected_episodes(activities, final_watermark)


# --- bounds and recovery ---------------------------------------------------------


def test_a_signalled_account_silent_35_more_days_is_forgotten() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", T0)])  # due day 7 at 12:00; forgotten from day 42 12:00
    sizes: dict[int, int] = {}
    for day in range(1, 45):
        tracker.observe([active("busy", at(day, 1))])  # judges the start of each day
        sizes[day] = len(tracker)
    assert sizes[7] == 2 and sizes[8] == 2  # signalled when day 8 began, still remembered
    assert sizes[42] == 2  # day 42 at 00:00 is 34.5 days past due
    assert sizes[43] == 1  # day 43 at 00:00 is 35.5 days past due: forgotten
    assert sizes[44] == 1  # the active account stays


def test_a_forgotten_account_coming_back_is_not_signalled_twice() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", T0)])
    emitted = [s for _, signals in drive(tracker, "busy", [at(d, 1) for d in range(1, 50)])
               for s in signals]
    assert dated(emitted) == [("quiet", date(2026, 10, 8))]
    assert len(tracker) == 1  # forgotten
    assert tracker.observe([active("quiet", at(50, 2), gap_from=T0)]) == []


def test_snapshot_round_trip_keeps_behaviour() -> None:
    tracker = new_tracker()
    tracker.observe([active("quiet", T0, partition=1), active("later", at(3, 6), partition=1)])
    first = tracker.observe([active("busy", at(9, 1)), active("other", at(9, 1), partition=1)])
    assert dated(first) == [("quiet", date(2026, 10, 8))]

    restored = InactivityTracker(
        InactivityRule(days=IDLE_DAYS), LATENESS, "v1",
        snapshot=pickle.loads(pickle.dumps(tracker.snapshot())),
    )
    # Accounts survive a restore; channels are learnt again (worker threads change).
    assert len(restored) == len(tracker)
    assert restored.watermark == float("-inf")
    rest = [
        [active("busy", at(d, 1)), active("other", at(d, 1), partition=1)] for d in range(10, 20)
    ]
    original_out = [tracker.observe(batch) for batch in rest]
    restored_out = [restored.observe(batch) for batch in rest]
    assert restored_out == original_out
    # "later" is due on day 10 at 06:00: signalled when day 11 begins; "quiet" not again
    assert [dated(s) for s in restored_out if s] == [[("later", date(2026, 10, 11))]]
