"""Bytewax sinks over churnwatch's writers: one writer per worker, every batch timed.

Any :class:`~sinks.base.BatchWriter` becomes a Bytewax sink through
:class:`WriterSink`; ``on_written`` sees each batch once the writer has
confirmed it (alert latency is measured there).

**Outages.** A write that fails because a dependency did not answer
(:class:`~schemas.errors.DependencyUnavailable`: the broker, Redis or
PostgreSQL gone or frozen) is retried, with back-off, until it succeeds. The
worker waits meanwhile, so its input waits too (back-pressure) and the epoch
does not close: nothing is committed past an unwritten output, and nothing is
lost. ``/readyz`` names the failing dependency meanwhile, and
``churnwatch_sink_retries_total`` and ``churnwatch_dependency_waiting`` count
and show the wait. Writers are idempotent by id, so a batch written twice
(part of it before the failure) leaves one row; Kafka consumers drop copies
by id. Any other error is a defect and stops the dataflow (a restart resumes
from the last snapshot).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.metrics import PipelineMetrics
from schemas.alert import Alert
from schemas.errors import DependencyUnavailable
from sinks.base import BatchWriter

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The wall clock (processing time): injected, so tests control it."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a write waits for a dependency: exponential back-off, capped, never giving up.

    Giving up would stop the dataflow, and a restart would meet the same outage:
    waiting is what rides it out. ``sleep`` is injected so tests need not wait.
    """

    first_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    log_every_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_backoff_s, self.first_backoff_s * 2 ** (attempt - 1))


class _WriterPartition(StatelessSinkPartition[Any]):
    def __init__(
        self,
        writer: BatchWriter,
        name: str,
        metrics: PipelineMetrics,
        on_written: Callable[[list[Any]], None] | None,
        retry: RetryPolicy,
    ) -> None:
        self._writer = writer
        self._name = name
        self._metrics = metrics
        self._retry = retry
        self._written = metrics.sink_writes.labels(sink=name)
        self._errors = metrics.sink_errors.labels(sink=name)
        self._seconds = metrics.sink_seconds.labels(sink=name)
        self._on_written = on_written
        self._waiting_for = ""
        self._next_log = 0.0

    def write_batch(self, items: list[Any]) -> None:
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                self._writer.write_batch(items)
                break
            except DependencyUnavailable as exc:
                self._wait(exc, attempt, started)
            except Exception:
                self._errors.inc()
                log.exception("sink %s failed to write a batch of %d", self._name, len(items))
                raise  # a defect: the dataflow stops; a restart resumes from the last snapshot
        if attempt > 1:
            self._metrics.dependency_waiting.labels(dependency=self._waiting_for).set(0)
            log.warning(
                "sink %s wrote its batch after %d attempts (%.1f s): %s is back",
                self._name, attempt, time.perf_counter() - started, self._waiting_for,
            )
        self._seconds.observe(time.perf_counter() - started)
        self._written.inc(len(items))
        if self._on_written is not None:
            self._on_written(items)

    def _wait(self, exc: DependencyUnavailable, attempt: int, started: float) -> None:
        self._waiting_for = exc.dependency
        metrics = self._metrics
        metrics.sink_retries.labels(sink=self._name, dependency=exc.dependency).inc()
        metrics.dependency_waiting.labels(dependency=exc.dependency).set(1)
        waited = time.perf_counter() - started
        if attempt == 1 or waited >= self._next_log:
            self._next_log = waited + self._retry.log_every_s
            log.warning(
                "sink %s: %s; retrying (attempt %d, waiting %.0f s so far)",
                self._name, exc, attempt, waited,
            )
        self._retry.sleep(self._retry.backoff(attempt))

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
        retry: RetryPolicy | None = None,
    ) -> None:
        self._name = name
        self._factory = factory
        self._metrics = metrics
        self._on_written = on_written
        self._retry = retry or RetryPolicy()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WriterPartition:
        return _WriterPartition(
            self._factory(), self._name, self._metrics, self._on_written, self._retry
        )


def alert_latency_observer(
    metrics: PipelineMetrics, clock: Callable[[], float] = time.time
) -> Callable[[list[Alert]], None]:
    """Observes ingest→emission and event-time→emission latency, and logs the ids."""

    def observe(alerts: list[Alert]) -> None:
        now = clock()
        for alert in alerts:
            alert_emitted(metrics, alert, now)

    return observe


def alert_emitted(metrics: PipelineMetrics, alert: Alert, emitted_at: float) -> None:
    """An alert the broker acknowledged at ``emitted_at`` (epoch s): its latency since
    ingest and since its event time, and a log line with its ids."""
    tier = str(int(alert.tier))
    if alert.ingested_at:
        metrics.alert_latency.labels(tier=tier, since="ingest").observe(
            max(0.0, emitted_at - alert.ingested_at)
        )
    metrics.alert_latency.labels(tier=tier, since="event").observe(
        max(0.0, emitted_at - alert.event_time.timestamp())
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
