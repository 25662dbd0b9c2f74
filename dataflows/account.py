"""Per-account processing: dedupe, then tier-1 detectors. Pure Python, no Bytewax.

:class:`AccountProcessor` is the state of one ``tenant:account`` key. The
dataflow feeds it the account's events of one input batch at a time and
snapshots it for recovery; tests drive it directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dataflows.dedupe import DedupeSnapshot, DedupeState
from detectors.tier1 import Cancellation, Tier1Rule, detect_cancellation, detect_tier1
from schemas.alert import Alert
from schemas.event import Event


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """The settings per-account processing needs."""

    dedupe_window_seconds: float
    dedupe_max_ids: int
    tier1_rules: Mapping[str, Tier1Rule]


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Recovery form of :class:`AccountProcessor` (picklable, immutable)."""

    dedupe: DedupeSnapshot


@dataclass(slots=True)
class BatchResult:
    """What one batch of an account's events produced."""

    outputs: list[Alert | Cancellation]
    events: list[Event]
    duplicates: int


class AccountProcessor:
    """The state and logic of one account."""

    __slots__ = ("_config", "_dedupe")

    def __init__(self, config: AccountConfig, snapshot: AccountSnapshot | None = None) -> None:
        self._config = config
        self._dedupe = DedupeState(
            config.dedupe_window_seconds,
            config.dedupe_max_ids,
            snapshot.dedupe if snapshot else None,
        )

    @property
    def dedupe(self) -> DedupeState:
        return self._dedupe

    def process(self, events: Iterable[Event]) -> BatchResult:
        outputs: list[Alert | Cancellation] = []
        fresh: list[Event] = []
        duplicates = 0
        rules = self._config.tier1_rules
        for event in events:
            if self._dedupe.is_duplicate(event.event_id, event.event_time.timestamp()):
                duplicates += 1
                continue
            fresh.append(event)
            alert = detect_tier1(event, rules)
            if alert is not None:
                outputs.append(alert)
            cancellation = detect_cancellation(event)
            if cancellation is not None:
                outputs.append(cancellation)
        return BatchResult(outputs, fresh, duplicates)

    def snapshot(self) -> AccountSnapshot:
        return AccountSnapshot(self._dedupe.snapshot())
