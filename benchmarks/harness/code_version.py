"""Which code a benchmark measured: the git commit and the uncommitted changes.

Child processes import the working tree as it is when they start, so a long
benchmark in a tree that others edit can time several versions of the code.
Recorded at the start and at the end, the two say whether that happened.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from benchmarks.harness.figures import Figures

REPOSITORY = Path(__file__).resolve().parents[2]
GIT_TIMEOUT_S = 30.0


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def code_state(root: Path = REPOSITORY) -> Figures:
    """``commit``, ``modified`` (tracked files that differ from it) and ``diff_sha1``
    (of those differences); None each where git cannot tell."""
    commit = _git(root, "rev-parse", "HEAD")
    names = _git(root, "diff", "--name-only", "HEAD")
    diff = _git(root, "diff", "HEAD")
    return {
        "commit": commit.strip() if commit else None,
        "modified": names.split() if names is not None else None,
        "diff_sha1": hashlib.sha1(diff.encode()).hexdigest() if diff else None,
    }


def same_code(start: Figures, end: Figures) -> bool | None:
    """Whether two :func:`code_state` readings saw the same code; None if unknown."""
    if start.get("commit") is None or end.get("commit") is None:
        return None
    return bool(start["commit"] == end["commit"] and start["diff_sha1"] == end["diff_sha1"])
