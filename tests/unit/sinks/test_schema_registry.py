"""Schema Registry: framed input read back to JSON, output schemas registered.

Against :mod:`tests.fake_registry` (an in-process fake of the registry's REST API, since
no registry server can be installed here) through the real
``confluent_kafka.schema_registry.SchemaRegistryClient``, so the paths, bodies and error
codes are the client's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas import SCHEMA_DIR
from schemas.event import Event, EventLimits, Rejection, RejectReason, parse_event
from schemas.framing import frame
from sinks.errors import SchemaIncompatible, SchemaRegistryUnavailable
from sinks.schema_registry import (
    OutputSchema,
    RegistryFraming,
    output_schemas,
    record_subject,
    register_schemas,
    value_subject,
)
from tests.builders import event_bytes
from tests.fake_registry import FakeSchemaRegistry

EVENT_SCHEMA = (SCHEMA_DIR / "event.v1.schema.json").read_text()
AVRO_SCHEMA = orjson.dumps(
    {"type": "record", "name": "Event", "fields": [{"name": "event_id", "type": "string"}]}
).decode()
NOW = datetime(2026, 10, 1, 12, 30, tzinfo=UTC)


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as fake:
        yield fake


def client_of(registry: FakeSchemaRegistry) -> SchemaRegistryClient:
    # no retries: a registry that is down fails the call at once (the test's clock)
    return SchemaRegistryClient({"url": registry.url, "max.retries": 0, "timeout": 5})


# --- framed input ----------------------------------------------------------------------


def test_a_json_schema_framed_event_is_unframed_and_parses(registry: FakeSchemaRegistry) -> None:
    schema_id = registry.register("churn.events-value", EVENT_SCHEMA)
    framing = RegistryFraming(client_of(registry))
    value = frame(schema_id, event_bytes())
    framing.prepare([value])
    payload = framing.payload(value)
    assert payload == event_bytes()
    assert isinstance(payload, bytes)
    assert isinstance(parse_event(payload, NOW, EventLimits()), Event)


def test_plain_json_passes_through_untouched(registry: FakeSchemaRegistry) -> None:
    framing = RegistryFraming(client_of(registry))
    framing.prepare([event_bytes(), None, b""])
    assert framing.payload(event_bytes()) == event_bytes()
    assert framing.lookups == 0 and registry.requests == []


def test_each_schema_id_is_looked_up_once(registry: FakeSchemaRegistry) -> None:
    schema_id = registry.register("churn.events-value", EVENT_SCHEMA)
    framing = RegistryFraming(client_of(registry))
    batch = [frame(schema_id, event_bytes(event_id=f"e-{i}")) for i in range(50)]
    for _ in range(3):
        framing.prepare(batch)
        assert all(isinstance(framing.payload(v), bytes) for v in batch)
    assert framing.lookups == 1
    assert registry.requests == [("GET", f"/schemas/ids/{schema_id}")]


def test_an_avro_schema_is_refused_with_its_type(registry: FakeSchemaRegistry) -> None:
    schema_id = registry.register("churn.events-value", AVRO_SCHEMA, "AVRO")
    framing = RegistryFraming(client_of(registry))
    value = frame(schema_id, b"\x02\x06e-1")
    framing.prepare([value])
    assert framing.payload(value) == Rejection(
        RejectReason.SCHEMA,
        f"the registry's schema {schema_id} is AVRO; churnwatch reads JSON Schema-framed"
        " events",
    )


def test_a_protobuf_schema_is_refused_with_its_type(registry: FakeSchemaRegistry) -> None:
    schema_id = registry.register("x-value", 'syntax = "proto3"; message E {}', "PROTOBUF")
    rejection = RegistryFraming(client_of(registry)).payload(frame(schema_id, b"\x00"))
    assert isinstance(rejection, Rejection) and "is PROTOBUF" in rejection.detail


def test_an_unknown_schema_id_is_refused(registry: FakeSchemaRegistry) -> None:
    framing = RegistryFraming(client_of(registry))
    value = frame(99, event_bytes())
    framing.prepare([value])
    assert framing.payload(value) == Rejection(
        RejectReason.SCHEMA, "framed with schema id 99, which the schema registry does not know"
    )


def test_an_unknown_id_is_asked_again_after_a_while(registry: FakeSchemaRegistry) -> None:
    """A schema registered a moment ago may not have reached a registry follower yet."""
    clock = [0.0]
    framing = RegistryFraming(client_of(registry), unknown_ttl_s=60, clock=lambda: clock[0])
    value = frame(1, event_bytes())
    framing.prepare([value])
    assert isinstance(framing.payload(value), Rejection)
    registry.register("churn.events-value", EVENT_SCHEMA)  # gets id 1
    clock[0] = 30.0
    framing.prepare([value])
    assert isinstance(framing.payload(value), Rejection)  # still within the TTL
    clock[0] = 61.0
    framing.prepare([value])
    assert framing.payload(value) == event_bytes()
    assert framing.lookups == 2


def test_guid_framing_is_refused_with_a_clear_reason(registry: FakeSchemaRegistry) -> None:
    rejection = RegistryFraming(client_of(registry)).payload(b"\x01" + bytes(16) + b"{}")
    assert isinstance(rejection, Rejection) and "schema GUID" in rejection.detail


def test_a_registry_outage_is_transient_and_dead_letters_nothing(
    registry: FakeSchemaRegistry,
) -> None:
    schema_id = registry.register("churn.events-value", EVENT_SCHEMA)
    framing = RegistryFraming(client_of(registry))
    known = frame(schema_id, event_bytes())
    framing.prepare([known])
    registry.stop()
    # an id seen before the outage is still served from what was kept
    framing.prepare([known])
    assert framing.payload(known) == event_bytes()
    # a new one raises the transient error, from prepare and from payload alike
    new = frame(schema_id + 1, event_bytes())
    with pytest.raises(SchemaRegistryUnavailable) as info:
        framing.prepare([known, new])
    assert info.value.dependency == "schema_registry"
    assert "schema id 2" in info.value.problem
    with pytest.raises(SchemaRegistryUnavailable):
        framing.payload(new)


def test_a_registry_error_other_than_not_found_is_transient() -> None:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    class Failing:
        def get_schema(self, schema_id: int) -> object:
            raise SchemaRegistryError(503, 50301, "backend store unavailable")

    with pytest.raises(SchemaRegistryUnavailable, match="backend store unavailable"):
        RegistryFraming(Failing()).prepare([frame(5, b"{}")])


def test_the_cache_is_bounded_between_batches(registry: FakeSchemaRegistry) -> None:
    framing = RegistryFraming(client_of(registry), capacity=4)
    batch = [frame(i, b"{}") for i in range(1, 11)]  # ten unknown ids in one batch
    framing.prepare(batch)
    assert all(isinstance(framing.payload(v), Rejection) for v in batch)  # no new lookups
    assert framing.lookups == 10
    framing.prepare([])
    assert len(framing._types) == 4


# --- output schemas --------------------------------------------------------------------


def outputs(**topics: str) -> list[OutputSchema]:
    return output_schemas(
        SCHEMA_DIR,
        alerts_topic=topics.get("alerts", "churn.alerts"),
        scores_topic=topics.get("scores", "churn.scores"),
        workflows_topic=topics.get("workflows", "churn.workflow-triggers"),
    )


SUBJECTS = [
    "churn.alerts-value",
    "churn.scores-value",
    "churn.workflow-triggers-churnwatch workflow trigger v1",
    "churn.workflow-triggers-churnwatch workflow signal v1",
]


def test_subjects_follow_the_confluent_serializers_strategies() -> None:
    from confluent_kafka.schema_registry import (
        topic_record_subject_name_strategy,
        topic_subject_name_strategy,
    )
    from confluent_kafka.serialization import MessageField, SerializationContext

    context = SerializationContext("churn.workflow-triggers", MessageField.VALUE)
    trigger = (SCHEMA_DIR / "workflow_trigger.v1.schema.json").read_text()
    title = orjson.loads(trigger)["title"]
    assert record_subject("churn.workflow-triggers", trigger) == (
        topic_record_subject_name_strategy(context, title)
    )
    assert value_subject("churn.workflow-triggers") == topic_subject_name_strategy(context, None)
    assert [o.subject for o in outputs()] == SUBJECTS


def test_output_schemas_register_under_their_subjects(registry: FakeSchemaRegistry) -> None:
    done = register_schemas(client_of(registry), outputs())
    assert [r.subject for r in done] == SUBJECTS
    assert not any(r.unchanged for r in done)
    assert sorted(registry.subjects) == sorted(SUBJECTS)
    for registration, name in zip(done, ("alert", "score", "workflow_trigger", "workflow_signal"),
                                  strict=True):
        schema_type, text = registry.schemas[registration.schema_id]
        checked_in = orjson.loads((SCHEMA_DIR / f"{name}.v1.schema.json").read_bytes())
        assert schema_type == "JSON" and orjson.loads(text) == checked_in


def test_registering_again_adds_nothing(registry: FakeSchemaRegistry) -> None:
    first = register_schemas(client_of(registry), outputs())
    registry.requests.clear()
    again = register_schemas(client_of(registry), outputs())  # a second start: a new client
    assert [r.schema_id for r in again] == [r.schema_id for r in first]
    assert all(r.unchanged for r in again)
    assert all(registry.versions(subject) == [1] for subject in SUBJECTS)
    assert all(method == "GET" for method, _ in registry.requests)  # nothing registered


def test_a_compatible_change_registers_a_new_version(registry: FakeSchemaRegistry) -> None:
    register_schemas(client_of(registry), outputs())
    alert = outputs()[0]
    document = orjson.loads(alert.schema)
    document["properties"]["channel"] = {"type": "string"}  # optional: backward compatible
    changed = OutputSchema(alert.subject, alert.file_name, orjson.dumps(document).decode())
    [done] = register_schemas(client_of(registry), [changed])
    assert not done.unchanged
    assert registry.versions("churn.alerts-value") == [1, 2]


def test_an_incompatible_change_is_refused_before_registering(
    registry: FakeSchemaRegistry,
) -> None:
    register_schemas(client_of(registry), outputs())
    alert = outputs()[0]
    document = orjson.loads(alert.schema)
    document["properties"]["channel"] = {"type": "string"}
    document["required"].append("channel")  # old messages lack it: not backward compatible
    changed = OutputSchema(alert.subject, alert.file_name, orjson.dumps(document).decode())
    registry.requests.clear()
    with pytest.raises(SchemaIncompatible) as info:
        register_schemas(client_of(registry), [changed])
    assert info.value.subject == "churn.alerts-value"
    assert info.value.registered_version == 1
    assert "alert.v1.schema.json is incompatible" in str(info.value)
    assert registry.versions("churn.alerts-value") == [1]
    assert ("POST", "/compatibility/subjects/churn.alerts-value/versions/latest") in (
        registry.requests
    )
    assert ("POST", "/subjects/churn.alerts-value/versions") not in registry.requests


def test_registration_against_a_registry_that_is_down_is_transient(
    registry: FakeSchemaRegistry,
) -> None:
    registry.stop()
    with pytest.raises(SchemaRegistryUnavailable, match=r"churn\.alerts-value"):
        register_schemas(client_of(registry), outputs())


def test_a_refusal_at_registration_is_an_incompatibility() -> None:
    """The registry checks again when registering (another writer may have registered
    between the check and the registration): its 409 is the same refusal."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    class Racing:
        def get_latest_version(self, subject: str) -> object:
            raise SchemaRegistryError(404, 40401, f"Subject '{subject}' not found.")

        def register_schema(self, subject: str, schema: object) -> int:
            raise SchemaRegistryError(409, 409, "Schema being registered is incompatible")

    with pytest.raises(SchemaIncompatible) as info:
        register_schemas(Racing(), outputs()[:1])
    assert info.value.subject == "churn.alerts-value"
