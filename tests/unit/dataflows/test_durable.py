"""Files written whole or not at all (dataflows.durable)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dataflows.durable import write_file


def test_a_file_is_written_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    assert write_file(path, b"first")
    assert write_file(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]  # no partial file left


def test_without_replace_an_existing_file_stays_and_is_compared(tmp_path: Path) -> None:
    path = tmp_path / "dictionary.zdict"
    assert write_file(path, b"theirs", replace=False)
    assert write_file(path, b"theirs", replace=False)  # the same bytes: as good as written
    assert not write_file(path, b"ours", replace=False)  # other bytes: not replaced
    assert path.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["dictionary.zdict"]


def test_a_full_disk_names_the_file_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # as write(2) says it

    monkeypatch.setattr(os, "fsync", full)
    path = tmp_path / "shard.log"
    with pytest.raises(OSError) as failed:
        write_file(path, b"entries")
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(path)
    assert not any(tmp_path.iterdir())
