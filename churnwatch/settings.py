"""One frozen settings object, built from ``CHURNWATCH_*`` variables in one place.

Library code never reads ``os.environ``: it is handed a :class:`Settings` (or
the plain values it needs). ``Settings.from_env`` is the only reader, and
``ENV_VARIABLES`` lists every variable it understands so the README and
``docker-compose.yml`` can be checked against it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import orjson

from accounts.record import AccountTraits, parse_account_traits
from churnwatch.errors import ConfigurationError
from churnwatch.kafka_config import KafkaClientConfig, load_kafka_config
from detectors.definitions import DetectorRules, compile_detectors
from detectors.tier1 import Tier1Rule, parse_tier1_rules
from detectors.usage import UsageRules, parse_usage_rules
from featurestore.definitions import FeatureSet, load_definitions
from schemas.erasure import ErasedEvents
from schemas.event import EARLIEST_EVENT_TIME, format_time
from schemas.formats.decode import InputFormat

PREFIX = "CHURNWATCH_"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "scoring" / "models" / "default"
DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "decisions" / "policies" / "default.yaml"


@dataclass(frozen=True, slots=True)
class Topics:
    """Kafka topic names; tests give each run its own."""

    events: str = "churn.events"
    dead_letters: str = "churn.events.dlq"
    alerts: str = "churn.alerts"
    late: str = "churn.events.late"
    scores: str = "churn.scores"
    workflows: str = "churn.workflow-triggers"
    alert_states: str = "churn.alert-states"  # the API's alert lifecycle changes

    def all(self) -> tuple[str, ...]:
        return (self.events, self.dead_letters, self.alerts, self.late, self.scores,
                self.workflows, self.alert_states)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long ``churnwatch db prune`` keeps table rows, by event time; None: forever.

    See sinks/retention.py for the time column of each table and what is kept
    regardless (active workflow triggers, the tables never pruned).
    """

    risk_scores: timedelta | None = timedelta(days=90)
    alerts: timedelta | None = timedelta(days=365)
    usage_signals: timedelta | None = timedelta(days=365)
    cancellations: timedelta | None = timedelta(days=730)
    decisions: timedelta | None = timedelta(days=730)
    # triggers, their signals and their outcomes alike
    workflows: timedelta | None = timedelta(days=730)

    def tables(self) -> dict[str, timedelta | None]:
        """Table name -> retention, as :func:`sinks.retention.prune` takes it."""
        return {
            "risk_scores": self.risk_scores,
            "alerts": self.alerts,
            "usage_signals": self.usage_signals,
            "cancellation_reasons": self.cancellations,
            "decisions": self.decisions,
            "workflow_signals": self.workflows,
            "workflow_outcomes": self.workflows,
            "workflow_triggers": self.workflows,
        }


# Secrets a connection string can carry, however it is written: the URL's
# password, a query parameter, or a libpq keyword (``host=... password=...``).
_SECRET_KEYS = ("password", "sslpassword", "ssl_password", "passfile", "secret", "token")
_SECRET_NAMES = "|".join(_SECRET_KEYS)
_QUERY_SECRET = re.compile(rf"(?i)([?&](?:{_SECRET_NAMES})=)[^&#]*")
_KEYWORD_SECRET = re.compile(rf"""(?i)\b((?:{_SECRET_NAMES})\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)""")


def _redact_url(url: str | None) -> str | None:
    """Hide every secret of a connection string so settings can be logged: the
    URL's password, secret query parameters, and libpq ``keyword=value`` secrets."""
    if not url:
        return url
    if "://" not in url:  # libpq keyword form: host=db user=cw password=...
        return _KEYWORD_SECRET.sub(r"\1***", url)
    redacted = _QUERY_SECRET.sub(r"\1***", url)
    try:
        parts = urlsplit(redacted)
        password = parts.password
    except ValueError:  # not a URL after all: hide anything that looks like a secret
        return _KEYWORD_SECRET.sub(r"\1***", redacted)
    if password is None:
        return redacted
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything churnwatch can be configured with.

    ``None`` for a server URL means "start the embedded local server" in the
    commands that can (``demo``, the tests); ``run`` requires all three.
    """

    kafka_bootstrap: str | None = None
    # librdkafka properties of every Kafka client (security, tuning): churnwatch.kafka_config
    kafka_config: KafkaClientConfig = field(default_factory=KafkaClientConfig)
    redis_url: str | None = None
    database_url: str | None = None
    database_schema: str = "churnwatch"
    # The REST API's connection (a member of the <schema>_api role); None: database_url
    api_database_url: str | None = None
    # An alert not resolved reads as expired this long after its last change (or its
    # event time) in the API; None: never
    alert_expiry: timedelta | None = timedelta(days=30)
    # Confluent Schema Registry (sinks.schema_registry); None: not used. Its client
    # properties (basic.auth.user.info, ssl.*, timeout ...) beside it.
    schema_registry_url: str | None = None
    schema_registry_config: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    redis_key_prefix: str = "cw"
    topics: Topics = field(default_factory=Topics)
    topic_partitions: int = 4
    # Replicas of the topics churnwatch creates, and min.insync.replicas on them: a
    # 3-broker cluster by default (the embedded single broker: 1 and 1, LocalStack)
    topic_replication_factor: int = 3
    topic_min_insync_replicas: int = 2
    # retention.ms of the topics churnwatch creates; None: the broker's default
    dead_letter_retention: timedelta | None = timedelta(days=30)
    output_topic_retention: timedelta | None = None  # alerts, scores, workflows, late events
    retention: Retention = field(default_factory=Retention)  # tables (churnwatch db prune)
    # Ingest contract
    max_message_bytes: int = 64 * 1024
    max_future_skew: timedelta = timedelta(hours=1)
    earliest_event_time: datetime = EARLIEST_EVENT_TIME
    max_event_age: timedelta | None = None  # None: no limit (replays of old histories)
    # Dedupe by event_id, in event time, bounded per account
    dedupe_window: timedelta = timedelta(hours=24)
    dedupe_max_ids_per_account: int = 10_000
    # Features and detectors
    feature_definitions: Path | None = None  # None: the shipped default file
    allowed_lateness: timedelta = timedelta(hours=1)
    feature_ttl: timedelta = timedelta(days=40)
    feature_flush_interval: timedelta = timedelta(seconds=5)
    # Deprecated overrides of the definitions file's tier1 section and signal thresholds
    # (CHURNWATCH_TIER1_RULES, CHURNWATCH_USAGE_RULES); None: the file's. The rules in
    # force: detector_rules() (and the tier1_rules and usage_rules properties).
    tier1_rules_override: Mapping[str, Tier1Rule] | None = None
    tier1_fast_lane: bool = True  # tier-1 alerts to Kafka from the input (dataflows.fast_lane)
    # An erased subject's later events: refused (dead-lettered, no trace) or kept.
    erased_events: ErasedEvents = ErasedEvents.REFUSE
    usage_rules_override: Mapping[str, object] | None = None
    # Which traits mean company name, plan, MRR, renewal date and owner (accounts table)
    account_traits: AccountTraits = field(default_factory=AccountTraits)
    # Scoring
    model_dir: Path | None = DEFAULT_MODEL_DIR  # None: no scoring
    shadow_model_dir: Path | None = None
    # How often a running flow looks for a changed model (and shadow) directory; 0: never
    model_reload_interval: timedelta = timedelta(seconds=30)
    score_debounce: timedelta = timedelta(minutes=30)
    score_ttl: timedelta = timedelta(days=7)
    score_min_change: float = 0.045  # on the arcsine scale (ScorePublisher.moved); 0: every score
    score_refresh_before: timedelta = timedelta(days=1)
    # At each event-time day close, an account silent that whole day is rescored as of
    # its end, until it has been silent this long; 0: silent accounts are not rescored.
    rescore_silent: timedelta = timedelta(days=30)
    # None: the model's own tiers (set by training, in its metadata), else 0.4/0.7
    risk_tiers: tuple[float, float] | None = None
    risk_blend: str = "max"
    # Decisions (they build on scores: no model, no decisions)
    policy_file: Path | None = DEFAULT_POLICY  # None: no decisions, no workflow triggers
    consent_refresh: timedelta = timedelta(seconds=30)
    # How often a running flow looks for a changed policy file; 0: never
    policy_reload_interval: timedelta = timedelta(seconds=10)
    # Engine
    input_batch_size: int = 5_000
    # What the events topic carries (schemas.formats): native, segment, cloudevents, auto;
    # a foreign format is mapped by input_mapping (None: the shipped default mapping).
    input_format: InputFormat = InputFormat.NATIVE
    input_mapping: Path | None = None
    shards: int = 64  # accounts are grouped in this many units of state
    # Accounts held as live objects at most (all shards); the others as their bytes.
    warm_accounts: int = 32_000
    # Account states a process trains its zstd dictionary on (dataflows.state_codec);
    # 0: states packed without one.
    state_dictionary_samples: int = 500
    recovery_dir: Path | None = Path(".churnwatch/recovery")
    recovery_partitions: int = 4
    snapshot_interval: timedelta = timedelta(seconds=10)
    state_dir: Path = Path(".churnwatch")
    # Operations
    metrics_port: int = 9464  # 0: no /metrics, /healthz, /readyz server
    log_format: str = "json"

    def __repr__(self) -> str:  # secrets stay out of logs
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("kafka_bootstrap", "redis_url", "database_url", "api_database_url"):
            values[name] = _redact_url(values[name])
        if self.schema_registry_url:  # a list of URLs, any of which may carry userinfo
            values["schema_registry_url"] = ",".join(
                str(_redact_url(url)) for url in self.schema_registry_url.split(",")
            )
        values["schema_registry_config"] = _redact_properties(values["schema_registry_config"])
        inner = ", ".join(f"{k}={v!r}" for k, v in values.items())
        return f"Settings({inner})"

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def tier1_rules(self) -> Mapping[str, Tier1Rule]:
        """The tier-1 rules in force: the definitions file's, or the override (reads the
        definitions file: see :meth:`detector_rules`)."""
        return self.detector_rules().tier1

    @property
    def usage_rules(self) -> UsageRules:
        """The usage signals in force: the definitions file's, with the overrides (reads
        the definitions file: see :meth:`detector_rules`)."""
        return self.detector_rules().usage

    def detector_rules(self, feature_set: FeatureSet | None = None) -> DetectorRules:
        """The detectors' rules: the definitions file's signals, tier-1 rules and
        lifecycle mapping (``feature_set``, else the file of these settings, loaded and
        checked: a problem names the file and line), with the deprecated overrides
        applied: ``CHURNWATCH_TIER1_RULES`` replaces the tier-1 rules,
        ``CHURNWATCH_USAGE_RULES`` changes thresholds of the file's signals."""
        feature_set = feature_set or load_definitions(self.feature_definitions)
        rules = compile_detectors(feature_set)
        tier1, usage = rules.tier1, rules.usage
        if self.tier1_rules_override is not None:
            tier1 = self.tier1_rules_override
        if self.usage_rules_override is not None:
            try:
                usage = parse_usage_rules(dict(self.usage_rules_override), usage)
            except ValueError as exc:
                raise ConfigurationError(
                    PREFIX + "USAGE_RULES", f"{exc} (signals of {feature_set.source})"
                ) from None
        return DetectorRules(usage, tier1, rules.lifecycle)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from a mapping such as ``os.environ``.

        Unknown ``CHURNWATCH_*`` variables are refused, so a typo never goes
        unnoticed.
        """
        unknown = sorted(k for k in environ if k.startswith(PREFIX) and k not in ENV_VARIABLES)
        if unknown:
            raise ConfigurationError(unknown[0], "unknown variable (see README, Configuration)")
        reader = _EnvReader(environ)
        defaults = cls()
        default_topics = defaults.topics
        replication = reader.positive_int(
            "TOPIC_REPLICATION_FACTOR", defaults.topic_replication_factor
        )
        recovery = reader.text("RECOVERY_DIR", str(defaults.recovery_dir))
        return cls(
            kafka_bootstrap=reader.optional("KAFKA_BOOTSTRAP"),
            kafka_config=load_kafka_config(environ.get(PREFIX + "KAFKA_CONFIG"), environ),
            redis_url=reader.redis_url("REDIS_URL"),
            database_url=reader.optional("DATABASE_URL"),
            api_database_url=reader.optional("API_DATABASE_URL"),
            alert_expiry=reader.days_or_off("ALERT_EXPIRY_DAYS", defaults.alert_expiry),
            schema_registry_url=reader.http_urls("SCHEMA_REGISTRY_URL"),
            schema_registry_config=reader.client_properties("SCHEMA_REGISTRY_CONFIG"),
            database_schema=reader.identifier("DATABASE_SCHEMA", defaults.database_schema),
            redis_key_prefix=reader.text("REDIS_KEY_PREFIX", defaults.redis_key_prefix),
            topics=Topics(
                events=reader.text("TOPIC_EVENTS", default_topics.events),
                dead_letters=reader.text("TOPIC_DEAD_LETTERS", default_topics.dead_letters),
                alerts=reader.text("TOPIC_ALERTS", default_topics.alerts),
                late=reader.text("TOPIC_LATE", default_topics.late),
                scores=reader.text("TOPIC_SCORES", default_topics.scores),
                workflows=reader.text("TOPIC_WORKFLOWS", default_topics.workflows),
                alert_states=reader.text("TOPIC_ALERT_STATES", default_topics.alert_states),
            ),
            topic_partitions=reader.positive_int("TOPIC_PARTITIONS", defaults.topic_partitions),
            topic_replication_factor=replication,
            topic_min_insync_replicas=reader.min_insync_replicas(
                "TOPIC_MIN_INSYNC_REPLICAS", defaults.topic_min_insync_replicas, replication
            ),
            dead_letter_retention=reader.days_or_off(
                "RETAIN_DEAD_LETTERS_DAYS", defaults.dead_letter_retention
            ),
            output_topic_retention=reader.days_or_off(
                "RETAIN_OUTPUT_TOPICS_DAYS", defaults.output_topic_retention
            ),
            retention=Retention(
                risk_scores=reader.days_or_off(
                    "RETAIN_RISK_SCORES_DAYS", defaults.retention.risk_scores
                ),
                alerts=reader.days_or_off("RETAIN_ALERTS_DAYS", defaults.retention.alerts),
                usage_signals=reader.days_or_off(
                    "RETAIN_USAGE_SIGNALS_DAYS", defaults.retention.usage_signals
                ),
                cancellations=reader.days_or_off(
                    "RETAIN_CANCELLATIONS_DAYS", defaults.retention.cancellations
                ),
                decisions=reader.days_or_off("RETAIN_DECISIONS_DAYS", defaults.retention.decisions),
                workflows=reader.days_or_off("RETAIN_WORKFLOWS_DAYS", defaults.retention.workflows),
            ),
            max_message_bytes=reader.positive_int("MAX_MESSAGE_BYTES", defaults.max_message_bytes),
            max_future_skew=reader.seconds("MAX_FUTURE_SKEW_SECONDS", defaults.max_future_skew),
            earliest_event_time=reader.instant(
                "EARLIEST_EVENT_TIME", defaults.earliest_event_time
            ),
            max_event_age=reader.days_or_off("MAX_EVENT_AGE_DAYS", defaults.max_event_age),
            dedupe_window=reader.seconds("DEDUPE_WINDOW_SECONDS", defaults.dedupe_window),
            dedupe_max_ids_per_account=reader.positive_int(
                "DEDUPE_MAX_IDS_PER_ACCOUNT", defaults.dedupe_max_ids_per_account
            ),
            feature_definitions=reader.optional_path("FEATURE_DEFINITIONS"),
            allowed_lateness=reader.seconds("ALLOWED_LATENESS_SECONDS", defaults.allowed_lateness),
            feature_ttl=reader.seconds("FEATURE_TTL_SECONDS", defaults.feature_ttl),
            feature_flush_interval=reader.seconds(
                "FEATURE_FLUSH_SECONDS", defaults.feature_flush_interval
            ),
            tier1_rules_override=reader.tier1_rules("TIER1_RULES"),
            erased_events=ErasedEvents(reader.choice(
                "ERASED_EVENTS", str(defaults.erased_events), tuple(str(e) for e in ErasedEvents)
            )),
            tier1_fast_lane=reader.choice(
                "TIER1_FAST_LANE", "on" if defaults.tier1_fast_lane else "off", ("on", "off")
            ) == "on",
            usage_rules_override=reader.usage_rules("USAGE_RULES"),
            account_traits=reader.account_traits("ACCOUNT_TRAITS", defaults.account_traits),
            model_dir=reader.path_or_off("MODEL_DIR", defaults.model_dir),
            shadow_model_dir=reader.optional_path("SHADOW_MODEL_DIR"),
            model_reload_interval=reader.seconds_or_never(
                "MODEL_RELOAD_SECONDS", defaults.model_reload_interval
            ),
            score_debounce=reader.seconds("SCORE_DEBOUNCE_SECONDS", defaults.score_debounce),
            score_ttl=reader.seconds("SCORE_TTL_SECONDS", defaults.score_ttl),
            score_min_change=reader.fraction("SCORE_MIN_CHANGE", defaults.score_min_change),
            score_refresh_before=reader.seconds(
                "SCORE_REFRESH_BEFORE_SECONDS", defaults.score_refresh_before
            ),
            rescore_silent=reader.seconds_or_never(
                "RESCORE_SILENT_SECONDS", defaults.rescore_silent
            ),
            risk_tiers=reader.optional_tiers("RISK_TIERS"),
            risk_blend=reader.choice("RISK_BLEND", defaults.risk_blend, ("max", "ml", "rules")),
            policy_file=reader.path_or_off("POLICY", defaults.policy_file),
            consent_refresh=reader.seconds("CONSENT_REFRESH_SECONDS", defaults.consent_refresh),
            policy_reload_interval=reader.seconds_or_never(
                "POLICY_RELOAD_SECONDS", defaults.policy_reload_interval
            ),
            input_batch_size=reader.positive_int("INPUT_BATCH_SIZE", defaults.input_batch_size),
            input_format=InputFormat(reader.choice(
                "INPUT_FORMAT", str(defaults.input_format), tuple(str(f) for f in InputFormat)
            )),
            input_mapping=reader.optional_path("INPUT_MAPPING"),
            shards=reader.positive_int("SHARDS", defaults.shards),
            warm_accounts=reader.positive_int("WARM_ACCOUNTS", defaults.warm_accounts),
            state_dictionary_samples=reader.non_negative_int(
                "STATE_DICTIONARY_SAMPLES", defaults.state_dictionary_samples),
            recovery_dir=Path(recovery) if recovery.lower() not in ("", "none", "off") else None,
            recovery_partitions=reader.positive_int(
                "RECOVERY_PARTITIONS", defaults.recovery_partitions
            ),
            snapshot_interval=reader.seconds(
                "SNAPSHOT_INTERVAL_SECONDS", defaults.snapshot_interval
            ),
            state_dir=Path(reader.text("STATE_DIR", str(defaults.state_dir))),
            metrics_port=reader.port("METRICS_PORT", defaults.metrics_port),
            log_format=reader.choice("LOG_FORMAT", defaults.log_format, ("json", "text")),
        )

    def to_env(self) -> dict[str, str]:
        """The ``CHURNWATCH_*`` variables that rebuild these settings (for child processes)."""
        env = {
            "DATABASE_SCHEMA": self.database_schema,
            "REDIS_KEY_PREFIX": self.redis_key_prefix,
            "TOPIC_EVENTS": self.topics.events,
            "TOPIC_DEAD_LETTERS": self.topics.dead_letters,
            "TOPIC_ALERTS": self.topics.alerts,
            "TOPIC_LATE": self.topics.late,
            "TOPIC_SCORES": self.topics.scores,
            "TOPIC_WORKFLOWS": self.topics.workflows,
            "TOPIC_ALERT_STATES": self.topics.alert_states,
            "ALERT_EXPIRY_DAYS": _days_or_off(self.alert_expiry),
            "POLICY": str(self.policy_file) if self.policy_file else "off",
            "CONSENT_REFRESH_SECONDS": str(self.consent_refresh.total_seconds()),
            "POLICY_RELOAD_SECONDS": str(self.policy_reload_interval.total_seconds()),
            "MODEL_RELOAD_SECONDS": str(self.model_reload_interval.total_seconds()),
            "MODEL_DIR": str(self.model_dir) if self.model_dir else "off",
            "SCORE_DEBOUNCE_SECONDS": str(self.score_debounce.total_seconds()),
            "SCORE_TTL_SECONDS": str(self.score_ttl.total_seconds()),
            "SCORE_MIN_CHANGE": repr(self.score_min_change),
            "SCORE_REFRESH_BEFORE_SECONDS": str(self.score_refresh_before.total_seconds()),
            "RESCORE_SILENT_SECONDS": str(self.rescore_silent.total_seconds()),
            **({"RISK_TIERS": f"{self.risk_tiers[0]},{self.risk_tiers[1]}"}
               if self.risk_tiers is not None else {}),
            "RISK_BLEND": self.risk_blend,
            "ALLOWED_LATENESS_SECONDS": str(self.allowed_lateness.total_seconds()),
            "FEATURE_TTL_SECONDS": str(self.feature_ttl.total_seconds()),
            "FEATURE_FLUSH_SECONDS": str(self.feature_flush_interval.total_seconds()),
            "ACCOUNT_TRAITS": orjson.dumps(self.account_traits.to_document()).decode(),
            "TOPIC_PARTITIONS": str(self.topic_partitions),
            "TOPIC_REPLICATION_FACTOR": str(self.topic_replication_factor),
            "TOPIC_MIN_INSYNC_REPLICAS": str(self.topic_min_insync_replicas),
            "RETAIN_DEAD_LETTERS_DAYS": _days_or_off(self.dead_letter_retention),
            "RETAIN_OUTPUT_TOPICS_DAYS": _days_or_off(self.output_topic_retention),
            "RETAIN_RISK_SCORES_DAYS": _days_or_off(self.retention.risk_scores),
            "RETAIN_ALERTS_DAYS": _days_or_off(self.retention.alerts),
            "RETAIN_USAGE_SIGNALS_DAYS": _days_or_off(self.retention.usage_signals),
            "RETAIN_CANCELLATIONS_DAYS": _days_or_off(self.retention.cancellations),
            "RETAIN_DECISIONS_DAYS": _days_or_off(self.retention.decisions),
            "RETAIN_WORKFLOWS_DAYS": _days_or_off(self.retention.workflows),
            "MAX_MESSAGE_BYTES": str(self.max_message_bytes),
            "MAX_FUTURE_SKEW_SECONDS": str(self.max_future_skew.total_seconds()),
            "EARLIEST_EVENT_TIME": format_time(self.earliest_event_time),
            "MAX_EVENT_AGE_DAYS": str(self.max_event_age.total_seconds() / 86_400)
            if self.max_event_age
            else "off",
            "DEDUPE_WINDOW_SECONDS": str(self.dedupe_window.total_seconds()),
            "DEDUPE_MAX_IDS_PER_ACCOUNT": str(self.dedupe_max_ids_per_account),
            "TIER1_FAST_LANE": "on" if self.tier1_fast_lane else "off",
            "ERASED_EVENTS": str(self.erased_events),
            "INPUT_BATCH_SIZE": str(self.input_batch_size),
            "INPUT_FORMAT": str(self.input_format),
            "SHARDS": str(self.shards),
            "WARM_ACCOUNTS": str(self.warm_accounts),
            "STATE_DICTIONARY_SAMPLES": str(self.state_dictionary_samples),
            "RECOVERY_DIR": str(self.recovery_dir) if self.recovery_dir else "off",
            "RECOVERY_PARTITIONS": str(self.recovery_partitions),
            "SNAPSHOT_INTERVAL_SECONDS": str(self.snapshot_interval.total_seconds()),
            "STATE_DIR": str(self.state_dir),
            "METRICS_PORT": str(self.metrics_port),
            "LOG_FORMAT": self.log_format,
        }
        if self.feature_definitions is not None:
            env["FEATURE_DEFINITIONS"] = str(self.feature_definitions)
        if self.usage_rules_override is not None:
            env["USAGE_RULES"] = orjson.dumps(self.usage_rules_override).decode()
        if self.tier1_rules_override is not None:
            env["TIER1_RULES"] = orjson.dumps({
                event_type: {"rule": r.rule, "severity": str(r.severity), "reason": r.reason}
                for event_type, r in self.tier1_rules_override.items()
            }).decode()
        if self.shadow_model_dir is not None:
            env["SHADOW_MODEL_DIR"] = str(self.shadow_model_dir)
        if self.input_mapping is not None:
            env["INPUT_MAPPING"] = str(self.input_mapping)
        for name, value in (
            ("KAFKA_BOOTSTRAP", self.kafka_bootstrap),
            # the references, not the secrets: the child resolves them again
            ("KAFKA_CONFIG", self.kafka_config.to_env()),
            ("REDIS_URL", self.redis_url),
            ("DATABASE_URL", self.database_url),
            ("API_DATABASE_URL", self.api_database_url),
            ("SCHEMA_REGISTRY_URL", self.schema_registry_url),
        ):
            if value:
                env[name] = value
        if self.schema_registry_config:
            env["SCHEMA_REGISTRY_CONFIG"] = orjson.dumps(dict(self.schema_registry_config)).decode()
        return {PREFIX + k: v for k, v in env.items()}


# Every variable Settings.from_env reads, with a one-line meaning (README table).
ENV_VARIABLES: dict[str, str] = {
    f"{PREFIX}KAFKA_BOOTSTRAP": "Kafka bootstrap servers (host:port,...); unset: embedded broker",
    f"{PREFIX}KAFKA_CONFIG": "librdkafka properties for every Kafka client (security, tuning):"
    " a JSON object, or a JSON, YAML or .properties file; secrets as ${file:PATH} or"
    " ${env:NAME} (see Connecting your platform)",
    f"{PREFIX}REDIS_URL": "Redis URL (redis://host:port/db); unset: embedded Redis",
    f"{PREFIX}DATABASE_URL": "PostgreSQL URL (postgresql://...); unset: embedded PostgreSQL",
    f"{PREFIX}SCHEMA_REGISTRY_URL": "Confluent Schema Registry URL(s), http(s)://[user:password@]"
    "host:port,...: input framed with a schema id is read (JSON Schema only) and the output"
    " schemas are registered at start; unset: neither (see Connecting your platform)",
    f"{PREFIX}SCHEMA_REGISTRY_CONFIG": 'JSON object of extra schema registry client properties,'
    ' e.g. {"basic.auth.user.info": "key:secret", "ssl.ca.location": "/ca.pem"} (timeout: 10 s)',
    f"{PREFIX}DATABASE_SCHEMA": "PostgreSQL schema holding churnwatch's tables (churnwatch)",
    f"{PREFIX}API_DATABASE_URL": "PostgreSQL URL the REST API connects with (churnwatch api):"
    " a member of the <schema>_api role, to which every connection switches; unset: the"
    " CHURNWATCH_DATABASE_URL",
    f"{PREFIX}ALERT_EXPIRY_DAYS": "the API reads an alert that is not resolved as expired this"
    " long after its status was last set (or its event time); 'off': never (30)",
    f"{PREFIX}TOPIC_ALERT_STATES": "alert lifecycle changes made through the API"
    " (churn.alert-states)",
    f"{PREFIX}REDIS_KEY_PREFIX": "first part of every Redis key: <prefix>:{tenant:account}:f (cw)",
    f"{PREFIX}TOPIC_EVENTS": "input topic (churn.events)",
    f"{PREFIX}TOPIC_DEAD_LETTERS": "dead-letter topic for rejected input (churn.events.dlq)",
    f"{PREFIX}TOPIC_ALERTS": "alert topic (churn.alerts)",
    f"{PREFIX}TOPIC_PARTITIONS": "partitions when churnwatch creates its topics (4)",
    f"{PREFIX}TOPIC_REPLICATION_FACTOR": "replicas of each topic churnwatch creates; the"
    " embedded broker uses 1 (3)",
    f"{PREFIX}TOPIC_MIN_INSYNC_REPLICAS": "min.insync.replicas of each topic churnwatch creates,"
    " at most the replication factor; the embedded broker uses 1 (2, or the replication factor"
    " if lower)",
    f"{PREFIX}RETAIN_DEAD_LETTERS_DAYS": "retention.ms of the dead-letter topic when churnwatch"
    " creates it; 'off': the broker's default (30)",
    f"{PREFIX}RETAIN_OUTPUT_TOPICS_DAYS": "retention.ms of the alert, score, workflow and late"
    " topics when churnwatch creates them; 'off': the broker's default (off)",
    f"{PREFIX}RETAIN_RISK_SCORES_DAYS": "churnwatch db prune deletes risk_scores older than this"
    " (score_time and inserted_at); 'off' or 0 keeps them (90)",
    f"{PREFIX}RETAIN_ALERTS_DAYS": "churnwatch db prune deletes alerts older than this"
    " (event_time and inserted_at); 'off' or 0 keeps them (365)",
    f"{PREFIX}RETAIN_USAGE_SIGNALS_DAYS": "churnwatch db prune deletes usage_signals older than"
    " this (signal_date and inserted_at); 'off' or 0 keeps them (365)",
    f"{PREFIX}RETAIN_CANCELLATIONS_DAYS": "churnwatch db prune deletes cancellation_reasons older"
    " than this (cancelled_at and inserted_at); 'off' or 0 keeps them (730)",
    f"{PREFIX}RETAIN_DECISIONS_DAYS": "churnwatch db prune deletes decisions older than this"
    " (decided_at and inserted_at); 'off' or 0 keeps them (730)",
    f"{PREFIX}RETAIN_WORKFLOWS_DAYS": "churnwatch db prune deletes workflow_triggers"
    " (triggered_at), workflow_signals (signalled_at) and workflow_outcomes (occurred_at)"
    " older than this, never those of a trigger still active (active_until ahead); 'off' or"
    " 0 keeps them (730)",
    f"{PREFIX}MAX_MESSAGE_BYTES": "largest accepted event message (65536)",
    f"{PREFIX}MAX_FUTURE_SKEW_SECONDS": "how far event_time may lie in the future (3600)",
    f"{PREFIX}EARLIEST_EVENT_TIME": "events dated before this RFC 3339 time are dead-lettered"
    " as bad_time (2000-01-01T00:00:00Z)",
    f"{PREFIX}MAX_EVENT_AGE_DAYS": "events older than this many days before the clock are"
    " dead-lettered as bad_time; 'off' for replays of old histories (off)",
    f"{PREFIX}DEDUPE_WINDOW_SECONDS": "event-time window for duplicate event_ids (86400)",
    f"{PREFIX}DEDUPE_MAX_IDS_PER_ACCOUNT": "event ids remembered per account at most (10000)",
    f"{PREFIX}TOPIC_LATE": "events later than the allowed lateness (churn.events.late)",
    f"{PREFIX}FEATURE_DEFINITIONS": "feature definitions file (YAML/JSON); unset: the default",
    f"{PREFIX}ALLOWED_LATENESS_SECONDS": "lateness that still updates features (3600)",
    f"{PREFIX}FEATURE_TTL_SECONDS": "TTL of a Redis feature hash, refreshed on write (3456000)",
    f"{PREFIX}FEATURE_FLUSH_SECONDS": "longest wait before changed features reach Redis (5)",
    f"{PREFIX}USAGE_RULES": "deprecated (declare signals in the definitions file): JSON"
    ' threshold overrides by signal name, e.g. {"inactivity": {"days": 10}}',
    f"{PREFIX}ACCOUNT_TRAITS": "JSON: the trait names (first present counts) of the accounts"
    ' table\'s fields, over the defaults, e.g. {"mrr": ["monthly_revenue"], "owner": []}'
    ' ({"company_name": ["company_name", "company", "name"], "plan": ["plan"], "mrr":'
    ' ["mrr"], "renewal_date": ["renewal_date"], "owner": ["owner"]})',
    f"{PREFIX}TOPIC_SCORES": "risk scores (churn.scores)",
    f"{PREFIX}MODEL_DIR": "model directory (model.onnx + metadata.json); 'off': no scoring"
    " (the shipped scoring/models/default)",
    f"{PREFIX}SHADOW_MODEL_DIR": "a second model scored on the same batches; recorded,"
    " never alerting",
    f"{PREFIX}SCORE_DEBOUNCE_SECONDS": "least event time between two scores of an account;"
    " tier-1 events bypass it (1800)",
    f"{PREFIX}SCORE_TTL_SECONDS": "how long a score stands (expires_at) (604800)",
    f"{PREFIX}SCORE_MIN_CHANGE": "a score is published (row, message) when its risk moved at"
    " least this much since the last published one, measured as asin(sqrt(risk)) (so this"
    " much near 0.5, less near 0 or 1: 0.020 at 0.05), or its tier or top reasons changed, a"
    " decisive event made it, or the last one nears expiry; 0 publishes every score (0.045)",
    f"{PREFIX}SCORE_REFRESH_BEFORE_SECONDS": "publish a fresh score when the last published"
    " one expires within this long, so a live account keeps a valid score (86400)",
    f"{PREFIX}RESCORE_SILENT_SECONDS": "at each event-time day close (its input partition's"
    " watermark), an account silent that whole day is rescored as of the day's end, so its"
    " risk follows its silence, until it has been silent this long; at most"
    " CHURNWATCH_FEATURE_TTL_SECONDS less a week; 0: never (2592000)",
    f"{PREFIX}RISK_TIERS": "risk at which medium and high begin, e.g. 0.4,0.7 (unset: the"
    " model's own tiers, set by churnwatch train from its risks; 0.4,0.7 for a model"
    " without)",
    f"{PREFIX}RISK_BLEND": "max (of rule and model risk), ml or rules (max)",
    f"{PREFIX}POLICY": "decision policy file (YAML); 'off': no decisions or workflow triggers"
    " (the shipped decisions/policies/default.yaml)",
    f"{PREFIX}TOPIC_WORKFLOWS": "workflow triggers and signals (churn.workflow-triggers)",
    f"{PREFIX}MODEL_RELOAD_SECONDS": "how often a running flow looks for a changed model"
    " (and shadow) directory, loads, checks and swaps it in, keeping the last good model if"
    " the new one is refused; 0: never (30)",
    f"{PREFIX}POLICY_RELOAD_SECONDS": "how often a running flow looks for a changed policy file"
    " and swaps it in, keeping the last good policy if the new one is refused; 0: never (10)",
    f"{PREFIX}CONSENT_REFRESH_SECONDS": "how often the consent directory re-reads Postgres"
    " contact_preferences (30)",
    f"{PREFIX}TIER1_RULES": "deprecated (the definitions file's tier1 section): JSON object"
    ' event_type -> {"rule": ..., "severity": ...}, replacing that section',
    f"{PREFIX}ERASED_EVENTS": "refuse: an erased subject's later events are dead-lettered as"
    " erased_subject, without key or value; keep: they start the subject afresh",
    f"{PREFIX}TIER1_FAST_LANE": "on: tier-1 alerts reach Kafka from the input partitions,"
    " before scoring and the other outputs; off: with the other alerts (on)",
    f"{PREFIX}INPUT_BATCH_SIZE": "messages read per Kafka partition per batch (5000)",
    f"{PREFIX}INPUT_FORMAT": "what the events topic carries: native (churnwatch event v1),"
    " segment (the Segment spec), cloudevents (structured or binary mode), auto (per"
    " message) (native)",
    f"{PREFIX}INPUT_MAPPING": "the mapping file of a foreign input format: account, tenant,"
    " user and event type names (the shipped schemas/formats/default-mapping.yaml)",
    f"{PREFIX}SHARDS": "accounts are grouped in this many shards, the unit of state, snapshots"
    " and parallelism; fixed for the life of a recovery directory (64)",
    f"{PREFIX}WARM_ACCOUNTS": "accounts held as live objects at most, across all shards; the"
    " least recently active others are held as their snapshot bytes, about 0.7 KB each,"
    " and unpacked at their next event (32000)",
    f"{PREFIX}STATE_DICTIONARY_SAMPLES": "each process compresses the accounts' states with a"
    " zstd dictionary trained on its first this many states, kept in the recovery"
    " directory; 0: no dictionary (500)",
    f"{PREFIX}RECOVERY_DIR": "Bytewax recovery directory; 'off' disables (.churnwatch/recovery)",
    f"{PREFIX}RECOVERY_PARTITIONS": "recovery partitions created on first start (4)",
    f"{PREFIX}SNAPSHOT_INTERVAL_SECONDS": "epoch: how often state and offsets are snapshot (10)",
    f"{PREFIX}STATE_DIR": "where the embedded local stack keeps its data (.churnwatch)",
    f"{PREFIX}METRICS_PORT": "port of /metrics, /healthz, /readyz; process i of a cluster adds i;"
    " 0 disables (9464)",
    f"{PREFIX}LOG_FORMAT": "json (one object per line, with correlation ids) or text (json)",
}


class _EnvReader:
    """Typed reads of CHURNWATCH_* variables with errors that name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def optional(self, name: str) -> str | None:
        value = self._environ.get(PREFIX + name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        value = self._environ.get(PREFIX + name)
        return default if value is None else value.strip()

    def identifier(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not value.isidentifier() or not value.isascii():
            raise ConfigurationError(PREFIX + name, f"{value!r} is not a plain SQL identifier")
        return value.lower()

    def port(self, name: str, default: int) -> int:
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return default
        if not raw.strip().isdigit() or int(raw) > 65535:
            raise ConfigurationError(PREFIX + name, f"{raw!r} is not a port (0-65535)")
        return int(raw)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise ConfigurationError(PREFIX + name, f"must be one of {', '.join(choices)}")
        return value

    def _number(
        self, name: str, convert: Callable[[str], float], what: str, ok: Callable[[float], bool],
        need: str,
    ) -> float | None:
        """The variable as a number, or None if unset; a clear error otherwise."""
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return None
        try:
            value = convert(raw)
        except ValueError:
            raise ConfigurationError(PREFIX + name, f"{raw!r} is not {what}") from None
        if not ok(value):
            raise ConfigurationError(PREFIX + name, f"must be {need}, got {value}")
        return value

    def positive_int(self, name: str, default: int) -> int:
        value = self._number(name, int, "an integer", lambda v: v > 0, "positive")
        return default if value is None else int(value)

    def non_negative_int(self, name: str, default: int) -> int:
        value = self._number(name, int, "an integer", lambda v: v >= 0, "0 or positive")
        return default if value is None else int(value)

    def seconds(self, name: str, default: timedelta) -> timedelta:
        value = self._number(name, float, "a number of seconds", lambda v: v > 0, "positive")
        return default if value is None else timedelta(seconds=value)

    def seconds_or_never(self, name: str, default: timedelta) -> timedelta:
        """A period in seconds where 0 means "never" (0 s, for the caller to read so)."""
        value = self._number(name, float, "a number of seconds", lambda v: v >= 0,
                             "0 (never) or positive")
        return default if value is None else timedelta(seconds=value)

    def fraction(self, name: str, default: float) -> float:
        value = self._number(name, float, "a number", lambda v: 0.0 <= v <= 1.0,
                             "between 0 and 1")
        return default if value is None else value

    def instant(self, name: str, default: datetime) -> datetime:
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return default
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise ConfigurationError(PREFIX + name, f"{raw!r} is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            raise ConfigurationError(PREFIX + name, f"{raw!r} needs an offset (e.g. Z)")
        return moment.astimezone(UTC)

    def days_or_off(self, name: str, default: timedelta | None) -> timedelta | None:
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return default
        if raw.strip().lower() in ("", "off", "none", "0"):
            return None
        days = self._number(name, float, "a number of days", lambda v: v > 0, "positive or 'off'")
        assert days is not None
        return timedelta(days=days)

    def path_or_off(self, name: str, default: Path | None) -> Path | None:
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return default
        raw = raw.strip()
        return None if raw.lower() in ("", "off", "none") else Path(raw)

    def optional_tiers(self, name: str) -> tuple[float, float] | None:
        """``MEDIUM,HIGH``, or None if unset."""
        if self._environ.get(PREFIX + name) is None:
            return None
        return self.tiers(name, (0.4, 0.7))

    def tiers(self, name: str, default: tuple[float, float]) -> tuple[float, float]:
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return default
        try:
            medium, high = (float(part) for part in raw.split(","))
        except ValueError:
            msg = "expected 'MEDIUM,HIGH', e.g. 0.4,0.7"
            raise ConfigurationError(PREFIX + name, msg) from None
        if not 0 < medium < high <= 1:
            raise ConfigurationError(PREFIX + name, "need 0 < medium < high <= 1")
        return medium, high

    def http_urls(self, name: str) -> str | None:
        """A comma-separated list of http(s) URLs, or None if unset."""
        value = self.optional(name)
        if value is not None and not all(
            url.strip().lower().startswith(("http://", "https://")) for url in value.split(",")
        ):
            raise ConfigurationError(PREFIX + name, "expected http(s)://host:port[,...]")
        return value

    def client_properties(self, name: str) -> dict[str, str | int | float | bool]:
        """A JSON object of client properties (names to strings, numbers or booleans)."""
        raw = self._environ.get(PREFIX + name, "").strip()
        if not raw:
            return {}
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ConfigurationError(PREFIX + name, "not JSON") from None
        if not isinstance(document, dict) or not all(
            isinstance(v, str | int | float | bool) for v in document.values()
        ):
            raise ConfigurationError(
                PREFIX + name, "expected a JSON object of strings, numbers or booleans"
            )
        if "url" in document:
            raise ConfigurationError(PREFIX + name, f"give the URL in {PREFIX}SCHEMA_REGISTRY_URL")
        return document

    def redis_url(self, name: str) -> str | None:
        """A Redis URL; TLS options (``ssl_*``) only with ``rediss://``, where redis-py
        reads them (with ``redis://`` it fails at the first command). Errors never quote
        the URL: it may hold a password."""
        value = self.optional(name)
        if value is None:
            return None
        scheme, _, rest = value.partition("://")
        if scheme.lower() not in ("redis", "rediss", "unix") or not rest:
            raise ConfigurationError(PREFIX + name, "expected redis://, rediss:// (TLS) or unix://")
        tls_options = sorted(k for k in parse_qs(urlsplit(value).query) if k.startswith("ssl"))
        if tls_options and scheme.lower() != "rediss":
            problem = f"{', '.join(tls_options)} take rediss:// (TLS); {scheme}:// is plaintext"
            raise ConfigurationError(PREFIX + name, problem)
        return value

    def optional_path(self, name: str) -> Path | None:
        value = self.optional(name)
        return Path(value) if value else None

    def account_traits(self, name: str, default: AccountTraits) -> AccountTraits:
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return default
        try:
            return parse_account_traits(orjson.loads(raw), default)
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise ConfigurationError(PREFIX + name, str(exc)) from None

    def usage_rules(self, name: str) -> dict[str, object] | None:
        """Threshold overrides by signal name: a JSON object now; checked against the
        definitions file's signals when the rules are built (``wiring.detector_rules``)."""
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return None
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigurationError(PREFIX + name, str(exc)) from None
        if not isinstance(document, dict):
            raise ConfigurationError(PREFIX + name, "must be a JSON object keyed by signal name")
        return document

    def min_insync_replicas(self, name: str, default: int, replication: int) -> int:
        """min.insync.replicas: at most the replication factor (the default is lowered to it)."""
        value = self._number(name, int, "an integer", lambda v: v > 0, "positive")
        if value is None:
            return min(default, replication)
        if value > replication:
            problem = (f"{int(value)} is more than the replication factor {replication}"
                       f" ({PREFIX}TOPIC_REPLICATION_FACTOR): no write could ever succeed")
            raise ConfigurationError(PREFIX + name, problem)
        return int(value)

    def tier1_rules(self, name: str) -> Mapping[str, Tier1Rule] | None:
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return None
        try:
            return parse_tier1_rules(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise ConfigurationError(PREFIX + name, str(exc)) from None


def _redact_properties(
    properties: Mapping[str, str | int | float | bool],
) -> dict[str, str | int | float | bool]:
    """Client properties fit for a log: the value of any property that may be a secret
    (a password, secret, token or basic-auth user info) replaced by ***."""
    secret = re.compile(r"(?i)password|secret|token|user\.info")
    return {k: "***" if secret.search(k) else v for k, v in properties.items()}


def _days_or_off(value: timedelta | None) -> str:
    """The ``*_DAYS`` variable that reads back as ``value`` ('off' for None)."""
    return "off" if value is None else str(value.total_seconds() / 86_400)


