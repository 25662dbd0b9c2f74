"""Paging cursors: opaque, round-tripping the sort key, refused for another query."""

from __future__ import annotations

import base64

import orjson
import pytest

from api.cursor import decode_cursor, encode_cursor
from api.errors import BadRequest

QUERY = {"tier": "high", "owner": None, "sort": "risk"}


@pytest.mark.parametrize(
    "after",
    [
        pytest.param([0.7312345678901234, "acct-00012"], id="float-exact"),
        pytest.param(["2026-09-01T10:00:00.123456+00:00", "0b9c8c1e-1f5e-5a8e-9a7e-3c1f"],
                     id="time"),
        pytest.param(["2026-09-01T10:00:00+00:00", "score", "x"], id="three"),
        pytest.param([1, "a/b+c=d é"], id="unicode"),
    ],
)
def test_a_cursor_round_trips_its_sort_key(after: list[object]) -> None:
    cursor = encode_cursor("accounts", QUERY, after)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor  # URL-safe
    assert decode_cursor(cursor, "accounts", QUERY, len(after)) == after


def test_no_cursor_is_the_first_page() -> None:
    assert decode_cursor(None, "accounts", QUERY, 2) is None
    assert decode_cursor("", "accounts", QUERY, 2) is None


def test_unset_filters_do_not_change_the_cursor() -> None:
    with_none = encode_cursor("accounts", {"tier": None, "sort": "risk"}, [1.0, "a"])
    without = encode_cursor("accounts", {"sort": "risk"}, [1.0, "a"])
    assert with_none == without


@pytest.mark.parametrize(
    ("kind", "query"),
    [
        pytest.param("alerts", QUERY, id="another-list"),
        pytest.param("accounts", {**QUERY, "tier": "low"}, id="another-filter"),
        pytest.param("accounts", {**QUERY, "sort": "score_time"}, id="another-sort"),
    ],
)
def test_a_cursor_of_another_query_is_refused(kind: str, query: dict[str, object]) -> None:
    cursor = encode_cursor("accounts", QUERY, [0.5, "a"])
    with pytest.raises(BadRequest) as refused:
        decode_cursor(cursor, kind, query, 2)
    assert refused.value.field == "cursor" and refused.value.status == 400


def _forged(document: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(document)).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not base64!", id="not-base64"),
        pytest.param("bm90IGpzb24", id="not-json"),
        pytest.param(_forged([1, 2]), id="not-an-object"),
        pytest.param(_forged({"v": 2, "q": "x", "a": [1, "a"]}), id="other-version"),
        pytest.param(_forged({"v": 1, "q": "x", "a": [1]}), id="wrong-width"),
        pytest.param(_forged({"v": 1, "q": "x", "a": "1"}), id="key-not-a-list"),
    ],
)
def test_anything_else_is_not_a_cursor(cursor: str) -> None:
    with pytest.raises(BadRequest) as refused:
        decode_cursor(cursor, "accounts", QUERY, 2)
    assert refused.value.field == "cursor"
