"""Errors of the sinks package."""

from __future__ import annotations

from schemas.errors import ChurnwatchError


class SinkError(ChurnwatchError):
    """A write to an output system failed; the batch was not (fully) written."""


class KafkaDeliveryError(SinkError):
    """Messages were not acknowledged by the broker within the flush timeout."""

    def __init__(self, undelivered: int, first_error: str | None) -> None:
        self.undelivered = undelivered
        self.first_error = first_error
        super().__init__(
            f"{undelivered} Kafka message(s) not delivered; first error: {first_error}"
        )


class MigrationError(SinkError):
    """The database schema could not be brought to the version this program needs."""
