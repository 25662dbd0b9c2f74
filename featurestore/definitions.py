"""Feature definitions: load, validate and compile the user-editable file.

A definitions file (YAML, or JSON which YAML reads too) describes every
feature once; the stream (``featurestore.aggregation``) and the batch backfill
both compute from the compiled :class:`FeatureSet`, so online and offline
values cannot drift. ``FeatureSet.version`` hashes the normalised definitions:
it is the ``feature_version`` written next to every stored vector.
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

DEFAULT_DEFINITIONS = "default.yaml"
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_DAYS_RE = re.compile(r"([1-9][0-9]{0,2})d")
_EVENT_RE = re.compile(r"\*|[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*(?:\.\*)?")
MAX_DAYS = 400


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


@dataclass(frozen=True)
class FeatureSet:
    """Compiled definitions: the features in file order and their version hash."""

    features: tuple[FeatureDefinition, ...]
    version: str
    source: str = "<definitions>"
    _by_type: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

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
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "$"
        raise DefinitionError(source, where, f"not valid YAML/JSON: {exc}") from None
    return parse_definitions(document, source)


def parse_definitions(document: Any, source: str = "<definitions>") -> FeatureSet:
    """Validate a decoded definitions document; errors name the path at fault."""
    if not isinstance(document, dict):
        raise DefinitionError(source, "$", "must be a mapping with 'version' and 'features'")
    version = document.get("version")
    if isinstance(version, bool) or version != 1:
        raise DefinitionError(source, "version", "must be 1")
    extra = set(document) - {"version", "features"}
    if extra:
        raise DefinitionError(source, sorted(extra)[0], "unknown key")
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
    return FeatureSet(tuple(features), version, source)


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
