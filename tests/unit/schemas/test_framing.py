"""The Confluent wire format: exact bytes, round trips, and garbage that never raises."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.framing import (
    MAX_SCHEMA_ID,
    frame,
    framed_schema_id,
    is_guid_framed,
    unframe,
)


def test_frame_writes_magic_byte_then_big_endian_id_then_payload() -> None:
    assert frame(1, b"{}") == b"\x00\x00\x00\x00\x01{}"
    assert frame(0x01020304, b"{}") == b"\x00\x01\x02\x03\x04{}"


def test_unframe_reads_the_id_and_payload() -> None:
    assert unframe(b"\x00\x00\x00\x01\x00{\"a\":1}") == (256, b'{"a":1}')
    assert framed_schema_id(b"\x00\x00\x00\x01\x00{\"a\":1}") == 256


def test_the_confluent_client_reads_our_header() -> None:
    """Cross-check with the library's own reader of the header (SchemaId.from_bytes)."""
    from confluent_kafka.schema_registry.common.serde import SchemaId

    for schema_id in (1, 4242, MAX_SCHEMA_ID):
        parsed = SchemaId("JSON")
        rest = parsed.from_bytes(io.BytesIO(frame(schema_id, b'{"x":1}')))
        assert parsed.id == schema_id
        assert rest.read() == b'{"x":1}'


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="magic-only"),
        pytest.param(b"\x00\x00\x00\x01", id="four-bytes"),
        pytest.param(b'{"event_id":"e"}', id="plain-json"),
        pytest.param(b" \x00\x00\x00\x01{}", id="leading-space"),
        pytest.param(b"\x01" + bytes(16) + b"{}", id="guid-framed"),
    ],
)
def test_what_is_not_framed_is_none(value: bytes | None) -> None:
    assert unframe(value) is None
    assert framed_schema_id(value) is None


def test_a_bare_header_is_framed_with_an_empty_payload() -> None:
    assert unframe(b"\x00\x00\x00\x00\x07") == (7, b"")


def test_guid_framing_is_recognised() -> None:
    assert is_guid_framed(b"\x01" + bytes(16) + b"{}")
    assert not is_guid_framed(b"\x01" + bytes(15))
    assert not is_guid_framed(frame(1, b"{}"))
    assert not is_guid_framed(None)


@pytest.mark.parametrize("schema_id", [-1, MAX_SCHEMA_ID + 1])
def test_frame_refuses_an_id_that_does_not_fit(schema_id: int) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        frame(schema_id, b"{}")


@given(st.integers(min_value=0, max_value=MAX_SCHEMA_ID), st.binary(max_size=64))
def test_frame_then_unframe_round_trips(schema_id: int, payload: bytes) -> None:
    framed = frame(schema_id, payload)
    assert unframe(framed) == (schema_id, payload)
    assert framed_schema_id(framed) == schema_id


@given(st.binary(max_size=32))
def test_any_bytes_unframe_without_raising(value: bytes) -> None:
    result = unframe(value)
    if result is None:
        assert value[:1] != b"\x00" or len(value) < 5
    else:
        assert frame(*result) == value
    assert framed_schema_id(value) == (None if result is None else result[0])
    is_guid_framed(value)
