"""Retention settings: table retentions for ``churnwatch db prune`` and topic retention.ms."""

from __future__ import annotations

from datetime import timedelta

import pytest

from churnwatch.cli import main
from churnwatch.errors import ConfigurationError
from churnwatch.settings import ENV_VARIABLES, Retention, Settings
from churnwatch.topics import topic_configs
from sinks.retention import KEPT_TABLES, RULES

DAY = timedelta(days=1)


def test_defaults_keep_scores_90_days_and_the_rest_longer() -> None:
    settings = Settings.from_env({})
    assert settings.retention.tables() == {
        "risk_scores": 90 * DAY,
        "alerts": 365 * DAY,
        "usage_signals": 365 * DAY,
        "cancellation_reasons": 730 * DAY,
        "decisions": 730 * DAY,
        "workflow_signals": 730 * DAY,
        "workflow_outcomes": 730 * DAY,
        "workflow_triggers": 730 * DAY,
    }
    assert settings.dead_letter_retention == 30 * DAY
    assert settings.output_topic_retention is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("30", 30 * DAY, id="days"),
        pytest.param("0.5", DAY / 2, id="fraction"),
        pytest.param("off", None, id="off"),
        pytest.param("0", None, id="zero-is-off"),
        pytest.param(" OFF ", None, id="off-any-case"),
    ],
)
def test_a_table_retention_is_days_or_off(value: str, expected: timedelta | None) -> None:
    settings = Settings.from_env({"CHURNWATCH_RETAIN_DECISIONS_DAYS": value})
    assert settings.retention.decisions == expected
    assert settings.retention.tables()["decisions"] == expected
    assert settings.retention.risk_scores == 90 * DAY  # the others unchanged


def test_the_workflow_retention_covers_triggers_and_their_signals() -> None:
    tables = Settings.from_env({"CHURNWATCH_RETAIN_WORKFLOWS_DAYS": "100"}).retention.tables()
    assert tables["workflow_triggers"] == tables["workflow_signals"] == 100 * DAY
    assert tables["workflow_outcomes"] == 100 * DAY


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHURNWATCH_RETAIN_RISK_SCORES_DAYS", "-1"),
        ("CHURNWATCH_RETAIN_ALERTS_DAYS", "a year"),
        ("CHURNWATCH_RETAIN_DEAD_LETTERS_DAYS", "-7"),
        ("CHURNWATCH_RETAIN_OUTPUT_TOPICS_DAYS", "week"),
        ("CHURNWATCH_RETAIN_SCORES_DAYS", "90"),  # a typo: unknown variable
    ],
)
def test_bad_retention_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: value})
    assert info.value.variable == name


def test_retention_round_trips_through_the_environment() -> None:
    settings = Settings(
        retention=Retention(risk_scores=None, alerts=7 * DAY, usage_signals=DAY / 4,
                            decisions=None),
        dead_letter_retention=None,
        output_topic_retention=3 * DAY,
    )
    env = settings.to_env()
    assert set(env) <= set(ENV_VARIABLES)
    assert env["CHURNWATCH_RETAIN_RISK_SCORES_DAYS"] == "off"
    assert Settings.from_env(env) == settings


def test_every_prunable_table_has_a_setting_and_every_other_table_a_reason() -> None:
    assert set(Retention().tables()) == {rule.table for rule in RULES}
    assert "contact_ledger" in KEPT_TABLES and "contact_preferences" in KEPT_TABLES
    assert not set(KEPT_TABLES) & {rule.table for rule in RULES}


def test_topic_configs_set_retention_ms_on_the_dead_letters_only_by_default() -> None:
    settings = Settings()
    assert topic_configs(settings) == {
        settings.topics.dead_letters: {"retention.ms": str(30 * 86_400_000)}
    }


def test_topic_configs_for_the_output_topics_never_touch_the_events_topic() -> None:
    settings = Settings.from_env({"CHURNWATCH_RETAIN_OUTPUT_TOPICS_DAYS": "2",
                                  "CHURNWATCH_RETAIN_DEAD_LETTERS_DAYS": "off"})
    topics = settings.topics
    configs = topic_configs(settings)
    assert set(configs) == {topics.alerts, topics.scores, topics.workflows, topics.late,
                            topics.alert_states}
    assert {c["retention.ms"] for c in configs.values()} == {str(2 * 86_400_000)}


def test_prune_without_a_database_url_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)
    assert main(["db", "prune", "--dry-run"]) == 2
    monkeypatch.setenv("CHURNWATCH_RETAIN_ALERTS_DAYS", "soon")
    assert main(["db", "prune"]) == 2
