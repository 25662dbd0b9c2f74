"""Create churnwatch's Kafka topics (idempotently), with their retention and replication.

Before creating anything, :func:`connect_admin` asks the cluster for its metadata
and explains a failure: librdkafka itself raises only "Broker transport
failure", and says why (a refused login, a TLS handshake that never completes,
a refused connection) in its error callback and its log, which
:class:`ClientLog` keeps for the error message.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from churnwatch.errors import ChurnwatchError, ConfigurationError
from churnwatch.kafka_config import VARIABLE
from churnwatch.settings import PREFIX, Settings

log = logging.getLogger(__name__)

REPLICATION_VARIABLE = f"{PREFIX}TOPIC_REPLICATION_FACTOR"
# How long the connection check waits for a TCP + TLS + SASL handshake to finish
# (librdkafka's default is 30 s): a TLS client at a plaintext listener hangs in
# the handshake until then, and the start should say so sooner.
CONNECTION_SETUP_TIMEOUT_MS = 10_000
# librdkafka's log lines that say the security settings, not the network, are wrong
# (they do not mend by waiting).
_SECURITY_FAILURE = re.compile(r"SSL|SASL|AUTH_")
_ELAPSED = re.compile(r"\(after \d+ms in state ([A-Z_]+)\)")


class TopicError(ChurnwatchError):
    """A topic could not be created."""


class KafkaConnectionError(ChurnwatchError):
    """The Kafka cluster could not be reached, or refused churnwatch's connection."""

    def __init__(self, bootstrap: str, problem: str) -> None:
        self.bootstrap = bootstrap
        self.problem = problem
        super().__init__(f"cannot connect to Kafka at {bootstrap}: {problem}")


class ClientLog:
    """What librdkafka reported while a client connected: its errors (``error_cb``) and
    its FAIL log lines, the last few distinct ones kept for an error message (they repeat
    at every reconnection, so they go on to Python logging at DEBUG; other log lines at
    their own level).

    ``client_config()`` gives the two properties that route them here.
    """

    def __init__(self, keep: int = 4) -> None:
        self._reasons: deque[str] = deque(maxlen=keep)
        self.security_failure = False

    def client_config(self) -> dict[str, Any]:
        return {"error_cb": self.error, "logger": self}

    def error(self, error: KafkaError) -> None:
        if error.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
            self.security_failure = True
        if error.code() != KafkaError._ALL_BROKERS_DOWN:  # says nothing the others do not
            self._remember(error.str())

    def log(self, level: int, fmt: str, *args: object) -> None:
        """librdkafka's log line (``logger.log(level, "%s [%s] %s", facility, ...)``)."""
        line = fmt % args
        if not line.startswith("FAIL"):
            log.log(level, "librdkafka: %s", line)
            return
        log.debug("librdkafka: %s", line)
        reason = line.split("]: ", 1)[-1]
        if _SECURITY_FAILURE.search(reason):
            self.security_failure = True
        self._remember(reason)

    def _remember(self, reason: str) -> None:
        # "(after 32ms in state AUTH_REQ)" -> "(in state AUTH_REQ)", so that repeats look alike
        reason = _ELAPSED.sub(
            lambda m: "" if f"in state {m[1]} " in reason else f"(in state {m[1]})", reason
        ).strip()
        if reason not in self._reasons:
            self._reasons.append(reason)

    def reasons(self) -> str:
        return "; ".join(self._reasons)

    def clear(self) -> None:
        self._reasons.clear()
        self.security_failure = False


def admin_client(
    bootstrap: str, client_config: Mapping[str, Any], watch: ClientLog | None = None
) -> AdminClient:
    """An admin client with the configured librdkafka properties (``CHURNWATCH_KAFKA_CONFIG``);
    a property librdkafka refuses names the variable."""
    config: dict[str, Any] = {
        "socket.connection.setup.timeout.ms": CONNECTION_SETUP_TIMEOUT_MS,
        **client_config,
        "bootstrap.servers": bootstrap,
    }
    if watch is not None:
        config.update(watch.client_config())
    try:
        return AdminClient(config)
    except KafkaException as exc:
        error = exc.args[0]
        problem = error.str() if isinstance(error, KafkaError) else str(exc)
        raise ConfigurationError(VARIABLE, problem) from None


def connect_admin(
    bootstrap: str, client_config: Mapping[str, Any] | None = None, *, timeout_s: float = 30.0
) -> tuple[AdminClient, ClusterMetadata]:
    """An admin client and the cluster's metadata, or :class:`KafkaConnectionError` with
    librdkafka's reasons: at once for a refused login or a failed TLS handshake, after
    ``timeout_s`` for an unreachable cluster."""
    watch = ClientLog()
    admin = admin_client(bootstrap, client_config or {}, watch)
    deadline = time.monotonic() + timeout_s
    attempt = 1.0  # seconds; short at first, so a refusal (seen between tries) ends it early
    while True:
        remaining = deadline - time.monotonic()
        try:
            return admin, admin.list_topics(timeout=max(0.1, min(remaining, attempt)))
        except KafkaException as exc:
            last = exc.args[0].str() if isinstance(exc.args[0], KafkaError) else str(exc)
        admin.poll(0)  # serves the error callback and the log
        if watch.security_failure or time.monotonic() >= deadline:
            raise KafkaConnectionError(bootstrap, _explain(watch, last, client_config or {}))
        attempt = min(attempt * 2, 4.0)


def _explain(watch: ClientLog, last: str, client_config: Mapping[str, Any]) -> str:
    reasons = watch.reasons() or last
    protocol = str(client_config.get("security.protocol", "plaintext")).lower()
    if watch.security_failure:
        hint = f"check security.protocol and the sasl.* and ssl.* properties in {VARIABLE}"
    elif protocol == "plaintext" and "by peer" in reasons:
        hint = f"the broker closed the connection: does it want TLS or SASL? ({VARIABLE})"
    else:
        return reasons
    return f"{reasons} ({hint})"


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """The configs churnwatch gives each of its topics when it creates them: ``retention.ms``
    of the dead-letter topic and of the output topics, unless left to the broker (None).
    The events topic is the producers': churnwatch sets nothing on it."""
    configs: dict[str, dict[str, str]] = {}
    topics = settings.topics
    for names, retention in (
        ((topics.dead_letters,), settings.dead_letter_retention),
        ((topics.alerts, topics.scores, topics.workflows, topics.late, topics.alert_states),
         settings.output_topic_retention),
    ):
        if retention is not None:
            for name in names:
                configs[name] = {"retention.ms": str(_milliseconds(retention))}
    return configs


def ensure_churnwatch_topics(settings: Settings, *, timeout_s: float = 30.0) -> None:
    """Create churnwatch's topics that do not exist yet, as ``settings`` say: partitions,
    replication factor, ``min.insync.replicas``, retention, and the librdkafka properties
    of ``CHURNWATCH_KAFKA_CONFIG``."""
    if not settings.kafka_bootstrap:
        raise ConfigurationError(f"{PREFIX}KAFKA_BOOTSTRAP", "required to create the topics")
    ensure_topics(
        settings.kafka_bootstrap,
        settings.topics.all(),
        settings.topic_partitions,
        configs=topic_configs(settings),
        replication_factor=settings.topic_replication_factor,
        min_insync_replicas=settings.topic_min_insync_replicas,
        client_config=settings.kafka_config.properties,
        timeout_s=timeout_s,
    )


def _milliseconds(span: timedelta) -> int:
    return max(1, round(span.total_seconds() * 1000))


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    *,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
    client_config: Mapping[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create the topics that do not exist yet, each with ``replication_factor`` replicas,
    ``min.insync.replicas`` (unless None) and its ``configs`` (topic name -> Kafka topic
    configs, e.g. ``retention.ms``); existing topics are left as they are (change those
    with ``kafka-configs --alter``). ``client_config``: librdkafka properties of the admin
    client (``CHURNWATCH_KAFKA_CONFIG``).

    A cluster that cannot be reached raises :class:`KafkaConnectionError`; a replication
    factor above the cluster's broker count raises :class:`TopicError` naming
    ``CHURNWATCH_TOPIC_REPLICATION_FACTOR``, before anything is created."""
    configs = configs or {}
    # Keep the client referenced until every future resolves, or they fail with _DESTROY.
    admin, metadata = connect_admin(bootstrap, client_config, timeout_s=timeout_s)
    missing = [name for name in dict.fromkeys(names) if name not in metadata.topics]
    if not missing:
        return
    brokers = len(metadata.brokers)
    if replication_factor > brokers:
        raise TopicError(_too_many_replicas(missing, replication_factor, brokers))
    shared = {} if min_insync_replicas is None else {
        "min.insync.replicas": str(min_insync_replicas)
    }
    futures = admin.create_topics(
        [
            NewTopic(name, partitions, replication_factor,
                     config={**shared, **configs.get(name, {})})
            for name in missing
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0]
            code = error.code() if isinstance(error, KafkaError) else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if code == KafkaError.INVALID_REPLICATION_FACTOR:
                problem = _too_many_replicas([name], replication_factor, brokers)
                raise TopicError(f"{problem} ({error.str()})") from exc
            msg = f"could not create topic {name!r}: {exc}"
            raise TopicError(msg) from exc
    del admin


def _too_many_replicas(names: list[str], replication_factor: int, brokers: int) -> str:
    return (
        f"cannot create {', '.join(names)} with {replication_factor} replicas: the cluster"
        f" has {brokers} broker(s). Set {REPLICATION_VARIABLE} (and"
        f" {PREFIX}TOPIC_MIN_INSYNC_REPLICAS) to at most {brokers}, or create the topics"
        " yourself"
    )
