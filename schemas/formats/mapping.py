"""The mapping file: how a foreign event (Segment, CloudEvents) becomes a churnwatch event.

A YAML file (``CHURNWATCH_INPUT_MAPPING``; the shipped one is
``schemas/formats/default-mapping.yaml``)::

    tenant: {value: acme}                 # or {header: x-tenant} or {field: context.tenant}
    account: [context.groupId, properties.account_id]   # the first present wins
    user: [userId, anonymousId]
    event_types:
      rename:                              # a foreign name -> a churnwatch event type
        Order Completed: app.order_completed
        Payment Failed: billing.payment_failed
      default: "app.{name}"                # the rest: {name} is the name in snake_case;
                                           # null: an unmapped name is dead-lettered
    source: {value: segment}               # optional

A *path* is a dotted path into the foreign document (Segment: the message;
CloudEvents: its attributes, extensions included, with the data under
``data``), or ``header:NAME`` for a Kafka header. Every reference is
checked when the file is loaded, with the file and key of a problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from schemas.errors import ChurnwatchError
from schemas.event import TRAITS_EVENT_TYPE

DEFAULT_MAPPING = Path(__file__).resolve().parent / "default-mapping.yaml"
# The churnwatch event type an identify or group call's traits become.
TRAITS_CHANGED = TRAITS_EVENT_TYPE
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class MappingError(ChurnwatchError):
    """A mapping file that cannot be used: its path, the key, and why."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source, self.key, self.problem = source, key, problem


@dataclass(frozen=True, slots=True)
class Place:
    """Where a value comes from: a fixed ``value``, a Kafka ``header``, or a ``path``."""

    value: str | None = None
    header: str | None = None
    path: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.value is not None:
            return f"the value {self.value!r}"
        if self.header is not None:
            return f"header {self.header}"
        return ".".join(self.path)


@dataclass(frozen=True)
class InputMapping:
    """A loaded mapping file (see the module docstring)."""

    source_file: str
    tenant: tuple[Place, ...]
    account: tuple[Place, ...]
    user: tuple[Place, ...] = ()
    source: tuple[Place, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    # "{name}" template for unnamed types; None: an unmapped name is dead-lettered
    default_type: str | None = "app.{name}"

    def event_type(self, name: str) -> str | None:
        """The churnwatch event type of a foreign event name, or None if unmapped."""
        mapped = self.rename.get(name)
        if mapped is not None:
            return mapped
        if self.default_type is None:
            return None
        snake = snake_case(name)
        if not snake:
            return None
        event_type = self.default_type.replace("{name}", snake)
        return event_type if _EVENT_TYPE.fullmatch(event_type) else None


def snake_case(name: str) -> str:
    """``Order Completed`` / ``orderCompleted`` / ``order-completed`` -> ``order_completed``;
    a dotted CloudEvents type keeps its dots (``com.acme.Order.Paid`` ->
    ``com.acme.order.paid``)."""
    parts = [_NOT_WORD.sub("_", _CAMEL.sub("_", part).lower()).strip("_")
             for part in name.split(".")]
    return ".".join(p for p in parts if p)


def load_mapping(path: Path | str | None = None) -> InputMapping:
    """Read and check a mapping file (the shipped default without ``path``)."""
    path = Path(path) if path is not None else DEFAULT_MAPPING
    source = str(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise MappingError(source, "(file)", f"cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise MappingError(source, "(file)", f"not YAML: {exc}") from exc
    return parse_mapping(document, source)


def parse_mapping(document: object, source: str = "<mapping>") -> InputMapping:
    if not isinstance(document, dict):
        raise MappingError(source, "(file)", "must be a mapping of keys")
    known = {"tenant", "account", "user", "source", "event_types"}
    unknown = sorted(set(document) - known)
    if unknown:
        raise MappingError(source, unknown[0], f"unknown key (known: {', '.join(sorted(known))})")
    for required in ("tenant", "account"):
        if required not in document:
            raise MappingError(source, required, "required: where the value comes from")
    types = document.get("event_types") or {}
    if not isinstance(types, dict) or set(types) - {"rename", "default"}:
        raise MappingError(source, "event_types", "a mapping with 'rename' and 'default'")
    rename = types.get("rename") or {}
    if not isinstance(rename, dict):
        raise MappingError(source, "event_types.rename", "a mapping of names to event types")
    for name, event_type in rename.items():
        if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
            raise MappingError(
                source, f"event_types.rename.{name}",
                f"{event_type!r} is not an event type (lowercase dotted, e.g. app.login)",
            )
    default = types.get("default", "app.{name}")
    if default is not None and (
        not isinstance(default, str) or "{name}" not in default
        or not _EVENT_TYPE.fullmatch(default.replace("{name}", "x.y"))
    ):
        raise MappingError(source, "event_types.default",
                           "a template holding {name}, e.g. app.{name} (or {name} for names"
                           " that are event types already), or null")
    return InputMapping(
        source_file=source,
        tenant=_places(document["tenant"], source, "tenant"),
        account=_places(document["account"], source, "account"),
        user=_places(document.get("user") or [], source, "user"),
        source=_places(document.get("source") or [], source, "source"),
        rename={str(k): v for k, v in rename.items()},
        default_type=default,
    )


def _places(raw: object, source: str, key: str) -> tuple[Place, ...]:
    items: Sequence[object] = raw if isinstance(raw, list) else [raw]
    places = []
    for index, item in enumerate(items):
        where = f"{key}[{index}]" if isinstance(raw, list) else key
        if isinstance(item, str):
            item = {"header": item[len("header:"):]} if item.startswith("header:") else {
                "field": item}
        if not isinstance(item, dict) or len(item) != 1:
            raise MappingError(source, where, "one of {value: X}, {header: NAME}, {field: PATH}")
        [(kind, value)] = item.items()
        if not isinstance(value, str) or not value:
            raise MappingError(source, where, f"{kind} must be a non-empty string")
        if kind == "value":
            places.append(Place(value=value))
        elif kind == "header":
            places.append(Place(header=value))
        elif kind == "field":
            places.append(Place(path=tuple(value.split("."))))
        else:
            raise MappingError(source, where, f"unknown kind {kind!r} (value, header, field)")
    return tuple(places)


def find(places: Sequence[Place], document: Mapping[str, Any],
         headers: Mapping[str, bytes]) -> str | None:
    """The first place's value that is present (a string or a number, as text)."""
    for place in places:
        if place.value is not None:
            return place.value
        if place.header is not None:
            raw = headers.get(place.header)
            if raw:
                try:
                    return raw.decode()
                except UnicodeDecodeError:
                    continue
            continue
        value: Any = document
        for step in place.path:
            if not isinstance(value, Mapping):
                value = None
                break
            value = value.get(step)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    return None
