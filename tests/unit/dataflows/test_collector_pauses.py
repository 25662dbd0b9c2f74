"""dataflows.metrics.CollectorPauses: the garbage collector's pauses, timed by generation
while the dataflow runs, and no longer once it has stopped."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from dataflows.metrics import CollectorPauses, PipelineMetrics


def pauses(metrics: PipelineMetrics) -> dict[str, tuple[float, float]]:
    """generation -> (collections timed, seconds)."""
    found: dict[str, list[float]] = {}
    for metric in metrics.registry.collect():
        for sample in metric.samples:
            if sample.name.startswith("churnwatch_gc_pause_seconds_"):
                held = found.setdefault(sample.labels["generation"], [0.0, 0.0])
                if sample.name.endswith("_count"):
                    held[0] = sample.value
                elif sample.name.endswith("_sum"):
                    held[1] = sample.value
    return {generation: (count, seconds) for generation, (count, seconds) in found.items()}


def test_each_collection_is_timed_under_its_generation_while_entered() -> None:
    metrics = PipelineMetrics.create(CollectorRegistry())
    hooks = len(gc.callbacks)
    with CollectorPauses(metrics):
        assert len(gc.callbacks) == hooks + 1
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    timed = pauses(metrics)
    assert timed["0"][0] >= 1 and timed["2"][0] >= 2
    assert timed["2"][1] > 0.0
    assert len(gc.callbacks) == hooks  # unhooked
    gc.collect(2)
    assert pauses(metrics)["2"] == timed["2"]
