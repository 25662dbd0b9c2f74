"""The command line of ``python -m benchmarks.bench_pipeline``."""

from __future__ import annotations

import dataclasses

from benchmarks.bench_pipeline import parse_args
from benchmarks.harness.pipeline import PipelineOptions


def _options(argv: list[str]) -> PipelineOptions:
    args = parse_args(argv)
    return PipelineOptions(**{f.name: getattr(args, f.name)
                              for f in dataclasses.fields(PipelineOptions)})


def test_every_run_is_on_by_default() -> None:
    options = _options([])
    assert (options.skip_reference, options.skip_one_process, options.skip_scoring_off,
            options.skip_latency, options.skip_replay) == (False, False, False, False, False)
    # the replay's history is the issue's: 5,000 accounts over 6 months
    assert (options.replay_accounts, options.replay_days) == (5_000, 182)


def test_the_one_process_and_scoring_off_runs_can_be_skipped() -> None:
    options = _options(["--skip-one-process", "--skip-scoring-off"])
    assert (options.skip_one_process, options.skip_scoring_off) == (True, True)
    assert options.skip_reference is False
