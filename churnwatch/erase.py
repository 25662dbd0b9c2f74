"""``churnwatch erase``: remove one account, or one user of it, everywhere churnwatch keeps it.

In this order:

1. PostgreSQL, one transaction: the receipt (``erasures``: the subject by
   digest, who asked, when) and every row of the account
   (:func:`sinks.erasure.record_and_erase`; the contact ledger is tombstoned).
2. Redis: the account's feature hash.
3. The dataflow: one control message per partition of the events topic
   (``schemas.erasure``). Each input partition reads it in its order: the
   stream drops the subject's state, so no later snapshot holds it, removes
   what it wrote of the subject since step 1, confirms the receipt, and
   refuses (or keeps: ``CHURNWATCH_ERASED_EVENTS``) the subject's later events.

With ``wait``, the command then waits until the stream has confirmed the
receipt. A user's erasure touches no table or hash (none holds user ids): it
replaces the user among the account's distinct users in the stream's state.

What is not erased: messages churnwatch already published on Kafka topics stay
until the topics' retention removes them (a topic is a log: records cannot be
deleted one subject at a time); the receipt lists those topics.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from churnwatch.errors import ChurnwatchError
from churnwatch.settings import Settings
from featurestore.redis_store import RedisFeatureStore
from schemas.erasure import Erasure
from sinks.erasure import add_to_receipt, receipt, record_and_erase
from sinks.kafka import KafkaWriter
from sinks.migrate import migrate
from sinks.postgres import connect


class ErasureError(ChurnwatchError):
    """An erasure could not be requested (its receipt says how far it got)."""


def erase(
    settings: Settings, erasure: Erasure, requested_by: str, *, wait: timedelta | None = None,
) -> dict[str, Any]:
    """Run the erasure (see the module docstring); return its receipt."""
    if not (settings.database_url and settings.kafka_bootstrap and settings.redis_url):
        msg = "erase needs CHURNWATCH_DATABASE_URL, CHURNWATCH_KAFKA_BOOTSTRAP and REDIS_URL"
        raise ErasureError(msg)
    url, schema = settings.database_url, settings.database_schema
    with connect(url, schema, autocommit=True) as conn:
        migrate(conn, schema)
    writer = KafkaWriter(settings.kafka_bootstrap, client_id="churnwatch-erase",
                         config=settings.kafka_config.properties)
    events_topic = settings.topics.events
    partitions = writer.partitions(events_topic)
    if partitions == 0:
        msg = f"the events topic {events_topic!r} does not exist: nothing to erase from"
        raise ErasureError(msg)
    record_and_erase(url, schema, erasure, requested_by)
    extra: dict[str, int] = {}
    if erasure.user_id is None:
        store = RedisFeatureStore.from_url(
            settings.redis_url, (), "", settings.feature_ttl, prefix=settings.redis_key_prefix
        )
        try:
            extra["redis"] = store.delete(erasure.tenant_id, erasure.account_id)
        finally:
            store.close()
    extra["control_messages"] = partitions
    add_to_receipt(url, schema, erasure.erasure_id, extra)
    message = erasure.to_control_message()
    for partition in range(partitions):
        writer.produce(events_topic, None, message, partition=partition)
    writer.flush()
    if wait is not None:
        deadline = time.monotonic() + wait.total_seconds()
        while time.monotonic() < deadline:
            document = receipt(url, schema, erasure.erasure_id)
            if document is not None and document["stream_erased_at"] is not None:
                break
            time.sleep(0.5)
    document = receipt(url, schema, erasure.erasure_id) or {}
    topics = settings.topics
    document["kept_until_topic_retention"] = [
        topics.alerts, topics.scores, topics.workflows, topics.late, topics.dead_letters,
        topics.alert_states,
    ]
    return document
