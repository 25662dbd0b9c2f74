"""The tier-1 fast lane: decisive events' alerts reach Kafka while a slow sink holds the
worker (even events read after it got stuck), and nothing is lost or doubled once it
lets go."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from churnwatch.settings import Settings
from schemas.alert import alert_id
from tests.builders import event_bytes
from tests.integration.kafka_io import produce_all, read_all
from tests.integration.processes import child_env
from tests.integration.test_pipeline import postgres_rows

# Logins first: their risk scores meet the gate below, and the worker is stuck there.
LOGINS = [(b"a1", event_bytes(event_id=f"l{i}", account_id="a1", event_type="app.login"))
          for i in range(5)]
# Then, produced while the worker is stuck, two decisive events (and a copy of one).
DECISIVE = [
    (b"a1", event_bytes(event_id="pf", account_id="a1", event_type="billing.payment_failed")),
    (b"a2", event_bytes(event_id="ci", account_id="a2", event_type="subscription.cancel_intent")),
    (b"a2", event_bytes(event_id="ci", account_id="a2", event_type="subscription.cancel_intent")),
]
TIER1 = {
    alert_id("acme", "a1", "payment_failed", "pf"),
    alert_id("acme", "a2", "cancel_intent", "ci"),
}


def start_gated(settings: Settings, directory: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.gated_run", str(directory)],
        env=child_env(settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, f"the run ended:\n{proc.communicate()[0]}"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[str]) -> None:
    """End the child (what it wrote is already checked; its shutdown is not under test
    here: a SIGINT stop is, in test_operations and test_cli)."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def tier1_alerts_on_kafka(settings: Settings) -> list[str]:
    assert settings.kafka_bootstrap
    return [orjson.loads(value)["alert_id"]
            for _, value, _ in read_all(settings.kafka_bootstrap, settings.topics.alerts)
            if orjson.loads(value)["tier"] == 1]


def tier1_rows(settings: Settings) -> list[str]:
    return sorted(r[0] for r in postgres_rows(
        settings, "SELECT alert_id::text FROM alerts WHERE tier = 1"))


def test_tier1_alerts_reach_kafka_while_a_sink_is_stuck(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    """The worker is stuck in a risk_scores write; decisive events produced after that
    still reach churn.alerts, once each; when the write goes through, nothing is lost."""
    settings = make_settings("lane", topic_partitions=1)
    assert settings.tier1_fast_lane and settings.kafka_bootstrap
    produce_all(settings.kafka_bootstrap, settings.topics.events, LOGINS)
    proc = start_gated(settings, tmp_path)
    try:
        wait_for_file(tmp_path / "entered", proc)
        produce_all(settings.kafka_bootstrap, settings.topics.events, DECISIVE)
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while set(seen) != TIER1 and time.monotonic() < deadline:
            seen = tier1_alerts_on_kafka(settings)
        assert proc.poll() is None and not (tmp_path / "open").exists()
        assert sorted(seen) == sorted(TIER1)  # each once: the copy of "ci" was not sent
        assert tier1_rows(settings) == []  # the main path is held behind the gate
        (tmp_path / "open").touch()
        deadline = time.monotonic() + 60
        while tier1_rows(settings) != sorted(TIER1) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert tier1_rows(settings) == sorted(TIER1)
    finally:
        stop(proc)
    assert sorted(tier1_alerts_on_kafka(settings)) == sorted(TIER1)  # none twice
    assert postgres_rows(settings, "SELECT count(*) FROM risk_scores")[0][0] >= 2


def test_without_the_lane_tier1_alerts_wait_behind_the_stuck_sink(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    """The control: with the lane off, no alert leaves while the sink is stuck, so the
    test above measures the lane, not the order in which sinks run."""
    settings = make_settings("nolane", topic_partitions=1, tier1_fast_lane=False)
    assert settings.kafka_bootstrap
    produce_all(settings.kafka_bootstrap, settings.topics.events, LOGINS)
    proc = start_gated(settings, tmp_path)
    try:
        wait_for_file(tmp_path / "entered", proc)
        produce_all(settings.kafka_bootstrap, settings.topics.events, DECISIVE)
        time.sleep(1.0)  # what the lane would have delivered by now
        assert tier1_alerts_on_kafka(settings) == []
        (tmp_path / "open").touch()
        deadline = time.monotonic() + 60
        while sorted(tier1_alerts_on_kafka(settings)) != sorted(TIER1):
            assert time.monotonic() < deadline, "the alerts never came"
            time.sleep(0.2)
    finally:
        stop(proc)
