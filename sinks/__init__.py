"""Kafka and Postgres writers. Idempotent by deterministic id, batched per call.

Every sink has the same small contract: ``write_batch(items)`` writes the whole
batch or raises, and ``close()`` flushes and releases the connection.
"""

from sinks.errors import KafkaDeliveryError, MigrationError, SinkError
from sinks.kafka import KafkaAlertSink, KafkaDeadLetterSink, KafkaWriter
from sinks.migrate import available_migrations, migrate
from sinks.postgres import PostgresAlertSink, PostgresCancellationSink, connect

__all__ = [
    "KafkaAlertSink",
    "KafkaDeadLetterSink",
    "KafkaDeliveryError",
    "KafkaWriter",
    "MigrationError",
    "PostgresAlertSink",
    "PostgresCancellationSink",
    "SinkError",
    "available_migrations",
    "connect",
    "migrate",
]
