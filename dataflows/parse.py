"""The edge of the dataflow: Kafka messages in, events or dead letters out.

:class:`MessageParser` runs once per input batch: the clock is read once per
batch, counters move once per batch, and each message costs one
``orjson.loads`` plus validation. The Kafka source hands over whole polls
(:class:`~dataflows.kafka_input.MessageBatch`); the JSONL file source and
tests hand over messages one by one.

:class:`ParsingSource` parses inside the input partition, where the messages
are read, so that the tier-1 fast lane (:mod:`dataflows.fast_lane`) sends a
decisive event's alert before anything else happens to the batch, and ties
the lane's confirmation to the partition's snapshot.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from bisect import bisect_right
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from dataflows.absence_log import LoggedTracking, TrackingLog
from dataflows.collector import paused
from dataflows.fast_lane import Tier1Lane
from dataflows.kafka_input import MessageBatch
from dataflows.metrics import PipelineMetrics, event_type_label
from dataflows.outputs import RetryPolicy
from dataflows.shard import DayClosed, ShardItem, shard_key, shard_of
from detectors.inactivity import AbsenceTracking, TrackingSnapshot
from schemas.clock import DayCloser, EventClock
from schemas.dead_letter import DeadLetter
from schemas.erasure import CONTROL_NEEDLE, ErasedEvents, Erasure, parse_control, subject_digest
from schemas.errors import DependencyUnavailable
from schemas.event import Event, EventLimits, Rejection, RejectReason, parse_event, subject_key
from schemas.formats.decode import Decoder, Headers
from schemas.signal import UsageSignal

log = logging.getLogger(__name__)


class ValueBatch:
    """Message values read from one partition of a source other than Kafka, with their
    offsets (the JSONL file source: lines, and their line numbers): no key, timestamp
    or headers. One object per read, not one per message: building a
    ``KafkaSourceMessage`` per line cost 2.8 us, more than reading and splitting it."""

    __slots__ = ("offsets", "partition", "topic", "values")

    def __init__(self, topic: str, partition: int, values: list[bytes], offsets: list[int]
                 ) -> None:
        self.topic = topic
        self.partition = partition
        self.values = values
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"ValueBatch({self.topic}/{self.partition}, {len(self.values)} values)"


# What the input gives the parse step: the Kafka source's batches, a file's batches of
# lines, or messages one by one (tests).
InputItem = (
    MessageBatch
    | ValueBatch
    | KafkaSourceMessage[bytes | None, bytes | None]
    | KafkaError[bytes | None, bytes | None]
)


@functools.lru_cache(maxsize=65_536)
def _digest(tenant_id: str, account_id: str, user_id: str | None) -> str:
    return subject_digest(tenant_id, account_id, user_id)


class ErasedSubjects:
    """The subjects whose erasure one input partition has read (as digests: see
    ``schemas.erasure``), and whether their later events are refused.

    Every partition reads every erasure (``churnwatch erase`` sends one copy to
    each), in its own order: the events it read before the erasure were the
    subject's and went with it; those after are refused (``refuse``) or start
    the subject afresh (``keep``). Kept in the partition's snapshot.
    """

    __slots__ = ("_digests", "refuse")

    def __init__(self, policy: ErasedEvents, digests: Iterable[str] = ()) -> None:
        self.refuse = policy is ErasedEvents.REFUSE
        self._digests = set(digests)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def add(self, erasure: Erasure) -> None:
        self._digests.add(erasure.digest)

    def refuses(self, event: Event) -> bool:
        """True if ``event`` is an erased account's or an erased user's, and refused."""
        if not self.refuse or not self._digests:
            return False
        digests = self._digests
        tenant, account = event.tenant_id, event.account_id
        return _digest(tenant, account, None) in digests or (
            event.user_id is not None and _digest(tenant, account, event.user_id) in digests
        )

    def copy(self) -> ErasedSubjects:
        return ErasedSubjects(
            ErasedEvents.REFUSE if self.refuse else ErasedEvents.KEEP, self._digests
        )

    def snapshot(self) -> tuple[str, ...]:
        return tuple(sorted(self._digests))


def _refused(value: bytes | None, topic: str | None, partition: int | None,
             offset: int | None) -> DeadLetter:
    """An erased subject's event: dead-lettered without its key and value, which
    would be a trace of the subject (the offset finds it while the topic keeps it)."""
    return DeadLetter(
        reason=RejectReason.ERASED_SUBJECT,
        detail=f"the event's subject was erased ({len(value or b'')} bytes not kept)",
        topic=topic or "",
        partition=partition if partition is not None else -1,
        offset=offset if offset is not None else -1,
        key=None,
        value=None,
    )


class MessageParser:
    """Turns a batch of Kafka messages into events by shard, dead letters and
    inactivity signals.

    The valid events of a batch come out as one ``(shard key, events)`` pair per
    shard they belong to (each account's events in read order), so what crosses
    to the shard's worker is one item per shard, not one per event; besides, one
    dead letter per rejected message, and the inactivity signals the reading
    partition's absence trackers find once it has read the batch (see
    ``detectors.inactivity``: a silent account sends nothing to react to, so its
    partition's progress decides).

    With ``shards_score`` (scoring on), an inactivity signal's alert also joins
    its account's shard list, after the events the tracker judged it on: the
    shard then decides on it after everything the partition read of the account
    before it, however many processes run (it used to travel apart, from a
    tracker step of its own, and could overtake the account's events). And when
    an event moves the partition's watermark past a day's end (its
    :class:`~schemas.clock.DayCloser`), a :class:`~dataflows.shard.DayClosed`
    joins every shard's list right before that event, so each shard rescores the
    partition's accounts silent through the day at the same point of the
    partition's events whatever the batching (see :meth:`_close_days`).
    """

    def __init__(
        self,
        limits: EventLimits,
        clock: Callable[[], datetime],
        metrics: PipelineMetrics,
        *,
        shards: int = 64,
        shards_score: bool = False,
        decoder: Decoder | None = None,
    ) -> None:
        self._shards = shards
        # None: native events only (the fast path); else Segment, CloudEvents or auto
        self.decoder = decoder
        self._shards_score = shards_score
        # read by the fast lane's reader too, which parses the few decisive events itself
        self.limits = limits
        self.clock = clock
        self._metrics = metrics
        self._seconds = metrics.stage_seconds.labels(stage="parse-events")
        self._tracking_seconds = metrics.stage_seconds.labels(stage="track-inactivity")

    def parse_batch(
        self,
        messages: Sequence[InputItem],
        erased: ErasedSubjects | None = None,
        absences: AbsenceTracking | None = None,
        days: DayCloser | None = None,
    ) -> list[Parsed]:
        """``erased``: the reading partition's erasures (control messages add to it);
        ``absences``: its absence trackers (None: no absence signal declared); ``days``:
        the days its watermark closed (None: no day closes, as without scoring)."""
        self._prepare_framing(messages)
        started = time.perf_counter()
        now = self.clock()
        limits = self.limits
        out: list[Parsed] = []
        valid: list[Event] = []
        by_shard: dict[int, list[ShardItem]] = {}
        erased_accounts: list[tuple[str, str]] = []
        shards = self._shards
        rejected: Tally[str] = Tally()
        kinds: Tally[tuple[str, str]] = Tally()
        read = 0
        tracked = 0  # the valid events the absence trackers have seen
        tracking_s = 0.0  # their time: a stage of its own, not the parse's
        decoder = self.decoder
        for value, key, topic, partition, offset, timestamp, error, headers in _raw(
            messages, decoder is not None
        ):
            if error is None:
                result: Event | Rejection = parse_event(
                    value, now, limits, partition=partition, offset=offset,
                    ingested_at=_broker_time(timestamp),
                ) if decoder is None else decoder.decode(
                    value, headers, now, partition=partition, offset=offset,
                    ingested_at=_broker_time(timestamp),
                )
            else:
                result = Rejection(RejectReason.CONSUMER_ERROR, error)
            read += 1
            if isinstance(result, Rejection) and value is not None and error is None:
                erasure = parse_control(value)
                if erasure is not None:
                    if erased is not None:
                        erased.add(erasure)
                    by_shard.setdefault(shard_of(erasure.subject, shards), []).append(erasure)
                    if erasure.user_id is None:
                        erased_accounts.append((erasure.tenant_id, erasure.account_id))
                    continue
            elif erased and isinstance(result, Event) and erased.refuses(result):
                rejected[RejectReason.ERASED_SUBJECT] += 1
                out.append(_refused(value, topic, partition, offset))
                continue
            if isinstance(result, Rejection):
                rejected[result.reason] += 1
                out.append(
                    DeadLetter(
                        reason=result.reason,
                        detail=result.detail,
                        topic=topic or "",
                        partition=partition if partition is not None else -1,
                        offset=offset if offset is not None else -1,
                        key=key,
                        value=value,
                    )
                )
            else:
                if days is not None:
                    ts = result.event_time.timestamp()
                    if ts >= days.next_at:
                        closed = days.observe(ts)
                        if closed:  # before the event that closed them
                            tracking_s += self._close_days(
                                result.partition, closed, ts, by_shard, absences,
                                valid[tracked:], erased_accounts, out)
                            tracked, erased_accounts = len(valid), []
                by_shard.setdefault(shard_of(result.subject, shards), []).append(result)
                valid.append(result)
                kinds[(result.tenant_id, result.event_type)] += 1
        if absences is not None:
            # With day closes (scoring on), finished silences are signalled at the next
            # day close, not at this batch's end (see AbsenceTracking.track).
            tracking_s += self._track(absences, valid[tracked:], erased_accounts, by_shard,
                                      out, finalise=days is None)
        out.extend((shard_key(shard), items) for shard, items in by_shard.items())
        self._metrics.messages.inc(read)
        for reason, count in rejected.items():
            self._metrics.rejected.labels(reason=str(reason)).inc(count)
        tenant_label = self._metrics.tenant_label
        for (tenant, event_type), count in kinds.items():
            self._metrics.events.labels(
                tenant=tenant_label(tenant), event_type=event_type_label(event_type)
            ).inc(count)
        self._metrics.count_unknown_fields(valid)
        self._seconds.observe(time.perf_counter() - started - tracking_s)
        return out

    def finish(self, absences: AbsenceTracking | None) -> list[Parsed]:
        """The end of a partition's input (a file's): the finished silences left pending
        for a day close that will not come are signalled."""
        if absences is None:
            return []
        out: list[Parsed] = []
        by_shard: dict[int, list[ShardItem]] = {}
        self._track(absences, [], [], by_shard, out)
        out.extend((shard_key(shard), items) for shard, items in by_shard.items())
        return out

    def _prepare_framing(self, messages: Sequence[InputItem]) -> None:
        """With a Schema Registry: the batch's schema ids looked up first. While the
        registry does not answer, the batch waits (back-off, the wait in the metrics):
        its valid events must not be dead-lettered for an outage."""
        decoder = self.decoder
        if decoder is None or decoder.framing is None:
            return
        values = [fields[0] for fields in _raw(messages)]
        waiting = self._metrics.dependency_waiting
        attempt, started, next_log = 0, time.monotonic(), 0.0
        while True:
            attempt += 1
            try:
                decoder.prepare(values)
            except DependencyUnavailable as exc:
                waiting.labels(dependency=exc.dependency).set(1)
                waited = time.monotonic() - started
                if waited >= next_log:
                    next_log = waited + REGISTRY_RETRY.log_every_s
                    log.warning("input waits for the schema registry (attempt %d, %.0f s): %s",
                                attempt, waited, exc)
                REGISTRY_RETRY.sleep(REGISTRY_RETRY.backoff(attempt))
                continue
            if attempt > 1:
                waiting.labels(dependency="schema_registry").set(0)
                log.warning("the schema registry is back after %.1f s",
                            time.monotonic() - started)
            return

    def _close_days(
        self,
        partition: int,
        closed: range,
        ts: float,
        by_shard: dict[int, list[ShardItem]],
        absences: AbsenceTracking | None,
        events: list[Event],
        erased_accounts: list[tuple[str, str]],
        out: list[Parsed],
    ) -> float:
        """The partition's watermark closes days with the event at ``ts``, which comes
        next: each day close goes to every shard first, so each rescores its silent
        accounts on exactly the events read before that one. In an input ordered by
        event time those are the events before the day's end plus the lateness,
        whichever partition they were read from (the same in a file replay and over
        any number of Kafka partitions). Then the absence trackers take the events read so
        far and the watermark's move (its alerts of silences ongoing at the new day
        follow the day close, so their decisions see the rescored risk). Answers the
        trackers' seconds."""
        for day in closed:
            marker = DayClosed(partition, day)
            for shard in range(self._shards):
                by_shard.setdefault(shard, []).append(marker)
        if absences is None:
            return 0.0
        return self._track(absences, events, erased_accounts, by_shard, out, until=ts)

    def _track(
        self,
        absences: AbsenceTracking,
        events: list[Event],
        erased_accounts: list[tuple[str, str]],
        by_shard: dict[int, list[ShardItem]],
        out: list[Parsed],
        until: float | None = None,
        finalise: bool = True,
    ) -> float:
        """Events through the partition's absence trackers (which forget the erased
        accounts): their signals out, and (scoring on) their alerts to their accounts'
        shards, after the events. ``until``: the event time the watermark then moves to
        (a day close); ``finalise``: see :meth:`AbsenceTracking.track`. Answers the
        seconds it took, which the ``track-inactivity`` stage counts (the parse's
        stage leaves them out: the two add up)."""
        started = time.perf_counter()
        for signal in absences.track(events, erased_accounts, until, finalise=finalise):
            out.append(signal)
            if self._shards_score:
                shard = shard_of(subject_key(signal.tenant_id, signal.account_id), self._shards)
                by_shard.setdefault(shard, []).append(signal.to_alert())
        seconds = time.perf_counter() - started
        self._tracking_seconds.observe(seconds)
        return seconds


# How input waits for the schema registry while it does not answer.
REGISTRY_RETRY = RetryPolicy()


# What the parse step hands on: one (shard key, items) per shard (events, erasures and,
# with scoring, inactivity alerts and day closes), dead letters, inactivity signals.
Parsed = tuple[str, list[ShardItem]] | DeadLetter | UsageSignal


# A parsing partition's snapshot: the inner source's position, the alert ids the lane
# sent, the digests of the subjects erased, its absence trackers', the newest day
# its watermark closed (older snapshots: the first two to four, or the inner position
# alone). With recovery the trackers are in an absence log and the
# snapshot names its files (dataflows.absence_log).
PartitionSnapshot = tuple[Any, tuple[str, ...], tuple[str, ...],
                          TrackingSnapshot | LoggedTracking, int | None]


class _ParsingPartition(StatefulSourcePartition[Parsed, PartitionSnapshot]):
    """Reads and parses in the worker's own thread, batch by batch (no tier-1 lane)."""

    def __init__(
        self, inner: StatefulSourcePartition[Any, Any], parser: MessageParser,
        erased: ErasedSubjects, absences: AbsenceTracking | None,
        days: DayCloser | None = None, tracking_log: TrackingLog | None = None,
    ) -> None:
        self._inner = inner
        self._parser = parser
        self._erased = erased
        self._absences = absences
        self._days = days
        self._tracking_log = tracking_log  # None: the trackers snapshotted whole
        self._finished = False

    def next_batch(self) -> list[Parsed]:
        if self._finished:
            raise StopIteration
        try:
            messages = list(self._inner.next_batch())
        except StopIteration:
            # The end of the input (a file): what waited for a day close goes now.
            self._finished = True
            return self._parser.finish(self._absences)
        return self._parse(messages) if messages else []

    def _parse(self, messages: list[Any]) -> list[Parsed]:
        """The worker's share of a read: parsed."""
        return self._parser.parse_batch(messages, self._erased, self._absences, self._days)

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def _state(self) -> tuple[tuple[str, ...], TrackingSnapshot | LoggedTracking, int | None]:
        absences, days, log = self._absences, self._days, self._tracking_log
        tracking: TrackingSnapshot | LoggedTracking = (
            None if absences is None
            else absences.snapshot() if log is None
            else log.snapshot(absences))
        return self._erased.snapshot(), tracking, None if days is None else days.closed

    def snapshot(self) -> PartitionSnapshot:
        """The inner source's position, no alert ids (no lane sent any), the erasures,
        the absence trackers, the day clock."""
        return self._inner.snapshot(), (), *self._state()

    def close(self) -> None:
        self._inner.close()


class _LanePartition(_ParsingPartition):
    """The worker reads and parses in its own thread, as without the lane, while a
    thread of the partition's own, with a reader of its own over the same partition,
    sends the tier-1 alert of each decisive event as soon as it is read: a busy,
    stuck or lagging worker (a snapshot, a slow sink, a burst it cannot keep up
    with) never holds the lane back, and nothing is buffered between them.

    The lane only picks out the decisive events (:meth:`_decisive`: a substring test
    per message, a parse for the few it finds); the worker parses every message.
    Both readers start at the partition's recovered position and read the same
    messages in the same order, so a count tells how far each got. The partition's
    snapshot waits until the lane has read at least what the worker took (it is
    normally ahead) and its alerts are confirmed: a restart from that position
    loses no alert, and the alert ids sent (kept in the snapshot) are not sent
    again. Until 2026-11-29 the lane read ahead for the worker and handed it its
    polls, so a worker that fell behind held the lane back once the hand-over
    filled (2 polls, then 20,000 messages: at 30,000 events/s, above what the
    worker keeps up with, the tier-1 p99 grew to seconds).
    """

    def __init__(
        self,
        inner: StatefulSourcePartition[Any, Any],
        lane_inner: StatefulSourcePartition[Any, Any],
        parser: MessageParser,
        erased: ErasedSubjects,
        absences: AbsenceTracking | None,
        lane: Tier1Lane,
        sent: tuple[str, ...],
        *,
        name: str,
        days: DayCloser | None = None,
        tracking_log: TrackingLog | None = None,
    ) -> None:
        super().__init__(inner, parser, erased, absences, days, tracking_log)
        self._lane_inner = lane_inner
        # The lane's own view of the erasures: it reads ahead of the worker, whose
        # view must change only where the worker's batches reach the erasure.
        self._lane_erased = erased.copy()
        self._lane = lane
        lane.attach()
        self._sent = dict.fromkeys(sent)  # alert ids the lane sent, oldest first
        # A decisive event's type as it appears in a message without escapes.
        self._needles = tuple(f'"{event_type}"'.encode() for event_type in lane.event_types)
        self._decisive_types = frozenset(lane.event_types)
        # What a native message must hold for _decisive to look at it at all.
        self._screen = (CONTROL_NEEDLE, b"\\", *self._needles)
        self._taken = 0  # messages the worker read since the recovered position
        self._lane_read = 0  # messages the lane read since then
        self._lane_done = False  # the lane's reader reached the end, or failed
        self._lane_error: BaseException | None = None
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._lane_thread = threading.Thread(
            target=self._run_lane, name=f"tier-1 lane {name}", daemon=True
        )
        self._lane_thread.start()

    def _run_lane(self) -> None:
        inner, lane = self._lane_inner, self._lane
        try:
            while not self._stop.is_set():
                try:
                    messages = list(inner.next_batch())
                except StopIteration:
                    break
                if messages:
                    decisive = self._decisive(messages)
                    if decisive:
                        lane.send(decisive, self._sent)
                    lane.serve_reports()
                    with self._progress:
                        self._lane_read += _message_count(messages)
                        self._progress.notify_all()
                    continue
                lane.serve_reports()
                awake = inner.next_awake()
                if awake is not None:
                    self._stop.wait(max(0.0, (awake - datetime.now(UTC)).total_seconds()))
        except BaseException as exc:  # the worker raises it at its next batch
            log.exception("tier-1 lane %s failed", self._lane_thread.name)
            self._lane_error = exc
        finally:
            with self._progress:
                self._lane_done = True
                self._progress.notify_all()

    def _decisive(self, messages: list[Any]) -> list[Event]:
        """The valid decisive events among ``messages``. Without a backslash, a JSON
        string holds its text as it is, so a message whose bytes do not hold a
        decisive type in quotes cannot be one; the others are parsed (the few that
        are, or mention one, or hold an escape)."""
        needles = self._needles
        parser = self._parser
        now = parser.clock()
        found: list[Event] = []
        decoder = parser.decoder
        if decoder is not None and decoder.framing is not None:
            try:
                decoder.prepare(fields[0] for fields in _raw(messages))
            except DependencyUnavailable:
                return []  # the registry is down: the worker's parse waits for it
        if decoder is None:  # native: only the messages the bytes say may matter
            messages = _holding(messages, self._screen)
        for value, _, _, partition, offset, timestamp, error, headers in _raw(
            messages, decoder is not None
        ):
            if error is not None or not value:
                continue
            if CONTROL_NEEDLE in value:  # an erasure: no alert for the subject's events after it
                erasure = parse_control(value)
                if erasure is not None:
                    self._lane_erased.add(erasure)
                    continue
            if decoder is not None:  # a foreign format: its names are not ours, decode all
                try:
                    event = decoder.decode(value, headers, now, partition=partition,
                                           offset=offset, ingested_at=_broker_time(timestamp))
                except DependencyUnavailable:
                    continue
                if (isinstance(event, Event) and event.event_type in self._decisive_types
                        and not self._lane_erased.refuses(event)):
                    found.append(event)
                continue
            if b"\\" not in value and not any(needle in value for needle in needles):
                continue
            event = parse_event(value, now, parser.limits, partition=partition, offset=offset,
                                ingested_at=_broker_time(timestamp))
            if isinstance(event, Event) and not self._lane_erased.refuses(event):
                found.append(event)
        return found

    def next_batch(self) -> list[Parsed]:
        if self._lane_error is not None:
            raise self._lane_error
        return super().next_batch()

    def _parse(self, messages: list[Any]) -> list[Parsed]:
        self._taken += _message_count(messages)
        return super()._parse(messages)

    def snapshot(self) -> PartitionSnapshot:
        """The position of what the worker took, once the lane has read at least as far
        and its alerts are confirmed; the alert ids sent (so a copy read after a restart
        is not sent again); the erasures, the absence trackers, the day clock."""
        with self._progress:
            while self._lane_read < self._taken and not self._lane_done:
                self._progress.wait(0.1)
        if self._lane_error is not None:
            raise self._lane_error
        return self._inner.snapshot(), self._lane.confirm(self._sent), *self._state()

    def close(self) -> None:
        self._stop.set()
        self._lane_thread.join(timeout=30)
        self._lane.detach()
        self._lane_inner.close()
        super().close()


class ParsingSource(FixedPartitionedSource[Parsed, PartitionSnapshot]):
    """Any partitioned source of messages (Kafka, a JSONL file, a test's list), parsed in
    its partitions; with ``lane`` (a factory, called once per worker), each partition
    reads ahead in a thread of its own and the tier-1 fast lane sends decisive events'
    alerts from there, with a second reader of the same partition: ``lane_inner``'s
    (by default ``inner``'s) ``build_part`` with the same resume state."""

    def __init__(
        self,
        inner: FixedPartitionedSource[Any, Any],
        parser: MessageParser,
        lane: Callable[[], Tier1Lane] | None = None,
        erased_events: ErasedEvents = ErasedEvents.REFUSE,
        absences: Callable[[TrackingSnapshot], AbsenceTracking] | None = None,
        lane_inner: FixedPartitionedSource[Any, Any] | None = None,
        day_closes: EventClock | None = None,
        absence_log: Callable[[str], TrackingLog] | None = None,
    ) -> None:
        self._inner = inner
        self._lane_inner = lane_inner or inner
        self._parser = parser
        self._erased_events = erased_events
        self._absences_factory = absences
        # A partition's absence log by its name (dataflows.absence_log); None: the
        # trackers go whole into the partition's snapshot (no recovery directory).
        self._absence_log = absence_log
        self._day_closes = day_closes  # None: no day closes (no scoring)
        self._lane_factory = lane
        self._lane: Tier1Lane | None = None

    def list_parts(self) -> list[str]:
        return self._inner.list_parts()

    def build_part(
        # A PartitionSnapshot, an older one's first two to four, or (written before the
        # lane) the inner state alone: not its type, which a compiled module would check
        # at run time (churnwatch.native).
        self, step_id: str, for_part: str, resume_state: Any
    ) -> _ParsingPartition:
        inner_state: Any = None
        sent: tuple[str, ...] = ()
        digests: tuple[str, ...] = ()
        tracked: TrackingSnapshot | LoggedTracking = None
        closed: int | None = None
        if isinstance(resume_state, tuple):
            inner_state, sent = resume_state[0], resume_state[1]
            if len(resume_state) > 2:
                digests = resume_state[2]
            if len(resume_state) > 3:
                tracked = resume_state[3]
            if len(resume_state) > 4:
                closed = resume_state[4]
        elif resume_state is not None:  # written before the lane: the inner state alone
            inner_state = resume_state
        if self._lane is None and self._lane_factory is not None:
            self._lane = self._lane_factory()  # one per worker, shared by its partitions
        inner = self._inner.build_part(step_id, for_part, inner_state)
        erased = ErasedSubjects(self._erased_events, digests)
        factory = self._absences_factory
        log = None if factory is None or self._absence_log is None else self._absence_log(
            for_part)
        absences = None
        if factory is not None:  # (else nothing to restore, whatever the snapshot held)
            with paused():  # every account's entry built at once: see dataflows.collector
                if isinstance(tracked, LoggedTracking):
                    if log is None:
                        msg = ("a snapshot whose absence trackers are in an absence log,"
                               " restored without one")
                        raise ValueError(msg)
                    tracked = log.restore(tracked)
                absences = factory(tracked)
        days = None if self._day_closes is None else DayCloser(self._day_closes, closed)
        if self._lane is None:
            return _ParsingPartition(inner, self._parser, erased, absences, days, log)
        lane_inner = self._lane_inner.build_part(step_id, for_part, inner_state)
        return _LanePartition(inner, lane_inner, self._parser, erased, absences, self._lane,
                              sent, name=for_part, days=days, tracking_log=log)


# One message's fields: value, key, topic, partition, offset, (timestamp type, ms), the
# consumer's error text (None: a message to parse), and its headers (when asked for).
_Fields = tuple[bytes | None, bytes | None, str | None, int | None, int | None,
                tuple[int, int] | None, str | None, Headers]


def _raw(items: Iterable[InputItem], with_headers: bool = False) -> Iterator[_Fields]:
    """Every message of the input items, whatever their form, field by field; the headers
    only ``with_headers`` (a foreign input format may need them; native never does)."""
    for item in items:
        if isinstance(item, MessageBatch):
            for msg in item.messages:
                error = msg.error()
                yield (msg.value(), msg.key(), msg.topic(), msg.partition(), msg.offset(),
                       msg.timestamp(), None if error is None else str(error.str()),
                       msg.headers() if with_headers else None)
        elif isinstance(item, ValueBatch):
            topic, partition = item.topic, item.partition
            for value, offset in zip(item.values, item.offsets, strict=True):
                yield (value, None, topic, partition, offset, None, None, None)
        elif isinstance(item, KafkaError):
            failed = item.msg
            yield (failed.value, failed.key, failed.topic, failed.partition, failed.offset,
                   failed.timestamp, str(item.err.str()), None)
        else:
            yield (item.value, item.key, item.topic, item.partition, item.offset,
                   item.timestamp, None, item.headers if with_headers else None)


def _holding(items: list[Any], needles: Sequence[bytes]) -> list[Any]:
    """``items`` with only the messages whose value holds one of ``needles``
    (items other than a :class:`MessageBatch`, and consumer errors, pass as they are).

    The tier-1 lane reads every message only to find the few decisive ones: a
    per-message test in Python (a value, a tuple of its fields, a ``needle in
    value`` per decisive type) was most of its 4 % of the workers' CPU. Here the
    batch's values are joined once (NUL-separated: no needle holds a NUL, so no
    match spans two values) and each needle is looked for in C over the whole
    batch; a match's offset names its message. The lane then judges the messages
    found exactly as before, in read order.
    """
    out: list[Any] = []
    for item in items:
        if not isinstance(item, MessageBatch):
            out.append(item)
            continue
        messages = item.messages
        values = [message.value() or b"" for message in messages]
        buffer = b"\0".join(values)
        # starts[i]: where message i's value begins in the buffer
        starts = [0, *accumulate(len(value) + 1 for value in values)]
        found: set[int] = set()
        for needle in needles:
            at = buffer.find(needle)
            while at >= 0:
                index = bisect_right(starts, at) - 1
                found.add(index)
                # the next match after this message (its other matches add nothing)
                at = buffer.find(needle, starts[index + 1])
        if found:  # consumer errors are not the lane's: the worker dead-letters them
            out.append(MessageBatch([messages[index] for index in sorted(found)]))
    return out


def _message_count(items: list[Any]) -> int:
    """How many messages a poll's items hold (a batch holds many)."""
    return sum(len(item) if isinstance(item, MessageBatch | ValueBatch) else 1
               for item in items)


def _broker_time(timestamp: tuple[int, int] | None) -> float:
    """Kafka's (type, epoch ms) timestamp in epoch seconds; 0.0 if not available."""
    if not timestamp or timestamp[0] == TIMESTAMP_NOT_AVAILABLE:
        return 0.0
    return timestamp[1] / 1000.0
