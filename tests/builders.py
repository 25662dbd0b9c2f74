"""Test builders: ``make_event(**overrides)`` with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.event import Event

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def event_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": "evt-1",
        "tenant_id": "acme",
        "account_id": "acct-1",
        "user_id": "u-1",
        "event_type": "app.login",
        "event_time": "2026-10-01T12:00:00Z",
        "source": "web-app",
        "schema_version": 1,
        "attributes": {},
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not _MISSING}


def event_bytes(**overrides: Any) -> bytes:
    return orjson.dumps(event_doc(**overrides))


def make_event(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "event_id": "evt-1",
        "tenant_id": "acme",
        "account_id": "acct-1",
        "user_id": "u-1",
        "event_type": "app.login",
        "event_time": T0,
        "source": "web-app",
        "attributes": {},
    }
    fields.update(overrides)
    return Event(**fields)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()
MISSING: Any = _MISSING
