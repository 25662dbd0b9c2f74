"""Dead-letter record: a rejected input message, its reason and where it came from.

Published on ``churn.events.dlq`` with the original Kafka key. The original
value travels as UTF-8 text when it decodes, else base64, so a platform team
can read it, fix the producer and replay it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from schemas.event import Event, RejectReason, format_time

DEAD_LETTER_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected message."""

    reason: RejectReason
    detail: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def to_json(self) -> bytes:
        original: str | None
        encoding: str | None
        if self.value is None:
            original, encoding = None, None
        else:
            try:
                original, encoding = self.value.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                original, encoding = base64.b64encode(self.value).decode("ascii"), "base64"
        return orjson.dumps(
            {
                "schema_version": DEAD_LETTER_SCHEMA_VERSION,
                "reason": str(self.reason),
                "detail": self.detail,
                "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
                "original": original,
                "original_encoding": encoding,
            }
        )


@dataclass(frozen=True, slots=True)
class LateEvent:
    """A valid event that arrived after its account's watermark had passed it.

    Published on ``churn.events.late`` (keyed like the input) so it can be
    inspected or backfilled; it did not update windowed features.
    """

    event: Event
    watermark: float  # epoch seconds

    def to_json(self) -> bytes:
        late_by = self.watermark - self.event.event_time.timestamp()
        return orjson.dumps(
            {
                "schema_version": DEAD_LETTER_SCHEMA_VERSION,
                "reason": "late",
                "late_by_seconds": round(late_by, 3),
                "watermark": format_time(datetime.fromtimestamp(self.watermark, UTC)),
                "source": {"partition": self.event.partition, "offset": self.event.offset},
                "event": self.event.to_document(),
            }
        )
