"""churnwatch.progress: quiet off a terminal (a log line per stage), a live line on one."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from accounts.backfill import read_jsonl
from churnwatch.cli import main
from churnwatch.progress import Progress, mean_line_bytes


def history(path: Path, lines: int = 10_000) -> Path:
    path.write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(lines)) + b"\n\r\n")
    return path


def test_off_a_terminal_nothing_is_drawn_and_each_stage_is_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()  # not a TTY
    path = history(tmp_path / "h.jsonl")
    with caplog.at_level(logging.INFO, logger="churnwatch.progress"), \
            Progress("train", path, stream=stream) as progress:
        progress.stage("reading events")
        lines = list(progress.read_jsonl(path))
        progress.stage("fitting")
    assert stream.getvalue() == ""
    assert lines == list(read_jsonl(path))
    assert progress.events == 10_000 and progress.bytes_read == path.stat().st_size
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert messages[0].startswith("train: reading events (0 events")
    assert messages[1].startswith("train: fitting (10000 events so far")
    assert messages[2].startswith("train: done in") and messages[2].endswith("10000 events")


def test_on_a_terminal_a_live_line_shows_stage_events_and_the_share_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    path = history(tmp_path / "h.jsonl")
    with caplog.at_level(logging.INFO, logger="churnwatch.progress"), \
            Progress("evaluate", path, stream=stream, interactive=True) as progress:
        progress.stage("replaying the history")
        for _ in progress.read_jsonl(path):
            pass
    drawn = stream.getvalue()
    assert "evaluate: replaying the history" in drawn
    assert "10,000 events" in drawn
    assert not caplog.records  # the live line replaces the log lines


def test_a_polled_count_off_a_terminal_starts_no_thread(tmp_path: Path) -> None:
    path = history(tmp_path / "h.jsonl", 100)
    with Progress("replay", path, stream=io.StringIO()) as progress:
        progress.watch(lambda: 100)
        assert progress._watcher is None
    assert progress.events == 100  # the closing line counts what the replay read
    assert mean_line_bytes(path) == pytest.approx(path.stat().st_size / 102)


def test_a_command_in_a_pipe_prints_only_its_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``features backfill`` with its standard error not a terminal: no progress drawn."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"")
    assert main(["features", "backfill", str(path), "--out", str(tmp_path / "f.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b[" not in err  # no live line, no terminal codes
    assert "0 accounts" in err


def test_log_lines_during_a_live_line_go_above_it_and_the_handler_is_restored(
    tmp_path: Path,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with Progress("replay", history(tmp_path / "h.jsonl", 10), stream=stream,
                      interactive=True):
            logging.getLogger("churnwatch.test").warning("a line while drawing")
            assert handler.stream is not stream
        assert handler.stream is stream
    finally:
        root.removeHandler(handler)
    assert "a line while drawing\n" in stream.getvalue()
