"""Build the production dataflow from settings and run it.

Input: Bytewax's Kafka source over every partition of the events topic. Its
offsets live in Bytewax's recovery store, not in a consumer group
(bytewax#377), so the recovery directory *is* the consumer position: keep it
with the deployment, and start a new one if the topic is recreated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bytewax.connectors.kafka import KafkaSource, _list_parts
from bytewax.dataflow import Dataflow
from bytewax.inputs import StatefulSourcePartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from confluent_kafka.admin import AdminClient
from prometheus_client import Gauge

from churnwatch.errors import ConfigurationError
from churnwatch.settings import Settings
from dataflows.account import account_config
from dataflows.flow import (
    FlowConfig,
    FlowSinks,
    ScoringStage,
    WriterSink,
    alert_latency_observer,
    build_dataflow,
    utc_now,
)
from dataflows.metrics import PipelineMetrics
from featurestore.definitions import FeatureSet, load_definitions
from featurestore.redis_store import RedisFeatureStore
from schemas.event import EventLimits
from scoring.decision import ConsentLookup, DecisionEngine, no_consent_records
from scoring.model import load_model
from scoring.policy import Policy, PolicyHolder, Vocabulary, vocabulary_for
from scoring.risk import Blend, RiskPolicy
from sinks.decision_store import PostgresConsentDirectory, register_experiments
from sinks.kafka import (
    KafkaAlertSink,
    KafkaDeadLetterSink,
    KafkaLateEventSink,
    KafkaScoreSink,
    KafkaWorkflowSink,
    KafkaWriter,
)
from sinks.postgres import (
    PostgresAlertSink,
    PostgresCancellationSink,
    PostgresDecisionSink,
    PostgresRiskScoreSink,
    PostgresUsageSignalSink,
)

log = logging.getLogger(__name__)

# librdkafka's default fetch.queue.backoff.ms (1000 ms) stalls a consumer that
# is slower than the broker for a second at a time (DESIGN.md, costs table).
CONSUMER_CONFIG = {"fetch.queue.backoff.ms": "10", "statistics.interval.ms": "5000"}


class _HeartbeatPartition(StatefulSourcePartition[Any, Any]):
    """Delegates to Bytewax's Kafka partition and records each poll (the heartbeat)."""

    def __init__(self, inner: StatefulSourcePartition[Any, Any], beat: Callable[[], None]):
        self._inner = inner
        self._beat = beat

    def next_batch(self) -> list[Any]:
        self._beat()
        return list(self._inner.next_batch())

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class EventsSource(KafkaSource):
    """Bytewax's Kafka source, with its own partition listing and a heartbeat.

    The stock ``list_parts`` hands the consumer-only settings above to an admin
    client, which logs a CONFWARN for each; this lists with the bootstrap only.
    Every poll sets ``churnwatch_input_last_poll_timestamp_seconds``, which
    ``/readyz`` and the "stalled" alert read.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        tail: bool,
        batch_size: int,
        heartbeat: Gauge | None = None,
    ) -> None:
        super().__init__(
            [bootstrap],
            [topic],
            tail=tail,
            batch_size=batch_size,
            add_config=CONSUMER_CONFIG,
            raise_on_errors=False,
        )
        self._bootstrap = bootstrap
        self._topic = topic
        self._heartbeat = heartbeat

    def list_parts(self) -> list[str]:
        client = AdminClient({"bootstrap.servers": self._bootstrap})
        return list(_list_parts(client, [self._topic]))

    def build_part(  # type: ignore[override]  # a wrapper, not Bytewax's own partition
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> StatefulSourcePartition[Any, Any]:
        inner = super().build_part(step_id, for_part, resume_state)
        if self._heartbeat is None:
            return inner
        return _HeartbeatPartition(inner, self._heartbeat.set_to_current_time)


def policy_vocabulary(settings: Settings, feature_set: FeatureSet) -> Vocabulary:
    """The triggers and features a policy may name under these settings."""
    return vocabulary_for((r.rule for r in settings.tier1_rules.values()), feature_set.names)


def scoring_stage(
    settings: Settings,
    feature_set: FeatureSet,
    *,
    consent: ConsentLookup = no_consent_records,
    accept_policy: Callable[[Policy], None] | None = None,
    on_policy_change: Callable[[str, Policy], None] | None = None,
) -> ScoringStage | None:
    """Load the model (and shadow) and the decision policy; refuses a mismatch or an
    invalid policy at start. ``consent``: the do-not-contact directory (none for a
    file replay); ``accept_policy``: a check every policy (and reload) must pass."""
    if settings.model_dir is None:
        return None
    model = load_model(settings.model_dir, feature_set.version, feature_set.names)
    shadow = (
        load_model(settings.shadow_model_dir, feature_set.version, feature_set.names)
        if settings.shadow_model_dir
        else None
    )
    medium, high = settings.risk_tiers
    policy = RiskPolicy(
        medium_at=medium,
        high_at=high,
        blend=Blend(settings.risk_blend),
        ttl=settings.score_ttl,
        debounce=settings.score_debounce,
    )
    engine = None
    if settings.policy_file is not None:
        holder = PolicyHolder(
            settings.policy_file,
            policy_vocabulary(settings, feature_set),
            accept=accept_policy,
            on_change=on_policy_change,
        )
        engine = DecisionEngine(holder, feature_set.names, consent)
    return ScoringStage(model, policy, shadow, engine)


def flow_config(
    settings: Settings,
    feature_set: FeatureSet | None = None,
    *,
    consent: ConsentLookup = no_consent_records,
    accept_policy: Callable[[Policy], None] | None = None,
    on_policy_change: Callable[[str, Policy], None] | None = None,
) -> FlowConfig:
    feature_set = feature_set or load_definitions(settings.feature_definitions)
    scoring = scoring_stage(
        settings,
        feature_set,
        consent=consent,
        accept_policy=accept_policy,
        on_policy_change=on_policy_change,
    )
    return FlowConfig(
        limits=EventLimits(settings.max_message_bytes, settings.max_future_skew),
        account=account_config(settings, feature_set, scoring=scoring is not None),
        idle_state_ttl=max(settings.feature_ttl, settings.dedupe_window * 2),
        inactivity=settings.usage_rules.inactivity,
        feature_flush_interval=settings.feature_flush_interval,
        scoring=scoring,
    )


def _require(settings: Settings) -> tuple[str, str]:
    if not settings.kafka_bootstrap:
        raise ConfigurationError("CHURNWATCH_KAFKA_BOOTSTRAP", "required to run the dataflow")
    if not settings.database_url:
        raise ConfigurationError("CHURNWATCH_DATABASE_URL", "required to run the dataflow")
    return settings.kafka_bootstrap, settings.database_url


def production_sinks(
    settings: Settings, metrics: PipelineMetrics, feature_set: FeatureSet
) -> FlowSinks:
    bootstrap, database_url = _require(settings)
    if not settings.redis_url:
        raise ConfigurationError("CHURNWATCH_REDIS_URL", "required to run the dataflow")
    redis_url = settings.redis_url
    topics = settings.topics
    schema = settings.database_schema
    return FlowSinks(
        dead_letters=WriterSink(
            "kafka-dead-letters",
            lambda: KafkaDeadLetterSink(KafkaWriter(bootstrap), topics.dead_letters),
            metrics,
        ),
        alerts_kafka=WriterSink(
            "kafka-alerts",
            lambda: KafkaAlertSink(KafkaWriter(bootstrap), topics.alerts),
            metrics,
            on_written=alert_latency_observer(metrics),
        ),
        alerts_postgres=WriterSink(
            "postgres-alerts", lambda: PostgresAlertSink(database_url, schema), metrics
        ),
        cancellations=WriterSink(
            "postgres-cancellations",
            lambda: PostgresCancellationSink(database_url, schema),
            metrics,
        ),
        late_events=WriterSink(
            "kafka-late-events",
            lambda: KafkaLateEventSink(KafkaWriter(bootstrap), topics.late),
            metrics,
        ),
        features=WriterSink(
            "redis-features",
            lambda: RedisFeatureStore.from_url(
                redis_url,
                feature_set.names,
                feature_set.version,
                settings.feature_ttl,
                prefix=settings.redis_key_prefix,
            ),
            metrics,
        ),
        usage_signals=WriterSink(
            "postgres-usage-signals",
            lambda: PostgresUsageSignalSink(database_url, schema),
            metrics,
        ),
        risk_scores=WriterSink(
            "postgres-risk-scores", lambda: PostgresRiskScoreSink(database_url, schema), metrics
        ),
        scores_kafka=WriterSink(
            "kafka-scores", lambda: KafkaScoreSink(KafkaWriter(bootstrap), topics.scores), metrics
        ),
        decisions=WriterSink(
            "postgres-decisions", lambda: PostgresDecisionSink(database_url, schema), metrics
        ),
        workflows_kafka=WriterSink(
            "kafka-workflows",
            lambda: KafkaWorkflowSink(KafkaWriter(bootstrap), topics.workflows),
            metrics,
        ),
    )


def production_config(
    settings: Settings, feature_set: FeatureSet, metrics: PipelineMetrics
) -> FlowConfig:
    """The flow config against the real Postgres: the consent directory is read
    from ``contact_preferences`` and every policy's experiments are pinned."""
    _, database_url = _require(settings)
    schema = settings.database_schema
    consent = PostgresConsentDirectory(
        database_url, schema, settings.consent_refresh.total_seconds()
    )
    consent.refresh()  # at start: never decide without the opt-outs (raises if unreadable)
    return flow_config(
        settings,
        feature_set,
        consent=consent.lookup,
        accept_policy=lambda policy: register_experiments(database_url, schema, policy),
        on_policy_change=lambda outcome, policy: _observe_policy(metrics, outcome, policy),
    )


def _observe_policy(metrics: PipelineMetrics, outcome: str, policy: Policy) -> None:
    metrics.policy_version.info({"policy_version": policy.version, "digest": policy.digest})
    if outcome != "loaded":
        metrics.policy_reloads.labels(outcome=outcome).inc()


def production_flow(
    settings: Settings,
    metrics: PipelineMetrics,
    *,
    tail: bool,
    clock: Callable[[], datetime] = utc_now,
) -> Dataflow:
    """The dataflow over the events topic. ``tail=False`` stops at the end of input."""
    bootstrap, _ = _require(settings)
    feature_set = load_definitions(settings.feature_definitions)
    metrics.feature_version.info(
        {"feature_version": feature_set.version, "definitions": feature_set.source}
    )
    config = production_config(settings, feature_set, metrics)
    if config.scoring is not None:
        shadow = config.scoring.shadow
        metrics.model_version.info(
            {
                "model_version": config.scoring.model.model_version,
                "shadow_model_version": shadow.model_version if shadow else "",
            }
        )
    source = EventsSource(
        bootstrap,
        settings.topics.events,
        tail=tail,
        batch_size=settings.input_batch_size,
        heartbeat=metrics.last_batch,
    )
    return build_dataflow(
        source,
        production_sinks(settings, metrics, feature_set),
        config,
        metrics,
        clock=clock,
    )


def recovery_config(directory: Path | None, partitions: int) -> RecoveryConfig | None:
    """Recovery over ``directory``, creating its partitions on first use."""
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob("part-*.sqlite3")):
        init_db_dir(directory, partitions)
        log.info("created %d recovery partition(s) in %s", partitions, directory)
    return RecoveryConfig(directory)


def run_dataflow(
    flow: Dataflow,
    settings: Settings,
    *,
    workers_per_process: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> None:
    """Run ``flow`` in this process until its input ends (or forever when tailing)."""
    cli_main(
        flow,
        workers_per_process=workers_per_process,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=settings.snapshot_interval,
        recovery_config=recovery_config(settings.recovery_dir, settings.recovery_partitions),
    )
