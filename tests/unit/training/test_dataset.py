"""training.dataset: observation points, labels, censoring, and no leakage from the future."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from accounts.processor import AccountProcessor
from churnwatch.settings import Settings
from churnwatch.simulator import simulate
from churnwatch.wiring import account_config
from featurestore.definitions import load_definitions
from schemas.clock import DAY
from schemas.event import Event, EventLimits, format_time, parse_event
from tests.builders import event_bytes
from training.dataset import Dataset, build_dataset, label_observations, observe_history

FEATURES = load_definitions()
CONFIG = account_config(Settings(), FEATURES)
LIMITS = EventLimits()
NOW = datetime(2027, 1, 1, tzinfo=UTC)
START = datetime(2026, 10, 1, tzinfo=UTC)  # day 0 of the hand-built histories


def at(day: int, hour: float = 12.0) -> datetime:
    return START + timedelta(days=day, hours=hour)


def day_end(day: int) -> float:
    """``observed_at`` of a row for test day ``day``: the midnight after it."""
    return (START + timedelta(days=day + 1)).timestamp()


class History:
    """A hand-built JSONL history: events appended in file order."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self._serial = 0

    def add(self, account: str, when: datetime, event_type: str = "app.login",
            **overrides: Any) -> History:
        self._serial += 1
        self.messages.append(
            event_bytes(
                event_id=f"{account}-{self._serial}",
                account_id=account,
                event_type=event_type,
                event_time=format_time(when),
                **overrides,
            )
        )
        return self

    def daily_logins(self, account: str, first: int, last: int) -> History:
        for day in range(first, last + 1):
            self.add(account, at(day))
        return self


def rows_of(dataset: Dataset, account: str) -> list[tuple[int, int]]:
    """(test day, label) of each row of ``account``."""
    key = f"acme:{account}"
    return [
        (round((t - START.timestamp()) / DAY) - 1, int(label))
        for k, t, label in zip(dataset.accounts, dataset.observed_at, dataset.y, strict=True)
        if k == key
    ]


def feature(dataset: Dataset, account: str, day: int, name: str) -> float:
    index = dataset.feature_names.index(name)
    for k, t, row in zip(dataset.accounts, dataset.observed_at, dataset.X, strict=True):
        if k == f"acme:{account}" and t == day_end(day):
            return float(row[index])
    raise KeyError((account, day))


# --- labels and censoring ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> Dataset:
    """Horizon 5 days, 3 days of history before the first row; the history ends
    at the newest event, day 39 noon, so day 38 is the last whole day.

    - churned: logs in days 0-9, cancels day 9 at 15:00;
    - steady: logs in days 0-39;
    - late_churn: logs in days 25-37, cancels day 38 at 10:00, near the end.
    """
    history = (
        History()
        .daily_logins("churned", 0, 9)
        .add("churned", at(9, 15), "subscription.cancelled", attributes={"reason_code": "x"})
        .daily_logins("steady", 0, 39)
        .daily_logins("late_churn", 25, 37)
        .add("late_churn", at(38, 10), "subscription.cancelled")
    )
    return build_dataset(
        history.messages, CONFIG, LIMITS, horizon_days=5, min_history_days=3, now=NOW
    )


def test_rows_start_after_min_history_and_label_churn_within_the_horizon(small: Dataset) -> None:
    # Cancelled day 9 15:00: rows end with day 8 (day 9's row, at midnight after
    # it, comes after the churn); within 5 days of it from day 4 on.
    assert rows_of(small, "churned") == [(2, 0), (3, 0), (4, 1), (5, 1), (6, 1), (7, 1), (8, 1)]


def test_negatives_need_the_whole_horizon_inside_the_history(small: Dataset) -> None:
    # The history ends day 39 noon: a 0 at day d needs d + 1 + 5 days <= 39.5.
    assert rows_of(small, "steady") == [(day, 0) for day in range(2, 34)]


def test_positives_are_kept_even_when_their_horizon_runs_past_the_end(small: Dataset) -> None:
    assert rows_of(small, "late_churn") == [(d, 0) for d in range(27, 33)] + [
        (d, 1) for d in range(33, 38)
    ]


def test_counts_say_what_was_dropped_and_why(small: Dataset) -> None:
    # churned: days 9-38 after its churn; late_churn: day 38.
    assert small.counts["dropped_after_cancellation"] == 30 + 1
    # steady: days 34-38.
    assert small.counts["dropped_censored"] == 5
    assert small.counts["rows"] == small.rows == 7 + 32 + 11
    assert small.positives == 5 + 5
    assert small.horizon_days == 5
    assert small.feature_names == FEATURES.names
    assert small.feature_version == FEATURES.version
    assert small.X.dtype == np.float32 and small.y.dtype == np.int8
    assert small.X.shape == (small.rows, len(FEATURES.names))


def test_a_row_is_as_of_the_end_of_its_day(small: Dataset) -> None:
    # Day 4 counts the logins of days 0-4, not day 5's.
    assert feature(small, "steady", 4, "logins_7d") == 5.0
    assert feature(small, "steady", 20, "logins_7d") == 7.0
    # Last login at noon of the day: half a day before the row's moment.
    assert feature(small, "steady", 20, "days_since_last_activity") == pytest.approx(0.5, abs=1e-4)


def test_silent_days_are_observed_too() -> None:
    history = History().daily_logins("quiet", 0, 5).daily_logins("other", 0, 30)
    data = build_dataset(history.messages, CONFIG, LIMITS, horizon_days=3, now=NOW)
    # "quiet" is observed on every day to 26 (the last with its horizon inside the history).
    assert [day for day, _ in rows_of(data, "quiet")] == list(range(6, 27))
    assert feature(data, "quiet", 15, "days_since_last_activity") == pytest.approx(10.5, abs=1e-4)
    assert feature(data, "quiet", 15, "logins_7d") == 0.0


def test_every_days_thins_the_rows() -> None:
    history = History().daily_logins("steady", 0, 39)
    data = build_dataset(history.messages, CONFIG, LIMITS, horizon_days=5, every_days=3,
                         min_history_days=3, now=NOW)
    assert [day for day, _ in rows_of(data, "steady")] == list(range(2, 34, 3))


def test_rejected_and_duplicate_messages_are_counted_not_observed() -> None:
    history = History().daily_logins("steady", 0, 20)
    history.messages.insert(3, history.messages[2])  # a producer retry
    history.messages.insert(5, b"{not json")
    data = build_dataset(history.messages, CONFIG, LIMITS, horizon_days=5, now=NOW)
    assert data.counts["duplicates"] == 1
    assert data.counts["rejected:not_json"] == 1
    assert feature(data, "steady", 10, "logins_7d") == 7.0


def test_window_spans_the_history_and_the_observations(small: Dataset) -> None:
    window = small.window
    assert window.history_start == at(0)
    assert window.history_end == at(39)
    assert window.first_observation == datetime.fromtimestamp(day_end(2), UTC)
    assert window.last_observation == datetime.fromtimestamp(day_end(37), UTC)


# --- no leakage -------------------------------------------------------------------------

D = 20  # the observed day of the leakage tests


def leak_prone_history() -> History:
    """Day D closes with events that arrive just after midnight (a seat change and
    activity, which move tracked features), and a late event of day D after them."""
    history = History()
    for day in range(0, D + 1):
        history.add("acct", at(day, 9))
        history.add("acct", at(day, 10), "app.feature_used", attributes={"feature": "reports"})
    history.add("acct", at(D, 16), "app.seat_added", attributes={"seats": 5})
    # Just after midnight: within the allowed lateness (1 h) of day D.
    history.add("acct", at(D + 1, 0.2), "app.seat_removed", attributes={"seats": 4})
    history.add("acct", at(D + 1, 0.25), "app.feature_used", attributes={"feature": "search"})
    # Late for day D, but within the lateness: it belongs in day D's row.
    history.add("acct", at(D, 23.9), "support.ticket_opened")
    history.add("acct", at(D + 1, 0.3), "billing.payment_failed")
    for day in range(D + 1, D + 12):
        history.add("acct", at(day, 9))
    history.add("acct", at(D + 8), "subscription.cancelled")
    return history


def truncated(messages: Iterable[bytes], before: datetime) -> Iterator[bytes]:
    """The history as it stood at ``before``: events from then on left out."""
    for raw in messages:
        try:
            moment = datetime.fromisoformat(orjson.loads(raw)["event_time"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            yield raw  # malformed: rejected either way
            continue
        if moment.tzinfo is None or moment < before:  # no offset: rejected either way
            yield raw


def test_a_day_row_is_the_same_whether_or_not_later_events_exist() -> None:
    messages = leak_prone_history().messages
    end = START + timedelta(days=D + 1)
    full = observe_history(messages, CONFIG, LIMITS, now=NOW)
    cut = observe_history(truncated(messages, end), CONFIG, LIMITS, now=NOW, until=end)
    full_row = full.row("acme:acct", day_end(D))
    cut_row = cut.row("acme:acct", day_end(D))
    assert full_row is not None and cut_row is not None
    np.testing.assert_array_equal(full_row, cut_row)
    names = FEATURES.names
    # The row saw the late ticket of day D, and none of what came after midnight.
    assert cut_row[names.index("support_tickets_28d")] == 1.0
    assert cut_row[names.index("payment_failures_28d")] == 0.0
    assert cut_row[names.index("seats")] == 5.0
    assert cut_row[names.index("days_since_last_activity")] == pytest.approx(8 / 24, abs=1e-4)
    # ... and the label, which may look ahead, did: the churn is 8 days later.
    labelled = label_observations(full, horizon_days=10)
    assert rows_of(labelled, "acct")[-1] == (D + 7, 1)
    assert (D, 1) in rows_of(labelled, "acct")


def test_the_leakage_check_can_fail() -> None:
    """Reading day D after folding the events of D + 1 does move its features, so
    the comparison above would catch an observation taken too late."""
    processor = AccountProcessor(CONFIG)
    as_of = day_end(D) - 0.001
    before = None
    for raw in leak_prone_history().messages:
        event = parse_event(raw, NOW, LIMITS)
        assert isinstance(event, Event)
        if before is None and event.event_time >= START + timedelta(days=D + 1):
            before = processor.features.values(as_of)
        processor.process([event])
    assert before is not None
    assert processor.features.values(as_of) != before


def test_no_leakage_on_a_simulated_history() -> None:
    simulation = simulate(accounts=40, days=24, seed=3)
    messages = [m.value for m in simulation.messages]
    day = 15
    end = simulation.start + timedelta(days=day + 1)
    full = observe_history(messages, CONFIG, LIMITS, now=NOW)
    cut = observe_history(truncated(messages, end), CONFIG, LIMITS, now=NOW, until=end)
    at_day = end.timestamp()
    full_rows = {k: r for k, t, r in zip(full.accounts, full.observed_at, full.features,
                                         strict=True) if t == at_day}
    cut_rows = {k: r for k, t, r in zip(cut.accounts, cut.observed_at, cut.features,
                                        strict=True) if t == at_day}
    # Churned accounts still have a row (dropped only when labelling).
    assert len(full_rows) == len(simulation.accounts)
    assert full_rows.keys() == cut_rows.keys()
    for key, row in full_rows.items():
        np.testing.assert_array_equal(row, cut_rows[key], err_msg=key)


def test_same_history_same_dataset() -> None:
    messages = leak_prone_history().messages
    first = build_dataset(messages, CONFIG, LIMITS, now=NOW, horizon_days=10)
    second = build_dataset(messages, CONFIG, LIMITS, now=NOW, horizon_days=10)
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.y, second.y)
    assert first.accounts == second.accounts
    assert not first.X.flags.writeable


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"every_days": 0}, id="every-days-0"),
        pytest.param({"min_history_days": 0}, id="min-history-0"),
        pytest.param({"horizon_days": 0}, id="horizon-0"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_dataset([], CONFIG, LIMITS, now=NOW, **kwargs)
