"""The benchmark harness: what the scripts in ``benchmarks/`` are made of.

The scripts (``python -m benchmarks.bench_pipeline``, ``bench_features``,
``bench_scoring``) only parse their arguments and call one of:

* :mod:`~benchmarks.harness.pipeline`: the cluster benchmark (floor,
  reference, full pipeline with P processes, 1 process and scoring off, alert
  latency), with :mod:`~benchmarks.harness.floor` (the read-parse-count floor
  flow), :mod:`~benchmarks.harness.reference` (the hand-written confluent-kafka
  loop, the ceiling), :mod:`~benchmarks.harness.output_rows` (rows a run wrote
  to PostgreSQL), :mod:`~benchmarks.harness.phases` (wall time per phase),
  :mod:`~benchmarks.harness.report` (table, result.json, chart.png) and
  :mod:`~benchmarks.harness.targets`;
* :mod:`~benchmarks.harness.dataflow_runs`: the in-process dataflow benchmark,
  printed by :mod:`~benchmarks.harness.dataflow_report`;
* :mod:`~benchmarks.harness.scoring_costs`: model, decision and replay costs.

Beneath them: :mod:`~benchmarks.harness.processes` (child processes),
:mod:`~benchmarks.harness.churnwatch_runs` (isolated settings of a run),
:mod:`~benchmarks.harness.prometheus` (``/metrics``),
:mod:`~benchmarks.harness.sampling` (RSS and CPU over time),
:mod:`~benchmarks.harness.timelines` (what the samples say),
:mod:`~benchmarks.harness.quantiles` (histogram quantiles, medians),
:mod:`~benchmarks.harness.workload` (simulated traffic) and
:mod:`~benchmarks.harness.redis_memory` (feature hash memory).

Heavy dependencies (Bytewax, the churnwatch application, database clients,
matplotlib) are imported inside the functions that use them, so importing the
harness, ``--help`` and the floor workers stay light.
"""

from benchmarks.harness.churnwatch_runs import (
    child_env,
    churnwatch_argv,
    init_recovery,
    isolated_settings,
)
from benchmarks.harness.dataflow_report import print_profile, print_run_table, print_summary
from benchmarks.harness.dataflow_runs import (
    DataflowOptions,
    checks,
    derive,
    measured_run,
    run_dataflow_benchmark,
    startup_run,
    timed_pipeline,
)
from benchmarks.harness.figures import Figures
from benchmarks.harness.floor import FLOOR_LINE, floor_worker, run_floor
from benchmarks.harness.output_rows import (
    PER_THOUSAND_FIGURES,
    count_rows,
    rows_per_thousand_events,
)
from benchmarks.harness.phases import PhaseTimes
from benchmarks.harness.pipeline import (
    SCORING_OFF_ENV,
    PipelineOptions,
    run_full,
    run_latency,
    run_pipeline_benchmark,
)
from benchmarks.harness.processes import (
    ChildProcesses,
    children_cpu_s,
    free_port_block,
    http_status,
    parse_counts,
    tail_text,
    wait_until_ready,
)
from benchmarks.harness.prometheus import (
    counter_by_label,
    parse_metrics,
    scrape,
    sum_buckets,
    sum_stages,
)
from benchmarks.harness.quantiles import (
    Buckets,
    bucket_delta,
    bucket_quantile,
    median_of,
    median_of_numbers,
    ratio,
    share_at_most,
)
from benchmarks.harness.redis_memory import feature_hash_figures, feature_memory
from benchmarks.harness.reference import (
    REFERENCE_LINE,
    ReferenceState,
    count_field,
    count_key,
    reference_worker,
    run_reference,
    sum_worker_lines,
    write_counts,
)
from benchmarks.harness.report import (
    DEFAULT_OUT_DIR,
    draw_chart,
    environment,
    print_table,
    table,
    write_result,
)
from benchmarks.harness.sampling import (
    ClusterSampler,
    own_status_kib,
    reset_own_peak_rss,
    runqueue_wait_s,
    server_cpu_seconds,
)
from benchmarks.harness.scoring_costs import (
    decision_cost,
    model_latency,
    replay_rates,
    run_scoring_benchmark,
)
from benchmarks.harness.targets import (
    TARGET_EVENTS_PER_S,
    TARGET_FLOOR_SHARE,
    TARGET_REFERENCE_SHARE,
    TARGET_SCALING,
    TARGET_SCALING_PROCESSES,
    TARGET_SCORE_ROWS_PER_1000,
    TARGET_SCORING_OFF_EVENTS_PER_S,
    TARGET_TIER1_P99_S,
    TARGET_TIER1_RATE,
    targets,
)
from benchmarks.harness.timelines import (
    latency_timeline,
    runqueue_waits,
    stage_timeline,
    sustained_rate,
    throughput_timeline,
    utilisation,
    worker_cpu_seen,
)
from benchmarks.harness.workload import choose_days, paced_produce, simulate_stream

__all__ = [
    "DEFAULT_OUT_DIR",
    "FLOOR_LINE",
    "PER_THOUSAND_FIGURES",
    "REFERENCE_LINE",
    "SCORING_OFF_ENV",
    "TARGET_EVENTS_PER_S",
    "TARGET_FLOOR_SHARE",
    "TARGET_REFERENCE_SHARE",
    "TARGET_SCALING",
    "TARGET_SCALING_PROCESSES",
    "TARGET_SCORE_ROWS_PER_1000",
    "TARGET_SCORING_OFF_EVENTS_PER_S",
    "TARGET_TIER1_P99_S",
    "TARGET_TIER1_RATE",
    "Buckets",
    "ChildProcesses",
    "ClusterSampler",
    "DataflowOptions",
    "Figures",
    "PhaseTimes",
    "PipelineOptions",
    "ReferenceState",
    "bucket_delta",
    "bucket_quantile",
    "checks",
    "child_env",
    "children_cpu_s",
    "choose_days",
    "churnwatch_argv",
    "count_field",
    "count_key",
    "count_rows",
    "counter_by_label",
    "decision_cost",
    "derive",
    "draw_chart",
    "environment",
    "feature_hash_figures",
    "feature_memory",
    "floor_worker",
    "free_port_block",
    "http_status",
    "init_recovery",
    "isolated_settings",
    "latency_timeline",
    "measured_run",
    "median_of",
    "median_of_numbers",
    "model_latency",
    "own_status_kib",
    "paced_produce",
    "parse_counts",
    "parse_metrics",
    "print_profile",
    "print_run_table",
    "print_summary",
    "print_table",
    "ratio",
    "reference_worker",
    "replay_rates",
    "reset_own_peak_rss",
    "rows_per_thousand_events",
    "run_dataflow_benchmark",
    "run_floor",
    "run_full",
    "run_latency",
    "run_pipeline_benchmark",
    "run_reference",
    "run_scoring_benchmark",
    "runqueue_wait_s",
    "runqueue_waits",
    "scrape",
    "server_cpu_seconds",
    "share_at_most",
    "simulate_stream",
    "stage_timeline",
    "startup_run",
    "sum_buckets",
    "sum_stages",
    "sum_worker_lines",
    "sustained_rate",
    "table",
    "tail_text",
    "targets",
    "throughput_timeline",
    "timed_pipeline",
    "utilisation",
    "wait_until_ready",
    "worker_cpu_seen",
    "write_counts",
    "write_result",
]
