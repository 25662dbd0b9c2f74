"""The state benchmark: memory and disk per account at scale, and restart after kill -9.

:func:`run_state_benchmark` does what ``python -m benchmarks.bench_state``
describes. On one embedded stack, in this order:

1. **baseline**: ``churnwatch run`` tailing an empty topic (scoring, decisions
   and recovery on, as below), sampled from start until a snapshot interval
   after ``/readyz``: the RSS of the process with no account state;
2. **workload**: ``--accounts`` accounts x ``--events-per-account`` events
   (:mod:`~benchmarks.harness.account_workload`), produced to a fresh topic
   outside every clock;
3. **load**: ``churnwatch run`` tailing that topic with a recovery directory of
   its own, sampled (RSS, ``/metrics``) until it has read every message (its
   input counter) and the input offsets of the newest committed epoch are the
   topic's end (every message's effect is then in a snapshot: the counter runs
   ahead of the accounts' processing); then Redis and the recovery directory
   are measured;
4. **restart**: every process of the run is killed with SIGKILL, the recovery
   directory is copied aside (to read its snapshots later, untouched by the
   restart), and the same command starts again with the same settings; right
   after, one decisive event (``billing.payment_failed``) for an existing
   account is produced. From the restart on: when ``/readyz`` answers 200 on
   every process, when the probe's tier-1 alert reaches the alerts topic (the
   first output; the fast lane sends it from the input), when its row reaches
   PostgreSQL (after the account's shard, restored from the snapshot, ran it),
   and when the RSS is back to 90 % of what it was before the kill.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from benchmarks.harness import state_figures as sf
from benchmarks.harness.account_workload import (
    PROBE_EVENT_TYPE,
    AccountWorkload,
    new_producer,
    probe_document,
    produce_stream,
)
from benchmarks.harness.churnwatch_runs import (
    child_env,
    churnwatch_argv,
    init_recovery,
    isolated_settings,
)
from benchmarks.harness.code_version import code_state, same_code
from benchmarks.harness.figures import Figures
from benchmarks.harness.phases import PhaseTimes
from benchmarks.harness.processes import (
    ChildProcesses,
    free_port_block,
    http_status,
    tail_text,
    wait_until_ready,
)
from benchmarks.harness.recovery_store import (
    commit_epochs,
    committed_offsets,
    directory_size,
    snapshot_figures,
)
from benchmarks.harness.redis_memory import feature_memory, used_memory
from benchmarks.harness.report import environment, json_argument, print_table, write_result
from benchmarks.harness.sampling import ClusterSampler

if TYPE_CHECKING:
    from churnwatch.settings import Settings

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "state.json"
RESTART_SAMPLE_INTERVAL_S = 0.25
RESTART_POLL_S = 0.05
RSS_STEADY_WINDOW_S = 5.0  # the restart phase ends once RSS held still this long
PROBE_ACCOUNT = 0  # the existing account the decisive event is for


@dataclass(frozen=True)
class StateOptions:
    """The benchmark's command line (field order: the JSON's ``arguments`` order).

    ``env`` are CHURNWATCH_NAME=VALUE overrides for every run.
    """

    accounts: int
    events_per_account: int
    partitions: int
    processes: int
    sample_interval: float
    read_timeout: float
    restart_timeout: float
    env: Sequence[str]
    out: Path
    keep_state: bool


def _progress(text: str) -> None:
    print(text, flush=True)


@dataclass
class _Run:
    """A started ``churnwatch run`` and what it needs to be watched."""

    proc: subprocess.Popen[bytes]
    argv: list[str]
    env: dict[str, str]
    settings: Settings  # as the child sees them, overrides applied
    ports: list[int]
    out: Path
    err: Path


class StateBenchmark:
    """One benchmark on one stack: the runs share the children, servers and state dir."""

    def __init__(self, options: StateOptions, base: Settings, servers: dict[str, int],
                 children: ChildProcesses, state_dir: Path) -> None:
        self.options = options
        self.base = base
        self.servers = servers
        self.children = children
        self.state_dir = state_dir
        self.logs = state_dir / "logs"

    # -- runs ------------------------------------------------------------------------------

    def _configure(self, tag: str, events_topic: str | None = None) -> tuple[Settings, int]:
        port = free_port_block(self.options.processes)
        settings = isolated_settings(
            self.base, tag, self.state_dir, batch_size=self.base.input_batch_size,
            events_topic=events_topic, topic_partitions=self.options.partitions,
            state_dir=self.state_dir, metrics_port=port, log_format="json",
        )
        return settings, port

    def _start(self, settings: Settings, port: int, tag: str) -> _Run:
        from churnwatch.settings import Settings

        env = child_env(settings, self.options.env)
        argv = churnwatch_argv(self.options.processes, until_drained=False)
        out, err = self.logs / f"{tag}.out", self.logs / f"{tag}.err"
        proc = self.children.start(argv, env=env, cwd=self.state_dir, stdout=out, stderr=err)
        ports = [port + i for i in range(self.options.processes)]
        return _Run(proc, argv, env, Settings.from_env(env), ports, out, err)

    def _check_alive(self, run: _Run, doing: str) -> None:
        if run.proc.poll() is not None:
            msg = (f"churnwatch run exited with {run.proc.returncode} while {doing}:\n"
                   f"{tail_text(run.err)}")
            raise RuntimeError(msg)

    def baseline(self) -> Figures:
        """RSS of the run over an empty topic, from start to a snapshot interval past ready."""
        from churnwatch.topics import ensure_topics

        settings, port = self._configure("empty")
        init_recovery(settings)
        assert self.base.kafka_bootstrap
        ensure_topics(self.base.kafka_bootstrap, [settings.topics.events],
                      self.options.partitions)
        run = self._start(settings, port, "baseline")
        sampler = ClusterSampler(run.proc, run.ports, self.servers, 0.5).start()
        try:
            ready_s = wait_until_ready(run.proc, run.ports, run.err)
            time.sleep(run.settings.snapshot_interval.total_seconds() + 2.0)
            self._check_alive(run, "idling over an empty topic")
        finally:
            sampler.stop()
            self.children.stop(run.proc, signal.SIGINT)
        points = sf.rss_points(sampler.samples)
        return {
            "ready_s": ready_s,
            "sampled_s": points[-1][0] if points else None,
            "peak_rss_bytes": sf.peak(points),
            "peak_rss_by_role": sf.peak_by_role(sampler.samples),
            "final_rss_bytes": points[-1][1] if points else None,
        }

    def workload(self, report: Figures) -> str:
        """Produce the accounts' events to a fresh topic; its name."""
        from churnwatch.topics import ensure_topics

        options = self.options
        assert self.base.kafka_bootstrap
        topic = f"bench_state_{uuid.uuid4().hex[:6]}.events"
        ensure_topics(self.base.kafka_bootstrap, [topic], options.partitions)
        workload = AccountWorkload.ending_before(datetime.now(UTC), options.accounts,
                                                 options.events_per_account)
        _progress(f"producing {workload.messages:,} messages ({options.accounts:,} accounts x "
                  f"{options.events_per_account}) to {topic}")
        produced = produce_stream(workload.messages_in_order(), self.base.kafka_bootstrap, topic,
                                  progress_every=max(100_000, workload.messages // 10))
        _progress(f"produced {produced['produced']:,} in {produced['produce_s']:.1f}s")
        report["workload"] = {
            "events_topic": topic,
            **produced,
            "end_offsets": _end_offsets(self.base.kafka_bootstrap, topic),
            "event_time_from_ms": workload.end_ms - workload.window_ms,
            "event_time_to_ms": workload.end_ms,
        }
        return topic

    def load(self, report: Figures, events_topic: str) -> _Run:
        """Run over the topic until every message is read and two epochs are committed;
        RSS, Redis and the recovery directory into ``report``. The run is left running."""
        options = self.options
        assert self.base.redis_url
        produced = report["workload"]["produced"]
        settings, port = self._configure("state", events_topic)
        init_recovery(settings)
        redis_before = _redis_used_memory(self.base.redis_url)
        run = self._start(settings, port, "load")
        report["workload"]["snapshot_interval_s"] = run.settings.snapshot_interval.total_seconds()
        sampler = ClusterSampler(run.proc, run.ports, self.servers,
                                 options.sample_interval).start()
        try:
            read_s = self._wait_for_messages(run, sampler, produced)
            _progress(f"load: read {produced:,} messages in {read_s:.1f}s; waiting for a "
                      "committed snapshot of them all")
            committed = self._wait_for_snapshot(run, sampler, report["workload"]["end_offsets"])
            _progress(f"load: every message in a committed snapshot at "
                      f"{committed['snapshotted_s']:.1f}s (epochs {committed['epochs_at_read']}"
                      f" -> {committed['epochs_at_snapshot']})")
            time.sleep(max(2.0, 2 * options.sample_interval))  # settled samples
        finally:
            sampler.stop()
        self._check_alive(run, "loading")
        accounts = options.accounts
        points = sf.rss_points(sampler.samples)
        settled = [rss for _, rss in points[-3:]]
        baseline = report["baseline"]["peak_rss_bytes"]
        peak_rss = sf.peak(points)
        settled_rss = sum(settled) / len(settled) if settled else None
        report["load"] = {
            "settings": {"schema": run.settings.database_schema,
                         "prefix": run.settings.redis_key_prefix,
                         "recovery_dir": str(run.settings.recovery_dir)},
            "read_s": read_s,
            **committed,
            "messages_per_s": produced / committed["snapshotted_s"],
            "peak_rss_bytes": peak_rss,
            "peak_rss_by_role": sf.peak_by_role(sampler.samples),
            "settled_rss_bytes": settled_rss,
            "rss_before_kill_bytes": points[-1][1] if points else None,
            "rss_per_account_bytes": sf.per_account(
                None if peak_rss is None or baseline is None else peak_rss - baseline, accounts),
            "settled_rss_per_account_bytes": sf.per_account(
                None if settled_rss is None or baseline is None else settled_rss - baseline,
                accounts),
            "timeline": sf.compact_timeline(points, step_s=max(1.0, options.sample_interval)),
            "messages_timeline": [{"t": s["t"], "messages": s["messages"]}
                                  for s in sampler.samples],
            **sf.collector_pauses(sampler.samples),
        }
        redis = feature_memory(self.base.redis_url, run.settings.redis_key_prefix)
        growth = redis.get("used_memory", redis_before) - redis_before
        report["redis"] = {**redis, "used_memory_before": redis_before,
                           "used_memory_growth": growth,
                           "used_memory_per_account": sf.per_account(growth, accounts)}
        assert run.settings.recovery_dir is not None
        size = directory_size(run.settings.recovery_dir)
        report["recovery"] = {"size": size, "allocated_bytes_per_account":
                              sf.per_account(size["allocated_bytes"], accounts),
                              "apparent_bytes_per_account":
                              sf.per_account(size["apparent_bytes"], accounts)}
        return run

    def _wait_for_messages(self, run: _Run, sampler: ClusterSampler, produced: int) -> float:
        """Seconds from the start until the run's counters add up to ``produced``."""
        deadline = time.perf_counter() + self.options.read_timeout
        next_line = time.perf_counter() + 30
        while True:
            self._check_alive(run, "reading the workload")
            last = sampler.samples[-1] if sampler.samples else None
            if last is not None and last["messages"] >= produced:
                return float(last["t"])
            if time.perf_counter() > deadline:
                msg = (f"read {last['messages'] if last else 0:,.0f} of {produced:,} messages in "
                       f"{self.options.read_timeout:.0f} s")
                raise RuntimeError(msg)
            if time.perf_counter() > next_line and last is not None:
                rss = sum(last["rss"].values()) / 2**20
                _progress(f"  t={last['t']:.0f}s read {last['messages']:,.0f} / {produced:,}, "
                          f"RSS {rss:,.0f} MiB")
                next_line += 30
            time.sleep(0.5)

    def _wait_for_snapshot(self, run: _Run, sampler: ClusterSampler,
                           end_offsets: dict[int, int]) -> Figures:
        """Until the input offsets of the newest epoch every recovery partition has
        committed reach ``end_offsets``: a snapshot then holds every message's effect
        (the counter of messages read runs ahead of the accounts' processing)."""
        assert run.settings.recovery_dir is not None
        directory = run.settings.recovery_dir
        interval = run.settings.snapshot_interval.total_seconds()
        started = time.perf_counter()
        at_read = commit_epochs(directory)
        deadline = started + max(300.0, 30 * interval)
        while True:
            self._check_alive(run, "waiting for a snapshot of every message")
            offsets = committed_offsets(directory)
            if all(offsets.get(p, -1) >= end for p, end in end_offsets.items()):
                break
            if time.perf_counter() > deadline:
                msg = (f"no committed snapshot reached the end of the topic {end_offsets} "
                       f"(committed: {offsets}, epochs {commit_epochs(directory)})")
                raise RuntimeError(msg)
            time.sleep(0.5)
        return {"epochs_at_read": at_read, "epochs_at_snapshot": commit_epochs(directory),
                "snapshot_wait_s": time.perf_counter() - started,
                "snapshotted_s": time.time() - sampler.t0}

    def restart(self, report: Figures, run: _Run) -> None:
        """Kill -9, copy the recovery directory aside, restart, produce the probe, watch."""
        import psycopg

        from schemas.alert import alert_id

        options = self.options
        settings = run.settings
        assert settings.kafka_bootstrap and settings.database_url
        assert settings.recovery_dir is not None
        events_topic = settings.topics.events
        consumer = _alerts_consumer(settings.kafka_bootstrap, settings.topics.alerts)
        producer = new_producer(settings.kafka_bootstrap)
        producer.list_topics(events_topic, timeout=10)  # connected before the clock starts
        probe_id = f"bench-state-probe-{uuid.uuid4().hex[:8]}"
        rule = settings.tier1_rules[PROBE_EVENT_TYPE].rule
        before_kill = report["load"]["rss_before_kill_bytes"]

        _kill_tree(run.proc)
        _progress("restart: killed with SIGKILL; copying the recovery directory aside")
        copy = self.state_dir / "recovery-at-kill"
        shutil.copytree(settings.recovery_dir, copy)

        probe = probe_document(PROBE_ACCOUNT, options.accounts, probe_id, datetime.now(UTC))
        wanted = alert_id(probe["tenant_id"], probe["account_id"], rule, probe_id)
        query = f'SELECT inserted_at FROM "{settings.database_schema}".alerts WHERE alert_id = %s'
        figures: Figures = {"probe_event_id": probe_id, "probe_account": probe["account_id"],
                            "rss_before_kill_bytes": before_kill}
        with psycopg.connect(settings.database_url, autocommit=True) as pg:
            started_wall, started = time.time(), time.perf_counter()
            restarted = self.children.start(run.argv, env=run.env, cwd=self.state_dir,
                                            stdout=self.logs / "restart.out",
                                            stderr=self.logs / "restart.err")
            sampler = ClusterSampler(restarted, run.ports, self.servers,
                                     RESTART_SAMPLE_INTERVAL_S).start()
            # The probe now, while the run starts: its alert is the first new output.
            producer.produce(events_topic, key=probe["account_id"].encode(),
                             value=orjson.dumps(probe))
            if producer.flush(10):
                msg = "the probe event was not delivered"
                raise RuntimeError(msg)
            figures["probe_produced_s"] = time.perf_counter() - started
            try:
                self._watch_restart(figures, restarted, run, sampler, consumer, pg, query,
                                    wanted, probe_id, started, started_wall)
            finally:
                sampler.stop()
                consumer.close()
        offset = sampler.t0 - started_wall
        points = sf.rss_points(sampler.samples, offset)
        last = sampler.samples[-1] if sampler.samples else None
        figures.update(
            rss_recovered_s=(None if before_kill is None else
                             sf.first_at_least(points, sf.RSS_RECOVERED_SHARE * before_kill)),
            rss_settled_s=sf.settled_at(points),
            rss_at_end_bytes=points[-1][1] if points else None,
            peak_rss_bytes=sf.peak(points),
            metrics_s=next((s["t"] + offset for s in sampler.samples if s["scraped"]), None),
            messages_read=last["messages"] if last else None,
            timeline=sf.compact_timeline(points, step_s=0.5),
            stop_exit_code=self.children.stop(restarted, signal.SIGINT),
        )
        report["restart"] = figures
        report["recovery"]["snapshots"] = snapshot_figures(copy)
        live = report["recovery"]["snapshots"]["live_bytes"]
        report["recovery"]["live_bytes_per_account"] = sf.per_account(live, options.accounts)
        shutil.rmtree(copy, ignore_errors=True)

    def _watch_restart(self, figures: Figures, restarted: subprocess.Popen[bytes], run: _Run,
                       sampler: ClusterSampler, consumer: Any, pg: Any, query: str,
                       wanted: str, probe_id: str, started: float, started_wall: float) -> None:
        """Poll /readyz, the alerts topic and PostgreSQL until each has answered and the
        RSS has recovered or held still; figures in s since the restart."""
        deadline = started + self.options.restart_timeout
        next_pg = 0.0
        # /readyz from a thread of its own: a busy process answers slowly, and the
        # topic and table polls below must not wait for it.
        readiness = _ReadinessWatch(run.ports, started).start()
        try:
            while True:
                now = time.perf_counter()
                if restarted.poll() is not None:
                    msg = (f"the restarted run exited with {restarted.returncode}:\n"
                           f"{tail_text(self.logs / 'restart.err')}")
                    raise RuntimeError(msg)
                if readiness.ready_s is not None:
                    figures["ready_s"] = readiness.ready_s
                if self._poll_outputs(figures, consumer, pg, query, wanted, probe_id, started,
                                      started_wall, poll_pg=now >= next_pg):
                    next_pg = now + 0.2
                seen = all(k in figures
                           for k in ("ready_s", "kafka_alert_s", "postgres_alert_s"))
                if seen:
                    points = sf.rss_points(sampler.samples)
                    before = figures["rss_before_kill_bytes"]
                    recovered = before is not None and sf.first_at_least(
                        points, sf.RSS_RECOVERED_SHARE * before) is not None
                    if recovered or sf.steady_since(points, RSS_STEADY_WINDOW_S):
                        return
                if time.perf_counter() > deadline:
                    figures["timed_out"] = True
                    _progress(f"restart: gave up after {self.options.restart_timeout:.0f}s "
                              f"({', '.join(k for k in figures if k.endswith('_s'))} seen)")
                    return
                time.sleep(RESTART_POLL_S)
        finally:
            readiness.stop()

    @staticmethod
    def _poll_outputs(figures: Figures, consumer: Any, pg: Any, query: str, wanted: str,
                      probe_id: str, started: float, started_wall: float, *,
                      poll_pg: bool) -> bool:
        """One look at the alerts topic (and, with ``poll_pg``, at PostgreSQL) for the
        probe's alert; whether PostgreSQL was asked."""
        if "kafka_alert_s" not in figures:
            for message in consumer.consume(500, RESTART_POLL_S):
                if message.error() or not _is_alert_for(message.value(), probe_id):
                    continue
                figures["kafka_alert_s"] = time.perf_counter() - started
                stamp = message.timestamp()[1]  # when churnwatch produced it
                figures["kafka_alert_timestamp_s"] = (stamp / 1000 - started_wall
                                                      if stamp > 0 else None)
        if "postgres_alert_s" in figures or not poll_pg:
            return False
        row = pg.execute(query, (wanted,)).fetchone()
        if row is not None:
            figures["postgres_alert_s"] = time.perf_counter() - started
            figures["postgres_inserted_at_s"] = row[0].timestamp() - started_wall
        return True


class _ReadinessWatch:
    """Polls /readyz on every port from a thread until all answer 200.

    ``ready_s``: seconds from ``started`` (a ``perf_counter`` reading) to the
    first time they all did. churnwatch caches its readiness checks for 2 s, so
    this can lag the moment the dataflow first polled by up to 2 s.
    """

    def __init__(self, ports: list[int], started: float, interval_s: float = 0.1) -> None:
        self._ports = ports
        self._started = started
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-readyz", daemon=True)
        self.ready_s: float | None = None

    def start(self) -> _ReadinessWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if all(http_status(p, "/readyz", timeout_s=5.0) == 200 for p in self._ports):
                self.ready_s = time.perf_counter() - self._started
                return
            self._stop.wait(self._interval_s)


def _redis_used_memory(redis_url: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return used_memory(client)
    finally:
        client.close()


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> high watermark of every partition of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-state"})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in sorted(metadata.topics[topic].partitions)}
    finally:
        consumer.close()


def _alerts_consumer(bootstrap: str, topic: str) -> Any:
    """A consumer of every partition of ``topic`` from its current end (no group join)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-state",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 20})
    metadata = consumer.list_topics(topic, timeout=10)
    assigned = []
    for partition in metadata.topics[topic].partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        assigned.append(TopicPartition(topic, partition, high))
    consumer.assign(assigned)
    return consumer


def _is_alert_for(value: bytes | None, event_id: str) -> bool:
    """Whether an alerts-topic message is the alert the event ``event_id`` triggered."""
    if not value:
        return False
    with contextlib.suppress(orjson.JSONDecodeError):
        trigger = orjson.loads(value).get("trigger") or {}
        return bool(trigger.get("event_id") == event_id)
    return False


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the process and every descendant at once (cluster children included:
    they do not die with their parent)."""
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        members = [*parent.children(recursive=True), parent]
    except psutil.Error:
        members = []
    for member in members:
        with contextlib.suppress(psutil.Error):
            member.send_signal(signal.SIGKILL)
    psutil.wait_procs(members, timeout=10)
    proc.wait(10)


def run_state_benchmark(options: StateOptions) -> int:
    """Every phase on one stack; print the table and write the JSON. 0 when done."""
    from churnwatch.localstack import LocalStack
    from churnwatch.settings import Settings

    phases = PhaseTimes()
    env = environment()
    out = options.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _progress(f"python {env['python']}, bytewax {env['bytewax']}, {env['cpu_count']} CPU(s); "
              f"result to {out}")
    state_dir = Path(tempfile.mkdtemp(prefix="cw-bench-state-")).resolve()
    (state_dir / "logs").mkdir()
    children = ChildProcesses()
    report: Figures = {
        "environment": env,
        "arguments": {f.name: json_argument(getattr(options, f.name)) for f in fields(options)},
        "code": {"at_start": code_state()},
    }
    try:
        stack = LocalStack(Settings(), state_dir / "stack")
        with stack as base:
            bench = StateBenchmark(options, base, stack.pids, children, state_dir)
            with phases.phase("baseline"):
                report["baseline"] = bench.baseline()
            _progress(f"baseline: {report['baseline']['peak_rss_bytes'] / 2**20:,.0f} MiB peak "
                      "RSS over an empty topic")
            with phases.phase("produce"):
                topic = bench.workload(report)
            with phases.phase("load"):
                run = bench.load(report, topic)
            with phases.phase("restart"):
                bench.restart(report, run)
            children.stop_all()
    finally:
        children.stop_all()
        if options.keep_state:
            print(f"state kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
    report["code"]["at_end"] = code_state()
    report["code"]["unchanged"] = same_code(report["code"]["at_start"], report["code"]["at_end"])
    report["wall_times"] = phases.figures()
    report["targets"] = sf.state_targets(report["load"]["rss_per_account_bytes"],
                                         report["restart"].get("kafka_alert_s"))
    print()
    print_table(sf.state_table(report))
    write_result(report, out)
    print()
    print(f"wrote {out}")
    return 0
