"""The validator's fast path gives the reference's verdict, only sooner.

:func:`schemas.event.validate_document` first tries ``_accept_plainly_valid``
(cheap checks, each at least as strict as the reference's; a time in doubt is
left to the reference's own ``_judge_time``) and falls back to
``_judge_document`` (the reference, which words every rejection). These tests
hold the fast path to that: the facts about Unicode its shortcuts rest on, for
every code point; the same verdict as the reference for generated documents;
an answer (not a fallback) for the common shapes, so it cannot silently stop
paying; the bounded memory of accepted values; and the duplicate-key check's
cheaper ways against the exact one.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.event import (
    _ID_FORBIDDEN,
    _USER_RE,
    Event,
    EventLimits,
    Rejection,
    RejectReason,
    _accept_plainly_valid,
    _AcceptedStrings,
    _duplicate_key,
    _judge_document,
    parse_event,
    validate_document,
)
from tests.builders import MISSING, event_bytes, event_doc

NOW = datetime(2026, 10, 2, tzinfo=UTC)
LIMITS = EventLimits()
# "2026" in full-width digits: ``\d`` matches them, datetime.fromisoformat does not.
WIDE_YEAR = "\uff12\uff10\uff12\uff16"


# --- the Unicode facts the shortcuts rest on ------------------------------------------------


@pytest.fixture(scope="module")
def printable_characters() -> list[str]:
    return [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isprintable()]


def test_no_printable_character_is_forbidden_in_an_id(printable_characters: list[str]) -> None:
    assert [c for c in printable_characters if _ID_FORBIDDEN.search(c)] == []


def test_the_only_printable_white_space_is_the_space(printable_characters: list[str]) -> None:
    # So a printable user id without " " or "@" is one _USER_RE accepts.
    refused = [c for c in printable_characters if c not in " @" and not _USER_RE.fullmatch(c)]
    assert refused == []


# --- the fast path answers the common shapes, as the reference would ------------------------

COMMON = [
    pytest.param(event_doc(), id="all-fields"),
    pytest.param(event_doc(user_id=None), id="null-user"),
    pytest.param(event_doc(user_id=MISSING, attributes=MISSING), id="no-optionals"),
    pytest.param(event_doc(event_time="2026-10-01T12:00:00.123-05:00"), id="offset"),
    pytest.param(event_doc(event_time="2026-10-01T12:00:00.123456789+05:30"), id="nanoseconds"),
    pytest.param(event_doc(attributes={"a": {"b": {"c": [1, "x", None]}}}), id="nested-4"),
    pytest.param(event_doc(attributes={"amount": 1.5, "ok": True, "note": None}), id="scalars"),
    pytest.param(
        event_doc(event_type="account.consent_changed", attributes={"contact_allowed": False}),
        id="consent",
    ),
    pytest.param(
        event_doc(account_id="Ünïcode 株式会社 ✓", event_id="évt-1", user_id="ü-1"),
        id="unicode-ids",
    ),
    pytest.param(event_doc(trace_id="t-1"), id="an-unknown-field"),
    pytest.param(
        event_doc(user_id=MISSING, attributes=MISSING, context={"a": [{"b": 1}]}, n=None),
        id="unknown-fields-no-optionals",
    ),
    pytest.param(event_doc(**{f"x{n}": n for n in range(55)}), id="64-fields"),
]


@pytest.mark.parametrize("doc", COMMON)
def test_common_documents_take_the_fast_path(doc: dict[str, Any]) -> None:
    fast = _accept_plainly_valid(doc, NOW, LIMITS, 3, 9, 1.5, True)
    reference = _judge_document(doc, NOW, LIMITS, 3, 9, 1.5, True)
    assert isinstance(fast, Event)
    assert fast == reference
    assert repr(fast) == repr(reference)  # == on datetimes ignores the zone; repr does not
    assert fast.event_time.tzinfo is UTC
    assert fast.attributes is doc.get("attributes", fast.attributes)  # the document's own
    assert fast.unknown_fields == tuple(
        name for name in doc if name not in {*event_doc(), "user_id", "attributes"}
    )


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        pytest.param({"account_id": "acct\u00a01"}, None, id="non-breaking-space-is-valid"),
        pytest.param({"user_id": "u\u3000"}, "user_id must be", id="ideographic-space-user"),
        pytest.param({"schema_version": 1.0}, None, id="version-one-point-zero-is-valid"),
        pytest.param({"tenant_id": "ac me"}, "tenant_id must be", id="bad-tenant"),
        pytest.param(
            {"tenant_id": "ac me", "event_time": "2026-02-30T12:00:00Z"}, "tenant_id must be",
            id="bad-tenant-before-bad-time",
        ),
    ],
)
def test_what_the_fast_path_leaves_is_judged_by_the_reference(
    overrides: dict[str, Any], detail: str | None
) -> None:
    doc = event_doc(**overrides)
    assert _accept_plainly_valid(doc, NOW, LIMITS, -1, -1, 0.0, True) is None
    result = validate_document(doc, NOW, LIMITS)
    if detail is None:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, Rejection) and result.detail.startswith(detail)


@pytest.mark.parametrize(
    ("event_time", "reason", "detail"),
    [
        pytest.param("2026-10-01", RejectReason.BAD_TIME, "event_time is not", id="date-only"),
        pytest.param(
            f"{WIDE_YEAR}-10-01T12:00:00Z", RejectReason.BAD_TIME, "event_time: Invalid",
            id="wide-digits",
        ),
        pytest.param("2026-02-30T12:00:00Z", RejectReason.BAD_TIME, "event_time: day", id="feb-30"),
        pytest.param("1999-12-31T23:59:59Z", RejectReason.BAD_TIME, "event_time 1999", id="early"),
        pytest.param(
            "2026-10-02T01:00:01Z", RejectReason.FUTURE_TIME, "event_time 2026", id="future"
        ),
        pytest.param(1700000000, RejectReason.SCHEMA, "event_time must be", id="number"),
    ],
)
def test_a_refused_time_is_answered_by_the_fast_path_as_by_the_reference(
    event_time: Any, reason: RejectReason, detail: str
) -> None:
    doc = event_doc(event_time=event_time)
    fast = _accept_plainly_valid(doc, NOW, LIMITS, -1, -1, 0.0, True)
    assert isinstance(fast, Rejection)
    assert fast.reason is reason and fast.detail.startswith(detail)
    assert fast == _judge_document(doc, NOW, LIMITS, -1, -1, 0.0, True)


# --- generated documents: the same verdict either way ---------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([1.0, 1.5, -0.0, 1e308])
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
ODD_CHARACTERS = "a@ \t\n\x00\x1f\x7f\x85\u00a0\u00ad\u200b\u2028\u202e\u3000\ufeffé株.-_:Z"
ODD_TEXT = st.text(alphabet=ODD_CHARACTERS, max_size=6).map(lambda s: "acct" + s)
TIMES = st.sampled_from(
    [
        "2026-10-01T12:00:00Z",
        "2026-10-01T12:00:00.5+05:30",
        "2026-10-01T12:00:00-00:00",
        "2026-10-01T12:00:00.1234567891Z",
        "2026-10-01 12:00:00Z",
        "2026-10-01t12:00:00z",
        "2026-W40-4T12:00:00Z",
        "20261001T120000Z",
        "2026-10-01T12:00Z",
        "2026-10-01T24:00:00Z",
        "2026-02-30T12:00:00Z",
        "2026-10-01T12:00:00+24:00",
        "2026-10-01T12:00:00+05:75",
        "2026-10-01T12:00:00+0530",
        "2026-10-02T01:00:00Z",
        "2026-10-02T01:00:01Z",
        "1999-12-31T23:59:59Z",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        f"{WIDE_YEAR}-10-01T12:00:00Z",
        "2026-10-01T12:00:00Z\n",
    ]
) | st.datetimes(timezones=st.timezones() | st.just(UTC)).map(datetime.isoformat)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": ODD_TEXT | JSON,
    "tenant_id": st.sampled_from(["acme", "a" * 64, "a" * 65, "ac me", "", "acme\n"]) | JSON,
    "account_id": ODD_TEXT | st.sampled_from(["", "a" * 128, "a" * 129]) | JSON,
    "user_id": ODD_TEXT | st.sampled_from(["u@x", "u x", "a" * 129]) | JSON,
    "event_type": st.sampled_from(
        ["app.login", "App.Login", "login", "account.consent_changed", "a." + "b" * 127]
    )
    | JSON,
    "event_time": TIMES | JSON,
    "source": ODD_TEXT | JSON,
    "schema_version": st.sampled_from([1, 1.0, True, "1", 2, 0.5]) | JSON,
    "attributes": st.sampled_from(
        [{}, {"contact_allowed": True}, {"contact_allowed": 0}, {"a": "\x00"}, {"a\x00": 1}]
    )
    | JSON,
    # unknown top-level fields: ignored within bounds (depth, NUL, 64 fields, one name
    # reserved)
    "extra": JSON,
    "deep_extra": st.sampled_from([{"a": [{"b": [1]}]}, {"a": [{"b": [{}]}]}, [[[[[1]]]]]]),
    "churnwatch_control": JSON,
    "ext\x00": SCALARS,
}
CHANGES = st.lists(st.sampled_from(sorted(FIELD_VALUES)), unique=True, max_size=3).flatmap(
    lambda fields: st.fixed_dictionaries({field: FIELD_VALUES[field] for field in fields})
)
REMOVALS = st.lists(st.sampled_from(sorted(FIELD_VALUES)), unique=True, max_size=2)
MANY_FIELDS = st.sampled_from([0, 0, 0, 0, 53, 54, 55, 56]).map(
    lambda n: {f"x{i}": i for i in range(n)}
)
DOCUMENTS = st.builds(
    lambda changes, removed, many: event_doc(
        **{**changes, **dict.fromkeys(removed, MISSING), **many}
    ),
    CHANGES,
    REMOVALS,
    MANY_FIELDS,
)
CLOCKS = st.sampled_from([None, NOW, datetime(2026, 10, 1, 11, tzinfo=UTC)])
LIMIT_SETS = st.sampled_from(
    [LIMITS, EventLimits(max_event_age=timedelta(days=1)), EventLimits(max_future_skew=timedelta())]
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS, CLOCKS, LIMIT_SETS, st.booleans())
def test_the_fast_path_never_changes_a_verdict(
    doc: dict[str, Any], now: datetime | None, limits: EventLimits, may_hold_nul: bool
) -> None:
    doc = orjson.loads(orjson.dumps(doc))  # as parse_event sees it
    reference = _judge_document(doc, now, limits, 2, 5, 0.5, True)
    fast = _accept_plainly_valid(doc, now, limits, 2, 5, 0.5, may_hold_nul or _nul_in(doc))
    assert fast is None or repr(fast) == repr(reference)
    assert repr(validate_document(doc, now, limits, partition=2, offset=5, ingested_at=0.5)) == (
        repr(reference)
    )


def _nul_in(doc: dict[str, Any]) -> bool:
    return b"\\u0000" in orjson.dumps(doc)


# --- the memory of accepted values --------------------------------------------------------


def test_accepted_strings_remember_only_what_passes() -> None:
    checked: list[str] = []

    def check(value: str) -> bool:
        checked.append(value)
        return value.islower()

    values = _AcceptedStrings(check, max_size=10)
    assert values.accepts("acme") and values.accepts("acme")
    assert not values.accepts("ACME") and not values.accepts("ACME")
    assert checked == ["acme", "ACME", "ACME"]  # the accepted one was checked once
    assert len(values) == 1


def test_accepted_strings_are_bounded() -> None:
    values = _AcceptedStrings(str.islower, max_size=3)
    for name in ["a", "b", "c", "d", "e"]:
        assert values.accepts(name)
        assert len(values) <= 3
    assert values.accepts("a") and not values.accepts("A")  # after forgetting, still right


# --- the duplicate-key check: its cheap ways agree with the exact one ------------------------


def _exact_duplicate(raw: bytes) -> str | None:
    found: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        found.extend(key for i, key in enumerate(keys) if key in keys[:i])
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return found[0] if found else None


WRITERS = {
    "orjson": orjson.dumps,
    "json-default": lambda doc: json.dumps(doc).encode(),
    "json-compact": lambda doc: json.dumps(doc, separators=(",", ":")).encode(),
    "json-unicode": lambda doc: json.dumps(doc, ensure_ascii=False).encode(),
    "json-indented": lambda doc: json.dumps(doc, indent=2).encode(),
    "space-before-colon": lambda doc: json.dumps(doc, separators=(",", " :")).encode(),
}


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(WRITERS)),
    st.dictionaries(st.text(max_size=4), JSON, max_size=4),
    st.sampled_from([None, "tenant_id", "attributes"]),
)
def test_duplicate_key_agrees_with_the_exact_check(
    writer: str, attributes: dict[str, Any], repeated: str | None
) -> None:
    raw = WRITERS[writer](event_doc(attributes=attributes))
    if repeated is not None:  # the same key once more, first, written the same way
        first = WRITERS[writer]({repeated: {":": ":"}})
        raw = first[: first.rindex(b"}")].rstrip() + b"," + raw[1:]
    assert _duplicate_key(raw, orjson.loads(raw)) == _exact_duplicate(raw)


@pytest.mark.parametrize(
    "raw",
    [
        # The '":' count matches the keys parsed (two keys spaced before their colon,
        # a value starting with one): only the white-space rule sends it further.
        pytest.param(
            b'{"tenant_id" :"evil",'
            + event_bytes(source=":web")[1:].replace(b'"event_id":', b'"event_id" :'),
            id="spaced-and-colon",
        ),
        pytest.param(
            json.dumps(event_doc(), indent=2)
            .replace('"tenant_id": "acme",', '"tenant_id": "acme",\n  "tenant_id": "evil",')
            .encode(),
            id="indented",
        ),
    ],
)
def test_duplicates_the_counts_cannot_see_are_refused(raw: bytes) -> None:
    result = parse_event(raw, NOW, LIMITS)
    assert isinstance(result, Rejection) and result.reason is RejectReason.SCHEMA
    assert result.detail == "duplicate key 'tenant_id'"
