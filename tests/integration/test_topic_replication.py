"""Topic creation with the replication settings, on the embedded single broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from churnwatch.settings import Settings
from churnwatch.topics import TopicError, ensure_churnwatch_topics


def test_the_embedded_stack_creates_topics_with_one_replica_and_min_insync_one(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings("repl")
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas) == (1, 1)
    ensure_churnwatch_topics(settings)
    assert settings.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    for name in settings.topics.all():
        assert {len(p.replicas) for p in topics[name].partitions.values()} == {1}
    described = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, name) for name in settings.topics.all()]
    )
    for future in described.values():
        assert future.result(timeout=30)["min.insync.replicas"].value == "1"


def test_more_replicas_than_brokers_is_refused_naming_the_setting(
    make_settings: Callable[..., Settings],
) -> None:
    # The defaults, as a deployment to a 3-broker cluster has them.
    settings = make_settings("repl3", topic_replication_factor=3, topic_min_insync_replicas=2)
    with pytest.raises(TopicError) as info:
        ensure_churnwatch_topics(settings)
    message = str(info.value)
    assert "3 replicas: the cluster has 1 broker(s)" in message
    assert "CHURNWATCH_TOPIC_REPLICATION_FACTOR" in message
    # Nothing was created (Tansu itself would have taken 3 replicas of its one broker).
    assert settings.kafka_bootstrap
    existing = AdminClient({"bootstrap.servers": settings.kafka_bootstrap}).list_topics(
        timeout=10
    ).topics
    assert not set(settings.topics.all()) & set(existing)
