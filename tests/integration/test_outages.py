"""Dependency outages mid-stream: churnwatch rides them out, loses nothing, says so.

Each scenario runs on a stack of its own (the broker, Redis and PostgreSQL it
freezes or stops are nobody else's): a reference run over a simulated stream,
then the same stream again with one dependency out mid-stream. During the
outage the process must stay up and ``/readyz`` must name the dependency;
afterwards every table and the feature hashes must equal the reference run's,
with no row twice (Kafka copies are allowed, with the same ids).

The outage lasts ``FAULT_OUTAGE_SECONDS`` (8 s here; ``make faults`` runs 30 s).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
import redis

from churnwatch.localstack import LocalStack, free_port
from churnwatch.settings import Settings, Topics
from churnwatch.simulator import produce, simulate
from churnwatch.topics import ensure_topics
from tests.integration.kafka_io import read_all
from tests.integration.ops_http import get, samples, total, wait_for
from tests.integration.processes import run_churnwatch, start_churnwatch

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = float(os.environ.get("FAULT_OUTAGE_SECONDS", "8"))
TABLES = (
    ("alerts", "alert_id"), ("usage_signals", "signal_id"), ("risk_scores", "score_id"),
    ("decisions", "decision_id"), ("workflow_triggers", "trigger_id"),
    ("contact_ledger", "contact_id"), ("cancellation_reasons", "cancellation_id"),
)


@dataclass
class Scenario:
    stack: LocalStack
    base: Settings


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    if any(os.environ.get(f"CHURNWATCH_{name}") for name in
           ("KAFKA_BOOTSTRAP", "REDIS_URL", "DATABASE_URL")):
        pytest.skip("outages are injected into the embedded servers only")
    stack = LocalStack(Settings(), tmp_path / "stack")
    base = stack.start()
    try:
        yield Scenario(stack, base)
    finally:
        for name in ("kafka", "redis", "postgres"):
            with contextlib.suppress(Exception):  # it may be stopped already
                stack.thaw(name)  # never leave a server frozen behind a failed test
        stack.stop()


def run_settings(base: Settings, tag: str, tmp: Path, events: str) -> Settings:
    return base.replace(
        topics=Topics(events=events, dead_letters=f"{tag}.dlq", alerts=f"{tag}.alerts",
                      late=f"{tag}.late", scores=f"{tag}.scores", workflows=f"{tag}.workflows"),
        database_schema=f"cw_{tag}",
        redis_key_prefix=tag,
        recovery_dir=tmp / f"recovery-{tag}",
        # Small batches and short epochs: the run lasts long enough to be hit mid-stream.
        input_batch_size=100,
        snapshot_interval=timedelta(milliseconds=500),
        metrics_port=free_port(),
    )


def table_ids(settings: Settings) -> dict[str, list[str]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        return {
            table: [r[0] for r in conn.execute(
                f"SELECT {column}::text FROM {settings.database_schema}.{table}".encode()
            )]
            for table, column in TABLES
        }


def alert_count(settings: Settings) -> int:
    assert settings.database_url
    try:
        with psycopg.connect(settings.database_url, connect_timeout=2) as conn:
            row = conn.execute(
                f"SELECT count(*) FROM {settings.database_schema}.alerts".encode()
            ).fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0  # the schema is not there yet


def feature_hashes(settings: Settings) -> dict[bytes, dict[bytes, bytes]]:
    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url)
    prefix = settings.redis_key_prefix.encode()
    return {
        key[len(prefix):]: client.hgetall(key)  # type: ignore[misc]
        for key in client.scan_iter(match=prefix + b":*")
    }


def kafka_ids(settings: Settings, topic: str, field: str) -> list[str]:
    assert settings.kafka_bootstrap
    return [orjson.loads(v)[field] for _, v, _ in read_all(settings.kafka_bootstrap, topic)]


def ready_again(port: int, proc: subprocess.Popen[str]) -> bool:
    """/readyz says 200, or the run already finished (a long outage lets the input be
    read to its end meanwhile: the drained run may exit right after it; its exit code
    and every output are checked after)."""
    if proc.poll() is not None:
        return True
    try:
        return get(f"http://127.0.0.1:{port}/readyz")[0] == 200
    except OSError:  # the run closing its server as it finishes
        return proc.poll() is not None


@pytest.mark.parametrize("dependency", ["kafka", "redis", "postgres"])
def test_an_outage_mid_stream_is_ridden_out_with_nothing_lost(
    scenario: Scenario, dependency: str, tmp_path: Path, fault_report: Callable[[str], None]
) -> None:
    stack, base = scenario.stack, scenario.base
    reference = run_settings(base, "ref", tmp_path, "events")
    faulted = run_settings(base, "out", tmp_path, "events")
    assert base.kafka_bootstrap
    ensure_topics(base.kafka_bootstrap, (*reference.topics.all(), *faulted.topics.all()), 4)
    simulation = simulate(accounts=120, days=25, seed=5)
    produce(simulation, base.kafka_bootstrap, "events")

    run_churnwatch(reference, "run", "--until-drained")
    expected = table_ids(reference)
    assert len(expected["alerts"]) > 40 and expected["workflow_triggers"]

    proc = start_churnwatch(faulted, "run", "--until-drained")
    port = faulted.metrics_port
    try:
        wait_for(lambda: alert_count(faulted) >= len(expected["alerts"]) // 4,
                 timeout_s=120, what="the run to be a quarter through")
        assert proc.poll() is None, "the run ended before the outage"
        started = time.monotonic()
        if dependency == "postgres":
            stack.shut_down("postgres")  # connections refused: the retry path
        else:
            stack.freeze(dependency)  # nothing answers: the waiting path
        verdicts = []
        while time.monotonic() - started < OUTAGE_SECONDS:
            assert proc.poll() is None, f"churnwatch exited during the outage:\n{proc.stdout}"
            status, body = get(f"http://127.0.0.1:{port}/readyz")
            verdicts.append((status, orjson.loads(body)["checks"][dependency]))
            time.sleep(0.5)
        if dependency == "postgres":
            stack.start_again("postgres")
        else:
            stack.thaw(dependency)
        back = time.monotonic()
        wait_for(lambda: ready_again(port, proc), timeout_s=90, what="readiness after the outage")
        recovered_s = time.monotonic() - back
        retries = (
            total(samples(port), "churnwatch_sink_retries_total", dependency=dependency)
            if proc.poll() is None
            else None  # finished already: its metrics went with it
        )
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output

    assert any(status == 503 and verdict != "ok" for status, verdict in verdicts), verdicts
    found = table_ids(faulted)
    for table, _ in TABLES:
        assert len(found[table]) == len(set(found[table])), f"{table}: a row twice"
        assert set(found[table]) == set(expected[table]), f"{table}: rows lost or added"
    assert feature_hashes(faulted) == feature_hashes(reference)
    assert set(kafka_ids(faulted, faulted.topics.alerts, "alert_id")) == set(expected["alerts"])
    if dependency == "postgres":
        assert retries is not None and retries > 0  # retried, not dropped
    fault_report(
        f"outage of {dependency}: {OUTAGE_SECONDS:.0f} s, process up throughout, "
        f"{sum(1 for s, _ in verdicts if s == 503)}/{len(verdicts)} readiness checks said 503, "
        f"ready again (or finished) {recovered_s:.1f} s after it ended, "
        f"{'?' if retries is None else f'{retries:.0f}'} sink retries, "
        f"{len(found['alerts'])} alerts and {len(found['decisions'])} decisions as the "
        f"uninterrupted run, 0 lost, 0 twice"
    )
