"""What the pipeline benchmark's replay phase reads of the CLI's output."""

from __future__ import annotations

import pytest

from benchmarks.harness.churnwatch_runs import child_env
from benchmarks.harness.replay_run import output_counts, replay_figures


def test_the_replay_s_counts_are_read_from_its_last_line() -> None:
    line = ("replayed /tmp/h.jsonl into /tmp/out with 2 processes: alerts.jsonl 40, "
            "scores.jsonl 259346, dead_letters.jsonl 12321")
    assert output_counts(line) == {"alerts": 40, "scores": 259_346, "dead_letters": 12_321}


def test_a_line_without_counts_is_refused() -> None:
    with pytest.raises(ValueError, match="not a replay's output counts"):
        output_counts("replayed /tmp/h.jsonl into /tmp/out: nothing")


def test_score_rows_are_counted_per_1000_events_less_the_dead_letters() -> None:
    figures = replay_figures(10_100, {"scores": 420, "dead_letters": 100}, 20.0)
    assert figures["events"] == 10_000
    assert figures["score_rows_per_1000_events"] == pytest.approx(42.0)
    assert figures["events_per_s_wall"] == pytest.approx(505.0)


def test_the_replay_runs_with_the_defaults_and_the_overrides_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHURNWATCH_SHARDS", "16")  # this shell's: not the replay's
    env = child_env(None, ["CHURNWATCH_SCORE_MIN_CHANGE=0.1"])
    assert "CHURNWATCH_SHARDS" not in env
    assert env["CHURNWATCH_SCORE_MIN_CHANGE"] == "0.1"
