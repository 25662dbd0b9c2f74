"""Per-account aggregation: UTC day buckets, windows, trackers, eviction and snapshots."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from featurestore.aggregation import AccountFeatures, CompiledFeatures
from featurestore.definitions import FeatureSet, load_definitions, parse_definitions
from schemas.clock import DAY, day_of
from schemas.event import Event
from tests.builders import make_event

MIDNIGHT = datetime(2026, 10, 1, tzinfo=UTC)  # day 0 of these tests

LOGINS_7D = {"events": ["app.login"], "aggregation": "count", "window": "7d"}
LOGINS_BASELINE = {"events": ["app.login"], "aggregation": "count", "window": "28d", "offset": "7d"}


def noon(day: int) -> datetime:
    """Noon UTC on test day ``day`` (0 is 2026-10-01)."""
    return MIDNIGHT + timedelta(days=day, hours=12)


class Account:
    """One account's features, fed and read by feature name."""

    def __init__(self, feature_set: FeatureSet, *, grace_days: int = 0) -> None:
        self.feature_set = feature_set
        self.compiled = CompiledFeatures(feature_set, grace_days=grace_days)
        self.features = AccountFeatures(self.compiled)
        self._serial = 0

    @classmethod
    def with_features(cls, **specs: Any) -> Account:
        """An account with the features ``specs`` (and ``grace_days``, if given)."""
        grace_days = specs.pop("grace_days", 0)
        return cls(parse_definitions({"version": 1, "features": specs}), grace_days=grace_days)

    def event(self, when: datetime, **overrides: Any) -> Event:
        self._serial += 1
        return make_event(event_id=f"evt-{self._serial}", event_time=when, **overrides)

    def feed(self, when: datetime, **overrides: Any) -> bool:
        event = self.event(when, **overrides)
        return self.features.apply(event, event.event_time.timestamp())

    def read(self, as_of: datetime) -> dict[str, float]:
        values = self.features.values(as_of.timestamp())
        return dict(zip(self.feature_set.names, values, strict=True))


# --- UTC day buckets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "day"),
    [
        pytest.param(0.0, 0, id="epoch"),
        pytest.param(DAY - 0.001, 0, id="last-ms-of-day-0"),
        pytest.param(DAY, 1, id="first-instant-of-day-1"),
        pytest.param(-0.001, -1, id="before-epoch"),
    ],
)
def test_day_of_floors_epoch_seconds(ts: float, day: int) -> None:
    assert day_of(ts) == day


@pytest.mark.parametrize(
    ("when", "utc_day"),
    [
        pytest.param(datetime(2026, 10, 1, 23, 59, 59, 999000, tzinfo=UTC), 0, id="23:59:59.999Z"),
        pytest.param(datetime(2026, 10, 2, 0, 0, tzinfo=UTC), 1, id="00:00:00Z-next-day"),
        pytest.param(
            datetime(2026, 10, 2, 0, 30, tzinfo=timezone(timedelta(hours=1))).astimezone(UTC),
            0, id="00:30+01:00-is-previous-utc-day",
        ),
        pytest.param(
            datetime(2026, 10, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))).astimezone(UTC),
            1, id="23:30-05:00-is-next-utc-day",
        ),
    ],
)
def test_events_land_in_their_utc_day(when: datetime, utc_day: int) -> None:
    account = Account.with_features(
        logins_1d={"events": ["app.login"], "aggregation": "count", "window": "1d"}
    )
    account.feed(when)
    assert account.features.bucket_days == [day_of(MIDNIGHT.timestamp()) + utc_day]
    assert account.read(noon(utc_day))["logins_1d"] == 1.0
    assert account.read(noon(utc_day - 1))["logins_1d"] == 0.0
    assert account.read(noon(utc_day + 1))["logins_1d"] == 0.0


def test_last_millisecond_and_next_midnight_are_different_days() -> None:
    account = Account.with_features(logins_7d=LOGINS_7D)
    account.feed(datetime(2026, 10, 1, 23, 59, 59, 999000, tzinfo=UTC))
    account.feed(datetime(2026, 10, 2, 0, 0, tzinfo=UTC))
    first, second = account.features.bucket_days
    assert second == first + 1
    assert account.read(noon(1))["logins_7d"] == 2.0


# --- windows ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_before", "in_7d", "in_baseline"),
    [
        pytest.param(0, 1.0, 0.0, id="as-of-day"),
        pytest.param(6, 1.0, 0.0, id="D-6-last-day-of-7d"),
        pytest.param(7, 0.0, 1.0, id="D-7-first-day-of-baseline"),
        pytest.param(34, 0.0, 1.0, id="D-34-last-day-of-baseline"),
        pytest.param(35, 0.0, 0.0, id="D-35-outside-both"),
        pytest.param(-1, 0.0, 0.0, id="after-as-of"),
    ],
)
def test_window_edges(days_before: int, in_7d: float, in_baseline: float) -> None:
    # counts (prefix sums) and distinct users (set unions) take different paths
    account = Account.with_features(
        logins_7d=LOGINS_7D,
        baseline=LOGINS_BASELINE,
        users_7d={**LOGINS_7D, "aggregation": "distinct_users"},
        users_baseline={**LOGINS_BASELINE, "aggregation": "distinct_users"},
    )
    account.feed(noon(40 - days_before))
    assert account.read(noon(40)) == {
        "logins_7d": in_7d,
        "baseline": in_baseline,
        "users_7d": in_7d,
        "users_baseline": in_baseline,
    }


def test_one_login_a_day_over_40_days() -> None:
    account = Account.with_features(logins_7d=LOGINS_7D, baseline=LOGINS_BASELINE)
    for day in range(11):
        account.feed(noon(day))
    # as of day 10: 7d covers days 4..10; the baseline covers days -24..3, of which 0..3 exist
    assert account.read(noon(10)) == {"logins_7d": 7.0, "baseline": 4.0}
    for day in range(11, 40):
        account.feed(noon(day))
    # as of day 39: 7d covers 33..39, the baseline 5..32
    assert account.read(noon(39)) == {"logins_7d": 7.0, "baseline": 28.0}
    # the as-of time is not the day's end: early morning of day 39 reads the same days
    assert account.read(MIDNIGHT + timedelta(days=39)) == {"logins_7d": 7.0, "baseline": 28.0}


# --- ratio --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("week_per_day", "baseline_per_day", "expected"),
    [
        pytest.param(2, 1, 2.0, id="double-the-baseline"),
        pytest.param(1, 2, 0.5, id="half-the-baseline"),
        pytest.param(1, 1, 1.0, id="steady"),
        pytest.param(0, 1, 0.0, id="stopped"),
        pytest.param(3, 0, 1.5, id="no-baseline-gives-default"),
        pytest.param(0, 0, 1.5, id="nothing-gives-default"),
    ],
)
def test_ratio_compares_per_day_rates(
    week_per_day: int, baseline_per_day: int, expected: float
) -> None:
    account = Account.with_features(
        trend={"aggregation": "ratio", "numerator": "week", "denominator": "base", "default": 1.5},
        week=LOGINS_7D,
        base=LOGINS_BASELINE,
    )
    for day in range(35):
        per_day = week_per_day if day >= 28 else baseline_per_day
        for _ in range(per_day):
            account.feed(noon(day))
    values = account.read(noon(34))
    assert values["week"] == 7 * week_per_day
    assert values["base"] == 28 * baseline_per_day
    assert values["trend"] == pytest.approx(expected)


def test_ratio_divides_by_each_window_length() -> None:
    # 7 logins in 7 days against 7 logins in 28 days: 1/day vs 0.25/day
    account = Account.with_features(
        week=LOGINS_7D,
        base=LOGINS_BASELINE,
        trend={"aggregation": "ratio", "numerator": "week", "denominator": "base"},
    )
    for day in range(7):
        account.feed(noon(day))  # as of day 34 these are 34..28 days old: baseline
    for day in range(28, 35):
        account.feed(noon(day))
    assert account.read(noon(34))["trend"] == pytest.approx(4.0)


# --- windowed aggregations ----------------------------------------------------------------


def test_distinct_users_counts_each_user_once_across_days() -> None:
    account = Account.with_features(
        users_7d={"events": ["app.*"], "aggregation": "distinct_users", "window": "7d"}
    )
    account.feed(noon(0), user_id="u-1")
    account.feed(noon(1), user_id="u-1")
    account.feed(noon(1), user_id="u-2", event_type="app.feature_used")
    account.feed(noon(2), user_id=None)
    account.feed(noon(2), user_id="u-3", event_type="billing.paid")
    assert account.read(noon(2))["users_7d"] == 2.0


def test_a_user_seen_on_many_days_is_held_and_snapshotted_once() -> None:
    account = Account.with_features(
        users_28d={"events": ["app.*"], "aggregation": "distinct_users", "window": "28d"}
    )
    for day in range(5):  # each event's id a string of its own, as parsing makes them
        account.feed(noon(day), user_id="".join(["user-", "0042"]))
    buckets = account.features.raw()[0]
    held = {id(member) for bucket in buckets.values() for member in bucket[0]}
    assert len(buckets) == 5 and len(held) == 1
    assert pickle.dumps(account.features.raw()).count(b"user-0042") == 1
    assert account.read(noon(4))["users_28d"] == 1.0


def test_distinct_values_of_an_attribute() -> None:
    account = Account.with_features(
        used={
            "events": ["app.feature_used"], "aggregation": "distinct_values",
            "attribute": "feature", "window": "7d",
        }
    )
    for day, feature in [(0, "reports"), (1, "reports"), (1, "dashboards"), (2, None)]:
        attributes = {} if feature is None else {"feature": feature}
        account.feed(noon(day), event_type="app.feature_used", attributes=attributes)
    account.feed(noon(2), event_type="app.feature_used", attributes={"feature": ["a", "b"]})
    assert account.read(noon(2))["used"] == 2.0


def test_sum_adds_numbers_and_ignores_the_rest() -> None:
    account = Account.with_features(
        paid={
            "events": ["billing.paid"], "aggregation": "sum", "attribute": "amount",
            "window": "7d",
        }
    )
    amounts: list[object] = [3, 2.5, "7", True, None, {"value": 1}, -0.5]
    moved = [
        account.feed(noon(1), event_type="billing.paid", attributes={"amount": amount})
        for amount in amounts
    ]
    assert account.read(noon(1))["paid"] == 5.0
    assert moved == [True, True, False, False, False, False, True]


def test_where_keeps_only_listed_values() -> None:
    account = Account.with_features(
        key={
            "events": ["app.feature_used"], "aggregation": "count", "window": "7d",
            "where": {"attribute": "feature", "in": ["dashboards", "reports"]},
        }
    )
    for feature in ["dashboards", "reports", "reports", "billing", "Reports"]:
        account.feed(noon(0), event_type="app.feature_used", attributes={"feature": feature})
    kept = account.feed(noon(0), event_type="app.feature_used", attributes={})
    assert kept is False
    assert account.read(noon(0))["key"] == 3.0


# --- trackers -----------------------------------------------------------------------------

TRACKERS: dict[str, dict[str, Any]] = {
    "last": {"events": ["app.*"], "aggregation": "days_since_last"},
    "tenure": {"events": ["*"], "aggregation": "days_since_first"},
    "renewal": {
        "events": ["subscription.renewed"], "aggregation": "days_until",
        "attribute": "renews_at", "default": 365,
    },
    "seats": {
        "events": ["app.seat_added", "app.seat_removed"], "aggregation": "latest",
        "attribute": "seats", "default": -1,
    },
}


def test_trackers_give_their_defaults_before_any_event() -> None:
    account = Account.with_features(**TRACKERS)
    assert account.read(noon(0)) == {"last": 0.0, "tenure": 0.0, "renewal": 365.0, "seats": -1.0}


def test_days_since_last_follows_the_newest_event_only() -> None:
    account = Account.with_features(**TRACKERS)
    account.feed(noon(0))
    account.feed(noon(3))
    account.feed(noon(1))  # late: older than the last one
    account.feed(noon(9), event_type="billing.paid")  # not an app.* event
    assert account.read(noon(10))["last"] == 7.0
    assert account.read(noon(10) + timedelta(hours=6))["last"] == 7.25


def test_days_since_first_is_tenure_and_grows_with_an_older_event() -> None:
    account = Account.with_features(**TRACKERS)
    account.feed(noon(0), event_type="billing.paid")
    account.feed(noon(4))
    assert account.read(noon(10))["tenure"] == 10.0
    account.feed(noon(-5), event_type="crm.note_added")  # an older event seen late
    assert account.read(noon(10))["tenure"] == 15.0


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        pytest.param(datetime(2026, 11, 1, tzinfo=UTC), 30.0, id="30-days-ahead"),
        pytest.param(datetime(2026, 11, 30, 12, tzinfo=UTC), 0.5, id="half-a-day-ahead"),
        pytest.param(datetime(2026, 12, 1, tzinfo=UTC), 0.0, id="on-the-day"),
        pytest.param(datetime(2026, 12, 11, tzinfo=UTC), -10.0, id="negative-once-passed"),
    ],
)
def test_days_until_reads_an_rfc3339_attribute(as_of: datetime, expected: float) -> None:
    account = Account.with_features(**TRACKERS)
    account.feed(
        noon(0), event_type="subscription.renewed",
        attributes={"renews_at": "2026-12-01T00:00:00Z"},
    )
    assert account.read(as_of)["renewal"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "renews_at",
    [
        pytest.param("2026-12-01T00:00:00", id="no-offset"),
        pytest.param("next year", id="not-a-time"),
        pytest.param(1_796_083_200, id="a-number"),
        pytest.param(None, id="missing"),
    ],
)
def test_days_until_ignores_unusable_times(renews_at: object) -> None:
    account = Account.with_features(**TRACKERS)
    attributes = {} if renews_at is None else {"renews_at": renews_at}
    moved = account.feed(noon(0), event_type="subscription.renewed", attributes=attributes)
    assert moved is True  # tenure still moved; the renewal did not
    assert account.read(noon(0))["renewal"] == 365.0


def test_days_until_keeps_the_time_from_the_newest_event() -> None:
    account = Account.with_features(**TRACKERS)
    account.feed(
        noon(5), event_type="subscription.renewed",
        attributes={"renews_at": "2027-01-01T00:00:00+00:00"},
    )
    account.feed(  # late and older: must not bring back the earlier renewal date
        noon(2), event_type="subscription.renewed",
        attributes={"renews_at": "2026-11-01T00:00:00Z"},
    )
    assert account.read(noon(6))["renewal"] == 85.5  # 2026-10-07T12:00 to 2027-01-01


def test_latest_keeps_the_newest_event_time_not_the_last_arrival() -> None:
    account = Account.with_features(**TRACKERS)
    account.feed(noon(5), event_type="app.seat_added", attributes={"seats": 10})
    account.feed(noon(3), event_type="app.seat_removed", attributes={"seats": 4})  # late
    assert account.read(noon(6))["seats"] == 10.0
    account.feed(noon(6), event_type="app.seat_removed", attributes={"seats": 9.5})
    account.feed(noon(7), event_type="app.seat_added", attributes={"seats": True})  # ignored
    account.feed(noon(7), event_type="app.seat_added", attributes={"seats": "12"})  # ignored
    assert account.read(noon(8))["seats"] == 9.5


# --- latest and days_until, as of a time ---------------------------------------------------


def end_of(day: int) -> datetime:
    """The last millisecond of test day ``day`` (as the dataflow judges a closed day)."""
    return MIDNIGHT + timedelta(days=day + 1, milliseconds=-1)


def test_latest_is_read_as_of_the_as_of_time() -> None:
    account = Account.with_features(grace_days=7, **TRACKERS)
    for day, seats in [(1, 10), (3, 12), (5, 7)]:
        account.feed(noon(day), event_type="app.seat_added", attributes={"seats": seats})
    assert [account.read(end_of(day))["seats"] for day in range(7)] == [
        -1.0, 10.0, 10.0, 12.0, 12.0, 7.0, 7.0
    ]
    assert account.read(noon(5) - timedelta(milliseconds=1))["seats"] == 12.0
    assert account.read(noon(5))["seats"] == 7.0


def test_days_until_is_read_as_of_the_as_of_time() -> None:
    account = Account.with_features(grace_days=7, **TRACKERS)
    account.feed(noon(1), event_type="subscription.renewed",
                 attributes={"renews_at": "2026-11-01T00:00:00Z"})
    account.feed(noon(2), event_type="subscription.renewed",
                 attributes={"renews_at": "2027-11-01T00:00:00Z"})
    assert account.read(MIDNIGHT)["renewal"] == 365.0  # nothing known yet: the default
    assert account.read(end_of(1))["renewal"] == pytest.approx(29.0, abs=1e-6)
    assert account.read(end_of(2))["renewal"] == pytest.approx(393.0, abs=1e-6)


def test_a_late_value_counts_for_its_own_days_only() -> None:
    account = Account.with_features(grace_days=7, **TRACKERS)
    account.feed(noon(1), event_type="app.seat_added", attributes={"seats": 10})
    account.feed(noon(5), event_type="app.seat_added", attributes={"seats": 7})
    late = account.feed(noon(3), event_type="app.seat_removed", attributes={"seats": 12})
    older_same_day = account.feed(
        noon(5) - timedelta(hours=3), event_type="app.seat_added", attributes={"seats": 99}
    )
    assert [account.read(end_of(day))["seats"] for day in (2, 3, 4, 5)] == [10, 12, 12, 7]
    # neither changed any value as of the newest event: for the stream, nothing moved
    assert (late, older_same_day) == (False, False)


@pytest.mark.parametrize(
    ("renews_at", "expected"),
    [
        pytest.param("2026-12-31", 90.5, id="a-date-is-its-first-moment-in-utc"),
        pytest.param("2026-02-30", 365.0, id="no-such-date"),
        pytest.param("20261231", 365.0, id="basic-format-date"),
        pytest.param("2026-12-31T00:00:00", 365.0, id="time-without-offset"),
    ],
)
def test_days_until_reads_a_date_too(renews_at: str, expected: float) -> None:
    account = Account.with_features(**TRACKERS)
    account.feed(noon(0), event_type="subscription.renewed", attributes={"renews_at": renews_at})
    assert account.read(noon(0))["renewal"] == expected  # from 2026-10-01T12:00Z


@pytest.mark.parametrize("grace_days", [0, 2])
def test_the_history_of_latest_values_stays_small(grace_days: int) -> None:
    account = Account.with_features(grace_days=grace_days, **TRACKERS)
    for day in range(60):
        for hour in (1, 9, 17):
            when = MIDNIGHT + timedelta(days=day, hours=hour)
            account.feed(when, event_type="app.seat_added", attributes={"seats": day * 10 + hour})
        account.feed(noon(day - 1), event_type="app.seat_removed", attributes={"seats": -day})
        history = account.features.raw()[1][account.compiled.tracked_accumulators.index(
            next(a for a in account.compiled.tracked_accumulators if a.attribute == "seats")
        )]
        assert len(history) <= grace_days + 2
    assert account.read(noon(59) + timedelta(hours=6))["seats"] == 607.0


def reference_latest(applied: list[tuple[float, float]], as_of: float, default: float) -> float:
    """The value of the newest event at or before ``as_of`` (the later arrival on a tie)."""
    found = default
    newest = -math.inf
    for ts, value in applied:
        if ts <= as_of and ts >= newest:
            newest, found = ts, value
    return found


@pytest.mark.parametrize("grace_days", [0, 2])
@pytest.mark.parametrize("seed", range(6))
def test_latest_and_days_until_equal_a_fold_of_every_event_up_to_the_as_of_time(
    grace_days: int, seed: int
) -> None:
    """Events in and out of order (some older than the days still judged), restarts
    from a snapshot or from the raw state now and then: as of the end of each day the
    dataflow may still judge, and as of any time after the newest event, the values are
    those of the newest event up to that time among all the events folded in."""
    import random

    rng = random.Random(seed)
    account = Account.with_features(grace_days=grace_days, **TRACKERS)
    seats: list[tuple[float, float]] = []
    renewals: list[tuple[float, float]] = []
    newest = noon(0)
    for step in range(300):
        if rng.random() < 0.3:
            newest += timedelta(hours=rng.choice([1, 6, 20, 30, 80]))
        when = newest - timedelta(hours=rng.choice([0, 0, 0, 1, 11, 25, 49, 200]))
        if rng.random() < 0.5:
            value = rng.choice([rng.randrange(50), True, "12", None])
            account.feed(when, event_type="app.seat_added", attributes={"seats": value})
            if isinstance(value, int) and not isinstance(value, bool):
                seats.append((when.timestamp(), float(value)))
        else:
            renews = when + timedelta(days=rng.randrange(400))
            text = rng.choice([renews.isoformat(), renews.date().isoformat(), "soon"])
            account.feed(when, event_type="subscription.renewed", attributes={"renews_at": text})
            if text != "soon":
                first_moment = datetime.combine(renews.date(), datetime.min.time(), UTC)
                renewals.append(
                    (when.timestamp(), (renews if "T" in text else first_moment).timestamp())
                )
        if rng.random() < 0.05:
            state = pickle.loads(pickle.dumps(account.features.snapshot()))
            account.features = AccountFeatures(account.compiled, state)
        elif rng.random() < 0.05:
            raw = pickle.loads(pickle.dumps(account.features.raw()))
            account.features = AccountFeatures(account.compiled)
            account.features.restore_raw(raw)
        newest_ts = account.features.newest
        newest_day = day_of(newest_ts)
        as_ofs = [(day + 1) * DAY - 0.001 for day in range(newest_day - grace_days, newest_day)]
        as_ofs += [newest_ts, newest_ts + 3 * DAY]
        for as_of in as_ofs:
            values = dict(zip(account.feature_set.names, account.features.values(as_of),
                              strict=True))
            assert values["seats"] == reference_latest(seats, as_of, -1.0), f"step {step}"
            moment = reference_latest(renewals, as_of, math.nan)
            expected = 365.0 if math.isnan(moment) else (moment - as_of) / DAY
            assert values["renewal"] == expected, f"step {step}"


def test_a_snapshot_of_the_newest_value_only_is_read_as_a_history() -> None:
    """Snapshots taken before the history was kept hold one ``(time, value)`` pair."""
    account = Account.with_features(**TRACKERS)
    account.feed(noon(1), event_type="app.seat_added", attributes={"seats": 10})
    account.feed(noon(2), event_type="subscription.renewed",
                 attributes={"renews_at": "2027-01-01T00:00:00Z"})
    buckets, tracked, newest = account.features.raw()
    old_form = [t[-1] if isinstance(t, tuple) else t for t in tracked]
    for restored in (AccountFeatures(account.compiled), None):
        if restored is None:
            snapshot = account.features.snapshot()
            restored = AccountFeatures(
                account.compiled,
                type(snapshot)(snapshot.buckets, tuple(old_form), snapshot.newest),
            )
        else:
            restored.restore_raw(pickle.loads(pickle.dumps((buckets, old_form, newest))))
        assert restored.values(noon(3).timestamp()) == account.features.values(
            noon(3).timestamp()
        )
        event = account.event(noon(3), event_type="app.seat_removed", attributes={"seats": 8})
        assert restored.apply(event, noon(3).timestamp()) is True
        assert restored.values(noon(3).timestamp())[3] == 8.0


# --- eviction and ordering ----------------------------------------------------------------


def test_buckets_are_evicted_beyond_retention() -> None:
    account = Account(load_definitions())
    retention = account.compiled.retention_days
    assert retention == 35
    for day in range(100):
        account.feed(noon(day))
        assert len(account.features.bucket_days) <= retention
    newest_day = day_of(noon(99).timestamp())
    assert account.features.bucket_days[0] == newest_day - retention + 1
    assert account.features.bucket_days == list(range(newest_day - retention + 1, newest_day + 1))
    # what is kept is all the 35-day baseline needs
    assert account.read(noon(99))["logins_baseline_28d"] == 28.0


def test_an_older_event_updates_its_own_day() -> None:
    account = Account.with_features(
        logins_1d={"events": ["app.login"], "aggregation": "count", "window": "1d"},
        logins_7d={"events": ["app.login"], "aggregation": "count", "window": "7d"},
    )
    account.feed(noon(10))
    account.feed(noon(7))
    account.feed(noon(7))
    assert account.features.newest == noon(10).timestamp()
    assert account.features.bucket_days == [
        day_of(noon(7).timestamp()),
        day_of(noon(10).timestamp()),
    ]
    assert account.read(noon(10))["logins_1d"] == 1.0
    assert account.read(noon(10))["logins_7d"] == 3.0
    assert account.read(noon(7))["logins_1d"] == 2.0


def test_an_event_older_than_every_window_keeps_no_bucket() -> None:
    account = Account.with_features(
        logins_7d={"events": ["app.login"], "aggregation": "count", "window": "7d"},
        tenure={"events": ["*"], "aggregation": "days_since_first"},
    )
    account.feed(noon(20))
    account.feed(noon(10))  # 10 days back: outside the 7-day retention
    assert account.features.bucket_days == [day_of(noon(20).timestamp())]
    assert account.read(noon(20))["tenure"] == 10.0  # trackers still see it


def test_shared_readings_share_one_accumulator() -> None:
    compiled = CompiledFeatures(load_definitions())
    # logins, active users, features used, key features, tickets, payment failures
    assert len(compiled.bucket_accumulators) == 6
    # days since last, days until renewal, tenure, seats
    assert len(compiled.tracked_accumulators) == 4


# --- apply's answer -----------------------------------------------------------------------


def test_apply_is_false_for_an_event_no_feature_reads() -> None:
    account = Account.with_features(logins_7d=LOGINS_7D)
    assert account.feed(noon(0), event_type="crm.note_added") is False
    # It feeds no feature, but it does advance the account's time (its watermark).
    assert account.features.newest == noon(0).timestamp()
    assert account.features.bucket_days == []
    assert account.feed(noon(0)) is True


def test_apply_is_false_when_nothing_moved() -> None:
    account = Account.with_features(
        users={"events": ["app.login"], "aggregation": "distinct_users", "window": "7d"}
    )
    assert account.feed(noon(0), user_id="u-1") is True
    assert account.feed(noon(0), user_id="u-1") is False


# --- snapshots ----------------------------------------------------------------------------


def busy_account() -> Account:
    """The default definitions fed a little of everything over 40 days."""
    account = Account(load_definitions())
    for day in range(40):
        account.feed(noon(day), user_id=f"u-{day % 3}")
        account.feed(
            noon(day), event_type="app.feature_used",
            attributes={"feature": ["reports", "dashboards", "exports"][day % 3]},
        )
    account.feed(noon(20), event_type="app.seat_added", attributes={"seats": 12})
    account.feed(noon(21), event_type="support.ticket_opened")
    account.feed(
        noon(22), event_type="subscription.renewed",
        attributes={"renews_at": "2027-10-01T00:00:00Z"},
    )
    return account


def test_snapshot_round_trips_through_pickle() -> None:
    account = busy_account()
    restored = AccountFeatures(
        account.compiled, pickle.loads(pickle.dumps(account.features.snapshot()))
    )
    as_of = noon(39).timestamp()
    assert restored.values(as_of) == account.features.values(as_of)
    assert restored.bucket_days == account.features.bucket_days
    assert restored.newest == account.features.newest
    # and both go on alike
    event = account.event(noon(40), user_id="u-9")
    assert restored.apply(event, noon(40).timestamp()) is True
    account.features.apply(event, noon(40).timestamp())
    assert restored.values(noon(40).timestamp()) == account.features.values(noon(40).timestamp())


def test_snapshot_is_not_mutated_by_later_applies() -> None:
    account = busy_account()
    snapshot = account.features.snapshot()
    frozen = pickle.loads(pickle.dumps(snapshot))
    before = account.features.values(noon(39).timestamp())
    restored = AccountFeatures(account.compiled, snapshot)
    for features in (account.features, restored):
        for day in range(39, 80):
            event = account.event(noon(day), user_id=f"new-{day}")
            features.apply(event, noon(day).timestamp())
            event = account.event(
                noon(day), event_type="app.feature_used", attributes={"feature": f"f{day}"}
            )
            features.apply(event, noon(day).timestamp())
    assert snapshot == frozen
    assert AccountFeatures(account.compiled, snapshot).values(noon(39).timestamp()) == before


# --- a window reads only its own days -----------------------------------------------------

AMOUNT_BASELINE = {
    "events": ["billing.paid"], "aggregation": "sum", "attribute": "amount",
    "window": "28d", "offset": "7d",
}


@pytest.mark.parametrize(
    "recent_amounts",
    [
        pytest.param([1e8], id="1e8-this-week"),
        pytest.param([1e17], id="1e17-this-week"),
        pytest.param([1e308, 1e308], id="overflow-this-week"),
    ],
)
def test_an_offset_sum_does_not_depend_on_newer_days(recent_amounts: list[float]) -> None:
    account = Account.with_features(baseline_amount=AMOUNT_BASELINE)
    for day in range(28):
        account.feed(noon(day), event_type="billing.paid", attributes={"amount": 0.1})
    for amount in recent_amounts:  # day 34 is outside the baseline as of day 34
        account.feed(noon(34), event_type="billing.paid", attributes={"amount": amount})
    assert account.read(noon(34))["baseline_amount"] == pytest.approx(2.8, rel=1e-12)


def test_an_offset_sum_without_newer_days_is_exact() -> None:
    account = Account.with_features(baseline_amount=AMOUNT_BASELINE)
    for day in range(28):
        account.feed(noon(day), event_type="billing.paid", attributes={"amount": 0.1})
    account.feed(noon(34), event_type="billing.paid", attributes={"amount": 1})
    assert account.read(noon(34))["baseline_amount"] == pytest.approx(2.8, rel=1e-12)


# --- the past days kept aside -------------------------------------------------------------

_KEPT_ASIDE = {
    "logins_7d": LOGINS_7D,
    "logins_baseline": LOGINS_BASELINE,
    "users_7d": {"events": ["app.login"], "aggregation": "distinct_users", "window": "7d"},
    "users_today": {"events": ["app.login"], "aggregation": "distinct_users", "window": "1d"},
    "plans_14d": {"events": ["*"], "aggregation": "distinct_values", "attribute": "plan",
                  "window": "14d", "offset": "2d"},
    "seats_7d": {"events": ["app.login"], "aggregation": "sum", "attribute": "seats",
                 "window": "7d"},
    "seats_latest": {"events": ["app.login"], "aggregation": "latest", "attribute": "seats"},
    "renewal": {"events": ["billing.paid"], "aggregation": "days_until", "attribute": "renews",
                "default": 365},
}


@pytest.mark.parametrize("seed", range(8))
def test_values_read_with_kept_past_days_equal_values_worked_out_afresh(seed: int) -> None:
    """Days move on, late events land in earlier days, buckets are evicted: after every
    step the values equal those of a copy that has nothing kept aside."""
    import random

    rng = random.Random(seed)
    account = Account.with_features(**_KEPT_ASIDE)
    newest = noon(0)
    for step in range(400):
        if rng.random() < 0.15:
            newest += timedelta(hours=rng.choice([6, 20, 30, 80]))
        when = newest - timedelta(hours=rng.choice([0, 0, 0, 1, 13, 30, 200]))
        account.feed(when, event_type=rng.choice(["app.login", "app.login", "billing.paid"]),
                     user_id=f"u{rng.randrange(6)}",
                     attributes={"plan": rng.choice(["a", "b", "c"]), "seats": rng.random() * 3,
                                 "renews": f"2027-0{rng.randrange(1, 10)}-1{rng.randrange(10)}"})
        as_of = max(account.features.newest, when.timestamp())
        # Also as of other days, as day closes and the rescoring of silent accounts read
        # them: the kept values move back and forth, or are worked out afresh.
        earlier, later = rng.choice([1, 2, 8]) * DAY, rng.choice([1, 3, 7]) * DAY
        for read_at in (as_of, as_of - earlier, as_of + later, as_of):
            kept = account.features.values(read_at)
            fresh = AccountFeatures(account.compiled, account.features.snapshot()).values(read_at)
            assert kept == fresh, f"step {step}"
