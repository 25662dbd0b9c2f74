"""Run churnwatch commands as child processes with a test's settings."""

from __future__ import annotations

import os
import subprocess
import sys

from churnwatch.settings import PREFIX, Settings


def child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update(settings.to_env())
    return env


def start_churnwatch(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "churnwatch", *args],
        env=child_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_churnwatch(settings: Settings, *args: str, timeout_s: float = 180) -> str:
    proc = start_churnwatch(settings, *args)
    output, _ = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, f"churnwatch {' '.join(args)} exited {proc.returncode}:\n{output}"
    return output
