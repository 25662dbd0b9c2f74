"""Create churnwatch's Kafka topics (idempotently)."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from churnwatch.errors import ChurnwatchError


class TopicError(ChurnwatchError):
    """A topic could not be created."""


def ensure_topics(
    bootstrap: str, names: Iterable[str], partitions: int, *, timeout_s: float = 30.0
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    # Keep the client referenced until every future resolves, or they fail with _DESTROY.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, partitions, 1) for name in dict.fromkeys(names)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            msg = f"could not create topic {name!r}: {exc}"
            raise TopicError(msg) from exc
    del admin
