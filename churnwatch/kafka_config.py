"""``CHURNWATCH_KAFKA_CONFIG``: the librdkafka properties of every Kafka client churnwatch makes.

The variable holds either a JSON object (it starts with ``{``) or the path of a
file of properties: JSON, YAML (``.yaml``, ``.yml``) or Java-style
``.properties`` (``name=value`` lines). The properties (``security.protocol``,
``sasl.*``, ``ssl.*``, tuning) reach every consumer, producer and admin client:
the input, the output writers, topic creation, the readiness check, erasure and
the simulator.

A secret need not be written in it: a value may name where it is kept,

* ``${file:/run/secrets/kafka-password}``: the file's contents, less the
  trailing line break (a Docker or Kubernetes secret file);
* ``${env:KAFKA_PASSWORD}``: an environment variable, never a ``CHURNWATCH_*``
  one (those are settings);

as the whole value or inside a longer one (``$${`` writes a literal ``${``).
References are resolved when the settings are read, so a missing file or
variable stops the start with the property named. Child processes
(``run --processes N``) are handed the references, not the secrets, and resolve
them again; ``repr`` shows every value that came from a reference, and every
property whose name says secret, as ``***``.

The properties churnwatch sets itself are refused (:data:`OWNED_PROPERTIES`
says why), and so are callbacks, which a configuration file cannot hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import orjson
import yaml

from churnwatch.errors import ConfigurationError

VARIABLE = "CHURNWATCH_KAFKA_CONFIG"
SETTINGS_PREFIX = "CHURNWATCH_"

KafkaValue = str | int | bool

# Properties churnwatch owns, with the reason it gives when one is configured.
_OFFSETS = (
    "the input keeps its offsets in the Bytewax recovery store and reads with assign(),"
    " never in a consumer group"
)
OWNED_PROPERTIES: dict[str, str] = {
    "bootstrap.servers": "set CHURNWATCH_KAFKA_BOOTSTRAP instead",
    "metadata.broker.list": "set CHURNWATCH_KAFKA_BOOTSTRAP instead",
    "group.id": _OFFSETS,
    "group.instance.id": _OFFSETS,
    "enable.auto.commit": _OFFSETS,
    "enable.auto.offset.store": _OFFSETS,
    "enable.partition.eof": "churnwatch decides where its input ends (run --until-drained)",
    "acks": "the outputs are at-least-once only with acks=all",
    "request.required.acks": "the outputs are at-least-once only with acks=all",
    "enable.idempotence": "the producers need idempotence for ordered, duplicate-free retries",
    "transactional.id": "churnwatch's producers are idempotent, not transactional",
}
# Python callables in confluent-kafka, never a value in a file.
_CALLBACK = re.compile(r"(?:_cb|^logger|^on_delivery|^on_commit)$")
# A property whose literal value is hidden in repr: passwords, keys, tokens, OAUTHBEARER
# configs (they can carry a client secret).
_SECRET_NAME = re.compile(r"(?i)password|secret|passphrase|token|pem$|oauthbearer\.config")
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")


@dataclass(frozen=True, slots=True)
class KafkaClientConfig:
    """Resolved librdkafka properties; equal when their properties are equal.

    ``source`` is ``CHURNWATCH_KAFKA_CONFIG`` as given (a path, or JSON with its
    references unresolved): what a child process is handed. ``referenced``: the
    properties whose value came from a ``${...}`` reference.
    """

    properties: Mapping[str, KafkaValue] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)
    referenced: frozenset[str] = field(default=frozenset(), compare=False)

    def __repr__(self) -> str:  # secrets stay out of logs
        shown = {
            name: "***" if name in self.referenced or _SECRET_NAME.search(name) else value
            for name, value in self.properties.items()
        }
        origin = ""
        if self.source is not None and not self.source.lstrip().startswith("{"):
            origin = f", source={self.source!r}"  # a path; inline JSON may hold secrets
        return f"KafkaClientConfig({shown!r}{origin})"

    def to_env(self) -> str | None:
        """The ``CHURNWATCH_KAFKA_CONFIG`` value that reads back as this config: its
        source (references unresolved) or, for one built in code, its JSON."""
        if self.source is not None:
            return self.source
        return orjson.dumps(dict(self.properties)).decode() if self.properties else None


def load_kafka_config(raw: str | None, environ: Mapping[str, str]) -> KafkaClientConfig:
    """Read ``CHURNWATCH_KAFKA_CONFIG`` (JSON, or a file's path) and resolve its
    references against ``environ`` and the files they name."""
    if raw is None or not raw.strip():
        return KafkaClientConfig()
    text = raw.strip()
    document = _parse_json(text, "the JSON object") if text.startswith("{") else _read_file(text)
    if not isinstance(document, dict):
        _refuse("expected an object of librdkafka properties (name: value)")
    properties: dict[str, KafkaValue] = {}
    referenced: set[str] = set()
    for name, value in document.items():
        name = str(name).strip()
        _check_name(name)
        if isinstance(value, str):
            resolved, from_reference = _resolve(name, value, environ)
            properties[name] = resolved
            if from_reference:
                referenced.add(name)
        elif isinstance(value, bool | int):
            properties[name] = value
        elif isinstance(value, float):
            properties[name] = repr(value)  # librdkafka reads numbers from strings too
        elif isinstance(value, dict):
            _refuse(f"{name}: librdkafka properties are flat: write dotted names such as"
                    f" {name}.{next(iter(value), 'x')}")
        else:
            # the type, not the value: it may be a secret
            _refuse(f"{name}: expected a string, number or boolean, got {type(value).__name__}")
    return KafkaClientConfig(properties, source=raw, referenced=frozenset(referenced))


def _refuse(problem: str) -> NoReturn:
    raise ConfigurationError(VARIABLE, problem)


def _parse_json(text: str, what: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(VARIABLE, f"{what} is not JSON: {exc}") from None


def _read_file(text: str) -> object:
    path = Path(text).expanduser()
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read {path} ({exc.strerror}); give a file or a JSON object ({{...}})"
        raise ConfigurationError(VARIABLE, msg) from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            return yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise ConfigurationError(VARIABLE, f"{path} is not YAML: {exc}") from None
    if suffix in (".properties", ".conf"):
        return _parse_properties(content, path)
    return _parse_json(content, str(path))


def _parse_properties(content: str, path: Path) -> dict[str, str]:
    """``name=value`` lines (``name: value`` too); ``#`` and ``!`` start comments."""
    properties: dict[str, str] = {}
    for number, line in enumerate(content.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        match = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if match is None:
            raise ConfigurationError(VARIABLE, f"{path}:{number}: expected name=value")
        properties[match.group(1)] = match.group(2)
    return properties


def _check_name(name: str) -> None:
    reason = OWNED_PROPERTIES.get(name)
    if reason is not None:
        _refuse(f"{name}: churnwatch sets this itself ({reason})")
    if _CALLBACK.search(name):
        _refuse(f"{name}: a callback cannot be configured (OAUTHBEARER: use"
                " sasl.oauthbearer.method=oidc)")


def _resolve(name: str, value: str, environ: Mapping[str, str]) -> tuple[str, bool]:
    """``value`` with its ``${file:...}`` and ``${env:...}`` references replaced;
    whether it had any. Errors name the property and the reference, never a value."""
    found = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal found
        if match.group(0) == "$${":
            return "${"
        found = True
        kind, _, target = match.group(1).partition(":")
        reference = "${" + match.group(1) + "}"
        if kind == "file" and target:
            return _read_secret(name, reference, Path(target).expanduser())
        if kind == "env" and target:
            if target.startswith(SETTINGS_PREFIX):
                _refuse(f"{name}: {reference}: {SETTINGS_PREFIX}* variables are churnwatch's"
                        " settings; keep the secret in another variable")
            secret = environ.get(target)
            if secret is None:
                _refuse(f"{name}: {reference}: the variable is not set")
            return secret
        _refuse(f"{name}: {reference}: expected ${{file:PATH}} or ${{env:NAME}}")

    return _REFERENCE.sub(substitute, value), found


def _read_secret(name: str, reference: str, path: Path) -> str:
    try:
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigurationError(VARIABLE, f"{name}: {reference}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(VARIABLE, f"{name}: {reference}: not UTF-8 text") from None
    if not secret:
        _refuse(f"{name}: {reference}: the file is empty")
    return secret
