"""End to end on the local stack: Kafka in, alerts in Kafka and Postgres, DLQ, idempotence."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable

import orjson
import psycopg

from churnwatch.settings import Settings
from schemas.alert import alert_id
from sinks.migrate import available_migrations
from tests.builders import event_bytes
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import produce_all, read_all
from tests.integration.processes import run_churnwatch

# The envelope's required fields: each one set to JSON null is refused (schema), and the
# dead letter's detail names it.
REQUIRED_FIELDS = (
    "event_id", "tenant_id", "account_id", "event_type", "event_time", "source", "schema_version",
)


def null_field(field: str) -> bytes:
    """An event whose ``field`` is JSON null (its event_id names the field, unless nulled)."""
    return event_bytes(**{"event_id": f"null-{field}", field: None})


# (key, value, what the pipeline must make of it)
STREAM: list[tuple[bytes, bytes | None, str]] = [
    (b"a1", event_bytes(event_id="e1", account_id="a1", event_type="app.login"), "ok"),
    (b"a1", event_bytes(event_id="e2", account_id="a1", event_type="billing.payment_failed"), "ok"),
    (
        b"a1",
        event_bytes(event_id="e2", account_id="a1", event_type="billing.payment_failed"),
        "dup",
    ),
    (
        b"a2",
        event_bytes(
            event_id="e3",
            account_id="a2",
            event_type="subscription.cancel_intent",
            event_time="2026-10-01T09:00:00+02:00",
        ),
        "ok",
    ),
    (
        b"a3",
        event_bytes(
            event_id="e4", account_id="a3", tenant_id="globex", event_type="billing.downgraded"
        ),
        "ok",
    ),
    (
        b"a3",
        event_bytes(
            event_id="e5",
            account_id="a3",
            tenant_id="globex",
            event_type="subscription.cancelled",
            attributes={"reason_code": "too_expensive"},
        ),
        "ok",
    ),
    (b"a2", b"this is not json", "dlq:not_json"),
    (b"a2", b"\xc3\x28\xff", "dlq:not_json"),
    (b"a2", event_bytes(event_id="e6", tenant_id="bad tenant"), "dlq:schema"),
    (b"a2", event_bytes(event_id="e7", attributes={"blob": "x" * 70_000}), "dlq:too_large"),
    (b"a2", event_bytes(event_id="e8", event_time="2999-01-01T00:00:00Z"), "dlq:future_time"),
    # bad_time: not a calendar day, before the earliest accepted time, no offset
    (b"a2", event_bytes(event_id="e9", event_time="2026-02-30T12:00:00Z"), "dlq:bad_time"),
    (b"a2", event_bytes(event_id="e10", event_time="1999-12-31T23:59:59Z"), "dlq:bad_time"),
    (b"a2", event_bytes(event_id="e11", event_time="2026-10-01 12:00:00"), "dlq:bad_time"),
    (b"a2", event_bytes(event_id="e12", schema_version=2), "dlq:unsupported_version"),
    # null values: each required field null, the whole message null, and no value at all
    # (a Kafka tombstone)
    *((b"a2", null_field(field), "dlq:schema") for field in REQUIRED_FIELDS),
    (b"a2", b"null", "dlq:schema"),
    (b"a2", None, "dlq:not_json"),
    (
        b"a1",
        event_bytes(event_id="e2", account_id="a1", event_type="billing.payment_failed"),
        "dup",
    ),
]

EXPECTED_ALERTS = {
    alert_id("acme", "a1", "payment_failed", "e2"),
    alert_id("acme", "a2", "cancel_intent", "e3"),
    alert_id("globex", "a3", "downgraded", "e4"),
}


def original_value(letter: dict) -> bytes | None:
    """The original message value a dead-letter record carries."""
    if letter["original"] is None:
        return None
    if letter["original_encoding"] == "base64":
        return base64.b64decode(letter["original"])
    return str(letter["original"]).encode()


def postgres_rows(settings: Settings, query: str) -> list[tuple]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f"SET search_path TO {settings.database_schema}")
        return list(conn.execute(query))


def test_stream_to_alerts_dlq_and_tables(make_settings: Callable[..., Settings]) -> None:
    # Scoring off: this test is about ingest, tier-1 alerts and idempotence
    # (tests/integration/test_scoring.py covers scores and tier-3 alerts).
    settings = make_settings("pipe", model_dir=None)
    create_events_topic(settings)
    assert settings.kafka_bootstrap
    produce_all(settings.kafka_bootstrap, settings.topics.events, [(k, v) for k, v, _ in STREAM])

    run_churnwatch(settings, "run", "--until-drained")

    alerts = read_all(settings.kafka_bootstrap, settings.topics.alerts)
    docs = [orjson.loads(value) for _, value, _ in alerts]
    assert {d["alert_id"] for d in docs} == EXPECTED_ALERTS
    assert len(docs) == len(EXPECTED_ALERTS)
    for key, value, headers in alerts:
        doc = orjson.loads(value)
        assert key == f"{doc['tenant_id']}:{doc['account_id']}".encode()
        assert dict(headers)["alert_id"] == doc["alert_id"].encode()

    rows = postgres_rows(settings, "SELECT alert_id::text, rule, severity FROM alerts")
    assert {r[0] for r in rows} == EXPECTED_ALERTS
    assert sorted((r[1], r[2]) for r in rows) == [
        ("cancel_intent", "high"),
        ("downgraded", "medium"),
        ("payment_failed", "high"),
    ]
    assert postgres_rows(
        settings, "SELECT tenant_id, account_id, event_id, reason_code FROM cancellation_reasons"
    ) == [("globex", "a3", "e5", "too_expensive")]

    dead = [
        orjson.loads(value)
        for _, value, _ in read_all(settings.kafka_bootstrap, settings.topics.dead_letters)
    ]
    # Every refused message reached the dead-letter topic once, with its reason.
    assert Counter((original_value(d), d["reason"]) for d in dead) == Counter(
        (value, kind.split(":")[1]) for _, value, kind in STREAM if kind.startswith("dlq")
    )
    details = {original_value(d): d["detail"] for d in dead}
    for field in REQUIRED_FIELDS:
        assert details[null_field(field)].startswith(field), (field, details[null_field(field)])
    assert all(d["source"]["topic"] == settings.topics.events for d in dead)
    assert len({(d["source"]["partition"], d["source"]["offset"]) for d in dead}) == len(dead)

    # The same input again from scratch (a replay: new recovery state, same outputs):
    # no new row, no new alert id.
    replay = settings.replace(recovery_dir=settings.recovery_dir.with_name("replay"))
    run_churnwatch(replay, "run", "--until-drained")
    assert len(postgres_rows(settings, "SELECT alert_id FROM alerts")) == len(EXPECTED_ALERTS)
    assert len(postgres_rows(settings, "SELECT 1 FROM cancellation_reasons")) == 1
    again = read_all(settings.kafka_bootstrap, settings.topics.alerts)
    assert {orjson.loads(v)["alert_id"] for _, v, _ in again} == EXPECTED_ALERTS
    assert len(again) == 2 * len(EXPECTED_ALERTS)  # at-least-once copies, same ids


def test_migrations_are_recorded_and_idempotent(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("mig")
    first = run_churnwatch(settings, "db", "migrate")
    second = run_churnwatch(settings, "db", "migrate")
    shipped = [(m.version, m.name) for m in available_migrations()]
    assert f"applied {[v for v, _ in shipped]}" in first
    assert "nothing (up to date)" in second
    rows = postgres_rows(settings, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert rows == shipped
