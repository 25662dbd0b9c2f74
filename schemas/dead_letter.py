"""Dead-letter record: a rejected input message, its reason and where it came from.

Published on ``churn.events.dlq`` with the original Kafka key. The original
value travels as UTF-8 text when it decodes, else base64, so a platform team
can read it, fix the producer and replay it.

A record always fits a Kafka message, whatever was refused: an original
longer than :data:`MAX_ORIGINAL_BYTES` keeps its first bytes, says so
(``original_truncated``), and carries its size and SHA-256 so the message
can be found at its source offset; a key longer than :data:`MAX_KEY_BYTES`
is replaced by its SHA-256 (hex). Otherwise a message too large for the
broker would be refused by the producer and stop the dataflow on every
restart.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from schemas.event import Event, RejectReason, format_time

DEAD_LETTER_SCHEMA_VERSION = 1
# Kafka refuses messages over 1 MB by default: the record keeps far less, and
# base64 (4/3) and JSON escaping (at most 6x, for control bytes) stay under it.
MAX_ORIGINAL_BYTES = 128 * 1024
MAX_KEY_BYTES = 1024


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

    @property
    def message_key(self) -> bytes | None:
        """The key to publish under: the original, or its SHA-256 if it is too long."""
        key = self.key
        if key is not None and len(key) > MAX_KEY_BYTES:
            return hashlib.sha256(key).hexdigest().encode()
        return key

    def to_json(self) -> bytes:
        original: str | None
        encoding: str | None
        value = self.value
        truncated = value is not None and len(value) > MAX_ORIGINAL_BYTES
        if value is None:
            original, encoding = None, None
        else:
            kept = value[:MAX_ORIGINAL_BYTES]
            try:
                original, encoding = kept.decode("utf-8"), "utf-8"
            except UnicodeDecodeError as exc:
                if truncated and exc.start >= len(kept) - 3:  # the cut split a character
                    original, encoding = kept[: exc.start].decode("utf-8"), "utf-8"
                else:
                    original, encoding = base64.b64encode(kept).decode("ascii"), "base64"
        document: dict[str, object] = {
            "schema_version": DEAD_LETTER_SCHEMA_VERSION,
            "reason": str(self.reason),
            "detail": self.detail[:1000],
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "original": original,
            "original_encoding": encoding,
        }
        if truncated:
            assert value is not None
            document["original_truncated"] = True
            document["original_bytes"] = len(value)
            document["original_sha256"] = hashlib.sha256(value).hexdigest()
        return orjson.dumps(document)


def processing_error(event: Event, error: Exception) -> DeadLetter:
    """The dead letter of a valid event whose handling raised (a defect, contained).

    Its record carries the event as churnwatch read it (normalised) and where it
    was read from; the error's type and message are the detail, never a payload.
    """
    try:
        value: bytes | None = orjson.dumps(event.to_document())
    except Exception:  # the record must be made whatever the event holds
        value = None
    return DeadLetter(
        RejectReason.PROCESSING_ERROR,
        f"{type(error).__name__}: {error}"[:500],
        "",
        event.partition,
        event.offset,
        event.subject.encode(),
        value,
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
