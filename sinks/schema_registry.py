"""Confluent Schema Registry: framed input read back to JSON, output schemas registered.

Two jobs, both optional (``CHURNWATCH_SCHEMA_REGISTRY_URL``), both over
``confluent_kafka.schema_registry.SchemaRegistryClient``:

* :class:`RegistryFraming` reads events written by a Confluent JSON Schema
  serializer (see :mod:`schemas.framing` for the wire format): it looks up the
  schema id each framed message names (once per id), refuses a schema that is
  not JSON Schema and an id the registry does not know, and hands back the JSON
  payload, which churnwatch then validates as any event (the registered schema
  is not what decides validity: the event contract is). Unframed messages pass
  through unchanged, so plain and framed producers can share the topic.
* :func:`register_schemas` registers churnwatch's output contracts (alert,
  workflow trigger and signal, risk score) under their subjects at start,
  after asking the registry whether each is compatible with the subject's
  latest version; an incompatible one stops the start. Registering the same
  schema again adds nothing.

A registry that does not answer raises :class:`SchemaRegistryUnavailable`
(transient), never a rejection: an outage must not dead-letter valid events.

``confluent_kafka.schema_registry`` (httpx, authlib) costs about 0.2 s to
import, so it is imported when first needed, not with this module.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from schemas.event import Rejection, RejectReason
from schemas.framing import framed_schema_id, is_guid_framed, unframe
from sinks.errors import SchemaIncompatible, SchemaRegistrationError, SchemaRegistryUnavailable

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import Schema

log = logging.getLogger(__name__)

JSON_SCHEMA_TYPE = "JSON"


class SchemaLookup(Protocol):
    """What :class:`RegistryFraming` needs of a registry client
    (``SchemaRegistryClient`` has it)."""

    def get_schema(self, schema_id: int) -> Any:
        """The registered schema with this id (``.schema_type``: AVRO, JSON, PROTOBUF)."""
        ...


class RegistryFraming:
    """Turns a framed input message into its JSON payload, or into a rejection.

    For each batch: :meth:`prepare` with the batch's values (it looks up, in the
    registry, every schema id not seen yet, and raises
    :class:`~sinks.errors.SchemaRegistryUnavailable` if the registry does not
    answer: hold the batch, back off, call it again); then :meth:`payload` per
    message, which does not call the registry for an id :meth:`prepare` saw.

    What the registry said of each id is kept: its schema type (ids are
    immutable in a registry) or "unknown". An unknown verdict is asked again
    after ``unknown_ttl_s`` (a schema registered a moment ago may not have
    reached a registry follower yet); at most ``capacity`` ids are kept, the
    oldest dropped first (garbage with a zero first byte names random ids).
    """

    def __init__(
        self,
        client: SchemaLookup,
        *,
        unknown_ttl_s: float = 60.0,
        capacity: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._unknown_ttl_s = unknown_ttl_s
        self._capacity = capacity
        self._clock = clock
        # schema id -> its schema type, or None (unknown) with the time to ask again
        self._types: dict[int, str | None] = {}
        self._ask_again: dict[int, float] = {}
        self.lookups = 0  # registry round trips so far (tests, logs)

    def prepare(self, values: Iterable[bytes | None]) -> None:
        """Look up the schema ids of a batch that are not known yet.

        Raises :class:`~sinks.errors.SchemaRegistryUnavailable` when the registry
        does not answer; what was looked up before the failure is kept, so the
        retry asks only for the rest.
        """
        self._trim()
        now = self._clock()
        for schema_id in set(map(framed_schema_id, values)):
            if schema_id is None:
                continue
            if schema_id not in self._types or self._ask_again.get(schema_id, now) < now:
                self._look_up(schema_id)

    def payload(self, value: bytes) -> bytes | Rejection:
        """The bytes to validate as an event: ``value`` itself when it is not framed,
        the JSON payload of a JSON Schema-framed message, or a
        :class:`~schemas.event.Rejection` (reason ``schema``) for a message framed with
        an unknown schema id, a schema that is not JSON Schema, or a schema GUID.

        Raises :class:`~sinks.errors.SchemaRegistryUnavailable` only for an id that
        :meth:`prepare` did not see and the registry does not answer for.
        """
        framed = unframe(value)
        if framed is None:
            if is_guid_framed(value):
                return Rejection(
                    RejectReason.SCHEMA,
                    "framed with a schema GUID (magic byte 1); churnwatch reads messages framed"
                    " with a schema id (magic byte 0), the Confluent serializers' default",
                )
            return value
        schema_id, payload = framed
        if schema_id in self._types:
            schema_type = self._types[schema_id]
        else:
            schema_type = self._look_up(schema_id)
        if schema_type is None:
            return Rejection(
                RejectReason.SCHEMA,
                f"framed with schema id {schema_id}, which the schema registry does not know",
            )
        if schema_type != JSON_SCHEMA_TYPE:
            return Rejection(
                RejectReason.SCHEMA,
                f"the registry's schema {schema_id} is {schema_type}; churnwatch reads JSON"
                " Schema-framed events",
            )
        return payload

    def _look_up(self, schema_id: int) -> str | None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        self.lookups += 1
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise _unavailable(exc, f"looking up schema id {schema_id}") from exc
            self._types[schema_id] = None
            self._ask_again[schema_id] = self._clock() + self._unknown_ttl_s
            return None
        except _transport_errors() as exc:
            raise _unavailable(exc, f"looking up schema id {schema_id}") from exc
        schema_type = str(schema.schema_type or "AVRO").upper()  # the registry omits AVRO
        self._types[schema_id] = schema_type
        self._ask_again.pop(schema_id, None)
        return schema_type

    def _trim(self) -> None:
        # Between batches only, so an id prepare() saw is still there for payload().
        while len(self._types) > self._capacity:
            oldest = next(iter(self._types))
            del self._types[oldest]
            self._ask_again.pop(oldest, None)


# --- output schemas ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """One output contract and the subject it is registered under."""

    subject: str
    file_name: str  # for messages: which checked-in file this is
    schema: str  # the JSON Schema document, compact (key order kept)


@dataclass(frozen=True, slots=True)
class Registration:
    """Where an output schema stands in the registry after :func:`register_schemas`."""

    subject: str
    schema_id: int
    # True: the subject's latest version already was this schema, nothing was sent
    unchanged: bool


def value_subject(topic: str) -> str:
    """TopicNameStrategy, the serializers' default: one value schema per topic."""
    return f"{topic}-value"


def record_subject(topic: str, schema_text: str) -> str:
    """TopicRecordNameStrategy: one subject per record type on a topic, named
    ``<topic>-<record name>`` with the schema's title as the record name, as
    ``confluent_kafka``'s JSON Schema serializer names it."""
    return f"{topic}-{orjson.loads(schema_text)['title']}"


def output_schemas(
    schema_dir: Path, *, alerts_topic: str, scores_topic: str, workflows_topic: str
) -> list[OutputSchema]:
    """churnwatch's output contracts and their subjects.

    The alert and score topics carry one record type each: ``<topic>-value``. The
    workflow topic carries two (triggers and signals, on one topic so an account's
    signals follow its trigger in order): under ``<topic>-value`` the second would be
    checked against the first as if it were its next version, and refused, so each
    has its own subject, ``<topic>-<title>`` (TopicRecordNameStrategy).
    """
    def load(name: str, topic: str, *, per_record: bool) -> OutputSchema:
        text = orjson.dumps(orjson.loads((schema_dir / name).read_bytes())).decode()
        subject = record_subject(topic, text) if per_record else value_subject(topic)
        return OutputSchema(subject, name, text)

    return [
        load("alert.v1.schema.json", alerts_topic, per_record=False),
        load("score.v1.schema.json", scores_topic, per_record=False),
        load("workflow_trigger.v1.schema.json", workflows_topic, per_record=True),
        load("workflow_signal.v1.schema.json", workflows_topic, per_record=True),
    ]


def register_schemas(client: Any, schemas: Sequence[OutputSchema]) -> list[Registration]:
    """Register each schema under its subject, after a compatibility check.

    Per subject: read the latest version (none yet: register); the same schema:
    nothing to do; else ask the registry whether ours is compatible with it
    (``test_compatibility``, under the subject's compatibility level) and raise
    :class:`~sinks.errors.SchemaIncompatible` if not, before anything is registered
    for that subject; then register (the registry gives an identical schema its
    existing id). Raises :class:`~sinks.errors.SchemaRegistryUnavailable` when the
    registry does not answer, :class:`~sinks.errors.SchemaRegistrationError` when it
    refuses a schema otherwise.
    """
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    done: list[Registration] = []
    for output in schemas:
        schema = Schema(output.schema, JSON_SCHEMA_TYPE)
        try:
            done.append(_register(client, output, schema))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:  # refused on registration: incompatible
                raise SchemaIncompatible(output.subject, output.file_name, None) from exc
            if exc.http_status_code in (408, 429) or exc.http_status_code >= 500:
                raise _unavailable(exc, f"registering {output.subject!r}") from exc
            raise SchemaRegistrationError(output.subject, str(exc)) from exc
        except _transport_errors() as exc:
            raise _unavailable(exc, f"registering {output.subject!r}") from exc
    return done


def _register(client: Any, output: OutputSchema, schema: Schema) -> Registration:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        latest = client.get_latest_version(output.subject)
    except SchemaRegistryError as exc:
        if exc.http_status_code != 404:
            raise
        latest = None  # a new subject: nothing to be compatible with
    if latest is not None:
        if _same(latest.schema, schema):
            return Registration(output.subject, int(latest.schema_id), unchanged=True)
        if not client.test_compatibility(output.subject, schema):
            raise SchemaIncompatible(output.subject, output.file_name, latest.version)
    schema_id = int(client.register_schema(output.subject, schema))
    log.info("registered output schema", extra={
        "subject": output.subject, "schema_id": schema_id, "file": output.file_name,
    })
    return Registration(output.subject, schema_id, unchanged=False)


def _same(registered: Schema, ours: Schema) -> bool:
    if (registered.schema_type or "AVRO").upper() != JSON_SCHEMA_TYPE:
        return False
    try:
        return bool(
            orjson.loads(registered.schema_str or "") == orjson.loads(ours.schema_str or "")
        )
    except orjson.JSONDecodeError:
        return False


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What the client raises when no answer came (after its own retries): the HTTP
    library's transport errors (httpx2, or httpx for older clients), OS errors, and
    an OAuth token endpoint that did not answer."""
    from confluent_kafka.schema_registry import error

    errors: list[type[BaseException]] = [OSError]
    if hasattr(error, "OAuthTokenError"):  # older clients have none
        errors.append(error.OAuthTokenError)
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        errors.append(module.TransportError)
    return tuple(errors)


def _unavailable(exc: BaseException, doing: str) -> SchemaRegistryUnavailable:
    return SchemaRegistryUnavailable(f"{doing}: {type(exc).__name__}: {exc}")
