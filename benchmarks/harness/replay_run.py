"""The pipeline benchmark's replay phase: ``churnwatch replay`` of a long, busy history.

The issue's replay target is set on a history of its own shape, not the 7-day
topic's: 5,000 accounts over 182 days from 2026-05-01 (about 6.2M messages),
the history on which every event used to be a score row (about 700 per 1,000
events). :func:`run_replay` has ``churnwatch simulate`` write it to a JSONL file
(untimed), then times ``churnwatch replay --events F --out D --processes P``
from its start to its exit, and counts what the replay wrote: its score rows
per 1,000 events are the scores-on-change target's busy history.

Both run as the CLI runs for a user (this interpreter, the shipped defaults),
with the benchmark's ``--env`` overrides applied; the replay reads the file, so
no server takes part.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness.churnwatch_runs import child_env
from benchmarks.harness.figures import Figures
from benchmarks.harness.processes import ChildProcesses, tail_text

REPLAY_START = "2026-05-01"  # the history's first day: it ends in the past, as it must
SIMULATED_LINE = "wrote "  # churnwatch simulate: "wrote N messages to F"
REPLAYED_LINE = "replayed "  # churnwatch replay: "replayed F into D ...: alerts.jsonl N, ..."


def output_counts(line: str) -> dict[str, int]:
    """``{"scores": N, ...}`` of the replay's last line (``...: scores.jsonl N, ...``)."""
    _, _, listed = line.rpartition(": ")
    counts: dict[str, int] = {}
    for item in listed.split(", "):
        name, _, count = item.partition(".jsonl ")
        if not count.strip().isdigit():
            msg = f"not a replay's output counts: {line!r}"
            raise ValueError(msg)
        counts[name.strip()] = int(count)
    return counts


def replay_figures(messages: int, counts: dict[str, int], wall_s: float) -> Figures:
    """The replay's figures. Its events are the messages less the dead letters
    (duplicates included, as the full runs count them)."""
    events = messages - counts.get("dead_letters", 0)
    scores = counts.get("scores", 0)
    return {
        "messages": messages,
        "events": events,
        "outputs": counts,
        "wall_s": wall_s,
        "events_per_s_wall": messages / wall_s if wall_s > 0 else None,
        "score_rows_per_1000_events": 1000 * scores / events if events > 0 else None,
    }


def run_replay(children: ChildProcesses, *, accounts: int, days: int, seed: int,
               processes: int, overrides: Sequence[str], state_dir: Path) -> Figures:
    """Simulate the history into a file, then time its replay with ``processes``."""
    env = child_env(None, overrides)  # the shipped defaults, as a user's replay
    logs = state_dir / "logs"
    history, out = state_dir / "replay-history.jsonl", state_dir / "replay-out"
    started = time.perf_counter()
    simulated = _last_line(children, [
        sys.executable, "-m", "churnwatch", "simulate", "--accounts", str(accounts),
        "--days", str(days), "--start", REPLAY_START, "--seed", str(seed),
        "--out", str(history)], env, state_dir, logs / "replay-simulate", SIMULATED_LINE)
    simulate_s = time.perf_counter() - started
    messages = int(simulated.split()[1])
    started = time.perf_counter()
    replayed = _last_line(children, [
        sys.executable, "-m", "churnwatch", "replay", "--events", str(history),
        "--out", str(out), "--processes", str(processes)], env, state_dir,
        logs / "replay", REPLAYED_LINE)
    wall_s = time.perf_counter() - started
    history.unlink()  # a few GB of disk back
    return {
        "accounts": accounts,
        "days": days,
        "start": REPLAY_START,
        "processes": processes,
        "simulate_s": simulate_s,
        **replay_figures(messages, output_counts(replayed), wall_s),
    }


def _last_line(children: ChildProcesses, argv: list[str], env: dict[str, str], cwd: Path,
               log: Path, prefix: str) -> str:
    """Run ``argv`` to its end; its last line of output starting with ``prefix``."""
    out, err = log.with_suffix(".out"), log.with_suffix(".err")
    code = children.start(argv, env=env, cwd=cwd, stdout=out, stderr=err).wait()
    if code != 0:
        msg = f"{' '.join(argv[2:4])} exited with {code}:\n{tail_text(err)}"
        raise RuntimeError(msg)
    lines = [line for line in out.read_text().splitlines() if line.startswith(prefix)]
    if not lines:
        msg = f"no '{prefix.strip()}' line from {' '.join(argv[2:4])}:\n{tail_text(out)}"
        raise RuntimeError(msg)
    return lines[-1]
