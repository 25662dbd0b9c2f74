"""sinks.kafka.KafkaWriter: which delivery errors are an outage and which are final.

No broker is needed: delivery reports are handed to the writer as librdkafka
would, and nothing is queued, so ``flush`` returns at once.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from sinks.errors import KafkaDeliveryError, KafkaUnavailable
from sinks.kafka import KafkaWriter

# No broker listens there: keep librdkafka's connection complaints out of the output.
QUIET = {"log_level": 0}


class Delivered:
    def topic(self) -> str:
        return "churn.alerts"

    def partition(self) -> int:
        return 2


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        pytest.param(KafkaError(KafkaError._MSG_TIMED_OUT), True, id="message-timed-out"),
        pytest.param(KafkaError(KafkaError._TRANSPORT), True, id="transport"),
        pytest.param(KafkaError(KafkaError._ALL_BROKERS_DOWN), True, id="all-brokers-down"),
        pytest.param(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION, retriable=True), True,
                     id="leader-moving"),
        pytest.param(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), False, id="too-large"),
        pytest.param(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), False,
                     id="not-authorised"),
    ],
)
def test_delivery_errors_are_classified(error: KafkaError, transient: bool) -> None:
    writer = KafkaWriter("127.0.0.1:1", flush_timeout_s=0.1, config=QUIET)
    writer._on_delivery(error, Delivered())  # type: ignore[arg-type]
    with pytest.raises(KafkaDeliveryError) as raised:
        writer.flush()
    assert isinstance(raised.value, KafkaUnavailable) is transient
    assert "churn.alerts[2]" in str(raised.value)
    writer.flush()  # reported once: the next flush starts clean


def test_a_fatal_error_starts_a_new_producer() -> None:
    writer = KafkaWriter("127.0.0.1:1", flush_timeout_s=0.1, config=QUIET)
    first = writer._producer
    writer._on_delivery(KafkaError(KafkaError._FATAL, fatal=True), Delivered())  # type: ignore[arg-type]
    with pytest.raises(KafkaUnavailable):
        writer.flush()
    writer.produce("t", b"k", b"v")
    assert writer._producer is not first
