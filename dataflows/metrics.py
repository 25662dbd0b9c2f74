"""Prometheus metrics of the dataflow, built on a passed registry.

Label values are closed sets (reason codes, severities, known event types, sink
names): never account or event ids. Counting happens per batch in the
operators, not per event.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

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
    }
)


def event_type_label(event_type: str) -> str:
    return event_type if event_type in KNOWN_EVENT_TYPES else "other"


@dataclass(frozen=True, slots=True)
class PipelineMetrics:
    """The counters the dataflow moves."""

    registry: CollectorRegistry
    messages: Counter
    rejected: Counter
    duplicates: Counter
    late: Counter
    dedupe_evicted_early: Counter
    events: Counter
    alerts: Counter
    cancellations: Counter
    sink_writes: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PipelineMetrics:
        return cls(
            registry=registry,
            messages=Counter(
                "churnwatch_ingest_messages",
                "Messages read from the events topic",
                registry=registry,
            ),
            rejected=Counter(
                "churnwatch_ingest_rejected",
                "Messages sent to the dead-letter topic, by reason",
                ["reason"],
                registry=registry,
            ),
            duplicates=Counter(
                "churnwatch_ingest_duplicates",
                "Events dropped as duplicates of an event_id seen within the window",
                registry=registry,
            ),
            late=Counter(
                "churnwatch_ingest_late_events",
                "Events older than their account's watermark (sent to the late topic)",
                registry=registry,
            ),
            dedupe_evicted_early=Counter(
                "churnwatch_dedupe_evicted_early",
                "Event ids forgotten before their window ended (per-account bound reached)",
                registry=registry,
            ),
            events=Counter(
                "churnwatch_ingest_events",
                "Valid, unique events, by event type (unknown types as 'other')",
                ["event_type"],
                registry=registry,
            ),
            alerts=Counter(
                "churnwatch_alerts",
                "Alerts emitted, by tier and severity",
                ["tier", "severity"],
                registry=registry,
            ),
            cancellations=Counter(
                "churnwatch_cancellations",
                "subscription.cancelled events recorded",
                registry=registry,
            ),
            sink_writes=Counter(
                "churnwatch_sink_records_written",
                "Records handed to a sink and acknowledged, by sink",
                ["sink"],
                registry=registry,
            ),
        )

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
