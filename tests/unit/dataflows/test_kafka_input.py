"""The Kafka input's consumer settings."""

from __future__ import annotations

from dataflows.kafka_input import CONSUMER_CONFIG


def test_an_offset_the_log_no_longer_has_restarts_at_the_oldest_message_kept() -> None:
    # A recovered offset retention deleted (or of a recreated topic): librdkafka's
    # default jumps to the log's end and skips everything still retained. Not tested
    # on the embedded broker: Tansu answers a fetch past the log's end with an empty
    # fetch, not OFFSET_OUT_OF_RANGE, so no reset happens there at all.
    assert CONSUMER_CONFIG["auto.offset.reset"] == "earliest"
