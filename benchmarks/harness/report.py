"""What the pipeline benchmark shows: the printed table, ``result.json`` and ``chart.png``.

Also :func:`environment`, the machine and versions every benchmark reports.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from importlib.metadata import version
from pathlib import Path

import orjson

from benchmarks.harness.alert_latency import WARM_UP_S
from benchmarks.harness.figures import Figures
from benchmarks.harness.output_rows import PER_THOUSAND_FIGURES
from benchmarks.harness.prometheus import GC_STAGE
from benchmarks.harness.quantiles import Buckets, largest_at_most, ratio
from benchmarks.harness.targets import (
    COUNTED,
    TARGET_EVENTS_PER_S,
    TARGET_TIER1_P99_S,
    counts_agree,
)
from benchmarks.harness.timelines import LATENCY_WINDOW_S

DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "results"
ROLLING_S = 5.0  # the chart's throughput average


def environment(*, detailed: bool = False) -> Figures:
    """Python, platform, CPUs and the versions that set the speed.

    ``detailed`` adds the Python implementation and redis-py, which the
    in-process benchmark also exercises.
    """
    env: Figures = {"python": platform.python_version()}
    if detailed:
        env["implementation"] = platform.python_implementation()
    env.update(
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        cpus_usable=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        bytewax=version("bytewax"),
        confluent_kafka=version("confluent-kafka"),
    )
    if detailed:
        env["redis_py"] = version("redis")
    return env


def number(value: float | None, fmt: str = "{:,.0f}") -> str:
    """``value`` formatted, or "-" when it is unknown."""
    return "-" if value is None else fmt.format(value)


def duration(seconds: float) -> str:
    """``"80.3 s (1 min 20 s)"``: seconds, and minutes from a minute on."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s"
    return f"{seconds:,.1f} s ({whole // 60} min {whole % 60} s)"


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
         f"{number(floor['events_per_s_sustained'])} / {number(floor['events_per_s_wall'])}"),
    ]
    if floor1 is not None:
        rows.append(("  floor, 1 process: sustained / wall",
                     f"{number(floor1['events_per_s_sustained'])} / "
                     f"{number(floor1['events_per_s_wall'])}"))
    reference, reference1 = report.get("reference"), report.get("reference_1")
    if reference is not None:
        rows.append((f"  reference (hand-written loop), {int(reference['processes'])} "
                     f"process(es): sustained / wall",
                     f"{number(reference['events_per_s_sustained'])} / "
                     f"{number(reference['events_per_s_wall'])}"))
    if reference1 is not None:
        rows.append(("  reference (hand-written loop), 1 process: sustained / wall",
                     f"{number(reference1['events_per_s_sustained'])} / "
                     f"{number(reference1['events_per_s_wall'])}"))
    full1, scoring_off = report.get("full_1"), report.get("scoring_off")
    many = f"{args['processes']} process(es)"
    runs = [(f"full, {many}", full), ("full, 1 process", full1),
            (f"full, scoring and decisions off, {many}", scoring_off)]
    runs = [(label, run) for label, run in runs if run is not None]
    rows += [(f"  {label}: sustained / wall", _rates(run)) for label, run in runs]
    rows += [
        ("  full run: wall / busy", f"{full['wall_s']:.1f} s / {full['busy_s']:.1f} s"),
        ("  full / floor: sustained / wall", _shares(full, floor, "{:.0%}")),
    ]
    if full1 is not None:
        rows.append((f"  full, {many} / 1 process: sustained / wall",
                     _shares(full, full1, "{:.2f}")))
    if scoring_off is not None:
        rows.append(("  full / scoring and decisions off: sustained / wall",
                     _shares(full, scoring_off, "{:.0%}")))
    if reference is not None:
        rows += _reference_rows(full, reference)
    rows.append(("  drained: messages == produced", "; ".join(
        f"{label} {'yes' if run['messages_match_produced'] else 'NO'} "
        f"({number(run.get('messages'))})" for label, run in runs)))
    if len(runs) > 1:
        rows.append(("  same counts as full: messages / valid / duplicates / DLQ",
                     "; ".join(_agreement(label, run, full) for label, run in runs[1:])))
    rows.append(("PostgreSQL rows: risk_scores / decisions / alerts (per 1,000 valid events)",
                 ""))
    rows += [(f"  {label}", _output_rows(run)) for label, run in runs]
    latency = report.get("latency")
    if latency is not None:
        rows += _latency_rows(latency)
    replay = report.get("replay")
    if replay is not None:
        rows += _replay_rows(replay)
    redis_ = report["redis"]
    rss = ", ".join(f"{role} {mib:,.0f}" for role, mib in full["peak_rss_mib"].items())
    rows += [
        ("memory", ""),
        ("  peak RSS, full run: sum", f"{full['peak_rss_sum_mib']:,.0f} MiB"),
        ("  peak RSS per process", f"{rss} (MiB)"),
        ("  Redis bytes/account (MEMORY USAGE)",
         f"{number(redis_.get('bytes_per_account'))} B (mean of {redis_['sampled']} of "
         f"{redis_['hashes']:,} hashes)"),
        ("CPU while busy, full run (1.0 = one core)", ""),
    ]
    waits = full.get("runqueue_wait_share_busy") or {}
    for role, share in sorted(full["cpu_share_busy"].items()):
        wait = waits.get(role)
        extra = f" (+ {wait:.2f} runnable, waiting for a CPU)" if wait is not None else ""
        rows.append((f"  {role}", f"{share:.2f}{extra}"))
    rows += _stage_rows(full)
    if latency is not None and latency.get("cpu_share"):
        shares = ", ".join(f"{role} {share:.2f}" for role, share
                           in sorted(latency["cpu_share"].items()) if share >= 0.01)
        rows.append(("CPU during the latency phase (cores)", shares))
    wall_times = report.get("wall_times")
    if wall_times is not None:
        rows.append(("wall time per phase (summed over repeats)",
                     f"total {wall_times['total_s']:,.1f} s"))
        rows += [(f"  {_phase_label(name, args['processes'])}", f"{seconds:,.1f} s")
                 for name, seconds in wall_times["phases_s"].items()]
    rows.append(("targets", ""))
    rows += [_target_row(row) for row in report["targets"]]
    return rows


def _rates(run: Figures) -> str:
    return f"{number(run['events_per_s_sustained'])} / {number(run['events_per_s_wall'])}"


def _shares(run: Figures, other: Figures, fmt: str) -> str:
    """``run``'s sustained and wall rates as a share (or multiple) of ``other``'s."""
    sustained = ratio(run["events_per_s_sustained"], other["events_per_s_sustained"])
    wall = ratio(run["events_per_s_wall"], other["events_per_s_wall"])
    return f"{number(sustained, fmt)} / {number(wall, fmt)}"


def _agreement(label: str, run: Figures, full: Figures) -> str:
    """"<label> yes", or "<label> NO" with both runs' counts (:data:`COUNTED`)."""
    if counts_agree(run, full):
        return f"{label} yes"
    ours, theirs = ([number(r.get(name)) for name in COUNTED] for r in (run, full))
    return f"{label} NO ({' / '.join(ours)}; full {' / '.join(theirs)})"


def _output_rows(run: Figures) -> str:
    """Rows of each output table, then the same per 1,000 valid events."""
    counts = run.get("pg_rows") or {}
    rows = " / ".join(number(counts.get(table)) for table in PER_THOUSAND_FIGURES)
    per_1000 = " / ".join(number(run.get(figure), "{:,.1f}")
                          for figure in PER_THOUSAND_FIGURES.values())
    return f"{rows} ({per_1000})"


_PHASE_LABELS = {
    "simulate": "simulate (untimed)",
    "produce": "produce (untimed)",
    "floor": "floor, {many}{and_one}",
    "reference": "reference, {many}{and_one}",
    "full": "full, {many}",
    "full_1": "full, 1 process",
    "scoring_off": "full, scoring and decisions off, {many}",
    "latency": "latency phase",
    "replay": "replay phase (its simulation included)",
}


def _phase_label(name: str, processes: int) -> str:
    and_one = " and 1 process" if processes > 1 else ""
    return _PHASE_LABELS.get(name, name).format(many=f"{processes} process(es)", and_one=and_one)


def _reference_rows(full: Figures, reference: Figures) -> list[tuple[str, str]]:
    """The full pipeline as a share of the reference, and whether both counted alike."""
    sustained = ratio(full["events_per_s_sustained"], reference["events_per_s_sustained"])
    wall = ratio(full["events_per_s_wall"], reference["events_per_s_wall"])
    # The same job over the same messages: the counts that do not depend on the
    # engine should agree (the reference's dedupe window is days, not 24 h).
    pairs = [("messages", "messages"), ("valid", "events"), ("duplicates", "duplicates"),
             ("dead_letters", "dead_letters")]
    ours = [int(reference.get(a) or 0) for a, _ in pairs]
    theirs = [int(full.get(b) or 0) for _, b in pairs]
    shown = " / ".join(f"{n:,}" for n in ours)
    agreement = (f"yes ({shown})" if ours == theirs
                 else f"NO: reference {shown}, full {' / '.join(f'{n:,}' for n in theirs)}")
    return [
        ("  full / reference: sustained / wall",
         f"{number(sustained, '{:.0%}')} / {number(wall, '{:.0%}')}"),
        ("  reference == full: messages / valid / duplicates / DLQ", agreement),
        ("  reference: tier-1 alerts / Redis hashes written",
         f"{int(reference.get('alerts') or 0):,} / "
         f"{int(reference.get('hashes_written') or 0):,} "
         f"(flushed every {reference['flush_interval_s']:g} s)"),
    ]


def _replay_rows(replay: Figures) -> list[tuple[str, str]]:
    """The replay of a long history from a file: its time, rate and outputs."""
    outputs = replay["outputs"]
    per_1000 = number(replay.get("score_rows_per_1000_events"), "{:,.1f}")
    return [
        (f"churnwatch replay of a file ({replay['days']} days from {replay['start']}, "
         f"{replay['accounts']:,} accounts, {replay['processes']} process(es))", ""),
        ("  messages / simulated in (untimed)",
         f"{replay['messages']:,} / {replay['simulate_s']:.1f} s"),
        ("  wall / messages per s", f"{duration(replay['wall_s'])} / "
                                    f"{number(replay['events_per_s_wall'])}"),
        ("  scores / decisions / alerts (scores per 1,000 events)",
         f"{outputs.get('scores', 0):,} / {outputs.get('decisions', 0):,} / "
         f"{outputs.get('alerts', 0):,} ({per_1000})"),
    ]


def _latency_rows(latency: Figures) -> list[tuple[str, str]]:
    rows = [
        ("alert latency since ingest (bucket-interpolated)", ""),
        ("  produce rate: target / achieved",
         f"{latency['rate_target']:,}/s / {number(latency['achieved_rate'])}/s "
         f"for {latency['produce_s']:.1f} s ({latency['produced']:,} messages)"),
        ("  lag at end of produce / caught up after",
         f"{latency['lag_at_produce_end']:,} msgs / "
         f"{number(latency['caught_up_after_s'], '{:.1f} s')}"),
    ]
    for tier in ("1", "2"):
        figures = latency["tiers"].get(tier)
        if figures is None:
            rows.append((f"  tier {tier}: p50 / p99", "no alerts with an ingest time"))
            continue
        rows.append((
            f"  tier {tier}: p50 / p99",
            f"{_ms(figures['p50_s'])} / {_ms(figures['p99_s'])} ({figures['alerts']:,} "
            f"alerts; {number(figures['share_le_250ms'], '{:.1%}')} <= 250 ms)",
        ))
        exact = figures.get("exact")
        if exact:
            rows.append((
                f"  tier {tier} exact (from the topics): p50 / p99 / max",
                f"{_ms(exact['p50_s'])} / {_ms(exact['p99_s'])} / {_ms(exact['max_s'])} "
                f"({exact['alerts']:,} alerts; "
                f"{number(exact['share_le_250ms'], '{:.1%}')} <= 250 ms)",
            ))
            rows.append((
                f"  tier {tier} exact after the first {WARM_UP_S:g} s: p99",
                f"{_ms(exact['steady_p99_s'])} ({exact['steady_alerts']:,} alerts); slowest "
                + ", ".join(f"{_ms(latency)} at {t:g} s" for t, latency in exact["slowest"]),
            ))
    return rows


def _stage_rows(full: Figures) -> list[tuple[str, str]]:
    stages = full.get("stage_seconds") or {}
    if not stages:
        return []
    worker_cpu = full.get("worker_cpu_s_at_last_sample") or 0.0
    rows = [("time inside stages, full run (summed over processes)",
             f"workers' CPU {worker_cpu:,.1f} s" if worker_cpu else "-")]
    # the collector's pauses fall inside the stages: listed after them, not summed
    inside = {name: seconds for name, seconds in stages.items() if name != GC_STAGE}
    listed = [*inside.items(), *([(GC_STAGE, stages[GC_STAGE])] if GC_STAGE in stages else [])]
    for name, seconds in listed:
        share = f" ({seconds / worker_cpu:.0%} of workers' CPU)" if worker_cpu else ""
        if name == GC_STAGE:
            share += _pauses(full.get("gc_pauses") or [])
        rows.append((f"  {name}", f"{seconds:,.1f} s{share}"))
    if worker_cpu:
        rest = worker_cpu - sum(inside.values())
        rows.append(("  outside these (Bytewax, Kafka input, startup)",
                     f"{rest:,.1f} s ({rest / worker_cpu:.0%})"))
    return rows


def _pauses(buckets: Buckets) -> str:
    """``; N pauses, the longest <= X ms`` of the collector's pause histogram."""
    longest = largest_at_most(buckets)
    if longest is None:
        return ""
    bound = "over the last bucket" if math.isinf(longest) else f"<= {_ms(longest)}"
    return f"; {buckets[-1][1]:,.0f} pauses, the longest {bound}"


_TARGET_FORMATS = {
    "events/s": "{:,.0f}/s",
    "share": "{:.0%}",
    "ratio": "{:.2f}",
    "rows/1000 events": "{:,.1f} rows/1000 events",
}


def _target_row(row: Figures) -> tuple[str, str]:
    value, unit = row["value"], row["unit"]
    if value is None:
        shown = "-"
    elif unit == "s":
        shown = _ms(value)
    elif unit == "duration":
        shown = duration(value)
    else:
        shown = _TARGET_FORMATS.get(unit, "{}").format(value)
    verdict = "n/a" if row["met"] is None else "met" if row["met"] else "NOT met"
    return f"  {row['target']}", f"{shown}: {verdict}"


def print_table(rows: list[tuple[str, str]]) -> None:
    """Labels padded to one column; headings (empty value) on their own."""
    width = max(len(label) for label, value in rows if value)
    for label, value in rows:
        print(label if not value else f"{label.ljust(width)}  {value}")


def write_result(report: Figures, path: Path) -> None:
    """``report`` as indented JSON (non-string keys such as bucket bounds allowed)."""
    path.write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                     default=str) + b"\n"
    )


def draw_chart(report: Figures, path: Path) -> None:
    """Throughput over each full run; with a latency phase, tier-1/2 p99 over it too."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to the file only
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
    for name, style, label in (("full_1", "-.", "full pipeline, 1 process"),
                               ("scoring_off", "--", f"full pipeline, scoring and decisions "
                                                     f"off, {processes} process(es)")):
        run = report.get(name)
        if run and run.get("events_per_s_sustained"):
            top.axhline(run["events_per_s_sustained"], color="tab:purple", linestyle=style,
                        label=f"{label}, sustained")
    reference = report.get("reference")
    if reference and reference.get("events_per_s_sustained"):
        top.axhline(reference["events_per_s_sustained"], color="tab:green", linestyle="--",
                    label=f"hand-written reference, {int(reference['processes'])} "
                          f"process(es), sustained")
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


def json_argument(value: object) -> object:
    """A benchmark option as result.json records it (paths as text)."""
    return str(value) if isinstance(value, Path) else value
