"""The cluster benchmark: floor, reference, full pipeline and alert latency on one stack.

:func:`run_pipeline_benchmark` does what ``python -m benchmarks.bench_pipeline``
describes: simulate and produce once, then per repeat the floor, the
hand-written reference and the full pipeline (P processes, 1 process, scoring
and decisions off) over the same topic, then the latency phase, then the
replay of a long history from a file (:mod:`~benchmarks.harness.replay_run`);
it prints progress, the table and the wall time of each phase, and writes
``result.json`` and ``chart.png``.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.harness import timelines
from benchmarks.harness.alert_latency import AlertTail, exact_latencies
from benchmarks.harness.churnwatch_runs import (
    child_env,
    churnwatch_argv,
    init_recovery,
    isolated_settings,
)
from benchmarks.harness.figures import Figures
from benchmarks.harness.floor import run_floor
from benchmarks.harness.output_rows import count_rows, rows_per_thousand_events
from benchmarks.harness.phases import PhaseTimes
from benchmarks.harness.processes import (
    ChildProcesses,
    children_cpu_s,
    free_port_block,
    parse_counts,
    tail_text,
    wait_until_ready,
)
from benchmarks.harness.prometheus import scrape, sum_buckets, sum_stages
from benchmarks.harness.quantiles import bucket_quantile, median_of, share_at_most
from benchmarks.harness.redis_memory import feature_memory
from benchmarks.harness.reference import run_reference
from benchmarks.harness.replay_run import run_replay
from benchmarks.harness.report import (
    draw_chart,
    environment,
    json_argument,
    number,
    print_table,
    table,
    write_result,
)
from benchmarks.harness.sampling import ClusterSampler
from benchmarks.harness.targets import TARGET_TIER1_P99_S, targets
from benchmarks.harness.workload import LATENCY_DAYS, choose_days, paced_produce, simulate_stream

if TYPE_CHECKING:
    from churnwatch.settings import Settings

DRAINED_LINE = "drained: "  # what `churnwatch run --until-drained` prints last
PAUSE_AFTER_DRAIN_S = 3.0  # for the alerts of the last events read
# The full pipeline without its scoring stage: no model, hence no decisions either.
SCORING_OFF_ENV = ("CHURNWATCH_MODEL_DIR=off", "CHURNWATCH_POLICY=off")


@dataclass(frozen=True)
class PipelineOptions:
    """The benchmark's command line, defaults and all (field order: result.json's order).

    ``env`` are CHURNWATCH_NAME=VALUE overrides for the full and latency runs
    (the scoring-off run applies :data:`SCORING_OFF_ENV` after them).
    """

    events: int
    accounts: int
    partitions: int
    processes: int
    seed: int
    rate: int
    latency_seconds: float
    skip_latency: bool
    skip_reference: bool
    skip_one_process: bool
    skip_scoring_off: bool
    skip_replay: bool
    replay_accounts: int
    replay_days: int
    repeat: int
    batch_size: int
    sample_interval: float
    out_dir: Path
    env: Sequence[str]
    keep_state: bool


def _settings(base: Settings, tag: str, state_dir: Path, options: PipelineOptions,
              metrics_port: int, events_topic: str | None = None) -> Settings:
    return isolated_settings(
        base, tag, state_dir, batch_size=options.batch_size, events_topic=events_topic,
        topic_partitions=options.partitions, state_dir=state_dir, metrics_port=metrics_port,
        log_format="json",
    )


def run_full(children: ChildProcesses, base: Settings, options: PipelineOptions,
             state_dir: Path, events_topic: str, produced: int, servers: dict[str, int],
             tag: str, *, processes: int | None = None, env: Sequence[str] = ()) -> Figures:
    """``churnwatch run --until-drained`` over ``events_topic``, sampled while it runs.

    ``processes`` defaults to ``options.processes``; ``env`` are CHURNWATCH_NAME=VALUE
    overrides applied after ``options.env``. Once it has exited, the rows it left
    in PostgreSQL are counted, also per 1,000 valid events (duplicates included,
    as churnwatch counts them).
    """
    processes = processes or options.processes
    overrides = [*options.env, *env]
    port = free_port_block(processes)
    settings = _settings(base, tag, state_dir, options, port, events_topic)
    init_recovery(settings, overrides)
    logs = state_dir / "logs"
    out, err = logs / f"{tag}.out", logs / f"{tag}.err"
    cpu_before = children_cpu_s()
    started = time.perf_counter()
    proc = children.start(churnwatch_argv(processes, until_drained=True),
                          env=child_env(settings, overrides), cwd=state_dir, stdout=out,
                          stderr=err)
    sampler = ClusterSampler(proc, [port + i for i in range(processes)], servers,
                             options.sample_interval).start()
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
    rate, t_first, t_last, busy = timelines.sustained_rate(samples, messages, end_t)
    peak_sum = max((sum(s["rss"].values()) for s in samples), default=0)
    peak_by_role: dict[str, int] = {}
    for s in samples:
        for role, rss in s["rss"].items():
            peak_by_role[role] = max(peak_by_role.get(role, 0), rss)
    assert settings.database_url
    pg_rows = count_rows(settings.database_url, settings.database_schema)
    return {
        "processes": processes,
        "overrides": overrides,
        "settings": {"schema": settings.database_schema, "prefix": settings.redis_key_prefix,
                     "metrics_port": port},
        "redis_key_prefix": settings.redis_key_prefix,
        **counts,
        "pg_rows": pg_rows,
        **rows_per_thousand_events(pg_rows, counts.get("events")),
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
        "cpu_share_busy": timelines.utilisation(samples, t_first, t_last),
        "runqueue_wait_share_busy": timelines.runqueue_waits(samples, t_first, t_last),
        "stage_seconds": samples[-1]["stages"] if samples else {},
        "gc_pauses": samples[-1]["gc_pauses"] if samples else [],
        "stage_seconds_note": "wall time inside each stage or sink write, summed over the "
                              "processes, as of the last /metrics sample before exit",
        "worker_cpu_s_at_last_sample": timelines.worker_cpu_seen(samples),
        "stage_timeline": timelines.stage_timeline(samples),
        "samples": len(samples),
        "timeline": timelines.throughput_timeline(samples),
    }


def _run_reference(children: ChildProcesses, base: Settings, options: PipelineOptions,
                   state_dir: Path, events_topic: str, processes: int, tag: str) -> Figures:
    """The hand-written reference over ``events_topic``, with outputs of its own."""
    settings = isolated_settings(base, tag, state_dir, batch_size=options.batch_size,
                                 events_topic=events_topic, topic_partitions=options.partitions)
    return run_reference(children, settings, processes, state_dir / "logs", tag, options.env)


def _messages_read(ports: list[int]) -> float:
    return sum((r or {}).get("messages", 0.0) for r in (scrape(p) for p in ports))


def run_latency(children: ChildProcesses, base: Settings, options: PipelineOptions,
                state_dir: Path, servers: dict[str, int]) -> Figures:
    """``churnwatch run`` tailing a new topic while a fresh stream is produced at a rate."""
    from churnwatch.topics import ensure_topics

    needed = int(options.rate * options.latency_seconds) + 1
    started = time.perf_counter()
    sim, accounts = simulate_stream(needed, options.seed + 1)
    simulate_s = time.perf_counter() - started
    payment_failed = sum(b'"billing.payment_failed"' in m.value for m in sim.messages)
    print(f"latency stream: {len(sim.messages):,} messages ({accounts:,} accounts, "
          f"{LATENCY_DAYS} days, {payment_failed:,} payment failures) simulated in "
          f"{simulate_s:.1f}s", flush=True)

    port = free_port_block(options.processes)
    settings = _settings(base, "lat", state_dir, options, port)
    init_recovery(settings, options.env)
    assert base.kafka_bootstrap
    warm_up = f"{settings.topics.events}.warm-up"
    ensure_topics(base.kafka_bootstrap, [settings.topics.events], options.partitions)
    ensure_topics(base.kafka_bootstrap, [warm_up], 1)
    logs = state_dir / "logs"
    out, err = logs / "latency.out", logs / "latency.err"
    ports = [port + i for i in range(options.processes)]
    proc = children.start(churnwatch_argv(options.processes, until_drained=False),
                          env=child_env(settings, options.env), cwd=state_dir, stdout=out,
                          stderr=err)
    sampler: ClusterSampler | None = None
    try:
        ready_s = wait_until_ready(proc, ports, err)
        sampler = ClusterSampler(proc, ports, servers, options.sample_interval).start()
        tail = AlertTail(base.kafka_bootstrap, settings.topics.alerts, 1).start()
        produce_from = time.time() - sampler.t0
        produced = paced_produce(sim.messages, base.kafka_bootstrap, settings.topics.events,
                                 options.rate, options.latency_seconds, warm_up)
        produce_end = time.time() - sampler.t0
        at_produce_end = _messages_read(ports)
        # Wait for the pipeline to read everything, then a little for the last alerts.
        deadline = time.perf_counter() + 120
        caught_up_s = None
        while time.perf_counter() < deadline and proc.poll() is None:
            if _messages_read(ports) >= produced["produced"]:
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
    if "1" in tiers:
        tiers["1"]["exact"] = exact_latencies(base.kafka_bootstrap, settings.topics.events,
                                              tail.stop(), sampler.t0 + produce_from)
    read = sum(r["messages"] for r in final if r is not None)
    samples = sampler.samples
    busy = [s for s in samples if produce_from <= s["t"] <= produce_end + (caught_up_s or 0)]
    return {
        "accounts": accounts,
        "days": LATENCY_DAYS,
        "simulated_messages": len(sim.messages),
        "simulate_s": simulate_s,
        "ready_s": ready_s,
        "rate_target": options.rate,
        "seconds": options.latency_seconds,
        **produced,
        "messages_read": int(read),
        "lag_at_produce_end": produced["produced"] - int(at_produce_end),
        "caught_up_after_s": caught_up_s,
        "tiers": tiers,
        "stop_exit_code": code,
        "cpu_share": timelines.utilisation(busy, busy[0]["t"], busy[-1]["t"]) if busy else {},
        "stage_seconds": sum_stages([r["stages"] for r in final if r is not None]),
        "timeline": timelines.latency_timeline(samples, produce_from),
        "ingest_timeline": [
            {**row, "t": round(row["t"] - produce_from, 3)}
            for row in timelines.throughput_timeline(samples)
        ],
    }


def _progress(text: str) -> None:
    print(text, flush=True)


def _run_line(r: int, options: PipelineOptions, label: str, run: Figures) -> None:
    _progress(f"[{r + 1}/{options.repeat}] {label}: {int(run.get('messages') or 0):,} "
              f"messages, {run['wall_s']:.1f}s wall, "
              f"{number(run['events_per_s_sustained'])}/s sustained")


def _median_run(runs: list[Figures]) -> Figures:
    """The medians of repeated runs; timelines stay in the list of runs only."""
    return median_of([{k: v for k, v in run.items() if k != "timeline"} for run in runs])


# The timed runs, in result.json's order: each as "<name>_runs" (every repeat) and
# "<name>" (their medians); also the names of their phases in the wall times.
RUN_NAMES = ("floor", "floor_1", "reference", "reference_1", "full", "full_1", "scoring_off")


def _measure(report: Figures, children: ChildProcesses, options: PipelineOptions,
             state_dir: Path, phases: PhaseTimes) -> None:
    """Simulate, start the stack, produce, and run every phase; figures into ``report``."""
    from churnwatch.localstack import LocalStack
    from churnwatch.settings import Settings
    from churnwatch.simulator import produce, simulate
    from churnwatch.topics import ensure_topics

    days, per_account_day = choose_days(options.events, options.accounts, options.seed)
    with phases.phase("simulate"):
        sim = simulate(accounts=options.accounts, days=days, seed=options.seed)
    simulate_s = phases.seconds("simulate")
    counts = sim.counts()
    _progress(f"simulated {len(sim.messages):,} messages ({options.accounts:,} accounts, {days} "
              f"days, ~{per_account_day:.1f} valid events/account/day) in {simulate_s:.1f}s: "
              f"{counts}")
    stack = LocalStack(Settings(), state_dir / "stack")
    with stack as base:
        assert base.kafka_bootstrap and base.redis_url
        servers = stack.pids
        events_topic = f"bench_events_{uuid.uuid4().hex[:6]}"
        ensure_topics(base.kafka_bootstrap, [events_topic], options.partitions)
        with phases.phase("produce"):
            produced = produce(sim, base.kafka_bootstrap, events_topic, timeout_s=120)
        produce_s = phases.seconds("produce")
        del sim  # its memory back before the measured runs
        _progress(f"produced {produced:,} messages to {events_topic} ({options.partitions} "
                  f"partitions) in {produce_s:.1f}s")
        report["workload"] = {"days": days, "produced": produced, **counts,
                              "simulate_s": simulate_s, "produce_s": produce_s,
                              "events_topic": events_topic}
        runs: dict[str, list[Figures]] = {name: [] for name in RUN_NAMES}
        processes = options.processes
        many = f"{processes} process(es)"
        logs = state_dir / "logs"
        for r in range(options.repeat):
            # P processes, then one (when P > 1) for each kind of run, so a drift of
            # the machine's speed over the repeats touches every figure alike.
            with phases.phase("floor"):
                floor = run_floor(children, base.kafka_bootstrap, events_topic, processes,
                                  options.batch_size, logs, f"floor{r}")
            runs["floor"].append(floor)
            _run_line(r, options, f"floor, {many}", floor)
            if processes > 1:
                with phases.phase("floor"):
                    floor1 = run_floor(children, base.kafka_bootstrap, events_topic, 1,
                                       options.batch_size, logs, f"floor1-{r}")
                runs["floor_1"].append(floor1)
                _run_line(r, options, "floor, 1 process", floor1)
            if not options.skip_reference:
                sizes = (processes, 1) if processes > 1 else (1,)
                for size, name in zip(sizes, ("reference", "reference_1"), strict=False):
                    with phases.phase("reference"):
                        reference = _run_reference(children, base, options, state_dir,
                                                   events_topic, size, f"ref{size}_{r}")
                    runs[name].append(reference)
                    label = "1 process" if size == 1 else many
                    _run_line(r, options, f"reference, {label}", reference)
            with phases.phase("full"):
                full = run_full(children, base, options, state_dir, events_topic, produced,
                                servers, f"full{r}")
            runs["full"].append(full)
            _run_line(r, options, f"full, {many}", full)
            if processes > 1 and not options.skip_one_process:
                with phases.phase("full_1"):
                    full1 = run_full(children, base, options, state_dir, events_topic,
                                     produced, servers, f"full1_{r}", processes=1)
                runs["full_1"].append(full1)
                _run_line(r, options, "full, 1 process", full1)
            if not options.skip_scoring_off:
                with phases.phase("scoring_off"):
                    off = run_full(children, base, options, state_dir, events_topic, produced,
                                   servers, f"off{r}", env=SCORING_OFF_ENV)
                runs["scoring_off"].append(off)
                _run_line(r, options, f"full, scoring and decisions off, {many}", off)
        for name, figures in runs.items():
            if figures:
                report[f"{name}_runs"], report[name] = figures, _median_run(figures)
        report["redis"] = feature_memory(base.redis_url, runs["full"][-1]["redis_key_prefix"])
        if not options.skip_latency:
            _progress(f"latency phase: {options.rate:,} events/s for "
                      f"{options.latency_seconds:g}s")
            with phases.phase("latency"):
                report["latency"] = run_latency(children, base, options, state_dir, servers)
        children.stop_all()
    if not options.skip_replay:  # files in, files out: after the stack, which it needs not
        _progress(f"replay phase: {options.replay_accounts:,} accounts over "
                  f"{options.replay_days} days, {options.processes} process(es)")
        with phases.phase("replay"):
            replay = report["replay"] = run_replay(
                children, accounts=options.replay_accounts, days=options.replay_days,
                seed=options.seed, processes=options.processes, overrides=options.env,
                state_dir=state_dir)
        _progress(f"replay: {replay['messages']:,} messages in {replay['wall_s']:.1f}s wall "
                  f"(simulated in {replay['simulate_s']:.1f}s, untimed)")


def run_pipeline_benchmark(options: PipelineOptions) -> int:
    """Run every phase, print the table, write result.json and chart.png; 0 when done."""
    phases = PhaseTimes()
    out_dir = options.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    _progress(f"python {env['python']}, bytewax {env['bytewax']}, {env['cpu_count']} CPU(s); "
              f"results to {out_dir}")
    state_dir = Path(tempfile.mkdtemp(prefix="cw-bench-run-")).resolve()
    (state_dir / "logs").mkdir()
    children = ChildProcesses()
    report: Figures = {
        "environment": env,
        "arguments": {field.name: json_argument(getattr(options, field.name))
                      for field in dataclasses.fields(options)},
    }
    try:
        _measure(report, children, options, state_dir, phases)
    finally:
        children.stop_all()
        if options.keep_state:
            print(f"state kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)

    report["wall_times"] = phases.figures()
    report["targets"] = targets(report["full"], report["floor"], report.get("latency"),
                                options.rate, report.get("reference"),
                                full_1=report.get("full_1"),
                                scoring_off=report.get("scoring_off"),
                                replay=report.get("replay"))
    print()
    print_table(table(report))
    result_path, chart_path = out_dir / "result.json", out_dir / "chart.png"
    write_result(report, result_path)
    draw_chart(report, chart_path)
    print()
    print(f"wrote {result_path} and {chart_path}")
    return 0
