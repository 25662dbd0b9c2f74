"""``prepare()`` registers the output schemas at start, before anything else, against
the in-process registry fake (tests.fake_registry: no registry server can be installed
here) and the real broker and PostgreSQL of the local stack."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from churnwatch.app import prepare
from churnwatch.settings import Settings
from schemas import SCHEMA_DIR
from sinks.errors import SchemaIncompatible
from tests.fake_registry import FakeSchemaRegistry


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as fake:
        yield fake


def test_every_start_registers_the_output_schemas_once(
    make_settings: Callable[..., Settings], registry: FakeSchemaRegistry
) -> None:
    settings = make_settings("sr", schema_registry_url=registry.url)
    topics = settings.topics
    prepare(settings)
    assert sorted(registry.subjects) == sorted([
        f"{topics.alerts}-value",
        f"{topics.scores}-value",
        f"{topics.workflows}-churnwatch workflow trigger v1",
        f"{topics.workflows}-churnwatch workflow signal v1",
    ])
    registered = dict(registry.schemas)
    prepare(settings)  # a restart
    assert registry.schemas == registered
    assert all(len(versions) == 1 for versions in registry.subjects.values())


def test_an_incompatible_schema_stops_the_start_before_topics_are_made(
    make_settings: Callable[..., Settings], registry: FakeSchemaRegistry
) -> None:
    settings = make_settings("sr", schema_registry_url=registry.url)
    # What consumers rely on today carries a field churnwatch's alert v1 does not declare:
    # publishing ours under the subject would drop it.
    alert = orjson.loads((SCHEMA_DIR / "alert.v1.schema.json").read_bytes())
    alert["properties"]["region"] = {"type": "string"}
    registry.register(f"{settings.topics.alerts}-value", orjson.dumps(alert).decode())
    with pytest.raises(SchemaIncompatible, match=r"alert\.v1\.schema\.json is incompatible"):
        prepare(settings)
    assert settings.kafka_bootstrap
    existing = AdminClient({"bootstrap.servers": settings.kafka_bootstrap}).list_topics(
        timeout=10
    ).topics
    assert settings.topics.alerts not in existing
