"""What a :class:`~benchmarks.harness.sampling.ClusterSampler`'s samples say about a run.

Rates, CPU shares and per-sample series, computed from the sample dicts alone
(``t``, ``messages``, ``latency``, ``stages``, ``cpu``, ``wait``, ``servers_cpu``,
``bench_cpu``); nothing here measures anything itself.
"""

from __future__ import annotations

import itertools

from benchmarks.harness.figures import Figures
from benchmarks.harness.quantiles import bucket_delta, bucket_quantile

LATENCY_WINDOW_S = 5.0  # the "p99 over time" of the chart: over this trailing window


def sustained_rate(samples: list[Figures], final: float,
                   end_t: float) -> tuple[float | None, float, float, float]:
    """(rate, t_first, t_last, busy seconds) between the first and last observed progress.

    ``final`` is the run's own message count, ``end_t`` when it exited: the
    counters go away with the processes, so the last sample may never reach it.
    The rate is None when one sample saw the whole run (a run shorter than the
    sampling interval): its rate is unknown, not zero.
    """
    points = [(s["t"], s["messages"]) for s in samples]
    first = next(((t, m) for t, m in points if m > 0), None)
    if first is None:
        return 0.0, 0.0, end_t, 0.0
    last = next(((t, m) for t, m in points if m >= final), None)
    if last is None:  # the counters went away with the processes: the exit bounds it
        last = (end_t, final)
    busy = last[0] - first[0]
    rate = (last[1] - first[1]) / busy if busy > 0 else None
    return rate, first[0], last[0], busy


def throughput_timeline(samples: list[Figures]) -> list[dict[str, float]]:
    """Per sample: input messages so far and the rate since the previous sample."""
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
