"""``churnwatch replay``: the production dataflow over a JSONL history instead of Kafka.

The input is a file of event messages (one per line, as ``churnwatch simulate
--out`` writes); the operators are the production ones; event time drives
windows, detectors, debounce and scores, so the output is a function of the
file (and the definitions, rules and model): teams backtest a model or new
thresholds on their own history, and tests diff behaviour between versions.

Outputs go to JSONL files in the output directory, each sorted by its id so
two replays can be compared with ``diff`` (see :mod:`dataflows.files`). A file
replay has no consent directory: only the history's own
``account.consent_changed`` events count. With ``--to-sinks`` the outputs go
to the configured Kafka topics, Redis and PostgreSQL instead
(:func:`replay_to_sinks`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.testing import cluster_main, run_main
from prometheus_client import CollectorRegistry

from churnwatch.settings import Settings
from churnwatch.wiring import flow_config, production_config, production_sinks
from dataflows.files import (
    OUTPUTS,
    JsonlSource,
    clear_outputs,
    file_sinks,
    merge_outputs,
    sort_outputs,
)
from dataflows.flow import build_dataflow
from dataflows.metrics import PipelineMetrics
from featurestore.definitions import load_definitions

__all__ = ["OUTPUTS", "clear_outputs", "merge_outputs", "replay", "replay_process",
           "replay_to_sinks"]

# Handed a run's metrics before it starts (churnwatch.progress polls the messages read).
Watch = Callable[[PipelineMetrics], None]


def replay_to_sinks(
    history: Path, settings: Settings, *, watch: Watch | None = None
) -> dict[str, int]:
    """Run the dataflow over ``history`` into the configured Kafka, Redis and Postgres.

    The usual sinks, idempotent by id: replaying a history already streamed adds
    nothing; a backfill of an older history fills the same tables and topics.
    """
    from churnwatch.app import prepare

    prepare(settings)
    metrics = PipelineMetrics.create(CollectorRegistry())
    feature_set = load_definitions(settings.feature_definitions)
    flow = build_dataflow(
        JsonlSource(history),
        production_sinks(settings, metrics, feature_set),
        production_config(settings, feature_set, metrics),
        metrics,
    )
    if watch is not None:
        watch(metrics)
    run_main(flow)
    return metrics.summary()


def replay(
    history: Path, out_dir: Path, settings: Settings, *, watch: Watch | None = None
) -> dict[str, int]:
    """Run the dataflow over ``history``; return the number of lines per output.
    ``watch`` is handed the run's metrics before it starts (a progress display polls
    them)."""
    flow, metrics = _file_flow(history, out_dir, settings)
    if watch is not None:
        watch(metrics)
    run_main(flow)
    return sort_outputs(out_dir)


def replay_process(
    history: Path, out_dir: Path, settings: Settings, *, processes: int, process_id: int,
    addresses: list[str],
) -> dict[str, int]:
    """This process's share of a replay over ``processes`` processes (``churnwatch
    replay --processes``): the file is read as ``processes`` partitions by account (see
    :func:`dataflows.files.partition_of`), the cluster's processes exchange the shards'
    items as a Kafka run's do, and each writes ``<name>.part<process_id>.jsonl``; the
    parent merges them (:func:`merge_outputs`); this process's counts are returned. The
    outputs are the one-process replay's for a history in event-time order (each
    account's events in one partition, each partition's day closes on its own
    watermark)."""
    flow, metrics = _file_flow(history, out_dir, settings, partitions=processes,
                               part=process_id)
    cluster_main(flow, addresses, process_id)
    return metrics.summary()


def _file_flow(
    history: Path, out_dir: Path, settings: Settings, *, partitions: int = 1,
    part: int | None = None,
) -> tuple[Dataflow, PipelineMetrics]:
    """The production dataflow from ``history`` (as ``partitions`` partitions) into the
    JSONL files of ``out_dir`` (this process's ``part`` of them), and its metrics."""
    metrics = PipelineMetrics.create(CollectorRegistry())
    feature_set = load_definitions(settings.feature_definitions)
    flow = build_dataflow(JsonlSource(history, partitions=partitions),
                          file_sinks(out_dir, metrics, part=part),
                          flow_config(read_once(settings), feature_set), metrics)
    return flow, metrics


def read_once(settings: Settings) -> Settings:
    """A file replay's settings: the model and policy are read once, at the start, so
    its outputs are a function of the file (a model written into the directory while a
    long replay runs must not change its second half)."""
    return settings.replace(model_reload_interval=timedelta(0),
                            policy_reload_interval=timedelta(0))
