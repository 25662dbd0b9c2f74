"""Wiring: settings in, the plain config objects and sinks the libraries take.

The composition root's one place that turns :class:`~churnwatch.settings.Settings`
into :class:`~accounts.config.AccountConfig`, the loaded models and decision
policy, the dataflow's config and its production sinks. Libraries never read
settings themselves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.dataflow import Dataflow

from accounts.config import AccountConfig, ScoringConfig
from churnwatch.errors import ConfigurationError
from churnwatch.registry import registry_framing
from churnwatch.settings import Settings
from dataflows.absence_log import ABSENCE_LOG_FOLDER
from dataflows.fast_lane import Tier1Lane
from dataflows.flow import FlowConfig, FlowSinks, ScoringStage, build_dataflow
from dataflows.kafka_input import EventsSource
from dataflows.metrics import PipelineMetrics
from dataflows.outputs import WriterSink, alert_latency_observer, utc_now
from dataflows.shard_log import SHARD_LOG_FOLDER
from decisions.engine import (
    AlertStatusLookup,
    ConsentLookup,
    DecisionEngine,
    no_alert_statuses,
    no_consent_records,
)
from decisions.policy import Policy, PolicyHolder, Vocabulary, vocabulary_for
from detectors.definitions import DetectorRules
from featurestore.aggregation import CompiledFeatures
from featurestore.definitions import FeatureSet, load_definitions
from featurestore.redis_store import RedisFeatureStore
from schemas.event import EventLimits
from schemas.formats import Decoder, InputFormat, load_mapping
from scoring.model import RiskModel
from scoring.reload import ModelHolder
from scoring.risk import Blend, RiskPolicy
from sinks.account_table import PostgresAccountSink
from sinks.decision_store import (
    PostgresAlertStatusDirectory,
    PostgresConsentDirectory,
    register_experiments,
)
from sinks.erasure import ErasureSink
from sinks.kafka import (
    KafkaMessage,
    KafkaTopicSink,
    KafkaWriter,
    alert_message,
    dead_letter_message,
    late_event_message,
    score_message,
    workflow_message,
)
from sinks.postgres import (
    PostgresAlertSink,
    PostgresCancellationSink,
    PostgresDecisionSink,
    PostgresOutcomeSink,
    PostgresRiskScoreSink,
    PostgresUsageSignalSink,
)

log = logging.getLogger(__name__)

# The tiers of a model whose metadata has none, unless the settings fix them.
DEFAULT_RISK_TIERS = (0.4, 0.7)


def event_limits(settings: Settings) -> EventLimits:
    """What the input validator accepts under these settings."""
    return EventLimits(
        settings.max_message_bytes,
        settings.max_future_skew,
        earliest_event_time=settings.earliest_event_time,
        max_event_age=settings.max_event_age,
    )


def input_decoder(settings: Settings) -> Decoder | None:
    """How the events topic's messages are read: None for native events (the fast
    path); else a decoder of Segment or CloudEvents (or auto) by the mapping file,
    which is loaded and checked here (a problem names the file and key), and of
    Schema Registry framing when a registry is set."""
    framing = registry_framing(settings)
    if settings.input_format is InputFormat.NATIVE and framing is None:
        return None
    return Decoder(
        settings.input_format, load_mapping(settings.input_mapping), event_limits(settings),
        framing,
    )


def detector_rules(settings: Settings, feature_set: FeatureSet | None = None) -> DetectorRules:
    """The detectors' rules under these settings: the definitions' (checked against
    their features), with the deprecated overrides (``Settings.detector_rules``)."""
    return settings.detector_rules(feature_set)


def warn_deprecated_rules(settings: Settings) -> None:
    """Say at start that a deprecated override is in force (once per run)."""
    for name, value in (("CHURNWATCH_TIER1_RULES", settings.tier1_rules_override),
                        ("CHURNWATCH_USAGE_RULES", settings.usage_rules_override)):
        if value is not None:
            log.warning("%s is deprecated: it overrides the definitions file (declare the"
                        " rules there: README, Signals)", name)


def account_config(
    settings: Settings, feature_set: FeatureSet, *, scoring: bool = False
) -> AccountConfig:
    """Per-account processing settings; the stream and the backfill share them.

    ``scoring``: also ask for risk scores (the dataflow, when a model is loaded).
    """
    rules = detector_rules(settings, feature_set)
    return AccountConfig(
        dedupe_window_seconds=settings.dedupe_window.total_seconds(),
        dedupe_max_ids=settings.dedupe_max_ids_per_account,
        tier1_rules=rules.tier1,
        # A day is judged once the watermark (newest minus lateness) has passed it:
        # keep that many days more than the windows need.
        features=CompiledFeatures(
            feature_set,
            grace_days=math.ceil(settings.allowed_lateness.total_seconds() / 86_400) + 1,
        ),
        allowed_lateness_seconds=settings.allowed_lateness.total_seconds(),
        usage_rules=rules.usage,
        lifecycle=rules.lifecycle,
        idle_expiry_seconds=idle_state_ttl(settings).total_seconds(),
        scoring=ScoringConfig(
            debounce_seconds=settings.score_debounce.total_seconds(),
            rule_ttl_seconds=settings.score_ttl.total_seconds(),
            rescore_silent_seconds=rescore_silent(settings).total_seconds(),
        )
        if scoring
        else None,
    )


def rescore_silent(settings: Settings) -> timedelta:
    """How long a silent account is rescored at day closes: checked to end a week before
    its state may be forgotten, so that whether a shard still holds an account (judged
    on the shard's watermark, which may run ahead of the account's partition) never
    decides whether it is rescored."""
    limit = idle_state_ttl(settings) - timedelta(days=7)
    if settings.rescore_silent > limit:
        raise ConfigurationError(
            "CHURNWATCH_RESCORE_SILENT_SECONDS",
            f"{settings.rescore_silent.total_seconds():.0f} s is more than the state's idle"
            f" TTL less a week ({limit.total_seconds():.0f} s): raise"
            " CHURNWATCH_FEATURE_TTL_SECONDS or lower this",
        )
    return settings.rescore_silent


def idle_state_ttl(settings: Settings) -> timedelta:
    """How long an account may be silent before its state is forgotten: as long as its
    online features live (every window has passed by then), and at least two dedupe
    windows. In event time, an account silent this long starts afresh on its next
    event; in memory, the stream drops its state once this long has passed in event
    time or on the wall clock, whichever comes first."""
    return max(settings.feature_ttl, settings.dedupe_window * 2)


def risk_policy(settings: Settings) -> RiskPolicy:
    """How scores become tiers and which are published, under these settings (the
    stream and the API's on-demand scoring alike).

    Tiers, first found: ``CHURNWATCH_RISK_TIERS`` if set; else the live model's own
    (its metadata's, set by training; they follow a reloaded model); else 0.4 / 0.7.
    """
    fixed = settings.risk_tiers
    medium, high = fixed if fixed is not None else DEFAULT_RISK_TIERS
    return RiskPolicy(
        medium_at=medium,
        high_at=high,
        tiers_from_model=fixed is None,
        blend=Blend(settings.risk_blend),
        ttl=settings.score_ttl,
        debounce=settings.score_debounce,
        min_change=settings.score_min_change,
        refresh_before=settings.score_refresh_before,
    )


def _log_tiers(policy: RiskPolicy, model: RiskModel) -> None:
    """Say at start where the tiers come from (the settings, the model, the defaults)."""
    tiers = policy.for_model(model)
    if not policy.tiers_from_model:
        source = "CHURNWATCH_RISK_TIERS"
    elif model.metadata.tiers is not None:
        source = f"model {model.model_version} ({model.metadata.tiers.method})"
    else:
        source = "the defaults (the model carries none)"
    log.info("risk tiers: medium >= %.4g, high >= %.4g, from %s", tiers.medium_at,
             tiers.high_at, source)


def policy_vocabulary(settings: Settings, feature_set: FeatureSet) -> Vocabulary:
    """The triggers and features a policy may name under these settings: the definitions'
    tier-1 rules and signals, the risk-tier rises, and the features."""
    rules = detector_rules(settings, feature_set)
    return vocabulary_for(
        (r.rule for r in rules.tier1.values()),
        feature_set.names,
        signals=rules.usage.names(),
        source=feature_set.source,
    )


def scoring_stage(
    settings: Settings,
    feature_set: FeatureSet,
    *,
    consent: ConsentLookup = no_consent_records,
    alert_statuses: AlertStatusLookup = no_alert_statuses,
    accept_policy: Callable[[Policy], None] | None = None,
    on_policy_change: Callable[[str, Policy], None] | None = None,
    on_model_change: Callable[[str, str, RiskModel], None] | None = None,
) -> ScoringStage | None:
    """Load the model (and shadow) and the decision policy; refuses a mismatch or an
    invalid policy at start. ``consent``: the do-not-contact directory (none for a
    file replay); ``accept_policy``: a check every policy (and reload) must pass;
    ``on_model_change(role, outcome, model)``: hears each model's loads and reloads."""
    if settings.model_dir is None:
        return None

    def reloading(directory: Path, role: str) -> ModelHolder:
        """The model in ``directory``, re-read when it changes (the last good one kept)."""
        hear = on_model_change
        return ModelHolder(
            directory,
            feature_set.version,
            feature_set.names,
            check_seconds=settings.model_reload_interval.total_seconds(),
            role=role,
            on_change=None if hear is None else (lambda outcome, m: hear(role, outcome, m)),
        )

    model = reloading(settings.model_dir, "primary")
    shadow = (
        reloading(settings.shadow_model_dir, "shadow") if settings.shadow_model_dir else None
    )
    policy = risk_policy(settings)
    _log_tiers(policy, model.current())
    engine = None
    if settings.policy_file is not None:
        holder = PolicyHolder(
            settings.policy_file,
            policy_vocabulary(settings, feature_set),
            check_seconds=settings.policy_reload_interval.total_seconds(),
            accept=accept_policy,
            on_change=on_policy_change,
        )
        engine = DecisionEngine(holder, feature_set.names, consent, alert_statuses)
    return ScoringStage(model, policy, shadow, engine)


def flow_config(
    settings: Settings,
    feature_set: FeatureSet | None = None,
    *,
    consent: ConsentLookup = no_consent_records,
    alert_statuses: AlertStatusLookup = no_alert_statuses,
    accept_policy: Callable[[Policy], None] | None = None,
    on_policy_change: Callable[[str, Policy], None] | None = None,
    on_model_change: Callable[[str, str, RiskModel], None] | None = None,
) -> FlowConfig:
    feature_set = feature_set or load_definitions(settings.feature_definitions)
    scoring = scoring_stage(
        settings,
        feature_set,
        consent=consent,
        alert_statuses=alert_statuses,
        accept_policy=accept_policy,
        on_policy_change=on_policy_change,
        on_model_change=on_model_change,
    )
    return FlowConfig(
        limits=event_limits(settings),
        account=account_config(settings, feature_set, scoring=scoring is not None),
        idle_state_ttl=idle_state_ttl(settings),
        absences=detector_rules(settings, feature_set).usage.absences,
        feature_flush_interval=settings.feature_flush_interval,
        scoring=scoring,
        shards=settings.shards,
        erased_events=settings.erased_events,
        decoder=input_decoder(settings),
        account_traits=settings.account_traits,
        warm_accounts=settings.warm_accounts,
        state_dictionary_samples=settings.state_dictionary_samples,
    )


def kafka_writer(settings: Settings, *, client_id: str = "churnwatch") -> KafkaWriter:
    """A producer for churnwatch's topics, with the configured librdkafka properties
    (``CHURNWATCH_KAFKA_CONFIG``)."""
    if not settings.kafka_bootstrap:
        raise ConfigurationError("CHURNWATCH_KAFKA_BOOTSTRAP", "required to write to Kafka")
    return KafkaWriter(
        settings.kafka_bootstrap, client_id=client_id, config=settings.kafka_config.properties
    )


def events_source(settings: Settings, metrics: PipelineMetrics, *, tail: bool) -> EventsSource:
    """The Kafka input over the events topic (its consumers and its admin client get
    ``CHURNWATCH_KAFKA_CONFIG``). ``tail=False`` ends at the end of input."""
    if not settings.kafka_bootstrap:
        raise ConfigurationError("CHURNWATCH_KAFKA_BOOTSTRAP", "required to read the events")
    return EventsSource(
        settings.kafka_bootstrap,
        settings.topics.events,
        tail=tail,
        batch_size=settings.input_batch_size,
        heartbeat=metrics.last_batch,
        config=settings.kafka_config.properties,
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
    _, database_url = _require(settings)
    if not settings.redis_url:
        raise ConfigurationError("CHURNWATCH_REDIS_URL", "required to run the dataflow")
    redis_url = settings.redis_url
    topics = settings.topics
    schema = settings.database_schema
    tier1_rules = detector_rules(settings, feature_set).tier1

    def kafka(
        name: str, topic: str, encode: Callable[[Any], KafkaMessage], **kw: Any
    ) -> WriterSink:
        """A Kafka topic sink: one producer per worker, an encoder per record kind."""
        return WriterSink(
            name, lambda: KafkaTopicSink(kafka_writer(settings), topic, encode, **kw), metrics
        )

    def postgres(name: str, sink: Callable[[str, str], Any]) -> WriterSink:
        """A Postgres sink: one connection per worker, in churnwatch's schema."""
        return WriterSink(name, lambda: sink(database_url, schema), metrics)

    def feature_store() -> RedisFeatureStore:
        return RedisFeatureStore.from_url(
            redis_url,
            feature_set.names,
            feature_set.version,
            settings.feature_ttl,
            prefix=settings.redis_key_prefix,
        )

    return FlowSinks(
        dead_letters=kafka(
            "kafka-dead-letters", topics.dead_letters, dead_letter_message, log_batches=True
        ),
        alerts_kafka=WriterSink(
            "kafka-alerts",
            lambda: KafkaTopicSink(kafka_writer(settings), topics.alerts, alert_message),
            metrics,
            on_written=alert_latency_observer(metrics),
        ),
        alerts_postgres=postgres("postgres-alerts", PostgresAlertSink),
        cancellations=postgres("postgres-cancellations", PostgresCancellationSink),
        outcomes=postgres("postgres-workflow-outcomes", PostgresOutcomeSink),
        late_events=kafka("kafka-late-events", topics.late, late_event_message),
        features=WriterSink("redis-features", feature_store, metrics),
        usage_signals=postgres("postgres-usage-signals", PostgresUsageSignalSink),
        risk_scores=postgres("postgres-risk-scores", PostgresRiskScoreSink),
        scores_kafka=kafka("kafka-scores", topics.scores, score_message),
        decisions=postgres("postgres-decisions", PostgresDecisionSink),
        workflows_kafka=kafka("kafka-workflows", topics.workflows, workflow_message),
        fast_lane=(
            (lambda: Tier1Lane(kafka_writer(settings), topics.alerts, tier1_rules,
                               metrics))
            if settings.tier1_fast_lane
            else None
        ),
        erasures=WriterSink(
            "erasures", lambda: ErasureSink(database_url, schema, feature_store()), metrics
        ),
        accounts=postgres("postgres-accounts", PostgresAccountSink),
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
    # What people did with alerts through the API (policy rules on alert_status), read as
    # often as consent.
    statuses = PostgresAlertStatusDirectory(
        database_url, schema, settings.consent_refresh.total_seconds(), settings.alert_expiry
    )
    return flow_config(
        settings,
        feature_set,
        consent=consent.lookup,
        alert_statuses=statuses.lookup,
        accept_policy=lambda policy: register_experiments(database_url, schema, policy),
        on_policy_change=lambda outcome, policy: _observe_policy(metrics, outcome, policy),
        on_model_change=_model_observer(metrics),
    )


def _observe_policy(metrics: PipelineMetrics, outcome: str, policy: Policy) -> None:
    metrics.policy_version.info({"policy_version": policy.version, "digest": policy.digest})
    if outcome != "loaded":
        metrics.policy_reloads.labels(outcome=outcome).inc()


def _model_observer(metrics: PipelineMetrics) -> Callable[[str, str, RiskModel], None]:
    """Keeps ``churnwatch_model_info`` on the live versions and counts reloads."""
    live = {"model_version": "", "shadow_model_version": ""}

    def observe(role: str, outcome: str, model: RiskModel) -> None:
        live["shadow_model_version" if role == "shadow" else "model_version"] = (
            model.model_version
        )
        metrics.model_version.info(dict(live))
        if outcome != "loaded":
            metrics.model_reloads.labels(model=role, outcome=outcome).inc()

    return observe


def with_recovery_logs(config: FlowConfig, settings: Settings) -> FlowConfig:
    """``config`` for a run with recovery: the shards' accounts in the shard log of
    its recovery directory (dataflows.shard_log) and the input partitions' absence
    trackers in its absence log (dataflows.absence_log), replaced files kept for 20
    epochs and at least 10 minutes (a restart resumes from the last committed epoch)."""
    if settings.recovery_dir is None:
        return config
    return replace(
        config,
        shard_log_dir=settings.recovery_dir / SHARD_LOG_FOLDER,
        absence_log_dir=settings.recovery_dir / ABSENCE_LOG_FOLDER,
        shard_log_retain=max(timedelta(minutes=10), 20 * settings.snapshot_interval),
    )


def production_flow(
    settings: Settings,
    metrics: PipelineMetrics,
    *,
    tail: bool,
    clock: Callable[[], datetime] = utc_now,
) -> Dataflow:
    """The dataflow over the events topic. ``tail=False`` stops at the end of input."""
    _require(settings)
    feature_set = load_definitions(settings.feature_definitions)
    warn_deprecated_rules(settings)
    metrics.feature_version.info(
        {"feature_version": feature_set.version, "definitions": feature_set.source}
    )
    config = with_recovery_logs(production_config(settings, feature_set, metrics), settings)
    return build_dataflow(
        events_source(settings, metrics, tail=tail),
        production_sinks(settings, metrics, feature_set),
        config,
        metrics,
        clock=clock,
    )
