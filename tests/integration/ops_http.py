"""Read a churnwatch process's ops endpoints (/metrics, /healthz, /readyz) over HTTP."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    _, body = get(f"http://127.0.0.1:{port}/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def total(values: dict, name: str, **labels: str) -> float:
    return sum(
        v for (n, ls), v in values.items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def up(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:
        return False
