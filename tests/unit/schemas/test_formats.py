"""schemas.formats: the mapping file, Segment and CloudEvents messages as churnwatch events,
and every way a foreign message falls short, each with a reason naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from schemas.event import Event, EventLimits, Rejection, RejectReason
from schemas.formats import Decoder, InputFormat, MappingError, load_mapping
from schemas.formats.mapping import TRAITS_CHANGED, parse_mapping, snake_case

NOW = datetime(2026, 11, 29, tzinfo=UTC)
MAPPING = load_mapping()


def decode(value: bytes | None, headers: Any = None,
           input_format: InputFormat = InputFormat.AUTO) -> Event | Rejection:
    return Decoder(input_format, MAPPING, EventLimits()).decode(value, headers, NOW)


def segment(**fields: Any) -> bytes:
    document: dict[str, Any] = {
        "type": "track", "event": "Payment Failed", "messageId": "m-1", "userId": "u-1",
        "timestamp": "2026-11-28T10:00:00.000Z", "context": {"groupId": "acct-1"},
        "properties": {"amount": 49},
    }
    document.update(fields)
    return orjson.dumps({k: v for k, v in document.items() if v is not None})


def cloudevent(**fields: Any) -> bytes:
    document: dict[str, Any] = {
        "specversion": "1.0", "id": "c-1", "source": "/billing", "type": "Payment Failed",
        "time": "2026-11-28T10:00:00Z", "accountid": "acct-1", "data": {"amount": 3},
    }
    document.update(fields)
    return orjson.dumps({k: v for k, v in document.items() if v is not None})


def test_a_segment_track_call_is_an_event() -> None:
    event = decode(segment())
    assert isinstance(event, Event)
    assert (event.event_id, event.tenant_id, event.account_id, event.user_id) == (
        "m-1", "default", "acct-1", "u-1")
    assert event.event_type == "billing.payment_failed"
    assert event.attributes == {"amount": 49}
    assert event.event_time == datetime(2026, 11, 28, 10, tzinfo=UTC)


@pytest.mark.parametrize("call", ["identify", "group"])
def test_identify_and_group_traits_become_traits_changed(call: str) -> None:
    event = decode(segment(type=call, event=None, groupId="acct-7", context={},
                           traits={"plan": "pro", "mrr": 490, "renewal_date": "2027-01-31"}))
    assert isinstance(event, Event)
    assert event.event_type == TRAITS_CHANGED and event.account_id == "acct-7"
    assert event.attributes == {"plan": "pro", "mrr": 490, "renewal_date": "2027-01-31"}


def test_page_and_screen_calls_and_the_default_name_rule() -> None:
    page = decode(segment(type="page", event=None, name="Pricing"))
    assert isinstance(page, Event) and page.event_type == "app.page_viewed"
    other = decode(segment(event="Order Completed"))
    assert isinstance(other, Event) and other.event_type == "app.order_completed"


@pytest.mark.parametrize("headers", [
    pytest.param(None, id="structured"),
    pytest.param([("content-type", b"application/cloudevents+json")], id="structured-header"),
])
def test_a_structured_cloudevent_is_an_event(headers: Any) -> None:
    event = decode(cloudevent(), headers, InputFormat.CLOUDEVENTS)
    assert isinstance(event, Event)
    assert (event.event_id, event.account_id, event.source) == ("c-1", "acct-1", "/billing")
    assert event.event_type == "billing.payment_failed" and event.attributes == {"amount": 3}


def test_a_binary_cloudevent_is_read_from_its_headers() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"c-2"), ("ce_source", b"/app"),
               ("ce_type", b"com.acme.Seat.Added"), ("ce_time", b"2026-11-28T10:00:00+01:00"),
               ("ce_accountid", b"acct-3"), ("content-type", b"application/json")]
    event = decode(b'{"seats": 2}', headers)
    assert isinstance(event, Event)
    assert event.event_type == "app.com.acme.seat.added"
    assert event.event_time == datetime(2026, 11, 28, 9, tzinfo=UTC)
    assert event.attributes == {"seats": 2}


@pytest.mark.parametrize(("value", "reason", "names"), [
    pytest.param(segment(context={}), RejectReason.UNMAPPED, "context.groupId", id="no-account"),
    pytest.param(segment(messageId=None), RejectReason.UNMAPPED, "messageId", id="no-id"),
    pytest.param(segment(timestamp=None), RejectReason.UNMAPPED, "timestamp", id="no-time"),
    pytest.param(segment(event=None), RejectReason.UNMAPPED, "event", id="no-name"),
    pytest.param(segment(type="alias"), RejectReason.UNMAPPED, "alias", id="alias"),
    pytest.param(segment(event="!!!"), RejectReason.UNMAPPED, "'!!!'", id="unmappable-name"),
    pytest.param(segment(timestamp="yesterday"), RejectReason.BAD_TIME, "event_time",
                 id="bad-time"),
    pytest.param(segment(userId="a\nb"), RejectReason.SCHEMA, "user_id", id="bad-user"),
    pytest.param(cloudevent(time=None), RejectReason.UNMAPPED, "time", id="ce-no-time"),
    pytest.param(cloudevent(accountid=None, data={}), RejectReason.UNMAPPED, "accountid",
                 id="ce-no-account"),
    pytest.param(cloudevent(id=None), RejectReason.UNMAPPED, "id is missing", id="ce-no-id"),
    pytest.param(b'{"specversion": "1.0", "id": 1, "time": "2026-11-28T10:00:00Z",'
                 b' "source": "x", "type": "a.b"}', RejectReason.SCHEMA, "CloudEvent",
                 id="ce-junk"),
    pytest.param(b'{"messageId": "m", "type": "track", "type": "x"}', RejectReason.SCHEMA,
                 "duplicate key", id="duplicate-key"),
])
def test_every_shortfall_is_rejected_with_a_reason_that_names_it(
    value: bytes, reason: RejectReason, names: str
) -> None:
    input_format = InputFormat.CLOUDEVENTS if b"specversion" in value else InputFormat.SEGMENT
    rejection = decode(value, None, input_format)
    assert isinstance(rejection, Rejection), rejection
    assert rejection.reason is reason
    assert names in rejection.detail


def test_junk_never_raises() -> None:
    for value in (None, b"", b"\x00\x01", b"[1,2]", b'"text"', b'{"type": "track", "messageId"',
                  b'{"specversion": 1}', segment(properties=[1, 2]), segment(context="x")):
        for input_format in InputFormat:
            result = decode(value, None, input_format)
            assert isinstance(result, Event | Rejection)
            assert not (isinstance(result, Rejection)
                        and result.reason is RejectReason.PROCESSING_ERROR), (value, result)


def test_auto_judges_a_native_event_as_native() -> None:
    native = orjson.dumps({
        "schema_version": 1, "event_id": "n-1", "tenant_id": "acme", "account_id": "a",
        "event_type": "app.login", "event_time": "2026-11-28T10:00:00Z", "source": "web",
        "attributes": {},
    })
    event = decode(native)
    assert isinstance(event, Event) and event.tenant_id == "acme"


def test_snake_case() -> None:
    assert snake_case("Order Completed") == "order_completed"
    assert snake_case("orderCompleted") == "order_completed"
    assert snake_case("order-completed!") == "order_completed"
    assert snake_case("com.acme.Order.Paid") == "com.acme.order.paid"
    assert snake_case("!!!") == ""


@pytest.mark.parametrize(("document", "key"), [
    pytest.param({"account": ["a"]}, "tenant", id="no-tenant"),
    pytest.param({"tenant": {"value": "t"}}, "account", id="no-account"),
    pytest.param({"tenant": {"value": "t"}, "account": "a", "extra": 1}, "extra", id="unknown"),
    pytest.param({"tenant": {"value": "t"}, "account": "a",
                  "event_types": {"rename": {"X": "Not A Type"}}}, "event_types.rename.X",
                 id="bad-type"),
    pytest.param({"tenant": {"value": "t"}, "account": "a",
                  "event_types": {"default": "app.fixed"}}, "event_types.default",
                 id="template-without-name"),
    pytest.param({"tenant": {"nope": "t"}, "account": "a"}, "tenant", id="bad-place"),
])
def test_a_bad_mapping_names_its_key(document: dict[str, Any], key: str) -> None:
    with pytest.raises(MappingError) as info:
        parse_mapping(document, "m.yaml")
    assert info.value.key == key and str(info.value).startswith("m.yaml: ")


def test_an_unmapped_name_is_refused_when_there_is_no_default() -> None:
    mapping = parse_mapping({"tenant": {"value": "t"}, "account": ["context.groupId"],
                             "event_types": {"rename": {"Payment Failed":
                                                        "billing.payment_failed"},
                                             "default": None}})
    decoder = Decoder(InputFormat.SEGMENT, mapping, EventLimits())
    assert isinstance(decoder.decode(segment(), None, NOW), Event)
    refused = decoder.decode(segment(event="Order Completed"), None, NOW)
    assert isinstance(refused, Rejection) and refused.reason is RejectReason.UNMAPPED
    assert "Order Completed" in refused.detail


def test_tenant_from_a_header() -> None:
    mapping = parse_mapping({"tenant": "header:tenant", "account": ["context.groupId"]})
    decoder = Decoder(InputFormat.SEGMENT, mapping, EventLimits())
    event = decoder.decode(segment(), [("tenant", b"globex")], NOW)
    assert isinstance(event, Event) and event.tenant_id == "globex"
    missing = decoder.decode(segment(), [], NOW)
    assert isinstance(missing, Rejection) and "header tenant" in missing.detail
