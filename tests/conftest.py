"""Refuse to test a compiled module older than its source (``churnwatch.native``):
Python would import the compiled copy and the tests would run the old code. And
give the children the tests start a SIGINT that stops them."""

from __future__ import annotations

import signal

import pytest

from churnwatch import native


def pytest_configure(config: pytest.Config) -> None:
    if outdated := native.stale():
        raise pytest.UsageError(native.STALE_ADVICE.format(modules=", ".join(outdated)))
    # A shell without job control starts a background job with SIGINT ignored, and an
    # ignored signal stays ignored across exec: every churnwatch the tests start would
    # then ignore the SIGINT that stops it (tests/integration/test_live_reload.py waited
    # 60 s and failed). With a handler here, children start with SIGINT at its default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
