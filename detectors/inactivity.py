"""Inactivity: an account silent for N days of event time.

An inactivity episode starts at an account's last activity and is due N days
later; its signal is dated by that due day (so its id is the same in every
replay) and emitted once.

Progress is tracked per input partition. An account's events all live in one
partition (they are keyed by account), and one worker reads a partition in
offset order, so a tracker that sees that partition's batches in order knows
exactly which accounts were active up to the partition's newest event time.
The input stage summarises each batch it reads into an :class:`ActivityBatch`
(accounts' first and last activity in the batch, silences inside it, and the
newest event time), and one :class:`InactivityTracker` per partition:

* signals a finished silence (an account came back after N days or more) once
  the watermark has passed its due moment: an on-time straggler (an event up
  to the allowed lateness out of order) is never older than the watermark, so
  after that it cannot shorten the silence below N days;
* signals an ongoing silence when the partition's watermark (its newest event
  time minus the allowed lateness) enters a day at whose start the account
  has been silent N days: a silent account sends no event to react to.

Nothing depends on how events were batched, on other partitions' pace, or on
how many workers run: the same input gives the same signals. Bounded: an
account signalled and silent ``forget_after_days`` longer is forgotten.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import pairwise

from mypy_extensions import mypyc_attr

from detectors.usage import InactivityRule, Observation, make_signal
from schemas.clock import DAY, EventClock, day_of
from schemas.event import OUTCOME_EVENT_TYPES, Event
from schemas.signal import UsageSignal


def activity_matcher(matches: Callable[[str], bool]) -> Callable[[str], bool]:
    """Whether an event type is the account's activity: what the activity feature's
    ``matches`` says, except a workflow outcome (``workflow.*``, reported by the
    system that runs a workflow), which is never the account's own doing, even
    under a catch-all pattern such as ``*``."""

    def is_activity(event_type: str) -> bool:
        return event_type not in OUTCOME_EVENT_TYPES and matches(event_type)

    return is_activity


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(frozen=True, slots=True)
class AccountActivity:
    """One account's activity within one batch (epoch seconds)."""

    tenant_id: str
    account_id: str
    first: float
    last: float
    # silences of N days or more inside the batch, as (last activity, next activity)
    gaps: tuple[tuple[float, float], ...] = ()


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(frozen=True, slots=True)
class ActivityBatch:
    """What one input batch of one partition says about activity and progress."""

    partition: int
    seen_until: float  # newest event time in the batch (any event type)
    accounts: tuple[AccountActivity, ...]
    # (tenant, account) erased (schemas.erasure): the tracker forgets them
    erased: tuple[tuple[str, str], ...] = ()


def summarize_activity(
    partition: int,
    events: Iterable[Event],
    is_activity: Callable[[str], bool],
    idle_after_seconds: float,
) -> ActivityBatch | None:
    """The :class:`ActivityBatch` of one partition's events, in read order."""
    seen_until = -math.inf
    times: dict[tuple[str, str], list[float]] = {}
    for event in events:
        ts = event.event_time.timestamp()
        if ts > seen_until:
            seen_until = ts
        if is_activity(event.event_type):
            times.setdefault((event.tenant_id, event.account_id), []).append(ts)
    if seen_until == -math.inf:
        return None
    accounts = []
    for (tenant, account), stamps in times.items():
        stamps.sort()
        gaps = tuple(
            (earlier, later)
            for earlier, later in pairwise(stamps)
            if later - earlier >= idle_after_seconds
        )
        accounts.append(AccountActivity(tenant, account, stamps[0], stamps[-1], gaps))
    return ActivityBatch(partition, seen_until, tuple(accounts))


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(frozen=True, slots=True)
class TrackerSnapshot:
    accounts: tuple[tuple[str, str, float, float | None], ...]
    seen_until: float
    checked_day: int
    # (tenant, account, silence start, silence end) whose due the watermark has not passed
    pending: tuple[tuple[str, str, float, float], ...] = ()


# One account's state in a tracker: (last activity or None, due time of the last
# signalled episode or None, pending silences as (start, end)).
TrackerEntry = tuple[float | None, float | None, tuple[tuple[float, float], ...]]


@dataclass(frozen=True, slots=True)
class TrackerEntries:
    """A tracker's state as its accounts' entries (read back from an input partition's
    absence log, see dataflows.absence_log) and its progress."""

    entries: Mapping[tuple[str, str], TrackerEntry]
    seen_until: float
    checked_day: int


class InactivityTracker:
    """Last activity per account of one partition, and the last episode signalled."""

    def __init__(
        self,
        rule: InactivityRule,
        lateness_seconds: float,
        feature_version: str,
        *,
        forget_after_days: float = 35.0,
        snapshot: TrackerSnapshot | TrackerEntries | None = None,
    ) -> None:
        self._rule = rule
        self._idle_after = rule.days * DAY
        self._clock = EventClock(lateness_seconds)
        self._version = feature_version
        self._forget_after = forget_after_days * DAY
        # (tenant, account) -> [last_active, due time of the last signalled episode]
        self._accounts: dict[tuple[str, str], list[float | None]] = {}
        # (tenant, account) -> silences of N days or more whose due moment the
        # watermark has not passed yet: stragglers may still shorten them.
        self._pending: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self._seen_until = -math.inf
        self._checked_day = -(2**62)
        # The accounts whose entry (or pending silences) changed since take_changes():
        # what a snapshot written as changes (a log) must write.
        self._changed: set[tuple[str, str]] = set()
        if isinstance(snapshot, TrackerEntries):
            held = snapshot.entries
            self._accounts = {key: [last, due] for key, (last, due, _) in held.items()
                              if last is not None}
            self._pending = {key: list(pieces) for key, (_, _, pieces) in held.items()
                             if pieces}
            self._seen_until = snapshot.seen_until
            self._checked_day = snapshot.checked_day
        elif snapshot is not None:
            self._accounts = {(t, a): [ts, due] for t, a, ts, due in snapshot.accounts}
            # getattr: snapshots written before pending silences existed lack it
            for t, a, start, end in getattr(snapshot, "pending", ()):
                self._pending.setdefault((t, a), []).append((start, end))
            self._seen_until = snapshot.seen_until
            self._checked_day = snapshot.checked_day

    def __len__(self) -> int:
        return len(self._accounts)

    @property
    def signal_type(self) -> str:
        return str(self._rule.signal_type)

    @property
    def watermark(self) -> float:
        return self._clock.watermark(self._seen_until)

    def observe(
        self, batches: Iterable[ActivityBatch], *, finalise: bool = True
    ) -> list[UsageSignal]:
        """Fold in this partition's batches, in read order; return new signals.
        ``finalise=False``: the finished silences whose due moment the watermark has
        passed stay pending (see :meth:`AbsenceTracking.track`)."""
        signals: list[UsageSignal] = []
        for batch in batches:
            self._observe(batch, signals, finalise)
        return signals

    def _observe(self, batch: ActivityBatch, signals: list[UsageSignal], finalise: bool
                 ) -> None:
        idle_after = self._idle_after
        changed = self._changed
        for activity in batch.accounts:
            key = (activity.tenant_id, activity.account_id)
            changed.add(key)
            entry = self._accounts.get(key)
            if entry is None:
                entry = self._accounts[key] = [activity.first, None]
            last = entry[0]
            assert last is not None
            # Silences this batch reveals: before its first activity, and inside it;
            # the account's previous last activity may fall inside one of them.
            found = [(last, activity.first), *activity.gaps]
            silences = [
                piece
                for start, end in found
                for piece in _split((start, end), last, idle_after)
            ]
            # Silences found earlier, not yet final: this batch's activity may cut them.
            for start, end in self._pending.pop(key, []):
                silences.extend(_cut((start, end), activity, idle_after))
            if silences:
                self._pending[key] = sorted(set(silences))
            if activity.last > last:
                entry[0] = activity.last
        for key in batch.erased:
            self._accounts.pop(key, None)
            self._pending.pop(key, None)
            changed.add(key)
        if batch.seen_until > self._seen_until:
            self._seen_until = batch.seen_until
        if self._seen_until == -math.inf:
            return  # nothing read yet (an erasure first, the end of an empty input)
        emitted: list[UsageSignal] = []
        if finalise:
            self._finalise(emitted)
        day = day_of(self.watermark)
        if day > self._checked_day:
            self._checked_day = day
            self._check(day * DAY, emitted)
        # By date, then account: not in the order the tracker first saw the accounts,
        # which a restart that reads them back from an absence log does not keep.
        emitted.sort(key=_signal_order)
        signals += emitted

    def _finalise(self, signals: list[UsageSignal]) -> None:
        """Signal the pending silences whose due moment the watermark has passed.

        An on-time straggler is never older than the watermark, so it can only
        split such a silence after its due moment: the episode stands.
        """
        watermark = self.watermark
        idle_after = self._idle_after
        due_now = [
            k for k, pieces in self._pending.items() if pieces[0][0] + idle_after <= watermark
        ]
        self._changed.update(due_now)
        for key in due_now:
            pieces = self._pending.pop(key)
            entry = self._accounts[key]
            for start, end in pieces:
                if start + idle_after <= watermark:
                    self._signal(key, entry, start + idle_after, signals)
                else:
                    self._pending.setdefault(key, []).append((start, end))

    def _signal(
        self, key: tuple[str, str], entry: list[float | None], due: float,
        signals: list[UsageSignal],
    ) -> None:
        signalled = entry[1]
        if signalled is not None and (due <= signalled or day_of(due) == day_of(signalled)):
            if due > signalled:
                entry[1] = due  # same episode, moved within its day: remember where it is
                self._changed.add(key)
            return  # this episode (or a later one, or one due that day) was signalled
        entry[1] = due
        self._changed.add(key)
        observation = Observation(
            self._rule.signal_type,
            firing=True,
            recovered=False,
            usage=0.0,
            baseline=self._rule.days,
            severity=self._rule.severity,
            reason=self._rule.reason,
        )
        due_day = datetime.fromtimestamp(due, UTC).date()
        signals.append(make_signal(key[0], key[1], observation, due_day, self._version))

    def _check(self, moment: float, signals: list[UsageSignal]) -> None:
        """Signal every account silent N days at ``moment`` (a day's start)."""
        forgotten: list[tuple[str, str]] = []
        for key, entry in self._accounts.items():
            last_active = entry[0]
            assert last_active is not None
            due = last_active + self._idle_after
            if moment < due:
                continue
            if entry[1] == due:
                if moment - due >= self._forget_after:
                    forgotten.append(key)
                continue
            self._signal(key, entry, due, signals)
        for key in forgotten:
            del self._accounts[key]
        self._changed.update(forgotten)

    # -- a snapshot as entries (an input partition's absence log: dataflows.absence_log) --

    def entry(self, key: tuple[str, str]) -> TrackerEntry | None:
        """The account's ``(last activity, due time of the last signalled episode,
        pending silences)``; None: the tracker holds nothing of it."""
        held = self._accounts.get(key)
        pending = self._pending.get(key)
        if held is None and pending is None:
            return None
        last, due = (None, None) if held is None else (held[0], held[1])
        return last, due, () if pending is None else tuple(pending)

    def changed(self) -> int:
        """How many accounts changed since the last :meth:`take_changes`."""
        return len(self._changed)

    def take_changes(self) -> dict[tuple[str, str], TrackerEntry | None]:
        """The entries of the accounts changed since the last call or :meth:`entries`
        (None: gone)."""
        changed, self._changed = self._changed, set()
        return {key: self.entry(key) for key in changed}

    def entries(self) -> dict[tuple[str, str], TrackerEntry]:
        """Every account's entry (and the changes so far taken: they are in it)."""
        self._changed = set()
        pending = self._pending
        entries: dict[tuple[str, str], TrackerEntry] = {
            key: (held[0], held[1], tuple(pending[key]) if key in pending else ())
            for key, held in self._accounts.items()
        }
        for key, pieces in pending.items():
            if key not in entries:
                entries[key] = (None, None, tuple(pieces))
        return entries

    @property
    def progress(self) -> tuple[float, int]:
        """What a snapshot keeps beside the accounts: (newest event time, day checked)."""
        return self._seen_until, self._checked_day

    def snapshot(self) -> TrackerSnapshot:
        return TrackerSnapshot(
            accounts=tuple((t, a, e[0], e[1]) for (t, a), e in self._accounts.items()),  # type: ignore[misc]
            seen_until=self._seen_until,
            checked_day=self._checked_day,
            pending=tuple(
                (t, a, start, end)
                for (t, a), pieces in self._pending.items()
                for start, end in pieces
            ),
        )


def _signal_order(signal: UsageSignal) -> tuple[date, str, str]:
    return signal.signal_date, signal.tenant_id, signal.account_id


def _split(
    silence: tuple[float, float], point: float, idle_after: float
) -> list[tuple[float, float]]:
    """The parts of ``silence`` at least ``idle_after`` long once ``point`` is known active."""
    start, end = silence
    pieces = [(start, point), (point, end)] if start < point < end else [silence]
    return [(s, e) for s, e in pieces if e - s >= idle_after]


def _cut(
    silence: tuple[float, float], activity: AccountActivity, idle_after: float
) -> list[tuple[float, float]]:
    """What remains of ``silence`` once ``activity``'s batch is known.

    The batch was active from ``first`` to ``last`` except in its own gaps, so
    the silence survives only outside that span, or inside one of its gaps.
    """
    start, end = silence
    if activity.last <= start or activity.first >= end:
        return [silence]
    pieces = [(start, min(end, activity.first)), (max(start, activity.last), end)]
    pieces += [(max(start, gs), min(end, ge)) for gs, ge in activity.gaps]
    return [(s, e) for s, e in pieces if e - s >= idle_after]


# What an input stream's absence tracking is restored from: each tracker's snapshot (or
# its entries, from an absence log) by signal name, or (written before several absence
# signals) the one tracker's.
TrackingSnapshot = Mapping[str, TrackerSnapshot | TrackerEntries] | TrackerSnapshot | None


class AbsenceTracking:
    """One input stream's absence signals (an input partition's, or a file's): an
    :class:`InactivityTracker` per declared ``absence`` signal, each fed the same
    events with its own idea of activity (the event types its feature matches) and
    its own number of days. Signals come out in declaration order."""

    def __init__(
        self,
        rules: Sequence[tuple[InactivityRule, Callable[[str], bool]]],
        lateness_seconds: float,
        feature_version: str,
        snapshot: TrackingSnapshot = None,
    ) -> None:
        if isinstance(snapshot, TrackerSnapshot):
            snapshot = {str(rules[0][0].signal_type): snapshot} if rules else {}
        kept = snapshot or {}
        # An account erased since a log last wrote the trackers whole (written as changes,
        # its entries would stay in older files): the log writes them whole, then clears it.
        self.erased = False
        self._trackers = [
            (
                InactivityTracker(rule, lateness_seconds, feature_version,
                                  snapshot=kept.get(str(rule.signal_type))),
                # an event type's verdict, once: a pattern match per event was 1.5 % of
                # the CPU; workflow outcomes are never the account's activity
                functools.lru_cache(maxsize=4096)(activity_matcher(matches)),
                rule.days * DAY,
            )
            for rule, matches in rules
        ]

    def __len__(self) -> int:
        """The absence signals tracked."""
        return len(self._trackers)

    @property
    def trackers(self) -> tuple[InactivityTracker, ...]:
        return tuple(tracker for tracker, _, _ in self._trackers)

    def track(
        self,
        events: Sequence[Event],
        erased: Sequence[tuple[str, str]] = (),
        until: float | None = None,
        *,
        finalise: bool = True,
    ) -> list[UsageSignal]:
        """Fold in the stream's next events (in read order), then forget the ``erased``
        accounts, then move the watermark to ``until`` (a day close) if given; the
        signals found.

        ``finalise=False`` leaves the finished silences (an account came back after N
        days) whose due moment the watermark has passed for the next call that
        finalises. The dataflow with scoring on finalises only at day closes and at the
        end of its input: where an alert comes among its account's events and scores
        decides what its decision sees, and "when the watermark passed the due moment"
        is only known at a batch's end, so the alert's place (and whether a late
        straggler read in the same batch cut the silence first) depended on where the
        batches ended. A day close comes right before the event that closed the day,
        whatever the batching."""
        signals: list[UsageSignal] = []
        if erased:
            self.erased = True
        for tracker, is_activity, idle_after in self._trackers:
            summary = summarize_activity(-1, events, is_activity, idle_after)
            batches = [] if summary is None else [summary]
            if erased:
                batches.append(ActivityBatch(-1, -math.inf, (), erased=tuple(erased)))
            if until is not None:
                batches.append(ActivityBatch(-1, until, ()))
            if finalise and not batches:  # nothing new: the pending ones are due anyway
                batches.append(ActivityBatch(-1, -math.inf, ()))
            signals += tracker.observe(batches, finalise=finalise)
        return signals

    def snapshot(self) -> dict[str, TrackerSnapshot]:
        return {tracker.signal_type: tracker.snapshot() for tracker, _, _ in self._trackers}
