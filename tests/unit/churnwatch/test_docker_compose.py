"""docker-compose.yml stays in step with the program it runs.

Docker is not needed: the file is parsed and checked against
``churnwatch.settings`` (a renamed or removed setting breaks these tests).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from churnwatch.settings import ENV_VARIABLES, PREFIX, Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
BACKING_SERVICES = ("kafka", "redis", "postgres")
URL_VARIABLES = (
    f"{PREFIX}KAFKA_BOOTSTRAP",
    f"{PREFIX}REDIS_URL",
    f"{PREFIX}DATABASE_URL",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings, whether written as a mapping or a list."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else str(value) for key, value in raw.items()}


@pytest.fixture(scope="module")
def churnwatch_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return environment(services["churnwatch"])


@pytest.fixture(scope="module")
def kafka_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return environment(services["kafka"])


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {NAME: (host, port)}."""
    parsed = {}
    for entry in value.split(","):
        name, _, address = entry.strip().partition("://")
        host, _, port = address.rpartition(":")
        parsed[name] = (host, int(port))
    return parsed


def test_compose_defines_the_four_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "redis", "postgres", "churnwatch"} <= set(services)


def test_kafka_runs_in_kraft_mode_without_zookeeper(
    services: dict[str, dict[str, Any]], kafka_env: dict[str, str]
) -> None:
    roles = {role.strip() for role in kafka_env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka_env
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka_env
    zookeepers = [
        name
        for name, service in services.items()
        if "zookeeper" in name.lower() or "zookeeper" in str(service.get("image", "")).lower()
    ]
    assert zookeepers == []


def test_kafka_quorum_voter_is_its_own_controller_listener(kafka_env: dict[str, str]) -> None:
    node_id, _, voter = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node_id == kafka_env["KAFKA_NODE_ID"]
    voter_host, _, voter_port = voter.rpartition(":")
    controller = kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert voter_host == "kafka"
    assert listeners(kafka_env["KAFKA_LISTENERS"])[controller][1] == int(voter_port)


def test_kafka_cluster_id_is_a_base64_uuid(kafka_env: dict[str, str]) -> None:
    cluster_id = kafka_env.get("CLUSTER_ID")
    if cluster_id is None:
        pytest.skip("no CLUSTER_ID: the image picks its default")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_kafka_single_node_replication_and_no_topic_auto_creation(
    kafka_env: dict[str, str],
) -> None:
    assert kafka_env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert kafka_env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert kafka_env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"


def test_kafka_advertises_a_host_listener_on_29092(
    services: dict[str, dict[str, Any]], kafka_env: dict[str, str]
) -> None:
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    assert ("localhost", 29092) in advertised.values()
    assert any(str(port).startswith("29092:") for port in services["kafka"].get("ports", []))


@pytest.mark.parametrize("name", BACKING_SERVICES)
def test_backing_service_has_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    healthcheck = services[name].get("healthcheck") or {}
    assert healthcheck.get("test"), f"{name} has no healthcheck test"
    assert not healthcheck.get("disable", False)


def test_churnwatch_waits_for_healthy_backing_services(
    services: dict[str, dict[str, Any]],
) -> None:
    depends_on = services["churnwatch"].get("depends_on")
    assert isinstance(depends_on, dict), "depends_on must be the long form with conditions"
    for name in BACKING_SERVICES:
        assert depends_on.get(name, {}).get("condition") == "service_healthy", name


def test_churnwatch_environment_uses_only_known_settings(
    churnwatch_env: dict[str, str],
) -> None:
    ours = {key for key in churnwatch_env if key.startswith(PREFIX)}
    assert ours, "churnwatch service sets no CHURNWATCH_* variable"
    assert ours - ENV_VARIABLES.keys() == set()


def test_churnwatch_environment_sets_all_three_server_urls(
    churnwatch_env: dict[str, str],
) -> None:
    for name in URL_VARIABLES:
        assert churnwatch_env.get(name, "").strip(), f"{name} is not set"


def test_database_url_matches_the_postgres_service(
    services: dict[str, dict[str, Any]], churnwatch_env: dict[str, str]
) -> None:
    postgres = environment(services["postgres"])
    url = urlsplit(churnwatch_env[f"{PREFIX}DATABASE_URL"])
    assert url.scheme in ("postgresql", "postgres")
    assert url.hostname == "postgres"
    assert (url.port or 5432) == 5432
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_redis_url_names_the_redis_service(churnwatch_env: dict[str, str]) -> None:
    url = urlsplit(churnwatch_env[f"{PREFIX}REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname == "redis"
    assert (url.port or 6379) == 6379


def test_kafka_bootstrap_names_a_listener_of_the_kafka_service(
    churnwatch_env: dict[str, str], kafka_env: dict[str, str]
) -> None:
    bound = listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    for server in churnwatch_env[f"{PREFIX}KAFKA_BOOTSTRAP"].split(","):
        host, _, port = server.strip().rpartition(":")
        assert host == "kafka"
        names = [name for name, (_, bound_port) in bound.items() if bound_port == int(port)]
        assert names, f"kafka listens on no port {port}"
        # The broker must then send clients back to an address other containers reach.
        assert [advertised.get(name) for name in names] == [("kafka", int(port))]


def test_recovery_dir_is_on_a_named_volume(
    compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
    churnwatch_env: dict[str, str],
) -> None:
    recovery_dir = churnwatch_env[f"{PREFIX}RECOVERY_DIR"]
    mounts = {}
    for volume in services["churnwatch"].get("volumes", []):
        source, _, target = str(volume).partition(":")
        mounts[target.split(":")[0]] = source
    assert recovery_dir in mounts, f"no volume mounted at {recovery_dir}"
    assert mounts[recovery_dir] in (compose.get("volumes") or {})


def test_settings_from_compose_environment(churnwatch_env: dict[str, str]) -> None:
    settings = Settings.from_env(churnwatch_env)
    assert settings.kafka_bootstrap == churnwatch_env[f"{PREFIX}KAFKA_BOOTSTRAP"]
    assert settings.redis_url == churnwatch_env[f"{PREFIX}REDIS_URL"]
    assert settings.database_url == churnwatch_env[f"{PREFIX}DATABASE_URL"]
    assert settings.recovery_dir == Path(churnwatch_env[f"{PREFIX}RECOVERY_DIR"])
    if f"{PREFIX}TOPIC_PARTITIONS" in churnwatch_env:
        assert settings.topic_partitions == int(churnwatch_env[f"{PREFIX}TOPIC_PARTITIONS"])


def test_churnwatch_topics_fit_the_single_kafka_node(churnwatch_env: dict[str, str]) -> None:
    # The compose file runs one broker: more replicas than brokers cannot be created.
    settings = Settings.from_env(churnwatch_env)
    assert settings.topic_replication_factor == 1
    assert settings.topic_min_insync_replicas == 1


def test_churnwatch_image_installs_the_project_without_local_extras(
    services: dict[str, dict[str, Any]],
) -> None:
    build = services["churnwatch"].get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    assert context == "."
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install ." in dockerfile
    assert "[local]" not in dockerfile
    assert "[dev]" not in dockerfile


def test_the_api_service_reads_the_pipelines_database_and_redis(
    services: dict[str, dict[str, Any]], churnwatch_env: dict[str, str]
) -> None:
    api = services["api"]
    env = environment(api)
    for name in (f"{PREFIX}DATABASE_URL", f"{PREFIX}REDIS_URL"):
        assert env[name] == churnwatch_env[name], name  # the tables and features it serves
    assert Settings.from_env(env).database_url == churnwatch_env[f"{PREFIX}DATABASE_URL"]
    assert api["command"][0] == "api" and "0.0.0.0" in api["command"]
    assert "8000:8000" in api["ports"]
