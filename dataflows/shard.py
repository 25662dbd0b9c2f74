"""A shard of accounts: the unit of state the data plane keys by, one call per batch.

Keying state by account made every event an item of its own: a key, a pickle
across processes to the account's worker, a Python call per (account, batch)
and a cascade of per-item branches after it (DESIGN.md, Scale: one item per
event ran 31,676 events/s in one process and 42,952 in two; one item per
(shard, input batch) ran 66,642 and 151,481). Here the parse step groups each
input batch's events by shard (:func:`shard_of`, a stable hash of the
subject), and one :class:`AccountShard` per shard:

1. runs each account's events, in their partition order, through its
   :class:`~accounts.processor.AccountProcessor` (dedupe, tier 1, lateness,
   features, usage detectors at day close);
2. with scoring on, scores every account of the batch that is due with one
   model call per model (at an input partition's day close, :class:`DayClosed`,
   also that partition's accounts silent through the day), then feeds each
   account's scores, usage alerts, lifecycle changes and inactivity alerts, in
   the order they were produced, to its risk tier and decisions;
3. returns one :class:`ShardOutputs`, the batch's outputs grouped by where they
   go, so routing them costs one step per destination per batch, not one per
   item; with the accounts table on, the accounts' records
   (:class:`~schemas.account.AccountRecord`: events folded by :mod:`accounts.record`,
   published primary scores added) are merged per account and leave with the
   features at each flush (one row per account per flush, not per batch; the
   snapshot keeps those not yet written).

Engine-free (plain Python over the kernels); :class:`~dataflows.logic.ShardLogic`
is its Bytewax adapter. Every account's processing is exactly what it was when
each account was a key of its own: the same events in the same order, so the
same outputs, whatever the shard count, batching or number of processes.

State bounds: an account's processor is dropped after ``idle_ttl`` without
events (longer than any window), its risk state once its tier is low and its
decisions have nothing to remember, or after its idle time
(:meth:`AccountShard._risk_ttl`). Idle time is judged on the wall clock and
in event time (the newest event time the account's own input partition has
reached here, minus the allowed lateness), whichever passes first, so a replay
of a year of history holds only the accounts active within the TTL, as a live
run does. Each account is judged on its own partition's time because
partitions read at their own pace (the processes of a replay, a backlog) can
be weeks apart: judged on the shard's newest event time, the accounts of a
partition behind were forgotten while live. With scoring on, the partitions'
day closes move their time too, so a shard none of whose accounts speak any
more still forgets them. (The kernel starts an account afresh after the same
silence in its own events, so eviction only frees memory.) A snapshot
re-pickles only the accounts an epoch touched; the others keep the bytes of
their last snapshot.
"""

from __future__ import annotations

import math
import pickle
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import numpy as np
from mypy_extensions import mypyc_attr

from accounts.config import AccountConfig
from accounts.debounce import ScoreRequest
from accounts.processor import AccountProcessor, AccountSnapshot
from accounts.record import AccountTraits, PendingRecord
from dataflows.account_table import AccountTable, BlobColumn, FloatColumn, IntColumn
from dataflows.shard_log import Entry, LogRef, ShardLog
from dataflows.state_codec import StateCodec
from decisions.engine import SCORES_KEPT, AccountDecisions, DecisionEngine
from featurestore.redis_store import FeatureUpdate
from schemas.account import AccountRecord
from schemas.alert import Alert, AlertTier
from schemas.clock import DAY
from schemas.dead_letter import DeadLetter, LateEvent
from schemas.decision import DecisionOutput, DecisionRecord
from schemas.erasure import Erasure
from schemas.event import Event, subject_key
from schemas.lifecycle import AccountChange, Cancellation
from schemas.score import RiskScore, RiskTier, ScoreRow
from schemas.signal import UsageSignal
from schemas.workflow import WorkflowOutcome
from scoring.risk import RiskPolicy, RiskTierTracker, ScorePublisher

# How long (wall clock, without news) a cancelled or opted-out account's decision
# state is kept: a final invoice's payment_failed must not start dunning.
REMEMBER_REFUSALS = timedelta(days=90)
_REMEMBER_REFUSALS_SECONDS = REMEMBER_REFUSALS.total_seconds()
# How often (wall clock) a shard looks for accounts idle long enough to forget, and
# how far its event time moves between two such looks.
EVICTION_CHECK = timedelta(minutes=10)
EVICTION_CHECK_EVENT_TIME = 86_400.0


def shard_of(subject: str, shards: int) -> int:
    """The shard of ``tenant:account``: stable across processes and restarts
    (CRC-32, not Python's per-process salted ``hash``)."""
    return zlib.crc32(subject.encode()) % shards


def shard_key(shard: int) -> str:
    return f"shard-{shard:04d}"


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(frozen=True, slots=True)
class DayClosed:
    """An input partition's watermark closed ``day`` (a UTC day number): the parse step
    puts one in every shard's list, right before the event that closed it, and each
    shard rescores that partition's accounts silent through the day (scoring on)."""

    partition: int
    day: int


# What a shard's input lists hold: events, erasures, and with scoring the inactivity
# alerts of its accounts and the partitions' day closes.
ShardItem = Event | Erasure | Alert | DayClosed


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(slots=True)
class ShardOutputs:
    """One batch's outputs of one shard, by destination."""

    features: list[FeatureUpdate] = field(default_factory=list)
    late: list[LateEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    cancellations: list[Cancellation] = field(default_factory=list)
    # What became of workflow triggers (workflow.* outcome events): Postgres only.
    outcomes: list[WorkflowOutcome] = field(default_factory=list)
    signals: list[UsageSignal] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)  # every tier
    scores: list[RiskScore] = field(default_factory=list)
    # Decision records, workflow triggers and signals, assignments; consent changes.
    decided: list[DecisionOutput | AccountChange] = field(default_factory=list)
    # Subjects erased: their state is gone; the erasure sink removes what was written.
    erasures: list[Erasure] = field(default_factory=list)
    # The accounts table: one record per account moved since the last flush.
    accounts: list[AccountRecord] = field(default_factory=list)
    # What the metrics count
    duplicates: int = 0
    late_events: int = 0
    failed: int = 0
    evicted_early: int = 0
    erased_events: int = 0  # an erased account's events read in the batch before its erasure

    def __bool__(self) -> bool:
        return bool(
            self.features or self.late or self.dead_letters or self.cancellations
            or self.outcomes or self.signals or self.alerts or self.scores or self.decided
            or self.erasures or self.accounts
        )


@dataclass(frozen=True)
class ShardConfig:
    """What a shard needs: the account kernel's config, and scoring when on."""

    account: AccountConfig
    # Wall-clock idle time after which an account's processor is dropped; longer
    # than any window, so only state that expired in event time goes.
    idle_ttl: timedelta
    # How long an account's changed features may wait before their Redis write.
    flush_interval: timedelta
    # Score a batch's requests (one call per model): see dataflows.flow.ScoringStage.
    score: Callable[[list[Any]], list[Any]] | None = None
    decisions: DecisionEngine | None = None
    # Which scores are published (scores on change): see scoring.risk.ScorePublisher.
    policy: RiskPolicy | None = None
    # Which traits fill the accounts table; None: no account records (no accounts sink).
    account_traits: AccountTraits | None = None
    # Accounts (and risk states) kept as live objects at most, the least recently
    # active going cold (their bytes) after each batch; None: no cap, and each epoch
    # cools the accounts it went by without instead.
    warm_accounts: int | None = None
    # Where snapshots put the accounts (dataflows.shard_log), with the shard count
    # that names a shard's files; None: in the snapshot itself (no recovery).
    log: ShardLog | None = None
    shards: int = 64
    # How account states are packed without a log (with one: the log's codec, whose
    # dictionaries are kept beside its files for a restart in any process).
    codec: StateCodec = field(default_factory=StateCodec)


# Silent scores kept per account, newest last: as many as the decision engine keeps
# score contexts, so the score a decision was judged with can always be published.
SILENT_KEPT = SCORES_KEPT


class _Risk:
    """One account's risk tier, score publication and decisions."""

    __slots__ = ("decisions", "newest", "publisher", "seen", "silent", "touched", "tracker")

    def __init__(
        self, engine: DecisionEngine | None, snapshot: bytes | None, touched: datetime,
    ) -> None:
        # (a snapshot from before risk states were pickled each, a tuple, was pickled
        # when restored: see AccountShard.__init__)
        state: Any = (None, None, None, (), float("-inf")) if snapshot is None else (
            pickle.loads(snapshot))
        tier_state, decision_state, published, silent, newest = state
        self.tracker = RiskTierTracker(tier_state)
        self.decisions = None if engine is None else AccountDecisions(engine, decision_state)
        self.publisher = ScorePublisher(published)
        # Recent unpublished primary scores by id (a decision may yet reference one): the
        # scores themselves, or as rows once snapshotted (RiskScore.to_row; objects in
        # snapshots taken before 2026-11-30), made scores again only if published.
        self.silent: dict[str, RiskScore | ScoreRow] = dict(silent)
        self.newest = newest  # the newest score time seen (epoch s)
        self.touched = touched  # wall clock
        self.seen = float("-inf")  # the newest event time of anything it was fed

    def snapshot(self) -> bytes:
        """Pickled once, here: the shard's snapshot then carries bytes, which Bytewax
        re-pickles at almost no cost every epoch (objects, such as the scores kept,
        cost a ``dataclasses.fields`` walk each, every epoch, touched or not)."""
        decisions = self.decisions
        silent = self.silent
        for score_id, score in silent.items():  # each score made a row once, kept so
            if not isinstance(score, tuple):
                silent[score_id] = score.to_row()
        state = (
            self.tracker.snapshot(),
            None if decisions is None else decisions.snapshot(),
            self.publisher.snapshot(),
            tuple(silent.items()),
            self.newest,
        )
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def forgettable(self) -> bool:
        """A low tier with nothing to remember, and no published score still standing,
        is the default state."""
        return (
            self.tracker.tier is RiskTier.LOW
            and (self.decisions is None or self.decisions.forgettable())
            and not self.publisher.live_at(self.newest)
        )


# (account processors' snapshots, risk states' snapshots, each pickled once per epoch
# that touched the account; the accounts whose feature write was pending; event times:
# each account's newest, each risk state's newest, the shard's newest). Older
# snapshots have the first two or three only.
EventTimes = tuple[dict[str, float], dict[str, float], float]
# (accounts' state, risk states, accounts whose features were not yet written, event
# times, account records not yet written, (each account's input partition, each
# partition's newest event time)); older snapshots: the first two to five.
FullSnapshot = tuple[dict[str, bytes], dict[str, Any], tuple[str, ...], EventTimes,
                     tuple[AccountRecord, ...], tuple[dict[str, int], dict[int, float]]]


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(frozen=True)
class LoggedShard:
    """A shard's snapshot with a shard log: its accounts are in the log's files
    (``ref``; None: it never held one), the rest as in a full snapshot."""

    ref: LogRef | None
    dirty: tuple[str, ...]
    seen_until: float
    records: tuple[AccountRecord, ...]
    partition_seen: dict[int, float]


ShardSnapshot = FullSnapshot | LoggedShard


class AccountShard:
    """The accounts of one shard (see the module docstring)."""

    def __init__(
        self,
        config: ShardConfig,
        clock: Callable[[], datetime],
        # A ShardSnapshot, or an older one's first two to five (so not its type: a
        # compiled module checks the annotation at run time, see churnwatch.native).
        snapshot: tuple[Any, ...] | LoggedShard | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._codec = config.codec if config.log is None else config.log.codec
        now = clock()
        # Live processors of the warm accounts; a cold one lives as its snapshot bytes
        # in _frozen alone, and is built again from them when it next has news.
        self._accounts: dict[str, AccountProcessor] = {}
        self._risk: dict[str, _Risk] = {}  # warm risk states
        # Every account's fields, warm or cold, in the columns of one table (each read
        # like a dict by subject; see dataflows.account_table for why not dicts).
        table = self._table = AccountTable()
        self._last_active = FloatColumn(table)  # every account held (wall clock, epoch s)
        # Snapshots of accounts no epoch has touched since: reused as they are.
        self._frozen = BlobColumn(table)
        self._touched: set[str] = set()
        self._risk_frozen = BlobColumn(table)
        self._risk_expires = FloatColumn(table)  # when a cold risk state may go (wall, s)
        self._risk_touched: set[str] = set()
        self._dirty: set[str] = set()  # features changed, not yet written
        # Account records (the accounts table) not yet written, one per account: the
        # batches' records merged, written with the features at each flush.
        self._records: dict[tuple[str, str], PendingRecord] = {}
        self._flush_due: datetime | None = None
        self._next_eviction = now + EVICTION_CHECK
        # Event time (epoch s): each account's newest event, when each risk state may go
        # (its newest item plus its own TTL), the shard's newest event; idle state goes
        # by these too (a replay).
        self._newest = FloatColumn(table)
        self._risk_until = FloatColumn(table)
        self._seen_until = float("-inf")
        self._batch_time = now.timestamp()  # the wall clock of the batch in hand (epoch s)
        self._next_event_eviction = float("-inf")
        # The input partition each account's events come from: a partition's day close
        # rescores its own silent accounts. And how far each partition's events here
        # have reached (event time): an account's idle time is judged on its own
        # partition's, which may run far behind another's (a replay or a backlog read
        # by processes of their own pace).
        self._partition_of = IntColumn(table)
        self._partition_seen: dict[int, float] = {}
        self._eviction_checked: dict[int, float] = {}  # each partition's time at the last look
        # Busy seconds of the two phases (the metrics read and reset them).
        self.busy_accounts = 0.0
        self.busy_risk = 0.0
        # With a shard log: the files holding the accounts as of the last snapshot, the
        # accounts forgotten since, and whether the next snapshot writes them all anew.
        self._log: LogRef | None = None
        self._gone: set[str] = set()
        self._compact = False
        if isinstance(snapshot, LoggedShard):
            self._log = snapshot.ref
            self._load(self._read_log(snapshot.ref), now)
            self._restore_rest(snapshot.dirty, snapshot.seen_until, snapshot.records,
                               snapshot.partition_seen, now)
        elif snapshot is not None:  # a whole snapshot (no log then, or an older run)
            self._compact = True  # with a log now: its first snapshot writes them all
            self._load(self._entries(snapshot), now)
            processors = snapshot[0]
            # The crash may have lost the feature writes still pending at the snapshot:
            # write those once more (every account's, from a snapshot that did not say).
            dirty = snapshot[2] if len(snapshot) > 2 else tuple(processors)
            # event times (older snapshots: the wall clock alone)
            seen_until = snapshot[3][2] if len(snapshot) > 3 else float("-inf")
            # account records the crash may have kept from the table
            records = snapshot[4] if len(snapshot) > 4 else ()
            # how far each input partition got
            partition_seen = snapshot[5][1] if len(snapshot) > 5 else {}
            self._restore_rest(dirty, seen_until, records, partition_seen, now)

    def _read_log(self, ref: LogRef | None) -> dict[str, Entry]:
        """The accounts of a logged snapshot, read back from the shard log's files."""
        if ref is None:
            return {}
        log = self._config.log
        if log is None:
            msg = "a snapshot written to a shard log, restored without one"
            raise ValueError(msg)
        return log.read(ref)

    @staticmethod
    def _entries(snapshot: tuple[Any, ...]) -> dict[str, Entry]:
        """A whole snapshot's accounts as the shard log's entries (an older snapshot
        has the first two to five of its parts). A risk state is a tuple in
        snapshots taken before risk states were pickled each: pickled here."""
        processors, risks = snapshot[0], snapshot[1]
        newest, risk_until = snapshot[3][:2] if len(snapshot) > 3 else ({}, {})
        partition_of = snapshot[5][0] if len(snapshot) > 5 else {}
        subjects = dict.fromkeys(processors)
        for held in (risks, newest, risk_until, partition_of):
            subjects.update(dict.fromkeys(held))
        entries: dict[str, Entry] = {}
        for subject in subjects:
            risk = risks.get(subject)
            if risk is not None and not isinstance(risk, bytes):
                risk = pickle.dumps(risk, protocol=pickle.HIGHEST_PROTOCOL)
            entries[subject] = (processors.get(subject), risk, newest.get(subject),
                                risk_until.get(subject), partition_of.get(subject))
        return entries

    def _load(self, entries: dict[str, Entry], now: datetime) -> None:
        """The restored accounts into the table's columns, a column at a time (at 1M
        accounts, a claim per account and column took seconds of the restart). Every
        account starts cold: nothing is unpickled until it has news."""
        if not entries:
            return
        states, risks, newest, risk_until, partitions = (
            list(column) for column in zip(*entries.values(), strict=True))
        started = now.timestamp()
        # Cold risk states go once the longest memory any could have has passed
        # without news (a restart does not know each one's own: it would have to
        # unpickle them all); forgetting one later than needed changes nothing.
        expires = (now + self._longest_risk_memory()).timestamp()
        self._table.load(list(entries))
        self._frozen.load(states)
        self._last_active.load([None if state is None else started for state in states])
        self._risk_frozen.load(risks)
        self._risk_expires.load([None if risk is None else expires for risk in risks])
        self._newest.load(newest)
        self._risk_until.load(risk_until)
        self._partition_of.load(partitions)
        self._table.loaded()

    def _restore_rest(
        self, dirty: Iterable[str], seen_until: float, records: Iterable[AccountRecord],
        partition_seen: dict[int, float], now: datetime,
    ) -> None:
        """What a snapshot holds beside the accounts: the feature writes the crash may
        have lost (written once more), the shard's event time, the account records not
        yet written, and how far each input partition got."""
        self._dirty = set(dirty)
        self._seen_until = seen_until
        if seen_until > float("-inf"):
            self._next_event_eviction = seen_until + EVICTION_CHECK_EVENT_TIME
        self._records = {record.key: PendingRecord.of(record) for record in records}
        self._partition_seen = dict(partition_seen)
        self._flush_due = now if self._dirty or self._records else None

    def __len__(self) -> int:
        """Accounts held, warm or cold."""
        return len(self._last_active)

    @property
    def risk_states(self) -> int:
        """Risk states held, warm or cold."""
        return len(self._risk.keys() | set(self._risk_frozen.keys()))

    @property
    def state_bytes(self) -> int:
        """Bytes of the packed states held (cold accounts' and the warm ones' last),
        with those replaced since the buffer's last compaction."""
        return len(self._table.data)

    @property
    def warm(self) -> int:
        """Accounts held as live objects (the others as snapshot bytes)."""
        return len(self._accounts)

    def _processor(self, subject: str) -> AccountProcessor:
        """The account's processor: the live one, or one built from its bytes (then
        kept live), or a new one."""
        processor = self._accounts.get(subject)
        if processor is None:
            processor = self._accounts[subject] = self._thaw(subject)
        return processor

    def _thaw(self, subject: str) -> AccountProcessor:
        frozen = self._frozen.get(subject)
        return AccountProcessor(
            self._config.account,
            None if frozen is None else AccountSnapshot(self._codec.unpack(frozen)),
        )

    # -- batches ---------------------------------------------------------------

    def process(self, inputs: Iterable[list[ShardItem]]) -> ShardOutputs:
        """One batch: lists of events (each in partition order) with erasures among them
        and, with scoring, the inactivity alerts of the shard's accounts and the day
        closes of the input partitions, each where its partition read it.

        Events are grouped by account, and each account's run through its kernel at
        once; an inactivity alert or a day close is a barrier: what came before it is
        run first. So each is handled after exactly the events its partition read
        before it, however the input was batched. (Inactivity alerts go to the
        decisions only: they reach the alert sinks from the tracker.)"""
        started = time.perf_counter()
        config = self._config
        now = self._clock()
        self._batch_time = now.timestamp()
        lateness = config.account.allowed_lateness_seconds
        out = ShardOutputs()
        feed: list[Any] = []  # what the decisions need, by account, in production order
        pending: dict[str, list[Any]] = {}
        erasing: set[str] = set()  # the pending subjects with an erasure among their items
        erased: set[str] = set()  # every subject this batch erased or erased a user of
        touched: set[str] = set()
        # A day close says its partition's events have reached at least this time (the
        # day's end plus the lateness): a shard none of whose accounts speak any more
        # still moves on in event time, and forgets them.
        closed_until = float("-inf")
        for item in inputs:
            event: Any
            for event in item:  # typed Any: the hot loop tells kinds apart by type()
                kind = type(event)
                if kind is Alert or kind is DayClosed:
                    if pending:
                        self._run(pending, erasing, out, feed, now)
                        touched.update(pending)
                        pending, erasing = {}, set()
                    if kind is DayClosed:
                        self._close_day(event, feed)
                        reached = (event.day + 1) * DAY + lateness
                        closed_until = max(closed_until, reached)
                        self._reached(event.partition, reached)
                    elif event.subject not in erased:  # an inactivity alert
                        feed.append(event)
                    continue
                subject = event.subject
                if kind is Erasure:
                    erasing.add(subject)
                    erased.add(subject)
                events = pending.get(subject)
                if events is None:
                    pending[subject] = [event]
                else:
                    events.append(event)
        if pending:
            self._run(pending, erasing, out, feed, now)
            touched.update(pending)
        self.busy_accounts += time.perf_counter() - started
        if config.score is not None:
            started = time.perf_counter()
            self._decide(feed, out, now)
            if out.scores and config.account_traits is not None:
                self._record_scores(out)
            self.busy_risk += time.perf_counter() - started
        if (self._dirty or self._records) and self._flush_due is None:
            self._flush_due = now + config.flush_interval
        newest_of = self._newest
        held = [subject for subject in touched if subject in newest_of]
        if held or closed_until > self._seen_until:
            newest = max([closed_until, *(newest_of[subject] for subject in held)])
            if newest > self._seen_until:
                self._seen_until = newest
        # Look for idle state once a partition's time has moved a day since the last look.
        checked = self._eviction_checked
        if any(seen >= checked.get(p, -math.inf) + EVICTION_CHECK_EVENT_TIME
               for p, seen in self._partition_seen.items()) or (
                self._seen_until >= self._next_event_eviction and not self._partition_seen):
            self._evict_in_event_time()
            self._eviction_checked = dict(self._partition_seen)
            self._next_event_eviction = self._seen_until + EVICTION_CHECK_EVENT_TIME
        cap = config.warm_accounts
        if cap is not None and (len(self._accounts) > cap or len(self._risk) > cap):
            self._shed(cap)
        return out

    def _run(
        self, pending: dict[str, list[Any]], erasing: set[str], out: ShardOutputs,
        feed: list[Any], now: datetime,
    ) -> None:
        """Each account's pending items through its kernel, in order."""
        for subject, events in pending.items():
            if subject in erasing:
                self._process_erasing(subject, events, out, feed, now)
            else:
                self._process_account(subject, events, out, feed, now)

    def _close_day(self, closed: DayClosed, feed: list[Any]) -> None:
        """A day the partition's watermark closed: a score request, as of the day's end,
        for each of the partition's accounts here that was silent through it (see
        :meth:`AccountProcessor.rescore`; without scoring no day closes come)."""
        start = closed.day * DAY
        # Silent: its newest event before the day (active that day, or no event yet:
        # no need to unpickle it); by subject, an order no history of slots changes.
        silent = (self._partition_of.values() == closed.partition) & (
            self._newest.values() < start)
        for subject in sorted(self._table.subjects(silent)):
            request = self._processor(subject).rescore(closed.day)
            if request is not None:
                feed.append(request)

    def _process_account(
        self, subject: str, events: list[Event], out: ShardOutputs, feed: list[Any],
        now: datetime,
    ) -> None:
        # Taken out and put back: the live accounts stay in the order they were last
        # active, the least recent first (the first to go cold, see _shed).
        processor = self._accounts.pop(subject, None)
        if processor is None:
            processor = self._thaw(subject)
        self._accounts[subject] = processor
        result = processor.process(events)
        self._last_active[subject] = self._batch_time
        self._newest[subject] = processor.newest
        partition = events[-1].partition
        if self._partition_of.get(subject) != partition:
            self._partition_of[subject] = partition
        self._reached(partition, processor.newest)
        self._touched.add(subject)
        out.duplicates += result.duplicates
        out.late_events += result.late
        out.failed += result.failed
        dedupe = processor.dedupe
        if dedupe.evicted_early:
            out.evicted_early += dedupe.evicted_early
            dedupe.evicted_early = 0
        if result.features_moved:
            self._dirty.add(subject)
        traits = self._config.account_traits
        if traits is not None and result.events:
            events = result.events
            tenant, account = events[0].tenant_id, events[0].account_id
            pending = self._records.get((tenant, account))
            if pending is None:
                pending = self._records[(tenant, account)] = PendingRecord(tenant, account)
            pending.add_events(events, traits, self._config.account.lifecycle.kinds)
        self._route(result.outputs, out, feed if self._config.score is not None else None)

    def _process_erasing(
        self, subject: str, items: list[Any], out: ShardOutputs, feed: list[Any],
        now: datetime,
    ) -> None:
        """An account's items with an erasure among them, in order. An account's
        erasure takes its events before it in the batch along (they are not
        processed: what they would produce would only be erased); a user's erasure
        replaces the user among the account's distinct users. Events after it are
        the parse step's to refuse, or start the account afresh."""
        segment: list[Event] = []
        for item in items:
            if type(item) is not Erasure:
                segment.append(item)
                continue
            out.erasures.append(item)
            if item.user_id is None:
                out.erased_events += len(segment)
                segment = []
                self._erase_account(subject, out, feed)
                continue
            if segment:
                self._process_account(subject, segment, out, feed, now)
                segment = []
            processor = self._processor(subject) if subject in self._last_active else None
            if processor is not None and processor.forget_user(item.user_id, item.tombstone):
                self._touched.add(subject)
        if segment:
            self._process_account(subject, segment, out, feed, now)

    def _erase_account(self, subject: str, out: ShardOutputs, feed: list[Any]) -> None:
        """Forget the account (its next snapshot holds nothing of it, nor the shard log
        files it names), and what this batch produced for it so far."""
        self._compact = True
        self._forget_account(subject)
        self._forget_risk(subject)
        tenant, account = subject.split(":", 1)

        def other(item: Any) -> bool:
            return not (
                getattr(item, "tenant_id", None) == tenant
                and getattr(item, "account_id", None) == account
            )

        feed[:] = filter(other, feed)
        self._records.pop((tenant, account), None)
        for name in ("features", "cancellations", "outcomes", "signals", "alerts", "scores",
                     "decided"):
            kept = list(filter(other, getattr(out, name)))
            setattr(out, name, kept)
        out.late = [late for late in out.late if late.event.subject != subject]

    def _record_scores(self, out: ShardOutputs) -> None:
        """The published primary scores into their accounts' records awaiting the next
        flush (an account the stream touches in many batches is one row per flush, not
        one per batch)."""
        records = self._records
        for score in out.scores:
            if not score.shadow:
                key = (score.tenant_id, score.account_id)
                pending = records.get(key)
                if pending is None:
                    pending = records[key] = PendingRecord(score.tenant_id, score.account_id)
                pending.add_score(score)

    def _pending_records(self) -> tuple[AccountRecord, ...]:
        """The account records not yet written, as a snapshot keeps them."""
        return tuple([pending.record() for pending in self._records.values()])

    @staticmethod
    def _route(outputs: list[Any], out: ShardOutputs, feed: list[Any] | None) -> None:
        """Sort one account's outputs by destination, keeping their order."""
        for item in outputs:
            kind = type(item)
            if kind is Alert:
                out.alerts.append(item)
                # Tier-1 alerts reach the decisions inside the score they made due
                # (so the decision sees the risk the event caused); usage alerts directly.
                if feed is not None and item.tier is AlertTier.USAGE_SIGNAL:
                    feed.append(item)
            elif kind is ScoreRequest or kind is AccountChange:
                if feed is not None:
                    feed.append(item)
            elif kind is UsageSignal:
                out.signals.append(item)
            elif kind is LateEvent:
                out.late.append(item)
            elif kind is Cancellation:
                out.cancellations.append(item)
            elif kind is WorkflowOutcome:
                out.outcomes.append(item)
            elif kind is DeadLetter:
                out.dead_letters.append(item)
            else:  # pragma: no cover - a new output kind must be routed here
                msg = f"no destination for {kind.__name__}"
                raise TypeError(msg)

    def _decide(self, feed: list[Any], out: ShardOutputs, now: datetime) -> None:
        """Score the due accounts (one call per model) and run each account's risk tier
        and decisions over its items, in the order they were produced."""
        config = self._config
        assert config.score is not None
        engine = config.decisions
        touched: dict[str, _Risk] = {}
        published = False
        for item in config.score(feed):
            subject = subject_key(item.tenant_id, item.account_id)
            risk = touched.get(subject)
            if risk is None:
                risk = self._risk.get(subject)
                if risk is None:  # cold (its bytes) or new
                    frozen = self._risk_frozen.get(subject)
                    risk = self._risk[subject] = _Risk(
                        engine, None if frozen is None else self._codec.unpack(frozen), now)
                    self._risk_expires.pop(subject, None)
                risk.touched = now
                touched[subject] = risk
                self._risk_touched.add(subject)
            seen = (item.score_ts if isinstance(item, RiskScore)
                    else item.event_time.timestamp())
            if seen > risk.seen:
                risk.seen = seen
            decisions = risk.decisions
            decided: list[Any] = []
            if isinstance(item, RiskScore):
                if item.shadow:
                    if published:  # a shadow score follows its primary
                        out.scores.append(item)
                    continue
                published = self._publish(risk, item, out)
                tier_alert = risk.tracker.update(item)
                if decisions is not None:
                    decided += decisions.observe_score(item)
                if tier_alert is not None:
                    out.alerts.append(tier_alert)
                    if decisions is not None:
                        decided += decisions.decide(tier_alert)
            elif decisions is None:
                continue
            elif isinstance(item, Alert):
                decided += decisions.decide(item)
            else:
                if item.contact_allowed is not None:
                    out.decided.append(item)  # consent: recorded in contact_preferences
                decided += decisions.observe_change(item)
            if decided:
                self._publish_referenced(risk, decided, out)
                out.decided.extend(decided)
        warm = self._risk
        memory = self._risk_memory()
        for subject, risk in touched.items():
            if risk.forgettable():
                self._forget_risk(subject)
            else:  # its own TTL, as its news left it (cold, it is not unpickled to know)
                self._risk_until[subject] = risk.seen + self._risk_ttl(risk, memory)
                warm.pop(subject, None)  # put back last: the most recently active (_shed)
                warm[subject] = risk

    def _forget_risk(self, subject: str) -> None:
        self._gone.add(subject)
        self._risk.pop(subject, None)
        self._risk_frozen.pop(subject, None)
        self._risk_expires.pop(subject, None)
        self._risk_touched.discard(subject)
        self._risk_until.pop(subject, None)

    def _publish(self, risk: _Risk, score: RiskScore, out: ShardOutputs) -> bool:
        """Publish ``score`` if it changes something; else keep it, silent, for a while."""
        policy = self._config.policy
        risk.newest = max(risk.newest, score.score_ts)
        if policy is None or risk.publisher.publish(score, policy):
            out.scores.append(score)
            return True
        silent = risk.silent
        silent[score.score_id] = score
        if len(silent) > SILENT_KEPT:
            del silent[next(iter(silent))]
        return False

    @staticmethod
    def _publish_referenced(risk: _Risk, decided: list[Any], out: ShardOutputs) -> None:
        """A decision judged with a silent score publishes it: every decision's
        ``score_id`` names a stored score."""
        for record in decided:
            if isinstance(record, DecisionRecord) and record.score_id in risk.silent:
                score = risk.silent.pop(record.score_id)
                out.scores.append(RiskScore.from_row(score) if isinstance(score, tuple)
                                  else score)

    # -- time ------------------------------------------------------------------

    def notify_at(self) -> datetime:
        return self._next_eviction if self._flush_due is None else min(
            self._next_eviction, self._flush_due
        )

    def on_notify(self) -> ShardOutputs:
        now = self._clock()
        out = ShardOutputs()
        if self._flush_due is not None and now >= self._flush_due:
            self._flush(out)
        if now >= self._next_eviction:
            self._evict(now)
            self._next_eviction = now + EVICTION_CHECK
        return out

    def on_eof(self) -> ShardOutputs:
        """The end of a finite input: every account's features as of its newest event
        (values such as days since the last activity move with time alone)."""
        out = ShardOutputs()
        self._dirty = set(self._last_active.keys())  # warm and cold
        self._flush(out)
        return out

    def _flush(self, out: ShardOutputs) -> None:
        self._flush_due = None
        if self._records:
            out.accounts.extend([pending.record() for pending in self._records.values()])
            self._records = {}
        accounts = self._accounts
        for subject in self._dirty:
            if subject not in self._last_active:
                continue  # forgotten meanwhile
            # A cold account is thawed for its write only: kept live, a flush after a
            # backlog would hold every account of it live at once.
            processor = accounts.get(subject)
            update = (processor if processor is not None
                      else self._thaw(subject)).feature_update()
            if update is not None:
                out.features.append(update)
        self._dirty = set()

    def _evict(self, now: datetime) -> None:
        """Forget the accounts and risk states idle long enough on the wall clock."""
        subjects = self._table.subjects
        idle_before = (now - self._config.idle_ttl).timestamp()
        for subject in subjects(self._last_active.values() <= idle_before):
            self._forget_account(subject)
        memory = self._risk_memory()
        for subject in [s for s, r in self._risk.items()
                        if now >= r.touched + timedelta(seconds=self._risk_ttl(r, memory))]:
            self._forget_risk(subject)
        for subject in subjects(self._risk_expires.values() <= now.timestamp()):
            self._forget_risk(subject)

    def _evict_in_event_time(self) -> None:
        """Forget the accounts and risk states idle long enough in event time: those
        whose newest event is older than the TTL at their partition's watermark (the
        newest event time its events here reached, minus the allowed lateness), and
        the risk states whose own TTL (:meth:`_risk_ttl`, as of their last news) has
        passed at it. An account of no known partition (restored from a snapshot
        that did not say) is judged on the shard's watermark, as before."""
        clock = self._config.account.clock
        shard_watermark = clock.watermark(self._seen_until)
        # each slot's watermark: its partition's, or the shard's
        partitions = self._partition_of.values()
        watermark = np.full(len(partitions), shard_watermark)
        for partition, seen in self._partition_seen.items():
            watermark[partitions == partition] = clock.watermark(seen)
        ttl = self._config.idle_ttl.total_seconds()
        subjects = self._table.subjects
        # judged before any account goes (forgetting one forgets its partition)
        idle_risks = subjects(self._risk_until.values() < watermark)
        for subject in subjects(self._newest.values() < watermark - ttl):
            self._forget_account(subject)
        if self._config.policy is None:
            return
        for subject in idle_risks:
            self._forget_risk(subject)

    def _reached(self, partition: int, event_time: float) -> None:
        """``partition``'s events here have reached ``event_time`` (epoch s)."""
        if event_time > self._partition_seen.get(partition, -math.inf):
            self._partition_seen[partition] = event_time

    def _forget_account(self, subject: str) -> None:
        self._gone.add(subject)
        self._partition_of.pop(subject, None)
        self._last_active.pop(subject, None)
        self._accounts.pop(subject, None)
        self._frozen.pop(subject, None)
        self._touched.discard(subject)
        self._dirty.discard(subject)
        self._newest.pop(subject, None)

    def _longest_risk_memory(self) -> timedelta:
        config = self._config
        longest = REMEMBER_REFUSALS
        if config.policy is not None:
            longest = max(longest, config.policy.ttl)
        if config.decisions is not None:
            longest = max(
                longest, timedelta(seconds=config.decisions.policy.longest_memory_seconds)
            )
        return longest

    def _risk_memory(self) -> float:
        """How long (seconds) any risk state must be remembered after its last news:
        until its tier lapses and every window of the live decision policy passes.
        Asked once per batch or sweep, not per account: reading the live policy is a
        call into its holder and a cached property (about 3,600 instructions), and
        a reload between batches is seen at the next. Without scoring there is no
        risk state: 0."""
        policy = self._config.policy
        if policy is None:
            return 0.0
        memory = policy.ttl.total_seconds()
        engine = self._config.decisions
        if engine is not None:
            memory = max(memory, float(engine.policy.longest_memory_seconds))
        return memory

    @staticmethod
    def _risk_ttl(risk: _Risk, memory: float) -> float:
        """After this long without news (seconds), nothing is left to remember of
        ``risk``: ``memory`` (:meth:`_risk_memory`), or longer for a cancellation or an
        opt-out (REMEMBER_REFUSALS). In seconds, not a timedelta: it is asked for every
        account a batch scores."""
        decisions = risk.decisions
        if decisions is not None and (
            decisions.cancelled or (decisions.consent and not decisions.consent[0])
        ):
            return max(memory, _REMEMBER_REFUSALS_SECONDS)
        return memory

    # -- recovery --------------------------------------------------------------

    def snapshot(self) -> ShardSnapshot:
        """Every account's state; only the accounts touched since the last snapshot
        are pickled again. Without a warm cap, the accounts this epoch did not touch
        then go cold: their live objects are dropped, their bytes stay (an idle
        account costs its snapshot's size, about 1 KB, not its objects' several).
        Under a cap they stay live until the cap sheds them, the least recently
        active first (:meth:`_shed`): on a live stream, where an account's next event
        usually comes epochs later, cooling each epoch cost a thaw per event (25 of
        244 us per event in ``bench_shards --epoch-events 0.5``)."""
        frozen = self._frozen
        touched = self._touched
        for subject in touched:
            processor = self._accounts.get(subject)
            if processor is not None:
                frozen[subject] = self._codec.pack(processor.snapshot().state, subject)
        self._touched = set()
        risks = self._risk_frozen
        risk_touched = self._risk_touched
        for subject in risk_touched:
            risk = self._risk.get(subject)
            if risk is not None:
                risks[subject] = self._codec.pack(risk.snapshot(), subject)
        self._risk_touched = set()
        if self._config.warm_accounts is None:
            self._cool(touched, risk_touched)
        gone, self._gone = self._gone, set()
        log = self._config.log
        if log is not None:
            changed = touched | risk_touched | gone
            if changed or self._compact:
                self._append(log, changed)
            return LoggedShard(self._log, tuple(self._dirty), self._seen_until,
                               self._pending_records(), dict(self._partition_seen))
        event_times = (dict(self._newest.items()), dict(self._risk_until.items()),
                       self._seen_until)
        return (dict(frozen.items()), dict(risks.items()), tuple(self._dirty), event_times,
                self._pending_records(),
                (dict(self._partition_of.items()), dict(self._partition_seen)))

    def _append(self, log: ShardLog, changed: set[str]) -> None:
        """The changed accounts' entries as the shard log's next file; all the shard's
        accounts, once the deltas would outweigh the last full file (or after an
        erasure)."""
        ref = self._log
        full = ref is None or self._compact or ref.due_full(len(changed))
        if full:  # every account the shard holds (a gone one is in none of these)
            held = self._table.subjects(
                self._frozen.present() | self._risk_frozen.present()
                | self._newest.present() | self._risk_until.present())
            entries = {subject: self._entry(subject) for subject in held}
        else:
            entries = {subject: self._entry(subject) for subject in changed}
        if ref is not None:
            shard = ref.shard
        elif entries:
            shard = shard_of(next(iter(entries)), self._config.shards)
        else:
            return  # never held an account: nothing to write
        self._log = log.append(ref, shard, entries, full)
        self._compact = False

    def _entry(self, subject: str) -> Entry:
        return (self._frozen.get(subject), self._risk_frozen.get(subject),
                self._newest.get(subject), self._risk_until.get(subject),
                self._partition_of.get(subject))

    def _shed(self, cap: int) -> None:
        """Keep at most ``cap`` accounts and ``cap`` risk states live: the least
        recently active go cold now, packed first if changed since their last
        snapshot (the next snapshot then has nothing more to pack for them). What an
        account does is the same live or cold; a cold one costs a thaw at its next
        news, a live one several times its bytes of memory."""
        accounts, touched = self._accounts, self._touched
        for subject in list(islice(accounts, len(accounts) - cap)) if len(accounts) > cap else ():
            processor = accounts.pop(subject)
            if subject in touched:  # stays touched: changed this epoch (the shard log)
                self._frozen[subject] = self._codec.pack(processor.snapshot().state, subject)
        risks, risk_touched = self._risk, self._risk_touched
        memory = self._risk_memory()
        for subject in list(islice(risks, len(risks) - cap)) if len(risks) > cap else ():
            risk = risks.pop(subject)
            if subject in risk_touched:
                self._risk_frozen[subject] = self._codec.pack(risk.snapshot(), subject)
            self._risk_expires[subject] = (
                risk.touched + timedelta(seconds=self._risk_ttl(risk, memory))).timestamp()

    def _cool(self, touched: set[str], risk_touched: set[str]) -> None:
        """Drop the live objects of the accounts an epoch went by without; their
        snapshot bytes are current (nothing changes an account but its news). Only
        without a warm cap: with one, :meth:`_shed` bounds the live accounts."""
        dirty = self._dirty
        for subject in [s for s in self._accounts if s not in touched and s not in dirty]:
            del self._accounts[subject]
        memory = self._risk_memory()
        for subject in [s for s in self._risk if s not in risk_touched]:
            risk = self._risk.pop(subject)
            self._risk_expires[subject] = (
                risk.touched + timedelta(seconds=self._risk_ttl(risk, memory))).timestamp()
