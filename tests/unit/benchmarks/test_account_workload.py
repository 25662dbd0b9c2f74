"""The state benchmark's workload: valid events, every account, in order, none in the future."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from benchmarks.harness.account_workload import (
    PROBE_EVENT_TYPE,
    AccountWorkload,
    account_id,
    account_width,
    format_event_time,
    probe_document,
)
from schemas.event import Event, EventLimits, parse_event

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def _parse(value: bytes) -> Event:
    event = parse_event(value, NOW, EventLimits())
    assert isinstance(event, Event), event
    return event


def test_account_ids_have_one_width_per_run() -> None:
    assert account_width(20_000) == 5
    assert account_width(1_000_000) == 6
    assert account_width(1_000_001) == 7
    assert account_id(42, 7) == "acct-0000042"


def test_event_times_are_rfc3339_utc_with_milliseconds() -> None:
    assert format_event_time(0) == "1970-01-01T00:00:00.000Z"
    assert format_event_time(1_796_550_000_123) == "2026-12-06T09:40:00.123Z"


def test_every_message_is_a_valid_event_keyed_by_its_account() -> None:
    workload = AccountWorkload.ending_before(NOW, accounts=50, events_per_account=3)
    messages = list(workload.messages_in_order())
    assert len(messages) == workload.messages == 150
    for key, value in messages:
        event = _parse(value)
        assert key == event.account_id.encode()
    assert len({_parse(v).event_id for _, v in messages}) == 150


def test_the_stream_is_pass_major_and_every_account_gets_its_events() -> None:
    workload = AccountWorkload.ending_before(NOW, accounts=4, events_per_account=2)
    accounts = [_parse(v).account_id for _, v in workload.messages_in_order()]
    assert accounts == ["acct-00000", "acct-00001", "acct-00002", "acct-00003"] * 2


def test_event_times_rise_through_the_window_and_stay_before_the_clock() -> None:
    workload = AccountWorkload.ending_before(NOW, accounts=100, events_per_account=2,
                                             window=timedelta(hours=20),
                                             margin=timedelta(minutes=5))
    times = [_parse(v).event_time for _, v in workload.messages_in_order()]
    assert times == sorted(times)
    assert times[0] == NOW - timedelta(minutes=5) - timedelta(hours=20)
    assert times[-1] < NOW - timedelta(minutes=5)


def test_the_probe_is_a_decisive_event_for_an_existing_account() -> None:
    workload = AccountWorkload.ending_before(NOW, accounts=10, events_per_account=1)
    first = _parse(next(iter(workload.messages_in_order()))[1])
    probe = _parse(orjson.dumps(probe_document(0, 10, "probe-1", NOW)))
    assert (probe.tenant_id, probe.account_id) == (first.tenant_id, first.account_id)
    assert probe.event_type == PROBE_EVENT_TYPE
    assert probe.event_time == NOW
    assert probe.event_time > first.event_time
