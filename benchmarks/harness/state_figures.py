"""What the state benchmark concludes from its samples, and how it shows them.

Pure functions over the sampler's output and the figures of a run: RSS of a
cluster, bytes per account, when the RSS of a restarted run came back, the
targets of issue #11 item 7 and the printed table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmarks.harness.figures import Figures
from benchmarks.harness.prometheus import GC_STAGE
from benchmarks.harness.quantiles import largest_at_most
from benchmarks.harness.report import number

# Issue #11 item 7: "bounded state and fast restart at scale", at 1M accounts.
TARGET_RSS_PER_ACCOUNT_BYTES = 2048.0  # "<= 2 KB per account of RSS", read as 2 KiB
TARGET_RESTART_S = 10.0  # kill -9, then time to first output
# A restarted run has "recovered its state" once its RSS is back to this share of
# the RSS it had just before the kill.
RSS_RECOVERED_SHARE = 0.9
# RSS counts as settled when it moved by at most this share over the last window.
RSS_STEADY_SHARE = 0.01

RssPoint = tuple[float, int]
"""(seconds since the run started, RSS bytes of the whole process tree)."""


def rss_points(samples: Sequence[Figures], offset_s: float = 0.0) -> list[RssPoint]:
    """(t + ``offset_s``, summed RSS) of every sample that saw a process."""
    return [(s["t"] + offset_s, sum(s["rss"].values())) for s in samples if s.get("rss")]


def peak_by_role(samples: Sequence[Figures]) -> dict[str, int]:
    """Each process's own peak RSS, by role (``process 0``, ``cluster parent`` ...)."""
    peaks: dict[str, int] = {}
    for sample in samples:
        for role, rss in sample.get("rss", {}).items():
            peaks[role] = max(peaks.get(role, 0), rss)
    return dict(sorted(peaks.items()))


def peak(points: Sequence[RssPoint]) -> int | None:
    """The highest summed RSS, None without samples."""
    return max((rss for _, rss in points), default=None)


def per_account(value: float | None, accounts: int) -> float | None:
    """``value`` / ``accounts``; None when either is unknown or zero."""
    if value is None or accounts <= 0:
        return None
    return value / accounts


def first_at_least(points: Sequence[RssPoint], threshold: float) -> float | None:
    """The first time the RSS reached ``threshold``; None if it never did."""
    return next((t for t, rss in points if rss >= threshold), None)


def steady_since(points: Sequence[RssPoint], window_s: float,
                 share: float = RSS_STEADY_SHARE) -> bool:
    """Whether the RSS moved by at most ``share`` of its last value over the last
    ``window_s`` seconds (and the samples cover that long)."""
    if not points or points[-1][0] - points[0][0] < window_s:
        return False
    last_t, last = points[-1]
    recent = [rss for t, rss in points if t >= last_t - window_s]
    return max(recent) - min(recent) <= share * last


def settled_at(points: Sequence[RssPoint], share: float = RSS_STEADY_SHARE) -> float | None:
    """The first time after which the RSS stays within ``share`` of its last value."""
    if not points:
        return None
    last = points[-1][1]
    settled = None
    for t, rss in points:
        if abs(rss - last) > share * last:
            settled = None
        elif settled is None:
            settled = t
    return settled


def compact_timeline(points: Sequence[RssPoint], step_s: float = 1.0) -> list[Figures]:
    """At most one point per ``step_s`` (the last), as {"t", "rss_mib"}, for result JSON."""
    kept: dict[int, RssPoint] = {}
    for t, rss in points:
        kept[int(t // step_s)] = (t, rss)
    return [{"t": round(t, 2), "rss_mib": round(rss / 2**20, 1)} for t, rss in kept.values()]


def state_targets(rss_per_account: float | None, first_output_s: float | None) -> list[Figures]:
    """One row per target: ``target``, ``value``, ``unit`` and ``met`` (None: unknown)."""
    return [
        {"target": f"<= {TARGET_RSS_PER_ACCOUNT_BYTES:,.0f} B of RSS per account "
                   "(peak minus empty topic)",
         "value": rss_per_account, "unit": "B",
         "met": None if rss_per_account is None
         else rss_per_account <= TARGET_RSS_PER_ACCOUNT_BYTES},
        {"target": f"restart <= {TARGET_RESTART_S:g} s (kill -9, then the first output: "
                   "the probe's tier-1 alert on Kafka)",
         "value": first_output_s, "unit": "s",
         "met": None if first_output_s is None else first_output_s <= TARGET_RESTART_S},
    ]


def _mib(value: float | None) -> str:
    return number(None if value is None else value / 2**20, "{:,.1f} MiB")


def _bytes(value: float | None) -> str:
    return number(value, "{:,.0f} B")


def _seconds(value: float | None) -> str:
    return number(value, "{:,.1f} s")


def _longest(bound: float | None) -> str:
    """A pause histogram's bound on its longest pause."""
    if bound is None:
        return "-"
    return "over the last bucket" if math.isinf(bound) else f"{bound * 1000:,.0f} ms"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "unknown"}[met]


def _code_rows(code: Figures | None) -> list[tuple[str, str]]:
    """The commit measured, its uncommitted changes, and a warning if the code changed
    while the benchmark ran (its runs then timed different code)."""
    if not code or not code.get("at_start"):
        return []
    start = code["at_start"]
    commit = (start.get("commit") or "?")[:10]
    modified = start.get("modified") or []
    rows = [("  code (git)", f"{commit}" + (f" + {len(modified)} modified file(s): "
                                           f"{', '.join(modified)}" if modified else ""))]
    if code.get("unchanged") is False:
        end = code.get("at_end") or {}
        rows.append(("  WARNING: the code changed during the run",
                     f"now {(end.get('commit') or '?')[:10]} + "
                     f"{len(end.get('modified') or [])} modified file(s)"))
    return rows


def state_table(report: Figures) -> list[tuple[str, str]]:
    """(label, value) rows for :func:`~benchmarks.harness.report.print_table`; an empty
    value marks a section heading."""
    env, work, args = report["environment"], report["workload"], report["arguments"]
    base, load, restart = report["baseline"], report["load"], report["restart"]
    redis, recovery = report["redis"], report["recovery"]
    accounts = args["accounts"]
    snaps = recovery.get("snapshots") or {}
    rows: list[tuple[str, str]] = [
        ("machine", ""),
        ("  CPUs (usable) / python / bytewax",
         f"{env['cpu_count']} ({env['cpus_usable']}) / {env['python']} / {env['bytewax']}"),
        *_code_rows(report.get("code")),
        ("workload", ""),
        ("  accounts x events per account", f"{accounts:,} x {args['events_per_account']} = "
                                            f"{work['produced']:,} messages"),
        ("  partitions / processes / snapshot interval",
         f"{args['partitions']} / {args['processes']} / {work['snapshot_interval_s']:g} s"),
        ("  generate + produce (untimed)",
         f"{_seconds(work['produce_s'])} ({number(work['produce_rate'])}/s)"),
        *([("  setting overrides (not defaults!)", " ".join(args["env"]))]
          if args["env"] else []),
        ("memory (RSS, summed over the run's processes)", ""),
        ("  empty topic (baseline), peak", _mib(base["peak_rss_bytes"])),
        ("  all accounts read, peak", _mib(load["peak_rss_bytes"])),
        ("  all accounts read, settled before the kill", _mib(load["settled_rss_bytes"])),
        ("  per account: (peak - baseline) / accounts",
         _bytes(load["rss_per_account_bytes"])),
        ("  per account: (settled - baseline) / accounts",
         _bytes(load["settled_rss_per_account_bytes"])),
        ("  every message read (input counter)", _seconds(load["read_s"])),
        ("  every message in a committed snapshot / rate",
         f"{_seconds(load['snapshotted_s'])} / {number(load['messages_per_s'])} messages/s"),
        ("  garbage collector: pauses in all / how many / the longest (at most)",
         f"{_seconds(load.get('gc_pause_s'))} / {number(load.get('gc_pauses'))} / "
         f"{_longest(load.get('gc_longest_s'))}"),
        ("state on disk (recovery directory)", ""),
        ("  files, allocated / per account",
         f"{_mib(recovery['size']['allocated_bytes'])} / "
         f"{_bytes(recovery['allocated_bytes_per_account'])}"),
        ("  live snapshots (newest per key) / per account",
         f"{_mib(snaps.get('live_bytes'))} / {_bytes(recovery.get('live_bytes_per_account'))}"),
    ]
    for step, figures in (snaps.get("live_by_step") or {}).items():
        rows.append((f"    {step}", f"{figures['keys']:,} keys, {_mib(figures['bytes'])}"))
    rows.append(("    log files they name / all the logs' files (shards' and absence trackers')",
                 f"{_mib(snaps.get('shard_log_live_bytes'))} / "
                 f"{_mib(snaps.get('shard_log_bytes'))}"))
    rows += [
        ("  every snapshot kept / epochs kept",
         f"{_mib(snaps.get('kept_bytes'))} / {snaps.get('oldest_snap_epoch')}.."
         f"{snaps.get('newest_snap_epoch')}"),
        ("Redis", ""),
        ("  used_memory growth / per account",
         f"{_mib(redis.get('used_memory_growth'))} / "
         f"{_bytes(redis.get('used_memory_per_account'))}"),
        ("  feature hashes / MEMORY USAGE per hash",
         f"{number(redis.get('hashes'))} / {_bytes(redis.get('bytes_per_account'))}"),
        ("restart (kill -9 after a snapshot, then one decisive event)", ""),
        ("  first /metrics answer", _seconds(restart.get("metrics_s"))),
        ("  /readyz 200", _seconds(restart.get("ready_s"))),
        ("  tier-1 alert on Kafka (first output; by its timestamp)",
         f"{_seconds(restart.get('kafka_alert_s'))} "
         f"({_seconds(restart.get('kafka_alert_timestamp_s'))})"),
        ("  tier-1 alert row in PostgreSQL (after the account's state)",
         _seconds(restart.get("postgres_alert_s"))),
        (f"  RSS back to {RSS_RECOVERED_SHARE:.0%} of before the kill "
         f"({_mib(restart.get('rss_before_kill_bytes'))})",
         _seconds(restart.get("rss_recovered_s"))),
        ("  RSS settled after", _seconds(restart.get("rss_settled_s"))),
        ("  RSS peak / at the end",
         f"{_mib(restart.get('peak_rss_bytes'))} / {_mib(restart.get('rss_at_end_bytes'))}"),
        ("  messages read after the restart", number(restart.get("messages_read"))),
        ("targets", ""),
    ]
    for row in report["targets"]:
        value = _bytes(row["value"]) if row["unit"] == "B" else _seconds(row["value"])
        rows.append((f"  {row['target']}", f"{value}: {_verdict(row['met'])}"))
    return rows


def collector_pauses(samples: Sequence[Figures]) -> Figures:
    """The garbage collector's pauses over a run, from its last ``/metrics`` sample:
    seconds in all, how many, and the bucket bound the longest was at or below."""
    last = samples[-1] if samples else {}
    buckets = last.get("gc_pauses") or []
    return {"gc_pause_s": last.get("stages", {}).get(GC_STAGE),
            "gc_pauses": buckets[-1][1] if buckets else None,
            "gc_longest_s": largest_at_most(buckets)}
