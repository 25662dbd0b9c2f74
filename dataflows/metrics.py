"""Prometheus metrics of the dataflow, built on a passed registry.

Label values are closed sets (reason codes, severities, tiers, stages, sinks,
known event types, a bounded set of tenants): never account or event ids.
Counters move per batch in the operators, not per event.

Names follow ``churnwatch_<subsystem>_<name>_<unit>``; the dashboards in
``ops/`` and ``tests/unit/test_ops.py`` rely on them.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from schemas.event import Event

# Event types that get their own label value; others count as "other" so a
# producer inventing types cannot explode the series count.
KNOWN_EVENT_TYPES = frozenset(
    {
        "app.login",
        "app.feature_used",
        "app.seat_added",
        "app.seat_removed",
        "billing.payment_failed",
        "billing.payment_succeeded",
        "billing.downgraded",
        "subscription.cancel_intent",
        "subscription.cancelled",
        "subscription.renewed",
        "support.ticket_opened",
        "account.consent_changed",
        "account.traits_changed",
    }
)
MAX_TENANT_LABELS = 50
# Unknown top-level field names that get their own label value (producer-chosen names:
# the first few well-formed ones seen; the rest, and odd names, count as "other").
MAX_FIELD_LABELS = 20
_FIELD_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# 10 ms .. 10 s resolved, plus coarse tails (replays see event-time lags of days).
LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0,
)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Python's cyclic collector runs in the middle of whatever allocates: a young
# collection took 65 ms and a middle one 260 ms in the 7-day benchmark's workers.
GC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def event_type_label(event_type: str) -> str:
    return event_type if event_type in KNOWN_EVENT_TYPES else "other"


class TenantLabels:
    """The first ``limit`` tenants seen get their own label value, the rest 'other'."""

    def __init__(self, limit: int = MAX_TENANT_LABELS) -> None:
        self._limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, tenant_id: str) -> str:
        if tenant_id in self._known:
            return tenant_id
        with self._lock:
            if len(self._known) < self._limit:
                self._known.add(tenant_id)
                return tenant_id
        return "other"


class FieldLabels(TenantLabels):
    """Unknown field names as label values: the first ``limit`` names of at most 64
    characters of ``[A-Za-z0-9_.-]`` get their own, any other name is 'other'."""

    def __init__(self, limit: int = MAX_FIELD_LABELS) -> None:
        super().__init__(limit)

    def __call__(self, name: str) -> str:
        if _FIELD_NAME_RE.fullmatch(name) is None:
            return "other"
        return super().__call__(name)


@dataclass(frozen=True, slots=True)
class PipelineMetrics:
    """Everything the dataflow measures."""

    registry: CollectorRegistry
    messages: Counter
    rejected: Counter
    duplicates: Counter
    late: Counter
    dedupe_evicted_early: Counter
    erasures: Counter
    events: Counter
    unknown_fields: Counter
    alerts: Counter
    cancellations: Counter
    usage_signals: Counter
    scores: Counter
    decisions: Counter
    workflow_triggers: Counter
    workflow_signals: Counter
    workflow_outcomes: Counter
    sink_writes: Counter
    sink_errors: Counter
    sink_retries: Counter
    dependency_waiting: Gauge
    sink_seconds: Histogram
    stage_seconds: Histogram
    stage_busy: Counter
    alert_latency: Histogram
    last_batch: Gauge
    accounts_held: Gauge
    state_bytes: Gauge
    gc_pauses: Histogram
    feature_version: Info
    model_version: Info
    policy_version: Info
    policy_reloads: Counter
    model_reloads: Counter
    tenant_label: TenantLabels
    field_label: FieldLabels

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PipelineMetrics:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        return cls(
            registry=registry,
            messages=counter("churnwatch_ingest_messages", "Messages read from the events topic"),
            rejected=counter(
                "churnwatch_ingest_rejected",
                "Messages sent to the dead-letter topic, by reason",
                ("reason",),
            ),
            duplicates=counter(
                "churnwatch_ingest_duplicates",
                "Events dropped as duplicates of an event_id seen within the window",
            ),
            late=counter(
                "churnwatch_ingest_late_events",
                "Events older than their account's watermark (sent to the late topic)",
            ),
            dedupe_evicted_early=counter(
                "churnwatch_dedupe_evicted_early",
                "Event ids forgotten before their window ended (per-account bound reached)",
            ),
            erasures=counter(
                "churnwatch_erasures",
                "Erasure control messages read (one per input partition per erasure)",
            ),
            events=counter(
                "churnwatch_ingest_events",
                "Valid events read (duplicates included), by tenant and event type "
                "(bounded label sets)",
                ("tenant", "event_type"),
            ),
            unknown_fields=counter(
                "churnwatch_ingest_unknown_fields",
                "Valid events carrying a top-level field event v1 does not name (accepted "
                "and ignored), by field name (the first 20 names seen, then 'other')",
                ("field",),
            ),
            alerts=counter(
                "churnwatch_alerts", "Alerts emitted, by tier and severity", ("tier", "severity")
            ),
            cancellations=counter(
                "churnwatch_cancellations", "subscription.cancelled events recorded"
            ),
            usage_signals=counter(
                "churnwatch_usage_signals", "Usage signals emitted, by type", ("signal_type",)
            ),
            scores=counter(
                "churnwatch_risk_scores",
                "Risk scores published (rows and churn.scores messages), by tier and shadow",
                ("tier", "shadow"),
            ),
            decisions=counter(
                "churnwatch_decisions",
                "Decisions recorded, by decision and reason code",
                ("decision", "reason"),
            ),
            workflow_triggers=counter(
                "churnwatch_workflow_triggers",
                "Workflow triggers emitted, by workflow key (from the policy) and action",
                ("workflow", "action"),
            ),
            workflow_signals=counter(
                "churnwatch_workflow_signals",
                "Signals to open workflows (recovered, cancelled, opted_out)",
                ("signal",),
            ),
            workflow_outcomes=counter(
                "churnwatch_workflow_outcomes",
                "Workflow outcome events recorded (delivered, engaged, saved, lost)",
                ("outcome",),
            ),
            sink_writes=counter(
                "churnwatch_sink_records_written",
                "Records written and acknowledged, by sink",
                ("sink",),
            ),
            sink_errors=counter(
                "churnwatch_sink_errors", "Failed batch writes, by sink", ("sink",)
            ),
            sink_retries=counter(
                "churnwatch_sink_retries",
                "Batch writes retried because a dependency did not answer, by sink and dependency",
                ("sink", "dependency"),
            ),
            dependency_waiting=Gauge(
                "churnwatch_dependency_waiting",
                "1 while a sink waits for this dependency to come back (input held meanwhile)",
                ("dependency",),
                registry=registry,
            ),
            sink_seconds=Histogram(
                "churnwatch_sink_write_seconds",
                "Time to write (and confirm) one batch, by sink",
                ("sink",),
                buckets=STAGE_BUCKETS,
                registry=registry,
            ),
            stage_seconds=Histogram(
                "churnwatch_stage_batch_seconds",
                "Processing time of one batch in a dataflow stage",
                ("stage",),
                buckets=STAGE_BUCKETS,
                registry=registry,
            ),
            stage_busy=counter(
                "churnwatch_stage_busy_seconds",
                "Time spent in a stage, summed over its calls (per-key stages)",
                ("stage",),
            ),
            alert_latency=Histogram(
                "churnwatch_alert_latency_seconds",
                "From ingest (Kafka append time) or from event time to the alert's "
                "acknowledged write to churn.alerts, by tier",
                ("tier", "since"),
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            last_batch=Gauge(
                "churnwatch_input_last_poll_timestamp_seconds",
                "When the Kafka input last polled (the dataflow's heartbeat)",
                registry=registry,
            ),
            accounts_held=Gauge(
                "churnwatch_accounts_held",
                "Accounts whose state this process's shards hold, by state: warm (live "
                "objects) or cold (packed bytes alone)",
                ("state",),
                registry=registry,
            ),
            state_bytes=Gauge(
                "churnwatch_account_state_bytes",
                "Bytes of the packed account and risk states this process's shards hold, "
                "with the bytes replaced since their buffers' last compaction",
                registry=registry,
            ),
            gc_pauses=Histogram(
                "churnwatch_gc_pause_seconds",
                "Pauses of Python's cyclic garbage collector in this process, by generation "
                "(0 young, 2 all): nothing else runs meanwhile, the tier-1 lane included",
                ("generation",),
                buckets=GC_BUCKETS,
                registry=registry,
            ),
            feature_version=Info(
                "churnwatch_feature", "The live feature definitions", registry=registry
            ),
            model_version=Info(
                "churnwatch_model", "The loaded churn model (and shadow)", registry=registry
            ),
            policy_version=Info(
                "churnwatch_policy", "The live decision policy", registry=registry
            ),
            policy_reloads=counter(
                "churnwatch_policy_reloads",
                "Changed policy files: accepted, or refused (the last good one stays live)",
                ("outcome",),
            ),
            model_reloads=counter(
                "churnwatch_model_reloads",
                "Changed model directories, by model (primary, shadow): accepted, or refused "
                "(the last good model stays live)",
                ("model", "outcome"),
            ),
            tenant_label=TenantLabels(),
            field_label=FieldLabels(),
        )

    def count_unknown_fields(self, events: Iterable[Event]) -> None:
        """Count a batch's events that carry unknown top-level fields, by field name:
        one increment per name and batch (almost every event carries none)."""
        tally: dict[str, int] = {}
        for event in events:
            if event.unknown_fields:
                for name in event.unknown_fields:
                    label = self.field_label(name)
                    tally[label] = tally.get(label, 0) + 1
        for label, count in tally.items():
            self.unknown_fields.labels(field=label).inc(count)

    def summary(self) -> dict[str, int]:
        """This process's totals, for end-of-run lines and the demo."""
        return {
            "messages": int(self.total(self.messages)),
            "events": int(self.total(self.events)),
            "duplicates": int(self.total(self.duplicates)),
            "late": int(self.total(self.late)),
            "dead_letters": int(self.total(self.rejected)),
            "alerts": int(self.total(self.alerts)),
            "cancellations": int(self.total(self.cancellations)),
            "decisions": int(self.total(self.decisions)),
            "workflow_triggers": int(self.total(self.workflow_triggers)),
        }

    def total(self, counter: Counter) -> float:
        """Sum of a counter over all its label values (for summaries)."""
        name = counter._name  # prometheus_client keeps the base name here
        return sum(
            sample.value
            for metric in self.registry.collect()
            for sample in metric.samples
            if sample.name == f"{name}_total"
        )


class CollectorPauses:
    """While entered, times each pause of Python's cyclic garbage collector into
    ``churnwatch_gc_pause_seconds`` (a ``gc.callbacks`` hook: two calls per collection,
    a few a minute with the data plane's thresholds, see dataflows.collector).

    The collector stops every thread of the process, the tier-1 lane's too, and its
    pauses grow with the live objects a collection looks through (the warm accounts'
    state): this is what shows them, as a share of the time and as outliers.
    """

    def __init__(self, metrics: PipelineMetrics) -> None:
        self._by_generation = [metrics.gc_pauses.labels(generation=str(generation))
                               for generation in range(3)]
        self._started = 0.0

    def __enter__(self) -> CollectorPauses:
        gc.callbacks.append(self._observe)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        gc.callbacks.remove(self._observe)

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)
