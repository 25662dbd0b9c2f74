"""Progress of long commands (train, replay, evaluate, features backfill, policy dry-run,
simulate): one helper for all of them.

On a terminal (standard error is a TTY) a live line drawn by rich shows the
current stage, the events read, their rate, the time elapsed and, when the input
is a file, the share of its bytes read and the time left. Elsewhere (pipes, CI,
log collectors) nothing is drawn: one log line per stage, and one at the end
with the events read and the time taken.

rich rather than tqdm: one live display holds the stage text, counts, rate,
elapsed and ETA columns side by side (tqdm draws one bar with a postfix), and
it is already in the development environment (import-linter uses it).

Two ways in: :meth:`Progress.read_jsonl` wraps the lines of a history as a
command reads them (exact bytes, so an exact ETA); :meth:`Progress.watch` polls a
count the command keeps elsewhere (the Bytewax replay reads its file inside the
engine), with bytes estimated from the file's mean line length.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

log = logging.getLogger(__name__)

# Redraw at most this often, and count lines in blocks: a redraw per event would
# cost more than reading it.
_REFRESH_SECONDS = 0.25
_LINES_PER_UPDATE = 4096


def mean_line_bytes(path: Path, sample: int = 1 << 20) -> float:
    """The mean length of a line in the first ``sample`` bytes of ``path`` (newline in)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(sample)
    except OSError:
        return 0.0
    lines = head.count(b"\n")
    return len(head) / lines if lines else float(len(head) or 1)


class _ConsoleWriter:
    """A stream for a logging handler that prints through rich's console, so a line
    lands above the live display instead of inside it."""

    def __init__(self, console: Any) -> None:
        self._console = console

    def write(self, text: str) -> int:
        if text.strip():
            self._console.print(text.rstrip("\n"), markup=False, highlight=False,
                                soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass


class Progress:
    """Progress of one command over an input file (or none: ``path=None``).

    Use as a context manager. ``interactive``: draw on the terminal (default:
    whether ``stream`` is a TTY); else log one line per stage.
    """

    def __init__(
        self,
        command: str,
        path: Path | None = None,
        *,
        stream: IO[str] | None = None,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = command
        self._stream = stream if stream is not None else sys.stderr
        self._interactive = (
            interactive if interactive is not None else bool(
                getattr(self._stream, "isatty", lambda: False)()
            )
        )
        self._clock = clock
        self._path = path
        self._total = path.stat().st_size if path is not None and path.exists() else None
        self.events = 0
        self.bytes_read = 0
        self._stage = "starting"
        self._started = clock()
        self._display: object | None = None
        self._count: Callable[[], int] | None = None  # a watched count of events
        self._task: object | None = None
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._swapped: list[tuple[logging.StreamHandler[Any], Any]] = []

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Progress:
        self._started = self._clock()
        if self._interactive:
            from rich.console import Console
            from rich.progress import Progress as RichProgress
            from rich.progress import (
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            # No bar: stage, share, counts and times fit an 80-column terminal.
            display = RichProgress(
                TextColumn(f"{self.command}: " + "{task.description}"),
                TaskProgressColumn(),
                TextColumn("{task.fields[events]:,} events {task.fields[rate]:,.0f}/s"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(compact=True),
                console=Console(file=self._stream),
                refresh_per_second=1 / _REFRESH_SECONDS,
                transient=False,
            )
            display.start()
            self._display = display
            # Log lines printed meanwhile go above the live line, not through it.
            writer = _ConsoleWriter(display.console)
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is self._stream:
                    self._swapped.append((handler, handler.setStream(writer)))
            self._task = display.add_task(self._stage, total=self._total, events=0, rate=0.0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        if self._count is not None:
            self.events = self._count()
        elapsed = self._clock() - self._started
        if self._display is not None:
            self._update(final=True)
            self._display.stop()  # type: ignore[attr-defined]
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped.clear()
        elif exc_type is None:
            log.info("%s: done in %.1f s, %d events", self.command, elapsed, self.events)

    # --- reporting -----------------------------------------------------------------------

    def stage(self, name: str) -> None:
        """The command moved to stage ``name`` (e.g. ``fitting trees``)."""
        self._stage = name
        if self._display is None:
            log.info("%s: %s (%d events so far, %.1f s)", self.command, name,
                     self.events, self._clock() - self._started)
        else:
            self._update()

    def advance(self, events: int, bytes_read: int = 0) -> None:
        self.events += events
        self.bytes_read += bytes_read
        if self._display is not None:
            self._update()

    def read_jsonl(self, path: Path) -> Iterator[bytes]:
        """The non-empty lines of ``path`` (as ``accounts.backfill.read_jsonl``), counted."""
        events = size = 0
        with path.open("rb") as handle:
            for line in handle:
                size += len(line)
                stripped = line.rstrip(b"\r\n")
                if stripped:
                    events += 1
                    yield stripped
                if events >= _LINES_PER_UPDATE:
                    self.advance(events, size)
                    events = size = 0
        self.advance(events, size)

    def watch(self, count: Callable[[], int]) -> None:
        """Poll ``count()`` (events so far) in the background until the end; bytes are
        estimated from the input file's mean line length."""
        self._count = count  # read once more at the end, for the closing line
        if self._display is None:
            return  # nothing to draw: the stage lines say enough
        per_line = mean_line_bytes(self._path) if self._path is not None else 0.0

        def poll() -> None:
            while not self._stop.wait(_REFRESH_SECONDS):
                seen = count()
                self.events = seen
                self.bytes_read = int(seen * per_line)
                self._update()

        self._watcher = threading.Thread(target=poll, name="progress", daemon=True)
        self._watcher.start()

    def _update(self, *, final: bool = False) -> None:
        display = self._display
        if display is None or self._task is None:
            return
        elapsed = max(self._clock() - self._started, 1e-9)
        completed = self.bytes_read
        if self._total is not None:
            completed = self._total if final else min(completed, self._total)
        display.update(  # type: ignore[attr-defined]
            self._task, description=self._stage, completed=completed,
            events=self.events, rate=self.events / elapsed,
        )
