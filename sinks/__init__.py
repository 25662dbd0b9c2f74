"""Kafka and Postgres writers. Idempotent by deterministic id, batched per call.

Every sink meets one small contract (:class:`~sinks.base.BatchWriter`):
``write_batch(items)`` writes the whole batch or raises, and ``close()``
flushes and releases the connection.
"""

from sinks.account_table import PostgresAccountSink
from sinks.base import BatchWriter
from sinks.errors import KafkaDeliveryError, MigrationError, SinkError
from sinks.kafka import KafkaMessage, KafkaTopicSink, KafkaWriter
from sinks.migrate import available_migrations, migrate
from sinks.postgres import PostgresAlertSink, PostgresCancellationSink, connect
from sinks.retention import PruneResult, RetentionError, prune

__all__ = [
    "BatchWriter",
    "KafkaDeliveryError",
    "KafkaMessage",
    "KafkaTopicSink",
    "KafkaWriter",
    "MigrationError",
    "PostgresAccountSink",
    "PostgresAlertSink",
    "PostgresCancellationSink",
    "PruneResult",
    "RetentionError",
    "SinkError",
    "available_migrations",
    "connect",
    "migrate",
    "prune",
]
