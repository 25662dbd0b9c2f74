"""The Confluent Schema Registry wire format, as bytes: no registry, no client.

A message written by a Confluent serializer starts with a five-byte header:
the magic byte ``0x00``, then the schema id as a 4-byte big-endian unsigned
integer, then the payload. For JSON Schema the payload is the JSON document
itself (Avro and Protobuf payloads are binary; Protobuf also puts message
indexes before it). A plain JSON message starts with ``{`` (or whitespace),
never with ``0x00``, so the two can share a topic without ambiguity.

Newer serializers can instead write the magic byte ``0x01`` and a 16-byte
schema GUID (:data:`GUID_MAGIC_BYTE`); churnwatch recognises that header only
to refuse it with a clear reason (see ``sinks.schema_registry``).
"""

from __future__ import annotations

import struct

MAGIC_BYTE = 0
GUID_MAGIC_BYTE = 1
HEADER_BYTES = 5
GUID_HEADER_BYTES = 17
MAX_SCHEMA_ID = 2**32 - 1

_HEADER = struct.Struct(">BI")


def frame(schema_id: int, payload: bytes) -> bytes:
    """``payload`` behind the header naming ``schema_id`` (what a Confluent serializer
    writes for a JSON Schema). Raises ValueError for an id outside 0 .. 2**32 - 1."""
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        msg = f"a schema id is a 32-bit unsigned integer, got {schema_id}"
        raise ValueError(msg)
    return _HEADER.pack(MAGIC_BYTE, schema_id) + payload


def unframe(value: bytes | None) -> tuple[int, bytes] | None:
    """``(schema_id, payload)`` of a framed message; None if ``value`` is not framed
    (plain JSON, None, shorter than the header, another first byte). Never raises."""
    if value is None or len(value) < HEADER_BYTES or value[0] != MAGIC_BYTE:
        return None
    _magic, schema_id = _HEADER.unpack_from(value)
    return schema_id, bytes(value[HEADER_BYTES:])


def framed_schema_id(value: bytes | None) -> int | None:
    """The schema id a framed message names, without copying its payload; None if
    ``value`` is not framed. Never raises."""
    if value is None or len(value) < HEADER_BYTES or value[0] != MAGIC_BYTE:
        return None
    return int.from_bytes(value[1:HEADER_BYTES], "big")


def is_guid_framed(value: bytes | None) -> bool:
    """Whether ``value`` starts with the schema-GUID header (magic byte 1, 16 bytes)."""
    return value is not None and len(value) >= GUID_HEADER_BYTES and value[0] == GUID_MAGIC_BYTE
