"""Errors of the sinks package.

Transient failures (the dependency did not answer: retry later) are
:class:`~schemas.errors.DependencyUnavailable` as well as :class:`SinkError`, so
the dataflow can tell them from permanent ones (a message the broker refuses,
a row the database refuses), which a retry would only repeat.
"""

from __future__ import annotations

from schemas.errors import ChurnwatchError, DependencyUnavailable


class SinkError(ChurnwatchError):
    """A write to an output system failed; the batch was not (fully) written."""


class KafkaDeliveryError(SinkError):
    """The broker refused messages with a permanent error (too large, not authorised ...)."""

    def __init__(self, undelivered: int, first_error: str | None) -> None:
        self.undelivered = undelivered
        self.first_error = first_error
        super().__init__(
            f"{undelivered} Kafka message(s) not delivered; first error: {first_error}"
        )


class KafkaUnavailable(KafkaDeliveryError, DependencyUnavailable):
    """Messages not acknowledged within the flush timeout, or refused with a retriable
    error (broker down, leader moving): transient."""

    def __init__(self, undelivered: int, first_error: str | None) -> None:
        self.undelivered = undelivered
        self.first_error = first_error
        self.dependency = "kafka"
        self.problem = f"{undelivered} message(s) not delivered; first error: {first_error}"
        Exception.__init__(self, f"kafka unavailable: {self.problem}")


class DatabaseUnavailable(SinkError, DependencyUnavailable):
    """PostgreSQL did not answer (connection refused, lost or timed out): transient."""

    def __init__(self, problem: str) -> None:
        self.dependency = "postgres"
        self.problem = problem
        Exception.__init__(self, f"postgres unavailable: {problem}")


class MigrationError(SinkError):
    """The database schema could not be brought to the version this program needs."""
