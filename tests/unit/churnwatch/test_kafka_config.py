"""CHURNWATCH_KAFKA_CONFIG: its forms, its secret references, what it refuses, and
that a secret never shows in repr while a child process still gets it; the topic
replication settings."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from churnwatch.errors import ConfigurationError
from churnwatch.kafka_config import OWNED_PROPERTIES, KafkaClientConfig, load_kafka_config
from churnwatch.settings import ENV_VARIABLES, Settings

SECRET = "s3cr3t-kafka-pw"
VARIABLE = "CHURNWATCH_KAFKA_CONFIG"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka-password"
    path.write_text(SECRET + "\n")  # as `echo ... > file` writes it
    return path


def test_inline_json_reaches_the_settings() -> None:
    settings = Settings.from_env(
        {VARIABLE: '{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",'
                   ' "linger.ms": 7, "socket.keepalive.enable": true, "batch.num.messages": 1.5}'}
    )
    assert settings.kafka_config.properties == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "linger.ms": 7,
        "socket.keepalive.enable": True,
        "batch.num.messages": "1.5",
    }


def test_unset_or_empty_is_no_properties() -> None:
    assert Settings.from_env({}).kafka_config == KafkaClientConfig()
    assert Settings.from_env({VARIABLE: "  "}).kafka_config.properties == {}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        pytest.param("kafka.json", '{"security.protocol": "SSL", "ssl.ca.location": "/ca.pem"}',
                     id="json"),
        pytest.param("kafka.yaml", "# TLS to the brokers\nsecurity.protocol: SSL\n"
                     "ssl.ca.location: /ca.pem\n", id="yaml"),
        pytest.param("client.properties", "# as Java clients write it\nsecurity.protocol=SSL\n"
                     "! a comment too\nssl.ca.location = /ca.pem\n", id="properties"),
    ],
)
def test_a_file_of_properties(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    config = load_kafka_config(str(path), {})
    assert config.properties == {"security.protocol": "SSL", "ssl.ca.location": "/ca.pem"}
    assert config.source == str(path)


def test_references_are_resolved_from_files_and_the_environment(secret_file: Path) -> None:
    config = load_kafka_config(
        orjson.dumps({
            "sasl.password": f"${{file:{secret_file}}}",
            "sasl.username": "${env:KAFKA_USER}",
            "sasl.oauthbearer.config": "scope=churn principal=${env:KAFKA_USER}",
            "client.id": "literal $${not a reference}",
        }).decode(),
        {"KAFKA_USER": "svc-churnwatch"},
    )
    assert config.properties == {
        "sasl.password": SECRET,  # the file's trailing newline is not part of it
        "sasl.username": "svc-churnwatch",
        "sasl.oauthbearer.config": "scope=churn principal=svc-churnwatch",
        "client.id": "literal ${not a reference}",
    }
    assert config.referenced == {"sasl.password", "sasl.username", "sasl.oauthbearer.config"}


def test_references_work_in_a_file_of_properties_too(tmp_path: Path, secret_file: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(f"sasl.password=${{file:{secret_file}}}\n")
    assert load_kafka_config(str(path), {}).properties == {"sasl.password": SECRET}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param({"sasl.password": "${file:/no/such/secret}"},
                     "sasl.password: ${file:/no/such/secret}: No such file", id="missing-file"),
        pytest.param({"sasl.password": "${env:NO_SUCH_VARIABLE}"},
                     "sasl.password: ${env:NO_SUCH_VARIABLE}: the variable is not set",
                     id="missing-variable"),
        pytest.param({"sasl.password": "${env:CHURNWATCH_REDIS_URL}"},
                     "CHURNWATCH_* variables are churnwatch's settings", id="settings-variable"),
        pytest.param({"sasl.password": "${vault:kv/kafka}"},
                     "expected ${file:PATH} or ${env:NAME}", id="unknown-kind"),
        pytest.param({"sasl.password": "${env:}"}, "expected ${file:PATH}", id="empty-name"),
        pytest.param({"error_cb": "x"}, "a callback cannot be configured", id="callback"),
        pytest.param({"sasl": {"mechanism": "PLAIN"}}, "write dotted names such as sasl.mechanism",
                     id="nested"),
        pytest.param({"sasl.password": None}, "got NoneType", id="null"),
        pytest.param({"sasl.password": [SECRET]}, "got list", id="list"),
    ],
)
def test_bad_properties_name_the_variable_and_property(document: dict, problem: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({VARIABLE: orjson.dumps(document).decode(),
                           "CHURNWATCH_REDIS_URL": "redis://r"})
    assert info.value.variable == VARIABLE
    assert problem in info.value.problem
    assert SECRET not in str(info.value)


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match="the file is empty"):
        load_kafka_config(f'{{"sasl.password": "${{file:{tmp_path / "empty"}}}"}}', {})


@pytest.mark.parametrize("name", sorted(OWNED_PROPERTIES))
def test_properties_churnwatch_owns_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_kafka_config(orjson.dumps({name: "x"}).decode(), {})
    assert f"{name}: churnwatch sets this itself ({OWNED_PROPERTIES[name]})" == info.value.problem


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param('{"security.protocol": ', "the JSON object is not JSON", id="bad-inline"),
        pytest.param("/no/such/kafka.json", "cannot read /no/such/kafka.json", id="no-file"),
        pytest.param('["security.protocol"]', "give a file or a JSON object ({...})",
                     id="an-array-is-no-object"),
    ],
)
def test_a_config_that_cannot_be_read_names_the_variable(raw: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_kafka_config(raw, {})
    assert info.value.variable == VARIABLE
    assert problem in info.value.problem


def test_a_file_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kafka.yaml"
    path.write_text("- security.protocol\n")
    with pytest.raises(ConfigurationError, match="expected an object of librdkafka properties"):
        load_kafka_config(str(path), {})


def test_secrets_never_show_in_repr(secret_file: Path) -> None:
    settings = Settings.from_env({
        VARIABLE: orjson.dumps({
            "security.protocol": "SASL_SSL",
            "sasl.username": "svc",
            "sasl.password": f"${{file:{secret_file}}}",       # from a reference
            "ssl.key.password": "literal-" + SECRET,            # written in, named secret
            "sasl.oauthbearer.client.secret": "literal-" + SECRET,
            "ssl.key.pem": "-----BEGIN PRIVATE KEY----- " + SECRET,
        }).decode(),
    })
    text = repr(settings)
    assert SECRET not in text
    assert "'sasl.password': '***'" in text and "'ssl.key.password': '***'" in text
    assert "'sasl.username': 'svc'" in text and "'security.protocol': 'SASL_SSL'" in text


def test_a_config_file_path_shows_in_repr(tmp_path: Path) -> None:
    path = tmp_path / "kafka.json"
    path.write_text('{"security.protocol": "SSL"}')
    assert f"source={str(path)!r}" in repr(load_kafka_config(str(path), {}))


def test_children_get_the_references_not_the_secrets(secret_file: Path) -> None:
    environ = {
        VARIABLE: orjson.dumps({"sasl.password": f"${{file:{secret_file}}}",
                                "sasl.username": "${env:KAFKA_USER}"}).decode(),
        "KAFKA_USER": "svc",
    }
    settings = Settings.from_env(environ)
    env = settings.to_env()
    assert SECRET not in "".join(env.values())
    assert env[VARIABLE] == environ[VARIABLE]
    # The child resolves them again, in its own environment.
    assert Settings.from_env({**env, "KAFKA_USER": "svc"}) == settings


def test_a_config_built_in_code_round_trips_as_json() -> None:
    settings = Settings(kafka_config=KafkaClientConfig({"security.protocol": "SSL", "retries": 3}))
    assert Settings.from_env(settings.to_env()) == settings


def test_topic_replication_defaults_suit_a_three_broker_cluster() -> None:
    settings = Settings.from_env({})
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas) == (3, 2)
    assert Settings.from_env(settings.to_env()) == settings
    assert set(settings.to_env()) <= set(ENV_VARIABLES)


def test_one_replica_lowers_the_default_min_insync_replicas() -> None:
    settings = Settings.from_env({"CHURNWATCH_TOPIC_REPLICATION_FACTOR": "1"})
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas) == (1, 1)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        pytest.param({"CHURNWATCH_TOPIC_REPLICATION_FACTOR": "0"},
                     "CHURNWATCH_TOPIC_REPLICATION_FACTOR", id="no-replicas"),
        pytest.param({"CHURNWATCH_TOPIC_MIN_INSYNC_REPLICAS": "4"},
                     "CHURNWATCH_TOPIC_MIN_INSYNC_REPLICAS", id="more-in-sync-than-replicas"),
        pytest.param({"CHURNWATCH_TOPIC_REPLICATION_FACTOR": "1",
                      "CHURNWATCH_TOPIC_MIN_INSYNC_REPLICAS": "2"},
                     "CHURNWATCH_TOPIC_MIN_INSYNC_REPLICAS", id="min-insync-above-one-replica"),
    ],
)
def test_impossible_replication_is_refused(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(environ)
    assert info.value.variable == variable
