"""A policy file and a model directory replaced under a running flow (issue 12, part 1).

``churnwatch run`` (tailing, a service) starts with a copy of the shipped policy
and model. Mid-stream both are replaced by broken ones (invalid YAML; a
truncated ``model.onnx``): the process keeps running, refuses them (logged and
counted), and every score and decision written for the events that follow
carries the last good ``model_version`` and ``policy_version``. Then a valid new
policy and a freshly trained model are put in place: they are taken, and every
row from then on carries the new versions.

The events go in in phases, and each phase is waited for (every message read,
the tables still), so that "after the replacement" means rows the process
wrote after it. The holders look at their files only while batches are scored
(checks are lazy), so the first events after a replacement trickle in until
the process has judged it.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from churnwatch.localstack import free_port
from churnwatch.settings import DEFAULT_MODEL_DIR, DEFAULT_POLICY, Settings
from churnwatch.simulator import (
    MessageKind,
    SimulatedMessage,
    Simulation,
    produce,
    simulate,
    write_jsonl,
)
from scoring.metadata import model_version_of
from scoring.model import METADATA_FILE, MODEL_FILE
from tests.integration.conftest import create_events_topic
from tests.integration.ops_http import samples, total, up, wait_for
from tests.integration.processes import run_churnwatch, start_churnwatch

pytestmark = pytest.mark.faults

OLD_POLICY = "2026-11-22.1"  # decisions/policies/default.yaml
NEW_POLICY = "2026-11-22.2-reloaded"
INVALID_POLICY = 'policy_version: "broken"\nrules: [\n  - when: {trigger: payment_failed\n'
TRICKLE = 150  # messages per step while waiting for the process to judge a replacement


Rows = dict[str, dict[str, tuple[str, datetime]]]


def versions(settings: Settings) -> Rows:
    """score_id -> (model_version, score_time) of primary scores, decision_id ->
    (policy_version, decided_at)."""
    assert settings.database_url
    schema = settings.database_schema
    with psycopg.connect(settings.database_url) as conn:
        scores = conn.execute(
            f"SELECT score_id::text, model_version, score_time FROM {schema}.risk_scores "
            "WHERE NOT shadow".encode()
        ).fetchall()
        decisions = conn.execute(
            f"SELECT decision_id::text, policy_version, decided_at FROM {schema}.decisions"
            .encode()
        ).fetchall()
    return {"scores": {k: (v, t) for k, v, t in scores},
            "decisions": {k: (v, t) for k, v, t in decisions}}


def added(before: Rows, after: Rows, kind: str) -> dict[str, tuple[str, datetime]]:
    return {k: v for k, v in after[kind].items() if k not in before[kind]}


def labels(rows: dict[str, tuple[str, datetime]]) -> set[str]:
    return {version for version, _ in rows.values()}


def newest_event_time(messages: tuple[SimulatedMessage, ...]) -> datetime:
    times = []
    for message in messages:
        if message.kind != MessageKind.MALFORMED:
            times.append(datetime.fromisoformat(orjson.loads(message.value)["event_time"]))
    return max(times)


def settled(settings: Settings, port: int, produced: int) -> None:
    """Every produced message read, and the tables unchanged for 1.5 s after."""
    wait_for(lambda: total(samples(port), "churnwatch_ingest_messages_total") >= produced,
             timeout_s=120, what=f"{produced} messages read")
    last: tuple[int, int] | None = None
    stable_since = time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() - stable_since < 1.5:
        assert time.monotonic() < deadline, "the tables kept changing"
        now = versions(settings)
        sizes = (len(now["scores"]), len(now["decisions"]))
        if sizes != last:
            last, stable_since = sizes, time.monotonic()
        time.sleep(0.3)


class Feeder:
    """Produces a simulation's messages in slices, keeping count."""

    def __init__(self, simulation: Simulation, settings: Settings) -> None:
        assert settings.kafka_bootstrap
        self._simulation = simulation
        self._bootstrap = settings.kafka_bootstrap
        self._topic = settings.topics.events
        self.produced = 0

    def send(self, messages: tuple[SimulatedMessage, ...]) -> None:
        if messages:
            produce(dataclasses.replace(self._simulation, messages=messages), self._bootstrap,
                    self._topic)
            self.produced += len(messages)

    def trickle_until(self, messages: tuple[SimulatedMessage, ...],
                      judged: Callable[[], bool]) -> tuple[SimulatedMessage, ...]:
        """Send ``messages`` a little at a time until ``judged()``; return the rest."""
        deadline = time.monotonic() + 60
        while not judged():
            assert messages, "the phase ran out before the replacement was judged"
            assert time.monotonic() < deadline, "the replacement was never judged"
            self.send(messages[:TRICKLE])
            messages = messages[TRICKLE:]
            time.sleep(0.3)
        return messages


def model_info(port: int) -> str:
    """The live primary model_version, from churnwatch_model_info."""
    found = [dict(labels)["model_version"] for (name, labels), value in samples(port).items()
             if name == "churnwatch_model_info" and value == 1]
    assert len(found) == 1, found
    return found[0]


def test_broken_policy_and_model_are_refused_then_valid_ones_taken_mid_run(
    make_settings: Callable[..., Settings], tmp_path: Path,
    fault_report: Callable[[str], None],
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    policy_file = tmp_path / "policy.yaml"
    shutil.copyfile(DEFAULT_POLICY, policy_file)
    old_model = model_version_of((model_dir / MODEL_FILE).read_bytes())
    settings = make_settings(
        "reload",
        model_dir=model_dir,
        policy_file=policy_file,
        model_reload_interval=timedelta(seconds=1),
        policy_reload_interval=timedelta(seconds=1),
        input_batch_size=100,
        snapshot_interval=timedelta(milliseconds=500),
        metrics_port=free_port(),
    )
    create_events_topic(settings)

    # A second valid model, trained by the shipped CLI on another seeded history.
    history = tmp_path / "history.jsonl"
    write_jsonl(simulate(accounts=100, days=40, seed=3), history)
    new_model_dir = tmp_path / "new-model"
    run_churnwatch(settings, "train", "--history", str(history), "--out", str(new_model_dir),
                   "--horizon-days", "14", "--seed", "1")
    new_model = model_version_of((new_model_dir / MODEL_FILE).read_bytes())
    assert new_model != old_model

    simulation = simulate(accounts=150, days=36, seed=21)
    messages = simulation.messages
    third = len(messages) // 3
    phases = messages[:third], messages[third:2 * third], messages[2 * third:]
    feeder = Feeder(simulation, settings)
    port = settings.metrics_port

    proc = start_churnwatch(settings, "run")  # tailing, as a service runs
    try:
        wait_for(lambda: up(port), timeout_s=60, what="the ops server")
        feeder.send(phases[0])
        settled(settings, port, feeder.produced)
        before_break = versions(settings)
        assert labels(before_break["scores"]) == {old_model}
        assert labels(before_break["decisions"]) == {OLD_POLICY}

        # Broken replacements: invalid YAML; model.onnx cut short, metadata.json kept.
        policy_file.write_text(INVALID_POLICY)
        onnx_bytes = (model_dir / MODEL_FILE).read_bytes()
        (model_dir / MODEL_FILE).write_bytes(onnx_bytes[: len(onnx_bytes) // 2])

        def refused() -> bool:
            values = samples(port)
            return (total(values, "churnwatch_model_reloads_total", outcome="refused") >= 1
                    and total(values, "churnwatch_policy_reloads_total", outcome="refused") >= 1)

        feeder.send(feeder.trickle_until(phases[1], refused))
        settled(settings, port, feeder.produced)
        assert proc.poll() is None, "churnwatch stopped on a broken policy or model"
        after_break = versions(settings)
        scores = added(before_break, after_break, "scores")
        decisions = added(before_break, after_break, "decisions")
        assert len(scores) > 100 and len(decisions) > 10, (len(scores), len(decisions))
        assert labels(scores) == {old_model}  # the last good model scored them
        assert labels(decisions) == {OLD_POLICY}  # the last good policy decided them
        values = samples(port)
        assert total(values, "churnwatch_model_reloads_total", model="primary",
                     outcome="refused") == 1  # refused once, not at every check
        assert total(values, "churnwatch_model_reloads_total", outcome="accepted") == 0
        assert total(values, "churnwatch_policy_reloads_total", outcome="accepted") == 0
        assert model_info(port) == old_model

        # Valid replacements, copied in file by file.
        for name in (MODEL_FILE, METADATA_FILE):
            shutil.copyfile(new_model_dir / name, model_dir / name)
        policy_file.write_text(
            DEFAULT_POLICY.read_text().replace(f'"{OLD_POLICY}"', f'"{NEW_POLICY}"')
        )

        def accepted() -> bool:
            values = samples(port)
            return (total(values, "churnwatch_model_reloads_total", outcome="accepted") >= 1
                    and total(values, "churnwatch_policy_reloads_total", outcome="accepted") >= 1)

        rest = feeder.trickle_until(phases[2], accepted)
        settled(settings, port, feeder.produced)
        swapped = versions(settings)
        assert len(rest) > len(phases[2]) // 2, "most of the last phase is left to check"
        # Events up to here may have been scored by the old model; some of those scores
        # stay silent (no row) until a later decision is judged with one and publishes
        # it (README, Scores on change), under the version that computed it.
        cutoff = newest_event_time(messages[: feeder.produced])
        feeder.send(rest)
        settled(settings, port, feeder.produced)
        after_swap = versions(settings)
        scores = added(swapped, after_swap, "scores")
        decisions = added(swapped, after_swap, "decisions")
        assert len(decisions) > 10 and labels(decisions) == {NEW_POLICY}
        computed_after = {k: v for k, v in scores.items() if v[1] > cutoff}
        assert len(computed_after) > 100 and labels(computed_after) == {new_model}
        assert all(at <= cutoff for version, at in scores.values() if version == old_model)
        assert model_info(port) == new_model
        assert total(samples(port), "churnwatch_model_reloads_total", model="primary",
                     outcome="accepted") == 1
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert f"primary model in {model_dir} refused; keeping {old_model}" in output
    assert f"primary model reloaded from {model_dir}: {old_model} -> {new_model}" in output
    assert f"policy {policy_file} refused; keeping {OLD_POLICY}" in output
    fault_report(f"replaced mid-run: broken policy and model refused ({len(after_break['scores'])} "
          f"scores, {len(after_break['decisions'])} decisions by then, all under the last good "
          f"versions); valid ones taken: {len(computed_after)} scores under model {new_model}, "
          f"{len(decisions)} decisions under policy {NEW_POLICY}")
