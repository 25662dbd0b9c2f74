"""The benchmark's hand-written reference on the local stack: what it counts and writes.

Two reference processes (partitions split between them, as in the benchmark)
over a small stream with a copy, a malformed message and tier-1 events; their
summed counts, the dead-letter and alert topics, and one account's Redis hash.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import orjson
import redis

from benchmarks.harness.processes import ChildProcesses
from benchmarks.harness.reference import count_key, run_reference
from churnwatch.settings import Settings
from schemas.alert import alert_id
from schemas.event import format_time
from tests.builders import T0, event_bytes
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import produce_all, read_all

ACCOUNTS = 30
EVENTS_PER_ACCOUNT = 10  # every 3 hours from T0 (12:00): 4 on the first day, 6 on the next
TIER1 = {("a07", 9): "billing.payment_failed", ("a11", 4): "subscription.cancel_intent"}


def _stream() -> list[tuple[bytes, bytes]]:
    messages = []
    for n in range(ACCOUNTS):
        account = f"a{n:02d}"
        for k in range(EVENTS_PER_ACCOUNT):
            event_type = TIER1.get((account, k), "app.login" if k % 2 == 0 else "feature.used")
            value = event_bytes(event_id=f"{account}-e{k}", account_id=account,
                                event_type=event_type,
                                event_time=format_time(T0 + timedelta(hours=3 * k)))
            messages.append((account.encode(), value))
            if (account, k) == ("a03", 2):
                messages.append((account.encode(), value))  # a producer's retry
    messages.append((b"a05", b"this is not json"))
    return messages


def test_the_reference_counts_dedupes_dead_letters_alerts_and_writes_hashes(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings("ref")
    create_events_topic(settings)
    assert settings.kafka_bootstrap and settings.redis_url
    stream = _stream()
    produced = produce_all(settings.kafka_bootstrap, settings.topics.events, stream)

    children = ChildProcesses()
    try:
        figures = run_reference(children, settings, 2, tmp_path, "ref")
    finally:
        children.stop_all()

    valid = ACCOUNTS * EVENTS_PER_ACCOUNT + 1
    assert produced == valid + 1
    assert {k: figures[k] for k in ("messages", "valid", "duplicates", "late", "dead_letters",
                                    "alerts")} == {
        "messages": produced, "valid": valid, "duplicates": 1, "late": 0, "dead_letters": 1,
        "alerts": 2,
    }
    assert figures["processes"] == 2
    assert figures["events_per_s_sustained"] is not None

    letters = read_all(settings.kafka_bootstrap, settings.topics.dead_letters)
    assert [(key, orjson.loads(value)["reason"], orjson.loads(value)["original"])
            for key, value, _ in letters] == [(b"a05", "not_json", "this is not json")]

    alerts = read_all(settings.kafka_bootstrap, settings.topics.alerts)
    published = sorted((key, orjson.loads(value)["alert_id"]) for key, value, _ in alerts)
    assert published == [
        (b"acme:a07", alert_id("acme", "a07", "payment_failed", "a07-e9")),
        (b"acme:a11", alert_id("acme", "a11", "cancel_intent", "a11-e4")),
    ]

    client = redis.Redis.from_url(settings.redis_url)
    try:
        key = count_key(settings.redis_key_prefix, "acme:a07")
        assert client.hgetall(key) == {
            b"2026-10-01:app.login": b"2",
            b"2026-10-01:feature.used": b"2",
            b"2026-10-02:app.login": b"3",
            b"2026-10-02:feature.used": b"2",
            b"2026-10-02:billing.payment_failed": b"1",
        }
        assert 0 < client.pttl(key) <= settings.feature_ttl.total_seconds() * 1000
        # the copy of a03-e2 was not counted: 3 app.login on the first day would be wrong
        copied = client.hgetall(count_key(settings.redis_key_prefix, "acme:a03"))
        assert copied[b"2026-10-01:app.login"] == b"2"
        hashes = list(client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=1000))
        assert len(hashes) == ACCOUNTS
    finally:
        client.close()
