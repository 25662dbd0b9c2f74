"""Erasure through the stream: the control message, the partitions' memory of it, the
shards' state, the inactivity tracker, and the whole dataflow."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from prometheus_client import CollectorRegistry

from dataflows.flow import FlowConfig, FlowSinks, build_dataflow
from dataflows.metrics import PipelineMetrics
from dataflows.parse import ErasedSubjects, MessageParser, ParsingSource
from dataflows.shard import AccountShard, ShardConfig
from dataflows.state_codec import StateCodec
from detectors.inactivity import AbsenceTracking, ActivityBatch, InactivityTracker
from detectors.usage import InactivityRule
from schemas.dead_letter import DeadLetter
from schemas.erasure import (
    ErasedEvents,
    Erasure,
    id_problem,
    new_erasure,
    parse_control,
    subject_digest,
)
from schemas.event import Event, EventLimits, RejectReason
from tests.builders import T0, event_bytes, make_event
from tests.unit.dataflows.test_shard import CONFIG, Clock

NOW = T0 + timedelta(hours=12)
ERASURE = Erasure(
    "9c1c7a43-6a0e-4c43-8c1e-6b1f0c7d2a10", "acme", "acct-1", None,
    datetime(2026, 10, 1, 18, 0, tzinfo=UTC),
)


def message(value: bytes, offset: int, partition: int = 0) -> KafkaSourceMessage[None, bytes]:
    return KafkaSourceMessage(key=b"k", value=value, topic="events", partition=partition,
                              offset=offset)


def event(event_id: str, account: str = "acct-1", **overrides: Any) -> bytes:
    return event_bytes(event_id=event_id, account_id=account, **overrides)


def parser() -> MessageParser:
    return MessageParser(EventLimits(), lambda: NOW, PipelineMetrics.create(CollectorRegistry()))


# -- the request ------------------------------------------------------------------------


def test_the_control_message_round_trips_and_junk_is_not_one() -> None:
    assert parse_control(ERASURE.to_control_message()) == ERASURE
    user = new_erasure("acme", "acct-1", "u-7")
    assert parse_control(user.to_control_message()) == user
    assert parse_control(event("e1")) is None  # an event is not a control message
    for junk in (b'{"churnwatch_control": "erase"}', b'{"churnwatch_control": "drop"}',
                 b'{"churnwatch_control": "erase", "erasure_id": "not-a-uuid",'
                 b' "tenant_id": "acme", "account_id": "a", "requested_at": "2026-10-01"}',
                 b"churnwatch_control {"):
        assert parse_control(junk) is None


def test_the_digest_is_pinned_and_the_ids_are_checked_by_the_event_rules() -> None:
    # A change would make a restarted stream forget every erasure it remembers.
    assert subject_digest("acme", "acct-1") == (
        "ff2b292d801f7dd55a9de52ae5abc3799db7c5e15d6b5eb6332aa1a9b0f3f788"
    )
    assert subject_digest("acme", "acct-1", "u-7") != subject_digest("acme", "acct-1")
    assert id_problem("acme", "acct-1", "u-7") is None
    assert id_problem("acme", "acct\n1") is not None
    assert id_problem("no tenant!", "acct-1") is not None


# -- the parse step ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", list(ErasedEvents))
def test_a_partition_refuses_or_keeps_the_subjects_later_events(policy: ErasedEvents) -> None:
    erased = ErasedSubjects(policy)
    tracking = AbsenceTracking([(InactivityRule(), lambda _t: True)], 3600.0, "v1")  # all: activity
    out = parser().parse_batch(
        [message(event("before"), 0), message(ERASURE.to_control_message(), 1),
         message(event("after"), 2), message(event("other", account="acct-2"), 3)],
        erased,
        tracking,
    )
    shard_items = [item for pair in out if isinstance(pair, tuple) for item in pair[1]]
    ids = [i.event_id if isinstance(i, Event) else "ERASE" for i in shard_items]
    letters = [item for item in out if isinstance(item, DeadLetter)]
    if policy is ErasedEvents.REFUSE:
        assert sorted(ids) == ["ERASE", "before", "other"]
        [letter] = letters
        assert letter.reason is RejectReason.ERASED_SUBJECT
        assert (letter.key, letter.value, letter.offset) == (None, None, 2)  # no trace kept
        assert b"acct-1" not in letter.to_json()
    else:
        assert sorted(ids) == ["ERASE", "after", "before", "other"]
        assert not letters
    # "before" precedes the erasure in its shard's list: it goes with the account
    assert ids.index("before") < ids.index("ERASE")
    # the partition's inactivity tracker forgot the account, not the other
    tracked = {(t, a) for t, a, *_ in tracking.snapshot()["inactivity"].accounts}
    assert tracked == {("acme", "acct-2")}
    assert erased.snapshot() == (ERASURE.digest,)


def test_an_erased_users_events_are_refused_and_the_account_goes_on() -> None:
    erasure = new_erasure("acme", "acct-1", "u-7")
    erased = ErasedSubjects(ErasedEvents.REFUSE, [erasure.digest])
    out = parser().parse_batch(
        [message(event("u7", user_id="u-7"), 0), message(event("u8", user_id="u-8"), 1)], erased
    )
    assert [i.event_id for pair in out if isinstance(pair, tuple) for i in pair[1]] == ["u8"]
    assert [d.reason for d in out if isinstance(d, DeadLetter)] == [RejectReason.ERASED_SUBJECT]


def test_a_restarted_partition_remembers_its_erasures() -> None:
    messages = [message(ERASURE.to_control_message(), 0), message(event("later"), 1)]
    source = ParsingSource(TestingSource(messages, batch_size=1), parser())
    part = source.build_part("in", "0", None)
    part.next_batch()  # the erasure
    snapshot = part.snapshot()
    assert snapshot[2] == (ERASURE.digest,)
    resumed = ParsingSource(TestingSource(messages, batch_size=1), parser()).build_part(
        "in", "0", snapshot
    )
    later = [item for item in resumed.next_batch() if isinstance(item, DeadLetter)]
    assert [d.reason for d in later] == [RejectReason.ERASED_SUBJECT]


# -- the shard --------------------------------------------------------------------------


def shard_with_history() -> AccountShard:
    config = ShardConfig(CONFIG, idle_ttl=timedelta(days=40), flush_interval=timedelta(0))
    account_shard = AccountShard(config, Clock())
    account_shard.process([[
        make_event(event_id=f"a{i}", user_id=f"u-{i % 3}", event_type="app.login",
                   event_time=T0 + timedelta(hours=i))
        for i in range(6)
    ] + [make_event(event_id="b0", account_id="acct-2", user_id="u-9", event_time=T0)]])
    return account_shard


def traces(snapshot: Any, needle: bytes) -> bool:
    """Whether ``needle`` appears anywhere in a shard snapshot, its packed states opened."""
    blobs: list[bytes] = [pickle.dumps(snapshot)]
    for states in snapshot[:2]:
        blobs += [StateCodec().unpack(blob) for blob in states.values()]
    return any(needle in blob for blob in blobs)


def test_an_account_erasure_leaves_no_trace_in_the_next_snapshot() -> None:
    account_shard = shard_with_history()
    assert traces(account_shard.snapshot(), b"acct-1")
    later = make_event(event_id="a9", event_type="billing.payment_failed",
                       event_time=T0 + timedelta(hours=7))
    # events of the batch before the erasure go with it; their outputs are not emitted
    out = account_shard.process([[later, ERASURE]])
    assert out.erasures == [ERASURE]
    assert not out.alerts and out.erased_events == 1
    assert len(account_shard) == 1
    assert not traces(account_shard.snapshot(), b"acct-1")
    assert traces(account_shard.snapshot(), b"acct-2")
    assert not [u for u in account_shard.on_eof().features if u.account_id == "acct-1"]


def test_a_user_erasure_keeps_the_counts_and_drops_the_id() -> None:
    account_shard = shard_with_history()
    [before] = [u for u in account_shard.on_eof().features if u.account_id == "acct-1"]
    erasure = new_erasure("acme", "acct-1", "u-1")
    out = account_shard.process([[erasure]])
    assert out.erasures == [erasure]
    snapshot = account_shard.snapshot()
    assert not traces(snapshot, b"u-1") and traces(snapshot, b"u-2")
    [after] = [u for u in account_shard.on_eof().features if u.account_id == "acct-1"]
    assert after.values == before.values  # distinct users counted as before


def test_the_inactivity_tracker_forgets_an_erased_account() -> None:
    tracker = InactivityTracker(InactivityRule(), 3600.0, "v1")
    tracker.observe([ActivityBatch(0, T0.timestamp(), ())])
    from detectors.inactivity import AccountActivity

    tracker.observe([ActivityBatch(0, T0.timestamp(), (
        AccountActivity("acme", "acct-1", T0.timestamp(), T0.timestamp()),
        AccountActivity("acme", "acct-2", T0.timestamp(), T0.timestamp()),
    ))])
    assert len(tracker) == 2
    tracker.observe([ActivityBatch(0, float("-inf"), (), erased=(("acme", "acct-1"),))])
    assert len(tracker) == 1
    assert "acct-1" not in repr(tracker.snapshot())


# -- the dataflow -----------------------------------------------------------------------


def test_an_erasure_read_before_any_event_does_not_stop_the_dataflow() -> None:
    """A partition whose first batch holds an erasure and no event: its absence tracker
    has no watermark yet (this raised OverflowError in the input, on every restart)."""
    erasures: list[Any] = []
    alerts: list[Any] = []
    sinks = FlowSinks(
        dead_letters=TestingSink([]), alerts_kafka=TestingSink(alerts),
        alerts_postgres=TestingSink([]), cancellations=TestingSink([]),
        late_events=TestingSink([]), features=TestingSink([]), usage_signals=TestingSink([]),
        erasures=TestingSink(erasures),
    )
    config = FlowConfig(limits=EventLimits(), account=CONFIG, idle_state_ttl=timedelta(days=40),
                        absences=(InactivityRule(),))
    stream = [message(ERASURE.to_control_message(), 0),
              message(event("e3", account="acct-2", event_type="billing.payment_failed"), 1)]
    flow = build_dataflow(TestingSource(stream, batch_size=1), sinks, config,
                          PipelineMetrics.create(CollectorRegistry()), clock=lambda: NOW)
    run_main(flow)
    assert erasures == [ERASURE]
    assert [a.trigger_event_id for a in alerts] == ["e3"]


def test_the_dataflow_routes_erasures_and_dead_letters_later_events() -> None:
    erasures: list[Any] = []
    letters: list[Any] = []
    alerts: list[Any] = []
    sinks = FlowSinks(
        dead_letters=TestingSink(letters), alerts_kafka=TestingSink(alerts),
        alerts_postgres=TestingSink([]), cancellations=TestingSink([]),
        late_events=TestingSink([]), features=TestingSink([]), usage_signals=TestingSink([]),
        erasures=TestingSink(erasures),
    )
    config = FlowConfig(limits=EventLimits(), account=CONFIG, idle_state_ttl=timedelta(days=40),
                        absences=(InactivityRule(),))
    stream = [
        message(event("e1", event_type="billing.payment_failed"), 0),
        message(ERASURE.to_control_message(), 1),
        message(event("e2", event_type="billing.payment_failed"), 2),
        message(event("e3", account="acct-2", event_type="billing.payment_failed"), 3),
    ]
    flow = build_dataflow(TestingSource(stream, batch_size=1), sinks, config,
                          PipelineMetrics.create(CollectorRegistry()), clock=lambda: NOW)
    run_main(flow)
    assert erasures == [ERASURE]
    assert [letter.reason for letter in letters] == [RejectReason.ERASED_SUBJECT]
    # e1's alert was written before the erasure (the erasure sink removes it); e2 refused
    assert sorted(a.trigger_event_id for a in alerts) == ["e1", "e3"]
