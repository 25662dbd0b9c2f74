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


class SchemaRegistryUnavailable(DependencyUnavailable):
    """The schema registry did not answer (connection refused or lost, timed out, a 5xx
    after the client's own retries): transient. Raised when looking up the schema of a
    framed input message (the batch waits and is tried again; nothing is dead-lettered
    for it) and when registering the output schemas at start (the start fails)."""

    def __init__(self, problem: str) -> None:
        super().__init__("schema_registry", problem)


class SchemaRegistrationError(ChurnwatchError):
    """The registry refused an output schema (invalid, or a subject of another type)."""

    def __init__(self, subject: str, problem: str) -> None:
        self.subject = subject
        self.problem = problem
        super().__init__(f"schema registry subject {subject!r}: {problem}")


class SchemaIncompatible(SchemaRegistrationError):
    """A checked-in output schema is incompatible with the latest version registered
    under its subject (per the subject's compatibility level): churnwatch does not start,
    since its messages would break the consumers that rely on that version."""

    def __init__(self, subject: str, schema_file: str, registered_version: int | None) -> None:
        self.schema_file = schema_file
        self.registered_version = registered_version
        version = "" if registered_version is None else f" (version {registered_version})"
        super().__init__(
            subject,
            f"{schema_file} is incompatible with the latest registered schema{version} under"
            " the subject's compatibility level; publish the change as a new major version"
            " (a new schema file and topic) or change the subject's compatibility level",
        )
