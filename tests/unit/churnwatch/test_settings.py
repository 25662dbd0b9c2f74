"""Settings: parsing, refusal of bad values, redaction, and the env round trip."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from churnwatch.errors import ConfigurationError
from churnwatch.settings import ENV_VARIABLES, Settings
from schemas.alert import Severity


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.topics.events == "churn.events"
    assert settings.dedupe_window == timedelta(hours=24)
    assert settings.max_future_skew == timedelta(hours=1)
    assert settings.kafka_bootstrap is None


def test_values_are_read_and_typed() -> None:
    settings = Settings.from_env(
        {
            "CHURNWATCH_KAFKA_BOOTSTRAP": "k:9092",
            "CHURNWATCH_DEDUPE_WINDOW_SECONDS": "60",
            "CHURNWATCH_RECOVERY_DIR": "off",
            "CHURNWATCH_TIER1_RULES": '{"x.y": {"rule": "r", "severity": "low"}}',
            "CHURNWATCH_STATE_DICTIONARY_SAMPLES": "0",  # no dictionary
        }
    )
    assert settings.kafka_bootstrap == "k:9092"
    assert settings.state_dictionary_samples == 0
    assert settings.dedupe_window == timedelta(seconds=60)
    assert settings.recovery_dir is None
    assert settings.tier1_rules["x.y"].severity is Severity.LOW


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHURNWATCH_INPUT_BATCH_SIZE", "lots"),
        ("CHURNWATCH_INPUT_BATCH_SIZE", "0"),
        ("CHURNWATCH_STATE_DICTIONARY_SAMPLES", "-1"),
        ("CHURNWATCH_DEDUPE_WINDOW_SECONDS", "-1"),
        ("CHURNWATCH_DATABASE_SCHEMA", "drop table;"),
        ("CHURNWATCH_TIER1_RULES", "{"),
        ("CHURNWATCH_NO_SUCH_THING", "1"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: value})
    assert info.value.variable == name


def test_repr_redacts_passwords() -> None:
    settings = Settings(database_url="postgresql://u:secret@h:5432/d")
    assert "secret" not in repr(settings)
    assert "postgresql://u:***@h:5432/d" in repr(settings)


def test_to_env_round_trips_and_uses_only_known_variables() -> None:
    settings = Settings(
        kafka_bootstrap="k:1",
        database_url="postgresql://h/d",
        recovery_dir=Path("/tmp/r"),
        input_batch_size=77,
    )
    env = settings.to_env()
    assert set(env) <= set(ENV_VARIABLES)
    assert Settings.from_env(env) == settings


def test_event_time_bounds_are_read_and_round_trip() -> None:
    from datetime import UTC, datetime, timedelta

    settings = Settings.from_env(
        {
            "CHURNWATCH_EARLIEST_EVENT_TIME": "2020-01-01T00:00:00+01:00",
            "CHURNWATCH_MAX_EVENT_AGE_DAYS": "400",
        }
    )
    assert settings.earliest_event_time == datetime(2019, 12, 31, 23, tzinfo=UTC)
    assert settings.max_event_age == timedelta(days=400)
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env({"CHURNWATCH_MAX_EVENT_AGE_DAYS": "off"}).max_event_age is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHURNWATCH_EARLIEST_EVENT_TIME", "2020-01-01T00:00:00"),
        ("CHURNWATCH_EARLIEST_EVENT_TIME", "yesterday"),
        ("CHURNWATCH_MAX_EVENT_AGE_DAYS", "-3"),
        ("CHURNWATCH_MAX_EVENT_AGE_DAYS", "a year"),
    ],
)
def test_bad_event_time_bounds_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({variable: value})


@pytest.mark.parametrize(
    ("field", "url", "shown"),
    [
        pytest.param("database_url", "postgresql://cw:s3cr3tpw@db:5432/x",
                     "postgresql://cw:***@db:5432/x", id="url-password"),
        pytest.param("database_url", "postgresql://cw@db/x?password=s3cr3tpw&sslmode=require",
                     "postgresql://cw@db/x?password=***&sslmode=require", id="query-parameter"),
        pytest.param("database_url", "host=db user=cw password=s3cr3tpw dbname=x",
                     "host=db user=cw password=*** dbname=x", id="libpq-keywords"),
        pytest.param("database_url", "host=db password='s3cr3tpw with space' user=cw",
                     "host=db password=*** user=cw", id="libpq-quoted"),
        pytest.param("database_url", "postgresql://db/x?sslpassword=s3cr3tpw",
                     "postgresql://db/x?sslpassword=***", id="ssl-key-password"),
        pytest.param("redis_url", "redis://:s3cr3tpw@r:6379/0", "redis://:***@r:6379/0",
                     id="redis-password-only"),
        pytest.param("redis_url", "rediss://cw:s3cr3tpw@r:6380/0", "rediss://cw:***@r:6380/0",
                     id="redis-acl-user"),
        pytest.param("database_url", "postgresql://cw:s3cr3t@pw@db/x",
                     "postgresql://cw:***@db/x", id="at-sign-in-password"),
    ],
)
def test_repr_redacts_every_form_of_secret(field: str, url: str, shown: str) -> None:
    settings = Settings(**{field: url})
    text = repr(settings)
    assert "s3cr3t" not in text
    assert repr(shown) in text


def test_reload_intervals_take_zero_for_never_and_round_trip() -> None:
    settings = Settings.from_env(
        {"CHURNWATCH_MODEL_RELOAD_SECONDS": "0", "CHURNWATCH_POLICY_RELOAD_SECONDS": "2.5"}
    )
    assert settings.model_reload_interval == timedelta(0)
    assert settings.policy_reload_interval == timedelta(seconds=2.5)
    assert Settings.from_env(settings.to_env()) == settings
    defaults = Settings.from_env({})
    assert defaults.model_reload_interval == timedelta(seconds=30)
    assert defaults.policy_reload_interval == timedelta(seconds=10)
    for name in ("CHURNWATCH_MODEL_RELOAD_SECONDS", "CHURNWATCH_POLICY_RELOAD_SECONDS"):
        with pytest.raises(ConfigurationError) as info:
            Settings.from_env({name: "-1"})
        assert info.value.variable == name


def test_account_traits_are_read_over_the_defaults_and_round_trip() -> None:
    settings = Settings.from_env({
        "CHURNWATCH_ACCOUNT_TRAITS": '{"mrr": ["monthly_revenue"], "owner": []}'
    })
    traits = settings.account_traits
    assert traits.mrr == ("monthly_revenue",) and traits.owner == ()
    assert traits.plan == Settings().account_traits.plan == ("plan",)
    assert Settings.from_env(settings.to_env()).account_traits == traits
    for raw in ("not json", '{"revenue": ["mrr"]}', '{"mrr": [3]}'):
        with pytest.raises(ConfigurationError, match="CHURNWATCH_ACCOUNT_TRAITS"):
            Settings.from_env({"CHURNWATCH_ACCOUNT_TRAITS": raw})
