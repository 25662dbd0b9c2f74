"""The feature store benchmark on the local stack's Redis: it prints both figures and a
digest of what it stored, and leaves no key behind."""

from __future__ import annotations

import pytest
import redis

from benchmarks.bench_feature_store import main
from churnwatch.settings import Settings


def test_a_small_run_prints_its_figures_and_cleans_up(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str],
) -> None:
    assert stack_settings.redis_url
    client = redis.Redis.from_url(stack_settings.redis_url)
    before = set(client.scan_iter(match="cwbench*"))
    assert main(["--accounts", "50", "--batches", "3", "--repeat", "2",
                 "--redis-url", stack_settings.redis_url]) == 0
    out = capsys.readouterr().out
    assert "client CPU" in out and "wall" in out
    assert "stored: 50 hashes, sha256 " in out  # one per account, the newest batch's
    assert set(client.scan_iter(match="cwbench*")) == before
    client.close()
