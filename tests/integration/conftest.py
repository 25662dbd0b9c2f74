"""Integration fixtures: one local stack per session, fresh names per test.

The stack is the embedded one (Tansu, Redis, PostgreSQL on loopback) unless
``CHURNWATCH_KAFKA_BOOTSTRAP`` / ``_REDIS_URL`` / ``_DATABASE_URL`` are set, in
which case those servers are used instead. Every test gets its own topics,
database schema and recovery directory, and drops its schema afterwards.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka.admin import AdminClient
from psycopg import sql

from churnwatch.localstack import LocalStack
from churnwatch.settings import Settings, Topics
from churnwatch.topics import ensure_topics
from sinks.migrate import api_role_name


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    base = Settings(
        kafka_bootstrap=os.environ.get("CHURNWATCH_KAFKA_BOOTSTRAP") or None,
        redis_url=os.environ.get("CHURNWATCH_REDIS_URL") or None,
        database_url=os.environ.get("CHURNWATCH_DATABASE_URL") or None,
        # A given cluster says how many replicas it takes (e.g. docker-compose's single
        # broker: 1); the embedded broker always takes 1 (LocalStack sets it).
        topic_replication_factor=int(os.environ.get("CHURNWATCH_TOPIC_REPLICATION_FACTOR") or 1),
        topic_min_insync_replicas=int(
            os.environ.get("CHURNWATCH_TOPIC_MIN_INSYNC_REPLICAS") or 1
        ),
    )
    with LocalStack(base, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def make_settings(stack_settings: Settings, tmp_path: Path) -> Iterator:
    """Factory: settings with unique topics, schema, Redis key prefix and recovery dir
    for this test; afterwards its schemas, Redis keys and topics are removed, so a
    run against real servers leaves nothing behind."""
    made: list[Settings] = []

    def factory(tag: str = "", **overrides: object) -> Settings:
        suffix = uuid.uuid4().hex[:10]
        name = f"t{tag}{suffix}"
        settings = stack_settings.replace(
            topics=Topics(
                events=f"{name}.events",
                dead_letters=f"{name}.dlq",
                alerts=f"{name}.alerts",
                late=f"{name}.late",
                scores=f"{name}.scores",
                workflows=f"{name}.workflows",
                alert_states=f"{name}.alert-states",
            ),
            database_schema=f"cw_{name}",
            redis_key_prefix=f"cwt{suffix}",
            metrics_port=0,  # no ops server, unless a test asks (a fixed port would collide)
            recovery_dir=tmp_path / f"recovery-{name}",
            snapshot_interval=__import__("datetime").timedelta(seconds=1),
        )
        settings = settings.replace(**overrides) if overrides else settings
        made.append(settings)
        return settings

    yield factory
    clean_up(stack_settings, made)


def clean_up(stack: Settings, made: list[Settings]) -> None:
    """Drop what the tests' settings named: schemas, Redis keys, topics."""
    assert stack.database_url and stack.redis_url and stack.kafka_bootstrap
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for schema in {s.database_schema for s in made}:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            # The API's role (migration 0006), cluster-wide: nothing of it is left once the
            # schema is gone (best effort: another server may refuse).
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                    sql.Identifier(api_role_name(schema))))
    client = redis.Redis.from_url(stack.redis_url)
    for prefix in {s.redis_key_prefix for s in made}:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    client.close()
    topics = sorted({t for s in made for t in s.topics.all()})
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [t for t in topics if t in existing]
    for future in admin.delete_topics(doomed, operation_timeout=10).values() if doomed else ():
        with contextlib.suppress(Exception):  # best effort: a broker may refuse deletion
            future.result(timeout=10)


def create_events_topic(settings: Settings) -> None:
    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap, settings.topics.all(), settings.topic_partitions)
