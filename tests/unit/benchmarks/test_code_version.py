"""Which code a benchmark measured: a commit and a digest of its uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks.harness.code_version import code_state, same_code


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "a")
    return tmp_path


def test_a_clean_tree_is_its_commit(repository: Path) -> None:
    state = code_state(repository)
    assert len(state["commit"]) == 40
    assert (state["modified"], state["diff_sha1"]) == ([], None)


def test_an_edit_during_the_run_is_seen(repository: Path) -> None:
    start = code_state(repository)
    (repository / "a.py").write_text("x = 2\n")
    middle = code_state(repository)
    (repository / "a.py").write_text("x = 3\n")
    end = code_state(repository)
    assert middle["modified"] == ["a.py"]
    assert same_code(start, start) is True
    assert same_code(start, middle) is False
    assert same_code(middle, end) is False


def test_outside_a_repository_nothing_is_known(tmp_path: Path) -> None:
    state = code_state(tmp_path)
    assert state == {"commit": None, "modified": None, "diff_sha1": None}
    assert same_code(state, state) is None
