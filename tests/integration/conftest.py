"""Integration fixtures: one local stack per session, fresh names per test.

The stack is the embedded one (Tansu, Redis, PostgreSQL on loopback) unless
``CHURNWATCH_KAFKA_BOOTSTRAP`` / ``_REDIS_URL`` / ``_DATABASE_URL`` are set, in
which case those servers are used instead. Every test gets its own topics,
database schema and recovery directory, and drops its schema afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from churnwatch.localstack import LocalStack
from churnwatch.settings import Settings, Topics
from churnwatch.topics import ensure_topics


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    base = Settings(
        kafka_bootstrap=os.environ.get("CHURNWATCH_KAFKA_BOOTSTRAP") or None,
        redis_url=os.environ.get("CHURNWATCH_REDIS_URL") or None,
        database_url=os.environ.get("CHURNWATCH_DATABASE_URL") or None,
    )
    with LocalStack(base, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def make_settings(stack_settings: Settings, tmp_path: Path) -> Iterator:
    """Factory: settings with unique topics, schema and recovery dir for this test."""
    schemas: list[str] = []

    def factory(tag: str = "", **overrides: object) -> Settings:
        suffix = uuid.uuid4().hex[:10]
        name = f"t{tag}{suffix}"
        schemas.append(f"cw_{name}")
        settings = stack_settings.replace(
            topics=Topics(
                events=f"{name}.events",
                dead_letters=f"{name}.dlq",
                alerts=f"{name}.alerts",
                late=f"{name}.late",
                scores=f"{name}.scores",
                workflows=f"{name}.workflows",
            ),
            database_schema=f"cw_{name}",
            recovery_dir=tmp_path / f"recovery-{name}",
            snapshot_interval=__import__("datetime").timedelta(seconds=1),
        )
        return settings.replace(**overrides) if overrides else settings

    yield factory
    assert stack_settings.database_url
    with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def create_events_topic(settings: Settings) -> None:
    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap, settings.topics.all(), settings.topic_partitions)
