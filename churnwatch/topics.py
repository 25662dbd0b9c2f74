"""Create churnwatch's Kafka topics (idempotently), with their retention."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from churnwatch.errors import ChurnwatchError
from churnwatch.settings import Settings


class TopicError(ChurnwatchError):
    """A topic could not be created."""


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """The configs churnwatch gives each of its topics when it creates them: ``retention.ms``
    of the dead-letter topic and of the output topics, unless left to the broker (None).
    The events topic is the producers': churnwatch sets nothing on it."""
    configs: dict[str, dict[str, str]] = {}
    topics = settings.topics
    for names, retention in (
        ((topics.dead_letters,), settings.dead_letter_retention),
        ((topics.alerts, topics.scores, topics.workflows, topics.late),
         settings.output_topic_retention),
    ):
        if retention is not None:
            for name in names:
                configs[name] = {"retention.ms": str(_milliseconds(retention))}
    return configs


def _milliseconds(span: timedelta) -> int:
    return max(1, round(span.total_seconds() * 1000))


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    *,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create the topics that do not exist yet, each with its ``configs`` (topic name ->
    Kafka topic configs, e.g. ``retention.ms``); existing topics are left as they are
    (change those with ``kafka-configs --alter``)."""
    configs = configs or {}
    # Keep the client referenced until every future resolves, or they fail with _DESTROY.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(name, partitions, 1, config=dict(configs.get(name, {})))
            for name in dict.fromkeys(names)
        ],
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
