"""Scores on the local stack: risk_scores and churn.scores, tier-3 alerts, shadow, replays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg
import pytest
import yaml

from churnwatch.settings import Settings
from churnwatch.simulator import produce, simulate, write_jsonl
from churnwatch.wiring import account_config, event_limits
from featurestore.definitions import DEFAULT_DEFINITIONS, load_definitions
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import read_all
from tests.integration.outputs import (
    decision_documents,
    decision_id,
    distinct_documents,
    file_documents,
    message_id,
    score_id,
    topic_documents,
)
from tests.integration.processes import run_churnwatch, start_churnwatch
from training.history import train_from_history


@pytest.fixture(scope="module")
def shadow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model (another history, another seed) to run in the shadow."""
    directory = tmp_path_factory.mktemp("shadow")
    history = directory / "history.jsonl"
    write_jsonl(simulate(accounts=150, days=40, seed=21), history)
    train_from_history(
        history,
        directory / "model",
        config=account_config(Settings(), load_definitions()),
        limits=event_limits(Settings()),
        horizon_days=14,
        seed=3,
    )
    return directory / "model"


def rows(settings: Settings, query: str) -> list[tuple]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f"SET search_path TO {settings.database_schema}")
        return list(conn.execute(query))


def test_scores_tiers_shadow_and_replay(
    make_settings: Callable[..., Settings], shadow_model: Path
) -> None:
    settings = make_settings("score", shadow_model_dir=shadow_model)
    create_events_topic(settings)
    assert settings.kafka_bootstrap
    produce(simulate(accounts=200, days=30, seed=7), settings.kafka_bootstrap,
            settings.topics.events)
    run_churnwatch(settings, "run", "--until-drained")

    scores = rows(settings, "SELECT score_id::text, model_version, shadow, tier, score,"
                            " reasons, expires_at - score_time FROM risk_scores")
    primary = [r for r in scores if not r[2]]
    shadow = [r for r in scores if r[2]]
    # Scores on change: a shadow score is published with its primary's, and a primary
    # also when a decision names it (without its shadow).
    assert len(primary) > 100 and 0 < len(shadow) <= len(primary)
    assert len({r[1] for r in primary}) == 1 and {r[1] for r in shadow} != {primary[0][1]}
    assert all(0.0 <= r[4] <= 1.0 and len(r[5]) <= 3 for r in scores)
    assert {r[6].days for r in scores} == {settings.score_ttl.days}
    assert {r[3] for r in primary} >= {"low", "high"}

    messages = read_all(settings.kafka_bootstrap, settings.topics.scores)
    in_kafka = {orjson.loads(v)["score_id"] for _, v, _ in messages}
    in_postgres = {r[0] for r in scores}
    assert in_kafka == in_postgres, (
        f"kafka {len(messages)} messages, {len(in_kafka)} ids; postgres {len(in_postgres)}; "
        f"only kafka {len(in_kafka - in_postgres)}, only postgres {len(in_postgres - in_kafka)}"
    )

    # Tier rises alert (tier 3), and only the primary model's.
    tier3 = rows(settings, "SELECT rule, trigger_event_type FROM alerts WHERE tier = 3")
    assert tier3 and {r[0] for r in tier3} <= {"risk_medium", "risk_high"}
    assert {r[1] for r in tier3} == {"risk_score"}
    alerts_before = {r[0] for r in rows(settings, "SELECT alert_id::text FROM alerts")}

    # A replay of the same input (fresh recovery state) adds no score and no alert.
    replay = settings.replace(recovery_dir=settings.recovery_dir.with_name("replay-scores"))
    run_churnwatch(replay, "run", "--until-drained")
    assert len(rows(settings, "SELECT 1 FROM risk_scores")) == len(scores)
    assert {r[0] for r in rows(settings, "SELECT alert_id::text FROM alerts")} == alerts_before


def test_a_model_of_other_features_is_refused_at_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    import featurestore

    default = Path(featurestore.__file__).parent / "definitions" / DEFAULT_DEFINITIONS
    document = yaml.safe_load(default.read_text())
    document["features"]["logins_7d"]["window"] = "8d"  # another feature_version
    changed = tmp_path / "definitions.yaml"
    changed.write_text(yaml.safe_dump(document))
    settings = make_settings("refuse", feature_definitions=changed)
    create_events_topic(settings)
    proc = start_churnwatch(settings, "run", "--until-drained")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "feature_version" in output or "feature version" in output


def test_replay_to_the_usual_sinks_matches_the_file_replay(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    history = tmp_path / "history.jsonl"
    write_jsonl(simulate(accounts=60, days=30, seed=9), history)
    settings = make_settings("replay")
    assert settings.model_dir is not None and settings.policy_file is not None
    run_churnwatch(settings, "replay", "--events", str(history), "--to-sinks")
    out = tmp_path / "out"
    run_churnwatch(settings, "replay", "--events", str(history), "--out", str(out))
    in_files = {a["alert_id"] for a in file_documents(out, "alerts")}
    in_postgres = {r[0] for r in rows(settings, "SELECT alert_id::text FROM alerts")}
    assert in_files and in_files == in_postgres
    scores = {s["score_id"] for s in file_documents(out, "scores")}
    assert scores == {r[0] for r in rows(settings, "SELECT score_id::text FROM risk_scores")}

    # Decisions, scores, workflow triggers and signals: the same documents in the table
    # or on the topics as in the files, the same ids in the triggers' and signals' tables.
    assert distinct_documents(decision_documents(settings), decision_id) == (
        distinct_documents(file_documents(out, "decisions"), decision_id)
    )
    assert len(decision_documents(settings)) == len(in_postgres)  # one per alert
    for name, topic, id_of in (("scores", settings.topics.scores, score_id),
                               ("workflows", settings.topics.workflows, message_id)):
        assert distinct_documents(topic_documents(settings, topic), id_of) == (
            distinct_documents(file_documents(out, name), id_of)
        ), name
    workflows = file_documents(out, "workflows")
    for kind, table, column in (("trigger", "workflow_triggers", "trigger_id"),
                                ("signal", "workflow_signals", "signal_id")):
        written = {d[column] for d in workflows if d["message_type"] == kind}
        assert written, kind
        assert written == {r[0] for r in rows(settings, f"SELECT {column}::text FROM {table}")}
