"""The tier-1 fast lane and the parsing source, over a recording writer (no broker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from confluent_kafka import KafkaError, Message
from prometheus_client import CollectorRegistry

from dataflows import fast_lane
from dataflows.fast_lane import Tier1Lane
from dataflows.kafka_input import MessageBatch
from dataflows.metrics import PipelineMetrics
from dataflows.outputs import RetryPolicy
from dataflows.parse import MessageParser, ParsingSource, _holding
from detectors.tier1 import DEFAULT_TIER1_RULES
from schemas.alert import alert_id
from schemas.erasure import CONTROL_NEEDLE
from schemas.event import EventLimits
from sinks.errors import KafkaUnavailable
from tests.builders import event_bytes
from tests.unit.dataflows.sources import ListSource

NOW = datetime(2026, 10, 2, tzinfo=UTC)


class RecordingWriter:
    """KafkaWriter's produce/flush: records messages; acknowledges them when reports are
    served or at flush, or fails the first ``outages`` flushes as a broker outage
    would."""

    def __init__(self, outages: int = 0) -> None:
        self.produced: list[str] = []
        self._unacked: list[Callable[[float], None]] = []
        self.outages = outages
        self.closed = False

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Any = None, *,
                on_delivered: Callable[[float], None] | None = None) -> None:
        self.produced.append(orjson.loads(value)["alert_id"])
        if on_delivered is not None:
            self._unacked.append(on_delivered)

    def serve_reports(self) -> None:
        for ack in self._unacked:
            ack(0.003)
        self._unacked.clear()

    def flush(self) -> None:
        if self.outages:
            self.outages -= 1
            self._unacked.clear()
            raise KafkaUnavailable(1, "broker down")
        self.serve_reports()

    def close(self) -> None:
        self.closed = True


def lane(writer: RecordingWriter) -> tuple[Tier1Lane, PipelineMetrics]:
    metrics = PipelineMetrics.create(CollectorRegistry())
    no_wait = RetryPolicy(sleep=lambda _s: None)
    return Tier1Lane(writer, "alerts", DEFAULT_TIER1_RULES, metrics, no_wait,  # type: ignore[arg-type]
                     clock=lambda: NOW.timestamp()), metrics


def events(*specs: tuple[str, str, str]) -> list[Any]:
    """(event id, account, type) → parsed events, through the production parser."""
    parser = MessageParser(EventLimits(), lambda: NOW, PipelineMetrics.create(CollectorRegistry()))
    batch = [KafkaSourceMessage(key=None, value=event_bytes(event_id=e, account_id=a,
                                                            event_type=t), topic="t",
                                partition=0, offset=i)
             for i, (e, a, t) in enumerate(specs)]
    return [event for item in parser.parse_batch(batch) if type(item) is tuple
            for event in item[1]]


def test_sends_each_decisive_event_once_and_nothing_else() -> None:
    writer = RecordingWriter()
    tier1, metrics = lane(writer)
    sent: dict[str, None] = {}
    batch = events(("e1", "a1", "app.login"), ("e2", "a1", "billing.payment_failed"),
                   ("e2", "a1", "billing.payment_failed"), ("e3", "a2", "billing.downgraded"))
    assert tier1.send(batch, sent) == 2
    assert tier1.send(batch, sent) == 0  # copies read again (another batch): not sent
    assert writer.produced == [alert_id("acme", "a1", "payment_failed", "e2"),
                               alert_id("acme", "a2", "downgraded", "e3")]
    tier1.confirm()
    assert metrics.total(metrics.sink_writes) == 2
    observed = metrics.alert_latency.labels(tier="1", since="event")
    assert observed._sum.get() > 0


def test_remembers_a_bounded_number_of_alert_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_lane, "REMEMBERED", 2)
    tier1, _ = lane(RecordingWriter())
    sent: dict[str, None] = {}
    tier1.send(events(*((f"e{i}", "a1", "billing.payment_failed") for i in range(5))), sent)
    assert list(sent) == [alert_id("acme", "a1", "payment_failed", e) for e in ("e3", "e4")]


def test_confirm_produces_again_through_an_outage() -> None:
    writer = RecordingWriter(outages=2)
    tier1, metrics = lane(writer)
    tier1.send(events(("e1", "a1", "subscription.cancel_intent")), {})
    tier1.confirm()
    expected = alert_id("acme", "a1", "cancel_intent", "e1")
    assert writer.produced == [expected] * 3  # the first try and two re-sends, one id
    assert metrics.total(metrics.sink_retries) == 2
    tier1.confirm()  # nothing pending: nothing produced
    assert len(writer.produced) == 3


def message(event_id: str, event_type: str, offset: int) -> KafkaSourceMessage[None, bytes]:
    return KafkaSourceMessage(key=None, value=event_bytes(event_id=event_id, event_type=event_type),
                              topic="t", partition=0, offset=offset)


def next_items(part: Any) -> list[Any]:
    """The next batch a read-ahead partition hands over (its reader runs in a thread)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        items = part.next_batch()
        if items:
            return items
    raise AssertionError("nothing handed over")


def test_parsing_source_confirms_before_its_snapshot_and_resumes_its_memory() -> None:
    batches = [[message("e1", "billing.payment_failed", 0)],
               [message("e1", "billing.payment_failed", 1), message("e2", "app.login", 2)]]
    writer = RecordingWriter()
    tier1, _ = lane(writer)
    parser = MessageParser(EventLimits(), lambda: NOW, PipelineMetrics.create(CollectorRegistry()))
    source = ParsingSource(ListSource(batches), parser, lambda: tier1)
    part = source.build_part("in", "only", None)
    first = next_items(part)
    assert [type(item).__name__ for item in first] == ["tuple"]  # no tracker: no activity
    sent_id = alert_id("acme", "acct-1", "payment_failed", "e1")
    # The position is that of what the worker took (one poll), however far the
    # lane read; the alert was confirmed before the snapshot was given.
    assert part.snapshot() == (1, (sent_id,), (), None, None)
    assert tier1._pending == []
    part.close()
    # A restart from that snapshot: the copy in the next batch is not sent again.
    resumed = source.build_part("in", "only", (1, (sent_id,)))
    assert len(next_items(resumed)) == 1
    assert writer.produced == [sent_id]
    with pytest.raises(StopIteration):
        while True:
            resumed.next_batch()
    assert resumed.snapshot() == (2, (sent_id,), (), None, None)
    resumed.close()
    # A snapshot written before the lane (the inner state alone) still resumes.
    legacy = source.build_part("in", "only", 1)
    assert legacy.snapshot()[0] == 1
    legacy.close()


def test_the_lane_reads_on_while_the_worker_takes_nothing() -> None:
    """The lane has a reader of its own: while the worker takes nothing (stuck in a
    sink, a snapshot, behind the stream), every decisive event's alert is sent and
    acknowledged; the worker then reads the same polls itself, in order."""
    batches = [[message(f"e{i}", "billing.payment_failed", i)] for i in range(5)]
    writer = RecordingWriter()
    tier1, metrics = lane(writer)
    parser = MessageParser(EventLimits(), lambda: NOW, PipelineMetrics.create(CollectorRegistry()))
    part = ParsingSource(ListSource(batches), parser, lambda: tier1).build_part(
        "in", "only", None)
    # The lane served the delivery reports as they came, before any confirm (a
    # snapshot): the alerts' latency is observed when they are acknowledged.
    deadline = time.monotonic() + 10
    while metrics.total(metrics.sink_writes) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.produced == [alert_id("acme", "acct-1", "payment_failed", f"e{i}")
                               for i in range(5)]
    assert metrics.total(metrics.sink_writes) == 5
    taken: list[str] = []
    with pytest.raises(StopIteration):
        while True:
            taken += [event.event_id for _, shard_events in part.next_batch()
                      for event in shard_events]
    assert taken == [f"e{i}" for i in range(5)]
    assert part.snapshot()[0] == 5
    assert len(writer.produced) == 5  # nothing sent twice
    part.close()


def test_a_snapshot_waits_for_the_lane_to_reach_the_worker() -> None:
    """A snapshot's position is never beyond what the lane has read: a restart from it
    must not skip a decisive event the lane has not seen yet."""
    release = threading.Event()

    class SlowLane(ListSource):
        def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
            part = super().build_part(step_id, for_part, resume_state)
            read = part.next_batch

            def held() -> list[Any]:
                release.wait(10)
                return read()

            part.next_batch = held  # type: ignore[method-assign]
            return part

    batches = [[message("e1", "billing.payment_failed", 0)]]
    writer = RecordingWriter()
    tier1, _ = lane(writer)
    parser = MessageParser(EventLimits(), lambda: NOW, PipelineMetrics.create(CollectorRegistry()))
    part = ParsingSource(ListSource(batches), parser, lambda: tier1,
                         lane_inner=SlowLane(batches)).build_part("in", "only", None)
    assert next_items(part)  # the worker took the poll; the lane is held before it
    snapshots: list[Any] = []
    taker = threading.Thread(target=lambda: snapshots.append(part.snapshot()))
    taker.start()
    taker.join(0.3)
    assert taker.is_alive() and not snapshots and writer.produced == []
    release.set()
    taker.join(10)
    assert snapshots == [(1, (alert_id("acme", "acct-1", "payment_failed", "e1"),), (), None, None)]
    part.close()


def test_a_lane_that_fails_hands_its_error_to_the_worker() -> None:
    class Broken(ListSource):
        def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
            part = super().build_part(step_id, for_part, resume_state)
            part.next_batch = lambda: 1 / 0  # type: ignore[method-assign]
            return part

    tier1, _ = lane(RecordingWriter())
    parser = MessageParser(EventLimits(), lambda: NOW, PipelineMetrics.create(CollectorRegistry()))
    batches = [[message(f"e{i}", "app.login", i)] for i in range(1000)]
    part = ParsingSource(ListSource(batches), parser, lambda: tier1,
                         lane_inner=Broken([])).build_part("in", "only", None)
    with pytest.raises(ZeroDivisionError):
        for _ in range(1000):
            part.next_batch()
            time.sleep(0.001)
    part.close()


@pytest.mark.parametrize("polled", [False, True], ids=["one-by-one", "kafka-batch"])
def test_the_reader_finds_decisive_events_however_they_are_written(polled: bool) -> None:
    """A substring test picks the messages to parse; an escaped type is parsed anyway.
    The Kafka input's polls (a MessageBatch) are screened a whole batch at a time."""
    escaped = event_bytes(event_id="esc", event_type="billing.payment_failed").replace(
        b"billing.payment_failed", b"billing\\u002epayment_failed"
    )
    mention = event_bytes(event_id="mention", attributes={"note": "billing.payment_failed"})
    values = [escaped, mention, event_bytes(event_id="plain"),
              event_bytes(event_id="pf", event_type="billing.payment_failed"), b"not json"]
    batch: list[Any] = (
        [MessageBatch([Message(topic="t", partition=0, offset=i, value=value)
                       for i, value in enumerate(values)])]
        if polled
        else [KafkaSourceMessage(key=None, value=value, topic="t", partition=0, offset=i)
              for i, value in enumerate(values)]
    )
    writer = RecordingWriter()
    tier1, _ = lane(writer)
    parser = MessageParser(EventLimits(), lambda: NOW, PipelineMetrics.create(CollectorRegistry()))
    part = ParsingSource(ListSource([batch]), parser, lambda: tier1).build_part("in", "only", None)
    items = next_items(part)  # the worker still parses every message
    assert sum(len(item[1]) for item in items if type(item) is tuple) == 4
    part.snapshot()  # waits for the lane to have read what the worker took
    assert sorted(writer.produced) == sorted(
        alert_id("acme", "acct-1", "payment_failed", e) for e in ("esc", "pf")
    )
    part.close()


def test_the_last_partition_to_close_closes_the_lanes_producer() -> None:
    writer = RecordingWriter()
    tier1, _ = lane(writer)
    tier1.attach()
    tier1.attach()
    tier1.detach()
    assert not writer.closed  # another partition still reads with it
    tier1.detach()
    assert writer.closed  # no connection left behind once the worker's input ends


def test_a_batch_is_screened_as_each_message_would_be() -> None:
    """The lane's screen of a poll keeps exactly the messages whose own bytes hold a
    needle, in order: a needle at either end of a value, never one that only the
    joining of two values would form, no empty value and no consumer error without
    one."""
    needles = (CONTROL_NEEDLE, b"\\", b'"billing.payment_failed"', b'"billing.downgraded"')
    values: list[bytes | None] = [
        b'"billing.payment_failed" at the start',
        b'at the end "billing.downgraded"',
        b'split "billing.payment', b'_failed" across two values',
        b"", None, b"plain", b'an escape \\u0041', CONTROL_NEEDLE + b":{}",
        b'"billing.downgraded" twice "billing.downgraded" and "billing.payment_failed"',
        b'"billing.payment_failed"',
    ]
    messages = [Message(topic="t", partition=0, offset=i, value=value)
                for i, value in enumerate(values)]
    messages.insert(5, Message(topic="t", partition=0, offset=99,
                               error=KafkaError(KafkaError._AUTO_OFFSET_RESET, "gone")))
    expected = [m.offset() for m in messages
                if m.value() and any(needle in m.value() for needle in needles)]
    (screened,) = _holding([MessageBatch(messages)], needles)
    assert [m.offset() for m in screened.messages] == expected == [0, 1, 7, 8, 9, 10]
    assert _holding([MessageBatch(messages[4:7])], needles) == []
    single = KafkaSourceMessage(key=None, value=b"plain", topic="t", partition=0, offset=1)
    assert _holding([single], needles) == [single]  # judged by the lane itself
