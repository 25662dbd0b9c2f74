"""The event v1 validator: each reason code, and agreement with the JSON Schema (on a
hand-written corpus and on a generated one)."""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

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
        pytest.param(
            event_bytes(extra={"a": {"b": {"c": {"d": {}}}}}), RejectReason.SCHEMA,
            id="unknown-field-too-deep",
        ),
        pytest.param(
            event_bytes(churnwatch_control="erase"), RejectReason.SCHEMA,
            id="reserved-control-field",
        ),
        pytest.param(
            event_bytes(**{f"x{n}": n for n in range(56)}), RejectReason.SCHEMA,
            id="65-top-level-fields",
        ),
        pytest.param(
            event_bytes(extra="a\x00b"), RejectReason.SCHEMA, id="unknown-field-with-nul",
        ),
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


def test_unknown_top_level_fields_are_accepted_ignored_and_named() -> None:
    raw = event_bytes(trace_id="abc", context={"ip": "10.0.0.1", "tags": ["a", {"b": 1}]})
    result = parse_event(raw, NOW, LIMITS)
    assert isinstance(result, Event)
    assert result.unknown_fields == ("trace_id", "context")
    plain = parse_event(event_bytes(), NOW, LIMITS)
    assert isinstance(plain, Event) and plain.unknown_fields == ()
    # nothing else of the event differs, and its document leaves them out
    assert result._replace(unknown_fields=()) == plain
    assert result.to_document() == plain.to_document()


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        pytest.param({"churnwatch_control": "erase"},
                     "churnwatch_control is reserved for control messages", id="reserved"),
        pytest.param({"ext": [[[[[1]]]]]}, "field 'ext' nests deeper than 4 levels",
                     id="too-deep"),
        pytest.param({"ext": {"k": "\x00"}}, "field 'ext' holds a NUL character", id="nul"),
        pytest.param({"e\x00xt": 1}, "field 'e\\x00xt' holds a NUL character",
                     id="nul-in-name"),
        pytest.param({f"x{n}": n for n in range(56)}, "more than 64 top-level fields",
                     id="65-fields"),
    ],
)
def test_unknown_fields_are_bounded(overrides: dict[str, Any], detail: str) -> None:
    result = parse_event(event_bytes(**overrides), NOW, LIMITS)
    assert isinstance(result, Rejection)
    assert (result.reason, result.detail) == (RejectReason.SCHEMA, detail)


def test_64_top_level_fields_are_allowed() -> None:
    result = parse_event(event_bytes(**{f"x{n}": n for n in range(55)}), NOW, LIMITS)
    assert isinstance(result, Event) and len(result.unknown_fields) == 55


def test_a_version_this_churnwatch_does_not_know_is_unsupported_even_with_new_fields() -> None:
    raw = event_bytes(schema_version=2, new_field={"a": 1})
    assert reason_of(raw) is RejectReason.UNSUPPORTED_VERSION


def test_the_reserved_field_is_the_control_messages_own() -> None:
    from schemas.erasure import CONTROL_FIELD
    from schemas.event import RESERVED_FIELD

    assert RESERVED_FIELD == CONTROL_FIELD


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
    ("valid-extra-field", event_doc(payload={})),
    ("valid-extra-fields-nested-4", event_doc(trace={"a": {"b": [1]}}, ids=["x", None, 2.5])),
    ("valid-extra-field-without-optionals", event_doc(user_id=MISSING, attributes=MISSING,
                                                       extra=1)),
    ("valid-64-fields", event_doc(**{f"x{n}": n for n in range(55)})),
    ("65-fields", event_doc(**{f"x{n}": n for n in range(56)})),
    ("valid-extra-field-depth-4", event_doc(trace={"a": {"b": {"c": {"d": 1}}}})),
    ("extra-field-depth-5", event_doc(trace={"a": {"b": {"c": {"d": {}}}}})),
    ("extra-list-depth-5", event_doc(trace=[[[[[]]]]])),
    ("extra-field-nul", event_doc(trace="\x00")),
    ("extra-field-nested-nul", event_doc(trace={"a": ["\x00"]})),
    ("extra-field-nul-key", event_doc(trace={"\x00": 1})),
    ("extra-field-nul-name", event_doc(**{"tr\x00ace": 1})),
    ("control-field", event_doc(churnwatch_control="erase")),
    ("valid-consent", event_doc(event_type="account.consent_changed",
                                attributes={"contact_allowed": False})),
    ("consent-no-flag", event_doc(event_type="account.consent_changed", attributes={})),
    ("consent-no-attributes", event_doc(event_type="account.consent_changed",
                                        attributes=MISSING)),
    ("consent-flag-text", event_doc(event_type="account.consent_changed",
                                    attributes={"contact_allowed": "no"})),
    ("valid-outcome", event_doc(event_type="workflow.saved",
                                attributes={"trigger_id": "25431320-0335-5fc5-8e29-aad518ef8563"})),
    ("outcome-no-trigger", event_doc(event_type="workflow.delivered", attributes={})),
    ("outcome-bad-trigger", event_doc(event_type="workflow.lost",
                                      attributes={"trigger_id": "acct-1"})),
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


# --- a generated corpus: the schema file and the runtime agree ---------------------------
#
# Documents drawn from a valid event with one field changed (or up to three: to boundary
# lengths, odd characters, values ending in a newline, wrong types, null), now and then
# one removed or unknown ones added. Compared: ids, types, required fields, unknown fields
# (their depth, NUL characters, number and the reserved name), lengths, patterns, the
# version, attribute depth and NUL characters, the consent flag.
#
# What the schema cannot express, so the runtime alone checks it:
# - the message's size in bytes, and a JSON object holding a key twice (properties of
#   the bytes: a parsed document has neither; parse_event checks both);
# - that event_time is a real instant: the pattern admits 2026-02-30, an offset that
#   takes year 1 or 9999 out of range, and digits of other scripts (Python's ``\d``,
#   which jsonschema uses), all of which the runtime refuses as bad_time;
# - event_time bounds: not before the earliest accepted time (2000-01-01 by default, a
#   setting; refused as bad_time, allowed for below), not more than max_event_age before
#   the clock nor max_future_skew after it (relative to now: ``now=None`` leaves them out).

def either(
    common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], one_in: int = 4
) -> st.SearchStrategy[Any]:
    """A draw from ``rare`` about once in ``one_in``, else from ``common``."""
    return st.sampled_from([common] * (one_in - 1) + [rare]).flatmap(lambda chosen: chosen)


WRONG_TYPES = st.sampled_from([None, 0, 1, -1, 1.5, True, False, [], ["x"], {}, {"a": 1}])


def mostly(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``values``, and now and then a value of another JSON type, or null."""
    return either(values, WRONG_TYPES)


# Characters an id may hold; and odd ones, drawn class by class so that each is
# frequent: every range of characters no id may hold (controls, separators, invisible
# formatting), the allowed neighbours of each range, white space and '@'.
ID_CHARACTERS = string.ascii_letters + string.digits + "-_.:/ é株\U0001f600"
FORBIDDEN_RANGES = [
    (0x00, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD), (0x61C, 0x61C), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB),
]
ODD_CHARACTERS = st.one_of(
    *(st.characters(min_codepoint=low, max_codepoint=high) for low, high in FORBIDDEN_RANGES),
    st.sampled_from([chr(low - 1) for low, _ in FORBIDDEN_RANGES if low]
                    + [chr(high + 1) for _, high in FORBIDDEN_RANGES]),
    st.sampled_from(" \t\n\u00a0\u3000@"),
)
TENANT_CHARACTERS = string.ascii_letters + string.digits + "_.-"


def text_of(alphabet: str, lengths: Sequence[int]) -> st.SearchStrategy[str]:
    """Text of one of ``lengths`` characters from ``alphabet``: as it is, ending in a
    newline, or (most often) with an odd character put in or in place of one."""

    def edit(text: str, odd: str, where: int, how: int) -> str:
        where = min(where, len(text))
        return [
            text,
            text + "\n",
            text[:where] + odd + text[where:],
            text[:where] + odd + text[where + 1:],
        ][how]

    base = st.sampled_from(lengths).flatmap(
        lambda n: st.text(alphabet=alphabet, min_size=n, max_size=n)
    )
    return st.builds(edit, base, ODD_CHARACTERS, st.integers(0, 130),
                     st.sampled_from([0, 0, 1, 2, 2, 3, 3, 3]))


# Lengths at and around the limits (128 for ids, 64 for a tenant), the valid ones first.
ID_LENGTHS = [8, 1, 127, 128, 0, 129]
IDS = text_of(ID_CHARACTERS, ID_LENGTHS)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="ab\x00\n", max_size=3)
)
KEYS = st.text(alphabet="kc\x00", max_size=2)


def nest(kinds: list[str], leaf: Any) -> dict[str, Any]:
    """Attributes holding ``leaf`` in containers of ``kinds`` ("dict" or "list"): nested
    ``len(kinds) + 1`` deep (the attributes object counts as 1)."""
    value = leaf
    for kind in reversed(kinds):
        value = {"n": value} if kind == "dict" else [value]
    return {"n": value}


ATTRIBUTES = st.one_of(
    st.recursive(
        st.dictionaries(KEYS, SCALARS, max_size=3),
        lambda children: st.dictionaries(
            KEYS, children | st.lists(children, max_size=2), max_size=2
        ),
        max_leaves=6,
    ),
    # 1 to 6 deep, evenly: the limit is 4
    st.integers(0, 5).flatmap(
        lambda depth: st.lists(st.sampled_from(["dict", "list"]), min_size=depth,
                               max_size=depth)
    ).flatmap(lambda kinds: st.builds(nest, st.just(kinds), SCALARS)),
    st.fixed_dictionaries({"contact_allowed": st.sampled_from([True, False, 0, "no", None])}),
)


def two_digits(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


# RFC 3339 times and near misses: each part now and then out of range or misshapen.
TIMES = st.builds(
    lambda year, month, day, sep, hour, minute, second, fraction, offset: (
        f"{year}-{month}-{day}{sep}{hour}:{minute}:{second}{fraction}{offset}"
    ),
    either(
        st.integers(0, 9999).map(lambda n: f"{n:04d}"),
        st.sampled_from(["202", "20260", "\uff12\uff10\uff12\uff16"]),  # full-width digits
    ),
    either(two_digits(1, 12), st.sampled_from(["00", "13", "1"])),
    either(two_digits(1, 31), st.sampled_from(["00", "32", "1"])),
    st.sampled_from("TTTTt "),
    either(two_digits(0, 23), st.sampled_from(["24", "1"])),
    either(two_digits(0, 59), st.just("60")),
    either(two_digits(0, 59), st.just("60")),
    st.sampled_from(["", ".5", ".123456", ".123456789", ".1234567891", "."]),
    either(
        st.just("Z")
        | st.builds(lambda sign, h, m: f"{sign}{h}:{m}", st.sampled_from("+-"),
                    two_digits(0, 23), two_digits(0, 59)),
        st.sampled_from(["z", "+0530", "", "+24:00", "+05:60", "UTC"]),
    ),
)
EVENT_TYPES = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z][a-z0-9_]{0,6}){1,2}", fullmatch=True)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": mostly(IDS),
    "tenant_id": mostly(text_of(TENANT_CHARACTERS, [8, 1, 63, 64, 0, 65])),
    "account_id": mostly(IDS),
    "user_id": mostly(st.none() | IDS),
    "event_type": mostly(
        either(
            EVENT_TYPES
            | st.sampled_from(["a." + "b" * 126, "a." + "b" * 127, "account.consent_changed",
                               "workflow.saved"]),
            st.builds(lambda t, odd, end: t + odd if end else odd + t, EVENT_TYPES,
                      ODD_CHARACTERS | st.sampled_from("\nA.-1"), st.booleans())
            | st.sampled_from(["login", "app..login", "app.login.", "App.login", "1app.login"]),
        )
    ),
    "event_time": mostly(
        either(
            TIMES,
            st.builds(lambda t, odd: t + odd, TIMES, ODD_CHARACTERS)
            | st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat),
        )
    ),
    "source": mostly(IDS),
    "schema_version": mostly(st.sampled_from([1, 1.0, 2, 0, -1, 1.5, True, "1"])),
    "attributes": mostly(ATTRIBUTES),
}
# Unknown top-level fields: ignored, but bounded as attributes are (a value counts as
# level 1: containers at most 4 deep, no NUL), at most 64 fields in all, and one name
# reserved. Names now and then odd (a NUL, the reserved one, a known name's neighbour).
UNKNOWN_NAMES = st.sampled_from(
    ["payload", "trace_id", "context", "Event_ID", "attributes_v2", "", "a\x00b",
     "churnwatch_control"]
) | st.text(alphabet="xyz_\x00", min_size=1, max_size=3)
UNKNOWN_VALUES = st.one_of(
    SCALARS,
    ATTRIBUTES,
    # 0 to 5 containers deep, evenly: the limit is 4
    st.integers(0, 5).flatmap(
        lambda depth: st.lists(st.sampled_from(["dict", "list"]), min_size=depth,
                               max_size=depth)
    ).flatmap(lambda kinds: st.builds(lambda v: v["n"], st.builds(nest, st.just(kinds),
                                                                   SCALARS))),
)
UNKNOWN_FIELDS = either(
    st.dictionaries(UNKNOWN_NAMES, UNKNOWN_VALUES, min_size=1, max_size=3),
    # around the limit of 64 top-level fields (9 are the event's own)
    st.integers(53, 57).map(lambda n: {f"x{i}": i for i in range(n)}),
    6,
)
GENERATED = either(
    st.builds(
        lambda changes, removed, extra: event_doc(
            **{**changes, **dict.fromkeys(removed, MISSING), **extra}
        ),
        # mostly one field changed, so that nothing else in the document hides its verdict
        either(
            st.sampled_from(sorted(FIELD_VALUES)).map(lambda f: [f]),
            st.lists(st.sampled_from(sorted(FIELD_VALUES)), unique=True, max_size=3),
        ).flatmap(lambda fields: st.fixed_dictionaries({f: FIELD_VALUES[f] for f in fields})),
        either(st.just(()), st.sampled_from(sorted(FIELD_VALUES)).map(lambda f: (f,)), 8),
        either(st.just({}), UNKNOWN_FIELDS, 3),
    ),
    st.sampled_from([None, [], "event", 1]),  # not an object
    20,
)


def is_refused_only_at_runtime(event_time: Any) -> bool:
    """Whether a time that matches the schema's pattern is one only the runtime refuses:
    no real instant, or one before the earliest accepted time."""
    try:
        moment = datetime.fromisoformat(event_time).astimezone(UTC)
    except (ValueError, OverflowError):
        return True
    return moment < LIMITS.earliest_event_time


@settings(max_examples=1_500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=GENERATED)
def test_schema_file_and_runtime_agree_on_a_generated_corpus(
    event_schema: jsonschema.Draft202012Validator, doc: Any
) -> None:
    doc = orjson.loads(orjson.dumps(doc))  # as a consumer of the topic reads it
    schema_ok = event_schema.is_valid(doc)
    verdict = validate_document(doc, None, LIMITS)
    event("valid" if isinstance(verdict, Event) else f"refused: {verdict.reason}")
    if isinstance(verdict, Event):
        assert schema_ok, f"the schema refuses what the runtime accepts: {doc!r}"
    elif schema_ok:  # only a refusal the schema cannot express
        assert verdict.reason is RejectReason.BAD_TIME and is_refused_only_at_runtime(
            doc["event_time"]
        ), f"the runtime refuses what the schema accepts: {verdict}, {doc!r}"
