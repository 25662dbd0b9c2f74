"""Opaque paging cursors: where the last page ended, for the same query only.

A list answers ``next_cursor`` when more rows follow; the client passes it back as
``cursor`` to get the rows after that point (keyset paging: stable while rows are
added, no row seen twice or skipped). The cursor is URL-safe base64 of a small JSON
document: the list it belongs to, a digest of the query's filters and sort, and
the sort key of the last row. A cursor of another list, another filter or another
sort, or one that is not ours, is refused (400, field ``cursor``) rather than
silently answering something else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from api.errors import BadRequest

_VERSION = 1


def query_digest(kind: str, query: Mapping[str, object]) -> str:
    """A short digest of a list's name and its filters and sort (not the cursor, limit)."""
    canonical = orjson.dumps(
        {"kind": kind, **{k: v for k, v in query.items() if v is not None}},
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode_cursor(kind: str, query: Mapping[str, object], after: Sequence[Any]) -> str:
    """The cursor that continues list ``kind`` under ``query`` after the sort key ``after``
    (JSON values: numbers, strings, null)."""
    document = {"v": _VERSION, "q": query_digest(kind, query), "a": list(after)}
    return base64.urlsafe_b64encode(orjson.dumps(document)).decode().rstrip("=")


def decode_cursor(
    cursor: str | None, kind: str, query: Mapping[str, object], width: int
) -> list[Any] | None:
    """The sort key a cursor continues after (``width`` values), or None for the first
    page; raises :class:`BadRequest` (field ``cursor``) for one that is not ours or was
    made for another list, filter or sort."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise BadRequest("not a cursor this API made", "cursor") from None
    if (
        not isinstance(document, dict)
        or document.get("v") != _VERSION
        or not isinstance(document.get("a"), list)
        or len(document["a"]) != width
    ):
        raise BadRequest("not a cursor this API made", "cursor")
    if document.get("q") != query_digest(kind, query):
        raise BadRequest(
            "this cursor belongs to another list, filter or sort: repeat the query that"
            " gave it", "cursor",
        )
    return list(document["a"])
