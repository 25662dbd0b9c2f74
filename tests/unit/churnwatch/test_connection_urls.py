"""Redis and PostgreSQL URLs with TLS and passwords: what the settings accept, refuse
and hide (the servers themselves: tests/integration/test_secure_connections.py)."""

from __future__ import annotations

import pytest

from churnwatch.errors import ConfigurationError
from churnwatch.settings import Settings

REDIS_TLS = ("rediss://churnwatch:s3cr3tpw@redis:6380/0?ssl_cert_reqs=required"
             "&ssl_ca_certs=/etc/ca.pem&ssl_certfile=/etc/cw.pem&ssl_keyfile=/etc/cw.key"
             "&ssl_password=k3ypw")
POSTGRES_TLS = ("postgresql://churnwatch:s3cr3tpw@db:5432/cw?sslmode=verify-full"
                "&sslrootcert=/etc/ca.pem&sslcert=/etc/cw.pem&sslkey=/etc/cw.key"
                "&sslpassword=k3ypw")


def test_tls_urls_are_taken_as_written() -> None:
    settings = Settings.from_env({"CHURNWATCH_REDIS_URL": REDIS_TLS,
                                  "CHURNWATCH_DATABASE_URL": POSTGRES_TLS})
    assert (settings.redis_url, settings.database_url) == (REDIS_TLS, POSTGRES_TLS)


def test_their_passwords_and_key_passwords_never_show() -> None:
    text = repr(Settings(redis_url=REDIS_TLS, database_url=POSTGRES_TLS))
    assert "s3cr3tpw" not in text and "k3ypw" not in text
    assert "ssl_ca_certs=/etc/ca.pem" in text and "sslrootcert=/etc/ca.pem" in text


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("redis://cw:s3cr3tpw@redis:6380/0?ssl_ca_certs=/etc/ca.pem",
                     "ssl_ca_certs take rediss:// (TLS); redis:// is plaintext",
                     id="tls-options-on-plaintext"),
        pytest.param("https://cw:s3cr3tpw@redis:6380/0", "expected redis://, rediss://",
                     id="not-redis"),
        pytest.param("redis:6379", "expected redis://, rediss://", id="no-scheme"),
    ],
)
def test_a_redis_url_that_cannot_work_is_refused_without_its_password(
    url: str, problem: str,
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"CHURNWATCH_REDIS_URL": url})
    assert info.value.variable == "CHURNWATCH_REDIS_URL"
    assert problem in info.value.problem
    assert "s3cr3tpw" not in str(info.value)
