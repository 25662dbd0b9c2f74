"""Training data from an event history: causal feature rows, then churn labels.

Two steps, kept apart so that the one that may look into the future is small:

1. :func:`observe_history` replays a history in file order through the very
   :class:`~accounts.processor.AccountProcessor` the stream runs (parse,
   dedupe, lateness, daily buckets; as :mod:`accounts.backfill` does) and
   takes one feature row per account at the end of each UTC day. A row for day
   ``d`` is computed before any event of a later day is folded in: when an
   account's first event of a later day arrives, the days it closes are
   observed first. Only when that event comes within the allowed lateness of
   midnight, so that late events of day ``d`` may still be accepted, is day
   ``d`` held back, on a copy of the features that takes those late events and
   nothing newer, until the account's watermark passes the day. Days an account
   is silent are observed too (when its next event arrives, or at the end of
   the history), so the quiet days before a churn are in the data.
2. :func:`label_observations` labels each row: 1 if the account's
   ``subscription.cancelled`` event time falls in ``(observed_at,
   observed_at + horizon]``. Rows at or after the cancellation are dropped,
   and so are rows whose horizon runs past the end of the history, unless
   already labelled 1 (right-censoring: "no churn yet" is not "no churn").

``observed_at`` is the end of the observed day (midnight UTC after it);
features are taken as of its last millisecond, as the usage detectors judge a
day. Rows come sorted by account key, then time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from accounts.backfill import valid_events
from accounts.config import AccountConfig
from accounts.processor import AccountProcessor
from featurestore.aggregation import AccountFeatures, CompiledFeatures
from schemas.clock import DAY, day_of
from schemas.event import EventLimits, subject_key
from schemas.lifecycle import Cancellation
from scoring.metadata import TrainingWindow

# The last moment of a day, as AccountProcessor judges days (epoch seconds).
_END_OF_DAY = DAY - 0.001


_Array = TypeVar("_Array", bound=np.ndarray)


def _frozen(array: _Array) -> _Array:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True, eq=False)
class Observations:
    """Unlabelled feature rows, each computed only from events up to its own day."""

    features: npt.NDArray[np.float32]  # [rows, features], definition order
    accounts: tuple[str, ...]  # "<tenant_id>:<account_id>" per row
    observed_at: npt.NDArray[np.float64]  # epoch s, the end of the observed UTC day
    feature_names: tuple[str, ...]
    feature_version: str
    # Each account's first subscription.cancelled event time (epoch s).
    cancellations: Mapping[str, float]
    history_start: float  # earliest accepted event time
    history_end: float  # newest accepted event time, or the ``until`` given
    counts: Mapping[str, int] = field(default_factory=dict)
    source: str = "<messages>"

    def row(self, account: str, day_end: float) -> npt.NDArray[np.float32] | None:
        """The feature row of ``account`` observed at ``day_end``, if there is one."""
        for i, (key, at) in enumerate(zip(self.accounts, self.observed_at, strict=True)):
            if key == account and at == day_end:
                return self.features[i]
        return None


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """Labelled rows for training: ``X`` [n, f] float32, ``y`` [n] int8 (1 = churned
    within ``horizon_days`` of ``observed_at``)."""

    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int8]
    accounts: tuple[str, ...]
    observed_at: npt.NDArray[np.float64]
    feature_names: tuple[str, ...]
    feature_version: str
    horizon_days: int
    history_start: float
    history_end: float
    counts: Mapping[str, int] = field(default_factory=dict)
    source: str = "<messages>"

    @property
    def rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def positives(self) -> int:
        return int(self.y.sum())

    @property
    def window(self) -> TrainingWindow:
        """The history covered, and the first and last observation in it."""
        first = float(self.observed_at.min()) if self.rows else self.history_start
        last = float(self.observed_at.max()) if self.rows else self.history_end
        return TrainingWindow.from_epoch(self.history_start, self.history_end, first, last)

    def select(self, mask: npt.NDArray[np.bool_]) -> Dataset:
        """The rows where ``mask`` holds (same metadata)."""
        indexes = np.flatnonzero(mask)
        return Dataset(
            X=_frozen(self.X[indexes]),
            y=_frozen(self.y[indexes]),
            accounts=tuple(self.accounts[i] for i in indexes),
            observed_at=_frozen(self.observed_at[indexes]),
            feature_names=self.feature_names,
            feature_version=self.feature_version,
            horizon_days=self.horizon_days,
            history_start=self.history_start,
            history_end=self.history_end,
            counts=self.counts,
            source=self.source,
        )


class _Timeline:
    """One account's processor and the observation days it has yet to emit."""

    __slots__ = ("first_day", "key", "next_day", "pending", "processor")

    def __init__(self, key: str, config: AccountConfig) -> None:
        self.key = key
        self.processor = AccountProcessor(config)
        self.first_day: int | None = None
        self.next_day: int | None = None  # the next day to observe, aligned to ``every``
        # Days closed by a later day's event but still open to late events of
        # their own: a copy of the features that takes those and nothing newer.
        self.pending: list[tuple[int, AccountFeatures]] = []


@dataclass(slots=True)
class _Rows:
    keys: list[str] = field(default_factory=list)
    days: list[int] = field(default_factory=list)
    values: list[tuple[float, ...]] = field(default_factory=list)

    def add(self, key: str, day: int, features: AccountFeatures) -> None:
        self.keys.append(key)
        self.days.append(day)
        self.values.append(features.values(day * DAY + _END_OF_DAY))


def observe_history(
    messages: Iterable[bytes],
    config: AccountConfig,
    limits: EventLimits,
    *,
    every_days: int = 1,
    min_history_days: int = 7,
    now: datetime | None = None,
    until: datetime | None = None,
    source: str = "<messages>",
) -> Observations:
    """Feature rows at the end of every ``every_days``-th day of each account, from
    its ``min_history_days``-th day of history on, through the last whole day.

    ``now`` is the clock the future-time check compares with (default: the
    wall clock, as the backfill does; a past history gives the same rows
    whatever the day). ``until`` declares the history complete up to that
    moment; events at or after it are left out (counted as ``after_until``).
    Without it the history ends at its newest accepted event.
    """
    if every_days < 1 or min_history_days < 1:
        msg = f"every_days and min_history_days must be >= 1, got {every_days}, {min_history_days}"
        raise ValueError(msg)
    clock = now if now is not None else datetime.now(UTC)
    cutoff = until.timestamp() if until is not None else math.inf
    event_clock = config.clock
    compiled = config.features
    timelines: dict[tuple[str, str], _Timeline] = {}
    cancellations: dict[str, float] = {}
    counts: Counter[str] = Counter()
    rows = _Rows()
    earliest, newest = math.inf, -math.inf

    for event in valid_events(messages, clock, limits, counts):
        ts = event.event_time.timestamp()
        if ts >= cutoff:
            counts["after_until"] += 1
            continue
        timeline = timelines.get((event.tenant_id, event.account_id))
        if timeline is None:
            timeline = timelines[(event.tenant_id, event.account_id)] = _Timeline(
                subject_key(event.tenant_id, event.account_id), config
            )
        features = timeline.processor.features
        day = day_of(ts)
        if timeline.next_day is not None and day > day_of(features.newest):
            # The account's first event of a later day: observe the days it
            # closes before it is folded in.
            _close_days(timeline, day - 1, event_clock.watermark(ts), every_days, rows, compiled)
        result = timeline.processor.process([event])
        counts["duplicates"] += result.duplicates
        counts["late"] += result.late
        for output in result.outputs:
            if isinstance(output, Cancellation):
                at = output.cancelled_at.timestamp()
                cancellations[timeline.key] = min(at, cancellations.get(timeline.key, at))
        if not result.events or result.late:
            continue
        counts["events"] += 1
        earliest, newest = min(earliest, ts), max(newest, ts)
        if timeline.first_day is None:
            timeline.first_day = day
            timeline.next_day = day + min_history_days - 1
        if timeline.pending:
            watermark = event_clock.watermark(features.newest)
            still_open = []
            for pending_day, copy in timeline.pending:
                if day <= pending_day:
                    copy.apply(event, ts)
                if (pending_day + 1) * DAY <= watermark:
                    rows.add(timeline.key, pending_day, copy)
                else:
                    still_open.append((pending_day, copy))
            timeline.pending = still_open

    if earliest == math.inf:  # no event accepted: an empty history
        earliest = newest = cutoff if until is not None else 0.0
    history_start = earliest
    history_end = cutoff if until is not None else newest
    # The last day whose end the history reaches.
    last_day = day_of(history_end) - 1
    for timeline in timelines.values():
        for pending_day, copy in timeline.pending:
            if pending_day <= last_day:
                rows.add(timeline.key, pending_day, copy)
        timeline.pending = []
        if timeline.next_day is not None:
            # Nothing newer than the account's newest day is in its features,
            # and every day left to observe is at or after it.
            _close_days(timeline, last_day, math.inf, every_days, rows, compiled)

    order = sorted(range(len(rows.keys)), key=lambda i: (rows.keys[i], rows.days[i]))
    names = compiled.feature_set.names
    matrix = np.array([rows.values[i] for i in order], dtype=np.float32).reshape(-1, len(names))
    observed_at = np.array([(rows.days[i] + 1) * DAY for i in order], dtype=np.float64)
    counts["observations"] = len(order)
    counts["accounts"] = len(timelines)
    return Observations(
        features=_frozen(matrix),
        accounts=tuple(rows.keys[i] for i in order),
        observed_at=_frozen(observed_at),
        feature_names=names,
        feature_version=compiled.feature_set.version,
        cancellations=cancellations,
        history_start=history_start,
        history_end=history_end,
        counts=dict(counts),
        source=source,
    )


def _close_days(
    timeline: _Timeline,
    last_day: int,
    watermark: float,
    every_days: int,
    rows: _Rows,
    compiled: CompiledFeatures,
) -> None:
    """Observe the account's days up to ``last_day``: at once where ``watermark``
    has passed them, else on a copy held open for their late events."""
    assert timeline.next_day is not None
    features = timeline.processor.features
    day = timeline.next_day
    while day <= last_day:
        if (day + 1) * DAY <= watermark:
            rows.add(timeline.key, day, features)
        else:
            copy = AccountFeatures(compiled, features.snapshot())
            timeline.pending.append((day, copy))
        day += every_days
    timeline.next_day = day


def label_observations(observations: Observations, horizon_days: int = 28) -> Dataset:
    """Label each row by churn within ``horizon_days``; drop rows at or after the
    churn and rows censored by the end of the history (see the module docstring)."""
    if horizon_days < 1:
        msg = f"horizon_days must be >= 1, got {horizon_days}"
        raise ValueError(msg)
    horizon = horizon_days * DAY
    at = observations.observed_at
    cancelled = np.array(
        [observations.cancellations.get(key, math.inf) for key in observations.accounts],
        dtype=np.float64,
    )
    alive = at < cancelled
    positive = alive & (cancelled <= at + horizon)
    known = positive | (at + horizon <= observations.history_end)
    keep = alive & known
    indexes = np.flatnonzero(keep)
    counts = dict(observations.counts)
    counts["dropped_after_cancellation"] = int((~alive).sum())
    counts["dropped_censored"] = int((alive & ~known).sum())
    counts["rows"] = int(indexes.size)
    counts["positives"] = int(positive[keep].sum())
    return Dataset(
        X=_frozen(observations.features[indexes]),
        y=_frozen(positive[indexes].astype(np.int8)),
        accounts=tuple(observations.accounts[i] for i in indexes),
        observed_at=_frozen(at[indexes]),
        feature_names=observations.feature_names,
        feature_version=observations.feature_version,
        horizon_days=horizon_days,
        history_start=observations.history_start,
        history_end=observations.history_end,
        counts=counts,
        source=observations.source,
    )


def build_dataset(
    messages: Iterable[bytes],
    config: AccountConfig,
    limits: EventLimits,
    *,
    horizon_days: int = 28,
    every_days: int = 1,
    min_history_days: int = 7,
    now: datetime | None = None,
    until: datetime | None = None,
    source: str = "<messages>",
) -> Dataset:
    """Labelled training rows from a history: :func:`observe_history` then
    :func:`label_observations`."""
    observations = observe_history(
        messages,
        config,
        limits,
        every_days=every_days,
        min_history_days=min_history_days,
        now=now,
        until=until,
        source=source,
    )
    return label_observations(observations, horizon_days)
