"""AccountProcessor: dedupe, lateness, features, day-close usage signals, batching, recovery."""

from __future__ import annotations

import dataclasses
import pickle
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from accounts.config import AccountConfig
from accounts.processor import AccountProcessor, Output
from churnwatch.settings import Settings
from churnwatch.wiring import account_config
from featurestore.definitions import load_definitions
from schemas.alert import Alert, AlertTier
from schemas.clock import day_of
from schemas.dead_letter import LateEvent
from schemas.event import Event
from schemas.signal import SignalType, UsageSignal
from tests.builders import T0, make_event

CONFIG = account_config(Settings(), load_definitions())
LATENESS = CONFIG.allowed_lateness_seconds  # 1 h by default
# Consecutive day-close evaluations a condition must hold before it fires (1 if the
# rules have no such setting).
PERSIST: int = getattr(CONFIG.usage_rules, "persist_days", 1)

START = datetime(2026, 8, 22, tzinfo=UTC)  # day 0: 40 days before T0's day
assert START + timedelta(days=40, hours=12) == T0


def at(day: float, hour: float = 0.0) -> datetime:
    return START + timedelta(days=day, hours=hour)


def day_date(day: int) -> date:
    return (START + timedelta(days=day)).date()


def event(kind: str, day: float, hour: float, *, user: str = "u1", event_id: str | None = None,
          **fields: Any) -> Event:
    when = at(day, hour)
    return make_event(
        event_id=event_id or f"{kind}-{when:%Y%m%dT%H%M%S}-{user}",
        event_type=kind,
        user_id=user,
        event_time=when,
        **fields,
    )


def login(day: float, hour: float, user: str = "u1", **fields: Any) -> Event:
    return event("app.login", day, hour, user=user, **fields)


def dashboards(day: float, hour: float = 11.0) -> Event:
    return event("app.feature_used", day, hour, attributes={"feature": "dashboards"})


def usage_day(day: int, logins: int) -> list[Event]:
    """``logins`` logins (by u1, u2, u3 at 09:00, 13:00, 17:00) and a dashboards use at 11:00.

    The dashboards use is there on every day, so each day closes (an account's
    watermark moves only with its own events) even when nobody logs in.
    """
    events = [login(day, hour, f"u{n + 1}") for n, hour in enumerate((9, 13, 17)[:logins])]
    events.append(dashboards(day))
    return sorted(events, key=lambda e: e.event_time)


# Steady use (3 logins a day) for 35 days, no logins for 10, steady for 14, none for 13.
# Weekly logins vs a weekly baseline of 84 / 4 = 21: 9 on day 38 (> 0.35 * 21), 6 on
# day 39 (fires); back to 21 (recovered) from day 51; 3 on day 64 (fires again).
DROP_PLAN = [3] * 35 + [0] * 10 + [3] * 14 + [0] * 13
FIRST_DROP_DAY, SECOND_DROP_DAY = 39, 64


def history(plan: Sequence[int] = DROP_PLAN) -> list[list[Event]]:
    return [usage_day(day, logins) for day, logins in enumerate(plan)]


def flat(days: Iterable[list[Event]]) -> list[Event]:
    return [e for day in days for e in day]


def of_type(outputs: Iterable[Output], kind: type) -> list[Any]:
    return [o for o in outputs if isinstance(o, kind)]


def run(events: Sequence[Event], sizes: Iterable[int]) -> tuple[AccountProcessor, list[Output]]:
    processor = AccountProcessor(CONFIG)
    outputs: list[Output] = []
    start = 0
    for size in sizes:
        if start >= len(events):
            break
        outputs += processor.process(events[start : start + size]).outputs
        start += size
    assert start >= len(events)
    return processor, outputs


# --- dedupe ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "original",
    [
        pytest.param(login(0, 12), id="login"),
        pytest.param(event("billing.payment_failed", 0, 12), id="payment-failed"),
        pytest.param(event("subscription.cancelled", 0, 12), id="cancellation"),
    ],
)
def test_duplicate_event_id_is_counted_and_produces_nothing(original: Event) -> None:
    processor = AccountProcessor(CONFIG)
    processor.process([original])
    before = processor.feature_values()
    copy = make_event(
        event_id=original.event_id, event_type=original.event_type, event_time=at(0, 12.5)
    )
    result = processor.process([copy])
    assert (result.duplicates, result.late, result.outputs, result.events) == (1, 0, [], [])
    assert result.features_moved is False
    assert processor.feature_values() == before


def test_duplicates_within_one_batch_are_dropped() -> None:
    result = AccountProcessor(CONFIG).process([login(0, 12), login(0, 12), login(0, 12)])
    assert (result.duplicates, len(result.events)) == (2, 1)


# --- lateness --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "minutes_older", "is_late"),
    [
        pytest.param("app.login", 30, False, id="login-30min-older-updates-features"),
        pytest.param("app.login", 60, False, id="login-exactly-at-watermark-updates-features"),
        pytest.param("app.login", 61, True, id="login-61min-older-is-late"),
        pytest.param("app.login", 120, True, id="login-2h-older-is-late"),
        pytest.param("billing.payment_failed", 30, False, id="payment-failed-in-time"),
        pytest.param("billing.payment_failed", 120, True, id="payment-failed-2h-older-is-late"),
    ],
)
def test_lateness(kind: str, minutes_older: int, is_late: bool) -> None:
    processor = AccountProcessor(CONFIG)
    processor.process([login(0, 12)])  # newest: 12:00, so the watermark is 11:00
    before = processor.feature_values()
    older = event(kind, 0, 12 - minutes_older / 60, user="u2")
    result = processor.process([older])

    late = of_type(result.outputs, LateEvent)
    assert result.late == int(is_late)
    assert [e.event.event_id for e in late] == ([older.event_id] if is_late else [])
    if is_late:
        assert late[0].watermark == at(0, 12).timestamp() - LATENESS
        assert processor.feature_values() == before
        assert result.features_moved is False
    else:
        assert processor.feature_values() != before
        assert result.features_moved is True
    alerts = of_type(result.outputs, Alert)
    if kind == "billing.payment_failed":  # decisive events alert even when late
        assert [(a.tier, a.rule, a.trigger_event_id) for a in alerts] == [
            (AlertTier.EVENT_RULE, "payment_failed", older.event_id)
        ]
    else:
        assert alerts == []


def test_in_time_older_event_counts_in_its_own_features() -> None:
    processor = AccountProcessor(CONFIG)
    processor.process([login(0, 12)])
    processor.process([login(0, 11.5, user="u2"), login(0, 10, user="u3")])  # 30 min, 2 h
    values = processor.feature_values()
    assert (values["logins_7d"], values["active_users_7d"]) == (2.0, 2.0)


# --- features --------------------------------------------------------------------


def test_features_move_per_batch_and_update_carries_the_newest_event_time() -> None:
    processor = AccountProcessor(CONFIG)
    assert processor.feature_update() is None
    first = processor.process([login(0, 10), login(0, 12, "u2"), login(0, 11.5, "u3")])
    assert first.features_moved is True
    update = processor.feature_update()
    assert update is not None
    assert (update.tenant_id, update.account_id) == ("acme", "acct-1")
    assert update.as_of == at(0, 12).timestamp()  # the newest, not the last, event
    values = dict(zip(CONFIG.features.feature_set.names, update.values, strict=True))
    assert values == processor.feature_values()
    assert (values["logins_7d"], values["active_users_7d"]) == (3.0, 3.0)

    duplicates = processor.process([login(0, 10), login(0, 12, "u2")])
    assert (duplicates.features_moved, duplicates.outputs, duplicates.duplicates) == (
        False,
        [],
        2,
    )
    assert processor.feature_update() == update


def test_feature_update_is_as_of_the_newest_event_of_any_kind() -> None:
    processor = AccountProcessor(CONFIG)
    processor.process([login(0, 12), event("billing.payment_succeeded", 2, 12)])
    update = processor.feature_update()
    assert update is not None and update.as_of == at(2, 12).timestamp()
    assert processor.feature_values()["days_since_last_activity"] == 2.0


# --- usage detectors at day close ------------------------------------------------


def test_login_drop_fires_once_per_episode_when_its_day_closes() -> None:
    processor = AccountProcessor(CONFIG)
    emitted: list[tuple[int, Output]] = []
    for day, events in enumerate(history()):
        emitted += [(day, o) for o in processor.process(events).outputs]

    signals = [(day, o) for day, o in emitted if isinstance(o, UsageSignal)]
    alerts = [(day, o) for day, o in emitted if isinstance(o, Alert)]
    expected_days = [FIRST_DROP_DAY + PERSIST - 1, SECOND_DROP_DAY + PERSIST - 1]
    assert [s.signal_type for _, s in signals] == [SignalType.LOGIN_DROP] * 2
    assert [s.signal_date for _, s in signals] == [day_date(d) for d in expected_days]
    # each is emitted by the first event of the next day, whose watermark closes it
    assert [day for day, _ in signals] == [d + 1 for d in expected_days]
    assert len({s.signal_id for _, s in signals}) == 2
    assert [(a.tier, a.rule, a.alert_id) for _, a in alerts] == [
        (AlertTier.USAGE_SIGNAL, "login_drop", s.to_alert().alert_id) for _, s in signals
    ]
    assert [day for day, _ in alerts] == [day for day, _ in signals]


def test_no_signal_while_usage_is_steady() -> None:
    processor = AccountProcessor(CONFIG)
    outputs = flat([processor.process(day).outputs for day in history([3] * 60)])
    assert of_type(outputs, UsageSignal) == [] and of_type(outputs, Alert) == []


def test_detectors_see_the_full_baseline_of_the_closed_day() -> None:
    processor = AccountProcessor(CONFIG)
    outputs = flat([processor.process(day).outputs for day in history()])
    first = of_type(outputs, UsageSignal)[0]
    assert first.baseline_count == 21.0  # days 5..32 (day 39 - 34 .. day 39 - 7), 3 a day


@pytest.mark.parametrize(
    "hour",
    [
        pytest.param(2, id="the-event-closes-the-day"),
        # within the lateness: folded in before a later event closes day 39
        pytest.param(0.5, id="folded-in-before-the-day-closes"),
    ],
)
def test_renewal_known_only_from_the_next_day_does_not_count_for_the_closed_day(
    hour: float,
) -> None:
    days = history(DROP_PLAN[:50])
    renewed = event(
        "subscription.renewed", 40, hour, attributes={"renews_at": "2026-10-11T00:00:00Z"}
    )
    days[40].insert(0, renewed)  # the first event of day 40
    processor = AccountProcessor(CONFIG)
    outputs = flat([processor.process(day).outputs for day in days])
    renewal = [s for s in of_type(outputs, UsageSignal)
               if s.signal_type is SignalType.RENEWAL_AT_RISK]
    # as of the end of day 39 no renewal was known (days_to_renewal = 365): day 40 is
    # the first day its condition holds
    assert [s.signal_date for s in renewal] == [day_date(40 + PERSIST - 1)]


# --- batching --------------------------------------------------------------------


def noisy_history() -> list[Event]:
    """DROP_PLAN's events plus copies, in-time stragglers, late events and tier-1 events."""
    events: list[Event] = []
    for day, day_events in enumerate(history()):
        events += day_events
        if day % 5 == 0:
            events.append(day_events[0])  # a redelivered copy
        if day % 7 == 3:  # 30 min older than the newest: in time
            events.append(login(day, day_events[-1].event_time.hour - 0.5, "u9"))
        if day % 9 == 4:  # 2 h older than the newest: late
            events.append(login(day, day_events[-1].event_time.hour - 2, "u8"))
        if day % 20 == 10:  # after a 17:00 login it is late (but alerts); after 11:00, not
            events.append(event("billing.payment_failed", day, 10.5))
    return events


def summary(processor: AccountProcessor, outputs: list[Output]) -> dict[str, Any]:
    return {
        "signals": sorted(s.signal_id for s in of_type(outputs, UsageSignal)),
        "alerts": sorted(a.alert_id for a in of_type(outputs, Alert)),
        "late": sorted(e.event.event_id for e in of_type(outputs, LateEvent)),
        "features": processor.feature_values(),
        "update": processor.feature_update(),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_outputs_do_not_depend_on_batch_boundaries(seed: int) -> None:
    events = noisy_history()
    rng = random.Random(seed)
    whole = summary(*run(events, [len(events)]))
    singles = summary(*run(events, [1] * len(events)))
    chunks = summary(*run(events, (rng.randint(1, 30) for _ in range(len(events)))))
    assert singles == whole
    assert chunks == whole
    # the history exercises every kind of output compared
    assert len(whole["signals"]) == 2
    assert len(whole["late"]) == 8 + 3  # 8 logins 2 h older, 3 payment_failed
    assert len(whole["alerts"]) == 2 + 4  # 2 usage + 4 payment_failed


# --- activity ---------------------------------------------------------------------


def test_activity_alone_produces_no_output() -> None:
    # Inactivity is tracked per input partition (detectors.inactivity), not per account.
    processor = AccountProcessor(CONFIG)
    first = processor.process([login(0, 12), dashboards(0, 14)])
    back = processor.process([login(12, 8, "u2")])  # after a 12-day silence
    assert (first.outputs, back.outputs) == ([], [])
    assert (first.features_moved, back.features_moved) == (True, True)
    assert processor.feature_values()["days_since_last_activity"] == 0.0


# --- recovery --------------------------------------------------------------------


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(20, id="steady"),
        pytest.param(FIRST_DROP_DAY + PERSIST + 1, id="inside-the-first-episode"),
        pytest.param(SECOND_DROP_DAY + 2, id="second-drop-first-firing-day-closed"),
    ],
)
def test_snapshot_round_trip_continues_identically(cut: int) -> None:
    days = history()
    processor = AccountProcessor(CONFIG)
    before = flat([processor.process(day).outputs for day in days[:cut]])

    restored = AccountProcessor(CONFIG, pickle.loads(pickle.dumps(processor.snapshot())))
    assert restored.feature_values() == processor.feature_values()
    assert restored.feature_update() == processor.feature_update()
    rest = [[days[cut - 1][-1], *days[cut]], *days[cut + 1 :]]  # starts with a copy
    original_results = [processor.process(day) for day in rest]
    restored_results = [restored.process(day) for day in rest]
    assert restored_results == original_results
    assert original_results[0].duplicates == 1
    after = flat(r.outputs for r in original_results)
    assert len(of_type(before, UsageSignal) + of_type(after, UsageSignal)) == 2
    assert restored.feature_values() == processor.feature_values()
    assert restored.feature_update() == processor.feature_update()


def test_an_account_silent_longer_than_its_idle_expiry_starts_afresh() -> None:
    """Past the expiry, an account's state is exactly a new account's: so the stream
    may drop an idle account from memory at any moment after it without changing
    an output."""
    expiring = dataclasses.replace(CONFIG, idle_expiry_seconds=40 * 86_400.0)
    keeping = dataclasses.replace(CONFIG, idle_expiry_seconds=None)
    history = [
        make_event(event_id=f"d{day}-{i}", event_type="app.login", event_time=at(day, 9 + i))
        for day in range(30)
        for i in range(5)
    ]

    def back(day: float) -> list[Event]:
        return [
            make_event(event_id=f"back-{i}", event_type="app.login", event_time=at(day, 9 + i))
            for i in range(3)
        ]

    def state(config: AccountConfig, events: list[Event]) -> bytes:
        processor = AccountProcessor(config)
        processor.process(events)
        return processor.snapshot().state

    new_account = state(expiring, back(71))
    assert state(expiring, history + back(71)) == new_account  # 42 days after day 29
    assert state(keeping, history + back(71)) != new_account  # no expiry: remembered
    assert state(expiring, history + back(68)) != state(expiring, back(68))  # 39 days: kept


SCORING = account_config(Settings(), load_definitions(), scoring=True)


def day_no(day: int) -> int:
    """The UTC day number of this file's day ``day`` (what a day close names)."""
    return day_of(at(day).timestamp())


def test_a_silent_account_is_rescored_as_of_the_end_of_a_day_it_was_silent_through() -> None:
    processor = AccountProcessor(SCORING)
    processor.process(usage_day(0, 3) + usage_day(1, 3))
    assert processor.rescore(day_no(1)) is None  # active that day: its events scored it
    request = processor.rescore(day_no(3))
    assert request is not None
    assert (request.tenant_id, request.account_id) == ("acme", "acct-1")
    assert request.as_of == at(4).timestamp() - 0.001
    assert request.trigger_event_id == f"day-close:{day_date(3).isoformat()}"
    assert request.alert is None and request.rule_risk == 0.0
    assert request.values == processor.features.values(request.as_of)
    # nothing the snapshot keeps moves: the next event is scored as it would have been
    before = processor.snapshot()
    processor.rescore(day_no(4))
    assert processor.snapshot() == before


def test_rescoring_stops_after_the_silence_limit_and_for_a_cancelled_account() -> None:
    processor = AccountProcessor(SCORING)
    processor.process(usage_day(0, 3))  # last event at 17:00 on day 0
    assert processor.rescore(day_no(29)) is not None  # its end: 29.3 days of silence
    assert processor.rescore(day_no(30)) is None  # 30.3 days: past the 30 days of the default
    assert AccountProcessor(SCORING).rescore(day_no(3)) is None  # no history, nothing to score
    assert AccountProcessor(CONFIG).rescore(day_no(3)) is None  # no scoring

    processor.process([event("subscription.cancelled", 1, 9, attributes={"reason_code": "x"})])
    assert processor.rescore(day_no(3)) is None
    restored = AccountProcessor(SCORING, processor.snapshot())
    assert restored.rescore(day_no(3)) is None  # the snapshot keeps it cancelled
    restored.process([event("subscription.reactivated", 2, 9)])
    assert restored.rescore(day_no(3)) is not None


def test_a_snapshot_of_the_previous_format_restores_as_not_cancelled() -> None:
    processor = AccountProcessor(SCORING)
    processor.process(usage_day(0, 3))
    state = pickle.loads(processor.snapshot().state)
    old = pickle.dumps((2, *state[1:8]))
    restored = AccountProcessor(SCORING, dataclasses.replace(processor.snapshot(), state=old))
    assert restored.rescore(day_no(3)) is not None
    assert restored.feature_values() == processor.feature_values()
