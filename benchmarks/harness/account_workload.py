"""Few events for many accounts: a cheap workload of valid event v1 messages.

The simulator scripts each account's life day by day (about ten events per
account-day, with duplicates and malformed messages mixed in) and holds the
whole stream in memory: a million accounts would be ten million messages and
minutes of CPU before the first one is produced. The state benchmark needs the
opposite shape, many distinct accounts with a few events each, so it builds
the documents directly, streams them to the producer, and keeps nothing.

The stream is pass-major: every account's first event, then every account's
second, and so on, so each account is touched in several epochs rather than
once. Event times rise with the position in the stream, over a window that
ends before the clock, so every account's events are in order and none lies
in the future.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from benchmarks.harness.figures import Figures

TENANTS = ("acme", "globex")
FEATURES = ("reports", "dashboards", "integrations", "exports", "api")
PROBE_EVENT_TYPE = "billing.payment_failed"  # decisive: a tier-1 rule by default
DEFAULT_WINDOW = timedelta(hours=20)
DEFAULT_MARGIN = timedelta(minutes=5)  # between the newest event and the clock
PRODUCE_TIMEOUT_S = 120.0


def account_width(accounts: int) -> int:
    """Digits of an account number, so every id of a run has the same length."""
    return max(5, len(str(max(accounts - 1, 0))))


def account_id(index: int, width: int) -> str:
    """The id of account ``index`` (0-based), e.g. ``acct-0000042``."""
    return f"acct-{index:0{width}d}"


def tenant_of(index: int) -> str:
    """Accounts alternate between the tenants."""
    return TENANTS[index % len(TENANTS)]


def format_event_time(epoch_ms: int) -> str:
    """RFC 3339 in UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AccountWorkload:
    """``events_per_account`` events for each of ``accounts`` accounts over a window.

    ``end_ms`` is the event time (epoch ms) the window ends at, exclusive.
    """

    accounts: int
    events_per_account: int
    end_ms: int
    window_ms: int = int(DEFAULT_WINDOW.total_seconds() * 1000)

    @classmethod
    def ending_before(cls, now: datetime, accounts: int, events_per_account: int,
                      window: timedelta = DEFAULT_WINDOW,
                      margin: timedelta = DEFAULT_MARGIN) -> AccountWorkload:
        """A workload whose newest event lies ``margin`` before ``now``."""
        end = now - margin
        return cls(accounts, events_per_account, int(end.timestamp() * 1000),
                   int(window.total_seconds() * 1000))

    @property
    def messages(self) -> int:
        return self.accounts * self.events_per_account

    def event_time_ms(self, index: int, event: int) -> int:
        """Event time of account ``index``'s ``event``-th event: it rises with the
        message's position in the pass-major stream."""
        position = event * self.accounts + index
        return self.end_ms - self.window_ms + position * self.window_ms // max(1, self.messages)

    def document(self, index: int, event: int, width: int) -> dict[str, Any]:
        """The event v1 document of account ``index``'s ``event``-th event."""
        tenant, account = tenant_of(index), account_id(index, width)
        if event % 2 == 0:
            event_type, attributes = "app.login", {}
        else:
            event_type = "app.feature_used"
            attributes = {"feature": FEATURES[(index + event) % len(FEATURES)]}
        return {
            "event_id": f"{tenant}-{account}-{event + 1}",
            "tenant_id": tenant,
            "account_id": account,
            "user_id": f"u-{index}-{event % 3 + 1}",
            "event_type": event_type,
            "event_time": format_event_time(self.event_time_ms(index, event)),
            "source": "web-app",
            "schema_version": 1,
            "attributes": attributes,
        }

    def messages_in_order(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of every message, pass-major; keyed by account id, as the
        simulator keys them, so an account's events share a partition."""
        width = account_width(self.accounts)
        for event in range(self.events_per_account):
            for index in range(self.accounts):
                doc = self.document(index, event, width)
                yield doc["account_id"].encode(), orjson.dumps(doc)


def probe_document(index: int, accounts: int, event_id: str, at: datetime) -> dict[str, Any]:
    """A decisive event (``billing.payment_failed``) for the existing account ``index``."""
    width = account_width(accounts)
    return {
        "event_id": event_id,
        "tenant_id": tenant_of(index),
        "account_id": account_id(index, width),
        "user_id": None,
        "event_type": PROBE_EVENT_TYPE,
        "event_time": format_event_time(int(at.timestamp() * 1000)),
        "source": "billing-service",
        "schema_version": 1,
        "attributes": {"amount_cents": 4900, "currency": "EUR", "failure_code": "card_declined"},
    }


def new_producer(bootstrap: str) -> Any:
    """An idempotent producer that waits for every replica, as the simulator's."""
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "acks": "all",
                     "enable.idempotence": True, "linger.ms": 20,
                     "batch.num.messages": 10_000})


def produce_stream(messages: Iterable[tuple[bytes, bytes]], bootstrap: str, topic: str, *,
                   timeout_s: float = PRODUCE_TIMEOUT_S, progress_every: int = 0) -> Figures:
    """Produce every (key, value), polling as it goes; raise if any is undelivered.

    ``progress_every`` > 0 prints a line every so many messages.
    """
    producer = new_producer(bootstrap)
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    started = time.perf_counter()
    sent = 0
    for key, value in messages:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, but never
                # spin forever on a broker that has gone.
                if time.monotonic() > deadline:
                    msg = f"{topic}: the producer queue stayed full for {timeout_s:.0f} s"
                    raise RuntimeError(msg) from None
                producer.poll(0.05)
        sent += 1
        producer.poll(0)
        if progress_every and sent % progress_every == 0:
            rate = sent / (time.perf_counter() - started)
            print(f"  produced {sent:,} messages ({rate:,.0f}/s)", flush=True)
    remaining = producer.flush(timeout_s)
    seconds = time.perf_counter() - started
    if remaining or errors:
        first = errors[0] if errors else f"flush timed out after {timeout_s:.0f} s"
        msg = f"{topic}: {remaining + len(errors)} of {sent} messages undelivered ({first})"
        raise RuntimeError(msg)
    return {"produced": sent, "produce_s": seconds,
            "produce_rate": sent / seconds if seconds > 0 else None}
