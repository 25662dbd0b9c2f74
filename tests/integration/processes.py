"""Run churnwatch commands as child processes with a test's settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

from churnwatch.settings import PREFIX, Settings


def child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update(settings.to_env())
    return env


class DrainedPopen(subprocess.Popen[str]):
    """A child whose output (stdout and stderr) a thread reads as it comes.

    A child that logs more than a pipe holds (64 KB: a line per alert is enough)
    would otherwise block on its next log line until someone reads, and a test
    that only reads at the end would wait for it forever. :meth:`communicate`
    returns everything read once the child has ended.
    """

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        super().__init__(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.stdout is not None
        for line in self.stdout:
            self.lines.append(line)

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        self._reader.join(timeout=10)
        return "".join(self.lines), ""


def start_churnwatch(settings: Settings, *args: str) -> DrainedPopen:
    return DrainedPopen([sys.executable, "-m", "churnwatch", *args], child_env(settings))


def run_churnwatch(settings: Settings, *args: str, timeout_s: float = 180) -> str:
    proc = start_churnwatch(settings, *args)
    output, _ = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, f"churnwatch {' '.join(args)} exited {proc.returncode}:\n{output}"
    return output
