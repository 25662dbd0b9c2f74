"""Event envelope v1: the ingest contract, and its fast runtime validator.

``event.v1.schema.json`` beside this module is the published form of the same
contract; ``tests/unit/schemas`` checks that both judge a corpus of examples
alike. Two checks only the runtime can make: the message size and how far
``event_time`` lies in the future (both depend on settings and the clock).

Parsing never raises on bad input: it returns a :class:`Rejection` with a
reason from the closed set :class:`RejectReason`, which the dataflow sends to
the dead-letter topic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

SCHEMA_VERSION = 1
MAX_ATTRIBUTE_DEPTH = 4

_TENANT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_USER_RE = re.compile(r"[^@\s]{1,128}")
_EVENT_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
# RFC 3339 date-time with a mandatory offset; the calendar is checked by parsing.
_TIME_RE = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)
_REQUIRED = (
    "event_id",
    "tenant_id",
    "account_id",
    "event_type",
    "event_time",
    "source",
    "schema_version",
)
_ALLOWED = frozenset((*_REQUIRED, "user_id", "attributes"))


class RejectReason(StrEnum):
    """Why a message was sent to the dead-letter topic (a closed set)."""

    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    SCHEMA = "schema"
    BAD_TIME = "bad_time"
    FUTURE_TIME = "future_time"
    UNSUPPORTED_VERSION = "unsupported_version"
    CONSUMER_ERROR = "consumer_error"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that is not a valid event v1, and why."""

    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class EventLimits:
    """The settings the validator needs."""

    max_message_bytes: int = 64 * 1024
    max_future_skew: timedelta = timedelta(hours=1)


class Event(NamedTuple):
    """A validated event v1. ``event_time`` is timezone-aware UTC.

    A NamedTuple rather than a frozen dataclass: one is built per message, and
    a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field)
    cost 1.3 us against 0.4 us, with the same immutability and typed fields.
    """

    event_id: str
    tenant_id: str
    account_id: str
    user_id: str | None
    event_type: str
    event_time: datetime
    source: str
    attributes: Mapping[str, Any]
    # Where it was read from (-1 when not from Kafka): for logs and watermarks.
    partition: int = -1
    offset: int = -1
    # When the broker took it (epoch s; 0.0 unknown): latency is measured from here.
    ingested_at: float = 0.0

    @property
    def subject(self) -> str:
        """The scoring subject and state key: ``<tenant_id>:<account_id>``."""
        return subject_key(self.tenant_id, self.account_id)

    def to_document(self) -> dict[str, Any]:
        """The event v1 JSON document (event_time normalised to UTC)."""
        return {
            "event_id": self.event_id,
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "user_id": self.user_id,
            "event_type": self.event_type,
            "event_time": format_time(self.event_time),
            "source": self.source,
            "schema_version": SCHEMA_VERSION,
            "attributes": dict(self.attributes),
        }


# The one event type whose attributes the envelope checks (see the schema's allOf).
CONSENT_EVENT_TYPE = "account.consent_changed"


def subject_key(tenant_id: str, account_id: str) -> str:
    """The key of one account's state, messages and Redis hash."""
    return f"{tenant_id}:{account_id}"


def parse_event(
    raw: bytes | None,
    now: datetime,
    limits: EventLimits,
    *,
    partition: int | None = -1,
    offset: int | None = -1,
    ingested_at: float = 0.0,
) -> Event | Rejection:
    """Decode and validate one message; never raises on bad input."""
    if raw is None:
        return Rejection(RejectReason.NOT_JSON, "message has no value")
    if len(raw) > limits.max_message_bytes:
        return Rejection(
            RejectReason.TOO_LARGE,
            f"{len(raw)} bytes exceeds the limit of {limits.max_message_bytes}",
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(RejectReason.NOT_JSON, str(exc)[:200])
    return validate_document(
        doc, now, limits, partition=partition, offset=offset, ingested_at=ingested_at
    )


def validate_document(
    doc: object,
    now: datetime | None,
    limits: EventLimits,
    *,
    partition: int | None = -1,
    offset: int | None = -1,
    ingested_at: float = 0.0,
) -> Event | Rejection:
    """Validate a decoded JSON value as event v1.

    ``now=None`` skips the future-time check (the part the JSON Schema cannot
    express), so tests can compare this function with the schema file.
    """
    if not isinstance(doc, dict):
        return _schema(f"event must be a JSON object, got {type(doc).__name__}")
    missing = [name for name in _REQUIRED if name not in doc]
    if missing:
        return _schema(f"missing field(s): {', '.join(missing)}")
    extra = doc.keys() - _ALLOWED
    if extra:
        return _schema(f"unknown field(s): {', '.join(sorted(extra))}")

    version = doc["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int | float):
        return _schema("schema_version must be an integer")
    if version != SCHEMA_VERSION:
        return Rejection(RejectReason.UNSUPPORTED_VERSION, f"schema_version {version} is not 1")

    event_id = doc["event_id"]
    if not _is_text(event_id, 128):
        return _schema("event_id must be a string of 1-128 characters")
    tenant_id = doc["tenant_id"]
    if not (isinstance(tenant_id, str) and _TENANT_RE.fullmatch(tenant_id)):
        return _schema("tenant_id must be 1-64 characters of [A-Za-z0-9_.-]")
    account_id = doc["account_id"]
    if not _is_text(account_id, 128):
        return _schema("account_id must be a string of 1-128 characters")
    user_id = doc.get("user_id")
    if user_id is not None and not (isinstance(user_id, str) and _USER_RE.fullmatch(user_id)):
        return _schema("user_id must be null or an opaque id (1-128 chars, no '@' or spaces)")
    event_type = doc["event_type"]
    if not (
        isinstance(event_type, str)
        and len(event_type) <= 128
        and _EVENT_TYPE_RE.fullmatch(event_type)
    ):
        return _schema("event_type must be namespaced lowercase, such as 'app.login'")
    source = doc["source"]
    if not _is_text(source, 128):
        return _schema("source must be a string of 1-128 characters")
    attributes = doc.get("attributes", {})
    if not isinstance(attributes, dict):
        return _schema("attributes must be a JSON object")
    if _depth(attributes) > MAX_ATTRIBUTE_DEPTH:
        return _schema(f"attributes nest deeper than {MAX_ATTRIBUTE_DEPTH} levels")
    if event_type == CONSENT_EVENT_TYPE and not isinstance(
        attributes.get("contact_allowed"), bool
    ):
        # A consent change misread is a customer contacted against their wish.
        return _schema(f"{CONSENT_EVENT_TYPE} needs a boolean attributes.contact_allowed")

    raw_time = doc["event_time"]
    if not isinstance(raw_time, str):
        return _schema("event_time must be an RFC 3339 string")
    if not _TIME_RE.fullmatch(raw_time):
        return Rejection(RejectReason.BAD_TIME, "event_time is not RFC 3339 with an offset")
    try:
        event_time = datetime.fromisoformat(raw_time).astimezone(UTC)
    except ValueError as exc:
        return Rejection(RejectReason.BAD_TIME, f"event_time: {exc}")
    if now is not None and event_time > now + limits.max_future_skew:
        # No "how far ahead" in the detail: it would differ between two replays.
        return Rejection(
            RejectReason.FUTURE_TIME,
            f"event_time {raw_time} is more than {limits.max_future_skew} ahead of the clock",
        )

    return Event(
        event_id=event_id,
        tenant_id=tenant_id,
        account_id=account_id,
        user_id=user_id,
        event_type=event_type,
        event_time=event_time,
        source=source,
        attributes=attributes,
        partition=-1 if partition is None else partition,
        offset=-1 if offset is None else offset,
        ingested_at=ingested_at,
    )


def _schema(detail: str) -> Rejection:
    return Rejection(RejectReason.SCHEMA, detail)


def _is_text(value: object, max_len: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_len


def _depth(value: object) -> int:
    """Nesting depth of containers: ``{}`` is 1, ``{"a": [1]}`` is 2."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as every churnwatch output writes time."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
