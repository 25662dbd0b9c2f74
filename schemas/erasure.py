"""Per-subject erasure: the request, its control message, and the digests kept of it.

``churnwatch erase`` removes an account (or one user of an account) from
PostgreSQL and Redis at once, and sends an :class:`Erasure` through the
dataflow as a control message on the events topic, one copy per partition,
so that every input partition learns it in its own order. Reading it, the
stream drops the subject's state (so no later snapshot holds it), removes
what it wrote meanwhile, and refuses (or keeps, per setting) the subject's
later events.

What the stream keeps of an erasure is a SHA-256 digest of the subject
(:func:`subject_digest`), never the ids themselves: that is how it recognises
the subject's later events after a restart.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from schemas.event import EventLimits, Rejection, parse_event

# The top-level field that makes a message on the events topic a control message.
CONTROL_FIELD = "churnwatch_control"
# What a message's bytes hold if it may be one (a bytes test before any parse).
CONTROL_NEEDLE = f'"{CONTROL_FIELD}"'.encode()
ERASE = "erase"


class ErasedEvents(StrEnum):
    """What becomes of an erased subject's events that arrive after its erasure."""

    # Dead-lettered as ``erased_subject``, without the original (it would be a trace).
    REFUSE = "refuse"
    # Processed as a new subject's: its state starts afresh.
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Erasure:
    """One erasure request: an account, or one user of it (``user_id``)."""

    erasure_id: str
    tenant_id: str
    account_id: str
    user_id: str | None
    requested_at: datetime

    @property
    def subject(self) -> str:
        """``tenant:account``, the key of the account's state (see ``schemas.event``)."""
        return f"{self.tenant_id}:{self.account_id}"

    @property
    def digest(self) -> str:
        """What is kept of the erased subject: see :func:`subject_digest`."""
        return subject_digest(self.tenant_id, self.account_id, self.user_id)

    @property
    def tombstone(self) -> str:
        """What replaces an erased id where a count must be kept (a user among an
        account's distinct users, an account in the contact ledger)."""
        return f"erased:{self.erasure_id}"

    def to_control_message(self) -> bytes:
        document: dict[str, Any] = {
            CONTROL_FIELD: ERASE,
            "erasure_id": self.erasure_id,
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "user_id": self.user_id,
            "requested_at": self.requested_at.astimezone(UTC).isoformat(),
        }
        return orjson.dumps(document)


def new_erasure(
    tenant_id: str, account_id: str, user_id: str | None = None, *, now: datetime | None = None
) -> Erasure:
    return Erasure(
        str(uuid.uuid4()), tenant_id, account_id, user_id, now or datetime.now(UTC)
    )


def id_problem(tenant_id: str, account_id: str, user_id: str | None = None) -> str | None:
    """Why these ids could not be an event's (and so name no subject), or None: judged
    by the event validator itself, on an event that carries them."""
    now = datetime.now(UTC)
    document = {
        "schema_version": 1,
        "event_id": "erase-check",
        "tenant_id": tenant_id,
        "account_id": account_id,
        "user_id": user_id,
        "event_type": "churnwatch.erase_check",
        "event_time": now.isoformat(),
        "source": "churnwatch",
        "attributes": {},
    }
    judged = parse_event(orjson.dumps(document), now, EventLimits())
    return judged.detail if isinstance(judged, Rejection) else None


def subject_digest(tenant_id: str, account_id: str, user_id: str | None = None) -> str:
    """SHA-256 (hex) of the subject's ids, NUL-separated: the same ids always give the
    same digest, and the digest does not give the ids back."""
    parts = [tenant_id, account_id] if user_id is None else [tenant_id, account_id, user_id]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def parse_control(value: bytes) -> Erasure | None:
    """The erasure a control message carries; None if ``value`` is not one (it is then
    judged as an event, and dead-lettered if it is not one either)."""
    if CONTROL_FIELD.encode() not in value:
        return None
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or document.get(CONTROL_FIELD) != ERASE:
        return None
    ids = [document.get(name) for name in ("erasure_id", "tenant_id", "account_id")]
    user = document.get("user_id")
    requested = document.get("requested_at")
    if not all(isinstance(value, str) and value for value in ids):
        return None
    if user is not None and not (isinstance(user, str) and user):
        return None
    if not isinstance(requested, str):
        return None
    try:
        requested_at = datetime.fromisoformat(requested)
        uuid.UUID(ids[0])
    except ValueError:
        return None
    if requested_at.tzinfo is None:
        return None
    erasure_id, tenant_id, account_id = ids
    assert isinstance(erasure_id, str) and isinstance(tenant_id, str)
    assert isinstance(account_id, str)
    return Erasure(erasure_id, tenant_id, account_id, user, requested_at)
