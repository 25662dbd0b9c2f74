"""The local stack starts real servers and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from confluent_kafka.admin import AdminClient

from churnwatch.errors import LocalStackError
from churnwatch.localstack import LocalStack
from churnwatch.settings import Settings


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: list[int], timeout_s: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [p for p in pids if not gone(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def test_servers_answer_and_stop_without_leftovers(tmp_path: Path) -> None:
    stack = LocalStack(Settings(), tmp_path / "stack")
    with stack as settings:
        pids = stack.pids
        assert set(pids) == {"kafka", "redis", "postgres"}
        children = [c.pid for c in psutil.Process(pids["postgres"]).children(recursive=True)]
        assert settings.kafka_bootstrap and settings.redis_url and settings.database_url
        assert (
            AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
            .list_topics(timeout=10)
            .brokers
        )
        assert redis.Redis.from_url(settings.redis_url).ping()
        with psycopg.connect(settings.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert wait_gone([*pids.values(), *children]) == []
    assert stack.pids == {}


def test_a_state_directory_deeper_than_a_socket_path_allows_still_starts(
    tmp_path: Path,
) -> None:
    # A Unix socket's path holds at most 107 bytes; PostgreSQL refused to start when it
    # put its socket in a deep state directory (seen under pytest-xdist's longer tmp
    # paths). Its clients connect over TCP: it needs no socket.
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5)
    assert len(str(deep / "postgres" / ".s.PGSQL.65535")) > 107
    with LocalStack(Settings(), deep) as settings:
        assert settings.database_url
        with psycopg.connect(settings.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_explicit_urls_replace_embedded_servers(tmp_path: Path) -> None:
    stack = LocalStack(
        Settings(kafka_bootstrap="k:1", redis_url="redis://r:1/0", database_url="postgresql://p/d"),
        tmp_path / "stack",
    )
    with stack as settings:
        assert stack.pids == {}
        assert settings.kafka_bootstrap == "k:1"


def test_servers_stop_when_the_body_fails(tmp_path: Path) -> None:
    stack = LocalStack(
        Settings(kafka_bootstrap="given:1", database_url="postgresql://x/y"), tmp_path / "stack"
    )
    with pytest.raises(RuntimeError), stack:
        pids = list(stack.pids.values())
        assert len(pids) == 1  # redis only
        raise RuntimeError("caller failed")
    assert wait_gone(pids) == []


def test_failed_start_is_reported_and_cleaned_up(tmp_path: Path) -> None:
    # A file where the Redis data directory should be: redis-server cannot start.
    state = tmp_path / "stack"
    state.mkdir()
    (state / "redis").write_text("not a directory")
    stack = LocalStack(Settings(kafka_bootstrap="given:1"), state)
    with pytest.raises((LocalStackError, OSError)):
        stack.start()
    assert stack.pids == {}


def test_servers_die_with_a_killed_parent(tmp_path: Path) -> None:
    script = (
        "import json, sys, time, pathlib\n"
        "from churnwatch.localstack import LocalStack\n"
        "from churnwatch.settings import Settings\n"
        "s = LocalStack(Settings(), pathlib.Path(sys.argv[1]))\n"
        "s.start()\n"
        "print(json.dumps(s.pids), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "stack")], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    pids = list(json.loads(parent.stdout.readline()).values())
    assert len(pids) == 3 and all(not gone(p) for p in pids)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert wait_gone(pids) == []
