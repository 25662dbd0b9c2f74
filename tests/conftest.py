"""Refuse to test a compiled module older than its source (``churnwatch.native``):
Python would import the compiled copy and the tests would run the old code."""

from __future__ import annotations

import pytest

from churnwatch import native


def pytest_configure(config: pytest.Config) -> None:
    if outdated := native.stale():
        raise pytest.UsageError(native.STALE_ADVICE.format(modules=", ".join(outdated)))
