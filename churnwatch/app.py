"""Composition root: what ``run`` and ``demo`` share (topics, migrations, the flow)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from churnwatch.settings import Settings
from churnwatch.topics import ensure_topics
from dataflows.metrics import PipelineMetrics
from dataflows.runner import production_flow, run_dataflow
from sinks.migrate import migrate
from sinks.postgres import connect

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> None:
    """Create missing topics and migrate the database schema (both idempotent)."""
    assert settings.kafka_bootstrap and settings.database_url
    ensure_topics(settings.kafka_bootstrap, settings.topics.all(), settings.topic_partitions)
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        applied = migrate(conn, settings.database_schema)
    if applied:
        log.info("applied migrations %s to schema %s", applied, settings.database_schema)


def run_pipeline(
    settings: Settings,
    *,
    tail: bool,
    registry: CollectorRegistry | None = None,
    workers_per_process: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> PipelineMetrics:
    """Prepare, then run the dataflow in this process; return its metrics."""
    prepare(settings)
    metrics = PipelineMetrics.create(registry or CollectorRegistry())
    flow = production_flow(settings, metrics, tail=tail)
    run_dataflow(
        flow,
        settings,
        workers_per_process=workers_per_process,
        process_id=process_id,
        addresses=addresses,
    )
    return metrics
