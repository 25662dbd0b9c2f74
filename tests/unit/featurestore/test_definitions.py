"""Feature definitions: the shipped default, the version hash, refusals and matching."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from featurestore.definitions import (
    Aggregation,
    FeatureDefinition,
    load_definitions,
    parse_definitions,
)
from featurestore.errors import DefinitionError

README_FEATURES = (
    "logins_7d",
    "login_trend",
    "active_users_7d",
    "days_since_last_activity",
    "days_to_renewal",
    "tenure_days",
    "seats",
    "key_feature_events_7d",
    "support_tickets_28d",
    "payment_failures_28d",
)


def definitions_doc(**features: dict[str, Any]) -> dict[str, Any]:
    """A valid document: one 7-day login count, plus (or replaced by) ``features``."""
    base: dict[str, Any] = {
        "logins_7d": {"events": ["app.login"], "aggregation": "count", "window": "7d"},
    }
    base.update(features)
    return {"version": 1, "features": base}


def default_doc() -> dict[str, Any]:
    """The shipped default definitions, decoded (a fresh copy each call)."""
    text = (
        resources.files("featurestore")
        .joinpath("definitions", "default.yaml")
        .read_text(encoding="utf-8")
    )
    return yaml.safe_load(text)


# --- the shipped default ------------------------------------------------------------------


def test_shipped_default_has_the_readme_features() -> None:
    feature_set = load_definitions()
    missing = [name for name in README_FEATURES if name not in feature_set.names]
    assert missing == []
    assert feature_set["login_trend"].aggregation is Aggregation.RATIO
    assert feature_set["seats"].aggregation is Aggregation.LATEST


def test_shipped_default_keeps_35_days() -> None:
    # the longest reader is a 28-day baseline offset by 7 days
    assert load_definitions().retention_days == 35


# --- the version hash ---------------------------------------------------------------------


def test_version_is_16_hex_and_stable_for_the_same_content() -> None:
    first = load_definitions().version
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert load_definitions().version == first
    assert parse_definitions(default_doc()).version == first


def test_version_changes_when_one_window_changes() -> None:
    doc = default_doc()
    doc["features"]["logins_7d"]["window"] = "8d"
    assert parse_definitions(doc).version != load_definitions().version


@pytest.mark.parametrize(
    ("feature", "key", "value"),
    [
        pytest.param("logins_7d", "events", ["app.logout"], id="events"),
        pytest.param("logins_baseline_28d", "offset", "8d", id="offset"),
        pytest.param("login_trend", "default", 2.0, id="default"),
        pytest.param("days_to_renewal", "attribute", "renewal_at", id="attribute"),
        pytest.param("logins_7d", "aggregation", "distinct_users", id="aggregation"),
    ],
)
def test_version_changes_with_any_field(feature: str, key: str, value: object) -> None:
    doc = default_doc()
    doc["features"][feature][key] = value
    assert parse_definitions(doc).version != load_definitions().version


def test_version_does_not_depend_on_yaml_or_json_formatting(tmp_path: Path) -> None:
    as_json = tmp_path / "definitions.json"
    as_json.write_bytes(orjson.dumps(default_doc(), option=orjson.OPT_INDENT_2))
    assert load_definitions(as_json).version == load_definitions().version


def test_version_does_not_depend_on_key_order_or_spelled_out_defaults() -> None:
    plain = definitions_doc()
    reordered = definitions_doc(
        logins_7d={"window": "7d", "offset": "0d", "aggregation": "count", "events": ["app.login"]}
    )
    assert parse_definitions(plain).version == parse_definitions(reordered).version


def test_version_ignores_where_we_read_it_from() -> None:
    assert (
        parse_definitions(definitions_doc(), "a.yaml").version
        == parse_definitions(definitions_doc(), "b.yaml").version
    )


# --- refusals -----------------------------------------------------------------------------

COUNT = {"events": ["app.login"], "aggregation": "count", "window": "7d"}


def count_with(**changes: object) -> dict[str, object]:
    """The 7-day count, with keys changed (``None`` removes a key)."""
    spec = {**COUNT, **changes}
    return {k: v for k, v in spec.items() if v is not None}


def one_feature(name: str, spec: object) -> dict[str, Any]:
    return {"version": 1, "features": {name: spec}}


REFUSALS = [
    pytest.param(["version", 1], "$", id="not-a-mapping"),
    pytest.param(None, "$", id="empty-document"),
    pytest.param({"version": 2, "features": {"x": COUNT}}, "version", id="version-2"),
    pytest.param({"version": "1", "features": {"x": COUNT}}, "version", id="version-string"),
    pytest.param({"features": {"x": COUNT}}, "version", id="version-missing"),
    pytest.param(
        {"version": 1, "features": {"x": COUNT}, "zeta": 1, "alpha": 2}, "alpha", id="unknown-top"
    ),
    pytest.param({"version": 1, "features": {}}, "features", id="features-empty"),
    pytest.param({"version": 1}, "features", id="features-missing"),
    pytest.param({"version": 1, "features": [COUNT]}, "features", id="features-a-list"),
    pytest.param(one_feature("Logins", COUNT), "features.Logins", id="name-uppercase"),
    pytest.param(one_feature("7d_logins", COUNT), "features.7d_logins", id="name-digit-first"),
    pytest.param(one_feature("a" * 64, COUNT), f"features.{'a' * 64}", id="name-64-chars"),
    pytest.param(one_feature("logins-7d", COUNT), "features.logins-7d", id="name-dash"),
    pytest.param(one_feature("x", ["app.login"]), "features.x", id="feature-not-mapping"),
    pytest.param(
        one_feature("x", count_with(aggregation="median")), "features.x.aggregation",
        id="unknown-aggregation",
    ),
    pytest.param(
        one_feature("x", count_with(aggregation=None)), "features.x.aggregation",
        id="aggregation-missing",
    ),
    pytest.param(
        one_feature("x", count_with(windw="7d")), "features.x.windw", id="unknown-feature-key"
    ),
    pytest.param(one_feature("x", count_with(events=None)), "features.x.events", id="no-events"),
    pytest.param(one_feature("x", count_with(events=[])), "features.x.events", id="events-empty"),
    pytest.param(
        one_feature("x", count_with(events="app.login")), "features.x.events",
        id="events-a-string",
    ),
    pytest.param(
        one_feature("x", count_with(events=["App.Login"])), "features.x.events",
        id="events-uppercase",
    ),
    pytest.param(
        one_feature("x", count_with(events=["app*"])), "features.x.events", id="events-bare-star"
    ),
    pytest.param(
        one_feature("x", count_with(events=["*.login"])), "features.x.events",
        id="events-leading-star",
    ),
    pytest.param(
        one_feature("x", count_with(events=["app..login"])), "features.x.events",
        id="events-empty-segment",
    ),
    pytest.param(one_feature("x", count_with(window=None)), "features.x.window", id="no-window"),
    pytest.param(
        one_feature("x", count_with(window="7 days")), "features.x.window", id="window-7-days"
    ),
    pytest.param(one_feature("x", count_with(window="0d")), "features.x.window", id="window-0d"),
    pytest.param(one_feature("x", count_with(window=7)), "features.x.window", id="window-int"),
    pytest.param(
        one_feature("x", count_with(window="07d")), "features.x.window", id="window-leading-zero"
    ),
    pytest.param(one_feature("x", count_with(offset="1w")), "features.x.offset", id="offset-1w"),
    pytest.param(
        one_feature("x", count_with(offset="-7d")), "features.x.offset", id="offset-negative"
    ),
    pytest.param(
        one_feature("x", {"events": ["billing.invoice"], "aggregation": "sum", "window": "7d"}),
        "features.x.attribute", id="sum-without-attribute",
    ),
    pytest.param(
        one_feature(
            "x", {"events": ["app.feature_used"], "aggregation": "distinct_values", "window": "7d"}
        ),
        "features.x.attribute", id="distinct-values-without-attribute",
    ),
    pytest.param(
        one_feature("x", {"events": ["subscription.renewed"], "aggregation": "days_until"}),
        "features.x.attribute", id="days-until-without-attribute",
    ),
    pytest.param(
        one_feature("x", {"events": ["app.seat_added"], "aggregation": "latest", "attribute": ""}),
        "features.x.attribute", id="latest-empty-attribute",
    ),
    pytest.param(
        one_feature("x", {"events": ["account.traits_changed"], "aggregation": "latest"}),
        "features.x.attribute", id="latest-without-attribute",
    ),
    pytest.param(
        one_feature("x", {"events": ["account.traits_changed"], "aggregation": "latest",
                          "attribute": ["mrr"]}),
        "features.x.attribute", id="latest-attribute-not-text",
    ),
    pytest.param(
        one_feature("x", {"events": ["account.traits_changed"], "aggregation": "latest",
                          "attribute": "mrr", "window": "7d"}),
        "features.x.window", id="latest-with-window",
    ),
    pytest.param(
        one_feature("x", {"events": ["account.traits_changed"], "aggregation": "latest",
                          "attribute": "mrr", "default": "none"}),
        "features.x.default", id="latest-default-not-a-number",
    ),
    pytest.param(
        one_feature("x", count_with(attribute="feature")), "features.x.attribute",
        id="count-with-attribute",
    ),
    pytest.param(
        one_feature("x", {"events": ["app.*"], "aggregation": "days_since_last", "window": "7d"}),
        "features.x.window", id="days-since-last-with-window",
    ),
    pytest.param(
        one_feature("x", {"events": ["*"], "aggregation": "days_since_first", "offset": "7d"}),
        "features.x.offset", id="days-since-first-with-offset",
    ),
    pytest.param(
        one_feature("x", count_with(where={"attribute": "feature"})), "features.x.where",
        id="where-without-in",
    ),
    pytest.param(
        one_feature("x", count_with(where={"attribute": "feature", "in": []})),
        "features.x.where", id="where-in-empty",
    ),
    pytest.param(
        one_feature("x", count_with(where={"attribute": "feature", "in": "reports"})),
        "features.x.where", id="where-in-a-string",
    ),
    pytest.param(
        one_feature("x", count_with(where=["feature"])), "features.x.where", id="where-a-list"
    ),
    pytest.param(
        definitions_doc(r={"aggregation": "ratio", "denominator": "logins_7d"}),
        "features.r.numerator", id="ratio-without-numerator",
    ),
    pytest.param(
        definitions_doc(r={"aggregation": "ratio", "numerator": "logins_7d"}),
        "features.r.denominator", id="ratio-without-denominator",
    ),
    pytest.param(
        definitions_doc(
            r={"aggregation": "ratio", "numerator": "logins_7d", "denominator": "logins_28d"}
        ),
        "features.r.denominator", id="ratio-unknown-feature",
    ),
    pytest.param(
        definitions_doc(
            last={"events": ["app.*"], "aggregation": "days_since_last"},
            r={"aggregation": "ratio", "numerator": "last", "denominator": "logins_7d"},
        ),
        "features.r.numerator", id="ratio-of-non-windowed",
    ),
    pytest.param(
        definitions_doc(
            r={"aggregation": "ratio", "numerator": "logins_7d", "denominator": "logins_7d"},
            rr={"aggregation": "ratio", "numerator": "logins_7d", "denominator": "r"},
        ),
        "features.rr.denominator", id="ratio-of-ratio",
    ),
    pytest.param(
        definitions_doc(
            r={
                "aggregation": "ratio", "numerator": "logins_7d", "denominator": "logins_7d",
                "window": "7d",
            }
        ),
        "features.r.window", id="ratio-with-window",
    ),
    pytest.param(
        one_feature("x", count_with(window="300d", offset="101d")), "features.x",
        id="window-plus-offset-401d",
    ),
    pytest.param(
        one_feature("x", count_with(window="401d")), "features.x", id="window-401d"
    ),
    pytest.param(
        one_feature("x", count_with(default="0")), "features.x.default", id="default-string"
    ),
    pytest.param(
        one_feature("x", count_with(default=True)), "features.x.default", id="default-bool"
    ),
]


@pytest.mark.parametrize(("document", "path"), REFUSALS)
def test_invalid_definitions_are_refused_naming_the_culprit(document: object, path: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definitions(document, "test.yaml")
    assert caught.value.path == path
    assert caught.value.source == "test.yaml"
    assert str(caught.value).startswith(f"test.yaml: {path}: ")


def test_boolean_version_is_refused() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definitions({"version": True, "features": {"x": COUNT}})
    assert caught.value.path == "version"


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(count_with(window="400d"), id="window-400d"),
        pytest.param(count_with(window="393d", offset="7d"), id="window-plus-offset-400d"),
        pytest.param(count_with(offset="0d"), id="offset-0d"),
        pytest.param(count_with(events=["*"]), id="events-star"),
        pytest.param(count_with(events=["app.*", "support.ticket_opened"]), id="events-prefix"),
        pytest.param(count_with(default=1), id="default-int"),
        pytest.param(
            {"events": ["app.seat_added"], "aggregation": "latest", "attribute": "seats"},
            id="latest",
        ),
    ],
)
def test_valid_edge_cases_are_accepted(spec: dict[str, object]) -> None:
    feature = parse_definitions(one_feature("x", spec))["x"]
    assert feature.name == "x"
    assert feature.span_days <= 400


def test_offset_and_where_are_compiled() -> None:
    spec = count_with(
        window="28d", offset="7d", where={"attribute": "feature", "in": ["reports", 3]}
    )
    feature = parse_definitions(one_feature("x", spec))["x"]
    assert (feature.window_days, feature.offset_days, feature.span_days) == (28, 7, 35)
    assert feature.where_attribute == "feature"
    assert feature.where_values == frozenset({"reports", "3"})


# --- loading files ------------------------------------------------------------------------


def test_broken_yaml_reports_the_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "version: 1\n"
        "features:\n"
        "  logins_7d: {events: [app.login], aggregation: count, window: 7d}\n"
        "  oops: events: [app.login]\n",
        encoding="utf-8",
    )
    with pytest.raises(DefinitionError) as caught:
        load_definitions(broken)
    assert caught.value.path == "line 4"
    assert caught.value.source == str(broken)
    assert "not valid YAML/JSON" in caught.value.problem


def test_missing_file_cannot_be_read(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DefinitionError) as caught:
        load_definitions(missing)
    assert caught.value.source == str(missing)
    assert caught.value.path == "$"
    assert caught.value.problem.startswith("cannot read")


def test_a_file_error_names_the_file_and_the_feature(tmp_path: Path) -> None:
    traits = tmp_path / "traits.yaml"
    traits.write_text(
        "version: 1\n"
        "features:\n"
        "  mrr: {events: [account.traits_changed], aggregation: latest}\n",
        encoding="utf-8",
    )
    with pytest.raises(DefinitionError) as caught:
        load_definitions(traits)
    assert str(caught.value) == f"{traits}: line 3: features.mrr.attribute: required for latest"
    assert caught.value.line == 3


def test_valid_file_is_loaded_with_its_source(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(definitions_doc()), encoding="utf-8")
    feature_set = load_definitions(good)
    assert feature_set.names == ("logins_7d",)
    assert feature_set.source == str(good)


# --- matching event types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        pytest.param(("app.login",), "app.login", True, id="exact"),
        pytest.param(("app.login",), "app.logout", False, id="exact-other"),
        pytest.param(("app.login",), "app.login.sso", False, id="exact-is-not-prefix"),
        pytest.param(("app.*",), "app.login", True, id="prefix"),
        pytest.param(("app.*",), "app.feature.used", True, id="prefix-deep"),
        pytest.param(("app.*",), "apps.login", False, id="prefix-needs-the-dot"),
        pytest.param(("app.*",), "application.start", False, id="prefix-not-substring"),
        pytest.param(("app.*",), "billing.app.login", False, id="prefix-anchored"),
        pytest.param(("*",), "billing.payment_failed", True, id="star"),
        pytest.param(("billing.paid", "app.*"), "app.login", True, id="any-of-several"),
        pytest.param(("billing.paid", "app.*"), "crm.note", False, id="none-of-several"),
    ],
)
def test_feature_matches_event_types(
    patterns: tuple[str, ...], event_type: str, expected: bool
) -> None:
    feature = FeatureDefinition("x", Aggregation.COUNT, events=patterns, window_days=7)
    assert feature.matches(event_type) is expected


def test_feature_set_indexes_skip_ratios() -> None:
    feature_set = load_definitions()
    indexes = feature_set.indexes_for("app.login")
    names = [feature_set.features[i].name for i in indexes]
    assert "logins_7d" in names and "active_users_7d" in names and "tenure_days" in names
    assert "login_trend" not in names
    assert "support_tickets_28d" not in names
