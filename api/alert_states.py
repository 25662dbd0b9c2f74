"""Alert lifecycle changes on ``churn.alert-states`` (alert state v1), from an outbox.

Each change's history row (``alert_state_history``) is committed with the change
and is the outbox: after the request's transaction commits, :meth:`AlertStatePublisher.drain`
publishes the tenant's rows not yet published (``published_at`` NULL, oldest first,
``FOR UPDATE SKIP LOCKED`` so two drains never send one row together), waits for
the broker's acknowledgement, and marks them published in the same transaction.
If Kafka is down the change stands, the rows stay unpublished (logged, counted in
:attr:`AlertStatePublisher.failures`), and the publisher drains that tenant again every
:data:`RETRY_SECONDS` until its outbox is empty (and the tenant's next change does too).
A process that stops meanwhile leaves the rows for the tenant's next change.

Delivery is at-least-once: a crash between the broker's acknowledgement and the
commit of ``published_at`` sends a row again at the next drain. Consumers drop
copies by the ``message_id`` header (the history row's id, also in the body) and
apply a change only if its ``version`` is above the last one they applied for that
alert (versions of one alert count up by one per change).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from api.database import Database
from schemas.event import format_time
from sinks.errors import KafkaDeliveryError, KafkaUnavailable
from sinks.kafka import KafkaMessage, KafkaWriter

log = logging.getLogger(__name__)

# Rows one drain sends at most (the rest at the next).
DRAIN_BATCH = 500
# How often a tenant whose drain failed (or left rows) is drained again.
RETRY_SECONDS = 10.0
# A change's request has been answered already; a down broker should not hold a worker
# thread long: undelivered messages fail after this, and stay in the outbox.
DELIVERY_TIMEOUT_MS = 5_000

_COLUMNS = (
    "id, alert_id::text, tenant_id, account_id, version, action, at, by, from_status,"
    " to_status, from_assignee, to_assignee, snoozed_until, resolution, note"
)


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def alert_state_message(row: tuple[Any, ...]) -> KafkaMessage:
    """One history row as alert state v1: key ``tenant:account``, header ``message_id``."""
    (message_id, alert_id, tenant, account, version, action, at, by, from_status, to_status,
     from_assignee, to_assignee, snoozed_until, resolution, note) = row
    body = {
        "schema_version": 1,
        "message_id": str(message_id),
        "alert_id": alert_id,
        "tenant_id": tenant,
        "account_id": account,
        "version": version,
        "action": action,
        "at": _time(at),
        "by": by,
        "from_status": from_status,
        "to_status": to_status,
        "from_assignee": from_assignee,
        "to_assignee": to_assignee,
        "snoozed_until": _time(snoozed_until),
        "resolution": resolution,
        "note": note,
    }
    return KafkaMessage(
        f"{tenant}:{account}".encode(), orjson.dumps(body),
        [("message_id", str(message_id).encode()), ("schema_version", b"1")],
    )


class AlertStatePublisher:
    """Drains a tenant's outbox to the topic; one drain at a time per process (the
    writer's delivery bookkeeping is per flush)."""

    def __init__(
        self, database: Database, bootstrap: str, topic: str,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._database = database
        self._topic = topic
        self._writer = KafkaWriter(
            bootstrap, client_id="churnwatch-api",
            flush_timeout_s=DELIVERY_TIMEOUT_MS / 1000 + 1,
            config={"message.timeout.ms": DELIVERY_TIMEOUT_MS, **(config or {})},
        )
        self._lock = threading.Lock()
        self.failures = 0  # drains that failed, leaving rows unpublished
        # Tenants whose outbox may hold rows: drained again every RETRY_SECONDS.
        self._behind: set[str] = set()
        self._stop = threading.Event()
        self._retrier: threading.Thread | None = None

    def start(self, every_s: float = RETRY_SECONDS) -> None:
        """Drain the tenants left behind again, every ``every_s``, until :meth:`close`."""
        def retry() -> None:
            while not self._stop.wait(every_s):
                for tenant_id in sorted(self.behind):
                    self.drain(tenant_id)

        self._retrier = threading.Thread(target=retry, name="alert-state outbox", daemon=True)
        self._retrier.start()

    @property
    def behind(self) -> frozenset[str]:
        """The tenants whose outbox may still hold rows (retried)."""
        with self._lock:
            return frozenset(self._behind)

    def drain(self, tenant_id: str) -> int:
        """Publish the tenant's unpublished changes; the number published (0 on failure,
        which is logged: the rows wait for the next drain, at most RETRY_SECONDS away
        once :meth:`start` ran)."""
        with self._lock:  # request threads and the retrier: one drain at a time
            published = self._drain(tenant_id)
            if published is None or published == DRAIN_BATCH:
                self._behind.add(tenant_id)  # failed, or more may wait
                return published or 0
            self._behind.discard(tenant_id)
            return published

    def _drain(self, tenant_id: str) -> int | None:
        """One drain (under the lock): the number published, None on failure."""
        try:
            with self._database.tenant_transaction(tenant_id) as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM alert_state_history WHERE tenant_id = %s"
                    " AND published_at IS NULL ORDER BY id LIMIT %s"
                    " FOR UPDATE SKIP LOCKED",
                    (tenant_id, DRAIN_BATCH),
                ).fetchall()
                if not rows:
                    return 0
                for row in rows:
                    message = alert_state_message(tuple(row))
                    self._writer.produce(self._topic, message.key, message.value,
                                         message.headers)
                self._writer.flush()
                conn.execute(
                    "UPDATE alert_state_history SET published_at = now()"
                    " WHERE tenant_id = %s AND id = ANY(%s)",
                    (tenant_id, [row[0] for row in rows]),
                )
                return len(rows)
        except (KafkaUnavailable, KafkaDeliveryError) as exc:
            self.failures += 1
            log.warning("alert state changes left unpublished (kept in the outbox)",
                        extra={"topic": self._topic, "problem": str(exc)})
        except Exception:  # an answered request's after-work: log, never raise
            self.failures += 1
            log.exception("publishing alert state changes failed (kept in the outbox)")
        return None

    def close(self) -> None:
        self._stop.set()
        if self._retrier is not None:
            self._retrier.join(timeout=DELIVERY_TIMEOUT_MS / 1000 + 5)
        try:
            self._writer.close()
        except (KafkaUnavailable, KafkaDeliveryError) as exc:
            log.warning("alert state messages undelivered at exit",
                        extra={"problem": str(exc)})
