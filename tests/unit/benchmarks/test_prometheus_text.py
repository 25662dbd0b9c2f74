"""Reading churnwatch's /metrics text and child summary lines in the benchmark harness."""

from __future__ import annotations

import math

from benchmarks.harness.processes import parse_counts
from benchmarks.harness.prometheus import (
    GC_STAGE,
    parse_metrics,
    sum_buckets,
    sum_histograms,
    sum_stages,
)

EXPOSITION = """\
# HELP churnwatch_ingest_messages_total Input messages read.
# TYPE churnwatch_ingest_messages_total counter
churnwatch_ingest_messages_total{partition="0"} 120.0
churnwatch_ingest_messages_total{partition="1"} 80.0
# HELP churnwatch_ingest_events_total Valid events read.
# TYPE churnwatch_ingest_events_total counter
churnwatch_ingest_events_total 190.0
# HELP churnwatch_stage_busy_seconds_total Seconds inside a stage.
# TYPE churnwatch_stage_busy_seconds_total counter
churnwatch_stage_busy_seconds_total{stage="parse-events"} 2.5
# HELP churnwatch_stage_batch_seconds Seconds per batch of a stage.
# TYPE churnwatch_stage_batch_seconds histogram
churnwatch_stage_batch_seconds_bucket{stage="parse-events",le="+Inf"} 4.0
churnwatch_stage_batch_seconds_count{stage="parse-events"} 4.0
churnwatch_stage_batch_seconds_sum{stage="parse-events"} 0.5
# HELP churnwatch_sink_write_seconds Seconds per sink write.
# TYPE churnwatch_sink_write_seconds histogram
churnwatch_sink_write_seconds_bucket{sink="redis-features",le="+Inf"} 3.0
churnwatch_sink_write_seconds_count{sink="redis-features"} 3.0
churnwatch_sink_write_seconds_sum{sink="redis-features"} 0.75
# HELP churnwatch_gc_pause_seconds Collector pauses.
# TYPE churnwatch_gc_pause_seconds histogram
churnwatch_gc_pause_seconds_bucket{generation="0",le="0.05"} 6.0
churnwatch_gc_pause_seconds_bucket{generation="0",le="+Inf"} 7.0
churnwatch_gc_pause_seconds_bucket{generation="1",le="0.05"} 1.0
churnwatch_gc_pause_seconds_bucket{generation="1",le="+Inf"} 2.0
churnwatch_gc_pause_seconds_count{generation="0"} 7.0
churnwatch_gc_pause_seconds_sum{generation="0"} 0.25
churnwatch_gc_pause_seconds_sum{generation="1"} 0.5
# HELP churnwatch_alert_latency_seconds Alert latency.
# TYPE churnwatch_alert_latency_seconds histogram
churnwatch_alert_latency_seconds_bucket{since="ingest",tier="1",le="0.1"} 3.0
churnwatch_alert_latency_seconds_bucket{since="ingest",tier="1",le="+Inf"} 5.0
churnwatch_alert_latency_seconds_count{since="ingest",tier="1"} 5.0
churnwatch_alert_latency_seconds_sum{since="ingest",tier="1"} 1.5
churnwatch_alert_latency_seconds_bucket{since="event",tier="1",le="0.1"} 9.0
churnwatch_alert_latency_seconds_bucket{since="event",tier="1",le="+Inf"} 9.0
churnwatch_alert_latency_seconds_bucket{since="ingest",tier="2",le="0.1"} 0.0
churnwatch_alert_latency_seconds_bucket{since="ingest",tier="2",le="+Inf"} 1.0
"""


def test_input_messages_are_summed_over_partitions() -> None:
    assert parse_metrics(EXPOSITION)["messages"] == 200.0


def test_stage_and_sink_seconds_come_from_sums_and_totals() -> None:
    # parse-events: 2.5 s busy + 0.5 s in batches; the _count and _bucket series are not
    # time; the collector's pauses, summed over its generations
    assert parse_metrics(EXPOSITION)["stages"] == {"parse-events": 3.0,
                                                   "sink redis-features": 0.75,
                                                   GC_STAGE: 0.75}


def test_only_ingest_latency_buckets_are_kept_by_tier() -> None:
    assert parse_metrics(EXPOSITION)["latency"] == {
        "1": {0.1: 3.0, math.inf: 5.0},
        "2": {0.1: 0.0, math.inf: 1.0},
    }


def test_an_empty_exposition_has_nothing() -> None:
    assert parse_metrics("") == {"messages": 0.0, "latency": {}, "stages": {}, "gc_pauses": []}


def test_sum_buckets_adds_processes_and_sorts_bounds() -> None:
    process_0 = {"1": {math.inf: 3.0, 0.1: 2.0}}
    process_1 = {"1": {0.1: 1.0, math.inf: 4.0}, "2": {math.inf: 1.0}}
    assert sum_buckets([process_0, process_1]) == {
        "1": [(0.1, 3.0), (math.inf, 7.0)],
        "2": [(math.inf, 1.0)],
    }


def test_sum_stages_adds_processes_most_expensive_first() -> None:
    merged = sum_stages([{"parse": 1.0, "score": 0.5}, {"parse": 0.25, "score": 2.0}])
    assert list(merged.items()) == [("score", 2.5), ("parse", 1.25)]


def test_parse_counts_reads_numbers_after_the_prefix() -> None:
    line = "drained: messages=18738 events=18514 note=slow first=1700000000.5"
    assert parse_counts(line, "drained: ") == {
        "messages": 18738.0, "events": 18514.0, "first": 1700000000.5,
    }


def test_the_collector_pauses_of_every_generation_are_one_histogram() -> None:
    assert parse_metrics(EXPOSITION)["gc_pauses"] == [(0.05, 7.0), (math.inf, 9.0)]
    assert sum_histograms([[(0.05, 7.0), (math.inf, 9.0)], [(0.05, 1.0), (math.inf, 1.0)], []]
                          ) == [(0.05, 8.0), (math.inf, 10.0)]
