"""Composition root: what ``run`` and ``demo`` share (topics, migrations, the flow).

``run_pipeline`` prepares topics and schema, starts the on-call endpoints
when a metrics port is set, and runs the dataflow in this process (one
process of a cluster when ``addresses`` are given).
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress

from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from churnwatch.ops_server import OpsServer, Readiness
from churnwatch.registry import register_output_schemas
from churnwatch.settings import Settings
from churnwatch.topics import ClientLog, admin_client, ensure_churnwatch_topics
from churnwatch.wiring import production_flow
from dataflows.metrics import CollectorPauses, PipelineMetrics
from dataflows.run import run_dataflow
from sinks.migrate import migrate
from sinks.postgres import connect

log = logging.getLogger(__name__)

# The input polls every few milliseconds, even when idle: a minute without a
# poll means the dataflow is stuck (or still starting).
STALL_SECONDS = 60.0


def prepare(settings: Settings) -> None:
    """Register the output schemas (with a schema registry), create missing topics and
    migrate the database schema (all idempotent). A checked-in output schema that the
    registry finds incompatible with its subject's latest version stops the start here,
    before anything is created."""
    assert settings.kafka_bootstrap and settings.database_url
    register_output_schemas(settings)
    ensure_churnwatch_topics(settings)
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        applied = migrate(conn, settings.database_schema)
    if applied:
        log.info("applied migrations", extra={"versions": applied,
                                              "schema": settings.database_schema})


def readiness(settings: Settings, metrics: PipelineMetrics) -> Readiness:
    """The /readyz checks: broker, Redis, PostgreSQL, and dataflow progress."""
    import psycopg
    import redis

    assert settings.kafka_bootstrap and settings.database_url and settings.redis_url
    # Its own ClientLog: a failing check says why (a refused login, a TLS handshake).
    watch = ClientLog()
    admin = admin_client(settings.kafka_bootstrap, settings.kafka_config.properties, watch)
    redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=2,
                                        socket_connect_timeout=2)
    database_url = settings.database_url
    events_topic = settings.topics.events

    def broker() -> None:
        try:
            topic = admin.list_topics(events_topic, timeout=2).topics[events_topic]
        except KafkaException as exc:
            admin.poll(0)  # serves the error callback and the log
            error = exc.args[0]
            problem = error.str() if isinstance(error, KafkaError) else str(exc)
            raise RuntimeError(f"{problem}: {watch.reasons() or 'no answer'}") from exc
        watch.clear()
        if topic.error is not None:
            raise RuntimeError(topic.error.str())

    def redis_ping() -> None:
        redis_client.ping()

    def postgres() -> None:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    def progress() -> None:
        last = metrics.last_batch._value.get()  # prometheus_client keeps it here
        if not last:
            raise RuntimeError("the input has not polled yet")
        age = time.time() - last
        if age > STALL_SECONDS:
            raise RuntimeError(f"no input poll for {age:.0f}s")

    return Readiness(
        {"kafka": broker, "redis": redis_ping, "postgres": postgres, "dataflow": progress}
    )


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
    # Every process prepares (the migration lock and TOPIC_ALREADY_EXISTS make it
    # safe): the flow reads the schema as it is built (experiments, consent), so
    # a process must not start before the migrations are in.
    prepare(settings)
    metrics = PipelineMetrics.create(registry or CollectorRegistry())
    server = None
    if settings.metrics_port:
        port = settings.metrics_port + (process_id or 0)
        server = OpsServer(port, metrics.registry, readiness(settings, metrics)).start()
    try:
        flow = production_flow(settings, metrics, tail=tail)
        with CollectorPauses(metrics):
            run_dataflow(
                flow,
                epoch_interval=settings.snapshot_interval,
                recovery_dir=settings.recovery_dir,
                recovery_partitions=settings.recovery_partitions,
                shards=settings.shards,
                workers_per_process=workers_per_process,
                process_id=process_id,
                addresses=addresses,
            )
    finally:
        if server is not None:
            with suppress(Exception):
                server.stop()
    return metrics
