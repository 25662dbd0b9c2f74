"""Reading churnwatch's Prometheus metrics: a process's ``/metrics`` text, or a registry.

Only the series the benchmarks report are kept: input messages, the seconds spent
inside each stage and sink write, and the ``since="ingest"`` alert latency buckets.
Per-process scrapes are summed into cluster-wide figures here too.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Sequence
from typing import Any

from benchmarks.harness.figures import Figures
from benchmarks.harness.quantiles import Buckets

LatencyByTier = dict[str, dict[float, float]]
"""tier -> {le: cumulative count}: one process's alert latency histograms."""

# The collector's pauses, listed with the stages; they fall inside them.
GC_STAGE = "garbage collector pauses (inside the stages above)"

# Families whose _sum / _total is wall time inside a stage or a sink write.
_TIME_FAMILIES = (
    "churnwatch_stage_batch_seconds",
    "churnwatch_stage_busy_seconds",
    "churnwatch_sink_write_seconds",
)


def parse_metrics(text: str) -> Figures:
    """``messages``, ``latency`` (by tier), ``stages`` (s by stage, and the garbage
    collector's pauses as :data:`GC_STAGE`) and ``gc_pauses`` (the collector's pauses
    as cumulative buckets, all generations) of one exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    messages = 0.0
    latency: LatencyByTier = {}
    stages: dict[str, float] = {}
    gc_pauses: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "churnwatch_ingest_messages":
            for sample in family.samples:
                if sample.name == "churnwatch_ingest_messages_total":
                    messages += sample.value
        elif family.name in _TIME_FAMILIES:
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_total")):
                    label = sample.labels.get("stage") or f"sink {sample.labels.get('sink')}"
                    stages[label] = stages.get(label, 0.0) + sample.value
        elif family.name == "churnwatch_gc_pause_seconds":
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    stages[GC_STAGE] = stages.get(GC_STAGE, 0.0) + sample.value
                elif sample.name.endswith("_bucket"):  # every generation's pauses together
                    le = float(sample.labels["le"])
                    gc_pauses[le] = gc_pauses.get(le, 0.0) + sample.value
        elif family.name == "churnwatch_alert_latency_seconds":
            for sample in family.samples:
                labels = sample.labels
                if sample.name.endswith("_bucket") and labels.get("since") == "ingest":
                    tier = labels.get("tier", "?")
                    le = float(labels["le"])
                    latency.setdefault(tier, {})[le] = sample.value
    return {"messages": messages, "latency": latency, "stages": stages,
            "gc_pauses": sorted(gc_pauses.items())}


def scrape(port: int, timeout_s: float = 1.0) -> Figures | None:
    """:func:`parse_metrics` of ``http://127.0.0.1:<port>/metrics``; None if it does not answer.

    A process that has not started serving yet, or has just exited, is normal
    during a run, hence None rather than an exception.
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as r:
            text = r.read().decode()
    except OSError:
        return None
    return parse_metrics(text)


def sum_buckets(per_process: Sequence[LatencyByTier]) -> dict[str, Buckets]:
    """Cluster-wide cumulative buckets by tier, each sorted by bound."""
    merged: LatencyByTier = {}
    for latency in per_process:
        for tier, buckets in latency.items():
            into = merged.setdefault(tier, {})
            for le, count in buckets.items():
                into[le] = into.get(le, 0.0) + count
    return {tier: sorted(b.items()) for tier, b in sorted(merged.items())}


def sum_histograms(per_process: Sequence[Buckets]) -> Buckets:
    """One cumulative histogram of several processes' (the same bounds)."""
    merged: dict[float, float] = {}
    for buckets in per_process:
        for le, count in buckets:
            merged[le] = merged.get(le, 0.0) + count
    return sorted(merged.items())


def sum_stages(per_process: Sequence[dict[str, float]]) -> dict[str, float]:
    """Cluster-wide seconds by stage, the most expensive first."""
    merged: dict[str, float] = {}
    for stages in per_process:
        for name, seconds in stages.items():
            merged[name] = merged.get(name, 0.0) + seconds
    return dict(sorted(merged.items(), key=lambda item: -item[1]))


def counter_by_label(registry: Any, sample_name: str, label: str) -> dict[str, int]:
    """label value -> count of one counter in an in-process ``CollectorRegistry``."""
    return {
        sample.labels[label]: int(sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == sample_name
    }
