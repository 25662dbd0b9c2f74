"""The alert-state outbox's retries (pure unit test: a fake database and writer; the
real round trip is tests/integration/test_alert_lifecycle.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from api.alert_states import AlertStatePublisher
from sinks.errors import KafkaUnavailable

AT = datetime(2026, 11, 29, tzinfo=UTC)


class Outbox:
    """alert_state_history's unpublished rows per tenant, as the drain's SQL sees them."""

    def __init__(self, rows: dict[str, list[int]]) -> None:
        self.rows = rows
        self.published: list[int] = []

    @contextmanager
    def tenant_transaction(self, tenant_id: str) -> Iterator[Any]:
        outbox = self

        class Connection:
            def execute(self, sql: str, params: tuple[Any, ...]) -> Any:
                if sql.startswith("UPDATE"):
                    ids = params[1]
                    outbox.published += ids
                    outbox.rows[tenant_id] = [i for i in outbox.rows[tenant_id] if i not in ids]
                    return None
                rows = [(i, "a", tenant_id, "acct", 1, "acknowledge", AT, "u", "open",
                         "acknowledged", None, None, None, None, None)
                        for i in outbox.rows.get(tenant_id, [])]

                class Result:
                    def fetchall(self) -> list[tuple[Any, ...]]:
                        return rows
                return Result()

        yield Connection()


class Broker:
    """A writer whose flush fails while ``down`` is set."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.sent: list[bytes] = []
        self._pending: list[bytes] = []

    def produce(self, topic: str, key: bytes, value: bytes, headers: Any) -> None:
        self._pending.append(value)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if self.down.is_set():
            raise KafkaUnavailable("broker down")
        self.sent += pending

    def close(self) -> None:
        pass


def test_a_tenant_whose_drain_failed_is_drained_again_until_its_outbox_is_empty() -> None:
    outbox = Outbox({"acme": [1, 2], "globex": [3]})
    publisher = AlertStatePublisher(outbox, "127.0.0.1:1", "churn.alert-states")  # type: ignore[arg-type]
    broker = Broker()
    publisher._writer = broker  # type: ignore[assignment]
    broker.down.set()
    assert publisher.drain("acme") == 0 and publisher.failures == 1
    assert publisher.drain("globex") == 0
    assert publisher.behind == {"acme", "globex"} and not outbox.published
    publisher.start(every_s=0.05)
    try:
        time.sleep(0.2)  # still down: retried, still behind
        assert publisher.failures > 2 and publisher.behind == {"acme", "globex"}
        broker.down.clear()  # back: nobody changes an alert, the retries publish
        deadline = time.monotonic() + 10
        while publisher.behind and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not publisher.behind
        assert sorted(outbox.published) == [1, 2, 3] and len(broker.sent) == 3
    finally:
        publisher.close()
    assert outbox.rows == {"acme": [], "globex": []}
