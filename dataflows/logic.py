"""Bytewax stateful logic around the engine-free kernels, one adapter per kernel.

Each adapter owns one key's kernel object (an account's
:class:`~accounts.processor.AccountProcessor`, its risk tier and decisions, a
partition's :class:`~detectors.inactivity.InactivityTracker`), passes batches
through it, counts what it did, and hands Bytewax the kernel's snapshot.
Nothing here decides anything: the logic lives in the kernels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from accounts.processor import AccountProcessor, AccountSnapshot, Output
from dataflows.metrics import PipelineMetrics
from decisions.engine import AccountDecisions, DecisionEngine
from detectors.inactivity import ActivityBatch, InactivityTracker, TrackerSnapshot
from schemas.alert import Alert
from schemas.dead_letter import DeadLetter
from schemas.decision import DecisionOutput, DecisionRecord
from schemas.event import Event, RejectReason
from schemas.lifecycle import AccountChange
from schemas.score import RiskScore, RiskTier
from schemas.signal import UsageSignal
from schemas.workflow import WorkflowSignal, WorkflowTrigger
from scoring.risk import RiskTierTracker

log = logging.getLogger(__name__)


class AccountLogic(StatefulBatchLogic[Event, Output, AccountSnapshot]):
    """Bytewax adapter around one account's :class:`AccountProcessor`."""

    def __init__(
        self,
        processor: AccountProcessor,
        metrics: PipelineMetrics,
        clock: Callable[[], datetime],
        idle_ttl: timedelta,
        flush_interval: timedelta,
        *,
        restored: bool = False,
    ) -> None:
        self._processor = processor
        self._metrics = metrics
        self._clock = clock
        self._idle_ttl = idle_ttl
        self._flush_interval = flush_interval
        self._last_active = clock()
        # Per-key calls are too many for a histogram each: accumulate busy time.
        self._busy = metrics.stage_busy.labels(stage="process-account")
        # When the pending feature write is due; after a restore, write once
        # (the crash may have lost the last write).
        self._flush_due: datetime | None = self._last_active if restored else None

    def on_batch(self, values: list[Event]) -> tuple[list[Output], bool]:
        started = time.perf_counter()
        result = self._processor.process(values)
        self._last_active = self._clock()
        if result.features_moved and self._flush_due is None:
            self._flush_due = self._last_active + self._flush_interval
        metrics = self._metrics
        if result.duplicates:
            metrics.duplicates.inc(result.duplicates)
        if result.late:
            metrics.late.inc(result.late)
        if result.failed:
            metrics.rejected.labels(reason=str(RejectReason.PROCESSING_ERROR)).inc(result.failed)
            for item in result.outputs:
                if isinstance(item, DeadLetter):
                    log.error(
                        "an event's handling raised; it went to the dead-letter topic",
                        extra={"partition": item.partition, "offset": item.offset,
                               "error": item.detail},
                    )
        dedupe = self._processor.dedupe
        if dedupe.evicted_early:
            metrics.dedupe_evicted_early.inc(dedupe.evicted_early)
            dedupe.evicted_early = 0
        self._busy.inc(time.perf_counter() - started)
        return result.outputs, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime:
        idle_at = self._last_active + self._idle_ttl
        return idle_at if self._flush_due is None else min(idle_at, self._flush_due)

    def on_notify(self) -> tuple[list[Output], bool]:
        now = self._clock()
        outputs = self._flush() if self._flush_due is not None and now >= self._flush_due else []
        if now >= self._last_active + self._idle_ttl:
            return outputs, StatefulBatchLogic.DISCARD
        return outputs, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Output], bool]:
        return self._flush(), StatefulBatchLogic.RETAIN

    def _flush(self) -> list[Output]:
        self._flush_due = None
        update = self._processor.feature_update()
        return [] if update is None else [update]

    def snapshot(self) -> AccountSnapshot:
        return self._processor.snapshot()


RiskInput = RiskScore | Alert | AccountChange


# How long (wall clock, without news) a cancelled or opted-out account's decision
# state is kept: a final invoice's payment_failed must not start dunning.
REMEMBER_REFUSALS = timedelta(days=90)


RiskOutput = RiskScore | Alert | DecisionOutput


RiskSnapshot = tuple[tuple[str, float], tuple[object, ...] | None]


class AccountRiskLogic(StatefulBatchLogic[RiskInput, RiskOutput, RiskSnapshot]):
    """One account's risk tier (:class:`RiskTierTracker`) and decisions
    (:class:`AccountDecisions`): scores, usage alerts and lifecycle changes in;
    scores, tier-rise alerts, decision records, workflow triggers and signals out."""

    def __init__(
        self,
        snapshot: RiskSnapshot | None,
        engine: DecisionEngine | None,
        clock: Callable[[], datetime],
        score_ttl: timedelta,
        metrics: PipelineMetrics,
    ) -> None:
        tier_state, decision_state = snapshot or (None, None)
        self._tracker = RiskTierTracker(tier_state)
        self._engine = engine
        self._decisions = None if engine is None else AccountDecisions(engine, decision_state)
        self._clock = clock
        self._score_ttl = score_ttl
        self._metrics = metrics
        self._busy = metrics.stage_busy.labels(stage="track-risk-and-decide")
        self._touched = clock()

    def notify_at(self) -> datetime:
        return self._touched + self._idle_ttl()

    def _idle_ttl(self) -> timedelta:
        """After this long without news (wall clock), nothing is left to remember:
        the tier has lapsed and every window of the live policy has passed. A
        cancellation or an opt-out is kept longer (REMEMBER_REFUSALS)."""
        ttl = self._score_ttl
        decisions, engine = self._decisions, self._engine
        if decisions is not None and engine is not None:
            ttl = max(ttl, timedelta(seconds=engine.policy.longest_memory_seconds))
            if decisions.cancelled or (decisions.consent and not decisions.consent[0]):
                ttl = max(ttl, REMEMBER_REFUSALS)
        return ttl

    def on_notify(self) -> tuple[list[RiskOutput], bool]:
        return [], StatefulBatchLogic.DISCARD

    def on_batch(self, values: list[RiskInput]) -> tuple[list[RiskOutput], bool]:
        started = time.perf_counter()
        self._touched = self._clock()
        decisions = self._decisions
        out: list[RiskOutput] = []
        # In arrival order: an account's scores, usage alerts and changes share
        # one path from process-account (only inactivity alerts come another way).
        for item in values:
            if isinstance(item, RiskScore):
                out.append(item)
                tier_alert = self._tracker.update(item)
                if decisions is not None:
                    out += decisions.observe_score(item)
                if tier_alert is not None:
                    out.append(tier_alert)
                    if decisions is not None:
                        out += decisions.decide(tier_alert)
            elif decisions is None:
                continue
            elif isinstance(item, Alert):
                out += decisions.decide(item)
            else:
                out += decisions.observe_change(item)
        if decisions is not None:
            self._count(out)
        # A low tier with nothing to remember is the default state: drop it.
        done = self._tracker.tier is RiskTier.LOW and (decisions is None or decisions.forgettable())
        self._busy.inc(time.perf_counter() - started)
        return out, done

    def _count(self, outputs: list[RiskOutput]) -> None:
        metrics = self._metrics
        for item in outputs:
            if isinstance(item, DecisionRecord):
                metrics.decisions.labels(
                    decision=str(item.decision), reason=str(item.reasons[0])
                ).inc()
            elif isinstance(item, WorkflowTrigger):
                metrics.workflow_triggers.labels(
                    workflow=item.workflow_key, action=str(item.action)
                ).inc()
            elif isinstance(item, WorkflowSignal):
                metrics.workflow_signals.labels(signal=str(item.signal)).inc()

    def snapshot(self) -> RiskSnapshot:
        decisions = self._decisions
        return self._tracker.snapshot(), None if decisions is None else decisions.snapshot()


class InactivityLogic(StatefulBatchLogic[ActivityBatch, UsageSignal, TrackerSnapshot]):
    """Bytewax adapter around one partition's :class:`InactivityTracker`."""

    def __init__(self, tracker: InactivityTracker, metrics: PipelineMetrics) -> None:
        self._tracker = tracker
        self._seconds = metrics.stage_seconds.labels(stage="track-inactivity")

    def on_batch(self, values: list[ActivityBatch]) -> tuple[list[UsageSignal], bool]:
        started = time.perf_counter()
        signals = self._tracker.observe(values)
        self._seconds.observe(time.perf_counter() - started)
        return signals, StatefulBatchLogic.RETAIN

    def snapshot(self) -> TrackerSnapshot:
        return self._tracker.snapshot()
