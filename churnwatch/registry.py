"""The schema registry from settings: the client, input framing, output registration.

All three are off unless ``CHURNWATCH_SCHEMA_REGISTRY_URL`` is set. See
:mod:`sinks.schema_registry` for what they do.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from churnwatch.errors import ConfigurationError
from churnwatch.settings import PREFIX, Settings
from schemas import SCHEMA_DIR
from sinks.schema_registry import (
    Registration,
    RegistryFraming,
    output_schemas,
    register_schemas,
)

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

log = logging.getLogger(__name__)

# Seconds per registry request: the client's own default is no timeout at all, and a
# registry that hangs must surface as unavailable (transient), not stall the input.
DEFAULT_TIMEOUT_S = 10


def registry_client(settings: Settings) -> SchemaRegistryClient | None:
    """A registry client under these settings; None without a registry URL."""
    if not settings.schema_registry_url:
        return None
    from confluent_kafka.schema_registry import SchemaRegistryClient

    config: dict[str, object] = {"timeout": DEFAULT_TIMEOUT_S}
    config.update(settings.schema_registry_config)
    config["url"] = settings.schema_registry_url
    try:
        return SchemaRegistryClient(config)
    except (ValueError, TypeError) as exc:  # the client names the property, never a value
        raise ConfigurationError(f"{PREFIX}SCHEMA_REGISTRY_CONFIG", str(exc)) from None


def registry_framing(settings: Settings) -> RegistryFraming | None:
    """What the parse step unframes input with; None without a registry URL (then no
    message is unframed: one that starts with a zero byte is not JSON)."""
    client = registry_client(settings)
    return None if client is None else RegistryFraming(client)


def register_output_schemas(settings: Settings) -> list[Registration]:
    """Register the output contracts under the settings' topics (none without a registry
    URL); raises :class:`~sinks.errors.SchemaIncompatible` if the registry finds one
    incompatible with what its subject holds. Idempotent."""
    client = registry_client(settings)
    if client is None:
        return []
    topics = settings.topics
    schemas = output_schemas(
        SCHEMA_DIR, alerts_topic=topics.alerts, scores_topic=topics.scores,
        workflows_topic=topics.workflows,
    )
    try:
        done = register_schemas(client, schemas)
    finally:
        client.close()
    added = [r.subject for r in done if not r.unchanged]
    if added:
        log.info("registered output schemas", extra={"subjects": added})
    return done
