"""Batch features: the same per-account processing as the stream, over a file.

``churnwatch features backfill FILE`` reads a JSONL history (one event v1 per
line, as ``churnwatch simulate --out`` writes), validates, dedupes and
aggregates it with the very classes the dataflow runs
(:class:`~accounts.processor.AccountProcessor`,
:class:`~detectors.inactivity.InactivityTracker`), and yields each account's
features as of its newest event: exactly what the stream leaves in Redis.
Training uses it, so online and offline features cannot drift.

Pure Python, no Bytewax: events are processed one account-event at a time in
file order, which is the order a keyed Kafka partition delivers them in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from accounts.config import AccountConfig
from accounts.processor import AccountProcessor
from detectors.inactivity import AbsenceTracking
from schemas.event import Event, EventLimits, Rejection, format_time, parse_event
from schemas.signal import UsageSignal


@dataclass(frozen=True, slots=True)
class AccountFeatureRow:
    """One account's features as of its newest event."""

    tenant_id: str
    account_id: str
    feature_version: str
    as_of: float
    values: dict[str, float]

    def to_document(self) -> dict[str, object]:
        return {
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "feature_version": self.feature_version,
            "as_of": format_time(datetime.fromtimestamp(self.as_of, UTC)),
            "features": self.values,
        }


@dataclass(slots=True)
class BackfillResult:
    rows: dict[tuple[str, str], AccountFeatureRow]
    signals: list[UsageSignal]
    counts: Counter[str] = field(default_factory=Counter)


def read_jsonl(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            line = line.rstrip(b"\r\n")
            if line:
                yield line


def valid_events(
    messages: Iterable[bytes], now: datetime, limits: EventLimits, counts: Counter[str]
) -> Iterator[Event]:
    """The valid events of a history, in order; counts messages and rejections by reason."""
    for raw in messages:
        counts["messages"] += 1
        parsed = parse_event(raw, now, limits)
        if isinstance(parsed, Rejection):
            counts[f"rejected:{parsed.reason}"] += 1
            continue
        yield parsed


def backfill(
    messages: Iterable[bytes],
    config: AccountConfig,
    limits: EventLimits,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BackfillResult:
    """Features and usage signals of every account in ``messages``."""
    now = clock()
    processors: dict[tuple[str, str], AccountProcessor] = {}
    version = config.features.feature_set.version
    feature_set = config.features.feature_set
    # No partitions in a file: one tracking over the whole history, in file order (a
    # tracker per absence signal).
    tracking = AbsenceTracking(
        [(rule, feature_set[rule.feature].matches) for rule in config.usage_rules.absences],
        config.allowed_lateness_seconds,
        version,
    )
    signals: list[UsageSignal] = []
    counts: Counter[str] = Counter()
    for event in valid_events(messages, now, limits, counts):
        key = (event.tenant_id, event.account_id)
        processor = processors.get(key)
        if processor is None:
            processor = processors[key] = AccountProcessor(config)
        result = processor.process([event])
        counts["duplicates"] += result.duplicates
        counts["late"] += result.late
        counts["events"] += len(result.events)
        signals.extend(o for o in result.outputs if isinstance(o, UsageSignal))
        if tracking:
            signals.extend(tracking.track([event]))
    rows = {}
    for (tenant, account), processor in processors.items():
        if processor.features.newest == float("-inf"):
            continue  # only events that feed no feature
        rows[(tenant, account)] = AccountFeatureRow(
            tenant, account, version, processor.features.newest, processor.feature_values()
        )
    return BackfillResult(rows, signals, counts)
