"""Per-account event-time aggregation over daily buckets. Pure Python, no I/O.

The stream keeps one :class:`AccountFeatures` per account in its keyed state;
the batch backfill feeds the very same class from a file. Features that read
the same events the same way share one accumulator (``logins_7d`` and
``logins_baseline_28d`` both count ``app.login`` per day), so an event costs
one update per distinct accumulator, not per feature.

Time: buckets are UTC days (``floor(epoch_seconds / 86400)``); a window of
``w`` days with offset ``o`` ending on day ``D`` covers days
``D-o-w+1 .. D-o``. Buckets older than the longest window plus offset are
evicted as the account's newest day advances, so state per account is bounded
by ``FeatureSet.retention_days``.

``latest`` and ``days_until`` read the latest matching event *as of* the as-of
time: an event after it does not count (the stream judges a closed day after
it has folded in the next day's first hour), and a late event older than the
newest does not replace it. They keep, per UTC day, that day's newest value,
for the days the dataflow may still judge (``grace_days``) and the newest one
before them: a few pairs, exact as of the end of any of those days and as of
any time after the newest event.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from sys import intern
from typing import Any

from mypy_extensions import mypyc_attr

from featurestore.definitions import WINDOWED, Aggregation, FeatureDefinition, FeatureSet
from schemas.clock import DAY, day_of
from schemas.event import Event

_SET_KINDS = frozenset({Aggregation.DISTINCT_USERS, Aggregation.DISTINCT_VALUES})
# Trackers that keep a short history of (event time, value), one per UTC day.
_HISTORY_KINDS = frozenset({Aggregation.LATEST, Aggregation.DAYS_UNTIL})
# Trackers that keep one time: days since it (see _tracked_value).
_SINCE_KINDS = frozenset({Aggregation.DAYS_SINCE_LAST, Aggregation.DAYS_SINCE_FIRST})
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


@dataclass(frozen=True, slots=True)
class _Accumulator:
    """One way of reading events; features with the same reading share it."""

    aggregation: Aggregation
    events: tuple[str, ...]
    attribute: str | None
    where_attribute: str | None
    where_values: frozenset[str]

    def accepts(self, attributes: Mapping[str, Any]) -> bool:
        if self.where_attribute is None:
            return True
        value = attributes.get(self.where_attribute)
        return value is not None and str(value) in self.where_values


class CompiledFeatures:
    """A :class:`FeatureSet` arranged for fast per-event updates."""

    def __init__(self, feature_set: FeatureSet, *, grace_days: int = 0) -> None:
        """``grace_days``: extra days of buckets kept beyond the longest window, so
        a day can still be read in full after the next one has begun (the
        dataflow judges a day once the watermark, newest time minus the allowed
        lateness, has passed it)."""
        self.feature_set = feature_set
        self.grace_days = grace_days
        self.retention_days = feature_set.retention_days + grace_days
        bucketed: dict[_Accumulator, int] = {}
        tracked: dict[_Accumulator, int] = {}
        # per feature: ("window", acc, window, offset) | ("track", acc) | ("ratio", i, j, ...)
        self._plan: list[tuple[Any, ...]] = []
        for feature in feature_set.features:
            if feature.aggregation is Aggregation.RATIO:
                continue
            acc = _Accumulator(
                feature.aggregation,
                feature.events,
                feature.attribute,
                feature.where_attribute,
                feature.where_values,
            )
            table = bucketed if feature.aggregation in WINDOWED else tracked
            table.setdefault(acc, len(table))
        self.bucket_accumulators = tuple(bucketed)
        self.tracked_accumulators = tuple(tracked)
        names = {f.name: i for i, f in enumerate(feature_set.features)}
        for feature in feature_set.features:
            self._plan.append(self._plan_for(feature, bucketed, tracked, names))
        self._by_type: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        # The plan by kind, for AccountFeatures.values (a branch per kind per feature
        # on every call was most of its cost): (position, ...) per feature.
        plan = self._plan
        # (counts and sets whose window ends before the as-of day are final in the days
        # kept aside: AccountFeatures._past_days)
        # counts and sets whose window ends on the as-of day: the days kept aside and the
        # as-of day's bucket; (position, accumulator, is_set)
        self.today_windows = tuple(
            (position, step[1], step[4]) for position, step in enumerate(plan)
            if step[0] == "window" and step[5] and not step[3]
        )
        # sums: added up over their own days, in age order; (position, accumulator,
        # window, offset)
        self.summed_windows = tuple(
            (position, step[1], step[2], step[3]) for position, step in enumerate(plan)
            if step[0] == "window" and not step[5]
        )
        # counts and sets over their window's days before the as-of day, which the kept
        # past days hold (AccountFeatures._past_days): (position, accumulator, first and
        # last age covered, is_set, window ends before the as-of day)
        self.past_windows = tuple(
            (position, step[1], max(step[3], 1), step[3] + step[2] - 1, step[4], step[3] > 0)
            for position, step in enumerate(plan) if step[0] == "window" and step[5]
        )
        # The oldest age any of them covers.
        self.past_span = max((last for _, _, _, last, _, _ in self.past_windows), default=0)
        # The same windows by the ages they cover, for AccountFeatures._slide (the days
        # that leave and enter are looked up once per range): (first, last, ((slot in
        # past_windows, position, accumulator, window ends before the as-of day), ...));
        # a one-day window covers nothing before the as-of day and is left out.
        ranges: dict[tuple[int, int], list[tuple[int, int, int, bool]]] = {}
        for slot, (position, index, first, last, _, final) in enumerate(self.past_windows):
            if first <= last:
                ranges.setdefault((first, last), []).append((slot, position, index, final))
        self.past_ranges = tuple(
            (first, last, tuple(windows)) for (first, last), windows in ranges.items()
        )
        # (position, tracker, aggregation, default)
        self.tracks = tuple(
            (position, *step[1:]) for position, step in enumerate(plan) if step[0] == "track"
        )
        # (position, numerator's position and window days, denominator's, default)
        features = feature_set.features
        self.ratios = tuple(
            (position, step[1], features[step[1]].window_days, step[2],
             features[step[2]].window_days, step[3])
            for position, step in enumerate(plan) if step[0] == "ratio"
        )

    @staticmethod
    def _plan_for(
        feature: FeatureDefinition,
        bucketed: dict[_Accumulator, int],
        tracked: dict[_Accumulator, int],
        names: dict[str, int],
    ) -> tuple[Any, ...]:
        if feature.aggregation is Aggregation.RATIO:
            assert feature.numerator and feature.denominator
            return ("ratio", names[feature.numerator], names[feature.denominator], feature.default)
        acc = _Accumulator(
            feature.aggregation,
            feature.events,
            feature.attribute,
            feature.where_attribute,
            feature.where_values,
        )
        if feature.aggregation in WINDOWED:
            is_set = feature.aggregation in _SET_KINDS
            # Counts and sets come out the same whatever order their days are added
            # in, so their past days can be kept aside (see AccountFeatures.values);
            # float sums are added in age order, as they always were.
            exact = is_set or feature.aggregation is Aggregation.COUNT
            return ("window", bucketed[acc], feature.window_days, feature.offset_days,
                    is_set, exact)
        return ("track", tracked[acc], feature.aggregation, feature.default)

    def accumulators_for(self, event_type: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(bucketed, tracked) accumulator indexes an event type feeds; memoised."""
        found = self._by_type.get(event_type)
        if found is None:
            found = (
                tuple(i for i, a in enumerate(self.bucket_accumulators)
                      if _matches(a.events, event_type)),
                tuple(i for i, a in enumerate(self.tracked_accumulators)
                      if _matches(a.events, event_type)),
            )
            self._by_type[event_type] = found
        return found


def _matches(patterns: tuple[str, ...], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


# How far (days) the kept past days are moved rather than worked out afresh.
SLIDE_DAYS = 6


class _PastDays:
    """The counts and sets of an account's windows over the days before an as-of day
    (ages ``first .. last`` of each window), kept while nothing changes those days
    (see :meth:`AccountFeatures.values`). ``kept`` is the start of every feature vector
    as of that day; ``members`` has, per window of :attr:`CompiledFeatures.past_windows`,
    for a set: how many of the covered days hold each member (so a day can be taken
    out again), for a count: None."""

    __slots__ = ("day", "kept", "members")

    def __init__(self, day: int, kept: list[Any], members: list[dict[Any, int] | None]) -> None:
        self.day = day
        self.kept = kept
        self.members = members


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(frozen=True, slots=True)
class FeaturesSnapshot:
    """Recovery form of :class:`AccountFeatures`."""

    buckets: tuple[tuple[int, tuple[Any, ...]], ...]
    tracked: tuple[Any, ...]
    newest: float


class AccountFeatures:
    """Daily buckets and trackers of one account."""

    __slots__ = ("_buckets", "_compiled", "_newest", "_past", "_tracked")

    def __init__(self, compiled: CompiledFeatures, snapshot: FeaturesSnapshot | None = None):
        self._compiled = compiled
        self._buckets: dict[int, list[Any]] = {}
        self._tracked: list[Any] = [None] * len(compiled.tracked_accumulators)
        self._newest = -math.inf
        # The counts and sets over the days before an as-of day, for the windows whose
        # past days can be kept aside; None: to be worked out again.
        self._past: _PastDays | None = None
        if snapshot is not None:
            self._buckets = {
                day: [set(v) if isinstance(v, tuple) else v for v in values]
                for day, values in snapshot.buckets
            }
            self._tracked = list(snapshot.tracked)
            self._newest = snapshot.newest
            self._upgrade_tracked()

    @property
    def newest(self) -> float:
        """Newest event time applied, epoch seconds (``-inf`` before any)."""
        return self._newest

    @property
    def bucket_days(self) -> list[int]:
        return sorted(self._buckets)

    def apply(self, event: Event, ts: float) -> bool:
        """Fold one (already deduplicated, not late) event in; True if a feature moved.

        Every event advances the account's newest time, even one no feature reads.
        """
        compiled = self._compiled
        day = day_of(ts)
        if ts > self._newest:
            newest_day_before = day_of(self._newest) if self._newest > -math.inf else day
            self._newest = ts
            if day > newest_day_before:
                self._evict(day)
        bucketed, tracked = compiled.accumulators_for(event.event_type)
        if not bucketed and not tracked:
            return False
        attributes = event.attributes
        if day <= day_of(self._newest) - compiled.retention_days:
            bucketed = ()  # older than every window: no bucket could be read again
        moved = False
        if bucketed:
            past = self._past
            if past is not None and day < past.day:
                self._past = None  # a day the kept-aside values cover (a late event)
            values = self._buckets.get(day)
            for index in bucketed:
                acc = compiled.bucket_accumulators[index]
                if not acc.accepts(attributes):
                    continue
                if values is None:
                    values = self._buckets[day] = [None] * len(compiled.bucket_accumulators)
                moved |= _fold_bucket(values, index, acc, event)
        if tracked:
            # Days the dataflow may still judge keep their own latest values.
            cutoff_day = day_of(self._newest) - compiled.grace_days
            for index in tracked:
                acc = compiled.tracked_accumulators[index]
                if acc.accepts(attributes):
                    moved |= _fold_tracked(self._tracked, index, acc, event, ts, cutoff_day)
        return moved

    def replace_user(self, user_id: str, replacement: str) -> bool:
        """Put ``replacement`` in ``user_id``'s place in every distinct-users set (an
        erased user: the counts stay, the id goes); True if it was anywhere."""
        indexes = [
            index for index, acc in enumerate(self._compiled.bucket_accumulators)
            if acc.aggregation is Aggregation.DISTINCT_USERS
        ]
        found = False
        for values in self._buckets.values():
            for index in indexes:
                users = values[index]
                if users is not None and user_id in users:
                    users.discard(user_id)
                    users.add(replacement)
                    found = True
        if found:
            self._past = None
        return found

    def _evict(self, newest_day: int) -> None:
        compiled = self._compiled
        oldest_kept = newest_day - compiled.retention_days + 1
        gone = [d for d in self._buckets if d < oldest_kept]
        for day in gone:
            del self._buckets[day]
        past = self._past
        if gone and past is not None and max(gone) >= past.day - compiled.past_span:
            self._past = None  # a day the kept-aside values cover is gone

    def values(self, as_of: float) -> tuple[float, ...]:
        """Every feature, in definition order, as of event time ``as_of`` (epoch s).

        Buckets are laid out by age (0 = the as-of day) once, so each window
        reads exactly its own days as one slice. Counts and distinct sets over
        the days before the as-of day are worked out once per day and kept
        (:meth:`_past_days`): an account scored several times a day then reads
        only its current day's bucket for them (the feature vector was 10 % of
        the workers' CPU in a profile of the full pipeline). When the as-of day
        moves by a few days, the kept values are moved with it, a day out and a
        day in per window (:meth:`_slide`), rather than worked out again: the
        day closes and the rescoring of silent accounts read a new as-of day per
        account per day (on the 6-month replay, working them out again was 12 %
        of the workers' CPU). The kept list is also the vector's start: the
        windows that end before the as-of day are final in it, and each call
        fills in the others by kind (the compiled plan's lists), with no branch
        per feature, and the days since a time in place (4.2 -> 2.2 us per
        vector).
        """
        compiled = self._compiled
        as_of_day = day_of(as_of)
        past = self._past
        if past is None or abs(as_of_day - past.day) > SLIDE_DAYS:
            past = self._past = self._past_days(as_of_day)
        elif past.day != as_of_day:
            self._slide(past, as_of_day)
        kept = past.kept
        out: list[Any] = kept.copy()
        today = self._buckets.get(as_of_day)
        for position, index, is_set in compiled.today_windows:
            before = kept[position]
            current = None if today is None else today[index]
            if current is None:
                out[position] = float(len(before)) if is_set else before
            elif is_set:
                out[position] = float(len(before) + len(current.difference(before)))
            else:
                out[position] = current + before
        summed = compiled.summed_windows
        if summed:
            by_age = self._by_age(as_of_day)
            for position, index, window, offset in summed:
                # Summed over the window's own days only, in age order: a prefix-sum
                # difference would let large amounts outside it round the result.
                total = 0.0
                for day_cells in by_age[offset : offset + window]:
                    if day_cells is not None:
                        value = day_cells[index]
                        if value is not None:
                            total += value
                out[position] = total
        tracked = self._tracked
        for position, index, aggregation, default in compiled.tracks:
            current = tracked[index]
            if current is None:
                out[position] = default
            elif aggregation in _SINCE_KINDS:  # as _tracked_value, without the call
                out[position] = max(0.0, (as_of - current) / DAY)
            else:
                out[position] = _tracked_value(current, aggregation, as_of, default)
        for position, numerator, numerator_days, denominator, denominator_days, default in (
            compiled.ratios
        ):
            # per-day rates, so a 7-day count compares with a 28-day baseline
            num = out[numerator] / numerator_days
            den = out[denominator] / denominator_days
            out[position] = num / den if den > 0 else default
        return tuple(out)

    def _by_age(self, as_of_day: int) -> list[list[Any] | None]:
        span = self._compiled.retention_days
        by_age: list[list[Any] | None] = [None] * span
        for day, cells in self._buckets.items():
            age = as_of_day - day
            if 0 <= age < span:
                by_age[age] = cells
        return by_age

    def _past_days(self, as_of_day: int) -> _PastDays:
        """The start of every feature vector as of ``as_of_day`` (see :meth:`values`):
        per feature, for the counts and sets of windows, their value over the
        window's days before ``as_of_day`` (a set's members with their number of days,
        never a bucket's own set), final (a float) for the windows that end before it;
        0.0 for the other features."""
        by_age = self._by_age(as_of_day)
        kept: list[Any] = [0.0] * len(self._compiled._plan)
        members: list[dict[Any, int] | None] = []
        for position, index, first, last, is_set, final in self._compiled.past_windows:
            days = by_age[first : last + 1]
            if is_set:
                counted: dict[Any, int] = {}
                for day_cells in days:
                    if day_cells is not None and day_cells[index] is not None:
                        for member in day_cells[index]:
                            counted[member] = counted.get(member, 0) + 1
                members.append(counted)
                kept[position] = float(len(counted)) if final else counted
            else:
                total = 0.0
                for day_cells in days:
                    if day_cells is not None and day_cells[index] is not None:
                        total += day_cells[index]
                members.append(None)
                kept[position] = total
        return _PastDays(as_of_day, kept, members)

    def _slide(self, past: _PastDays, as_of_day: int) -> None:
        """Move ``past`` to ``as_of_day`` (at most :data:`SLIDE_DAYS` away): per range of
        ages, the days no longer covered are taken out of its windows and the days now
        covered are added. Counts are whole numbers and sets are counted per member,
        so the result is exactly what :meth:`_past_days` works out (the days ``past``
        covers have not changed since: a change to one drops it)."""
        buckets = self._buckets
        kept, members = past.kept, past.members
        day = past.day
        for first, last, windows in self._compiled.past_ranges:
            if as_of_day > day:  # the oldest days go, the newest come
                leaving = range(day - last, min(day - first, as_of_day - last - 1) + 1)
                entering = range(max(as_of_day - last, day - first + 1), as_of_day - first + 1)
            else:
                leaving = range(max(day - last, as_of_day - first + 1), day - first + 1)
                entering = range(as_of_day - last, min(as_of_day - first, day - last - 1) + 1)
            gone = [cells for d in leaving if (cells := buckets.get(d)) is not None]
            come = [cells for d in entering if (cells := buckets.get(d)) is not None]
            if not gone and not come:
                continue
            for slot, position, index, final in windows:
                counted = members[slot]
                if counted is None:
                    total = kept[position]
                    for cells in gone:
                        if cells[index] is not None:
                            total -= cells[index]
                    for cells in come:
                        if cells[index] is not None:
                            total += cells[index]
                    kept[position] = total
                    continue
                for cells in gone:
                    if cells[index] is not None:
                        for member in cells[index]:
                            left = counted[member] - 1
                            if left:
                                counted[member] = left
                            else:
                                del counted[member]
                for cells in come:
                    if cells[index] is not None:
                        for member in cells[index]:
                            counted[member] = counted.get(member, 0) + 1
                if final:
                    kept[position] = float(len(counted))
        past.day = as_of_day

    def raw(self) -> tuple[dict[int, list[Any]], list[Any], float]:
        """The live state, to be pickled at once (never kept: it changes)."""
        return self._buckets, self._tracked, self._newest

    def restore_raw(self, raw: tuple[dict[int, list[Any]], list[Any], float]) -> None:
        self._buckets, self._tracked, self._newest = raw
        self._past = None
        self._upgrade_tracked()

    def _upgrade_tracked(self) -> None:
        """Read a ``latest``/``days_until`` tracker of an earlier snapshot, which kept
        only the newest ``(time, value)``, as a history of that one pair."""
        for index, acc in enumerate(self._compiled.tracked_accumulators):
            current = self._tracked[index]
            if (
                acc.aggregation in _HISTORY_KINDS
                and current is not None
                and type(current[0]) is not tuple
            ):
                self._tracked[index] = (current,)

    def snapshot(self) -> FeaturesSnapshot:
        return FeaturesSnapshot(
            buckets=tuple(
                (day, tuple(tuple(sorted(v)) if isinstance(v, set) else v for v in values))
                for day, values in self._buckets.items()
            ),
            tracked=tuple(self._tracked),
            newest=self._newest,
        )


def _fold_bucket(values: list[Any], index: int, acc: _Accumulator, event: Event) -> bool:
    aggregation = acc.aggregation
    if aggregation is Aggregation.COUNT:
        values[index] = (values[index] or 0) + 1
        return True
    if aggregation is Aggregation.SUM:
        amount = event.attributes.get(acc.attribute or "")
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            return False
        values[index] = (values[index] or 0) + amount
        return True
    member = (
        event.user_id
        if aggregation is Aggregation.DISTINCT_USERS
        else event.attributes.get(acc.attribute or "")
    )
    if member is None or isinstance(member, dict | list):
        return False
    bucket = values[index]
    if bucket is None:
        bucket = values[index] = set()
    text = str(member)
    if text in bucket:  # most events: a member the day already holds
        return False
    # Interned: a user (or value) seen on many days is one string in all their sets,
    # not a copy from each day's first event, so the account's snapshot pickles it
    # once and its live state holds it once.
    bucket.add(intern(text))
    return True


def _fold_tracked(
    tracked: list[Any], index: int, acc: _Accumulator, event: Event, ts: float, cutoff_day: int
) -> bool:
    aggregation = acc.aggregation
    current = tracked[index]
    if aggregation is Aggregation.DAYS_SINCE_LAST:
        if current is None or ts > current:
            tracked[index] = ts
            return True
        return False
    if aggregation is Aggregation.DAYS_SINCE_FIRST:
        if current is None or ts < current:
            tracked[index] = ts
            return True
        return False
    raw = event.attributes.get(acc.attribute or "")
    value: float | None
    if aggregation is Aggregation.LATEST:
        # Numbers only: a bool is not one (as for sum), nor is a numeric string.
        value = None if isinstance(raw, bool) or not isinstance(raw, int | float) else float(raw)
    else:  # DAYS_UNTIL: the attribute holds an RFC 3339 time or a date
        value = _parse_time(raw)
    if value is None:
        return False
    if current is None:
        tracked[index] = ((ts, value),)
        return True
    history = _with_value(current, ts, value, cutoff_day)
    if history is None:
        return False
    tracked[index] = history
    # Moved when it is the newest value now: an older one only changes earlier days.
    return history[-1][0] == ts


def _with_value(
    history: tuple[tuple[float, float], ...], ts: float, value: float, cutoff_day: int
) -> tuple[tuple[float, float], ...] | None:
    """``history`` (ascending event times, one pair per UTC day: its newest) with
    ``(ts, value)`` in; None if it changes nothing (its day has a newer value).

    Of the days before ``cutoff_day`` only the newest pair is kept: no as-of time
    before it is ever asked, and the dataflow refuses an event older than that as
    late. Built anew (never changed in place): a snapshot may share it.
    """
    day = day_of(ts)
    last_ts = history[-1][0]
    if ts >= last_ts:  # the newest: the common case, in order
        entries = list(history[:-1] if day_of(last_ts) == day else history)
        entries.append((ts, value))
    else:  # a late event: its day's pair, if it is newer than what the day has
        entries = list(history)
        position = len(entries)
        while position and entries[position - 1][0] > ts:
            position -= 1
        if position and day_of(entries[position - 1][0]) == day:
            entries[position - 1] = (ts, value)  # a same-day value, older than ts
        elif position < len(entries) and day_of(entries[position][0]) == day:
            return None  # its day already holds a newer value
        else:
            entries.insert(position, (ts, value))
    first = 0
    while first + 1 < len(entries) and day_of(entries[first + 1][0]) < cutoff_day:
        first += 1
    return tuple(entries[first:])


def _parse_time(raw: object) -> float | None:
    """An RFC 3339 time with an offset, or a calendar date (``2026-12-31``: its
    first moment in UTC), in epoch seconds; None for anything else."""
    if not isinstance(raw, str):
        return None
    if _DATE_RE.fullmatch(raw):
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC).timestamp()
        except ValueError:  # 2026-02-30
            return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def _tracked_value(current: Any, aggregation: Aggregation, as_of: float, default: float) -> float:
    if current is None:
        return default
    if aggregation is Aggregation.DAYS_SINCE_LAST or aggregation is Aggregation.DAYS_SINCE_FIRST:
        return max(0.0, (as_of - current) / DAY)
    # The newest value at or before the as-of time (almost always the last one).
    position = len(current) - 1
    while current[position][0] > as_of:
        if position == 0:
            return default  # nothing known yet as of then
        position -= 1
    value = current[position][1]
    if aggregation is Aggregation.LATEST:
        return float(value)
    return (value - as_of) / DAY  # DAYS_UNTIL: negative once the moment has passed
