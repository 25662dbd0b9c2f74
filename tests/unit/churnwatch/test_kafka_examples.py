"""The README's CHURNWATCH_KAFKA_CONFIG examples are read by the settings and accepted
by librdkafka (a client is created from each; nothing connects), and a property
librdkafka does not know is refused naming the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from churnwatch.errors import ConfigurationError
from churnwatch.kafka_config import load_kafka_config
from churnwatch.topics import admin_client
from tests.integration.secure_servers import Unavailable, make_certificates

README = (Path(__file__).parents[3] / "README.md").read_text()
SECTION = README.split("### Security and connections", 1)[1].split("\n## ", 1)[0]
# The fenced blocks that are Kafka properties: the JSON given inline, the YAML and
# .properties files.
EXAMPLES = {
    "scram-json": re.search(r"CHURNWATCH_KAFKA_CONFIG='(\{.*?\})'", SECTION, re.S),
    "mtls-yaml": re.search(r"```yaml\n(.*?)```", SECTION, re.S),
    "oauthbearer-properties": re.search(r"```properties\n(.*?)```", SECTION, re.S),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_readme_examples_are_accepted_by_librdkafka(name: str, tmp_path: Path) -> None:
    match = EXAMPLES[name]
    assert match is not None, f"the README lost its {name} example"
    try:
        certs = make_certificates(tmp_path / "certs")
    except Unavailable as exc:
        pytest.skip(str(exc))
    # The example's paths, made real: its certificates, key and secret files.
    files = {
        "/etc/churnwatch/kafka-ca.pem": certs.ca,
        "/etc/churnwatch/churnwatch.pem": certs.client_cert,
        "/etc/churnwatch/churnwatch.key": certs.client_key,
    }
    text = match.group(1)
    for written, real in files.items():
        text = text.replace(written, str(real))
    text = text.replace("/run/secrets/", f"{tmp_path}/")
    for secret in re.findall(rf"\$\{{file:{re.escape(str(tmp_path))}/([\w-]+)\}}", text):
        (tmp_path / secret).write_text("example-secret\n")
    suffix = {"scram-json": ".json", "mtls-yaml": ".yaml", "oauthbearer-properties": ".properties"}
    path = tmp_path / f"kafka{suffix[name]}"
    path.write_text(text)
    config = load_kafka_config(str(path), {"KAFKA_OAUTH_CLIENT_SECRET": "example-secret"})
    assert config.properties["security.protocol"] in ("SSL", "SASL_SSL")
    admin_client("127.0.0.1:1", {**config.properties, "log_level": 0})


def test_a_property_librdkafka_does_not_know_names_the_variable() -> None:
    with pytest.raises(ConfigurationError) as info:
        admin_client("127.0.0.1:1", {"sasl.mechanisms.typo": "PLAIN"})
    assert info.value.variable == "CHURNWATCH_KAFKA_CONFIG"
    assert "No such configuration property" in info.value.problem
