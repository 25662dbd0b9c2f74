"""The event v1 validator: each reason code, and agreement with the JSON Schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import orjson
import pytest

from schemas import SCHEMA_DIR
from schemas.event import (
    Event,
    EventLimits,
    Rejection,
    RejectReason,
    parse_event,
    validate_document,
)
from tests.builders import MISSING, event_bytes, event_doc

NOW = datetime(2026, 10, 1, 12, 30, tzinfo=UTC)
LIMITS = EventLimits(max_message_bytes=64 * 1024, max_future_skew=timedelta(hours=1))


def reason_of(raw: bytes) -> RejectReason | None:
    result = parse_event(raw, NOW, LIMITS)
    return result.reason if isinstance(result, Rejection) else None


def test_valid_event_parses_to_utc_event() -> None:
    result = parse_event(event_bytes(event_time="2026-10-01T13:00:00+01:00"), NOW, LIMITS)
    assert isinstance(result, Event)
    assert result.event_time == datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    assert result.subject == "acme:acct-1"


def test_optional_fields_default() -> None:
    result = parse_event(event_bytes(user_id=MISSING, attributes=MISSING), NOW, LIMITS)
    assert isinstance(result, Event)
    assert result.user_id is None and result.attributes == {}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"not json at all", RejectReason.NOT_JSON, id="text"),
        pytest.param(b"\xff\xfe\x00garbage", RejectReason.NOT_JSON, id="invalid-utf8"),
        pytest.param(None, RejectReason.NOT_JSON, id="null-value"),
        pytest.param(b"[1, 2]", RejectReason.SCHEMA, id="array"),
        pytest.param(event_bytes(event_id=MISSING), RejectReason.SCHEMA, id="missing-event-id"),
        pytest.param(event_bytes(tenant_id="ac me"), RejectReason.SCHEMA, id="bad-tenant"),
        pytest.param(event_bytes(extra=1), RejectReason.SCHEMA, id="unknown-field"),
        pytest.param(event_bytes(event_type="Login"), RejectReason.SCHEMA, id="unnamespaced"),
        pytest.param(event_bytes(user_id="a@b.com"), RejectReason.SCHEMA, id="email-user"),
        pytest.param(event_bytes(schema_version="1"), RejectReason.SCHEMA, id="version-string"),
        pytest.param(
            event_bytes(schema_version=2), RejectReason.UNSUPPORTED_VERSION, id="version-2"
        ),
        pytest.param(
            event_bytes(attributes={"a": {"b": {"c": {"d": {}}}}}),
            RejectReason.SCHEMA,
            id="attributes-too-deep",
        ),
        pytest.param(
            event_bytes(event_time="2026-10-01 12:00:00"), RejectReason.BAD_TIME, id="no-offset"
        ),
        pytest.param(
            event_bytes(event_time="2026-02-30T12:00:00Z"), RejectReason.BAD_TIME, id="feb-30"
        ),
        pytest.param(
            event_bytes(event_time="2026-10-01T14:00:00Z"), RejectReason.FUTURE_TIME, id="future"
        ),
        pytest.param(
            event_bytes(attributes={"blob": "x" * 70_000}), RejectReason.TOO_LARGE, id="too-large"
        ),
    ],
)
def test_rejections_carry_their_reason(raw: bytes | None, reason: RejectReason) -> None:
    assert reason_of(raw) == reason  # type: ignore[arg-type]


def test_future_skew_boundary_is_inclusive() -> None:
    at_limit = event_bytes(event_time="2026-10-01T13:30:00Z")
    beyond = event_bytes(event_time="2026-10-01T13:30:01Z")
    assert reason_of(at_limit) is None
    assert reason_of(beyond) == RejectReason.FUTURE_TIME


def test_size_limit_counts_bytes() -> None:
    raw = event_bytes(attributes={"pad": "é" * 200})
    small = EventLimits(max_message_bytes=len(raw) - 1)
    assert isinstance(parse_event(raw, NOW, small), Rejection)
    assert isinstance(parse_event(raw, NOW, EventLimits(max_message_bytes=len(raw))), Event)


def test_attribute_depth_four_is_allowed() -> None:
    assert reason_of(event_bytes(attributes={"a": {"b": {"c": [1]}}})) is None


# Documents the JSON Schema and the runtime must judge alike. The runtime-only
# checks (size, future time, calendar validity) are left out on purpose.
CORPUS: list[tuple[str, Any]] = [
    ("valid", event_doc()),
    ("valid-offset", event_doc(event_time="2026-10-01T12:00:00.123456-05:30")),
    ("valid-null-user", event_doc(user_id=None)),
    ("valid-no-optionals", event_doc(user_id=MISSING, attributes=MISSING)),
    ("valid-nested-4", event_doc(attributes={"a": {"b": {"c": [1, "x", None]}}})),
    ("valid-unknown-type", event_doc(event_type="crm.note_added")),
    ("not-object", [event_doc()]),
    ("missing-source", event_doc(source=MISSING)),
    ("empty-event-id", event_doc(event_id="")),
    ("long-event-id", event_doc(event_id="e" * 129)),
    ("tenant-65", event_doc(tenant_id="t" * 65)),
    ("tenant-slash", event_doc(tenant_id="a/b")),
    ("account-empty", event_doc(account_id="")),
    ("account-int", event_doc(account_id=42)),
    ("user-email", event_doc(user_id="x@y.z")),
    ("user-int", event_doc(user_id=7)),
    ("type-upper", event_doc(event_type="App.Login")),
    ("type-flat", event_doc(event_type="login")),
    ("time-no-offset", event_doc(event_time="2026-10-01T12:00:00")),
    ("time-date-only", event_doc(event_time="2026-10-01")),
    ("time-number", event_doc(event_time=1700000000)),
    ("time-month-13", event_doc(event_time="2026-13-01T12:00:00Z")),
    ("version-2", event_doc(schema_version=2)),
    ("version-bool", event_doc(schema_version=True)),
    ("attributes-list", event_doc(attributes=[1])),
    ("attributes-depth-5", event_doc(attributes={"a": {"b": {"c": {"d": [1]}}}})),
    ("extra-field", event_doc(payload={})),
    ("valid-consent", event_doc(event_type="account.consent_changed",
                                attributes={"contact_allowed": False})),
    ("consent-no-flag", event_doc(event_type="account.consent_changed", attributes={})),
    ("consent-no-attributes", event_doc(event_type="account.consent_changed",
                                        attributes=MISSING)),
    ("consent-flag-text", event_doc(event_type="account.consent_changed",
                                    attributes={"contact_allowed": "no"})),
    ("valid-unicode-ids", event_doc(account_id="Ünïcode 株式会社 ✓", event_id="évt-1")),
    ("valid-newline-in-attribute", event_doc(attributes={"note": "two\nlines"})),
    ("account-crlf", event_doc(account_id="acct\r\n1")),
    ("account-trailing-newline", event_doc(account_id="acct-1\n")),
    ("account-nul", event_doc(account_id="acct\x00")),
    ("account-rtl-override", event_doc(account_id="acct\u202e1")),
    ("account-zero-width", event_doc(account_id="acct\u200b1")),
    ("event-id-escape", event_doc(event_id="evt\x1b[31m")),
    ("user-control", event_doc(user_id="u\x01")),
    ("source-line-separator", event_doc(source="web\u2028app")),
    ("tenant-trailing-newline", event_doc(tenant_id="acme\n")),
    ("type-trailing-newline", event_doc(event_type="app.login\n")),
    ("time-trailing-newline", event_doc(event_time="2026-10-01T12:00:00Z\n")),
    ("attributes-nul-value", event_doc(attributes={"plan": "pro\x00"})),
    ("attributes-nul-key", event_doc(attributes={"pl\x00an": "pro"})),
    ("attributes-nested-nul", event_doc(attributes={"a": ["x", {"b": "\x00"}]})),
]


@pytest.fixture(scope="module")
def event_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / "event.v1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(("name", "doc"), CORPUS, ids=[name for name, _ in CORPUS])
def test_schema_file_and_runtime_agree(
    name: str, doc: Any, event_schema: jsonschema.Draft202012Validator
) -> None:
    schema_ok = event_schema.is_valid(doc)
    runtime_ok = isinstance(validate_document(orjson.loads(orjson.dumps(doc)), None, LIMITS), Event)
    assert schema_ok == runtime_ok
    assert schema_ok == name.startswith("valid")


def test_schema_examples_are_valid(event_schema: jsonschema.Draft202012Validator) -> None:
    for example in event_schema.schema["examples"]:
        assert event_schema.is_valid(example)
        assert isinstance(validate_document(example, None, LIMITS), Event)
