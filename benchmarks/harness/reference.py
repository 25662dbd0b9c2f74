"""The reference: churnwatch's core job as a minimal hand-written confluent-kafka loop.

It is the practical ceiling the full pipeline is compared with, from the same
run and over the same events topic: what a plain Python program reaches doing
the data plane with nothing else (no engine, no recovery, no lateness, no
scoring). Per process:

* one ``confluent_kafka.Consumer`` over its share of the topic's partitions
  (``p % processes == process_id``), by ``assign()`` (a group join takes ~20 s
  on Tansu), ``consume(batch_size)`` batches, the production input's
  ``fetch.queue.backoff.ms``, and ``enable.partition.eof``: it stops once every
  assigned partition reached its end (the ``tail=False`` semantics);
* every message validated by churnwatch's own parser
  (:func:`schemas.event.parse_event`, with :func:`churnwatch.wiring.event_limits`),
  so the comparison measures the data plane, not a cheaper validator; a
  rejected message becomes a :class:`~schemas.dead_letter.DeadLetter` on the
  run's dead-letter topic (the production encoder);
* per account: dedupe by ``event_id`` and daily counts per event type
  (:class:`ReferenceState`, pure);
* every :data:`FLUSH_INTERVAL_S` and at the end, one Redis pipeline
  (``transaction=False``) with one HSET and one PEXPIRE per account touched
  since the last flush: a single round trip per flush;
* tier-1 alerts (the settings' tier-1 rules, :func:`detectors.tier1.detect_tier1`)
  produced to the run's alerts topic with the production producer settings,
  ``poll(0)`` after each message and ``flush()`` at the end; anything
  undelivered fails the run.

Each process is ``python -m benchmarks.bench_pipeline --reference-worker`` with
the run's settings as ``CHURNWATCH_*`` variables, and prints its counts and
active span on its last line; :func:`run_reference` starts them and sums.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from confluent_kafka import KafkaError, Message

from benchmarks.harness.figures import Figures
from benchmarks.harness.processes import (
    ChildProcesses,
    children_cpu_s,
    parse_counts,
    tail_text,
    wait_all,
)
from detectors.tier1 import Tier1Rule, detect_tier1
from schemas.dead_letter import DeadLetter
from schemas.event import Event, EventLimits, Rejection, RejectReason, parse_event

if TYPE_CHECKING:
    import redis
    from redis.typing import EncodableT, FieldT

    from churnwatch.settings import Settings
    from schemas.alert import Alert

# The worker's last line of output, which the parent reads back.
REFERENCE_LINE = "reference: "
# Counts summed over the workers (the rest of the line: the span).
REFERENCE_COUNTS = ("messages", "valid", "duplicates", "late", "dead_letters", "alerts",
                    "hashes_written", "flushes")

FLUSH_INTERVAL_S = 1.0  # Redis writes are coalesced per account over this long
POLL_TIMEOUT_S = 0.1  # longest wait of one consume() for a full batch
IDLE_LIMIT_S = 120.0  # nothing read for this long before every partition's end: give up
# Days of counts and event ids an account keeps in memory (today and yesterday):
# an event dated before them is late and not counted (its day's count is gone).
KEEP_DAYS = 2
# An account with no event for this many days (of the newest event time seen) is
# dropped. Generous, so that a partition read a little behind the others keeps
# its accounts.
IDLE_DAYS = 7

WORKER_MODULE = "benchmarks.bench_pipeline"
REPO = Path(__file__).resolve().parents[2]


def count_key(prefix: str, subject: str) -> str:
    """The Redis hash of one account's daily counts: ``<prefix>:{<tenant>:<account>}:c``."""
    return f"{prefix}:{{{subject}}}:c"


def count_field(day: int, event_type: str) -> str:
    """A field of that hash: ``<YYYY-MM-DD>:<event_type>`` (``day``: a proleptic ordinal)."""
    return f"{_iso_day(day)}:{event_type}"


@functools.lru_cache(maxsize=1024)
def _iso_day(day: int) -> str:  # a flush names the same few days thousands of times
    return date.fromordinal(day).isoformat()


class _Account:
    """One account's state: the newest day seen, event ids and counts of the kept days."""

    __slots__ = ("counts", "ids", "newest_day")

    def __init__(self, day: int) -> None:
        self.newest_day = day
        self.ids: dict[str, int] = {}  # event id -> its day; insertion order = age
        self.counts: dict[tuple[int, str], int] = {}  # (day, event type) -> events

    def advance(self, day: int, keep_days: int) -> None:
        """A newer day began: forget the ids and counts of the days no longer kept."""
        self.newest_day = day
        horizon = day - keep_days
        self.ids = {i: d for i, d in self.ids.items() if d > horizon}
        self.counts = {k: n for k, n in self.counts.items() if k[0] > horizon}


class ReferenceState:
    """Dedupe, daily counts per event type and tier-1 alerts, per account; pure.

    :meth:`add_batch` takes a batch of parsed events and returns the alerts it
    raised; :meth:`take_writes` returns the hash writes of the accounts touched
    since the last call. Bounds: an account keeps ``keep_days`` days of counts
    and event ids, and at most ``max_ids`` ids (the earliest goes first); an
    account idle for ``idle_days`` (of the newest event time seen) is dropped.
    """

    def __init__(self, tier1_rules: Mapping[str, Tier1Rule], *, key_prefix: str, max_ids: int,
                 keep_days: int = KEEP_DAYS, idle_days: int = IDLE_DAYS) -> None:
        self._rules = tier1_rules
        self._prefix = key_prefix
        self._max_ids = max_ids
        self._keep_days = keep_days
        self._idle_days = idle_days
        self._accounts: dict[str, _Account] = {}
        self._touched: dict[str, _Account] = {}
        self._newest_day = 0
        self.valid = 0
        self.duplicates = 0
        self.late = 0
        self.alerts = 0
        self.accounts_dropped = 0

    def __len__(self) -> int:
        """Accounts held."""
        return len(self._accounts)

    def add_batch(self, events: Sequence[Event]) -> list[Alert]:
        """Count a batch of valid events (each account's in read order); the alerts raised."""
        accounts, touched, rules = self._accounts, self._touched, self._rules
        keep_days, max_ids = self._keep_days, self._max_ids
        newest = self._newest_day
        duplicates = late = 0
        alerts: list[Alert] = []
        for event in events:
            subject = event.subject
            day = event.event_time.toordinal()
            account = accounts.get(subject)
            if account is None:
                account = accounts[subject] = _Account(day)
            elif day > account.newest_day:
                account.advance(day, keep_days)
            elif day <= account.newest_day - keep_days:
                late += 1
                continue
            ids = account.ids
            event_id = event.event_id
            if event_id in ids:
                duplicates += 1
                continue
            ids[event_id] = day
            if len(ids) > max_ids:
                del ids[next(iter(ids))]  # dicts keep insertion order: the earliest id
            counts = account.counts
            key = (day, event.event_type)
            counts[key] = counts.get(key, 0) + 1
            touched[subject] = account
            if event.event_type in rules:
                alert = detect_tier1(event, rules)
                if alert is not None:
                    alerts.append(alert)
            if day > newest:
                newest = day
        self.valid += len(events)
        self.duplicates += duplicates
        self.late += late
        self.alerts += len(alerts)
        if newest > self._newest_day:
            self._newest_day = newest
            self._drop_idle()
        return alerts

    def _drop_idle(self) -> None:
        # Once per new day of event time: O(accounts) a day, not per event.
        horizon = self._newest_day - self._idle_days
        idle = [s for s, a in self._accounts.items() if a.newest_day < horizon]
        for subject in idle:
            del self._accounts[subject]
        self.accounts_dropped += len(idle)

    def take_writes(self) -> dict[str, dict[str, int]]:
        """Hash key -> fields of every account touched since the last call (then forgotten).

        Each account's fields are all its kept counts, so one HSET per account
        carries everything that changed, however many events moved it.
        """
        prefix = self._prefix
        writes = {
            count_key(prefix, subject): {
                count_field(day, event_type): n for (day, event_type), n in account.counts.items()
            }
            for subject, account in self._touched.items()
        }
        self._touched.clear()
        return writes


def write_counts(client: redis.Redis, writes: Mapping[str, Mapping[str, int]],
                 ttl_ms: int) -> None:
    """One pipeline, one round trip: HSET and PEXPIRE (a TTL on every key) per hash."""
    if not writes:
        return
    pipe = client.pipeline(transaction=False)
    for key, fields in writes.items():
        # Mapping is invariant in its key: str is one of the field types redis-py takes.
        pipe.hset(key, mapping=cast("Mapping[FieldT, EncodableT]", fields))
        pipe.pexpire(key, ttl_ms)
    pipe.execute()


def parse_batch(batch: Sequence[Message], now: datetime, limits: EventLimits,
                pending: set[int]) -> tuple[list[Event], list[DeadLetter], int]:
    """A consumed batch as valid events, dead letters and the count of messages read.

    A partition-EOF marker is no message: it takes its partition out of
    ``pending``. A consumer error becomes a ``consumer_error`` dead letter, as
    in the dataflow's parse step.
    """
    events: list[Event] = []
    letters: list[DeadLetter] = []
    read = 0
    for message in batch:
        error = message.error()
        partition, offset = message.partition(), message.offset()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.discard(partition if partition is not None else -1)
                continue
            result: Event | Rejection = Rejection(RejectReason.CONSUMER_ERROR, str(error.str()))
        else:
            result = parse_event(message.value(), now, limits, partition=partition, offset=offset)
        read += 1
        if isinstance(result, Rejection):
            letters.append(DeadLetter(
                reason=result.reason, detail=result.detail, topic=message.topic() or "",
                partition=partition if partition is not None else -1,
                offset=offset if offset is not None else -1,
                key=message.key(), value=message.value(),
            ))
        else:
            events.append(result)
    return events, letters, read


def reference_worker(settings: Settings, process_id: int = 0, processes: int = 1,
                     flush_interval_s: float = FLUSH_INTERVAL_S) -> Figures:
    """One process of the reference over its partitions of ``settings.topics.events``.

    Prints :data:`REFERENCE_LINE` with its counts and its active span (``first``
    and ``last``: epoch seconds of the first message read and of the end of the
    last batch, before the final flush) and returns the same figures.
    """
    # Imported here, so that the parent (and --help) stays light.
    from datetime import UTC

    import redis
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    from churnwatch.wiring import event_limits
    from dataflows.kafka_input import CONSUMER_CONFIG
    from sinks.kafka import PRODUCER_DEFAULTS, KafkaMessage, alert_message, dead_letter_message

    if not (settings.kafka_bootstrap and settings.redis_url):
        msg = "the reference needs CHURNWATCH_KAFKA_BOOTSTRAP and CHURNWATCH_REDIS_URL"
        raise RuntimeError(msg)
    topics = settings.topics
    limits = event_limits(settings)
    state = ReferenceState(settings.tier1_rules, key_prefix=settings.redis_key_prefix,
                           max_ids=settings.dedupe_max_ids_per_account)
    ttl_ms = int(settings.feature_ttl.total_seconds() * 1000)
    batch_size = settings.input_batch_size
    client = redis.Redis.from_url(settings.redis_url)
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": "churnwatch-reference",  # required, unused: assign() joins no group
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.queue.backoff.ms": CONSUMER_CONFIG["fetch.queue.backoff.ms"],
    })
    producer = Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": settings.kafka_bootstrap,
                         "client.id": "churnwatch-reference"})
    undelivered: list[str] = []

    def on_delivery(err: object, _message: object) -> None:
        if err is not None:
            undelivered.append(str(err))

    def send(topic: str, out: KafkaMessage) -> None:
        while True:
            try:
                producer.produce(topic, value=out.value, key=out.key, headers=out.headers,
                                 on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports to make room
                producer.poll(0.1)
        producer.poll(0)

    counts = {"messages": 0, "dead_letters": 0, "hashes_written": 0, "flushes": 0}
    redis_s = 0.0

    def flush() -> None:
        nonlocal redis_s
        started = time.perf_counter()
        writes = state.take_writes()
        write_counts(client, writes, ttl_ms)
        counts["hashes_written"] += len(writes)
        counts["flushes"] += 1
        redis_s += time.perf_counter() - started

    first = last = 0.0
    try:
        metadata = consumer.list_topics(topics.events, timeout=10)
        partitions = sorted(p for p in metadata.topics[topics.events].partitions
                            if p % processes == process_id)
        consumer.assign([TopicPartition(topics.events, p, OFFSET_BEGINNING)
                         for p in partitions])
        pending = set(partitions)
        next_flush = time.monotonic() + flush_interval_s
        idle_since = time.monotonic()
        while pending:
            batch = consumer.consume(num_messages=batch_size, timeout=POLL_TIMEOUT_S)
            if not batch:
                if time.monotonic() - idle_since > IDLE_LIMIT_S:
                    msg = f"nothing read for {IDLE_LIMIT_S:.0f} s; not at the end of {pending}"
                    raise RuntimeError(msg)
                continue
            idle_since = time.monotonic()
            received = time.time()
            # The clock once per batch, as the dataflow's parser reads it.
            events, letters, read = parse_batch(batch, datetime.now(UTC), limits, pending)
            counts["messages"] += read
            counts["dead_letters"] += len(letters)
            for letter in letters:
                send(topics.dead_letters, dead_letter_message(letter))
            for alert in state.add_batch(events):
                send(topics.alerts, alert_message(alert))
            if time.monotonic() >= next_flush:
                flush()
                next_flush = time.monotonic() + flush_interval_s
            if read:
                first = first or received
                last = time.time()
        flush()
        left = producer.flush(30)
        if left or undelivered:
            first_error = undelivered[0] if undelivered else "flush timed out"
            msg = f"{left + len(undelivered)} message(s) not delivered: {first_error}"
            raise RuntimeError(msg)
    finally:
        consumer.close()
        client.close()
    figures: Figures = {
        **counts,
        "valid": state.valid,
        "duplicates": state.duplicates,
        "late": state.late,
        "alerts": state.alerts,
        "accounts_held": len(state),
        "redis_s": round(redis_s, 3),
        "first": first,
        "last": last,
        "end": time.time(),
    }
    line = " ".join(f"{k}={v!r}" for k, v in figures.items())
    print(f"{REFERENCE_LINE}{line}", flush=True)
    return figures


def run_reference(children: ChildProcesses, settings: Settings, processes: int, logs: Path,
                  tag: str, overrides: Sequence[str] = ()) -> Figures:
    """The reference over ``settings.topics.events`` with ``processes`` workers.

    ``settings`` name the run's own output topics (created here if missing) and
    Redis key prefix; ``overrides`` are CHURNWATCH_NAME=VALUE, as for the full
    run. "Sustained" divides the messages by the span between the first message
    of any worker and the end of the last batch of any worker; "wall" by the
    whole run, process start to exit included.
    """
    from benchmarks.harness.churnwatch_runs import child_env
    from churnwatch.topics import ensure_topics

    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap, [settings.topics.dead_letters, settings.topics.alerts],
                  settings.topic_partitions)
    env = child_env(settings, overrides)
    outs = [logs / f"{tag}-p{i}.out" for i in range(processes)]
    errs = [logs / f"{tag}-p{i}.err" for i in range(processes)]
    cpu_before = children_cpu_s()
    started = time.perf_counter()
    procs = [
        children.start([sys.executable, "-m", WORKER_MODULE, "--reference-worker",
                        "--process-id", str(i), "--processes", str(processes)],
                       env=env, cwd=REPO, stdout=outs[i], stderr=errs[i])
        for i in range(processes)
    ]
    wait_all(children, procs, errs, "reference")
    wall = time.perf_counter() - started
    cpu = children_cpu_s() - cpu_before
    lines = [line for out in outs for line in out.read_text().splitlines()
             if line.startswith(REFERENCE_LINE)]
    if len(lines) != processes:
        msg = f"{len(lines)} of {processes} reference processes reported:\n{tail_text(outs[0])}"
        raise RuntimeError(msg)
    totals, active = sum_worker_lines(lines)
    messages = int(totals["messages"])
    return {
        "processes": processes,
        **totals,
        "redis_key_prefix": settings.redis_key_prefix,
        "topics": {"dead_letters": settings.topics.dead_letters,
                   "alerts": settings.topics.alerts},
        "flush_interval_s": FLUSH_INTERVAL_S,
        "redis_s_note": "seconds inside Redis flushes, summed over the processes",
        "wall_s": wall,
        "active_s": active,
        "cpu_s": cpu,
        "events_per_s_wall": messages / wall if wall > 0 else None,
        "events_per_s_sustained": messages / active if active > 0 else None,
    }


def sum_worker_lines(lines: Sequence[str]) -> tuple[Figures, float]:
    """The workers' :data:`REFERENCE_COUNTS` and ``redis_s`` summed, and their joint
    active span (s).

    A worker that read nothing (``first=0.0``, e.g. more processes than
    partitions) adds no span.
    """
    totals: Figures = dict.fromkeys(REFERENCE_COUNTS, 0)
    totals["redis_s"] = 0.0
    firsts, lasts = [], []
    for line in lines:
        counts = parse_counts(line, REFERENCE_LINE)
        for key in REFERENCE_COUNTS:
            totals[key] += int(counts.get(key, 0))
        totals["redis_s"] += counts.get("redis_s", 0.0)
        if counts.get("first"):
            firsts.append(counts["first"])
            lasts.append(counts["last"])
    return totals, (max(lasts) - min(firsts) if firsts else 0.0)
