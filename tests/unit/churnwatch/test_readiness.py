"""/readyz checks: cached, and never queueing a probe behind a check that waits."""

from __future__ import annotations

import threading

from churnwatch.ops_server import Readiness


def test_a_probe_gets_the_last_verdict_while_a_slow_check_runs() -> None:
    release, entered = threading.Event(), threading.Event()
    calls = {"n": 0}

    def slow_redis() -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second evaluation hangs, as on a frozen server
            entered.set()
            release.wait(10)
            raise TimeoutError("no answer")

    readiness = Readiness({"redis": slow_redis}, cache_seconds=0.0)
    assert readiness.evaluate() == {"redis": "ok"}  # the first one runs the check
    verdicts: list[dict[str, str]] = []
    slow = threading.Thread(target=lambda: verdicts.append(readiness.evaluate()))
    slow.start()
    assert entered.wait(5)
    # meanwhile another probe answers at once with the last verdict
    fast: list[dict[str, str]] = []
    probe = threading.Thread(target=lambda: fast.append(readiness.evaluate()))
    probe.start()
    probe.join(1.0)
    assert fast == [{"redis": "ok"}]  # it did not wait for the slow check
    release.set()
    slow.join(5)
    assert verdicts[0]["redis"].startswith("TimeoutError")  # the slow probe's own verdict


def test_verdicts_are_cached() -> None:
    calls = {"n": 0}

    def check() -> None:
        calls["n"] += 1

    readiness = Readiness({"kafka": check}, cache_seconds=60.0)
    readiness.evaluate()
    readiness.evaluate()
    assert calls["n"] == 1
