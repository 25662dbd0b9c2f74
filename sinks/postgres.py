"""PostgreSQL writers: batched, idempotent inserts of alerts and cancellations.

One ``executemany`` per batch (psycopg pipelines it: one round trip for the
batch, not one per row) with ``ON CONFLICT DO NOTHING`` on the deterministic
ids, committed once. A replay or a retry after a crash therefore inserts
nothing twice. A connection error is retried with back-off on a fresh
connection; if it persists the error propagates and the dataflow restarts from
its last snapshot (the inputs are then replayed, and the ids absorb the copy).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import sql

from detectors.tier1 import Cancellation
from detectors.usage import UsageSignal
from schemas.alert import Alert
from scoring.risk import RiskScore
from sinks.errors import SinkError

log = logging.getLogger(__name__)

_INSERT_ALERT = """
INSERT INTO alerts (alert_id, tenant_id, account_id, tier, rule, severity,
                    trigger_event_id, trigger_event_type, event_time, reasons)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (alert_id) DO NOTHING
"""

_INSERT_CANCELLATION = """
INSERT INTO cancellation_reasons (cancellation_id, tenant_id, account_id, event_id,
                                  cancelled_at, reason_code)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""


_INSERT_USAGE_SIGNAL = """
INSERT INTO usage_signals (signal_id, tenant_id, account_id, signal_type, usage_count,
                           baseline_count, signal_date, feature_version, severity)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (signal_id) DO NOTHING
"""


_INSERT_RISK_SCORE = """
INSERT INTO risk_scores (score_id, tenant_id, account_id, score, ml_score, rule_score, tier,
                         model_version, feature_version, shadow, reasons, trigger_event_id,
                         score_time, expires_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (score_id) DO NOTHING
"""


def connect(url: str, schema: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection whose ``search_path`` is churnwatch's schema."""
    conn = psycopg.connect(url, autocommit=autocommit, application_name="churnwatch")
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    if not autocommit:
        conn.commit()
    return conn


class PostgresBatchWriter:
    """Runs one parameterised statement over a batch of rows, idempotently."""

    def __init__(
        self, url: str, schema: str, statement: str, *, attempts: int = 5, backoff_s: float = 0.2
    ) -> None:
        self._url = url
        self._schema = schema
        self._statement = statement
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._url, self._schema)
        return self._conn

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        for attempt in range(1, self._attempts + 1):
            try:
                conn = self._connection()
                with conn.cursor() as cur:
                    cur.executemany(self._statement, rows)
                conn.commit()
                return
            except psycopg.OperationalError as exc:
                log.warning(
                    "postgres write failed (attempt %d/%d): %s", attempt, self._attempts, exc
                )
                self._discard_connection()
                if attempt == self._attempts:
                    msg = f"postgres write of {len(rows)} row(s) failed: {exc}"
                    raise SinkError(msg) from exc
                time.sleep(self._backoff_s * 2 ** (attempt - 1))

    def _discard_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        self._discard_connection()


def _alert_row(alert: Alert) -> tuple[Any, ...]:
    return (
        alert.alert_id,
        alert.tenant_id,
        alert.account_id,
        int(alert.tier),
        alert.rule,
        str(alert.severity),
        alert.trigger_event_id,
        alert.trigger_event_type,
        alert.event_time,
        orjson.dumps(list(alert.reasons)).decode(),
    )


def _cancellation_row(record: Cancellation) -> tuple[Any, ...]:
    return (
        record.cancellation_id,
        record.tenant_id,
        record.account_id,
        record.event_id,
        record.cancelled_at,
        record.reason_code,
    )


class _RowSink:
    def __init__(self, writer: PostgresBatchWriter, to_row: Callable[[Any], tuple[Any, ...]]):
        self._writer = writer
        self._to_row = to_row

    def write_batch(self, items: Sequence[Any]) -> None:
        self._writer.write_rows([self._to_row(item) for item in items])

    def close(self) -> None:
        self._writer.close()


class PostgresAlertSink(_RowSink):
    """Alerts into ``alerts``."""

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(PostgresBatchWriter(url, schema, _INSERT_ALERT), _alert_row)


class PostgresCancellationSink(_RowSink):
    """``subscription.cancelled`` records into ``cancellation_reasons``."""

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(PostgresBatchWriter(url, schema, _INSERT_CANCELLATION), _cancellation_row)


def _usage_signal_row(signal: UsageSignal) -> tuple[Any, ...]:
    return (
        signal.signal_id,
        signal.tenant_id,
        signal.account_id,
        str(signal.signal_type),
        signal.usage_count,
        signal.baseline_count,
        signal.signal_date,
        signal.feature_version,
        str(signal.severity),
    )


class PostgresUsageSignalSink(_RowSink):
    """Usage signals into ``usage_signals``."""

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(
            PostgresBatchWriter(url, schema, _INSERT_USAGE_SIGNAL), _usage_signal_row
        )


def _risk_score_row(score: RiskScore) -> tuple[Any, ...]:
    return (
        score.score_id,
        score.tenant_id,
        score.account_id,
        score.risk,
        score.ml_risk,
        score.rule_risk,
        str(score.tier),
        score.model_version,
        score.feature_version,
        score.shadow,
        orjson.dumps(list(score.reasons)).decode(),
        score.trigger_event_id,
        score.score_time,
        score.expires_at,
    )


class PostgresRiskScoreSink(_RowSink):
    """Risk scores into ``risk_scores``."""

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(PostgresBatchWriter(url, schema, _INSERT_RISK_SCORE), _risk_score_row)
