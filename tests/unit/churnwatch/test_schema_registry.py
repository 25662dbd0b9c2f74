"""The schema registry from settings: variables, redaction, the client's credentials, and
the output schemas registered under the configured topics (against the in-process fake
of :mod:`tests.fake_registry`: no registry server can be installed here)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from churnwatch.errors import ConfigurationError
from churnwatch.registry import register_output_schemas, registry_framing
from churnwatch.settings import ENV_VARIABLES, Settings, Topics
from schemas.framing import frame
from tests.builders import event_bytes
from tests.fake_registry import FakeSchemaRegistry


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as fake:
        yield fake


def test_the_variables_are_read_and_round_trip() -> None:
    settings = Settings.from_env({
        "CHURNWATCH_SCHEMA_REGISTRY_URL": "https://sr-1:8081,https://sr-2:8081",
        "CHURNWATCH_SCHEMA_REGISTRY_CONFIG": '{"basic.auth.user.info": "k:s", "timeout": 3}',
    })
    assert settings.schema_registry_url == "https://sr-1:8081,https://sr-2:8081"
    assert settings.schema_registry_config == {"basic.auth.user.info": "k:s", "timeout": 3}
    env = settings.to_env()
    assert set(env) <= set(ENV_VARIABLES)
    assert Settings.from_env(env) == settings
    assert Settings.from_env({}).schema_registry_url is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHURNWATCH_SCHEMA_REGISTRY_URL", "sr:8081"),
        ("CHURNWATCH_SCHEMA_REGISTRY_URL", "http://sr:8081,sr2:8081"),
        ("CHURNWATCH_SCHEMA_REGISTRY_CONFIG", "{"),
        ("CHURNWATCH_SCHEMA_REGISTRY_CONFIG", '["timeout", 3]'),
        ("CHURNWATCH_SCHEMA_REGISTRY_CONFIG", '{"timeout": {"connect": 3}}'),
        ("CHURNWATCH_SCHEMA_REGISTRY_CONFIG", '{"url": "http://elsewhere"}'),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({variable: value})
    assert info.value.variable == variable


def test_repr_redacts_the_registry_credentials() -> None:
    settings = Settings(
        schema_registry_url="https://sr-1:8081,https://cw:s3cr3t@sr-2:8081",
        schema_registry_config={"basic.auth.user.info": "key:s3cr3t",
                                "bearer.auth.client.secret": "s3cr3t", "timeout": 3},
    )
    text = repr(settings)
    assert "s3cr3t" not in text
    assert "https://sr-1:8081,https://cw:***@sr-2:8081" in text
    assert "'timeout': 3" in text


def test_without_a_registry_url_nothing_is_framed_or_registered() -> None:
    assert registry_framing(Settings()) is None
    assert register_output_schemas(Settings()) == []


def test_an_unknown_client_property_is_a_configuration_error() -> None:
    settings = Settings(schema_registry_url="http://127.0.0.1:9",
                        schema_registry_config={"no.such.property": 1})
    with pytest.raises(ConfigurationError, match=r"no\.such\.property") as info:
        registry_framing(settings)
    assert info.value.variable == "CHURNWATCH_SCHEMA_REGISTRY_CONFIG"


def test_output_schemas_register_under_the_configured_topics(
    registry: FakeSchemaRegistry,
) -> None:
    settings = Settings(
        schema_registry_url=registry.url,
        topics=Topics(alerts="t1.alerts", scores="t1.scores", workflows="t1.workflows"),
    )
    first = register_output_schemas(settings)
    assert sorted(registry.subjects) == [
        "t1.alerts-value",
        "t1.scores-value",
        "t1.workflows-churnwatch workflow signal v1",
        "t1.workflows-churnwatch workflow trigger v1",
    ]
    again = register_output_schemas(settings)  # a second start
    assert [r.schema_id for r in again] == [r.schema_id for r in first]
    assert all(r.unchanged for r in again)
    assert all(len(versions) == 1 for versions in registry.subjects.values())


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({"url_userinfo": "cw:pa55"}, id="url-userinfo"),
        pytest.param({"config": {"basic.auth.user.info": "cw:pa55"}}, id="config"),
    ],
)
def test_basic_auth_reaches_the_registry(
    registry: FakeSchemaRegistry, how: dict[str, object]
) -> None:
    url = registry.url
    if "url_userinfo" in how:
        url = url.replace("http://", f"http://{how['url_userinfo']}@")
    config = how.get("config", {})
    assert isinstance(config, dict)
    framing = registry_framing(Settings(schema_registry_url=url, schema_registry_config=config))
    assert framing is not None
    framing.prepare([frame(1, event_bytes())])
    assert registry.authorizations == ["Basic " + base64.b64encode(b"cw:pa55").decode()]
