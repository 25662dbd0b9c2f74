"""Bytewax sinks over churnwatch's writers: one writer per worker, every batch timed.

Any :class:`~sinks.base.BatchWriter` becomes a Bytewax sink through
:class:`WriterSink`; ``on_written`` sees each batch once the writer has
confirmed it (alert latency is measured there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.metrics import PipelineMetrics
from schemas.alert import Alert
from sinks.base import BatchWriter

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The wall clock (processing time): injected, so tests control it."""
    return datetime.now(UTC)


class _WriterPartition(StatelessSinkPartition[Any]):
    def __init__(
        self,
        writer: BatchWriter,
        name: str,
        metrics: PipelineMetrics,
        on_written: Callable[[list[Any]], None] | None,
    ) -> None:
        self._writer = writer
        self._name = name
        self._written = metrics.sink_writes.labels(sink=name)
        self._errors = metrics.sink_errors.labels(sink=name)
        self._seconds = metrics.sink_seconds.labels(sink=name)
        self._on_written = on_written

    def write_batch(self, items: list[Any]) -> None:
        started = time.perf_counter()
        try:
            self._writer.write_batch(items)
        except Exception:
            self._errors.inc()
            log.exception("sink %s failed to write a batch of %d", self._name, len(items))
            raise  # the dataflow stops; a restart resumes from the last snapshot
        self._seconds.observe(time.perf_counter() - started)
        self._written.inc(len(items))
        if self._on_written is not None:
            self._on_written(items)

    def close(self) -> None:
        self._writer.close()


class WriterSink(DynamicSink[Any]):
    """A Bytewax sink over any :class:`BatchWriter`: one writer per worker.

    Times and counts every batch; ``on_written`` sees each batch once the
    writer has confirmed it (alert latency is measured there).
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[], BatchWriter],
        metrics: PipelineMetrics,
        on_written: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self._name = name
        self._factory = factory
        self._metrics = metrics
        self._on_written = on_written

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WriterPartition:
        return _WriterPartition(self._factory(), self._name, self._metrics, self._on_written)


def alert_latency_observer(
    metrics: PipelineMetrics, clock: Callable[[], float] = time.time
) -> Callable[[list[Alert]], None]:
    """Observes ingest→emission and event-time→emission latency, and logs the ids."""

    def observe(alerts: list[Alert]) -> None:
        now = clock()
        for alert in alerts:
            tier = str(int(alert.tier))
            if alert.ingested_at:
                metrics.alert_latency.labels(tier=tier, since="ingest").observe(
                    max(0.0, now - alert.ingested_at)
                )
            metrics.alert_latency.labels(tier=tier, since="event").observe(
                max(0.0, now - alert.event_time.timestamp())
            )
            log.info(
                "alert emitted",
                extra={
                    "alert_id": alert.alert_id,
                    "event_id": alert.trigger_event_id,
                    "tier": int(alert.tier),
                    "rule": alert.rule,
                },
            )

    return observe
