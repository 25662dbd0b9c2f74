"""Dead-letter record: a rejected input message, its reason and where it came from.

Published on ``churn.events.dlq`` with the original Kafka key. The original
value travels as UTF-8 text when it decodes, else base64, so a platform team
can read it, fix the producer and replay it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson

from schemas.event import RejectReason

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
