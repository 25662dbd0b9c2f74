"""The second product on the local stack: a social app's stream through `churnwatch run`
with examples/social's definitions, policy and model (real broker, Redis, PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis

from churnwatch.demo import EXAMPLES, run_demo
from churnwatch.settings import Settings
from churnwatch.simulator import produce
from churnwatch.simulator_social import simulate_social
from featurestore.definitions import load_definitions
from featurestore.redis_store import RedisFeatureStore
from tests.integration.conftest import create_events_topic
from tests.integration.processes import run_churnwatch

SOCIAL = EXAMPLES / "social"
SIGNALS = {"opens_drop", "renewal_at_risk", "renewal_passive_only", "inactivity"}


def rows(settings: Settings, query: str) -> list[tuple]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f"SET search_path TO {settings.database_schema}")
        return list(conn.execute(query.encode()))


def test_a_social_history_runs_with_its_own_files(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        "social",
        feature_definitions=SOCIAL / "definitions.yaml",
        policy_file=SOCIAL / "policy.yaml",
        model_dir=SOCIAL / "model",
    )
    create_events_topic(settings)
    simulation = simulate_social(accounts=80, days=40, seed=13)
    assert settings.kafka_bootstrap
    produce(simulation, settings.kafka_bootstrap, settings.topics.events)
    run_churnwatch(settings, "run", "--until-drained")

    # Scores from the social model, with reasons in the social vocabulary.
    feature_set = load_definitions(SOCIAL / "definitions.yaml")
    scores = rows(settings, "SELECT account_id, tier, reasons, rule_score FROM risk_scores"
                            " WHERE NOT shadow")
    assert len({r[0] for r in scores}) > 60
    assert {r[1] for r in scores} >= {"low", "high"}
    model_reasons = {text.split(" ")[0] for r in scores if not r[3] for text in r[2]}
    assert model_reasons and model_reasons <= set(feature_set.names)

    # Its own signals and tier-1 rule, nothing of the SaaS product's.
    signal_types = {r[0] for r in rows(settings, "SELECT signal_type FROM usage_signals")}
    assert signal_types and signal_types <= SIGNALS
    alert_rules = {r[0] for r in rows(settings, "SELECT rule FROM alerts")}
    assert alert_rules <= SIGNALS | {"payment_failed", "risk_medium", "risk_high"}

    # Cancellations (the lifecycle mapping) against the simulator's ground truth.
    cancelled = {(r[0], r[1]) for r in rows(
        settings, "SELECT account_id, reason_code FROM cancellation_reasons")}
    assert cancelled == {(a.account_id, a.churn_reason) for a in simulation.accounts
                         if a.churned_at is not None}

    # Decisions under the social policy.
    versions = {r[0] for r in rows(settings, "SELECT DISTINCT policy_version FROM decisions")}
    assert versions == {"2026-11-29.social.1"}

    # The online features in Redis are the social definitions' vector.
    assert settings.redis_url
    store = RedisFeatureStore(
        redis.Redis.from_url(settings.redis_url), feature_set.names, feature_set.version,
        settings.feature_ttl, prefix=settings.redis_key_prefix,
    )
    try:
        opened = Counter(d["account_id"] for d in simulation.valid_events()
                         if d["event_type"] == "app.opened")
        busiest = opened.most_common(1)[0][0]
        vector = store.get(simulation.accounts[0].tenant_id, busiest)
    finally:
        store.close()
    assert vector is not None
    assert vector.values["opens_28d"] > 0
    assert set(vector.values) == set(feature_set.names)


def test_the_demo_runs_the_social_product(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its own embedded stack, as `churnwatch demo --product social` starts it.
    settings = Settings(state_dir=tmp_path / "state", log_format="text")
    assert run_demo(settings, accounts=60, days=35, seed=5, product="social") == 0
    out = capsys.readouterr().out
    assert "policy examples/social/policy.yaml" in out
    assert "subscribers who cancelled at a renewal" in out
    assert "opens_7d" in out and "logins_7d" not in out
    assert "WARNING" not in out  # every message produced was read
    assert "local stack stopped" in out
