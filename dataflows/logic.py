"""Bytewax stateful logic around the engine-free shard kernel.

The adapter owns one key's kernel object (a shard of accounts,
:class:`~dataflows.shard.AccountShard`), passes batches through it, counts what
it did, and hands Bytewax the kernel's snapshot. Nothing here decides
anything: the logic lives in the kernel. (An input partition's inactivity
tracker lives in the partition itself: see ``dataflows.parse``.)
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime

from bytewax.operators import StatefulBatchLogic

from dataflows.collector import settle
from dataflows.metrics import PipelineMetrics
from dataflows.shard import AccountShard, ShardItem, ShardOutputs, ShardSnapshot
from schemas.decision import DecisionRecord
from schemas.event import RejectReason
from schemas.workflow import WorkflowSignal, WorkflowTrigger

log = logging.getLogger(__name__)


class ShardLogic(StatefulBatchLogic[list[ShardItem], ShardOutputs, ShardSnapshot]):
    """Bytewax adapter around one shard's :class:`~dataflows.shard.AccountShard`:
    one call per (shard, input batch), one :class:`ShardOutputs` bundle out."""

    def __init__(self, shard: AccountShard, metrics: PipelineMetrics) -> None:
        self._shard = shard
        self._metrics = metrics
        # Per-shard calls are many: accumulate busy time rather than a histogram each.
        self._busy_accounts = metrics.stage_busy.labels(stage="process-accounts")
        self._busy_risk = metrics.stage_busy.labels(stage="score-and-decide")
        self._busy_snapshot = metrics.stage_busy.labels(stage="snapshot-shards")
        # What this shard adds to the process's held-state gauges (moved by differences:
        # a process holds many shards).
        self._warm_gauge = metrics.accounts_held.labels(state="warm")
        self._cold_gauge = metrics.accounts_held.labels(state="cold")
        self._reported = (0, 0, 0)  # warm, cold, state bytes

    def on_batch(
        self, values: list[list[ShardItem]]
    ) -> tuple[list[ShardOutputs], bool]:
        out = self._shard.process(values)
        self._count(out)
        self._report_held()
        settle()  # what survived the batch is state: out of the collector's sight
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime:
        return self._shard.notify_at()

    def on_notify(self) -> tuple[list[ShardOutputs], bool]:
        out = self._shard.on_notify()
        self._report_held()
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[ShardOutputs], bool]:
        out = self._shard.on_eof()
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> ShardSnapshot:
        """The shard's snapshot, timed: packing the touched accounts' states is a stage
        of its own (Bytewax's pickling of the result and its write are not in it)."""
        started = time.perf_counter()
        snapshot = self._shard.snapshot()
        self._busy_snapshot.inc(time.perf_counter() - started)
        self._report_held()  # the accounts the epoch went by without went cold
        return snapshot

    def _report_held(self) -> None:
        shard = self._shard
        warm = shard.warm
        held = (warm, len(shard) - warm, shard.state_bytes)
        if held == self._reported:
            return
        was = self._reported
        self._warm_gauge.inc(held[0] - was[0])
        self._cold_gauge.inc(held[1] - was[1])
        self._metrics.state_bytes.inc(held[2] - was[2])
        self._reported = held

    def _count(self, out: ShardOutputs) -> None:
        metrics, shard = self._metrics, self._shard
        self._busy_accounts.inc(shard.busy_accounts)
        self._busy_risk.inc(shard.busy_risk)
        shard.busy_accounts = shard.busy_risk = 0.0
        if out.duplicates:
            metrics.duplicates.inc(out.duplicates)
        if out.late_events:
            metrics.late.inc(out.late_events)
        if out.evicted_early:
            metrics.dedupe_evicted_early.inc(out.evicted_early)
        if out.erased_events:  # read before their subject's erasure: gone with it
            metrics.rejected.labels(reason=str(RejectReason.ERASED_SUBJECT)).inc(
                out.erased_events
            )
        if out.erasures:
            metrics.erasures.inc(len(out.erasures))
        if out.failed:
            metrics.rejected.labels(reason=str(RejectReason.PROCESSING_ERROR)).inc(out.failed)
            for letter in out.dead_letters:
                log.error(
                    "an event's handling raised; it went to the dead-letter topic",
                    extra={"partition": letter.partition, "offset": letter.offset,
                           "error": letter.detail},
                )
        if out.scores:  # by tier and shadow: one increment per pair of labels (a Bytewax
            # inspect step used to count them one by one, a labels() lookup each)
            tally = Counter((str(score.tier), score.shadow) for score in out.scores)
            for (tier, shadow), count in tally.items():
                metrics.scores.labels(tier=tier, shadow=str(shadow).lower()).inc(count)
        for outcome in out.outcomes:  # rare: reported back by the workflows' systems
            metrics.workflow_outcomes.labels(outcome=str(outcome.outcome)).inc()
        for item in out.decided:
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
