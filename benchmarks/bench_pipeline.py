"""End-to-end benchmark of churnwatch: throughput, alert latency, memory, against a floor.

Run it from the repository root (``make bench`` runs it with the defaults)::

    .venv/bin/python benchmarks/run.py [--events 1000000 --accounts 20000 --partitions 8
                                        --processes 2 --rate 10000 --latency-seconds 30]

On one embedded :class:`~churnwatch.localstack.LocalStack` (Kafka-protocol
broker, Redis, PostgreSQL on loopback) it simulates about ``--events`` valid
events once and produces them once to an events topic of ``--partitions``
partitions (both outside the clock), then measures, in this order:

1. **floor**: a minimal Bytewax flow over the same topic with the same Kafka
   input as production (``EventsSource``: same consumer config, batch size,
   ``tail=False``) that only reads, ``orjson.loads`` every value and counts.
   It runs as a cluster of ``--processes`` processes (this script in
   ``--floor-worker`` mode) and once more with one process;
2. **full**: ``churnwatch run --until-drained --processes P`` over the same
   topic, with its own output topics, schema, Redis key prefix and recovery
   directory. Its ``/metrics`` (one port per process) and the RSS/CPU of its
   processes are sampled every ``--sample-interval`` seconds;
3. **latency** (unless ``--skip-latency``): ``churnwatch run --processes P``
   tailing a new topic; once every process answers ``/readyz``, a fresh
   simulation is produced at ``--rate`` events/s for ``--latency-seconds``, and
   the ``churnwatch_alert_latency_seconds{since="ingest"}`` histograms (broker
   timestamp of the triggering event to the alert's acknowledged write on
   ``churn.alerts``) give p50/p99 per tier, interpolated linearly within the
   histogram buckets.

Throughput figures count input *messages* per second (every message read,
parsed and validated: valid events plus the ~1 % duplicates and ~0.2 %
malformed messages of the simulation), the same unit for the floor and the
full pipeline, so their ratio holds on a noisy machine. "Sustained" is the
rate between the first and the last observed progress (start-up and shutdown
excluded); "wall" divides by the whole run, process start to exit included.
With ``--repeat N`` the floor and full runs alternate N times and the medians
are reported.

It prints a table, and writes ``result.json`` and ``chart.png`` (throughput
over the full run; tier-1/tier-2 p99 over the latency phase) to ``--out-dir``.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# Run as a script, this folder comes first on sys.path, where benchmarks/scoring.py
# would shadow the `scoring` package.
_HERE = _Path(__file__).resolve().parent
_sys.path[:] = [p for p in _sys.path if _Path(p or ".").resolve() != _HERE]

import argparse
import contextlib
import ctypes
import itertools
import math
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO / "benchmarks" / "results"

# Targets of the issue.
TARGET_EVENTS_PER_S = 50_000.0
TARGET_TIER1_P99_S = 0.250
TARGET_TIER1_RATE = 10_000
TARGET_FLOOR_SHARE = 0.5

MEMORY_SAMPLE = 500
FLOOR_LINE = "floor: "
DRAINED_LINE = "drained: "
ROLLING_S = 5.0  # the chart's throughput average
LATENCY_WINDOW_S = 5.0  # the "p99 over time" of the chart: over this trailing window
LATENCY_DAYS = 40  # simulated days of the latency stream (tier-2 needs 28 d + 7 d)
PAUSE_AFTER_DRAIN_S = 3.0
STOP_GRACE_S = 30.0

Figures = dict[str, Any]

_PR_SET_PDEATHSIG = 1


# --- arguments ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="valid events to simulate, about (default 1,000,000)")
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=8, help="of the events topic")
    parser.add_argument("--processes", type=int, default=2,
                        help="Bytewax processes, floor and full alike (default 2)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=int, default=TARGET_TIER1_RATE,
                        help="events/s produced during the latency phase (default 10000)")
    parser.add_argument("--latency-seconds", type=float, default=30.0,
                        help="how long the latency phase produces (default 30)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--repeat", type=int, default=1,
                        help="floor + full runs; medians are reported when > 1")
    parser.add_argument("--batch-size", type=int, default=5_000,
                        help="Kafka input batch size, floor and full (default 5000)")
    parser.add_argument("--sample-interval", type=float, default=1.0,
                        help="seconds between /metrics and RSS samples (default 1)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="where result.json and chart.png go (default benchmarks/results)")
    parser.add_argument("--env", action="append", default=[], metavar="CHURNWATCH_X=VALUE",
                        help="diagnostics: override a churnwatch setting in the full and "
                             "latency runs (repeatable; the figures are then not the defaults)")
    parser.add_argument("--keep-state", action="store_true",
                        help="keep the temporary directory (stack data, logs) at the end")
    # Internal: one process of the floor cluster.
    parser.add_argument("--floor-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--addresses", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--topic", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_worker:
        if not (args.bootstrap and args.topic):
            parser.error("--floor-worker needs --bootstrap and --topic")
        return args
    positive = ("events", "accounts", "partitions", "processes", "rate", "repeat", "batch_size")
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.latency_seconds <= 0 or args.sample_interval <= 0:
        parser.error("--latency-seconds and --sample-interval must be positive")
    for item in args.env:
        if not item.startswith("CHURNWATCH_") or "=" not in item:
            parser.error(f"--env {item!r}: expected CHURNWATCH_NAME=VALUE")
    return args


# --- the floor: read + parse + count --------------------------------------------------------


def floor_worker(args: argparse.Namespace) -> int:
    """One process of the floor flow; prints its counts and active span at the end."""
    from bytewax import operators as op
    from bytewax.connectors.kafka import KafkaError
    from bytewax.dataflow import Dataflow
    from bytewax.run import cli_main

    from dataflows.kafka_input import EventsSource

    counts = {"messages": 0, "parsed": 0, "errors": 0}
    span = {"first": 0.0, "last": 0.0}

    def parse(batch: list[Any]) -> list[int]:
        if not span["first"]:
            span["first"] = time.time()
        parsed = errors = 0
        for item in batch:
            if isinstance(item, KafkaError):
                errors += 1
                continue
            try:
                orjson.loads(item.value)
                parsed += 1
            except (orjson.JSONDecodeError, TypeError):
                errors += 1
        counts["messages"] += len(batch)
        counts["parsed"] += parsed
        counts["errors"] += errors
        span["last"] = time.time()
        return []

    flow = Dataflow("churnwatch_floor")
    source = EventsSource(args.bootstrap, args.topic, tail=False, batch_size=args.batch_size)
    messages = op.input("kafka-in", flow, source)
    parsed = op.flat_map_batch("parse-count", messages, parse)
    op.inspect("discard", parsed, lambda _step, _item: None)
    addresses = args.addresses.split(";") if args.addresses else None
    cli_main(
        flow,
        workers_per_process=1,
        process_id=args.process_id if addresses else None,
        addresses=addresses,
    )
    figures = " ".join(f"{k}={v}" for k, v in counts.items())
    print(f"{FLOOR_LINE}{figures} first={span['first']!r} last={span['last']!r}", flush=True)
    return 0


# --- processes --------------------------------------------------------------------------------


def _die_with_parent() -> None:  # in the child, between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Children:
    """Every process this script starts, so that none outlives it."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], *, env: dict[str, str] | None, cwd: Path,
              stdout: Path, stderr: Path) -> subprocess.Popen[bytes]:
        with stdout.open("ab") as out, stderr.open("ab") as err:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=_die_with_parent,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], first: signal.Signals = signal.SIGINT,
             grace_s: float = STOP_GRACE_S) -> int | None:
        """``first`` to the process, then SIGTERM and SIGKILL to its whole tree."""
        import psutil

        if proc.poll() is None:
            proc.send_signal(first)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace_s)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                tree = psutil.Process(proc.pid).children(recursive=True)
            except psutil.Error:
                tree = []
            if proc.poll() is None:
                tree.append(psutil.Process(proc.pid))
            if not tree:
                break
            for member in tree:
                with contextlib.suppress(psutil.Error):
                    member.send_signal(sig)
            psutil.wait_procs(tree, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        return proc.returncode

    def stop_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                self.stop(proc, signal.SIGTERM, grace_s=10)
        self._procs.clear()


def free_port_block(count: int) -> int:
    """A port p with p .. p+count-1 all free on loopback (the metrics ports of a cluster)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = int(sock.getsockname()[1])
        if base + count - 1 > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("0.0.0.0", port))
        except OSError:
            continue
        return base
    msg = f"no block of {count} free ports"
    raise RuntimeError(msg)


def tail_text(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- /metrics ---------------------------------------------------------------------------------

Buckets = list[tuple[float, float]]  # (le, cumulative count), sorted by le


def scrape(port: int, timeout_s: float = 1.0) -> Figures | None:
    """Input messages and the since="ingest" alert latency buckets of one process."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as r:
            text = r.read().decode()
    except OSError:
        return None
    messages = 0.0
    latency: dict[str, dict[float, float]] = {}
    # Seconds spent inside each stage / sink write (wall time of the calls).
    stages: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "churnwatch_ingest_messages":
            for sample in family.samples:
                if sample.name == "churnwatch_ingest_messages_total":
                    messages += sample.value
        elif family.name in ("churnwatch_stage_batch_seconds", "churnwatch_stage_busy_seconds",
                             "churnwatch_sink_write_seconds"):
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_total")):
                    label = sample.labels.get("stage") or f"sink {sample.labels.get('sink')}"
                    stages[label] = stages.get(label, 0.0) + sample.value
        elif family.name == "churnwatch_alert_latency_seconds":
            for sample in family.samples:
                labels = sample.labels
                if sample.name.endswith("_bucket") and labels.get("since") == "ingest":
                    tier = labels.get("tier", "?")
                    le = float(labels["le"])
                    latency.setdefault(tier, {})[le] = sample.value
    return {"messages": messages, "latency": latency, "stages": stages}


def http_status(port: int, path: str, timeout_s: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def sum_buckets(per_process: Sequence[dict[str, dict[float, float]]]) -> dict[str, Buckets]:
    """Cluster-wide cumulative buckets by tier."""
    merged: dict[str, dict[float, float]] = {}
    for latency in per_process:
        for tier, buckets in latency.items():
            into = merged.setdefault(tier, {})
            for le, count in buckets.items():
                into[le] = into.get(le, 0.0) + count
    return {tier: sorted(b.items()) for tier, b in sorted(merged.items())}


def sum_stages(per_process: Sequence[dict[str, float]]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for stages in per_process:
        for name, seconds in stages.items():
            merged[name] = merged.get(name, 0.0) + seconds
    return dict(sorted(merged.items(), key=lambda item: -item[1]))


def bucket_quantile(q: float, buckets: Buckets) -> float | None:
    """Quantile of a cumulative histogram, linear within the bucket (histogram_quantile)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower  # past the last finite bound: that bound is all we know
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def share_at_most(bound: float, buckets: Buckets) -> float | None:
    """Exact share of observations <= ``bound`` when ``bound`` is a bucket boundary."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    for le, count in buckets:
        if math.isclose(le, bound):
            return count / total
    return None


def bucket_delta(newer: Buckets, older: Buckets) -> Buckets:
    before = dict(older)
    return [(le, count - before.get(le, 0.0)) for le, count in newer]


# --- sampling ---------------------------------------------------------------------------------


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's threads were runnable but not running (CPU contention).

    Summed over its threads: the second field of /proc/<pid>/task/<tid>/schedstat.
    """
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


class Sampler:
    """Every ``interval`` s: /metrics of each process, RSS and CPU of the cluster and servers."""

    def __init__(self, proc: subprocess.Popen[bytes], ports: list[int],
                 servers: dict[str, int], interval: float) -> None:
        import psutil

        self._psutil = psutil
        self._proc = proc
        self._ports = ports
        self._servers = servers
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._last: list[Figures | None] = [None] * len(ports)
        self._handles: dict[int, Any] = {}
        self.t0 = time.time()
        self.samples: list[Figures] = []

    def start(self) -> Sampler:
        self.t0 = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            with contextlib.suppress(Exception):  # one lost sample is not worth a crash
                self.samples.append(self.sample())
            self._stop.wait(max(0.0, self._interval - (time.time() - started)))

    def _process(self, pid: int) -> Any:
        handle = self._handles.get(pid)
        if handle is None:
            handle = self._handles[pid] = self._psutil.Process(pid)
        return handle

    def _role(self, member: Any) -> str:
        if member.pid == self._proc.pid:
            return "cluster parent" if len(self._ports) > 1 else "process 0"
        try:
            argv = member.cmdline()
        except self._psutil.Error:
            return f"pid {member.pid}"
        if "--process-id" in argv:
            index = argv.index("--process-id") + 1
            if index < len(argv):
                return f"process {argv[index]}"
        return f"pid {member.pid}"

    def tree(self) -> dict[str, tuple[int, float, float]]:
        """role -> (RSS bytes, own CPU s, s runnable but waiting for a CPU) of the cluster."""
        psutil = self._psutil
        result: dict[str, tuple[int, float, float]] = {}
        try:
            parent = self._process(self._proc.pid)
            members = [parent, *parent.children(recursive=True)]
        except psutil.Error:
            return result
        for member in members:
            try:
                if member.pid not in self._handles:
                    self._handles[member.pid] = member
                with member.oneshot():
                    rss = member.memory_info().rss
                    cpu = member.cpu_times()
                result[self._role(member)] = (rss, cpu.user + cpu.system,
                                              runqueue_wait_s(member.pid))
            except psutil.Error:
                continue
        return result

    def server_cpu(self) -> dict[str, float]:
        """name -> CPU seconds of each server with its live and reaped children."""
        psutil = self._psutil
        result: dict[str, float] = {}
        for name, pid in self._servers.items():
            try:
                server = self._process(pid)
                members = [server, *server.children(recursive=True)]
            except psutil.Error:
                continue
            total = 0.0
            for member in members:
                with contextlib.suppress(psutil.Error):
                    cpu = member.cpu_times()
                    total += cpu.user + cpu.system + cpu.children_user + cpu.children_system
            result[name] = total
        return result

    def sample(self) -> Figures:
        t = time.time() - self.t0
        scraped = [scrape(port) for port in self._ports]
        for index, result in enumerate(scraped):
            if result is not None:
                self._last[index] = result
        known = [r for r in self._last if r is not None]
        tree = self.tree()
        return {
            "t": round(t, 3),
            "messages": sum(r["messages"] for r in known),
            "scraped": sum(r is not None for r in scraped),
            "latency": sum_buckets([r["latency"] for r in known]),
            "stages": sum_stages([r["stages"] for r in known]),
            "rss": {role: rss for role, (rss, _, _) in tree.items()},
            "cpu": {role: cpu for role, (_, cpu, _) in tree.items()},
            "wait": {role: wait for role, (_, _, wait) in tree.items()},
            "servers_cpu": self.server_cpu(),
            "bench_cpu": sum(os.times()[:2]),
        }


# --- the workload -----------------------------------------------------------------------------


def choose_days(events: int, accounts: int, seed: int) -> tuple[int, float]:
    """Days so that simulate(accounts, days) gives about ``events`` valid events.

    A pilot of a few hundred accounts over more days than needed gives valid
    events per account by elapsed day; the day count closest to the target wins.
    """
    from churnwatch.simulator import MessageKind, simulate

    pilot = min(accounts, 400)
    guess = max(1, round(events / (accounts * 9.0)))
    horizon = min(3 * guess + 3, 400)
    sim = simulate(accounts=pilot, days=horizon, seed=seed)
    per_day = [0] * horizon
    for message in sim.messages:
        if message.kind != MessageKind.VALID:
            continue
        moment = datetime.fromisoformat(orjson.loads(message.value)["event_time"])
        day = int((moment - sim.start).total_seconds() // 86_400)
        per_day[min(max(day, 0), horizon - 1)] += 1
    best, best_error, cumulative = 1, math.inf, 0
    per_account = 0.0
    for day, count in enumerate(per_day, start=1):
        cumulative += count
        estimate = cumulative / pilot * accounts
        if abs(estimate - events) < best_error:
            best, best_error, per_account = day, abs(estimate - events), cumulative / pilot
    return best, per_account / best


def phase_settings(base: Any, tag: str, state_dir: Path, args: argparse.Namespace,
                   metrics_port: int, events_topic: str | None = None) -> Any:
    """Settings of one churnwatch run: its own topics, schema, key prefix, recovery."""
    from churnwatch.settings import Topics

    name = f"bench_{tag}_{uuid.uuid4().hex[:6]}"
    return base.replace(
        topics=Topics(
            events=events_topic or f"{name}.events",
            dead_letters=f"{name}.dlq",
            alerts=f"{name}.alerts",
            late=f"{name}.late",
        ),
        topic_partitions=args.partitions,
        database_schema=name,
        redis_key_prefix=name,
        recovery_dir=state_dir / name / "recovery",
        state_dir=state_dir,
        input_batch_size=args.batch_size,
        metrics_port=metrics_port,
        log_format="json",
    )


def init_recovery(settings: Any) -> None:
    """Create the recovery partitions before the cluster starts.

    Every process of a fresh cluster would otherwise create them at once, and
    the loser of that race panics ("table parts already exists").
    """
    from dataflows.run import recovery_config

    recovery_config(settings.recovery_dir, settings.recovery_partitions)


def child_env(settings: Any, overrides: Sequence[str] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    env.update(settings.to_env())
    for item in overrides:
        name, _, value = item.partition("=")
        env[name] = value
    env["PYTHONUNBUFFERED"] = "1"
    return env


def churnwatch_argv(processes: int, *, until_drained: bool) -> list[str]:
    argv = [sys.executable, "-m", "churnwatch", "run", "--processes", str(processes)]
    if until_drained:
        argv.append("--until-drained")
    return argv


def parse_counts(line: str, prefix: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for item in line[len(prefix):].split():
        name, _, value = item.partition("=")
        with contextlib.suppress(ValueError):
            counts[name] = float(value)
    return counts


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- phase 1: floor ---------------------------------------------------------------------------


def run_floor(children: Children, bootstrap: str, topic: str, processes: int,
              args: argparse.Namespace, logs: Path, tag: str) -> Figures:
    from churnwatch.localstack import free_port

    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    outs = [logs / f"{tag}-p{i}.out" for i in range(processes)]
    errs = [logs / f"{tag}-p{i}.err" for i in range(processes)]
    cpu_before = children_cpu_s()
    started = time.perf_counter()
    procs = []
    for i in range(processes):
        argv = [sys.executable, str(Path(__file__).resolve()), "--floor-worker",
                "--bootstrap", bootstrap, "--topic", topic, "--batch-size", str(args.batch_size)]
        if processes > 1:
            argv += ["--process-id", str(i), "--addresses", addresses]
        procs.append(children.start(argv, env=None, cwd=REPO, stdout=outs[i], stderr=errs[i]))
    try:
        for i, proc in enumerate(procs):
            code = proc.wait()
            if code != 0:
                msg = f"floor process {i} exited with {code}:\n{tail_text(errs[i])}"
                raise RuntimeError(msg)
    finally:
        for proc in procs:
            if proc.poll() is None:
                children.stop(proc, signal.SIGTERM, grace_s=5)
    wall = time.perf_counter() - started
    cpu = children_cpu_s() - cpu_before
    totals: dict[str, float] = {}
    firsts, lasts = [], []
    for out in outs:
        for line in out.read_text().splitlines():
            if line.startswith(FLOOR_LINE):
                counts = parse_counts(line, FLOOR_LINE)
                for key in ("messages", "parsed", "errors"):
                    totals[key] = totals.get(key, 0.0) + counts.get(key, 0.0)
                if counts.get("first"):
                    firsts.append(counts["first"])
                    lasts.append(counts["last"])
    messages = int(totals.get("messages", 0))
    active = max(lasts) - min(firsts) if firsts else 0.0
    return {
        "processes": processes,
        "messages": messages,
        "parsed": int(totals.get("parsed", 0)),
        "errors": int(totals.get("errors", 0)),
        "wall_s": wall,
        "active_s": active,
        "cpu_s": cpu,
        "events_per_s_wall": messages / wall if wall > 0 else None,
        "events_per_s_sustained": messages / active if active > 0 else None,
    }


# --- phase 2: full pipeline ------------------------------------------------------------------


def sustained_rate(samples: list[Figures], final: float, end_t: float) -> tuple[float, float,
                                                                                float, float]:
    """(rate, t_first, t_last, busy seconds) between the first and last observed progress."""
    points = [(s["t"], s["messages"]) for s in samples]
    first = next(((t, m) for t, m in points if m > 0), None)
    if first is None:
        return 0.0, 0.0, end_t, 0.0
    last = next(((t, m) for t, m in points if m >= final), None)
    if last is None:  # the counters went away with the processes: the exit bounds it
        last = (end_t, final)
    busy = last[0] - first[0]
    rate = (last[1] - first[1]) / busy if busy > 0 else 0.0
    return rate, first[0], last[0], busy


def throughput_timeline(samples: list[Figures]) -> list[dict[str, float]]:
    timeline = []
    for before, after in itertools.pairwise(samples):
        dt = after["t"] - before["t"]
        if dt > 0:
            timeline.append({
                "t": after["t"],
                "messages": after["messages"],
                "events_per_s": (after["messages"] - before["messages"]) / dt,
                "scraped": after["scraped"],
            })
    return timeline


def worker_cpu_seen(samples: list[Figures]) -> float:
    """CPU seconds of the dataflow processes as last seen (they vanish at exit)."""
    seen: dict[str, float] = {}
    for sample in samples:
        for role, cpu in sample["cpu"].items():
            if role.startswith("process "):
                seen[role] = max(seen.get(role, 0.0), cpu)
    return sum(seen.values())


def stage_timeline(samples: list[Figures]) -> list[Figures]:
    """Per sample: seconds spent in each stage since the previous sample (all processes)."""
    rows = []
    for before, after in itertools.pairwise(samples):
        deltas = {name: round(seconds - before["stages"].get(name, 0.0), 3)
                  for name, seconds in after["stages"].items()}
        cpu = {role: round(value - before["cpu"].get(role, value), 3)
               for role, value in after["cpu"].items()}
        rows.append({"t": after["t"], "stages": {k: v for k, v in deltas.items() if v > 0},
                     "cpu": cpu})
    return rows


def utilisation(samples: list[Figures], t_from: float, t_to: float) -> Figures:
    """CPU share (1.0 = one core) of each process and server between two sample times."""
    inside = [s for s in samples if t_from <= s["t"] <= t_to]
    if len(inside) < 2:
        return {}
    first, last = inside[0], inside[-1]
    dt = last["t"] - first["t"]
    if dt <= 0:
        return {}
    shares: Figures = {}
    for role, cpu in last["cpu"].items():
        if role in first["cpu"]:
            shares[role] = (cpu - first["cpu"][role]) / dt
    for name, cpu in last["servers_cpu"].items():
        if name in first["servers_cpu"]:
            shares[f"server {name}"] = (cpu - first["servers_cpu"][name]) / dt
    shares["benchmark (sampler)"] = (last["bench_cpu"] - first["bench_cpu"]) / dt
    return shares


def runqueue_waits(samples: list[Figures], t_from: float, t_to: float) -> Figures:
    """Share of the time each process waited for a CPU while runnable, between two times."""
    inside = [s for s in samples if t_from <= s["t"] <= t_to]
    if len(inside) < 2 or inside[-1]["t"] <= inside[0]["t"]:
        return {}
    first, last = inside[0], inside[-1]
    dt = last["t"] - first["t"]
    # A thread that ends takes its count along: clamp the (rare) negative difference.
    return {role: max(0.0, (wait - first["wait"][role]) / dt)
            for role, wait in last["wait"].items() if role in first["wait"]}


def run_full(children: Children, base: Any, args: argparse.Namespace, state_dir: Path,
             events_topic: str, produced: int, servers: dict[str, int], tag: str) -> Figures:
    port = free_port_block(args.processes)
    settings = phase_settings(base, tag, state_dir, args, port, events_topic)
    init_recovery(settings)
    logs = state_dir / "logs"
    out, err = logs / f"{tag}.out", logs / f"{tag}.err"
    cpu_before = children_cpu_s()
    started = time.perf_counter()
    proc = children.start(churnwatch_argv(args.processes, until_drained=True),
                          env=child_env(settings, args.env), cwd=state_dir, stdout=out, stderr=err)
    sampler = Sampler(proc, [port + i for i in range(args.processes)], servers,
                      args.sample_interval).start()
    try:
        code = proc.wait()
        end_t = time.time() - sampler.t0
        wall = time.perf_counter() - started
    finally:
        sampler.stop()
        if proc.poll() is None:
            children.stop(proc)
    if code != 0:
        msg = f"churnwatch run exited with {code}:\n{tail_text(err)}"
        raise RuntimeError(msg)
    cpu = children_cpu_s() - cpu_before
    drained = [line for line in out.read_text().splitlines() if line.startswith(DRAINED_LINE)]
    if not drained:
        msg = f"no '{DRAINED_LINE.strip()}' line from churnwatch run:\n{tail_text(out)}"
        raise RuntimeError(msg)
    counts = {k: int(v) for k, v in parse_counts(drained[-1], DRAINED_LINE).items()}
    messages = counts.get("messages", 0)
    samples = sampler.samples
    rate, t_first, t_last, busy = sustained_rate(samples, messages, end_t)
    peak_sum = max((sum(s["rss"].values()) for s in samples), default=0)
    peak_by_role: dict[str, int] = {}
    for s in samples:
        for role, rss in s["rss"].items():
            peak_by_role[role] = max(peak_by_role.get(role, 0), rss)
    return {
        "settings": {"schema": settings.database_schema, "prefix": settings.redis_key_prefix,
                     "metrics_port": port},
        "redis_key_prefix": settings.redis_key_prefix,
        **counts,
        "produced": produced,
        "messages_match_produced": messages == produced,
        "wall_s": wall,
        "busy_s": busy,
        "first_progress_s": t_first,
        "last_progress_s": t_last,
        "events_per_s_sustained": rate,
        "events_per_s_wall": messages / wall if wall > 0 else None,
        "valid_events_per_s_wall": counts.get("events", 0) / wall if wall > 0 else None,
        "cpu_s": cpu,
        "peak_rss_sum_mib": peak_sum / 2**20,
        "peak_rss_mib": {role: rss / 2**20 for role, rss in sorted(peak_by_role.items())},
        "cpu_share_busy": utilisation(samples, t_first, t_last),
        "runqueue_wait_share_busy": runqueue_waits(samples, t_first, t_last),
        "stage_seconds": samples[-1]["stages"] if samples else {},
        "stage_seconds_note": "wall time inside each stage or sink write, summed over the "
                              "processes, as of the last /metrics sample before exit",
        "worker_cpu_s_at_last_sample": worker_cpu_seen(samples),
        "stage_timeline": stage_timeline(samples),
        "samples": len(samples),
        "timeline": throughput_timeline(samples),
    }


# --- Redis ------------------------------------------------------------------------------------


def redis_figures(redis_url: str, prefix: str) -> Figures:
    import redis

    from featurestore.redis_store import feature_key

    client = redis.Redis.from_url(redis_url)
    try:
        keys = [k.decode() for k in client.scan_iter(match=feature_key("*", "*", prefix),
                                                     count=10_000)]
        figures: Figures = {"hashes": len(keys), "sampled": 0, "bytes_per_account": None}
        if not keys:
            return figures
        sample = random.Random(0).sample(keys, min(MEMORY_SAMPLE, len(keys)))
        pipe = client.pipeline(transaction=False)
        for key in sample:
            pipe.memory_usage(key, samples=0)
        usages = [int(u) for u in pipe.execute() if u is not None]
        figures.update(
            sampled=len(usages),
            bytes_per_account=statistics.fmean(usages) if usages else None,
            fields_per_hash=int(client.hlen(sample[0])),
            encoding=client.object("encoding", sample[0]).decode(),
            used_memory=int(client.info("memory")["used_memory"]),
        )
        return figures
    finally:
        client.close()


# --- phase 3: latency at a given rate -------------------------------------------------------


def paced_produce(messages: Sequence[Any], bootstrap: str, topic: str, rate: int,
                  seconds: float) -> Figures:
    """Produce at ``rate`` messages/s for ``seconds``, in 100 ms slices."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    slice_s = 0.1
    sent = 0
    limit = min(len(messages), int(rate * seconds))
    started = time.perf_counter()
    k = 0
    while sent < limit:
        target = min(limit, int(rate * slice_s * (k + 1)))
        while sent < target:
            message = messages[sent]
            try:
                producer.produce(topic, value=message.value, key=message.key,
                                 on_delivery=on_delivery)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        k += 1
        delay = started + slice_s * k - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    produce_s = time.perf_counter() - started
    remaining = producer.flush(30)
    return {
        "produced": sent,
        "produce_s": produce_s,
        "achieved_rate": sent / produce_s if produce_s > 0 else None,
        "flush_s": time.perf_counter() - started - produce_s,
        "undelivered": remaining + len(errors),
        "first_error": errors[0] if errors else None,
    }


def latency_timeline(samples: list[Figures], produce_from: float) -> list[Figures]:
    """Per sample: cumulative and trailing-window p99 of each tier."""
    timeline = []
    for index, sample in enumerate(samples):
        row: Figures = {"t": round(sample["t"] - produce_from, 3), "messages": sample["messages"]}
        older = None
        for candidate in reversed(samples[:index]):
            if candidate["t"] <= sample["t"] - LATENCY_WINDOW_S:
                older = candidate
                break
        for tier, buckets in sample["latency"].items():
            row[f"tier{tier}_p99_cumulative"] = bucket_quantile(0.99, buckets)
            window = buckets
            if older is not None and tier in older["latency"]:
                window = bucket_delta(buckets, older["latency"][tier])
            row[f"tier{tier}_p99_window"] = bucket_quantile(0.99, window)
            row[f"tier{tier}_count"] = buckets[-1][1] if buckets else 0
        timeline.append(row)
    return timeline


def run_latency(children: Children, base: Any, args: argparse.Namespace, state_dir: Path,
                servers: dict[str, int]) -> Figures:
    from churnwatch.simulator import simulate
    from churnwatch.topics import ensure_topics

    needed = int(args.rate * args.latency_seconds) + 1
    accounts = max(50, math.ceil(needed * 1.05 / (LATENCY_DAYS * 6.0)))
    started = time.perf_counter()
    sim = simulate(accounts=accounts, days=LATENCY_DAYS, seed=args.seed + 1)
    for _ in range(3):  # too few messages for the whole phase: scale the accounts up
        if len(sim.messages) >= needed:
            break
        accounts = math.ceil(accounts * needed * 1.05 / max(1, len(sim.messages)))
        sim = simulate(accounts=accounts, days=LATENCY_DAYS, seed=args.seed + 1)
    simulate_s = time.perf_counter() - started
    payment_failed = sum(b'"billing.payment_failed"' in m.value for m in sim.messages)
    print(f"latency stream: {len(sim.messages):,} messages ({accounts:,} accounts, "
          f"{LATENCY_DAYS} days, {payment_failed:,} payment failures) simulated in "
          f"{simulate_s:.1f}s", flush=True)

    port = free_port_block(args.processes)
    settings = phase_settings(base, "lat", state_dir, args, port)
    init_recovery(settings)
    ensure_topics(base.kafka_bootstrap, [settings.topics.events], args.partitions)
    logs = state_dir / "logs"
    out, err = logs / "latency.out", logs / "latency.err"
    ports = [port + i for i in range(args.processes)]
    proc = children.start(churnwatch_argv(args.processes, until_drained=False),
                          env=child_env(settings, args.env), cwd=state_dir, stdout=out, stderr=err)
    sampler: Sampler | None = None
    try:
        ready_from = time.perf_counter()
        deadline = ready_from + 180
        while not all(http_status(p, "/readyz") == 200 for p in ports):
            if proc.poll() is not None:
                msg = f"churnwatch run exited with {proc.returncode}:\n{tail_text(err)}"
                raise RuntimeError(msg)
            if time.perf_counter() > deadline:
                msg = f"/readyz not 200 on every process after 180 s:\n{tail_text(err)}"
                raise RuntimeError(msg)
            time.sleep(0.5)
        ready_s = time.perf_counter() - ready_from
        sampler = Sampler(proc, ports, servers, args.sample_interval).start()
        produce_from = time.time() - sampler.t0
        produced = paced_produce(sim.messages, base.kafka_bootstrap, settings.topics.events,
                                 args.rate, args.latency_seconds)
        produce_end = time.time() - sampler.t0
        at_produce_end = sum((r or {}).get("messages", 0.0) for r in (scrape(p) for p in ports))
        # Wait for the pipeline to read everything, then a little for the last alerts.
        deadline = time.perf_counter() + 120
        caught_up_s = None
        while time.perf_counter() < deadline and proc.poll() is None:
            total = sum((r or {}).get("messages", 0.0) for r in (scrape(p) for p in ports))
            if total >= produced["produced"]:
                caught_up_s = time.time() - sampler.t0 - produce_end
                break
            time.sleep(0.2)
        time.sleep(PAUSE_AFTER_DRAIN_S)
        final = [scrape(p) for p in ports]
        sampler.stop()
        if proc.poll() is not None:
            msg = f"churnwatch run exited during the latency phase:\n{tail_text(err)}"
            raise RuntimeError(msg)
    finally:
        if sampler is not None:
            sampler.stop()
        code = children.stop(proc, signal.SIGINT)
    merged = sum_buckets([r["latency"] for r in final if r is not None])
    tiers: Figures = {}
    for tier, buckets in merged.items():
        tiers[tier] = {
            "alerts": int(buckets[-1][1]) if buckets else 0,
            "p50_s": bucket_quantile(0.5, buckets),
            "p99_s": bucket_quantile(0.99, buckets),
            "share_le_250ms": share_at_most(TARGET_TIER1_P99_S, buckets),
            "buckets": buckets,
        }
    read = sum(r["messages"] for r in final if r is not None)
    samples = sampler.samples
    busy = [s for s in samples if produce_from <= s["t"] <= produce_end + (caught_up_s or 0)]
    return {
        "accounts": accounts,
        "days": LATENCY_DAYS,
        "simulated_messages": len(sim.messages),
        "simulate_s": simulate_s,
        "ready_s": ready_s,
        "rate_target": args.rate,
        "seconds": args.latency_seconds,
        **produced,
        "messages_read": int(read),
        "lag_at_produce_end": produced["produced"] - int(at_produce_end),
        "caught_up_after_s": caught_up_s,
        "tiers": tiers,
        "stop_exit_code": code,
        "cpu_share": utilisation(busy, busy[0]["t"], busy[-1]["t"]) if busy else {},
        "stage_seconds": sum_stages([r["stages"] for r in final if r is not None]),
        "timeline": latency_timeline(samples, produce_from),
        "ingest_timeline": [
            {**row, "t": round(row["t"] - produce_from, 3)}
            for row in throughput_timeline(samples)
        ],
    }


# --- summary ----------------------------------------------------------------------------------


def median_of(runs: list[Figures]) -> Figures:
    """Median of every numeric figure, all() of the checks, the first run's value otherwise."""
    merged: Figures = {}
    for key, value in runs[0].items():
        if isinstance(value, bool):  # a check: it holds only if it held in every run
            merged[key] = all(r.get(key) for r in runs)
        elif isinstance(value, int | float):
            numbers = [r[key] for r in runs if isinstance(r.get(key), int | float)]
            merged[key] = statistics.median(numbers) if numbers else None
        elif isinstance(value, dict) and value and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
        ):
            merged[key] = median_of([r.get(key) or {} for r in runs if r.get(key)])
        else:
            merged[key] = value
    return merged


def environment() -> Figures:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "bytewax": version("bytewax"),
        "confluent_kafka": version("confluent-kafka"),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(full: Figures, floor: Figures, latency: Figures | None,
            args: argparse.Namespace) -> list[Figures]:
    rows: list[Figures] = []
    rate = full.get("events_per_s_sustained")
    rows.append({"target": f">= {TARGET_EVENTS_PER_S:,.0f} events/s, full pipeline (sustained)",
                 "value": rate, "met": rate is not None and rate >= TARGET_EVENTS_PER_S})
    if latency is not None:
        tier1 = latency["tiers"].get("1", {})
        p99 = tier1.get("p99_s")
        share = tier1.get("share_le_250ms")
        label = f"tier-1 p99 <= {TARGET_TIER1_P99_S * 1000:.0f} ms at {TARGET_TIER1_RATE:,} ev/s"
        if args.rate != TARGET_TIER1_RATE:
            label += f" (measured at {args.rate:,}/s)"
        met = share >= 0.99 if share is not None else (p99 is not None and
                                                        p99 <= TARGET_TIER1_P99_S)
        rows.append({"target": label, "value": p99, "met": bool(met) if tier1 else None})
    share = ratio(full.get("events_per_s_sustained"), floor.get("events_per_s_sustained"))
    rows.append({"target": f"full >= {TARGET_FLOOR_SHARE:.0%} of floor (sustained)",
                 "value": share, "met": share is not None and share >= TARGET_FLOOR_SHARE})
    return rows


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def table(report: Figures) -> list[tuple[str, str]]:
    """(label, value) rows; an empty value marks a section heading."""
    env, work, args = report["environment"], report["workload"], report["arguments"]
    floor, floor1, full = report["floor"], report.get("floor_1"), report["full"]
    rows: list[tuple[str, str]] = [("machine", "")]
    rows += [
        ("  CPUs (usable)", f"{env['cpu_count']} ({env['cpus_usable']})"),
        ("  python / bytewax", f"{env['python']} / {env['bytewax']}"),
        ("workload", ""),
        ("  messages produced", f"{work['produced']:,} (valid {work['valid']:,}, duplicates "
                                f"{work['duplicate']:,}, malformed {work['malformed']:,})"),
        ("  accounts / days / seed", f"{args['accounts']:,} / {work['days']} / {args['seed']}"),
        ("  partitions / processes", f"{args['partitions']} / {args['processes']}"),
        ("  simulate / produce (untimed)", f"{work['simulate_s']:.1f} s / "
                                           f"{work['produce_s']:.1f} s"),
        ("  repeats (medians shown)", str(args["repeat"])),
        *([("  setting overrides (not defaults!)", " ".join(args["env"]))] if args["env"] else []),
        ("throughput (input messages/s)", ""),
        (f"  floor, {int(floor['processes'])} process(es): sustained / wall",
         f"{_num(floor['events_per_s_sustained'])} / {_num(floor['events_per_s_wall'])}"),
    ]
    if floor1 is not None:
        rows.append(("  floor, 1 process: sustained / wall",
                     f"{_num(floor1['events_per_s_sustained'])} / "
                     f"{_num(floor1['events_per_s_wall'])}"))
    rows += [
        (f"  full, {args['processes']} process(es): sustained / wall",
         f"{_num(full['events_per_s_sustained'])} / {_num(full['events_per_s_wall'])}"),
        ("  full run: wall / busy", f"{full['wall_s']:.1f} s / {full['busy_s']:.1f} s"),
        ("  full / floor: sustained / wall",
         f"{_num(ratio(full['events_per_s_sustained'], floor['events_per_s_sustained']), '{:.0%}')}"
         f" / {_num(ratio(full['events_per_s_wall'], floor['events_per_s_wall']), '{:.0%}')}"),
        ("  drained: messages == produced",
         f"{'yes' if full['messages_match_produced'] else 'NO'} "
         f"({_num(full.get('messages'))})"),
    ]
    latency = report.get("latency")
    if latency is not None:
        rows += [
            ("alert latency since ingest (bucket-interpolated)", ""),
            ("  produce rate: target / achieved",
             f"{latency['rate_target']:,}/s / {_num(latency['achieved_rate'])}/s "
             f"for {latency['produce_s']:.1f} s ({latency['produced']:,} messages)"),
            ("  lag at end of produce / caught up after",
             f"{latency['lag_at_produce_end']:,} msgs / "
             f"{_num(latency['caught_up_after_s'], '{:.1f} s')}"),
        ]
        for tier in ("1", "2"):
            figures = latency["tiers"].get(tier)
            if figures is None:
                rows.append((f"  tier {tier}: p50 / p99", "no alerts with an ingest time"))
                continue
            rows.append((
                f"  tier {tier}: p50 / p99",
                f"{_ms(figures['p50_s'])} / {_ms(figures['p99_s'])} ({figures['alerts']:,} "
                f"alerts; {_num(figures['share_le_250ms'], '{:.1%}')} <= 250 ms)",
            ))
    redis_ = report["redis"]
    rss = ", ".join(f"{role} {mib:,.0f}" for role, mib in full["peak_rss_mib"].items())
    rows += [
        ("memory", ""),
        ("  peak RSS, full run: sum", f"{full['peak_rss_sum_mib']:,.0f} MiB"),
        ("  peak RSS per process", f"{rss} (MiB)"),
        ("  Redis bytes/account (MEMORY USAGE)",
         f"{_num(redis_.get('bytes_per_account'))} B (mean of {redis_['sampled']} of "
         f"{redis_['hashes']:,} hashes)"),
        ("CPU while busy, full run (1.0 = one core)", ""),
    ]
    waits = full.get("runqueue_wait_share_busy") or {}
    for role, share in sorted(full["cpu_share_busy"].items()):
        wait = waits.get(role)
        extra = f" (+ {wait:.2f} runnable, waiting for a CPU)" if wait is not None else ""
        rows.append((f"  {role}", f"{share:.2f}{extra}"))
    stages = full.get("stage_seconds") or {}
    if stages:
        worker_cpu = full.get("worker_cpu_s_at_last_sample") or 0.0
        rows.append(("time inside stages, full run (summed over processes)",
                     f"workers' CPU {worker_cpu:,.1f} s" if worker_cpu else "-"))
        for name, seconds in stages.items():
            share = f" ({seconds / worker_cpu:.0%} of workers' CPU)" if worker_cpu else ""
            rows.append((f"  {name}", f"{seconds:,.1f} s{share}"))
        if worker_cpu:
            rest = worker_cpu - sum(stages.values())
            rows.append(("  outside these (Bytewax, Kafka input, startup)",
                         f"{rest:,.1f} s ({rest / worker_cpu:.0%})"))
    if latency is not None and latency.get("cpu_share"):
        shares = ", ".join(f"{role} {share:.2f}" for role, share
                           in sorted(latency["cpu_share"].items()) if share >= 0.01)
        rows.append(("CPU during the latency phase (cores)", shares))
    rows.append(("targets", ""))
    for row in report["targets"]:
        value = row["value"]
        if value is None:
            shown = "-"
        elif "ms" in row["target"]:
            shown = _ms(value)
        elif "%" in row["target"]:
            shown = f"{value:.0%}"
        else:
            shown = f"{value:,.0f}/s"
        verdict = "n/a" if row["met"] is None else "met" if row["met"] else "NOT met"
        rows.append((f"  {row['target']}", f"{shown}: {verdict}"))
    return rows


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, value in rows if value)
    for label, value in rows:
        print(label if not value else f"{label.ljust(width)}  {value}")


def draw_chart(report: Figures, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latency = report.get("latency")
    panels = 2 if latency else 1
    fig, axes = plt.subplots(panels, 1, figsize=(10, 4.2 * panels), squeeze=False)
    top = axes[0][0]
    for index, run in enumerate(report["full_runs"]):
        timeline = run["timeline"]
        times = [p["t"] for p in timeline]
        line = top.plot(times, [p["events_per_s"] for p in timeline], linewidth=0.8, alpha=0.6,
                        marker=".", label=f"full pipeline, run {index + 1}, per sample")
        rolling = [
            (t, statistics.fmean(p["events_per_s"] for p in timeline
                                 if t - ROLLING_S < p["t"] <= t))
            for t in times
        ]
        top.plot(*zip(*rolling, strict=True), color=line[0].get_color(), linewidth=1.8,
                 label=f"full pipeline, run {index + 1}, {ROLLING_S:.0f} s average")
    floor, floor1 = report["floor"], report.get("floor_1")
    processes = report["arguments"]["processes"]
    if floor.get("events_per_s_sustained"):
        top.axhline(floor["events_per_s_sustained"], color="grey", linestyle="--",
                    label=f"floor, {processes} process(es), sustained")
    if floor1 and floor1.get("events_per_s_sustained"):
        top.axhline(floor1["events_per_s_sustained"], color="grey", linestyle=":",
                    label="floor, 1 process, sustained")
    top.axhline(TARGET_EVENTS_PER_S, color="red", linewidth=0.8, label="target 50,000/s")
    top.set_title(f"throughput, {report['workload']['produced']:,} messages, "
                  f"{processes} process(es)")
    top.set_xlabel("s since churnwatch run started")
    top.set_ylabel("input messages/s (symlog)")
    # The floor is an order of magnitude above the pipeline: linear below 1,000/s, log above.
    top.set_yscale("symlog", linthresh=1_000)
    top.set_ylim(bottom=0)
    top.legend(loc="lower right", fontsize=8)
    top.grid(alpha=0.3)
    if latency:
        bottom = axes[1][0]
        timeline = latency["timeline"]
        for tier, color in (("1", "tab:blue"), ("2", "tab:orange")):
            window = [(r["t"], r.get(f"tier{tier}_p99_window")) for r in timeline]
            window = [(t, v * 1000) for t, v in window if v is not None]
            total = [(r["t"], r.get(f"tier{tier}_p99_cumulative")) for r in timeline]
            total = [(t, v * 1000) for t, v in total if v is not None]
            if window:
                bottom.plot(*zip(*window, strict=True), color=color, marker=".",
                            label=f"tier {tier} p99, last {LATENCY_WINDOW_S:.0f} s")
            if total:
                bottom.plot(*zip(*total, strict=True), color=color, linestyle="--",
                            linewidth=0.8, label=f"tier {tier} p99, cumulative")
        bottom.axhline(TARGET_TIER1_P99_S * 1000, color="red", linewidth=0.8,
                       label="tier-1 target 250 ms")
        bottom.axvline(latency["produce_s"], color="grey", linewidth=0.8, linestyle=":",
                       label="produce ends")
        bottom.set_yscale("log")
        bottom.set_title(f"alert latency since ingest at {latency['rate_target']:,} events/s "
                         f"(bucket-interpolated)")
        bottom.set_xlabel("s since producing started")
        bottom.set_ylabel("ms")
        bottom.legend(fontsize=8)
        bottom.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main -------------------------------------------------------------------------------------


def _progress(text: str) -> None:
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floor_worker:
        return floor_worker(args)

    from churnwatch.localstack import LocalStack
    from churnwatch.settings import Settings
    from churnwatch.simulator import produce, simulate
    from churnwatch.topics import ensure_topics

    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    _progress(f"python {env['python']}, bytewax {env['bytewax']}, {env['cpu_count']} CPU(s); "
              f"results to {out_dir}")
    state_dir = Path(tempfile.mkdtemp(prefix="cw-bench-run-")).resolve()
    (state_dir / "logs").mkdir()
    children = Children()
    report: Figures = {
        "environment": env,
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                      if k not in ("floor_worker", "process_id", "addresses", "bootstrap",
                                   "topic")},
    }
    try:
        days, per_account_day = choose_days(args.events, args.accounts, args.seed)
        started = time.perf_counter()
        sim = simulate(accounts=args.accounts, days=days, seed=args.seed)
        simulate_s = time.perf_counter() - started
        counts = sim.counts()
        _progress(f"simulated {len(sim.messages):,} messages ({args.accounts:,} accounts, {days} "
                  f"days, ~{per_account_day:.1f} valid events/account/day) in {simulate_s:.1f}s: "
                  f"{counts}")
        stack = LocalStack(Settings(), state_dir / "stack")
        with stack as base:
            assert base.kafka_bootstrap and base.redis_url
            servers = stack.pids
            events_topic = f"bench_events_{uuid.uuid4().hex[:6]}"
            ensure_topics(base.kafka_bootstrap, [events_topic], args.partitions)
            started = time.perf_counter()
            produced = produce(sim, base.kafka_bootstrap, events_topic, timeout_s=120)
            produce_s = time.perf_counter() - started
            del sim
            _progress(f"produced {produced:,} messages to {events_topic} ({args.partitions} "
                      f"partitions) in {produce_s:.1f}s")
            report["workload"] = {"days": days, "produced": produced, **counts,
                                  "simulate_s": simulate_s, "produce_s": produce_s,
                                  "events_topic": events_topic}
            floors: list[Figures] = []
            floors_1: list[Figures] = []
            fulls: list[Figures] = []
            logs = state_dir / "logs"
            for r in range(args.repeat):
                floor = run_floor(children, base.kafka_bootstrap, events_topic, args.processes,
                                  args, logs, f"floor{r}")
                floors.append(floor)
                _progress(f"[{r + 1}/{args.repeat}] floor, {args.processes} process(es): "
                          f"{floor['messages']:,} messages, {floor['wall_s']:.1f}s wall, "
                          f"{_num(floor['events_per_s_sustained'])}/s sustained")
                if args.processes > 1:
                    floor1 = run_floor(children, base.kafka_bootstrap, events_topic, 1, args,
                                       logs, f"floor1-{r}")
                    floors_1.append(floor1)
                    _progress(f"[{r + 1}/{args.repeat}] floor, 1 process: "
                              f"{floor1['wall_s']:.1f}s wall, "
                              f"{_num(floor1['events_per_s_sustained'])}/s sustained")
                full = run_full(children, base, args, state_dir, events_topic, produced,
                                servers, f"full{r}")
                fulls.append(full)
                _progress(f"[{r + 1}/{args.repeat}] full, {args.processes} process(es): "
                          f"{full.get('messages', 0):,} messages, {full['wall_s']:.1f}s wall, "
                          f"{_num(full['events_per_s_sustained'])}/s sustained")
            report["floor_runs"], report["floor"] = floors, median_of(floors)
            if floors_1:
                report["floor_1_runs"], report["floor_1"] = floors_1, median_of(floors_1)
            report["full_runs"] = fulls
            report["full"] = median_of([{k: v for k, v in f.items() if k != "timeline"}
                                        for f in fulls])
            report["redis"] = redis_figures(base.redis_url, fulls[-1]["redis_key_prefix"])
            if not args.skip_latency:
                _progress(f"latency phase: {args.rate:,} events/s for {args.latency_seconds:g}s")
                report["latency"] = run_latency(children, base, args, state_dir, servers)
            children.stop_all()
    finally:
        children.stop_all()
        if args.keep_state:
            print(f"state kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)

    report["targets"] = targets(report["full"], report["floor"], report.get("latency"), args)
    print()
    print_table(table(report))
    result_path, chart_path = out_dir / "result.json", out_dir / "chart.png"
    result_path.write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                     default=str) + b"\n"
    )
    draw_chart(report, chart_path)
    print()
    print(f"wrote {result_path} and {chart_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
