"""No single message can make the parser raise: the poison that once did, and fuzzing.

Each case below once raised outside the dead-letter path (and, since recovery
resumes at the same offset, crashed the dataflow on every restart) or was
accepted when it should not have been. The property tests then throw random
bytes, random JSON and every wrong type per field at :func:`parse_event`: it
must always answer with an event or a rejection, never raise, and never
reach its last-resort ``processing_error`` for content it should judge itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.event import (
    _ID_FORBIDDEN,
    Event,
    EventLimits,
    Rejection,
    RejectReason,
    parse_event,
)
from tests.builders import event_bytes, event_doc

NOW = datetime(2026, 10, 2, tzinfo=UTC)
LIMITS = EventLimits()


def parse(raw: bytes | None, limits: EventLimits = LIMITS) -> Event | Rejection:
    return parse_event(raw, NOW, limits)


def reason_of(raw: bytes | None, limits: EventLimits = LIMITS) -> RejectReason | None:
    result = parse(raw, limits)
    return result.reason if isinstance(result, Rejection) else None


def nested(levels: int) -> bytes:
    """An event whose attributes nest ``levels`` objects deep (well under 64 KiB)."""
    inner = b"1"
    for _ in range(levels):
        inner = b'{"a":' + inner + b"}"
    doc = event_doc(attributes={})
    return orjson.dumps(doc).replace(b'"attributes":{}', b'"attributes":' + inner)


@pytest.mark.parametrize("levels", [5, 300, 600, 1000])
def test_deep_nesting_is_refused_not_a_crash(levels: int) -> None:
    raw = nested(levels)
    assert len(raw) < LIMITS.max_message_bytes
    assert reason_of(raw) in {RejectReason.SCHEMA, RejectReason.NOT_JSON}


@pytest.mark.parametrize("levels", [5, 300, 600, 1000, 2000])
@pytest.mark.parametrize("container", [b"{", b"["])
def test_deep_nesting_in_an_unknown_field_is_refused_not_a_crash(
    levels: int, container: bytes
) -> None:
    opening, closing = (b'{"a":', b"}") if container == b"{" else (b"[", b"]")
    raw = event_bytes()[:-1] + b',"ext":' + opening * levels + b"1" + closing * levels + b"}"
    assert len(raw) < LIMITS.max_message_bytes
    assert reason_of(raw) in {RejectReason.SCHEMA, RejectReason.NOT_JSON}


def test_a_huge_unknown_field_is_too_large() -> None:
    assert reason_of(event_bytes(ext="x" * 70_000)) is RejectReason.TOO_LARGE
    assert reason_of(event_bytes(**{f"f{n}": n for n in range(20_000)})) is (
        RejectReason.TOO_LARGE
    )


def test_thousands_of_unknown_fields_within_the_size_are_refused() -> None:
    raw = event_bytes(**{f"{n:x}": 0 for n in range(5_000)})
    assert len(raw) < LIMITS.max_message_bytes
    result = parse(raw)
    assert isinstance(result, Rejection)
    assert (result.reason, result.detail) == (RejectReason.SCHEMA, "more than 64 top-level fields")


@pytest.mark.parametrize(
    "event_time",
    [
        pytest.param("9999-12-31T23:59:59-23:59", id="offset-past-year-9999"),
        pytest.param("0001-01-01T00:00:00+23:59", id="offset-before-year-1"),
        pytest.param("0001-01-01T00:00:00Z", id="year-1"),
        pytest.param("1900-06-01T00:00:00Z", id="year-1900"),
        pytest.param("1970-01-01T00:00:00Z", id="epoch-zero"),
        pytest.param("1999-12-31T23:59:59.999Z", id="just-before-the-floor"),
    ],
)
def test_absurd_event_times_are_bad_time(event_time: str) -> None:
    assert reason_of(event_bytes(event_time=event_time)) is RejectReason.BAD_TIME


def test_the_earliest_accepted_time_is_inclusive_and_settable() -> None:
    assert reason_of(event_bytes(event_time="2000-01-01T00:00:00Z")) is None
    later_floor = EventLimits(earliest_event_time=datetime(2026, 9, 1, tzinfo=UTC))
    assert reason_of(event_bytes(event_time="2026-08-31T23:00:00Z"), later_floor) is (
        RejectReason.BAD_TIME
    )


def test_max_event_age_is_judged_on_the_clock() -> None:
    limits = EventLimits(max_event_age=timedelta(days=30))
    assert reason_of(event_bytes(event_time="2026-09-03T00:00:00Z"), limits) is None
    assert reason_of(event_bytes(event_time="2026-09-01T00:00:00Z"), limits) is (
        RejectReason.BAD_TIME
    )


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param(
            b'{"tenant_id":"acme",' + event_bytes(tenant_id="globex")[1:], "tenant_id",
            id="first-tenant-one-tenant-then-another",
        ),
        pytest.param(
            event_bytes(attributes={"plan": "pro"}).replace(
                b'"plan":"pro"', b'"plan":"pro","plan":"free"'
            ),
            "plan", id="attribute-twice",
        ),
        pytest.param(
            event_bytes(attributes={"a": {"b": 1}}).replace(b'"b":1', b'"b":1,"b":2'),
            "b", id="nested-attribute-twice",
        ),
        pytest.param(
            b'{"\\u0074enant_id":"evil",' + event_bytes()[1:], "tenant_id",
            id="escaped-spelling-of-a-key",
        ),
        pytest.param(
            event_bytes(ext=1)[:-1] + b',"ext":2}', "ext", id="unknown-field-twice",
        ),
        pytest.param(
            event_bytes(ext={"a": 1}).replace(b'"a":1', b'"a":1,"a":2'), "a",
            id="key-twice-inside-an-unknown-field",
        ),
        pytest.param(
            event_bytes(ext={"a": {"b": 1}}, pad=[{"c": 1}]).replace(b'"c":1', b'"c":1,"c":2'),
            "c", id="key-twice-in-an-unknown-list",
        ),
    ],
)
def test_duplicate_keys_are_refused(raw: bytes, key: str) -> None:
    result = parse(raw)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.SCHEMA
    assert result.detail == f"duplicate key {key!r}"


def test_a_key_named_in_a_value_is_not_a_duplicate() -> None:
    result = parse(event_bytes(source="source", attributes={"note": "tenant_id"}))
    assert isinstance(result, Event)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", "acct\r\nX-Injected: 1"),
        ("account_id", "acct\x00"),
        ("account_id", "\u202eacct"),
        ("event_id", "evt\x1b[2J"),
        ("user_id", "u\u200b"),
        ("source", "web\u2029"),
    ],
)
def test_ids_with_control_or_invisible_characters_are_bad_id(field: str, value: str) -> None:
    assert reason_of(event_bytes(**{field: value})) is RejectReason.BAD_ID


@pytest.mark.parametrize(
    "account_id",
    ["'; DROP TABLE alerts; --", "{acme}:*", "$(rm -rf /)", "a b", "株式会社", "acct 😀"],
)
def test_injection_looking_but_printable_ids_are_accepted_as_data(account_id: str) -> None:
    result = parse(event_bytes(account_id=account_id))
    assert isinstance(result, Event)
    assert result.account_id == account_id


@pytest.mark.parametrize(
    "raw",
    [
        event_bytes(attributes={"amount": 1e308}),
        event_bytes().replace(
            b'"attributes":{}', b'"attributes":{"n":123456789012345678901234567}'
        ),
        event_bytes(attributes={"amount": -1e-320}),
    ],
)
def test_huge_and_tiny_numbers_are_just_numbers(raw: bytes) -> None:
    assert isinstance(parse(raw), Event)


@pytest.mark.parametrize(
    "raw",
    [
        event_bytes().replace(b'"attributes":{}', b'"attributes":{"x":NaN}'),
        event_bytes().replace(b'"attributes":{}', b'"attributes":{"x":Infinity}'),
        event_bytes().replace(b'"attributes":{}', b'"attributes":{"x":1e400}'),
    ],
)
def test_nan_and_infinity_are_not_json(raw: bytes) -> None:
    assert reason_of(raw) is RejectReason.NOT_JSON


def test_nul_in_attributes_is_refused() -> None:
    assert reason_of(event_bytes(attributes={"reason_code": "x\x00"})) is RejectReason.SCHEMA


# --- fuzzing -------------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["event_id", "tenant_id", "account_id", "user_id", "event_type", "event_time",
          "source", "schema_version", "attributes"]


def judged_itself(result: Event | Rejection) -> bool:
    """An event, or a rejection the validator chose (never the last-resort catch-all)."""
    if isinstance(result, Event):
        ids = (result.event_id, result.account_id, result.source, result.user_id or "")
        return not any(_ID_FORBIDDEN.search(value) for value in ids)
    return result.reason is not RejectReason.PROCESSING_ERROR


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert judged_itself(parse(raw))


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_random_json_never_raises(doc: Any) -> None:
    assert judged_itself(parse(orjson.dumps(doc)))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), JSON)
def test_every_wrong_type_per_field_is_judged(field: str, value: Any) -> None:
    assert judged_itself(parse(event_bytes(**{field: value})))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), JSON, max_size=6))
def test_any_unknown_fields_are_judged(extra: dict[str, Any]) -> None:
    doc = {**event_doc(), **extra}
    result = parse(orjson.dumps(doc))
    assert judged_itself(result)
    if isinstance(result, Event):  # only the unknown ones, each named once
        assert set(result.unknown_fields) == set(doc) - set(event_doc())


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_unicode_account_id_is_accepted_iff_it_is_printable(account_id: str) -> None:
    result = parse(event_bytes(account_id=account_id))
    assert isinstance(result, Event) == (_ID_FORBIDDEN.search(account_id) is None)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(min_value=1, max_value=199))
def test_truncated_events_never_raise(tail: bytes, cut: int) -> None:
    raw = event_bytes(attributes={"note": tail.hex()})
    assert judged_itself(parse(raw[: cut % len(raw)]))


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.timezones() | st.just(UTC)))
def test_any_event_time_is_judged(moment: datetime) -> None:
    result = parse(event_bytes(event_time=moment.isoformat()))
    assert judged_itself(result)
    if isinstance(result, Event):
        assert LIMITS.earliest_event_time <= result.event_time <= NOW + LIMITS.max_future_skew


# --- dead letters always fit -------------------------------------------------------------

KAFKA_DEFAULT_MAX_MESSAGE = 1_000_000


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"x" * 5_000_000, id="5-MB-text"),
        pytest.param(b"\x01" * 2_000_000, id="2-MB-of-control-bytes"),
        pytest.param(bytes(range(256)) * 8_000, id="2-MB-binary"),
        pytest.param(("é" * 100_000).encode(), id="cut-inside-a-character"),
    ],
)
def test_a_dead_letter_of_any_size_fits_a_kafka_message(value: bytes) -> None:
    from schemas.dead_letter import MAX_ORIGINAL_BYTES, DeadLetter
    from sinks.kafka import dead_letter_message

    letter = DeadLetter(RejectReason.TOO_LARGE, "x", "churn.events", 0, 7, b"k" * 5_000, value)
    message = dead_letter_message(letter)
    assert len(message.value) + len(message.key or b"") < KAFKA_DEFAULT_MAX_MESSAGE
    document = orjson.loads(message.value)
    assert document["original_truncated"] is True
    assert document["original_bytes"] == len(value)
    import hashlib

    assert document["original_sha256"] == hashlib.sha256(value).hexdigest()
    kept = (
        document["original"].encode()
        if document["original_encoding"] == "utf-8"
        else __import__("base64").b64decode(document["original"])
    )
    assert value.startswith(kept) and len(kept) >= MAX_ORIGINAL_BYTES - 3
    assert message.key == hashlib.sha256(b"k" * 5_000).hexdigest().encode()


def test_a_small_dead_letter_keeps_everything() -> None:
    from schemas.dead_letter import DeadLetter

    letter = DeadLetter(RejectReason.NOT_JSON, "x", "t", 0, 1, b"key", b"{oops")
    document = orjson.loads(letter.to_json())
    assert document["original"] == "{oops" and "original_truncated" not in document
    assert letter.message_key == b"key"
