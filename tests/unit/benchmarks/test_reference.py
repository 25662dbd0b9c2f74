"""The hand-written reference's pure parts: batch parsing, per-account state, its flush."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from confluent_kafka import KafkaError, Message

from benchmarks.harness.reference import (
    REFERENCE_LINE,
    ReferenceState,
    count_field,
    count_key,
    parse_batch,
    sum_worker_lines,
)
from benchmarks.harness.targets import targets
from detectors.tier1 import DEFAULT_TIER1_RULES
from schemas.event import Event, EventLimits, RejectReason
from tests.builders import T0, event_bytes, make_event

DAY0 = T0.toordinal()


def _state(**overrides: object) -> ReferenceState:
    options: dict[str, object] = {"key_prefix": "ref", "max_ids": 100}
    options.update(overrides)
    return ReferenceState(DEFAULT_TIER1_RULES, **options)  # type: ignore[arg-type]


def _event(event_id: str, account_id: str = "acct-1", event_type: str = "app.login",
           days: float = 0.0) -> Event:
    return make_event(event_id=event_id, account_id=account_id, event_type=event_type,
                      event_time=T0 + timedelta(days=days))


def test_count_key_and_field_are_the_exact_text() -> None:
    assert count_key("ref", "acme:acct-1") == "ref:{acme:acct-1}:c"
    assert count_field(date(2026, 10, 1).toordinal(), "app.login") == "2026-10-01:app.login"


def test_a_batch_is_deduped_and_counted_per_day_and_type() -> None:
    state = _state()
    alerts = state.add_batch([
        _event("e1"),
        _event("e2"),
        _event("e1"),  # a copy: dropped
        _event("e3", event_type="feature.used"),
        _event("e4", days=1),
        _event("e5", account_id="acct-2"),
    ])
    assert alerts == []
    assert (state.valid, state.duplicates, state.late) == (6, 1, 0)
    assert state.take_writes() == {
        "ref:{acme:acct-1}:c": {"2026-10-01:app.login": 2, "2026-10-01:feature.used": 1,
                                "2026-10-02:app.login": 1},
        "ref:{acme:acct-2}:c": {"2026-10-01:app.login": 1},
    }


def test_a_flush_writes_only_the_accounts_touched_since_the_last_one() -> None:
    state = _state()
    state.add_batch([_event("e1"), _event("e2", account_id="acct-2")])
    state.take_writes()
    assert state.take_writes() == {}
    state.add_batch([_event("e3", account_id="acct-2"), _event("e1")])  # e1: a copy
    # acct-1 saw only a copy; acct-2's hash carries every count it keeps, not a delta
    assert state.take_writes() == {"ref:{acme:acct-2}:c": {"2026-10-01:app.login": 2}}


def test_tier_1_events_raise_one_alert_each_and_their_copies_none() -> None:
    state = _state()
    alerts = state.add_batch([
        _event("e1", event_type="billing.payment_failed"),
        _event("e1", event_type="billing.payment_failed"),
        _event("e2", event_type="subscription.cancel_intent", account_id="acct-2"),
        _event("e3", event_type="billing.payment_succeeded"),
    ])
    assert [(a.account_id, a.rule, a.trigger_event_id) for a in alerts] == [
        ("acct-1", "payment_failed", "e1"),
        ("acct-2", "cancel_intent", "e2"),
    ]
    assert state.alerts == 2


def test_a_new_day_forgets_the_ids_and_counts_of_days_no_longer_kept() -> None:
    state = _state(keep_days=2)
    state.add_batch([_event("e1"), _event("e2", days=1)])
    state.add_batch([_event("e3", days=2)])
    assert state.take_writes() == {"ref:{acme:acct-1}:c": {"2026-10-02:app.login": 1,
                                                           "2026-10-03:app.login": 1}}
    # e1's id went with its day: the same id, dated today, is counted again
    state.add_batch([_event("e1", days=2), _event("e2", days=2)])
    assert state.duplicates == 1  # e2 is still remembered
    assert state.take_writes()["ref:{acme:acct-1}:c"]["2026-10-03:app.login"] == 2


def test_an_event_dated_before_the_kept_days_is_late_and_not_counted() -> None:
    state = _state(keep_days=2)
    state.add_batch([_event("e1", days=3)])
    state.take_writes()
    state.add_batch([_event("e2", days=2), _event("e3", days=1)])
    assert (state.valid, state.late) == (3, 1)
    assert state.take_writes() == {"ref:{acme:acct-1}:c": {"2026-10-03:app.login": 1,
                                                           "2026-10-04:app.login": 1}}


def test_an_account_keeps_at_most_max_ids_the_earliest_going_first() -> None:
    state = _state(max_ids=2)
    state.add_batch([_event("e1"), _event("e2"), _event("e3")])
    state.add_batch([_event("e3"), _event("e1")])  # e3 remembered, e1 evicted
    assert state.duplicates == 1
    assert state.take_writes()["ref:{acme:acct-1}:c"] == {"2026-10-01:app.login": 4}


def test_an_account_idle_for_idle_days_is_dropped() -> None:
    state = _state(idle_days=3)
    state.add_batch([_event("e1", account_id="quiet"), _event("e2", account_id="busy")])
    state.add_batch([_event("e3", account_id="busy", days=3)])
    assert (len(state), state.accounts_dropped) == (2, 0)  # quiet: 3 days idle, not more
    state.add_batch([_event("e4", account_id="busy", days=4)])
    assert (len(state), state.accounts_dropped) == (1, 1)


def test_parse_batch_splits_events_dead_letters_and_partition_ends() -> None:
    now = datetime(2026, 10, 2, tzinfo=UTC)
    batch = [
        Message(topic="ev", partition=0, offset=7, key=b"a1", value=event_bytes(event_id="e1")),
        Message(topic="ev", partition=1, offset=3, key=b"a2", value=b"not json"),
        Message(topic="ev", partition=1, offset=4,
                error=KafkaError(KafkaError._PARTITION_EOF)),
        Message(topic="ev", partition=0, offset=8, error=KafkaError(KafkaError._TRANSPORT)),
    ]
    pending = {0, 1}
    events, letters, read = parse_batch(batch, now, EventLimits(), pending)
    assert read == 3  # the end-of-partition marker is no message
    assert pending == {0}
    assert [(e.event_id, e.partition, e.offset) for e in events] == [("e1", 0, 7)]
    assert [(d.reason, d.partition, d.offset, d.key) for d in letters] == [
        (RejectReason.NOT_JSON, 1, 3, b"a2"),
        (RejectReason.CONSUMER_ERROR, 0, 8, None),
    ]


def test_parse_batch_uses_the_limits_it_is_given() -> None:
    now = datetime(2026, 10, 2, tzinfo=UTC)
    value = event_bytes(event_id="e1")
    batch = [Message(topic="ev", partition=0, offset=0, value=value)]
    _, letters, _ = parse_batch(batch, now, EventLimits(max_message_bytes=len(value) - 1), set())
    assert [d.reason for d in letters] == [RejectReason.TOO_LARGE]


def test_worker_lines_are_summed_over_the_joint_span() -> None:
    lines = [
        f"{REFERENCE_LINE}messages=10 valid=9 duplicates=1 late=0 dead_letters=1 alerts=2 "
        "hashes_written=5 flushes=2 redis_s=0.1 first=100.0 last=103.0 end=104.0",
        f"{REFERENCE_LINE}messages=20 valid=20 duplicates=0 late=1 dead_letters=0 alerts=1 "
        "hashes_written=7 flushes=3 redis_s=0.2 first=101.0 last=105.5 end=106.0",
        # more processes than partitions: one read nothing
        f"{REFERENCE_LINE}messages=0 valid=0 duplicates=0 late=0 dead_letters=0 alerts=0 "
        "hashes_written=0 flushes=1 redis_s=0.0 first=0.0 last=0.0 end=99.0",
    ]
    totals, span = sum_worker_lines(lines)
    redis_s = totals.pop("redis_s")
    assert totals == {"messages": 30, "valid": 29, "duplicates": 1, "late": 1,
                      "dead_letters": 1, "alerts": 3, "hashes_written": 12, "flushes": 6}
    assert redis_s == pytest.approx(0.3)
    assert span == pytest.approx(5.5)


def test_the_reference_target_is_the_full_pipelines_share_of_it() -> None:
    full, floor = {"events_per_s_sustained": 60_000.0}, {"events_per_s_sustained": 100_000.0}
    rows = targets(full, floor, None, rate=10_000,
                   reference={"events_per_s_sustained": 150_000.0})
    assert rows[-1]["target"] == "full pipeline / hand-written reference >= 50% (sustained)"
    assert rows[-1]["value"] == pytest.approx(0.4)
    assert rows[-1]["met"] is False
    rows = targets(full, floor, None, rate=10_000,
                   reference={"events_per_s_sustained": 120_000.0})
    assert rows[-1]["met"] is True
    assert len(targets(full, floor, None, rate=10_000)) == len(rows) - 1  # skipped: no row
