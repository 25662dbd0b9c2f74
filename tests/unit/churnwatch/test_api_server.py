"""``churnwatch api`` and ``churnwatch users``: settings into the API's config, and the
exit codes without a database."""

from __future__ import annotations

import os

import pytest

from churnwatch.api_server import api_config
from churnwatch.cli import main
from churnwatch.errors import ConfigurationError
from churnwatch.settings import Settings
from scoring.risk import Blend
from sinks.migrate import api_role_name

SERVERS = {"database_url": "postgresql://cw:pw@db/cw", "redis_url": "redis://r:6379/0"}


def test_the_api_connects_with_the_dataflows_url_unless_given_its_own() -> None:
    config = api_config(Settings(**SERVERS, database_schema="tenant_x"))  # type: ignore[arg-type]
    assert config.database_url == "postgresql://cw:pw@db/cw"
    assert config.database_role == "tenant_x_api" == api_role_name("tenant_x")
    own = api_config(Settings(**SERVERS, api_database_url="postgresql://api@db/cw"))  # type: ignore[arg-type]
    assert own.database_url == "postgresql://api@db/cw"
    assert own.database_role == "churnwatch_api"
    assert "pw" not in repr(config)


def test_the_api_scores_with_the_dataflows_model_and_tiers() -> None:
    settings = Settings(**SERVERS, risk_tiers=(0.3, 0.6), risk_blend="ml")  # type: ignore[arg-type]
    config = api_config(settings)
    assert config.model_dir == settings.model_dir
    assert (config.risk_policy.medium_at, config.risk_policy.high_at) == (0.3, 0.6)
    assert config.risk_policy.blend is Blend.ML
    assert config.redis_key_prefix == settings.redis_key_prefix
    assert api_config(Settings(**SERVERS, model_dir=None)).model_dir is None  # type: ignore[arg-type]


def test_role_names_are_cut_as_postgresql_cuts_them() -> None:
    assert len(api_role_name("s" * 63)) == 63


@pytest.mark.parametrize("missing", ["database_url", "redis_url"])
def test_the_api_needs_postgresql_and_redis(missing: str) -> None:
    with pytest.raises(ConfigurationError):
        api_config(Settings(**{**SERVERS, missing: None}))  # type: ignore[arg-type]


def test_the_api_database_url_comes_from_the_environment_and_stays_out_of_logs() -> None:
    settings = Settings.from_env({"CHURNWATCH_API_DATABASE_URL": "postgresql://api:s3cret@db/x"})
    assert settings.api_database_url == "postgresql://api:s3cret@db/x"
    assert "s3cret" not in repr(settings)
    assert Settings.from_env(settings.to_env()).api_database_url == settings.api_database_url


@pytest.fixture
def no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_servers")
@pytest.mark.parametrize(
    ("argv", "code"),
    [
        pytest.param(["users", "list"], 2, id="users-without-database"),
        pytest.param(["users", "add", "--tenant", "acme", "--role", "agent", "--name", "a"], 2,
                     id="add-without-database"),
        pytest.param(["api"], 1, id="api-without-servers"),
    ],
)
def test_exit_codes_without_servers(argv: list[str], code: int) -> None:
    assert main(argv) == code


@pytest.mark.usefixtures("no_servers")
def test_roles_are_a_closed_set() -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["users", "add", "--tenant", "acme", "--role", "boss", "--name", "a"])
    assert stopped.value.code == 2
