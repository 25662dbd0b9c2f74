"""One Kafka message in, one churnwatch event (or a rejection) out, whatever format it came in.

``CHURNWATCH_INPUT_FORMAT``:

* ``native``: churnwatch's event v1 (``schemas.event``); the fast path, no
  decoder at all.
* ``segment``: the Segment spec (track, page, screen, identify, group; also
  what RudderStack and many CDPs emit), mapped by an :class:`InputMapping`.
* ``cloudevents``: CloudEvents 1.0 over Kafka, structured or binary content
  mode, read with the CloudEvents SDK's Kafka binding.
* ``auto``: per message, whichever of these it unambiguously is (a
  ``ce_specversion`` header or a ``specversion`` field: CloudEvents; a
  ``schema_version`` field: native; a Segment ``type`` with a ``messageId``:
  Segment), else judged as native.

A foreign event becomes a native event document, then goes through the same
validator as a native one, so ids, times and attributes obey one set of
rules. identify and group calls become ``account.traits_changed`` events whose
attributes are the traits. A foreign event that lacks what a churnwatch event
needs (an account, an id, a time, a mapped type) is rejected as ``unmapped``
with the missing field named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import orjson
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event
from cloudevents.core.exceptions import BaseCloudEventException

from schemas.errors import DependencyUnavailable
from schemas.event import (
    Event,
    EventLimits,
    Rejection,
    RejectReason,
    _duplicate_key,
    parse_event,
    validate_document,
)
from schemas.formats.mapping import TRAITS_CHANGED, InputMapping, find

# Kafka headers as the clients give them: (name, value) pairs, or a mapping.
Headers = (
    Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None
)


class Framing(Protocol):
    """Schema Registry framing (the Confluent wire format; ``sinks.schema_registry``)."""

    def prepare(self, values: Iterable[bytes | None]) -> None:
        """Look up a batch's schema ids (raises the transient kind if the registry is
        down: the batch waits)."""

    def payload(self, value: bytes) -> bytes | Rejection:
        """The JSON to judge as an event (``value`` itself if not framed), or why not."""

SEGMENT_TYPES = ("track", "page", "screen", "identify", "group")


class InputFormat(StrEnum):
    NATIVE = "native"
    SEGMENT = "segment"
    CLOUDEVENTS = "cloudevents"
    AUTO = "auto"


class Decoder:
    """Turns one message into an :class:`Event` or a :class:`Rejection` (never raises on
    bad input: see :func:`schemas.event.parse_event`)."""

    def __init__(
        self,
        input_format: InputFormat,
        mapping: InputMapping,
        limits: EventLimits,
        framing: Framing | None = None,
    ) -> None:
        self.input_format = input_format
        self._mapping = mapping
        self._limits = limits
        self.framing = framing

    def prepare(self, values: Iterable[bytes | None]) -> None:
        """Before a batch is decoded: its registry schema ids looked up (the registry
        down raises the transient kind, and nothing of the batch is judged)."""
        if self.framing is not None:
            self.framing.prepare(values)

    def decode(
        self,
        value: bytes | None,
        headers: Headers,
        now: datetime,
        *,
        partition: int | None = -1,
        offset: int | None = -1,
        ingested_at: float = 0.0,
    ) -> Event | Rejection:
        try:
            return self._decode(value, headers, now, partition, offset, ingested_at)
        except DependencyUnavailable:
            raise  # the registry down: not the message's fault (the batch waits)
        except Exception as exc:  # a defect: contained to this message, as parse_event does
            return Rejection(RejectReason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"[:200])

    def _decode(
        self, value: bytes | None, headers: Headers, now: datetime,
        partition: int | None, offset: int | None, ingested_at: float,
    ) -> Event | Rejection:
        limits = self._limits
        if value is not None and len(value) > limits.max_message_bytes:
            return parse_event(value, now, limits)  # the too_large rejection, as for native
        if value and value[:1] in (b"\x00", b"\x01") and self.framing is not None:
            unframed = self.framing.payload(value)  # 0: a schema id; 1: a schema GUID
            if isinstance(unframed, Rejection):
                return unframed
            value = unframed
        header_map = _header_map(headers)
        kind = self.input_format
        if kind is InputFormat.AUTO:
            kind = _detect(value, header_map)
        if kind is InputFormat.NATIVE:
            return parse_event(value, now, limits, partition=partition, offset=offset,
                               ingested_at=ingested_at)
        if kind is InputFormat.CLOUDEVENTS:
            mapped = cloudevent_document(value, header_map, self._mapping)
        else:
            mapped = segment_document(value, header_map, self._mapping)
        if isinstance(mapped, Rejection):
            return mapped
        return validate_document(mapped, now, limits, partition=partition, offset=offset,
                                 ingested_at=ingested_at)


def _header_map(headers: Headers) -> dict[str, bytes]:
    if not headers:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {
        name: raw.encode() if isinstance(raw, str) else raw
        for name, raw in pairs
        if raw is not None
    }


def _detect(value: bytes | None, headers: Mapping[str, bytes]) -> InputFormat:
    """Which format one message is, where that is unambiguous (else native)."""
    if "ce_specversion" in headers or "ce_type" in headers:
        return InputFormat.CLOUDEVENTS
    if not value:
        return InputFormat.NATIVE
    if b'"schema_version"' in value:
        return InputFormat.NATIVE
    if b'"specversion"' in value:
        return InputFormat.CLOUDEVENTS
    if b'"messageId"' in value and b'"type"' in value:
        return InputFormat.SEGMENT
    return InputFormat.NATIVE


def _load_object(value: bytes | None) -> dict[str, Any] | Rejection:
    if value is None:
        return Rejection(RejectReason.NOT_JSON, "message has no value")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection(RejectReason.NOT_JSON, str(exc)[:200])
    if not isinstance(document, dict):
        return Rejection(RejectReason.SCHEMA, "the message is not a JSON object")
    duplicate = _duplicate_key(value, document)
    if duplicate is not None:
        return Rejection(RejectReason.SCHEMA, f"duplicate key {duplicate!r}"[:200])
    return document


def _unmapped(detail: str) -> Rejection:
    return Rejection(RejectReason.UNMAPPED, detail[:300])


def _native(
    mapping: InputMapping,
    foreign: Mapping[str, Any],
    headers: Mapping[str, bytes],
    *,
    event_id: object,
    event_id_field: str,
    event_time: object,
    event_time_field: str,
    event_type: str | None,
    name: object,
    attributes: object,
    default_source: str,
) -> dict[str, Any] | Rejection:
    """The native event document, or why the foreign event cannot be one."""
    if not isinstance(event_id, str) or not event_id:
        return _unmapped(f"no event id: {event_id_field} is missing")
    if not event_time:
        return _unmapped(f"no event time: {event_time_field} is missing")
    if event_type is None:
        return _unmapped(f"event name {name!r} is not mapped to an event type "
                         f"({mapping.source_file}: event_types)")
    account = find(mapping.account, foreign, headers)
    if account is None:
        looked = ", ".join(p.describe() for p in mapping.account)
        return _unmapped(f"no account: none of {looked} is present")
    tenant = find(mapping.tenant, foreign, headers)
    if tenant is None:
        looked = ", ".join(p.describe() for p in mapping.tenant)
        return _unmapped(f"no tenant: none of {looked} is present")
    return {
        "schema_version": 1,
        "event_id": event_id,
        "tenant_id": tenant,
        "account_id": account,
        "user_id": find(mapping.user, foreign, headers),
        "event_type": event_type,
        "event_time": event_time,
        "source": find(mapping.source, foreign, headers) or default_source,
        "attributes": attributes if isinstance(attributes, dict) else {},
    }


def segment_document(
    value: bytes | None, headers: Mapping[str, bytes], mapping: InputMapping
) -> dict[str, Any] | Rejection:
    """A Segment-spec message (https://segment.com/docs/connections/spec/) as a native
    event document: track by its event name, page and screen as ``Page Viewed`` and
    ``Screen Viewed``, identify and group as ``account.traits_changed``."""
    document = _load_object(value)
    if isinstance(document, Rejection):
        return document
    call = document.get("type")
    if call == "track":
        name: object = document.get("event")
        event_type = mapping.event_type(name) if isinstance(name, str) and name else None
        if not isinstance(name, str) or not name:
            return _unmapped("a track call without its event name: event is missing")
        attributes = document.get("properties")
    elif call in ("page", "screen"):
        name = "Page Viewed" if call == "page" else "Screen Viewed"
        event_type = mapping.event_type(name)
        attributes = document.get("properties")
    elif call in ("identify", "group"):
        name, event_type = call, TRAITS_CHANGED
        attributes = document.get("traits")
    else:
        return _unmapped(f"Segment call type {call!r} is not mapped "
                         f"(mapped: {', '.join(SEGMENT_TYPES)})")
    library = document.get("context", {}).get("library", {}) if isinstance(
        document.get("context"), dict) else {}
    return _native(
        mapping, document, headers,
        event_id=document.get("messageId"), event_id_field="messageId",
        event_time=document.get("timestamp") or document.get("originalTimestamp"),
        event_time_field="timestamp (and originalTimestamp)",
        event_type=event_type, name=name, attributes=attributes,
        default_source=str(library.get("name") or "segment")
        if isinstance(library, dict) else "segment",
    )


def cloudevent_document(
    value: bytes | None, headers: Mapping[str, bytes], mapping: InputMapping
) -> dict[str, Any] | Rejection:
    """A CloudEvent (structured or binary content mode over Kafka, read with the
    CloudEvents SDK) as a native event document: ``id``, ``time``, ``source`` and the
    mapped ``type``; the account and tenant by the mapping (over the attributes,
    extensions included, and ``data``); the data object as attributes."""
    binary = "ce_specversion" in headers
    if binary:
        present = {name[len("ce_"):] for name in headers if name.startswith("ce_")}
    else:
        structured = _load_object(value)  # refuse what the JSON parser would not flag
        if isinstance(structured, Rejection):
            return structured
        present = set(structured)
    # The SDK fills a missing id (a random one) and time (now): an id must be the
    # sender's, for dedupe, and a time is when it happened.
    for required in ("id", "time"):
        if required not in present:
            return _unmapped(f"no event {'id' if required == 'id' else 'time'}: the "
                             f"CloudEvent's {required} is missing")
    try:
        event = from_kafka_event(KafkaMessage(headers=dict(headers), key=None,
                                              value=value or b""))
        attributes = event.get_attributes()
        data = event.get_data()
    except (BaseCloudEventException, ValueError, TypeError, KeyError) as exc:
        return Rejection(RejectReason.SCHEMA, f"not a CloudEvent: {exc}"[:200])
    foreign: dict[str, Any] = {**attributes, "data": data}
    moment = attributes.get("time")
    event_time = moment.astimezone(UTC).isoformat() if isinstance(moment, datetime) else moment
    ce_type = attributes.get("type")
    return _native(
        mapping, foreign, headers,
        event_id=attributes.get("id"), event_id_field="id",
        event_time=event_time, event_time_field="time",
        event_type=mapping.event_type(ce_type) if isinstance(ce_type, str) else None,
        name=ce_type, attributes=data,
        default_source=str(attributes.get("source") or "cloudevents"),
    )
