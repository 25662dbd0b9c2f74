"""Scoring benchmark: onnxruntime latency per call and per row, and events/s with scoring on/off.

    python benchmarks/scoring.py [--accounts 2000] [--days 10] [--repeat 3]

The end-to-end figure runs the production operators over a simulated JSONL
history with ``churnwatch replay`` (no broker: the difference between the two
runs is the cost of scoring), median of ``--repeat`` runs each.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's
# name would shadow the `scoring` package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import statistics
import tempfile
import time

import numpy as np

from churnwatch.settings import Settings
from churnwatch.simulator import simulate, write_jsonl
from dataflows.replay import replay
from featurestore.definitions import load_definitions
from scoring.model import load_model


def model_latency(repeat: int = 500) -> dict[int, tuple[float, float]]:
    feature_set = load_definitions()
    model = load_model(Settings().model_dir, feature_set.version, feature_set.names)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    out = {}
    for batch in (1, 10, 100, 1000, 10000):
        matrix = rng.random((batch, len(feature_set.names)), dtype=np.float32) * 10
        model.score(matrix)  # warm up
        samples = []
        for _ in range(repeat if batch < 10000 else 50):
            started = time.perf_counter()
            model.score(matrix)
            samples.append(time.perf_counter() - started)
        per_call = statistics.median(samples)
        out[batch] = (per_call * 1e6, per_call / batch * 1e9)
    return out


def replay_rate(history: Path, settings: Settings, repeat: int) -> tuple[float, int]:
    rates, scores = [], 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            counts = replay(history, Path(out), settings)
            elapsed = time.perf_counter() - started
        lines = sum(1 for _ in history.open("rb"))
        rates.append(lines / elapsed)
        scores = counts["scores"]
    return statistics.median(rates), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print("onnxruntime, the shipped model, one call (median):")
    print(f"  {'batch':>6}  {'us/call':>10}  {'ns/row':>10}")
    for batch, (per_call_us, per_row_ns) in model_latency().items():
        print(f"  {batch:>6}  {per_call_us:>10.1f}  {per_row_ns:>10.1f}")

    with tempfile.TemporaryDirectory() as directory:
        history = Path(directory) / "history.jsonl"
        write_jsonl(simulate(accounts=args.accounts, days=args.days, seed=7), history)
        base = Settings(recovery_dir=None)
        off, _ = replay_rate(history, base.replace(model_dir=None), args.repeat)
        on, scores = replay_rate(history, base, args.repeat)
    print(f"\nreplay of {args.accounts} accounts x {args.days} days (median of {args.repeat}):")
    print(f"  scoring off  {off:>10,.0f} events/s")
    print(f"  scoring on   {on:>10,.0f} events/s  ({scores:,} scores, debounce 30 min)")
    print(f"  on / off     {on / off:>10.2f}")


if __name__ == "__main__":
    main()
