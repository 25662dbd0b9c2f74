"""Feature definitions: load, validate and compile the user-editable file.

A definitions file (YAML, or JSON which YAML reads too) describes every
feature once; the stream (``featurestore.aggregation``) and the batch backfill
both compute from the compiled :class:`FeatureSet`, so online and offline
values cannot drift. ``FeatureSet.version`` hashes the normalised definitions:
it is the ``feature_version`` written next to every stored vector.

The same file declares what the detectors look for (see README, "Signals"):
``signals`` (usage signals over the features), ``tier1`` (decisive event types)
and ``lifecycle`` (event types that change an account's standing). This module
checks their shape and keeps them as declarations; ``detectors.definitions``
compiles them into the detectors' rules and checks what they mean. They are not
part of ``FeatureSet.version``: a signal changes no stored vector and no model.

Every problem names the file and the path in it (``signals.login_drop.current``)
and, for a file, the line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml

from featurestore.errors import DefinitionError
from schemas.alert import Severity
from schemas.lifecycle import ChangeKind

DEFAULT_DEFINITIONS = "default.yaml"
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_DAYS_RE = re.compile(r"([1-9][0-9]{0,2})d")
_EVENT_RE = re.compile(r"\*|[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*(?:\.\*)?")
# An exact event type, as the event contract allows (schemas.event): namespaced.
_EVENT_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
MAX_DAYS = 400
_SECTIONS = ("version", "features", "signals", "tier1", "lifecycle")
# The lifecycle kinds a file may map event types to (usage_recovered comes from signals).
LIFECYCLE_KINDS = tuple(k for k in ChangeKind if k is not ChangeKind.USAGE_RECOVERED)


class Aggregation(StrEnum):
    COUNT = "count"
    SUM = "sum"
    DISTINCT_USERS = "distinct_users"
    DISTINCT_VALUES = "distinct_values"
    DAYS_SINCE_LAST = "days_since_last"
    DAYS_SINCE_FIRST = "days_since_first"
    DAYS_UNTIL = "days_until"
    LATEST = "latest"
    RATIO = "ratio"


WINDOWED = frozenset(
    {Aggregation.COUNT, Aggregation.SUM, Aggregation.DISTINCT_USERS, Aggregation.DISTINCT_VALUES}
)
NEEDS_ATTRIBUTE = frozenset(
    {Aggregation.SUM, Aggregation.DISTINCT_VALUES, Aggregation.DAYS_UNTIL, Aggregation.LATEST}
)
_KEYS = {
    "events", "aggregation", "window", "offset", "attribute", "where",
    "numerator", "denominator", "default",
}


@dataclass(frozen=True, slots=True)
class FeatureDefinition:
    """One feature, validated."""

    name: str
    aggregation: Aggregation
    events: tuple[str, ...] = ()
    window_days: int = 0
    offset_days: int = 0
    attribute: str | None = None
    where_attribute: str | None = None
    where_values: frozenset[str] = frozenset()
    numerator: str | None = None
    denominator: str | None = None
    default: float = 0.0

    def matches(self, event_type: str) -> bool:
        for pattern in self.events:
            if pattern == "*" or pattern == event_type:
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False

    @property
    def span_days(self) -> int:
        """How many days of buckets this feature reads."""
        return self.window_days + self.offset_days


@dataclass(frozen=True, slots=True)
class SignalDeclaration:
    """One usage signal as declared: its name, kind and settings as written (the
    detectors check and compile them: ``detectors.definitions``)."""

    name: str
    kind: str
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Tier1Declaration:
    """A decisive event type: the alert rule it raises, its severity and reason."""

    event_type: str
    rule: str
    severity: Severity
    reason: str


@dataclass(frozen=True)
class FeatureSet:
    """Compiled definitions: the features in file order and their version hash, and
    the detectors' declarations (signals, tier-1 rules, lifecycle mapping)."""

    features: tuple[FeatureDefinition, ...]
    version: str
    source: str = "<definitions>"
    _by_type: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)
    signals: tuple[SignalDeclaration, ...] = ()
    tier1: tuple[Tier1Declaration, ...] = ()
    # change kind -> the event types that mean it, in file order
    lifecycle: Mapping[ChangeKind, tuple[str, ...]] = field(default_factory=dict)
    # dotted path in the file (features.x.events, tier1.billing.payment_failed.rule) -> line
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, path: str) -> int | None:
        """The file line of ``path``, or of its nearest enclosing entry; None without a file."""
        return _line_of(self.lines, path)

    def error(self, path: str, problem: str) -> DefinitionError:
        """A :class:`DefinitionError` about ``path``, with its line."""
        return DefinitionError(self.source, path, problem, self.line_of(path))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def retention_days(self) -> int:
        """Daily buckets kept per account: the longest window plus its offset."""
        return max((f.span_days for f in self.features if f.aggregation in WINDOWED), default=1)

    def indexes_for(self, event_type: str) -> tuple[int, ...]:
        """Indexes of the non-ratio features an event type feeds (memoised per type)."""
        found = self._by_type.get(event_type)
        if found is None:
            found = tuple(
                i
                for i, f in enumerate(self.features)
                if f.aggregation is not Aggregation.RATIO and f.matches(event_type)
            )
            self._by_type[event_type] = found
        return found

    def __getitem__(self, name: str) -> FeatureDefinition:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)


def load_definitions(path: Path | None = None) -> FeatureSet:
    """Load a definitions file; ``None`` loads the shipped default."""
    if path is None:
        text = (
            resources.files("featurestore")
            .joinpath("definitions", DEFAULT_DEFINITIONS)
            .read_text(encoding="utf-8")
        )
        source = f"featurestore/definitions/{DEFAULT_DEFINITIONS}"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DefinitionError(str(path), "$", f"cannot read: {exc.strerror}") from None
        source = str(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f"line {line}" if line is not None else "$"
        raise DefinitionError(source, where, f"not valid YAML/JSON: {exc}", line) from None
    lines: dict[str, int] = {}
    if node is not None:
        _index_lines(node, "", lines, source)
    try:
        feature_set = parse_definitions(document, source)
    except DefinitionError as exc:
        if exc.line is not None:
            raise
        raise DefinitionError(source, exc.path, exc.problem, _line_of(lines, exc.path)) from None
    object.__setattr__(feature_set, "lines", lines)
    return feature_set


def _index_lines(node: yaml.Node, path: str, lines: dict[str, int], source: str) -> None:
    """Record the line of every mapping key and list item under ``node`` by its dotted
    path; a key given twice is refused (YAML would silently keep the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DefinitionError(source, child, "duplicate key", line)
            seen.add(key)
            lines[child] = line
            _index_lines(value_node, child, lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{path}[{i}]"
            lines[child] = item.start_mark.line + 1
            _index_lines(item, child, lines, source)


def _line_of(lines: Mapping[str, int], path: str) -> int | None:
    """The line of ``path``, else of the nearest enclosing path that has one."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            return None
        path = path[:cut]
    return None


def parse_definitions(document: Any, source: str = "<definitions>") -> FeatureSet:
    """Validate a decoded definitions document; errors name the path at fault."""
    if not isinstance(document, dict):
        raise DefinitionError(source, "$", "must be a mapping with 'version' and 'features'")
    version = document.get("version")
    if isinstance(version, bool) or version != 1:
        raise DefinitionError(source, "version", "must be 1")
    extra = set(document) - set(_SECTIONS)
    if extra:
        raise DefinitionError(
            source, str(sorted(extra, key=str)[0]), f"unknown key (known: {', '.join(_SECTIONS)})"
        )
    raw_features = document.get("features")
    if not isinstance(raw_features, dict) or not raw_features:
        raise DefinitionError(source, "features", "must be a non-empty mapping name -> definition")
    features = [_parse_feature(source, name, spec) for name, spec in raw_features.items()]
    by_name = {f.name: f for f in features}
    for feature in features:
        if feature.aggregation is Aggregation.RATIO:
            for role in ("numerator", "denominator"):
                target = by_name.get(getattr(feature, role))
                path = f"features.{feature.name}.{role}"
                if target is None:
                    raise DefinitionError(source, path, "names no feature")
                if target.aggregation not in WINDOWED:
                    raise DefinitionError(source, path, "must name a windowed feature")
    canonical = orjson.dumps(
        [_canonical(f) for f in features], option=orjson.OPT_SORT_KEYS
    )
    version = hashlib.sha256(canonical).hexdigest()[:16]
    return FeatureSet(
        tuple(features),
        version,
        source,
        signals=_parse_signals(source, document.get("signals")),
        tier1=_parse_tier1(source, document.get("tier1")),
        lifecycle=_parse_lifecycle(source, document.get("lifecycle")),
    )


def _parse_signals(source: str, section: object) -> tuple[SignalDeclaration, ...]:
    """The ``signals`` section's shape: name -> {kind: ..., settings}. What each kind
    takes is the detectors' to check (``detectors.definitions``)."""
    if section is None:
        return ()
    if not isinstance(section, Mapping):
        raise DefinitionError(source, "signals", "must be a mapping name -> signal")
    declared = []
    for name, spec in section.items():
        path = f"signals.{name}"
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise DefinitionError(
                source, path, "name must be lowercase [a-z0-9_], at most 63 chars"
            )
        if not isinstance(spec, Mapping):
            raise DefinitionError(source, path, "must be a mapping with a 'kind'")
        kind = spec.get("kind")
        if not isinstance(kind, str):
            raise DefinitionError(source, f"{path}.kind", "required: drop, threshold,"
                                  " renewal_risk or absence")
        settings = {str(k): v for k, v in spec.items() if k != "kind"}
        declared.append(SignalDeclaration(name, kind, settings))
    return tuple(declared)


def _parse_tier1(source: str, section: object) -> tuple[Tier1Declaration, ...]:
    """``tier1``: event type -> {rule, severity, reason}."""
    if section is None:
        return ()
    if not isinstance(section, Mapping):
        raise DefinitionError(source, "tier1", "must be a mapping event_type -> rule")
    declared = []
    rules: dict[str, str] = {}
    for event_type, spec in section.items():
        path = f"tier1.{event_type}"
        if not isinstance(event_type, str) or not _EVENT_TYPE_RE.fullmatch(event_type):
            raise DefinitionError(source, path, "must be an event type such as billing.failed")
        if not isinstance(spec, Mapping):
            raise DefinitionError(source, path, "must be a mapping {rule, severity, reason}")
        unknown = set(spec) - {"rule", "severity", "reason"}
        if unknown:
            raise DefinitionError(source, f"{path}.{sorted(unknown, key=str)[0]}",
                                  "unknown key (known: rule, severity, reason)")
        rule = spec.get("rule")
        if not isinstance(rule, str) or not _NAME_RE.fullmatch(rule):
            raise DefinitionError(source, f"{path}.rule", "required: a lowercase name")
        if rule in rules:
            raise DefinitionError(source, f"{path}.rule",
                                  f"{rule!r} is already the rule of {rules[rule]}")
        rules[rule] = event_type
        try:
            severity = Severity(spec.get("severity", "high"))
        except ValueError:
            choices = ", ".join(s.value for s in Severity)
            raise DefinitionError(source, f"{path}.severity", f"must be one of {choices}") from None
        reason = spec.get("reason", f"{event_type} received")
        if not isinstance(reason, str) or not reason:
            raise DefinitionError(source, f"{path}.reason", "must be a text")
        declared.append(Tier1Declaration(event_type, rule, severity, reason))
    return tuple(declared)


def _parse_lifecycle(source: str, section: object) -> dict[ChangeKind, tuple[str, ...]]:
    """``lifecycle``: change kind -> [event types]; an event type means one kind only."""
    if section is None:
        return {}
    kinds = ", ".join(LIFECYCLE_KINDS)
    if not isinstance(section, Mapping):
        raise DefinitionError(source, "lifecycle", f"must be a mapping of {kinds} -> event types")
    mapping: dict[ChangeKind, tuple[str, ...]] = {}
    meaning: dict[str, str] = {}
    for kind, types in section.items():
        path = f"lifecycle.{kind}"
        if kind not in LIFECYCLE_KINDS:
            raise DefinitionError(source, path, f"unknown change (known: {kinds})")
        if not isinstance(types, list):
            raise DefinitionError(source, path, "must list event types")
        for i, event_type in enumerate(types):
            if not isinstance(event_type, str) or not _EVENT_TYPE_RE.fullmatch(event_type):
                raise DefinitionError(source, f"{path}[{i}]",
                                      "must be an event type such as subscription.cancelled")
            if event_type in meaning:
                raise DefinitionError(source, f"{path}[{i}]",
                                      f"{event_type} already means {meaning[event_type]}")
            meaning[event_type] = str(kind)
        mapping[ChangeKind(kind)] = tuple(types)
    return mapping


def _canonical(feature: FeatureDefinition) -> dict[str, Any]:
    return {
        "name": feature.name,
        "aggregation": str(feature.aggregation),
        "events": list(feature.events),
        "window_days": feature.window_days,
        "offset_days": feature.offset_days,
        "attribute": feature.attribute,
        "where_attribute": feature.where_attribute,
        "where_values": sorted(feature.where_values),
        "numerator": feature.numerator,
        "denominator": feature.denominator,
        "default": feature.default,
    }


def _parse_feature(source: str, name: object, spec: object) -> FeatureDefinition:
    path = f"features.{name}"
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise DefinitionError(source, path, "name must be lowercase [a-z0-9_], at most 63 chars")
    if not isinstance(spec, Mapping):
        raise DefinitionError(source, path, "must be a mapping")
    unknown = set(spec) - _KEYS
    if unknown:
        raise DefinitionError(source, f"{path}.{sorted(unknown)[0]}", "unknown key")
    try:
        aggregation = Aggregation(str(spec.get("aggregation")))
    except ValueError:
        choices = ", ".join(a.value for a in Aggregation)
        raise DefinitionError(source, f"{path}.aggregation", f"must be one of: {choices}") from None

    default = spec.get("default", 0.0)
    if isinstance(default, bool) or not isinstance(default, int | float):
        raise DefinitionError(source, f"{path}.default", "must be a number")

    if aggregation is Aggregation.RATIO:
        for role in ("numerator", "denominator"):
            if not isinstance(spec.get(role), str):
                raise DefinitionError(source, f"{path}.{role}", "required for a ratio")
        for key in ("events", "window", "offset", "attribute", "where"):
            if key in spec:
                raise DefinitionError(source, f"{path}.{key}", "not allowed on a ratio")
        return FeatureDefinition(
            name, aggregation, numerator=spec["numerator"], denominator=spec["denominator"],
            default=float(default),
        )

    events = spec.get("events")
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(e, str) and _EVENT_RE.fullmatch(e) for e in events)
    ):
        raise DefinitionError(
            source, f"{path}.events", "must list event types, 'prefix.*' patterns or '*'"
        )
    window_days = offset_days = 0
    if aggregation in WINDOWED:
        window_days = _days(source, f"{path}.window", spec.get("window"), required=True)
        offset_days = _days(source, f"{path}.offset", spec.get("offset", "0d"), required=False)
        if window_days + offset_days > MAX_DAYS:
            raise DefinitionError(source, path, f"window + offset exceeds {MAX_DAYS} days")
    else:
        for key in ("window", "offset"):
            if key in spec:
                raise DefinitionError(source, f"{path}.{key}", f"not used by {aggregation}")
    attribute = spec.get("attribute")
    if aggregation in NEEDS_ATTRIBUTE:
        if not isinstance(attribute, str) or not attribute:
            raise DefinitionError(source, f"{path}.attribute", f"required for {aggregation}")
    elif attribute is not None:
        raise DefinitionError(source, f"{path}.attribute", f"not used by {aggregation}")
    where_attribute, where_values = None, frozenset[str]()
    where = spec.get("where")
    if where is not None:
        if (
            not isinstance(where, Mapping)
            or set(where) != {"attribute", "in"}
            or not isinstance(where["attribute"], str)
            or not isinstance(where["in"], list)
            or not where["in"]
        ):
            raise DefinitionError(
                source, f"{path}.where", "must be {attribute: NAME, in: [VALUE, ...]}"
            )
        where_attribute = where["attribute"]
        where_values = frozenset(str(v) for v in where["in"])
    return FeatureDefinition(
        name=name,
        aggregation=aggregation,
        events=tuple(sorted(set(events))),  # order carries no meaning
        window_days=window_days,
        offset_days=offset_days,
        attribute=attribute,
        where_attribute=where_attribute,
        where_values=where_values,
        default=float(default),
    )


def _days(source: str, path: str, value: object, *, required: bool) -> int:
    if isinstance(value, str):
        match = _DAYS_RE.fullmatch(value)
        if match:
            return int(match[1])
        if value == "0d" and not required:
            return 0
    raise DefinitionError(source, path, "must be whole days such as '7d'")
