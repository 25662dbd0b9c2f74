"""churnwatch over TLS and passwords: Redis and PostgreSQL started here with TLS only,
passwords and client certificates, configured through their URLs alone.

Redis: an ACL user (the default user off), ``rediss://`` with the CA and a client
certificate as URL parameters. PostgreSQL: ``hostssl`` only, scram-sha-256 and a
verified client certificate, ``sslmode=verify-full``. A whole ``churnwatch run``
goes through both, with a ``CHURNWATCH_KAFKA_CONFIG`` whose values come from a
secret file and a variable, and no secret appears in anything it prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import orjson
import psycopg
import pytest
import redis
from prometheus_client import CollectorRegistry

from churnwatch.app import readiness
from churnwatch.kafka_config import load_kafka_config
from churnwatch.settings import Settings
from dataflows.metrics import PipelineMetrics
from sinks.postgres import connect
from tests.builders import event_bytes
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import produce_all, read_all
from tests.integration.processes import run_churnwatch
from tests.integration.secure_servers import (
    Certificates,
    SecurePostgres,
    SecureRedis,
    Unavailable,
    make_certificates,
)

REDIS_PASSWORD = "redis-pw-9f3a"
POSTGRES_PASSWORD = "postgres-pw-51c7"
KAFKA_SECRET = "kafka-secret-e2d0"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    try:
        return make_certificates(tmp_path_factory.mktemp("certs"))
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def secure_redis(
    certs: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureRedis]:
    try:
        server = SecureRedis(tmp_path_factory.mktemp("redis"), certs, "churnwatch", REDIS_PASSWORD)
    except Unavailable as exc:
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture(scope="module")
def secure_postgres(
    certs: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecurePostgres]:
    try:
        server = SecurePostgres(tmp_path_factory.mktemp("postgres"), certs, "churnwatch",
                                POSTGRES_PASSWORD, admin_password="admin-pw-0b1e")
    except Unavailable as exc:
        pytest.skip(str(exc))
    with server:
        yield server


def redis_url(server: SecureRedis, certs: Certificates, *, password: str = REDIS_PASSWORD,
              client_cert: bool = True, scheme: str = "rediss") -> str:
    """The URL as an operator writes it: ACL user and password, the CA to verify the
    server by, and the client certificate (redis-py reads them from the query)."""
    query = {"ssl_cert_reqs": "required", "ssl_ca_certs": str(certs.ca)}
    if client_cert:
        query |= {"ssl_certfile": str(certs.client_cert), "ssl_keyfile": str(certs.client_key)}
    if scheme == "redis":
        query = {}  # plaintext takes no TLS options (the settings refuse them)
    return f"{scheme}://churnwatch:{password}@localhost:{server.port}/0?{urlencode(query)}"


def postgres_url(server: SecurePostgres, certs: Certificates, *, password: str = POSTGRES_PASSWORD,
                 sslmode: str = "verify-full", client_cert: bool = True) -> str:
    query = {"sslmode": sslmode, "sslrootcert": str(certs.ca)}
    if client_cert:
        query |= {"sslcert": str(certs.client_cert), "sslkey": str(certs.client_key)}
    return f"postgresql://churnwatch:{password}@localhost:{server.port}/postgres?{urlencode(query)}"


def test_a_run_goes_through_tls_and_passwords_and_prints_no_secret(
    make_settings: Callable[..., Settings],
    secure_redis: SecureRedis,
    secure_postgres: SecurePostgres,
    certs: Certificates,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret_file = tmp_path / "kafka-secret"
    secret_file.write_text(KAFKA_SECRET + "\n")
    # The embedded broker takes no credentials, so the Kafka properties here are ones it
    # ignores; they show the references resolved in the child and never printed.
    monkeypatch.setenv("CW_TEST_KAFKA_CLIENT_ID", "churnwatch-tls-test")
    raw = orjson.dumps({
        "client.id": "${env:CW_TEST_KAFKA_CLIENT_ID}",
        "sasl.password": f"${{file:{secret_file}}}",
        "socket.keepalive.enable": True,
    }).decode()
    settings = make_settings(
        "tls",
        redis_url=redis_url(secure_redis, certs),
        database_url=postgres_url(secure_postgres, certs),
        kafka_config=load_kafka_config(raw, {"CW_TEST_KAFKA_CLIENT_ID": "churnwatch-tls-test"}),
    )
    for secret in (REDIS_PASSWORD, POSTGRES_PASSWORD, KAFKA_SECRET):
        assert secret not in repr(settings)
    assert settings.kafka_bootstrap
    create_events_topic(settings)
    produce_all(settings.kafka_bootstrap, settings.topics.events, [
        (b"a1", event_bytes(event_id="e1", account_id="a1", event_type="app.login")),
        (b"a1", event_bytes(event_id="e2", account_id="a1", event_type="billing.payment_failed")),
    ])

    output = run_churnwatch(settings, "run", "--until-drained")

    for secret in (REDIS_PASSWORD, POSTGRES_PASSWORD, KAFKA_SECRET):
        assert secret not in output
    assert "drained: " in output
    # PostgreSQL over TLS: migrations applied, the tier-1 alert written.
    with connect(settings.database_url, settings.database_schema) as conn:
        rules = [r for (r,) in conn.execute("SELECT rule FROM alerts WHERE account_id = 'a1'")]
        assert conn.info.pgconn.ssl_in_use
    assert rules
    # Redis over TLS: the account's feature hash.
    client = redis.Redis.from_url(settings.redis_url)
    assert list(client.scan_iter(match=f"{settings.redis_key_prefix}:*"))
    client.close()
    assert read_all(settings.kafka_bootstrap, settings.topics.alerts)
    # /readyz reaches all three through the same URLs and properties.
    checks = readiness(settings, PipelineMetrics.create(CollectorRegistry())).evaluate()
    assert {name: checks[name] for name in ("kafka", "redis", "postgres")} == {
        "kafka": "ok", "redis": "ok", "postgres": "ok"
    }


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        pytest.param({"password": "wrong"}, "invalid username-password pair", id="wrong-password"),
        # The TLS alert ("certificate required") or the closed socket, whichever the
        # client reads first: a ConnectionError either way.
        pytest.param({"client_cert": False}, "", id="no-client-certificate"),
        pytest.param({"scheme": "redis"}, "", id="plaintext"),
    ],
)
def test_redis_refuses_what_is_not_tls_with_the_right_password(
    secure_redis: SecureRedis, certs: Certificates, change: dict, refusal: str,
) -> None:
    client = redis.Redis.from_url(redis_url(secure_redis, certs, **change), socket_timeout=5)
    with pytest.raises((redis.AuthenticationError, redis.ConnectionError)) as info:
        client.ping()
    assert refusal in str(info.value)
    client.close()


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        pytest.param({"password": "wrong"}, "password authentication failed",
                     id="wrong-password"),
        pytest.param({"sslmode": "disable"}, "no encryption", id="plaintext"),
        pytest.param({"client_cert": False}, "requires a valid client certificate",
                     id="no-client-certificate"),
    ],
)
def test_postgres_refuses_what_is_not_tls_with_the_right_password(
    secure_postgres: SecurePostgres, certs: Certificates, change: dict, refusal: str,
) -> None:
    with pytest.raises(psycopg.OperationalError, match=refusal):
        psycopg.connect(postgres_url(secure_postgres, certs, **change), connect_timeout=5)


def test_a_refused_connection_is_reported_by_readiness_without_its_secret(
    make_settings: Callable[..., Settings],
    secure_redis: SecureRedis,
    secure_postgres: SecurePostgres,
    certs: Certificates,
) -> None:
    settings = make_settings(
        "tlsbad",
        redis_url=redis_url(secure_redis, certs, password="not-" + REDIS_PASSWORD),
        database_url=postgres_url(secure_postgres, certs, password="not-" + POSTGRES_PASSWORD),
    )
    checks = readiness(settings, PipelineMetrics.create(CollectorRegistry())).evaluate()
    assert "invalid username-password pair" in checks["redis"]
    assert "password authentication failed" in checks["postgres"]
    assert REDIS_PASSWORD not in str(checks) and POSTGRES_PASSWORD not in str(checks)
