"""Inactivity: an account silent for N days of event time.

An inactivity episode starts at the account's last activity and is due N days
later; its signal is dated by that due day (so its id is the same in every
replay) and emitted once, by whichever sees it first:

* the account itself, when it comes back after a gap of N days or more (the
  per-account stage reports the gap in :class:`Activity.gap_from`);
* the watermark, for an account that stays silent: a silent account sends no
  event to react to. Activities reach the tracker through channels, one per
  (input partition, worker that processed the account): within a channel they
  arrive in order, across channels at any pace (workers in other processes
  lag). The watermark is the slowest channel's newest event time minus the
  allowed lateness, so a channel that lags does not make its accounts look
  idle; idleness is judged at the start of each day the watermark enters, not
  at whatever moment a batch ended. A channel that stops reporting while the
  others move on by two inactivity periods is dropped, and channels are not
  snapshot (worker threads differ after a restart: they are learnt again).

One :class:`InactivityTracker` holds the accounts of one shard. Bounded: an
account signalled and silent ``forget_after_days`` longer is forgotten.
Known limit: a worker whose accounts on a partition all fall silent holds
the watermark back until the others are two inactivity periods ahead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from detectors.usage import (
    InactivityRule,
    Observation,
    SignalType,
    UsageSignal,
    make_signal,
)

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Activity:
    """An account's activity as of one batch (times in epoch seconds).

    ``last_active``: its newest activity event; ``seen_until``: the newest
    event of any kind read for it from ``partition`` (the partition's progress
    drives the watermark); ``gaps``: the start of every silence of N days or
    more that this batch ended.
    """

    tenant_id: str
    account_id: str
    last_active: float
    seen_until: float
    partition: int
    gaps: tuple[float, ...] = ()
    worker: str = ""  # which worker processed it: with ``partition``, the channel


@dataclass(frozen=True, slots=True)
class TrackerSnapshot:
    accounts: tuple[tuple[str, str, float, float | None], ...]
    checked_day: int


class InactivityTracker:
    """Last activity per account of one shard, and the last episode signalled."""

    def __init__(
        self,
        rule: InactivityRule,
        lateness_seconds: float,
        feature_version: str,
        *,
        forget_after_days: float = 35.0,
        snapshot: TrackerSnapshot | None = None,
    ) -> None:
        self._rule = rule
        self._idle_after = rule.days * DAY
        self._lateness = lateness_seconds
        self._version = feature_version
        self._forget_after = forget_after_days * DAY
        # (tenant, account) -> [last_active, due time of the last signalled episode]
        self._accounts: dict[tuple[str, str], list[float | None]] = {}
        # (partition, worker) -> newest event time reported through it
        self._channels: dict[tuple[int, str], float] = {}
        self._checked_day = -(2**62)
        if snapshot is not None:
            self._accounts = {(t, a): [ts, due] for t, a, ts, due in snapshot.accounts}
            self._checked_day = snapshot.checked_day

    def __len__(self) -> int:
        return len(self._accounts)

    @property
    def watermark(self) -> float:
        if not self._channels:
            return -math.inf
        return min(self._channels.values()) - self._lateness

    def observe(self, activities: Iterable[Activity]) -> list[UsageSignal]:
        """Record a batch of activities; signal finished gaps and, per new day, silences."""
        accounts = self._accounts
        channels = self._channels
        signals: list[UsageSignal] = []
        for activity in activities:
            key = (activity.tenant_id, activity.account_id)
            entry = accounts.get(key)
            if entry is None:
                entry = accounts[key] = [activity.last_active, None]
            for gap_from in activity.gaps:
                due = gap_from + self._idle_after
                # Older than the forget horizon: the watermark signalled it before
                # this account was forgotten.
                if due >= self.watermark - self._forget_after:
                    self._signal(key, entry, due, signals)
            if activity.last_active > entry[0]:  # type: ignore[operator]
                entry[0] = activity.last_active
            channel = (activity.partition, activity.worker)
            if activity.seen_until > channels.get(channel, -math.inf):
                channels[channel] = activity.seen_until
        if len(channels) > 1:
            stale_before = max(channels.values()) - 2 * self._idle_after
            for channel in [c for c, t in channels.items() if t < stale_before]:
                del channels[channel]
        watermark = self.watermark
        if watermark > -math.inf and math.floor(watermark / DAY) > self._checked_day:
            self._checked_day = math.floor(watermark / DAY)
            self._check(self._checked_day * DAY, signals)
        return signals

    def _signal(
        self, key: tuple[str, str], entry: list[float | None], due: float,
        signals: list[UsageSignal],
    ) -> None:
        if entry[1] == due:
            return  # this episode was signalled already
        entry[1] = due
        observation = Observation(
            SignalType.INACTIVITY,
            firing=True,
            recovered=False,
            usage=0.0,
            baseline=self._rule.days,
            severity=self._rule.severity,
        )
        due_day = datetime.fromtimestamp(due, UTC).date()
        signals.append(make_signal(key[0], key[1], observation, due_day, self._version))

    def _check(self, moment: float, signals: list[UsageSignal]) -> None:
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

    def snapshot(self) -> TrackerSnapshot:
        return TrackerSnapshot(
            accounts=tuple((t, a, e[0], e[1]) for (t, a), e in self._accounts.items()),  # type: ignore[misc]
            checked_day=self._checked_day,
        )
