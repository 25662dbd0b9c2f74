"""The monitoring in ops/ stays in step with the metrics churnwatch exposes.

Docker, Prometheus and Grafana are not needed: the alert rules, the Prometheus
config, the Grafana provisioning and dashboard, and docker-compose.yml are parsed
and checked against ``dataflows.metrics`` (a renamed metric breaks these tests,
not the dashboards in production).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from dataflows.metrics import LATENCY_BUCKETS, PipelineMetrics

ROOT = Path(__file__).resolve().parents[3]
OPS = ROOT / "ops"
PROMETHEUS_CONFIG = OPS / "prometheus" / "prometheus.yml"
ALERT_RULES = OPS / "prometheus" / "alerts.yml"
GRAFANA_DATASOURCE = OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDER = OPS / "grafana" / "provisioning" / "dashboards" / "churnwatch.yml"
DASHBOARD = OPS / "grafana" / "dashboards" / "churnwatch.json"
COMPOSE_FILE = ROOT / "docker-compose.yml"

METRIC_NAME = re.compile(r"\b(?:churnwatch|bytewax)_[a-z0-9_]+")
DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
SEVERITIES = {"critical", "warning", "info"}
# What prometheus_client exposes for one metric family, by family type.
EXPOSED_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def exposed_names(metric: CollectorRegistry | MetricWrapperBase) -> set[str]:
    """Sample names a registry (or one metric) puts on /metrics.

    Built from the metric families, not from samples: a labelled metric that has
    not moved yet has no sample but will have them in production.
    """
    families = metric.collect() if isinstance(metric, CollectorRegistry) else metric.describe()
    names = set()
    for family in families:
        assert family.type in EXPOSED_SUFFIXES, f"{family.name}: unexpected type {family.type}"
        names.update(family.name + suffix for suffix in EXPOSED_SUFFIXES[family.type])
    return names


@pytest.fixture(scope="module")
def produced_metrics() -> set[str]:
    """Every metric name churnwatch's /metrics serves that ops/ may use."""
    names = exposed_names(PipelineMetrics.create(CollectorRegistry()).registry)
    # Bytewax's Kafka input registers the lag gauge on the default registry,
    # which churnwatch serves on the same /metrics.
    return names | exposed_names(BYTEWAX_CONSUMER_LAG_GAUGE)


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    document = load_yaml(ALERT_RULES)
    assert isinstance(document, dict) and document.get("groups"), "alerts.yml has no groups"
    found = []
    for group in document["groups"]:
        assert group.get("name"), f"a rule group has no name: {group}"
        assert group.get("rules"), f"group {group['name']} has no rules"
        found.extend(group["rules"])
    return found


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return load_yaml(COMPOSE_FILE)["services"]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [
        target.get("expr", "") for panel in panels(dashboard) for target in panel.get("targets", [])
    ]


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: host path} of a service's bind mounts (``./host:/container[:ro]``)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if source.startswith((".", "/")):
            mounts[rest.split(":")[0]] = source
    return mounts


def balanced(expr: str) -> bool:
    """Brackets pair up and quotes close (promtool is not available to parse PromQL)."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote = None
    for char in expr:
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and quote is None


# --- alert rules ---------------------------------------------------------------


def test_every_rule_is_a_complete_alert(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        name = rule.get("alert")
        assert name, f"not an alerting rule: {rule}"
        assert str(rule.get("expr", "")).strip(), f"{name}: no expr"
        assert DURATION.match(str(rule.get("for", ""))), f"{name}: for is not a duration"
        assert (rule.get("labels") or {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = rule.get("annotations") or {}
        assert str(annotations.get("summary", "")).strip(), f"{name}: no summary"
        assert str(annotations.get("description", "")).strip(), f"{name}: no description"


def test_alert_names_are_unique(rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))


def test_rule_expressions_are_balanced(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        assert balanced(rule["expr"]), f"{rule['alert']}: unbalanced brackets or quotes"


def test_rules_cover_the_slos(rules: list[dict[str, Any]]) -> None:
    exprs = "\n".join(rule["expr"] for rule in rules)
    for needle in (
        'up{job="churnwatch"} == 0',
        "churnwatch_alert_latency_seconds_bucket",
        "churnwatch_input_last_poll_timestamp_seconds",
        "churnwatch_ingest_rejected_total",
        "bytewax_kafka_consumer_lag",
        "churnwatch_sink_errors_total",
        "churnwatch_alerts_total",
    ):
        assert needle in exprs, f"no rule uses {needle}"


def test_tier1_latency_threshold_is_a_bucket_bound(rules: list[dict[str, Any]]) -> None:
    # histogram_quantile interpolates within a bucket: a threshold on a bound is exact.
    (rule,) = [r for r in rules if 'tier="1"' in r["expr"] and "latency" in r["expr"]]
    threshold = float(rule["expr"].rsplit(">", 1)[1])
    assert threshold in LATENCY_BUCKETS


def test_rules_use_only_produced_metrics(
    rules: list[dict[str, Any]], produced_metrics: set[str]
) -> None:
    for rule in rules:
        unknown = set(METRIC_NAME.findall(rule["expr"])) - produced_metrics
        assert unknown == set(), f"{rule['alert']} uses metrics churnwatch does not expose"


# --- Grafana ---------------------------------------------------------------------


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "churnwatch"
    assert dashboard["schemaVersion"] == 39
    assert dashboard.get("title")


def test_dashboard_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel.get("id") for panel in panels(dashboard)]
    assert None not in ids
    assert len(ids) == len(set(ids))


def test_every_panel_is_placed_and_queries_prometheus(dashboard: dict[str, Any]) -> None:
    found = list(panels(dashboard))
    assert found, "the dashboard has no panels"
    for panel in found:
        title = panel.get("title")
        assert panel.get("type") in ("timeseries", "stat"), title
        grid = panel.get("gridPos") or {}
        assert all(isinstance(grid.get(key), int) for key in "xywh"), f"{title}: gridPos"
        assert grid["x"] + grid["w"] <= 24, f"{title}: wider than the grid"
        targets = panel.get("targets") or []
        assert any(str(t.get("expr", "")).strip() for t in targets), f"{title}: no query"
        for target in targets:
            assert target.get("datasource", {}).get("uid") == "prometheus", title
            assert balanced(target.get("expr", "")), f"{title}: unbalanced expr"
        ref_ids = [target.get("refId") for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), f"{title}: duplicate refId"


def test_dashboard_uses_only_produced_metrics(
    dashboard: dict[str, Any], produced_metrics: set[str]
) -> None:
    used = {name for expr in dashboard_exprs(dashboard) for name in METRIC_NAME.findall(expr)}
    assert used, "no churnwatch metric on the dashboard"
    assert used - produced_metrics == set()


def test_datasource_provisioning_matches_the_dashboard() -> None:
    (datasource,) = load_yaml(GRAFANA_DATASOURCE)["datasources"]
    assert datasource["uid"] == "prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_dashboard_provider_reads_the_mounted_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    (provider,) = load_yaml(GRAFANA_PROVIDER)["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    mounts = bind_mounts(services["grafana"])
    assert path in mounts, f"nothing mounted at {path}"
    assert (ROOT / mounts[path]).resolve() == DASHBOARD.parent


# --- Prometheus config and compose -----------------------------------------------


def test_prometheus_scrapes_churnwatch_on_its_metrics_port(
    services: dict[str, dict[str, Any]],
) -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    port = environment(services["churnwatch"])["CHURNWATCH_METRICS_PORT"]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "churnwatch"]
    targets = [target for static in job["static_configs"] for target in static["targets"]]
    assert targets == [f"churnwatch:{port}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["scrape_interval"] == "5s"
    assert any(str(p).split(":")[-1] == port for p in services["churnwatch"].get("ports", []))


def test_prometheus_loads_the_alert_rules(services: dict[str, dict[str, Any]]) -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == [ALERT_RULES.name]
    assert (PROMETHEUS_CONFIG.parent / ALERT_RULES.name).is_file()
    mounts = bind_mounts(services["prometheus"])
    assert (ROOT / mounts["/etc/prometheus"]).resolve() == PROMETHEUS_CONFIG.parent


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_monitoring_service_mounts_exist_in_the_repo(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    mounts = bind_mounts(services[name])
    assert mounts, f"{name} mounts nothing from the repository"
    for volume in services[name]["volumes"]:
        if str(volume).startswith("."):
            assert str(volume).endswith(":ro"), f"{name}: {volume} is writable"
    for container_path, host_path in mounts.items():
        assert (ROOT / host_path).exists(), f"{name}: {host_path} ({container_path}) is missing"


def test_monitoring_services_start_in_order(services: dict[str, dict[str, Any]]) -> None:
    assert "churnwatch" in services["prometheus"]["depends_on"]
    assert "prometheus" in services["grafana"]["depends_on"]
    assert environment(services["grafana"])["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
