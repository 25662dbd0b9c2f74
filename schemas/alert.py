"""Alert v1: what churnwatch publishes to ``churn.alerts`` and the ``alerts`` table.

The published contract is ``alert.v1.schema.json`` beside this module, with an
example in ``examples/``. Every alert carries an ``alert_id`` derived only from
its inputs (never from the clock), so a replay or a retry yields the same id
and consumers and the Postgres sink can drop the copy.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum

import orjson
from mypy_extensions import mypyc_attr

from schemas.event import format_time, subject_key

ALERT_SCHEMA_VERSION = 1

# Fixed namespace for churnwatch's name-based (v5) UUIDs. Changing it changes
# every id ever published: never do.
ID_NAMESPACE = uuid.UUID("5f0c0a52-3c8e-4c1e-9d1f-6a1b2c3d4e5f")


class Severity(StrEnum):
    """How urgent an alert is for the account team."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class AlertTier(IntEnum):
    """Which layer raised the alert."""

    EVENT_RULE = 1  # a single decisive event (payment failed, cancel intent, ...)
    USAGE_SIGNAL = 2  # a usage pattern over windows (login drop, inactivity, ...)
    RISK_SCORE = 3  # the model's risk tier rose


_NAMESPACE_BYTES = ID_NAMESPACE.bytes
# The RFC 4122 variant's first hex digit of the fourth group, by the hash's two low bits
# there (the variant sets the top two bits to 10).
_VARIANT_DIGIT = "89ab"


def deterministic_id(*parts: str) -> str:
    """A UUIDv5 over the parts, separated so ``("a:b", "c")`` != ``("a", "b:c")``.

    ``str(uuid.uuid5(ID_NAMESPACE, name))`` written out: the same SHA-1 over the
    namespace's bytes and the UTF-8 name, its first 16 bytes with the version
    (5) and variant bits set, in the canonical 8-4-4-4-12 form. ``uuid.UUID``'s
    checks and integer arithmetic made it 5 us per id against 2 us here, paid
    for every score (a score id whether it is published or not), alert and
    signal. ``tests/unit/schemas/test_pinned_ids.py`` pins literal ids and
    compares this with ``uuid.uuid5``.
    """
    digest = hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).hexdigest()
    return (
        f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-"
        f"{_VARIANT_DIGIT[int(digest[16], 16) & 3]}{digest[17:20]}-{digest[20:32]}"
    )


def alert_id(tenant_id: str, account_id: str, rule: str, trigger: str) -> str:
    """The alert's id: tenant, account, rule and what triggered it (an event id)."""
    return deterministic_id("alert", "v1", tenant_id, account_id, rule, trigger)


@mypyc_attr(native_class=False)  # pickled: see churnwatch.native
@dataclass(frozen=True, slots=True)
class Alert:
    """One alert about one account."""

    alert_id: str
    tenant_id: str
    account_id: str
    tier: AlertTier
    rule: str
    severity: Severity
    trigger_event_id: str
    trigger_event_type: str
    event_time: datetime
    reasons: tuple[str, ...] = ()
    # Processing metadata, not part of the published document: when the
    # triggering input reached the broker (epoch s; 0.0 unknown), for latency.
    ingested_at: float = field(default=0.0, compare=False)

    @property
    def subject(self) -> str:
        return subject_key(self.tenant_id, self.account_id)

    def to_document(self) -> dict[str, object]:
        """The alert v1 JSON document (see ``alert.v1.schema.json``)."""
        return {
            "schema_version": ALERT_SCHEMA_VERSION,
            "alert_id": self.alert_id,
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "tier": int(self.tier),
            "rule": self.rule,
            "severity": str(self.severity),
            "trigger": {"event_id": self.trigger_event_id, "event_type": self.trigger_event_type},
            "event_time": format_time(self.event_time),
            "reasons": list(self.reasons),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_document())
