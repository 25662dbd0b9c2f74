"""Scoring and decisions benchmark: onnxruntime latency, the decision engine's cost per
decision, and events/s with scoring off, scoring on, and scoring plus decisions.

    python -m benchmarks.bench_scoring [--accounts 2000] [--days 10] [--repeat 3]

The end-to-end figures run the production operators over a simulated JSONL
history with ``churnwatch replay`` (no broker: the differences between the
runs are the costs of scoring and of deciding), median of ``--repeat`` runs
each, the three configurations interleaved so drift hits them alike.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks.harness import run_scoring_benchmark


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    run_scoring_benchmark(args.accounts, args.days, args.repeat)


if __name__ == "__main__":
    main()
